"""Expectation-maximisation for Gaussian mixtures, one chain per ``prange`` iteration.

(``_m_step`` from explicit responsibilities serves the initialisation; the EM loop
itself uses the fused single-pass ``_em_iteration``.)

The updates, the ``10 * eps`` guard on component masses, ``reg_covar`` and the
stopping rule are those of ``sklearn.mixture.GaussianMixture`` (``n_init=1``):
iterate E-step, M-step; stop after the first iteration whose mean
log-likelihood (measured in its E-step, i.e. before its M-step) changed by less
than ``tol``, or after ``max_iter`` iterations.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .rng import next_below, next_double

FULL, DIAG, SPHERICAL = 0, 1, 2
_EPS10 = 10.0 * np.finfo(np.float64).eps
#: Points per block of the EM iterations (also the stride of their logarithms).
BLOCK = 64
_LOG_2PI = math.log(2.0 * math.pi)


@nb.njit
def _cholesky(a, out):
    """Cholesky factor of the positive definite ``a``; False if a pivot is not positive."""
    d = a.shape[0]
    for j in range(d):
        for i in range(d):
            out[i, j] = 0.0
    for j in range(d):
        acc = a[j, j]
        for k in range(j):
            acc -= out[j, k] * out[j, k]
        if not acc > 0.0:
            return False
        ljj = math.sqrt(acc)
        out[j, j] = ljj
        for i in range(j + 1, d):
            acc2 = a[i, j]
            for k in range(j):
                acc2 -= out[i, k] * out[j, k]
            out[i, j] = acc2 / ljj
    return True


@nb.njit
def _finish_covariance(cov, cov_type, reg_covar):
    """Spherical: replace the diagonal by its mean; then add ``reg_covar`` to the diagonal."""
    d = cov.shape[0]
    if cov_type == SPHERICAL:
        avg = 0.0
        for a in range(d):
            avg += cov[a, a]
        avg /= d
        for a in range(d):
            cov[a, a] = avg
    for a in range(d):
        cov[a, a] += reg_covar


@nb.njit(inline="always")
def _scale_covariance(cov, nk, cov_type, reg_covar):
    """The weighted scatter ``cov`` (lower triangle) divided by the mass ``nk``, mirrored,
    then :func:`_finish_covariance`: the end of both M-steps from responsibilities."""
    d = cov.shape[0]
    for a in range(d):
        for b in range(a + 1):
            cov[a, b] /= nk
            cov[b, a] = cov[a, b]
    _finish_covariance(cov, cov_type, reg_covar)


@nb.njit
def _m_step(x, resp, cov_type, reg_covar, weights, means, covs):
    """Weights, means and ``reg_covar``-floored covariances from responsibilities ``resp``."""
    n, d = x.shape
    k_count = resp.shape[1]
    total = 0.0
    for k in range(k_count):
        nk = _EPS10
        for i in range(n):
            nk += resp[i, k]
        for a in range(d):
            acc = 0.0
            for i in range(n):
                acc += resp[i, k] * x[i, a]
            means[k, a] = acc / nk
        for a in range(d):
            for b in range(d):
                covs[k, a, b] = 0.0
        for i in range(n):
            r = resp[i, k]
            for a in range(d):
                da = x[i, a] - means[k, a]
                if cov_type == FULL:
                    for b in range(a + 1):
                        covs[k, a, b] += r * da * (x[i, b] - means[k, b])
                else:
                    covs[k, a, a] += r * da * da
        _scale_covariance(covs[k], nk, cov_type, reg_covar)
        weights[k] = nk
        total += nk
    for k in range(k_count):
        weights[k] /= total


@nb.njit
def _m_step_centres(x, centres, cov_type, reg_covar, weights, means, covs):
    """:func:`_m_step` for one-hot responsibilities on one point per component
    (``resp[centres[k], k] = 1``, the k-means++ start): the same values bit for bit,
    from the ``K`` points alone instead of ``K`` passes over all ``n``. (The sums over
    the other points add products with 0, which leave a sum as it was: its running value
    starts at +0.0 and ``+0.0 + -0.0`` is +0.0.)"""
    d = x.shape[1]
    k_count = centres.shape[0]
    total = 0.0
    for k in range(k_count):
        c = centres[k]
        nk = _EPS10 + 1.0
        for a in range(d):
            means[k, a] = (0.0 + 1.0 * x[c, a]) / nk
        for a in range(d):
            for b in range(d):
                covs[k, a, b] = 0.0
        for a in range(d):
            da = x[c, a] - means[k, a]
            if cov_type == FULL:
                for b in range(a + 1):
                    covs[k, a, b] += 1.0 * da * (x[c, b] - means[k, b])
            else:
                covs[k, a, a] += 1.0 * da * da
        _scale_covariance(covs[k], nk, cov_type, reg_covar)
        weights[k] = nk
        total += nk
    for k in range(k_count):
        weights[k] /= total


@nb.njit
def _factor_all(covs, chol):
    for k in range(covs.shape[0]):
        if not _cholesky(covs[k], chol[k]):
            return False
    return True


@nb.njit(inline="always")
def _exponentiate_block(vblock, tblock, size):
    r"""Second loop of a blocked EM iteration: each point's log-joints ``vblock[t]`` become
    :math:`e^{v_k - v_{\max}}`, exactly 1 at the largest (``tblock[0, t]`` is its value,
    ``tblock[1, t]`` its component), with nothing else live across the ``exp`` calls."""
    for t in range(size):
        top = tblock[0, t]
        arg = np.int64(tblock[1, t])
        for k in range(vblock.shape[1]):
            vblock[t, k] = 1.0 if k == arg else math.exp(vblock[t, k] - top)


@nb.njit
def _em_iteration(x, cov_type, reg_covar, weights, means, covs, chol, shift, nk, sx, sxx,
                  vblock, tblock):
    """One E-step and M-step fused in a single pass over the points.

    The responsibilities of point ``i`` are formed and immediately accumulated into
    ``N_k``, ``sum_i r_ik (x_i - c_k)`` and ``sum_i r_ik (x_i - c_k)(x_i - c_k)^T`` around
    ``c_k`` = the component's current mean, so the covariance
    ``S_k / N_k - d_k d_k^T`` (``d_k`` the mean's shift) loses nothing to cancellation
    when the component is narrow and far from the origin. Returns the mean
    log-likelihood under the parameters on entry (scikit-learn's lower bound).

    The points go in blocks of :data:`BLOCK` through three loops, as in
    :func:`_em_iteration_2d_full_k2`: the log-joints, the exponentials alone, the sums;
    the same operations in the same order as one loop over the points (tested bit for
    bit); 0.85 to 1.6 times the one loop's speed, depending on ``d``, ``K`` and the run
    (``benchmarks/em_iteration.py``). ``vblock`` ``(BLOCK, K)`` and ``tblock``
    ``(2, BLOCK)`` are scratch.
    """
    n, d = x.shape
    k_count = weights.shape[0]
    y = np.empty(d)
    logc = np.empty(k_count)
    inv_diag = np.empty((k_count, d))
    for k in range(k_count):
        acc = 0.0
        for j in range(d):
            acc += math.log(chol[k, j, j])
            inv_diag[k, j] = 1.0 / chol[k, j, j]
        logc[k] = (math.log(weights[k]) if weights[k] > 0.0 else -np.inf) - acc - 0.5 * d * _LOG_2PI
        nk[k] = 0.0
        for a in range(d):
            shift[k, a] = means[k, a]
            sx[k, a] = 0.0
            for b in range(d):
                sxx[k, a, b] = 0.0
    total = 0.0
    for b0 in range(0, n, BLOCK):
        size = min(BLOCK, n - b0)
        for t in range(size):
            i = b0 + t
            top = -np.inf
            arg = 0
            for k in range(k_count):
                maha = 0.0
                for a in range(d):
                    acc = x[i, a] - means[k, a]
                    for b in range(a):
                        acc -= chol[k, a, b] * y[b]
                    y[a] = acc * inv_diag[k, a]
                    maha += y[a] * y[a]
                v = logc[k] - 0.5 * maha
                vblock[t, k] = v
                if v > top:
                    top = v
                    arg = k
            tblock[0, t] = top
            tblock[1, t] = arg
        _exponentiate_block(vblock, tblock, size)
        # log-likelihood top + log(acc): the logs are taken once per block, on the
        # product of the acc values (each in [1, K], so the product cannot overflow)
        prod = 1.0
        for t in range(size):
            i = b0 + t
            acc = 0.0
            for k in range(k_count):
                acc += vblock[t, k]
            total += tblock[0, t]
            prod *= acc
            inv = 1.0 / acc
            for k in range(k_count):
                r = vblock[t, k] * inv
                if r == 0.0:
                    continue
                nk[k] += r
                for a in range(d):
                    da = x[i, a] - shift[k, a]
                    sx[k, a] += r * da
                    if cov_type == FULL:
                        for b in range(a + 1):
                            sxx[k, a, b] += r * da * (x[i, b] - shift[k, b])
                    else:
                        sxx[k, a, a] += r * da * da
        total += math.log(prod)
    wsum = 0.0
    for k in range(k_count):
        mass = nk[k] + _EPS10
        for a in range(d):
            means[k, a] = shift[k, a] + sx[k, a] / mass
        for a in range(d):
            da = sx[k, a] / mass
            for b in range(a + 1):
                if cov_type == FULL or a == b:
                    v = sxx[k, a, b] / mass - da * (sx[k, b] / mass)
                else:
                    v = 0.0
                covs[k, a, b] = v
                covs[k, b, a] = v
        _finish_covariance(covs[k], cov_type, reg_covar)
        weights[k] = mass
        wsum += mass
    for k in range(k_count):
        weights[k] /= wsum
    return total / n


@nb.njit
def _em_iteration_2d_full(x, reg_covar, weights, means, covs, chol, vblock, tblock):
    """:func:`_em_iteration` written out for ``d = 2``, full covariances (the paper's GMM).

    The same operations in the same order on scalars instead of short loops over
    ``d``, so results equal the general iteration's to rounding (tested to 1e-12). In
    blocks of :data:`BLOCK` points, three loops each, as in :func:`_em_iteration` (the same
    bits as one loop over the points, tested); ``vblock`` ``(BLOCK, K)`` and ``tblock``
    ``(2, BLOCK)`` are scratch.
    """
    n = x.shape[0]
    k_count = weights.shape[0]
    logc = np.empty(k_count)
    i00 = np.empty(k_count)
    i11 = np.empty(k_count)
    l10 = np.empty(k_count)
    m0 = np.empty(k_count)
    m1 = np.empty(k_count)
    n_k = np.zeros(k_count)
    a0 = np.zeros(k_count)
    a1 = np.zeros(k_count)
    q00 = np.zeros(k_count)
    q10 = np.zeros(k_count)
    q11 = np.zeros(k_count)
    for k in range(k_count):
        logc[k] = ((math.log(weights[k]) if weights[k] > 0.0 else -np.inf)
                   - (math.log(chol[k, 0, 0]) + math.log(chol[k, 1, 1])) - _LOG_2PI)
        i00[k] = 1.0 / chol[k, 0, 0]
        i11[k] = 1.0 / chol[k, 1, 1]
        l10[k] = chol[k, 1, 0]
        m0[k] = means[k, 0]
        m1[k] = means[k, 1]
    total = 0.0
    for b0 in range(0, n, BLOCK):
        size = min(BLOCK, n - b0)
        for t in range(size):
            x0 = x[b0 + t, 0]
            x1 = x[b0 + t, 1]
            top = -np.inf
            arg = 0
            for k in range(k_count):
                y0 = (x0 - m0[k]) * i00[k]
                y1 = ((x1 - m1[k]) - l10[k] * y0) * i11[k]
                v = logc[k] - 0.5 * (y0 * y0 + y1 * y1)
                vblock[t, k] = v
                if v > top:
                    top = v
                    arg = k
            tblock[0, t] = top
            tblock[1, t] = arg
        _exponentiate_block(vblock, tblock, size)
        prod = 1.0  # logs once per block, as in _em_iteration
        for t in range(size):
            x0 = x[b0 + t, 0]
            x1 = x[b0 + t, 1]
            acc = 0.0
            for k in range(k_count):
                acc += vblock[t, k]
            total += tblock[0, t]
            prod *= acc
            inv = 1.0 / acc
            for k in range(k_count):
                r = vblock[t, k] * inv
                if r == 0.0:
                    continue
                d0 = x0 - m0[k]
                d1 = x1 - m1[k]
                n_k[k] += r
                a0[k] += r * d0
                a1[k] += r * d1
                q00[k] += r * d0 * d0
                q10[k] += r * d1 * d0
                q11[k] += r * d1 * d1
        total += math.log(prod)
    wsum = 0.0
    for k in range(k_count):
        weights[k] = _m_2d_full(k, n_k[k], a0[k], a1[k], q00[k], q10[k], q11[k], reg_covar,
                                means, covs)
        wsum += weights[k]
    for k in range(k_count):
        weights[k] /= wsum
    return total / n


@nb.njit
def _m_2d_full(k, n_k, a0, a1, q00, q10, q11, reg_covar, means, covs):
    """M-step of component ``k`` from sums shifted by its old mean; returns its mass."""
    mass = n_k + _EPS10
    b0 = a0 / mass
    b1 = a1 / mass
    means[k, 0] += b0
    means[k, 1] += b1
    c00 = q00 / mass - b0 * (a0 / mass)
    c10 = q10 / mass - b1 * (a0 / mass)
    c11 = q11 / mass - b1 * (a1 / mass)
    covs[k, 0, 0] = c00 + reg_covar
    covs[k, 1, 0] = c10
    covs[k, 0, 1] = c10
    covs[k, 1, 1] = c11 + reg_covar
    return mass


@nb.njit
def _em_iteration_2d_full_k2(x, reg_covar, weights, means, covs, chol, block):
    r""":func:`_em_iteration_2d_full` for two components: one ``exp`` per point.

    With :math:`v_{\max}` the larger log-joint and :math:`e = e^{v_{\min} - v_{\max}}`,
    the responsibilities are :math:`1/(1+e)` and :math:`e/(1+e)` and the point's
    log-likelihood :math:`v_{\max} + \log(1+e)`; equal to the general iteration to
    rounding (tested).

    The points go in blocks of :data:`BLOCK` through three loops: the log-joints of
    the block (no call: the compiler vectorises it), the exponentials alone (nothing
    else is live across the C library's ``exp``, so no accumulator is spilled to memory
    around each call), then the sums. The operations and their order are those of one
    loop over the points, so the results are the same bits (tested against that loop);
    1.3 to 1.5 times faster (``benchmarks/em_iteration.py``). ``block`` is ``(3, BLOCK)``
    scratch.
    """
    n = x.shape[0]
    lc0 = ((math.log(weights[0]) if weights[0] > 0.0 else -np.inf)
           - (math.log(chol[0, 0, 0]) + math.log(chol[0, 1, 1])) - _LOG_2PI)
    lc1 = ((math.log(weights[1]) if weights[1] > 0.0 else -np.inf)
           - (math.log(chol[1, 0, 0]) + math.log(chol[1, 1, 1])) - _LOG_2PI)
    i00, i01, l0 = 1.0 / chol[0, 0, 0], 1.0 / chol[0, 1, 1], chol[0, 1, 0]
    i10, i11, l1 = 1.0 / chol[1, 0, 0], 1.0 / chol[1, 1, 1], chol[1, 1, 0]
    m00, m01, m10, m11 = means[0, 0], means[0, 1], means[1, 0], means[1, 1]
    n0 = a00 = a01 = q000 = q010 = q011 = 0.0
    n1 = a10 = a11 = q100 = q110 = q111 = 0.0
    top = block[0]  # the larger log-joint of each point
    ex = block[1]  # v_min - v_max, then its exponential
    first = block[2]  # 1.0 where component 0's log-joint is the larger (v0 >= v1)
    total = 0.0
    for b0 in range(0, n, BLOCK):
        size = min(BLOCK, n - b0)
        for t in range(size):
            x0 = x[b0 + t, 0]
            x1 = x[b0 + t, 1]
            y0 = (x0 - m00) * i00
            y1 = ((x1 - m01) - l0 * y0) * i01
            v0 = lc0 - 0.5 * (y0 * y0 + y1 * y1)
            z0 = (x0 - m10) * i10
            z1 = ((x1 - m11) - l1 * z0) * i11
            v1 = lc1 - 0.5 * (z0 * z0 + z1 * z1)
            f = v0 >= v1
            first[t] = 1.0 if f else 0.0
            top[t] = v0 if f else v1
            ex[t] = (v1 - v0) if f else (v0 - v1)
        for t in range(size):
            ex[t] = math.exp(ex[t])
        prod = 1.0  # the log-likelihood's logs: one per block, of the product of 1 + e
        for t in range(size):
            x0 = x[b0 + t, 0]
            x1 = x[b0 + t, 1]
            d00 = x0 - m00
            d01 = x1 - m01
            d10 = x0 - m10
            d11 = x1 - m11
            e = ex[t]
            total += top[t]
            inv = 1.0 / (1.0 + e)
            other = e * inv
            f = first[t] != 0.0
            r0 = inv if f else other
            r1 = other if f else inv
            prod *= 1.0 + e
            n0 += r0
            a00 += r0 * d00
            a01 += r0 * d01
            q000 += r0 * d00 * d00
            q010 += r0 * d01 * d00
            q011 += r0 * d01 * d01
            n1 += r1
            a10 += r1 * d10
            a11 += r1 * d11
            q100 += r1 * d10 * d10
            q110 += r1 * d11 * d10
            q111 += r1 * d11 * d11
        total += math.log(prod)
    # np.int64: literal 0 and 1 would each compile _m_2d_full once more
    w0 = _m_2d_full(np.int64(0), n0, a00, a01, q000, q010, q011, reg_covar, means, covs)
    w1 = _m_2d_full(np.int64(1), n1, a10, a11, q100, q110, q111, reg_covar, means, covs)
    weights[0] = w0 / (w0 + w1)
    weights[1] = w1 / (w0 + w1)
    return total / n


@nb.njit
def _em_iteration_1d_k2(x, reg_covar, weights, means, covs, chol, block):
    r""":func:`_em_iteration` for ``d = 1``, two components: the same operations in the
    same order on scalars, so the same bits (tested; in 1-D the covariance types
    coincide), 3.6 to 6 times faster (``benchmarks/em_iteration.py``). With
    :math:`v_{\max}` the larger log-joint and :math:`e = e^{v_{\min} - v_{\max}}` the
    responsibilities are :math:`1/(1+e)` and :math:`e/(1+e)`; the general loop forms them
    the same way (its leading term is exactly 1, the other :math:`e`). Blocks of
    :data:`BLOCK` points, three loops, as in :func:`_em_iteration_2d_full_k2`; ``block``
    is ``(3, BLOCK)`` scratch.
    """
    n = x.shape[0]
    lc0 = (math.log(weights[0]) if weights[0] > 0.0 else -np.inf) - math.log(chol[0, 0, 0])
    lc0 -= 0.5 * _LOG_2PI
    lc1 = (math.log(weights[1]) if weights[1] > 0.0 else -np.inf) - math.log(chol[1, 0, 0])
    lc1 -= 0.5 * _LOG_2PI
    i0 = 1.0 / chol[0, 0, 0]
    i1 = 1.0 / chol[1, 0, 0]
    m0 = means[0, 0]
    m1 = means[1, 0]
    n0 = a0 = q0 = 0.0
    n1 = a1 = q1 = 0.0
    top = block[0]
    ex = block[1]
    first = block[2]
    total = 0.0
    for b0 in range(0, n, BLOCK):
        size = min(BLOCK, n - b0)
        for t in range(size):
            xi = x[b0 + t, 0]
            y0 = (xi - m0) * i0
            v0 = lc0 - 0.5 * (y0 * y0)
            y1 = (xi - m1) * i1
            v1 = lc1 - 0.5 * (y1 * y1)
            f = not v1 > v0  # the general loop's argmax: the first of equal log-joints
            first[t] = 1.0 if f else 0.0
            top[t] = v0 if f else v1
            ex[t] = (v1 - v0) if f else (v0 - v1)
        for t in range(size):
            ex[t] = math.exp(ex[t])
        prod = 1.0
        for t in range(size):
            xi = x[b0 + t, 0]
            d0 = xi - m0
            d1 = xi - m1
            e = ex[t]
            total += top[t]
            inv = 1.0 / (1.0 + e)
            other = e * inv
            f = first[t] != 0.0
            r0 = inv if f else other
            r1 = other if f else inv
            prod *= 1.0 + e
            n0 += r0
            a0 += r0 * d0
            q0 += r0 * d0 * d0
            n1 += r1
            a1 += r1 * d1
            q1 += r1 * d1 * d1
        total += math.log(prod)
    w0 = _m_1d(0, n0, a0, q0, reg_covar, means, covs)
    w1 = _m_1d(1, n1, a1, q1, reg_covar, means, covs)
    wsum = w0 + w1
    weights[0] = w0 / wsum
    weights[1] = w1 / wsum
    return total / n


@nb.njit(inline="always")
def _m_1d(k, n_k, a, q, reg_covar, means, covs):
    """M-step of component ``k`` of a 1-D mixture from sums around its old mean (the
    general M-step's operations for ``d = 1``); returns its mass."""
    mass = n_k + _EPS10
    means[k, 0] = means[k, 0] + a / mass
    da = a / mass
    covs[k, 0, 0] = (q / mass - da * (a / mass)) + reg_covar
    return mass


@chain_kernel
def em_fit(x, cov_type, max_iter, tol, reg_covar, weights, means, covs, n_iter, converged,
           lower_bound):
    """Run EM in every chain from the given initial parameters (updated in place).

    ``n_iter[c]``, ``converged[c]`` and ``lower_bound[c]`` (the last E-step's mean
    log-likelihood) report each chain's run.
    """
    chains, _, d = x.shape
    k_count = weights.shape[1]
    for c in nb.prange(chains):
        chol = np.empty((k_count, d, d))
        shift = np.empty((k_count, d))
        nk = np.empty(k_count)
        sx = np.empty((k_count, d))
        sxx = np.empty((k_count, d, d))
        block = np.empty((3, BLOCK))
        vblock = np.empty((BLOCK, k_count))
        tblock = np.empty((2, BLOCK))
        ok = _factor_all(covs[c], chol)
        bound = -np.inf
        converged[c] = False
        n_iter[c] = 0
        if not ok:
            lower_bound[c] = -np.inf
            continue
        for it in range(1, max_iter + 1):
            prev = bound
            if d == 1 and k_count == 2:
                bound = _em_iteration_1d_k2(x[c], reg_covar, weights[c], means[c], covs[c],
                                            chol, block)
            elif d == 2 and cov_type == FULL and k_count == 2:
                bound = _em_iteration_2d_full_k2(x[c], reg_covar, weights[c], means[c],
                                                 covs[c], chol, block)
            elif d == 2 and cov_type == FULL:
                bound = _em_iteration_2d_full(x[c], reg_covar, weights[c], means[c], covs[c],
                                              chol, vblock, tblock)
            else:
                bound = _em_iteration(x[c], cov_type, reg_covar, weights[c], means[c],
                                      covs[c], chol, shift, nk, sx, sxx, vblock, tblock)
            n_iter[c] = it
            if not _factor_all(covs[c], chol):
                break  # cannot happen with reg_covar > 0; guards against NaN data
            if abs(bound - prev) < tol:
                converged[c] = True
                break
        lower_bound[c] = bound


#: Lloyd iterations of ``init="kmeans"`` at most (scikit-learn's ``KMeans`` default).
KMEANS_MAX_ITER = 300
#: Tolerance of ``init="kmeans"``, relative to the mean per-feature variance of the data
#: (scikit-learn's ``KMeans(tol=1e-4)``).
KMEANS_TOL = 1e-4


@chain_kernel
def init_from_resp(x, states, method, k_count, cov_type, reg_covar, weights, means, covs):
    """Initial parameters: an M-step on responsibilities chosen by ``method``.

    ``method`` 0: k-means++ (scikit-learn's ``init_params="k-means++"``: one-hot
    responsibilities on the greedy k-means++ centres, 2 + floor(log K) local
    trials); 1: random (uniform responsibilities normalised per point); 2: k-means
    (scikit-learn's default ``init_params="kmeans"``: one-hot responsibilities on the
    labels of Lloyd's algorithm run from the k-means++ centres, see :func:`_lloyd`).
    """
    chains, n, d = x.shape
    for c in nb.prange(chains):
        s = states[c]
        if method == 0:
            centres = _kmeans_plusplus(x[c], k_count, s)
            _m_step_centres(x[c], centres, cov_type, reg_covar, weights[c], means[c], covs[c])
            continue
        resp = np.zeros((n, k_count))
        if method == 2:
            seeds = _kmeans_plusplus(x[c], k_count, s)
            labels = np.empty(n, dtype=np.int64)
            found = np.empty((k_count, d))
            _lloyd(x[c], seeds, KMEANS_MAX_ITER, KMEANS_TOL, labels, found)
            for i in range(n):
                resp[i, labels[i]] = 1.0
        else:
            for i in range(n):
                tot = 0.0
                for k in range(k_count):
                    resp[i, k] = next_double(s)
                    tot += resp[i, k]
                for k in range(k_count):
                    resp[i, k] /= tot
        _m_step(x[c], resp, cov_type, reg_covar, weights[c], means[c], covs[c])


@nb.njit
def _kmeans_plusplus(x, k_count, s):
    """Indices of ``k_count`` greedy k-means++ centres (Arthur & Vassilvitskii 2007)."""
    n = x.shape[0]
    trials = 2 + int(math.log(k_count))
    centres = np.empty(k_count, dtype=np.int64)
    centres[0] = next_below(s, n)
    closest = np.empty(n)
    for i in range(n):
        closest[i] = _sqdist(x, i, centres[0])
    pot = closest.sum()
    cand_dist = np.empty((trials, n))
    cand_ids = np.empty(trials, dtype=np.int64)
    cum = np.empty(n)
    for c in range(1, k_count):
        acc = 0.0
        for i in range(n):
            acc += closest[i]
            cum[i] = acc
        best, best_pot = 0, np.inf
        for t in range(trials):
            target = next_double(s) * pot
            idx = np.searchsorted(cum, target)
            cand_ids[t] = min(idx, n - 1)
            cpot = 0.0
            for i in range(n):
                dist = min(closest[i], _sqdist(x, i, cand_ids[t]))
                cand_dist[t, i] = dist
                cpot += dist
            if cpot < best_pot:
                best, best_pot = t, cpot
        centres[c] = cand_ids[best]
        pot = best_pot
        for i in range(n):
            closest[i] = cand_dist[best, i]
    return centres


@nb.njit
def _sqdist(x, i, j):
    acc = 0.0
    for a in range(x.shape[1]):
        diff = x[i, a] - x[j, a]
        acc += diff * diff
    return acc


@chain_kernel
def kmeans_labels(x, states, k_count, max_iter, tol, seeds, labels, centres, n_iter):
    """k-means in every chain: k-means++ seeds from the chain's stream, then :func:`_lloyd`.

    Writes the seed indices ``seeds`` ``(chains, K)``, the final ``labels``
    ``(chains, n)``, ``centres`` ``(chains, K, d)`` and the iterations run ``n_iter``.
    Draws exactly what ``init_from_resp`` draws for methods 0 and 2.
    """
    chains = x.shape[0]
    for c in nb.prange(chains):
        s = states[c]
        chosen = _kmeans_plusplus(x[c], k_count, s)
        for k in range(k_count):
            seeds[c, k] = chosen[k]
        n_iter[c] = _lloyd(x[c], chosen, max_iter, tol, labels[c], centres[c])


@nb.njit
def _nearest(x, i, centres):
    """Index of the centre closest to point ``i`` (the first one on ties) and its distance."""
    best = 0
    best_dist = np.inf
    for k in range(centres.shape[0]):
        acc = 0.0
        for a in range(x.shape[1]):
            diff = x[i, a] - centres[k, a]
            acc += diff * diff
        if acc < best_dist:
            best_dist = acc
            best = k
    return best, best_dist


@nb.njit
def _lloyd(x, seeds, max_iter, tol, labels, centres):
    r"""Lloyd's k-means iterations from the points ``x[seeds]``, as scikit-learn's ``KMeans``.

    Each iteration labels every point by its nearest centre (squared Euclidean
    distance, the lowest index on ties) and moves every centre to the mean of its
    points. It stops when the labels equal the previous iteration's ("strict
    convergence"), or when the centres moved by :math:`\sum_k\|c_k^{new}-c_k^{old}\|^2
    \le` ``tol`` times the mean per-feature variance of ``x``, or after ``max_iter``
    iterations; in the last two cases the points are labelled once more by the final
    centres. scikit-learn's ``_kmeans_single_lloyd`` follows the same steps.

    Empty clusters are relocated as scikit-learn does: each cluster left without a
    point takes (in index order) one of the points farthest from their own old
    centre, largest distance first; that point's contribution leaves its cluster.
    (scikit-learn takes the same points from ``argpartition``, in an unspecified
    order when two or more clusters are empty at once.) If every point sits on its
    centre (all points equal), an empty cluster's centre becomes the data mean, where
    scikit-learn's centred data puts it.

    Writes ``labels`` ``(n,)`` and ``centres`` ``(K, d)``; returns the iterations run.
    """
    n, d = x.shape
    k_count = seeds.shape[0]
    old = np.empty((k_count, d))
    sums = np.empty((k_count, d))
    counts = np.empty(k_count)
    previous = np.full(n, -1, dtype=np.int64)
    dist = np.empty(n)
    taken = np.zeros(n, dtype=np.bool_)
    mean = np.zeros(d)
    var_total = 0.0
    for a in range(d):
        acc = 0.0
        for i in range(n):
            acc += x[i, a]
        mean[a] = acc / n
        acc = 0.0
        for i in range(n):
            diff = x[i, a] - mean[a]
            acc += diff * diff
        var_total += acc / n
    threshold = tol * var_total / d
    for k in range(k_count):
        for a in range(d):
            centres[k, a] = x[seeds[k], a]
    strict = False
    it = 0
    while it < max_iter:
        it += 1
        for k in range(k_count):
            counts[k] = 0.0
            for a in range(d):
                old[k, a] = centres[k, a]
                sums[k, a] = 0.0
        for i in range(n):
            k, dd = _nearest(x, i, old)
            labels[i] = k
            dist[i] = dd
            counts[k] += 1.0
            for a in range(d):
                sums[k, a] += x[i, a]
        top = 0.0
        for i in range(n):
            taken[i] = False
            if dist[i] > top:
                top = dist[i]
        for k in range(k_count):
            if counts[k] > 0.0 or top == 0.0:
                continue
            far, far_dist = -1, -1.0
            for i in range(n):
                if not taken[i] and dist[i] > far_dist:
                    far, far_dist = i, dist[i]
            taken[far] = True
            source = labels[far]
            for a in range(d):
                sums[source, a] -= x[far, a]
                sums[k, a] = x[far, a]
            counts[source] -= 1.0
            counts[k] = 1.0
        shift = 0.0
        for k in range(k_count):
            for a in range(d):
                centres[k, a] = sums[k, a] / counts[k] if counts[k] > 0.0 else mean[a]
                diff = centres[k, a] - old[k, a]
                shift += diff * diff
        same = True
        for i in range(n):
            if labels[i] != previous[i]:
                same = False
                break
        if same:
            strict = True
            break
        if shift <= threshold:
            break
        for i in range(n):
            previous[i] = labels[i]
    if not strict:
        for i in range(n):
            labels[i] = _nearest(x, i, centres)[0]
    return it
