r"""Sliced Wasserstein-2 quadrature of batches of Gaussian mixtures, jitted (private).

:func:`w2_squared` computes, for every member ``b`` and direction ``s``, the trapezoid sum

.. math::

    T_{bs} = \sum_j \omega_{sj}\,(x_{bsj} - t_{sj})^2

over equally spaced nodes :math:`v_j` of an integration variable, with
:math:`\omega_{sj}` (``zw``) the trapezoid weights times the variable's density
:math:`\rho`, :math:`x_{bsj}` the model's quantile at the node's probability (of the 1-D
mixture ``(weights[b], mus[b, s], sds[b, s])``) and ``t`` the truth's. The variable is
either the normal score (:math:`v = z`, :math:`\rho = \varphi`, probability
:math:`\Phi(z_j)`, ``t`` the truth's quantiles: the integral
:math:`\int (F^{-1}(\Phi(z)) - G^{-1}(\Phi(z)))^2\varphi(z)\,dz`) or, per direction
(``vform``), the truth's own variable (:math:`\rho = g`, the truth's density;
probability :math:`G(v_j)`, ``t`` the nodes themselves: the same integral written
:math:`\int (F^{-1}(G(v)) - v)^2 g(v)\,dv`). Where the truth's density dips between two
modes its quantile function is steep in normal scores, and most directions needed the
full grid and refinement; in its own variable the dip costs nothing (the caller,
:meth:`collapse_sim.families.mixture.MixtureContext.w2_grid`, chooses). Every node
carries its normal score ``z`` too: the quantile solves, their brackets and first
guesses work in it.

The sum is that of the full grid up to rounding, while solving far fewer quantiles where
the integrand is smooth: the grid (``64 m + 1`` points) is visited in nested levels of
strides 64, 32, ..., 1 (each level's trapezoid sum reuses the previous one); from the
third level on (65 points) the sum is accepted when the trapezoid rule is visibly in
its geometric regime (each halving of the step squares the error, as for integrands
analytic in a strip) and the extrapolated error of the last level is at most
:data:`REL_TOL` of the sum. Components narrower than a quarter of the projected
mixture's standard deviation with a weight below 0.1 (features the coarse levels could
miss) always use the full grid, as do non-smooth integrands (point masses, near-jumps
between separated components), which never pass the test.

Where a direction needed the full grid, its trapezoid sum is then corrected where the
grid is too coarse (:func:`_corrections`): a grid interval is rough where the model's or
the truth's quantile function changes across it by more than :data:`ROUGH` off the
trapezoid of its derivatives (:math:`dx/dv = \rho(v)/f(x)`; a near-jump changes by far
more than its derivatives at the ends say). Each run of rough intervals, widened over
its neighbours rougher than :data:`EDGE` and bridging gaps of up to :data:`RUN_GAP`
smooth ones, is integrated by adaptive Simpson in normal scores with new quantiles of
both distributions (:func:`_refine`), within a share of :data:`REFINE_TOL` per
interval, and the trapezoid sums beside it get their Euler--Maclaurin end terms, since
they are no longer sums over the whole line. A direction without rough intervals keeps
the grid's sum, bit for bit. Measured against adaptive quadrature of the quantile
formula (``benchmarks/w2_accuracy.py``): within 1.1e-9 relative on separated modes,
collapsed spikes and point masses, where the normal scores' grid alone was off by 1e-5
to 7e-3; a two-mode truth against a single Gaussian now takes 129 nodes in its own
variable (within 2e-14) where normal scores took 1262 to 1374 with refinement; a model
whose modes are about as far apart as the truth's takes 1.1 to 1.7 times as many as
before (its transport map nearly jumps inside one of the truth's modes). On the EM fits
of ``bench_jax``'s two-mode truth, see the ``w2`` section of
:mod:`collapse_sim.families.mixture`.

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
from .mixdens import _newton_quantile, _tail_pdf
from .vecmath import _ndtr_inplace, exp_inplace

_SQRT2PI = math.sqrt(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)

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
_STATE_ROWS = 10


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
    ``lanes[1, i]``, bracket ``lanes[2:4, i]``) together, in place in ``x`` (guesses in):
    the tail probability ``target[s, j]``, lower tail where the normal score ``z[s, j]``
    is negative, upper tail elsewhere;
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
            up[i] = z[slc[i], pts[i]] >= 0.0
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
            tj = target[s, j]
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


# -- local refinement where a quantile function nearly jumps -----------------------------------

#: An interval of the grid is refined where a quantile function's change across it differs
#: from the trapezoid rule on its derivatives (:math:`dx/dz = \varphi(z)/f(x)`) by more
#: than this share of the change (a near-jump differs by nearly all of it; the grid's
#: trapezoid sum is then off by up to 1e-3), together with the intervals around it whose
#: share exceeds :data:`EDGE`.
ROUGH = 1e-2
#: A run of refined intervals extends over its neighbours while their share exceeds this:
#: the trapezoid sums beside a run get Euler--Maclaurin end terms, accurate where the
#: function is smooth at the grid's scale (a share of :math:`h^2 x^{(3)}/(12 x')`).
EDGE = 1e-4
#: Inside a refined interval a piece is split while a quantile function's change over one
#: of its halves differs from the trapezoid of its derivatives by more than this share:
#: a jump between the Simpson points (the error test alone could miss a narrow spike
#: of the integrand between two of them).
JUMP = 0.25
#: Largest error accepted from the refinement of a direction, relative to its sum (shared
#: out over its refined grid intervals: each piece of one is accepted within its share).
REFINE_TOL = 1e-9
#: Most bisections below a grid interval (its pieces are then about 1e-17 wide).
MAX_DEPTH = 50
#: Most quantiles one grid interval's refinement solves before it takes its pieces as they
#: are (a safeguard: a near-jump needs about 4 per bisection, some 120 to reach REFINE_TOL).
MAX_SOLVES = 4096
#: Quantities carried per stack entry of :func:`_refine`.
_FIELDS = 16
#: A quantile within this relative distance of a point mass's position sits on it (the
#: solvers stop on a bracket of 1e-15 relative around the CDF's jump).
POINT_MASS_RTOL = 4e-15


@nb.njit(inline="always")
def _grid_slope(w, mu, sd, xj, dj):
    """``dx/dz`` at a grid quantile ``xj`` from the solve (``dj``), 0 where ``xj`` sits on
    a point mass (a component of standard deviation 0 holds the level)."""
    for k in range(w.shape[0]):
        if (w[k] > 0.0 and sd[k] == 0.0
                and abs(xj - mu[k]) <= POINT_MASS_RTOL * max(1.0, abs(mu[k]))):
            return 0.0
    return dj


@nb.njit
def _quantile_at(w, mu, sd, zc, lo, hi):
    r"""The :math:`\Phi(z_c)`-quantile of the 1-D mixture ``(w, mu, sd)`` inside
    ``[lo, hi]`` and :math:`dx/dz = \varphi(z_c)/f(x)` there (inf where the density is 0,
    0 on a point mass: :func:`_grid_slope`), by the safeguarded Newton solve of
    :func:`collapse_sim._kernels.mixdens.quantiles_1d` (CDF below the median, survival
    function above, to 1e-14 of the tail probability: ``_newton_quantile``), from the
    middle of the bracket."""
    upper = zc >= 0.0
    target = 0.5 * math.erfc(abs(zc) / _SQRT2)
    x, p, fresh = _newton_quantile(w, mu, sd, upper, target, 0.5 * (lo + hi), lo, hi)
    if not fresh:
        _, p = _tail_pdf(x, w, mu, sd, upper)
    phi = math.exp(-0.5 * zc * zc) / _SQRT2PI
    return x, _grid_slope(w, mu, sd, x, phi / p if p > 0.0 else np.inf)


@nb.njit(inline="always")
def _smooth(y0, y1, d0, d1, h, rough, noise):
    """Whether ``y`` changes over a step ``h`` as the trapezoid of its derivatives says,
    within ``rough`` of the change and the solver's ``noise`` (absolute): False for a
    near-jump, a zero density, NaN."""
    change = y1 - y0
    return abs(change - 0.5 * h * (d0 + d1)) <= rough * abs(change) + noise


@nb.njit(inline="always")
def _point(w, mu, sd, tw, tmu, tsd, zc, xl, xr, tl, tr, model):
    """Model and truth quantiles at ``zc`` between their neighbours' (``model`` False:
    the truth only, the model's set to 0)."""
    x, dx = _quantile_at(w, mu, sd, zc, xl, xr) if model else (0.0, 0.0)
    t, dt = _quantile_at(tw, tmu, tsd, zc, tl, tr)
    return x, dx, t, dt


