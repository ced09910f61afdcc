r"""The Gaussian-mixture family: mixture models, EM and SGD fits, and every metric that
involves a mixture (as truth or as model).

Metrics when the truth or the model is a Gaussian mixture:

Every model is handled as a mixture: a Gaussian is one component of weight 1.

``w2``. 1-D: exact up to quadrature, :math:`W_2^2=\int_0^1(F^{-1}(u)-G^{-1}(u))^2du`
with :math:`u=\Phi(z)`, the trapezoid rule on :data:`Z_POINTS` points of
:math:`z\in[-8,8]` (the mass beyond is 1e-15) and quantiles solved by
safeguarded Newton on the CDF (lower half) or survival function (upper half). Where the
truth has two or more components of similar widths (standard deviations within
:data:`VFORM_SD_RATIO`), the same integral is written in the truth's own variable,
:math:`\int(F^{-1}(G(v)) - v)^2 g(v)\,dv`, on :data:`Z_POINTS` equally spaced
:math:`v` between the truth's quantiles at :math:`z=\mp 8`
(:meth:`MixtureContext.w2_grid`): where the truth's density dips between its modes its
quantile function is steep in :math:`z`, and the rule needed the full grid and
refinement; in :math:`v` the dip costs nothing. Where a
quantile function (or the transport map :math:`F^{-1}\circ G`) nearly jumps between
two grid points (modes several standard deviations apart, a collapsed narrow
component, a point mass) the trapezoid rule alone is off by up to 7e-3; there the grid's
intervals are integrated by local refinement (adaptive Simpson with new quantiles of
both distributions) and the sums beside them get their Euler--Maclaurin end terms
(``collapse_sim._kernels.mixture_metrics``). Measured relative error against adaptive
quadrature of the quantile formula (``python benchmarks/w2_accuracy.py``): below 2e-14
where nothing needs refinement, below 1.1e-9 on separated modes (6 to 12 sd), spikes of
sd 0.01 and a point mass, where the plain grid was off by 1e-5 to 7e-3. d >= 2: the
*sliced* Wasserstein-2 distance
:math:`SW_2^2=E_\theta[W_2^2(\theta_\#p,\theta_\#q)]` over :data:`SLICES` fixed
directions — a different distance from :math:`W_2` (:math:`SW_2 \le W_2`; it is
what scales to mixtures), estimated with the directions' quadrature error. In 2-D the
16 midpoint angles of the half circle are within 4e-7 (standard normal truth) and 1.5e-5
(two unit modes 4 apart) relative of the angular integral on EM fits, medians 2e-11 and
5e-7 (8 angles: 3e-4 and 2.6e-3); this, not the per-direction sums, bounds the metric's
accuracy there (``benchmarks/w2_slices_accuracy.py`` re-measures it). For mixture
models the grid is visited in nested levels (every 64th point, then every 32nd, ...):
where the integrand is smooth, the sum is taken from the first level from 65 points on
whose extrapolated error is below 1e-13 of the sum (typically 65 to 257 points,
about 1.4 quantile evaluations each), elsewhere from the full grid, refined as above
where needed: equal to the full-grid sum up to rounding where nothing is refined
(relative differences below 5e-13 measured on 16,000 fitted models;
``tests/test_mixture_metrics_fast.py``), 10-20 times faster
(:func:`w2_squared_sums`, ``collapse_sim._kernels.mixture_metrics``). On 1000 EM fits
of two unit modes 4 apart in 2-D (``bench_jax``'s truth) the truth's variable solves
276 quantiles a direction instead of 620 and takes 2.5 times less time, the sums within
3.2e-9 of each other (``python benchmarks/w2_truth_variable.py`` measures both forms). A
Gaussian model
(:func:`_w2_squared_gaussian`) takes the same refinement through its closed form, in
normal scores: the truth's moments over its rough intervals are refined once per
direction.

``kl``. :math:`\mathrm{KL}(p\|q)=E_p[\log p]-E_p[\log q]`. For a Gaussian model the
cross-entropy :math:`-E_p[\log q]` depends on :math:`p` only through its mean and
covariance: closed form; the entropy :math:`-E_p[\log p]` of the truth is computed
once (1-D: adaptive quadrature; d-D: Monte Carlo on :data:`ENTROPY_POINTS` points,
standard error stated in ``MixtureContext.entropy_se``). For a mixture model both
terms are averages over the same :data:`MC_POINTS` held-out truth points
(common random numbers), so the estimate's standard error is
``sd(log p - log q) / sqrt(MC_POINTS)`` (:func:`kl_standard_error`; metric ``kl_se``).
A Monte Carlo estimate of a small KL can come out negative (-0.0016 for a fit close to
the truth, within its standard error): ``kl`` reports :math:`\max(0, \widehat{\mathrm{KL}})`,
as a divergence is never negative, and the metric ``kl_se`` (off by default: ask for
``metrics=(..., "kl", "kl_se")``) gives the standard error of the unclipped estimate. A
``kl`` within about two ``kl_se`` of 0 cannot be told from 0; the clipping raises a mean
over chains by at most the mean of the clipped-away parts, of the order of ``kl_se``.

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

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import numpy as np
from scipy import integrate, optimize, special

from .. import sampling
from .._kernels import _dispatch
from .._kernels import em as _em
from .._kernels import linalg as _linalg
from .._kernels import mixdens as _md
from .._kernels import mixture as _mix
from .._kernels import mixture_metrics as _mm
from .._kernels import sgd as _sgd
from .._random import SeedLike
from .._validation import (
    MAX_COMPONENTS,
    MAX_INT,
    MAX_ITERATIONS,
    as_float_array,
    check_choice,
    check_int,
    check_real,
)
from ..protocol import Competence, Fitter, PointModel
from ..registry import register_metric
from ._sgd import _SCHEDULES, _check_options
from .gaussian import (
    Gaussian,
    _batched_points,
    _check_positive_definite,
    _check_psd,
    _check_resolution,
    _check_sample,
    _gaussian_logpdf,
    _gaussian_outside,
    nll_from_moments,
)
from .gaussian import mean_shift as _mean_shift
from .gaussian import nll as _gaussian_nll
from .gaussian import variance as _variance


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
    stratified : bool
        How a sample of :math:`n` points picks its components. ``False``
        (default): i.i.d. labels, so component :math:`k` gets a
        :math:`\mathrm{Binomial}(n, w_k)` number of points. ``True``: fixed
        counts, as scikit-learn's ``make_blobs`` (the data of Kazdan et al.'s KDE
        experiments): :math:`\lfloor n w_k\rfloor` points each and the
        :math:`n - \sum_k\lfloor n w_k\rfloor` left over one each to the
        components with the largest remainders :math:`n w_k - \lfloor n w_k\rfloor`
        (the lowest index first on ties), in a uniformly shuffled order. With equal
        weights this is ``make_blobs``' rule exactly: :math:`n // K` points each,
        the first :math:`n \bmod K` components one more. Every draw of the truth is
        stratified (the real sample, fresh real points, held-out points); the
        fitted models sample i.i.d. labels. The density, and so every metric, is
        the same.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> mix = cs.GaussianMixture(weights=[.5, .5], means=[[-2.], [2.]], covs=[[[1.]], [[1.]]])
    >>> mix.dim, mix.n_components, mix.batch_size
    (1, 2, 1)
    >>> round(float(mix.var[0]), 6)          # 1 + 4: within- plus between-component variance
    5.0
    """

    def __init__(self, weights, means, covs, *, stratified: bool = False):
        if not isinstance(stratified, (bool, np.bool_)):
            raise TypeError(f"stratified must be True or False, got {stratified!r}")
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
        self.stratified = bool(stratified)

    @classmethod
    def _from_arrays(cls, weights, means, covs, stratified: bool = False) -> GaussianMixture:
        """Trusted constructor for fitted batches (no validation, no copies)."""
        obj = cls.__new__(cls)
        obj.weights, obj.means, obj.covs = weights, means, covs
        obj._chol = None
        obj.stratified = stratified
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
            self.stratified,
        )

    def cholesky(self) -> np.ndarray:
        """Lower factors of every component covariance, ``(B, K, d, d)``."""
        if self._chol is None:
            b, k, d = self.batch_size, self.n_components, self.dim
            flat = np.require(self.covs, np.float64, "CW").reshape(b * k, d, d)
            chol = np.empty_like(flat)
            _linalg.psd_cholesky(flat, chol)
            self._chol = chol.reshape(b, k, d, d)
        return self._chol

    def to_dict(self) -> dict:
        """JSON-serialisable description (parameters as nested lists)."""
        out = {"type": "GaussianMixture", "weights": self.weights.tolist(),
               "means": self.means.tolist(), "covs": self.covs.tolist()}
        if self.stratified:  # i.i.d. truths keep the description they always had
            out["stratified"] = True
        return out

    def __repr__(self) -> str:
        extra = ", stratified=True" if self.stratified else ""
        return (f"GaussianMixture(n_components={self.n_components}, dim={self.dim}, "
                f"batch_size={self.batch_size}{extra})")

    def component_counts(self, n: int) -> np.ndarray:
        r"""``(B, K)`` int64 component counts of a stratified sample of ``n`` points.

        :math:`\lfloor n w_k\rfloor` each, then one more to each of the
        :math:`n - \sum_k \lfloor n w_k\rfloor` components with the largest
        remainders (lowest index first on ties): ``make_blobs``' counts for equal weights.

        Examples
        --------
        >>> import collapse_sim as cs
        >>> mix = cs.GaussianMixture([1/3, 1/3, 1/3], [[0.], [1.], [2.]], [[[1.]]] * 3,
        ...                          stratified=True)
        >>> mix.component_counts(10).tolist()
        [[4, 3, 3]]
        """
        n = check_int("n", n, minimum=0, maximum=MAX_INT)
        exact = n * np.asarray(self.weights, dtype=np.float64)
        counts = np.floor(exact).astype(np.int64)
        left = n - counts.sum(axis=1)
        # stable sort on the negated remainders: the largest first, the lowest index on ties
        order = np.argsort(-(exact - counts), axis=1, kind="stable")
        for b in range(counts.shape[0]):
            counts[b, order[b, :left[b]]] += 1
        return counts

    def _points(self, k: int, streams) -> np.ndarray:
        if not self.stratified:
            return sampling.mixture_points(self, k, streams)
        model = self.broadcast(streams.chains)
        out = np.empty((streams.chains, k, model.dim))
        _mix.stratified_points(streams.states, np.ascontiguousarray(model.component_counts(k)),
                               np.ascontiguousarray(model.means),
                               np.ascontiguousarray(model.cholesky()), out)
        return out

    # -- family protocol ---------------------------------------------------------------------
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {
        "weights": ("component",), "means": ("component", "dim"),
        "covs": ("component", "dim", "dim_")}

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)`` points (see :func:`collapse_sim.sampling.mixture_points`; a
        stratified mixture draws fixed component counts, see the class)."""
        return self._points(k, streams)

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
        for mean, cov in zip(self.means[0], self.covs[0], strict=True):
            _check_resolution(mean, cov)

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
        n = check_int("n", n, minimum=1, maximum=MAX_INT)
        streams = sampling.chain_streams(seed, self.batch_size)
        pts = self._points(n, streams)
        return pts[0] if self.batch_size == 1 else pts


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(a))) along ``axis`` with the max shift; all ``-inf`` gives ``-inf``."""
    top = np.max(a, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.sum(np.exp(a - safe), axis=axis)) + np.squeeze(safe, axis=axis)
    # +inf entries (points on a degenerate component's support) dominate the sum
    return np.where(np.squeeze(top, axis=axis) == np.inf, np.inf, out)


