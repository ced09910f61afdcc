r"""Estimators that turn one generation's training data into the next model.

A fitter whose family is smaller than the truth's is the *functional
expressivity* error of the mission statement; the closed-form Gaussian fit here
carries only the *statistical* error of a finite sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import sampling
from ._kernels import em as _em
from ._kernels import fused as _fused
from ._validation import check_choice, check_int, check_real
from .models import EstimatorBatch, Gaussian, GaussianMixture, LinearRegression
from .protocol import Fitter, PointModel
from .sampling import Moments

#: Chain-generations per block of the fused exact 1-D path (bounds its working memory).
FUSED_BLOCK_ELEMENTS = 1 << 16


@dataclass(frozen=True)
class GaussianFit(Fitter):
    r"""Closed-form Gaussian fit: sample mean and scaled scatter matrix.

    For training points :math:`x_1, \dots, x_k`,

    .. math::

        \hat\mu = \bar x, \qquad
        \hat\Sigma = \frac{1}{k - \delta} \sum_{i=1}^k (x_i - \bar x)(x_i - \bar x)^\top,

    with :math:`\delta = 0` for ``estimator="mle"`` (maximum likelihood; what
    ``np.std``/``np.var`` with ``ddof=0`` give, as in Shumailov et al.'s notebook)
    and :math:`\delta = 1` for ``estimator="unbiased"`` (Shumailov et al. 2024,
    Theorem 3.1: :math:`E[\hat\sigma^2_t] = \sigma^2_0` for every generation, yet
    :math:`\hat\sigma^2_t \to 0` almost surely).

    Parameters
    ----------
    estimator : {"mle", "unbiased"}
        Divisor :math:`k` or :math:`k - 1` of the scatter matrix.

    Examples
    --------
    >>> import numpy as np, collapse_sim as cs
    >>> x = np.array([[[0.0], [2.0]]])           # one chain, two 1-D points
    >>> float(cs.GaussianFit("unbiased").fit(x).cov[0, 0, 0])
    2.0
    """

    estimator: Literal["mle", "unbiased"] = "mle"

    #: The fit depends on the data only through :class:`~collapse_sim.sampling.Moments`.
    model_type = Gaussian
    truth_types = (PointModel,)
    needs = "statistics"
    statistics_type = Moments

    def __post_init__(self):
        check_choice("estimator", self.estimator, ("mle", "unbiased"))

    @property
    def ddof(self) -> int:
        """Degrees of freedom subtracted from the count: 0 (MLE) or 1 (unbiased)."""
        return 0 if self.estimator == "mle" else 1

    def min_points(self) -> int:
        """Smallest training-set size the estimator is defined for."""
        return 1 + self.ddof

    def as_model(self, truth) -> Gaussian:
        """The truth's moment-matched Gaussian (itself for a Gaussian truth)."""
        return _gaussian_of(truth)

    def fit(self, data) -> Gaussian:
        """Fit every chain's points.

        Parameters
        ----------
        data : array_like
            ``(chains, k, d)`` training points (``(k, d)`` for one chain).

        Returns
        -------
        Gaussian
            A batch of ``chains`` fitted Gaussians.
        """
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"data must have shape (chains, k, d), got {np.shape(data)}")
        if arr.shape[1] < self.min_points():
            raise ValueError(
                f"data must hold at least {self.min_points()} points per chain for "
                f"estimator={self.estimator!r}, got {arr.shape[1]}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError("data must contain only finite values")
        return self.fit_moments(Moments.of(arr))

    def statistics(self, points: np.ndarray, *, truth=None) -> Moments:
        """Moments of the points ``(chains, k, d)`` (two-pass, jitted)."""
        return Moments.of(points)

    def fit_chains(self, points: np.ndarray, *, streams=None, previous=None,
                   truth=None) -> Gaussian:
        """Fit from the points themselves (the engine's path when it keeps points)."""
        return self.fit_moments(Moments.of(points))

    def fit_moments(self, moments: Moments) -> Gaussian:
        """Fit from sufficient statistics (no validation: the engine's fast path)."""
        cov = moments.scatter / (moments.count - self.ddof)
        return Gaussian._from_arrays(moments.mean, cov)

    fit_statistics = fit_moments

    def fused_run(self, truth, plan, n_samples, generations, streams, *, exact):
        """Exact path in 1-D: blocks of generations of every chain in one kernel each.

        Bit-identical to the generation-by-generation exact path (same draws, same
        arithmetic); blocks keep the working memory ``O(chains x block)``.
        """
        if not (exact and isinstance(truth, Gaussian) and truth.dim == 1 and generations > 0):
            return None
        return _fused_exact_1d(self.ddof, truth, plan, n_samples, generations, streams)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "GaussianFit", "estimator": self.estimator}


