"""Small dense linear algebra on batches of d x d matrices, jitted."""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel


@nb.njit
def cholesky_psd_one(a, out):
    """Lower factor ``L`` (into ``out``) with ``L L^T = a`` for one positive semi-definite
    ``d x d`` matrix; see :func:`psd_cholesky` for the treatment of rank deficiency."""
    d = a.shape[0]
    scale = 0.0
    for i in range(d):
        scale = max(scale, a[i, i])
    tol = 1e-14 * scale
    for j in range(d):
        for i in range(d):
            out[i, j] = 0.0
    for j in range(d):
        acc = a[j, j]
        for k in range(j):
            acc -= out[j, k] * out[j, k]
        if acc <= tol:
            continue  # column j stays zero
        ljj = math.sqrt(acc)
        out[j, j] = ljj
        for i in range(j + 1, d):
            acc2 = a[i, j]
            for k in range(j):
                acc2 -= out[i, k] * out[j, k]
            out[i, j] = acc2 / ljj


@chain_kernel
def psd_cholesky(cov, out):
    """Lower factor ``L`` with ``L L^T = cov[c]`` for positive semi-definite ``cov[c]``.

    A pivot at or below ``1e-14`` times the largest diagonal entry (rounding level
    for a matrix that is singular in exact arithmetic) zeroes its column instead
    of failing, so a collapsed, rank-deficient covariance still factors and
    samples exactly on its support.
    """
    for c in nb.prange(cov.shape[0]):
        cholesky_psd_one(cov[c], out[c])


@chain_kernel
def affine_points(mean, chol, z, out):
    """``out[c, i] = mean[c] + chol[c] @ z[c, i]`` for every chain and point."""
    chains, k, d = z.shape
    for c in nb.prange(chains):
        m = mean[c]
        L = chol[c]
        for i in range(k):
            for a in range(d):
                acc = m[a]
                for b in range(a + 1):
                    acc += L[a, b] * z[c, i, b]
                out[c, i, a] = acc


def empty_like_batch(chains: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Uninitialised ``(chains, d)`` and ``(chains, d, d)`` float64 buffers."""
    return np.empty((chains, d)), np.empty((chains, d, d))
