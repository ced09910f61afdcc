r"""Per-generation, per-chain measures of how far each model is from the truth.

Every metric maps a truth (a batch of one) and a batch of ``B`` fitted models to
a ``(B,)`` array; :func:`collapse_sim.simulate` stacks them into
``(generations + 1, chains)`` arrays whose row 0 is the truth itself.

============== =========================================================================
name           definition (model :math:`\mathcal N(m, S)`, truth :math:`\mathcal N(\mu,\Sigma)`)
============== =========================================================================
``variance``   :math:`\operatorname{tr} S`
``mean_shift`` :math:`\lVert m-\mu\rVert_2`
``w2``         :math:`W_2 = \big(\lVert m-\mu\rVert^2 + \operatorname{tr}(S+\Sigma
               -2(\Sigma^{1/2}S\Sigma^{1/2})^{1/2})\big)^{1/2}`
``kl``         :math:`\mathrm{KL}(\text{truth}\,\|\,\text{model}) = \tfrac12[\operatorname{tr}
               (S^{-1}\Sigma) + (m-\mu)^\top S^{-1}(m-\mu) - d + \log\frac{\det S}{\det\Sigma}]`
``nll``        mean of :math:`-\log p_{\text{model}}(x)` over a held-out real sample of
               :data:`HELDOUT_SIZE` points, the same for every chain
``tail_mass``  model probability outside the truth's central 99% region (1-D: outside
               the 0.5% and 99.5% quantiles; d-D: outside the ellipsoid
               :math:`(x-\mu)^\top\Sigma^{-1}(x-\mu) \le \chi^2_{d,0.99}`); the truth has 0.01
============== =========================================================================

Regression truths (:class:`~collapse_sim.LinearRegression`) have one metric,
``test_error``: the excess risk :math:`(\hat w - w)^\top\Sigma_x(\hat w - w)` of
each fitted weight vector on fresh data from the truth (:func:`test_error`); the
distribution metrics above need a density model and are refused for them.

Degenerate models. A model whose covariance is singular (relative eigenvalue
below ``1e-14``, or exactly 0 in 1-D) has no density: ``kl`` and ``nll`` are
then ``+inf``, their mathematically right value, and finite everywhere else
(a value beyond the float range also shows as ``inf``). ``variance``,
``mean_shift``, ``w2`` and ``tail_mass`` stay finite for every model.

Accuracy. Everything is closed form except ``tail_mass`` for ``d >= 2``, which
uses the directional decomposition of a normal vector (Deák 1980): in the
truth-whitened eigenbasis of the model, ``x = b + A^{1/2} r u`` with radius
``r ~ chi_d`` and direction ``u`` uniform on the sphere; for each direction the
radial probability is exact (chi-square series). The average over directions is
a quadrature: for ``d = 2`` the periodic trapezoid rule, or, when the model's
mean lies outside the region, Gauss–Legendre over the arc of directions that
reach it (to rounding); for ``d >= 3`` a fixed set (:func:`tail_directions`: a
256-point spherical Fibonacci lattice for ``d = 3``, 512 antithetic
scrambled-Sobol' directions beyond) with its pole turned towards the model's
mean, the same for every chain and generation. It is exact at the truth (0.01).
Measured absolute error on 20 random anisotropic models per case, means inside
and outside the region (``python benchmarks/tail_mass_accuracy.py``): below
1e-9 for ``d = 2``; below 5e-4 for ``d = 3`` (median 3e-6); below 1e-2 for
``d = 4, 5`` (median below 6e-4), the largest errors occurring when the model's
mean has left the region.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from . import _mixture_metrics as _mix
from . import registry as _registry
from ._kernels import tails as _tails
from .models import ESTIMATOR_SAMPLE, EstimatorBatch, Gaussian, GaussianMixture, LinearRegression
from .registry import MetricContext, evaluate, register_metric

__all__ = [
    "DEFAULT", "DISTRIBUTION", "HELDOUT_SIZE", "REGRESSION", "TAIL_LEVEL", "MetricContext",
    "check_names", "default_for", "evaluate", "gaussian_outside", "kl", "kl_standard_error",
    "l2", "mean_shift", "nll", "nll_from_moments", "register_metric", "tail_directions",
    "tail_mass", "test_error", "variance", "w2",
]

#: Size of the held-out real sample used by ``nll``.
HELDOUT_SIZE = _registry.HELDOUT_SIZE
#: Central probability of the truth's region used by ``tail_mass``.
TAIL_LEVEL = 0.99
_REL_SINGULAR = 1e-14
_GL_NODES = 64


def variance(truth, model) -> np.ndarray:
    r"""Total variance :math:`\operatorname{tr} S` of each model, ``(B,)``."""
    return np.trace(model.cov, axis1=1, axis2=2).copy()


def mean_shift(truth, model) -> np.ndarray:
    r"""Euclidean distance :math:`\lVert m - \mu\rVert` of each model's mean from the truth's."""
    return np.sqrt(np.sum((model.mean - truth.mean) ** 2, axis=1))


def w2(truth, model) -> np.ndarray:
    r"""Wasserstein-2 distance between each model and the truth (closed form for Gaussians).

    .. math::

        W_2^2 = \lVert m-\mu\rVert^2 + \operatorname{tr} S + \operatorname{tr}\Sigma
                - 2\operatorname{tr}\big(\Sigma^{1/2} S \Sigma^{1/2}\big)^{1/2},

    which in 1-D is :math:`(m-\mu)^2 + (s-\sigma)^2`.
    """
    if not (isinstance(truth, Gaussian) and isinstance(model, Gaussian)):
        return _mix.w2(_mixture_context(truth), model)
    shift2 = np.sum((model.mean - truth.mean) ** 2, axis=1)
    if model.dim == 1:
        spread2 = (np.sqrt(model.cov[:, 0, 0]) - math.sqrt(truth.cov[0, 0, 0])) ** 2
        return np.sqrt(shift2 + spread2)
    # With R = Sigma^(1/2) and T = (R S R)^(1/2): tr S + tr Sigma - 2 tr T
    # = tr(Sigma^-1 (T - Sigma)^2) = ||R^-1 (T - Sigma)||_F^2, a sum of squares, so a model
    # near the truth gets W2 ~ rounding, not sqrt(rounding) from cancelling traces.
    sigma = truth.cov[0]
    lam0, vec0 = np.linalg.eigh(sigma)
    root = (vec0 * np.sqrt(lam0)) @ vec0.T
    inv_root = (vec0 / np.sqrt(lam0)) @ vec0.T
    lam, vec = np.linalg.eigh(root @ model.cov @ root)
    # Eigenvalues at rounding level (relative 1e-14) are zeros of a singular model: taking
    # their square root would turn 1e-16 noise into a 1e-8 error.
    lam = np.where(lam > _REL_SINGULAR * lam.max(axis=1, keepdims=True), lam, 0.0)
    cross = (vec * np.sqrt(lam)[:, None, :]) @ np.swapaxes(vec, 1, 2)
    spread2 = np.sum((inv_root @ (cross - sigma)) ** 2, axis=(1, 2))
    # The matrix square roots round, so the formula leaves about 1e-8 at the truth itself;
    # a model whose covariance equals the truth's is exactly at spread distance 0.
    same = np.all(model.cov == sigma, axis=(1, 2))
    return np.sqrt(shift2 + np.where(same, 0.0, spread2))


def kl(truth, model, reference: np.ndarray | None = None) -> np.ndarray:
    r"""KL divergence :math:`\mathrm{KL}(\text{truth}\,\|\,\text{model})`; ``+inf`` if degenerate.

    .. math::

        \tfrac12\big[\operatorname{tr}(S^{-1}\Sigma) + (m-\mu)^\top S^{-1}(m-\mu) - d
        + \log\det S - \log\det\Sigma\big]
    """
    if not (isinstance(truth, Gaussian) and isinstance(model, Gaussian)):
        return _mix.kl(_mixture_context(truth, reference), model)
    d = model.dim
    _, logdet_truth = np.linalg.slogdet(truth.cov[0])
    lam, vec, singular = _eigh(model)
    delta = truth.mean - model.mean
    proj = np.einsum("bij,bi->bj", vec, delta)
    spread = np.einsum("bij,jk,bki->bi", np.swapaxes(vec, 1, 2), truth.cov[0], vec)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        quad = np.sum((spread + proj**2) / lam, axis=1)
        value = 0.5 * (quad - d + np.sum(np.log(lam), axis=1) - logdet_truth)
    # the eigen-decomposition rounds: a model equal to the truth is at divergence exactly 0
    same = np.all(model.cov == truth.cov[0], axis=(1, 2)) & np.all(model.mean == truth.mean,
                                                                   axis=1)
    value = np.where(same, 0.0, value)
    return np.where(singular | ~np.isfinite(value), np.inf, np.maximum(value, 0.0))


def nll(truth, model, heldout: np.ndarray) -> np.ndarray:
    r"""Mean negative log-likelihood of the held-out points ``heldout`` ``(m, d)`` per model.

    Through the held-out sample's mean :math:`\bar x` and MLE covariance :math:`C`:

    .. math::

        \tfrac12\big[d\log 2\pi + \log\det S + \operatorname{tr}(S^{-1}C)
        + (\bar x-m)^\top S^{-1}(\bar x-m)\big].

    ``+inf`` for a degenerate model (held-out points lie off its support a.s.).
    """
    heldout = np.asarray(heldout, dtype=np.float64)
    if heldout.ndim != 2 or heldout.shape[1] != model.dim:
        raise ValueError(f"heldout must have shape (m, {model.dim}), got {heldout.shape}")
    if not isinstance(model, Gaussian):
        return _mix.nll(_mixture_context(truth, heldout), model)
    xbar = heldout.mean(axis=0)
    dev = heldout - xbar
    return nll_from_moments(model, xbar, dev.T @ dev / heldout.shape[0])


def nll_from_moments(model: Gaussian, xbar: np.ndarray, cov_h: np.ndarray) -> np.ndarray:
    r"""Cross-entropy :math:`-E[\log q(X)]` of Gaussian models for any ``X`` with mean
    ``xbar`` and covariance ``cov_h`` (the held-out sample's, or a truth's)."""
    lam, vec, singular = _eigh(model)
    proj = np.einsum("bij,bi->bj", vec, xbar[None, :] - model.mean)
    spread = np.einsum("bij,jk,bki->bi", np.swapaxes(vec, 1, 2), cov_h, vec)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        quad = np.sum((spread + proj**2) / lam, axis=1)
        value = 0.5 * (model.dim * math.log(2 * math.pi) + np.sum(np.log(lam), axis=1) + quad)
    return np.where(singular | np.isnan(value), np.inf, value)


def tail_mass(truth, model) -> np.ndarray:
    r"""Model probability outside the truth's central 99% region.

    1-D, with truth quantiles :math:`q_{0.005}, q_{0.995}` and model :math:`\mathcal N(m,s^2)`:
    :math:`\Phi((q_{0.005}-m)/s) + \Phi((m-q_{0.995})/s)`; a point mass (``s = 0``)
    gives 0 or 1. d-D: the probability that :math:`(x-\mu)^\top\Sigma^{-1}(x-\mu)
    > \chi^2_{d,0.99}` under the model (see the module notes for the estimator).
    """
    if not (isinstance(truth, Gaussian) and isinstance(model, Gaussian)):
        return _mix.tail_mass(_mixture_context(truth), model, gaussian_outside)
    tail = 0.5 * (1.0 - TAIL_LEVEL)
    if model.dim == 1:
        mu, sigma = truth.mean[0, 0], math.sqrt(truth.cov[0, 0, 0])
        lo = mu + sigma * special.ndtri(tail)
        hi = mu + sigma * special.ndtri(1.0 - tail)
        m = model.mean[:, 0]
        s = np.sqrt(model.cov[:, 0, 0])
        point = ((m < lo) | (m > hi)).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = special.ndtr((lo - m) / s) + special.ndtr((m - hi) / s)
        return np.where(s > 0.0, spread, point)
    radius2 = float(stats.chi2.ppf(TAIL_LEVEL, model.dim))
    return gaussian_outside(truth.mean[0], truth.cov[0], radius2, model.mean, model.cov)


def gaussian_outside(centre, cov0, radius2, means, covs) -> np.ndarray:
    r"""Probability of :math:`(x-c)^\top\Sigma_0^{-1}(x-c) > r^2` under each
    :math:`\mathcal N(m_i, S_i)` (``means`` ``(N, d)``, ``covs`` ``(N, d, d)``, ``d >= 2``)."""
    d = means.shape[1]
    chol0 = np.linalg.cholesky(cov0)
    inv0 = np.linalg.inv(chol0)
    b = (means - centre) @ inv0.T
    a = inv0 @ covs @ inv0.T
    lam, vec = np.linalg.eigh(a)
    lam = np.clip(lam, 0.0, None)
    beta = np.einsum("bij,bi->bj", vec, b)
    out = np.empty(means.shape[0])
    if d == 2:
        nodes, weights = np.polynomial.legendre.leggauss(_GL_NODES)
        _tails.outside_ball_2d(np.ascontiguousarray(beta), np.ascontiguousarray(lam),
                               radius2, tail_directions(2), nodes, weights, out)
        return out
    _tails.outside_ball(np.ascontiguousarray(beta), np.ascontiguousarray(lam), radius2,
                        _directions(d), out)
    return out


_DIRECTIONS_CACHE: dict[int, np.ndarray] = {}


def _directions(d: int) -> np.ndarray:
    """Fixed unit vectors ``(tail_directions(d), d)`` spread evenly over the sphere.

    d = 2: equally spaced angles (the periodic trapezoid rule, spectrally
    accurate); d = 3: the spherical Fibonacci lattice; d >= 4: antithetic pairs
    of normalised scrambled-Sobol' normal vectors (fixed seed).
    """
    if d not in _DIRECTIONS_CACHE:
        count = tail_directions(d)
        if d == 2:
            angle = 2.0 * np.pi * (np.arange(count) + 0.5) / count
            u = np.column_stack([np.cos(angle), np.sin(angle)])
        elif d == 3:
            i = np.arange(count) + 0.5
            z = 1.0 - 2.0 * i / count
            phi = np.pi * (1.0 + math.sqrt(5.0)) * i
            r = np.sqrt(1.0 - z * z)
            u = np.column_stack([r * np.cos(phi), r * np.sin(phi), z])
        else:
            sobol = stats.qmc.Sobol(d, scramble=True, seed=20240724)
            half = special.ndtri(sobol.random(count // 2))
            half /= np.linalg.norm(half, axis=1, keepdims=True)
            u = np.vstack([half, -half])
        _DIRECTIONS_CACHE[d] = np.ascontiguousarray(u)
    return _DIRECTIONS_CACHE[d]


def tail_directions(d: int) -> int:
    """Number of directions the ``d``-dimensional ``tail_mass`` estimate averages over."""
    return {2: 128, 3: 256}.get(d, 512)


def _eigh(model: Gaussian) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigen-decomposition of every model covariance, and which members are singular."""
    if model.dim == 1:
        lam = model.cov[:, 0, :].copy()
        vec = np.ones_like(model.cov)
        return lam, vec, lam[:, 0] <= 0.0
    lam, vec = np.linalg.eigh(model.cov)
    top = lam.max(axis=1)
    singular = (lam.min(axis=1) <= _REL_SINGULAR * top) | (top <= 0.0)
    return lam, vec, singular


