"""The hash-table build of one chain's n-gram model that ``collapse_sim._kernels.ngram``
used until 2026-12-02: kept as a reference the sorting build must match, array for array.
"""

import numba as nb
import numpy as np

# the build's open-addressing table and stable counting sort are still the kernel
# module's (its block shuffle and its sorting build use them)
from collapse_sim._kernels.ngram import _find_or_insert, _scatter, table_size

INITIAL_TABLE = 1 << 12


@nb.njit
def _doubled(keys, vals):
    """The table rehashed into twice the capacity."""
    size = keys.shape[0] * 2
    mask = size - 1
    new_keys = np.full(size, -1, dtype=np.int64)
    new_vals = np.empty(size, dtype=np.int32)
    for i in range(keys.shape[0]):
        if keys[i] != -1:
            _find_or_insert(new_keys, new_vals, mask, keys[i], vals[i])
    return new_keys, new_vals


@nb.njit
def hashed_build_chain(tokens, v, n, count, parent, token, efirst, enum, cfirst, cnum,
                 etok, ecum, enext, child, sizes):
    r"""Build one chain's model from its blocks ``tokens`` ``(k, L)`` into the buffers.

    ``sizes`` receives (nodes, entries). Buffers hold at least
    :math:`1 + \sum_{j=1}^{n-1} \min(k (L+1), (V+1)^j)` nodes and
    :math:`\min(k L, V) + (n-1) k L` entries (``families.ngram.build``).
    """
    k, length = tokens.shape
    base = np.int64(v + 1)
    max_nodes = count.shape[0]
    max_entries = etok.shape[0]
    # tables start small and double when half full: a refit of collapsed text has far
    # fewer distinct contexts than the worst-case bound, and a table sized to the bound
    # would be written in full and missed in cache on every lookup
    nmask = table_size(min(max_nodes, INITIAL_TABLE)) - 1
    emask = table_size(min(max_entries, INITIAL_TABLE)) - 1
    nkeys = np.full(nmask + 1, -1, dtype=np.int64)
    nvals = np.empty(nmask + 1, dtype=np.int32)
    ekeys = np.full(emask + 1, -1, dtype=np.int64)
    evals = np.empty(emask + 1, dtype=np.int32)
    enode = np.empty(max_entries, dtype=np.int32)
    ecnt = np.zeros(max_entries, dtype=np.int32)
    ctx = np.empty((length + 1, n), dtype=np.int32)
    first_level = np.full(v + 1, -1, dtype=np.int32)
    root_entry = np.full(v, -1, dtype=np.int32)
    nodes = 1
    count[0] = 0
    parent[0] = -1
    token[0] = -1
    entries = 0
    for b in range(k):
        row = tokens[b]
        for i in range(length + 1):
            node = 0
            ctx[i, 0] = 0
            for j in range(1, n):
                t = row[i - j] if i - j >= 0 else v
                if j == 1:  # the root's children: a dense table by token
                    found = first_level[t]
                    new = found < 0
                    if new:
                        found = nodes
                        first_level[t] = nodes
                else:
                    if 2 * (nodes + 1) > nmask + 1:
                        nkeys, nvals = _doubled(nkeys, nvals)
                        nmask = nkeys.shape[0] - 1
                    found, new = _find_or_insert(nkeys, nvals, nmask, node * base + t, nodes)
                if new:
                    parent[nodes] = node
                    token[nodes] = t
                    count[nodes] = 0
                    nodes += 1
                node = found
                ctx[i, j] = node
        for i in range(length):
            w = row[i]
            for j in range(n):
                h = ctx[i, j]
                if j == 0:  # the root's (unigram) events: a dense table by token
                    e = root_entry[w]
                    new = e < 0
                    if new:
                        e = entries
                        root_entry[w] = entries
                else:
                    if 2 * (entries + 1) > emask + 1:
                        ekeys, evals = _doubled(ekeys, evals)
                        emask = ekeys.shape[0] - 1
                    e, new = _find_or_insert(ekeys, evals, emask, np.int64(h) * base + w,
                                             entries)
                if new:
                    etok[entries] = w
                    enode[entries] = h
                    enext[entries] = ctx[i + 1, n - 1] if j == n - 1 else -1
                    entries += 1
                ecnt[e] += 1
                count[h] += 1
    # entries sorted by (node, token): by token, then stably by node
    bucket = np.empty(max(nodes, v + 1) + 1, dtype=np.int64)
    first = np.arange(entries).astype(np.int32)
    second = np.empty(entries, dtype=np.int32)
    _scatter(first, etok, v, second, bucket)
    _scatter(second, enode, nodes, first, bucket)
    tok_sorted = np.empty(entries, dtype=np.int32)
    next_sorted = np.empty(entries, dtype=np.int32)
    enum[:nodes] = 0
    for h in range(nodes):
        efirst[h] = 0
    running = 0
    last = -1
    for r in range(entries):
        e = first[r]
        h = enode[e]
        if h != last:
            efirst[h] = r
            running = 0
            last = h
        enum[h] += 1
        running += ecnt[e]
        tok_sorted[r] = etok[e]
        ecum[r] = running
        next_sorted[r] = enext[e]
    etok[:entries] = tok_sorted
    enext[:entries] = next_sorted
    # children: nodes 1.. sorted by (parent, token); BOS (= v) is a token here
    m = nodes - 1
    tok_plus = np.empty(nodes, dtype=np.int32)
    for h in range(nodes):
        tok_plus[h] = token[h] if token[h] >= 0 else 0
    first_c = np.arange(1, nodes).astype(np.int32)
    second_c = np.empty(m, dtype=np.int32)
    _scatter(first_c, tok_plus, v + 1, second_c, bucket)
    par = np.empty(nodes, dtype=np.int32)
    for h in range(nodes):
        par[h] = parent[h] if parent[h] >= 0 else 0
    _scatter(second_c, par, nodes, first_c, bucket)
    cnum[:nodes] = 0
    for h in range(nodes):
        cfirst[h] = 0
    last = -1
    for r in range(m):
        c = first_c[r]
        p = parent[c]
        if p != last:
            cfirst[p] = r
            last = p
        cnum[p] += 1
        child[r] = c
    sizes[0] = nodes
    sizes[1] = entries
