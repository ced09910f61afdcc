"""Per-chain sample moments (count, mean, centred scatter), jitted.

The scatter is computed in two passes (mean first, then sum of centred outer
products), which keeps it exact to rounding when the points are nearly equal:
the regime a collapsing chain lives in.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .rng import _fill_normal_row, next_below, next_chisquare, next_normal


@nb.njit(inline="always")
def _row_moments(x, mean, m2):
    """Mean ``(d,)`` and centred scatter ``(d, d)`` of the points ``x`` ``(k, d)``."""
    k, d = x.shape
    for j in range(d):
        acc = 0.0
        for i in range(k):
            acc += x[i, j]
        mean[j] = acc / k
    for a in range(d):
        for b in range(a, d):
            acc = 0.0
            ma = mean[a]
            mb = mean[b]
            for i in range(k):
                acc += (x[i, a] - ma) * (x[i, b] - mb)
            m2[a, b] = acc
            m2[b, a] = acc


@nb.njit(inline="always")
def _row_moments_1d(x, mean, m2):
    k = x.shape[0]
    acc = 0.0
    for i in range(k):
        acc += x[i, 0]
    mu = acc / k
    acc = 0.0
    for i in range(k):
        dev = x[i, 0] - mu
        acc += dev * dev
    mean[0] = mu
    m2[0, 0] = acc


@chain_kernel
def moments(x, mean, m2):
    """Fill ``mean[c]`` and ``m2[c]`` with the moments of ``x[c]`` ``(k, d)`` for every chain."""
    chains = x.shape[0]
    if x.shape[2] == 1:
        for c in nb.prange(chains):
            _row_moments_1d(x[c], mean[c], m2[c])
    else:
        for c in nb.prange(chains):
            _row_moments(x[c], mean[c], m2[c])


@chain_kernel
def normal_moments(states, buf, mean, m2):
    """Draw ``buf[c]`` ``(k, d)`` standard normals from ``states[c]`` and take their moments."""
    chains = buf.shape[0]
    d = buf.shape[2]
    flat = buf.reshape(chains, -1)
    for c in nb.prange(chains):
        _fill_normal_row(states[c], flat[c])
        if d == 1:
            _row_moments_1d(buf[c], mean[c], m2[c])
        else:
            _row_moments(buf[c], mean[c], m2[c])


@chain_kernel
def subsample_rows(states, pool, size, k, out):
    """Copy ``k`` rows drawn without replacement from ``pool[c, :size]`` into ``out[c]``.

    Robert Floyd's algorithm (Bentley & Floyd, CACM 30(9), 1987): every
    ``k``-subset is equally likely, with ``k`` draws and an open-addressing set of
    the chosen indices, so the cost is O(k) whatever the pool size.
    """
    chains = pool.shape[0]
    tsize = 1
    while tsize < 2 * k:
        tsize *= 2
    for c in nb.prange(chains):
        s = states[c]
        table = np.full(tsize, -1, dtype=np.int64)
        filled = 0
        for j in range(size - k, size):
            r = next_below(s, j + 1)
            pick = j if _contains(table, r) else r
            _insert(table, pick)
            out[c, filled, :] = pool[c, pick, :]
            filled += 1


@nb.njit(inline="always")
def _slot(table, value):
    mask = table.shape[0] - 1
    h = (value * 0x9E3779B1) & mask
    while table[h] != -1 and table[h] != value:
        h = (h + 1) & mask
    return h


@nb.njit(inline="always")
def _contains(table, value):
    return table[_slot(table, value)] == value


@nb.njit(inline="always")
def _insert(table, value):
    table[_slot(table, value)] = value


@chain_kernel
def exact_normal_moments(states, k, mean, m2):
    r"""Moments of ``k`` standard normal points in ``d`` dims, drawn without the points.

    For ``k`` i.i.d. :math:`\mathcal N(0, I_d)` points the sample mean and the centred
    scatter are independent, :math:`\bar z \sim \mathcal N(0, I/k)` and
    :math:`M \sim \mathrm{Wishart}_d(k - 1, I)`. The Wishart matrix is drawn by the
    Bartlett decomposition: :math:`M = AA^\top` with :math:`A` lower triangular,
    :math:`A_{ii}^2 \sim \chi^2_{k-i}` (``i = 1..d``) and :math:`A_{ij} \sim \mathcal N(0, 1)`
    below the diagonal. Cost per chain: ``d + d(d-1)/2`` normals and ``d`` chi-squares,
    whatever ``k``. When ``k - 1 < d`` the Wishart matrix is singular of rank ``k - 1``
    (``k`` points span ``k - 1`` dimensions): only the first ``k - 1`` columns of
    :math:`A` are drawn, the rest are 0.
    """
    chains, d = mean.shape
    scale = 1.0 / math.sqrt(k)
    for c in nb.prange(chains):
        s = states[c]
        a = np.zeros((d, d))
        for i in range(d):
            mean[c, i] = next_normal(s) * scale
        for i in range(d):
            df = k - 1 - i
            a[i, i] = math.sqrt(next_chisquare(s, df)) if df > 0 else 0.0
            for j in range(min(i, k - 1)):  # rank k - 1 < d: columns j >= k - 1 vanish
                a[i, j] = next_normal(s)
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for t in range(j + 1):
                    acc += a[i, t] * a[j, t]
                m2[c, i, j] = acc
                m2[c, j, i] = acc
