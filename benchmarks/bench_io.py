r"""Saving and loading big results: time and peak memory of ``Simulation.save``/``load``
against the previous save (compressed npz) and against plain ``np.save``/``np.load``.

Usage (from the repository root)::

    python -m benchmarks.bench_io [--quick] [--rounds R] [--size G CHAINS] [--dir DIR]
                                  [--out FILE]

Setting (the issue's size): a :class:`~collapse_sim.Simulation` of ``G = 1000`` generations
x ``10^5`` chains x the six metrics a Gaussian run computes by default, built from random
arrays (log-normal values: the mantissas are as incompressible as real metrics'), float64:
6 x 1001 x 10^5 x 8 B = 4.8 GB (4.47 GiB). ``--quick``: 100 generations x 2000 chains
(9.7 MB), a smoke run of a few seconds.

Sides, each writing to ``DIR`` (default: a new temporary folder, removed at the end):

* **ours** — ``sim.save(path)`` (uncompressed npz, streamed, atomic: temporary file,
  fsync, rename); ``dtype="float32"``; ``metrics=`` one metric. Loads:
  ``Simulation.load`` of each, and ``load(mmap=True)`` (maps the file; nothing read) plus
  the median over chains of one metric at generation ``G`` (reads one row of pages).
* **before** — the save of the previous version, verbatim: ``np.savez_compressed`` of the
  same arrays through the same atomic write; loaded by ``Simulation.load`` (what loading
  such a file costs today; the reading code of compressed entries did not change).
* **np.save** — one ``np.save`` per array into a folder, each file fsynced (the floor of
  what numpy can do: no zip, no checksum); ``np.load`` of each.

Timing: interleaved rounds (every side once per round, the order rotated each round), each
side's time per round, the median and min–max over rounds of the per-round ratios
``before / ours``. Every file is fsynced (durable, as ``save`` guarantees), then its pages
are dropped from the page cache (``posix_fadvise(DONTNEED)``) so that loads read the disk
(a virtual machine's host may still cache it).

Peak memory: ``VmHWM - VmRSS`` of this process around each call, the high-water mark reset
before it (``/proc/self/clear_refs``; Linux), i.e. the resident memory the call added at
its peak, the loaded result included. ``to_frame`` is measured the same way, against the
previous ``to_frame`` (int64 index columns, metrics copied into one block), which is
skipped when the machine's available memory is short of it by 2 GiB.

Correctness: every load is compared with the source arrays (equal, or within float32's
relative rounding ``2**-24``), or the run stops with ``AssertionError``.

Writes a JSON of every row (``--out``; default ``benchmarks/results/io.json``, nothing for
``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python benchmarks/bench_io.py``
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import collapse_sim as cs  # noqa: E402
from collapse_sim import results  # noqa: E402
from collapse_sim._io import atomic_write  # noqa: E402

#: The metrics a Gaussian run computes by default (their names; the values are random).
METRICS = ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass")
FULL = (1000, 100_000)  # generations, chains
QUICK = (100, 2000)
GOAL = 10.0
F32_RTOL = 2.0**-24


# ---------------------------------------------------------------------------------------------
# measuring


def _status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        return None
    return None


def measured(fn):
    """``(seconds, peak bytes added, result)`` of ``fn()`` (peak: None without /proc)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        before = _status("VmRSS")
    except OSError:  # pragma: no cover - not Linux
        before = None
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = None if before is None else _status("VmHWM") - before
    return seconds, peak, out


def drop_cache(path: Path) -> None:
    """Ask the kernel to forget the (clean, fsynced) pages of ``path`` or of its files."""
    for p in ([path] if path.is_file() else sorted(path.iterdir())):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):  # pragma: no cover - not POSIX
            pass
        finally:
            os.close(fd)


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return 0


# ---------------------------------------------------------------------------------------------
# the data and the sides


