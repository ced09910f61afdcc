"""Minibatch SGD on the Gaussian negative log-likelihood, one chain per ``prange`` iteration."""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .rng import next_normal, shuffle

CONSTANT, INVERSE_TIME = 0, 1


@nb.njit(error_model="numpy")
def _sgd_1d_chain(x, states, mean, logscale, c, lr, batch, epochs, momentum, schedule, noise):
    """:func:`sgd_gaussian` of chain ``c`` for ``d = 1``, on scalars (same updates, same
    draws); called from inside the kernel's chain loop, so it runs on whichever build
    (serial or parallel) the dispatcher picked."""
    n = x.shape[1]
    s = states[c]
    xc = x[c, :, 0]
    perm = np.arange(n)
    mu = mean[c, 0]
    ell = logscale[c, 0]
    v_mu = 0.0
    v_ell = 0.0
    steps_per_epoch = (n + batch - 1) // batch
    step = 0
    for _ in range(epochs):
        shuffle(perm, s)
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            # sums of d = x - mu and d^2 over the minibatch, in two interleaved
            # accumulators (halves the dependency chain of the additions)
            s1a = s1b = s2a = s2b = 0.0
            p = start
            while p + 1 < stop:
                da = xc[perm[p]] - mu
                db = xc[perm[p + 1]] - mu
                s1a += da
                s2a += da * da
                s1b += db
                s2b += db * db
                p += 2
            if p < stop:
                da = xc[perm[p]] - mu
                s1a += da
                s2a += da * da
            s1 = s1a + s1b
            s2 = s2a + s2b
            m = stop - start
            inv2 = math.exp(-2.0 * ell)  # 1 / variance
            g_mu = -s1 * inv2  # sum of -y/sd with y = d/sd
            g_ell = m - s2 * inv2  # sum of 1 - y^2
            rate = lr if schedule == CONSTANT else lr / (1.0 + step / steps_per_epoch)
            ga = g_mu / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
            v_mu = momentum * v_mu + ga
            mu -= rate * v_mu
            gl = g_ell / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
            v_ell = momentum * v_ell + gl
            ell -= rate * v_ell
            step += 1
    mean[c, 0] = mu
    logscale[c, 0] = ell


@chain_kernel(error_model="numpy")
def sgd_gaussian(x, states, mean, logdiag, lower, lr, batch, epochs, momentum, schedule,
                 noise):
    r"""Fit ``N(mean, L L^T)`` to every chain's points ``x[c]`` ``(n, d)`` in place.

    Parameters are the mean, the log of L's diagonal and L's strictly lower part.
    Per point, with :math:`y = L^{-1}(x-\mu)` and :math:`w = L^{-T}y`, the gradient of
    :math:`\tfrac12\lVert y\rVert^2 + \sum_i \log L_{ii}` is :math:`-w` for the mean,
    :math:`-w_i y_j` for :math:`L_{ij}` (:math:`i > j`) and :math:`1 - w_i y_i L_{ii}`
    for :math:`\log L_{ii}`. Each epoch visits a fresh permutation of the points
    (Fisher-Yates on the chain's stream) in minibatches of ``batch``; the step is
    ``lr_t`` times the heavy-ball velocity ``v <- momentum v + g``, with
    ``lr_t = lr`` (constant) or ``lr / (1 + t / steps_per_epoch)`` (inverse time),
    and ``g`` the minibatch mean gradient plus ``noise`` times a standard normal per
    coordinate (gradient noise).
    """
    chains, n, d = x.shape
    if d == 1:
        for c in nb.prange(chains):
            _sgd_1d_chain(x, states, mean, logdiag, c, lr, batch, epochs, momentum, schedule,
                          noise)
        return
    for c in nb.prange(chains):
        s = states[c]
        perm = np.arange(n)
        y = np.empty(d)
        w = np.empty(d)
        g_mean = np.empty(d)
        g_log = np.empty(d)
        g_low = np.empty((d, d))
        v_mean = np.zeros(d)
        v_log = np.zeros(d)
        v_low = np.zeros((d, d))
        L = np.zeros((d, d))
        steps_per_epoch = (n + batch - 1) // batch
        step = 0
        for _ in range(epochs):
            shuffle(perm, s)  # Fisher-Yates
            for start in range(0, n, batch):
                stop = min(start + batch, n)
                for a in range(d):
                    L[a, a] = math.exp(logdiag[c, a])
                    for b in range(a):
                        L[a, b] = lower[c, a, b]
                    g_mean[a] = 0.0
                    g_log[a] = 0.0
                    for b in range(d):
                        g_low[a, b] = 0.0
                for p in range(start, stop):
                    row = perm[p]
                    for a in range(d):  # y = L^-1 (x - mu)
                        acc = x[c, row, a] - mean[c, a]
                        for b in range(a):
                            acc -= L[a, b] * y[b]
                        y[a] = acc / L[a, a]
                    for a in range(d - 1, -1, -1):  # w = L^-T y
                        acc = y[a]
                        for b in range(a + 1, d):
                            acc -= L[b, a] * w[b]
                        w[a] = acc / L[a, a]
                    for a in range(d):
                        g_mean[a] -= w[a]
                        g_log[a] += 1.0 - w[a] * y[a] * L[a, a]
                        for b in range(a):
                            g_low[a, b] -= w[a] * y[b]
                m = stop - start
                rate = lr if schedule == CONSTANT else lr / (1.0 + step / steps_per_epoch)
                for a in range(d):
                    ga = g_mean[a] / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
                    v_mean[a] = momentum * v_mean[a] + ga
                    mean[c, a] -= rate * v_mean[a]
                    gl = g_log[a] / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
                    v_log[a] = momentum * v_log[a] + gl
                    logdiag[c, a] -= rate * v_log[a]
                    for b in range(a):
                        gb = g_low[a, b] / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
                        v_low[a, b] = momentum * v_low[a, b] + gb
                        lower[c, a, b] -= rate * v_low[a, b]
                step += 1


