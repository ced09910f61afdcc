r"""Sparse n-gram language models for many chains at once, jitted.

A chain's model of order :math:`n` is a *reversed context trie* built from its training
blocks. Node 0 is the empty context; the child of a node :math:`h` by token :math:`t`
is the context one token *older*: :math:`(t, h)`. So the walk from the root over the
history :math:`x_{i-1}, x_{i-2}, \dots` visits every suffix context of position
:math:`i` in order of length, and a node's parent is its back-off context (the same
context without its oldest token). Blocks are independent sequences: the history
before a block's first token is the begin-of-sequence symbol ``BOS = V`` repeated.

Every position :math:`i` of a block adds one *event* (context, next token) at each
depth :math:`j = 0 \dots n-1`, so counting costs :math:`O(n)` counting-sort passes
over the tokens (no hash table). The arrays a chain keeps (all int32, indices local to
the chain):

========== ================ ===========================================================
array      length           meaning
========== ================ ===========================================================
``count``  nodes            :math:`c(h)`: events with context :math:`h`
``parent`` nodes            back-off context (-1 at the root)
``token``  nodes            the oldest token of the context (-1 at the root)
``efirst`` nodes            first entry of :math:`h`; entries sorted by token
``enum``   nodes            number of distinct next tokens of :math:`h`
``cfirst`` nodes            first child of :math:`h` in ``child``; children sorted by token
``cnum``   nodes            number of children
``etok``   entries          next token :math:`w`
``ecum``   entries          :math:`\sum_{w' \le w} c(h, w')` within the node (inclusive)
``enext``  entries          for a full-length context: the node of the next context
                            :math:`(h, w)` without its oldest token; else -1
``child``  nodes - 1        child node ids, grouped by parent, sorted by token
========== ================ ===========================================================

The contexts of each depth, the entries and both orderings come from stable counting
sorts (least significant key first; :func:`_build_chain`), so building a model costs
:math:`O(n (T + V + N))` for :math:`T` tokens and :math:`N` nodes: linear, no
comparison sort and no hash table. For order 2 the contexts are single tokens, so
:func:`_build_bigram_chain` finds the nodes in a dense table and sorts the events
themselves into the same arrays, with fewer passes. Generating a token at
temperature 1 costs one draw and one load from the context's list of training events
(each stored with its token and next context); at other temperatures a binary search
over the cumulative weights (plus a walk of :math:`n - 1` binary searches after a
back-off or a smoothing draw).
"""

import numba as nb
import numpy as np

from . import local as _local
from ._dispatch import chain_kernel

_U64 = nb.uint64
_GOLDEN = 0x9E3779B97F4A7C15

#: Arrays of a batch of models, in the order the kernels take them.
NODE_ARRAYS = ("count", "parent", "token", "efirst", "enum", "cfirst", "cnum")
ENTRY_ARRAYS = ("etok", "ecum", "enext")


@nb.njit(inline="always")
def _slot(key, mask):
    h = _U64(key) * _U64(_GOLDEN)
    return np.int64((h >> _U64(29)) & _U64(mask))


@nb.njit(inline="always")
def _find_or_insert(keys, vals, mask, key, new_val):
    """(value, inserted) for ``key`` in an open-addressing table (empty key: -1; the
    sparse shuffle of :func:`draw_blocks`)."""
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k == key:
            return vals[i], False
        if k == -1:
            keys[i] = key
            vals[i] = new_val
            return new_val, True
        i = (i + 1) & mask


@nb.njit(inline="always")
def _lookup(keys, vals, mask, key, missing):
    """The value of ``key`` in an open-addressing table (empty key: -1), else
    ``missing``."""
    i = _slot(key, mask)
    while True:
        k = keys[i]
        if k == key:
            return vals[i]
        if k == -1:
            return missing
        i = (i + 1) & mask


@nb.njit(inline="always")
def _unigram_p(weight, v, c, alpha, total):
    r"""The evaluation smoothing's first level (:func:`log_likelihood`):
    :math:`(1-\lambda)/V + \lambda (c + \alpha)/(T + \alpha V)`."""
    return (1.0 - weight) / v + weight * (c + alpha) / (total + alpha * v)


@nb.njit(inline="always")
def _context_p(weight, p, c, alpha, total, v):
    r"""One more level of the evaluation smoothing (:func:`log_likelihood`):
    :math:`(1-\lambda) p + \lambda (c + \alpha)/(c(h) + \alpha V)`."""
    return (1.0 - weight) * p + weight * (c + alpha) / (total + alpha * v)


@nb.njit
def table_size(items):
    """Power-of-two capacity at most half full for ``items`` keys."""
    size = 16
    while size < 2 * items:
        size *= 2
    return size


#: :func:`unigram_entropy` and :func:`bigram_mean_log_likelihood` group the types by count
#: below this count (their terms are computed once per distinct count); larger counts
#: each get their own term.
COUNT_TABLE = 4096
#: :func:`bigram_mean_log_likelihood` finds a member's seen pairs from its own events while
#: it has at most 1/this as many events as the text has distinct pairs (else from the
#: text's pairs).
MEAN_PAIRS_FACTOR = 2

#: Sequences a chain writes in lockstep (see :func:`generate`): the draws of a group of
#: LANES sequences are taken position by position, lane by lane (the stream's order).
LANES = 16
#: Groups of LANES sequences :func:`generate_bigram` walks at once (their draws taken
#: first, in the order above).
BIGRAM_GROUPS = 4
#: Most tasks a bigram's :func:`build_models` splits its chains into (each reuses one
#: scratch); a longer order's use one task per thread (their scratch is larger).
BUILD_TASKS = 8


@nb.njit
def _scatter(src, keys, n_keys, dst, bucket):
    """Stable counting sort of the positions ``src`` by ``keys[src]`` (values below
    ``n_keys``) into ``dst``."""
    bucket[:n_keys + 1] = 0
    for r in range(src.shape[0]):
        bucket[keys[src[r]] + 1] += 1
    for h in range(n_keys):
        bucket[h + 1] += bucket[h]
    for r in range(src.shape[0]):
        p = src[r]
        h = keys[p]
        dst[bucket[h]] = p
        bucket[h] += 1


