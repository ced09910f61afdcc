"""How the wall time of ``simulate`` grows with chains, sample size and generations.

Usage (from the repository root)::

    python benchmarks/scaling.py [--quick] [--out DIR] [--repeats R]
    python -m benchmarks.scaling [--quick] [--out DIR] [--repeats R]

Times a 1-D standard normal refitted by maximum likelihood (variance metric only,
like ``benchmarks/bench_gaussian.py``) along three sweeps — chains, samples per
generation ``n``, generations ``G`` — with ``sampling="explicit"`` (every point
drawn), ``sampling="exact"`` (only the sample mean and scatter drawn) and the plain
numpy-vectorised loop of ``bench_gaussian.numpy_loop`` as the baseline. Numba
compilation is excluded (a warm-up runs both the serial and the parallel builds
first). Each time is the best of ``R`` repeats (default 2).

The largest explicit and numpy runs are capped so the script stays near a minute on
two cores: a run that would draw more than ``EXPLICIT_MAX_DRAWS`` (numpy:
``NUMPY_MAX_DRAWS``) normals is timed on fewer generations and scaled linearly to
the full count (both costs are linear in ``G``: the same work every generation).
Such points are marked ``*`` in the table, ``"timed_generations" < "generations"``
in ``scaling.json``, and hollow in ``scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python benchmarks/scaling.py``
    sys.path.insert(0, str(ROOT))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import collapse_sim as cs  # noqa: E402
from benchmarks.bench_gaussian import numpy_loop  # noqa: E402

#: Sweep name -> (swept parameter, its values, the fixed parameters).
SWEEPS = {
    "chains": ("chains", (100, 300, 1000, 3000, 10_000), {"n_samples": 100, "generations": 200}),
    "n_samples": ("n_samples", (10, 100, 1000, 10_000), {"chains": 1000, "generations": 100}),
    "generations": ("generations", (50, 200, 1000, 4000), {"chains": 1000, "n_samples": 100}),
}
QUICK_SWEEPS = {
    "chains": ("chains", (50, 200, 800), {"n_samples": 50, "generations": 50}),
    "n_samples": ("n_samples", (10, 100, 1000), {"chains": 200, "generations": 20}),
    "generations": ("generations", (10, 40, 160), {"chains": 200, "n_samples": 50}),
}
#: Explicit runs drawing more normals than this are timed on fewer generations, then scaled.
EXPLICIT_MAX_DRAWS = 200_000_000
#: The same cap for the numpy baseline (single-threaded, about 4x slower than explicit).
NUMPY_MAX_DRAWS = 20_000_000
#: Never time fewer generations than this when capping.
MIN_TIMED_GENERATIONS = 10
QUICK_MAX_DRAWS = 2_000_000
#: Other processes using more cores than this on average during the run trigger a warning.
BUSY_CORES = 0.25

METHODS = ("explicit", "exact", "numpy")
LABELS = {"explicit": 'simulate, sampling="explicit"', "exact": 'simulate, sampling="exact"',
          "numpy": "numpy loop (baseline)"}
COLOURS = {"explicit": "#0072B2", "exact": "#D55E00", "numpy": "#009E73"}
AXIS_LABELS = {"chains": "chains", "n_samples": "samples per generation n",
               "generations": "generations G"}



def best_of(fn, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

def cpu_clock() -> tuple[float, float, float] | None:
    """(wall s, CPU s used by every process on the machine, CPU s used by this one) on Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    own = os.times()
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def other_cores(start, end) -> float | None:
    """Average number of cores other processes kept busy between two ``cpu_clock()``."""
    if start is None or end is None:
        return None
    return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))


def simulate(chains: int, n_samples: int, generations: int, sampling: str) -> None:
    cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=n_samples,
                generations=generations, chains=chains, metrics="variance", seed=0,
                progress=False, sampling=sampling)


def warm_up() -> float:
    """Compile (or load from numba's cache) the serial and parallel builds of both paths."""
    start = time.perf_counter()
    for sampling in ("explicit", "exact"):
        for chains in (4, 40_000):
            simulate(chains, 10, 2, sampling)
    return time.perf_counter() - start




