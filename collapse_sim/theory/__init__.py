r"""Closed-form and exact-numerical theory for recursive Gaussian fitting.

The reference process is the one analysed by Shumailov et al., "AI models collapse when
trained on recursively generated data", *Nature* 631, 755-759 (2024), arXiv:2305.17493.
Generation 0 is the truth :math:`\mathcal N(\mu_0, \sigma_0^2)`. Generation :math:`t` is
fitted to :math:`n` i.i.d. samples drawn from generation :math:`t-1`:

.. math::

    \mu_t = \bar x, \qquad \sigma_t^2 = \frac{M_2}{k}, \qquad
    M_2 = \sum_{i=1}^n (x_i - \bar x)^2,

with :math:`k = n` (``estimator="mle"``) or :math:`k = n - 1` (``estimator="unbiased"``).
Write :math:`\nu = n - 1`. Because :math:`M_2 / \sigma_{t-1}^2 \sim \chi^2_\nu`
independently of :math:`\bar x` and of the past,

.. math::

    \frac{\sigma_t^2}{\sigma_0^2} = \prod_{s=1}^{t} \frac{C_s}{k}, \qquad
    C_s \overset{\text{iid}}{\sim} \chi^2_\nu,

and :math:`\mu_t = \mu_{t-1} + \sigma_{t-1} Z_t / \sqrt n` with :math:`Z_t \sim \mathcal N(0, 1)`
independent of everything else (the mean is a martingale).

Results implemented here
------------------------
* :func:`gaussian_variance_mean` -- :math:`\mathbb E[\sigma_t^2] = (\nu/k)^t \sigma_0^2`.
  In :math:`d` dimensions :math:`\Sigma_t = W/k` with :math:`W \sim
  \mathrm{Wishart}_d(\nu, \Sigma_{t-1})`, so :math:`\mathbb E[\operatorname{tr}\Sigma_t] =
  (\nu/k)^t \operatorname{tr}\Sigma_0` as well.
* :func:`gaussian_variance_quantiles` and :func:`gaussian_variance_cdf` -- the exact law of
  :math:`\sigma_t^2`, obtained by numerically inverting the closed-form characteristic
  function of :math:`\log(\sigma_t^2/\sigma_0^2) = \sum_s \log(C_s / k)`:

  .. math::

      \mathbb E\big[e^{iu \log(C/k)}\big] = \Big(\frac{2}{k}\Big)^{iu}
      \frac{\Gamma(\nu/2 + iu)}{\Gamma(\nu/2)}.

* :func:`gaussian_w2_squared_mean` -- the exact expected squared 2-Wasserstein distance
  between generation :math:`t` and the truth.
* :func:`best_gaussian_approximation` and :func:`gaussian_mismatch_floor` -- the
  moment-matched Gaussian of a mixture (the minimiser of KL(truth ‖ Gaussian)) and its
  distance to the truth: the expressivity floor.
* :func:`regression_test_error` -- the expected test error of least squares refitted on
  its own labels (Dohmatob, Feng & Kempe 2024; Gerstgrasser et al. 2024).
* Categorical distributions refitted by counts (the Wright–Fisher model of vanishing
  words, :mod:`collapse_sim.theory.categorical`): :func:`categorical_gini_simpson_mean`,
  :func:`categorical_fixation_probabilities`, :func:`categorical_surviving_mean`,
  :func:`categorical_absorption_time_mean`, :func:`rare_category_survival`,
  :func:`rare_category_median_survival`, and the ``fresh`` / ``accumulate`` recursions.
* :func:`ppca_trace_mean` -- probabilistic PCA keeps the trace of its data's covariance,
  so :math:`\mathbb E[\operatorname{tr} C_t] = ((n-1)/k)^t \operatorname{tr} C_0` for any
  number of components (:mod:`collapse_sim.theory.ppca`).
* Generation stages (:mod:`collapse_sim.theory.stages`): the variance under sampling
  temperature and truncation, the critical temperature :math:`\tau^*` of the window in
  which the mean variance explodes while typical chains collapse, and the Zipf exponent
  under categorical temperature.
* Kernel density estimates (:mod:`collapse_sim.theory.kde`): the mean variance with a fixed
  bandwidth (relaxes to :math:`ndh^2`), with scipy's data-scaled bandwidth (explodes), under
  accumulation (grows like :math:`dh^2\log t`), and the Wright–Fisher loss of ancestors.

The unbiased estimator keeps :math:`\mathbb E[\sigma_t^2] = \sigma_0^2` for every :math:`t`
while :math:`\sigma_t^2 \to 0` almost surely (:math:`\mathbb E\log(C/k) < 0` by Jensen) and
:math:`\mathbb E[W_2^2] \to \infty` -- the contrast drawn in Shumailov et al.'s Theorem 3.1.

All functions are pure NumPy/SciPy, vectorised over generations, and validate their
arguments up front (``TypeError``/``ValueError`` naming the offending parameter).
"""

