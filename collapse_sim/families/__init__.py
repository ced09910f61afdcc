"""Model families, one module each: model, statistics, fitters and metrics.

A family plugs into the generic engine through :mod:`collapse_sim.protocol` and
registers its metrics in :mod:`collapse_sim.registry` when it is imported; this
package imports every family, so importing it registers them all. Closed forms
live in :mod:`collapse_sim.theory`. See the contributor guide ("How to add a model
family") and :func:`collapse_sim.testing.check_family`.
"""

from . import categorical, empirical, factor, gaussian, kde, mixture, ppca, regression, sklearn

__all__ = ["categorical", "empirical", "factor", "gaussian", "kde", "mixture", "ppca", "regression",
           "sklearn"]
