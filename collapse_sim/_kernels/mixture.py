"""Sampling from batches of Gaussian mixtures, jitted."""

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .rng import next_double, next_normal


@chain_kernel
def mixture_points(states, cumw, means, chols, out):
    """``out[c, i]`` drawn from mixture ``c``: a component by inversion, then ``mu + L z``.

    Per point, chain ``c``'s stream gives one uniform (the component: the first
    ``k`` with ``u < cumw[c, k]``, so zero-weight components are never chosen)
    and then ``d`` normals.
    """
    chains, n, d = out.shape
    k_max = cumw.shape[1] - 1
    for c in nb.prange(chains):
        s = states[c]
        z = np.empty(d)
        for i in range(n):
            u = next_double(s)
            k = 0
            while k < k_max and u >= cumw[c, k]:
                k += 1
            for j in range(d):
                z[j] = next_normal(s)
            for a in range(d):
                acc = means[c, k, a]
                for b in range(a + 1):
                    acc += chols[c, k, a, b] * z[b]
                out[c, i, a] = acc
