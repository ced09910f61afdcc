r"""Any scikit-learn density estimator as a family: one estimator per chain (the slow path).

:class:`SklearnFitter` clones, seeds and fits one estimator per chain;
:class:`EstimatorBatch` is the batch of fitted estimators. Estimators that are
Gaussian mixtures are measured exactly as mixtures (:meth:`EstimatorBatch.measured`);
the others through ``score_samples`` on the held-out points and through
:data:`ESTIMATOR_SAMPLE` points drawn from each estimator:

- ``kl`` and ``nll``: the exact definitions, Monte Carlo over the held-out reference
  sample;
- ``variance``, ``mean_shift``: sample moments of the estimator's own points;
- ``tail_mass``: the fraction of its points outside the truth's 99% region;
- ``w2``: the Wasserstein-2 distance of the empirical quantile function to the truth's
  (sliced in d-D), biased upwards by the sampling noise, by about
  :math:`\sigma/\sqrt{2000}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..protocol import Competence, Fitter, PointModel
from ..registry import register_metric
from .gaussian import Gaussian, gaussian_outside
from .mixture import (
    GaussianMixture,
    MixtureContext,
    _mixture_context,
    mixture_competence,
    mixture_of,
)
from .mixture import sample_tail_mass as _sample_tail_mass
from .mixture import sample_w2 as _sample_w2

#: Points drawn from each chain's estimator to measure a scikit-learn model that is not a
#: Gaussian mixture (``SklearnFitter`` with e.g. ``KernelDensity``).
ESTIMATOR_SAMPLE = 2000


class EstimatorBatch(PointModel):
    """Fitted scikit-learn estimators, one per chain (the model type of ``SklearnFitter``).

    Sampling calls each estimator's own ``sample`` with the ``RandomState`` the
    fitter gave it (never an int: scikit-learn rebuilds a generator from an int on
    every call, which would repeat the same draws each generation). Estimators
    that are Gaussian mixtures (``GaussianMixture``, ``BayesianGaussianMixture``)
    are converted by :meth:`as_mixture` so every metric is exact; others are
    measured through ``score_samples`` and their own samples (see
    :mod:`collapse_sim.metrics`).
    """

    def __init__(self, estimators: list, states: list, dim: int):
        self.estimators = estimators
        self.states = states
        self._dim = dim

    @property
    def dim(self) -> int:
        """Dimension of the sample space."""
        return self._dim

    @property
    def batch_size(self) -> int:
        """Number of chains."""
        return len(self.estimators)

    def sample_points(self, n: int) -> np.ndarray:
        """``(chains, n, d)`` points, each from its chain's estimator and ``RandomState``."""
        import inspect

        out = np.empty((self.batch_size, n, self.dim))
        for c, (est, rs) in enumerate(zip(self.estimators, self.states, strict=True)):
            if "random_state" in inspect.signature(est.sample).parameters:
                draw = est.sample(n, random_state=rs)
            else:
                draw = est.sample(n)
            draw = draw[0] if isinstance(draw, tuple) else draw
            out[c] = np.asarray(draw, dtype=np.float64).reshape(n, self.dim)
        return out

    # -- family protocol ---------------------------------------------------------------------
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = GaussianMixture.record_dims

    def draw(self, k: int, streams=None) -> np.ndarray:
        """``(chains, k, d)`` points from the estimators' own samplers (``streams`` unused)."""
        return self.sample_points(k)

    def finite(self) -> np.ndarray:
        """All ``True``: a fitted estimator is checked by scikit-learn itself."""
        return np.ones(self.batch_size, dtype=bool)

    def measured(self) -> PointModel:
        """The batch as a :class:`GaussianMixture` when every estimator is one.

        Otherwise the batch itself, after drawing the :data:`ESTIMATOR_SAMPLE` points
        per chain its sample-based metrics share (once per generation, whichever
        metrics are asked for, so the estimators' random states advance the same way).
        """
        mixture = self.as_mixture()
        if mixture is not None:
            return mixture
        self.metric_sample = self.sample_points(ESTIMATOR_SAMPLE)
        return self

    def record(self) -> dict[str, np.ndarray]:
        """The mixture parameters (estimators that are Gaussian mixtures only)."""
        mixture = self.as_mixture()
        if mixture is None:
            raise ValueError("record_models=True needs a Gaussian or Gaussian mixture fitter")
        return mixture.record()

    def score_samples(self, pts: np.ndarray) -> np.ndarray:
        """``(chains, m)`` log-densities of the shared points ``pts`` ``(m, d)``."""
        return np.stack([est.score_samples(pts) for est in self.estimators])

    def as_mixture(self) -> GaussianMixture | None:
        """The batch as a :class:`GaussianMixture` when every estimator is one, else ``None``."""
        parts = []
        for est in self.estimators:
            if not all(hasattr(est, a) for a in ("weights_", "means_", "covariances_")):
                return None
            k, d = est.means_.shape
            cov = np.asarray(est.covariances_)
            kind = getattr(est, "covariance_type", "full")
            if kind == "diag":
                cov = np.stack([np.diag(v) for v in cov])
            elif kind == "spherical":
                cov = cov[:, None, None] * np.eye(d)
            elif kind == "tied":
                cov = np.broadcast_to(cov, (k, d, d))
            parts.append((est.weights_, est.means_, cov))
        w, m, c = (np.stack(p) for p in zip(*parts, strict=True))
        return GaussianMixture._from_arrays(w / w.sum(axis=1, keepdims=True), m, c)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "EstimatorBatch", "estimator": repr(self.estimators[0])}


