"""Peak working memory of ``simulate`` beyond the metric array it returns.

Usage (from the repository root)::

    python benchmarks/memory.py [--quick] [--out DIR]
    python -m benchmarks.memory [--quick] [--out DIR]

For a Gaussian truth refitted by maximum likelihood (variance metric only) it runs
``simulate`` under :mod:`tracemalloc` with ``sampling="explicit"`` and
``sampling="exact"`` at 1000 chains, ``n`` in (100, 1000), ``G`` in (100, 1000,
4000) and dimension ``d`` in (1, 3), and reports the traced peak minus the bytes of
the returned ``(G + 1, chains)`` metric array. tracemalloc sees every numpy array
(and Python object); the jitted kernels fill arrays allocated by the caller, so the
figures cover the simulation's working set.

Expected: explicit ~ ``chains x n x d x 8`` bytes (one generation's points), exact
~ ``chains x d^2`` in d dimensions and, in 1-D, a bounded block of
``families.gaussian.FUSED_BLOCK_ELEMENTS`` chain-generations; neither grows with ``G``.

The explicit runs that would draw more than ``EXPLICIT_MAX_DRAWS`` normals are
skipped (they would take minutes; their working set is the same at every
generation, which the smaller ``G`` already show). Writes ``memory.json``
(default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python benchmarks/memory.py``
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import collapse_sim as cs  # noqa: E402
from collapse_sim.families import gaussian  # noqa: E402

CHAINS = 1000
N_SAMPLES = (100, 1000)
GENERATIONS = (100, 1000, 4000)
DIMS = (1, 3)
#: Explicit runs drawing more normals (chains x n x G x d) than this are skipped.
EXPLICIT_MAX_DRAWS = 1_500_000_000
QUICK = {"chains": 200, "n_samples": (50, 500), "generations": (20, 200), "dims": (1, 3),
         "max_draws": 20_000_000}


def truth(d: int) -> cs.Gaussian:
    if d == 1:
        return cs.Gaussian(mean=0.0, var=1.0)
    return cs.Gaussian(mean=np.zeros(d), cov=np.eye(d))


def peak_extra(d: int, chains: int, n: int, generations: int, sampling: str) -> dict:
    """Traced peak during ``simulate`` minus the returned metric array, and the wall time."""
    model, fitter = truth(d), cs.GaussianFit()
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    sim = cs.simulate(model, fitter, n_samples=n, generations=generations, chains=chains,
                      metrics="variance", seed=0, progress=False, sampling=sampling)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    metric_bytes = sum(a.nbytes for a in sim.metrics.values())
    return {"peak_bytes": peak - before, "metric_bytes": metric_bytes,
            "extra_bytes": peak - before - metric_bytes, "seconds": seconds}


def warm_up() -> None:
    """Compile (or load from the cache) every path outside the traced region."""
    for d in DIMS:
        for sampling in ("explicit", "exact"):
            for chains in (4, 40_000):
                cs.simulate(truth(d), cs.GaussianFit(), n_samples=10, generations=2,
                            chains=chains, metrics="variance", seed=0, progress=False,
                            sampling=sampling)


def run(quick: bool) -> tuple[list[dict], dict]:
    if quick:
        chains, ns, gens, dims, cap = (QUICK["chains"], QUICK["n_samples"],
                                       QUICK["generations"], QUICK["dims"], QUICK["max_draws"])
    else:
        chains, ns, gens, dims, cap = CHAINS, N_SAMPLES, GENERATIONS, DIMS, EXPLICIT_MAX_DRAWS
    rows = []
    for sampling in ("explicit", "exact"):
        for d in dims:
            for n in ns:
                for g in gens:
                    row = {"sampling": sampling, "d": d, "chains": chains, "n_samples": n,
                           "generations": g}
                    if sampling == "explicit" and chains * n * g * d > cap:
                        rows.append({**row, "skipped": f"more than {cap:.2g} draws"})
                        continue
                    rows.append({**row, **peak_extra(d, chains, n, g, sampling)})
    spec = {"chains": chains, "n_samples": list(ns), "generations": list(gens),
            "dims": list(dims), "explicit_max_draws": cap,
            "fused_block_elements": gaussian.FUSED_BLOCK_ELEMENTS}
    return rows, spec


def model_bytes(r: dict) -> tuple[float, str]:
    """The working set each path should scale with, and its name for the table."""
    if r["sampling"] == "explicit":
        return r["chains"] * r["n_samples"] * r["d"] * 8, "chains*n*d*8 B"
    if r["d"] == 1:
        return gaussian.FUSED_BLOCK_ELEMENTS * 8, "block 2^16*8 B"
    return r["chains"] * r["d"] ** 2 * 8, "chains*d^2*8 B"


def print_table(rows: list[dict]) -> None:
    mb = 2.0**20
    print(f"{'sampling':<9} {'d':>2} {'n':>5} {'G':>5} {'extra MiB':>10} {'B/chain':>8} "
          f"{'metric MiB':>11} {'extra / expected scale':>27} {'s':>6}")
    for r in rows:
        head = f"{r['sampling']:<9} {r['d']:>2} {r['n_samples']:>5} {r['generations']:>5}"
        if "skipped" in r:
            print(f"{head}   skipped ({r['skipped']})")
            continue
        scale, name = model_bytes(r)
        ratio = f"{r['extra_bytes'] / scale:.2f} x {name}"
        print(f"{head} {r['extra_bytes'] / mb:>10.3f} {r['extra_bytes'] / r['chains']:>8.0f} "
              f"{r['metric_bytes'] / mb:>11.3f} {ratio:>27} {r['seconds']:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/memory.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                        help="output directory (default benchmarks/results/)")
    args = parser.parse_args()
    wall = time.perf_counter()
    warm_up()
    rows, spec = run(args.quick)
    print_table(rows)
    meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "quick": args.quick,
            "measure": "tracemalloc peak during simulate minus the returned metric arrays"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps({"meta": meta, **spec, "rows": rows}, indent=2))
    print(f"\ntotal {time.perf_counter() - wall:.1f} s; wrote {out / 'memory.json'}")


if __name__ == "__main__":
    main()
