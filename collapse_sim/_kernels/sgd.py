"""Minibatch SGD on the Gaussian negative log-likelihood, one chain per ``prange`` iteration
(and a whole 1-D run, blocks of generations, in one kernel: :func:`sgd_run_1d`)."""

import math

import numba as nb
import numpy as np

from . import local as _local
from ._dispatch import chain_kernel
from .rng import next_normal, shuffle

CONSTANT, INVERSE_TIME = 0, 1


@nb.njit(inline="always")
def _step(s1, s2, m, mu, ell, v_mu, v_ell, rate, momentum, z_mu, z_ell):
    r"""One minibatch step of a 1-D fit, on scalars: from the sums :math:`s_1 = \sum d`,
    :math:`s_2 = \sum d^2` of :math:`d = x - \mu` over its ``m`` points, the gradient
    noise ``z_mu``, ``z_ell`` (0.0 without noise) and the rate; returns the new
    ``(mu, ell, v_mu, v_ell)``."""
    inv2 = math.exp(-2.0 * ell)  # 1 / variance
    g_mu = -s1 * inv2  # sum of -y/sd with y = d/sd
    g_ell = m - s2 * inv2  # sum of 1 - y^2
    ga = g_mu / m + z_mu
    v_mu = momentum * v_mu + ga
    mu -= rate * v_mu
    gl = g_ell / m + z_ell
    v_ell = momentum * v_ell + gl
    ell -= rate * v_ell
    return mu, ell, v_mu, v_ell


@nb.njit(error_model="numpy")
def _sgd_1d(xc, s, mu, ell, lr, batch, epochs, momentum, schedule, noise):
    """The 1-D fit of one chain on scalars: points ``xc`` ``(n,)``, state row ``s``, start
    ``(mu, ell)`` (mean, log standard deviation); returns the fitted ``(mu, ell)``. The
    updates and draws of :func:`sgd_gaussian`, written for ``d = 1``."""
    n = xc.shape[0]
    perm = np.arange(n)
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
            rate = lr if schedule == CONSTANT else lr / (1.0 + step / steps_per_epoch)
            z_mu = noise * next_normal(s) if noise > 0.0 else 0.0
            z_ell = noise * next_normal(s) if noise > 0.0 else 0.0
            mu, ell, v_mu, v_ell = _step(s1a + s1b, s2a + s2b, stop - start, mu, ell, v_mu,
                                         v_ell, rate, momentum, z_mu, z_ell)
            step += 1
    return mu, ell


@nb.njit(error_model="numpy")
def _sgd_1d_two(xa, sa, mua, ella, xb, sb, mub, ellb, lr, batch, epochs, momentum, schedule,
                noise):
    """:func:`_sgd_1d` of two chains ``a`` and ``b`` (same ``n``) in lockstep, step by
    step: returns ``(mua, ella, mub, ellb)``, each chain's numbers as :func:`_sgd_1d`
    gives them, bit for bit (its own points, stream and arithmetic, in the same order).

    A step's work is one chain of dependent operations (the sums need the mean of the
    step before, the next step the new log-scale's ``exp``): two independent chains
    side by side let the processor overlap them. 1000 fits of 100 points, 5 epochs of
    batch 10, on one core, alternating with the one-chain loop in the same process
    (``python benchmarks/sgd_lockstep.py``): 1.17x in two runs, 1.04x to 1.25x in six
    earlier prototype runs (the gain moved with the shared machine's state)."""
    n = xa.shape[0]
    pa = np.arange(n)
    pb = np.arange(n)
    vma = vla = vmb = vlb = 0.0
    steps_per_epoch = (n + batch - 1) // batch
    step = 0
    for _ in range(epochs):
        shuffle(pa, sa)
        shuffle(pb, sb)
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            a1 = a1b = a2 = a2b = 0.0
            b1 = b1b = b2 = b2b = 0.0
            p = start
            while p + 1 < stop:
                da = xa[pa[p]] - mua
                ea = xa[pa[p + 1]] - mua
                db = xb[pb[p]] - mub
                eb = xb[pb[p + 1]] - mub
                a1 += da
                a2 += da * da
                a1b += ea
                a2b += ea * ea
                b1 += db
                b2 += db * db
                b1b += eb
                b2b += eb * eb
                p += 2
            if p < stop:
                da = xa[pa[p]] - mua
                a1 += da
                a2 += da * da
                db = xb[pb[p]] - mub
                b1 += db
                b2 += db * db
            m = stop - start
            rate = lr if schedule == CONSTANT else lr / (1.0 + step / steps_per_epoch)
            za_mu = noise * next_normal(sa) if noise > 0.0 else 0.0
            za_ell = noise * next_normal(sa) if noise > 0.0 else 0.0
            zb_mu = noise * next_normal(sb) if noise > 0.0 else 0.0
            zb_ell = noise * next_normal(sb) if noise > 0.0 else 0.0
            mua, ella, vma, vla = _step(a1 + a1b, a2 + a2b, m, mua, ella, vma, vla, rate,
                                        momentum, za_mu, za_ell)
            mub, ellb, vmb, vlb = _step(b1 + b1b, b2 + b2b, m, mub, ellb, vmb, vlb, rate,
                                        momentum, zb_mu, zb_ell)
            step += 1
    return mua, ella, mub, ellb


