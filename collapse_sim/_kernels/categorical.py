r"""Categorical sampling and counting on the per-chain streams, jitted.

Drawing ``n`` items from a distribution with ``K`` live categories (out of ``V``)
costs :math:`O(n + V)` per chain, by one of two exact methods chosen from ``n``
and ``K`` alone (so the token path and the count path of a chain always take the
same one and make the same draws):

- **alias table** when :math:`n \le` :data:`ALIAS_FACTOR` :math:`\cdot K`: Walker's
  alias method in Vose's stable construction (IEEE TSE 17(9), 1991), built over the
  live categories in :math:`O(V)`, then one 64-bit output per item: its top 53 bits
  give :math:`u \in [0, 1)`, slot :math:`\lfloor uK \rfloor` and the fraction
  :math:`uK - \lfloor uK \rfloor` against the slot's threshold (resolution about
  :math:`2^{-53} K`, far below any sampling error). Items come out i.i.d.;
- **conditional binomials** otherwise: with :math:`S_j = \sum_{i \ge j} p_i` (tail sums,
  accumulated from the rarest end),

  .. math::

      c_j \sim \mathrm{Binomial}\Big(n - \sum_{i<j} c_i,\; p_j / S_j\Big),

  which is the multinomial law, stopping once all ``n`` items are placed: cost
  :math:`O(V)` whatever ``n`` (the exact count path's cost is flat in ``n``). Tokens
  are then the counts written out in category order and shuffled (Fisher–Yates,
  exactly uniform). Each binomial costs :math:`O(1)` expected: CDF inversion when the
  mean is below :data:`INVERSION_MAX_MEAN`, else Hörmann's transformed rejection BTRS
  ("The generation of binomial random variates", J. Stat. Comput. Simul. 46, 1993; the
  algorithm of JAX and TensorFlow) with its acceptance test on the exact log
  probability ratio through ``lgamma``.

A model fitted by counts without smoothing is the empirical distribution
:math:`c_j/k` of its training set, and drawing from it is *resampling* that set:
each item is one uniformly chosen entry of the ``k`` training items sorted by
category (Lemire's exact bounded integers, two per 64-bit output), with no floating
point at all. It is used while :math:`k \le` :data:`RESAMPLE_FACTOR`
:math:`\cdot (n + V)` and there are at most :data:`ALIAS_FACTOR` items per live
category; with more, conditional binomials on the counts themselves (exact ratios of
integers) keep the cost :math:`O(V)`. Those fits keep their counts for the live
categories only, and their kernels are in :mod:`collapse_sim._kernels.live_counts`.

The counts of a chain's tokens are the very numbers its count path draws from the
same stream position; a test asserts it.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .rng import next_double, shuffle

#: Binomial means below this use CDF inversion (cost ~ mean), above it BTRS (cost O(1)).
INVERSION_MAX_MEAN = 10.0
#: The alias method is used while ``n <= ALIAS_FACTOR * K`` (K live categories): an item
#: costs a few nanoseconds, a binomial draw about ALIAS_FACTOR times more.
ALIAS_FACTOR = 16

#: Resampling from the counts is used while the training set has at most this many times
#: ``n + V`` items (beyond, writing it out would cost more than an alias table).
RESAMPLE_FACTOR = 4

_U64 = nb.uint64
_SHIFT_53 = 1.0 / 9007199254740992.0  # 2**-53


@nb.njit
def _binomial_inversion(s, n, p):
    """Binomial(n, p) for p <= 1/2 and a small mean, by sequential CDF inversion."""
    q = 1.0 - p
    ratio = p / q
    g = ratio * (n + 1)
    start = math.exp(n * math.log1p(-p))  # P(X = 0) = q^n
    while True:
        u = next_double(s)
        f = start
        x = 0
        while u > f:
            u -= f
            x += 1
            if x > n:
                break  # rounding left mass beyond n: draw again
            f *= g / x - ratio
        if x <= n:
            return x


@nb.njit
def _binomial_btrs(s, n, p):
    """Binomial(n, p) for p <= 1/2 and n p >= 10 by transformed rejection (Hörmann 1993)."""
    q = 1.0 - p
    spq = math.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / q)
    m = math.floor((n + 1) * p)
    h = math.lgamma(m + 1.0) + math.lgamma(n - m + 1.0)
    while True:
        u = next_double(s) - 0.5
        v = next_double(s)
        us = 0.5 - abs(u)
        if us <= 0.0:
            continue
        kf = math.floor((2.0 * a / us + b) * u + c)
        if kf < 0.0 or kf > n:
            continue
        if us >= 0.07 and v <= v_r:
            return np.int64(kf)
        if v <= 0.0:
            return np.int64(kf)
        lhs = math.log(v * alpha / (a / (us * us) + b))
        if lhs <= h - math.lgamma(kf + 1.0) - math.lgamma(n - kf + 1.0) + (kf - m) * lpq:
            return np.int64(kf)


@nb.njit
def next_binomial(s, n, p):
    """One Binomial(``n``, ``p``) draw from stream ``s`` (``n >= 0``, ``0 <= p <= 1``)."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    flip = p > 0.5
    pp = 1.0 - p if flip else p
    if n * pp < INVERSION_MAX_MEAN:
        x = _binomial_inversion(s, n, pp)
    else:
        x = _binomial_btrs(s, n, pp)
    return n - x if flip else x


