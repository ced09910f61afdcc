r"""Probabilistic PCA: the linear VAE, refitted on its own samples.

A probabilistic PCA model (Tipping & Bishop 1999) with :math:`q` components in
:math:`\mathbb R^d` is the latent-variable model

.. math::

    z \sim \mathcal N(0, I_q), \qquad x = \mu + W z + \sigma\varepsilon, \qquad
    \varepsilon \sim \mathcal N(0, I_d),

so :math:`x \sim \mathcal N(\mu, C)` with :math:`C = WW^\top + \sigma^2 I`: a Gaussian whose
covariance is a rank-:math:`q` "signal" plus isotropic noise. It is exactly a VAE whose
encoder and decoder are linear: the optimum of the linear VAE's ELBO is the PPCA maximum
likelihood solution (Lucas, Tucker, Grosse & Norouzi, NeurIPS 2019), so refitting PPCA on
its own samples is the fast, exact analogue of Shumailov et al.'s (Nature 2024) VAE
experiment on handwritten digits.

Maximum likelihood (Tipping & Bishop 1999, eqs. 7–8): with the sample covariance
:math:`S = U\Lambda U^\top` (eigenvalues :math:`\lambda_1 \ge \dots \ge \lambda_d`),

.. math::

    \hat\mu = \bar x, \qquad
    \hat\sigma^2 = \frac{1}{d - q}\sum_{j > q} \lambda_j, \qquad
    \hat W = U_q(\Lambda_q - \hat\sigma^2 I)^{1/2},

unique up to a rotation :math:`\hat W R` that changes no probability (here :math:`R = I`,
each column's largest entry made positive). The fitted covariance keeps the trace,
:math:`\operatorname{tr}\hat C = \sum_{i \le q}\lambda_i + (d-q)\hat\sigma^2 =
\operatorname{tr} S`, whatever :math:`q` (see :func:`collapse_sim.theory.ppca_trace_mean`).

What this module holds: the model :class:`PPCAModel` (a :class:`~collapse_sim.Gaussian`
subclass, so every Gaussian metric and stage applies to it), the closed-form fit
:class:`PPCAFit`, the generation stage :class:`NoiseFree` (train on the decoded means
:math:`\mu + Wz`, as the paper's VAE code does), and the metrics ``logdet``,
``noise_variance`` and a low-rank ``nll`` for PPCA models of a data set or a Gaussian.
Importing it also registers the classifier metrics ``classifier_confidence``,
``class_entropy`` and ``classes_covered`` (opt-in; they need a labelled data set) for every
point model of an :class:`~collapse_sim.Empirical` truth.

Degenerate fits, handled deliberately:

- **n ≤ q** (or data of rank below ``q``): the discarded eigenvalues are 0, so
  :math:`\hat\sigma^2 = 0` and the model is singular — a Gaussian supported on an affine
  subspace. It has no density: its held-out ``nll`` is ``+inf`` and its ``logdet``
  ``-inf`` (both mathematically right, never NaN). Eigenvalues below :math:`d\,\epsilon\,
  \lambda_1` (rounding of an exactly singular :math:`S`) count as 0, so data that lie in
  a subspace (the :class:`NoiseFree` stage's) give exactly :math:`\sigma^2 = 0`;
- **zero variance** (all points equal): :math:`W = 0`, :math:`\sigma^2 = 0`, a point mass;
- **ties at the cut** (:math:`\lambda_q = \lambda_{q+1}`): every choice of the kept
  eigenvector is a maximum of the likelihood; the one numpy's ``eigh`` returns is taken
  (deterministic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from .. import sampling
from .._kernels import moments as _mk
from .._kernels import ppca as _kp
from .._random import SeedLike
from .._validation import MAX_INT, as_float_array, check_choice, check_int
from ..protocol import Fitter, PointModel
from ..registry import register_metric
from ..sampling import Moments
from ..stages import Stage
from . import _blas, _classifier  # noqa: F401 - _classifier registers its metrics
from ._lowrank import LowRankFitMixin, LowRankGaussian
from .empirical import Empirical
from .gaussian import Gaussian, _gaussian_of

__all__ = ["NoiseFree", "PPCAFit", "PPCAModel"]

#: Chains whose factors ``[W, sigma I]`` the statistics path maps at once (memory bound:
#: about this many float64 values, 32 MiB).
STATISTICS_BLOCK_VALUES = 1 << 22


class PPCAModel(LowRankGaussian):
    r"""A (batch of) probabilistic PCA model(s): :math:`x = \mu + Wz + \sigma\varepsilon`.

    The law is :math:`\mathcal N(\mu, WW^\top + \sigma^2 I)`; it is a
    :class:`~collapse_sim.Gaussian` (``mean``, ``cov``, ``logpdf`` …) that also keeps its
    factors and samples through them (``q + d`` normals and :math:`dq` multiply-adds per
    point, in a numba kernel).

    Parameters
    ----------
    mean : array_like
        :math:`\mu`: ``(d,)`` or ``(B, d)``.
    components : array_like
        :math:`W`: ``(d, q)`` or ``(B, d, q)``, ``1 <= q < d``. Only :math:`WW^\top`
        matters, so it is stored in canonical form: orthogonal columns of decreasing
        length (:math:`U S` from the SVD :math:`W = USV^\top`), each column's largest
        entry positive.
    noise_variance : float or array_like
        :math:`\sigma^2 \ge 0`: scalar or ``(B,)`` (0: a singular model on the subspace).

    Attributes
    ----------
    mean : ndarray
        ``(B, d)``.
    components : ndarray
        ``(B, d, q)``: :math:`W` in canonical form.
    noise_variance : ndarray
        ``(B,)``: :math:`\sigma^2`.
    explained_variance : ndarray
        ``(B, q)``: the top eigenvalues :math:`\lVert w_i\rVert^2 + \sigma^2` of the
        covariance, along the columns of ``components`` (the other :math:`d - q` are
        :math:`\sigma^2`).
    cov : ndarray
        ``(B, d, d)``: :math:`WW^\top + \sigma^2 I`.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> m = cs.PPCAModel(mean=[0.0, 0.0, 0.0], components=[[2.0], [0.0], [0.0]],
    ...                  noise_variance=0.5)
    >>> m.n_components, m.dim, float(m.explained_variance[0, 0])
    (1, 3, 4.5)
    >>> m.sample(4, seed=0).shape
    (4, 3)
    """

    def __init__(self, mean, components, noise_variance):
        mu, w = self._checked(mean, components)
        d, q = w.shape[1:]
        s2 = as_float_array("noise_variance", noise_variance)
        if s2.ndim > 1:
            raise ValueError(f"noise_variance must be a scalar or (B,), got shape {s2.shape}")
        if np.any(s2 < 0):
            raise ValueError("noise_variance must be >= 0")
        s2 = np.atleast_1d(s2)
        batch = self._batch(mean=mu.shape[0], components=w.shape[0],
                            noise_variance=s2.shape[0])
        u, sing, _ = np.linalg.svd(np.broadcast_to(w, (batch, d, q)), full_matrices=False)
        _init(self, np.array(np.broadcast_to(mu, (batch, d))), _signed(u), sing**2,
              np.array(np.broadcast_to(s2, (batch,))))

    @classmethod
    def _from_parts(cls, mean, directions, spread, noise_variance) -> PPCAModel:
        """Trusted constructor: orthonormal ``directions`` ``(B, d, q)``, ``spread``
        :math:`\\lVert w_i\\rVert^2` ``(B, q)`` (decreasing), ``noise_variance`` ``(B,)``."""
        obj = cls.__new__(cls)
        _init(obj, mean, directions, spread, noise_variance)
        return obj

    # -- family protocol -----------------------------------------------------------------
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {
        "mean": ("dim",), "components": ("dim", "component"), "noise_variance": (),
        "explained_variance": ("component",)}

    def record(self) -> dict[str, np.ndarray]:
        """``mean`` ``(B, d)``, ``components`` ``(B, d, q)``, ``noise_variance`` ``(B,)``
        and ``explained_variance`` ``(B, q)`` (with :math:`\\sigma^2`, the spectrum)."""
        return {"mean": self.mean, "components": self.components,
                "noise_variance": self.noise_variance,
                "explained_variance": self.explained_variance}

    def finite(self) -> np.ndarray:
        """``(B,)`` bool: every parameter finite."""
        return (np.isfinite(self.mean).all(axis=1) & np.isfinite(self.components).all(axis=(1, 2))
                & np.isfinite(self.noise_variance))

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)`` points :math:`\\mu + Wz + \\sigma\\varepsilon`; per point the
        chain's stream gives ``q`` normals :math:`z`, then ``d`` normals :math:`\\varepsilon`."""
        k = check_int("k", k, minimum=0, maximum=MAX_INT)
        out = np.empty((streams.chains, k, self.dim))
        _kp.ppca_points(streams.states, np.ascontiguousarray(self.mean),
                        np.ascontiguousarray(self.components),
                        np.ascontiguousarray(np.sqrt(self.noise_variance)), out)
        return out

    def draw_statistics(self, k: int, streams, *, exact: bool) -> Moments:
        r"""Moments of ``k`` points per chain without forming the points.

        With :math:`y = (z, \varepsilon) \in \mathbb R^{q+d}` and :math:`A = [W, \sigma I]`,
        :math:`x = \mu + Ay`, so :math:`\bar x = \mu + A\bar y` and the scatter is
        :math:`A M_y A^\top`. ``exact=False``: :math:`y` are the very normals
        :meth:`draw` uses (same stream position: the statistics equal those of the
        points up to rounding), their scatter by BLAS in a chain-parallel kernel that
        never holds all the points. ``exact=True``: :math:`\bar y
        \sim \mathcal N(0, I/k)` and :math:`M_y \sim \mathrm{Wishart}_{q+d}(k-1, I)`
        (Bartlett), a cost that does not grow with ``k``.
        """
        model = self.broadcast(streams.chains)
        chains, d, q = streams.chains, self.dim, self.n_components
        r = q + d
        if k == 0:
            return Moments(0, np.zeros((chains, d)), np.zeros((chains, d, d)))
        ybar = np.empty((chains, r))
        m_y = np.empty((chains, r, r))
        if exact:
            _mk.exact_normal_moments(streams.states, k, ybar, m_y)
        else:  # its products on one BLAS thread per chain (declared with the kernel)
            _kp.latent_moments(streams.states, k, ybar, m_y)
        mean = np.empty((chains, d))
        scatter = np.empty((chains, d, d))
        block = max(1, STATISTICS_BLOCK_VALUES // (d * r))
        for lo in range(0, chains, block):  # the maps by A in blocks: bounded temporaries
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

    def logdet(self) -> np.ndarray:
        r""":math:`\log\det C = \sum_{i \le q}\log\lambda_i + (d - q)\log\sigma^2`, ``(B,)``
        (``-inf`` for a singular model)."""
        with np.errstate(divide="ignore"):
            return (np.log(self.explained_variance).sum(axis=1)
                    + (self.dim - self.n_components) * np.log(self.noise_variance))


#: The arrays of a PPCAModel (all with the batch as first axis).
_ARRAYS = ("mean", "directions", "spread", "noise_variance", "components", "explained_variance",
           "cov")
PPCAModel._ARRAYS = _ARRAYS


def _init(obj: PPCAModel, mean, directions, spread, noise_variance) -> None:
    """Fill a model's arrays (read-only) from its canonical parts."""
    obj.mean = mean
    obj.directions = directions
    obj.spread = spread
    obj.noise_variance = noise_variance
    obj.components = directions * np.sqrt(spread)[:, None, :]
    obj.explained_variance = spread + noise_variance[:, None]
    d = mean.shape[1]
    with _blas.one_thread():
        cov = np.matmul(obj.components, np.swapaxes(obj.components, 1, 2))
    cov += noise_variance[:, None, None] * np.eye(d)
    obj.cov = cov
    obj._chol = None
    for name in _ARRAYS:
        arr = getattr(obj, name)
        if arr.flags.writeable and arr.flags.owndata:
            arr.flags.writeable = False


def _signed(u: np.ndarray) -> np.ndarray:
    """Columns of ``u`` ``(B, d, q)`` with their largest-magnitude entry made positive."""
    top = np.argmax(np.abs(u), axis=1)[:, None, :]
    sign = np.sign(np.take_along_axis(u, top, axis=1))
    return np.ascontiguousarray(u * np.where(sign == 0, 1.0, sign))


def _factor(model: PPCAModel, rows: slice) -> np.ndarray:
    """``[W, sigma I]`` ``(b, d, q + d)`` for the members ``rows``."""
    w = model.components[rows]
    b, d, q = w.shape
    a = np.zeros((b, d, q + d))
    a[:, :, :q] = w
    idx = np.arange(d)
    a[:, idx, q + idx] = np.sqrt(model.noise_variance[rows])[:, None]
    return a


def moments(points: np.ndarray) -> Moments:
    """:class:`~collapse_sim.sampling.Moments` of ``points`` ``(chains, k, d)``: two passes
    (the mean, then the scatter of the centred points by BLAS products on blocks of rows),
    chain-parallel; the same values as ``Moments.of`` up to rounding, 5-10 times faster at
    ``d = 64``."""
    points = np.ascontiguousarray(points, dtype=np.float64)
    chains, k, d = points.shape
    mean = np.empty((chains, d))
    scatter = np.empty((chains, d, d))
    _kp.point_moments(points, mean, scatter)  # one BLAS thread per chain (the kernel's)
    return Moments(k, mean, scatter)


def ppca_from_covariance(mean: np.ndarray, cov: np.ndarray, n_components: int) -> PPCAModel:
    r"""The maximum-likelihood PPCA model for sample mean ``mean`` ``(B, d)`` and sample
    covariance ``cov`` ``(B, d, d)`` (Tipping & Bishop 1999, eqs. 7–8).

    Eigenvalues at or below :math:`d\,\epsilon\,\lambda_1` (rounding) count as 0; the
    noise variance is the mean of the :math:`d - q` smallest, and
    :math:`\lVert w_i\rVert^2 = \lambda_i - \sigma^2 \ge 0`.
    """
    d = cov.shape[-1]
    q = n_components
    if not 1 <= q < d:
        raise ValueError(f"n_components={q} must be in [1, {d - 1}] for {d}-dimensional data "
                         "(PPCA keeps q < d directions and spreads the rest as noise)")
    lam, vec = _blas.eigh(cov)
    lam = lam[:, ::-1]
    top = np.maximum(lam[:, :1], 0.0)
    lam = np.where(lam > d * np.finfo(np.float64).eps * top, lam, 0.0)
    noise = lam[:, q:].mean(axis=1)
    spread = np.maximum(lam[:, :q] - noise[:, None], 0.0)
    directions = _signed(vec[:, :, ::-1][:, :, :q])
    return PPCAModel._from_parts(np.array(mean), directions, np.ascontiguousarray(spread),
                                 noise)


@dataclass(frozen=True)
class PPCAFit(LowRankFitMixin, Fitter):
    r"""Closed-form maximum-likelihood probabilistic PCA (see the module notes).

    From each chain's sample mean :math:`\bar x` and covariance
    :math:`S = \frac{1}{k-\delta}\sum_i (x_i - \bar x)(x_i - \bar x)^\top`: the top
    :math:`q` eigenpairs of :math:`S` give :math:`W`, the mean of the other
    :math:`d - q` eigenvalues the noise variance :math:`\sigma^2`. The fit depends on the
    data only through their :class:`~collapse_sim.sampling.Moments`, so ``Accumulate``
    keeps no points.

    Parameters
    ----------
    n_components : int
        :math:`q`, with :math:`1 \le q < d` (checked against the truth's dimension before
        any sampling).
    estimator : {"mle", "unbiased"}
        Divisor of :math:`S`: :math:`k` (``"mle"``, :math:`\delta = 0`: Tipping & Bishop's
        maximum likelihood) or :math:`k - 1` (``"unbiased"``, :math:`\delta = 1`: what
        scikit-learn's ``PCA`` divides by, so ``PCA(q).get_covariance()`` is the
        ``"unbiased"`` fit's ``cov``). Under ``Replace`` the expected total variance
        decays as :math:`((k-1)/k)^t` for ``"mle"`` and stays constant for ``"unbiased"``
        (:func:`collapse_sim.theory.ppca_trace_mean`).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> digits = cs.Empirical(cs.datasets.digits(), heldout=0.2)
    >>> sim = cs.simulate(digits, cs.PPCAFit(n_components=10), n_samples=500,
    ...                   generations=5, chains=4, seed=0)
    >>> sorted(sim.metrics)
    ['logdet', 'mean_shift', 'nll', 'noise_variance', 'variance']
    """

    n_components: int
    estimator: Literal["mle", "unbiased"] = "mle"

    model_type = PPCAModel
    truth_types = (PointModel,)
    needs = "statistics"
    statistics_type = Moments

    def __post_init__(self):
        check_int("n_components", self.n_components, minimum=1, maximum=MAX_INT)
        check_choice("estimator", self.estimator, ("mle", "unbiased"))

    _KEEPS: ClassVar[str] = "PPCA keeps q < d directions and spreads the rest as noise"

    def as_model(self, truth) -> PPCAModel:
        """The truth in this family: the PPCA of its mean and covariance (itself for a PPCA
        truth of ``n_components`` components)."""
        if isinstance(truth, PPCAModel) and truth.n_components == self.n_components:
            return truth
        g = _gaussian_of(truth)
        return ppca_from_covariance(g.mean, g.cov, self.n_components)

    def fit_moments(self, moments: Moments) -> PPCAModel:
        """Fit from sufficient statistics (no validation: the engine's path)."""
        cov = moments.scatter / (moments.count - self.ddof)
        return ppca_from_covariance(moments.mean, cov, self.n_components)

    fit_statistics = fit_moments

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "PPCAFit", "n_components": self.n_components,
                "estimator": self.estimator}