@nb.njit
def _build_chain(tokens, v, n, count, parent, token, efirst, enum, cfirst, cnum,
                 etok, ecum, enext, child, sizes, loc, first_pos, tvals, order_a, order_b,
                 gid, keys, pay, keys2, pay2, bucket):
    r"""Build one chain's model from its blocks ``tokens`` ``(k, L)`` into the buffers, by
    counting sorts alone (no hash table: a trigram's tables outgrew the cache, and each
    lookup missed it).

    ``sizes`` receives (nodes, entries). Buffers hold at least
    :math:`1 + \sum_{j=1}^{n-1} \min(k (L+1), (V+1)^j)` nodes and
    :math:`\min(k L, V) + (n-1) k L` entries (``families.ngram.build``). Scratch (a task's,
    reused from chain to chain; :func:`build_scratch` sizes it): ``loc``, ``first_pos``
    ``(max(n-1, 1), k (L+1))``, ``tvals`` ``(k (L+1),)``, ``order_a``, ``order_b`` of at
    least ``max(k (L+1), nodes)``, ``gid``
    ``((n-1) k (L+1),)`` int32; ``keys``, ``keys2`` ``(n k L,)`` int64, ``pay``, ``pay2``
    ``(n k L,)`` int32; ``bucket`` int64 of at least ``max(V + 1, k (L+1), nodes) + 1``.

    1. **Contexts, level by level.** Position :math:`p` (block ``b``, index ``i`` in
       ``0..L``) has a depth-:math:`j` context, the depth-:math:`(j-1)` one extended by
       the token :math:`j` back (``BOS = V`` before the block). Sorting the positions by
       (parent's level id, that token) with two stable counting sorts groups equal
       contexts; each group is one node (its level id: ``loc[j-1, p]``) and its first
       position is where the node first appears (``first_pos``).
    2. **Node ids** in order of first appearance, position by position and shallow to
       deep, as a build that inserts contexts as it meets them numbers them.
    3. **Entries.** Every (context, next token) event at every depth as one key
       (node << 32 | token), sorted by token, then stably by node: equal keys are runs,
       each an entry, in (node, token) order. A full-length context's entry carries the
       node of the next context (``pay``).
    4. **Children**: nodes ``1..`` sorted by (parent, token), the same two sorts.

    :math:`O(n (k L + V + N))` for :math:`N` nodes, in sequential passes.
    """
    k, length = tokens.shape
    span = length + 1
    positions = k * span
    level_n = np.zeros(n + 1, dtype=np.int64)
    level_n[0] = 1
    pos_a = order_a[:positions]
    pos_b = order_b[:positions]
    for j in range(1, n):
        for b in range(k):
            for i in range(span):
                tvals[b * span + i] = tokens[b, i - j] if i >= j else v
        for p in range(positions):
            pos_b[p] = p
        _scatter(pos_b, tvals, v + 1, pos_a, bucket)
        srt = pos_a
        if j > 1:
            _scatter(pos_a, loc[j - 2], level_n[j - 1], pos_b, bucket)
            srt = pos_b
        level = -1
        last_parent = -1
        last_t = -1
        here = loc[j - 1]
        first = first_pos[j - 1]
        for r in range(positions):
            p = srt[r]
            par = loc[j - 2, p] if j > 1 else 0
            t = tvals[p]
            if par != last_parent or t != last_t:
                level += 1
                first[level] = p
                last_parent = par
                last_t = t
            here[p] = level
        level_n[j] = level + 1
    goff = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n):
        goff[j + 1] = goff[j] + level_n[j]
    nodes = 1
    count[0] = 0
    parent[0] = -1
    token[0] = -1
    for b in range(k):
        for i in range(span):
            p = b * span + i
            for j in range(1, n):
                level = loc[j - 1, p]
                if first_pos[j - 1, level] == p:
                    g = nodes
                    nodes += 1
                    gid[goff[j] + level] = g
                    parent[g] = 0 if j == 1 else gid[goff[j - 1] + loc[j - 2, p]]
                    token[g] = tokens[b, i - j] if i >= j else v
                    count[g] = 0
    # every event at every depth, by token (the histogram counted as they are written)
    events = n * k * length
    bucket[:v + 1] = 0
    e = 0
    for b in range(k):
        for i in range(length):
            p = b * span + i
            w = tokens[b, i]
            bucket[w + 1] += n
            nxt = 0 if n == 1 else gid[goff[n - 1] + loc[n - 2, p + 1]]
            for j in range(n):
                g = 0 if j == 0 else gid[goff[j] + loc[j - 1, p]]
                keys[e] = (np.int64(g) << 32) | w
                pay[e] = nxt if j == n - 1 else -1
                e += 1
    for t in range(v - 1):
        bucket[t + 1] += bucket[t]
    low = np.int64(0xFFFFFFFF)
    for r in range(events):
        key = keys[r]
        w = key & low
        d = bucket[w]
        keys2[d] = key
        pay2[d] = pay[r]
        bucket[w] = d + 1
    # then stably by node
    bucket[:nodes + 1] = 0
    for r in range(events):
        bucket[(keys2[r] >> 32) + 1] += 1
    for h in range(nodes):
        bucket[h + 1] += bucket[h]
    for r in range(events):
        key = keys2[r]
        h = key >> 32
        d = bucket[h]
        keys[d] = key
        pay[d] = pay2[r]
        bucket[h] = d + 1
    for h in range(nodes):
        efirst[h] = 0
        enum[h] = 0
    entries = 0
    last = np.int64(-1)
    last_node = np.int64(-1)
    running = 0
    for r in range(events):
        key = keys[r]
        h = key >> 32
        if h != last_node:
            efirst[h] = entries
            running = 0
            last_node = h
        running += 1
        if key != last:
            etok[entries] = key & low
            enext[entries] = pay[r]
            enum[h] += 1
            entries += 1
            last = key
        ecum[entries - 1] = running
        count[h] += 1
    # children: nodes 1.. sorted by (parent, token); BOS (= v) is a token here
    m = nodes - 1
    for h in range(m):
        order_b[h] = h + 1
    _scatter(order_b[:m], token, v + 1, order_a, bucket)
    _scatter(order_a[:m], parent, nodes, order_b, bucket)
    for h in range(nodes):
        cfirst[h] = 0
        cnum[h] = 0
    last = -1
    for r in range(m):
        c = order_b[r]
        q = parent[c]
        if q != last:
            cfirst[q] = r
            last = q
        cnum[q] += 1
        child[r] = c
    sizes[0] = nodes
    sizes[1] = entries


def scratch_words(k, length, v, n, max_nodes):
    """``(int32 words, int64 words)`` of one task's scratch in :func:`build_models` (blocks
    of ``k x length`` tokens, buffers of ``max_nodes`` nodes)."""
    if n == 2:  # _build_bigram_chain: first_level; root_count, start, events, moved
        return v + 1, 2 * v + 3 + 2 * k * length
    return _general_words(k, length, v, n, max_nodes)


@nb.njit
def _general_parts(k, length, v, n, max_nodes):
    """Lengths of :func:`_build_chain`'s scratch arrays: ``(levels, positions, orders,
    gid, events, bucket)`` (``loc`` and ``first_pos`` are ``levels x positions``,
    ``tvals`` ``positions``, ``order_a``/``order_b`` ``orders``, ``keys``/``keys2``/``pay``/
    ``pay2`` ``events``)."""
    positions = k * (length + 1)
    return (max(n - 1, 1), positions, max(positions, max_nodes),
            max((n - 1) * positions, 1), n * k * length,
            max(v + 2, positions + 1, max_nodes + 1))


@nb.njit
def _general_words(k, length, v, n, max_nodes):
    """:func:`scratch_words` of :func:`_build_chain` (any order)."""
    levels, positions, orders, g, events, buckets = _general_parts(k, length, v, n,
                                                                   max_nodes)
    return (2 * levels * positions + positions + 2 * orders + g + 2 * events,
            2 * events + buckets)


@nb.njit
def _general_scratch(s32, s64, k, length, v, n, max_nodes):
    """:func:`_build_chain`'s scratch as views of one task's words ``s32``, ``s64``
    (:func:`_general_words` of them)."""
    levels, positions, orders, g, events, _ = _general_parts(k, length, v, n, max_nodes)
    a = 0
    loc = s32[a:a + levels * positions].reshape((levels, positions))
    a += levels * positions
    first_pos = s32[a:a + levels * positions].reshape((levels, positions))
    a += levels * positions
    tvals = s32[a:a + positions]
    a += positions
    order_a = s32[a:a + orders]
    a += orders
    order_b = s32[a:a + orders]
    a += orders
    gid = s32[a:a + g]
    a += g
    pay = s32[a:a + events]
    a += events
    pay2 = s32[a:a + events]
    keys = s64[:events]
    keys2 = s64[events:2 * events]
    bucket = s64[2 * events:]
    return loc, first_pos, tvals, order_a, order_b, gid, keys, pay, keys2, pay2, bucket


def build_scratch(k, length, v, n, max_nodes):
    """Fresh scratch for one :func:`_build_chain` (tests; :func:`build_models` takes its
    tasks' scratch from the caller)."""
    s32, s64 = _general_words(k, length, v, n, max_nodes)
    return _general_scratch(np.empty(s32, dtype=np.int32), np.empty(s64, dtype=np.int64),
                            k, length, v, n, max_nodes)


