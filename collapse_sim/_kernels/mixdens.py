"""Densities, CDFs and quantiles of batches of Gaussian mixtures, jitted."""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .vecmath import exp_inplace

_LOG_2PI = math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)


#: Points whose densities one chain holds at a time, per component (a multiple of 4).
LOGPDF_BLOCK = 256


@chain_kernel(error_model="numpy")
def mean_logpdf(weights, means, chols, coords, out):
    r"""``out[c] = mean_i log q_c(x_i)`` for mixtures ``c`` (lower Cholesky factors) at the
    points ``x_i``, given by coordinate: ``coords`` is ``(d, m)``.

    .. math::

        \log q(x) = t + \log \sum_k e^{v_k - t}, \quad
        v_k = \log w_k - \sum_a \log L_{k,aa} - \tfrac d2 \log 2\pi
              - \tfrac12 \lVert L_k^{-1} (x - \mu_k) \rVert^2, \quad t = \max_k v_k.

    The points are taken in blocks of :data:`LOGPDF_BLOCK`; within a block every step is
    a loop over the points that the compiler vectorises: the forward substitution
    (divisions, as ``scipy.linalg.solve_triangular``), the maximum, and
    :math:`e^{v_k - t}` (:func:`collapse_sim._kernels.vecmath.exp_inplace`, within 1 ulp
    of the C library). The logarithms are taken of products: each sum lies in
    :math:`[1, K]`, so a product of up to ``group`` of them (``K^group < 2^{1000}``) does
    not overflow, and one ``log`` serves ``group`` points (four interleaved products per
    block). A component with a zero pivot (a degenerate covariance) or weight 0 contributes
    no density; a point with no density under any component gives ``-inf``.
    """
    chains, k_count, d = means.shape
    m = coords.shape[1]
    per_log = 1000 // max(1, math.ceil(math.log2(k_count + 1.0)))
    group = max(1, min(LOGPDF_BLOCK // 4, per_log))
    block = 4 * group
    for c in nb.prange(chains):
        logc = np.empty(k_count)
        valid = np.empty(k_count, dtype=np.bool_)
        for k in range(k_count):
            acc = 0.0
            ok = weights[c, k] > 0.0
            for j in range(d):
                if not chols[c, k, j, j] > 0.0:
                    ok = False
                else:
                    acc += math.log(chols[c, k, j, j])
            valid[k] = ok
            logc[k] = math.log(weights[c, k]) - acc - 0.5 * d * _LOG_2PI if ok else 0.0
        vals = np.empty((k_count, block))
        y = np.empty((d, block))
        maha = np.empty(block)
        top = np.empty(block)
        total_exp = np.empty(block)
        bits = np.empty(block, dtype=np.int64)
        scaled = np.empty(block)
        tops = 0.0
        logs = 0.0
        dead = False
        for i0 in range(0, m, block):
            n = min(block, m - i0)
            for i in range(n):
                top[i] = -np.inf
            for k in range(k_count):
                row = vals[k]
                if not valid[k]:
                    for i in range(n):
                        row[i] = -np.inf
                    continue
                for i in range(n):
                    maha[i] = 0.0
                for a in range(d):
                    ya = y[a]
                    mu = means[c, k, a]
                    for i in range(n):
                        ya[i] = coords[a, i0 + i] - mu
                    for b in range(a):
                        lab = chols[c, k, a, b]
                        yb = y[b]
                        for i in range(n):
                            ya[i] -= lab * yb[i]
                    pivot = chols[c, k, a, a]
                    for i in range(n):
                        ya[i] = ya[i] / pivot
                        maha[i] += ya[i] * ya[i]
                lk = logc[k]
                for i in range(n):
                    v = lk - 0.5 * maha[i]
                    row[i] = v
                    top[i] = v if v > top[i] else top[i]  # a NaN never wins
            for i in range(n):
                if top[i] == -np.inf:
                    dead = True
            if dead:
                break
            for i in range(n):
                total_exp[i] = 0.0
            for k in range(k_count):
                row = vals[k]
                for i in range(n):
                    row[i] = row[i] - top[i]
                exp_inplace(row, n, bits, scaled)
                for i in range(n):
                    total_exp[i] += row[i]
            # four interleaved running sums and products: independent dependency chains
            s0 = s1 = s2 = s3 = 0.0
            p0 = p1 = p2 = p3 = 1.0
            full = n - n % 4
            for i in range(0, full, 4):
                s0 += top[i]
                s1 += top[i + 1]
                s2 += top[i + 2]
                s3 += top[i + 3]
                p0 *= total_exp[i]
                p1 *= total_exp[i + 1]
                p2 *= total_exp[i + 2]
                p3 *= total_exp[i + 3]
            for i in range(full, n):
                s0 += top[i]
                p0 *= total_exp[i]
            tops += (s0 + s1) + (s2 + s3)
            logs += (math.log(p0) + math.log(p1)) + (math.log(p2) + math.log(p3))
        out[c] = -np.inf if dead else (tops + logs) / m


@nb.njit(inline="always")
def _tail_pdf(x, w, mu, sd, upper):
    """Mixture CDF (``upper=False``) or survival function (``upper=True``) at ``x``, and pdf.

    Each is summed from its own tail (``erfc``), so probabilities far below 1e-16 keep
    their relative accuracy.
    """
    tail = 0.0
    pdf = 0.0
    for k in range(w.shape[0]):
        if w[k] <= 0.0:
            continue
        if sd[k] > 0.0:
            z = (x - mu[k]) / sd[k]
            tail += w[k] * 0.5 * math.erfc((z if upper else -z) / _SQRT2)
            pdf += w[k] * math.exp(-0.5 * z * z) / (sd[k] * math.sqrt(2.0 * math.pi))
        elif (x < mu[k]) if upper else (x >= mu[k]):
            tail += w[k]
    return tail, pdf


@nb.njit(inline="always")
def _newton_quantile(w, mu, sd, upper, target, x, lo, hi):
    """Solve the mixture's CDF (``upper`` False) or survival function (True) for the tail
    probability ``target`` from ``x`` inside ``[lo, hi]``: Newton steps inside a
    bisection bracket, to relative accuracy 1e-14 of ``target`` (or a bracket of 1e-15
    relative: a jump of the CDF, a point mass, lies there). Returns ``(x, p, fresh)``:
    ``p`` is the density at ``x`` when ``fresh``, else at the point before the last step.
    """
    p = 0.0
    fresh = False
    for _ in range(200):
        t, p = _tail_pdf(x, w, mu, sd, upper)
        fresh = True
        g = (target - t) if upper else (t - target)  # increasing in x
        if abs(g) <= 1e-14 * target:
            break
        if g < 0.0:
            lo = x
        else:
            hi = x
        if hi - lo <= 1e-15 * max(1.0, abs(x)):
            break
        fresh = False
        step_ok = False
        if p > 0.0:
            nxt = x - g / p
            if lo < nxt < hi:
                done = abs(nxt - x) <= 1e-13 * max(1.0, abs(x))
                x = nxt
                step_ok = True
                if done:
                    break
        if not step_ok:
            x = 0.5 * (lo + hi)
    return x, p, fresh


@chain_kernel
def quantiles_1d(weights, mus, sds, z, out):
    """``out[c, j]``: the ``Phi(z[j])``-quantile of the 1-D mixture ``c`` (``z`` increasing).

    For ``z < 0`` it solves ``F(x) = Phi(z)``, for ``z >= 0`` ``S(x) = Phi(-z)`` (the
    survival function), each to relative accuracy 1e-14 of the tail probability:
    Newton steps inside a bisection bracket, swept left to right so each solve
    starts from the previous quantile.
    """
    chains, k_count = weights.shape
    m = z.shape[0]
    for c in nb.prange(chains):
        w = weights[c]
        mu = mus[c]
        sd = sds[c]
        lo_all = np.inf
        hi_all = -np.inf
        for k in range(k_count):
            if w[k] > 0.0:
                lo_all = min(lo_all, mu[k] - 40.0 * sd[k])
                hi_all = max(hi_all, mu[k] + 40.0 * sd[k])
        x = lo_all
        for j in range(m):
            upper = z[j] >= 0.0
            target = 0.5 * math.erfc(abs(z[j]) / _SQRT2)  # Phi(-|z|)
            x, _, _ = _newton_quantile(w, mu, sd, upper, target, x, x, hi_all)
            out[c, j] = x
