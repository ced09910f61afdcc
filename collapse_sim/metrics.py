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

Arguments. The truth must be one :func:`~collapse_sim.simulate` accepts
(``truth.check_truth()``): a single distribution and, for a Gaussian or mixture, positive
definite covariances. A degenerate truth such as ``Gaussian(mean=0.0, var=0.0)`` is refused
with a ``ValueError`` naming its covariance: a point mass has no density (``kl`` is
infinite against every model with a density) and its central 99% region is a single
point. :func:`l2`, symmetric, is the exception: it compares any two Gaussians or mixtures
(also batches, member by member), ``inf`` where either has a point-mass component.
Held-out and reference samples are ``(n, d)`` arrays of finite values with at least one
point (:func:`kl_standard_error` of a mixture model needs two).

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
mean, the same for every chain and generation; the eigenvectors' signs are fixed by a
rule (an eigenvector is defined up to its sign, and LAPACK builds choose differently),
so the estimate depends on the covariance alone, not on the linear-algebra library. It
is exact at the truth (0.01).
Measured absolute error on 20 random anisotropic models per case, means inside
and outside the region (``python benchmarks/tail_mass_accuracy.py``): below
1e-9 for ``d = 2``; below 5e-4 for ``d = 3`` (median 3e-6); below 1e-2 for
``d = 4, 5`` (median below 6e-4), the largest errors occurring when the model's
mean has left the region.
"""

from __future__ import annotations

import numpy as np

from . import families as _families  # noqa: F401 - importing the families registers metrics
from . import registry as _registry
from ._validation import with_article
from .families import mixture as _mixture
from .families.gaussian import (
    TAIL_LEVEL,
    Gaussian,
    _check_sample,
    gaussian_outside,
    nll_from_moments,
    tail_directions,
)
from .families.mixture import GaussianMixture, _mixture_context
from .families.regression import LinearRegression, test_error
from .protocol import Model
from .registry import MetricContext, evaluate, register_metric

__all__ = [
    "DEFAULT", "DISTRIBUTION", "HELDOUT_SIZE", "REGRESSION", "TAIL_LEVEL", "MetricContext",
    "check_names", "default_for", "evaluate", "gaussian_outside", "kl", "kl_standard_error",
    "l2", "mean_shift", "nll", "nll_from_moments", "register_metric", "tail_directions",
    "tail_mass", "test_error", "variance", "w2",
]

#: Size of the held-out real sample used by ``nll``.
HELDOUT_SIZE = _registry.HELDOUT_SIZE


def _pair(truth, model):
    """``model.measured()`` once the pair is checked: two models of data of the same shape,
    and a truth that ``simulate`` accepts (:meth:`~collapse_sim.protocol.Model.check_truth`:
    a single distribution; a Gaussian or mixture truth with positive definite covariances)."""
    for name, value in (("truth", truth), ("model", model)):
        if not isinstance(value, Model):
            raise TypeError(f"{name} must be a collapse_sim model (Gaussian, GaussianMixture "
                            f"…), got {type(value).__name__}")
    model = model.measured()
    if truth.event_shape != model.event_shape:
        raise ValueError(f"truth and model must describe data of the same shape, got "
                         f"{truth.event_shape} and {model.event_shape}")
    truth.check_truth()
    return model


def _measure(name: str, truth, model, sample=None, sample_name: str = "heldout") -> np.ndarray:
    """Metric ``name`` of ``model`` against ``truth``, by the registration for their pair.

    ``sample`` (called ``sample_name`` in messages): held-out or reference points, checked
    to be ``(n, d)`` finite values with ``n >= 1`` for a Gaussian or mixture truth.
    """
    model = _pair(truth, model)
    spec = _registry.lookup(name, type(truth), type(model))
    if spec is None:
        truth_name = with_article(type(truth).__name__)
        raise ValueError(f"metric {name!r} is not defined for {truth_name} truth "
                         f"with {type(model).__name__} models")
    if sample is not None and isinstance(truth, Gaussian | GaussianMixture):
        sample = _check_sample(sample_name, sample, truth.dim)
    return spec.fn(truth, model, MetricContext(truth, sample))


def variance(truth, model) -> np.ndarray:
    r"""Total variance :math:`\operatorname{tr} S` of each model, ``(B,)``."""
    return _measure("variance", truth, model)


def mean_shift(truth, model) -> np.ndarray:
    r"""Euclidean distance :math:`\lVert m - \mu\rVert` of each model's mean from the truth's."""
    return _measure("mean_shift", truth, model)


def w2(truth, model) -> np.ndarray:
    r"""Wasserstein-2 distance between each model and the truth.

    Closed form for two Gaussians,

    .. math::

        W_2^2 = \lVert m-\mu\rVert^2 + \operatorname{tr} S + \operatorname{tr}\Sigma
                - 2\operatorname{tr}\big(\Sigma^{1/2} S \Sigma^{1/2}\big)^{1/2},

    which in 1-D is :math:`(m-\mu)^2 + (s-\sigma)^2`; with a mixture, quadrature of
    the quantile functions in 1-D and the sliced distance in d-D (see
    :mod:`collapse_sim.families.mixture`).
    """
    return _measure("w2", truth, model)


def kl(truth, model, reference: np.ndarray | None = None) -> np.ndarray:
    r"""KL divergence :math:`\mathrm{KL}(\text{truth}\,\|\,\text{model})`; ``+inf`` if degenerate.

    For two Gaussians

    .. math::

        \tfrac12\big[\operatorname{tr}(S^{-1}\Sigma) + (m-\mu)^\top S^{-1}(m-\mu) - d
        + \log\det S - \log\det\Sigma\big];

    with a mixture, Monte Carlo over ``reference`` points of the truth (default: a
    fixed sample of :data:`collapse_sim.families.mixture.MC_POINTS`).
    """
    return _measure("kl", truth, model, reference, "reference")


def nll(truth, model, heldout: np.ndarray) -> np.ndarray:
    r"""Mean negative log-likelihood of the held-out points ``heldout`` ``(m, d)`` per model.

    For a Gaussian model, through the held-out sample's mean :math:`\bar x` and MLE
    covariance :math:`C`:

    .. math::

        \tfrac12\big[d\log 2\pi + \log\det S + \operatorname{tr}(S^{-1}C)
        + (\bar x-m)^\top S^{-1}(\bar x-m)\big].

    ``+inf`` for a degenerate model (held-out points lie off its support a.s.).
    """
    if heldout is None:
        raise TypeError("heldout must be an array of held-out points (m, d), got None")
    return _measure("nll", truth, model, heldout, "heldout")


def tail_mass(truth, model) -> np.ndarray:
    r"""Model probability outside the truth's central 99% region.

    1-D, with truth quantiles :math:`q_{0.005}, q_{0.995}` and model :math:`\mathcal N(m,s^2)`:
    :math:`\Phi((q_{0.005}-m)/s) + \Phi((m-q_{0.995})/s)`; a point mass (``s = 0``)
    gives 0 or 1. d-D: the probability that :math:`(x-\mu)^\top\Sigma^{-1}(x-\mu)
    > \chi^2_{d,0.99}` under the model (see the module notes for the estimator).
    """
    return _measure("tail_mass", truth, model)


def l2(truth, model) -> np.ndarray:
    r"""Squared :math:`L_2` distance :math:`\int (p_{\text{truth}} - p_{\text{model}})^2\,dx`.

    Closed form for Gaussians and Gaussian mixtures: with
    :math:`\langle a, b\rangle = \sum_{ij} a_i b_j\,\mathcal N(\mu_i;\nu_j, S_i + T_j)`,
    it is :math:`\langle p,p\rangle + \langle q,q\rangle - 2\langle p,q\rangle`
    (the distance Shumailov et al.'s GMM experiment tracks). ``inf`` where either
    has a point-mass component (no density).

    Symmetric, so ``truth`` may be any Gaussian or mixture, also a batch: two batches of
    the same size are compared member by member (e.g. generation 1's fits against
    generation ``t``'s), a single distribution against every member of the other; both
    must be of the same dimension.
    """
    values = []
    for name, value in (("truth", truth), ("model", model)):
        if isinstance(value, Model):
            value = value.measured()
        if not isinstance(value, Gaussian | GaussianMixture):
            raise TypeError(f"{name} must be a Gaussian or GaussianMixture, got "
                            f"{type(value).__name__}")
        values.append(value)
    truth, model = values
    if truth.dim != model.dim:
        raise ValueError(f"truth and model must describe data of the same shape, got "
                         f"{truth.event_shape} and {model.event_shape}")
    if 1 not in (truth.batch_size, model.batch_size) and truth.batch_size != model.batch_size:
        raise ValueError(f"truth and model must be batches of the same size (or one of them "
                         f"a single distribution), got {truth.batch_size} and "
                         f"{model.batch_size}")
    return _mixture.l2(truth, model)


def kl_standard_error(truth, model, reference: np.ndarray | None = None) -> np.ndarray:
    """Monte Carlo standard error of :func:`kl` per model (0 where it is closed form).

    ``reference`` as for :func:`kl`; with a mixture model the standard error is the
    spread of its points' log-ratios, so it must hold at least 2 points.
    """
    model = _pair(truth, model)
    for name, value in (("truth", truth), ("model", model)):
        if not isinstance(value, Gaussian | GaussianMixture):
            raise ValueError(f"kl_standard_error needs Gaussian or GaussianMixture truths and "
                             f"models, got {with_article(type(value).__name__)} {name}")
    if reference is not None:
        reference = _check_sample("reference", reference, truth.dim)
    if isinstance(truth, Gaussian) and isinstance(model, Gaussian):
        return np.zeros(model.batch_size)
    return _mixture.kl_standard_error(_mixture_context(truth, reference, "reference"), model)


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