@nb.njit
def _build_bigram_chain(tokens, v, count, parent, token, efirst, enum, cfirst, cnum, etok,
                        ecum, enext, child, sizes, first_level, events, root_count, start,
                        moved):
    """:func:`_build_chain` for order 2, with the same arrays, in fewer passes.

    A bigram's contexts are single tokens (and ``BOS = v``), so its depth-1 nodes come
    from a dense table by token (the general build sorts the positions to find them)
    and its events (context node, next token) are put in (node, token) order by two
    stable counting sorts — by token, then by node — over all ``T`` events:
    :math:`O(T + V + N)` with sequential passes. Node ids are given in order of first
    appearance, as there; entries and children are in (node, token) order in both, so
    every array is the same.

    Scratch (a caller's, reused from chain to chain: fresh memory per chain was written
    page by page, half the time of a 64-chain refit): ``first_level`` ``(V + 1,)``
    int32, ``root_count`` ``(V,)`` and ``start`` ``(V + 3,)`` int64, ``events`` and
    ``moved`` int64 of at least ``k L``; all are reset here as needed.
    """
    k, length = tokens.shape
    total = k * length
    first_level[:] = -1
    root_count[:] = 0  # events below: (context node << 32) | next token
    nodes = 1
    count[0] = 0
    parent[0] = -1
    token[0] = -1
    e = 0
    for b in range(k):
        row = tokens[b]
        prev = v  # begin-of-sequence
        for i in range(length + 1):
            node = first_level[prev]
            if node < 0:
                node = nodes
                first_level[prev] = node
                parent[node] = 0
                token[node] = prev
                count[node] = 0
                nodes += 1
            if i == length:
                break
            w = row[i]
            events[e] = (np.int64(node) << 32) | w
            e += 1
            root_count[w] += 1
            count[node] += 1
            prev = w
    count[0] = total
    # the root's entries: every token seen, in token order
    entries = 0
    running = 0
    for w in range(v):
        c = root_count[w]
        if c > 0:
            etok[entries] = w
            running += c
            ecum[entries] = running
            enext[entries] = -1
            entries += 1
    efirst[0] = 0
    enum[0] = entries
    # the events in (node, token) order: moved by token, then stably by node (the keys
    # themselves move, so every pass reads them in order); the histograms are the
    # token and context counts above
    low = np.int64(0xFFFFFFFF)
    acc = 0
    for w in range(v):
        start[w] = acc
        acc += root_count[w]
    for i in range(total):
        key = events[i]
        w = key & low
        moved[start[w]] = key
        start[w] += 1
    acc = 0
    for h in range(nodes):
        start[h] = acc
        acc += count[h] if h > 0 else 0
    for i in range(total):
        key = moved[i]
        h = key >> 32
        events[start[h]] = key
        start[h] += 1
    for h in range(1, nodes):
        efirst[h] = 0
        enum[h] = 0
    last = np.int64(-1)
    last_node = -1
    for r in range(total):
        key = events[r]
        h = np.int64(key >> 32)
        if h != last_node:
            efirst[h] = entries
            running = 0
            last_node = h
        running += 1
        if key != last:
            w = key & low
            etok[entries] = w
            enext[entries] = first_level[w]
            enum[h] += 1
            entries += 1
            last = key
        ecum[entries - 1] = running
    # children of the root (every other node), in token order; no node has others
    for h in range(nodes):
        cfirst[h] = 0
        cnum[h] = 0
    cnum[0] = nodes - 1
    r = 0
    for t in range(v + 1):
        node = first_level[t]
        if node > 0:
            child[r] = node
            r += 1
    sizes[0] = nodes
    sizes[1] = entries


@chain_kernel
def build_models(tokens, v, n, count, parent, token, efirst, enum, cfirst, cnum,
                 etok, ecum, enext, child, sizes, scratch32, scratch64):
    """Build every chain's model: ``tokens`` ``(B, k, L)``, buffers ``(B, bound)``,
    ``sizes`` ``(B, 2)`` receives each chain's (nodes, entries).

    The chains are split into ``tasks`` runs of consecutive chains, each a task with its
    own scratch, reused from chain to chain: row ``task`` of ``scratch32``
    ``(tasks, words)`` int32 and ``scratch64`` int64 (:func:`scratch_words` gives their
    widths; the caller lends recycled memory, so that no build writes fresh pages).
    """
    chains, k, length = tokens.shape
    tasks = scratch32.shape[0]
    max_nodes = count.shape[1]
    for task in nb.prange(tasks):
        lo = task * chains // tasks
        hi = (task + 1) * chains // tasks
        s32 = scratch32[task]
        s64 = scratch64[task]
        if n == 2:
            first_level = s32[:v + 1]
            root_count = s64[:v]
            start = s64[v:2 * v + 3]
            events = s64[2 * v + 3:2 * v + 3 + k * length]
            moved = s64[2 * v + 3 + k * length:2 * v + 3 + 2 * k * length]
            for c in range(lo, hi):
                _build_bigram_chain(tokens[c], v, count[c], parent[c], token[c], efirst[c],
                                    enum[c], cfirst[c], cnum[c], etok[c], ecum[c], enext[c],
                                    child[c], sizes[c], first_level, events, root_count,
                                    start, moved)
        else:
            scratch = _general_scratch(s32, s64, k, length, v, n, max_nodes)
            for c in range(lo, hi):
                _build_chain(tokens[c], v, n, count[c], parent[c], token[c], efirst[c],
                             enum[c], cfirst[c], cnum[c], etok[c], ecum[c], enext[c],
                             child[c], sizes[c], *scratch)


@chain_kernel
def compact_models(sizes, node_off, entry_off, count, parent, token, efirst, enum, cfirst,
                   cnum, etok, ecum, enext, child, o_count, o_parent, o_token, o_efirst,
                   o_enum, o_cfirst, o_cnum, o_etok, o_ecum, o_enext, o_child):
    """Copy each chain's used part of the bound buffers into the flat arrays."""
    for c in nb.prange(sizes.shape[0]):
        nodes = sizes[c, 0]
        entries = sizes[c, 1]
        a = node_off[c]
        e = entry_off[c]
        ch = a - c  # every chain has nodes - 1 children
        for h in range(nodes):
            o_count[a + h] = count[c, h]
            o_parent[a + h] = parent[c, h]
            o_token[a + h] = token[c, h]
            o_efirst[a + h] = efirst[c, h]
            o_enum[a + h] = enum[c, h]
            o_cfirst[a + h] = cfirst[c, h]
            o_cnum[a + h] = cnum[c, h]
        for r in range(entries):
            o_etok[e + r] = etok[c, r]
            o_ecum[e + r] = ecum[c, r]
            o_enext[e + r] = enext[c, r]
        for r in range(nodes - 1):
            o_child[ch + r] = child[c, r]


@nb.njit(inline="always")
def _find_child(node, t, token, cfirst, cnum, child, a, ca):
    """Child of ``node`` by token ``t`` (local id) or -1; ``a``/``ca``: chain offsets."""
    lo = cfirst[a + node]
    hi = lo + cnum[a + node]
    while lo < hi:
        mid = (lo + hi) >> 1
        tm = token[a + child[ca + mid]]
        if tm < t:
            lo = mid + 1
        else:
            hi = mid
    if lo < cfirst[a + node] + cnum[a + node] and token[a + child[ca + lo]] == t:
        return child[ca + lo]
    return -1


@nb.njit(inline="always")
def _first_above(cum, off, lo, hi, x):
    """The first ``r`` in ``[lo, hi]`` with ``cum[off + r] > x`` (``hi`` if none before it;
    ``cum`` non-decreasing there): the entry a draw ``x`` below the total lands in."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if cum[off + mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@nb.njit(inline="always")
def _entry_count(node, w, efirst, enum, etok, ecum, a, e0):
    """:math:`c(h, w)` by binary search over the node's token-sorted entries."""
    lo = efirst[a + node]
    start = lo
    hi = lo + enum[a + node]
    while lo < hi:
        mid = (lo + hi) >> 1
        if etok[e0 + mid] < w:
            lo = mid + 1
        else:
            hi = mid
    if lo < start + enum[a + node] and etok[e0 + lo] == w:
        below = ecum[e0 + lo - 1] if lo > start else 0
        return ecum[e0 + lo] - below
    return 0


@nb.njit
def _root_children(v, token, cfirst, cnum, child, a, ca):
    """Dense map token -> depth-1 node (-1: none) of one chain: the root has up to
    ``V + 1`` children, so this replaces its binary search by one load."""
    root = np.full(v + 1, -1, dtype=np.int32)
    for r in range(cfirst[a], cfirst[a] + cnum[a]):
        node = child[ca + r]
        root[token[a + node]] = node
    return root


@nb.njit(inline="always")
def _walk(hist, n, root, token, cfirst, cnum, child, a, ca):
    """(deepest node matching a suffix of ``hist``, its depth); hist[0] is the newest."""
    if n == 1:
        return 0, 0
    node = root[hist[0]]
    if node < 0:
        return 0, 0
    depth = 1
    for j in range(2, n):
        nxt = _find_child(node, hist[j - 1], token, cfirst, cnum, child, a, ca)
        if nxt < 0:
            break
        node = nxt
        depth = j
    return node, depth


