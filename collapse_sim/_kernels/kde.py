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


#: Taylor coefficients 1/i! of :func:`_exp_small` (degree 14).
_EXP_COEF = tuple(1.0 / math.factorial(i) for i in range(15))
#: Whitened squared distances beyond this over the nearest centre's are skipped in the
#: log-sum-exp: each such term is below :math:`e^{-40}` of the largest.
LSE_CUTOFF = 80.0
#: Centres on each side of a point's position in the sorted first coordinate whose
#: distances bound the nearest centre's from above (see :func:`mean_logpdf`).
WINDOW_PROBES = 8


@nb.njit(inline="always", fastmath={"contract"})
def _exp_small(x):
    r""":math:`e^x` for :math:`|x| \le 40`, vectorisable (no libm call, no branch).

    :math:`e^x = (e^{x/64})^{64}`: a degree-14 Taylor polynomial at :math:`y = x/64
    \in [-0.625, 0.625]` (truncation below :math:`e^{0.625}\,0.625^{15}/15! < 2 \cdot
    10^{-15}` relative), then six squarings, which multiply its relative error by 64:
    within :math:`10^{-13}` of ``math.exp`` over the range (a test measures it).
    """
    c = _EXP_COEF
    y = x * (1.0 / 64.0)
    p = c[14]
    p = p * y + c[13]
    p = p * y + c[12]
    p = p * y + c[11]
    p = p * y + c[10]
    p = p * y + c[9]
    p = p * y + c[8]
    p = p * y + c[7]
    p = p * y + c[6]
    p = p * y + c[5]
    p = p * y + c[4]
    p = p * y + c[3]
    p = p * y + c[2]
    p = p * y + c[1]
    p = p * y + c[0]
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@nb.njit(inline="always")
def _term(q, shift):
    """:math:`e^{-(q - s)/2}`: 0 from ``q - s >=`` :data:`LSE_CUTOFF` on, and clamped at
    :math:`e^{40}` for ``q - s <= -``:data:`LSE_CUTOFF` (the range of :func:`_exp_small`)."""
    t = q - shift
    e = _exp_small(-0.5 * min(max(t, -LSE_CUTOFF), LSE_CUTOFF))
    return e if t < LSE_CUTOFF else 0.0


@nb.njit(fastmath={"reassoc", "nsz", "contract"})
def _shifted_sum_2d(x0, x1, r0, r1, shift):
    r""":math:`\sum_j e^{-(q_j - s)/2}` with :math:`q_j = (x_0 - r_{0j})^2 + (x_1 -
    r_{1j})^2`, in one SIMD pass (the sum reassociated into lanes)."""
    acc = 0.0
    for j in range(r0.shape[0]):
        t0 = x0 - r0[j]
        t1 = x1 - r1[j]
        acc += _term(t0 * t0 + t1 * t1, shift)
    return acc


@nb.njit(fastmath={"reassoc", "nsz", "contract"})
def _shifted_sum(q, shift):
    r""":math:`\sum_j e^{-(q_j - s)/2}` over ``q``, in one SIMD pass."""
    acc = 0.0
    for j in range(q.shape[0]):
        acc += _term(q[j], shift)
    return acc


@nb.njit
def _fill_distances(x, wc, lo, hi, q):
    """``q[j - lo] = sum_a (x[a] - wc[a, j])**2`` for ``lo <= j < hi`` (``wc`` ``(d, n)``)."""
    qq = q[:hi - lo]
    qq[:] = 0.0
    for a in range(wc.shape[0]):
        xa = x[a]
        row = wc[a, lo:hi]  # a slice, not wc[a, lo + j]: only then does the loop vectorise
        for j in range(qq.shape[0]):
            t = xa - row[j]
            qq[j] += t * t
    return qq


@nb.njit
def _smallest(q):
    """``min(q)`` by four running minima (one is bound by the compare's latency)."""
    l0 = l1 = l2 = l3 = np.inf
    m = q.shape[0]
    m4 = m - m % 4
    for j in range(0, m4, 4):
        l0 = min(l0, q[j])
        l1 = min(l1, q[j + 1])
        l2 = min(l2, q[j + 2])
        l3 = min(l3, q[j + 3])
    for j in range(m4, m):
        l0 = min(l0, q[j])
    return min(min(l0, l1), min(l2, l3))


