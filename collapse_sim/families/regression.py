r"""The linear-regression family: labelled data, least-squares and SGD fits, test error.

A data point is the row :math:`(x_1, \dots, x_d, y)`, so every policy applies
unchanged; a fixed design is bound to each chain's real features by
:meth:`LinearRegression.start_run`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import numpy as np

from .. import sampling
from .._kernels import sgd as _sgd
from .._random import SeedLike
from .._validation import MAX_INT, as_float_array, check_choice, check_int, check_real
from ..protocol import Fitter, Model
from ..registry import register_metric
from ._sgd import _SCHEDULES, _check_options
from .gaussian import _check_psd

_DESIGNS = ("fresh", "fixed")


class LinearRegression(Model):
    r"""A (batch of) linear-Gaussian regression model(s): features and a noisy label.

    .. math::

        x \sim \mathcal N(0, \Sigma_x), \qquad
        y \mid x \sim \mathcal N(x^\top w, \sigma^2).

    As a truth it generates the data; fitted by :class:`~collapse_sim.OLSFit` or
    :class:`~collapse_sim.SGDRegressionFit` it is the next generation's labeller.
    A data point is the row :math:`(x_1, \dots, x_d, y)`, so training sets have the
    library's point shape ``(chains, n, d + 1)`` and every policy applies unchanged.

    Parameters
    ----------
    weights : array_like
        :math:`w`: ``(d,)``, or ``(B, d)`` for a batch of ``B`` chains.
    noise_std : float or array_like
        Label noise :math:`\sigma \ge 0`: scalar or ``(B,)``.
    design_cov : array_like, optional
        Feature covariance :math:`\Sigma_x`, ``(d, d)`` symmetric positive definite,
        shared by the batch (default: identity).
    design : {"fresh", "fixed"}
        ``"fresh"``: every generation draws new features (Dohmatob, Feng & Kempe,
        2024). ``"fixed"``: each chain draws its features once, with the real data,
        and every later generation relabels those same features with fresh noise
        (Gerstgrasser et al., 2024). Fitted models inherit the setting.

    Notes
    -----
    The test error of a fitted :math:`\hat w` (metric ``"test_error"``) is its excess
    risk on a fresh point of the truth,
    :math:`\mathbb E_x[(x^\top\hat w - x^\top w)^2] = (\hat w - w)^\top\Sigma_x(\hat w - w)`.

    Examples
    --------
    >>> import numpy as np
    >>> import collapse_sim as cs
    >>> truth = cs.LinearRegression(weights=np.zeros(3), noise_std=1.0)
    >>> truth.n_features, truth.dim
    (3, 4)
    >>> x, y = truth.sample(5, seed=0)
    >>> x.shape, y.shape
    ((5, 3), (5,))
    """

    def __init__(self, weights, noise_std=1.0, design_cov=None, *, design: str = "fresh"):
        w = as_float_array("weights", weights)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] < 1:
            raise ValueError(f"weights must have shape (d,) or (B, d), got {w.shape}")
        batch, d = w.shape
        sd = as_float_array("noise_std", noise_std)
        if sd.ndim > 1 or (sd.ndim == 1 and sd.shape[0] not in (1, batch)):
            raise ValueError(f"noise_std must be a scalar or have shape ({batch},), got {sd.shape}")
        if np.any(sd < 0):
            raise ValueError(f"noise_std must be >= 0, got minimum {sd.min():g}")
        if design_cov is None:
            cov = np.eye(d)
        else:
            cov = as_float_array("design_cov", design_cov)
            if cov.shape != (d, d):
                raise ValueError(f"design_cov must have shape ({d}, {d}) to match weights, "
                                 f"got {cov.shape}")
            _check_psd("design_cov", cov[None])
            if np.linalg.eigvalsh(cov).min() <= 1e-12 * max(np.abs(cov).max(), 1e-300):
                raise ValueError("design_cov must be positive definite")
            cov = 0.5 * (cov + cov.T)
        check_choice("design", design, _DESIGNS)
        self.weights = w
        self.noise_std = np.array(np.broadcast_to(sd, (batch,)))
        self.design_cov = cov
        self.design = design
        for arr in (self.weights, self.noise_std, self.design_cov):
            arr.flags.writeable = False
        self._design_chol = np.linalg.cholesky(cov)
        self._fitted = False
        self._design_points = None

    @classmethod
    def _from_arrays(cls, weights, noise_std, like: LinearRegression,
                     fitted: bool = True) -> LinearRegression:
        """Trusted constructor for fitted batches: design setting taken from ``like``."""
        obj = cls.__new__(cls)
        obj._fitted = fitted
        obj.weights = weights
        obj.noise_std = noise_std
        obj.design_cov = like.design_cov
        obj.design = like.design
        obj._design_chol = like._design_chol
        obj._design_points = like._design_points  # a fixed design stays bound to its chains
        return obj

    @property
    def n_features(self) -> int:
        """Number ``d`` of features."""
        return self.weights.shape[1]

    @property
    def dim(self) -> int:
        """Dimension ``d + 1`` of a data point (features, then the label)."""
        return self.weights.shape[1] + 1

    @property
    def batch_size(self) -> int:
        """Number ``B`` of models in the batch (1 for a truth)."""
        return self.weights.shape[0]

    def broadcast(self, chains: int) -> LinearRegression:
        """This single model repeated ``chains`` times (views, no copies)."""
        if self.batch_size == chains:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")
        return LinearRegression._from_arrays(
            np.broadcast_to(self.weights, (chains, self.n_features)),
            np.broadcast_to(self.noise_std, (chains,)), self, self._fitted)

    # -- family protocol ---------------------------------------------------------------------
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {"weights": ("feature",), "noise_std": ()}

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``(d + 1,)``: the features, then the label."""
        return (self.dim,)

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d + 1)`` labelled points; a bound fixed design is relabelled."""
        return sampling.regression_points(self, k, streams, self._design_points)

    def start_run(self, chains: int, real: np.ndarray) -> LinearRegression:
        """The truth broadcast to ``chains``; with ``design="fixed"`` bound to the real features."""
        run = self.broadcast(chains)
        if self.design == "fixed":
            run = LinearRegression._from_arrays(run.weights, run.noise_std, run, run._fitted)
            run._design_points = np.ascontiguousarray(real[:, :, :self.n_features])
        return run

    def finite(self) -> np.ndarray:
        """``(B,)`` bool: weights, their squared norm and the noise level finite.

        A weight vector whose squared norm overflows has diverged (its test error, a
        quadratic form, would be inf): it counts as not finite.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            norm2 = np.einsum("bi,bi->b", self.weights, self.weights)
        return np.isfinite(norm2) & np.isfinite(self.noise_std)

    def record(self) -> dict[str, np.ndarray]:
        """``weights`` ``(B, d)`` and ``noise_std`` ``(B,)``."""
        return {"weights": self.weights, "noise_std": self.noise_std}

    def test_error(self, truth: LinearRegression) -> np.ndarray:
        r"""Excess risk :math:`(\hat w - w)^\top\Sigma_x(\hat w - w)` against ``truth``, (B,)."""
        diff = self.weights - truth.weights
        return np.einsum("bi,ij,bj->b", diff, truth.design_cov, diff)

    def sample(self, n: int, seed: SeedLike = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` labelled points from every member (always a fresh design).

        Returns
        -------
        x, y : ndarray
            ``(n, d)`` and ``(n,)`` for a batch of one, else ``(B, n, d)`` and ``(B, n)``.
        """
        n = check_int("n", n, minimum=1, maximum=MAX_INT)
        streams = sampling.chain_streams(seed, self.batch_size)
        pts = sampling.regression_points(self, n, streams)
        x, y = pts[..., :-1], pts[..., -1]
        return (x[0], y[0]) if self.batch_size == 1 else (x, y)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "LinearRegression", "weights": self.weights.tolist(),
                "noise_std": self.noise_std.tolist(), "design_cov": self.design_cov.tolist(),
                "design": self.design}

    def __repr__(self) -> str:
        if self.batch_size == 1:
            return (f"LinearRegression(d={self.n_features}, noise_std={self.noise_std[0]:g}, "
                    f"design={self.design!r})")
        return f"LinearRegression(d={self.n_features}, batch_size={self.batch_size})"


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


register_metric("test_error", LinearRegression, LinearRegression,
                lambda t, m, ctx: test_error(t, m), distance=True,
                doc="excess risk (w - w*)^T S_x (w - w*)")