@chain_kernel
def powered_cumulative(node_off, entry_off, efirst, enum, ecum, alpha, beta, keep, out):
    r"""``out`` (entries): cumulative :math:`(c(h, w) + \alpha)^\beta` within each node:
    the weights of sampling at temperature :math:`1/\beta`; entries with ``keep == 0``
    weigh nothing (``keep`` empty: every entry is kept)."""
    masked = keep.shape[0] > 0
    for m in nb.prange(node_off.shape[0] - 1):
        a = node_off[m]
        e0 = entry_off[m]
        for h in range(node_off[m + 1] - a):
            lo = efirst[a + h]
            below = 0
            running = 0.0
            for r in range(lo, lo + enum[a + h]):
                if not masked or keep[e0 + r]:
                    running += (ecum[e0 + r] - below + alpha) ** beta
                below = ecum[e0 + r]
                out[e0 + r] = running


@chain_kernel
def truncate(node_off, entry_off, efirst, enum, ecum, etok, alpha, beta, v, top_k, top_p,
             keep, keep_unseen):
    r"""Restrict every context's next-token distribution to its likeliest tokens, in place.

    ``keep`` (entries) and ``keep_unseen`` (nodes) hold 0/1 and say what is kept so far
    (all ones: everything). Within a node the kept seen tokens are ranked by count (ties
    by token id); the unseen tokens share one weight :math:`\alpha^\beta`, below every
    seen one, and are kept or dropped as a block. ``top_k > 0``: keep the ``top_k``
    likeliest seen tokens, and the unseen block only if fewer than ``top_k`` seen tokens
    are kept. ``top_p > 0``: keep the shortest ranked prefix whose mass, at weights
    :math:`(c + \alpha)^\beta`, reaches ``top_p`` (within 1e-12) of the kept mass, the
    unseen block last."""
    for m in nb.prange(node_off.shape[0] - 1):
        a = node_off[m]
        e0 = entry_off[m]
        widest = 0
        for h in range(node_off[m + 1] - a):
            widest = max(widest, enum[a + h])
        keys = np.empty(widest, dtype=np.int64)
        rows = np.empty(widest, dtype=np.int64)
        for h in range(node_off[m + 1] - a):
            lo = efirst[a + h]
            live = 0
            below = 0
            for r in range(lo, lo + enum[a + h]):
                c = ecum[e0 + r] - below
                below = ecum[e0 + r]
                if keep[e0 + r]:
                    keys[live] = -c * (v + 1) + etok[e0 + r]
                    rows[live] = r
                    live += 1
            unseen = (v - enum[a + h]) * alpha**beta if alpha > 0.0 else 0.0
            if not keep_unseen[a + h]:
                unseen = 0.0
            order = np.argsort(keys[:live])
            if top_k > 0:
                for i in range(top_k, live):
                    keep[e0 + rows[order[i]]] = 0
                if live >= top_k:
                    keep_unseen[a + h] = 0
            else:
                total = unseen
                weights = np.empty(live)
                for i in range(live):
                    r = rows[order[i]]
                    c = ecum[e0 + r] - (ecum[e0 + r - 1] if r > lo else 0)
                    weights[i] = (c + alpha) ** beta
                    total += weights[i]
                running = 0.0
                cut = live
                for i in range(live):
                    running += weights[i]
                    if running >= (top_p - 1e-12) * total:
                        cut = i + 1
                        break
                for i in range(cut, live):
                    keep[e0 + rows[order[i]]] = 0
                if cut < live or running >= (top_p - 1e-12) * total:
                    keep_unseen[a + h] = 0


@nb.njit(inline="always")
def _expand_events(occ, pos, first, count, e0, etok, ecum, enext):
    """Write a node's ``count`` entries from ``first`` into ``occ`` from ``pos`` on, each
    entry as many times as its training events, as ``(successor node << 32) | token``."""
    below = 0
    for r in range(first, first + count):
        packed = (np.int64(enext[e0 + r]) << 32) | etok[e0 + r]
        for _ in range(ecum[e0 + r] - below):
            occ[pos] = packed
            pos += 1
        below = ecum[e0 + r]


@chain_kernel
def generate(states, node_off, entry_off, count, parent, token, efirst, enum, cfirst, cnum,
             etok, ecum, enext, child, v, n, alpha, wcum, beta, keep_unseen, prompt, out):
    r"""Write ``out`` ``(chains, k, L)``: ``k`` sequences of ``L`` tokens per chain.

    Chain ``c`` uses model ``c`` (or model 0 when the batch has one member) and stream
    ``c``. Each sequence starts from the history ``prompt`` (newest first, padded with
    ``BOS = v``: length ``n - 1``). A token is drawn from the deepest context of the
    history that the model has seen (:math:`c(h) > 0`). At temperature 1 (``wcum``
    empty): with probability :math:`c(h) / (c(h) + \alpha V)` one of its training
    events uniformly (the maximum-likelihood part), otherwise uniformly among the ``V``
    tokens. At temperature :math:`T = 1/\beta`: with weight
    :math:`(c(h, w) + \alpha)^\beta` (``wcum``, from :func:`powered_cumulative`), an
    unseen token with weight :math:`\alpha^\beta` (drawn uniformly among the unseen
    ones by rejection).
    ``keep_unseen`` (nodes; empty: all ones) drops a context's unseen tokens where 0
    (a truncation stage, :func:`truncate`).

    A chain writes :data:`LANES` sequences in lockstep, one token of each in turn: their
    table lookups are independent, so the processor overlaps their cache misses (one
    sequence alone waits for every lookup before the next can start). Each position is
    two passes over the lanes: every lane's context, draws and event index, then every
    lane's event, token and next context, so that the event loads of all lanes are in
    flight together (the same draws in the same order as one pass).
    """
    chains, k, length = out.shape
    single = node_off.shape[0] == 2
    for c in nb.prange(chains):
        m = np.int64(c)
        if single:
            m = 0
        a = node_off[m]
        e0 = entry_off[m]
        ca = a - m
        hists = np.empty((LANES, max(n - 1, 1)), dtype=np.int32)
        states_l = np.empty(LANES, dtype=np.int64)
        depths = np.empty(LANES, dtype=np.int64)
        lane_event = np.empty(LANES, dtype=np.int64)
        lane_next = np.empty(LANES, dtype=np.int64)
        lane_token = np.empty(LANES, dtype=np.int32)
        lane_ctx = np.empty(LANES, dtype=np.int64)
        root = _root_children(v, token, cfirst, cnum, child, a, ca)
        # every training event of every context, entry by entry: a maximum-likelihood
        # draw is then one load, occ[noff[h] + uniform integer below c(h)]
        nodes = node_off[m + 1] - a
        noff = np.empty(nodes + 1, dtype=np.int64)
        noff[0] = 0
        for h in range(nodes):
            noff[h + 1] = noff[h] + count[a + h]
        # each training event as (its next context << 32) | its token: one load gives both
        occ = np.empty(noff[nodes] if k > 0 else 0, dtype=np.int64)
        if k > 0:
            for h in range(nodes):
                _expand_events(occ, noff[h], efirst[a + h], enum[a + h], e0, etok, ecum,
                               enext)
        st = states[c]
        s0 = st[0]
        s1 = st[1]
        s2 = st[2]
        s3 = st[3]
        for b0 in range(0, k, LANES):
            lanes = min(LANES, k - b0)
            for lane in range(lanes):
                for j in range(n - 1):
                    hists[lane, j] = prompt[j]
                states_l[lane], depths[lane] = _walk(hists[lane], n, root, token, cfirst,
                                                     cnum, child, a, ca)
            for i in range(length):
                # pass 1, lane by lane (the draws in the order of one pass): each lane's
                # context, draws and, for a maximum-likelihood draw, its event's index
                for lane in range(lanes):
                    state = states_l[lane]
                    g = state
                    first = noff[g]  # c(h) = noff[h + 1] - noff[h]: one cache line
                    total = noff[g + 1] - first
                    while total == 0:
                        g = parent[a + g]
                        first = noff[g]
                        total = noff[g + 1] - first
                    u, s0, s1, s2, s3 = _local.uniform(s0, s1, s2, s3)
                    known = True
                    lo = 0
                    w = np.int32(0)
                    if wcum.shape[0] > 0:
                        lo = efirst[a + g]
                        top = lo + enum[a + g] - 1
                        seen = wcum[e0 + top]
                        unseen = (v - enum[a + g]) * alpha**beta if alpha > 0.0 else 0.0
                        if keep_unseen.shape[0] > 0 and not keep_unseen[a + g]:
                            unseen = 0.0
                        x = u * (seen + unseen)
                        if x < seen:
                            lo = _first_above(wcum, e0, lo, top, x)
                            w = etok[e0 + lo]
                        else:
                            known = False
                            while True:  # uniform among the tokens the context has not seen
                                u, s0, s1, s2, s3 = _local.uniform(s0, s1, s2, s3)
                                w = np.int32(min(np.int64(u * v), v - 1))
                                if _entry_count(g, w, efirst, enum, etok, ecum, a, e0) == 0:
                                    break
                    elif alpha > 0.0:
                        share = total + alpha * v
                        x = u * share
                        if x >= total:
                            w = np.int32(min(np.int64((x - total) / alpha), v - 1))
                            known = False
                        else:
                            u = x / total
                    # lane_event: occ index (>= 0), or -1 (w, lane_next final), or -2
                    # (unknown token: walk)
                    if known and wcum.shape[0] == 0:
                        lane_event[lane] = first + min(np.int64(u * total), total - 1)
                    elif known:
                        lane_event[lane] = -1
                        lane_next[lane] = enext[e0 + lo]
                    else:
                        lane_event[lane] = -2
                    lane_token[lane] = w
                    lane_ctx[lane] = g
                # pass 2: the events' loads (independent of each other, so the lanes'
                # cache misses overlap), the tokens and the next contexts
                for lane in range(lanes):
                    ev = lane_event[lane]
                    if ev >= 0:
                        packed = occ[ev]
                        w = np.int32(packed & 0xFFFFFFFF)
                        nxt = np.int64(packed >> 32)
                    else:
                        w = lane_token[lane]
                        nxt = lane_next[lane]
                    hist = hists[lane]
                    out[c, b0 + lane, i] = w
                    for j in range(n - 2, 0, -1):
                        hist[j] = hist[j - 1]
                    hist[0] = w
                    if ev != -2 and lane_ctx[lane] == states_l[lane] and depths[lane] == n - 1:
                        states_l[lane] = nxt
                    else:
                        states_l[lane], depths[lane] = _walk(hist, n, root, token, cfirst,
                                                             cnum, child, a, ca)
        st[0] = s0
        st[1] = s1
        st[2] = s2
        st[3] = s3