# -- registry used by the engine -------------------------------------------------------------

def l2(truth, model) -> np.ndarray:
    r"""Squared :math:`L_2` distance :math:`\int (p_{\text{truth}} - p_{\text{model}})^2\,dx`.

    Closed form for Gaussians and Gaussian mixtures: with
    :math:`\langle a, b\rangle = \sum_{ij} a_i b_j\,\mathcal N(\mu_i;\nu_j, S_i + T_j)`,
    it is :math:`\langle p,p\rangle + \langle q,q\rangle - 2\langle p,q\rangle`
    (the distance Shumailov et al.'s GMM experiment tracks). ``inf`` for a model
    with a point-mass component.
    """
    return _mix.l2(truth, model)


def kl_standard_error(truth, model, reference: np.ndarray | None = None) -> np.ndarray:
    """Monte Carlo standard error of :func:`kl` per model (0 where it is closed form)."""
    if isinstance(truth, Gaussian) and isinstance(model, Gaussian):
        return np.zeros(model.batch_size)
    return _mix.kl_standard_error(_mixture_context(truth, reference), model)


_CONTEXTS: dict[int, _mix.MixtureContext] = {}


def _mixture_context(truth, reference=None) -> _mix.MixtureContext:
    """Truth-side precomputations for the mixture path (cached per truth and reference)."""
    key = (id(truth), None if reference is None else id(reference))
    ctx = _CONTEXTS.get(key)
    if ctx is None or ctx.truth is not truth:
        if reference is None:
            from .sampling import chain_streams, draw_points

            reference = draw_points(truth, _mix.MC_POINTS, chain_streams(20241125, 1))[0]
        ctx = _mix.MixtureContext(truth, reference)
        if len(_CONTEXTS) > 32:
            _CONTEXTS.clear()
        _CONTEXTS[key] = ctx
    return ctx