_COV_TYPES = ("full", "diag", "spherical")
_INITS = ("kmeans++", "random", "previous", "kmeans")
#: ``init_from_resp`` method codes of the fresh starts.
_INIT_CODES = {"kmeans++": 0, "random": 1, "kmeans": 2}


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
    init : {"kmeans++", "kmeans", "random", "previous"}
        Starting point of every generation's EM: responsibilities from greedy
        k-means++ centres (as scikit-learn's ``init_params="k-means++"``); from
        full k-means (``"kmeans"``, scikit-learn's *default*
        ``init_params="kmeans"``: Lloyd's iterations from the same k-means++
        centres until the labels stop changing, at most 300 iterations, tolerance
        1e-4 of the mean feature variance, as ``KMeans(n_init=1)``; then one-hot
        responsibilities on the final labels); or random responsibilities — each
        drawn from the chain's stream; or ``"previous"``: the previous
        generation's fitted mixture (generation 1 uses k-means++). A warm start
        keeps each component attached to "its" mode, so components rarely swap or
        merge between generations: collapse then shows as the slow shrinking of
        every component, while a fresh start lets EM re-partition the sample each
        generation, which merges modes and kills components faster.

        The start matters even on one data set: fitted to 1000 points of a 2-D
        standard normal (Shumailov et al.'s GMM setting), the median smaller
        weight is about 0.47 from ``"kmeans"`` (k-means splits the cloud into two
        halves) and about 0.31 from ``"kmeans++"`` (EM stops at an unequal split
        near two single points).

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
    init: Literal["kmeans++", "kmeans", "random", "previous"] = "kmeans++"

    model_type = GaussianMixture
    truth_types = (PointModel,)

    def __post_init__(self):
        check_int("n_components", self.n_components, minimum=1, maximum=MAX_COMPONENTS)
        check_choice("covariance_type", self.covariance_type, _COV_TYPES)
        check_int("max_iter", self.max_iter, minimum=1, maximum=MAX_ITERATIONS)
        check_real("tol", self.tol, low=0.0, low_open=True)
        check_real("reg_covar", self.reg_covar, low=0.0, low_open=True)
        check_choice("init", self.init, _INITS)

    def min_points(self) -> int:
        """EM needs at least one point per component."""
        return self.n_components

    def competence(self, truth) -> Competence:
        """``EXACT`` for a Gaussian truth or a mixture of at most ``n_components``
        components (:func:`mixture_competence`), ``APPROXIMATE`` for other point truths."""
        return mixture_competence(truth, self.n_components)

    def as_model(self, truth) -> GaussianMixture:
        """The truth as a mixture of ``n_components`` (padded with zero-weight copies)."""
        return mixture_of(truth, self.n_components)

    def fit(self, data, *, seed=None, init_model=None) -> GaussianMixture:
        """Fit every chain's points ``(chains, k, d)`` (or ``(k, d)``).

        Parameters
        ----------
        data : array_like
        seed : int, SeedSequence, Generator or None
            Streams for the k-means++, k-means or random initialisation.
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
        if init_model is not None:
            _check_init_model(init_model, arr.shape[0], self.n_components, arr.shape[2])
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
            method = _INIT_CODES.get(self.init, 0)  # "previous" without a model: k-means++
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


def _check_init_model(model, chains: int, k: int, d: int) -> None:
    """A starting mixture must match the data and the fitter before EM's kernels see it."""
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"init_model must be a GaussianMixture, got {type(model).__name__}")
    if model.n_components != k or model.dim != d or model.batch_size not in (1, chains):
        raise ValueError(
            f"init_model must have {k} components of dimension {d} and a batch of 1 or "
            f"{chains}, got {model.n_components} components of dimension {model.dim} and a "
            f"batch of {model.batch_size}")


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
        check_int("n_components", self.n_components, minimum=1, maximum=MAX_COMPONENTS)
        _check_options(self, ("previous", "kmeans++"))

    def min_points(self) -> int:
        """A minibatch, and k-means++ with ``n_components`` centres, must fit."""
        return max(self.batch_size, self.n_components)

    def competence(self, truth) -> Competence:
        """``EXACT`` for a Gaussian truth or a mixture of at most ``n_components``
        components (:func:`mixture_competence`), ``APPROXIMATE`` for other point truths."""
        return mixture_competence(truth, self.n_components)

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


def mixture_competence(truth, k: int) -> Competence:
    """How a family of ``k``-component Gaussian mixtures suits ``truth``.

    ``EXACT`` for a Gaussian (a one-component mixture) or a mixture of at most ``k``
    components, which the family contains (:func:`mixture_of`); ``APPROXIMATE`` for a
    mixture of more components and any other point truth; ``INCOMPATIBLE`` for a truth
    that is not a :class:`~collapse_sim.protocol.PointModel`. The covariance type of the
    fit is not considered.
    """
    if isinstance(truth, Gaussian) or (isinstance(truth, GaussianMixture)
                                       and truth.n_components <= k):
        return Competence.EXACT
    return Competence.APPROXIMATE if isinstance(truth, PointModel) else Competence.INCOMPATIBLE


def mixture_of(truth, k: int) -> GaussianMixture:
    """A Gaussian or mixture truth as a ``k``-component mixture, padded with zero-weight
    copies of its first component (row 0 of recorded mixture fits)."""
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


# -- metrics involving a mixture ----------------------------------------------------------

Z_POINTS = 1025
SLICES = 16
MC_POINTS = 2000
ENTROPY_POINTS = 200_000
_Z = np.linspace(-8.0, 8.0, Z_POINTS)
_ZW = np.full(Z_POINTS, _Z[1] - _Z[0]) * np.exp(-0.5 * _Z**2) / math.sqrt(2 * math.pi)
_ZW[[0, -1]] *= 0.5
_U = special.ndtr(_Z)
#: :math:`\Phi(-|z|)` (the tail probability each quantile solves for) and
#: :math:`\varphi(z)` at the normal scores.
_TARGET = special.ndtr(-np.abs(_Z))
_PHI = np.exp(-0.5 * _Z**2) / math.sqrt(2 * math.pi)


def components(model):
    """``(weights (B,K), means (B,K,d), covs (B,K,d,d))`` of a Gaussian or mixture batch."""
    if isinstance(model, GaussianMixture):
        return model.weights, model.means, model.covs
    return np.ones((model.batch_size, 1)), model.mean[:, None], model.cov[:, None]


def _chol(covs):
    b, k, d, _ = covs.shape
    flat = np.require(covs, np.float64, "CW").reshape(b * k, d, d)
    out = np.empty_like(flat)
    _linalg.psd_cholesky(flat, out)
    return out.reshape(b, k, d, d)


def mean_logpdf(model, pts) -> np.ndarray:
    """``(B,)`` mean log-density of the points ``pts`` ``(m, d)`` under every member.

    Remembered on the model for the last ``pts`` (``kl`` and ``nll`` share it).
    """
    memo = getattr(model, "_mean_logpdf_memo", None)
    if memo is not None and memo[0] is pts:
        return memo[1]
    w, m, c = components(model)
    out = np.empty(w.shape[0])
    # the work is chains x points x components, more than the largest array shows: the
    # chain-parallel build from PARALLEL_MIN_WORK of it (both builds give the same bits)
    work = w.shape[0] * pts.shape[0] * w.shape[1]
    kernel = (_md.mean_logpdf.parallel if w.shape[0] > 1 and _dispatch.use_parallel(work)
              else _md.mean_logpdf.serial)
    # writable copies of read-only arrays (a truth's): one compiled version serves all
    kernel(np.require(w, np.float64, "CW"), np.require(m, np.float64, "CW"), _chol(c),
           np.require(pts.T, np.float64, "CW"), out)
    model._mean_logpdf_memo = (pts, out)
    return out


class MixtureContext:
    """Truth-side quantities computed once per simulation."""

    def __init__(self, truth, heldout):
        self.truth = truth
        self.heldout = heldout
        self.source = heldout  # what the caller passed (the cache's key), kept alive
        self.mc = np.ascontiguousarray(heldout[:MC_POINTS])
        self._entropy = None
        self.entropy_se = 0.0
        self._quantiles = {}
        self._radius2 = None
        self._log_p_mc = None

    # -- entropy of the truth ------------------------------------------------------------------
    def entropy(self) -> float:
        """:math:`-E_p[\\log p]` of the truth."""
        if self._entropy is None:
            truth = self.truth
            if truth.dim == 1:
                _, m, c = components(truth)
                lo = float(np.min(m[0, :, 0] - 12 * np.sqrt(c[0, :, 0, 0])))
                hi = float(np.max(m[0, :, 0] + 12 * np.sqrt(c[0, :, 0, 0])))

                def integrand(x):
                    lp = float(truth.logpdf(np.array([[x]]))[0])
                    return -math.exp(lp) * lp

                points = sorted(m[0, :, 0].tolist())
                self._entropy, _ = integrate.quad(integrand, lo, hi, points=points, limit=400)
            else:
                pts = truth.draw(ENTROPY_POINTS, sampling.chain_streams(20240917, 1))[0]
                lp = truth.logpdf(pts)
                self._entropy = float(-lp.mean())
                self.entropy_se = float(lp.std(ddof=1) / math.sqrt(ENTROPY_POINTS))
        return self._entropy

    def log_p_mc(self) -> np.ndarray:
        if self._log_p_mc is None:
            self._log_p_mc = self.truth.logpdf(self.mc)
        return self._log_p_mc

    # -- quantiles of (projected) truth --------------------------------------------------------
    def truth_quantiles(self, direction=None) -> np.ndarray:
        key = None if direction is None else tuple(np.round(direction, 15))
        if key not in self._quantiles:
            self._quantiles[key] = project_quantiles(self.truth, direction, _Z)[0]
        return self._quantiles[key]

    def truth_quantile_table(self, directions) -> np.ndarray:
        """``(len(directions), Z_POINTS)`` truth quantiles, one row per direction (cached)."""
        key = ("table", tuple(None if u is None else tuple(np.round(u, 15)) for u in directions))
        if key not in self._quantiles:
            self._quantiles[key] = np.ascontiguousarray(
                np.stack([self.truth_quantiles(u) for u in directions]))
        return self._quantiles[key]

    def truth_side(self, directions) -> tuple[np.ndarray, ...]:
        r"""What :func:`w2_squared_sums` needs of the truth, per direction (cached):
        ``(table, weights, mus, sds, slopes)``: the quantile table
        (:meth:`truth_quantile_table`), the projected truth's weights ``(K,)``, means and
        standard deviations ``(S, K)``, and the quantiles' slopes
        :math:`dt/dz = \varphi(z)/g(t)` ``(S, Z_POINTS)`` (inf where the density is 0, 0
        on a point mass)."""
        key = ("side", tuple(None if u is None else tuple(np.round(u, 15)) for u in directions))
        if key not in self._quantiles:
            table = self.truth_quantile_table(directions)
            w, mus, sds = _projected(self.truth, directions)
            tw, tmu, tsd = w[0], mus[0], sds[0]
            slopes = np.empty_like(table)
            for s in range(len(directions)):
                slopes[s] = _slopes(tw, tmu[s], tsd[s], table[s])
            self._quantiles[key] = (table, np.ascontiguousarray(tw, dtype=np.float64),
                                    np.ascontiguousarray(tmu), np.ascontiguousarray(tsd),
                                    slopes)
        return self._quantiles[key]

    def w2_grid(self, directions) -> tuple[np.ndarray, ...]:
        r"""The nodes :func:`w2_squared_sums` integrates on, per direction (cached):
        ``(var, z, dens, curv, weights, target, vform, tq, tqp)``, each ``(S, Z_POINTS)``
        but ``vform`` ``(S,)`` bool; see :func:`_truth_variable_grid` for when a direction
        integrates in the truth's own variable (``vform``) rather than in normal scores."""
        key = ("grid", tuple(None if u is None else tuple(np.round(u, 15))
                             for u in directions))
        if key not in self._quantiles:
            table, tw, tmu, tsd, slopes = self.truth_side(directions)
            rows = [_truth_variable_grid(tw, tmu[s], tsd[s], table[s])
                    or (_Z, _Z, _PHI, _Z, _ZW, _TARGET, False, table[s], slopes[s])
                    for s in range(len(directions))]
            grid = [np.ascontiguousarray(np.stack([r[i] for r in rows])) for i in range(9)]
            self._quantiles[key] = tuple(grid)
        return self._quantiles[key]

    def gaussian_moments(self, direction) -> tuple[tuple[float, ...], np.ndarray]:
        r"""``(moments, corrections)`` of :func:`_w2_squared_gaussian` for one direction
        (cached). ``moments`` is ``(A0, A1, A2, P0, P1, P2)``: the trapezoid sums
        :math:`\sum_j\omega_j z_j^i` and :math:`\sum_j\omega_j z_j^i t_j^{1+[i=2]}` over
        the grid plus ``corrections`` ``(6,)``, their errors where the truth's quantile
        function is too rough for the grid
        (``collapse_sim._kernels.mixture_metrics.truth_moment_corrections``; all 0 where
        nothing is rough)."""
        key = ("moments", None if direction is None else tuple(np.round(direction, 15)))
        if key not in self._quantiles:
            table, tw, tmu, tsd, slopes = self.truth_side([direction])
            q = table[0]
            grid = np.array([_A0, _A1, _A2, float(np.sum(_ZW * q)), float(np.sum(_ZW * _Z * q)),
                             float(np.sum(_ZW * q * q))])
            fix = np.zeros(6)
            _mm.truth_moment_corrections(tw, tmu[0], tsd[0], _Z, _PHI, q, slopes[0],
                                         _mm.REFINE_TOL * max(grid[5], 1e-300), fix)
            self._quantiles[key] = (tuple((grid + fix).tolist()), fix)
        return self._quantiles[key]

    # -- tail region -----------------------------------------------------------------------------
    def radius2(self, tail_fn) -> float:
        """Squared Mahalanobis radius with exactly 1% of the truth outside (d >= 2)."""
        if self._radius2 is None:
            target = 0.01

            def excess(r2):
                return float(tail_fn(self.truth, r2)[0]) - target

            hi = 10.0
            while excess(hi) > 0:
                hi *= 2.0
            self._radius2 = optimize.brentq(excess, 1e-9, hi, xtol=1e-13, rtol=1e-13)
        return self._radius2


def project_quantiles(model, direction, z) -> np.ndarray:
    """``(B, len(z))`` ``Phi(z)``-quantiles of every member projected on ``direction``.

    ``z`` is increasing (normal scores, so tail levels keep their precision); in 1-D
    ``direction`` is ``None``.
    """
    w, m, c = components(model)
    if direction is None:
        mus, var = m[:, :, 0], c[:, :, 0, 0]
    else:
        mus = m @ direction
        var = np.einsum("i,bkij,j->bk", direction, c, direction)
    out = np.empty((w.shape[0], len(z)))
    _md.quantiles_1d(np.ascontiguousarray(w), np.ascontiguousarray(mus),
                     np.ascontiguousarray(np.sqrt(np.clip(var, 0.0, None))),
                     np.ascontiguousarray(z, dtype=np.float64), out)
    return out


def slice_directions(d: int, count: int = SLICES) -> np.ndarray:
    r"""``count`` (:data:`SLICES` for the metric) fixed unit vectors ``(count, d)``: the
    midpoint angles :math:`\pi(i + 1/2)/n` (:math:`n` = ``count``) of the half circle
    for d = 2; scrambled Sobol' points mapped to normals and normalised beyond.
    ``count`` must be an integer >= 1 (``ValueError`` / ``TypeError`` otherwise)."""
    count = check_int("count", count, minimum=1, maximum=1 << 20)
    if d == 2:
        ang = np.pi * (np.arange(count) + 0.5) / count
        return np.column_stack([np.cos(ang), np.sin(ang)])
    from scipy import stats

    u = special.ndtri(stats.qmc.Sobol(d, scramble=True, seed=7).random(count))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def _model_quantiles(model, direction) -> np.ndarray:
    if isinstance(model, GaussianMixture):
        return project_quantiles(model, direction, _Z)
    if direction is None:
        mu, var = model.mean[:, 0], model.cov[:, 0, 0]
    else:
        mu = model.mean @ direction
        var = np.einsum("i,bij,j->b", direction, model.cov, direction)
    return mu[:, None] + np.sqrt(np.clip(var, 0.0, None))[:, None] * _Z[None, :]


#: Moments of the normal-score quadrature: sum of weights, of weights * z, of weights * z^2.
_A0, _A1, _A2 = float(np.sum(_ZW)), float(np.sum(_ZW * _Z)), float(np.sum(_ZW * _Z**2))


def _gaussian_projection(model, direction):
    if direction is None:
        mu, var = model.mean[:, 0], model.cov[:, 0, 0]
    else:
        mu = model.mean @ direction
        var = np.einsum("i,bij,j->b", direction, model.cov, direction)
    return mu, np.sqrt(np.clip(var, 0.0, None))


def _w2_squared_gaussian(ctx: MixtureContext, model, direction) -> np.ndarray:
    r"""The quadrature :math:`\sum_i w_i (\mu + s z_i - q_i)^2` for Gaussian models in O(1).

    The model's quantiles are :math:`\mu + s z_i`, so the sum expands into the
    truth-side sums :math:`P_j = \sum_i w_i z_i^{j_1} q_i^{j_2}`, computed once, and the
    quadrature's moments: the same number as the direct sum up to rounding. Where the
    truth's quantile function nearly jumps between two grid points, these sums are
    corrected by local refinement (:meth:`MixtureContext.gaussian_moments`). Where the
    expansion cancels (a result below ``1e-9`` of its terms) the direct sum is used.
    """
    q = ctx.truth_quantiles(direction)
    moments, fix = ctx.gaussian_moments(direction)
    mu, sd = _gaussian_projection(model, direction)
    out = _expansion(mu, sd, moments)
    a0, _, a2, _, _, p2 = moments
    scale = mu * mu * a0 + sd * sd * a2 + p2
    rough = ~(out > 1e-9 * scale)
    if rough.any():
        m, s = mu[rough], sd[rough]
        direct = m[:, None] + s[:, None] * _Z[None, :]
        # the grid's sum, and the corrections of the moments where the truth is rough
        out[rough] = np.sum((direct - q) ** 2 * _ZW, axis=1) + _expansion(m, s, fix)
    return out


def _expansion(mu, sd, moments):
    r""":math:`\mu^2A_0 + s^2A_2 + P_2 + 2\mu sA_1 - 2\mu P_0 - 2sP_1` of the
    ``moments`` ``(A0, A1, A2, P0, P1, P2)``: :math:`\sum_j\omega_j(\mu + sz_j - t_j)^2`
    expanded (or its correction, given the moments' corrections)."""
    a0, a1, a2, p0, p1, p2 = moments
    return (mu * mu * a0 + sd * sd * a2 + p2 + 2.0 * mu * sd * a1
            - 2.0 * mu * p0 - 2.0 * sd * p1)


#: Mixture models whose quantile grids (``len(_Z)`` values each) ``w2`` holds at once: its
#: working memory stays about 25 MB whatever the number of chains (a million chains
#: needed 8 GB at once).
W2_BLOCK = 1024


def w2(ctx: MixtureContext, model) -> np.ndarray:
    if not isinstance(model, GaussianMixture):
        if model.dim == 1:
            return np.sqrt(_w2_squared_gaussian(ctx, model, None))
        total = sum(_w2_squared_gaussian(ctx, model, direction)
                    for direction in slice_directions(model.dim))
        return np.sqrt(total / SLICES)
    directions = [None] if model.dim == 1 else list(slice_directions(model.dim))
    table = ctx.truth_quantile_table(directions)
    out = np.empty(model.batch_size)
    for start in range(0, model.batch_size, W2_BLOCK):  # each member's value is its own
        block = slice(start, start + W2_BLOCK)
        part = GaussianMixture._from_arrays(model.weights[block], model.means[block],
                                            model.covs[block])
        # a member equal to the truth (row 0 of every run): its quantiles through the
        # truth's own solver, so its distance is exactly 0, not rounding (the quadrature
        # would take the full grid on its rounding noise)
        tw, tm, tc = components(ctx.truth)
        same = np.zeros(part.batch_size, dtype=bool)
        if tw.shape[1] == part.n_components:
            same = (np.all(part.weights == tw, axis=1) & np.all(part.means == tm, axis=(1, 2))
                    & np.all(part.covs == tc, axis=(1, 2, 3)))
        sums = np.empty((part.batch_size, len(directions)))
        if not same.all():
            rest = part if not same.any() else GaussianMixture._from_arrays(
                part.weights[~same], part.means[~same], part.covs[~same])
            sums[~same] = w2_squared_sums(rest, directions, ctx)[0]
        if same.any():
            twin = GaussianMixture._from_arrays(part.weights[same], part.means[same],
                                                part.covs[same])
            sums[same] = np.stack(
                [np.sum((project_quantiles(twin, u, _Z) - table[s]) ** 2 * _ZW, axis=1)
                 for s, u in enumerate(directions)], axis=1)
        total = np.zeros(part.batch_size)
        for s in range(len(directions)):  # summed over directions in the order of old
            total += sums[:, s]
        out[block] = np.sqrt(total if model.dim == 1 else total / SLICES)
    return out


def w2_squared_sums(model: GaussianMixture, directions, ctx: MixtureContext):
    r"""Per member and direction, the quadrature of :math:`\int(q - t)^2\varphi\,dz`
    behind :func:`w2`, and how many model quantiles it solved.

    Parameters
    ----------
    model : GaussianMixture
        ``B`` mixtures in ``d`` dimensions.
    directions : list
        ``S`` unit vectors of length ``d`` (``[None]`` in 1-D).
    ctx : MixtureContext
        The truth's side: its quantiles at the normal scores :data:`_Z` and its projected
        components, per direction (:meth:`MixtureContext.truth_side`).

    Returns
    -------
    sums : ndarray
        ``(B, S)`` float: the trapezoid sum :math:`\sum_j \omega_j (q_j - t_j)^2` over all
        :data:`Z_POINTS` scores with the model quantiles of :func:`project_quantiles`, up to
        rounding, where the integrand is smooth: there nested coarser grids whose sums have
        visibly converged stand in for the full grid (extrapolated relative error at most
        :data:`collapse_sim._kernels.mixture_metrics.REL_TOL`). Where it is not (the model's
        or the truth's quantile function nearly jumps between two grid points), the full
        grid's sum with those intervals integrated by local refinement instead of the
        trapezoid rule; see that module.
    nodes : ndarray
        ``(B, S)`` int64, the number of model quantiles solved (33 to :data:`Z_POINTS`, more
        with refinement).
    """
    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model must be a GaussianMixture, got {type(model).__name__}")
    if not isinstance(ctx, MixtureContext):
        raise TypeError(f"ctx must be a MixtureContext, got {type(ctx).__name__}")
    w, mus, sds = _projected(model, directions)
    _, tw, tmu, tsd, _ = ctx.truth_side(directions)
    var, z, dens, curv, weights, target, vform, tq, tqp = ctx.w2_grid(directions)
    sums = np.empty(mus.shape[:2])
    nodes = np.empty(mus.shape[:2], dtype=np.int64)
    _mm.w2_squared(np.ascontiguousarray(w, dtype=np.float64), mus, sds, var, z, dens, curv,
                   weights, target, vform, tq, tw, tmu, tsd, tqp, sums, nodes)
    return sums, nodes


def _projected(model, directions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(weights (B, K), means (B, S, K), sds (B, S, K))`` of every member's components
    projected on each of the ``S`` directions (``[None]`` in 1-D)."""
    w, m, c = components(model)
    mus, sds = [], []
    for direction in directions:
        if direction is None:
            if m.shape[2] != 1:
                raise ValueError(f"direction None needs a 1-D model, got d = {m.shape[2]}")
            mu, var = m[:, :, 0], c[:, :, 0, 0]
        else:
            direction = np.asarray(direction, dtype=np.float64)
            if direction.shape != (m.shape[2],):
                raise ValueError(f"directions must have shape ({m.shape[2]},), got "
                                 f"{direction.shape}")
            mu = m @ direction
            var = np.einsum("i,bkij,j->bk", direction, c, direction)
        mus.append(mu)
        sds.append(np.sqrt(np.clip(var, 0.0, None)))
    return (w, np.ascontiguousarray(np.stack(mus, axis=1)),
            np.ascontiguousarray(np.stack(sds, axis=1)))


#: A truth projected on a direction is integrated in its own variable when it has two or
#: more live components, none a point mass, whose standard deviations are within this
#: factor of each other (:func:`_truth_variable_grid`).
VFORM_SD_RATIO = 4.0


def _truth_variable_grid(w, mu, sd, t):
    r"""The quadrature nodes of :math:`W_2^2` in the truth's own variable, or ``None``.

    :math:`W_2^2 = \int (F^{-1}(\Phi(z)) - G^{-1}(\Phi(z)))^2\varphi(z)\,dz
    = \int (F^{-1}(G(v)) - v)^2 g(v)\,dv`: in the second form the grid is equally
    spaced in :math:`v` between the truth's quantiles at :math:`z = \mp 8` (``t[0]``,
    ``t[-1]``), where a dip of the truth's density between two modes costs nothing (in
    normal scores its quantile function is steep there, and the trapezoid rule needs the
    full grid and refinement: ``benchmarks/w2_truth_variable.py``). Taken for a truth
    ``(w, mu, sd)`` of two or more live components, no point mass, standard deviations
    within :data:`VFORM_SD_RATIO` of each other (a narrow component would get few nodes
    of an equally spaced grid), and a density positive and finite on every node; a
    single Gaussian's two forms are the same grid, and it keeps normal scores.

    Returns ``(var, z, dens, curv, weights, target, True, tq, tqp)``: the nodes
    :math:`v_j`, their normal scores :math:`z_j = \Phi^{-1}(G(v_j))`, the density
    :math:`g(v_j)`, :math:`-g'(v_j)/g(v_j)`, the trapezoid weights times :math:`g`, the
    tail probability :math:`\min(G, 1 - G)` each model quantile solves for (each tail
    summed from its own end), the truth's quantiles (the nodes themselves) and their
    slope 1.
    """
    live = w > 0.0
    w, mu, sd = w[live], mu[live], sd[live]
    if w.size < 2 or not np.all(sd > 0.0) or sd.max() > VFORM_SD_RATIO * sd.min():
        return None
    var = np.linspace(t[0], t[-1], t.size)
    u = (var[:, None] - mu) / sd
    cdf = special.ndtr(u) @ w
    sf = special.ndtr(-u) @ w
    k = np.exp(-0.5 * u * u) * (w / (sd * math.sqrt(2 * math.pi)))
    dens = k.sum(axis=1)
    if not (np.all(dens > 0.0) and np.all(np.isfinite(dens))):
        return None
    curv = (k * (u / sd)).sum(axis=1) / dens
    upper = sf <= cdf
    target = np.where(upper, sf, cdf)
    z = np.where(upper, -special.ndtri(sf), special.ndtri(cdf))
    weights = np.full(t.size, var[1] - var[0]) * dens
    weights[[0, -1]] *= 0.5
    return var, z, dens, curv, weights, target, True, var, np.ones(t.size)


def _slopes(w, mu, sd, t) -> np.ndarray:
    r""":math:`dt/dz = \varphi(z)/g(t)` at the quantiles ``t`` (at :data:`_Z`) of the 1-D
    mixture ``(w, mu, sd)``: inf where its density is 0, 0 on a point mass."""
    live = (w > 0.0) & (sd > 0.0)
    z = (t[:, None] - mu[live]) / sd[live]
    dens = np.sum(w[live] * np.exp(-0.5 * z * z) / (sd[live] * math.sqrt(2 * math.pi)), axis=1)
    with np.errstate(divide="ignore"):
        out = np.where(dens > 0.0, _PHI / np.where(dens > 0.0, dens, 1.0), np.inf)
    for k in np.flatnonzero((w > 0.0) & (sd == 0.0)):
        out[np.abs(t - mu[k]) <= _mm.POINT_MASS_RTOL * max(1.0, abs(mu[k]))] = 0.0
    return out


def cross_entropy_gaussian(truth, model) -> np.ndarray:
    """:math:`-E_p[\\log q]` for Gaussian models ``q``, from the truth's mean and covariance."""
    return nll_from_moments(model, truth.mean[0], truth.cov[0])


