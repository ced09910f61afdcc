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


# -- selection: best-of-K and Bradley–Terry curation ------------------------------------------

def best_of_k_normal_moments(K: int) -> tuple[float, float]:
    r"""Mean :math:`m_K` and variance :math:`v_K` of the maximum of ``K`` independent
    standard normals (density :math:`K\varphi(x)\Phi(x)^{K-1}`: hard best-of-K with reward
    :math:`r(x) = x` maps the CDF :math:`F` to :math:`F^K`), by Gauss–Hermite-free adaptive
    quadrature on :math:`[-12, 12]`.

    Examples
    --------
    >>> from collapse_sim.theory.stages import best_of_k_normal_moments
    >>> [round(v, 4) for v in best_of_k_normal_moments(2)]   # 1/sqrt(pi), 1 - 1/pi
    [0.5642, 0.6817]
    """
    from scipy import integrate

    K = check_int("K", K, minimum=1, maximum=10**6)

    def density(x):
        return K * stats.norm.pdf(x) * np.exp((K - 1) * stats.norm.logcdf(x))

    m = integrate.quad(lambda x: x * density(x), -12.0, 12.0, epsabs=1e-13, limit=200)[0]
    second = integrate.quad(lambda x: x * x * density(x), -12.0, 12.0, epsabs=1e-13,
                            limit=200)[0]
    return m, second - m * m


def gaussian_best_of_k_variance_mean(n_samples: int, generations: GenerationsLike, K: int,
                                     *, estimator: str = "mle") -> np.ndarray:
    r""":math:`\mathbb E[\sigma^2_t]/\sigma^2_0 = r^t v_K^{t-1}` (1 at :math:`t = 0`) for
    ``BestOfK(K, reward="value")`` on a refitted 1-D Gaussian: every synthetic item is the
    largest of ``K`` draws, whose variance is :math:`v_K\sigma^2`
    (:func:`best_of_k_normal_moments`), and the divisor-``k`` sample variance of ``n`` of
    them has mean :math:`(n-1)v_K\sigma^2/k`; :math:`r = (n-1)/k`. The mean climbs by
    :math:`m_K\sigma_{t-1}` per generation while the variance shrinks geometrically:
    the loop optimises the reward and loses diversity.

    Examples
    --------
    >>> from collapse_sim.theory.stages import gaussian_best_of_k_variance_mean
    >>> gaussian_best_of_k_variance_mean(100, [0, 1, 2], 4).round(4).tolist()
    [1.0, 0.99, 0.4819]
    """
    n = check_int("n_samples", n_samples, minimum=2, maximum=10**12)
    estimator = check_choice("estimator", estimator, ("mle", "unbiased"))
    t = _validate_generations(generations).astype(np.float64)
    v = best_of_k_normal_moments(K)[1]
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(t * np.log(_ratio(n, estimator)) + np.maximum(t - 1, 0) * np.log(v))


def gaussian_tilt(mean: float, var: float, beta: float) -> tuple[float, float]:
    r"""The exponential tilt :math:`\propto \mathcal N(x; \mu, \sigma^2)\,e^{\beta x}` is
    :math:`\mathcal N(\mu + \beta\sigma^2, \sigma^2)`: the law ``Curate(K,
    reward=lambda x: beta * x)`` keeps as :math:`K \to \infty` (self-normalised importance
    sampling: the Bradley–Terry choice among ``K`` draws tends to the tilt). Refitted with
    many points, the mean then climbs by :math:`\beta\sigma^2` every generation and the
    variance is unchanged: curation by a linear reward is a drift, not a collapse.

    Examples
    --------
    >>> from collapse_sim.theory.stages import gaussian_tilt
    >>> gaussian_tilt(0.0, 2.0, 0.5)
    (1.0, 2.0)
    """
    mean = check_real("mean", mean)
    var = check_real("var", var, low=0.0)
    beta = check_real("beta", beta)
    return mean + beta * var, var


# -- categorical top-p ------------------------------------------------------------------------

def top_p_iterates(probs, p: float, *, max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    r"""Iterate the infinite-sample map of ``TopP(p)`` on a categorical distribution:
    :math:`q \mapsto q\,\mathbb 1[\text{nucleus}_p(q)] / Z`, the nucleus being the smallest
    set of likeliest categories whose mass reaches :math:`p` (within :math:`10^{-12}`, ties
    broken by index, as the sampler does).

    Each step keeps a nucleus of the previous support, so the support shrinks until it
    reaches a fixed point: a support :math:`S` whose every proper top set holds less than
    :math:`p` of its mass, i.e. :math:`1 - q_{\min}(S)/q(S) < p`, with :math:`q_{\min}` its
    least likely category. For a flat support the fixed point needs :math:`|S| < 1/(1-p)`;
    a Zipf truth loses its tail within a few steps.

    Returns
    -------
    sizes : ndarray
        Support size after 0, 1, … steps, up to the fixed point.
    fixed : ndarray
        The fixed-point distribution.

    Examples
    --------
    >>> import numpy as np
    >>> from collapse_sim.theory.stages import top_p_iterates
    >>> sizes, q = top_p_iterates(np.full(10, 0.1), 0.9)
    >>> sizes.tolist()      # 9 of 10 hold 0.9; then 8 of 9 hold 8/9 < 0.9 ...
    [10, 9, 9]
    """
    q = np.array(probs, dtype=np.float64)
    if q.ndim != 1 or q.size < 1 or not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError("probs must be a 1-D array of finite non-negative numbers")
    if q.sum() <= 0:
        raise ValueError("probs must have positive mass")
    p = check_real("p", p, low=0.0, low_open=True, high=1.0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    q = q / q.sum()
    sizes = [int(np.count_nonzero(q))]
    for _ in range(max_iter):
        order = np.argsort(-q, kind="stable")
        cum = np.cumsum(q[order])
        keep = min(int(np.count_nonzero(cum < p - 1e-12)) + 1, q.size)  # as the sampler
        new = np.zeros_like(q)
        new[order[:keep]] = q[order[:keep]]
        new /= new.sum()
        sizes.append(int(np.count_nonzero(new)))
        if sizes[-1] == sizes[-2]:
            return np.array(sizes), new
        q = new
    raise ValueError(f"no fixed point within max_iter={max_iter} steps")
