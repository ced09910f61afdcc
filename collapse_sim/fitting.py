r"""The closed-form and EM fitters of every family, under their long-standing module name.

A facade (each fitter lives with its family under :mod:`collapse_sim.families`). A
fitter whose family is smaller than the truth's is the *functional expressivity*
error of the mission statement; the closed-form Gaussian fit carries only the
*statistical* error of a finite sample.
"""

from .families.categorical import CategoricalFit
from .families.gaussian import GaussianFit
from .families.mixture import GaussianMixtureFit
from .families.regression import OLSFit
from .families.sklearn import SklearnFitter

__all__ = ["CategoricalFit", "GaussianFit", "GaussianMixtureFit", "OLSFit", "SklearnFitter"]
