r"""Generations of categorical refits through transform stages, on live counts, jitted
(private).

A maximum-likelihood categorical fit of :math:`k` items is :math:`c_j / k` over its live
categories. With a generation stage that only transforms the model — ``Temperature``,
``TopK``, ``TopP``, in any sequence (:mod:`collapse_sim.stages`) — generation
:math:`g + 1`'s counts are :math:`n` draws from the staged probabilities of generation
:math:`g`'s fit. :func:`staged_run` runs a block of generations per chain in one
parallel region (each chain's entries stay in its cache) on the live entries only,
:math:`O(L + n)` per chain and generation for :math:`L` live categories (plus
:math:`L \log L` to rank them for ``TopK``/``TopP``), where the generation-by-generation
loop makes dense passes over all :math:`V` categories.

It gives the loop's numbers bit for bit (a test checks it): every stage takes the
arithmetic of its dense kernel in the same order (``categorical.smoothed_frequencies``,
``categorical.powered_rows``, ``categorical.keep_top``; a dense row's zeros add
nothing to its sums), and the draw is ``categorical._chain``'s — the alias table over
the positive probabilities in category order while :math:`n \le`
``ALIAS_FACTOR`` :math:`\cdot K`, else conditional binomials (counts, never tokens: the
loop draws a statistics fitter's synthetic data as counts on either path).

The stages are given as ``ops`` (codes :data:`TEMPERATURE`, :data:`TOP_K`,
:data:`TOP_P`) with ``params`` (:math:`\beta = 1/\tau`, :math:`k`, :math:`p`). A first
``Temperature`` acts on the counts themselves, :math:`c_j^\beta / \sum_i c_i^\beta`, as
the loop's does on a fit that keeps its counts; :math:`c^\beta` is read from a table of
the :math:`\max(k, n) + 1` possible counts (``powers``, computed by the same
expression), or, where the largest count's power overflows, computed from
:math:`c_j / \max c` as ``powered_rows`` then does. A later one acts on probabilities,
:math:`(q_j/\max q)^\beta` normalised.
"""

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .categorical import (
    ALIAS_FACTOR,
    _alias_build,
    _binomial_tail_counts,
    _tail_sums,
    alias_counts,
    kept_mass,
    power_normalise,
)
from .live_counts import CHAIN_BLOCK, _block, _compact, _largest_live

#: Code of a ``Temperature`` stage in ``ops`` (parameter :math:`\beta = 1/\tau`).
TEMPERATURE = 0
#: Code of a ``TopK`` stage (parameter :math:`k`).
TOP_K = 1
#: Code of a ``TopP`` stage (parameter :math:`p`).
TOP_P = 2


@nb.njit
def count_powers(beta, top, out):
    r"""``out[c]`` :math:`= c^\beta` for :math:`0 \le c \le` ``top`` (0 for :math:`c = 0`),
    by ``categorical.powered_rows``'s expression."""
    for c in range(top + 1):
        x = c + 0.0
        out[c] = x**beta if x > 0 else 0.0


@nb.njit(inline="always")
def _positive(q, qid, m):
    """Drop the entries with ``q`` 0 (an underflowed power), in order; the new length."""
    out = 0
    for r in range(m):
        x = q[r]
        q[out] = x
        qid[out] = qid[r]
        out += x > 0.0
    return out


@nb.njit(inline="always")
def _powered(q, m, beta):
    """``categorical.powered_rows`` on probabilities ``q[:m]``, in place, after dividing
    them by their largest (as ``families.categorical._tempered`` does)."""
    top = 0.0
    for r in range(m):
        top = max(top, q[r])
    for r in range(m):
        q[r] = q[r] / top
    power_normalise(q[:m], 0.0, beta, q[:m])


@nb.njit(inline="always")
def _kept(q, qid, m, top_k, top_p, work, flag):
    """``categorical.keep_top`` on ``q[:m]`` (positive, in category order): the likeliest
    entries kept (ties by category), renormalised, in category order; the new length."""
    mass = kept_mass(q, m, top_k, top_p, work, flag)
    out = 0
    for r in range(m):
        q[out] = q[r] / mass
        qid[out] = qid[r]
        out += flag[r]
    return out


