r"""The closed-form metrics of 1-D Gaussian models against a 1-D Gaussian truth, in one pass.

Private: :func:`collapse_sim.families.gaussian._metrics_1d` validates and prepares the
inputs (the truth's constants, the held-out moments, :math:`\log s^2` from numpy) and is
the only caller. Every formula repeats, operation for operation, the numpy expression of
the documented metric function in :mod:`collapse_sim.families.gaussian` (same operands,
same order, no fast-math), so the values are bit-identical to it; logarithms are not taken
here (numpy's SIMD ``log`` and the C library's differ in the last bit) but passed in.

:func:`ndtr` is the Cephes normal distribution function that ``scipy.special.ndtr`` runs
(``xsf/cephes/ndtr.h``: the same rational approximations, Horner order and C-library
``exp``); tests compare it bit for bit with scipy. A collapsed model far from the truth's
quantiles gives an argument beyond the underflow threshold, where it returns 0 or 1
without evaluating a polynomial.
"""

import math

import numba as nb
import numpy as np

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


@nb.njit(inline="always")
def _polevl(x, coef):
    ans = coef[0]
    for i in range(1, coef.size):
        ans = ans * x + coef[i]
    return ans


@nb.njit(inline="always")
def _p1evl(x, coef):
    """Horner with an implicit leading coefficient 1."""
    ans = x + coef[0]
    for i in range(1, coef.size):
        ans = ans * x + coef[i]
    return ans


@nb.njit(inline="always")
def _erf_small(x):
    """Cephes ``erf`` for ``|x| <= 1``."""
    z = x * x
    return x * _polevl(z, _T) / _p1evl(z, _U)


@nb.njit(inline="always")
def _erfc_large(a):
    """Cephes ``erfc`` for ``a >= 1`` (0 past the underflow threshold)."""
    z = -a * a
    if z < -_MAXLOG:
        return 0.0
    z = math.exp(z)
    if a < 8.0:
        p = _polevl(a, _P)
        q = _p1evl(a, _Q)
    else:
        p = _polevl(a, _R)
        q = _p1evl(a, _S)
    return (z * p) / q


@nb.njit(inline="always")
def _ndtr(a):
    """Cephes ``ndtr``: ``ndtr.h`` of scipy's xsf, branch for branch."""
    if a != a:
        return a
    x = a * 0.70710678118654752440  # M_SQRT1_2
    z = abs(x)
    if z < 1.0:
        if x < 0.0:
            e = -_erf_small(-x)
        else:
            e = _erf_small(x)
        return 0.5 + 0.5 * e
    y = 0.5 * _erfc_large(z)
    if x > 0:
        y = 1.0 - y
    return y


@nb.njit(cache=True)
def ndtr(a):
    r"""Standard normal distribution function :math:`\Phi(a)`, as ``scipy.special.ndtr``."""
    return _ndtr(a)


#: Models per slice: every metric runs over one slice before the next (the slice's
#: arguments of the normal CDF stay in cache).
CHUNK = 4096


@nb.njit(cache=True, error_model="numpy")
def metrics_1d(m, v, logv, slot, mu, v0, sd0, logdet0, xbar, cov_h, log2pi, lo, hi, out):
    r"""``out[slot[k], i]``: metric ``COLUMNS[k]`` of model :math:`\mathcal N(m_i, v_i)` for
    every ``k`` with ``slot[k] >= 0``.

    ``logv`` is :math:`\log v_i` (numpy's, read only for kl and nll); the truth is
    :math:`\mathcal N(\mu, v_0)` with ``sd0`` :math:`=\sqrt{v_0}` and ``logdet0``
    :math:`=\log v_0` as numpy computes them; ``xbar``, ``cov_h`` are the held-out
    sample's mean and MLE variance, ``log2pi`` :math:`\log 2\pi`; ``lo``, ``hi`` the
    truth's tail quantiles.

    Serial, by slices of :data:`CHUNK` models: in a slice, one branch-free loop per metric
    (the compiler vectorises them: divisions and square roots dominate), the normal CDFs
    of the tail mass in a scalar loop of their own. Tried and not adopted: a ``prange``
    over the slices (53 ms instead of 30-37 ms for 10^6 models while other processes kept
    both cores busy) and packing the arguments that need an exponential to vectorise
    their rational functions (15.4 ms of CPU instead of 13.6 ms for the 2 x 10^6
    arguments of the benchmark run).
    """
    n = m.size
    low = np.empty(min(n, CHUNK))
    for task in range((n + CHUNK - 1) // CHUNK):
        _metrics_slice(m, v, logv, slot, mu, v0, sd0, logdet0, xbar, cov_h, log2pi, lo, hi,
                       out, task * CHUNK, min(n, (task + 1) * CHUNK), low)


@nb.njit(inline="always")
def _metrics_slice(m, v, logv, slot, mu, v0, sd0, logdet0, xbar, cov_h, log2pi, lo, hi, out,
                   start, stop, low):
    """:func:`metrics_1d` for models ``start:stop`` (``low``: scratch of a slice)."""
    if slot[0] >= 0:
        o = out[slot[0]]
        for i in range(start, stop):
            o[i] = v[i]
    if slot[1] >= 0:
        o = out[slot[1]]
        for i in range(start, stop):
            d = m[i] - mu
            o[i] = math.sqrt(d * d)
    if slot[2] >= 0:
        o = out[slot[2]]
        for i in range(start, stop):
            d = m[i] - mu
            spread = math.sqrt(v[i]) - sd0
            o[i] = math.sqrt(d * d + spread * spread)
    if slot[3] >= 0:
        o = out[slot[3]]
        for i in range(start, stop):
            vi = v[i]
            delta = mu - m[i]
            value = 0.5 * ((v0 + delta * delta) / vi - 1.0 + logv[i] - logdet0)
            # a model equal to the truth is at divergence exactly 0
            value = 0.0 if (vi == v0) & (m[i] == mu) else value
            bad = (vi <= 0.0) | ~(abs(value) < math.inf)
            o[i] = math.inf if bad else (value if value >= 0.0 else 0.0)
    if slot[4] >= 0:
        o = out[slot[4]]
        for i in range(start, stop):
            vi = v[i]
            proj = xbar - m[i]
            value = 0.5 * (log2pi + logv[i] + (cov_h + proj * proj) / vi)
            o[i] = math.inf if (vi <= 0.0) | (value != value) else value
    if slot[5] >= 0:
        o = out[slot[5]]
        for i in range(start, stop):  # vectorised: the standardised distances to the quantiles
            s = math.sqrt(v[i])
            low[i - start] = (lo - m[i]) / s
            o[i] = (m[i] - hi) / s
        for i in range(start, stop):
            mi = m[i]
            # s > 0 exactly when v > 0 (a subnormal variance has a positive square root)
            if v[i] > 0.0:
                o[i] = _ndtr(low[i - start]) + _ndtr(o[i])
            else:
                o[i] = 1.0 if (mi < lo) | (mi > hi) else 0.0
