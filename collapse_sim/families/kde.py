r"""Kernel density estimates refitted on their own samples: :class:`KDEFit`, :class:`KDEModel`.

A Gaussian kernel density estimate of points :math:`x_1, \dots, x_n \in \mathbb R^d`
with kernel covariance :math:`H` is the equal-weight mixture

.. math::

    \hat p(x) = \frac1n \sum_{j=1}^n \mathcal N(x;\, x_j, H),

so sampling it is "pick a training point uniformly, add :math:`\mathcal N(0, H)` noise"
(:math:`O(1)` per draw, :math:`O(n)` per generation). Refitting a KDE on its own samples
is the most flexible model the library offers: it represents any truth as
:math:`n \to \infty`, and it shows the paper's "double-edged sword": the kernel noise
added every generation spreads mass into empty regions, while resampling the centres
(a Wright–Fisher process) makes the model rest on fewer and fewer of the original points.

Bandwidth rules (:class:`KDEFit`, with :math:`n` training points in :math:`d` dimensions):

=================  ===========================================================================
``bandwidth``      kernel covariance :math:`H`
=================  ===========================================================================
``h`` (a float)    :math:`h^2 I`, fixed
``"scott"``        :math:`h^2 I` with :math:`h = n^{-1/(d+4)}` — scikit-learn's
                   ``KernelDensity(bandwidth="scott")``: *not* scaled by the data
``"silverman"``    :math:`h^2 I` with :math:`h = (n(d+2)/4)^{-1/(d+4)}` — scikit-learn's
                   ``"silverman"``, also not scaled by the data
``"scipy"``        :math:`f^2\,\hat\Sigma` with Scott's factor :math:`f = n^{-1/(d+4)}` and
                   :math:`\hat\Sigma` the sample covariance (divisor :math:`n-1`) — scipy's
                   ``gaussian_kde`` default: scaled by the data, so it grows with it
=================  ===========================================================================

Metrics (against an :class:`~collapse_sim.Empirical` truth; generation 0 is the KDE of the
whole training split, see :meth:`collapse_sim.Empirical.reference`):

- ``variance``: total variance :math:`\operatorname{tr}(S + H)` of the KDE, with :math:`S`
  the centres' covariance (divisor :math:`n`);
- ``mean_shift``: :math:`\lVert \bar x - \mu\rVert` from the training split's mean;
- ``nll``: mean :math:`-\log \hat p` of the held-out rows (the measure Kazdan et al. use),
  over at most :data:`NLL_POINTS` of them (the first ones of the fixed held-out split);
  at most :math:`O(\text{chains}\cdot n \cdot m)` per generation, the dominant cost of
  a run (only the centres within reach of each point are visited: the window of
  ``collapse_sim._kernels.kde.mean_logpdf``);
- ``ancestors``: how many of the generation-1 training points (the real sample) still
  have descendants among the current centres. Each drawn point inherits the identity of
  the centre it was drawn around; training points are matched to the previous model's
  centres and draws bit for bit, so kept real points keep their identity under
  ``KeepReal`` and ``Accumulate``, and fresh real points (``FreshReal``) count as new
  (not original) points. Under ``Replace`` this is the number of surviving ancestors of a
  Wright–Fisher population (:func:`collapse_sim.theory.kde_ancestors_mean`). It is not
  defined under ``AccumulateSubsample`` (whose training sets draw points of generations
  the previous model did not rest on, which carry no traced identity): ``simulate`` leaves
  it out of that policy's defaults and refuses it when asked for.

A KDE has no closed-form Wasserstein or KL distance to an empirical truth, so ``w2`` and
``kl`` are not offered.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._buffers import BUFFERS
from .._kernels import kde as _kk
from .._kernels import linalg as _linalg
from .._validation import check_int
from ..protocol import Fitter, PointModel
from ..registry import register_metric
from .empirical import Empirical

__all__ = ["NLL_POINTS", "KDEFit", "KDEModel"]

#: Largest number of held-out rows the ``nll`` metric of a KDE averages over.
NLL_POINTS = 1000
_RULES = ("scott", "silverman", "scipy")


class KDEModel(PointModel):
    r"""A batch of Gaussian kernel density estimates, one per chain.

    Parameters
    ----------
    centres : array_like
        ``(B, n, d)`` training points of each member.
    kernel_cov : array_like
        ``(B, d, d)`` kernel covariance :math:`H` of each member (positive definite).
    ids : array_like, optional
        ``(B, n)`` int64 identity of each centre's original ancestor (``-1``: none);
        default ``0 .. n-1`` (every centre its own original).
    origin : int, optional
        Number of original points the ids count (default ``n``).

    Examples
    --------
    >>> import numpy as np, collapse_sim as cs
    >>> kde = cs.KDEModel(np.zeros((1, 3, 1)), 0.25 * np.ones((1, 1, 1)))
    >>> float(kde.cov[0, 0, 0])   # S + H = 0 + 0.25
    0.25
    """

    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {"mean": ("dim",),
                                                         "kernel_cov": ("dim", "dim2")}
    #: The results keep the fitted KDEs (``Simulation.fitted``) for density snapshots.
    keep_fitted: ClassVar[bool] = True

    def __init__(self, centres, kernel_cov, ids=None, origin: int | None = None):
        centres = np.ascontiguousarray(centres, dtype=np.float64)
        kernel_cov = np.ascontiguousarray(kernel_cov, dtype=np.float64)
        if centres.ndim != 3 or centres.shape[1] < 1 or centres.shape[2] < 1:
            raise ValueError(f"centres must be (B, n, d) with n, d >= 1, got {centres.shape}")
        b, n, d = centres.shape
        if kernel_cov.shape != (b, d, d):
            raise ValueError(f"kernel_cov must be ({b}, {d}, {d}), got {kernel_cov.shape}")
        if ids is None:
            ids = np.broadcast_to(np.arange(n, dtype=np.int64), (b, n))
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.shape != (b, n):
            raise ValueError(f"ids must be ({b}, {n}), got {ids.shape}")
        self.centres = centres
        self.kernel_cov = kernel_cov
        self.ids = ids
        self.origin = n if origin is None else check_int("origin", origin, minimum=0)
        chol = np.empty_like(kernel_cov)
        _linalg.psd_cholesky(kernel_cov, chol)
        self.chol = chol
        self._last = None  # (draws, their ancestors' ids) of the last draw, for the next fit
        self._mean = None
        self._spread = None  # total variance of the centres (divisor n), once computed

    # -- the protocol --------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Number of KDEs ``B``."""
        return self.centres.shape[0]

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.centres.shape[2]

    @property
    def n_centres(self) -> int:
        """Number ``n`` of centres (training points) of each KDE."""
        return self.centres.shape[1]

    @property
    def nbytes(self) -> int:
        """Bytes held by the batch."""
        return self.centres.nbytes + self.ids.nbytes + 2 * self.kernel_cov.nbytes

    @property
    def mean(self) -> np.ndarray:
        r"""``(B, d)`` mean :math:`\bar x` of the centres (the KDE's mean)."""
        if self._mean is None:
            if self.centres.shape[2] >= 2 and self.centres.flags.c_contiguous:
                self._mean = np.empty(self.centres.shape[::2])  # numpy's bits, one pass
                _kk.row_means(self.centres, self._mean)
            else:
                self._mean = self.centres.mean(axis=1)
        return self._mean

    def total_variance(self) -> np.ndarray:
        r"""``(B,)`` total variance :math:`\operatorname{tr}(S + H)` (one pass over the
        centres, no ``(B, d, d)`` covariance formed)."""
        if self._spread is None:
            self._spread = np.empty(self.batch_size)
            _kk.total_variance(self.centres, self.mean, self._spread)
        return self._spread + np.trace(self.kernel_cov, axis1=1, axis2=2)

    @property
    def cov(self) -> np.ndarray:
        r"""``(B, d, d)`` covariance of the KDE: :math:`S + H`, :math:`S` the centres'
        covariance with divisor :math:`n`."""
        dev = self.centres - self.mean[:, None]
        return np.einsum("bni,bnj->bij", dev, dev) / self.n_centres + self.kernel_cov

    def broadcast(self, chains: int) -> KDEModel:
        """This batch for ``chains`` chains (a batch of one is shared, not copied)."""
        if self.batch_size in (1, chains):
            return self
        raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)``: per draw a uniformly chosen centre plus
        :math:`\\mathcal N(0, H)` noise, chain ``c`` from stream ``c``."""
        k = check_int("k", k, minimum=0)
        chains = streams.chains
        if self.batch_size not in (1, chains):
            raise ValueError(f"a batch of {self.batch_size} KDEs cannot draw for {chains} chains")
        # recycled memory: the draws become the next model's centres, generation after
        # generation, and fresh pages were written one by one (a buffer is lent again only
        # once no model, metric or user refers to it)
        out = BUFFERS.take((chains, k, self.dim), np.float64)
        parents = BUFFERS.take((chains, k), np.int64)
        stats = np.empty((chains, self.dim + 1))
        _kk.draw(streams.states, self.centres, self.chol, self.ids, out, parents, stats)
        self._last = (out, parents, stats)
        return out

    def logpdf_mean(self, points) -> np.ndarray:
        r"""``(B,)`` mean log-density :math:`\frac1m\sum_i \log\hat p(y_i)` of ``points``
        ``(m, d)`` under every member.

        A singular kernel (scipy's rule on identical points) has no density; it gets
        ``-inf`` (so ``nll`` is ``+inf``, the convention of a degenerate Gaussian)."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != self.dim or points.shape[0] < 1:
            raise ValueError(f"points must be (m, {self.dim}) with m >= 1, got {points.shape}")
        if not np.isfinite(points).all():
            raise ValueError("points must be finite")
        out = np.empty(self.batch_size)
        _kk.mean_logpdf(self.centres, self.chol, points, out)
        return out

    def finite(self) -> np.ndarray:
        """``(B,)``: finite centres and kernel (read off the centres' mean and spread when
        the draw computed them: a non-finite centre makes them non-finite)."""
        kernel = np.isfinite(self.kernel_cov).all(axis=(1, 2))
        if self._spread is not None and self._mean is not None:
            return np.isfinite(self._mean).all(axis=1) & np.isfinite(self._spread) & kernel
        return np.isfinite(self.centres).all(axis=(1, 2)) & kernel

    def record(self) -> dict[str, np.ndarray]:
        """``mean`` ``(B, d)`` and ``kernel_cov`` ``(B, d, d)`` (the centres are kept whole
        in ``Simulation.fitted`` instead)."""
        return {"mean": self.mean, "kernel_cov": self.kernel_cov}

    def to_dict(self) -> dict:
        """Sizes only (a KDE is its data)."""
        return {"type": "KDEModel", "batch": self.batch_size, "n": self.n_centres,
                "dim": self.dim}

    def member(self, index: int) -> KDEModel:
        """Member ``index`` as a batch of one."""
        index = check_int("chain", index, minimum=0, maximum=self.batch_size - 1)
        s = slice(index, index + 1)
        return KDEModel(self.centres[s], self.kernel_cov[s], self.ids[s], self.origin)


@dataclass(frozen=True)
class KDEFit(Fitter):
    r"""Fit a Gaussian kernel density estimate to each chain's points (see the module notes).

    Parameters
    ----------
    bandwidth : float or {"scott", "silverman", "scipy"}
        A fixed bandwidth :math:`h > 0` (kernel covariance :math:`h^2 I`), or a rule:
        scikit-learn's ``"scott"`` :math:`n^{-1/(d+4)}` and ``"silverman"``
        :math:`(n(d+2)/4)^{-1/(d+4)}` (not scaled by the data), or ``"scipy"``:
        ``scipy.stats.gaussian_kde``'s default, :math:`H = n^{-2/(d+4)}\hat\Sigma`.
    kernel : {"gaussian"}
        The kernel (only Gaussian kernels can be sampled by adding normal noise here).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> moons = cs.Empirical(cs.datasets.two_moons(2000, seed=0), heldout=0.2)
    >>> sim = cs.simulate(moons, cs.KDEFit(bandwidth=0.3), n_samples=100, generations=5,
    ...                   chains=10, seed=0)
    >>> sim.metrics["ancestors"][1:, 0]          # original points with descendants
    array([100.,  68.,  45.,  35.,  31.])
    """

    bandwidth: float | str = "scott"
    kernel: str = "gaussian"

    model_type = KDEModel
    truth_types = (Empirical,)

    def __post_init__(self):
        bw = self.bandwidth
        if isinstance(bw, str):
            if bw not in _RULES:
                raise ValueError(f"bandwidth must be a positive number or one of "
                                 f"{', '.join(map(repr, _RULES))}; got {bw!r}")
        elif isinstance(bw, bool) or not isinstance(bw, numbers.Real):
            raise TypeError(f"bandwidth must be a positive number or a rule name, got "
                            f"{type(bw).__name__}")
        elif not (math.isfinite(bw) and bw > 0):
            raise ValueError(f"bandwidth must be a finite number > 0 or a rule name, got {bw}")
        if self.kernel != "gaussian":
            raise ValueError(f"kernel must be 'gaussian', got {self.kernel!r}")

    def min_points(self) -> int:
        """2 for ``"scipy"`` (a sample covariance), else 1."""
        return 2 if self.bandwidth == "scipy" else 1

    def factor(self, n: int, d: int) -> float:
        """The bandwidth :math:`h` (or scipy's factor :math:`f`) for ``n`` points in ``d``-D."""
        if self.bandwidth == "silverman":
            return (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
        if isinstance(self.bandwidth, str):  # scott, scipy
            return n ** (-1.0 / (d + 4))
        return float(self.bandwidth)

    def kernel_cov(self, data: np.ndarray) -> np.ndarray:
        """``(chains, d, d)`` kernel covariance for the points ``data`` ``(chains, n, d)``."""
        chains, n, d = data.shape
        h = self.factor(n, d)
        if self.bandwidth != "scipy":
            return np.broadcast_to(h * h * np.eye(d), (chains, d, d)).copy()
        dev = data - data.mean(axis=1, keepdims=True)
        return np.einsum("bni,bnj->bij", dev, dev) * (h * h / (n - 1))

    def fit_chains(self, data: np.ndarray, *, streams=None, previous=None,
                   truth=None) -> KDEModel:
        """The KDE of every chain's points; each centre's ancestor is looked up among the
        previous model's centres and draws (see the module notes)."""
        last = previous._last if isinstance(previous, KDEModel) else None
        if last is not None and last[0] is data:  # trained on exactly the last draw (Replace)
            model = KDEModel(data, self.kernel_cov(data), last[1], previous.origin)
            d = data.shape[2]
            model._mean, model._spread = last[2][:, :d], last[2][:, d]  # from the draw
            return model
        # the centres must be the model's own: a view of the engine's pool (Accumulate)
        # moves when the pool grows
        own = BUFFERS.take(np.shape(data), np.float64)  # recycled memory, as in draw
        np.copyto(own, data)
        data = own
        chains, n = data.shape[:2]
        if not isinstance(previous, KDEModel):
            return KDEModel(data, self.kernel_cov(data))
        draws, parents = last[:2] if last is not None else (previous.centres[:, :0],
                                                             previous.ids[:, :0])
        resolved = np.empty((chains, n), dtype=np.int64)
        _kk.resolve_ids(data.view(np.uint64),
                        np.ascontiguousarray(previous.centres).view(np.uint64), previous.ids,
                        np.ascontiguousarray(draws).view(np.uint64), parents, -1, resolved)
        return KDEModel(data, self.kernel_cov(data), resolved, previous.origin)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "KDEFit", "bandwidth": self.bandwidth, "kernel": self.kernel}


# -- metrics ----------------------------------------------------------------------------------

def variance(truth, model: KDEModel) -> np.ndarray:
    r"""Total variance :math:`\operatorname{tr}(S + H)` of each KDE."""
    return model.total_variance()


def mean_shift(truth, model: KDEModel) -> np.ndarray:
    r""":math:`\lVert \bar x - \mu \rVert`, :math:`\mu` the truth's (training split's) mean."""
    return np.linalg.norm(model.mean - truth.mean, axis=1)


def nll(truth, model: KDEModel, heldout: np.ndarray) -> np.ndarray:
    r"""Mean :math:`-\log\hat p` of the first :data:`NLL_POINTS` held-out rows (``+inf``
    for a singular kernel)."""
    return -model.logpdf_mean(heldout[:NLL_POINTS])


def ancestors(truth, model: KDEModel) -> np.ndarray:
    """Number of original (generation-1) points that still have descendants among the
    centres, as float."""
    out = np.empty(model.batch_size, dtype=np.int64)
    _kk.count_distinct(model.ids, model.origin, out)
    return out.astype(np.float64)


register_metric("variance", Empirical, KDEModel, lambda t, m, ctx: variance(t, m),
                doc="total variance tr(S + H) of the KDE")
register_metric("mean_shift", Empirical, KDEModel, lambda t, m, ctx: mean_shift(t, m),
                doc="||mean of the centres - mean of the training split||")
register_metric("nll", Empirical, KDEModel, lambda t, m, ctx: nll(t, m, ctx.heldout),
                heldout=True, doc="mean -log p of held-out rows under the KDE")
register_metric("ancestors", Empirical, KDEModel, lambda t, m, ctx: ancestors(t, m),
                doc="original points that still have descendants among the centres",
                refuses=("AccumulateSubsample",))