@chain_kernel(error_model="numpy")
def sgd_regression(x, states, w, lr, batch, epochs, momentum, schedule, noise):
    r"""Least squares by minibatch SGD: update every chain's weights ``w[c]`` in place.

    ``x[c]`` is ``(m, d + 1)``: features, then the label. Per point the loss is
    :math:`\tfrac12(y - x^\top w)^2` with gradient :math:`-(y - x^\top w)\,x`; epochs,
    shuffling, schedule, momentum and gradient noise as in :func:`sgd_gaussian`.
    """
    chains, n, dp1 = x.shape
    d = dp1 - 1
    for c in nb.prange(chains):
        s = states[c]
        perm = np.arange(n)
        g = np.empty(d)
        v = np.zeros(d)
        steps_per_epoch = (n + batch - 1) // batch
        step = 0
        for _ in range(epochs):
            shuffle(perm, s)  # Fisher-Yates
            for start in range(0, n, batch):
                stop = min(start + batch, n)
                for a in range(d):
                    g[a] = 0.0
                for p in range(start, stop):
                    row = perm[p]
                    r = x[c, row, d]
                    for a in range(d):
                        r -= x[c, row, a] * w[c, a]
                    for a in range(d):
                        g[a] -= r * x[c, row, a]
                m = stop - start
                rate = lr if schedule == CONSTANT else lr / (1.0 + step / steps_per_epoch)
                for a in range(d):
                    ga = g[a] / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
                    v[a] = momentum * v[a] + ga
                    w[c, a] -= rate * v[a]
                step += 1


@chain_kernel(error_model="numpy")
def sgd_mixture(x, states, logits, means, logscale, lr, batch, epochs, momentum, schedule,
                noise):
    r"""Diagonal Gaussian mixture by minibatch SGD on the negative log-likelihood, in place.

    Parameters per chain: softmax logits :math:`\alpha_k`, means :math:`\mu_{ka}` and
    log-scales :math:`\ell_{ka}` (:math:`s_{ka} = e^{\ell_{ka}}`). Per point, with
    responsibilities :math:`r_k = \pi_k p_k(x)/\sum_j \pi_j p_j(x)` (computed with a
    max shift) and :math:`z_{ka} = (x_a - \mu_{ka})/s_{ka}`, the gradient of
    :math:`-\log\sum_k \pi_k p_k(x)` is :math:`\pi_k - r_k` for :math:`\alpha_k`,
    :math:`-r_k z_{ka}/s_{ka}` for :math:`\mu_{ka}` and :math:`r_k(1 - z_{ka}^2)` for
    :math:`\ell_{ka}`. Loop, schedule, momentum and noise as in :func:`sgd_gaussian`.
    """
    chains, n, d = x.shape
    k = logits.shape[1]
    for c in nb.prange(chains):
        s = states[c]
        perm = np.arange(n)
        logp = np.empty(k)
        pi = np.empty(k)
        g_a = np.empty(k)
        g_m = np.empty((k, d))
        g_l = np.empty((k, d))
        v_a = np.zeros(k)
        v_m = np.zeros((k, d))
        v_l = np.zeros((k, d))
        steps_per_epoch = (n + batch - 1) // batch
        step = 0
        for _ in range(epochs):
            shuffle(perm, s)  # Fisher-Yates
            for start in range(0, n, batch):
                stop = min(start + batch, n)
                top = logits[c, 0]
                for q in range(1, k):
                    top = max(top, logits[c, q])
                norm = 0.0
                for q in range(k):
                    pi[q] = math.exp(logits[c, q] - top)
                    norm += pi[q]
                for q in range(k):
                    pi[q] /= norm
                    g_a[q] = 0.0
                    for a in range(d):
                        g_m[q, a] = 0.0
                        g_l[q, a] = 0.0
                for p in range(start, stop):
                    row = perm[p]
                    best = -np.inf
                    for q in range(k):
                        acc = math.log(pi[q]) if pi[q] > 0.0 else -np.inf
                        for a in range(d):
                            z = (x[c, row, a] - means[c, q, a]) * math.exp(-logscale[c, q, a])
                            acc -= 0.5 * z * z + logscale[c, q, a]
                        logp[q] = acc
                        best = max(best, acc)
                    total = 0.0
                    for q in range(k):
                        logp[q] = math.exp(logp[q] - best)
                        total += logp[q]
                    for q in range(k):
                        r = logp[q] / total
                        g_a[q] += pi[q] - r
                        for a in range(d):
                            inv = math.exp(-logscale[c, q, a])
                            z = (x[c, row, a] - means[c, q, a]) * inv
                            g_m[q, a] -= r * z * inv
                            g_l[q, a] += r * (1.0 - z * z)
                m = stop - start
                rate = lr if schedule == CONSTANT else lr / (1.0 + step / steps_per_epoch)
                for q in range(k):
                    ga = g_a[q] / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
                    v_a[q] = momentum * v_a[q] + ga
                    logits[c, q] -= rate * v_a[q]
                    for a in range(d):
                        gm = g_m[q, a] / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
                        v_m[q, a] = momentum * v_m[q, a] + gm
                        means[c, q, a] -= rate * v_m[q, a]
                        gl = g_l[q, a] / m + (noise * next_normal(s) if noise > 0.0 else 0.0)
                        v_l[q, a] = momentum * v_l[q, a] + gl
                        logscale[c, q, a] -= rate * v_l[q, a]
                step += 1
