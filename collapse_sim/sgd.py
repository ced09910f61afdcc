r"""Function-approximation error: fitters that minimise the likelihood by noisy SGD.

The closed-form fit of :class:`~collapse_sim.GaussianFit` has only statistical
error. A model trained by a finite number of stochastic gradient steps also
carries the error of the procedure: a small learning rate or few epochs leave it
short of the maximum-likelihood estimate (bias), minibatch noise and added
gradient noise scatter it around (extra variance). Recursive training compounds
both with the statistical error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from ._kernels import em as _em
from ._kernels import sgd as _sgd
from ._validation import check_choice, check_int, check_real
from .fitting import _gaussian_of, _next_noise, mixture_of
from .models import Gaussian, GaussianMixture, LinearRegression
from .protocol import Fitter, PointModel

_SCHEDULES = ("constant", "inverse_time")


def _check_options(fit, inits: tuple[str, ...]) -> None:
    """The options every SGD fitter shares, checked on construction."""
    check_real("learning_rate", fit.learning_rate, low=0.0, low_open=True)
    check_int("batch_size", fit.batch_size, minimum=1)
    check_int("epochs", fit.epochs, minimum=1)
    check_choice("init", fit.init, inits)
    check_real("momentum", fit.momentum, low=0.0, high=1.0, high_open=True)
    check_choice("lr_schedule", fit.lr_schedule, _SCHEDULES)
    check_real("gradient_noise", fit.gradient_noise, low=0.0)


@dataclass(frozen=True)
class SGDGaussianFit(Fitter):
    r"""Gaussian fitted by minibatch SGD on the negative log-likelihood (numba, all chains).

    The parameters are the mean :math:`\mu` and a Cholesky factor :math:`L` of the
    covariance with log-parametrised diagonal (:math:`\Sigma = LL^\top`,
    :math:`L_{ii} = e^{\ell_i}`, so it stays positive definite); the loss per point is

    .. math::

        \tfrac12\lVert L^{-1}(x - \mu)\rVert^2 + \textstyle\sum_i \ell_i
        \;(+\tfrac d2\log 2\pi),

    whose minimiser over a sample is its maximum-likelihood Gaussian. Every chain
    shuffles its points with its own stream each epoch and takes
    :math:`\lceil n / \text{batch\_size}\rceil` steps per epoch.

    Parameters
    ----------
    learning_rate : float
        Step size :math:`\eta > 0`.
    batch_size : int
        Points per step, ``1 <= batch_size <= n_samples``.
    epochs : int
        Passes over the training set, >= 1.
    init : {"previous", "fixed"}
        Start each generation from the previous generation's model (generation 1:
        :math:`\mathcal N(0, I)`), or always from :math:`\mathcal N(0, I)`.
    momentum : float
        Heavy-ball coefficient in [0, 1).
    lr_schedule : {"constant", "inverse_time"}
        :math:`\eta_t = \eta` or :math:`\eta / (1 + t/\text{steps per epoch})`.
    gradient_noise : float
        Standard deviation of Gaussian noise added to every gradient coordinate, >= 0.

    Notes
    -----
    Divergence. With too large a rate the parameters overflow; the engine then
    raises ``FloatingPointError`` naming the generation and the chain, never
    returning NaN in the results.
    """

    learning_rate: float = 0.05
    batch_size: int = 32
    epochs: int = 5
    init: Literal["previous", "fixed"] = "previous"
    momentum: float = 0.0
    lr_schedule: Literal["constant", "inverse_time"] = "constant"
    gradient_noise: float = 0.0

    model_type = Gaussian
    truth_types = (PointModel,)

    def __post_init__(self):
        _check_options(self, ("previous", "fixed"))

    def min_points(self) -> int:
        """A minibatch must fit in the training set."""
        return self.batch_size

    def as_model(self, truth) -> Gaussian:
        """The truth's moment-matched Gaussian (itself for a Gaussian truth)."""
        return _gaussian_of(truth)

    def fit_chains(self, points: np.ndarray, *, streams, previous=None, truth=None) -> Gaussian:
        """Run SGD for every chain; start from ``previous`` when ``init="previous"``."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        chains, n, d = points.shape
        if self.batch_size > n:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {n} training points")
        if self.init == "previous" and isinstance(previous, Gaussian):
            start = previous.broadcast(chains)
            mean = np.array(start.mean)
            if d == 1:  # log sd = log(var) / 2, no factorisation needed
                logdiag = 0.5 * np.log(np.maximum(start.cov[:, :, 0], 1e-300))
                lower = np.zeros((chains, 1, 1))
            else:
                chol = start.cholesky()
                diag = np.diagonal(chol, axis1=1, axis2=2)
                logdiag = np.log(np.maximum(diag, 1e-300))
                lower = np.array(np.tril(chol, -1))
        else:
            mean = np.zeros((chains, d))
            logdiag = np.zeros((chains, d))
            lower = np.zeros((chains, d, d))
        logdiag = np.ascontiguousarray(logdiag)
        _sgd.sgd_gaussian(points, streams.states, mean, logdiag, lower, self.learning_rate,
                          self.batch_size, self.epochs, self.momentum,
                          _SCHEDULES.index(self.lr_schedule), self.gradient_noise)
        with np.errstate(over="ignore", invalid="ignore"):
            if d == 1:
                cov = np.exp(2.0 * logdiag)[:, :, None]
            else:
                chol = lower + np.exp(logdiag)[:, :, None] * np.eye(d)
                cov = chol @ np.swapaxes(chol, 1, 2)
        return Gaussian._from_arrays(mean, cov)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class SGDRegressionFit(Fitter):
    r"""Linear regression fitted by minibatch SGD on the squared loss (numba, all chains).

    Minimises :math:`\tfrac1m\sum_i \tfrac12(y_i - x_i^\top w)^2` with the same
    minibatch loop as :class:`SGDGaussianFit` (per-chain shuffles, momentum,
    schedule, gradient noise). Many epochs at a small rate converge to the OLS
    solution of :class:`~collapse_sim.OLSFit`; fewer epochs or larger rates add the
    procedure's own error to the statistical error that
    :func:`collapse_sim.theory.regression_test_error` describes.

    Parameters
    ----------
    learning_rate : float
        Step size :math:`\eta > 0`. For stability of plain gradient descent it must
        stay below :math:`2/\lambda_{\max}(\Sigma_x)` (roughly; minibatches need less).
    batch_size : int
        Rows per step, ``1 <= batch_size <= n_samples``.
    epochs : int
        Passes over the training set, >= 1.
    init : {"previous", "fixed"}
        Start from the previous generation's weights (generation 1: zero), or always
        from zero.
    momentum : float
        Heavy-ball coefficient in [0, 1).
    lr_schedule : {"constant", "inverse_time"}
        :math:`\eta_t = \eta` or :math:`\eta / (1 + t/\text{steps per epoch})`.
    gradient_noise : float
        Standard deviation of Gaussian noise added to every gradient coordinate, >= 0.
    noise : {"keep", "estimate"}
        Label noise of the fitted model, as in :class:`~collapse_sim.OLSFit`.

    Notes
    -----
    Divergence: when the weights overflow the engine raises ``FloatingPointError``
    naming the generation and the chain; results never hold NaN.

    Examples
    --------
    >>> import numpy as np, collapse_sim as cs
    >>> truth = cs.LinearRegression(weights=np.ones(3), noise_std=0.5)
    >>> fit = cs.SGDRegressionFit(learning_rate=0.05, batch_size=8, epochs=20)
    >>> sim = cs.simulate(truth, fit, n_samples=40, generations=2, chains=3, seed=0)
    >>> sim.metrics["test_error"].shape
    (3, 3)
    """

    learning_rate: float = 0.05
    batch_size: int = 32
    epochs: int = 5
    init: Literal["previous", "fixed"] = "previous"
    momentum: float = 0.0
    lr_schedule: Literal["constant", "inverse_time"] = "constant"
    gradient_noise: float = 0.0
    noise: Literal["keep", "estimate"] = "keep"

    model_type = LinearRegression
    truth_types = (LinearRegression,)

    def __post_init__(self):
        _check_options(self, ("previous", "fixed"))
        check_choice("noise", self.noise, ("keep", "estimate"))

    def min_points(self) -> int:
        """A minibatch must fit in the training set."""
        return self.batch_size

    def fit_chains(self, points: np.ndarray, *, streams, previous=None,
                   truth=None) -> LinearRegression:
        """Run SGD for every chain; ``previous`` (the truth at generation 1) labelled
        ``points`` ``(chains, m, d + 1)``."""
        previous = truth if previous is None else previous
        points = np.ascontiguousarray(points, dtype=np.float64)
        chains, m, dp1 = points.shape
        if self.batch_size > m:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {m} training points")
        if self.init == "previous" and previous._fitted:
            w = np.array(np.broadcast_to(previous.weights, (chains, dp1 - 1)))
        else:
            w = np.zeros((chains, dp1 - 1))
        _sgd.sgd_regression(points, streams.states, w, self.learning_rate, self.batch_size,
                            self.epochs, self.momentum, _SCHEDULES.index(self.lr_schedule),
                            self.gradient_noise)
        x, y = points[:, :, :-1], points[:, :, -1]
        with np.errstate(over="ignore", invalid="ignore"):
            noise = _next_noise(self.noise, x, y, w, previous)
        return LinearRegression._from_arrays(w, noise, previous)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": type(self).__name__, **asdict(self)}


def _kmeans_start(points: np.ndarray, k: int, streams):
    """k-means++ centres (the chain's stream), then one hard-assignment step.

    Weights are the cluster fractions, variances the per-dimension within-cluster
    variances; a cluster with fewer than two points gets its chain's overall
    variance (and weight at least one point), so every start is finite.
    """
    chains, n, d = points.shape
    weights = np.empty((chains, k))
    means = np.empty((chains, k, d))
    spare = np.empty((chains, k, d, d))
    # one-hot responsibilities on the centres: the M-step returns the centres as means
    _em.init_from_resp(points, streams.states, 0, k, 1, 0.0, weights, means, spare)
    dist = ((points[:, :, None, :] - means[:, None, :, :]) ** 2).sum(axis=3)  # (C, n, k)
    onehot = np.zeros((chains, n, k))
    np.put_along_axis(onehot, dist.argmin(axis=2)[:, :, None], 1.0, axis=2)
    counts = onehot.sum(axis=1)  # (C, k)
    overall = points.var(axis=1)  # (C, d)
    safe = np.maximum(counts, 1.0)[:, :, None]
    means = np.where(counts[:, :, None] > 0,
                     np.einsum("cnk,cnd->ckd", onehot, points) / safe, means)
    sq = np.einsum("cnk,cnd->ckd", onehot, points**2) / safe - means**2
    var = np.where(counts[:, :, None] >= 2, np.maximum(sq, 0.0), overall[:, None, :])
    var = np.where(var > 0, var, np.maximum(overall[:, None, :], 1e-12))
    weights = np.maximum(counts, 1.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights, means, var


@dataclass(frozen=True)
class SGDMixtureFit(Fitter):
    r"""Diagonal Gaussian mixture fitted by minibatch SGD on the negative log-likelihood.

    .. math::

        p(x) = \sum_{k=1}^K \pi_k \prod_{a=1}^d \mathcal N(x_a;\,\mu_{ka}, s_{ka}^2),
        \qquad \pi = \operatorname{softmax}(\alpha), \quad s_{ka} = e^{\ell_{ka}},

    with :math:`(\alpha, \mu, \ell)` updated by the minibatch loop of
    :class:`SGDGaussianFit` (numba, all chains in parallel, per-chain shuffles).
    With fewer components than the truth this stacks approximation error on top of
    expressivity error; compare with the EM fit of
    :class:`~collapse_sim.GaussianMixtureFit` (``covariance_type="diag"``), which
    reaches a local maximum of the same likelihood.

    Parameters
    ----------
    n_components : int
        :math:`K \ge 1`.
    learning_rate : float
        Step size :math:`\eta > 0`.
    batch_size : int
        Points per step, ``1 <= batch_size <= n_samples``.
    epochs : int
        Passes over the training set, >= 1.
    init : {"previous", "kmeans++"}
        ``"previous"``: start from the previous generation's mixture when it has
        :math:`K` components (generation 1 from a mixture truth with :math:`K`
        components starts from the truth's diagonal; otherwise k-means++ as below).
        ``"kmeans++"``: every generation starts from k-means++ centres on its own
        data (the chain's stream), equal weights and the hard-assignment variances.
    momentum : float
        Heavy-ball coefficient in [0, 1).
    lr_schedule : {"constant", "inverse_time"}
        :math:`\eta_t = \eta` or :math:`\eta / (1 + t/\text{steps per epoch})`.
    gradient_noise : float
        Standard deviation of Gaussian noise added to every gradient coordinate, >= 0.

    Notes
    -----
    A component whose scale shrinks onto one point makes the mean gradient
    :math:`r z / s` large; with too large a rate the parameters overflow and the
    engine raises ``FloatingPointError`` naming the generation and chain (never NaN
    in results). An empty component (all :math:`r_k = 0`) keeps its mean and scale
    and its weight decays, so it never produces NaN.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> mix = cs.GaussianMixture(weights=[.5, .5], means=[[-2.], [2.]], covs=[[[1.]], [[1.]]])
    >>> fit = cs.SGDMixtureFit(n_components=2, learning_rate=0.05, batch_size=16, epochs=5)
    >>> sim = cs.simulate(mix, fit, n_samples=64, generations=2, chains=3, seed=0,
    ...                   metrics=("variance", "w2"))
    >>> sim.metrics["w2"].shape
    (3, 3)
    """

    n_components: int = 2
    learning_rate: float = 0.05
    batch_size: int = 32
    epochs: int = 5
    init: Literal["previous", "kmeans++"] = "previous"
    momentum: float = 0.0
    lr_schedule: Literal["constant", "inverse_time"] = "constant"
    gradient_noise: float = 0.0

    model_type = GaussianMixture
    truth_types = (PointModel,)

    def __post_init__(self):
        check_int("n_components", self.n_components, minimum=1)
        _check_options(self, ("previous", "kmeans++"))

    def min_points(self) -> int:
        """A minibatch, and k-means++ with ``n_components`` centres, must fit."""
        return max(self.batch_size, self.n_components)

    def as_model(self, truth) -> GaussianMixture:
        """The truth as a mixture of ``n_components`` (padded with zero-weight copies)."""
        return mixture_of(truth, self.n_components)

    def fit_chains(self, points: np.ndarray, *, streams, previous=None,
                   truth=None) -> GaussianMixture:
        """Run SGD for every chain from ``previous`` or a k-means++ start."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        chains, n, d = points.shape
        k = self.n_components
        if self.batch_size > n:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {n} training points")
        if (self.init == "previous" and isinstance(previous, GaussianMixture)
                and previous.n_components == k):
            start = previous.broadcast(chains)
            weights = np.array(start.weights)
            means = np.array(start.means)
            var = np.array(np.diagonal(start.covs, axis1=2, axis2=3))
        else:
            weights, means, var = _kmeans_start(points, k, streams)
        with np.errstate(divide="ignore"):
            logits = np.log(np.maximum(weights, 1e-300))
            logscale = 0.5 * np.log(np.maximum(var, 1e-300))
        logits = np.ascontiguousarray(logits)
        means = np.ascontiguousarray(means)
        logscale = np.ascontiguousarray(logscale)
        _sgd.sgd_mixture(points, streams.states, logits, means, logscale, self.learning_rate,
                         self.batch_size, self.epochs, self.momentum,
                         _SCHEDULES.index(self.lr_schedule), self.gradient_noise)
        with np.errstate(over="ignore", invalid="ignore"):
            w = np.exp(logits - logits.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            covs = np.exp(2.0 * logscale)[:, :, :, None] * np.eye(d)
        return GaussianMixture._from_arrays(w, means, covs)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": type(self).__name__, **asdict(self)}