_COV_TYPES = ("full", "diag", "spherical")
_INITS = ("kmeans++", "random", "previous")


@dataclass(frozen=True)
class GaussianMixtureFit(Fitter):
    r"""Maximum-likelihood Gaussian mixture by EM, all chains in parallel (numba).

    Each EM iteration computes responsibilities
    :math:`r_{ik} \propto w_k\,\mathcal N(x_i;\mu_k,\Sigma_k)` (E-step) and then

    .. math::

        N_k = \textstyle\sum_i r_{ik} + 10\epsilon,\quad w_k = N_k/\sum_j N_j,\quad
        \mu_k = \frac{1}{N_k}\sum_i r_{ik}x_i,\quad
        \Sigma_k = \frac{1}{N_k}\sum_i r_{ik}(x_i-\mu_k)(x_i-\mu_k)^\top + \lambda I

    (M-step; ``diag`` keeps the diagonal of :math:`\Sigma_k`, ``spherical`` its
    mean). It stops after the first iteration whose mean log-likelihood changed
    by less than ``tol``, or after ``max_iter`` iterations. Updates, the
    :math:`10\epsilon` guard, ``reg_covar`` (:math:`\lambda`) and the stopping rule
    are those of :class:`sklearn.mixture.GaussianMixture` with ``n_init=1``; a
    test checks both converge to the same parameters from the same start.

    Parameters
    ----------
    n_components : int
        Number of components :math:`K \ge 1` (at most ``n_samples``).
    covariance_type : {"full", "diag", "spherical"}
    max_iter : int
        At least 1.
    tol : float
        Convergence threshold on the change of the mean log-likelihood, > 0.
    reg_covar : float
        Added to every covariance diagonal, > 0. It floors the fitted variances,
        so recursive fitting collapses towards :math:`\lambda`, not to 0
        (scikit-learn's default is 1e-6).
    init : {"kmeans++", "random", "previous"}
        Starting point of every generation's EM: responsibilities from greedy
        k-means++ centres (as scikit-learn's ``init_params="k-means++"``) or
        random responsibilities, each drawn from the chain's stream; or
        ``"previous"``: the previous generation's fitted mixture (generation 1
        uses k-means++). A warm start keeps each component attached to "its"
        mode, so components rarely swap or merge between generations: collapse
        then shows as the slow shrinking of every component, while a fresh start
        lets EM re-partition the sample each generation, which merges modes and
        kills components faster.

    Notes
    -----
    Empty components. A component whose responsibilities vanish keeps
    :math:`N_k = 10\epsilon`, so its weight becomes about :math:`10\epsilon/n`, its
    covariance :math:`\lambda I` and its mean the (finite) weighted mean of the
    remaining tiny responsibilities — scikit-learn's rule. It then almost never
    generates a point again: the mixture has lost a mode, the discrete form of
    collapse.
    """

    n_components: int = 2
    covariance_type: Literal["full", "diag", "spherical"] = "full"
    max_iter: int = 100
    tol: float = 1e-3
    reg_covar: float = 1e-6
    init: Literal["kmeans++", "random", "previous"] = "kmeans++"

    model_type = GaussianMixture
    truth_types = (PointModel,)

    def __post_init__(self):
        check_int("n_components", self.n_components, minimum=1)
        check_choice("covariance_type", self.covariance_type, _COV_TYPES)
        check_int("max_iter", self.max_iter, minimum=1)
        check_real("tol", self.tol, low=0.0, low_open=True)
        check_real("reg_covar", self.reg_covar, low=0.0, low_open=True)
        check_choice("init", self.init, _INITS)

    def min_points(self) -> int:
        """EM needs at least one point per component."""
        return self.n_components

    def as_model(self, truth) -> GaussianMixture:
        """The truth as a mixture of ``n_components`` (padded with zero-weight copies)."""
        return mixture_of(truth, self.n_components)

    def fit(self, data, *, seed=None, init_model=None) -> GaussianMixture:
        """Fit every chain's points ``(chains, k, d)`` (or ``(k, d)``).

        Parameters
        ----------
        data : array_like
        seed : int, SeedSequence, Generator or None
            Streams for the k-means++ or random initialisation.
        init_model : GaussianMixture, optional
            Starting parameters (batch of ``chains`` or 1), overriding ``init``.

        Returns
        -------
        GaussianMixture
            With ``fit_info``: per-chain ``n_iter``, ``converged``, ``lower_bound``.
        """
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"data must have shape (chains, k, d), got {np.shape(data)}")
        if arr.shape[1] < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} needs at least that many points per "
                f"chain, got {arr.shape[1]}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError("data must contain only finite values")
        streams = sampling.chain_streams(seed, arr.shape[0])
        return self._run(arr, streams, init_model)

    def fit_chains(self, points: np.ndarray, *, streams, previous=None,
                   truth=None) -> GaussianMixture:
        """Engine entry point: EM on validated points (``previous`` used if ``init="previous"``)."""
        return self._run(points, streams, previous if self.init == "previous" else None)

    def _run(self, points, streams, previous) -> GaussianMixture:
        points = np.ascontiguousarray(points)
        chains, _, d = points.shape
        k = self.n_components
        code = _COV_TYPES.index(self.covariance_type)
        if previous is not None:
            start = previous.broadcast(chains)
            weights = np.array(start.weights)
            means = np.array(start.means)
            covs = np.array(start.covs)
        else:
            weights = np.empty((chains, k))
            means = np.empty((chains, k, d))
            covs = np.empty((chains, k, d, d))
            method = 1 if self.init == "random" else 0
            _em.init_from_resp(points, streams.states, method, k, code, self.reg_covar,
                               weights, means, covs)
        n_iter = np.zeros(chains, dtype=np.int64)
        converged = np.zeros(chains, dtype=np.bool_)
        bound = np.empty(chains)
        _em.em_fit(points, code, self.max_iter, self.tol, self.reg_covar, weights, means, covs,
                   n_iter, converged, bound)
        model = GaussianMixture._from_arrays(weights, means, covs)
        model.fit_info = {"n_iter": n_iter, "converged": converged, "lower_bound": bound}
        return model

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "GaussianMixtureFit", "n_components": self.n_components,
                "covariance_type": self.covariance_type, "max_iter": self.max_iter,
                "tol": self.tol, "reg_covar": self.reg_covar, "init": self.init}


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
        density use ``score_samples``.

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

    model_type = EstimatorBatch
    truth_types = (PointModel,)

    def __post_init__(self):
        for method in ("fit", "sample"):
            if not callable(getattr(self.estimator, method, None)):
                raise TypeError(
                    f"estimator must have fit(X) and sample(n) methods; "
                    f"{type(self.estimator).__name__} has no {method}()"
                )

    def min_points(self) -> int:
        """At least ``n_components`` points when the estimator has that parameter."""
        return int(getattr(self.estimator, "n_components", 1))

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
        return EstimatorBatch(estimators, states, points.shape[2])

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "SklearnFitter", "estimator": repr(self.estimator)}


