r"""A fixed real data set as the truth: :class:`Empirical` (images, two moons, any ``(N, d)``).

The truth of a simulation is usually a distribution we can sample forever. A real data
set is not: it has ``N`` rows, of which a fixed share is held out for evaluation. An
:class:`Empirical` truth

- splits the rows once, by a permutation fixed by ``split_seed``: the last
  ``round(heldout · N)`` rows of the permuted set are held out, the rest is the
  *training split*;
- draws each chain's real sample of ``k`` rows from the training split **without
  replacement** (a uniformly random ``k``-subset per chain, from that chain's stream),
  so a real sample never repeats a row and ``n_samples`` can be at most the training
  split's size; a policy that draws fresh real data (``FreshReal``) draws a new subset
  each generation;
- gives a moment fit (``GaussianFit``, ``PPCAFit``, ``FactorAnalysisFit``) the mean and
  scatter of those rows without gathering them (:meth:`Empirical.draw_statistics`: the
  same rows, the same numbers as the fit computes from them), so ``sampling="auto"``
  takes the exact path, on which the models' own samples are drawn as statistics by
  their exact law (except under ``KeepReal`` with a share strictly between 0 and 1:
  the first rows of a sample drawn without replacement have no law given all of it);
- returns the held-out split for metrics that need held-out data (``nll``);
- is measured at generation 0 through the fitter's model of the *whole* training split
  (:meth:`Empirical.reference`): an empirical distribution has no density, so the row-0
  metrics describe the best the fitter does with all the real data (the
  ``X_0`` fit of Shumailov et al.'s notebooks), and generation ``t`` is compared with it.

Metrics registered here for Gaussian and mixture models of an empirical truth:
``variance`` (total variance :math:`\operatorname{tr}\Sigma` of the model), ``mean_shift``
(:math:`\lVert m - \bar x\rVert` from the training split's mean) and ``nll`` (mean
:math:`-\log q` of the held-out rows). Other families (kernel density estimates,
probabilistic PCA) register their own.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np

from .._buffers import BUFFERS
from .._kernels import kde as _kde_kernels
from .._kernels import ngram as _subsets
from .._kernels import ppca as _rows_kernels
from .._validation import check_int, check_real
from ..datasets import Dataset
from ..protocol import PointModel
from ..registry import register_metric
from ..sampling import Moments
from .gaussian import Gaussian
from .gaussian import nll as _gaussian_nll
from .mixture import GaussianMixture, components, mean_logpdf

__all__ = ["Empirical"]


class Empirical(PointModel):
    r"""A fixed real data set of ``N`` points in :math:`\mathbb R^d`, split into training and
    held-out rows (see the module notes for how it is sampled and measured).

    Parameters
    ----------
    data : Dataset or array_like
        A :class:`~collapse_sim.datasets.Dataset` (``cs.datasets.digits()``, …) or an
        ``(N, d)`` array of finite numbers (``(N,)`` is one-dimensional data).
    heldout : float
        Share of the rows held out, in ``[0, 0.9]`` (``0``: none; then ``nll`` is
        unavailable).
    name : str, optional
        Name stored in configurations (default: the data set's, or ``"array"``).
    labels : array_like, optional
        ``(N,)`` integer class labels (taken from a ``Dataset`` when not given); used by
        label-aware metrics such as the digit classifier of probabilistic PCA.
    split_seed : int
        Seed of the permutation that chooses the held-out rows (fixed: the same split
        for every run and seed).

    Attributes
    ----------
    train, heldout_points : ndarray
        ``(N_train, d)`` and ``(N_heldout, d)`` read-only rows.
    train_labels, heldout_labels : ndarray or None
    mean : ndarray
        ``(1, d)`` mean of the training split.
    cov : ndarray
        ``(1, d, d)`` covariance of the training split (divisor ``N_train``).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> truth = cs.Empirical(cs.datasets.two_moons(1000, seed=0), heldout=0.2)
    >>> truth.train.shape, truth.heldout_points.shape
    ((800, 2), (200, 2))
    >>> sim = cs.simulate(truth, cs.GaussianFit(), n_samples=100, generations=3, chains=4,
    ...                   seed=0)
    >>> sim.metrics["variance"].shape
    (4, 4)
    """

    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {"mean": ("dim",), "cov": ("dim", "dim2")}
    statistics_type = Moments
    exact_statistics = True
    exact_keep_share = False

    def __init__(self, data, heldout: float = 0.2, *, name: str | None = None, labels=None,
                 split_seed: int = 0):
        image_shape = None
        if isinstance(data, Dataset):
            name = data.name if name is None else name
            labels = data.labels if labels is None else labels
            image_shape = data.image_shape
            data = data.data
        if name is None:
            name = "array"
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        points = _as_rows(data)
        heldout = check_real("heldout", heldout, low=0.0, high=0.9)
        split_seed = check_int("split_seed", split_seed, minimum=0, maximum=2**32 - 1)
        rows = points.shape[0]
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (rows,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be ({rows},) integers, one per row of data; got "
                                 f"shape {labels.shape} of {labels.dtype}")
            labels = labels.astype(np.int64)
        m = round(heldout * rows)
        if heldout > 0 and m < 1:
            raise ValueError(f"heldout={heldout} of {rows} rows holds out no row: raise heldout "
                             "or give more rows")
        if rows - m < 2:
            raise ValueError(f"data has {rows} rows; heldout={heldout} leaves {rows - m} for "
                             "training, and at least 2 are needed")
        order = np.random.default_rng(split_seed).permutation(rows)
        self.train = _frozen(points[order[:rows - m]])
        self.heldout_points = _frozen(points[order[rows - m:]])
        self.train_labels = None if labels is None else _frozen(labels[order[:rows - m]])
        self.heldout_labels = None if labels is None else _frozen(labels[order[rows - m:]])
        self.heldout_share = heldout
        self.split_seed = split_seed
        self.name = name
        self.image_shape = image_shape
        self.sha256 = hashlib.sha256(np.ascontiguousarray(points).tobytes()).hexdigest()
        mean = self.train.mean(axis=0)
        dev = self.train - mean
        self.mean = _frozen(mean[None])
        self.cov = _frozen((dev.T @ dev / self.train.shape[0])[None])

    # -- the protocol --------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """1: a data set is a single truth."""
        return 1

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the rows."""
        return self.train.shape[1]

    @property
    def train_size(self) -> int:
        """Number of rows in the training split."""
        return self.train.shape[0]

    def broadcast(self, chains: int) -> Empirical:
        """The data set itself (shared by every chain)."""
        return self

    def items_for(self, n_samples: int) -> int:
        """``n_samples`` rows, refused beyond the training split (draws are without
        replacement)."""
        if n_samples > self.train_size:
            raise ValueError(f"n_samples={n_samples} exceeds the {self.train_size} rows of "
                             f"{self.name!r}'s training split (real samples are drawn without "
                             "replacement): lower n_samples or heldout")
        return n_samples

    def _row_index(self, k: int, streams) -> np.ndarray:
        """``(chains, k)`` int32: ``k`` distinct training-row indices per chain, in random
        order (``k`` checked against the training split)."""
        k = check_int("k", k, minimum=0, maximum=self.train_size)
        index = np.empty((streams.chains, k), dtype=np.int32)
        _subsets.draw_blocks(streams.states, self.train_size, k, index)
        return index

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)``: ``k`` distinct training rows per chain, in random order."""
        index = self._row_index(k, streams)
        # recycled memory (fresh pages are written one by one): lent again only once
        # nothing refers to it
        out = BUFFERS.take((streams.chains, index.shape[1], self.dim), np.float64)
        _kde_kernels.gather_rows(self.train, index, out)  # = self.train[index], in numba
        return out

    def draw_statistics(self, k: int, streams, *, exact: bool) -> Moments:
        """Mean and centred scatter of ``k`` distinct training rows per chain: the rows
        :meth:`draw` returns from the same stream position, never gathered (the moments
        of a real sample are its own, so ``exact`` changes nothing)."""
        index = self._row_index(k, streams)
        if index.shape[1] == 0:
            return Moments(0, np.zeros((streams.chains, self.dim)),
                           np.zeros((streams.chains, self.dim, self.dim)))
        mean = np.empty((streams.chains, self.dim))
        scatter = np.empty((streams.chains, self.dim, self.dim))
        # the kernel's products (np.dot, BLAS) run on one BLAS thread per chain (declared
        # with the kernel): OpenBLAS's own threads would change the bits
        _rows_kernels.subset_moments(self.train, index, mean, scatter)
        return Moments(index.shape[1], mean, scatter)

    @property
    def has_heldout(self) -> bool:
        """Whether the split holds out any row."""
        return self.heldout_points.shape[0] > 0

    def heldout(self, size: int, streams) -> np.ndarray:
        """The held-out rows ``(N_heldout, d)`` (``size`` is ignored)."""
        if self.heldout_points.shape[0] == 0:
            raise ValueError(f"Empirical({self.name!r}) has heldout=0: this metric needs "
                             "held-out rows; give heldout > 0")
        return self.heldout_points

    def reference(self, fitter, streams):
        """Generation 0: ``fitter``'s model of the whole training split (a batch of one)."""
        data = self.train[None]
        if fitter.needs == "statistics":
            return fitter.fit_statistics(fitter.statistics(data, truth=self))
        return fitter.fit_chains(data, streams=streams, previous=None, truth=self)

    def finite(self) -> np.ndarray:
        """``[True]``: the rows were checked finite."""
        return np.ones(1, dtype=bool)

    def record(self) -> dict[str, np.ndarray]:
        """The training split's ``mean`` ``(1, d)`` and ``cov`` ``(1, d, d)``."""
        return {"mean": self.mean, "cov": self.cov}

    def to_dict(self) -> dict:
        """The data set by name, size and SHA-256 of its rows; the split."""
        return {"type": "Empirical", "name": self.name, "rows": int(self.train.shape[0]
                                                                    + self.heldout_points.shape[0]),
                "dim": self.dim, "sha256": self.sha256, "heldout": self.heldout_share,
                "split_seed": self.split_seed}

    def __repr__(self) -> str:
        return (f"Empirical({self.name!r}, {self.train_size} training + "
                f"{self.heldout_points.shape[0]} held-out rows of dimension {self.dim})")