@nb.njit(inline="always")
def log_scale(var):
    r""":math:`\ell = \tfrac12 \log \max(v, 10^{-300})`, the log standard deviation an SGD
    fit starts from when it continues from a model of variance ``v`` (NaN stays NaN)."""
    return 0.5 * math.log(1e-300 if var < 1e-300 else var)


@nb.njit(inline="always")
def _start(mean, var, warm):
    r"""The ``(mu, ell)`` a fit starts from: the model ``(mean, var)`` when ``warm``
    (:func:`log_scale`), else :math:`\mathcal N(0, 1)`."""
    return (mean, log_scale(var)) if warm else (0.0, 0.0)


@nb.njit(error_model="numpy")
def _fit_pair(xa, sa, mua, ella, xb, sb, mub, ellb, two, lr, batch, epochs, momentum,
              schedule, noise):
    r"""Fit chain ``a``, and chain ``b`` beside it when ``two`` (:func:`_sgd_1d_two`; else
    :func:`_sgd_1d` alone), from the starts given; returns ``(mean_a, var_a, mean_b,
    var_b)`` with the variances :math:`e^{2\ell}` (``b``'s only meaningful when ``two``)."""
    if two:
        mua, ella, mub, ellb = _sgd_1d_two(xa, sa, mua, ella, xb, sb, mub, ellb, lr, batch,
                                           epochs, momentum, schedule, noise)
    else:
        mua, ella = _sgd_1d(xa, sa, mua, ella, lr, batch, epochs, momentum, schedule, noise)
    return mua, math.exp(2.0 * ella), mub, math.exp(2.0 * ellb)