_NOISE = ("keep", "estimate")


def _solve_normal_equations(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    r"""``(chains, d)`` solutions of :math:`(X^\top X + \lambda I)w = X^\top y` per chain.

    With fewer points than features and ``ridge=0`` the system is singular: the
    minimum-norm least-squares solution :math:`X^+ y` is returned instead.
    """
    if ridge == 0.0 and x.shape[1] < x.shape[2]:
        return np.einsum("cdn,cn->cd", np.linalg.pinv(x), y)
    gram = np.einsum("cni,cnj->cij", x, x)
    gram += ridge * np.eye(x.shape[2])
    rhs = np.einsum("cni,cn->ci", x, y)
    try:
        w = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        w = None
    if w is None or not np.all(np.isfinite(w)):
        w = np.einsum("cij,cj->ci", np.linalg.pinv(gram, hermitian=True), rhs)
    return w


def _next_noise(noise: str, x, y, w, previous) -> np.ndarray:
    """Label noise of the fitted models: inherited, or the residual estimate."""
    if noise == "keep":
        return np.array(np.broadcast_to(previous.noise_std, (x.shape[0],)))
    m, d = x.shape[1], x.shape[2]
    resid = y - np.einsum("cnd,cd->cn", x, w)
    rss = np.einsum("cn,cn->c", resid, resid)
    return np.sqrt(rss / (m - d)) if m > d else np.zeros(x.shape[0])


@dataclass(frozen=True)
class OLSFit(Fitter):
    r"""Least-squares (ridge) regression: the closed-form fit of a ``LinearRegression``.

    On a training set :math:`(X, y)` of :math:`m` rows,

    .. math::

        \hat w = (X^\top X + \lambda I)^{-1} X^\top y,

    ordinary least squares for :math:`\lambda = 0` (the setting of Dohmatob, Feng &
    Kempe 2024 and Gerstgrasser et al. 2024, whose closed forms
    :func:`collapse_sim.theory.regression_test_error` gives). With fewer rows than
    features and :math:`\lambda = 0` the minimum-norm solution is used.

    Parameters
    ----------
    ridge : float
        :math:`\lambda \ge 0` (scikit-learn's ``Ridge(alpha=λ, fit_intercept=False)``).
    noise : {"keep", "estimate"}
        Label noise of the fitted model, used when it labels the next generation:
        ``"keep"`` inherits the previous labeller's :math:`\sigma` (the papers'
        setting: the noise level is fixed, only the weights are learned);
        ``"estimate"`` uses :math:`\hat\sigma^2 = \lVert y - X\hat w\rVert^2/(m - d)`
        (unbiased for OLS; 0 when :math:`m \le d`), which itself collapses like the
        variance of a refitted Gaussian.

    Examples
    --------
    >>> import numpy as np, collapse_sim as cs
    >>> truth = cs.LinearRegression(weights=np.zeros(5), noise_std=1.0)
    >>> sim = cs.simulate(truth, cs.OLSFit(), n_samples=20, generations=3, chains=4, seed=0)
    >>> sim.metrics["test_error"].shape
    (4, 4)
    """

    ridge: float = 0.0
    noise: Literal["keep", "estimate"] = "keep"

    model_type = LinearRegression
    truth_types = (LinearRegression,)

    def __post_init__(self):
        check_real("ridge", self.ridge, low=0.0)
        check_choice("noise", self.noise, _NOISE)

    def min_points(self) -> int:
        """One row is enough to define the (minimum-norm) solution."""
        return 1

    def fit_chains(self, points: np.ndarray, *, streams=None, previous=None, truth=None):
        """Engine entry point: ``points`` ``(chains, m, d + 1)``, labelled by ``previous``
        (the truth at generation 1)."""
        previous = truth if previous is None else previous
        d = previous.n_features
        x, y = points[:, :, :d], points[:, :, d]
        w = _solve_normal_equations(x, y, self.ridge)
        return LinearRegression._from_arrays(w, _next_noise(self.noise, x, y, w, previous),
                                             previous)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "OLSFit", "ridge": self.ridge, "noise": self.noise}