class DensityEstimatorBatch(EstimatorBatch):
    """Fitted estimators that have ``score_samples`` (a log-density): the metrics that need
    one (``kl``, ``nll``) are defined for them. An estimator with only ``fit`` and
    ``sample`` gets an :class:`EstimatorBatch`, for which ``simulate`` computes the
    sample-based metrics by default and refuses the density ones before sampling."""


class MixtureEstimatorBatch(DensityEstimatorBatch):
    """Fitted estimators of a mixture estimator (one with ``n_components``).

    The model type of a ``SklearnFitter`` whose estimator declares ``n_components``
    (``GaussianMixture``, ``BayesianGaussianMixture`` …): the metrics that need a
    Gaussian mixture (``l2``) are defined for it, and not for other estimators, so
    ``simulate`` refuses them before any sampling.
    """


class _ModelType:
    """``SklearnFitter.model_type``: :class:`MixtureEstimatorBatch` for an instance whose
    estimator has ``n_components``, :class:`DensityEstimatorBatch` for one with
    ``score_samples``, else (and on the class) :class:`EstimatorBatch`."""

    def __get__(self, fitter, owner=None) -> type:
        if fitter is not None and hasattr(fitter.estimator, "n_components"):
            return MixtureEstimatorBatch
        if fitter is not None and callable(getattr(fitter.estimator, "score_samples", None)):
            return DensityEstimatorBatch
        return EstimatorBatch


#: ``KernelDensity`` kernels whose ``sample`` scikit-learn implements.
_KDE_SAMPLE_KERNELS = ("gaussian", "tophat")
#: ``KernelDensity`` metrics under which ``score_samples`` is the density ``sample`` draws from
#: (scikit-learn draws Euclidean kernels and normalises correctly only for Euclidean).
_KDE_EUCLIDEAN = ("euclidean", "l2")


def _check_kernel_density(estimator) -> None:
    """Refuse a scikit-learn ``KernelDensity`` that cannot sample, or whose density is not
    the one it samples from, at construction (scikit-learn itself notices only at the first
    ``sample`` or never)."""
    import sys

    neighbors = sys.modules.get("sklearn.neighbors")  # imported if estimator is a KDE
    kde = getattr(neighbors, "KernelDensity", None)
    if kde is None or not isinstance(estimator, kde) or type(estimator).sample is not kde.sample:
        return
    kernel = estimator.get_params().get("kernel")
    if kernel not in _KDE_SAMPLE_KERNELS:
        raise ValueError(
            f"estimator=KernelDensity(kernel={kernel!r}) cannot draw samples: scikit-learn's "
            f"KernelDensity.sample supports kernel in {_KDE_SAMPLE_KERNELS} only"
        )
    params = estimator.get_params()
    metric, extra = params.get("metric"), params.get("metric_params") or {}
    euclidean = metric in _KDE_EUCLIDEAN or (
        metric == "minkowski" and extra.get("p", 2) == 2 and set(extra) <= {"p"})
    if not euclidean:
        given = f"metric={metric!r}" + (f", metric_params={extra!r}" if extra else "")
        raise ValueError(
            f"estimator=KernelDensity({given}) samples Euclidean kernels but scores "
            "with another metric, whose density scikit-learn does not normalise: use "
            f"metric in {_KDE_EUCLIDEAN}"
        )