@chain_kernel(error_model="numpy")
def sgd_gaussian_1d(x, states, mean, var, previous, lr, batch, epochs, momentum, schedule,
                    noise):
    r"""Fit :math:`\mathcal N(\mu, e^{2\ell})` to every chain's points ``x[c]`` ``(n,)``:
    the updates of :func:`sgd_gaussian` written for ``d = 1``, with the parametrisation's
    conversions compiled here (so that :func:`sgd_run_1d` repeats them bit for bit).

    ``mean`` and ``var`` ``(chains,)`` hold the previous model on entry (read only when
    ``previous``: :math:`\ell_0 =` :func:`log_scale` of it; else the start is
    :math:`\mathcal N(0, 1)`) and the fit on return, ``var`` as :math:`e^{2\ell}`.
    Chains go in pairs (:func:`_sgd_1d_two`); the results do not depend on the pairing.
    """
    chains = x.shape[0]
    for q in nb.prange((chains + 1) // 2):
        a = 2 * q
        b = min(a + 1, chains - 1)
        mua, ella = _start(mean[a], var[a], previous)
        mub, ellb = _start(mean[b], var[b], previous)
        mean[a], var[a], mub, varb = _fit_pair(x[a], states[a], mua, ella, x[b], states[b],
                                               mub, ellb, b > a, lr, batch, epochs, momentum,
                                               schedule, noise)
        if b > a:
            mean[b] = mub
            var[b] = varb


@nb.njit(inline="always")
def _fill_normal_points(s, out, lo, hi, mean, sd):
    """``out[lo:hi] = z * sd + mean`` for standard normals ``z`` from state row ``s`` (the
    draws and arithmetic of :func:`collapse_sim.sampling.gaussian_points` in 1-D), with the
    four state words in local variables."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(lo, hi):
        z, s0, s1, s2, s3 = _local.normal(s0, s1, s2, s3)
        out[i] = z * sd + mean
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


@nb.njit(error_model="numpy")
def _training_set(s, row, x, first, k_real, k_fresh, truth_mean, truth_sd, mu, var):
    """Draw one chain's training points of a generation of :func:`sgd_run_1d` (state row
    ``s``): generation 1 (``first``) its real sample into ``row``; later, ``x`` = the real
    sample's first ``k_real`` points, ``k_fresh`` points of the truth, then points of the
    previous model ``(mu, var)`` to the end of ``x``."""
    if first:
        _fill_normal_points(s, row, 0, row.shape[0], truth_mean, truth_sd)
        return
    for i in range(k_real):
        x[i] = row[i]
    _fill_normal_points(s, x, k_real, k_real + k_fresh, truth_mean, truth_sd)
    _fill_normal_points(s, x, k_real + k_fresh, x.shape[0], mu, math.sqrt(var))


@chain_kernel(error_model="numpy")
def sgd_run_1d(states, real, k_real, k_fresh, k_synthetic, truth_mean, truth_var, previous,
               lr, batch, epochs, momentum, schedule, noise, start, carry, means, variances):
    r"""Generations ``start .. start + G - 1`` of a 1-D :func:`sgd_gaussian_1d` run, every
    chain, in one kernel (one parallel region a block of generations).

    Per chain, exactly the steps, draws and arithmetic of the generation-by-generation
    loop (``engine._Loop``): generation 1 draws the real sample ``real[c]`` ``(n,)`` from
    :math:`\mathcal N(m, \sigma^2)` (``truth_mean``, ``truth_var``) and fits it from
    :math:`\mathcal N(0, 1)`; a later generation trains on the real sample's first
    ``k_real`` points, then ``k_fresh`` new points of the truth, then ``k_synthetic``
    points of the previous model (drawn in that order), starting from the previous model
    when ``previous``. ``carry[c]`` ``(mean, variance)`` is the model of generation
    ``start - 1`` (written back for the next block); ``means``, ``variances``
    ``(G, chains)`` receive the fits. Chains go in pairs, as in :func:`sgd_gaussian_1d`.
    """
    size, chains = means.shape
    m = k_real + k_fresh + k_synthetic
    truth_sd = math.sqrt(truth_var)
    for q in nb.prange((chains + 1) // 2):
        a = 2 * q
        b = min(a + 1, chains - 1)
        two = b > a
        xa = np.empty(m)
        xb = np.empty(m)
        mua = carry[a, 0]
        vara = carry[a, 1]
        mub = carry[b, 0]
        varb = carry[b, 1]
        for g in range(size):
            first = start + g == 1
            _training_set(states[a], real[a], xa, first, k_real, k_fresh, truth_mean,
                          truth_sd, mua, vara)
            if two:
                _training_set(states[b], real[b], xb, first, k_real, k_fresh, truth_mean,
                              truth_sd, mub, varb)
            warm = previous and not first
            mua0, ella0 = _start(mua, vara, warm)
            mub0, ellb0 = _start(mub, varb, warm)
            mua, vara, mub, varb = _fit_pair(real[a] if first else xa, states[a], mua0, ella0,
                                             real[b] if first else xb, states[b], mub0, ellb0,
                                             two, lr, batch, epochs, momentum, schedule, noise)
            means[g, a] = mua
            variances[g, a] = vara
            if two:
                means[g, b] = mub
                variances[g, b] = varb
        carry[a, 0] = mua
        carry[a, 1] = vara
        if two:
            carry[b, 0] = mub
            carry[b, 1] = varb


@chain_kernel(error_model="numpy")
def sgd_gaussian(x, states, mean, logdiag, lower, lr, batch, epochs, momentum, schedule,
                 noise):
    r"""Fit ``N(mean, L L^T)`` to every chain's points ``x[c]`` ``(n, d)`` in place, ``d >= 2``
    (``d = 1``: :func:`sgd_gaussian_1d`, the same updates on scalars).

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
