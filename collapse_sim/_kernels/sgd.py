"""Minibatch SGD on the Gaussian negative log-likelihood, one chain per ``prange`` iteration."""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .rng import next_below, next_normal

CONSTANT, INVERSE_TIME = 0, 1


@nb.njit(parallel=True)
def _sgd_1d(x, states, mean, logscale, lr, batch, epochs, momentum, schedule, noise):
    """:func:`sgd_gaussian` for ``d = 1`` on scalars (same updates, same draws)."""
    chains, n, _ = x.shape
    for c in nb.prange(chains):
        s = states[c]
        perm = np.arange(n)
        mu = mean[c, 0]
        ell = logscale[c, 0]
        v_mu = 0.0
        v_ell = 0.0
        steps_per_epoch = (n + batch - 1) // batch
        step = 0
        for _ in range(epochs):
            for i in range(n - 1, 0, -1):
                j = next_below(s, i + 1)
                perm[i], perm[j] = perm[j], perm[i]
            for start in range(0, n, batch):
                stop = min(start + batch, n)
                inv = math.exp(-ell)  # 1 / sd
                g_mu = 0.0
                g_ell = 0.0
                for p in range(start, stop):
                    y = (x[c, perm[p], 0] - mu) * inv
                    g_mu -= y * inv
                    g_ell += 1.0 - y * y
                m = stop - start
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


@chain_kernel
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
        _sgd_1d(x, states, mean, logdiag, lr, batch, epochs, momentum, schedule, noise)
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
            for i in range(n - 1, 0, -1):  # Fisher-Yates shuffle
                j = next_below(s, i + 1)
                perm[i], perm[j] = perm[j], perm[i]
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
