r"""Metrics when the truth or the model is a Gaussian mixture (private; a facade over
:mod:`collapse_sim.families.mixture`, where the code lives).

Every model is handled as a mixture: a Gaussian is one component of weight 1.

``w2``. 1-D: exact up to quadrature, :math:`W_2^2=\int_0^1(F^{-1}(u)-G^{-1}(u))^2du`
with :math:`u=\Phi(z)`, the trapezoid rule on :data:`Z_POINTS` points of
:math:`z\in[-8,8]` (the mass beyond is 1e-15) and quantiles solved by
safeguarded Newton on the CDF (lower half) or survival function (upper half).
Measured relative error against adaptive quadrature of the quantile formula: below
1e-8 while the modes of the two distributions lie within about 4 standard
deviations of each other, 1e-5 to 7e-5 at 6, up to 4e-3 at 12 (narrow, separated
components, where the quantile function nearly jumps between modes). d >= 2: the
*sliced* Wasserstein-2 distance
:math:`SW_2^2=E_\theta[W_2^2(\theta_\#p,\theta_\#q)]` over :data:`SLICES` fixed
directions — a different distance from :math:`W_2` (:math:`SW_2 \le W_2`; it is
what scales to mixtures), estimated with the directions' quadrature error.

``kl``. :math:`\mathrm{KL}(p\|q)=E_p[\log p]-E_p[\log q]`. For a Gaussian model the
cross-entropy :math:`-E_p[\log q]` depends on :math:`p` only through its mean and
covariance: closed form; the entropy :math:`-E_p[\log p]` of the truth is computed
once (1-D: adaptive quadrature; d-D: Monte Carlo on :data:`ENTROPY_POINTS` points,
standard error stated in ``MixtureContext.entropy_se``). For a mixture model both
terms are averages over the same :data:`MC_POINTS` held-out truth points
(common random numbers), so the estimate's standard error is
``sd(log p - log q) / sqrt(MC_POINTS)`` (:func:`kl_standard_error`).

``nll``. Average of :math:`-\log q` over the held-out sample (its first
:data:`MC_POINTS` points for mixture models).

``tail_mass``. The truth's central region holds 99% of its mass: 1-D, between
its 0.5% and 99.5% quantiles; d-D, the ellipsoid
:math:`(x-\mu)^\top\Sigma^{-1}(x-\mu)\le r^2` around the truth's overall mean and
covariance with :math:`r` solved so the truth has exactly 1% outside. A mixture
model's mass outside is the weighted sum of its components' (each Gaussian).

``l2``. :math:`\int(p-q)^2 = \sum_{ij}a_ia_j\mathcal N(\mu_i;\mu_j,\Sigma_i+\Sigma_j)`
summed over the pairs of :math:`pp`, :math:`qq` and :math:`-2pq`: closed form.
"""

from .families.mixture import (  # noqa: F401 - re-exported for the tests and benchmarks
    _U,
    _Z,
    _ZW,
    ENTROPY_POINTS,
    MC_POINTS,
    SLICES,
    Z_POINTS,
    MixtureContext,
    _model_quantiles,
    components,
    cross_entropy_gaussian,
    kl,
    kl_standard_error,
    l2,
    mean_logpdf,
    nll,
    project_quantiles,
    sample_tail_mass,
    sample_w2,
    slice_directions,
    tail_mass,
    w2,
)
