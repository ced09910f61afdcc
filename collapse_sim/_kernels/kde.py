r"""Kernel density estimates: draws, held-out log-density and ancestry, chain-parallel.

A Gaussian KDE of chain ``c`` is the equal-weight mixture of
:math:`\mathcal N(x_{cj}, H_c)`, :math:`j < n`, with :math:`H_c = L_c L_c^\top`.
Private: the validated entry points are in :mod:`collapse_sim.families.kde`.
Every loop keeps the chain's xoshiro256++ state in four local words, loaded once
and written back once.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .categorical import _xoshiro
from .local import normal as _normal
from .rng import _SHIFT_53, _U64


@nb.njit(inline="always")
def _draw_2d(s0, s1, s2, s3, centres, chol, ids, out, parents, stats):
    """:func:`draw` of one chain in two dimensions, the same arithmetic in the same order
    (so the same bits) with the Cholesky factor, the first centre and the sums in scalars."""
    k = out.shape[0]
    n = centres.shape[0]
    l00, l10, l11 = chol[0, 0], chol[1, 0], chol[1, 1]
    f0, f1 = centres[0, 0], centres[0, 1]
    t0 = 0.0
    t1 = 0.0
    square = 0.0
    for i in range(k):
        r, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        j = min(np.int64(np.float64(r >> _U64(11)) * _SHIFT_53 * n), n - 1)
        z0, s0, s1, s2, s3 = _normal(s0, s1, s2, s3)
        z1, s0, s1, s2, s3 = _normal(s0, s1, s2, s3)
        x0 = centres[j, 0] + l00 * z0
        x1 = centres[j, 1] + l10 * z0
        x1 += l11 * z1
        out[i, 0] = x0
        out[i, 1] = x1
        dev0 = x0 - f0
        t0 += dev0
        square += dev0 * dev0
        dev1 = x1 - f1
        t1 += dev1
        square += dev1 * dev1
        parents[i] = ids[j]
    if k > 0:
        shift0 = t0 / k
        shift1 = t1 / k
        stats[0] = f0 + shift0
        stats[1] = f1 + shift1
        stats[2] = square / k - (shift0 * shift0 + shift1 * shift1)
    else:
        stats[0] = f0 + 0.0
        stats[1] = f1 + 0.0
        stats[2] = 0.0
    return s0, s1, s2, s3


@chain_kernel
def draw(states, centres, chol, ids, out, parents, stats):
    """``out[c, i] = centres[c, j] + chol[c] z`` with ``j`` uniform on the ``n`` centres and
    ``z`` standard normal; ``parents[c, i] = ids[c, j]``. Batch 1 or ``chains``.

    ``stats[c, :d]`` receives the mean of chain ``c``'s draws and ``stats[c, d]`` their
    total variance (divisor ``k``), accumulated about the chain's first centre (so no
    large sums cancel): the statistics the next KDE needs, without another pass."""
    chains, k, d = out.shape
    n = centres.shape[1]
    batch = centres.shape[0]
    for c in nb.prange(chains):
        b = np.int64(c) if batch > 1 else np.int64(0)
        st = states[c]
        s0 = st[0]
        s1 = st[1]
        s2 = st[2]
        s3 = st[3]
        if d == 2:  # the common case (two moons, blobs): everything in registers
            s0, s1, s2, s3 = _draw_2d(s0, s1, s2, s3, centres[b], chol[b], ids[b], out[c],
                                      parents[c], stats[c])
            st[0] = s0
            st[1] = s1
            st[2] = s2
            st[3] = s3
            continue
        z = np.empty(d)
        total = np.zeros(d)
        square = 0.0
        for i in range(k):
            r, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
            j = min(np.int64(np.float64(r >> _U64(11)) * _SHIFT_53 * n), n - 1)
            for a in range(d):
                z[a], s0, s1, s2, s3 = _normal(s0, s1, s2, s3)
            for a in range(d):
                acc = centres[b, j, a]
                for e in range(a + 1):
                    acc += chol[b, a, e] * z[e]
                out[c, i, a] = acc
                dev = acc - centres[b, 0, a]
                total[a] += dev
                square += dev * dev
            parents[c, i] = ids[b, j]
        st[0] = s0
        st[1] = s1
        st[2] = s2
        st[3] = s3
        spread = 0.0
        for a in range(d):
            shift = total[a] / k if k > 0 else 0.0
            stats[c, a] = centres[b, 0, a] + shift
            spread += shift * shift
        stats[c, d] = square / k - spread if k > 0 else 0.0


@chain_kernel(error_model="numpy")
def mean_logpdf(centres, chol, points, out):
    r"""``out[c]`` = mean over ``points`` ``(m, d)`` of
    :math:`\log \frac1n\sum_j \mathcal N(x; x_{cj}, L_cL_c^\top)`, by a log-sum-exp over the
    whitened squared distances (terms below :math:`e^{-40}` of the largest are skipped:
    they change the sum by less than :math:`n e^{-40}` relative). ``-inf`` where a
    point has density 0 (a singular kernel)."""
    chains, n, d = centres.shape
    m = points.shape[0]
    for c in nb.prange(chains):
        # whiten by L^-1 (forward substitution): q = ||L^-1 (x - x_j)||^2
        wc = np.empty((n, d))
        wx = np.empty(d)
        q = np.empty(n)
        logdet = 0.0
        singular = False
        for a in range(d):
            if not chol[c, a, a] > 0.0:
                singular = True
            logdet += math.log(chol[c, a, a]) if chol[c, a, a] > 0.0 else 0.0
        if singular:
            out[c] = -np.inf
            continue
        for j in range(n):
            for a in range(d):
                acc = centres[c, j, a]
                for e in range(a):
                    acc -= chol[c, a, e] * wc[j, e]
                wc[j, a] = acc / chol[c, a, a]
        const = -0.5 * d * math.log(2.0 * math.pi) - logdet - math.log(n)
        total = 0.0
        for i in range(m):
            for a in range(d):
                acc = points[i, a]
                for e in range(a):
                    acc -= chol[c, a, e] * wx[e]
                wx[a] = acc / chol[c, a, a]
            qmin = np.inf
            for j in range(n):
                s = 0.0
                for a in range(d):
                    t = wx[a] - wc[j, a]
                    s += t * t
                q[j] = s
                if s < qmin:
                    qmin = s
            acc = 0.0
            for j in range(n):
                t = q[j] - qmin
                if t < 80.0:
                    acc += math.exp(-0.5 * t)
            total += const - 0.5 * qmin + math.log(acc)
        out[c] = total / m


@nb.njit(inline="always")
def _row_hash(bits, c, i, d, mask):
    h = np.uint64(0x9E3779B97F4A7C15)
    for a in range(d):
        h = (h ^ bits[c, i, a]) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return np.int64(h & np.uint64(mask))


@nb.njit(inline="always")
def _insert_rows(bits, c, ids, table, mask, offset):
    d = bits.shape[2]
    for j in range(bits.shape[1]):
        slot = _row_hash(bits, c, j, d, mask)
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = offset + j


@chain_kernel
def resolve_ids(data, first, first_ids, second, second_ids, fresh, out):
    """``out[c, i]``: the id of the source row equal bit for bit to ``data[c, i]``, or
    ``fresh`` when none is. Sources: the rows of ``first`` ``(chains, m1, d)`` then of
    ``second`` ``(chains, m2, d)``, with their ids; every array of rows holds uint64 bit
    patterns. Per chain, one open-addressing hash table of the sources:
    :math:`O(m_1 + m_2 + k)` time."""
    chains, k, d = data.shape
    m1 = first.shape[1]
    m = m1 + second.shape[1]
    size = 1
    while size < 2 * m + 2:
        size *= 2
    mask = size - 1
    for c in nb.prange(chains):
        table = np.full(size, -1, dtype=np.int64)
        _insert_rows(first, c, first_ids, table, mask, 0)
        _insert_rows(second, c, second_ids, table, mask, m1)
        for i in range(k):
            slot = _row_hash(data, c, i, d, mask)
            found = fresh
            while table[slot] >= 0:
                j = table[slot]
                src = first if j < m1 else second
                jj = j if j < m1 else j - m1
                same = True
                for a in range(d):
                    if data[c, i, a] != src[c, jj, a]:
                        same = False
                        break
                if same:
                    found = first_ids[c, jj] if j < m1 else second_ids[c, jj]
                    break
                slot = (slot + 1) & mask
            out[c, i] = found


@chain_kernel
def row_means(centres, out):
    """``out[c, a]``: mean of ``centres[c, :, a]``, summed in row order then divided by ``n``.

    For ``d >= 2`` this is the order numpy's ``centres.mean(axis=1)`` adds in (the reduced
    axis is not the contiguous one, so no pairwise summation), hence the same bits; for
    ``d = 1`` numpy sums pairwise, and callers use numpy there."""
    chains, n, d = centres.shape
    for c in nb.prange(chains):
        for a in range(d):
            out[c, a] = 0.0
        for j in range(n):
            for a in range(d):
                out[c, a] += centres[c, j, a]
        for a in range(d):
            out[c, a] = out[c, a] / n


@chain_kernel
def gather_rows(rows, index, out):
    """``out[c, i] = rows[index[c, i]]``: the rows a chain drew (``index`` checked by the
    caller to lie in ``[0, len(rows))``)."""
    chains, k = index.shape
    d = rows.shape[1]
    for c in nb.prange(chains):
        for i in range(k):
            r = index[c, i]
            for a in range(d):
                out[c, i, a] = rows[r, a]


@chain_kernel
def total_variance(centres, mean, out):
    """``out[c]``: total variance (divisor ``n``) of the rows ``centres[c]`` about ``mean[c]``."""
    chains, n, d = centres.shape
    for c in nb.prange(chains):
        acc = 0.0
        for j in range(n):
            for a in range(d):
                t = centres[c, j, a] - mean[c, a]
                acc += t * t
        out[c] = acc / n


@chain_kernel
def count_distinct(ids, limit, out):
    """``out[c]``: number of distinct values ``v`` with ``0 <= v < limit`` in ``ids[c]``."""
    chains, n = ids.shape
    for c in nb.prange(chains):
        seen = np.zeros(limit, dtype=np.bool_)
        count = 0
        for i in range(n):
            v = ids[c, i]
            if 0 <= v < limit and not seen[v]:
                seen[v] = True
                count += 1
        out[c] = count
