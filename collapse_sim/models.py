"""Parametric families, batched over chains: parameters, ``logpdf`` and ``sample``.

No fitting happens here (see :mod:`collapse_sim.fitting`). A model holds a batch
of ``B`` distributions, one per chain; a truth is a batch of one. Arrays follow
the library's conventions: points ``(..., n, d)``, means ``(B, d)``, covariances
``(B, d, d)``; 1-D input is promoted to ``d = 1`` at the boundary.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from . import sampling
from ._kernels import linalg as _linalg
from ._random import SeedLike
from ._validation import as_float_array, check_choice, check_int
from .protocol import Model, PointModel


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
            _linalg.psd_cholesky(np.ascontiguousarray(self.cov), chol)
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
        """``(B,)`` bool: mean and covariance finite."""
        return np.isfinite(self.mean).all(axis=1) & np.isfinite(self.cov).all(axis=(1, 2))

    def record(self) -> dict[str, np.ndarray]:
        """``mean`` ``(B, d)`` and ``cov`` ``(B, d, d)``."""
        return {"mean": self.mean, "cov": self.cov}

    def check_truth(self) -> None:
        """A truth must be one positive definite Gaussian (tail and KL metrics need it)."""
        super().check_truth()
        _check_positive_definite(self.cov)

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
        n = check_int("n", n, minimum=1)
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
            f"{lam.min():.3g}); the tail and KL metrics are undefined otherwise"
        )


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


class GaussianMixture(PointModel):
    r"""A (batch of) Gaussian mixture(s) :math:`\sum_k w_k\,\mathcal N(\mu_k, \Sigma_k)`.

    .. math::

        \log p(x) = \operatorname{logsumexp}_k\big[\log w_k + \log\mathcal N(x;\mu_k,\Sigma_k)\big]

    (computed with the max-shift, so it stays finite far in the tails).

    Parameters
    ----------
    weights : array_like
        ``(K,)`` or ``(B, K)``: non-negative, summing to 1 (within 1e-8; renormalised).
    means : array_like
        ``(K, d)`` or ``(B, K, d)``; ``(K,)`` is K one-dimensional means.
    covs : array_like
        ``(K, d, d)`` or ``(B, K, d, d)``; ``(K,)`` is K one-dimensional variances.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> mix = cs.GaussianMixture(weights=[.5, .5], means=[[-2.], [2.]], covs=[[[1.]], [[1.]]])
    >>> mix.dim, mix.n_components, mix.batch_size
    (1, 2, 1)
    >>> round(float(mix.var[0]), 6)          # 1 + 4: within- plus between-component variance
    5.0
    """

    def __init__(self, weights, means, covs):
        w = as_float_array("weights", weights)
        m = as_float_array("means", means)
        c = as_float_array("covs", covs)
        if w.ndim == 1:
            w = w[None]
        if w.ndim != 2:
            raise ValueError(f"weights must have shape (K,) or (B, K), got {np.shape(weights)}")
        k = w.shape[1]
        if k < 1:
            raise ValueError("weights must have at least one component")
        if m.ndim == 1 and c.ndim == 1:  # K one-dimensional components
            m, c = m[:, None], c[:, None, None]
        if m.ndim == 2:
            m = m[None]
        if c.ndim == 3:
            c = c[None]
        if m.ndim != 3 or m.shape[1] != k:
            raise ValueError(
                f"means must have shape ({k}, d) or (B, {k}, d) to match {k} weights, "
                f"got {np.shape(means)}"
            )
        d = m.shape[2]
        if c.ndim != 4 or c.shape[1:] != (k, d, d):
            raise ValueError(
                f"covs must have shape ({k}, {d}, {d}) or (B, {k}, {d}, {d}), got {np.shape(covs)}"
            )
        batch = max(w.shape[0], m.shape[0], c.shape[0])
        for name, arr in (("weights", w), ("means", m), ("covs", c)):
            if arr.shape[0] not in (1, batch):
                raise ValueError(f"{name} has batch {arr.shape[0]}, others have {batch}")
        if np.any(w < 0):
            raise ValueError("weights must be non-negative")
        total = w.sum(axis=1)
        if np.any(np.abs(total - 1.0) > 1e-8):
            raise ValueError(f"weights must sum to 1 (within 1e-8), got sums {total}")
        _check_psd("covs", c.reshape(-1, d, d))
        self.weights = np.array(np.broadcast_to(w / total[:, None], (batch, k)))
        self.means = np.array(np.broadcast_to(m, (batch, k, d)))
        sym = 0.5 * (c + np.swapaxes(c, 2, 3))
        self.covs = np.array(np.broadcast_to(sym, (batch, k, d, d)))
        for arr in (self.weights, self.means, self.covs):
            arr.flags.writeable = False
        self._chol: np.ndarray | None = None

    @classmethod
    def _from_arrays(cls, weights, means, covs) -> GaussianMixture:
        """Trusted constructor for fitted batches (no validation, no copies)."""
        obj = cls.__new__(cls)
        obj.weights, obj.means, obj.covs = weights, means, covs
        obj._chol = None
        return obj

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the sample space."""
        return self.means.shape[2]

    @property
    def n_components(self) -> int:
        """Number of components ``K``."""
        return self.weights.shape[1]

    @property
    def batch_size(self) -> int:
        """Number ``B`` of mixtures in the batch."""
        return self.weights.shape[0]

    @property
    def mean(self) -> np.ndarray:
        r"""Overall mean :math:`\sum_k w_k\mu_k`, ``(B, d)``."""
        return np.einsum("bk,bkd->bd", self.weights, self.means)

    @property
    def cov(self) -> np.ndarray:
        r"""Overall covariance, ``(B, d, d)``.

        :math:`\sum_k w_k(\Sigma_k + \mu_k\mu_k^\top) - \mu\mu^\top`.
        """
        mu = self.mean
        dev = self.means - mu[:, None, :]
        within = np.einsum("bk,bkij->bij", self.weights, self.covs)
        between = np.einsum("bk,bki,bkj->bij", self.weights, dev, dev)
        return within + between

    @property
    def var(self) -> np.ndarray:
        """Total variance (trace of the overall covariance), ``(B,)``."""
        return np.trace(self.cov, axis1=1, axis2=2)

    def broadcast(self, chains: int) -> GaussianMixture:
        """This single mixture repeated ``chains`` times (views, no copies)."""
        if self.batch_size == chains:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")
        k, d = self.n_components, self.dim
        return GaussianMixture._from_arrays(
            np.broadcast_to(self.weights, (chains, k)),
            np.broadcast_to(self.means, (chains, k, d)),
            np.broadcast_to(self.covs, (chains, k, d, d)),
        )

    def cholesky(self) -> np.ndarray:
        """Lower factors of every component covariance, ``(B, K, d, d)``."""
        if self._chol is None:
            b, k, d = self.batch_size, self.n_components, self.dim
            flat = np.ascontiguousarray(self.covs).reshape(b * k, d, d)
            chol = np.empty_like(flat)
            _linalg.psd_cholesky(flat, chol)
            self._chol = chol.reshape(b, k, d, d)
        return self._chol

    def to_dict(self) -> dict:
        """JSON-serialisable description (parameters as nested lists)."""
        return {"type": "GaussianMixture", "weights": self.weights.tolist(),
                "means": self.means.tolist(), "covs": self.covs.tolist()}

    def __repr__(self) -> str:
        return (f"GaussianMixture(n_components={self.n_components}, dim={self.dim}, "
                f"batch_size={self.batch_size})")

    # -- family protocol ---------------------------------------------------------------------
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {
        "weights": ("component",), "means": ("component", "dim"),
        "covs": ("component", "dim", "dim_")}

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)`` points (see :func:`collapse_sim.sampling.mixture_points`)."""
        return sampling.mixture_points(self, k, streams)

    def finite(self) -> np.ndarray:
        """``(B,)`` bool: weights, means and covariances finite."""
        return (np.isfinite(self.weights).all(axis=1) & np.isfinite(self.means).all(axis=(1, 2))
                & np.isfinite(self.covs).all(axis=(1, 2, 3)))

    def record(self) -> dict[str, np.ndarray]:
        """``weights`` ``(B, K)``, ``means`` ``(B, K, d)``, ``covs`` ``(B, K, d, d)``."""
        return {"weights": self.weights, "means": self.means, "covs": self.covs}

    def check_truth(self) -> None:
        """A truth must be one mixture of positive definite components."""
        super().check_truth()
        _check_positive_definite(self.covs[0])

    def component_logpdf(self, pts: np.ndarray) -> np.ndarray:
        r"""``(B, n, K)`` values :math:`\log w_k + \log\mathcal N(x;\mu_k,\Sigma_k)`."""
        b, k, d = self.batch_size, self.n_components, self.dim
        n = pts.shape[1]
        rep = np.broadcast_to(pts[:, None], (b, k, n, d)).reshape(b * k, n, d)
        comp = _gaussian_logpdf(self.means.reshape(b * k, d), self.covs.reshape(b * k, d, d), rep)
        comp = np.swapaxes(comp.reshape(b, k, n), 1, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            logw = np.log(self.weights)
            # a zero-weight component contributes nothing, even where its own density is inf
            return np.where(self.weights[:, None, :] > 0, comp + logw[:, None, :], -np.inf)

    def logpdf(self, x) -> np.ndarray:
        """Log-density at points ``x``: ``(n, d)`` under every member, or ``(B, n, d)``.

        Returns ``(n,)`` for a batch of one with 2-D input, else ``(B, n)``.
        """
        pts, squeeze = _batched_points(self, x)
        out = _logsumexp(self.component_logpdf(pts), axis=2)
        return out[0] if squeeze else out

    def sample(self, n: int, seed: SeedLike = None) -> np.ndarray:
        """Draw ``n`` points from every member (member ``c`` uses chain ``c``'s stream).

        Returns ``(n, d)`` for a batch of one, else ``(B, n, d)``.
        """
        n = check_int("n", n, minimum=1)
        streams = sampling.chain_streams(seed, self.batch_size)
        pts = sampling.mixture_points(self, n, streams)
        return pts[0] if self.batch_size == 1 else pts


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(a))) along ``axis`` with the max shift; all ``-inf`` gives ``-inf``."""
    top = np.max(a, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.sum(np.exp(a - safe), axis=axis)) + np.squeeze(safe, axis=axis)
    # +inf entries (points on a degenerate component's support) dominate the sum
    return np.where(np.squeeze(top, axis=axis) == np.inf, np.inf, out)


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
        """``(B,)`` bool: weights and noise level finite."""
        return np.isfinite(self.weights).all(axis=1) & np.isfinite(self.noise_std)

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
        n = check_int("n", n, minimum=1)
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