# -- generation stages ----------------------------------------------------------------------

@dataclass(frozen=True)
class NoiseFree(Stage):
    r"""Synthetic data are the decoded means :math:`\mu + Wz`, without the noise
    :math:`\sigma\varepsilon` (probabilistic PCA models).

    What the VAE code of Shumailov et al. does: each generation's training images are
    the decoder's means, not samples of the decoder's pixel distribution. It is a
    sampling bias: the next generation trains on :math:`\mathcal N(\mu, WW^\top)`, whose
    total variance lacks :math:`d\sigma^2`, and whose data lie in a :math:`q`-dimensional
    subspace, so from generation 2 on the fitted noise variance is exactly 0 (a singular
    model: held-out ``nll`` ``+inf``). The fitted model itself (with its
    :math:`\sigma^2`) is what the metrics measure.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> digits = cs.Empirical(cs.datasets.digits(), heldout=0.2)
    >>> sim = cs.simulate(digits, cs.PPCAFit(n_components=10), n_samples=500,
    ...                   generations=3, chains=2, seed=0, generation=cs.NoiseFree())
    >>> [float(v) for v in sim.metrics["noise_variance"][:, 0].round(3)]
    [5.781, 5.687, 0.0, 0.0]
    """


def _noise_free(stage, model: PPCAModel) -> PPCAModel:
    return PPCAModel._from_parts(model.mean, model.directions, model.spread,
                                 np.zeros_like(model.noise_variance))


