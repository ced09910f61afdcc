"""Probability outside a ball under a normal distribution, jitted (directional method)."""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel


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
    fixed ``directions`` ``(M, d)`` (unit vectors). At the truth and for any
    isotropic model every direction gives the exact answer.
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
