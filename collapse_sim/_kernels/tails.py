"""Probability outside a ball under a normal distribution, jitted (directional method)."""

import math

import numba as nb


@nb.njit(inline="always")
def chi2_sf(x, d):
    """Upper tail ``P(chi2_d > x)`` for an integer ``d >= 1`` (closed-form finite series)."""
    if x <= 0.0:
        return 1.0
    y = 0.5 * x
    if d % 2 == 0:
        term = math.exp(-y)
        total = term
        for k in range(1, d // 2):
            term *= y / k
            total += term
        return min(total, 1.0)
    total = math.erfc(math.sqrt(y))
    if d > 1:
        # Q(j + 1/2, y) = erfc(sqrt y) + e^{-y} sum_{i<j} y^{i+1/2} / Gamma(i + 3/2)
        term = math.exp(-y) * math.sqrt(y) / math.gamma(1.5)
        total += term
        for i in range(1, (d - 1) // 2):
            term *= y / (i + 0.5)
            total += term
    return min(total, 1.0)


@nb.njit(parallel=True, cache=True)
def outside_ball(beta, lam, radius2, directions, out):
    r"""``out[c] = P(||w||^2 > radius2)``, ``w = beta[c] + diag(sqrt(lam[c])) z``, ``z ~ N(0, I_d)``.

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
        acc = 0.0
        for i in range(m):
            a = 0.0
            b = 0.0
            for j in range(d):
                v = math.sqrt(max(lam[c, j], 0.0)) * directions[i, j]
                a += v * v
                b += beta[c, j] * v
            if a <= 0.0:
                acc += 1.0 if e > 0.0 else 0.0
                continue
            disc = b * b - a * e
            if disc <= 0.0:
                acc += 1.0
                continue
            root = math.sqrt(disc)
            q = -(b + root) if b >= 0.0 else -(b - root)
            r_lo = min(q / a, e / q) if q != 0.0 else -root / a
            r_hi = max(q / a, e / q) if q != 0.0 else root / a
            if r_hi <= 0.0:
                acc += 1.0
                continue
            lo2 = max(r_lo, 0.0) ** 2
            # outside = P(r < r_lo) + P(r > r_hi) = (1 - sf(lo2)) + sf(hi2)
            acc += (1.0 - chi2_sf(lo2, d)) + chi2_sf(r_hi * r_hi, d)
        out[c] = acc / m
