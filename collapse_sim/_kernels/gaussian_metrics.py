r"""The closed-form metrics of 1-D Gaussian models against a 1-D Gaussian truth, in one pass.

Private: :func:`collapse_sim.families.gaussian._metrics_1d` validates and prepares the
inputs (the truth's constants, the held-out moments, :math:`\log s^2` from numpy) and is
the only caller. Every formula repeats, operation for operation, the numpy expression of
the documented metric function in :mod:`collapse_sim.families.gaussian` (same operands,
same order, no fast-math), so the values are bit-identical to it; logarithms are not taken
here (numpy's SIMD ``log`` and the C library's differ in the last bit) but passed in.

:func:`ndtr` is the Cephes normal distribution function that ``scipy.special.ndtr`` runs
(``xsf/cephes/ndtr.h``: the same rational approximations and Horner order), written so
that the compiler vectorises it (:func:`_ndtr_inplace`); its exponential is computed
here, so the tail mass is within 4 units in the last place of the numpy formula, not
bit-identical like the other metrics (tests/test_gaussian_metrics_fast.py measures both).
A collapsed model far from the truth's quantiles gives an argument beyond the underflow
threshold, where it gives exactly 0 or 1.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel

#: Column of each metric in the kernel's output array.
COLUMNS = ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass")

_MAXLOG = 7.09782712893383996732e2
_P = np.array([2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
               4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
               9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2])
_Q = np.array([1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
               9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
               1.65666309194161350182e3, 5.57535340817727675546e2])
_R = np.array([5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
               6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0])
_S = np.array([2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
               1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0])
_T = np.array([9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
               7.00332514112805075473e3, 5.55923013010394962768e4])
_U = np.array([3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
               2.26290000613890934246e4, 4.92673942608635921086e4])


#: The rational parts of Cephes' ``erfc`` for :math:`1 \le a < 8` (``_P / _Q``) and
#: :math:`a \ge 8` (``_R / _S``) and its ``erf`` for :math:`|x| < 1` (``_T / _U``), each
#: as two polynomials of one length so that a lane can pick its coefficients instead of
#: its branch: leading zeros and ``p1evl``'s implicit leading 1, written out, change no
#: bit of Horner's scheme (``0 * a + 0 = 0``, ``1 * a + c = a + c``).
_ERFC_NUM_LOW = _P
_ERFC_NUM_HIGH = np.concatenate([np.zeros(_P.size - _R.size), _R])
_ERFC_DEN_LOW = np.concatenate([[1.0], _Q])
_ERFC_DEN_HIGH = np.concatenate([np.zeros(_Q.size - _S.size), [1.0], _S])
_ERF_NUM = _T
_ERF_DEN = np.concatenate([[1.0], _U])
#: :math:`1/k!`, :math:`k = 13 \dots 0`: :math:`e^r` on :math:`|r| \le \ln 2 / 2` by its
#: Taylor polynomial (remainder below :math:`5 \cdot 10^{-18}` relative).
_EXP_TAYLOR = np.array([1.0 / math.factorial(k) for k in range(13, -1, -1)])
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 = _LN2_HI + _LN2_LO (Cody-Waite)
_LN2_LO = 1.90821492927058770002e-10
#: Rounds a double below 2^51 in magnitude to an integer by one addition and subtraction.
_ROUND = 6755399441055744.0
#: :math:`e^{-a^2}` is built as :math:`2^{k + 54} e^r` and scaled by :math:`2^{-54}`
#: after the rational part: :math:`2^{k+54}` stays a normal number down to
#: :math:`e^{-709.78}` (the underflow threshold), where :math:`2^k` would not.
_SHIFT = 54
_UNSHIFT = 2.0 ** -_SHIFT


@nb.njit(inline="always")
def _horner(x, coef):
    ans = coef[0]
    for i in range(1, coef.size):
        ans = ans * x + coef[i]
    return ans


@nb.njit(inline="always")
def _horner_pick(x, high, low_coef, high_coef):
    """Horner's scheme with ``high_coef`` where ``high``, else ``low_coef`` (one length)."""
    ans = high_coef[0] if high else low_coef[0]
    for i in range(1, low_coef.size):
        ans = ans * x + (high_coef[i] if high else low_coef[i])
    return ans


