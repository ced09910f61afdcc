r"""The standard normal in :math:`\mathbb R^d` conditioned on :math:`\lVert z\rVert \le k`, by a
bounded rejection step (private; the validated entry point is the ``Truncate`` stage of
:mod:`collapse_sim.families.gaussian`).

Each point tries at most ``tries`` standard normals and keeps the first inside the ball;
the points none of them settled are flagged, with a fresh uniform and a direction each, for
the caller to finish by exact inversion of the radius. The kept points follow the
conditional law exactly, and so do the finished ones (they are independent of the failed
trials), so the mixture is exact; the cost per point is bounded by ``tries``.
"""

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .local import normal, uniform


@chain_kernel
def truncated_normals(states, mean, chol, k2, tries, out, failed, spare):
    r"""``out[c, i] = mean[c] + chol[c] z`` with ``z`` a standard normal conditioned on
    :math:`\lVert z\rVert^2 \le k^2` (``out`` ``(chains, m, d)``, ``mean`` and ``chol``
    batches of ``chains`` or 1); ``failed[c, i] = 1`` where ``tries`` draws did not land
    inside: ``out[c, i]`` is then a unit direction and ``spare[c, i]`` a uniform, for the
    caller to finish by inversion."""
    chains, m, d = out.shape
    batch = mean.shape[0]
    for c in nb.prange(chains):
        b = np.int64(c) if batch > 1 else np.int64(0)
        st = states[c]
        s0 = st[0]
        s1 = st[1]
        s2 = st[2]
        s3 = st[3]
        z = np.empty(d)
        for i in range(m):
            inside = False
            r2 = 0.0
            for _ in range(tries):
                r2 = 0.0
                for a in range(d):
                    z[a], s0, s1, s2, s3 = normal(s0, s1, s2, s3)
                    r2 += z[a] * z[a]
                if r2 <= k2:
                    inside = True
                    break
            if inside:
                failed[c, i] = 0
                for a in range(d):
                    acc = mean[b, a]
                    for e in range(a + 1):
                        acc += chol[b, a, e] * z[e]
                    out[c, i, a] = acc
            else:
                failed[c, i] = 1
                norm = np.sqrt(r2)
                for a in range(d):
                    out[c, i, a] = z[a] / norm if norm > 0.0 else (1.0 if a == 0 else 0.0)
                spare[c, i], s0, s1, s2, s3 = uniform(s0, s1, s2, s3)
        st[0] = s0
        st[1] = s1
        st[2] = s2
        st[3] = s3


@chain_kernel
def truncated_moments(states, mean, chol, k2, k, out_mean, out_scatter):
    r"""Moments of ``k`` draws of ``mean[c] + chol[c] z``, ``z`` a standard normal conditioned
    on :math:`\lVert z\rVert^2 \le k^2`, without forming the points.

    The same rejection as :func:`truncated_normals` (same stream use while the first
    ``tries`` draws settle each point), not capped: the caller uses it only where a draw
    lands inside with probability at least 1/4, so a point needs more than 64 draws with
    probability below 1e-8 and the loop cannot stall. Sums of :math:`z` and
    :math:`zz^\top` (bounded draws with mean near 0: centring afterwards loses nothing), then
    :math:`\bar x = \mu + L\bar z`, :math:`S_x = L S_z L^\top`.
    """
    chains, d = out_mean.shape
    batch = mean.shape[0]
    for c in nb.prange(chains):
        b = np.int64(c) if batch > 1 else np.int64(0)
        st = states[c]
        s0 = st[0]
        s1 = st[1]
        s2 = st[2]
        s3 = st[3]
        z = np.empty(d)
        zbar = np.zeros(d)
        scat = np.zeros((d, d))
        if d == 1:  # scalar sums in registers
            sz = 0.0
            szz = 0.0
            for _ in range(k):
                while True:
                    x, s0, s1, s2, s3 = normal(s0, s1, s2, s3)
                    if x * x <= k2:
                        break
                sz += x
                szz += x * x
            zbar[0] = sz
            scat[0, 0] = szz
        else:
            for _ in range(k):
                while True:
                    r2 = 0.0
                    for a in range(d):
                        z[a], s0, s1, s2, s3 = normal(s0, s1, s2, s3)
                        r2 += z[a] * z[a]
                    if r2 <= k2:
                        break
                for a in range(d):
                    zbar[a] += z[a]
                    for e in range(a + 1):
                        scat[a, e] += z[a] * z[e]
        st[0] = s0
        st[1] = s1
        st[2] = s2
        st[3] = s3
        # raw sums -> centred: z is bounded (|z| <= k) with mean ~ 0, so no cancellation
        for a in range(d):
            zbar[a] = zbar[a] / k if k > 0 else 0.0
        for a in range(d):
            for e in range(a + 1):
                scat[a, e] -= k * zbar[a] * zbar[e]
                scat[e, a] = scat[a, e]
        for a in range(d):
            acc = mean[b, a]
            for e in range(a + 1):
                acc += chol[b, a, e] * zbar[e]
            out_mean[c, a] = acc
        for a in range(d):
            for e in range(d):
                acc = 0.0
                for f in range(a + 1):
                    for g in range(e + 1):
                        acc += chol[b, a, f] * scat[f, g] * chol[b, e, g]
                out_scatter[c, a, e] = acc