def make_simulation(generations: int, chains: int, seed: int = 0) -> cs.Simulation:
    """Random log-normal metric arrays, filled in place (no temporary of a whole array)."""
    rng = np.random.default_rng(seed)
    metrics = {}
    for name in METRICS:
        arr = np.empty((generations + 1, chains))
        step = max(1, 2**21 // chains)
        for r in range(0, generations + 1, step):
            block = arr[r:r + step]
            rng.standard_normal(out=block)
            np.exp(block, out=block)
        metrics[name] = arr
    config = {"truth": {"type": "Gaussian"}, "fitter": {"type": "GaussianFit"},
              "generations": generations, "chains": chains, "metrics": list(METRICS),
              "note": "benchmarks/bench_io.py: random arrays"}
    return cs.Simulation(metrics, config)


def save_before(sim: cs.Simulation, path: Path) -> Path:
    """The previous ``Simulation.save``, verbatim (compressed npz, atomic)."""
    arrays = {f"metric__{k}": v for k, v in sim.metrics.items()}
    arrays["__meta__"] = np.array(json.dumps({"format": results._FORMAT, "config": sim.config}))
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def save_npy(sim: cs.Simulation, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name, arr in sim.metrics.items():
        with open(folder / f"{name}.npy", "wb") as fh:
            np.save(fh, arr)
            fh.flush()
            os.fsync(fh.fileno())
    return folder


def load_npy(folder: Path) -> dict[str, np.ndarray]:
    return {name: np.load(folder / f"{name}.npy") for name in METRICS}


def _mapped_median(path: Path) -> float:
    sim = cs.Simulation.load(path, mmap=True)
    return float(np.median(sim.metrics["variance"][-1]))


def check(source: cs.Simulation, loaded, rtol: float = 0.0) -> None:
    metrics = loaded.metrics if isinstance(loaded, cs.Simulation) else loaded
    for name, arr in metrics.items():
        ref = source.metrics[name]
        if rtol:
            np.testing.assert_allclose(arr, ref, rtol=rtol, atol=0)
        else:
            assert np.array_equal(arr, ref), name


# ---------------------------------------------------------------------------------------------
# the benchmark


def run(rounds: int, quick: bool, folder: Path, size: tuple[int, int] | None = None
        ) -> list[dict]:
    generations, chains = size or (QUICK if quick else FULL)
    t0 = time.perf_counter()
    sim = make_simulation(generations, chains)
    size = sum(a.nbytes for a in sim.metrics.values())
    print(f"{len(METRICS)} metrics x {generations + 1} x {chains} float64 = {size / 1e9:.3g} GB "
          f"(built in {time.perf_counter() - t0:.1f} s) in {folder}")
    paths = {"ours": folder / "ours.npz", "ours float32": folder / "f32.npz",
             "ours 1 metric": folder / "one.npz", "before (compressed)": folder / "before.npz",
             "np.save": folder / "npy"}
    saves = {
        "ours": lambda: sim.save(paths["ours"]),
        "ours float32": lambda: sim.save(paths["ours float32"], dtype="float32"),
        "ours 1 metric": lambda: sim.save(paths["ours 1 metric"], metrics="variance"),
        "before (compressed)": lambda: save_before(sim, paths["before (compressed)"]),
        "np.save": lambda: save_npy(sim, paths["np.save"]),
    }
    loads = {
        "ours": (lambda: cs.Simulation.load(paths["ours"]), 0.0),
        "ours float32": (lambda: cs.Simulation.load(paths["ours float32"]), F32_RTOL),
        "ours 1 metric": (lambda: cs.Simulation.load(paths["ours"], metrics="variance"), 0.0),
        "ours mmap": (lambda: cs.Simulation.load(paths["ours"], mmap=True), 0.0),
        "ours mmap + one row's median": (lambda: _mapped_median(paths["ours"]), None),
        "before (compressed)": (lambda: cs.Simulation.load(paths["before (compressed)"]), 0.0),
        "np.load": (lambda: load_npy(paths["np.save"]), 0.0),
    }
    times = {("save", k): [] for k in saves} | {("load", k): [] for k in loads}
    peaks = {key: [] for key in times}
    for r in range(rounds):
        for kind, jobs in (("save", saves), ("load", loads)):
            names = list(jobs)
            k = r % len(names)
            for name in names[k:] + names[:k]:
                if kind == "load":
                    for p in paths.values():
                        drop_cache(p)
                    fn, rtol = jobs[name]
                else:
                    fn, rtol = jobs[name], None
                seconds, peak, out = measured(fn)
                if kind == "load" and rtol is not None and r == 0:
                    check(sim, out, rtol)
                del out
                times[(kind, name)].append(seconds)
                peaks[(kind, name)].append(peak)
                print(f"  round {r}: {kind} {name}: {seconds:.3f} s, "
                      f"peak +{(peak or 0) / 2**30:.3g} GiB", flush=True)
    sizes = {name: (sum(f.stat().st_size for f in p.iterdir()) if p.is_dir()
                    else p.stat().st_size) for name, p in paths.items()}
    rows = []
    for (kind, name), t in times.items():
        t = np.array(t)
        base_name = "before (compressed)"
        base = np.array(times[(kind, base_name)])
        ratios = base / t
        file = sizes.get(name) if kind == "save" else None
        rows.append({
            "case": f"{kind} {name}", "ours_s": float(np.median(t)),
            "baseline_s": float(np.median(base)), "baseline": f"{kind} {base_name}",
            "ratio": float(np.median(ratios)), "ratio_min": float(ratios.min()),
            "ratio_max": float(ratios.max()), "goal": GOAL if name == "ours" else None,
            "times_s": t.tolist(), "peak_bytes": max((p or 0) for p in peaks[(kind, name)]),
            "file_bytes": file,
        })
    rows += frame_rows(sim)
    return rows


def frame_before(sim: cs.Simulation) -> pd.DataFrame:
    """The previous ``to_frame``, verbatim."""
    g, c = sim.generations + 1, sim.chains
    data = {"generation": np.repeat(np.arange(g), c), "chain": np.tile(np.arange(c), g)}
    data.update({name: arr.ravel() for name, arr in sim.metrics.items()})
    return pd.DataFrame(data)


def frame_rows(sim: cs.Simulation) -> list[dict]:
    size = sum(a.nbytes for a in sim.metrics.values())
    cases = {"to_frame()": sim.to_frame,
             "to_frame(copy=False)": lambda: sim.to_frame(copy=False),
             "to_frame('variance')": lambda: sim.to_frame("variance"),
             "to_frame(generations=[0, 1, 10, 100, G])": lambda: sim.to_frame(
                 generations=sorted({0, 1, 10, 100, sim.generations}))}
    if available_bytes() > 1.5 * size + 2 * 2**30:
        cases["before: to_frame()"] = lambda: frame_before(sim)
    rows = []
    for name, fn in cases.items():
        seconds, peak, frame = measured(fn)
        shape = frame.shape
        del frame
        rows.append({"case": name, "ours_s": seconds, "baseline_s": None, "ratio": None,
                     "goal": None, "peak_bytes": peak, "note": f"shape {shape}"})
        print(f"  {name}: {seconds:.3f} s, peak +{(peak or 0) / 2**30:.3g} GiB", flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'case':<44} {'median s':>9} {'before s':>9} {'ratio':>18} "
          f"{'peak GiB':>9} {'file GB':>8}")
    for r in rows:
        ratio = "" if r["ratio"] is None else (
            f"{r['ratio']:.1f}x [{r['ratio_min']:.1f}, {r['ratio_max']:.1f}]")
        base = "" if r["baseline_s"] is None else f"{r['baseline_s']:.3f}"
        peak = "" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**30:.3f}"
        file = "" if r.get("file_bytes") is None else f"{r['file_bytes'] / 1e9:.3f}"
        print(f"{r['case']:<44} {r['ours_s']:>9.3f} {base:>9} {ratio:>18} {peak:>9} {file:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_io")
    parser.add_argument("--quick", action="store_true", help="100 x 2000 (a few seconds)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds (default: 2 full, 3 quick)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary "
                        "folder in the system's temporary folder)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("G", "CHAINS"), default=None,
                        help="other sizes than the issue's 1000 x 100000 (or --quick's)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 2)
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench_io_", dir=args.dir))
    try:
        rows = run(rounds, args.quick, folder, args.size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print_table(rows)
    total = time.perf_counter() - start
    print(f"total {total:.0f} s")
    if args.quick and not args.out:
        return
    out = Path(args.out or ROOT / "benchmarks" / "results" / "io.json")
    meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "quick": args.quick, "rounds": rounds,
            "size": list(args.size or (QUICK if args.quick else FULL)),
            "total_s": total}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