from . import categorical as categorical  # the module, for its constants and notes
from ._checks import Estimator as Estimator  # argument types, as before the split
from ._checks import GenerationsLike as GenerationsLike
from .categorical import (
    categorical_absorption_time_mean,
    categorical_fixation_probabilities,
    categorical_gini_simpson_mean,
    categorical_gini_simpson_mean_accumulate,
    categorical_gini_simpson_mean_fresh,
    categorical_surviving_mean,
    categorical_surviving_mean_accumulate,
    rare_category_median_survival,
    rare_category_survival,
)
from .gaussian import (
    gaussian_variance_cdf,
    gaussian_variance_mean,
    gaussian_variance_quantiles,
    gaussian_w2_squared_mean,
)
from .kde import (
    kde_accumulate_variance_mean,
    kde_ancestors_mean,
    kde_scipy_variance_mean,
    kde_variance_mean,
)
from .mixture import best_gaussian_approximation, gaussian_mismatch_floor
from .overlays import overlay_for, register_overlay
from .ppca import ppca_trace_mean
from .regression import (  # the exact variance the tests bound simulations with
    _regression_test_error_variance as _regression_test_error_variance,
)
from .regression import regression_test_error
from .stages import (
    best_of_k_normal_moments,
    critical_temperature,
    gaussian_best_of_k_variance_mean,
    gaussian_temperature_log_variance_mean,
    gaussian_temperature_variance_mean,
    gaussian_tilt,
    gaussian_truncation_variance_mean,
    top_p_iterates,
    truncation_variance_factor,
    zipf_exponent_under_temperature,
)

__all__ = [
    "best_gaussian_approximation",
    "best_of_k_normal_moments",
    "categorical_absorption_time_mean",
    "categorical_fixation_probabilities",
    "categorical_gini_simpson_mean",
    "categorical_gini_simpson_mean_accumulate",
    "categorical_gini_simpson_mean_fresh",
    "categorical_surviving_mean",
    "categorical_surviving_mean_accumulate",
    "critical_temperature",
    "gaussian_best_of_k_variance_mean",
    "gaussian_mismatch_floor",
    "gaussian_temperature_log_variance_mean",
    "gaussian_temperature_variance_mean",
    "gaussian_tilt",
    "gaussian_truncation_variance_mean",
    "gaussian_variance_cdf",
    "gaussian_variance_mean",
    "gaussian_variance_quantiles",
    "gaussian_w2_squared_mean",
    "kde_accumulate_variance_mean",
    "kde_ancestors_mean",
    "kde_scipy_variance_mean",
    "kde_variance_mean",
    "overlay_for",
    "ppca_trace_mean",
    "rare_category_median_survival",
    "rare_category_survival",
    "register_overlay",
    "regression_test_error",
    "top_p_iterates",
    "truncation_variance_factor",
    "zipf_exponent_under_temperature",
]