@nb.njit
def _window_sum(x, wc, lo, hi, q, shift):
    """:func:`_shifted_sum` over the centres ``lo <= j < hi`` of ``wc`` ``(d, n)``."""
    if wc.shape[0] == 2:
        return _shifted_sum_2d(x[0], x[1], wc[0, lo:hi], wc[1, lo:hi], shift)
    return _shifted_sum(_fill_distances(x, wc, lo, hi, q), shift)


#: A window sum at least this large is summed again, shifted by the exact minimum: a
#: term is clamped (at :math:`e^{40}`, :func:`_term`) only when the shift overshot the
#: nearest centre by more than :data:`LSE_CUTOFF`, and then the sum exceeds this. Sums
#: without a clamped term reach it only after an overshoot of about 50 (``n = 1000``).
RESHIFT_SUM = math.exp(38.0)


@chain_kernel(error_model="numpy")
def mean_logpdf(centres, chol, points, out):
    r"""``out[c]`` = mean over ``points`` ``(m, d)`` of
    :math:`\log \frac1n\sum_j \mathcal N(x; x_{cj}, L_cL_c^\top)`, by a log-sum-exp over the
    whitened squared distances :math:`q_j = \lVert L_c^{-1}(x - x_{cj})\rVert^2`:

    .. math::

        \log \hat p(x) = -\tfrac d2\log 2\pi - \log|L_c| - \log n - \tfrac12 U
            + \log \sum_j e^{-(q_j - U)/2},

    with a shift :math:`U` at least the smallest :math:`q_j` and within
    :data:`LSE_CUTOFF` of it (no term overflows, the largest is at least 1).

    **Window.** With the centres sorted by their first whitened coordinate
    :math:`w_{j0}`, :math:`U` is the smallest :math:`q_j` among :data:`WINDOW_PROBES`
    centres on each side of the point's :math:`w_0` in that order. Every centre with
    :math:`(w_{j0} - w_0)^2 \ge` :data:`LSE_CUTOFF` :math:`+ U` has :math:`q_j - U \ge`
    :data:`LSE_CUTOFF` (as :math:`q_j \ge (w_{j0} - w_0)^2`), a term below
    :math:`e^{-40}` of the probe's; only the centres inside are visited (about half of
    them for the two moons at bandwidth 0.1). Terms with :math:`q_j - U \ge`
    :data:`LSE_CUTOFF` are skipped (together they change the sum by less than
    :math:`n e^{-40}` relative); the others use :func:`_exp_small` (relative error below
    :math:`10^{-13}`), summed in SIMD lanes. Should the probes miss the nearest centre
    by more than the cutoff (the sum then reaches :data:`RESHIFT_SUM`), the window is summed again
    with :math:`U = q_{min}`.

    Centres must be finite (the engine checks every model first). ``-inf`` where a
    point has density 0 (a singular kernel)."""
    chains, n, d = centres.shape
    m = points.shape[0]
    for c in nb.prange(chains):
        # whiten by L^-1 (forward substitution), centres stored (d, n) for the SIMD loops
        # and sorted by their first coordinate for the windows
        raw = np.empty((d, n))
        wc = np.empty((d, n))
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
                    acc -= chol[c, a, e] * raw[e, j]
                raw[a, j] = acc / chol[c, a, a]
        order = np.argsort(raw[0])
        for a in range(d):
            for j in range(n):
                wc[a, j] = raw[a, order[j]]
        key = wc[0]
        const = -0.5 * d * math.log(2.0 * math.pi) - logdet - math.log(n)
        total = 0.0
        for i in range(m):
            for a in range(d):
                acc = points[i, a]
                for e in range(a):
                    acc -= chol[c, a, e] * wx[e]
                wx[a] = acc / chol[c, a, a]
            at = np.searchsorted(key, wx[0])
            lo = max(0, at - WINDOW_PROBES)
            hi = min(n, at + WINDOW_PROBES)
            shift = _smallest(_fill_distances(wx, wc, lo, hi, q))
            reach = math.sqrt(LSE_CUTOFF + shift) * (1.0 + 1e-12)
            lo = np.searchsorted(key, wx[0] - reach)
            hi = np.searchsorted(key, wx[0] + reach, side="right")
            acc = _window_sum(wx, wc, lo, hi, q, shift)
            if acc >= RESHIFT_SUM:  # the probes may have missed the nearest by far
                shift = _smallest(_fill_distances(wx, wc, lo, hi, q))
                acc = _window_sum(wx, wc, lo, hi, q, shift)
            total += const - 0.5 * shift + math.log(acc)
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
