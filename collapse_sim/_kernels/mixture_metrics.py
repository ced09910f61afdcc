r"""Sliced Wasserstein-2 quadrature of batches of Gaussian mixtures, jitted (private).

:func:`w2_squared` computes, for every member ``b`` and direction ``s``, the trapezoid sum

.. math::

    T_{bs} = \sum_j \omega_j\,(x_{bsj} - t_{sj})^2

over the normal scores ``z`` (``omega = zw``: the trapezoid weights times the normal
density), where :math:`x_{bsj}` is the :math:`\Phi(z_j)`-quantile of the 1-D mixture
``(weights[b], mus[b, s], sds[b, s])`` and ``t`` the truth's quantiles. It gives the sum on
the full grid up to rounding, while solving far fewer quantiles where the integrand is
smooth (see :func:`_row`): the grid (``len(z) = 32 m + 1`` points) is visited in nested
levels of strides 32, 16, ..., 1 (each level's trapezoid sum reuses the previous one);
after the fourth level the sum is accepted when the trapezoid rule is visibly in its
geometric regime (each halving of the step squares the error, as for integrands
analytic in a strip) and the extrapolated error of the last level is at most
:data:`REL_TOL` of the sum. Components narrower than a quarter of the projected mixture's
standard deviation with a weight below 0.1 (features the coarse levels could miss) always
use the full grid, as do non-smooth integrands (point masses, near-jumps between
separated components), which never pass the test.

Quantiles are solved as in :func:`collapse_sim._kernels.mixdens.quantiles_1d` (CDF below
the median, survival function above, to relative accuracy 1e-14 of the tail
probability), inside the bracket given by the already-solved neighbours and by the
component bounds :math:`\min_k(\mu_k + s_k z) \le x \le \max_k(\mu_k + s_k z)`, from a
quintic Hermite guess (the quantile's derivatives follow from
:math:`dx/dz = \varphi(z)/f(x)`), with Halley steps. A Halley step shorter than
:data:`HALLEY_ACCEPT` times the narrowest component's standard deviation is accepted
without another evaluation: its error is below about ``700 * HALLEY_ACCEPT**3`` times
that standard deviation (at most 40 standard deviations from every component), far
inside the 1e-14 tolerance.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)

#: Largest extrapolated relative error of an early-accepted quadrature sum.
REL_TOL = 1e-13
#: Halley steps below this many narrowest-component standard deviations end a solve.
HALLEY_ACCEPT = 1e-8
#: Coarsest stride of the nested levels (the grid has ``32 m + 1`` points).
COARSE = 32


@nb.njit(inline="always")
def _evaluate(x, w, mu, sd, upper):
    """Mixture CDF (``upper=False``) or survival function (``upper=True``) at ``x``
    (each summed from its own tail), the density ``f`` and its derivative ``f'``."""
    tail = 0.0
    pdf = 0.0
    dpdf = 0.0
    for k in range(w.shape[0]):
        if w[k] <= 0.0:
            continue
        if sd[k] > 0.0:
            z = (x - mu[k]) / sd[k]
            tail += w[k] * 0.5 * math.erfc((z if upper else -z) / _SQRT2)
            dens = w[k] * math.exp(-0.5 * z * z) / (sd[k] * _SQRT2PI)
            pdf += dens
            dpdf -= dens * z / sd[k]
        elif (x < mu[k]) if upper else (x >= mu[k]):
            tail += w[k]
    return tail, pdf, dpdf


@nb.njit(inline="always")
def _component_range(w, mu, sd, zj):
    """Smallest and largest ``Phi(zj)``-quantile of the live components: the mixture's
    lies between them."""
    lo = np.inf
    hi = -np.inf
    for k in range(w.shape[0]):
        if w[k] > 0.0:
            v = mu[k] + sd[k] * zj
            lo = min(lo, v)
            hi = max(hi, v)
    return lo, hi


@nb.njit
def _solve(w, mu, sd, zj, lo, hi, x, smin, res):
    """The ``Phi(zj)``-quantile in ``[lo, hi]`` from the guess ``x``; ``res`` receives
    ``(f, f')`` at the last evaluated point. Returns the quantile."""
    upper = zj >= 0.0
    target = 0.5 * math.erfc(abs(zj) / _SQRT2)  # Phi(-|z|)
    if not (lo < x < hi):
        x = 0.5 * (lo + hi)
    p = 0.0
    dp = 0.0
    for _ in range(200):
        t, p, dp = _evaluate(x, w, mu, sd, upper)
        g = (target - t) if upper else (t - target)  # increasing in x
        if abs(g) <= 1e-14 * target:
            break
        if g < 0.0:
            lo = x
        else:
            hi = x
        if hi - lo <= 1e-15 * max(1.0, abs(x)):
            break
        step_ok = False
        if p > 0.0:
            step = -g / p
            r = 0.5 * step * dp / p
            halley = abs(r) < 0.5
            if halley:
                step = step / (1.0 + r)
            nxt = x + step
            if lo < nxt < hi:
                done = abs(step) <= 1e-13 * max(1.0, abs(x)) or (
                    halley and abs(step) <= HALLEY_ACCEPT * smin)
                x = nxt
                step_ok = True
                if done:
                    break
        if not step_ok:
            x = 0.5 * (lo + hi)
    res[0] = p
    res[1] = dp
    return x


