r"""The closed-form metrics of 1-D Gaussian models against a 1-D Gaussian truth, in one pass.

Private: :func:`collapse_sim.families.gaussian._metrics_1d` validates and prepares the
inputs (the truth's constants, the held-out moments, :math:`\log s^2` from numpy) and is
the only caller. Every formula repeats, operation for operation, the numpy expression of
the documented metric function in :mod:`collapse_sim.families.gaussian` (same operands,
same order, no fast-math), so the values are bit-identical to it; logarithms are not taken
here (numpy's SIMD ``log`` and the C library's differ in the last bit) but passed in.

The tail mass's normal distribution function is
:func:`collapse_sim._kernels.vecmath.ndtr`, vectorised Cephes (scipy's), so the tail
mass is within 4 units in the last place of the numpy formula, not bit-identical like the
other metrics (tests/test_gaussian_metrics_fast.py measures both).
A collapsed model far from the truth's quantiles gives an argument beyond the underflow
threshold, where it gives exactly 0 or 1.
"""

import math

import numba as nb

from ._dispatch import chain_kernel
from .vecmath import _ndtr_inplace, ndtr  # noqa: F401 - ndtr re-exported for the tests

#: Column of each metric in the kernel's output array.
COLUMNS = ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass")

#: |d| where :math:`d^2` is a normal number: ``sqrt(d * d) == abs(d)`` there.
_SQUARE_SAFE_LOW = 2.0 ** -511
_SQUARE_SAFE_HIGH = 2.0 ** 511
#: Models per slice: every metric runs over one slice before the next (the slice's
#: arguments of the normal CDF stay in cache).
CHUNK = 4096
#: Lanes of :func:`metrics_1d` (each with its scratch; more than the threads there are,
#: so that they share the slices evenly). Which lane takes a slice changes no value.
LANES = 8


@chain_kernel(error_model="numpy")
def metrics_1d(m, v, logv, mu, v0, sd0, logdet0, xbar, cov_h, log2pi, lo, hi, outs, scratch,
               int_scratch):
    r"""``outs[k][i]``: metric ``COLUMNS[k]`` of model :math:`\mathcal N(m_i, v_i)`, for every
    ``k`` whose array in the tuple ``outs`` is not empty (the others are not computed).
    ``scratch`` ``(L, 4, 2 c)`` float64 and ``int_scratch`` ``(L, 2, 2 c)`` int64, with
    ``c = min(CHUNK, B)``, are working memory of ``L`` lanes (the caller's, recycled:
    memory allocated afresh for every block of generations was written page by page).

    ``logv`` is :math:`\log v_i` (numpy's, read only for kl and nll); the truth is
    :math:`\mathcal N(\mu, v_0)` with ``sd0`` :math:`=\sqrt{v_0}` and ``logdet0``
    :math:`=\log v_0` as numpy computes them; ``xbar``, ``cov_h`` are the held-out
    sample's mean and MLE variance, ``log2pi`` :math:`\log 2\pi`; ``lo``, ``hi`` the
    truth's tail quantiles.

    By slices of :data:`CHUNK` models, in parallel over the ``L`` lanes (a lane takes
    every ``L``-th slice with its own scratch, which stays in cache; the serial build
    runs while other processes keep the cores busy, see :mod:`._dispatch`): in a slice,
    one branch-free loop per metric, which the compiler vectorises (divisions and square
    roots dominate); the tail mass, the most costly, in :func:`_tail_slice`, its normal
    CDFs included (:func:`_ndtr_inplace`).
    """
    n = m.size
    tasks = (n + CHUNK - 1) // CHUNK
    lanes = min(tasks, scratch.shape[0])
    for lane in nb.prange(lanes):
        # a lane takes every lanes-th slice and reuses its own scratch for each, so the
        # scratch stays in cache (a scratch region per slice streamed through memory)
        sd = scratch[lane, 0, :CHUNK]
        for task in range(lane, tasks, lanes):
            size = min(n - task * CHUNK, CHUNK)
            a, b = task * CHUNK, task * CHUNK + size
            args = scratch[lane, 1, :2 * size]
            packed = scratch[lane, 2, :2 * size]
            scaled = scratch[lane, 3, :2 * size]
            index = int_scratch[lane, 0, :2 * size]
            bits = int_scratch[lane, 1, :2 * size]
            # views of the slice, indexed from 0: loops over them vectorise, loops over
            # start:stop of the whole arrays did not (0.7 instead of 0.25 ns per copy)
            _metrics_slice(m[a:b], v[a:b], logv[a:b], mu, v0, sd0, logdet0, xbar, cov_h,
                           log2pi, lo, hi, outs[0][a:b], outs[1][a:b], outs[2][a:b],
                           outs[3][a:b], outs[4][a:b], outs[5][a:b], sd[:size], args,
                           packed, index, bits, scaled)


#: A normal CDF at ``x`` is negligible next to one at ``y`` (below 2**-60 of it) if
#: ``x < -NEGLIGIBLE_X`` and either ``y > -1`` (then Phi(y) > 0.158 while
#: Phi(-9.2) < 1.8e-20) or ``x**2 - y**2 > NEGLIGIBLE_GAP`` (for x < y <= -1, Mills'
#: bounds give Phi(x)/Phi(y) <= 2 exp(-(x**2 - y**2)/2) < 2**-60).
NEGLIGIBLE_X, NEGLIGIBLE_GAP = 9.2, 90.0


