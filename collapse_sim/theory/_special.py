"""Special-function helpers, accurate for large shape parameters.

Log-gamma increments and the digamma gap evaluated without catastrophic cancellation,
so that the closed forms keep their digits for sample sizes up to :math:`10^6` and beyond.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

# B_2, B_4, ..., B_16 (Bernoulli numbers) for the Stirling series.
_BERNOULLI_EVEN = np.array(
    [1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510]
)
_K2 = 2.0 * np.arange(1, _BERNOULLI_EVEN.size + 1)
# ln Gamma(z) = (z - 1/2) ln z - z + ln(2 pi)/2 + sum_k B_2k / (2k (2k-1) z^(2k-1))
_BINET_COEF = _BERNOULLI_EVEN / (_K2 * (_K2 - 1.0))
# ln a - psi(a) = 1/(2a) + sum_k B_2k / (2k a^2k)
_GAP_COEF = _BERNOULLI_EVEN / _K2
# For a >= this, the Stirling series above (8 terms) is accurate to ~1e-18.
_STIRLING_MIN = 10.0
# Power series used for |w| < _SERIES_RADIUS (truncation error < 1e-20 there):
#   log(1 + w) - w            = sum_{j>=2} (-1)^(j+1) w^j / j
#   (1 + w) log(1 + w) - w    = sum_{j>=2} (-1)^j w^j / (j (j-1))
_SERIES_RADIUS = 0.1
_J = np.arange(2, 20)
_LOG1P_COEF = (-1.0) ** (_J + 1) / _J
_XLOG1P_COEF = (-1.0) ** _J / (_J * (_J - 1.0))


def _binet(z: np.ndarray) -> np.ndarray:
    """Stirling-series remainder of ``loggamma(z)`` for ``Re z >= 10`` (complex allowed)."""
    zinv = 1.0 / z
    z2 = zinv * zinv
    acc = np.zeros_like(z2)
    for c in _BINET_COEF[::-1]:
        acc = acc * z2 + c
    return acc * zinv


def _gap_tail(a: float) -> float:
    r""":math:`\log a - \psi(a) - 1/(2a)` from its asymptotic series (``a >= 10``)."""
    a2inv = 1.0 / (a * a)
    acc = 0.0
    for c in _GAP_COEF[::-1]:
        acc = acc * a2inv + c
    return acc * a2inv


def _digamma_gap(a: float) -> float:
    r""":math:`\log a - \psi(a)` without cancellation for large ``a`` (it is ~ 1/(2a))."""
    if a < _STIRLING_MIN:
        return float(np.log(a) - special.digamma(a))
    return 0.5 / a + _gap_tail(a)


def _log1p_complex(w: np.ndarray) -> np.ndarray:
    """``log(1 + w)`` for complex ``w``, accurate when ``|w|`` is small."""
    re, im = w.real, w.imag
    return 0.5 * np.log1p(re * (2.0 + re) + im * im) + 1j * np.arctan2(im, 1.0 + re)


def _series_or_direct(w: np.ndarray, coef: np.ndarray, direct) -> np.ndarray:
    """``sum_j coef[j-2] w^j`` where ``|w| < _SERIES_RADIUS``, ``direct(w)`` elsewhere."""
    out = np.empty_like(w)
    small = np.abs(w) < _SERIES_RADIUS
    if not np.all(small):
        out[~small] = direct(w[~small])
    if np.any(small):
        ws = w[small]
        acc = np.zeros_like(ws)
        for c in coef[::-1]:
            acc = acc * ws + c
        out[small] = acc * ws * ws
    return out


def _log1p_minus_id(w: np.ndarray) -> np.ndarray:
    """``log(1 + w) - w`` without cancellation (complex ``w``)."""
    return _series_or_direct(w, _LOG1P_COEF, lambda x: _log1p_complex(x) - x)


def _xlog1p_minus_id(w: np.ndarray) -> np.ndarray:
    """``(1 + w) log(1 + w) - w`` without cancellation (complex ``w``)."""
    return _series_or_direct(w, _XLOG1P_COEF, lambda x: (1.0 + x) * _log1p_complex(x) - x)


def _centred_loggamma(a: float, s: np.ndarray) -> np.ndarray:
    r"""Centred log-gamma increment :math:`D(a, s) = \ln\Gamma(a+s) - \ln\Gamma(a) - s\,\psi(a)`.

    Evaluated without catastrophic cancellation, because :math:`t\,D` with :math:`t` up to
    thousands is exponentiated: a direct difference of ``loggamma`` values would carry an
    absolute error :math:`\sim 10^{-16}|\ln\Gamma(a)|` (``1e-9`` for :math:`a = 5\times10^5`),
    multiplied by :math:`t`. With :math:`A = a + m \ge 10` (:math:`m \ge 0` an integer shift)
    and :math:`w = s/A`,

    .. math::

        D(a, s) = A\,[(1+w)\log(1+w) - w] - \tfrac12[\log(1+w) - w]
            + s\,[\log A - \psi(A) - \tfrac1{2A}] + \mu(A+s) - \mu(A)
            - \sum_{i=0}^{m-1}\Big[\log\Big(1 + \frac{s}{a+i}\Big) - \frac{s}{a+i}\Big],

    with :math:`\mu` the Binet (Stirling-series) remainder and every bracket summed as a power
    series when its argument is small. Requires ``Re(A + s) >= 10`` (true for imaginary
    ``s`` and for ``s >= 0``).
    """
    s = np.asarray(s, dtype=np.complex128)
    shift = max(0, math.ceil(_STIRLING_MIN - a))
    big_a = a + shift
    w = s / big_a
    out = (
        big_a * _xlog1p_minus_id(w)
        - 0.5 * _log1p_minus_id(w)
        + s * _gap_tail(big_a)
        + (_binet(big_a + s) - _binet(np.asarray(big_a, dtype=np.complex128)))
    )
    if shift:
        # sum_i [log(1 + s/(a+i)) - s/(a+i)] = sum_j (-1)^(j+1) s^j/j sum_i (a+i)^(-j),
        # one power series in s where |s| < R a (every |s/(a+i)| < R); direct elsewhere.
        inv_shifted = 1.0 / (a + np.arange(shift))
        small = np.abs(s) < _SERIES_RADIUS * a
        if np.any(small):
            coef = _LOG1P_COEF * np.sum(inv_shifted[None, :] ** _J[:, None], axis=1)
            ss = s[small]
            acc = np.zeros_like(ss)
            for c in coef[::-1]:
                acc = acc * ss + c
            out[small] -= acc * ss * ss
        if not np.all(small):
            sl = s[~small]
            corr = np.zeros_like(sl)
            for inv in inv_shifted:
                corr += _log1p_minus_id(sl * inv)
            out[~small] -= corr
    return out