def _as_rows(data) -> np.ndarray:
    try:
        points = np.asarray(data)
    except (TypeError, ValueError):
        raise TypeError("data must be a Dataset or an (N, d) array of numbers") from None
    if points.dtype == object or not (np.issubdtype(points.dtype, np.number)
                                      or points.dtype == bool):
        raise TypeError(f"data must be an (N, d) array of numbers, got dtype {points.dtype}")
    if np.iscomplexobj(points):
        raise TypeError("data must be real, got complex numbers")
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2 or points.shape[1] < 1:
        raise ValueError(f"data must be (N, d) rows, got shape {points.shape}")
    points = points.astype(np.float64)
    bad = ~np.isfinite(points)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"data must be finite; row {row} holds {points[row][bad[row]][0]}")
    return points


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(array)
    out.setflags(write=False)
    return out


# -- metrics of Gaussian and mixture models of an empirical truth ---------------------------

def _variance(truth, model) -> np.ndarray:
    _, means, covs = components(model)
    w = components(model)[0]
    mean = np.einsum("bk,bkd->bd", w, means)
    spread = np.einsum("bk,bkd->b", w, (means - mean[:, None]) ** 2)
    return np.einsum("bk,bkdd->b", w, covs) + spread


def _mean_shift(truth, model) -> np.ndarray:
    w, means, _ = components(model)
    return np.linalg.norm(np.einsum("bk,bkd->bd", w, means) - truth.mean, axis=1)


def _nll(truth, model, heldout) -> np.ndarray:
    if isinstance(model, Gaussian) and not isinstance(model, GaussianMixture):
        return _gaussian_nll(truth, model, heldout)
    value = -mean_logpdf(model, heldout)
    return np.where(np.isnan(value), np.inf, value)


for _model in (Gaussian, GaussianMixture):
    register_metric("variance", Empirical, _model, lambda t, m, ctx: _variance(t, m),
                    doc="total variance of the model")
    register_metric("mean_shift", Empirical, _model, lambda t, m, ctx: _mean_shift(t, m),
                    doc="||m - mean of the training split||")
    register_metric("nll", Empirical, _model, lambda t, m, ctx: _nll(t, m, ctx.heldout),
                    heldout=True, doc="mean -log q of the held-out rows")
