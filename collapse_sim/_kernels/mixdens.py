"""Densities, CDFs and quantiles of batches of Gaussian mixtures, jitted."""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel

_LOG_2PI = math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)


@chain_kernel
def mean_logpdf(weights, means, chols, pts, out):
    """``out[c] = mean_i log q_c(pts[i])`` for mixtures ``c`` (lower Cholesky factors).

    A component with a zero pivot (a degenerate covariance) contributes no density.
    """
    chains, k_count, d = means.shape
    m = pts.shape[0]
    for c in nb.prange(chains):
        y = np.empty(d)
        vals = np.empty(k_count)
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
        total = 0.0
        for i in range(m):
            top = -np.inf
            for k in range(k_count):
                if not valid[k]:
                    vals[k] = -np.inf
                    continue
                maha = 0.0
                for a in range(d):
                    acc = pts[i, a] - means[c, k, a]
                    for b in range(a):
                        acc -= chols[c, k, a, b] * y[b]
                    y[a] = acc / chols[c, k, a, a]
                    maha += y[a] * y[a]
                vals[k] = logc[k] - 0.5 * maha
                if vals[k] > top:
                    top = vals[k]
            if top == -np.inf:
                total = -np.inf
                break
            acc = 0.0
            for k in range(k_count):
                acc += math.exp(vals[k] - top)
            total += top + math.log(acc)
        out[c] = total / m


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
            lo = x
            hi = hi_all
            for _ in range(200):
                t, p = _tail_pdf(x, w, mu, sd, upper)
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
                    nxt = x - g / p
                    if lo < nxt < hi:
                        done = abs(nxt - x) <= 1e-13 * max(1.0, abs(x))
                        x = nxt
                        step_ok = True
                        if done:
                            break
                if not step_ok:
                    x = 0.5 * (lo + hi)
            out[c, j] = x