@nb.njit(inline="always")
def _ndtr_inplace(x, n, bits, scaled):
    r""":math:`x_i \leftarrow \Phi(x_i)` for ``i < n``: Cephes' ``ndtr`` (scipy's) in two
    loops the compiler vectorises. ``bits`` (int64) and ``scaled`` are scratch of ``n``.

    Every lane takes the operations of its own branch of Cephes (``erf`` below
    :math:`|x|/\sqrt 2 = 1`, ``erfc`` with ``P/Q`` below 8 and ``R/S`` above, 0 past
    the underflow threshold :math:`a^2 > 709.78`) by selecting operands, not by
    branching. The one difference is :math:`e^{-a^2}`: the C library's ``exp`` does not
    vectorise, so it is computed here by Cody-Waite reduction, :math:`-a^2 = k \ln 2 +
    r`, a Taylor polynomial for :math:`e^r` and :math:`2^k` assembled from its bits.
    Measured against ``scipy.special.ndtr`` (tests/test_gaussian_metrics_fast.py): at
    most 4 units in the last place where :math:`\Phi(x)` is a normal number, within
    :math:`10^{-323}` where it is subnormal (:math:`|x| > 37.5`), exact at 0, ±inf and
    NaN; 96% of values bit for bit. On one core here, 5.8 ns a value against 15 ns for
    the scalar port (arguments uniform on [-40, 40]; re-measure with ``ndtr`` on 8192
    values, as in the module's tests).
    """
    for i in range(n):
        z = abs(x[i] * 0.70710678118654752440)  # M_SQRT1_2
        a = z if z < 27.0 else 27.0  # beyond the threshold the value is replaced by 0
        y = -(a * a)
        k = (y * _LOG2E + _ROUND) - _ROUND
        scaled[i] = _horner((y - k * _LN2_HI) - k * _LN2_LO, _EXP_TAYLOR)
        bits[i] = (np.int64(k) + (1023 + _SHIFT)) << 52
    power = bits[:n].view(np.float64)
    for i in range(n):
        xi = x[i] * 0.70710678118654752440
        z = abs(xi)
        small = z < 1.0
        a = z if z < 27.0 else 27.0
        high = a >= 8.0
        zz = xi * xi
        e = scaled[i] * power[i]  # 2^54 e^{-a^2}
        num = (xi * _horner(zz, _ERF_NUM) if small
               else e * _horner_pick(a, high, _ERFC_NUM_LOW, _ERFC_NUM_HIGH))
        den = (_horner(zz, _ERF_DEN) if small
               else _horner_pick(a, high, _ERFC_DEN_LOW, _ERFC_DEN_HIGH))
        f = num / den
        tail = (0.5 * f) * _UNSHIFT
        tail = 0.0 if -(z * z) < -_MAXLOG else tail
        value = 0.5 + 0.5 * f if small else (1.0 - tail if xi > 0.0 else tail)
        x[i] = value if xi == xi else xi


@nb.njit(cache=True, error_model="numpy")
def ndtr(x, out):
    r"""``out[i]`` :math:`= \Phi(x_i)`, the standard normal distribution function (1-D
    float64 arrays of one size), as :func:`_ndtr_inplace` computes it."""
    n = x.size
    bits = np.empty(n, dtype=np.int64)
    scaled = np.empty(n)
    out[:] = x
    _ndtr_inplace(out, n, bits, scaled)


#: |d| where :math:`d^2` is a normal number: ``sqrt(d * d) == abs(d)`` there.
_SQUARE_SAFE_LOW = 2.0 ** -511
_SQUARE_SAFE_HIGH = 2.0 ** 511
#: Models per slice: every metric runs over one slice before the next (the slice's
#: arguments of the normal CDF stay in cache).
CHUNK = 4096


