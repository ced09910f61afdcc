r"""Factor-analysis sampling on the per-chain streams, jitted.

A factor-analysis model draws :math:`x = \mu + W z + \Psi^{1/2}\varepsilon` with
:math:`z \sim \mathcal N(0, I_q)`, :math:`\varepsilon \sim \mathcal N(0, I_d)` and a
per-dimension noise standard deviation :math:`\sqrt{\psi_a}`. It is the probabilistic PCA
kernel (:func:`collapse_sim._kernels.ppca.ppca_points`) with a noise vector instead of a
scalar: per point a chain's stream gives the ``q`` normals of :math:`z`, then the ``d``
normals of :math:`\varepsilon` (always ``q + d``), exactly the normals
:func:`collapse_sim._kernels.ppca.fill_normals` writes into a ``(k, q + d)`` row, so the
statistics path (:meth:`collapse_sim.families.factor.FactorAnalysisModel.draw_statistics`)
reproduces the points' moments from the same stream position with
:func:`collapse_sim._kernels.ppca.latent_moments`.

A sibling kernel rather than a vector argument of the PPCA kernel, so that PPCA keeps its
scalar multiply in the inner loop. The four xoshiro256++ words stay in local variables for
the whole chain (:mod:`collapse_sim._kernels.local`); chain ``c`` touches only row ``c``, so
the draws are bit-identical whatever the thread count.
"""

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .local import normal as _normal


@chain_kernel
def factor_points(states, mean, components, noise_sd, out):
    """``out[c, i] = mean[c] + components[c] @ z + noise_sd[c] * eps`` for every chain.

    ``mean`` ``(B, d)``, ``components`` ``(B, d, q)``, ``noise_sd`` ``(B, d)`` (the
    per-dimension noise standard deviations) with ``B`` 1 (shared by every chain) or
    ``chains``; ``out`` ``(chains, k, d)``. Per point: ``q`` normals ``z``, then ``d``
    normals ``eps``, from ``states[c]``.
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
                row[a] = acc + sd[a] * e
        s[0] = s0
        s[1] = s1
        s[2] = s2
        s[3] = s3