@nb.njit(inline="always")
def _integrands(zc, x, t, out, col):
    r"""The four integrands of :func:`_refine` at ``zc``: :math:`(x-t)^2\varphi`,
    :math:`t\varphi`, :math:`zt\varphi`, :math:`t^2\varphi`."""
    phi = math.exp(-0.5 * zc * zc) / _SQRT2PI
    out[0, col] = (x - t) * (x - t) * phi
    out[1, col] = t * phi
    out[2, col] = zc * t * phi
    out[3, col] = t * t * phi


@nb.njit
def _refine(w, mu, sd, tw, tmu, tsd, za, zb, xa, xb, dxa, dxb, ta, tb, dta, dtb, tol,
            noise_x, noise_t, model, result, stack, vals):
    r"""Integrals over ``[za, zb]`` of :math:`(x-t)^2\varphi` (``model`` True: model
    quantiles ``x``, truth quantiles ``t``) or of :math:`t\varphi, zt\varphi, t^2\varphi`
    (``model`` False), added to ``result[0]`` or ``result[1:4]``; returns the number of
    quantiles solved (of the model, or of the truth).

    Adaptive Simpson on a stack of pieces (depth first): a piece is accepted when its
    two halves' Simpson sums agree with its own within ``15 tol`` (``tol`` absolute,
    the same for every piece: a near-jump's piece keeps splitting until it is narrow
    enough, which a tolerance halved with the width would never allow) and both
    quantile functions are smooth (:func:`_smooth`) on both halves; the accepted sum
    has Richardson's correction. At :data:`MAX_DEPTH` (or a piece narrower than the
    resolution of ``z``), or once :data:`MAX_SOLVES` quantiles are solved, the pieces are
    taken as they are. ``stack`` is ``(MAX_DEPTH + 3, _FIELDS)`` and ``vals`` ``(4, 7)``
    scratch.
    """
    solved = 0
    budget = MAX_SOLVES
    zm = 0.5 * (za + zb)
    xm, dxm, tm, dtm = _point(w, mu, sd, tw, tmu, tsd, zm, xa, xb, ta, tb, model)
    solved += 1
    # a piece: z, x, dx, t, dt at its ends and middle (15), depth, and Simpson sums
    top = 0
    row = stack[top]
    row[0], row[1], row[2], row[3], row[4] = za, xa, dxa, ta, dta
    row[5], row[6], row[7], row[8], row[9] = zm, xm, dxm, tm, dtm
    row[10], row[11], row[12], row[13], row[14] = zb, xb, dxb, tb, dtb
    row[15] = 0.0
    top = 1
    while top > 0:
        top -= 1
        row = stack[top]
        z0, x0, d0, t0, e0 = row[0], row[1], row[2], row[3], row[4]
        z1, x1, d1, t1, e1 = row[5], row[6], row[7], row[8], row[9]
        z2, x2, d2, t2, e2 = row[10], row[11], row[12], row[13], row[14]
        depth = row[15]
        zl = 0.5 * (z0 + z1)
        zr = 0.5 * (z1 + z2)
        xl, dxl, tl, dtl = _point(w, mu, sd, tw, tmu, tsd, zl, x0, x1, t0, t1, model)
        xr, dxr, tr, dtr = _point(w, mu, sd, tw, tmu, tsd, zr, x1, x2, t1, t2, model)
        solved += 2
        _integrands(z0, x0, t0, vals, 0)
        _integrands(zl, xl, tl, vals, 1)
        _integrands(z1, x1, t1, vals, 2)
        _integrands(zr, xr, tr, vals, 3)
        _integrands(z2, x2, t2, vals, 4)
        half = z1 - z0
        ok = True
        first = 0 if model else 1
        last = 1 if model else 4
        for q in range(first, last):
            whole = half / 3.0 * (vals[q, 0] + 4.0 * vals[q, 2] + vals[q, 4])
            parts = half / 6.0 * (vals[q, 0] + 4.0 * vals[q, 1] + 2.0 * vals[q, 2]
                                  + 4.0 * vals[q, 3] + vals[q, 4])
            vals[q, 5] = parts + (parts - whole) / 15.0
            vals[q, 6] = parts
            if not abs(parts - whole) <= 15.0 * tol:
                ok = False
        h = 0.5 * half
        bounded = False  # accepted by the bound: the plain Simpson sum, inside it
        if model:
            ok = ok and (_smooth(x0, xl, d0, dxl, h, JUMP, noise_x)
                         and _smooth(xl, x1, dxl, d1, h, JUMP, noise_x)
                         and _smooth(x1, xr, d1, dxr, h, JUMP, noise_x)
                         and _smooth(xr, x2, dxr, d2, h, JUMP, noise_x))
        ok = ok and (_smooth(t0, tl, e0, dtl, h, JUMP, noise_t)
                     and _smooth(tl, t1, dtl, e1, h, JUMP, noise_t)
                     and _smooth(t1, tr, e1, dtr, h, JUMP, noise_t)
                     and _smooth(tr, t2, dtr, e2, h, JUMP, noise_t))
        if not ok and model:
            # x and t are increasing: on the piece (x - t)^2 lies between its smallest
            # and largest values over the corners of [x0, x2] x [t0, t2], which bounds
            # the error of any estimate inside those bounds
            top2 = max((x2 - t0) * (x2 - t0), (x0 - t2) * (x0 - t2))
            low2 = 0.0 if (x0 - t2) * (x2 - t0) <= 0.0 else min((x0 - t2) * (x0 - t2),
                                                                (x2 - t0) * (x2 - t0))
            phi_max = math.exp(-0.5 * min(z0 * z0, z2 * z2)) / _SQRT2PI
            if 2.0 * half * phi_max * (top2 - low2) <= tol:
                ok = True
                bounded = True
        if ok or depth >= MAX_DEPTH or h <= 1e-15 * max(1.0, abs(z1)) or solved > budget:
            for q in range(first, last):
                result[q] += vals[q, 6] if bounded else vals[q, 5]
            continue
        # both halves go on the stack, the left one on top
        right = stack[top]
        right[0], right[1], right[2], right[3], right[4] = z1, x1, d1, t1, e1
        right[5], right[6], right[7], right[8], right[9] = zr, xr, dxr, tr, dtr
        right[10], right[11], right[12], right[13], right[14] = z2, x2, d2, t2, e2
        right[15] = depth + 1
        left = stack[top + 1]
        left[0], left[1], left[2], left[3], left[4] = z0, x0, d0, t0, e0
        left[5], left[6], left[7], left[8], left[9] = zl, xl, dxl, tl, dtl
        left[10], left[11], left[12], left[13], left[14] = z1, x1, d1, t1, e1
        left[15] = depth + 1
        top += 2
    return solved


