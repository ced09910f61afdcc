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
