"""The model classes of every family, under the module name they have always had.

A facade: each class lives in its family module under :mod:`collapse_sim.families`
(model, fits and metrics together). A model holds a batch of ``B`` distributions,
one per chain; a truth is a batch of one. Arrays follow the library's conventions:
points ``(..., n, d)``, means ``(B, d)``, covariances ``(B, d, d)``; 1-D input is
promoted to ``d = 1`` at the boundary.
"""

from .families.categorical import Categorical, Zipf
from .families.gaussian import Gaussian
from .families.mixture import GaussianMixture
from .families.regression import LinearRegression
from .families.sklearn import ESTIMATOR_SAMPLE, EstimatorBatch

__all__ = ["ESTIMATOR_SAMPLE", "Categorical", "EstimatorBatch", "Gaussian", "GaussianMixture",
           "LinearRegression", "Zipf"]