def kl(ctx: MixtureContext, model) -> np.ndarray:
    """KL(truth || model), Monte Carlo where a mixture is involved, clipped at 0 (see the
    module: a negative estimate is noise around a KL below its standard error)."""
    if not isinstance(model, GaussianMixture):
        value = cross_entropy_gaussian(ctx.truth, model) - ctx.entropy()
    else:
        # the truth's term through the same kernel as the model's: exactly 0 at the truth
        value = mean_logpdf(ctx.truth, ctx.mc)[0] - mean_logpdf(model, ctx.mc)
    return np.where(np.isnan(value), np.inf, np.maximum(value, 0.0))


def kl_standard_error(ctx: MixtureContext, model) -> np.ndarray:
    """Monte Carlo standard error of :func:`kl` per member (0 where it is closed form)."""
    if not isinstance(model, GaussianMixture):
        return np.full(model.batch_size, ctx.entropy_se)
    if ctx.mc.shape[0] < 2:  # the sample standard deviation needs two points
        raise ValueError(f"reference must hold at least 2 points for a standard error, got "
                         f"shape {ctx.mc.shape}")
    lq = model.logpdf(ctx.mc)
    diff = ctx.log_p_mc()[None, :] - lq
    return diff.std(axis=1, ddof=1) / math.sqrt(ctx.mc.shape[0])


