r"""The recursively refitted Gaussian: the law of its variance and its distance to the truth.

:func:`gaussian_variance_mean`, :func:`gaussian_variance_quantiles`,
:func:`gaussian_variance_cdf` and :func:`gaussian_w2_squared_mean`; the process and its
notation are described in :mod:`collapse_sim.theory`.

``generations`` is an int ``G`` in ``[0, 10**7]`` (the bound of
:mod:`collapse_sim.theory.categorical`), meaning ``t = 0, 1, ..., G``, or a 1-D array-like
of at most ``10**7 + 1`` integers in ``[0, 2**63 - 1]``: a late generation is asked for by
listing it (``generations=[10**9]``), never by allocating every generation before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._checks import (
    Estimator,
    GenerationsLike,
    _divisor,
    _validate_estimator,
    _validate_generations,
    _validate_n_samples,
    _validate_open_unit,
    _validate_threshold,
    _validate_var0,
)
from ._inversion import _log_ratio_moments, _standardised_cdf, _standardised_quantiles
from ._special import _centred_loggamma, _digamma_gap


def gaussian_variance_mean(
    *,
    n_samples: int,
    generations: GenerationsLike,
    estimator: Estimator = "mle",
    var0: float = 1.0,
) -> np.ndarray:
    r"""Expected fitted variance :math:`\mathbb E[\sigma_t^2]` after ``t`` refits.

    .. math::

        \mathbb E[\sigma_t^2] = \Big(\frac{n-1}{k}\Big)^t \sigma_0^2,

    since :math:`\sigma_t^2/\sigma_{t-1}^2 \sim \chi^2_{n-1}/k` independently, with
    :math:`\mathbb E\chi^2_{n-1} = n-1`. MLE (:math:`k=n`): geometric decay
    :math:`(1 - 1/n)^t`; unbiased (:math:`k=n-1`): constant :math:`\sigma_0^2`.

    The same formula holds for the trace of a :math:`d`-dimensional covariance: with
    :math:`\Sigma_t = W/k`, :math:`W \sim \mathrm{Wishart}_d(n-1, \Sigma_{t-1})`,
    :math:`\mathbb E[\operatorname{tr}\Sigma_t] = ((n-1)/k)^t \operatorname{tr}\Sigma_0`,
    so ``var0`` may be :math:`\operatorname{tr}\Sigma_0`.

    Parameters
    ----------
    n_samples : int
        Samples drawn per generation, :math:`n \ge 2`.
    generations : int or 1-D array_like of int
        ``G`` in ``[0, 10**7]`` evaluates at ``t = 0, 1, ..., G``; an array (at most
        ``10**7 + 1`` entries) evaluates at the given ``t`` in ``[0, 2**63 - 1]``.
    estimator : {"mle", "unbiased"}
        Variance divisor :math:`k = n` or :math:`k = n - 1`.
    var0 : float
        Generation-0 variance (or covariance trace), finite and ``> 0``.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(t),)``.

    Examples
    --------
    >>> gaussian_variance_mean(n_samples=10, generations=2)
    array([1.  , 0.9 , 0.81])
    """
    n = _validate_n_samples(n_samples)
    t = _validate_generations(generations)
    k = _divisor(n, _validate_estimator(estimator))
    v0 = _validate_var0(var0)
    log_ratio = math.log1p((n - 1 - k) / k)
    return v0 * np.exp(t.astype(np.float64) * log_ratio)


def gaussian_variance_quantiles(
    *,
    n_samples: int,
    generations: GenerationsLike,
    q: float | Sequence[float] | np.ndarray,
    estimator: Estimator = "mle",
    var0: float = 1.0,
) -> np.ndarray:
    r"""Exact quantiles of the fitted variance :math:`\sigma_t^2` after ``t`` refits.

    :math:`Y_t = \log(\sigma_t^2/\sigma_0^2) = \sum_{s=1}^t \log(C_s/k)`,
    :math:`C_s \sim \chi^2_\nu` i.i.d., :math:`\nu = n-1`, has characteristic function

    .. math::

        \varphi_{Y_t}(u) = \Big[\Big(\frac2k\Big)^{iu}
            \frac{\Gamma(\nu/2 + iu)}{\Gamma(\nu/2)}\Big]^t,

    mean :math:`m_t = t[\psi(\nu/2) + \log(2/k)]` and variance :math:`s_t^2 = t\,\psi'(\nu/2)`.
    The standardised :math:`Z_t = (Y_t - m_t)/s_t` has
    :math:`\log\varphi_{Z_t}(v) = t\,D(\nu/2, iv/s_t)` with
    :math:`D(a, w) = \ln\Gamma(a+w) - \ln\Gamma(a) - w\psi(a)` (evaluated through the Stirling
    series for :math:`\nu \ge 20`, so that :math:`n` up to :math:`10^6` and beyond loses no
    digits). Its CDF is recovered by the Gil-Pelaez formula discretised with the midpoint rule
    (Waller, Turnbull & Hardin 1995; Hughett 1998):

    .. math::

        F_{Z_t}(z) \approx \frac12 - \sum_{j\ge 0}
            \frac{\operatorname{Im}[e^{-iu_j z}\varphi_{Z_t}(u_j)]}{\pi(j+\frac12)},
        \qquad u_j = (j + \tfrac12) h.

    The aliasing error is at most :math:`P(|Z_t - z| > 2\pi/h)`; ``h`` is chosen from Chernoff
    bounds on both tails (computed from the exact cumulant generating function) so that this
    is below :math:`2\times10^{-14}` (or :math:`10^{-3}\min(q, 1-q)` if smaller), and the sum
    is truncated once :math:`|\varphi| < 10^{-15}`. Quantiles solve :math:`F_{Z_t}(z) = q` by
    Newton's method on the inverted density, safeguarded by bisection inside the Chernoff
    bracket, started from the 4th-order Cornish-Fisher expansion, and stopped at a relative
    step below :math:`10^{-13}`. Finally :math:`\sigma^2_{t,q} = \sigma_0^2 \exp(m_t + s_t z)`;
    at ``t = 0`` the quantile is ``var0``.

    Parameters
    ----------
    n_samples : int
        Samples drawn per generation, :math:`n \ge 2` (``n = 2`` -- :math:`\nu = 1`, a
        strongly left-skewed :math:`\log\chi^2_1` -- is supported).
    generations : int or 1-D array_like of int
        ``G`` in ``[0, 10**7]`` evaluates at ``t = 0, 1, ..., G``; an array (at most
        ``10**7 + 1`` entries) evaluates at the given ``t`` in ``[0, 2**63 - 1]``.
    q : float or 1-D array_like of float
        Probabilities in the open interval ``(0, 1)``.
    estimator : {"mle", "unbiased"}
        Variance divisor :math:`k = n` or :math:`k = n - 1`.
    var0 : float
        Generation-0 variance, finite and ``> 0``.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(t), len(q))``, or ``(len(t),)`` when ``q`` is a scalar.

    Notes
    -----
    Measured accuracy. The inversion controls the *absolute* CDF error; a quantile's relative
    error is about :math:`s_t \times` (CDF error) / (density of :math:`Z_t`), so it is
    largest in the far tails and when :math:`s_t` is large. Grids used below:
    ``n in {2, 3, 5, 10, 30, 100, 1e3, 1e4, 1e6}``, both estimators, and
    ``q in {1e-6, 1e-3, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1 - 1e-6}``.

    * ``t = 1`` against ``scipy.stats.chi2.ppf(q, n-1) / k``: relative quantile error
      :math:`\le 5\times10^{-14}` for :math:`0.01 \le q \le 0.99` and
      :math:`\le 3\times10^{-10}` over the whole grid (``n = 2``, ``q = 1e-6``, where the
      density of :math:`Z_1` is ~1e-6); the CDF agrees with ``scipy.stats.chi2.cdf`` to
      :math:`3\times10^{-14}` (``n = 1e6``, mostly the rounding of the threshold itself).
    * ``t = 2`` against an independent reference, adaptive quadrature of
      :math:`P(C_1C_2 \le c) = \int F_{\chi^2_\nu}(c e^{-s}) f_{\chi^2_\nu}(e^s) e^s\,ds`
      (``scipy.integrate.quad``, normalised by the quadrature of the density to cancel the
      ~1e-13 rounding of ``chi2.logpdf`` at large :math:`\nu`):
      :math:`|F_{\rm ref}(\text{quantile}) - q| \le 3\times10^{-15}` for :math:`n \le 1000`,
      :math:`5\times10^{-14}` for :math:`n = 10^4` (quadrature noise). Closed forms for
      :math:`n = 2` (:math:`P(C_1C_2 \le c) = \frac2\pi\int_0^{\sqrt c} K_0`, by quadrature)
      and :math:`n = 3` (:math:`P = 1 - 2\sqrt x K_1(2\sqrt x)`, :math:`x = c/4`): error
      :math:`\le 5\times10^{-16}`.
    * ``t in {3, 10, 100, 1000}``: enlarging the period :math:`2\pi/h` to 1.5 times plus 3
      and truncating at :math:`|\varphi| < 10^{-19}` changes the quantiles by a relative
      :math:`\le 1.5\times10^{-13}` for :math:`0.01 \le q \le 0.99` and
      :math:`\le 7\times10^{-10}` over the whole grid (``q = 1e-6``, :math:`s_t \approx 16`).
      Two-million-draw Monte Carlo agrees within its binomial error (see the tests).

    Near-normal regime. Where :math:`Z_t` has skewness and excess kurtosis below
    :data:`~collapse_sim.theory._inversion.NEAR_NORMAL` (1e-4; large :math:`n` and
    :math:`t`), the 4th-order Cornish-Fisher expansion (Edgeworth for the CDF) replaces
    the inversion, whose precision is lost there (``n = t = 1e9`` gave 1e-189 instead of
    0.022 / 0.135 / 0.83); its error is :math:`O(g_1^3, g_1 g_2, g_2^2) \le 10^{-12}`.
    Against the inversion it differs by at most :math:`6\times10^{-11}` relative
    (``n in {1e4, 1e6}``, ``t`` from 300 to 1e5, ``q`` from 1e-6 to 1 - 1e-6).

    Values below the smallest double (e.g. ``n = 2`` after ~400 generations, where
    :math:`\mathbb E\log\sigma_t^2 \approx -1.96\,t`) underflow to ``0.0``.

    Cost (single core, measured): ``n_samples=100, generations=1000, q=[.1, .5, .9]`` about
    25 ms; ``n_samples=2`` (heavy-tailed :math:`\log\chi^2_1`) about 0.13 s; ``n = 1e6``
    about 15 ms.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> qs = gaussian_variance_quantiles(n_samples=5, generations=[1], q=[0.1, 0.9])
    >>> np.allclose(qs[0], stats.chi2.ppf([0.1, 0.9], 4) / 5)
    True
    """
    n = _validate_n_samples(n_samples)
    t = _validate_generations(generations)
    q_arr, q_scalar = _validate_open_unit("q", q)
    k = _divisor(n, _validate_estimator(estimator))
    v0 = _validate_var0(var0)

    out = np.full((t.size, q_arr.size), v0)
    t_unique, inverse = np.unique(t, return_inverse=True)
    positive = t_unique > 0
    if np.any(positive):
        tp = t_unique[positive]
        mean, sd = _log_ratio_moments(n - 1, k, tp)
        z = _standardised_quantiles(0.5 * (n - 1), tp, sd, q_arr)
        vals = v0 * np.exp(mean[:, None] + sd[:, None] * z)
        full = np.full((t_unique.size, q_arr.size), v0)
        full[positive] = vals
        out = full[inverse.reshape(-1)]
    return out[:, 0] if q_scalar else out


def gaussian_variance_cdf(
    *,
    threshold: float | Sequence[float] | np.ndarray,
    n_samples: int,
    generations: GenerationsLike,
    estimator: Estimator = "mle",
    var0: float = 1.0,
) -> np.ndarray:
    r"""Exact marginal probability :math:`P(\sigma_t^2 \le \text{threshold})` at each ``t``.

    This is the *marginal* law of the fitted variance at generation :math:`t` -- **not** the
    probability that the variance has dropped below ``threshold`` at some generation
    :math:`s \le t` (a first-passage probability, which is larger).

    With :math:`Y_t = \log(\sigma_t^2/\sigma_0^2)`, :math:`m_t`, :math:`s_t` as in
    :func:`gaussian_variance_quantiles`,

    .. math::

        P(\sigma_t^2 \le c) = F_{Z_t}\Big(\frac{\log(c/\sigma_0^2) - m_t}{s_t}\Big),

    with :math:`F_{Z_t}` from the same Gil-Pelaez inversion of the exact characteristic
    function (absolute error about :math:`10^{-14}`; values are exactly 0 or 1 where a Chernoff
    bound puts the probability within :math:`10^{-14}` of them). At ``t = 0`` the result is
    ``1.0`` if ``var0 <= threshold`` else ``0.0``.

    Parameters
    ----------
    threshold : float or 1-D array_like of float
        Variance level(s) ``> 0`` (``+inf`` allowed).
    n_samples : int
        Samples drawn per generation, :math:`n \ge 2`.
    generations : int or 1-D array_like of int
        ``G`` in ``[0, 10**7]`` evaluates at ``t = 0, 1, ..., G``; an array (at most
        ``10**7 + 1`` entries) evaluates at the given ``t`` in ``[0, 2**63 - 1]``.
    estimator : {"mle", "unbiased"}
        Variance divisor :math:`k = n` or :math:`k = n - 1`.
    var0 : float
        Generation-0 variance, finite and ``> 0``.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(t), len(threshold))``, or ``(len(t),)`` for a scalar threshold.

    Examples
    --------
    >>> from scipy import stats
    >>> p = gaussian_variance_cdf(threshold=0.5, n_samples=5, generations=1)
    >>> bool(abs(p[1] - stats.chi2.cdf(0.5 * 5, 4)) < 1e-12), float(p[0])
    (True, 0.0)
    """
    thr, thr_scalar = _validate_threshold(threshold)
    n = _validate_n_samples(n_samples)
    t = _validate_generations(generations)
    k = _divisor(n, _validate_estimator(estimator))
    v0 = _validate_var0(var0)

    t_unique, inverse = np.unique(t, return_inverse=True)
    full = np.empty((t_unique.size, thr.size))
    full[:] = np.where(v0 <= thr, 1.0, 0.0)
    positive = t_unique > 0
    if np.any(positive):
        tp = t_unique[positive]
        mean, sd = _log_ratio_moments(n - 1, k, tp)
        with np.errstate(divide="ignore"):
            log_thr = np.log(thr / v0)
        z = (log_thr[None, :] - mean[:, None]) / sd[:, None]
        full[positive] = _standardised_cdf(0.5 * (n - 1), tp, sd, z)
    out = full[inverse.reshape(-1)]
    return out[:, 0] if thr_scalar else out


def gaussian_w2_squared_mean(
    *,
    n_samples: int,
    generations: GenerationsLike,
    estimator: Estimator = "mle",
    var0: float = 1.0,
) -> np.ndarray:
    r"""Exact :math:`\mathbb E[W_2^2]` between generation ``t``'s fit and the 1-D truth.

    For 1-D Gaussians :math:`W_2^2(\mathcal N(\mu_t,\sigma_t^2), \mathcal N(\mu_0,\sigma_0^2))
    = (\mu_t - \mu_0)^2 + (\sigma_t - \sigma_0)^2`.

    *Mean term.* :math:`\mu_t = \mu_{t-1} + \sigma_{t-1}Z_t/\sqrt n` with :math:`Z_t`
    standard normal and independent of :math:`\sigma_{t-1}` (the sample mean and variance of a
    Gaussian sample are independent), so :math:`\mu_t` is a martingale with orthogonal
    increments and

    .. math::

        \mathbb E[(\mu_t - \mu_0)^2] = \frac1n\sum_{s=0}^{t-1}\mathbb E[\sigma_s^2]
        = \frac{\sigma_0^2}{n}\sum_{s=0}^{t-1} a^s, \qquad a = \frac{n-1}{k}.

    *Scale term.* :math:`\sigma_t = \sigma_{t-1}\sqrt{C_t/k}` with
    :math:`C_t \sim \chi^2_{n-1}` independent, hence :math:`\mathbb E\sigma_t = \sigma_0 c^t`,

    .. math::

        c = \mathbb E\sqrt{\chi^2_\nu/k} = \sqrt{\frac2k}\,
            \frac{\Gamma(\frac{\nu+1}2)}{\Gamma(\frac\nu2)}, \qquad \nu = n-1,

    and :math:`\mathbb E(\sigma_t - \sigma_0)^2 = \mathbb E\sigma_t^2 - 2\sigma_0^2c^t
    + \sigma_0^2`. Altogether

    .. math::

        \mathbb E[W_2^2] = \frac{\sigma_0^2}{n}\sum_{s<t} a^s + \sigma_0^2 a^t
            - 2\sigma_0^2 c^t + \sigma_0^2
          = \sigma_0^2\Big[\frac1n\sum_{s<t} a^s + (a^t - 1) - 2(c^t - 1)\Big],

    evaluated with ``expm1``/``log1p`` and a cancellation-free :math:`\log c` (Stirling
    series) so that it stays accurate for :math:`n` up to :math:`10^6` and beyond.
    Special cases:

    * unbiased (:math:`a = 1`): :math:`\mathbb E[W_2^2] = t\sigma_0^2/n + 2\sigma_0^2(1-c^t)`,
      growing without bound (linearly in :math:`t`) although :math:`\mathbb E\sigma_t^2 =
      \sigma_0^2` -- the contrast in Shumailov et al. (2024), Theorem 3.1;
    * MLE (:math:`a = 1 - 1/n`): :math:`\frac1n\sum_{s<t}a^s = 1 - a^t`, so
      :math:`\mathbb E[W_2^2] = 2\sigma_0^2(1 - c^t) < 2\sigma_0^2`, tending to
      :math:`2\sigma_0^2 = W_2^2(\delta_{\mu_\infty}, \mathcal N(\mu_0, \sigma_0^2))` in
      expectation as the model collapses to a point.

    Parameters
    ----------
    n_samples : int
        Samples drawn per generation, :math:`n \ge 2`.
    generations : int or 1-D array_like of int
        ``G`` in ``[0, 10**7]`` evaluates at ``t = 0, 1, ..., G``; an array (at most
        ``10**7 + 1`` entries) evaluates at the given ``t`` in ``[0, 2**63 - 1]``.
    estimator : {"mle", "unbiased"}
        Variance divisor :math:`k = n` or :math:`k = n - 1`.
    var0 : float
        Generation-0 variance :math:`\sigma_0^2`, finite and ``> 0``.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(t),)``; zero at ``t = 0``.

    Examples
    --------
    >>> w = gaussian_w2_squared_mean(n_samples=10, generations=[0, 1, 100], estimator="mle")
    >>> [round(float(x), 4) for x in w]
    [0.0, 0.1545, 1.9994]
    >>> u = gaussian_w2_squared_mean(n_samples=10, generations=[100], estimator="unbiased")
    >>> round(float(u[0]), 4)  # 100/10 + 2 (1 - c^100)
    11.8749
    """
    n = _validate_n_samples(n_samples)
    t = _validate_generations(generations)
    k = _divisor(n, _validate_estimator(estimator))
    v0 = _validate_var0(var0)
    nu = n - 1
    tf = t.astype(np.float64)
    log_a = math.log1p((nu - k) / k)
    # sum_{s<t} a^s = expm1(t log a) / expm1(log a), or t when a == 1
    geo = tf.copy() if log_a == 0.0 else np.expm1(tf * log_a) / math.expm1(log_a)
    # log c = (1/2) log(nu/k) + [lnG(b + 1/2) - lnG(b) - (1/2) log b],  b = nu/2
    b = 0.5 * nu
    bracket = float(_centred_loggamma(b, np.array([0.5])).real[0]) - 0.5 * _digamma_gap(b)
    log_c = 0.5 * log_a + bracket
    return v0 * (geo / n + np.expm1(tf * log_a) - 2.0 * np.expm1(tf * log_c))
