r"""The Gaussian family: :math:`\mathcal N(\mu, \Sigma)` models, their fits and metrics.

One module holds the whole family (see :mod:`collapse_sim.protocol`): the model
:class:`Gaussian` (a batch of multivariate normals, one per chain), the closed-form
fit :class:`GaussianFit` (statistical error only) and the SGD fit
:class:`SGDGaussianFit` (function-approximation error), and the closed-form
metrics of a Gaussian model against a Gaussian truth, registered in
:mod:`collapse_sim.registry`. Metrics against mixtures live with the mixture family
(:mod:`collapse_sim.families.mixture`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import numpy as np
from scipy import special, stats

from .. import sampling
from .._buffers import BUFFERS
from .._kernels import fused as _fused
from .._kernels import linalg as _linalg
from .._kernels import sgd as _sgd
from .._kernels import tails as _tails
from .._random import SeedLike
from .._validation import MAX_INT, as_float_array, check_choice, check_int, check_real
from ..protocol import Fitter, PointModel
from ..registry import register_metric
from ..sampling import Moments
from ._sgd import _SCHEDULES, _check_options

#: Chain-generations per block of the fused exact 1-D path (bounds its working memory).
#: Each block is two parallel regions (the kernel, the metrics); with passive OpenMP
#: workers each costs a wake-up, so fewer, larger blocks are quicker until the block no
#: longer fits the cache: 1000 chains x 1000 generations with the default metrics took
#: 23.5 ms in blocks of 2**16, 21.0 ms of 2**17, 20.9 of 2**18 and 21.1 of 2**19 (medians
#: of 15 interleaved runs, 2026-12-02); the results are the same bits at any block size.
FUSED_BLOCK_ELEMENTS = 1 << 17
#: Central probability of the truth's region used by ``tail_mass``.
TAIL_LEVEL = 0.99
_REL_SINGULAR = 1e-14
_GL_NODES = 64


class Gaussian(PointModel):
    r"""A (batch of) multivariate normal distribution(s) :math:`\mathcal N(\mu, \Sigma)`.

    .. math::

        \log p(x) = -\tfrac12\big[d\log 2\pi + \log\det\Sigma
                    + (x-\mu)^\top \Sigma^{-1} (x-\mu)\big]

    Parameters
    ----------
    mean : float or array_like
        Scalar (1-D), ``(d,)``, or ``(B, d)`` for a batch of ``B`` chains.
        With ``var``, a ``(B,)`` array is a batch of 1-D means.
    var : float or array_like, optional
        Variance of a 1-D Gaussian: scalar or ``(B,)``. Give either ``var`` or ``cov``.
    cov : array_like, optional
        Covariance: ``(d, d)`` or ``(B, d, d)``; symmetric positive semi-definite.

    Notes
    -----
    A covariance may be singular (a collapsed model): it then has no density, and
    :meth:`logpdf` returns ``-inf`` off its support and ``+inf`` on it (a point counts
    as on the support when its component along every null direction is below
    ``1e-10`` times the larger of the model's spread and the point's distance from
    the mean: rounding level).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> g = cs.Gaussian(mean=0.0, var=2.0)
    >>> g.dim, g.batch_size, float(g.var[0])
    (1, 1, 2.0)
    >>> cs.Gaussian(mean=[0.0, 1.0], cov=[[1.0, 0.5], [0.5, 2.0]]).dim
    2
    """

    def __init__(self, mean=0.0, var=None, *, cov=None):
        if (var is None) == (cov is None):
            raise TypeError("Gaussian needs exactly one of var (1-D) or cov (d-D)")
        mean_arr = as_float_array("mean", mean)
        if var is not None:
            var_arr = as_float_array("var", var)
            if var_arr.ndim > 1 or mean_arr.ndim > 1:
                raise ValueError("with var, mean and var must be scalars or (B,) arrays")
            try:
                mean_b, var_b = np.broadcast_arrays(np.atleast_1d(mean_arr),
                                                    np.atleast_1d(var_arr))
            except ValueError:
                raise ValueError(
                    f"mean {mean_arr.shape} and var {var_arr.shape} must be scalars or "
                    "(B,) arrays of the same length"
                ) from None
            if np.any(var_b < 0):
                raise ValueError("var must be >= 0")
            self.mean = np.array(mean_b, dtype=np.float64)[:, None]
            self.cov = np.array(var_b, dtype=np.float64)[:, None, None]
        else:
            cov_arr = as_float_array("cov", cov)
            if cov_arr.ndim == 0:
                cov_arr = cov_arr.reshape(1, 1)
            if cov_arr.ndim == 2:
                cov_arr = cov_arr[None]
            if cov_arr.ndim != 3 or cov_arr.shape[1] != cov_arr.shape[2]:
                raise ValueError(f"cov must have shape (d, d) or (B, d, d), got {cov_arr.shape}")
            d = cov_arr.shape[1]
            if mean_arr.ndim == 0:
                mean_arr = np.full(d, float(mean_arr))
            if mean_arr.ndim == 1:
                mean_arr = mean_arr[None]
            if mean_arr.ndim != 2 or mean_arr.shape[1] != d:
                raise ValueError(
                    f"mean must have shape ({d},) or (B, {d}) to match cov {cov_arr.shape}, "
                    f"got {np.shape(mean)}"
                )
            batch = max(mean_arr.shape[0], cov_arr.shape[0])
            if mean_arr.shape[0] not in (1, batch) or cov_arr.shape[0] not in (1, batch):
                raise ValueError(
                    f"mean batch {mean_arr.shape[0]} and cov batch {cov_arr.shape[0]} differ"
                )
            _check_psd("cov", cov_arr)
            self.mean = np.array(np.broadcast_to(mean_arr, (batch, d)))
            sym = 0.5 * (cov_arr + np.swapaxes(cov_arr, 1, 2))
            self.cov = np.array(np.broadcast_to(sym, (batch, d, d)))
        self.mean.flags.writeable = False
        self.cov.flags.writeable = False
        self._chol: np.ndarray | None = None

    @classmethod
    def _from_arrays(cls, mean: np.ndarray, cov: np.ndarray) -> Gaussian:
        """Trusted constructor for fitted batches (no validation, no copies)."""
        obj = cls.__new__(cls)
        obj.mean = mean
        obj.cov = cov
        obj._chol = None
        return obj

    # -- shape -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Dimension ``d`` of the sample space."""
        return self.mean.shape[1]

    @property
    def batch_size(self) -> int:
        """Number ``B`` of distributions in the batch (1 for a truth)."""
        return self.mean.shape[0]

    @property
    def var(self) -> np.ndarray:
        """Total variance :math:`\\operatorname{tr}\\Sigma` of each member, ``(B,)``."""
        return np.trace(self.cov, axis1=1, axis2=2)

    def broadcast(self, chains: int) -> Gaussian:
        """This single distribution repeated ``chains`` times (views, no copies)."""
        if self.batch_size == chains:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")
        return Gaussian._from_arrays(
            np.broadcast_to(self.mean, (chains, self.dim)),
            np.broadcast_to(self.cov, (chains, self.dim, self.dim)),
        )

    def cholesky(self) -> np.ndarray:
        """Lower factors ``L`` with ``L L^T = cov``, ``(B, d, d)`` (rank-deficient allowed)."""
        if self._chol is None:
            chol = np.empty_like(self.cov, shape=self.cov.shape)
            # a writable copy of a read-only covariance (a truth's): one compiled version
            _linalg.psd_cholesky(np.require(self.cov, np.float64, "CW"), chol)
            self._chol = chol
        return self._chol

    def to_dict(self) -> dict:
        """JSON-serialisable description (parameters as nested lists)."""
        return {"type": "Gaussian", "mean": self.mean.tolist(), "cov": self.cov.tolist()}

    def __repr__(self) -> str:
        if self.batch_size == 1 and self.dim == 1:
            return f"Gaussian(mean={self.mean[0, 0]:g}, var={self.cov[0, 0, 0]:g})"
        return f"Gaussian(dim={self.dim}, batch_size={self.batch_size})"

    # -- family protocol ---------------------------------------------------------------------
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {"mean": ("dim",), "cov": ("dim", "dim_")}
    statistics_type = sampling.Moments
    exact_statistics = True

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)`` points (see :func:`collapse_sim.sampling.gaussian_points`)."""
        return sampling.gaussian_points(self, k, streams)

    def draw_statistics(self, k: int, streams, *, exact: bool) -> sampling.Moments:
        """Moments of ``k`` points per chain: exact law (Wishart) or from normals in z-space."""
        if exact:
            return sampling.exact_gaussian_moments(self, k, streams)
        return sampling.gaussian_moments(self, k, streams)

    def finite(self) -> np.ndarray:
        """``(B,)`` bool: mean and covariance finite.

        First one sum of all the entries: a NaN or an infinity makes it non-finite, so
        a finite sum means every member is finite (two vectorised passes instead of
        four and their temporaries); a non-finite one (or an overflow of finite
        entries) sends the batch to the entry-by-entry check.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.sum(self.mean) + np.sum(self.cov)):
                return np.ones(self.mean.shape[0], dtype=bool)
        if self.mean.ndim == 2 and self.mean.shape[1] == 1:  # no reductions over one entry
            return np.isfinite(self.mean[:, 0]) & np.isfinite(self.cov[:, 0, 0])
        return np.isfinite(self.mean).all(axis=1) & np.isfinite(self.cov).all(axis=(1, 2))

    def record(self) -> dict[str, np.ndarray]:
        """``mean`` ``(B, d)`` and ``cov`` ``(B, d, d)``."""
        return {"mean": self.mean, "cov": self.cov}

    def check_truth(self) -> None:
        """A truth must be one positive definite Gaussian (tail and KL metrics need it)."""
        super().check_truth()
        _check_positive_definite(self.cov)
        _check_resolution(self.mean[0], self.cov[0])

    # -- densities ---------------------------------------------------------------------------
    def logpdf(self, x) -> np.ndarray:
        """Log-density at points ``x``.

        Parameters
        ----------
        x : array_like
            ``(n, d)`` (or ``(n,)`` when ``d = 1``) evaluated under every member, or
            ``(B, n, d)`` with one row of points per member.

        Returns
        -------
        ndarray
            ``(n,)`` for a batch of one with 2-D input, else ``(B, n)``.
        """
        pts, squeeze = _batched_points(self, x)
        out = _gaussian_logpdf(self.mean, self.cov, pts)
        return out[0] if squeeze else out

    def sample(self, n: int, seed: SeedLike = None) -> np.ndarray:
        """Draw ``n`` points from every member of the batch.

        Member ``c`` uses the stream of chain ``c`` derived from ``seed`` (see
        :func:`collapse_sim.sampling.chain_streams`).

        Returns
        -------
        ndarray
            ``(n, d)`` for a batch of one, else ``(B, n, d)``.
        """
        n = check_int("n", n, minimum=1, maximum=MAX_INT)
        streams = sampling.chain_streams(seed, self.batch_size)
        pts = sampling.gaussian_points(self, n, streams)
        return pts[0] if self.batch_size == 1 else pts