def test_error(truth: LinearRegression, model: LinearRegression) -> np.ndarray:
    r"""Excess test risk of every fitted regression, ``(B,)``.

    .. math::

        \mathcal E(\hat w) = \mathbb E_{x\sim\mathcal N(0,\Sigma_x)}
        \big[(x^\top\hat w - x^\top w)^2\big] = (\hat w - w)^\top\Sigma_x(\hat w - w),

    the test error of Dohmatob, Feng & Kempe (2024) and Gerstgrasser et al. (2024):
    the expected squared error on a fresh point minus the irreducible noise
    :math:`\sigma^2`. Compare with :func:`collapse_sim.theory.regression_test_error`.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> truth = cs.LinearRegression(weights=[0.0, 0.0], noise_std=1.0)
    >>> float(test_error(truth, cs.LinearRegression(weights=[1.0, 2.0]))[0])
    5.0
    """
    if not (isinstance(truth, LinearRegression) and isinstance(model, LinearRegression)):
        raise TypeError("test_error compares LinearRegression models")
    return model.test_error(truth)


# -- registrations: what the engine computes for each (truth, model) pair ----------------------

_POINT_TRUTHS = (Gaussian, GaussianMixture)
_PARAMETRIC = (Gaussian, GaussianMixture)


def _log_q(model: EstimatorBatch, truth, ctx) -> tuple[_mix.MixtureContext, np.ndarray]:
    """Mean log-density of the held-out reference points under every estimator (memoised)."""
    mctx = _mixture_context(truth, ctx.heldout)
    memo = getattr(model, "_log_q_memo", None)
    if memo is None or memo[0] is not mctx.mc:
        model._log_q_memo = (mctx.mc, model.score_samples(mctx.mc).mean(axis=1))
    return mctx, model._log_q_memo[1]