@nb.njit(inline="always")
def _level(x, d, j, h, noise):
    """How rough grid interval ``j`` is for the quantile function ``x`` (slopes ``d``): 0
    smooth (within :data:`EDGE`), 1 within :data:`ROUGH`, 2 rougher."""
    if _smooth(x[j], x[j + 1], d[j], d[j + 1], h, EDGE, noise):
        return 0
    return 1 if _smooth(x[j], x[j + 1], d[j], d[j + 1], h, ROUGH, noise) else 2


@nb.njit(inline="always")
def _noise(x):
    """The solver's absolute noise for the quantiles ``x`` of one distribution (at the
    grid's scores): 1e-14 of a 16th of their range (about a standard deviation)."""
    return 1e-14 * (abs(x[0]) + abs(x[x.shape[0] - 1]) + (x[x.shape[0] - 1] - x[0]) / 16.0)


#: Smooth intervals between two rough ones, at most this many in a row, belong to the run:
#: in the middle of a near-jump the change over one interval can match the trapezoid of
#: its end slopes by chance, and the Euler--Maclaurin end terms taken there would be
#: wrong (measured: 5e-6 off on a transport map through a model's dip, integrated in the
#: truth's variable).
RUN_GAP = 4


@nb.njit
def _next_run(level, j):
    """``(start, stop)`` of the next run of rough intervals from ``j`` on: consecutive
    intervals of ``level`` >= 1, bridging gaps of at most :data:`RUN_GAP` smooth ones,
    with at least one of level 2 (``(m, m)`` when there is none)."""
    m = level.shape[0]
    while j < m:
        if level[j] == 0:
            j += 1
            continue
        start = j
        core = False
        while j < m and level[j] > 0:
            core = core or level[j] == 2
            j += 1
            gap = j
            while gap < m and gap - j < RUN_GAP and level[gap] == 0:
                gap += 1
            if j < gap < m and level[gap] > 0:  # a short gap: the run goes on
                j = gap
        if core:
            return start, j
    return m, m