def _batched_points(model, x) -> tuple[np.ndarray, bool]:
    """``x`` as ``(B, n, d)`` for ``model``'s batch, and whether to drop the batch axis.

    Accepts ``(n, d)`` (every member evaluates the same points), ``(n,)`` when
    ``d = 1``, or ``(B, n, d)``.
    """
    pts = as_float_array("x", x)
    if model.dim == 1 and pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim not in (2, 3) or pts.shape[-1] != model.dim:
        raise ValueError(f"x must have shape (n, {model.dim}) or (B, n, {model.dim})")
    squeeze = pts.ndim == 2 and model.batch_size == 1
    if pts.ndim == 2:
        pts = np.broadcast_to(pts, (model.batch_size, *pts.shape))
    if pts.shape[0] != model.batch_size:
        raise ValueError(f"x has {pts.shape[0]} rows of points, the batch has {model.batch_size}")
    return pts, squeeze


def _check_sample(name: str, points, dim: int, *, minimum: int = 1) -> np.ndarray:
    """``points`` as a float64 ``(n, dim)`` array of finite values with ``n >= minimum``.

    For the samples metrics average over (held-out data, a Monte Carlo reference): an
    empty one has no mean, a 1-D one for a ``d``-dimensional truth is a mistake.
    """
    arr = as_float_array(name, points)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}) (n points of the truth's "
                         f"dimension {dim}), got {arr.shape}")
    if arr.shape[0] < minimum:
        points_word = "point" if minimum == 1 else "points"
        raise ValueError(f"{name} must hold at least {minimum} {points_word}, got shape "
                         f"{arr.shape}")
    return arr


