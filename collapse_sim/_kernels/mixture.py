"""Sampling from batches of Gaussian mixtures, jitted."""

import numba as nb
import numpy as np

from . import local as _local
from ._dispatch import chain_kernel
from .rng import shuffle


@chain_kernel
def mixture_points(states, cumw, means, chols, out):
    """``out[c, i]`` drawn from mixture ``c``: a component by inversion, then ``mu + L z``.

    Per point, chain ``c``'s stream gives one uniform (the component: the first
    ``k`` with ``u < cumw[c, k]``, so zero-weight components are never chosen)
    and then ``d`` normals. The chain's four state words stay in local variables for
    the whole chain (:mod:`.local`: the same draws as ``rng.next_double`` and
    ``rng.next_normal``).
    """
    chains, n, d = out.shape
    k_max = cumw.shape[1] - 1
    for c in nb.prange(chains):
        st = states[c]
        s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
        z = np.empty(d)
        for i in range(n):
            u, s0, s1, s2, s3 = _local.uniform(s0, s1, s2, s3)
            k = 0
            while k < k_max and u >= cumw[c, k]:
                k += 1
            for j in range(d):
                z[j], s0, s1, s2, s3 = _local.normal(s0, s1, s2, s3)
            for a in range(d):
                acc = means[c, k, a]
                for b in range(a + 1):
                    acc += chols[c, k, a, b] * z[b]
                out[c, i, a] = acc
        st[0], st[1], st[2], st[3] = s0, s1, s2, s3


@chain_kernel
def stratified_points(states, counts, means, chols, out):
    """``out[c]``: ``counts[c, k]`` points of component ``k``, in a uniformly shuffled order.

    Per chain, the component labels ``0 ... 0, 1 ... 1, ...`` are shuffled by
    Fisher–Yates from the chain's stream (``rng.shuffle``), then every point takes
    ``d`` normals: the law of scikit-learn's ``make_blobs`` (which draws each
    component's block and then shuffles the rows).
    """
    chains, n, d = out.shape
    k_count = counts.shape[1]
    for c in nb.prange(chains):
        s = states[c]
        labels = np.empty(n, dtype=np.int64)
        i = 0
        for k in range(k_count):
            for _ in range(counts[c, k]):
                labels[i] = k
                i += 1
        shuffle(labels, s)
        s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
        z = np.empty(d)
        for i in range(n):
            k = labels[i]
            for j in range(d):
                z[j], s0, s1, s2, s3 = _local.normal(s0, s1, s2, s3)
            for a in range(d):
                acc = means[c, k, a]
                for b in range(a + 1):
                    acc += chols[c, k, a, b] * z[b]
                out[c, i, a] = acc
        s[0], s[1], s[2], s[3] = s0, s1, s2, s3