@chain_kernel
def fill_binomial(states, n, p, out):
    """Fill ``out[c]`` with Binomial(``n``, ``p``) draws from ``states[c]`` (for tests)."""
    for c in nb.prange(out.shape[0]):
        s = states[c]
        row = out[c]
        for i in range(row.shape[0]):
            row[i] = next_binomial(s, n, p)


# -- one chain ------------------------------------------------------------------------------

@nb.njit
def _live(p, idx):
    """Indices of the categories with p > 0 into ``idx``; returns their number K."""
    k = 0
    for j in range(p.shape[0]):
        if p[j] > 0.0:
            idx[k] = j
            k += 1
    return k


@nb.njit
def _alias_build(p, idx, k, thresh, alias, work):
    """Vose's alias table over the ``k`` live categories ``idx[:k]`` of ``p``."""
    total = 0.0
    for i in range(k):
        total += p[idx[i]]
    small = 0
    large = k  # work[:small] holds small slots, work[large:k] the large ones
    for i in range(k):
        t = p[idx[i]] * k / total
        thresh[i] = t
        alias[i] = i
        if t < 1.0:
            work[small] = i
            small += 1
        else:
            large -= 1
            work[large] = i
    while small > 0 and large < k:
        small -= 1
        lo = work[small]
        hi = work[large]
        alias[lo] = hi
        t = (thresh[hi] + thresh[lo]) - 1.0
        thresh[hi] = t
        if t < 1.0:
            large += 1
            work[small] = hi
            small += 1
    for i in range(small):  # rounding leftovers: full slots
        thresh[work[i]] = 1.0
    for i in range(large, k):
        thresh[work[i]] = 1.0


@nb.njit(inline="always")
def _xoshiro(s0, s1, s2, s3):
    """One xoshiro256++ step on register-resident state: (output, new state)."""
    result = (((s0 + s3) << _U64(23)) | ((s0 + s3) >> _U64(41))) + s0
    t = s1 << _U64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _U64(45)) | (s3 >> _U64(19))
    return result, s0, s1, s2, s3


