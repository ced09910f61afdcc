"""Numba-jitted internals of collapse_sim (private).

Kernels never own a random generator: every random draw comes from per-chain
xoshiro256++ states passed in as a ``(chains, 4)`` ``uint64`` array, advanced in
place. Chain ``c`` only ever touches row ``c``, so a ``prange`` over chains gives
bit-identical results whatever the thread count. Public, validated wrappers live
in :mod:`collapse_sim.sampling`, :mod:`collapse_sim.fitting` and
:mod:`collapse_sim.metrics`.
"""

import os
import sys


def _prefer_passive_wait() -> None:
    """Make numba's OpenMP workers sleep, not spin, between parallel regions.

    libgomp's default (``OMP_WAIT_POLICY`` unset) has each worker spin for about
    300,000 iterations after a region ends. On a machine whose cores are shared with
    other processes, a spinning worker takes the core a descheduled one needs, and the
    next region's barrier waits for it. Measured on 2 cores with one CPU-bound background
    process (explicit Gaussian path, 1000 chains, n = 100, 100 generations, fresh
    processes): 2 threads took 0.75x the speed of 1 thread with libgomp's default, 0.98x
    with passive waiting (``GOMP_SPINCOUNT`` of 3,000 and 30,000: 0.87x and 0.52x). The
    price on an idle machine is a futex wake per region: 2 threads ran 1.17x one thread
    instead of 1.30x on that path (paths with one region per block of generations lose
    nothing measurable). Re-measure: ``python -m benchmarks.bench_threads``.

    Applied only when the user has set neither ``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT``
    and numba's threading layer has not started yet (libgomp reads the variable once,
    when it loads); the variable is inherited by child processes (sweep workers).
    """
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and getattr(parallel, "_is_initialized", False):
        return
    os.environ["OMP_WAIT_POLICY"] = "passive"


_prefer_passive_wait()