def _check_psd(name: str, cov: np.ndarray) -> None:
    asym = np.abs(cov - np.swapaxes(cov, 1, 2)).max(initial=0.0)
    scale = np.abs(cov).max(initial=0.0)
    if asym > 1e-10 * max(scale, 1e-300):
        raise ValueError(f"{name} must be symmetric (max asymmetry {asym:.3g})")
    eig = np.linalg.eigvalsh(cov)
    if np.any(eig < -1e-10 * max(scale, 1e-300)):
        raise ValueError(
            f"{name} must be positive semi-definite (smallest eigenvalue {eig.min():.3g})"
        )


def _check_positive_definite(covs: np.ndarray) -> None:
    """ValueError unless every ``(..., d, d)`` covariance is positive definite (relative 1e-12)."""
    lam = np.linalg.eigvalsh(covs)
    if np.any(lam.min(axis=-1) <= 1e-12 * np.maximum(lam.max(axis=-1), 1e-300)):
        raise ValueError(
            "truth covariance must be positive definite (smallest eigenvalue "
            f"{lam.min():.3g}): a degenerate truth (a point mass along some direction) has "
            "no density, and the tail, KL and l2 metrics are undefined for it"
        )


#: A truth's smallest standard deviation must exceed this multiple of its location's size:
#: below, points near the mean are not resolved by float64 (spacing 2.2e-16 |x|) and the
#: tail and density metrics come out wrong (a mean of 1e200 with variance 1 gave its own
#: tail mass 1 and nll inf).
RESOLUTION = 1e-8


def _check_resolution(mean: np.ndarray, cov: np.ndarray) -> None:
    """ValueError if the spread of ``N(mean, cov)`` is below float64's resolution at ``mean``."""
    location = float(np.max(np.abs(mean)))
    sd_min = math.sqrt(max(float(np.linalg.eigvalsh(cov).min()), 0.0))
    if sd_min <= RESOLUTION * location:
        raise ValueError(
            f"truth's smallest standard deviation {sd_min:.3g} is below the floating-point "
            f"resolution of its location (|mean| up to {location:.3g}; it must exceed "
            f"{RESOLUTION:g} times that): centre or rescale the data")


