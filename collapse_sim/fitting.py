r"""Estimators that turn one generation's training data into the next model.

A fitter whose family is smaller than the truth's is the *functional
expressivity* error of the mission statement; the closed-form Gaussian fit here
carries only the *statistical* error of a finite sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._validation import check_choice
from .models import Gaussian
from .sampling import Moments


@dataclass(frozen=True)
class GaussianFit:
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
    uses_moments = True

    def __post_init__(self):
        check_choice("estimator", self.estimator, ("mle", "unbiased"))

    @property
    def ddof(self) -> int:
        """Degrees of freedom subtracted from the count: 0 (MLE) or 1 (unbiased)."""
        return 0 if self.estimator == "mle" else 1

    def check_truth(self, truth) -> None:
        """Any truth with a sample space of dimension >= 1 can be fitted."""

    def min_points(self) -> int:
        """Smallest training-set size the estimator is defined for."""
        return 1 + self.ddof

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

    def fit_moments(self, moments: Moments) -> Gaussian:
        """Fit from sufficient statistics (no validation: the engine's fast path)."""
        cov = moments.scatter / (moments.count - self.ddof)
        return Gaussian._from_arrays(moments.mean, cov)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "GaussianFit", "estimator": self.estimator}
