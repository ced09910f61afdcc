"""Nanoseconds per point of one EM iteration: the blocked forms against the one-loop forms.

The library's EM iterations (``collapse_sim._kernels.em``) visit the points in blocks of
64, three loops per block (log-joints, the C library's ``exp`` alone, the sums). The
one-loop forms they replaced are kept in ``tests/test_mixture_fit.py`` as the references
the blocked forms must equal bit for bit; this script times both on the same data (1000
standard-normal points, fixed parameters, 200 iterations, best of 5) on one thread::

    python benchmarks/em_iteration.py

Cases: two components in 2-D (``_em_iteration_2d_full_k2`` against ``_k2_one_loop``), three
and four in 2-D (``_em_iteration_2d_full`` against ``_2d_full_one_loop``), two
components in 1-D (``_em_iteration_1d_k2`` against the general one-loop form, which 1-D
two-component fits ran before), and the general iteration for a few ``d``, ``K`` and
covariance types. The references allocate their own sums, the library's general iteration
takes them from its caller (which, measured separately, makes no difference).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numba as nb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_mixture_fit as ref  # noqa: E402  (the one-loop references)

from collapse_sim._kernels import em  # noqa: E402

POINTS, ITERATIONS, BEST_OF = 1000, 200, 5


@nb.njit
def _repeat(f, reps, w, m, c, before, after):
    """``reps`` iterations of ``f(*before, w, m, c, *after)`` from fresh copies of the
    parameters (every iteration starts from the same state)."""
    total = 0.0
    for _ in range(reps):
        total += f(*before, w.copy(), m.copy(), c.copy(), *after)
    return total


def _ns_per_point(f, before, w, m, c, after) -> float:
    """One-thread nanoseconds per point of the iteration ``f(*before, w, m, c, *after)``."""
    _repeat(f, 1, w, m, c, before, after)  # compile
    best = np.inf
    for _ in range(BEST_OF):
        start = time.perf_counter()
        _repeat(f, ITERATIONS, w, m, c, before, after)
        best = min(best, time.perf_counter() - start)
    return best / ITERATIONS / POINTS * 1e9


def _problem(rng, d, k_count):
    x = rng.standard_normal((POINTS, d))
    w = np.full(k_count, 1.0 / k_count)
    m = rng.standard_normal((k_count, d)) * 0.5
    c = np.stack([np.eye(d) * (0.5 + 0.3 * k) for k in range(k_count)])
    return x, w, m, c, np.linalg.cholesky(c)


def main() -> None:
    nb.set_num_threads(1)
    rng = np.random.default_rng(0)
    block = np.empty((3, em.BLOCK))
    x, w, m, c, chol = _problem(rng, 2, 2)
    one = _ns_per_point(ref._k2_one_loop, (x, 1e-6), w, m, c, (chol,))
    blocked = _ns_per_point(em._em_iteration_2d_full_k2, (x, 1e-6), w, m, c, (chol, block))
    print(f"2-D, K=2, full: one loop {one:.1f} ns/point, blocked {blocked:.1f} ns/point")
    for k_count in (3, 4):
        x, w, m, c, chol = _problem(rng, 2, k_count)
        one = _ns_per_point(ref._2d_full_one_loop, (x, 1e-6), w, m, c, (chol,))
        blocked = _ns_per_point(em._em_iteration_2d_full, (x, 1e-6), w, m, c,
                                (chol, np.empty((em.BLOCK, k_count)), np.empty((2, em.BLOCK))))
        print(f"2-D, K={k_count}, full: one loop {one:.1f} ns/point, blocked {blocked:.1f} "
              "ns/point")
    for d, k_count, cov_type in ((1, 2, 0), (1, 3, 0), (2, 3, 0), (3, 2, 0), (3, 3, 1)):
        x, w, m, c, chol = _problem(rng, d, k_count)
        scratch = (np.empty((k_count, d)), np.empty(k_count), np.empty((k_count, d)),
                   np.empty((k_count, d, d)), np.empty((em.BLOCK, k_count)),
                   np.empty((2, em.BLOCK)))
        one = _ns_per_point(ref._general_one_loop, (x, cov_type, 1e-6), w, m, c, (chol,))
        blocked = _ns_per_point(em._em_iteration, (x, cov_type, 1e-6), w, m, c,
                                (chol, *scratch))
        line = (f"d={d}, K={k_count}, cov_type={cov_type}: general one loop {one:.1f}, "
                f"blocked {blocked:.1f}")
        if d == 1 and k_count == 2:
            special = _ns_per_point(em._em_iteration_1d_k2, (x, 1e-6), w, m, c, (chol, block))
            line += f", 1-D two-component iteration {special:.1f}"
        print(line + " ns/point")

if __name__ == "__main__":
    main()