@chain_kernel(error_model="numpy")
def metrics_1d(m, v, logv, mu, v0, sd0, logdet0, xbar, cov_h, log2pi, lo, hi, outs, scratch,
               int_scratch):
    r"""``outs[k][i]``: metric ``COLUMNS[k]`` of model :math:`\mathcal N(m_i, v_i)`, for every
    ``k`` whose array in the tuple ``outs`` is not empty (the others are not computed).
    ``scratch`` ``(4, 2 B)`` float64 and ``int_scratch`` ``(2, 2 B)`` int64 are working
    memory (the caller's, recycled: memory allocated afresh for every block of
    generations was written page by page).

    ``logv`` is :math:`\log v_i` (numpy's, read only for kl and nll); the truth is
    :math:`\mathcal N(\mu, v_0)` with ``sd0`` :math:`=\sqrt{v_0}` and ``logdet0``
    :math:`=\log v_0` as numpy computes them; ``xbar``, ``cov_h`` are the held-out
    sample's mean and MLE variance, ``log2pi`` :math:`\log 2\pi`; ``lo``, ``hi`` the
    truth's tail quantiles.

    By slices of :data:`CHUNK` models, in parallel (a slice is a task: its scratch and
    arguments stay in cache; the serial build runs while other processes keep the cores
    busy, see :mod:`._dispatch`): in a slice, one branch-free loop per metric, which the
    compiler vectorises (divisions and square roots dominate), the normal CDFs of the
    tail mass included (:func:`_ndtr_inplace`).
    """
    n = m.size
    for task in nb.prange((n + CHUNK - 1) // CHUNK):
        size = min(n - task * CHUNK, CHUNK)
        a, b = task * CHUNK, task * CHUNK + size
        sd = scratch[0, 2 * a:2 * a + size]
        args = scratch[1, 2 * a:2 * b]
        packed = scratch[2, 2 * a:2 * b]
        scaled = scratch[3, 2 * a:2 * b]
        index = int_scratch[0, 2 * a:2 * b]
        bits = int_scratch[1, 2 * a:2 * b]
        # views of the slice, indexed from 0: loops over them vectorise, loops over
        # start:stop of the whole arrays did not (0.7 instead of 0.25 ns per copy)
        _metrics_slice(m[a:b], v[a:b], logv[a:b], mu, v0, sd0, logdet0, xbar, cov_h, log2pi,
                       lo, hi, outs[0][a:b], outs[1][a:b], outs[2][a:b], outs[3][a:b],
                       outs[4][a:b], outs[5][a:b], sd, args, packed, index, bits, scaled)


@nb.njit(inline="always")
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
        # Each normal CDF whose argument is beyond 40 (the underflow threshold is 37.7)
        # is exactly 0 or 1, a point mass's too (s = 0): only the others are evaluated
        # (a collapsed model's are all beyond; a model near one quantile has the other
        # one beyond), packed with their places in ``args`` (the first CDF of model i
        # at i, the second at n + i), then the two CDFs added in the formula's order.
        live = 0
        for i in range(n):
            mi = m[i]
            reach = 40.0 * sd[i]
            args[i] = 1.0 if lo > mi else 0.0
            args[n + i] = 1.0 if mi > hi else 0.0
            index[live] = i
            live += (abs(lo - mi) < reach) | (mi != mi)
            index[live] = n + i
            live += (abs(mi - hi) < reach) | (mi != mi)
        for c in range(live):
            j = index[c]
            i = j if j < n else j - n
            packed[c] = (lo - m[i]) / sd[i] if j < n else (m[i] - hi) / sd[i]
        _ndtr_inplace(packed, live, bits, scaled)
        for c in range(live):
            args[index[c]] = packed[c]
        for i in range(n):
            o_tail[i] = args[i] + args[n + i]