@dataclass(frozen=True, eq=False)
class SklearnFitter(Fitter):
    """Any scikit-learn density estimator with ``fit(X)`` and ``sample(n)`` as a fitter.

    Every chain gets its own ``sklearn.base.clone`` of ``estimator``, fitted to its
    training points, with ``random_state`` set to a ``numpy.random.RandomState``
    seeded from the chain's stream (so runs are reproducible and chains
    independent). This is the slow path — one Python-level fit per chain and
    generation — meant for trying one's own model (``GaussianMixture``,
    ``BayesianGaussianMixture``, ``KernelDensity`` …) in the same engine.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Unfitted, with ``fit(X)`` and ``sample(n_samples)``. Metrics that need a
        density (``kl``, ``nll``) use ``score_samples``; for an estimator without it the
        default metrics are the sample-based ones (``variance``, ``mean_shift``, ``w2``,
        ``tail_mass``) and asking for ``kl`` or ``nll`` is refused before sampling. The
        ``l2`` metric needs a Gaussian mixture estimator (one with ``n_components``); for
        any other, ``simulate`` refuses it before sampling.

    Raises
    ------
    TypeError
        ``estimator`` lacks ``fit`` or ``sample``.
    ValueError
        A ``KernelDensity`` whose ``sample`` is not implemented (``kernel`` other than
        ``"gaussian"``, ``"tophat"``) or whose ``metric`` is not Euclidean (its
        ``score_samples`` is then not the density it samples from).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> from sklearn.neighbors import KernelDensity
    >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0),
    ...                   cs.SklearnFitter(KernelDensity(bandwidth=0.2)),
    ...                   n_samples=50, generations=3, chains=2, seed=0,
    ...                   metrics=("variance", "nll"))
    >>> sim.metrics["variance"].shape
    (4, 2)
    """

    estimator: object

    model_type = _ModelType()
    truth_types = (PointModel,)

    def __post_init__(self):
        if isinstance(self.estimator, type):
            raise TypeError(f"estimator must be an estimator instance, got the class "
                            f"{self.estimator.__name__}: write {self.estimator.__name__}(...)")
        for method in ("fit", "sample"):
            if not callable(getattr(self.estimator, method, None)):
                raise TypeError(
                    f"estimator must have fit(X) and sample(n) methods; "
                    f"{type(self.estimator).__name__} has no {method}()"
                )
        _check_kernel_density(self.estimator)

    def min_points(self) -> int:
        """At least ``n_components`` points when the estimator has that parameter."""
        return int(getattr(self.estimator, "n_components", 1))

    def competence(self, truth) -> Competence:
        """For a mixture estimator (one with ``n_components``) as for a mixture fit
        (:func:`~collapse_sim.families.mixture.mixture_competence`); otherwise
        ``APPROXIMATE`` for every point truth (an estimator's family is not known)."""
        k = getattr(self.estimator, "n_components", None)
        if isinstance(k, (int, np.integer)):
            return mixture_competence(truth, k)
        return super().competence(truth)

    def as_model(self, truth) -> GaussianMixture:
        """The truth as a mixture of the estimator's ``n_components`` (mixture estimators only)."""
        k = getattr(self.estimator, "n_components", None)
        if k is None:
            raise ValueError("record_models=True needs a Gaussian or Gaussian mixture fitter")
        return mixture_of(truth, k)

    def fit_chains(self, points: np.ndarray, *, streams, previous=None, truth=None):
        """Clone, seed and fit one estimator per chain."""
        from sklearn.base import clone

        seeds = (streams.uniform(1)[:, 0] * 2**32).astype(np.uint64)
        estimators, states = [], []
        for c in range(points.shape[0]):
            rs = np.random.RandomState(int(seeds[c]))
            est = clone(self.estimator)
            if "random_state" in est.get_params():
                est.set_params(random_state=rs)
            est.fit(points[c])
            estimators.append(est)
            states.append(rs)
        return self.model_type(estimators, states, points.shape[2])

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "SklearnFitter", "estimator": repr(self.estimator)}


# -- metrics of estimators that are not Gaussian mixtures ---------------------------------

_POINT_TRUTHS = (Gaussian, GaussianMixture)


def _log_q(model: EstimatorBatch, truth, ctx) -> tuple[MixtureContext, np.ndarray]:
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
    # only reached when an estimator with n_components turned out not to be a mixture
    raise ValueError("metric 'l2' needs a Gaussian mixture model; this estimator has none")

register_metric("variance", _POINT_TRUTHS, EstimatorBatch, _estimator_variance)
register_metric("mean_shift", _POINT_TRUTHS, EstimatorBatch, lambda t, m, ctx: np.linalg.norm(
    m.metric_sample.mean(axis=1) - t.mean[0], axis=1))
register_metric("w2", _POINT_TRUTHS, EstimatorBatch, lambda t, m, ctx: _sample_w2(
    _mixture_context(t, ctx.heldout), m.metric_sample))
register_metric("kl", _POINT_TRUTHS, DensityEstimatorBatch, _estimator_kl, heldout=True)
register_metric("nll", _POINT_TRUTHS, DensityEstimatorBatch,
                lambda t, m, ctx: -_log_q(m, t, ctx)[1], heldout=True)
register_metric("tail_mass", _POINT_TRUTHS, EstimatorBatch, lambda t, m, ctx: _sample_tail_mass(
    _mixture_context(t, ctx.heldout), m.metric_sample, gaussian_outside))
# Only for mixture estimators: simulate() then refuses l2 for the others before sampling.
register_metric("l2", _POINT_TRUTHS, MixtureEstimatorBatch, _estimator_l2, default=False)
