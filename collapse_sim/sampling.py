r"""Statistical approximation error: drawing finite samples for every chain.

Every chain owns one xoshiro256++ stream (Blackman & Vigna 2021), seeded by
SplitMix64 from the seed's ``SeedSequence`` key and the chain index, and the
jitted kernels advance chain ``c``'s stream only inside chain ``c``'s iteration
of a ``prange``. The same ``seed`` therefore gives bit-identical draws on any
number of threads, and chain ``c``'s draws do not depend on how many other
chains run.

Gaussian points are drawn as :math:`x = \mu + L z` with :math:`LL^\top=\Sigma`
and :math:`z` standard normal (256-layer ziggurat, Marsaglia & Tsang 2000). When only the sample
moments are needed they are computed in :math:`z`-space and mapped exactly,

.. math::

    \bar x = \mu + L\bar z, \qquad
    \sum_i (x_i-\bar x)(x_i-\bar x)^\top
        = L\,\Big[\sum_i (z_i-\bar z)(z_i-\bar z)^\top\Big] L^\top,

so a collapsing chain's variance decays to exactly 0 instead of stalling at the
rounding floor :math:`(\epsilon\mu)^2` that summing nearly equal points leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _random
from ._kernels import linalg as _linalg
from ._kernels import mixture as _mix
from ._kernels import moments as _mk
from ._kernels import rng as _rng
from ._random import SeedLike
from ._validation import MAX_INT, check_int


class ChainStreams:
    """Independent random streams, one per chain, advanced in place by the kernels.

    Parameters
    ----------
    states : ndarray
        ``(chains, 4)`` uint64 xoshiro256++ states (copied into a padded
        ``(chains, 16)`` layout that keeps every chain on its own cache line).

    See Also
    --------
    chain_streams : build the streams from a seed.
    """

    def __init__(self, states: np.ndarray):
        states = np.asarray(states, dtype=np.uint64)
        if states.ndim != 2 or states.shape[1] not in (4, _random.STATE_STRIDE):
            raise ValueError(f"states must have shape (chains, 4), got {states.shape}")
        padded = np.zeros((states.shape[0], _random.STATE_STRIDE), dtype=np.uint64)
        padded[:, :4] = states[:, :4]
        self.states = padded

    @property
    def chains(self) -> int:
        """Number of streams."""
        return self.states.shape[0]

    def standard_normal(self, k: int, d: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """``(chains, k, d)`` standard normals; row ``c`` from stream ``c``.

        ``out``: a C-contiguous float64 array of that shape to fill instead.
        """
        k = check_int("k", k, minimum=0, maximum=MAX_INT)
        d = check_int("d", d, minimum=1)
        if out is None:
            out = np.empty((self.chains, k, d))
        elif (not isinstance(out, np.ndarray) or out.shape != (self.chains, k, d)
              or out.dtype != np.float64 or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous float64 array of shape "
                             f"{(self.chains, k, d)} (one row per stream)")
        _rng.fill_standard_normal(self.states, out)
        return out

    def uniform(self, k: int) -> np.ndarray:
        """``(chains, k)`` uniforms on [0, 1)."""
        k = check_int("k", k, minimum=0, maximum=MAX_INT)
        out = np.empty((self.chains, k))
        _rng.fill_uniform(self.states, out)
        return out


def chain_streams(seed: SeedLike, chains: int, first: int = 0) -> ChainStreams:
    """Streams for chains ``first, ..., first + chains - 1`` of the run seeded by ``seed``.

    Parameters
    ----------
    seed : int, SeedSequence, Generator or None
        Root of the run's randomness (see :func:`collapse_sim.simulate`).
    chains : int
        Number of streams (>= 1).
    first : int
        Index of the first chain, so a run can be split into batches whose
        chains are the same as in the unsplit run.

    Examples
    --------
    >>> from collapse_sim.sampling import chain_streams
    >>> a = chain_streams(0, 4).standard_normal(3)
    >>> b = chain_streams(0, 2, first=2).standard_normal(3)
    >>> bool((a[2:] == b).all())
    True
    """
    chains = check_int("chains", chains, minimum=1, maximum=MAX_INT)
    first = check_int("first", first, minimum=0, maximum=2**62)
    root = _random.as_seed_sequence(seed)
    return ChainStreams(_random.chain_states(root, chains, first))


@dataclass(frozen=True)
class Moments:
    r"""Sufficient statistics of a Gaussian fit, per chain.

    Attributes
    ----------
    count : int
        Number of points :math:`k` (the same in every chain).
    mean : ndarray
        ``(chains, d)`` sample means :math:`\bar x`.
    scatter : ndarray
        ``(chains, d, d)`` centred scatter :math:`\sum_i (x_i-\bar x)(x_i-\bar x)^\top`.
    """

    count: int
    mean: np.ndarray
    scatter: np.ndarray

    def __add__(self, other: Moments) -> Moments:
        r"""Moments of the union (Chan, Golub & LeVeque 1979 pairwise update).

        With :math:`\delta = \bar x_b - \bar x_a` and :math:`k = k_a + k_b`:
        :math:`\bar x = \bar x_a + \delta k_b/k`,
        :math:`M = M_a + M_b + \delta\delta^\top k_a k_b / k`.
        """
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        k = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / k)
        outer = delta[:, :, None] * delta[:, None, :]
        scatter = self.scatter + other.scatter + outer * (self.count * other.count / k)
        return Moments(k, mean, scatter)

    @staticmethod
    def of(points: np.ndarray) -> Moments:
        """Moments of ``points`` ``(chains, k, d)`` (two-pass, jitted)."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        chains, k, d = points.shape
        mean = np.empty((chains, d))
        scatter = np.empty((chains, d, d))
        _mk.moments(points, mean, scatter)
        return Moments(k, mean, scatter)