@nb.njit(inline="always")
def _negligible(x, y):
    r"""Whether :math:`\Phi(x) < 2^{-60}\Phi(y)`, by the bounds of :data:`NEGLIGIBLE_X`
    (False for NaN arguments)."""
    return (x < -NEGLIGIBLE_X) & ((y > -1.0) | (x * x - y * y > NEGLIGIBLE_GAP))


@nb.njit(error_model="numpy")
def _metrics_slice(m, v, logv, mu, v0, sd0, logdet0, xbar, cov_h, log2pi, lo, hi, o_var,
                   o_shift, o_w2, o_kl, o_nll, o_tail, sd, args, packed, index, bits,
                   scaled):
    """:func:`metrics_1d` for one slice of models (views; an empty output is not
    computed). ``sd``: scratch of the slice; ``args``, ``packed``, ``index``, ``bits``,
    ``scaled``: of twice the slice, for the tail mass's normal CDFs."""
    n = m.size
    if o_var.size > 0:
        for i in range(n):
            o_var[i] = v[i]
    if o_shift.size > 0:
        # sqrt(d * d), the numpy formula, is |d| wherever d * d neither overflows nor
        # underflows (a correctly rounded square root of a correctly rounded square):
        # only the rare others take the square root
        odd = 0
        for i in range(n):
            ad = abs(m[i] - mu)
            o_shift[i] = ad
            odd += ((ad < _SQUARE_SAFE_LOW) & (ad > 0.0)) | ((ad >= _SQUARE_SAFE_HIGH)
                                                          & (ad < math.inf))
        if odd:
            for i in range(n):
                d = m[i] - mu
                o_shift[i] = math.sqrt(d * d)
    if (o_w2.size > 0) | (o_tail.size > 0):
        for i in range(n):  # the models' standard deviations, shared by w2 and tail_mass
            sd[i] = math.sqrt(v[i])
    if o_w2.size > 0:
        for i in range(n):
            d = m[i] - mu
            spread = sd[i] - sd0
            o_w2[i] = math.sqrt(d * d + spread * spread)
    if o_kl.size > 0:
        for i in range(n):
            vi = v[i]
            delta = mu - m[i]
            value = 0.5 * ((v0 + delta * delta) / vi - 1.0 + logv[i] - logdet0)
            # a model equal to the truth is at divergence exactly 0
            value = 0.0 if (vi == v0) & (m[i] == mu) else value
            bad = (vi <= 0.0) | ~(abs(value) < math.inf)
            o_kl[i] = math.inf if bad else (value if value >= 0.0 else 0.0)
    if o_nll.size > 0:
        for i in range(n):
            vi = v[i]
            proj = xbar - m[i]
            value = 0.5 * (log2pi + logv[i] + (cov_h + proj * proj) / vi)
            o_nll[i] = math.inf if (vi <= 0.0) | (value != value) else value
    if o_tail.size > 0:
        _tail_slice(m, sd, lo, hi, o_tail, args, packed, index, bits, scaled)


@nb.njit(error_model="numpy")
def _tail_slice(m, sd, lo, hi, o_tail, args, packed, index, bits, scaled):
    """The tail mass of one slice of models (:func:`_metrics_slice`), compiled as a
    function of its own: inlined into the pass over all six metrics, the same loops ran
    slower (the tail mass of the 10**6 models of a 1000 x 1000 exact run, one core:
    7.4 ms before this function and its vectorised decisions, 5.6 ms after; see
    docs/performance.rst)."""
    n = m.size
    # Each normal CDF whose argument is beyond 40 (the underflow threshold is 37.7)
    # is exactly 0 or 1, a point mass's too (s = 0): only the others are evaluated
    # (a collapsed model's are all beyond; a model near one quantile has the other
    # one beyond), packed with their places in ``args`` (the first CDF of model i
    # at i, the second at n + i), then the two CDFs added in the formula's order.
    # A CDF below 2**-60 of the other one adds nothing to their sum (it is under half
    # a unit in the last place of the larger) and is not evaluated either
    # (:func:`_negligible`): in a drifting, narrowing chain one tail soon dwarfs the
    # other.
    # Two loops: the first, which the compiler vectorises, computes every argument,
    # whether its CDF must be evaluated (0 or 1 in ``bits``) and the values the
    # skipped ones take; the second only packs the live arguments. Deciding inside
    # the packing loop, which cannot be vectorised (its stores follow the count of
    # live CDFs), made that loop the slowest part of the tail mass.
    for i in range(n):
        mi = m[i]
        reach = 40.0 * sd[i]
        a = (lo - mi) / sd[i]
        b = (mi - hi) / sd[i]
        scaled[i] = a
        scaled[n + i] = b
        args[i] = 1.0 if lo > mi else 0.0
        args[n + i] = 1.0 if mi > hi else 0.0
        bits[i] = ((abs(lo - mi) < reach) & ~_negligible(a, b)) | (mi != mi)
        bits[n + i] = ((abs(mi - hi) < reach) & ~_negligible(b, a)) | (mi != mi)
    live = 0
    for j in range(2 * n):  # the first CDFs of the slice's models, then the second
        index[live] = j
        packed[live] = scaled[j]
        live += bits[j]
    _ndtr_inplace(packed, live, bits, scaled)
    for c in range(live):
        args[index[c]] = packed[c]
    for i in range(n):
        o_tail[i] = args[i] + args[n + i]