@nb.njit
def _corrections(w, mu, sd, tw, tmu, tsd, var, z, dens, curv, vform, x, xp, tq, tqp, tol,
                 stack, vals, res, slope, level):
    r"""The error of the full-grid trapezoid sum of :math:`I = (x - t)^2\rho` over the
    integration variable ``var`` (:math:`v`, of density :math:`\rho` = ``dens``, with
    :math:`-\rho'/\rho` = ``curv``: the normal score with :math:`\varphi`, or the
    truth's own variable with its density when ``vform``; ``z`` the nodes' normal scores)
    where the model's or the truth's quantile function is too rough for the grid
    (:func:`_level`, :func:`_next_run`). Returns the correction and the number of model
    quantiles solved.

    Each run of rough intervals :math:`[v_a, v_b]` is integrated by :func:`_refine`
    instead of the trapezoid rule, over the same interval in normal scores
    :math:`[z_a, z_b]` (the integral does not depend on the variable; the slopes are
    converted by :math:`dv/dz = \varphi(z)/\rho(v)`). The trapezoid sums left and right
    of the run are then no longer sums over the whole line, whose errors vanish for a
    smooth integrand: each gets its Euler--Maclaurin end term, together
    :math:`-\tfrac{h^2}{12}(I'(v_a) - I'(v_b))` with
    :math:`I' = (2(x - t)(x' - t') - (-\rho'/\rho)(x - t)^2)\rho`. ``slope`` and
    ``level`` ``(Z,)`` are scratch.
    """
    m = z.shape[0]
    for j in range(m):
        slope[j] = _grid_slope(w, mu, sd, x[j], xp[j])
    h = var[1] - var[0]
    noise_x = _noise(x)
    noise_t = _noise(tq)
    for j in range(m - 1):
        level[j] = max(_level(x, slope, j, h, noise_x), _level(tq, tqp, j, h, noise_t))
    # the tolerance is shared out over the refined intervals: a long run (a near-jump
    # the grid spreads over many intervals) would otherwise add up many pieces' errors
    intervals = 0
    start, stop = _next_run(level[:m - 1], np.int64(0))
    while start < m - 1:
        intervals += stop - start
        start, stop = _next_run(level[:m - 1], stop)
    tol = tol / max(intervals, 1)
    corr = 0.0
    solved = 0
    start, stop = _next_run(level[:m - 1], np.int64(0))
    while start < m - 1:
        for j in range(start, stop):
            res[0] = 0.0
            c0 = 1.0
            c1 = 1.0
            if vform:  # slopes in normal scores
                c0 = math.exp(-0.5 * z[j] * z[j]) / _SQRT2PI / dens[j]
                c1 = math.exp(-0.5 * z[j + 1] * z[j + 1]) / _SQRT2PI / dens[j + 1]
            solved += _refine(w, mu, sd, tw, tmu, tsd, z[j], z[j + 1], x[j], x[j + 1],
                              slope[j] * c0, slope[j + 1] * c1, tq[j], tq[j + 1],
                              tqp[j] * c0, tqp[j + 1] * c1, tol, noise_x, noise_t, True, res,
                              stack, vals)
            e0 = x[j] - tq[j]
            e1 = x[j + 1] - tq[j + 1]
            corr += res[0] - 0.5 * h * (dens[j] * e0 * e0 + dens[j + 1] * e1 * e1)
        for end, sign in ((start, -1.0), (stop, 1.0)):
            if 0 < end < m - 1:  # the grid's own ends: the integrand is ~1e-15 there
                e = x[end] - tq[end]
                de = (2.0 * e * (slope[end] - tqp[end]) - curv[end] * e * e) * dens[end]
                corr += sign * h * h / 12.0 * de
        start, stop = _next_run(level[:m - 1], stop)
    return corr, solved


