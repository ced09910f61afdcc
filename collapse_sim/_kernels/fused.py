"""A whole run of the exact 1-D Gaussian path in one kernel: all generations, every chain.

Per chain it performs exactly the steps, in exactly the order and arithmetic, of the
generation-by-generation exact path (``engine._Loop`` with
``sampling.exact_gaussian_moments``), so both give bit-identical models; a test
asserts it. What it saves is the Python work per generation.
"""

import math

import numba as nb
import numpy as np

from . import local
from ._dispatch import chain_kernel
from .rng import next_chisquare, next_normal
from .split import split_1d


@nb.njit
def _draw(s, k, mean, var):
    """Exact (count, mean, M2) of ``k`` points from N(mean, var), as exact_normal_moments."""
    zmean = next_normal(s) * (1.0 / math.sqrt(k))
    df = k - 1
    a = math.sqrt(next_chisquare(s, df)) if df > 0 else 0.0
    return mean + math.sqrt(var) * zmean, (a * a) * var


@nb.njit(inline="always")
def _draw_stored(s, s0, s1, s2, s3, k, mean, var):
    """:func:`_draw` for a chain whose state words are in local variables: they are
    stored into the state array ``s`` for the draw and read back afterwards,
    ``(mean, M2, s0, s1, s2, s3)``."""
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3
    m, m2 = _draw(s, k, mean, var)
    return m, m2, s[0], s[1], s[2], s[3]


@nb.njit(inline="always")
def _draw_fixed_local(s0, s1, s2, s3, scale, d_mt, c_mt, mean, var):
    """:func:`_draw` for a size ``k`` with ``(k - 1) / 2 >= 1``, constants precomputed, on
    register-resident state: ``(mean, M2, s0, s1, s2, s3)``.

    ``scale = 1/sqrt(k)``, ``d_mt = (k - 1)/2 - 1/3``, ``c_mt = 1/sqrt(9 d_mt)``: the same
    numbers ``next_chisquare`` would compute, and :mod:`local` draws what ``next_normal``
    and ``next_double`` would, so the draw is bit-identical to :func:`_draw`'s.
    """
    z, s0, s1, s2, s3 = local.normal(s0, s1, s2, s3)
    zmean = z * scale
    while True:  # _gamma_mt, inlined on the four words
        z, s0, s1, s2, s3 = local.normal(s0, s1, s2, s3)
        t = 1.0 + c_mt * z
        if t <= 0.0:
            continue
        v = t * t * t
        u, s0, s1, s2, s3 = local.uniform(s0, s1, s2, s3)
        u = 1.0 - u  # (0, 1]
        z2 = z * z
        if u < 1.0 - 0.0331 * z2 * z2 or math.log(u) < 0.5 * z2 + d_mt * (1.0 - v
                                                                          + math.log(v)):
            break
    a = math.sqrt(2.0 * (d_mt * v))
    return mean + math.sqrt(var) * zmean, (a * a) * var, s0, s1, s2, s3


@nb.njit
def _add(ka, ma, sa, kb, mb, sb):
    """Chan et al.'s pairwise union of two moment triples (as ``Moments.__add__``)."""
    if ka == 0:
        return kb, mb, sb
    if kb == 0:
        return ka, ma, sa
    k = ka + kb
    delta = mb - ma
    mean = ma + delta * (kb / k)
    scatter = sa + sb + (delta * delta) * (ka * kb / k)
    return k, mean, scatter


