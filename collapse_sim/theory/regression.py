"""Linear regression refitted on its own labels (Dohmatob, Feng & Kempe 2024;
Gerstgrasser et al. 2024): the expected test error, generation by generation."""

from __future__ import annotations

import numpy as np
from scipy import special

from .._validation import check_choice, check_int, check_real
from ._checks import GenerationsLike, _validate_generations

_REGRESSION_POLICIES = ("replace", "accumulate")


def _regression_args(n_samples, dim, noise_std, generations, policy, design):
    d = check_int("dim", dim, minimum=1)
    n = check_int("n_samples", n_samples, minimum=d + 2)
    sigma = check_real("noise_std", noise_std, low=0.0)
    t = _validate_generations(generations)
    if np.any(t < 0):  # a float beyond int64 wraps around when cast
        raise ValueError("generations must contain only integers in [0, 2**63)")
    if not isinstance(policy, str):  # a policy object: Replace() or Accumulate()
        policy = type(policy).__name__.lower()
    check_choice("policy", policy, _REGRESSION_POLICIES)
    check_choice("design", design, ("fresh", "fixed"))
    if policy == "accumulate" and design == "fresh":
        raise ValueError(
            "policy='accumulate' with design='fresh' has no published closed form "
            "(Gerstgrasser et al. 2024 treat the fixed design); simulate it instead"
        )
    return n, d, sigma, t, policy


#: Generations up to which :math:`\sum_{i \le t} 1/i^2` is summed term by term; beyond,
#: the closed form :math:`\pi^2/6 - \zeta(2, t + 1)` (Hurwitz zeta) takes over, so the
#: memory does not grow with ``t``.
_EXACT_SUM_MAX = 1024


def _regression_scale(t: np.ndarray, policy: str) -> np.ndarray:
    """:math:`s_t`: ``t`` (replace) or :math:`\\sum_{i \\le t} 1/i^2` (accumulate).

    Memory is ``O(len(t))`` whatever the values of ``t``: the accumulate sum is a prefix
    sum of at most :data:`_EXACT_SUM_MAX` terms for small ``t`` and
    :math:`\\zeta(2) - \\zeta(2, t + 1)` beyond (exact identity; relative rounding ~1e-16).
    """
    if policy == "replace":
        return t.astype(np.float64)
    small = t <= _EXACT_SUM_MAX
    top = int(t[small].max(initial=0))
    partial = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1) ** 2)])
    out = np.empty(t.shape, dtype=np.float64)
    out[small] = partial[t[small]]
    large = ~small
    if large.any():
        out[large] = np.pi**2 / 6 - special.zeta(2.0, t[large].astype(np.float64) + 1.0)
    return out


def regression_test_error(
    *,
    n_samples: int,
    dim: int,
    noise_std: float = 1.0,
    generations: GenerationsLike,
    policy: str = "replace",
    design: str = "fresh",
) -> np.ndarray:
    r"""Expected test error :math:`\mathbb E[(\hat w_t - w)^\top\Sigma_x(\hat w_t - w)]` of OLS
    refitted on its own labels, generation by generation.

    Every generation draws :math:`T` = ``n_samples`` rows of a Gaussian design
    :math:`x \sim \mathcal N(0, \Sigma_x)`, labels them with the previous model plus
    fresh noise :math:`\mathcal N(0, \sigma^2)` and refits by least squares
    (:class:`collapse_sim.OLSFit` with ``noise="keep"``). Generation 1 is fitted on
    real data. With :math:`s_t` below, for :math:`T \ge d + 2`,

    .. math::

        \mathbb E[\mathcal E_t] = \frac{\sigma^2 d}{T - d - 1}\, s_t, \qquad
        s_t = \begin{cases}
            t & \text{replace (either design)},\\
            \sum_{i=1}^{t} 1/i^2 \le \pi^2/6 & \text{accumulate, fixed design}.
        \end{cases}

    Replace: the OLS fit of labels :math:`y = X\hat w_{t-1} + \varepsilon_t` is
    :math:`\hat w_t = \hat w_{t-1} + (X^\top X)^{-1}X^\top\varepsilon_t`; the
    increments are uncorrelated with mean zero, and for Gaussian rows
    :math:`\mathbb E[(X^\top X)^{-1}] = \Sigma_x^{-1}/(T - d - 1)` (inverse-Wishart
    mean), so each adds :math:`\sigma^2 d/(T-d-1)`. This is the unregularised case of
    the exact test-error formula of Dohmatob, Feng & Kempe, "Model Collapse
    Demystified: The Case of Regression" (2024, arXiv:2402.07712):
    :math:`E_{test}(\hat w_n) = \sigma^2 d/(T-d-1)\cdot n` after :math:`n`
    generations; the argument holds for every :math:`\Sigma_x`, since the error is
    measured in the :math:`\Sigma_x` norm. Accumulate, fixed design: the
    fit on the stacked data of generations :math:`1..t` averages their labels,
    :math:`\hat w_t - w = \frac1t\sum_{i<t}(\hat w_i - w) + P\bar\varepsilon`, which
    unrolls to :math:`s_t = \sum_{i \le t} 1/i^2` (Gerstgrasser et al., "Is Model
    Collapse Inevitable? Breaking the Curse of Recursion by Accumulating Real and
    Synthetic Data", 2024, arXiv:2404.01413, linear-model analysis): bounded by
    :math:`\pi^2/6` times one generation's error, whatever :math:`t`.

    Parameters
    ----------
    n_samples : int
        Rows per generation :math:`T \ge d + 2` (below that the mean is infinite).
    dim : int
        Number of features :math:`d \ge 1`.
    noise_std : float
        Label noise :math:`\sigma \ge 0`.
    generations : int or 1-D array_like of int
        ``G`` evaluates at ``t = 0, ..., G``; an array at the given ``t >= 0``.
    policy : {"replace", "accumulate"} or a Replace()/Accumulate() instance
    design : {"fresh", "fixed"}
        A new design every generation, or one design per chain reused
        (:class:`collapse_sim.LinearRegression`'s ``design``). Accumulate has a
        closed form only for the fixed design; asking for the fresh one raises.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(t),)``; 0 at ``t = 0``.

    Notes
    -----
    The per-chain error is heavy-tailed (it involves :math:`(X^\top X)^{-1}`, whose
    moments of order :math:`k` exist only for :math:`T > d + 2k - 1`), so compare
    simulations with the mean through a bound that uses the exact variance
    (``tests/test_regression.py`` derives it), not a normal approximation.

    Examples
    --------
    >>> regression_test_error(n_samples=20, dim=5, generations=3)
    array([0.        , 0.35714286, 0.71428571, 1.07142857])
    >>> regression_test_error(n_samples=20, dim=5, generations=[1, 2], policy="accumulate",
    ...                       design="fixed")
    array([0.35714286, 0.44642857])
    """
    n, d, sigma, t, policy = _regression_args(n_samples, dim, noise_std, generations, policy,
                                              design)
    return sigma**2 * d / (n - d - 1) * _regression_scale(t, policy)