def _estimator_kl(truth, model, ctx):
    mctx, log_q = _log_q(model, truth, ctx)
    return mctx.log_p_mc().mean() - log_q


def _estimator_variance(truth, model, ctx):
    pts = model.metric_sample
    dev = pts - pts.mean(axis=1, keepdims=True)
    return np.sum(dev**2, axis=(1, 2)) / (ESTIMATOR_SAMPLE - 1)


def _estimator_l2(truth, model, ctx):
    raise ValueError("metric 'l2' needs a Gaussian mixture model; this estimator has none")


register_metric("variance", _POINT_TRUTHS, _PARAMETRIC, lambda t, m, ctx: variance(t, m),
                doc="total variance tr S")
register_metric("mean_shift", _POINT_TRUTHS, _PARAMETRIC, lambda t, m, ctx: mean_shift(t, m),
                distance=True, doc="||m - mu||")
register_metric("w2", _POINT_TRUTHS, _PARAMETRIC, lambda t, m, ctx: w2(t, m),
                distance=True, doc="Wasserstein-2 distance to the truth")
register_metric("kl", _POINT_TRUTHS, _PARAMETRIC, lambda t, m, ctx: kl(t, m, ctx.heldout),
                heldout=True, distance=True, doc="KL(truth || model)")
register_metric("kl", Gaussian, Gaussian, lambda t, m, ctx: kl(t, m), replace=True,
                distance=True, doc="KL(truth || model), closed form")