@nb.njit
def _alias_codes(s, k, thresh, n, codes):
    """``n`` i.i.d. draws from the alias table as codes ``2 slot + taken`` into ``codes``
    (``taken``: the slot's alias was chosen); the stream's four words stay in registers.

    Item ``i``'s category is ``idx[slot]`` or ``idx[alias[slot]]`` (:func:`_alias_targets`
    tabulates both per code). Writing the codes and mapping them in a second pass is
    about three times faster than looking the categories up between the draws."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    scale = k * _SHIFT_53
    for i in range(n):
        r, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        x = np.float64(r >> _U64(11)) * scale
        slot = min(np.int64(x), k - 1)
        codes[i] = 2 * slot + (x - slot >= thresh[slot])
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3


@nb.njit
def _alias_targets(idx, alias, k, targets):
    """``targets[2 slot + taken]``: the category of each code of :func:`_alias_codes`."""
    for slot in range(k):
        targets[2 * slot] = idx[slot]
        targets[2 * slot + 1] = idx[alias[slot]]


@nb.njit(inline="always")
def _alias_items(s, k, thresh, targets, n, out):
    """``out[:n]``: ``n`` draws of :func:`_alias_codes`, each mapped to its target
    (``targets`` from :func:`_alias_targets`)."""
    _alias_codes(s, k, thresh, n, out)
    for i in range(n):
        out[i] = targets[out[i]]


@nb.njit
def _alias_draws(s, idx, k, thresh, alias, n, tokens, counts):
    """``n`` i.i.d. items from the alias table into ``tokens`` (if ``tokens.shape[0]``)
    or added to ``counts`` (:func:`_alias_items`)."""
    targets = np.empty(2 * k, dtype=np.int32)
    _alias_targets(idx, alias, k, targets)
    if tokens.shape[0] > 0:
        _alias_items(s, k, thresh, targets, n, tokens)
        return
    items = np.empty(n, dtype=np.int32)
    _alias_items(s, k, thresh, targets, n, items)
    for i in range(n):
        counts[items[i]] += 1


@nb.njit(inline="always")
def alias_counts(s, k, thresh, alias, n, codes, hist, cnt):
    """``cnt[:k]``: how many of ``n`` draws of :func:`_alias_codes` (the same outputs of
    stream ``s``) fell on each slot's own category ``r`` — slot ``r`` kept, or a slot
    whose alias is ``r`` taken — so the counts over local categories ``0..k-1`` (the
    positions in the table's ``idx``). ``codes`` (``n``) and ``hist`` (``2 k``) are
    scratch."""
    _alias_codes(s, k, thresh, n, codes)
    for i in range(2 * k):
        hist[i] = 0
    for i in range(n):
        hist[codes[i]] += 1
    for r in range(k):
        cnt[r] = hist[2 * r]
    for r in range(k):
        cnt[alias[r]] += hist[2 * r + 1]


@nb.njit(inline="always")
def _tail_sums(p, tail):
    """``tail[j]``: the sum of ``p[j:]``, accumulated from the rarest end."""
    acc = 0.0
    for j in range(p.shape[0] - 1, -1, -1):
        acc += p[j]
        tail[j] = acc


@nb.njit
def _binomial_tail_counts(s, p, n, counts, tail):
    """Multinomial counts of ``n`` items by conditional binomials (``counts`` zeroed),
    the tail sums ``tail`` of ``p`` given (:func:`_tail_sums`)."""
    left = n
    for j in range(p.shape[0]):
        if left == 0:
            break
        if p[j] <= 0.0:
            continue
        x = next_binomial(s, left, min(1.0, p[j] / tail[j]))
        counts[j] = x
        left -= x


@nb.njit
def _binomial_counts(s, p, n, counts, tail):
    """Multinomial counts of ``n`` items by conditional binomials (``counts`` zeroed;
    ``tail`` receives the tail sums)."""
    _tail_sums(p, tail)
    _binomial_tail_counts(s, p, n, counts, tail)


@nb.njit
def _shuffled_tokens(s, counts, tokens):
    """Write ``counts`` out as category ids into ``tokens`` and shuffle them (Fisher–Yates,
    exactly uniform): i.i.d. tokens with those counts. Nothing when ``tokens`` is empty."""
    if tokens.shape[0] == 0:
        return
    pos = 0
    for j in range(counts.shape[0]):
        for _ in range(counts[j]):
            tokens[pos] = j
            pos += 1
    shuffle(tokens, s)


@nb.njit
def _chain(s, p, n, tokens, counts, idx, thresh, alias, work):
    """Draw ``n`` items of one chain as tokens (``tokens`` of length n) or counts."""
    k = _live(p, idx)
    if n <= ALIAS_FACTOR * k:
        _alias_build(p, idx, k, thresh, alias, work)
        _alias_draws(s, idx, k, thresh, alias, n, tokens, counts)
        return
    _binomial_counts(s, p, n, counts, thresh)
    _shuffled_tokens(s, counts, tokens)


@chain_kernel
def categorical_draw(states, probs, n, tokens, counts):
    """Items of every chain: ``tokens`` ``(chains, n)`` int32, or, when ``tokens`` has no
    columns, ``counts`` ``(chains, V)`` int64 (zeroed). ``probs`` is ``(B, V)``, ``B`` 1
    (shared) or chains. With tokens, ``counts`` is ``(chains, V)`` scratch."""
    v = probs.shape[1]
    step = 0 if probs.shape[0] == 1 else 1  # member index c * step: shared or per chain
    for c in nb.prange(states.shape[0]):
        idx = np.empty(v, dtype=np.int64)
        alias = np.empty(v, dtype=np.int64)
        work = np.empty(v, dtype=np.int64)
        thresh = np.empty(v)
        _chain(states[c], probs[c * step], n, tokens[c], counts[c], idx, thresh, alias, work)


@chain_kernel
def count_tokens(tokens, out):
    """``out[c, v]`` (int64, zeroed) += number of ``v`` among ``tokens[c]`` (ids checked)."""
    for c in nb.prange(tokens.shape[0]):
        row = tokens[c]
        counts = out[c]
        for i in range(row.shape[0]):
            counts[row[i]] += 1


@chain_kernel
def categorical_metrics(values, offset, scale, truth, log_truth, tail, heldout, logs, out):
    """All categorical metrics of every model in one pass over its probabilities.

    The probabilities are ``(values + offset) * (1 / scale)`` (``values`` ``(B, V)``):
    the probabilities themselves with ``(0, 1)``, or a fit's counts with ``(alpha, k +
    V alpha)``, the arithmetic of :func:`smoothed_frequencies`, so both give the same bits.
    ``truth`` ``(V,)`` and its logarithm ``log_truth``; ``tail`` ``(V,)`` bool (the
    truth's rare set); ``heldout`` ``(V,)`` held-out frequencies; ``out`` ``(7, B)``:
    entropy, gini_simpson, support, tail_mass, tv, kl, nll (``inf`` where the truth or a
    held-out item has a dead category). One logarithm per live category, none when
    ``logs`` is false (entropy, kl and nll are then NaN). The total variation is summed
    as :math:`\\sum_{q_j > 0} (q_j - p_j)^+` (equal to :math:`\\tfrac12\\sum_j |p_j - q_j|`
    for two distributions): a sum of non-negative terms over the live categories only,
    which ``live_counts.live_metrics`` computes with the same bits.
    """
    inv = 1.0 / scale
    for b in nb.prange(values.shape[0]):
        q = values[b]
        ent = 0.0
        sq = 0.0
        live = 0
        tm = 0.0
        tv = 0.0
        kl = 0.0
        nll = 0.0
        for j in range(q.shape[0]):
            x = (q[j] + offset) * inv
            p = truth[j]
            if x > 0.0:
                tv += max(x - p, 0.0)
                sq += x * x
                live += 1
                if tail[j]:
                    tm += x
                if logs:
                    lx = math.log(x)
                    ent -= x * lx
                    if p > 0.0:
                        kl += p * (log_truth[j] - lx)
                    nll -= heldout[j] * lx
            elif logs:
                if p > 0.0:
                    kl = math.inf
                if heldout[j] > 0.0:
                    nll = math.inf
        out[0, b] = ent if logs else math.nan
        out[1, b] = 1.0 - sq
        out[2, b] = live
        out[3, b] = tm
        out[4, b] = tv
        out[5, b] = max(kl, 0.0) if logs else math.nan
        out[6, b] = nll if logs else math.nan


@chain_kernel
def smoothed_frequencies(counts, total, alpha, out):
    """``out[c, j] = (counts[c, j] + alpha) * (1 / (total + V alpha))``: the fit, every chain.

    (A multiplication by the reciprocal: within one rounding of the quotient, and the
    same bits as :func:`categorical_metrics` computes from the counts.)"""
    inv = 1.0 / (total + counts.shape[1] * alpha)
    for c in nb.prange(counts.shape[0]):
        row = counts[c]
        dest = out[c]
        for j in range(row.shape[0]):
            dest[j] = (row[j] + alpha) * inv


#: Extra entries at the end of a resampling table (see
#: ``live_counts._write_local_items``).
TABLE_SLACK = 4


@nb.njit(inline="always")
def power_normalise(values, offset, beta, dest):
    r"""``dest = w / sum(w)`` with :math:`w_j = (v_j + \text{offset})^\beta` (0 where the
    base is 0); ``dest`` may be ``values``. Where the largest base :math:`m` has
    :math:`m^\beta` = inf (counts above about 1200 at :math:`\beta = 100`), the bases
    are divided by :math:`m` first, so the weights stay finite (the same probabilities
    up to rounding); elsewhere they are used as they are."""
    top = 0.0
    for j in range(values.shape[0]):
        top = max(top, values[j] + offset)
    scale = not math.isfinite(top**beta)
    total = 0.0
    for j in range(values.shape[0]):
        x = values[j] + offset
        if scale:
            x = x / top
        w = x**beta if x > 0 else 0.0
        dest[j] = w
        total += w
    inv = 1.0 / total
    for j in range(values.shape[0]):
        dest[j] *= inv


@chain_kernel
def powered_rows(values, offset, beta, out):
    r"""``out[c]``: :func:`power_normalise` of ``values[c]`` — tempered probabilities from
    counts (offset :math:`\alpha`) or probabilities (offset 0). Only live entries pay for
    the power."""
    for c in nb.prange(values.shape[0]):
        power_normalise(values[c], offset, beta, out[c])


@nb.njit(inline="always")
def _top_count(q, m, top_k, top_p, total, work):
    """How many of the positive probabilities ``q[:m]`` (their sum ``total``) a ``TopK``
    (``top_k > 0``) or ``TopP`` (``top_p``) stage keeps, and the smallest kept value.

    ``TopK``: ``min(top_k, m)``. ``TopP``: the shortest prefix, in decreasing order,
    whose running sum reaches ``(top_p - 1e-12) * total``. The values are sorted in
    ``work`` (``m`` scratch) unless all ``m`` are kept."""
    keep = min(top_k, m) if top_k > 0 else m
    if keep == m and top_k > 0:
        return m, 0.0
    for r in range(m):
        work[r] = q[r]
    work[:m].sort()
    if top_k <= 0:
        running = 0.0
        for i in range(m):
            running += work[m - 1 - i]
            if running >= (top_p - 1e-12) * total:
                keep = i + 1
                break
    return keep, work[m - keep]


@nb.njit(inline="always")
def _top_flags(q, m, keep, smallest, flag):
    """``flag[r]`` 1 for the ``keep`` likeliest of ``q[:m]`` (in category order): those
    above ``smallest``, then those equal to it in category order (ties by category id);
    returns their sum, in category order."""
    above = 0
    for r in range(m):
        above += q[r] > smallest
    ties = keep - above
    mass = 0.0
    for r in range(m):
        x = q[r]
        kept = x > smallest or (x == smallest and ties > 0)
        if x == smallest and ties > 0:
            ties -= 1
        flag[r] = kept
        if kept:
            mass += x
    return mass


@nb.njit(inline="always")
def kept_mass(q, m, top_k, top_p, work, flag):
    """``flag[r]`` 1 for the entries of the positive probabilities ``q[:m]`` (in category
    order) that a ``TopK`` (``top_k > 0``) or ``TopP`` (``top_p``) stage keeps
    (:func:`_top_count`, :func:`_top_flags`; ``work`` is ``m`` scratch); returns their
    sum. All sums run in category order."""
    total = 0.0
    for r in range(m):
        total += q[r]
    keep, smallest = _top_count(q, m, top_k, top_p, total, work)
    return _top_flags(q, m, keep, smallest, flag)


@chain_kernel
def keep_top(probs, top_k, top_p, out):
    """``out[c]``: ``probs[c]`` restricted to its likeliest categories and renormalised.

    Ranked by probability, ties by category id (:func:`kept_mass`:
    a sort of the live probabilities only, none when ``TopK`` keeps them all, so a
    collapsed chain costs :math:`O(\\text{live})` beyond one pass). ``top_k > 0``: keep the
    ``top_k`` first; else keep the shortest prefix whose mass reaches ``top_p`` (within
    1e-12) of the chain's total. Sums run in category order."""
    chains, v = probs.shape
    for c in nb.prange(chains):
        live = 0
        for j in range(v):
            if probs[c, j] > 0.0:
                live += 1
        q = np.empty(live)
        work = np.empty(live)
        flag = np.empty(live, dtype=np.int64)
        i = 0
        for j in range(v):
            if probs[c, j] > 0.0:
                q[i] = probs[c, j]
                i += 1
        mass = kept_mass(q, live, top_k, top_p, work, flag)
        i = 0
        for j in range(v):
            x = probs[c, j]
            out[c, j] = 0.0
            if x > 0.0:
                if flag[i]:
                    out[c, j] = x / mass
                i += 1