@chain_kernel
def bigram_events(node_off, entry_off, count, token, efirst, enum, cfirst, cnum, etok, ecum,
                  enext, child, v, prompt, occ_off, noff, occ, start):
    r"""Every member's training events, context by context, and the node ``start[m]`` its
    sequences start in (the deepest context of the history ``prompt``, newest first), for
    :func:`generate_bigram`.

    Member ``m`` (nodes ``a = node_off[m]`` on, ``base = a + m``, ``o = occ_off[m]``)
    stores in ``occ[o:]`` first its root's entries, one per token seen, then the events
    of every other node ``h``: ``occ[o + enum[a] + noff[base + h] + j]``, ``j < c(h)``, in
    token order. Each is ``(node of its token) << 32 | token``: the context a bigram
    model is in after writing the token (the root when the token has no node). The
    root's own events (one per training token) are not stored, so that
    ``noff[base + 1] - noff[base]`` is 0 as for any context that backs off to it:
    :func:`generate_bigram` draws the root's entry by its cumulative counts instead.
    """
    for m in nb.prange(node_off.shape[0] - 1):
        a = node_off[m]
        e0 = entry_off[m]
        ca = a - m
        root = _root_children(v, token, cfirst, cnum, child, a, ca)
        start[m] = _walk(prompt, 2, root, token, cfirst, cnum, child, a, ca)[0]
        nodes = node_off[m + 1] - a
        base = a + m
        o = occ_off[m]
        noff[base] = 0
        noff[base + 1] = 0
        for h in range(1, nodes):
            noff[base + h + 1] = noff[base + h] + count[a + h]
        for r in range(efirst[a], efirst[a] + enum[a]):
            w = etok[e0 + r]
            nxt = root[w]
            occ[o + r - efirst[a]] = (np.int64(nxt if nxt >= 0 else 0) << 32) | w
        o += enum[a]
        for h in range(1, nodes):  # a bigram's successor link is the token's node
            _expand_events(occ, o + noff[base + h], efirst[a + h], enum[a + h], e0, etok,
                           ecum, enext)


@chain_kernel
def generate_bigram(states, node_off, entry_off, count, efirst, enum, ecum, occ_off, noff, occ,
                    start, out):
    r""":func:`generate` for a maximum-likelihood bigram at temperature 1 (no smoothing, no
    truncation): the same tokens from the same draws, bit for bit.

    Such a model draws every token as one of its context's training events, uniformly:
    event ``floor(u c(h))`` of context ``h`` (``noff``, ``occ``: :func:`bigram_events`),
    one uniform ``u`` a token as :func:`generate` draws it. An unseen context
    (:math:`c(h) = 0`) backs off to the root, whose entry is found by binary search on
    its cumulative counts (rare: only tokens that end blocks lack successors). The
    context of the next token is the drawn token's node, whichever context it came
    from, and is stored with the token: a step is two loads, the context's offset and
    the event, with nothing else on the chain from one token to the next. The
    :data:`LANES` sequences of a group advance in lockstep, one token each in turn, as in
    :func:`generate` (same draws, same order), in two passes per position: every lane's
    event index (its context's offset and a draw), then every lane's event. Each pass's
    loads are independent of each other, so the processor overlaps all the lanes' cache
    misses; with one pass doing both, a lane's second load waited for its first and few
    lanes were in flight (1 chain x 10^6 tokens: 86 -> 37 ms, same tokens).
    Every sequence starts in node ``start[m]`` of member ``m`` (the prompt's context).

    The walk takes :data:`BIGRAM_GROUPS` groups at once (64 sequences: more cache misses
    in flight): their draws are taken first, in the stream's order (group by group,
    position by position, lane by lane), into a small table, and each token goes to a
    position-major scratch (one cache line for 16 lanes) copied to the sequences' rows at
    the end: writing every token straight into its row touched a different line each
    time. The same tokens from the same draws. On one core, against the one-group kernel
    in the same process (``python benchmarks/bigram_draw.py``): 1.26x at 8 chains of
    131,072 tokens and 1.12x to 1.16x at 64 of 16,384; at 1 chain x 10^6 tokens 1.05x
    to 1.16x while that draw took 5 ms, 1.41x to 1.62x while the machine's memory was
    slower and it took 7 to 17 ms (the model's events, 8 MB, miss the caches there).
    """
    chains, k, length = out.shape
    single = node_off.shape[0] == 2
    low = np.int64(0xFFFFFFFF)
    width = max(1, min(LANES * BIGRAM_GROUPS, k))
    for c in nb.prange(chains):
        m = np.int64(c)
        if single:
            m = 0
        a = node_off[m]
        e0 = entry_off[m] + efirst[a]
        base = a + m
        o = occ_off[m]
        events = o + enum[a]
        root_total = np.int64(count[a])
        root_last = enum[a] - 1
        lane_state = np.empty(width, dtype=np.int64)
        lane_event = np.empty(width, dtype=np.int64)
        draws = np.empty((length, width))
        tokens = np.empty((length, width), dtype=np.int32)
        rows = out[c]
        st = states[c]
        s0 = st[0]
        s1 = st[1]
        s2 = st[2]
        s3 = st[3]
        for w0 in range(0, k, width):
            lanes = min(width, k - w0)
            for g0 in range(0, lanes, LANES):  # the draws, in the stream's order
                group = min(LANES, lanes - g0)
                for i in range(length):
                    for lane in range(g0, g0 + group):
                        draws[i, lane], s0, s1, s2, s3 = _local.uniform(s0, s1, s2, s3)
            for lane in range(lanes):
                lane_state[lane] = start[m]
            for i in range(length):
                # two passes over the lanes: every lane's event index, then every event:
                # each pass's loads are independent, so all lanes' cache misses overlap
                for lane in range(lanes):
                    g = lane_state[lane]
                    lo = noff[base + g]
                    total = noff[base + g + 1] - lo
                    u = draws[i, lane]
                    if total > 0:
                        lane_event[lane] = events + lo + min(np.int64(u * total), total - 1)
                    else:  # the root: its first entry whose running count passes target
                        target = min(np.int64(u * root_total), root_total - 1)
                        lane_event[lane] = o + _first_above(ecum, e0, 0, root_last, target)
                for lane in range(lanes):
                    packed = occ[lane_event[lane]]
                    tokens[i, lane] = np.int32(packed & low)
                    lane_state[lane] = packed >> 32
            for lane in range(lanes):
                row = rows[w0 + lane]
                for i in range(length):
                    row[i] = tokens[i, lane]
        st[0] = s0
        st[1] = s1
        st[2] = s2
        st[3] = s3


