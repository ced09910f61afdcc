"""Compile time of the exact 1-D Gaussian kernel's two builds, each in a fresh process with an
empty numba cache.

``collapse_sim._kernels.fused.exact_run_1d`` is the kernel of the README demo's runs (the
exact path). Since 2026-12-03 its chain loop calls ``_exact_chain``, a jitted function that
runs one chain; before, the loop's body was the chain's code itself, with the inlined
ziggurat draws. numba's passes over a parallel loop (copy propagation copies the loop
body's intermediate form block by block) then ran over hundreds of blocks, and the
parallel build took twice as long to compile as the serial one.

The index of a ``prange`` loop reaches the loop's body as an unsigned integer: passed on
as it is, it would compile ``_exact_chain`` a second time, for ``uint64``. The kernel passes
``np.int64(c)``; this script reports how many versions of ``_exact_chain`` were compiled
(1 is right).

Each row is one fresh process compiling one build for the demo's argument types (nothing
runs), alternating parallel and serial for :data:`ROUNDS` rounds::

    python benchmarks/kernel_compile.py

It prints every round's seconds and the medians.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

ROUNDS = 3

SCRIPT = """
import os, sys, time
from numba import types as t
from collapse_sim._kernels import fused
A2u = t.Array(t.uint64, 2, "C")
A2 = t.Array(t.float64, 2, "C")
sig = (A2u, t.int64, t.int64, t.int64, t.int64, t.int64, t.boolean, t.float64, t.float64,
       t.int64, A2, t.float64, A2, A2)
build = getattr(fused.exact_run_1d, sys.argv[1])
start = time.perf_counter()
build.compile(sig)
chain = getattr(fused, "_exact_chain", None)
print(time.perf_counter() - start, len(chain.overloads) if chain is not None else 0)
"""


def compile_seconds(build: str) -> tuple[float, int]:
    """Seconds to compile ``build`` ("parallel" or "serial") in a fresh process with an
    empty cache, and how many versions of ``_exact_chain`` it compiled."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", SCRIPT, build], env=env,
                             capture_output=True, text=True, check=True)
    seconds, versions = out.stdout.split()
    return float(seconds), int(versions)


def main() -> None:
    times: dict[str, list[float]] = {"parallel": [], "serial": []}
    for r in range(ROUNDS):
        for build in times:
            seconds, versions = compile_seconds(build)
            times[build].append(seconds)
            print(f"round {r + 1}: {build:8s} {seconds:5.2f} s "
                  f"(_exact_chain compiled {versions}x)", flush=True)
    for build, values in times.items():
        print(f"{build:8s} median {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