def _tempered(stage, model: PPCAModel) -> PPCAModel:
    r""":math:`\mathcal N(\mu, \tau^2 C)`: :math:`W \to \tau W`, :math:`\sigma^2 \to
    \tau^2\sigma^2` (the same law as the Gaussian family's temperature, sampled as PPCA)."""
    t2 = stage.tau**2
    return PPCAModel._from_parts(model.mean, model.directions, model.spread * t2,
                                 model.noise_variance * t2)


def _register_stages():
    from ..stages import Temperature, register_stage

    register_stage(NoiseFree, PPCAModel, _noise_free)
    register_stage(Temperature, PPCAModel, _tempered)


_register_stages()


# -- metrics ---------------------------------------------------------------------------------

_HELDOUT_MEMO: list = [None, None]  # [held-out array, (mean, covariance)]


def _heldout_moments(heldout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if _HELDOUT_MEMO[0] is not heldout:
        xbar = heldout.mean(axis=0)
        dev = heldout - xbar
        _HELDOUT_MEMO[:] = [heldout, (xbar, dev.T @ dev / heldout.shape[0])]
    return _HELDOUT_MEMO[1]


def nll(truth, model: PPCAModel, heldout: np.ndarray) -> np.ndarray:
    r"""Mean :math:`-\log q` of the held-out points under every PPCA model, ``(B,)``.

    Through the held-out mean :math:`\bar x` and covariance :math:`C_h`, with
    :math:`\delta = \bar x - \mu`, the model's unit directions :math:`u_i` and
    eigenvalues :math:`\lambda_i` (``explained_variance``):

    .. math::

        \tfrac12\Big[d\log 2\pi + \log\det C
        + \sum_{i\le q}\frac{u_i^\top C_h u_i + (u_i^\top\delta)^2}{\lambda_i}
        + \frac{\operatorname{tr}C_h + \lVert\delta\rVert^2 - \sum_{i\le q}
          (u_i^\top C_h u_i + (u_i^\top\delta)^2)}{\sigma^2}\Big],

    :math:`O(d^2q)` per model, no eigen-decomposition. ``+inf`` for a singular model
    (:math:`\sigma^2 = 0`: held-out points lie off its support almost surely).
    """
    xbar, cov_h = _heldout_moments(heldout)
    u = model.directions
    delta = xbar[None, :] - model.mean
    along = np.einsum("bdi,de,bei->bi", u, cov_h, u) + np.einsum("bdi,bd->bi", u, delta) ** 2
    total = np.trace(cov_h) + np.sum(delta**2, axis=1)
    rest = np.maximum(total - along.sum(axis=1), 0.0)
    lam, s2 = model.explained_variance, model.noise_variance
    singular = (s2 <= 0.0) | (lam.min(axis=1) <= 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        value = 0.5 * (model.dim * math.log(2 * math.pi) + model.logdet()
                       + np.sum(along / lam, axis=1) + rest / s2)
    return np.where(singular | np.isnan(value), np.inf, value)


# logdet and noise_variance: for a data set and for a PPCA truth (whose row 0 is itself); a
# Gaussian truth has no noise variance, so its PPCA fits keep the Gaussian metrics.
for _truth in (Empirical, PPCAModel):
    register_metric("logdet", _truth, PPCAModel, lambda t, m, ctx: m.logdet(),
                    doc="log det C of the model (-inf if singular)")
    register_metric("noise_variance", _truth, PPCAModel,
                    lambda t, m, ctx: np.array(m.noise_variance),
                    doc="noise variance sigma^2 of the PPCA model")
for _truth in (Empirical, Gaussian):
    register_metric("nll", _truth, PPCAModel, lambda t, m, ctx: nll(t, m, ctx.heldout),
                    heldout=True, doc="mean -log q of held-out real points")