@chain_kernel
def log_likelihood(node_off, entry_off, count, token, efirst, enum, cfirst, cnum, etok,
                   ecum, child, v, n, alpha, weight, texts, out):
    r"""Mean log-probability per token of each sequence of ``texts`` ``(T, k, L)``.

    Member ``c`` of the batch (or member 0) scores text ``c`` (or text 0); ``out``
    ``(max(B, T), k)`` receives one value per sequence. The evaluation probability
    interpolates the model's own conditionals (Jelinek–Mercer with weight
    :math:`\lambda` = ``weight``) from the
    uniform distribution up through every seen suffix context :math:`h_j`:

    .. math::

        P_{-1} = 1/V, \qquad P_j = (1-\lambda) P_{j-1} + \lambda\,
        \frac{c(h_j, w) + \alpha}{c(h_j) + \alpha V}\quad (c(h_j) > 0),

    so it is never 0 and an unseen event costs at most :math:`\log(V/(1-\lambda)^n)`.
    """
    rows = out.shape[0]
    one_model = node_off.shape[0] == 2
    one_text = texts.shape[0] == 1
    _, k, length = texts.shape
    for c in nb.prange(rows):
        m = np.int64(c)
        if one_model:
            m = 0
        a = node_off[m]
        e0 = entry_off[m]
        ca = a - m
        text = texts[0] if one_text else texts[c]
        hist = np.empty(max(n - 1, 1), dtype=np.int32)
        root = _root_children(v, token, cfirst, cnum, child, a, ca)
        unigram = np.zeros(v, dtype=np.int64)
        _root_counts(efirst, enum, etok, ecum, a, e0, unigram)
        size = count[a]
        for b in range(k):
            total = 0.0
            for j in range(n - 1):
                hist[j] = v
            for i in range(length):
                w = text[b, i]
                p = _unigram_p(weight, v, unigram[w], alpha, size)
                node = 0
                for j in range(1, n):
                    if j == 1:
                        node = root[hist[0]]
                    else:
                        node = _find_child(node, hist[j - 1], token, cfirst, cnum, child, a,
                                           ca)
                    if node < 0:
                        break
                    ch = count[a + node]
                    if ch == 0:
                        break
                    cw = _entry_count(node, w, efirst, enum, etok, ecum, a, e0)
                    p = _context_p(weight, p, cw, alpha, ch, v)
                total += np.log(p)
                for j in range(n - 2, 0, -1):
                    hist[j] = hist[j - 1]
                if n > 1:
                    hist[0] = w
            out[c, b] = total / length


@chain_kernel
def bigram_pair_log_likelihood(node_off, entry_off, count, token, efirst, enum, cfirst,
                               cnum, etok, ecum, child, v, alpha, weight, pair_h, pair_w,
                               inverse, out):
    """:func:`log_likelihood` of bigram models on one text shared by every member, with
    the same bits, by its distinct (context, token) pairs.

    ``pair_h``/``pair_w``: the text's distinct pairs (context ``BOS = v`` at a block's
    start), sorted by context then token; ``inverse`` ``(k, L)``: each position's pair.
    Each pair's log-probability is computed once, by the expression of
    :func:`log_likelihood` (:func:`_pair_member`); each block's sum then adds them in
    text order, as :func:`log_likelihood` does.
    """
    for m in nb.prange(node_off.shape[0] - 1):
        _pair_member(m, node_off, entry_off, count, token, efirst, enum, cfirst, cnum,
                     etok, ecum, child, v, alpha, weight, pair_h, pair_w, inverse, out[m])


@nb.njit(inline="always")
def _group_end(keys, d, size):
    """End of the run of equal ``keys`` that starts at ``d`` (sorted keys)."""
    end = d
    while end < size and keys[end] == keys[d]:
        end += 1
    return end


@nb.njit(inline="always")
def _scatter_counts(dense, etok, ecum, e0, start, stop):
    """``dense[w] = c(h, w)`` for the entries ``start:stop`` of one context."""
    below = 0
    for r in range(start, stop):
        dense[etok[e0 + r]] = ecum[e0 + r] - below
        below = ecum[e0 + r]


@nb.njit(inline="always")
def _clear_counts(dense, etok, e0, start, stop):
    """Undo :func:`_scatter_counts` (``dense`` is all zeros again)."""
    for r in range(start, stop):
        dense[etok[e0 + r]] = 0


@nb.njit(inline="always")
def _pair_member(m, node_off, entry_off, count, token, efirst, enum, cfirst, cnum, etok,
                 ecum, child, v, alpha, weight, pair_h, pair_w, inverse, row):
    """``row[b]``: the mean log-probability of block ``b`` under member ``m``, as
    :func:`bigram_pair_log_likelihood` computes it. A pair's count is one load from the
    context's counts scattered by token into a dense row (cleared after its pairs); the
    log-probability of a token after an unseen context, and (at :math:`\alpha = 0`,
    where the context's term adds exactly 0.0) of an unseen pair of a seen context,
    depends on the token alone and is computed once per token."""
    pairs = pair_h.shape[0]
    k, length = inverse.shape
    a = node_off[m]
    e0 = entry_off[m]
    ca = a - m
    root = _root_children(v, token, cfirst, cnum, child, a, ca)
    unigram = np.zeros(v, dtype=np.int64)
    _root_counts(efirst, enum, etok, ecum, a, e0, unigram)
    size = count[a]
    logp = np.empty(pairs)
    log_unseen = np.full(v, np.nan)  # NaN: not computed yet
    log_missing = np.full(v, np.nan)
    dense = np.zeros(v, dtype=np.int64)
    d = 0
    while d < pairs:
        h = pair_h[d]
        end = _group_end(pair_h, d, pairs)
        node = root[h]
        ch = count[a + node] if node >= 0 else 0
        if ch == 0:
            for e in range(d, end):
                w = pair_w[e]
                lp = log_unseen[w]
                if lp != lp:
                    lp = np.log(_unigram_p(weight, v, unigram[w], alpha, size))
                    log_unseen[w] = lp
                logp[e] = lp
            d = end
            continue
        start = efirst[a + node]
        stop = start + enum[a + node]
        _scatter_counts(dense, etok, ecum, e0, start, stop)
        for e in range(d, end):
            w = pair_w[e]
            cw = dense[w]
            if cw == 0 and alpha == 0.0:
                lp = log_missing[w]
                if lp != lp:
                    p = _unigram_p(weight, v, unigram[w], alpha, size)
                    p = _context_p(weight, p, cw, alpha, ch, v)
                    lp = np.log(p)
                    log_missing[w] = lp
                logp[e] = lp
                continue
            p = _unigram_p(weight, v, unigram[w], alpha, size)
            p = _context_p(weight, p, cw, alpha, ch, v)
            logp[e] = np.log(p)
        _clear_counts(dense, etok, e0, start, stop)
        d = end
    for b in range(k):
        total = 0.0
        for i in range(length):
            total += logp[inverse[b, i]]
        row[b] = total / length


