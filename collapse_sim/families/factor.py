r"""Factor analysis: probabilistic PCA with a noise variance per dimension.

A factor-analysis model with :math:`q` factors in :math:`\mathbb R^d` is the latent-variable
model

.. math::

    z \sim \mathcal N(0, I_q), \qquad x = \mu + W z + \varepsilon, \qquad
    \varepsilon \sim \mathcal N(0, \Psi), \quad \Psi = \operatorname{diag}(\psi_1, \dots,
    \psi_d),

so :math:`x \sim \mathcal N(\mu, C)` with :math:`C = WW^\top + \Psi`. Probabilistic PCA
(:mod:`collapse_sim.families.ppca`) is the special case :math:`\Psi = \sigma^2 I`: factor
analysis lets every pixel keep its own noise level, so a pixel that barely varies (the
border of a digit) is not given the same noise as one that varies a lot.

Maximum likelihood has no closed form. :class:`FactorAnalysisFit` runs scikit-learn's
``FactorAnalysis`` algorithm (iterated SVD, Barber 2012, §21.2.2), batched over chains,
on each chain's sample covariance :math:`S` (the same
:class:`~collapse_sim.sampling.Moments` the PPCA fit uses: no second pass over the points).
From :math:`\psi = 1` (scikit-learn's ``noise_variance_init=None``), repeat

.. math::

    \tilde S = \Psi^{-1/2} S \Psi^{-1/2} = \sum_j \lambda_j u_j u_j^\top, \qquad
    W = \Psi^{1/2} U_q \operatorname{diag}\big(\max(\lambda_j - 1, 0)\big)^{1/2}, \qquad
    \psi \leftarrow \max\big(\operatorname{diag}(S - WW^\top), \psi_{\min}\big),

(:math:`W` is the maximum-likelihood loading for the current :math:`\Psi`) until the
log-likelihood of the training data gains less than ``tol``. The log-likelihood of
:math:`n` points at :math:`(W, \Psi)` is, with the top :math:`q` eigenvalues of
:math:`\tilde S`,

.. math::

    \ell = -\frac n2\Big[d\log 2\pi + \sum_a \log\psi_a
    + \sum_{j \le q}\big(\log\max(\lambda_j, 1) + \tfrac{\lambda_j}{\max(\lambda_j, 1)}\big)
    + \sum_{j > q}\lambda_j\Big].

scikit-learn writes :math:`\log\lambda_j + 1` for every :math:`j \le q`, the same value
when :math:`\lambda_j \ge 1` (always, for a factor that explains anything); for
:math:`\lambda_j < 1` (more factors asked for than the data hold, or data of rank below
:math:`q`) its value overstates the likelihood and is :math:`-\infty` at
:math:`\lambda_j = 0`, where the formula above stays the exact log-likelihood of the
model returned. :math:`W` is unique up to a rotation :math:`WR` that changes no
probability; it is stored in the PPCA family's canonical form (orthogonal columns of
decreasing length, each column's largest entry positive).

The floor :math:`\psi_{\min}` (``noise_floor``, default ``1e-12``, scikit-learn's
``SMALL``) keeps :math:`\Psi` invertible: a pixel that never varies in the training data
(three of the 64 digit pixels are always 0) gets :math:`\psi_a = \psi_{\min}` and a row of
zeros in :math:`W`, so the model is a finite, very narrow Gaussian in that pixel (its
``logdet`` and held-out ``nll`` are finite, never NaN; a held-out image with ink in such a
pixel gets a huge ``nll``, which is the model's honest verdict). The floor is absolute, in
squared data units: data on a scale of :math:`10^{-6}` need a smaller one. A "Heywood
case" (a pixel whose variance the factors explain completely) also ends at the floor.

What this module holds: the model :class:`FactorAnalysisModel` (a
:class:`~collapse_sim.Gaussian` subclass: every Gaussian metric and stage applies), the
fit :class:`FactorAnalysisFit`, the :class:`~collapse_sim.NoiseFree` and
:class:`~collapse_sim.Temperature` stages for it, and the metrics ``logdet``,
``noise_variance`` (the mean of :math:`\psi`) and a low-rank ``nll`` (Woodbury, no
:math:`d \times d` decomposition). The classifier metrics of
:mod:`collapse_sim.families._classifier` apply to it as to every point model of a labelled
data set.

Cost per chain and iteration: one symmetric eigen-decomposition of a :math:`d \times d`
matrix (about 0.3 ms at :math:`d = 64`), against scikit-learn's SVD of the
:math:`n \times d` data; the number of iterations is the same as scikit-learn's (tens to
hundreds: the digits at :math:`q = 10` take 30–100); a generation of the digits
(:math:`n = 1797`) costs about 6 times a PPCA generation and a tenth of a loop of
scikit-learn fits on one BLAS thread (``python -m benchmarks.bench_ppca``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from .. import sampling
from .._kernels import factor as _kf
from .._kernels import moments as _mk
from .._kernels import ppca as _kp
from .._random import SeedLike
from .._validation import MAX_INT, as_float_array, check_choice, check_int, check_real
from ..protocol import Fitter, PointModel
from ..registry import register_metric
from ..sampling import Moments
from . import _blas
from ._lowrank import LowRankFitMixin, LowRankGaussian
from .empirical import Empirical
from .gaussian import Gaussian, _batched_points, _gaussian_of
from .ppca import NoiseFree, _heldout_moments, _signed

__all__ = ["FactorAnalysisFit", "FactorAnalysisModel", "factor_analysis_from_covariance"]

#: scikit-learn's ``SMALL``: the default floor of the noise variances.
NOISE_FLOOR = 1e-12
#: Tolerance of :meth:`FactorAnalysisFit.as_model` (the fit of a truth's exact covariance,
#: which has no sample size): 0, iterate until the likelihood stops rising (rounding; the
#: iterations converge linearly, often slowly), at most this many iterations.
AS_MODEL_TOL, AS_MODEL_MAX_ITER = 0.0, 20_000
#: Chains whose factors ``[W, diag(sqrt psi)]`` the statistics path maps at once.
STATISTICS_BLOCK_VALUES = 1 << 22


class FactorAnalysisModel(LowRankGaussian):
    r"""A (batch of) factor-analysis model(s): :math:`x = \mu + Wz + \varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, \operatorname{diag}\psi)`.

    The law is :math:`\mathcal N(\mu, WW^\top + \operatorname{diag}\psi)`; it is a
    :class:`~collapse_sim.Gaussian` (``mean``, ``cov``, ``logpdf`` …) that keeps its
    factors and samples through them (``q + d`` normals and :math:`dq` multiply-adds per
    point, in a numba kernel).

    Parameters
    ----------
    mean : array_like
        :math:`\mu`: ``(d,)`` or ``(B, d)``.
    components : array_like
        :math:`W`: ``(d, q)`` or ``(B, d, q)``, ``1 <= q < d``. Only :math:`WW^\top`
        matters, so it is stored in canonical form: orthogonal columns of decreasing
        length (:math:`US` from the SVD :math:`W = USV^\top`), each column's largest
        entry positive (as :class:`~collapse_sim.PPCAModel`).
    noise_variance : array_like
        :math:`\psi \ge 0`: ``(d,)`` or ``(B, d)`` (a 0 makes the model singular).

    Attributes
    ----------
    mean : ndarray
        ``(B, d)``.
    components : ndarray
        ``(B, d, q)``: :math:`W` in canonical form.
    noise_variance : ndarray
        ``(B, d)``: :math:`\psi`.
    cov : ndarray
        ``(B, d, d)``: :math:`WW^\top + \operatorname{diag}\psi`.
    n_iter : ndarray
        ``(B,)`` iterations the fit took (0 for a model built by hand).

    Examples
    --------
    >>> from collapse_sim.families.factor import FactorAnalysisModel
    >>> m = FactorAnalysisModel(mean=[0.0, 0.0, 0.0], components=[[2.0], [1.0], [0.0]],
    ...                         noise_variance=[0.5, 0.1, 1.0])
    >>> m.n_components, m.dim, m.cov[0].diagonal().round(12).tolist()
    (1, 3, [4.5, 1.1, 1.0])
    >>> m.sample(4, seed=0).shape
    (4, 3)
    """

    _COLUMNS: ClassVar[str] = "factors"

    def __init__(self, mean, components, noise_variance):
        mu, w = self._checked(mean, components)
        d, q = w.shape[1:]
        psi = as_float_array("noise_variance", noise_variance)
        if psi.ndim == 1:
            psi = psi[None]
        if psi.ndim != 2 or psi.shape[1] != d:
            raise ValueError(f"noise_variance must have shape ({d},) or (B, {d}) (one variance "
                             f"per dimension), got {np.shape(noise_variance)}")
        if np.any(psi < 0):
            raise ValueError("noise_variance must be >= 0")
        batch = self._batch(mean=mu.shape[0], components=w.shape[0],
                            noise_variance=psi.shape[0])
        _init(self, np.array(np.broadcast_to(mu, (batch, d))),
              _canonical(np.broadcast_to(w, (batch, d, q))),
              np.array(np.broadcast_to(psi, (batch, d))), np.zeros(batch, dtype=np.int64))

    @classmethod
    def _from_parts(cls, mean, components, noise_variance, n_iter=None) -> FactorAnalysisModel:
        """Trusted constructor: ``components`` already canonical."""
        obj = cls.__new__(cls)
        if n_iter is None:
            n_iter = np.zeros(mean.shape[0], dtype=np.int64)
        _init(obj, mean, components, noise_variance, n_iter)
        return obj

    # -- family protocol -----------------------------------------------------------------
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {
        "mean": ("dim",), "components": ("dim", "component"), "noise_variance": ("dim",)}

    def record(self) -> dict[str, np.ndarray]:
        """``mean`` ``(B, d)``, ``components`` ``(B, d, q)``, ``noise_variance`` ``(B, d)``."""
        return {"mean": self.mean, "components": self.components,
                "noise_variance": self.noise_variance}

    def finite(self) -> np.ndarray:
        """``(B,)`` bool: every parameter finite."""
        return (np.isfinite(self.mean).all(axis=1) & np.isfinite(self.components).all(axis=(1, 2))
                & np.isfinite(self.noise_variance).all(axis=1))

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)`` points :math:`\\mu + Wz + \\Psi^{1/2}\\varepsilon`; per point
        the chain's stream gives ``q`` normals :math:`z`, then ``d`` normals
        :math:`\\varepsilon` (the order of :class:`~collapse_sim.PPCAModel`)."""
        k = check_int("k", k, minimum=0, maximum=MAX_INT)
        out = np.empty((streams.chains, k, self.dim))
        _kf.factor_points(streams.states, np.ascontiguousarray(self.mean),
                          np.ascontiguousarray(self.components),
                          np.ascontiguousarray(np.sqrt(self.noise_variance)), out)
        return out

    def draw_statistics(self, k: int, streams, *, exact: bool) -> Moments:
        r"""Moments of ``k`` points per chain without forming the points.

        With :math:`y = (z, \varepsilon) \in \mathbb R^{q+d}` and :math:`A = [W,
        \Psi^{1/2}]`, :math:`x = \mu + Ay`, so :math:`\bar x = \mu + A\bar y` and the
        scatter is :math:`A M_y A^\top`. ``exact=False``: :math:`y` are the very normals
        :meth:`draw` uses (the statistics equal those of the points up to rounding);
        ``exact=True``: :math:`\bar y \sim \mathcal N(0, I/k)` and :math:`M_y \sim
        \mathrm{Wishart}_{q+d}(k-1, I)`, a cost that does not grow with ``k``. (The
        PPCA family's route, with the diagonal :math:`\Psi^{1/2}` for
        :math:`\sigma I`.)
        """
        model = self.broadcast(streams.chains)
        chains, d, q = streams.chains, self.dim, self.n_components
        r = q + d
        if k == 0:
            return Moments(0, np.zeros((chains, d)), np.zeros((chains, d, d)))
        ybar = np.empty((chains, r))
        m_y = np.empty((chains, r, r))
        with _blas.one_thread():
            if exact:
                _mk.exact_normal_moments(streams.states, k, ybar, m_y)
            else:
                _kp.latent_moments(streams.states, k, ybar, m_y)
        mean = np.empty((chains, d))
        scatter = np.empty((chains, d, d))
        block = max(1, STATISTICS_BLOCK_VALUES // (d * r))
        for lo in range(0, chains, block):
            rows = slice(lo, min(chains, lo + block))
            a = _factor(model, rows)
            with _blas.one_thread():
                mean[rows] = model.mean[rows] + np.matmul(a, ybar[rows, :, None])[:, :, 0]
                s = np.matmul(np.matmul(a, m_y[rows]), np.swapaxes(a, 1, 2))
            scatter[rows] = 0.5 * (s + np.swapaxes(s, 1, 2))
        return Moments(k, mean, scatter)

    def sample(self, n: int, seed: SeedLike = None) -> np.ndarray:
        """Draw ``n`` points from every member (member ``c`` from chain ``c``'s stream).

        Returns
        -------
        ndarray
            ``(n, d)`` for a batch of one, else ``(B, n, d)``.
        """
        n = check_int("n", n, minimum=1, maximum=MAX_INT)
        pts = self.draw(n, sampling.chain_streams(seed, self.batch_size))
        return pts[0] if self.batch_size == 1 else pts

    def logpdf(self, x) -> np.ndarray:
        r"""Log-density at points ``x`` (as :meth:`Gaussian.logpdf <collapse_sim.Gaussian.logpdf>`),
        through Woodbury's identity :math:`C^{-1} = \Psi^{-1} - GK^{-1}G^\top`
        (:func:`nll`): exact for a model with noise variances at the floor, where an
        eigen-decomposition of :math:`C` would call it singular. A model with some
        :math:`\psi_a = 0` is singular and takes the Gaussian route."""
        pts, squeeze = _batched_points(self, x)
        if (self.noise_variance <= 0.0).any():
            out = super().logpdf(pts)
        else:
            g, logdet, k = _woodbury(self)
            dev = pts - self.mean[:, None, :]
            with _blas.one_thread():
                proj = np.matmul(dev, g)  # (B, n, q)
                sol = np.linalg.solve(k, np.swapaxes(proj, 1, 2))  # (B, q, n)
            quad = (np.sum(dev**2 / self.noise_variance[:, None, :], axis=2)
                    - np.sum(proj * np.swapaxes(sol, 1, 2), axis=2))
            out = -0.5 * (self.dim * math.log(2 * math.pi) + logdet[:, None] + quad)
        return out[0] if squeeze else out

    def logdet(self) -> np.ndarray:
        r""":math:`\log\det C = \sum_a\log\psi_a + \log\det(I_q + W^\top\Psi^{-1}W)`,
        ``(B,)`` (``-inf`` when some :math:`\psi_a = 0`)."""
        return _woodbury(self)[1]


#: The arrays of a FactorAnalysisModel (all with the batch as first axis).
_ARRAYS = ("mean", "components", "noise_variance", "cov", "n_iter")
FactorAnalysisModel._ARRAYS = _ARRAYS


def _init(obj, mean, components, noise_variance, n_iter) -> None:
    """Fill a model's arrays (read-only)."""
    obj.mean = mean
    obj.components = components
    obj.noise_variance = noise_variance
    obj.n_iter = n_iter
    d = mean.shape[1]
    with _blas.one_thread():
        cov = np.matmul(components, np.swapaxes(components, 1, 2))
    idx = np.arange(d)
    cov[:, idx, idx] += noise_variance
    obj.cov = cov
    obj._chol = None
    for name in _ARRAYS:
        arr = getattr(obj, name)
        if arr.flags.writeable and arr.flags.owndata:
            arr.flags.writeable = False


def _canonical(w: np.ndarray) -> np.ndarray:
    """``W`` ``(B, d, q)`` as ``U S`` (orthogonal columns of decreasing length, signed)."""
    with _blas.one_thread():
        u, sing, _ = np.linalg.svd(w, full_matrices=False)
    return np.ascontiguousarray(_signed(u) * sing[:, None, :])


def _factor(model: FactorAnalysisModel, rows: slice) -> np.ndarray:
    """``[W, diag(sqrt psi)]`` ``(b, d, q + d)`` for the members ``rows``."""
    w = model.components[rows]
    b, d, q = w.shape
    a = np.zeros((b, d, q + d))
    a[:, :, :q] = w
    idx = np.arange(d)
    a[:, idx, q + idx] = np.sqrt(model.noise_variance[rows])
    return a


def _woodbury(model: FactorAnalysisModel):
    r"""``(G, logdet, K)``: :math:`G = \Psi^{-1}W` ``(B, d, q)``, :math:`\log\det C`
    ``(B,)`` and :math:`K = I + W^\top\Psi^{-1}W` ``(B, q, q)`` (NaN rows where some
    :math:`\psi_a = 0`)."""
    psi = model.noise_variance
    singular = (psi <= 0.0).any(axis=1)
    safe = np.where(psi > 0.0, psi, 1.0)
    g = model.components / safe[:, :, None]
    q = model.n_components
    with _blas.one_thread():
        k = np.eye(q) + np.matmul(np.swapaxes(model.components, 1, 2), g)
    _, logdet_k = np.linalg.slogdet(k)
    logdet = np.log(safe).sum(axis=1) + logdet_k
    return g, np.where(singular, -np.inf, logdet), k


# -- the fit ---------------------------------------------------------------------------------

def _log_likelihood(count, d, psi, top, rest) -> np.ndarray:
    """Total log-likelihood of ``count`` points (module notes) from the spectrum of S~."""
    big = np.maximum(top, 1.0)
    return -0.5 * count * (d * math.log(2 * math.pi) + np.log(psi).sum(axis=1)
                           + (np.log(big) + top / big).sum(axis=1) + rest)


def factor_analysis_iterations(cov: np.ndarray, n_components: int, count: float, *,
                               tol: float = 1e-2, max_iter: int = 1000,
                               noise_floor: float = NOISE_FLOOR):
    r"""Maximum-likelihood factor analysis of every chain's covariance (the module notes).

    Parameters
    ----------
    cov : ndarray
        ``(B, d, d)`` sample covariances :math:`S`.
    n_components : int
        :math:`q`.
    count : float
        Number :math:`n` of points behind each :math:`S`: ``tol`` applies to the total
        log-likelihood :math:`n\,\ell/n` (as scikit-learn's).
    tol, max_iter, noise_floor
        As :class:`FactorAnalysisFit`.

    Returns
    -------
    components : ndarray
        ``(B, d, q)`` :math:`W` (not canonical).
    noise_variance : ndarray
        ``(B, d)`` :math:`\psi`.
    loglike : ndarray
        ``(B,)`` the last log-likelihood evaluated.
    n_iter : ndarray
        ``(B,)`` iterations; ``max_iter`` for a chain that did not converge.

    Notes
    -----
    Chains converge at different iterations: each iteration decomposes the still active
    chains' matrices only, in one batched ``eigh`` (LAPACK, BLAS on one thread), so a
    chain's result does not depend on which other chains are fitted with it.
    """
    b, d, _ = cov.shape
    q = n_components
    var = np.diagonal(cov, axis1=1, axis2=2).copy()
    psi = np.ones((b, d))
    w_out = np.zeros((b, d, q))
    ll_out = np.full(b, -np.inf)
    n_iter = np.full(b, max_iter, dtype=np.int64)
    active = np.arange(b)
    for it in range(max_iter):
        root = np.sqrt(psi[active])
        scaled = cov[active] / (root[:, :, None] * root[:, None, :])
        lam, vec = _blas.eigh(scaled)
        top = lam[:, : -q - 1: -1]  # the q largest, decreasing
        u = vec[:, :, : -q - 1: -1]
        rest = np.trace(scaled, axis1=1, axis2=2) - top.sum(axis=1)
        w = root[:, :, None] * u * np.sqrt(np.maximum(top - 1.0, 0.0))[:, None, :]
        ll = _log_likelihood(count, d, psi[active], top, rest)
        gain = ll - ll_out[active]
        w_out[active] = w
        ll_out[active] = ll
        done = (gain < tol) | (gain <= 0.0)  # tol = 0: until the likelihood stops rising
        n_iter[active[done]] = it + 1
        going = ~done  # (scikit-learn updates psi after the last W of max_iter too)
        psi[active[going]] = np.maximum(var[active[going]] - np.sum(w[going] ** 2, axis=2),
                                        noise_floor)
        active = active[going]
        if active.size == 0:
            break
    return w_out, psi, ll_out, n_iter


def factor_analysis_from_covariance(mean: np.ndarray, cov: np.ndarray, n_components: int, *,
                                    count: float, tol: float = 1e-2, max_iter: int = 1000,
                                    noise_floor: float = NOISE_FLOOR) -> FactorAnalysisModel:
    """The maximum-likelihood factor-analysis model of sample means ``mean`` ``(B, d)`` and
    covariances ``cov`` ``(B, d, d)`` of ``count`` points each (see
    :func:`factor_analysis_iterations`)."""
    d = cov.shape[-1]
    if not 1 <= n_components < d:
        raise ValueError(f"n_components={n_components} must be in [1, {d - 1}] for "
                         f"{d}-dimensional data")
    w, psi, _, n_iter = factor_analysis_iterations(cov, n_components, count, tol=tol,
                                                   max_iter=max_iter, noise_floor=noise_floor)
    slow = int(np.count_nonzero(n_iter >= max_iter))
    if slow:
        warnings.warn(f"FactorAnalysisFit: {slow} of {len(n_iter)} fits did not converge in "
                      f"max_iter={max_iter} iterations (tol={tol:g}); raise max_iter or tol",
                      RuntimeWarning, stacklevel=3)
    return FactorAnalysisModel._from_parts(np.array(mean), _canonical(w), psi, n_iter)


@dataclass(frozen=True)
class FactorAnalysisFit(LowRankFitMixin, Fitter):
    r"""Maximum-likelihood factor analysis, scikit-learn's algorithm batched over chains.

    From each chain's sample mean :math:`\bar x` and covariance :math:`S` (divisor
    :math:`k` or :math:`k - 1`), the iterated-SVD fit of the module notes (the algorithm
    of ``sklearn.decomposition.FactorAnalysis(svd_method="lapack")``, with the same
    defaults, start :math:`\psi = 1` and stopping rule). The fit depends on the data only
    through their :class:`~collapse_sim.sampling.Moments`, so ``Accumulate`` keeps no
    points.

    Parameters
    ----------
    n_components : int
        :math:`q`, with :math:`1 \le q < d` (checked against the truth's dimension before
        any sampling).
    tol : float
        Stop when the total log-likelihood of the chain's training data gains less than
        this (nats; scikit-learn's ``tol``, default ``1e-2``). ``>= 0``; ``0`` iterates
        until the likelihood stops rising (rounding) or ``max_iter``.
    max_iter : int
        Most iterations per chain (default 1000, scikit-learn's); a ``RuntimeWarning``
        says how many chains reached it.
    noise_floor : float
        :math:`\psi_{\min} > 0`, the smallest noise variance (default ``1e-12``,
        scikit-learn's ``SMALL``; absolute, in squared data units).
    estimator : {"mle", "unbiased"}
        Divisor of :math:`S`: :math:`k` (``"mle"``: maximum likelihood, what scikit-learn
        uses) or :math:`k - 1`.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> from collapse_sim.families.factor import FactorAnalysisFit
    >>> digits = cs.Empirical(cs.datasets.digits(), heldout=0.2)
    >>> sim = cs.simulate(digits, FactorAnalysisFit(n_components=10), n_samples=500,
    ...                   generations=2, chains=2, seed=0)
    >>> sorted(sim.metrics)
    ['logdet', 'mean_shift', 'nll', 'noise_variance', 'variance']
    """

    n_components: int
    tol: float = 1e-2
    max_iter: int = 1000
    noise_floor: float = NOISE_FLOOR
    estimator: Literal["mle", "unbiased"] = "mle"

    model_type = FactorAnalysisModel
    truth_types = (PointModel,)
    needs = "statistics"
    statistics_type = Moments

    def __post_init__(self):
        check_int("n_components", self.n_components, minimum=1, maximum=MAX_INT)
        check_real("tol", self.tol, low=0.0)
        check_int("max_iter", self.max_iter, minimum=1, maximum=MAX_INT)
        check_real("noise_floor", self.noise_floor, low=0.0, low_open=True)
        check_choice("estimator", self.estimator, ("mle", "unbiased"))

    _KEEPS: ClassVar[str] = "factor analysis keeps q < d factors"

    def as_model(self, truth) -> FactorAnalysisModel:
        """The truth in this family: the factor analysis of its exact mean and covariance,
        iterated until the likelihood stops rising (:data:`AS_MODEL_TOL`; itself for a
        factor-analysis truth of ``n_components`` factors)."""
        if isinstance(truth, FactorAnalysisModel) and truth.n_components == self.n_components:
            return truth
        g = _gaussian_of(truth)
        return factor_analysis_from_covariance(
            g.mean, g.cov, self.n_components, count=1.0, tol=AS_MODEL_TOL,
            max_iter=AS_MODEL_MAX_ITER, noise_floor=self.noise_floor)

    def fit_moments(self, moments: Moments) -> FactorAnalysisModel:
        """Fit from sufficient statistics (no validation: the engine's path)."""
        cov = moments.scatter / (moments.count - self.ddof)
        return factor_analysis_from_covariance(
            moments.mean, cov, self.n_components, count=float(moments.count), tol=self.tol,
            max_iter=self.max_iter, noise_floor=self.noise_floor)

    fit_statistics = fit_moments


# -- generation stages ----------------------------------------------------------------------

def _noise_free(stage, model: FactorAnalysisModel) -> FactorAnalysisModel:
    """The decoded means :math:`\\mu + Wz`: the model with :math:`\\psi = 0`."""
    return FactorAnalysisModel._from_parts(model.mean, model.components,
                                           np.zeros_like(model.noise_variance))


def _tempered(stage, model: FactorAnalysisModel) -> FactorAnalysisModel:
    r""":math:`\mathcal N(\mu, \tau^2 C)`: :math:`W \to \tau W`, :math:`\psi \to
    \tau^2\psi`."""
    return FactorAnalysisModel._from_parts(model.mean, model.components * stage.tau,
                                           model.noise_variance * stage.tau**2)


def _register_stages():
    from ..stages import Temperature, register_stage

    register_stage(NoiseFree, FactorAnalysisModel, _noise_free)
    register_stage(Temperature, FactorAnalysisModel, _tempered)


_register_stages()


# -- metrics ---------------------------------------------------------------------------------

def nll(truth, model: FactorAnalysisModel, heldout: np.ndarray) -> np.ndarray:
    r"""Mean :math:`-\log q` of the held-out points under every model, ``(B,)``.

    Through the held-out mean :math:`\bar x` and covariance :math:`C_h`, with
    :math:`\delta = \bar x - \mu`, :math:`M = C_h + \delta\delta^\top`,
    :math:`G = \Psi^{-1}W` and :math:`K = I_q + W^\top\Psi^{-1}W` (Woodbury:
    :math:`C^{-1} = \Psi^{-1} - GK^{-1}G^\top`):

    .. math::

        \tfrac12\Big[d\log 2\pi + \log\det C + \sum_a \frac{M_{aa}}{\psi_a}
        - \operatorname{tr}\big(K^{-1} G^\top M G\big)\Big],

    :math:`O(d^2q)` per model, no :math:`d \times d` decomposition. ``+inf`` for a
    singular model (some :math:`\psi_a = 0`).
    """
    xbar, cov_h = _heldout_moments(heldout)
    g, logdet, k = _woodbury(model)
    psi = model.noise_variance
    delta = xbar[None, :] - model.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        diag = np.sum((np.diagonal(cov_h)[None, :] + delta**2) / psi, axis=1)
    with _blas.one_thread():
        gd = np.matmul(np.swapaxes(g, 1, 2), delta[:, :, None])  # (B, q, 1)
        p = np.matmul(np.swapaxes(g, 1, 2), np.matmul(cov_h, g)) + gd * np.swapaxes(gd, 1, 2)
    with np.errstate(invalid="ignore"):
        corr = np.trace(np.linalg.solve(k, p), axis1=1, axis2=2)
    with np.errstate(invalid="ignore", over="ignore"):
        value = 0.5 * (model.dim * math.log(2 * math.pi) + logdet + diag - corr)
    singular = (psi <= 0.0).any(axis=1)
    return np.where(singular | np.isnan(value), np.inf, value)


# logdet and noise_variance: for a data set and for a factor-analysis truth (whose row 0 is
# itself); a Gaussian truth has no noise variances, so its fits keep the Gaussian metrics.
for _truth in (Empirical, FactorAnalysisModel):
    register_metric("logdet", _truth, FactorAnalysisModel, lambda t, m, ctx: m.logdet(),
                    doc="log det C of the model (-inf if singular)")
    register_metric("noise_variance", _truth, FactorAnalysisModel,
                    lambda t, m, ctx: m.noise_variance.mean(axis=1),
                    doc="mean over dimensions of the noise variances psi")
for _truth in (Empirical, Gaussian):
    register_metric("nll", _truth, FactorAnalysisModel, lambda t, m, ctx: nll(t, m, ctx.heldout),
                    heldout=True, doc="mean -log q of held-out real points")
