r"""Category counts kept for the live categories only, jitted.

A maximum-likelihood categorical fit gives probability 0 to every category its
training set missed, and those never come back: after a few Wright–Fisher steps most
of a vocabulary is dead. So a batch of fitted counts is kept *live* — per member
only the categories with a positive count, in increasing order — as flat arrays with
a start per member:

=========== ================ ===================================================
array       length           meaning
=========== ================ ===================================================
``off``     members (+ 1)    member ``m``'s entries start at ``off[m]``
``live``    members          :math:`L_m`: its entries (the live categories)
``ids``     entries          category of each entry, increasing within a member
``vals``    entries          its count :math:`c_j > 0` (int32)
=========== ================ ===================================================

Members' entries never overlap and need not be in member order. The kernels that
produce counts write the chains of a block of :data:`CHAIN_BLOCK` one after the other
from the block's start (``region[q]``), with room fixed before the draws (a sample of
:math:`n` items from :math:`L` live categories has at most :math:`\min(n, L)`) plus
one spare entry per block for the branch-free compaction; so the memory they touch is
the live entries only.

Drawing ``n`` items from the empirical distribution :math:`c_j / k` of a member and
counting them costs :math:`O(k + n + L)` and touches only arrays of that size, and its
metrics cost :math:`O(L)`, where the dense counts cost :math:`O(V)` per member and
generation. The draws — uniform picks among the training items sorted by category,
or conditional binomials on the counts, by the rule of
:mod:`collapse_sim._kernels.categorical` — are those of resampling the dense counts
(a reference implementation in the tests checks it), so the counts are the same
numbers.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .categorical import (
    ALIAS_FACTOR,
    TABLE_SLACK,
    _alias_build,
    _alias_items,
    _alias_targets,
    _binomial_tail_counts,
    _live,
    _shuffled_tokens,
    _tail_sums,
    _xoshiro,
    alias_counts,
    next_binomial,
)
from .rng import shuffle

_U64 = nb.uint64


@nb.njit(inline="always")
def _write_local_items(vals, a, live, table):
    """``table[:k]``: entry ``r`` (local index) written ``vals[a + r]`` times, in order.

    The first :data:`TABLE_SLACK` copies of every entry are stored unconditionally
    (the surplus is overwritten by the next entry, or lands in the table's slack), so
    the common counts 1 to 4 take no branch."""
    pos = 0
    for r in range(live):
        cr = vals[a + r]
        table[pos] = r
        table[pos + 1] = r
        table[pos + 2] = r
        table[pos + 3] = r
        if cr > TABLE_SLACK:
            for q in range(TABLE_SLACK, cr):
                table[pos + q] = r
        pos += cr


@nb.njit
def _shuffled_ids(st, ids, a, cnt, live, tokens):
    """Entry ``r``'s category written ``cnt[r]`` times, in order, then shuffled: the
    tokens ``_shuffled_tokens`` writes from the same counts."""
    pos = 0
    for r in range(live):
        j = ids[a + r]
        for _ in range(cnt[r]):
            tokens[pos] = j
            pos += 1
    shuffle(tokens, st)


@nb.njit(inline="always")
def _picks(st, k, n, tokens, ids, a, table, hits):
    """``n`` uniform picks in ``[0, k)`` from stream ``st`` (Lemire's bounded integers on
    the two 32-bit halves of each output, with his rejection step: exactly uniform; the
    state in registers), counted by position in ``hits`` (zeroed); with ``tokens``, item
    ``i`` is also written, ``ids[a + table[pick]]``."""
    write = tokens.shape[0] > 0
    bound = _U64(k)
    mask = _U64(0xFFFFFFFF)
    threshold = (mask + _U64(1) - bound) % bound  # 2**32 mod k: the rejection zone
    s0 = st[0]
    s1 = st[1]
    s2 = st[2]
    s3 = st[3]
    i = 0
    while i < n:  # the low half of each output first, then the high half (if still needed)
        word, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        m = (word & mask) * bound
        if (m & mask) >= threshold:  # else rejected
            u = np.int64(m >> _U64(32))
            hits[u] += 1
            if write:
                tokens[i] = ids[a + table[u]]
            i += 1
        m = (word >> _U64(32)) * bound
        if i < n and (m & mask) >= threshold:
            u = np.int64(m >> _U64(32))
            hits[u] += 1
            if write:
                tokens[i] = ids[a + table[u]]
            i += 1
    st[0] = s0
    st[1] = s1
    st[2] = s2
    st[3] = s3


@nb.njit(inline="always")
def _prefix(hits, k):
    """Exclusive prefix sums of ``hits[:k + 1]`` in place: ``hits[u]`` = hits before ``u``."""
    below = 0
    for u in range(k + 1):
        h = hits[u]
        hits[u] = below
        below += h


@nb.njit(inline="always")
def _runs(vals, a, live, hits, cnt):
    """``cnt[r]``: the hits in entry ``r``'s run of positions, from the prefix sums."""
    pos = 0
    for r in range(live):
        end = pos + vals[a + r]
        cnt[r] = hits[end] - hits[pos]
        pos = end


@nb.njit(inline="always")
def _compact(ids, a, live, cnt, o_ids, o_vals, b):
    """The entries with ``cnt > 0`` (categories ``ids[a:]``) written at ``b``; their number."""
    out = 0
    for r in range(live):
        x = cnt[r]
        o_ids[b + out] = ids[a + r]
        o_vals[b + out] = x
        out += x > 0
    return out


@nb.njit
def _resample_member(st, ids, vals, a, live, k, n, cnt, table, hits, tokens, o_ids, o_vals,
                     b):
    """Draw ``n`` items from the member at ``a`` (``live`` entries, ``k`` items) with stream
    ``st``; write their live counts at ``b`` and return how many categories are live.

    ``cnt`` (at least ``live``), ``hits`` (at least ``k + 1``) and, for tokens,
    ``table`` (at least ``k +`` :data:`TABLE_SLACK`) are scratch; ``tokens`` (length
    ``n``, or 0 for none) receives the items themselves. The rule and the draws: with
    at most :data:`ALIAS_FACTOR` items per live category, ``n`` uniform picks among the
    ``k`` training items sorted by category; else conditional binomials on the counts
    and, for tokens, a shuffle.

    The picks are counted by *position* among the sorted items (``hits``: nearly
    uniform, so consecutive increments rarely hit the same word, where counting by
    category stalls on the frequent ones), and category ``r``'s count is the number of
    hits in its run :math:`[C_{r-1}, C_r)` of positions: a difference of prefix sums.
    So counting needs no table of the items, and gives the numbers the table would.
    """
    if n <= ALIAS_FACTOR * live:
        if tokens.shape[0] > 0:
            _write_local_items(vals, a, live, table)
        for u in range(k + 1):
            hits[u] = 0
        _picks(st, k, n, tokens, ids, a, table, hits)
        _prefix(hits, k)
        _runs(vals, a, live, hits, cnt)
    else:
        for r in range(live):
            cnt[r] = 0
        left = n
        remaining = k
        for r in range(live):
            if left == 0:
                break
            c = vals[a + r]
            x = next_binomial(st, left, c / remaining)
            cnt[r] = x
            left -= x
            remaining -= c
        if tokens.shape[0] > 0:
            _shuffled_ids(st, ids, a, cnt, live, tokens)
    return _compact(ids, a, live, cnt, o_ids, o_vals, b)


#: Chains per block of the output: a block's chains write their live counts one after
#: the other, so the pages an output touches hold live entries only.
CHAIN_BLOCK = 16


@nb.njit(inline="always")
def _block(q, chains):
    """Chains ``lo`` to ``hi`` of block ``q``."""
    lo = q * CHAIN_BLOCK
    return lo, min(chains, lo + CHAIN_BLOCK)


@nb.njit(inline="always")
def _largest_live(live, lo, hi, step):
    big = 1
    for c in range(lo, hi):
        big = max(big, live[c * step])
    return big


@chain_kernel
def live_resample(states, off, live, ids, vals, k, n, tokens, region, o_off, o_live, o_ids,
                  o_vals):
    r"""One draw of ``n`` items per chain from the live counts of ``k`` items per member
    (a batch of one member is shared by every chain); their live counts into ``o_*``
    and, if ``tokens`` ``(chains, n)`` has columns, the items. Block ``q`` of
    :data:`CHAIN_BLOCK` chains writes from ``region[q]`` (room for the sum of
    :math:`\min(n, L)` over its chains), each chain after the previous one."""
    chains = states.shape[0]
    step = 0 if live.shape[0] == 1 else 1  # member c * step: shared or per chain
    for q in nb.prange((chains + CHAIN_BLOCK - 1) // CHAIN_BLOCK):
        lo, hi = _block(q, chains)
        cnt = np.empty(_largest_live(live, lo, hi, step), dtype=np.int32)
        table = np.empty(k + TABLE_SLACK if tokens.shape[1] > 0 else 0, dtype=np.int32)
        hits = np.empty(k + 1, dtype=np.int32)
        b = region[q]
        for c in range(lo, hi):
            m = c * step
            got = _resample_member(states[c], ids, vals, off[m], live[m], k, n, cnt, table,
                                   hits, tokens[c], o_ids, o_vals, b)
            o_off[c] = b
            o_live[c] = got
            b += got


@chain_kernel
def live_run(states, off, live, ids, vals, k, n, region, o_off, o_live, o_ids, o_vals):
    """Generations of resampling in one pass: member ``g * chains + c`` of the output
    is chain ``c`` after ``g + 1`` draws of ``n`` items, the first from the live counts
    of ``k`` items of member ``c`` of the input (or its only member), the next ones from
    the previous output. Bit-identical to calling :func:`live_resample` once per
    generation.

    A chain runs all its generations before the next one starts, each written right
    after the previous one's live entries (block ``q`` of :data:`CHAIN_BLOCK` chains from
    ``region[q]``, room for ``size`` times the sum of its chains' first live counts, at
    most ``n`` each), and records where in ``o_off``: a chain's counts stay in its cache
    from one generation to the next, and only the entries written are touched.
    """
    chains = states.shape[0]
    size = o_live.shape[0] // chains
    step = 0 if live.shape[0] == 1 else 1  # member c * step: shared or per chain
    empty = np.empty(0, dtype=np.int32)
    for q in nb.prange((chains + CHAIN_BLOCK - 1) // CHAIN_BLOCK):
        lo, hi = _block(q, chains)
        cnt = np.empty(_largest_live(live, lo, hi, step), dtype=np.int32)
        hits = np.empty(max(k, n) + 1, dtype=np.int32)
        b = region[q]
        for c in range(lo, hi):
            st = states[c]
            cur = live[c * step]
            a = off[c * step]
            got = _resample_member(st, ids, vals, a, cur, k, n, cnt, empty, hits, empty,
                                   o_ids, o_vals, b)
            o_off[c] = b
            o_live[c] = got
            for g in range(1, size):
                a = b
                b += got
                got = _resample_member(st, o_ids, o_vals, a, got, n, n, cnt, empty, hits,
                                       empty, o_ids, o_vals, b)
                o_off[g * chains + c] = b
                o_live[g * chains + c] = got
            b += got


@chain_kernel
def count_live(tokens, v, region, o_off, o_live, o_ids, o_vals):
    r"""Live counts of every chain's tokens ``(chains, k)`` over ``v`` categories (ids
    checked by the caller); block ``q`` of chains writes from ``region[q]`` (room for
    :math:`\min(k, V)` per chain)."""
    chains = tokens.shape[0]
    for q in nb.prange((chains + CHAIN_BLOCK - 1) // CHAIN_BLOCK):
        lo, hi = _block(q, chains)
        cnt = np.zeros(v, dtype=np.int32)
        b = region[q]
        for c in range(lo, hi):
            row = tokens[c]
            for i in range(row.shape[0]):
                cnt[row[i]] += 1
            out = 0
            for j in range(v):
                x = cnt[j]
                o_ids[b + out] = j
                o_vals[b + out] = x
                out += x > 0
                cnt[j] = 0
            o_off[c] = b
            o_live[c] = out
            b += out


@nb.njit
def _shared_tables(p, n):
    """The tables of ``n`` draws from one distribution ``p``, as ``_chain`` builds them per
    chain: ``(idx, K, thresh, alias, use_alias)`` — the live categories, their number,
    then the alias table when ``n <= ALIAS_FACTOR K``, else the tail sums in ``thresh``."""
    v = p.shape[0]
    idx = np.empty(v, dtype=np.int64)
    thresh = np.empty(v)
    alias = np.empty(v, dtype=np.int64)
    kk = _live(p, idx)
    use_alias = n <= ALIAS_FACTOR * kk
    if use_alias:
        _alias_build(p, idx, kk, thresh, alias, np.empty(v, dtype=np.int64))
    else:
        _tail_sums(p, thresh)
    return idx, kk, thresh, alias, use_alias


@chain_kernel
def draw_shared_tokens(states, probs, n, tokens):
    """``tokens`` ``(chains, n)``: the items ``categorical_draw`` writes from one shared
    distribution ``probs`` ``(1, V)`` (the same draws, by the same rule), with its alias
    table or tail sums built once for all chains instead of once per chain."""
    p = probs[0]
    v = p.shape[0]
    idx, kk, thresh, alias, use_alias = _shared_tables(p, n)
    targets = np.empty(2 * kk if use_alias else 0, dtype=np.int32)
    if use_alias:
        _alias_targets(idx, alias, kk, targets)
    for c in nb.prange(states.shape[0]):
        if use_alias:
            _alias_items(states[c], kk, thresh, targets, n, tokens[c])
        else:
            counts = np.zeros(v, dtype=np.int64)
            _binomial_tail_counts(states[c], p, n, counts, thresh)
            _shuffled_tokens(states[c], counts, tokens[c])


@chain_kernel
def live_from_dense(counts, o_off, o_live, o_ids, o_vals):
    """The live form of dense counts ``(B, V)`` (capacities at least the live counts)."""
    for c in nb.prange(counts.shape[0]):
        row = counts[c]
        b = o_off[c]
        out = 0
        for j in range(row.shape[0]):
            x = row[j]
            if x > 0:
                o_ids[b + out] = j
                o_vals[b + out] = x
                out += 1
        o_live[c] = out


@chain_kernel
def live_to_dense(off, live, ids, vals, out):
    """Dense counts ``out`` ``(B, V)`` int64 (zeroed) of live counts."""
    for c in nb.prange(out.shape[0]):
        a = off[c]
        row = out[c]
        for r in range(live[c]):
            row[ids[a + r]] = vals[a + r]


@chain_kernel
def draw_live(states, probs, n, region, o_off, o_live, o_ids, o_vals):
    """Multinomial counts of ``n`` items per chain from ``probs`` ``(1, V)`` (shared), in
    live form (block ``q`` of chains from ``region[q]``, room for :math:`\\min(n, K)` per
    chain, :math:`K` the categories of positive probability). The same draws as
    ``categorical_draw`` (alias table or conditional binomials, by the same rule), the
    tables built once for all chains."""
    p = probs[0]
    v = p.shape[0]
    idx, kk, thresh, alias, use_alias = _shared_tables(p, n)
    chains = states.shape[0]
    for q in nb.prange((chains + CHAIN_BLOCK - 1) // CHAIN_BLOCK):
        lo, hi = _block(q, chains)
        cnt = np.zeros(kk if use_alias else v, dtype=np.int64)
        codes = np.empty(n if use_alias else 0, dtype=np.int32)
        hist = np.empty(2 * kk if use_alias else 0, dtype=np.int64)
        b = region[q]
        for c in range(lo, hi):
            out = 0
            if use_alias:  # counts of local categories (indices into idx), compacted
                alias_counts(states[c], kk, thresh, alias, n, codes, hist, cnt)
                out = _compact(idx, 0, kk, cnt, o_ids, o_vals, b)
            else:
                cnt[:] = 0
                _binomial_tail_counts(states[c], p, n, cnt, thresh)
                for i in range(kk):
                    j = idx[i]
                    x = cnt[j]
                    o_ids[b + out] = j
                    o_vals[b + out] = x
                    out += x > 0
            o_off[c] = b
            o_live[c] = out
            b += out


#: The metrics read the logarithms of :math:`c/k` from a table of all ``k + 1`` values
#: when there are at least this many entries per table value (else they compute them).
LOG_TABLE_USE = 2


@chain_kernel
def live_metrics(off, live, ids, vals, k, per_category, flags, truth_support,
                 heldout_support, logs, out):
    r"""The seven categorical metrics of every member from its live counts of ``k`` items.

    The same arithmetic, term by term and in the same order, as
    ``categorical.categorical_metrics`` on the dense counts (``q_j = c_j \cdot (1/k)``):
    the same bits. ``per_category`` ``(V, 4)`` holds, per category, the truth's
    probability :math:`p_j`, its logarithm, the held-out frequency :math:`h_j` and 1.0 if
    the category is in the truth's rare set (else 0.0): one cache line serves all four.
    ``flags[j]`` is :math:`[p_j > 0] + 2^{32} [h_j > 0]`, so one sum over the live
    entries counts both supports: a member missing a category of the truth
    (``truth_support`` of them) or of the held-out sample has ``kl`` (``nll``) ``inf``.
    With ``k`` small against the entries, :math:`\log(c/k)` and
    :math:`c/k \cdot \log(c/k)` are read from tables of the ``k + 1`` possible values
    (computed by the same expressions, so the same bits).
    """
    inv = 1.0 / k
    entries = 0
    for m in range(live.shape[0]):
        entries += live[m]
    table = logs and entries >= LOG_TABLE_USE * k
    size = k + 1 if table else 0
    lt = np.empty(size)
    xl = np.empty(size)
    for c in range(1, size):
        x = c * inv
        lx = math.log(x)
        lt[c] = lx
        xl[c] = x * lx
    low = (1 << 32) - 1
    for m in nb.prange(live.shape[0]):
        a = off[m]
        ent = 0.0
        sq = 0.0
        tm = 0.0
        tv = 0.0
        kl = 0.0
        nll = 0.0
        seen = 0
        # with fewer live categories than the truth (the held-out sample) has, one of its
        # categories is dead and kl (nll) is inf whatever the sum, which is then skipped
        # (after a few generations, for most members)
        need_kl = logs and live[m] >= truth_support
        need_nll = logs and live[m] >= heldout_support
        for r in range(live[m]):
            j = ids[a + r]
            cj = vals[a + r]
            x = cj * inv
            p = per_category[j, 0]
            tv += max(x - p, 0.0)
            sq += x * x
            tm += x * per_category[j, 3]
            seen += flags[j]
            if logs:
                if table:
                    lx = lt[cj]
                    ent -= xl[cj]
                else:
                    lx = math.log(x)
                    ent -= x * lx
                if need_kl and p > 0.0:
                    kl += p * (per_category[j, 1] - lx)
                if need_nll:
                    nll -= per_category[j, 2] * lx
        out[0, m] = ent if logs else math.nan
        out[1, m] = 1.0 - sq
        out[2, m] = live[m]
        out[3, m] = tm
        out[4, m] = tv
        if logs:
            out[5, m] = (max(kl, 0.0) if need_kl and (seen & low) == truth_support
                         else math.inf)
            out[6, m] = nll if need_nll and (seen >> 32) == heldout_support else math.inf
        else:
            out[5, m] = math.nan
            out[6, m] = math.nan