@chain_kernel
def bigram_mean_log_likelihood(node_off, entry_off, count, token, efirst, enum, cfirst,
                               cnum, etok, ecum, child, v, weight, pair_h, pair_w, keys,
                               mult, pair_mult, ctx_total, tok_total, out):
    r"""``out[m]``: mean log-probability per token of one text under each maximum-
    likelihood bigram (:math:`\alpha = 0`) of the batch, evaluation smoothing of
    :func:`log_likelihood`, in time proportional to the smaller of the member's size and
    the text's number of distinct pairs.

    The text is given by its distinct pairs (``pair_h``, ``pair_w``, sorted by context
    then token, as for :func:`bigram_pair_log_likelihood`) with their multiplicities
    ``pair_mult``, the same in the hash table ``keys`` / ``mult`` (key :math:`h(V+1)+w`),
    and its positions per context ``ctx_total`` ``(V + 1,)`` and per token ``tok_total``
    ``(V,)``; :math:`P` positions in all. With :math:`u_w = (1-\lambda)/V + \lambda
    c_w/T` the interpolated unigram, a position's probability is :math:`u_w` after an
    unseen context, :math:`(1-\lambda)u_w` after a seen context :math:`h` without the
    pair, and :math:`p_{hw} = (1-\lambda)u_w + \lambda c(h,w)/c(h)` for a seen pair, so
    the sum over positions is

    .. math::

        \sum_w n_w \log u_w + \log(1-\lambda)\Big(\sum_{h:\,c(h)>0} n_h - \sum_{c(h,w)>0}
        n_{hw}\Big) + \sum_{c(h,w)>0} n_{hw} \log\frac{p_{hw}}{u_w}.

    The first sum runs over the member's unigram entries grouped by count (tokens with one
    count share :math:`u_w`: a logarithm per distinct count; tokens it never saw share
    one). The seen pairs are found from the smaller side: a member with at most
    1/:data:`MEAN_PAIRS_FACTOR` as many events as the text has pairs walks its contexts
    and events, each event's :math:`n_{hw}` one probe of the table; a larger one walks
    the text's pairs, each seen context's counts scattered into a dense row (one load a
    pair). Each seen pair costs one logarithm. The result equals the per-position mean
    up to rounding (the terms are grouped differently: a few units in :math:`10^{-13}`
    relative, tests/test_ngram.py).
    """
    pairs = pair_h.shape[0]
    positions = 0
    for e in range(pairs):
        positions += pair_mult[e]
    mask = keys.shape[0] - 1
    log_keep = np.log(1.0 - weight)
    members = node_off.shape[0] - 1
    tasks = min(members, BUILD_TASKS)
    for task in nb.prange(tasks):
        # one set of working rows per task: u_w of the member's tokens that occur in the
        # text, positions per count, and for a large member its depth-1 node per token
        # and the dense counts of one context (both left as they were found)
        u_of = np.empty(v)
        by_count = np.zeros(COUNT_TABLE, dtype=np.int64)
        root = np.full(v + 1, -1, dtype=np.int32)
        dense = np.zeros(v, dtype=np.int64)
        for m in range(task, members, tasks):
            a = node_off[m]
            e0 = entry_off[m]
            ca = a - m
            size = count[a]
            # the unigram term
            seen = np.int64(0)
            sum_u = 0.0
            below = 0
            for r in range(efirst[a], efirst[a] + enum[a]):
                w = etok[e0 + r]
                cw = ecum[e0 + r] - below
                below = ecum[e0 + r]
                n = tok_total[w]
                if n > 0:
                    u = _unigram_p(weight, v, cw, 0.0, size)
                    u_of[w] = u
                    seen += n
                    if cw < COUNT_TABLE:
                        by_count[cw] += n
                    else:
                        sum_u += n * np.log(u)
            for cw in range(1, COUNT_TABLE):
                if by_count[cw] > 0:
                    sum_u += by_count[cw] * np.log(_unigram_p(weight, v, cw, 0.0, size))
                    by_count[cw] = 0
            sum_u += (positions - seen) * np.log((1.0 - weight) / v)
            # the seen contexts' positions and the seen pairs' corrections (a pair in the
            # text has its token in the text: its u was stored above)
            in_seen = np.int64(0)
            hits = np.int64(0)
            correction = 0.0
            if (entry_off[m + 1] - e0) * MEAN_PAIRS_FACTOR <= pairs:
                for r in range(cfirst[a], cfirst[a] + cnum[a]):
                    node = child[ca + r]
                    ch = count[a + node]
                    h = token[a + node]
                    nh = ctx_total[h]
                    if ch == 0 or nh == 0:
                        continue
                    in_seen += nh
                    below = 0
                    for q in range(efirst[a + node], efirst[a + node] + enum[a + node]):
                        w = etok[e0 + q]
                        cw = ecum[e0 + q] - below
                        below = ecum[e0 + q]
                        n = _lookup(keys, mult, mask, np.int64(h) * (v + 1) + w, 0)
                        if n > 0:
                            correction += n * np.log((1.0 - weight)
                                                     + weight * cw / (ch * u_of[w]))
                            hits += n
            else:
                for r in range(cfirst[a], cfirst[a] + cnum[a]):
                    node = child[ca + r]
                    root[token[a + node]] = node
                d = 0
                while d < pairs:
                    h = pair_h[d]
                    end = _group_end(pair_h, d, pairs)
                    node = root[h]
                    ch = count[a + node] if node >= 0 else 0
                    if ch == 0:
                        d = end
                        continue
                    in_seen += ctx_total[h]
                    start = efirst[a + node]
                    stop = start + enum[a + node]
                    _scatter_counts(dense, etok, ecum, e0, start, stop)
                    for e in range(d, end):
                        w = pair_w[e]
                        cw = dense[w]
                        if cw > 0:
                            n = pair_mult[e]
                            correction += n * np.log((1.0 - weight)
                                                     + weight * cw / (ch * u_of[w]))
                            hits += n
                    _clear_counts(dense, etok, e0, start, stop)
                    d = end
                for r in range(cfirst[a], cfirst[a] + cnum[a]):
                    root[token[a + child[ca + r]]] = -1
            out[m] = (sum_u + log_keep * (in_seen - hits) + correction) / positions


@nb.njit(cache=True)
def fill_table(keys, values, items, counts):
    """Insert the distinct non-negative ``items`` with their ``counts`` into the empty
    open-addressing table ``keys``/``values`` (``keys`` all ``-1``, a power of two at
    least twice as long as ``items``)."""
    mask = keys.shape[0] - 1
    for i in range(items.shape[0]):
        _find_or_insert(keys, values, mask, items[i], counts[i])


@nb.njit(cache=True)
def bigram_logp_table(node_off, entry_off, count, token, efirst, enum, cfirst, cnum, etok,
                      ecum, child, v, alpha, weight, keys, values):
    """Every (context, token) event of one bigram model (a batch of one) in an
    open-addressing table: key ``h (V + 1) + w`` (context ``h``, begin-of-sequence ``V``)
    in ``keys`` (``-1``: empty; size a power of two at least twice the events), its
    log-probability under the evaluation smoothing of :func:`log_likelihood` (the same
    expression, so the same bits) in ``values``. For
    :func:`bigram_shared_log_likelihood`."""
    a = node_off[0]
    e0 = entry_off[0]
    mask = keys.shape[0] - 1
    root = _root_children(v, token, cfirst, cnum, child, a, a)
    unigram = np.zeros(v, dtype=np.int64)
    _root_counts(efirst, enum, etok, ecum, a, e0, unigram)
    size = count[a]
    for h in range(v + 1):
        node = root[h]
        if node < 0:
            continue
        ch = count[a + node]
        below = 0
        for r in range(efirst[a + node], efirst[a + node] + enum[a + node]):
            w = etok[e0 + r]
            cw = ecum[e0 + r] - below
            below = ecum[e0 + r]
            p = _unigram_p(weight, v, unigram[w], alpha, size)
            p = _context_p(weight, p, cw, alpha, ch, v)
            _find_or_insert(keys, values, mask, np.int64(h) * (v + 1) + w, np.log(p))


@chain_kernel
def bigram_shared_log_likelihood(node_off, entry_off, count, token, efirst, enum, cfirst,
                                 cnum, etok, ecum, child, v, alpha, weight, keys, values,
                                 texts, out):
    """:func:`log_likelihood` of one bigram model (a batch of one) on many texts
    ``(T, k, L)``, with the same bits: ``out`` ``(T, k)``.

    A seen pair's log-probability is one probe of the table ``keys``/``values``
    (:func:`bigram_logp_table`) instead of a binary search of the context's entries (up
    to 14 steps in the long rows of a real corpus's frequent words), two divisions and a
    logarithm; the others are computed as :func:`log_likelihood` computes them, with the
    model's dense maps (token to depth-1 node, unigram counts) made once for all texts.
    Texts are scored in parallel, each sequence summed in text order.
    """
    a = node_off[0]
    e0 = entry_off[0]
    mask = keys.shape[0] - 1
    root = _root_children(v, token, cfirst, cnum, child, a, a)
    unigram = np.zeros(v, dtype=np.int64)
    _root_counts(efirst, enum, etok, ecum, a, e0, unigram)
    size = count[a]
    rows, k, length = texts.shape
    for c in nb.prange(rows):
        text = texts[c]
        for b in range(k):
            total = 0.0
            h = v
            for i in range(length):
                w = text[b, i]
                lp = _lookup(keys, values, mask, np.int64(h) * (v + 1) + w, np.nan)
                if lp != lp:  # not a seen pair (a seen pair's log-probability is finite)
                    p = _unigram_p(weight, v, unigram[w], alpha, size)
                    node = root[h]
                    if node >= 0:
                        ch = count[a + node]
                        if ch != 0:
                            p = _context_p(weight, p, 0, alpha, ch, v)
                    lp = np.log(p)
                total += lp
                h = w
            out[c, b] = total / length