@nb.njit
def _staged_member(st, ids, vals, a, live, k, n, ops, params, powers, q, qid,
                   ident, spare, work, flag, thresh, alias, codes, hist, cnt, o_ids, o_vals,
                   b):
    """Stage the fit of ``k`` items at ``a`` (``live`` entries) and draw ``n`` items from it
    with stream ``st``; write their live counts at ``b``; return how many are live.
    ``ident`` holds ``0, 1, ...`` (at least ``live``); ``q``, ``qid``, ``spare``,
    ``work``, ``flag``, ``thresh``, ``alias``, ``cnt`` (at least ``live``), ``hist`` (at
    least ``2 live``) and ``codes`` (at least ``min(n, ALIAS_FACTOR * live)``) are
    scratch."""
    m = live
    first = 0
    if ops.shape[0] > 0 and ops[0] == TEMPERATURE:
        # categorical.power_normalise on the counts, with their powers read from the table
        # (its own power per entry made a chain and generation 5.9 instead of 4.4 us)
        top = 0
        for r in range(m):
            top = max(top, vals[a + r])
        scale = not np.isfinite(powers[top])  # as powered_rows: the counts over their largest
        total = 0.0
        for r in range(m):
            if scale:
                x = (vals[a + r] + 0.0) / (top + 0.0)
                w = x**params[0] if x > 0 else 0.0
            else:
                w = powers[vals[a + r]]
            q[r] = w
            qid[r] = ids[a + r]
            total += w
        inv = 1.0 / total
        for r in range(m):
            q[r] *= inv
        m = _positive(q, qid, m)
        first = 1
    else:  # the fit's probabilities
        inv = 1.0 / (k + 0.0)
        for r in range(m):
            q[r] = (vals[a + r] + 0.0) * inv
            qid[r] = ids[a + r]
    for s in range(first, ops.shape[0]):
        if ops[s] == TEMPERATURE:
            _powered(q, m, params[s])
            m = _positive(q, qid, m)
        elif ops[s] == TOP_K:
            m = _kept(q, qid, m, np.int64(params[s]), 0.0, work, flag)
        else:
            m = _kept(q, qid, m, 0, params[s], work, flag)
    # the draw of categorical._chain over the m positive probabilities
    if n <= ALIAS_FACTOR * m:
        _alias_build(q, ident, m, thresh, alias, spare)
        alias_counts(st, m, thresh, alias, n, codes, hist, cnt)
    else:
        for r in range(m):
            cnt[r] = 0
        _tail_sums(q[:m], thresh)
        _binomial_tail_counts(st, q[:m], n, cnt, thresh)
    return _compact(qid, 0, m, cnt, o_ids, o_vals, b)


@chain_kernel
def staged_run(states, off, live, ids, vals, k, n, ops, params, powers, region,
               o_off, o_live, o_ids, o_vals):
    """Generations of staged refits in one pass: member ``g * chains + c`` of the output is
    chain ``c`` after ``g + 1`` draws of ``n`` items, each from the staged fit of the
    previous counts — the first from the live counts of ``k`` items of member ``c`` of the
    input (or its only member). ``powers`` holds :func:`count_powers` of the first stage
    when it is a ``Temperature`` (else it is not read). Written as
    ``live_counts.live_run`` writes its output (block ``q`` of chains from ``region[q]``,
    room for ``size`` times the sum of its chains' first live counts, at most ``n``
    each)."""
    chains = states.shape[0]
    size = o_live.shape[0] // chains
    step = 0 if live.shape[0] == 1 else 1  # member c * step: shared or per chain
    for q in nb.prange((chains + CHAIN_BLOCK - 1) // CHAIN_BLOCK):
        lo, hi = _block(q, chains)
        big = _largest_live(live, lo, hi, step)
        probs = np.empty(big)
        qid = np.empty(big, dtype=np.int64)
        ident = np.arange(big)  # the alias table's categories: the entries themselves
        spare = np.empty(big, dtype=np.int64)
        work = np.empty(big)
        flag = np.empty(big, dtype=np.int64)
        thresh = np.empty(big)
        alias = np.empty(big, dtype=np.int64)
        cnt = np.empty(big, dtype=np.int64)
        # the alias draws need n codes, and are taken only while n <= ALIAS_FACTOR * live
        codes = np.empty(min(n, ALIAS_FACTOR * big), dtype=np.int32)
        hist = np.empty(2 * big, dtype=np.int64)
        b = region[q]
        for c in range(lo, hi):
            st = states[c]
            got = _staged_member(st, ids, vals, off[c * step], live[c * step], k, n, ops,
                                 params, powers, probs, qid, ident, spare, work, flag,
                                 thresh, alias, codes, hist, cnt, o_ids, o_vals, b)
            o_off[c] = b
            o_live[c] = got
            for g in range(1, size):
                a = b
                b += got
                got = _staged_member(st, o_ids, o_vals, a, got, n, n, ops, params, powers,
                                     probs, qid, ident, spare, work, flag, thresh, alias,
                                     codes, hist, cnt, o_ids, o_vals, b)
                o_off[g * chains + c] = b
                o_live[g * chains + c] = got
            b += got
