r"""What probabilistic PCA and factor analysis models share.

Both are Gaussians :math:`\mathcal N(\mu, WW^\top + \Psi)` kept through their factors
:math:`W` ``(B, d, q)`` (``1 <= q < d``): :math:`\Psi = \sigma^2 I` for
:class:`~collapse_sim.PPCAModel`, :math:`\operatorname{diag}\psi` for
:class:`~collapse_sim.FactorAnalysisModel`. This base class holds their common
validation, batch broadcasting, description and ``repr``; each subclass lists its arrays
in ``_ARRAYS`` and fills them in its ``_init``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .._validation import as_float_array
from .gaussian import Gaussian


class LowRankGaussian(Gaussian):
    """Base of the factor models (private: not a family of its own)."""

    #: The model's arrays, each with the batch as its first axis.
    _ARRAYS: ClassVar[tuple[str, ...]] = ()
    #: What the columns of ``components`` are called in messages.
    _COLUMNS: ClassVar[str] = "components"

    @classmethod
    def _checked(cls, mean, components) -> tuple[np.ndarray, np.ndarray]:
        """``(mu (B, d), W (B', d, q))`` from the user's ``mean`` and ``components``;
        ``ValueError`` naming the parameter and the accepted shapes."""
        w = as_float_array("components", components)
        if w.ndim == 2:
            w = w[None]
        if w.ndim != 3:
            raise ValueError(f"components must have shape (d, q) or (B, d, q), got "
                             f"{np.shape(components)}")
        d, q = w.shape[1:]
        if not 1 <= q < d:
            raise ValueError(f"components must have 1 <= q < d columns (q {cls._COLUMNS} in "
                             f"d dimensions), got shape {np.shape(components)}")
        mu = as_float_array("mean", mean)
        if mu.ndim == 1:
            mu = mu[None]
        if mu.ndim != 2 or mu.shape[1] != d:
            raise ValueError(f"mean must have shape ({d},) or (B, {d}) to match components "
                             f"{np.shape(components)}, got {np.shape(mean)}")
        return mu, w

    @staticmethod
    def _batch(**sizes: int) -> int:
        """The common batch of the parameters (each 1 or the largest); ``ValueError``
        naming the one that fits neither."""
        batch = max(sizes.values())
        for name, size in sizes.items():
            if size not in (1, batch):
                raise ValueError(f"{name} has a batch of {size}, another parameter {batch}")
        return batch

    @property
    def n_components(self) -> int:
        """Number ``q`` of columns of ``components``."""
        return self.components.shape[2]

    def broadcast(self, chains: int):
        """This single model repeated ``chains`` times (views, no copies)."""
        if self.batch_size == chains:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")
        out = type(self).__new__(type(self))
        for name in self._ARRAYS:
            value = getattr(self, name)
            setattr(out, name, np.broadcast_to(value, (chains, *value.shape[1:])))
        out._chol = None
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dim={self.dim}, n_components={self.n_components}, "
                f"batch_size={self.batch_size})")

    def to_dict(self) -> dict:
        """JSON-serialisable description (parameters as nested lists)."""
        return {"type": type(self).__name__, "mean": self.mean.tolist(),
                "components": self.components.tolist(),
                "noise_variance": self.noise_variance.tolist()}


class LowRankFitMixin:
    """What :class:`~collapse_sim.PPCAFit` and :class:`~collapse_sim.FactorAnalysisFit`
    share: the divisor, the dimension check, competence and the fit from points.

    A mixin, not a :class:`~collapse_sim.protocol.Fitter` (so it is never offered as a
    fitter); a subclass has the fields ``n_components`` and ``estimator``, a ``_KEEPS``
    phrase for the dimension message, and ``fit_moments``.
    """

    #: Why ``n_components`` must stay below ``d``, in the family's words.
    _KEEPS: ClassVar[str] = "keeps q < d columns"

    @property
    def ddof(self) -> int:
        """Degrees of freedom subtracted from the count: 0 (MLE) or 1 (unbiased)."""
        return 0 if self.estimator == "mle" else 1

    def min_points(self) -> int:
        """Smallest training-set size the covariance estimator is defined for."""
        return 1 + self.ddof

    def competence(self, truth):
        """``EXACT`` for a truth of this family with at most ``n_components`` columns, else
        ``APPROXIMATE`` for points; ``ValueError`` if ``n_components >= d``."""
        from ..protocol import Competence

        found = super().competence(truth)
        if found is not Competence.INCOMPATIBLE:
            self._check_dim(truth.dim)
        if found is Competence.EXACT and truth.n_components > self.n_components:
            return Competence.APPROXIMATE
        return found

    def _check_dim(self, d: int) -> None:
        if self.n_components >= d:
            raise ValueError(f"n_components={self.n_components} must be below the data's "
                             f"dimension d={d} ({self._KEEPS}): choose n_components in "
                             f"[1, {d - 1}]")

    def fit(self, data):
        """Fit every chain's points.

        Parameters
        ----------
        data : array_like
            ``(chains, k, d)`` training points (``(k, d)`` for one chain), finite reals.

        Returns
        -------
        model
            A batch of ``chains`` fitted models of this family.
        """
        arr = as_float_array("data", data)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"data must have shape (chains, k, d), got {np.shape(data)}")
        self._check_dim(arr.shape[2])
        if arr.shape[1] < self.min_points():
            raise ValueError(f"data must hold at least {self.min_points()} points per chain for "
                             f"estimator={self.estimator!r}, got {arr.shape[1]}")
        return self.fit_moments(self.statistics(arr))

    def statistics(self, points: np.ndarray, *, truth=None):
        """Moments of the points ``(chains, k, d)`` (:func:`collapse_sim.families.ppca.moments`:
        two passes, chain-parallel)."""
        from .ppca import moments

        return moments(points)

    def fit_chains(self, points: np.ndarray, *, streams=None, previous=None, truth=None):
        """Fit from the points themselves (the engine's path when it keeps points)."""
        return self.fit_moments(self.statistics(points))
