r"""Function-approximation error: fitters that minimise the likelihood by noisy SGD.

A facade (each fitter lives with its family under :mod:`collapse_sim.families`).
The closed-form fit of :class:`~collapse_sim.GaussianFit` has only statistical
error. A model trained by a finite number of stochastic gradient steps also
carries the error of the procedure: a small learning rate or few epochs leave it
short of the maximum-likelihood estimate (bias), minibatch noise and added
gradient noise scatter it around (extra variance). Recursive training compounds
both with the statistical error.
"""

from .families.gaussian import SGDGaussianFit
from .families.mixture import SGDMixtureFit
from .families.regression import SGDRegressionFit

__all__ = ["SGDGaussianFit", "SGDMixtureFit", "SGDRegressionFit"]