@nb.njit(error_model="numpy")
def _member(w, mus, sds, var, z, dens, curv, zw, target, vform, tq, floor, out, nodes, x, xp,
            xpp, p, dp, state, lanes, ws, tw, tmu, tsd, tqp, stack, vals, res):
    """``out[s]``, ``nodes[s]`` of one member for every direction ``s``: the levels of all
    directions still unconverged are solved together (:func:`_solve_lanes`); a direction
    leaves when its sum is accepted (the rule of the module docstring). A direction that
    needed the full grid then gets the :func:`_corrections` of its rough intervals."""
    slices, k_count = mus.shape
    m = z.shape[1]
    active = state[0]  # 1.0 while the direction's sum is not accepted
    smin = state[1]
    smooth = state[2]
    mean = state[3]
    spread = state[4]
    total = state[5]
    previous = state[6]
    e_prev = state[7]
    count = state[8]
    full = state[9]  # 1.0 where the full grid was summed
    slc = lanes[0].view(np.int64)
    pts = lanes[1].view(np.int64)
    for s in range(slices):
        active[s] = 1.0
        full[s] = 0.0
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
        # the lanes of this level: guesses and brackets (n an int64 from the start: a
        # literal 0 made numba compile _solve_lanes a second time, for Literal[int](0))
        n = np.int64(0)
        for s in range(slices):
            if active[s] == 0.0:
                continue
            for j in range(first, m, stride if first == 0 else 2 * first):
                blo, bhi = _component_range(w, mus[s], sds[s], z[s, j])
                if first == 0:
                    lo = blo
                    hi = bhi
                    guess = _coarse_guess(w, mus[s], sds[s], mean[s], spread[s], z[s, j])
                else:
                    a = j - first
                    b = j + first
                    lo = max(blo, x[s, a])
                    hi = min(bhi, x[s, b])
                    span = var[s, b] - var[s, a]
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
                if pj > 0.0:  # dx/dv = rho(v)/f(x), d2x/dv2 = -x'(-rho'/rho + f'/f x')
                    d1 = dens[s, j] / pj
                    xp[s, j] = d1
                    xpp[s, j] = -d1 * (curv[s, j] + dp[s, j] / pj * d1)
                else:  # no density: no Hermite guess from here
                    xp[s, j] = np.nan
                    xpp[s, j] = np.nan
                d = x[s, j] - tq[s, j]
                part += zw[s, j] * d * d
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
                if active[s] != 0.0:
                    full[s] = 1.0
                active[s] = 0.0
            else:
                done = False
        if done or first == 1:
            break
        first = stride // 2 if first == 0 else first // 2
    for s in range(slices):
        if full[s] != 0.0:
            tol = REFINE_TOL * (out[s] + floor[s])
            corr, solved = _corrections(w, mus[s], sds[s], tw, tmu[s], tsd[s], var[s], z[s],
                                        dens[s], curv[s], vform[s], x[s], xp[s], tq[s],
                                        tqp[s], tol, stack, vals, res, p[s], xpp[s])
            out[s] = max(out[s] + corr, 0.0)
            nodes[s] += solved


