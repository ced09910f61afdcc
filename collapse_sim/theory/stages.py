r"""Exact theory of generation stages for the refitted Gaussian (and categorical maps).

Generation 1 fits the real sample; every later generation fits :math:`n` points drawn
from the previous fit *through the stage*. For the MLE Gaussian fit in 1-D
(:math:`\sigma^2_t = M_2/n`, :math:`M_2/\sigma^2_{\text{drawn}} \sim \chi^2_{n-1}`):

**Temperature** :math:`\tau` draws from :math:`\mathcal N(\mu, \tau^2\sigma^2)`, so

.. math::

    \frac{\sigma^2_t}{\sigma^2_0} = \tau^{2(t-1)} \prod_{s=1}^{t} \frac{C_s}{n},
    \qquad C_s \overset{\text{iid}}{\sim} \chi^2_{n-1},
    \qquad \mathbb E[\sigma^2_t] = \sigma^2_0 \Big(\frac{n-1}{n}\Big)^t \tau^{2(t-1)}.

The mean explodes iff :math:`\tau^2 (n-1)/n > 1`, i.e. :math:`\tau > \sqrt{n/(n-1)}`. A
typical chain collapses iff :math:`\mathbb E \log(\tau^2 C/n) < 0`, i.e.
:math:`\tau < \tau^* = \big(n / (2 e^{\psi((n-1)/2)})\big)^{1/2}` (:math:`\psi` the
digamma function: :math:`\mathbb E\log\chi^2_\nu = \psi(\nu/2) + \log 2`). Since
:math:`\tau^* > \sqrt{n/(n-1)}` (Jensen), temperatures in between make the *mean*
variance explode while almost every chain collapses: the mean is carried by ever rarer
chains.

**Truncation** at :math:`\pm k` standard deviations draws from the normal conditioned on
:math:`|x - \mu| \le k\sigma`, whose variance is :math:`c_k\sigma^2` with

.. math::

    c_k = 1 - \frac{2k\varphi(k)}{2\Phi(k) - 1},

and its sample variance has mean :math:`(n-1)c_k\sigma^2/n`, so
:math:`\mathbb E[\sigma^2_t] = \sigma^2_0((n-1)/n)^t c_k^{t-1}` (the mean of a product of
independent factors; the factors are not :math:`\chi^2` any more, their means are exact).

**Categorical temperature** in the infinite-sample limit maps :math:`p \mapsto
p^{1/\tau}/Z`: after :math:`t` tempered generations Zipf(:math:`s`) becomes
Zipf(:math:`s/\tau^{t}`) (:func:`zipf_exponent_under_temperature`).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from .._validation import check_choice, check_int, check_real
from ._checks import GenerationsLike, _validate_generations


def _ratio(n: int, estimator: str) -> float:
    return (n - 1) / (n if estimator == "mle" else n - 1)


def gaussian_temperature_variance_mean(n_samples: int, generations: GenerationsLike,
                                       tau: float, *, estimator: str = "mle") -> np.ndarray:
    r""":math:`\mathbb E[\sigma^2_t]/\sigma^2_0 = r^t\tau^{2(t-1)}` (:math:`t \ge 1`; 1 at
    :math:`t = 0`), :math:`r = (n-1)/n` (MLE) or 1 (unbiased), for a ``Temperature(tau)``
    stage (see the module docstring).

    Examples
    --------
    >>> from collapse_sim.theory.stages import gaussian_temperature_variance_mean
    >>> gaussian_temperature_variance_mean(100, [0, 1, 2], 1.0).round(4).tolist()
    [1.0, 0.99, 0.9801]
    """
    n = check_int("n_samples", n_samples, minimum=2, maximum=10**12)
    tau = check_real("tau", tau, low=0.0, low_open=True, high=100.0)
    estimator = check_choice("estimator", estimator, ("mle", "unbiased"))
    t = _validate_generations(generations).astype(np.float64)
    with np.errstate(over="ignore"):
        out = np.exp(t * np.log(_ratio(n, estimator)) + 2 * np.maximum(t - 1, 0) * np.log(tau))
    return out


def gaussian_temperature_log_variance_mean(n_samples: int, generations: GenerationsLike,
                                           tau: float, *, estimator: str = "mle"
                                           ) -> np.ndarray:
    r""":math:`\mathbb E\log(\sigma^2_t/\sigma^2_0) = t(\psi(\tfrac{n-1}2) + \log\tfrac2k)
    + 2(t-1)\log\tau` (:math:`k = n` or :math:`n-1`): the drift of a typical chain."""
    n = check_int("n_samples", n_samples, minimum=2, maximum=10**12)
    tau = check_real("tau", tau, low=0.0, low_open=True, high=100.0)
    estimator = check_choice("estimator", estimator, ("mle", "unbiased"))
    k = n if estimator == "mle" else n - 1
    t = _validate_generations(generations).astype(np.float64)
    step = special.digamma((n - 1) / 2) + np.log(2 / k)
    return t * step + 2 * np.maximum(t - 1, 0) * np.log(tau)


def critical_temperature(n_samples: int, *, estimator: str = "mle") -> float:
    r""":math:`\tau^* = \big(k/(2e^{\psi((n-1)/2)})\big)^{1/2}`: below it a typical chain's
    variance goes to 0, above it to infinity (:math:`k = n` or :math:`n-1`).

    Examples
    --------
    >>> from collapse_sim.theory.stages import critical_temperature
    >>> round(critical_temperature(10), 4), round((10 / 9) ** 0.5, 4)
    (1.1166, 1.0541)
    """
    n = check_int("n_samples", n_samples, minimum=2, maximum=10**12)
    estimator = check_choice("estimator", estimator, ("mle", "unbiased"))
    k = n if estimator == "mle" else n - 1
    return float(np.sqrt(k / (2 * np.exp(special.digamma((n - 1) / 2)))))


def truncation_variance_factor(k: float) -> float:
    r""":math:`c_k = 1 - 2k\varphi(k)/(2\Phi(k) - 1)`: the variance of a standard normal
    truncated to :math:`[-k, k]`.

    Examples
    --------
    >>> from collapse_sim.theory.stages import truncation_variance_factor
    >>> round(truncation_variance_factor(2.0), 4)
    0.7737
    """
    k = check_real("k", k, low=0.0, low_open=True, high=40.0)
    return float(1.0 - 2 * k * stats.norm.pdf(k) / (2 * stats.norm.cdf(k) - 1))


def gaussian_truncation_variance_mean(n_samples: int, generations: GenerationsLike, k: float,
                                      *, estimator: str = "mle") -> np.ndarray:
    r""":math:`\mathbb E[\sigma^2_t]/\sigma^2_0 = r^t c_k^{t-1}` (1 at :math:`t = 0`) under
    a ``Truncate(k)`` stage in 1-D (:func:`truncation_variance_factor`)."""
    n = check_int("n_samples", n_samples, minimum=2, maximum=10**12)
    estimator = check_choice("estimator", estimator, ("mle", "unbiased"))
    c = truncation_variance_factor(k)
    t = _validate_generations(generations).astype(np.float64)
    return np.exp(t * np.log(_ratio(n, estimator)) + np.maximum(t - 1, 0) * np.log(c))


def zipf_exponent_under_temperature(exponent: float, tau: float,
                                    generations: GenerationsLike) -> np.ndarray:
    r"""Infinite-sample map of a ``Temperature(tau)`` stage on a categorical truth:
    :math:`p^{1/\tau}/Z` each generation turns Zipf(:math:`s`) into Zipf(:math:`s/\tau`),
    so the exponent after :math:`t` generations (the first fitted on real data) is
    :math:`s\,\tau^{-(t-1)}` (:math:`t \ge 1`)."""
    s = check_real("exponent", exponent, low=0.0, low_open=True, high=1e3)
    tau = check_real("tau", tau, low=0.0, low_open=True, high=100.0)
    t = _validate_generations(generations).astype(np.float64)
    return s * tau ** -np.maximum(t - 1, 0)
