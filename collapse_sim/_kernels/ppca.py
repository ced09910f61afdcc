r"""Probabilistic PCA sampling on the per-chain streams, jitted.

A PPCA model draws :math:`x = \mu + W z + \sigma\varepsilon` with :math:`z \sim
\mathcal N(0, I_q)` and :math:`\varepsilon \sim \mathcal N(0, I_d)` independent. Per point a
chain's stream gives the ``q`` normals of :math:`z`, then the ``d`` normals of
:math:`\varepsilon` (always ``q + d``, even when :math:`\sigma = 0`, so a chain's draws never
depend on another chain's parameters): exactly the normals
``fill_standard_normal`` writes into a ``(k, q + d)`` row, which lets the statistics path
(:meth:`collapse_sim.PPCAModel.draw_statistics`) reproduce the points' moments from the
same stream position. A point costs :math:`q + d` normals and :math:`dq` multiply-adds,
against :math:`d` normals and :math:`d(d+1)/2` multiply-adds for a Cholesky draw of the
same Gaussian.

The normals come from :mod:`collapse_sim._kernels.local`: the ziggurat of
:mod:`collapse_sim._kernels.rng` with the four xoshiro256++ words held in local variables for
the whole chain (one load and one store per chain instead of per draw), bit-identical to
``next_normal`` (a test asserts it).
"""


import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .local import normal as _normal


@chain_kernel
def ppca_points(states, mean, components, noise_sd, out):
    """``out[c, i] = mean[c] + components[c] @ z + noise_sd[c] * eps`` for every chain.

    ``mean`` ``(B, d)``, ``components`` ``(B, d, q)``, ``noise_sd`` ``(B,)`` with ``B`` 1
    (shared by every chain) or ``chains``; ``out`` ``(chains, k, d)``. Per point: ``q``
    normals ``z``, then ``d`` normals ``eps``, from ``states[c]``.
    """
    chains, k, d = out.shape
    q = components.shape[2]
    step = 0 if mean.shape[0] == 1 else 1  # member c * step: shared or per chain
    for c in nb.prange(chains):
        s = states[c]
        s0 = s[0]
        s1 = s[1]
        s2 = s[2]
        s3 = s[3]
        m = mean[c * step]
        w = components[c * step]
        sd = noise_sd[c * step]
        z = np.empty(q)
        for i in range(k):
            for j in range(q):
                z[j], s0, s1, s2, s3 = _normal(s0, s1, s2, s3)
            row = out[c, i]
            for a in range(d):
                acc = m[a]
                for j in range(q):
                    acc += w[a, j] * z[j]
                e, s0, s1, s2, s3 = _normal(s0, s1, s2, s3)
                row[a] = acc + sd * e
        s[0] = s0
        s[1] = s1
        s[2] = s2
        s[3] = s3


@chain_kernel
def fill_normals(states, out):
    """Fill ``out[c]`` (C-contiguous, any trailing shape) with normals from ``states[c]``:
    the numbers ``rng.fill_standard_normal`` writes, with the state in registers."""
    chains = out.shape[0]
    flat = out.reshape(chains, -1)
    for c in nb.prange(chains):
        s = states[c]
        s0 = s[0]
        s1 = s[1]
        s2 = s[2]
        s3 = s[3]
        row = flat[c]
        for i in range(row.shape[0]):
            row[i], s0, s1, s2, s3 = _normal(s0, s1, s2, s3)
        s[0] = s0
        s[1] = s1
        s[2] = s2
        s[3] = s3


#: Rows of normals a chain holds at once in :func:`latent_moments` (about 1 MiB at r = 74).
LATENT_ROWS = 2048


@chain_kernel(one_blas_thread=True)
def latent_moments(states, k, mean, m2):
    """Draw ``k`` rows of ``r`` normals per chain (the numbers :func:`fill_normals` writes
    into a ``(k, r)`` row) and keep only their mean ``mean[c]`` ``(r,)`` and centred
    scatter ``m2[c]`` ``(r, r)``.

    A chain's normals pass through a buffer of :data:`LATENT_ROWS` rows of its own (cache
    resident); the scatter is ``sum Y^T Y - k ybar ybar^T``, one BLAS product (``np.dot``)
    per buffer, which loses nothing for standard normals (``|ybar| ~ k^-1/2``).
    """
    chains, r = mean.shape
    rows = min(k, LATENT_ROWS)
    for c in nb.prange(chains):
        s = states[c]
        s0 = s[0]
        s1 = s[1]
        s2 = s[2]
        s3 = s[3]
        buf = np.empty((rows, r))
        prod = np.zeros((r, r))
        sums = np.zeros(r)
        done = 0
        while done < k:
            m = min(rows, k - done)
            part = buf[:m]
            for i in range(m):
                for j in range(r):
                    part[i, j], s0, s1, s2, s3 = _normal(s0, s1, s2, s3)
            for i in range(m):
                for j in range(r):
                    sums[j] += part[i, j]
            prod += np.dot(part.T, part)
            done += m
        s[0] = s0
        s[1] = s1
        s[2] = s2
        s[3] = s3
        for j in range(r):
            mean[c, j] = sums[j] / k
        for a in range(r):
            for b in range(r):
                m2[c, a, b] = prod[a, b] - k * mean[c, a] * mean[c, b]


@nb.njit
def _rows_moments(src, index, mu, m2):
    """Mean ``mu`` ``(d,)`` and centred scatter ``m2`` ``(d, d)`` of the rows ``src[index]``
    (``index`` ``(k,)``): two passes (the mean, then the centred rows in blocks of
    :data:`LATENT_ROWS`, one BLAS product per block), never a copy of all the rows."""
    k = index.shape[0]
    d = src.shape[1]
    rows = min(k, LATENT_ROWS)
    for j in range(d):
        mu[j] = 0.0
    for i in range(k):
        x = src[index[i]]
        for j in range(d):
            mu[j] += x[j]
    for j in range(d):
        mu[j] /= k
    buf = np.empty((rows, d))
    prod = np.zeros((d, d))
    done = 0
    while done < k:
        m = min(rows, k - done)
        part = buf[:m]
        for i in range(m):
            x = src[index[done + i]]
            for j in range(d):
                part[i, j] = x[j] - mu[j]
        prod += np.dot(part.T, part)
        done += m
    for a in range(d):
        for b in range(d):
            m2[a, b] = 0.5 * (prod[a, b] + prod[b, a])


@chain_kernel(one_blas_thread=True)
def point_moments(points, mean, m2):
    """Mean ``mean[c]`` ``(d,)`` and centred scatter ``m2[c]`` ``(d, d)`` of ``points[c]``
    ``(k, d)`` (:func:`_rows_moments` over all its rows)."""
    k = points.shape[1]
    for c in nb.prange(points.shape[0]):
        _rows_moments(points[c], np.arange(k), mean[c], m2[c])


@chain_kernel(one_blas_thread=True)
def subset_moments(rows, index, mean, m2):
    """Mean ``mean[c]`` and centred scatter ``m2[c]`` of the rows ``rows[index[c]]``
    (``rows`` ``(N, d)``, ``index`` ``(chains, k)`` checked in range): the same numbers as
    :func:`point_moments` of ``rows[index]``, without gathering the rows."""
    for c in nb.prange(index.shape[0]):
        _rows_moments(rows, index[c], mean[c], m2[c])