@chain_kernel
def unigram_counts(node_off, entry_off, efirst, enum, etok, ecum, out):
    """``out`` ``(B, V)`` int64 (zeroed): each model's root counts :math:`c(w)`."""
    for c in nb.prange(out.shape[0]):
        _root_counts(efirst, enum, etok, ecum, node_off[c], entry_off[c], out[c])


@chain_kernel
def tail_counts(node_off, entry_off, efirst, enum, etok, ecum, in_tail, out):
    """``out[m]``: how many of member ``m``'s training tokens are of the types marked in
    ``in_tail`` ``(V,)`` (uint8), summed over its unigram entries (the types it saw)."""
    for m in nb.prange(node_off.shape[0] - 1):
        a = node_off[m]
        e0 = entry_off[m]
        below = 0
        t = np.int64(0)
        for r in range(efirst[a], efirst[a] + enum[a]):
            t += (ecum[e0 + r] - below) * np.int64(in_tail[etok[e0 + r]])
            below = ecum[e0 + r]
        out[m] = t


@chain_kernel
def unigram_entropy(node_off, entry_off, count, efirst, enum, ecum, v, alpha, out):
    r"""``out[m]``: entropy :math:`-\sum_w q_w \log q_w` (nats) of member ``m``'s unigram
    distribution :math:`q_w = (c_w + \alpha) / (T + \alpha V)` (terms with
    :math:`q_w = 0` are 0; an empty member gives 0).

    Types with the same count have the same term, so the counts below
    :data:`COUNT_TABLE` are tallied first (from the root's entries, the types the
    member saw; the :math:`V` minus those have count 0) and each distinct count's term
    :math:`q \log q` is computed once and multiplied by its tally: a logarithm per
    distinct count instead of per type, and a pass over the types seen instead of all
    :math:`V`. The sum runs over the counts in increasing order; it differs from the
    sum over types in rounding only (a few units in the last place, tests/test_ngram.py).
    """
    for m in nb.prange(node_off.shape[0] - 1):
        a = node_off[m]
        e0 = entry_off[m]
        tally = np.zeros(COUNT_TABLE, dtype=np.int64)
        total = count[a]
        denom = total + alpha * v
        if not denom > 0.0:
            out[m] = 0.0
            continue
        big = 0.0
        below = 0
        for r in range(efirst[a], efirst[a] + enum[a]):
            cw = ecum[e0 + r] - below
            below = ecum[e0 + r]
            if cw < COUNT_TABLE:
                tally[cw] += 1
            else:
                q = (cw + alpha) / denom
                big += q * np.log(q)
        tally[0] += v - enum[a]
        acc = 0.0
        for cw in range(COUNT_TABLE):
            if tally[cw] > 0:
                q = (cw + alpha) / denom
                if q > 0.0:
                    acc += tally[cw] * (q * np.log(q))
        out[m] = -(acc + big)


@nb.njit(inline="always")
def _root_counts(efirst, enum, etok, ecum, a, e0, row):
    """``row[w] = c(w)``: one chain's unigram counts, from its root's cumulative counts."""
    below = 0
    for r in range(efirst[a], efirst[a] + enum[a]):
        row[etok[e0 + r]] = ecum[e0 + r] - below
        below = ecum[e0 + r]


@nb.njit(inline="always")
def _gram_key(row, i, order, v, packed):
    key = np.int64(0)
    if packed:
        for j in range(order):
            key = key * v + row[i + j]
        return key
    h = _U64(0x243F6A8885A308D3)
    for j in range(order):
        h = (h ^ _U64(row[i + j])) * _U64(0x100000001B3)
        h ^= h >> _U64(29)
    return np.int64(h >> _U64(1))


@chain_kernel
def text_statistics(texts, v, packed2, packed4, out):
    """Per chain, over its sequences ``texts`` ``(B, k, L)``: ``out[c]`` =
    (distinct 2-grams / 2-grams, distinct 4-grams / 4-grams, repeated 4-grams / 4-grams),
    where a 4-gram is *repeated* if it occurred earlier in the same sequence.

    One pass per order over the chain's n-grams with an open-addressing table of their
    keys (:func:`_gram_key`), at most half full, that also holds the sequence each key
    was last seen in: a key not in the table is a new distinct n-gram, a key last seen
    in the current sequence is a repeat. (Sorting the keys, as before, took 50 ns a
    token; the table takes a few.)
    """
    chains, k, length = texts.shape
    tasks = min(chains, BUILD_TASKS)
    for task in nb.prange(tasks):
        # one table per task, refilled for each chain and order (not allocated again)
        largest = table_size(k * max(length - 1, 1))
        keys = np.empty(largest, dtype=np.int64)
        last = np.empty(largest, dtype=np.int32)
        for c in range(task, chains, tasks):
            for slot in range(2):
                order = 2 if slot == 0 else 4
                packed = packed2 if slot == 0 else packed4
                per = length - order + 1
                if per <= 0:
                    out[c, slot] = np.nan
                    if slot == 1:
                        out[c, 2] = np.nan
                    continue
                mask = table_size(k * per) - 1
                keys[:mask + 1] = -1
                distinct = 0
                repeated = 0
                for b in range(k):
                    row = texts[c, b]
                    for i in range(per):
                        key = _gram_key(row, i, order, v, packed)
                        j = _slot(key, mask)
                        while True:
                            kj = keys[j]
                            if kj == key:
                                repeated += last[j] == b
                                last[j] = b
                                break
                            if kj == -1:
                                keys[j] = key
                                last[j] = b
                                distinct += 1
                                break
                            j = (j + 1) & mask
                out[c, slot] = distinct / (k * per)
                if slot == 1:
                    out[c, 2] = repeated / (k * per)


#: :func:`draw_blocks` shuffles a dense array of all indices while ``n_blocks`` is at most
#: this many times ``k`` (plus :data:`DENSE_BLOCKS_MIN`): filling it costs less than
#: the hash map's probes then.
DENSE_BLOCKS_FACTOR = 16
DENSE_BLOCKS_MIN = 1 << 12


@chain_kernel
def draw_blocks(states, n_blocks, k, out_index):
    """``out_index`` ``(chains, k)``: per chain ``k`` distinct block indices in
    ``[0, n_blocks)`` (``k <= n_blocks``), in random order: the first ``k`` steps of a
    Fisher–Yates shuffle of ``0 .. n_blocks - 1``. The positions it swaps live in a
    dense array while ``n_blocks <=`` :data:`DENSE_BLOCKS_FACTOR` ``* k +``
    :data:`DENSE_BLOCKS_MIN`, else in a hash map of the swapped positions only
    (:math:`O(k)` memory and time); both make the same swaps, so the same indices."""
    dense = n_blocks <= DENSE_BLOCKS_FACTOR * k + DENSE_BLOCKS_MIN
    for c in nb.prange(out_index.shape[0]):
        st = states[c]
        s0 = st[0]
        s1 = st[1]
        s2 = st[2]
        s3 = st[3]
        if dense:
            perm = np.arange(n_blocks).astype(np.int32)
            for i in range(k):
                u, s0, s1, s2, s3 = _local.uniform(s0, s1, s2, s3)
                span = n_blocks - i
                j = i + min(np.int64(u * span), span - 1)
                vj = perm[j]
                perm[j] = perm[i]
                out_index[c, i] = vj
            st[0] = s0
            st[1] = s1
            st[2] = s2
            st[3] = s3
            continue
        mask = table_size(k) - 1
        keys = np.full(mask + 1, -1, dtype=np.int64)
        vals = np.empty(mask + 1, dtype=np.int32)
        for i in range(k):
            u, s0, s1, s2, s3 = _local.uniform(s0, s1, s2, s3)
            span = n_blocks - i
            j = i + min(np.int64(u * span), span - 1)
            # value at j (default j) and at i (default i), then swap
            vj, _ = _find_or_insert(keys, vals, mask, j, j)
            vi, _ = _find_or_insert(keys, vals, mask, i, i)
            out_index[c, i] = vj
            # position j now holds what position i held
            slot = _slot(j, mask)
            while keys[slot] != j:
                slot = (slot + 1) & mask
            vals[slot] = vi
        st[0] = s0
        st[1] = s1
        st[2] = s2
        st[3] = s3