@nb.njit(inline="always")
def _slopes(zj, p, dp, xp, xpp, j):
    """``xp[j] = dx/dz = phi(z)/f`` and ``xpp[j]`` (NaN where ``f`` is 0: no guess)."""
    if p > 0.0:
        d1 = math.exp(-0.5 * zj * zj) / _SQRT2PI / p
        xp[j] = d1
        xpp[j] = -d1 * (zj + dp / p * d1)
    else:
        xp[j] = np.nan
        xpp[j] = np.nan


@nb.njit
def _row(w, mu, sd, z, zw, tq, x, xp, xpp, res):
    """``(T, nodes)``: the quadrature sum of one member and direction, and the number of
    grid points whose quantiles were solved."""
    k_count = w.shape[0]
    m = z.shape[0]
    bad = 0.0  # a NaN parameter gives NaN, an infinite one (and no NaN) inf
    for k in range(k_count):
        if np.isnan(w[k]) or (w[k] > 0.0 and (np.isnan(mu[k]) or np.isnan(sd[k]))):
            return np.nan, 0
        if np.isinf(w[k]) or (w[k] > 0.0 and (np.isinf(mu[k]) or np.isinf(sd[k]))):
            bad = np.inf
    if bad > 0.0:
        return bad, 0
    # the smallest length scale of the density, and whether coarse levels may be trusted
    smin = np.inf
    mean = 0.0
    second = 0.0
    for k in range(k_count):
        if w[k] > 0.0:
            smin = min(smin, sd[k])
            mean += w[k] * mu[k]
            second += w[k] * (sd[k] * sd[k] + mu[k] * mu[k])
    spread = math.sqrt(max(second - mean * mean, 0.0))
    smooth = smin > 0.0
    for k in range(k_count):
        if w[k] > 0.0 and w[k] < 0.1 and not sd[k] >= 0.25 * spread:
            smooth = False
    floor = 0.0
    for j in range(m):
        floor += zw[j] * tq[j] * tq[j]
    floor *= 1e-26
    # level 0: stride COARSE, swept left to right (Taylor guess from the previous point)
    stride = COARSE
    total = 0.0
    prev = -np.inf
    for j in range(0, m, stride):
        zj = z[j]
        blo, bhi = _component_range(w, mu, sd, zj)
        lo = max(blo, prev)
        hi = bhi
        if j == 0 or not np.isfinite(xp[j - stride]):
            guess = 0.5 * (lo + hi)
        else:
            h = zj - z[j - stride]
            guess = prev + h * xp[j - stride] + 0.5 * h * h * xpp[j - stride]
        x[j] = _solve(w, mu, sd, zj, lo, hi, guess, smin, res)
        _slopes(zj, res[0], res[1], xp, xpp, j)
        prev = x[j]
        d = x[j] - tq[j]
        total += stride * zw[j] * d * d
    nodes = (m - 1) // stride + 1
    e_prev = np.inf
    previous = total
    while stride > 1:
        half = stride // 2
        part = 0.0
        for j in range(half, m, stride):
            zj = z[j]
            a = j - half
            b = j + half
            blo, bhi = _component_range(w, mu, sd, zj)
            lo = max(blo, x[a])
            hi = min(bhi, x[b])
            span = z[b] - z[a]
            guess = (0.5 * (x[a] + x[b]) + 0.15625 * span * (xp[a] - xp[b])
                     + 0.015625 * span * span * (xpp[a] + xpp[b]))
            if not np.isfinite(guess):
                guess = 0.5 * (lo + hi)
            x[j] = _solve(w, mu, sd, zj, lo, hi, guess, smin, res)
            _slopes(zj, res[0], res[1], xp, xpp, j)
            d = x[j] - tq[j]
            part += zw[j] * d * d
        stride = half
        total = 0.5 * previous + stride * part
        nodes += (m - 1) // (2 * stride)
        e_last = abs(total - previous)
        if (smooth and stride > 1 and e_prev < np.inf and e_last <= e_prev
                and e_last <= 1e-10 * total
                and e_last * e_last <= REL_TOL * (total + floor) * e_prev):
            return total, nodes
        e_prev = e_last
        previous = total
    return total, nodes


@chain_kernel
def w2_squared(weights, mus, sds, z, zw, tq, out, nodes):
    """``out[b, s]``: the quadrature sum of member ``b`` projected on direction ``s``
    (``mus[b, s]``, ``sds[b, s]``) against the truth's quantiles ``tq[s]``; ``nodes[b, s]``
    the number of quantiles solved (0 where a parameter is not finite: ``out`` is NaN for
    a NaN, else inf). See the module docstring."""
    chains, slices, _ = mus.shape
    m = z.shape[0]
    for b in nb.prange(chains):
        x = np.empty(m)
        xp = np.empty(m)
        xpp = np.empty(m)
        res = np.empty(2)
        for s in range(slices):
            total, count = _row(weights[b], mus[b, s], sds[b, s], z, zw, tq[s], x, xp, xpp,
                                res)
            out[b, s] = total
            nodes[b, s] = count
