"""Run every benchmark, print a table and write ``benchmarks/results/latest.json``.

Usage: ``python -m benchmarks [--quick] [--repeats R]``. Ratios are baseline time
over our time, measured in the same run (best of ``R`` repeats each), so they
survive a noisy shared machine better than absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numba

from . import (
    bench_categorical,
    bench_compile,
    bench_gaussian,
    bench_import,
    bench_jax,
    bench_kde,
    bench_mixture,
    bench_ngram,
    bench_normals,
    bench_ppca,
    bench_sgd,
    bench_stages,
    bench_sweep,
    bench_threads,
)
from ._report import print_rows

SUITES = {
    "gaussian": bench_gaussian,
    "mixture": bench_mixture,
    "jax": bench_jax,
    "sgd": bench_sgd,
    "categorical": bench_categorical,
    "ngram": bench_ngram,
    "normals": bench_normals,
    "kde": bench_kde,
    "ppca": bench_ppca,
    "stages": bench_stages,
    "compile": bench_compile,
    "import": bench_import,
    "sweep": bench_sweep,
    "threads": bench_threads,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "latest.json"))
    args = parser.parse_args()
    rows = []
    for name, suite in SUITES.items():
        for row in suite.run(repeats=args.repeats, quick=args.quick):
            rows.append({"suite": name, **row})
    print(f"{'case':<58} {'ours s':>8} {'base s':>8} {'ratio':>7} {'goal':>6}")
    print_rows(rows)
    meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.machine(),
            "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "python": platform.python_version(), "quick": args.quick}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