def timed_generations(chains: int, n: int, generations: int, max_draws: float | None) -> int:
    if max_draws is None or chains * n * generations <= max_draws:
        return generations
    return min(generations, max(MIN_TIMED_GENERATIONS, int(max_draws // (chains * n))))


def measure(method: str, chains: int, n: int, generations: int, repeats: int,
            caps: dict) -> tuple[float, int]:
    """Seconds for the full run (scaled from ``g`` timed generations) and ``g``."""
    g = timed_generations(chains, n, generations, caps[method])
    if method == "numpy":
        seconds = best_of(lambda: numpy_loop(chains, g, n), repeats)
    else:
        seconds = best_of(lambda: simulate(chains, n, g, method), repeats)
    return seconds * generations / g, g


def run(quick: bool, repeats: int) -> tuple[list[dict], dict]:
    sweeps = QUICK_SWEEPS if quick else SWEEPS
    caps = ({"explicit": QUICK_MAX_DRAWS, "exact": None, "numpy": QUICK_MAX_DRAWS // 5}
            if quick else
            {"explicit": EXPLICIT_MAX_DRAWS, "exact": None, "numpy": NUMPY_MAX_DRAWS})
    rows = []
    for sweep, (param, values, fixed) in sweeps.items():
        for value in values:
            size = {**fixed, param: value}
            for method in METHODS:
                seconds, g = measure(method, size["chains"], size["n_samples"],
                                     size["generations"], repeats, caps)
                rows.append({"sweep": sweep, "method": method, **size, "seconds": seconds,
                             "timed_generations": g})
    return rows, {"sweeps": {k: {"param": p, "values": list(v), "fixed": f}
                             for k, (p, v, f) in sweeps.items()},
                  "max_draws": caps}


def print_table(rows: list[dict], sweeps: dict) -> None:
    by_key = {(r["sweep"], r[sweeps[r["sweep"]]["param"]], r["method"]): r for r in rows}
    for sweep, spec in sweeps.items():
        fixed = ", ".join(f"{k}={v}" for k, v in spec["fixed"].items())
        print(f"\n{AXIS_LABELS[spec['param']]} ({fixed}); seconds, * = timed on fewer "
              "generations and scaled")
        print(f"{spec['param']:>12} {'explicit':>10} {'exact':>10} {'numpy':>10} "
              f"{'numpy/explicit':>15} {'numpy/exact':>12}")
        for value in spec["values"]:
            cells, secs = [], {}
            for method in METHODS:
                r = by_key[(sweep, value, method)]
                secs[method] = r["seconds"]
                star = "*" if r["timed_generations"] < r["generations"] else " "
                cells.append(f"{r['seconds']:>9.4f}{star}")
            print(f"{value:>12} {' '.join(cells)} {secs['numpy'] / secs['explicit']:>14.1f}x "
                  f"{secs['numpy'] / secs['exact']:>11.0f}x")


def plot(rows: list[dict], sweeps: dict, meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), sharey=True, layout="constrained")
    for ax, (sweep, spec) in zip(axes, sweeps.items(), strict=True):
        param = spec["param"]
        for method in METHODS:
            pts = sorted((r[param], r["seconds"], r["timed_generations"] < r["generations"])
                         for r in rows if r["sweep"] == sweep and r["method"] == method)
            x = np.array([p[0] for p in pts], dtype=float)
            y = np.array([p[1] for p in pts])
            scaled = np.array([p[2] for p in pts])
            style = "--" if method == "numpy" else "-"
            ax.plot(x, y, style, color=COLOURS[method], lw=1.8)
            ax.plot(x[~scaled], y[~scaled], "o", color=COLOURS[method], ms=6)
            ax.plot(x[scaled], y[scaled], "o", mfc="white", mec=COLOURS[method], mew=1.6, ms=6)
        # slope-1 guide: one decade, in the empty top-left corner above every line
        x0 = min(r[param] for r in rows if r["sweep"] == sweep)
        y0 = 8 * max(r["seconds"] for r in rows if r["sweep"] == sweep and r[param] == x0)
        ax.plot([1.3 * x0, 13 * x0], [y0, 10 * y0], ":", color="0.35", lw=1.4)
        ax.text(14.5 * x0, 10 * y0, "slope 1", color="0.35", fontsize=8, va="center")
        ax.set_xscale("log")
        ax.set_yscale("log")
        fixed = ", ".join(f"{'n' if k == 'n_samples' else 'G' if k == 'generations' else k}"
                          f" = {v}" for k, v in spec["fixed"].items())
        ax.set_xlabel(AXIS_LABELS[param])
        ax.set_title(f"vs {AXIS_LABELS[param]}  ({fixed})", fontsize=10)
        ax.grid(True, which="major", color="0.88", lw=0.8)
        ax.grid(True, which="minor", color="0.95", lw=0.5)
    axes[0].set_ylabel("wall time (s)")
    handles = [Line2D([], [], color=COLOURS[m], ls="--" if m == "numpy" else "-", marker="o",
                      label=LABELS[m]) for m in METHODS]
    handles += [Line2D([], [], color="0.45", ls=":", label="slope 1: time ∝ size (guide)"),
                Line2D([], [], ls="", marker="o", mfc="white", mec="0.3", mew=1.6,
                       label="timed on fewer generations, scaled linearly")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False, fontsize=9)
    busy = meta["other_processes_cores"]
    busy = "" if busy is None else f", {busy:.1f} of them busy with other processes"
    fig.suptitle(f"collapse_sim.simulate wall time, 1-D Gaussian MLE refit: best of "
                 f"{meta['repeats']}, numba compile excluded; {meta['cpus']} cores{busy}; "
                 f"{meta['date']}", fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/scaling.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=2, help="best of R (default 2)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                        help="output directory (default benchmarks/results/)")
    args = parser.parse_args()
    wall = time.perf_counter()
    clock = cpu_clock()
    compile_s = warm_up()
    rows, spec = run(args.quick, args.repeats)
    busy = other_cores(clock, cpu_clock())
    meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "date": time.strftime("%Y-%m-%d"),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "quick": args.quick,
            "repeats": args.repeats, "warm_up_s": compile_s,
            "threading_layer": numba.threading_layer(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "other_processes_cores": busy,
            "note": "numpy baseline runs on one core; simulate on numba_threads threads"}
    print_table(rows, spec["sweeps"])
    if busy is not None and busy > BUSY_CORES:
        print(f"\nwarning: other processes kept {busy:.1f} of {os.cpu_count()} cores busy on "
              "average during the run; the parallel kernels lose the most from it (see "
              "docs/performance.rst)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps({"meta": meta, **spec, "rows": rows}, indent=2))
    plot(rows, spec["sweeps"], meta, out / "scaling.png")
    print(f"\nwarm-up (compile or cache load) {compile_s:.1f} s, total "
          f"{time.perf_counter() - wall:.1f} s; wrote {out / 'scaling.json'} and "
          f"{out / 'scaling.png'}")


if __name__ == "__main__":
    main()