@chain_kernel
def exact_run_1d(states, n, ddof, real_k, fresh, synth, pool_all, mu0, var0, start, carry,
                 syn_scale, means, variances):
    """Generations ``start .. start + G - 1`` of every chain; ``G = means.shape[0]``.

    Synthetic points come from ``N(m, syn_scale * v)`` (a
    ``Temperature(tau)`` stage: ``syn_scale = tau**2``; faithful sampling: 1.0, which
    leaves every product unchanged).

    Writes ``means[i, c]`` and ``variances[i, c]`` for generation ``start + i``: a
    generation-major block, the layout the engine's metrics and results read, so
    nothing is transposed afterwards. ``carry[c]`` holds what the next block needs —
    the model, the real part's moments and the accumulated pool: ``(mean, var, kr, mr,
    sr, kp, mp, sp)`` — and is filled by the block that contains generation 1. The
    four words of each chain's generator state stay in local variables for the whole
    block (stored back around the draws that read the state array).

    Each chain is :func:`_exact_chain`, a function of its own: the parallel build's loop
    body is then one call, and numba's passes over a parallel loop (which copy its
    intermediate form block by block) do not run over the inlined draws. Its parallel
    build compiles in about 4 s instead of 6 s with the body inline
    (``python benchmarks/kernel_compile.py``; docs/performance.rst).
    """
    fast_synth = 0.5 * (synth - 1) >= 1.0
    scale = 1.0 / math.sqrt(synth) if synth > 0 else 0.0
    d_mt = 0.5 * (synth - 1) - 1.0 / 3.0
    c_mt = 1.0 / math.sqrt(9.0 * d_mt) if fast_synth else 0.0
    for c in nb.prange(states.shape[0]):
        # c passed on as int64: the loop's index is unsigned in the parallel body, and
        # _exact_chain would be compiled a second time for it
        _exact_chain(states, np.int64(c), n, ddof, real_k, fresh, synth, pool_all, mu0, var0,
                     start, carry, syn_scale, fast_synth, scale, d_mt, c_mt, means, variances)


@nb.njit
def _exact_chain(states, c, n, ddof, real_k, fresh, synth, pool_all, mu0, var0, start, carry,
                 syn_scale, fast_synth, scale, d_mt, c_mt, means, variances):
    """Chain ``c`` of :func:`exact_run_1d` (``fast_synth``, ``scale``, ``d_mt``, ``c_mt``:
    the constants of :func:`_draw_fixed_local` for ``synth`` points)."""
    block = means.shape[0]
    s = states[c]
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    mean, var = carry[c, 0], carry[c, 1]
    kr, mr, sr = np.int64(carry[c, 2]), carry[c, 3], carry[c, 4]
    kp, mp, sp = np.int64(carry[c, 5]), carry[c, 6], carry[c, 7]
    for i in range(block):
        t = start + i
        if t == 1:
            s[0], s[1], s[2], s[3] = s0, s1, s2, s3
            if 0 < real_k < n:
                # the real sample as every policy draws it, then its first real_k
                # points' moments by their law given it (paired policies)
                ma, sa = _draw(s, n, mu0, var0)
                ka = n
                mr, sr = split_1d(s, n, real_k, ma, sa)
                kr = real_k
            else:
                ma, sa = _draw(s, n, mu0, var0)
                ka = n
                kr, mr, sr = ka, ma, sa
            s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
            kp, mp, sp = ka, ma, sa  # the accumulated pool starts as the real sample
            mean = ma
            var = sa / (ka - ddof)
        else:
            kt, mt, st = 0, 0.0, 0.0
            if real_k > 0:
                kt, mt, st = kr, mr, sr
            if fresh > 0:
                mf, sf, s0, s1, s2, s3 = _draw_stored(s, s0, s1, s2, s3, fresh, mu0, var0)
                kt, mt, st = _add(kt, mt, st, fresh, mf, sf)
            if synth > 0:
                drawn = var * syn_scale
                if fast_synth:
                    my, sy, s0, s1, s2, s3 = _draw_fixed_local(s0, s1, s2, s3, scale,
                                                               d_mt, c_mt, mean, drawn)
                else:
                    my, sy, s0, s1, s2, s3 = _draw_stored(s, s0, s1, s2, s3, synth, mean,
                                                          drawn)
                if pool_all:
                    kp, mp, sp = _add(kp, mp, sp, synth, my, sy)
                    kt, mt, st = kp, mp, sp
                else:
                    kt, mt, st = _add(kt, mt, st, synth, my, sy)
            mean = mt
            var = st / (kt - ddof)
        means[i, c] = mean
        variances[i, c] = var
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3
    carry[c, 0], carry[c, 1] = mean, var
    carry[c, 2], carry[c, 3], carry[c, 4] = kr, mr, sr
    carry[c, 5], carry[c, 6], carry[c, 7] = kp, mp, sp