@chain_kernel(error_model="numpy")
def w2_squared(weights, mus, sds, var, z, dens, curv, zw, target, vform, tq, tw, tmu, tsd, tqp,
               out, nodes):
    r"""``out[b, s]``: the quadrature sum of member ``b`` projected on direction ``s``
    (``mus[b, s]``, ``sds[b, s]``) against the truth's quantiles ``tq[s]``; ``nodes[b, s]``
    the number of quantiles solved (0 where a parameter is not finite: ``out`` is NaN for
    a NaN, else inf). Per direction ``s`` and node ``j`` (all ``(S, Z)``): the
    integration variable ``var`` (equally spaced), the node's normal score ``z``, the
    variable's density ``dens`` and ``curv`` :math:`= -\rho'/\rho`, the trapezoid
    weights times the density ``zw``, the tail probability ``target`` the quantile solves
    for (lower tail where ``z < 0``), the truth's quantile ``tq`` and its slope ``tqp``
    in ``var``; ``vform[s]`` is True where ``var`` is the truth's own variable (else the
    normal score: ``var = curv = z``, ``dens`` :math:`=\varphi(z)`). See the module
    docstring."""
    chains, slices, _ = mus.shape
    m = z.shape[1]
    floor = np.empty(slices)
    for s in range(slices):
        acc = 0.0
        for j in range(m):
            acc += zw[s, j] * tq[s, j] * tq[s, j]
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
        stack = np.empty((MAX_DEPTH + 3, _FIELDS))
        vals = np.empty((4, 7))
        res = np.zeros(4)
        _member(weights[b], mus[b], sds[b], var, z, dens, curv, zw, target, vform, tq, floor,
                out[b], nodes[b], x, xp, xpp, p, dp, state, lanes, ws, tw, tmu, tsd, tqp, stack,
                vals, res)