def _regression_test_error_variance(*, n_samples, dim, noise_std=1.0, generations,
                                    policy="replace", design="fresh") -> np.ndarray:
    r"""Exact variance of the per-chain test error (needs :math:`T > d + 3`).

    One generation: with :math:`W = Z^\top Z \sim \mathrm{Wishart}_d(T, I)` (whitened
    design) the error is :math:`\sigma^2\varepsilon^\top ZW^{-2}Z^\top\varepsilon`, so
    :math:`m_2 = \sigma^2\,\mathbb E\operatorname{tr}W^{-1}` and
    :math:`m_4 = \sigma^4(\mathbb E[(\operatorname{tr}W^{-1})^2]
    + 2\,\mathbb E\operatorname{tr}W^{-2})`
    with the inverse-Wishart moments (:math:`k = T - d`)
    :math:`\mathbb E\operatorname{tr}W^{-1} = d/(k-1)`,
    :math:`\mathbb E\operatorname{tr}W^{-2} = d(T-1)/(k(k-1)(k-3))`,
    :math:`\operatorname{Var}W^{-1}_{ii} = 2/((k-1)^2(k-3))`,
    :math:`\operatorname{Cov}(W^{-1}_{ii}, W^{-1}_{jj}) = 2/(k(k-1)^2(k-3))`.
    Fixed design: given :math:`X` the error at :math:`t` is one generation's with
    :math:`\sigma^2 s_t`, so the variance is :math:`s_t^2(m_4 - m_2^2)`. Fresh design
    (replace): the increments :math:`u_i` are independent and rotation invariant, so
    :math:`\mathbb E\lVert\sum u_i\rVert^4 = t m_4 + t(t-1)m_2^2(1 + 2/d)` and the
    variance is :math:`t(m_4 - m_2^2) + 2t(t-1)m_2^2/d`.
    """
    n, d, sigma, t, policy = _regression_args(n_samples, dim, noise_std, generations, policy,
                                              design)
    k = n - d
    if k <= 3:
        raise ValueError(f"the variance is infinite unless n_samples > dim + 3, got {n}")
    tr1 = d / (k - 1)
    tr1_sq = tr1**2 + 2 * d / ((k - 1) ** 2 * (k - 3)) + 2 * d * (d - 1) / (k * (k - 1) ** 2
                                                                        * (k - 3))
    tr2 = d * (n - 1) / (k * (k - 1) * (k - 3))
    m2 = sigma**2 * tr1
    m4 = sigma**4 * (tr1_sq + 2 * tr2)
    if design == "fixed":
        return _regression_scale(t, policy) ** 2 * (m4 - m2**2)
    tf = t.astype(np.float64)
    return tf * (m4 - m2**2) + 2 * tf * (tf - 1) * m2**2 / d