def gaussian_points(model, n: int, streams: ChainStreams) -> np.ndarray:
    """``(chains, n, d)`` points, row ``c`` drawn from member ``c`` of ``model`` with stream ``c``.

    ``model`` is a :class:`~collapse_sim.Gaussian` whose batch is 1 or ``streams.chains``.
    """
    model = model.broadcast(streams.chains)
    z = streams.standard_normal(n, model.dim)
    if model.dim == 1:  # in place: mean + sd * z without temporaries of the points' size
        z *= np.sqrt(model.cov[:, :, 0])[:, None, :]
        z += model.mean[:, None, :]
        return z
    out = np.empty_like(z)
    _linalg.affine_points(
        np.ascontiguousarray(model.mean), np.ascontiguousarray(model.cholesky()), z, out
    )
    return out


def mixture_points(model, n: int, streams: ChainStreams) -> np.ndarray:
    """``(chains, n, d)`` points, row ``c`` from member ``c`` of a ``GaussianMixture``.

    Each point takes one uniform (its component, by inverting the cumulative
    weights) and ``d`` normals from the chain's stream.
    """
    model = model.broadcast(streams.chains)
    out = np.empty((streams.chains, n, model.dim))
    cumw = np.ascontiguousarray(np.cumsum(model.weights, axis=1))
    _mix.mixture_points(streams.states, cumw, np.ascontiguousarray(model.means),
                        np.ascontiguousarray(model.cholesky()), out)
    return out


def regression_points(model, n: int, streams: ChainStreams,
                      design: np.ndarray | None = None) -> np.ndarray:
    r"""``(chains, n, d + 1)`` labelled points ``(x, y)`` from a ``LinearRegression`` batch.

    Row ``c`` uses stream ``c``: first :math:`n d` normals for the features
    :math:`x = L_x z` (:math:`L_x L_x^\top = \Sigma_x`) unless ``design`` is given,
    then :math:`n` normals :math:`\varepsilon` for the labels
    :math:`y = x^\top w_c + \sigma_c\varepsilon`.

    Parameters
    ----------
    design : ndarray, optional
        ``(chains, m, d)`` fixed features to relabel instead of drawing new ones;
        point ``i`` uses row ``i mod m`` (so ``n = m`` relabels each row once).
    """
    model = model.broadcast(streams.chains)
    d = model.n_features
    out = np.empty((streams.chains, n, d + 1))
    if design is None:
        z = streams.standard_normal(n, d)
        np.matmul(z, model._design_chol.T, out=out[:, :, :d])
    else:
        rows = np.arange(n) % design.shape[1]
        out[:, :, :d] = design[:, rows] if n != design.shape[1] else design
    eps = streams.standard_normal(n, 1)[:, :, 0]
    out[:, :, d] = np.einsum("cnd,cd->cn", out[:, :, :d], model.weights)
    out[:, :, d] += model.noise_std[:, None] * eps
    return out