def _gaussian_of(truth) -> Gaussian:
    """A point truth's moment-matched Gaussian (row 0 of recorded Gaussian fits)."""
    if isinstance(truth, Gaussian):
        return truth
    return Gaussian._from_arrays(truth.mean, truth.cov)


def mixture_of(truth, k: int) -> GaussianMixture:
    """A Gaussian or mixture truth as a ``k``-component mixture, padded with zero-weight
    copies of its first component (row 0 of recorded mixture fits)."""
    from ._mixture_metrics import components

    w, m, c = components(truth)
    if w.shape[1] > k:
        raise ValueError(
            f"record_models=True stores the truth in row 0 with the fitter's {k} "
            f"components, but the truth has {w.shape[1]}: raise n_components or record "
            "without the truth"
        )
    pad = k - w.shape[1]
    return GaussianMixture._from_arrays(
        np.concatenate([w, np.zeros((1, pad))], axis=1),
        np.concatenate([m, np.repeat(m[:, :1], pad, axis=1)], axis=1),
        np.concatenate([c, np.repeat(c[:, :1], pad, axis=1)], axis=1))


def _fused_exact_1d(ddof, truth, plan, n_samples, generations, streams):
    """Blocks ``(start, size, models)`` of the fused exact 1-D run (``GaussianFit.fused_run``)."""
    chains = streams.chains
    block = max(1, min(generations, FUSED_BLOCK_ELEMENTS // chains))
    carry = np.zeros((chains, 8))
    for start in range(1, generations + 1, block):
        size = min(block, generations + 1 - start)
        m_blk, v_blk = np.empty((chains, size)), np.empty((chains, size))
        _fused.exact_run_1d(streams.states, n_samples, ddof, plan.real, plan.fresh,
                            plan.synthetic, plan.pool == "all", float(truth.mean[0, 0]),
                            float(truth.cov[0, 0, 0]), start, carry, m_blk, v_blk)
        means = np.ascontiguousarray(m_blk.T)  # (size, chains)
        variances = np.ascontiguousarray(v_blk.T)
        yield start, size, Gaussian._from_arrays(means.reshape(-1, 1),
                                                 variances.reshape(-1, 1, 1))
