"""Probability outside a ball under a normal distribution, jitted (directional method)."""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .vecmath import exp_inplace


@nb.njit(inline="always")
def chi2_sf(x, d):
    """Upper tail ``P(chi2_d > x)`` for an integer ``d >= 1`` (closed-form finite series).

    Even ``d``: ``e^{-y} sum_{k < d/2} y^k / k!``; odd ``d``: ``erfc(sqrt y) +
    sum_{i < (d-1)/2} e^{-y} y^{i+1/2} / Gamma(i + 3/2)``, with ``y = x / 2``. Terms
    are formed in log space, so huge ``x`` (a collapsed model far from the
    boundary) gives 0, never ``0 * inf``.
    """
    if x <= 0.0:
        return 1.0
    if not x < math.inf:
        return 0.0
    y = 0.5 * x
    logy = math.log(y)
    if d % 2 == 0:
        total = 0.0
        for k in range(d // 2):
            total += math.exp(-y + k * logy - math.lgamma(k + 1.0))
        return min(total, 1.0)
    total = math.erfc(math.sqrt(y))
    for i in range((d - 1) // 2):
        total += math.exp(-y + (i + 0.5) * logy - math.lgamma(i + 1.5))
    return min(total, 1.0)


@chain_kernel
def outside_ball(beta, lam, radius2, directions, out):
    r"""``out[c] = P(||w||^2 > radius2)``, ``w = beta[c] + sqrt(lam[c]) * z``, ``z ~ N(0, I_d)``.

    Directional decomposition (Deak 1980): ``z = r u`` with ``r ~ chi_d`` and ``u``
    uniform on the sphere, independent. For a fixed direction ``u`` the event
    ``||beta + r v||^2 <= radius2`` (``v = sqrt(lam) * u``) is an interval of ``r``
    whose chi-square probability is exact; only the average over ``u`` uses the
    fixed ``directions`` ``(M, d)`` (unit vectors). At the truth (centred and
    isotropic) every direction gives the exact answer.
    """
    chains, d = beta.shape
    m = directions.shape[0]
    for c in nb.prange(chains):
        e = -radius2
        for j in range(d):
            e += beta[c, j] * beta[c, j]
        # Householder reflection taking the set's pole (last axis) to the direction of the
        # whitened shift beta: the integrand varies most with the angle to beta, and the
        # direction sets are stratified in the angle to their pole.
        norm_b = math.sqrt(max(e + radius2, 0.0))
        w = np.zeros(d)
        ww = 0.0
        if norm_b > 0.0:
            for j in range(d):
                w[j] = -beta[c, j] / norm_b
            w[d - 1] += 1.0
            for j in range(d):
                ww += w[j] * w[j]
        u = np.empty(d)
        acc = 0.0
        for i in range(m):
            wu = 0.0
            for j in range(d):
                wu += w[j] * directions[i, j]
            f = 2.0 * wu / ww if ww > 1e-300 else 0.0
            for j in range(d):
                u[j] = directions[i, j] - f * w[j]
            # v = sqrt(lam) * u = scale * vhat with |vhat| = 1; along vhat, rho = r * scale.
            a = 0.0
            for j in range(d):
                v = math.sqrt(max(lam[c, j], 0.0)) * u[j]
                a += v * v
            scale = math.sqrt(a)
            if not scale > 0.0:
                acc += 1.0 if e > 0.0 else 0.0
                continue
            b = 0.0
            for j in range(d):
                b += beta[c, j] * (math.sqrt(max(lam[c, j], 0.0)) * u[j] / scale)
            # |beta + rho vhat|^2 <= radius2  <=>  rho^2 + 2 b rho + e <= 0
            disc = b * b - e
            if disc <= 0.0:
                acc += 1.0
                continue
            root = math.sqrt(disc)
            rho_hi = -b + root
            if rho_hi <= 0.0:
                acc += 1.0
                continue
            rho_lo = max(-b - root, 0.0)
            r_lo = rho_lo / scale
            r_hi = rho_hi / scale
            # outside = P(r < r_lo) + P(r > r_hi), r ~ chi_d
            acc += (1.0 - chi2_sf(r_lo * r_lo, d)) + chi2_sf(r_hi * r_hi, d)
        out[c] = acc / m


@nb.njit(inline="always")
def _inside_2d(b1, b2, s1, s2, theta, e):
    """P(ray from beta in direction theta stays in the ball), r ~ chi_2 (d = 2)."""
    v1 = s1 * math.cos(theta)
    v2 = s2 * math.sin(theta)
    scale = math.sqrt(v1 * v1 + v2 * v2)
    if not scale > 0.0:
        return 0.0 if e > 0.0 else 1.0
    b = (b1 * v1 + b2 * v2) / scale
    disc = b * b - e
    if disc <= 0.0:
        return 0.0
    root = math.sqrt(disc)
    rho_hi = -b + root
    if rho_hi <= 0.0:
        return 0.0
    r_lo = max(-b - root, 0.0) / scale
    r_hi = rho_hi / scale
    return math.exp(-0.5 * r_lo * r_lo) - math.exp(-0.5 * r_hi * r_hi)


#: Members per task of :func:`outside_ball_2d` (each task allocates its scratch once).
BLOCK_2D = 64


@nb.njit(inline="always")
def _inside_trapezoid_2d(b1, b2, s1, s2, e, cos_t, sin_t, scratch, bits):
    """The sum over the trapezoid angles (``cos_t``, ``sin_t``) of :func:`_inside_2d`,
    in loops the compiler vectorises (its exponentials by :func:`exp_inplace`, within
    1 ulp of the C library's), summed in order: the scalar sum, term by term, up to those
    exponentials. ``scratch`` is ``(5, n)``."""
    n = cos_t.shape[0]
    lo = scratch[0]
    hi = scratch[1]
    reach = scratch[2]
    const = scratch[3]
    for i in range(n):
        v1 = s1 * cos_t[i]
        v2 = s2 * sin_t[i]
        scale = math.sqrt(v1 * v1 + v2 * v2)
        ok = scale > 0.0
        sc = scale if ok else 1.0
        b = (b1 * v1 + b2 * v2) / sc
        disc = b * b - e
        root = math.sqrt(disc if disc > 0.0 else 0.0)
        rho_hi = -b + root
        r_lo = max(-b - root, 0.0) / sc
        r_hi = rho_hi / sc
        lo[i] = -0.5 * r_lo * r_lo
        hi[i] = -0.5 * r_hi * r_hi
        # as the scalar branches: no crossing where disc <= 0 or rho_hi <= 0 (NaN: crossing)
        reach[i] = 0.0 if (not ok) | (disc <= 0.0) | (rho_hi <= 0.0) else 1.0
        const[i] = 0.0 if ok | (e > 0.0) else 1.0  # a zero-length ray: in or out
    exp_inplace(lo, n, bits, scratch[4])
    exp_inplace(hi, n, bits, scratch[4])
    acc = 0.0
    for i in range(n):
        acc += (lo[i] - hi[i]) if reach[i] != 0.0 else const[i]
    return acc


@chain_kernel(error_model="numpy")
def outside_ball_2d(beta, lam, radius2, cos_t, sin_t, gl_nodes, gl_weights, out):
    r"""``d = 2`` case of :func:`outside_ball`, to rounding accuracy.

    With ``u = (cos t, sin t)`` uniform and ``r ~ chi_2``, the probability of
    staying inside along direction ``t`` is ``exp(-r_lo^2/2) - exp(-r_hi^2/2)``.
    When the shifted centre ``beta`` lies inside the ball this is smooth and
    periodic in ``t``: the trapezoid rule on the angles ``t_i = 2 pi (i + 1/2) / n``
    (``cos_t``, ``sin_t``) converges geometrically. When it lies outside, only an arc
    of directions reaches the ball: in the angle ``psi`` of ``v = sqrt(lam) * u`` it is
    ``psi_c +- arccos(sqrt(e) / |beta|)`` around ``psi_c = angle(-beta)``, mapped to
    ``t`` by ``tan t = sqrt(lam_1 / lam_2) tan psi``; the integrand vanishes like a
    square root at both ends, which the substitution ``t = t_m + (D/2) sin(phi)``
    removes before Gauss-Legendre quadrature on ``phi``.
    """
    chains = beta.shape[0]
    n_trap = cos_t.shape[0]
    for task in nb.prange((chains + BLOCK_2D - 1) // BLOCK_2D):
        scratch = np.empty((5, n_trap))
        bits = np.empty(n_trap, dtype=np.int64)
        for c in range(task * BLOCK_2D, min(chains, (task + 1) * BLOCK_2D)):
            _outside_2d(beta, lam, radius2, cos_t, sin_t, gl_nodes, gl_weights, out, c,
                        scratch, bits)


@nb.njit(inline="always")
def _outside_2d(beta, lam, radius2, cos_t, sin_t, gl_nodes, gl_weights, out, c, scratch,
            bits):
    """Member ``c`` of :func:`outside_ball_2d`."""
    b1 = beta[c, 0]
    b2 = beta[c, 1]
    s1 = math.sqrt(max(lam[c, 0], 0.0))
    s2 = math.sqrt(max(lam[c, 1], 0.0))
    e = b1 * b1 + b2 * b2 - radius2
    if e <= 0.0 or not (s1 > 0.0 and s2 > 0.0):
        acc = _inside_trapezoid_2d(b1, b2, s1, s2, e, cos_t, sin_t, scratch, bits)
        out[c] = 1.0 - acc / cos_t.shape[0]
        return
    norm_b = math.sqrt(b1 * b1 + b2 * b2)
    alpha = math.acos(min(math.sqrt(e) / norm_b, 1.0))
    psi_c = math.atan2(-b2, -b1)
    t1 = math.atan2(math.sin(psi_c - alpha) / s2, math.cos(psi_c - alpha) / s1)
    t2 = math.atan2(math.sin(psi_c + alpha) / s2, math.cos(psi_c + alpha) / s1)
    width = (t2 - t1) % (2.0 * math.pi)
    mid = t1 + 0.5 * width
    acc = 0.0
    for i in range(gl_nodes.shape[0]):
        phi = 0.5 * math.pi * gl_nodes[i]
        theta = mid + 0.5 * width * math.sin(phi)
        jac = 0.5 * width * math.cos(phi) * 0.5 * math.pi
        acc += gl_weights[i] * jac * _inside_2d(b1, b2, s1, s2, theta, e)
    out[c] = 1.0 - acc / (2.0 * math.pi)