register_metric("nll", _POINT_TRUTHS, _PARAMETRIC, lambda t, m, ctx: nll(t, m, ctx.heldout),
                heldout=True, doc="mean -log q of held-out real points")
register_metric("tail_mass", _POINT_TRUTHS, _PARAMETRIC, lambda t, m, ctx: tail_mass(t, m),
                doc="model mass outside the truth's central 99% region")
register_metric("l2", _POINT_TRUTHS, _PARAMETRIC, lambda t, m, ctx: l2(t, m), default=False,
                distance=True, doc="squared L2 distance of the densities")
# scikit-learn estimators that are not Gaussian mixtures (mixtures are measured as such):
# score_samples on the held-out points and their own ESTIMATOR_SAMPLE points per chain.
register_metric("variance", _POINT_TRUTHS, EstimatorBatch, _estimator_variance)
register_metric("mean_shift", _POINT_TRUTHS, EstimatorBatch, lambda t, m, ctx: np.linalg.norm(
    m.metric_sample.mean(axis=1) - t.mean[0], axis=1))
register_metric("w2", _POINT_TRUTHS, EstimatorBatch, lambda t, m, ctx: _mix.sample_w2(
    _mixture_context(t, ctx.heldout), m.metric_sample))
register_metric("kl", _POINT_TRUTHS, EstimatorBatch, _estimator_kl, heldout=True)
register_metric("nll", _POINT_TRUTHS, EstimatorBatch, lambda t, m, ctx: -_log_q(m, t, ctx)[1],
                heldout=True)
