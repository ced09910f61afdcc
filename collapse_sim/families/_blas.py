"""BLAS/LAPACK on one thread, for batches of small matrices."""

from __future__ import annotations

import itertools

import numpy as np

_CONTROLLER: list = []


def one_thread():
    """Context in which BLAS/LAPACK run on one thread (threadpoolctl, a scikit-learn
    dependency).

    Batched products and eigen-decompositions of many small matrices (``d x d`` per chain)
    gain nothing from OpenBLAS's threads, which spin up for each matrix: on a shared
    2-core machine a batch of 100 ``64 x 64`` ``eigh`` took 0.3 s with them and 0.03 s
    without. Entering costs about 10 microseconds.
    """
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


#: Batches of at least this many matrices are split over threads by :func:`eigh`.
EIGH_SPLIT_MIN = 16
_POOL: list = []


def eigh(a):
    """``numpy.linalg.eigh`` of a batch ``(B, d, d)``, BLAS/LAPACK on one thread, the batch
    split into contiguous parts decomposed in parallel threads (numpy releases the GIL in
    its LAPACK loops), as many as numba's thread count (``numba.set_num_threads``), or
    one while other processes keep the cores busy (as the chain kernels decide,
    ``collapse_sim._kernels._dispatch``).

    Each matrix goes through the same LAPACK call whatever the split, so the results are
    the same bits as one ``eigh`` of the whole batch (a test asserts it).
    """
    import numba

    from .._kernels import _dispatch

    threads = min(numba.get_num_threads(), max(1, a.shape[0] // (EIGH_SPLIT_MIN // 2)))
    if threads > 1 and _dispatch._LOAD.others_busy():  # cores taken: one thread (see there)
        threads = 1
    with one_thread():
        if a.ndim != 3 or threads < 2 or a.shape[0] < EIGH_SPLIT_MIN:
            return np.linalg.eigh(a)
        if not _POOL:
            from concurrent.futures import ThreadPoolExecutor

            _POOL.append(ThreadPoolExecutor(max_workers=8, thread_name_prefix="collapse_sim"))
        bounds = np.linspace(0, a.shape[0], threads + 1).astype(int)
        parts = [_POOL[0].submit(np.linalg.eigh, a[lo:hi])
                 for lo, hi in itertools.pairwise(bounds[1:])]
        first = np.linalg.eigh(a[bounds[0]:bounds[1]])
        results = [first] + [p.result() for p in parts]
    return (np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results]))
