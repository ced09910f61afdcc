r"""Function-approximation error: fitters that minimise the likelihood by noisy SGD.

The closed-form fit of :class:`~collapse_sim.GaussianFit` has only statistical
error. A model trained by a finite number of stochastic gradient steps also
carries the error of the procedure: a small learning rate or few epochs leave it
short of the maximum-likelihood estimate (bias), minibatch noise and added
gradient noise scatter it around (extra variance). Recursive training compounds
both with the statistical error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._kernels import sgd as _sgd
from ._validation import check_choice, check_int, check_real
from .models import Gaussian

_SCHEDULES = ("constant", "inverse_time")


@dataclass(frozen=True)
class SGDGaussianFit:
    r"""Gaussian fitted by minibatch SGD on the negative log-likelihood (numba, all chains).

    The parameters are the mean :math:`\mu` and a Cholesky factor :math:`L` of the
    covariance with log-parametrised diagonal (:math:`\Sigma = LL^\top`,
    :math:`L_{ii} = e^{\ell_i}`, so it stays positive definite); the loss per point is

    .. math::

        \tfrac12\lVert L^{-1}(x - \mu)\rVert^2 + \textstyle\sum_i \ell_i
        \;(+\tfrac d2\log 2\pi),

    whose minimiser over a sample is its maximum-likelihood Gaussian. Every chain
    shuffles its points with its own stream each epoch and takes
    :math:`\lceil n / \text{batch\_size}\rceil` steps per epoch.

    Parameters
    ----------
    learning_rate : float
        Step size :math:`\eta > 0`.
    batch_size : int
        Points per step, ``1 <= batch_size <= n_samples``.
    epochs : int
        Passes over the training set, >= 1.
    init : {"previous", "fixed"}
        Start each generation from the previous generation's model (generation 1:
        :math:`\mathcal N(0, I)`), or always from :math:`\mathcal N(0, I)`.
    momentum : float
        Heavy-ball coefficient in [0, 1).
    lr_schedule : {"constant", "inverse_time"}
        :math:`\eta_t = \eta` or :math:`\eta / (1 + t/\text{steps per epoch})`.
    gradient_noise : float
        Standard deviation of Gaussian noise added to every gradient coordinate, >= 0.

    Notes
    -----
    Divergence. With too large a rate the parameters overflow; the engine then
    raises ``FloatingPointError`` naming the generation and the chain, never
    returning NaN in the results.
    """

    learning_rate: float = 0.05
    batch_size: int = 32
    epochs: int = 5
    init: Literal["previous", "fixed"] = "previous"
    momentum: float = 0.0
    lr_schedule: Literal["constant", "inverse_time"] = "constant"
    gradient_noise: float = 0.0

    uses_moments = False

    def __post_init__(self):
        check_real("learning_rate", self.learning_rate, low=0.0, low_open=True)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("epochs", self.epochs, minimum=1)
        check_choice("init", self.init, ("previous", "fixed"))
        check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_choice("lr_schedule", self.lr_schedule, _SCHEDULES)
        check_real("gradient_noise", self.gradient_noise, low=0.0)

    def min_points(self) -> int:
        """A minibatch must fit in the training set."""
        return self.batch_size

    def check_truth(self, truth) -> None:
        """Any truth can be fitted."""

    def fit_chains(self, points: np.ndarray, *, streams, previous=None) -> Gaussian:
        """Run SGD for every chain; start from ``previous`` when ``init="previous"``."""
        points = np.ascontiguousarray(points, dtype=np.float64)
        chains, n, d = points.shape
        if self.batch_size > n:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {n} training points")
        if self.init == "previous" and isinstance(previous, Gaussian):
            start = previous.broadcast(chains)
            mean = np.array(start.mean)
            chol = start.cholesky()
            diag = np.diagonal(chol, axis1=1, axis2=2)
            with np.errstate(divide="ignore"):
                logdiag = np.log(np.maximum(diag, 1e-300))
            lower = np.array(np.tril(chol, -1))
        else:
            mean = np.zeros((chains, d))
            logdiag = np.zeros((chains, d))
            lower = np.zeros((chains, d, d))
        logdiag = np.ascontiguousarray(logdiag)
        _sgd.sgd_gaussian(points, streams.states, mean, logdiag, lower, self.learning_rate,
                          self.batch_size, self.epochs, self.momentum,
                          _SCHEDULES.index(self.lr_schedule), self.gradient_noise)
        with np.errstate(over="ignore", invalid="ignore"):
            chol = lower + np.exp(logdiag)[:, :, None] * np.eye(d)
            cov = chol @ np.swapaxes(chol, 1, 2)
        return Gaussian._from_arrays(mean, cov)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "SGDGaussianFit", "learning_rate": self.learning_rate,
                "batch_size": self.batch_size, "epochs": self.epochs, "init": self.init,
                "momentum": self.momentum, "lr_schedule": self.lr_schedule,
                "gradient_noise": self.gradient_noise}