def _gaussian_logpdf(mean: np.ndarray, cov: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``(B, n)`` log-densities by eigen-decomposition; singular members handled exactly."""
    d = mean.shape[1]
    lam, vec = np.linalg.eigh(cov)
    dev = pts - mean[:, None, :]
    proj = np.einsum("bij,bni->bnj", vec, dev)
    tol = 1e-14 * np.maximum(lam.max(axis=1, keepdims=True), 1e-300)
    singular = lam <= tol
    safe = np.where(singular, 1.0, lam)
    maha = np.sum(np.where(singular[:, None, :], 0.0, proj**2 / safe[:, None, :]), axis=2)
    logdet = np.sum(np.log(safe), axis=1)
    out = -0.5 * (d * math.log(2 * math.pi) + logdet[:, None] + maha)
    any_singular = singular.any(axis=1)
    if any_singular.any():
        # "On the support" up to rounding: the component along a null direction is below
        # 1e-10 of the larger of the spread and the point's distance from the mean, plus
        # the rounding of x and the mean themselves (which does not shrink with the spread).
        reach = np.maximum(np.sqrt(np.maximum(lam.max(axis=1), 0.0))[:, None],
                           np.linalg.norm(dev, axis=2))
        size = np.linalg.norm(pts, axis=2) + np.linalg.norm(mean, axis=1)[:, None]
        tol = 1e-10 * reach + 8 * d * np.finfo(np.float64).eps * size
        off = np.any(singular[:, None, :] & (np.abs(proj) > tol[:, :, None]), axis=2)
        degenerate = np.where(off, -np.inf, np.inf)
        out = np.where(any_singular[:, None], degenerate, out)
    return out


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

    def fused_run(self, truth, plan, n_samples, generations, streams, *, exact, stage=None):
        """Exact path in 1-D: blocks of generations of every chain in one kernel each.

        Bit-identical to the generation-by-generation exact path (same draws, same
        arithmetic); blocks keep the working memory ``O(chains x block)``. Faithful
        sampling or a ``Temperature`` stage (synthetic variance times :math:`\tau^2`).
        """
        from ..stages import Temperature

        if not (exact and isinstance(truth, Gaussian) and truth.dim == 1 and generations > 0):
            return None
        if stage is not None and type(stage) is not Temperature:
            return None
        scale = 1.0 if stage is None else stage.tau**2
        return _fused_exact_1d(self.ddof, truth, plan, n_samples, generations, streams, scale)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "GaussianFit", "estimator": self.estimator}


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
        warm = self.init == "previous" and isinstance(previous, Gaussian)
        start = previous.broadcast(chains) if warm else None
        if d == 1:  # on scalars, log sd = log(var) / 2 inside the kernel (as in fused_run)
            mean = np.array(start.mean[:, 0]) if warm else np.zeros(chains)
            var = np.array(start.cov[:, 0, 0]) if warm else np.ones(chains)
            _sgd.sgd_gaussian_1d(points.reshape(chains, n), streams.states, mean, var, warm,
                                 *self._options())
            return Gaussian._from_arrays(mean[:, None], var[:, None, None])
        if warm:
            mean = np.array(start.mean)
            chol = start.cholesky()
            logdiag = np.log(np.maximum(np.diagonal(chol, axis1=1, axis2=2), 1e-300))
            lower = np.array(np.tril(chol, -1))
        else:
            mean = np.zeros((chains, d))
            logdiag = np.zeros((chains, d))
            lower = np.zeros((chains, d, d))
        logdiag = np.ascontiguousarray(logdiag)
        _sgd.sgd_gaussian(points, streams.states, mean, logdiag, lower, *self._options())
        with np.errstate(over="ignore", invalid="ignore"):
            chol = lower + np.exp(logdiag)[:, :, None] * np.eye(d)
            cov = chol @ np.swapaxes(chol, 1, 2)
        return Gaussian._from_arrays(mean, cov)

    def _options(self) -> tuple:
        """The kernels' trailing arguments: rate, batch, epochs, momentum, schedule, noise."""
        return (self.learning_rate, self.batch_size, self.epochs, self.momentum,
                _SCHEDULES.index(self.lr_schedule), self.gradient_noise)

    def fused_run(self, truth, plan, n_samples, generations, streams, *, exact, stage=None):
        """A 1-D run on a Gaussian truth in blocks of generations, one kernel a block
        (:func:`collapse_sim._kernels.sgd.sgd_run_1d`): the same models, bit for bit, as
        the generation-by-generation loop, without its Python steps and its two parallel
        regions (draw, fit) a generation. Faithful sampling and policies whose training
        set is the real sample's first points, fresh points and synthetic points (no
        pool, no resampling of the real points); otherwise ``None``."""
        if (exact or stage is not None or generations < 1 or not isinstance(truth, Gaussian)
                or truth.dim != 1 or plan.pool != "none" or plan.real_resampled):
            return None  # (the engine has checked batch_size <= n_samples <= every set)
        return _fused_sgd_1d(self, truth, plan, n_samples, generations, streams)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": type(self).__name__, **asdict(self)}


def _gaussian_of(truth) -> Gaussian:
    """A point truth's moment-matched Gaussian (row 0 of recorded Gaussian fits)."""
    if isinstance(truth, Gaussian):
        return truth
    return Gaussian._from_arrays(truth.mean, truth.cov)


def _fused_exact_1d(ddof, truth, plan, n_samples, generations, streams, syn_scale=1.0):
    """Blocks ``(start, size, models)`` of the fused exact 1-D run (``GaussianFit.fused_run``)."""
    chains = streams.chains
    block = max(1, min(generations, FUSED_BLOCK_ELEMENTS // chains))
    carry = np.zeros((chains, 8))
    for start in range(1, generations + 1, block):
        size = min(block, generations + 1 - start)
        # recycled memory: fresh blocks cost 3,000 page faults a run (16 MiB), at up to
        # 30 us each while the kernel reclaims memory; a model the engine, a metric or the
        # user still holds is never lent again
        means = BUFFERS.take((size, chains), np.float64)
        variances = BUFFERS.take((size, chains), np.float64)
        _fused.exact_run_1d(streams.states, n_samples, ddof, plan.real, plan.fresh,
                            plan.synthetic, plan.pool == "all", float(truth.mean[0, 0]),
                            float(truth.cov[0, 0, 0]), start, carry, float(syn_scale),
                            means, variances)
        yield start, size, Gaussian._from_arrays(means.reshape(-1, 1),
                                                 variances.reshape(-1, 1, 1))


def _fused_sgd_1d(fitter, truth, plan, n_samples, generations, streams):
    """Blocks ``(start, size, models)`` of a fused 1-D SGD run (``SGDGaussianFit.fused_run``)."""
    chains = streams.chains
    block = max(1, min(generations, FUSED_BLOCK_ELEMENTS // chains))
    real = np.empty((chains, n_samples))  # each chain's real sample, drawn in generation 1
    carry = np.zeros((chains, 2))
    for start in range(1, generations + 1, block):
        size = min(block, generations + 1 - start)
        means = BUFFERS.take((size, chains), np.float64)
        variances = BUFFERS.take((size, chains), np.float64)
        _sgd.sgd_run_1d(streams.states, real, plan.real, plan.fresh, plan.synthetic,
                        float(truth.mean[0, 0]), float(truth.cov[0, 0, 0]),
                        fitter.init == "previous", *fitter._options(), start, carry, means,
                        variances)
        yield start, size, Gaussian._from_arrays(means.reshape(-1, 1),
                                                 variances.reshape(-1, 1, 1))


# -- metrics of a Gaussian model against a Gaussian truth (closed forms) --------------------

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

    which in 1-D is :math:`(m-\mu)^2 + (s-\sigma)^2` (computed in one compiled pass, see
    :func:`_metrics_1d`).
    """
    if _pair_1d(truth, model):
        return _metrics_1d(truth, model, ("w2",))["w2"]
    return _w2_numpy(truth, model)


def _w2_numpy(truth, model) -> np.ndarray:
    """:func:`w2` with numpy (any dimension; the 1-D reference of the compiled pass)."""
    shift2 = np.sum((model.mean - truth.mean) ** 2, axis=1)
    if model.dim == 1:
        spread2 = (np.sqrt(model.cov[:, 0, 0]) - math.sqrt(truth.cov[0, 0, 0])) ** 2
        return np.sqrt(shift2 + spread2)
    # In units of the truth's typical variance c = tr(Sigma)/d (W2 scales like sqrt(c)), so
    # neither 1e160 nor 1e-170 covariances overflow or underflow. With R = Sigma^(1/2) and
    # T = (R S R)^(1/2): tr S + tr Sigma - 2 tr T = tr(Sigma^-1 (T - Sigma)^2)
    # = ||R^-1 (T - Sigma)||_F^2, a sum of squares, so a model near the truth gets W2 ~
    # rounding, not sqrt(rounding) from cancelling traces. T comes from the singular values
    # of R L (S = L L^T), accurate to rounding relative to the largest: squaring into
    # R S R and taking square roots of its eigenvalues would lose the small ones (an
    # ill-conditioned truth then had a floor of sqrt(lambda_min)).
    sigma = truth.cov[0]
    d = model.dim
    c = max(float(np.trace(sigma)) / d, np.finfo(np.float64).tiny)
    shift2 = np.sum(((model.mean - truth.mean) / math.sqrt(c)) ** 2, axis=1)
    lam0, vec0 = np.linalg.eigh(sigma / c)
    lam0 = np.maximum(lam0, np.finfo(np.float64).tiny)
    root = (vec0 * np.sqrt(lam0)) @ vec0.T
    inv_root = (vec0 / np.sqrt(lam0)) @ vec0.T
    factor = root @ (model.cholesky() / math.sqrt(c))
    u, sing, _ = np.linalg.svd(factor)
    cross = (u * sing[:, None, :]) @ np.swapaxes(u, 1, 2)
    spread2 = np.sum((inv_root @ (cross - sigma / c)) ** 2, axis=(1, 2))
    # a model whose covariance equals the truth's is at spread distance exactly 0
    same = np.all(model.cov == sigma, axis=(1, 2))
    return math.sqrt(c) * np.sqrt(shift2 + np.where(same, 0.0, spread2))


def kl(truth, model, reference: np.ndarray | None = None) -> np.ndarray:
    r"""KL divergence :math:`\mathrm{KL}(\text{truth}\,\|\,\text{model})`; ``+inf`` if degenerate.

    .. math::

        \tfrac12\big[\operatorname{tr}(S^{-1}\Sigma) + (m-\mu)^\top S^{-1}(m-\mu) - d
        + \log\det S - \log\det\Sigma\big]

    In 1-D: one compiled pass (:func:`_metrics_1d`), the same values as the numpy formula.
    """
    if _pair_1d(truth, model):
        return _metrics_1d(truth, model, ("kl",))["kl"]
    return _kl_numpy(truth, model)


def _kl_numpy(truth, model) -> np.ndarray:
    """:func:`kl` with numpy (any dimension; the 1-D reference of the compiled pass)."""
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
    moments = _heldout_moments(heldout, model.dim)
    if _model_1d(model):
        return _metrics_1d(truth, model, ("nll",), moments)["nll"]
    return nll_from_moments(model, *moments)


def _heldout_moments(heldout, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out sample's mean ``(d,)`` and MLE covariance ``(d, d)``, checked."""
    heldout = _check_sample("heldout", heldout, dim)
    xbar = heldout.mean(axis=0)
    dev = heldout - xbar
    return xbar, dev.T @ dev / heldout.shape[0]


def nll_from_moments(model: Gaussian, xbar: np.ndarray, cov_h: np.ndarray) -> np.ndarray:
    r"""Cross-entropy :math:`-E[\log q(X)]` of Gaussian models for any ``X`` with mean
    ``xbar`` ``(d,)`` and covariance ``cov_h`` ``(d, d)`` (the held-out sample's, or a
    truth's); ``model`` a :class:`Gaussian` batch in ``d`` dimensions. A wrong type or
    shape, or a value that is not finite, raises ``TypeError``/``ValueError`` naming it."""
    if not isinstance(model, Gaussian):
        raise TypeError(f"model must be a Gaussian, got {type(model).__name__}")
    d = model.dim
    xbar = as_float_array("xbar", xbar)
    if xbar.shape != (d,):
        raise ValueError(f"xbar must have shape ({d},) to match the model, got {xbar.shape}")
    cov_h = as_float_array("cov_h", cov_h)
    if cov_h.shape != (d, d):
        raise ValueError(f"cov_h must have shape ({d}, {d}) to match the model, got "
                         f"{cov_h.shape}")
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
    gives 0 or 1 (one compiled pass, :func:`_metrics_1d`). d-D: the probability that
    :math:`(x-\mu)^\top\Sigma^{-1}(x-\mu) > \chi^2_{d,0.99}` under the model (see the
    module notes for the estimator).
    """
    if _pair_1d(truth, model):
        return _metrics_1d(truth, model, ("tail_mass",))["tail_mass"]
    return _tail_mass_numpy(truth, model)


def _tail_bounds(truth) -> tuple[float, float]:
    """The truth's quantiles :math:`q_{0.005}, q_{0.995}` (1-D)."""
    tail = 0.5 * (1.0 - TAIL_LEVEL)
    mu, sigma = truth.mean[0, 0], math.sqrt(truth.cov[0, 0, 0])
    return mu + sigma * special.ndtri(tail), mu + sigma * special.ndtri(1.0 - tail)


def _tail_mass_numpy(truth, model) -> np.ndarray:
    """:func:`tail_mass` with numpy (any dimension; the 1-D reference of the compiled pass)."""
    if model.dim == 1:
        lo, hi = _tail_bounds(truth)
        m = model.mean[:, 0]
        s = np.sqrt(model.cov[:, 0, 0])
        point = ((m < lo) | (m > hi)).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = special.ndtr((lo - m) / s) + special.ndtr((m - hi) / s)
        return np.where(s > 0.0, spread, point)
    radius2 = float(stats.chi2.ppf(TAIL_LEVEL, model.dim))
    return _gaussian_outside(truth.mean[0], truth.cov[0], radius2, model.mean, model.cov)


# -- the 1-D metrics in one compiled pass ---------------------------------------------------

#: The metrics :func:`_metrics_1d` computes, in the kernel's column order.
_METRICS_1D = ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass")


def _model_1d(model) -> bool:
    """Whether ``model`` is a float64 batch of 1-D Gaussians (the compiled pass applies)."""
    return (isinstance(model, Gaussian) and model.mean.ndim == 2 and model.mean.shape[1] == 1
            and model.cov.ndim == 3 and model.mean.dtype == np.float64
            and model.cov.dtype == np.float64)


def _pair_1d(truth, model) -> bool:
    """:func:`_model_1d` for ``model`` and a single 1-D Gaussian ``truth``."""
    return (_model_1d(model) and isinstance(truth, Gaussian) and truth.mean.shape == (1, 1)
            and truth.cov.shape == (1, 1, 1) and truth.cov.dtype == np.float64
            and truth.mean.dtype == np.float64)


def _metrics_1d(truth, model, names, moments=None, into=None) -> dict[str, np.ndarray]:
    r"""The metrics ``names`` (a subset of :data:`_METRICS_1D`) of a 1-D Gaussian batch, in one
    compiled pass over the models: ``{name: (B,) array}``.

    The values are those of the numpy formulas (:func:`_w2_numpy`, :func:`_kl_numpy`,
    :func:`nll_from_moments`, :func:`_tail_mass_numpy`, :func:`mean_shift`,
    :func:`variance`), bit for bit: the kernel repeats their operations in their order and
    :math:`\log s^2` comes from numpy's ``log`` as there. The tail mass is within 9 units
    in the last place of :func:`_tail_mass_numpy`: :math:`\Phi` is the Cephes ``ndtr``
    scipy runs, vectorised with an exponential of its own (each CDF within 4 ulp of
    scipy's; tests/test_gaussian_metrics_fast.py). What it saves is the passes: the numpy
    formulas read the models about forty times (einsum, ``where``, the generic eigen-route
    of kl and nll); here once, and a collapsed model far from the quantiles, whose CDFs
    are exactly 0 or 1, skips them.

    ``truth`` must pass :func:`_pair_1d` unless ``names`` is ``("nll",)``; ``moments``
    (``xbar (1,)``, ``cov_h (1, 1)``, from :func:`_heldout_moments`) is needed for nll.
    ``into`` (optional) maps names to ``(B,)`` float64 C-contiguous arrays to write those
    metrics into (the engine's result rows), which are returned as their values.
    """
    from .._kernels import gaussian_metrics as _gm

    # writable as well as contiguous: a read-only array (the truth's, at generation 0)
    # would compile the kernel a second time, for read-only arrays
    m = np.require(model.mean[:, 0], np.float64, "CW")
    v = np.require(model.cov[:, 0, 0], np.float64, "CW")
    into = into or {}
    values = {name: into[name] if _writable(into.get(name), m.size) else np.empty(m.size)
              for name in names}
    empty = np.empty(0)
    outs = tuple(values.get(name, empty) for name in _METRICS_1D)
    # as many lanes and as long a slice as the models need: the kernel's build is picked
    # by its largest array, and a small batch (the explicit path's generation of 1000
    # models) must stay on the serial build, not wake the threads for every generation
    chunk = max(1, min(_gm.CHUNK, m.size))
    lanes = max(1, min(_gm.LANES, -(-m.size // _gm.CHUNK)))
    scratch = BUFFERS.take((lanes, 4, 2 * chunk), np.float64)
    int_scratch = BUFFERS.take((lanes, 2, 2 * chunk), np.int64)
    if "kl" in names or "nll" in names:
        with np.errstate(divide="ignore", invalid="ignore"):
            logv = np.log(v, out=BUFFERS.take(m.size, np.float64))
    else:
        logv = v
    mu = v0 = sd0 = logdet0 = lo = hi = 0.0
    if any(name in names for name in ("mean_shift", "w2", "kl", "tail_mass")):
        mu, v0 = float(truth.mean[0, 0]), float(truth.cov[0, 0, 0])
        sd0 = math.sqrt(v0)
        if "kl" in names:
            logdet0 = float(np.linalg.slogdet(truth.cov[0])[1])
        if "tail_mass" in names:
            lo, hi = (float(b) for b in _tail_bounds(truth))
    xbar = cov_h = 0.0
    if "nll" in names:
        xbar, cov_h = float(moments[0][0]), float(moments[1][0, 0])
    if m.size:
        _gm.metrics_1d(m, v, logv, mu, v0, sd0, logdet0, xbar, cov_h, math.log(2 * math.pi),
                       lo, hi, outs, scratch, int_scratch)
    return values


def _writable(target, size: int) -> bool:
    """Whether ``target`` can receive a metric of ``size`` models from the kernel."""
    return (isinstance(target, np.ndarray) and target.shape == (size,)
            and target.dtype == np.float64 and target.flags.c_contiguous
            and target.flags.writeable)


def _shared_1d(name: str, truth, model, ctx) -> np.ndarray:
    """Metric ``name`` of a 1-D pair as the registry calls it: the first of the selection's
    1-D metrics asked for a model computes all of them in one pass (:func:`_metrics_1d`),
    the others are served from ``ctx`` (each once; the engine asks each name once per
    model)."""
    cache = getattr(ctx, "_gaussian_1d", None)
    if cache is not None and cache[0] is model and cache[1] is truth and name in cache[2]:
        value = cache[2].pop(name)
        if not cache[2]:
            ctx._gaussian_1d = None
        return value
    heldout = getattr(ctx, "heldout", None)
    selection = getattr(ctx, "selection", None) or ()
    names = [name] + [n for n in dict.fromkeys(selection) if n in _METRICS_1D and n != name
                      and (n != "nll" or heldout is not None)]
    moments = None
    if "nll" in names:
        held = getattr(ctx, "_gaussian_heldout", None)
        if held is None or held[0] is not heldout:
            held = (heldout, _heldout_moments(heldout, 1))
            ctx._gaussian_heldout = held
        moments = held[1]
    if names == [name] and name in ("variance", "mean_shift"):  # one numpy pass is as quick
        return variance(truth, model) if name == "variance" else mean_shift(truth, model)
    values = _metrics_1d(truth, model, names, moments, getattr(ctx, "destinations", None))
    value = values.pop(name)
    ctx._gaussian_1d = (model, truth, values) if values else None
    return value


def _registered(name: str, numpy_fn):
    """The registry's function for metric ``name``: the shared 1-D pass, else ``numpy_fn``."""
    def metric(truth, model, ctx):
        if _pair_1d(truth, model):
            return _shared_1d(name, truth, model, ctx)
        return numpy_fn(truth, model, ctx)
    metric.__name__ = name
    return metric


def gaussian_outside(centre, cov0, radius2, means, covs) -> np.ndarray:
    r"""Probability of :math:`(x-c)^\top\Sigma_0^{-1}(x-c) > r^2` under each
    :math:`\mathcal N(m_i, S_i)`, ``(N,)``.

    Parameters
    ----------
    centre : array_like
        :math:`c`, ``(d,)`` with ``d >= 2`` (1-D tail masses are closed form:
        :func:`tail_mass`).
    cov0 : array_like
        :math:`\Sigma_0`, ``(d, d)``, symmetric positive definite.
    radius2 : float
        :math:`r^2`, a finite number > 0.
    means : array_like
        :math:`m_i`, ``(N, d)``.
    covs : array_like
        :math:`S_i`, ``(N, d, d)``, symmetric positive semi-definite (a singular
        covariance is a collapsed model).

    Every value must be finite; a ``TypeError`` or ``ValueError`` naming the argument
    is raised otherwise, before any work.
    """
    centre = as_float_array("centre", centre)
    if centre.ndim != 1 or centre.shape[0] < 2:
        raise ValueError(f"centre must have shape (d,) with d >= 2 (1-D tail masses are "
                         f"closed form: tail_mass), got shape {centre.shape}")
    d = centre.shape[0]
    cov0 = as_float_array("cov0", cov0)
    if cov0.shape != (d, d):
        raise ValueError(f"cov0 must have shape ({d}, {d}) to match centre, got {cov0.shape}")
    _check_psd("cov0", cov0[None])
    lam0 = np.linalg.eigvalsh(cov0)
    if lam0[0] <= 1e-12 * max(lam0[-1], 1e-300):
        raise ValueError(f"cov0 must be positive definite (smallest eigenvalue {lam0[0]:.3g}, "
                         f"largest {lam0[-1]:.3g})")
    radius2 = check_real("radius2", radius2, low=0.0, low_open=True)
    means = as_float_array("means", means)
    if means.ndim != 2 or means.shape[1] != d:
        raise ValueError(f"means must have shape (N, {d}) to match centre, got {means.shape}")
    covs = as_float_array("covs", covs)
    if covs.shape != (means.shape[0], d, d):
        raise ValueError(f"covs must have shape ({means.shape[0]}, {d}, {d}) to match means "
                         f"{means.shape}, got {covs.shape}")
    _check_psd("covs", covs)
    return _gaussian_outside(centre, cov0, radius2, means, covs)


def _gaussian_outside(centre, cov0, radius2, means, covs) -> np.ndarray:
    """:func:`gaussian_outside` without the argument checks (the metrics' own calls)."""
    d = means.shape[1]
    chol0 = np.linalg.cholesky(cov0)
    inv0 = np.linalg.inv(chol0)
    # one (1 x d) product per member, not one (N x d) product: BLAS blocks a 2-D product by
    # its row count, so member i's value would depend on how many chains run
    b = ((means - centre)[:, None, :] @ inv0.T)[:, 0, :]
    a = inv0 @ covs @ inv0.T
    lam, vec = np.linalg.eigh(a)
    lam = np.clip(lam, 0.0, None)
    vec = _canonical_signs(vec)
    beta = np.einsum("bij,bi->bj", vec, b)
    out = np.empty(means.shape[0])
    if d == 2:
        nodes, weights = _gauss_legendre()
        cos_t, sin_t = _trapezoid_angles()
        _tails.outside_ball_2d(np.ascontiguousarray(beta), np.ascontiguousarray(lam),
                               radius2, cos_t, sin_t, nodes, weights, out)
        return out
    _tails.outside_ball(np.ascontiguousarray(beta), np.ascontiguousarray(lam), radius2,
                        _directions(d), out)
    return out


def _canonical_signs(vec: np.ndarray) -> np.ndarray:
    r"""The eigenvectors ``vec`` ``(N, d, d)`` (columns) with signs fixed: each column's
    dot product with :math:`g = (\sqrt 2, \sqrt 3, \dots, \sqrt{d+1})` is made positive.

    An eigenvector is defined up to its sign, and LAPACK builds choose differently (the
    SkylakeX and Haswell kernels of one OpenBLAS release did). For ``d >= 3`` the fixed
    direction set of :func:`collapse_sim._kernels.tails.outside_ball` is not symmetric
    under the reflection of one axis, so the estimate moved with the signs: by up to
    7e-4 relative for a collapsed, nearly rank-one component (tests/test_metrics.py). With
    the signs fixed it depends on the covariance only (up to rounding where two
    eigenvalues nearly coincide, and a column lies almost orthogonal to :math:`g`). In
    2-D the equally spaced angles are symmetric under both reflections, so the signs
    only changed the rounding (1e-16 absolute); fixed there too, for the same bits.
    """
    g = np.sqrt(np.arange(2.0, vec.shape[1] + 2.0))
    sign = np.where(np.einsum("bij,i->bj", vec, g) < 0.0, -1.0, 1.0)
    return vec * sign[:, None, :]


_DIRECTIONS_CACHE: dict[int, np.ndarray] = {}


@functools.cache
def _gauss_legendre() -> tuple[np.ndarray, np.ndarray]:
    """The ``_GL_NODES``-point Gauss-Legendre rule (computed once: it cost a quarter of a
    2-D mixture run's time, recomputed every generation)."""
    return np.polynomial.legendre.leggauss(_GL_NODES)


@functools.cache
def _trapezoid_angles() -> tuple[np.ndarray, np.ndarray]:
    r"""Cosines and sines of the ``d = 2`` trapezoid angles
    :math:`t_i = 2\pi (i + 1/2) / n`, ``n = tail_directions(2)``, by the C library (as
    the kernel computed them before they were tabulated)."""
    n = tail_directions(2)
    theta = [2.0 * math.pi * (i + 0.5) / n for i in range(n)]
    return (np.array([math.cos(t) for t in theta]), np.array([math.sin(t) for t in theta]))


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
    """Number of directions the ``d``-dimensional ``tail_mass`` estimate averages over.

    ``d`` is an int >= 2 (in 1-D the tail mass is closed form, no directions): 128 for
    ``d = 2`` (trapezoid nodes), 256 for ``d = 3``, 512 beyond.
    """
    d = check_int("d", d, minimum=2)
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


register_metric("variance", Gaussian, Gaussian,
                _registered("variance", lambda t, m, ctx: variance(t, m)),
                doc="total variance tr S")
register_metric("mean_shift", Gaussian, Gaussian,
                _registered("mean_shift", lambda t, m, ctx: mean_shift(t, m)),
                distance=True, doc="||m - mu||")
register_metric("w2", Gaussian, Gaussian, _registered("w2", lambda t, m, ctx: w2(t, m)),
                distance=True, doc="Wasserstein-2 distance to the truth")
register_metric("kl", Gaussian, Gaussian, _registered("kl", lambda t, m, ctx: kl(t, m)),
                distance=True, doc="KL(truth || model), closed form")
register_metric("nll", Gaussian, Gaussian,
                _registered("nll", lambda t, m, ctx: nll(t, m, ctx.heldout)),
                heldout=True, doc="mean -log q of held-out real points")
register_metric("tail_mass", Gaussian, Gaussian,
                _registered("tail_mass", lambda t, m, ctx: tail_mass(t, m)),
                doc="model mass outside the truth's central 99% region")


# -- generation stages ----------------------------------------------------------------------

def _tempered(stage, model: Gaussian) -> Gaussian:
    r""":math:`\mathcal N(\mu, \tau^2\Sigma)`: temperature scales every standard deviation."""
    return Gaussian._from_arrays(model.mean, model.cov * stage.tau**2)


#: ``Truncate`` uses its bounded rejection step when a normal lands inside the ball with at
#: least this probability (then TRUNCATION_TRIES misses in a row have probability below
#: 1e-8); below it, every point is drawn by inversion.
TRUNCATION_MIN_ACCEPT = 0.25
#: Normals a point tries before it is finished by inversion.
TRUNCATION_TRIES = 64


def _truncated(stage, model: Gaussian, k: int, streams) -> np.ndarray:
    r"""``k`` points per chain from the Gaussian conditioned on Mahalanobis radius :math:`\le`
    ``stage.k``, exactly, at a bounded cost per point.

    In whitened coordinates this is the standard normal :math:`z` conditioned on
    :math:`\lVert z\rVert \le k`, and :math:`x = \mu + Lz`. When a normal lands inside
    with probability :math:`P(\chi^2_d \le k^2) \ge` :data:`TRUNCATION_MIN_ACCEPT`, each
    point tries at most :data:`TRUNCATION_TRIES` normals and keeps the first inside (no
    loop that can stall: the cost is bounded); the rare points none settled are finished,
    like every point when the acceptance is lower, by exact inversion: the direction
    :math:`z/\lVert z\rVert` is uniform and independent of :math:`\lVert z\rVert^2 \sim
    \chi^2_d`, so the radius is :math:`r^2 = 2P^{-1}(d/2, u\,P(d/2, k^2/2))` with
    :math:`u` uniform and :math:`P` the regularised lower incomplete gamma function. Both
    parts follow the conditional law exactly, so their mixture does. Normals and
    uniforms come from the chain's stream.
    """
    from scipy import special

    from .._kernels import rng as _rng
    from .._kernels import truncation as _tr

    chains, d = streams.chains, model.dim
    model = model.broadcast(chains)
    cap = special.gammainc(d / 2, stage.k**2 / 2)  # P(chi2_d <= k^2)
    chol = np.sqrt(model.cov) if d == 1 else model.cholesky()
    if cap >= TRUNCATION_MIN_ACCEPT:  # the bounded rejection step, mu + L z in the kernel
        x = np.empty((chains, k, d))
        failed = np.empty((chains, k), dtype=np.uint8)
        spare = np.empty((chains, k))
        _tr.truncated_normals(streams.states, np.ascontiguousarray(model.mean),
                              np.ascontiguousarray(chol), stage.k**2, TRUNCATION_TRIES, x,
                              failed, spare)
        if failed.any():  # rare: finish by inversion (x holds their directions)
            c, i = np.nonzero(failed)
            radius = np.sqrt(2.0 * special.gammaincinv(d / 2, spare[c, i] * cap))
            x[c, i] = model.mean[c] + np.einsum("nij,nj->ni", chol[c],
                                                 x[c, i] * radius[:, None])
        return x
    z = streams.standard_normal(k, d)  # low acceptance: every point by inversion
    u = np.empty((chains, k))
    _rng.fill_uniform(streams.states, u)
    norm = np.sqrt((z * z).sum(axis=2, keepdims=True))
    z = np.divide(z, norm, out=np.zeros_like(z), where=norm > 0)
    z[:, :, 0] = np.where(norm[:, :, 0] > 0, z[:, :, 0], 1.0)
    z *= np.sqrt(2.0 * special.gammaincinv(d / 2, u * cap))[:, :, None]
    return model.mean[:, None, :] + np.einsum("cij,ckj->cki", chol, z)


def _truncated_moments(stage, model: Gaussian, k: int, streams) -> Moments | None:
    """The :class:`~collapse_sim.sampling.Moments` of ``k`` truncated draws per chain without
    forming them (the route a Gaussian fit takes): the rejection step of :func:`_truncated`
    fused with the reduction to moments, where a draw lands inside with probability at least
    :data:`TRUNCATION_MIN_ACCEPT`; ``None`` (draw the points) below it."""
    from scipy import special

    from .._kernels import truncation as _tr

    d = model.dim
    if k < 1 or special.gammainc(d / 2, stage.k**2 / 2) < TRUNCATION_MIN_ACCEPT:
        return None
    chains = streams.chains
    model = model.broadcast(chains)
    chol = np.sqrt(model.cov) if d == 1 else model.cholesky()
    mean, scatter = np.empty((chains, d)), np.empty((chains, d, d))
    _tr.truncated_moments(streams.states, np.ascontiguousarray(model.mean),
                          np.ascontiguousarray(chol), stage.k**2, k, mean, scatter)
    return Moments(k, mean, scatter)


def _register_stages():
    from ..stages import Temperature, Truncate, register_stage, register_stage_statistics

    register_stage(Temperature, Gaussian, _tempered)
    register_stage(Truncate, Gaussian, _truncated)
    register_stage_statistics(Truncate, Gaussian, Moments, _truncated_moments)


_register_stages()