def draw_points(model, n: int, streams: ChainStreams) -> np.ndarray:
    """``(chains, n, *event_shape)`` items from any model of the library (``model.draw``)."""
    return model.draw(n, streams)


def gaussian_moments(model, n: int, streams: ChainStreams) -> Moments:
    """Moments of ``n`` points per chain from ``model``, without forming the points.

    Consumes the streams exactly as :func:`gaussian_points` does, so both give
    the same fit up to rounding.
    """
    model = model.broadcast(streams.chains)
    chains, d = streams.chains, model.dim
    buf = np.empty((chains, n, d))
    zmean = np.empty((chains, d))
    zscatter = np.empty((chains, d, d))
    _mk.normal_moments(streams.states, buf, zmean, zscatter)
    return _from_standard(model, n, zmean, zscatter)


def _from_standard(model, n: int, zmean: np.ndarray, zscatter: np.ndarray) -> Moments:
    """Moments of ``mu + L z`` from those of the standard normal points ``z``."""
    if model.dim == 1:
        sd = np.sqrt(model.cov[:, :, 0])
        return Moments(n, model.mean + sd * zmean, zscatter * model.cov)
    chol = model.cholesky()
    mean = model.mean + np.einsum("cij,cj->ci", chol, zmean)
    scatter = chol @ zscatter @ np.swapaxes(chol, 1, 2)
    return Moments(n, mean, scatter)


def exact_gaussian_moments(model, n: int, streams: ChainStreams) -> Moments:
    r"""Moments of ``n`` points per chain from a Gaussian ``model``, drawn directly.

    The exact sufficient-statistics path: :math:`ar x = \mu + Lar z` with
    :math:`ar z \sim \mathcal N(0, I/n)` and scatter :math:`L M L^	op` with
    :math:`M \sim \mathrm{Wishart}_d(n - 1, I)` (Bartlett decomposition, chi-squares by
    Marsaglia & Tsang's gamma sampler), independent — the joint law of the sample
    mean and scatter of ``n`` Gaussian points. Its cost does not grow with ``n``.
    It draws different random numbers from :func:`gaussian_moments`, so the two agree
    in distribution, not draw by draw.
    """
    model = model.broadcast(streams.chains)
    chains, d = streams.chains, model.dim
    zmean = np.empty((chains, d))
    zscatter = np.empty((chains, d, d))
    _mk.exact_normal_moments(streams.states, n, zmean, zscatter)
    return _from_standard(model, n, zmean, zscatter)


def subsample(pool: np.ndarray, size: int, k: int, streams: ChainStreams) -> np.ndarray:
    """``k`` items per chain drawn uniformly without replacement from ``pool[:, :size]``.

    ``pool`` is ``(chains, N, *event_shape)`` of any dtype; the result has ``pool``'s
    dtype and shape ``(chains, k, *event_shape)``.
    """
    if pool.ndim < 2 or pool.shape[0] != streams.chains:
        raise ValueError(f"pool must have shape ({streams.chains}, N, ...) for "
                         f"{streams.chains} streams, got {pool.shape}")
    size = check_int("size", size, minimum=0, maximum=pool.shape[1])
    k = check_int("k", k, minimum=0, maximum=size)
    flat = np.ascontiguousarray(pool).reshape(pool.shape[0], pool.shape[1], -1)
    out = np.empty((pool.shape[0], k, flat.shape[2]), dtype=pool.dtype)
    _mk.subsample_rows(streams.states, flat, size, k, out)
    return out.reshape(pool.shape[0], k, *pool.shape[2:])