def nll(ctx: MixtureContext, model) -> np.ndarray:
    value = -mean_logpdf(model, ctx.mc)
    return np.where(np.isnan(value), np.inf, value)


def tail_mass(ctx: MixtureContext, model, gaussian_tail) -> np.ndarray:
    """Mass outside the truth's 99% region; ``gaussian_tail(centre, cov_whitener, r2, model)``."""
    w, m, c = components(model)
    d = m.shape[2]
    if d == 1:
        lo, hi = project_quantiles(ctx.truth, None, special.ndtri([0.005, 0.995]))[0]
        sd = np.sqrt(np.clip(c[:, :, 0, 0], 0.0, None))
        mu = m[:, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = special.ndtr((lo - mu) / sd) + special.ndtr((mu - hi) / sd)
        point = ((mu < lo) | (mu > hi)).astype(float)
        return np.sum(w * np.where(sd > 0, spread, point), axis=1)
    r2 = ctx.radius2(lambda mix, rr: _components_outside(ctx.truth, mix, rr, gaussian_tail))
    return _components_outside(ctx.truth, model, r2, gaussian_tail)


def _components_outside(truth, model, r2, gaussian_tail) -> np.ndarray:
    w, m, c = components(model)
    b, k, d = m.shape
    outside = gaussian_tail(truth.mean[0], truth.cov[0], r2, m.reshape(b * k, d),
                            c.reshape(b * k, d, d))
    return np.sum(w * outside.reshape(b, k), axis=1)


def l2(truth, model) -> np.ndarray:
    r""":math:`\int (p - q)^2\,dx`, closed form for Gaussian mixtures; ``inf`` where either
    has a point-mass component (also where both put one at the same point: inf - inf)."""
    with np.errstate(invalid="ignore"):
        value = _overlap(model, model) + _overlap(truth, truth) - 2.0 * _overlap(truth, model)
    return np.where(np.isnan(value), np.inf, value)


def _overlap(a, b) -> np.ndarray:
    r""":math:`\int p_a p_b` per member: ``sum_ij w_i v_j N(mu_i - nu_j; 0, S_i + T_j)``."""
    wa, ma, ca = components(a)
    wb, mb, cb = components(b)
    batch = max(wa.shape[0], wb.shape[0])
    d = ma.shape[2]
    diff = ma[:, :, None, :] - mb[:, None, :, :]
    cov = ca[:, :, None] + cb[:, None, :]
    cov = np.broadcast_to(cov, (batch, *cov.shape[1:]))
    diff = np.broadcast_to(diff, (batch, *diff.shape[1:]))
    sign, logdet = np.linalg.slogdet(cov)
    regular = sign > 0
    safe = np.where(regular[..., None, None], cov, np.eye(d))
    sol = np.linalg.solve(safe, diff[..., None])[..., 0]
    quad = np.sum(diff * sol, axis=-1)
    with np.errstate(over="ignore", divide="ignore"):
        dens = np.exp(-0.5 * (d * math.log(2 * math.pi) + np.where(regular, logdet, 0.0) + quad))
    # a singular S_i + T_j (two point masses): infinite density where they coincide
    dens = np.where(regular, dens, np.where(np.all(diff == 0, axis=-1), np.inf, 0.0))
    weight = np.broadcast_to(wa[:, :, None] * wb[:, None, :], dens.shape)
    with np.errstate(invalid="ignore"):
        return np.sum(np.where(weight > 0, weight * dens, 0.0), axis=(1, 2))


def sample_w2(ctx: MixtureContext, pts: np.ndarray) -> np.ndarray:
    """W2 (sliced in d-D) between the truth and the empirical law of ``pts`` ``(B, m, d)``."""
    d = pts.shape[2]
    if d == 1:
        q = np.quantile(pts[:, :, 0], _U, axis=1).T
        return np.sqrt(np.sum((q - ctx.truth_quantiles()) ** 2 * _ZW, axis=1))
    total = np.zeros(pts.shape[0])
    for direction in slice_directions(d):
        q = np.quantile(pts @ direction, _U, axis=1).T
        total += np.sum((q - ctx.truth_quantiles(direction)) ** 2 * _ZW, axis=1)
    return np.sqrt(total / SLICES)


def sample_tail_mass(ctx: MixtureContext, pts: np.ndarray, gaussian_tail) -> np.ndarray:
    """Fraction of ``pts`` ``(B, m, d)`` outside the truth's central 99% region."""
    truth = ctx.truth
    d = pts.shape[2]
    if d == 1:
        lo, hi = project_quantiles(truth, None, special.ndtri([0.005, 0.995]))[0]
        return np.mean((pts[:, :, 0] < lo) | (pts[:, :, 0] > hi), axis=1)
    if isinstance(truth, GaussianMixture):
        r2 = ctx.radius2(lambda mix, rr: _components_outside(truth, mix, rr, gaussian_tail))
    else:
        from scipy import stats

        r2 = float(stats.chi2.ppf(0.99, d))
    inv = np.linalg.inv(np.linalg.cholesky(truth.cov[0]))
    white = (pts - truth.mean[0]) @ inv.T
    return np.mean(np.sum(white**2, axis=2) > r2, axis=1)


_CONTEXTS: dict[int, MixtureContext] = {}


def _mixture_context(truth, reference=None, name: str = "heldout") -> MixtureContext:
    """Truth-side precomputations for the mixture path (cached per truth and reference).

    ``reference`` (``name`` in messages) must be ``(n, d)`` finite points with ``n >= 1``;
    ``None`` draws :data:`MC_POINTS` from the truth.
    """
    key = (id(truth), None if reference is None else id(reference))
    ctx = _CONTEXTS.get(key)
    if ctx is None or ctx.truth is not truth or ctx.source is not reference:
        source = reference
        if reference is None:
            reference = truth.draw(MC_POINTS, sampling.chain_streams(20241125, 1))[0]
        else:
            reference = _check_sample(name, reference, truth.dim)
        ctx = MixtureContext(truth, reference)
        ctx.source = source
        if len(_CONTEXTS) > 32:
            _CONTEXTS.clear()
        _CONTEXTS[key] = ctx
    return ctx


# -- registrations: every (truth, model) pair that involves a mixture ---------------------------

_PAIRS = [(GaussianMixture, GaussianMixture), (GaussianMixture, Gaussian),
          (Gaussian, GaussianMixture)]


def _nll(truth, model, heldout):
    if isinstance(model, Gaussian):  # cross-entropy of a Gaussian: held-out moments suffice
        return _gaussian_nll(truth, model, heldout)
    return nll(_mixture_context(truth, heldout), model)


def _kl_se(truth, model, ctx):
    if isinstance(truth, Gaussian) and isinstance(model, Gaussian):
        return np.zeros(model.batch_size)  # closed form
    return kl_standard_error(_mixture_context(truth, ctx.heldout), model)


for _truth, _model in _PAIRS:
    register_metric("variance", _truth, _model, lambda t, m, ctx: _variance(t, m),
                    doc="total variance of the model")
    register_metric("mean_shift", _truth, _model, lambda t, m, ctx: _mean_shift(t, m),
                    distance=True, doc="||m - mu||")
    register_metric("w2", _truth, _model, lambda t, m, ctx: w2(_mixture_context(t), m),
                    distance=True, doc="Wasserstein-2 (sliced in d >= 2) distance to the truth")
    register_metric("kl", _truth, _model,
                    lambda t, m, ctx: kl(_mixture_context(t, ctx.heldout), m), heldout=True,
                    distance=True, doc="KL(truth || model), Monte Carlo, clipped at 0")
    register_metric("nll", _truth, _model, lambda t, m, ctx: _nll(t, m, ctx.heldout),
                    heldout=True, doc="mean -log q of held-out real points")
    register_metric("tail_mass", _truth, _model, lambda t, m, ctx: tail_mass(
        _mixture_context(t), m, _gaussian_outside), doc="mass outside the truth's 99% region")
for _truth in (Gaussian, GaussianMixture):
    for _model in (Gaussian, GaussianMixture):
        register_metric("l2", _truth, _model, lambda t, m, ctx: l2(t, m), default=False,
                        distance=True, doc="squared L2 distance of the densities")
        register_metric("kl_se", _truth, _model, _kl_se, heldout=True, default=False,
                        doc="Monte Carlo standard error of kl (before clipping at 0; 0 where "
                            "kl is closed form)")


# -- generation stages ----------------------------------------------------------------------

def _tempered(stage, model: GaussianMixture) -> GaussianMixture:
    r"""Every component :math:`\mathcal N(\mu_j, \tau^2\Sigma_j)`, weights unchanged (a
    mixture tempered component by component; not the density raised to :math:`1/\tau`,
    which is no Gaussian mixture)."""
    return GaussianMixture._from_arrays(model.weights, model.means, model.covs * stage.tau**2)


def _register_stages():
    from ..stages import Temperature, register_stage

    register_stage(Temperature, GaussianMixture, _tempered)


_register_stages()
