"""BLAS/LAPACK on one thread, for batches of small matrices."""

from __future__ import annotations

import itertools

import numpy as np


def one_thread():
    """Context in which BLAS/LAPACK run on one thread: the chain kernels' own
    (``collapse_sim._kernels._dispatch.one_blas_thread``, imported on first use so that
    importing a family loads no numba)."""
    from .._kernels._dispatch import one_blas_thread

    return one_blas_thread()


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
