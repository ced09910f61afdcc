r"""Sliced Wasserstein-2 quadrature of batches of Gaussian mixtures, jitted (private).

:func:`w2_squared` computes, for every member ``b`` and direction ``s``, the trapezoid sum

.. math::

    T_{bs} = \sum_j \omega_j\,(x_{bsj} - t_{sj})^2

over the normal scores ``z`` (``omega = zw``: the trapezoid weights times the normal
density), where :math:`x_{bsj}` is the :math:`\Phi(z_j)`-quantile of the 1-D mixture
``(weights[b], mus[b, s], sds[b, s])`` and ``t`` the truth's quantiles. It gives the sum on
the full grid up to rounding, while solving far fewer quantiles where the integrand is
smooth (see :func:`_row`): the grid (``len(z) = 64 m + 1`` points) is visited in nested
levels of strides 64, 32, ..., 1 (each level's trapezoid sum reuses the previous one);
from the third level on (65 points) the sum is accepted when the trapezoid rule is visibly in its
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
:math:`dx/dz = \varphi(z)/f(x)`; on the coarsest level, :func:`_coarse_guess`), with
Halley steps. A Halley step shorter than
:data:`HALLEY_ACCEPT` times the narrowest component's standard deviation is accepted
without another evaluation: its error is below about ``700 * HALLEY_ACCEPT**3`` times
that standard deviation (at most 40 standard deviations from every component), 7e-16
for the 1e-6 used here, inside the 1e-14 tolerance.

All the quantiles of one level are solved together (:func:`_solve_lanes`): each round
evaluates the mixture at every unsolved point in loops the compiler vectorises, with
the vectorised Cephes normal distribution function and exponential of
:mod:`collapse_sim._kernels.vecmath` (within 4 and 1 units in the last place of the C
library's), and keeps the points still unsolved for the next round. On the benchmark's
fits (``benchmarks/bench_mixture.py``) this and the coarser first level (stride 64: most
directions stop at 65 points instead of 129) make the metric about 10 times faster; the
sums agree with the full-grid sum of the scalar solver to the tolerance above
(tests/test_mixture_metrics_fast.py).
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .vecmath import _ndtr_inplace, exp_inplace

_SQRT2PI = math.sqrt(2.0 * math.pi)

#: Largest extrapolated relative error of an early-accepted quadrature sum.
REL_TOL = 1e-13
#: Halley steps below this many narrowest-component standard deviations end a solve.
HALLEY_ACCEPT = 1e-6
#: Coarsest stride of the nested levels (the grid has ``64 m + 1`` points).
COARSE = 64


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


#: Rows of the lane workspace of :func:`_solve_lanes`.
_WS_ROWS = 16
#: Rows of the per-direction state of :func:`w2_squared`.
_STATE_ROWS = 9


#: From this normal score out, the coarsest level's guess is the tail guess of
#: :func:`_coarse_guess` (measured on the benchmark's fits: 2.8 evaluations per quantile
#: on that level instead of 3.9).
TAIL_GUESS_Z = 2.5


@nb.njit(inline="always")
def _coarse_guess(w, mu, sd, mean, spread, zj):
    r"""First guess of the :math:`\Phi(z_j)`-quantile: the normal with the mixture's mean
    and variance in the body; beyond :data:`TAIL_GUESS_Z`, the outermost component's
    own guess, where component ``k`` alone would hold the tail probability:
    :math:`w_k \Phi(-|z_k|) = \Phi(-|z_j|)`, :math:`z_k^2 \approx z_j^2 + 2 \ln w_k`
    (the Gaussian tail's leading order)."""
    if abs(zj) < TAIL_GUESS_Z:
        return mean + spread * zj
    guess = -np.inf if zj > 0.0 else np.inf
    for k in range(w.shape[0]):
        if w[k] > 0.0:
            zk = math.sqrt(max(zj * zj + 2.0 * math.log(w[k]), 0.0))
            if zj > 0.0:
                guess = max(guess, mu[k] + sd[k] * zk)
            else:
                guess = min(guess, mu[k] - sd[k] * zk)
    return guess


@nb.njit(inline="always")
def _evaluate_lanes(w, mus, sds, slc, n, ws):
    """For lanes ``i < n`` (direction ``slc[i]``, point ``ws[0, i]``): the mixture's CDF
    (``up`` False) or survival function (``up`` True), each summed from its own tail, the
    density and its derivative, into ``ws[1:4]``, in loops over the lanes the compiler
    vectorises (:func:`_ndtr_inplace`, :func:`exp_inplace`). A component of standard
    deviation 0 in a direction is a point mass there."""
    xs = ws[0]
    tail = ws[1]
    pdf = ws[2]
    dpdf = ws[3]
    arg = ws[4]
    dens = ws[5]
    zs = ws[6]
    scale = ws[7]
    tailw = ws[8]
    point = ws[9]
    sks = ws[10]
    scaled = ws[11]
    bits = ws[12].view(np.int64)
    up = ws[13].view(np.bool_)
    for i in range(n):
        tail[i] = 0.0
        pdf[i] = 0.0
        dpdf[i] = 0.0
    for k in range(w.shape[0]):
        wk = w[k]
        if wk <= 0.0:
            continue
        for i in range(n):
            s = slc[i]
            mk = mus[s, k]
            sk = sds[s, k]
            pos = sk > 0.0
            sk1 = sk if pos else 1.0
            xi = xs[i]
            z = (xi - mk) / sk1
            zs[i] = z
            sks[i] = sk1
            scale[i] = wk / (sk1 * _SQRT2PI) if pos else 0.0
            tailw[i] = wk if pos else 0.0
            hit = (xi < mk) if up[i] else (xi >= mk)
            point[i] = 0.0 if pos else (wk if hit else 0.0)
            arg[i] = -z if up[i] else z
            dens[i] = -0.5 * z * z
        _ndtr_inplace(arg, n, bits, scaled)
        exp_inplace(dens, n, bits, scaled)
        for i in range(n):
            tail[i] += tailw[i] * arg[i] + point[i]
            f = dens[i] * scale[i]
            pdf[i] += f
            dpdf[i] -= f * zs[i] / sks[i]


@nb.njit(error_model="numpy")
def _solve_lanes(w, mus, sds, smin, z, target, x, p_out, dp_out, n, lanes, ws):
    """Solve the quantiles of the lanes ``i < n`` (direction ``lanes[0, i]``, grid point
    ``lanes[1, i]``, bracket ``lanes[2:4, i]``) together, in place in ``x`` (guesses in);
    ``p_out``/``dp_out`` receive ``(f, f')`` at the last evaluated point.

    Every lane takes the steps of a scalar safeguarded Halley solve (bisection where a
    step leaves the bracket); each round evaluates the lanes still unsolved together and
    then packs them to the front.
    """
    slc = lanes[0].view(np.int64)
    pts = lanes[1].view(np.int64)
    lane_lo = lanes[2]
    lane_hi = lanes[3]
    xs = ws[0]
    up = ws[13].view(np.bool_)
    for i in range(n):
        s = slc[i]
        j = pts[i]
        if not (lane_lo[i] < x[s, j] < lane_hi[i]):
            x[s, j] = 0.5 * (lane_lo[i] + lane_hi[i])
    for _ in range(200):
        if n == 0:
            break
        for i in range(n):
            xs[i] = x[slc[i], pts[i]]
            up[i] = z[pts[i]] >= 0.0
        _evaluate_lanes(w, mus, sds, slc, n, ws)
        kept = 0
        for i in range(n):
            s = slc[i]
            j = pts[i]
            xi = xs[i]
            p = ws[2, i]
            dp = ws[3, i]
            p_out[s, j] = p
            dp_out[s, j] = dp
            tj = target[j]
            g = (tj - ws[1, i]) if up[i] else (ws[1, i] - tj)  # increasing in x
            if abs(g) <= 1e-14 * tj:
                continue
            a = lane_lo[i]
            b = lane_hi[i]
            if g < 0.0:
                a = xi
            else:
                b = xi
            if b - a <= 1e-15 * max(1.0, abs(xi)):
                continue
            step_ok = False
            done = False
            if p > 0.0:
                step = -g / p
                r = 0.5 * step * dp / p
                halley = abs(r) < 0.5
                if halley:
                    step = step / (1.0 + r)
                nxt = xi + step
                if a < nxt < b:
                    done = abs(step) <= 1e-13 * max(1.0, abs(xi)) or (
                        halley and abs(step) <= HALLEY_ACCEPT * smin[s])
                    xi = nxt
                    step_ok = True
            if not step_ok:
                xi = 0.5 * (a + b)
            x[s, j] = xi
            if not done:  # the lane goes on, packed to the front
                slc[kept] = s
                pts[kept] = j
                lane_lo[kept] = a
                lane_hi[kept] = b
                kept += 1
        n = kept


@nb.njit(error_model="numpy")
def _member(w, mus, sds, z, zw, target, phi, tq, floor, out, nodes, x, xp, xpp, p, dp,
            state, lanes, ws):
    """``out[s]``, ``nodes[s]`` of one member for every direction ``s``: the levels of all
    directions still unconverged are solved together (:func:`_solve_lanes`); a direction
    leaves when its sum is accepted (the rule of the module docstring)."""
    slices, k_count = mus.shape
    m = z.shape[0]
    active = state[0]  # 1.0 while the direction's sum is not accepted
    smin = state[1]
    smooth = state[2]
    mean = state[3]
    spread = state[4]
    total = state[5]
    previous = state[6]
    e_prev = state[7]
    count = state[8]
    slc = lanes[0].view(np.int64)
    pts = lanes[1].view(np.int64)
    for s in range(slices):
        active[s] = 1.0
        bad = 0.0  # a NaN parameter gives NaN, an infinite one (and no NaN) inf
        for k in range(k_count):
            if np.isnan(w[k]) or (w[k] > 0.0 and (np.isnan(mus[s, k]) or np.isnan(sds[s, k]))):
                bad = np.nan
                break
            if np.isinf(w[k]) or (w[k] > 0.0 and (np.isinf(mus[s, k]) or np.isinf(sds[s, k]))):
                bad = np.inf
        if bad != 0.0:
            out[s] = bad
            nodes[s] = 0
            active[s] = 0.0
            continue
        # the smallest length scale of the density, and whether coarse levels may be trusted
        lo_sd = np.inf
        mu1 = 0.0
        mu2 = 0.0
        for k in range(k_count):
            if w[k] > 0.0:
                lo_sd = min(lo_sd, sds[s, k])
                mu1 += w[k] * mus[s, k]
                mu2 += w[k] * (sds[s, k] * sds[s, k] + mus[s, k] * mus[s, k])
        sp = math.sqrt(max(mu2 - mu1 * mu1, 0.0))
        ok = lo_sd > 0.0
        for k in range(k_count):
            if w[k] > 0.0 and w[k] < 0.1 and not sds[s, k] >= 0.25 * sp:
                ok = False
        smin[s] = lo_sd
        smooth[s] = 1.0 if ok else 0.0
        mean[s] = mu1
        spread[s] = sp
    stride = COARSE
    first = 0
    while True:
        # the lanes of this level: guesses and brackets
        n = 0
        for s in range(slices):
            if active[s] == 0.0:
                continue
            for j in range(first, m, stride if first == 0 else 2 * first):
                blo, bhi = _component_range(w, mus[s], sds[s], z[j])
                if first == 0:
                    lo = blo
                    hi = bhi
                    guess = _coarse_guess(w, mus[s], sds[s], mean[s], spread[s], z[j])
                else:
                    a = j - first
                    b = j + first
                    lo = max(blo, x[s, a])
                    hi = min(bhi, x[s, b])
                    span = z[b] - z[a]
                    guess = (0.5 * (x[s, a] + x[s, b]) + 0.15625 * span * (xp[s, a] - xp[s, b])
                             + 0.015625 * span * span * (xpp[s, a] + xpp[s, b]))
                    if not np.isfinite(guess):
                        guess = 0.5 * (lo + hi)
                x[s, j] = guess
                slc[n] = s
                pts[n] = j
                lanes[2, n] = lo
                lanes[3, n] = hi
                n += 1
        if n == 0:
            break
        _solve_lanes(w, mus, sds, smin, z, target, x, p, dp, n, lanes, ws)
        done = True
        for s in range(slices):
            if active[s] == 0.0:
                continue
            part = 0.0
            for j in range(first, m, stride if first == 0 else 2 * first):
                pj = p[s, j]
                if pj > 0.0:
                    d1 = phi[j] / pj
                    xp[s, j] = d1
                    xpp[s, j] = -d1 * (z[j] + dp[s, j] / pj * d1)
                else:  # no density: no Hermite guess from here
                    xp[s, j] = np.nan
                    xpp[s, j] = np.nan
                d = x[s, j] - tq[s, j]
                part += zw[j] * d * d
            if first == 0:
                total[s] = stride * part
                count[s] = (m - 1) // stride + 1
                e_prev[s] = np.inf
                previous[s] = total[s]
            else:
                total[s] = 0.5 * previous[s] + first * part
                count[s] += (m - 1) // (2 * first)
                e_last = abs(total[s] - previous[s])
                if (smooth[s] != 0.0 and first > 1 and e_prev[s] < np.inf
                        and e_last <= e_prev[s] and e_last <= 1e-10 * total[s]
                        and e_last * e_last <= REL_TOL * (total[s] + floor[s]) * e_prev[s]):
                    active[s] = 0.0
                e_prev[s] = e_last
                previous[s] = total[s]
            if first == 1 or active[s] == 0.0:
                out[s] = total[s]
                nodes[s] = np.int64(count[s])
                active[s] = 0.0
            else:
                done = False
        if done or first == 1:
            break
        first = stride // 2 if first == 0 else first // 2


@chain_kernel(error_model="numpy")
def w2_squared(weights, mus, sds, z, zw, target, phi, tq, out, nodes):
    r"""``out[b, s]``: the quadrature sum of member ``b`` projected on direction ``s``
    (``mus[b, s]``, ``sds[b, s]``) against the truth's quantiles ``tq[s]``; ``nodes[b, s]``
    the number of quantiles solved (0 where a parameter is not finite: ``out`` is NaN for
    a NaN, else inf). ``target[j]`` is :math:`\Phi(-|z_j|)` and ``phi[j]``
    :math:`\varphi(z_j)`. See the module docstring."""
    chains, slices, _ = mus.shape
    m = z.shape[0]
    floor = np.empty(slices)
    for s in range(slices):
        acc = 0.0
        for j in range(m):
            acc += zw[j] * tq[s, j] * tq[s, j]
        floor[s] = acc * 1e-26
    for b in nb.prange(chains):
        x = np.empty((slices, m))
        xp = np.empty((slices, m))
        xpp = np.empty((slices, m))
        p = np.empty((slices, m))
        dp = np.empty((slices, m))
        state = np.empty((_STATE_ROWS, slices))
        lanes = np.empty((4, slices * m))
        ws = np.empty((_WS_ROWS, slices * m))
        _member(weights[b], mus[b], sds[b], z, zw, target, phi, tq, floor, out[b], nodes[b],
                x, xp, xpp, p, dp, state, lanes, ws)