register_metric("tail_mass", _POINT_TRUTHS, EstimatorBatch, lambda t, m, ctx: _mix.sample_tail_mass(
    _mixture_context(t, ctx.heldout), m.metric_sample, gaussian_outside))
register_metric("l2", _POINT_TRUTHS, EstimatorBatch, _estimator_l2, default=False)
register_metric("test_error", LinearRegression, LinearRegression,
                lambda t, m, ctx: test_error(t, m), distance=True,
                doc="excess risk (w - w*)^T S_x (w - w*)")

#: Metrics computed for a Gaussian or mixture truth when ``simulate`` is not told otherwise.
DEFAULT: tuple[str, ...] = _registry.defaults(Gaussian, Gaussian)
#: The metrics defined for :class:`~collapse_sim.LinearRegression` truths (and their default).
REGRESSION: tuple[str, ...] = _registry.available(LinearRegression, LinearRegression)
#: Every metric defined for Gaussian and mixture truths (Gaussians, mixtures, estimators).
DISTRIBUTION: tuple[str, ...] = _registry.available(Gaussian, GaussianMixture)


def __getattr__(name: str):
    """``AVAILABLE``: every registered metric name (families may register more on import)."""
    if name == "AVAILABLE":
        return _registry.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_for(truth, model_type: type | None = None) -> tuple[str, ...]:
    """The metrics ``simulate`` computes for ``truth`` (and models of ``model_type``,
    default: the truth's own type) when not told otherwise."""
    return _registry.defaults(type(truth), type(truth) if model_type is None else model_type)


def check_names(names, truth=None, model_type: type | None = None) -> tuple[str, ...]:
    """Validate a metric selection: a name or an iterable of registered names.

    With ``truth``, also check that every metric is defined for the pair (truth,
    ``model_type``; default: the truth's own type), naming the pair otherwise.
    """
    if truth is None:
        return _registry.check_names(names)
    return _registry.check_names(names, type(truth),
                                 type(truth) if model_type is None else model_type)
