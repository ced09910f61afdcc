"""BLAS/LAPACK on one thread, for batches of small matrices."""

from __future__ import annotations

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