@nb.njit(cache=True)
def truth_moment_corrections(tw, tmu, tsd, z, phi, tq, tqp, tol, out):
    r"""For a Gaussian model's closed-form :math:`W_2` (``out`` ``(6,)``): the errors of the
    full-grid trapezoid sums :math:`A_i = \sum_j\omega_j z_j^i` and :math:`P_0, P_1, P_2 =
    \sum_j\omega_j t_j, \sum_j\omega_j z_j t_j, \sum_j\omega_j t_j^2` where the truth's
    quantile function ``tq`` is too rough for the grid (:func:`_level`), as
    :func:`_corrections` gives them for :math:`(x - t)^2\varphi`: on each run of rough
    intervals the :math:`A_i` are integrated exactly and the :math:`P_i` by
    :func:`_refine` (truth quantiles only, tolerance ``tol``), with the Euler--Maclaurin
    end terms of the trapezoid sums beside the run. Returns the number of quantiles
    solved.

    A Gaussian model's quantile :math:`\mu + s z` is smooth, so these runs are the only
    places where the grid is too coarse for :math:`\int(\mu + sz - t)^2\varphi`.
    """
    for i in range(6):
        out[i] = 0.0
    res = np.zeros(4)
    stack = np.empty((MAX_DEPTH + 3, _FIELDS))
    vals = np.empty((4, 7))
    none = np.zeros(1)
    m = z.shape[0]
    h = z[1] - z[0]
    level = np.empty(m - 1)
    noise_t = _noise(tq)
    for j in range(m - 1):
        level[j] = _level(tq, tqp, j, h, noise_t)
    solved = 0
    start, stop = _next_run(level, np.int64(0))
    while start < m - 1:
        for j in range(start, stop):
            a = z[j]
            b = z[j + 1]
            for i in range(4):
                res[i] = 0.0
            solved += _refine(none, none, none, tw, tmu, tsd, a, b, 0.0, 0.0, 0.0, 0.0,
                              tq[j], tq[j + 1], tqp[j], tqp[j + 1], tol, 0.0, noise_t, False,
                              res, stack, vals)
            t0 = tq[j]
            t1 = tq[j + 1]
            mass = 0.5 * (math.erf(b / _SQRT2) - math.erf(a / _SQRT2))
            out[0] += mass - 0.5 * h * (phi[j] + phi[j + 1])
            out[1] += (phi[j] - phi[j + 1]) - 0.5 * h * (phi[j] * a + phi[j + 1] * b)
            out[2] += (mass + a * phi[j] - b * phi[j + 1]) - 0.5 * h * (phi[j] * a * a
                                                                        + phi[j + 1] * b * b)
            out[3] += res[1] - 0.5 * h * (phi[j] * t0 + phi[j + 1] * t1)
            out[4] += res[2] - 0.5 * h * (phi[j] * a * t0 + phi[j + 1] * b * t1)
            out[5] += res[3] - 0.5 * h * (phi[j] * t0 * t0 + phi[j + 1] * t1 * t1)
        for end, sign in ((start, -1.0), (stop, 1.0)):
            if 0 < end < m - 1:
                c = sign * h * h / 12.0 * phi[end]
                ze = z[end]
                t = tq[end]
                dt = tqp[end]
                out[0] += c * (-ze)
                out[1] += c * (1.0 - ze * ze)
                out[2] += c * (2.0 * ze - ze * ze * ze)
                out[3] += c * (dt - ze * t)
                out[4] += c * (t + ze * dt - ze * ze * t)
                out[5] += c * (2.0 * t * dt - ze * t * t)
        start, stop = _next_run(level, stop)
    return solved
