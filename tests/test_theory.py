"""Tests for :mod:`collapse_sim.theory` (recursive Gaussian fitting: closed forms, exact law).

Every Monte Carlo check uses a fixed seed and a tolerance derived from the sampling
distribution of the estimator being compared (stated next to each check), so that a correct
implementation fails with negligible probability while a wrong formula fails reliably.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

from collapse_sim import theory

ESTIMATORS = ("mle", "unbiased")


def _divisor(n: int, estimator: str) -> int:
    return n if estimator == "mle" else n - 1


def _log_moments(n: int, estimator: str, t: int) -> tuple[float, float]:
    """Mean and sd of log(var_t / var0), computed independently of the module."""
    a = 0.5 * (n - 1)
    mean = t * (special.digamma(a) + np.log(2.0 / _divisor(n, estimator)))
    return float(mean), float(np.sqrt(t * special.polygamma(1, a)))


# --------------------------------------------------------------------------------------
# gaussian_variance_mean
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("n", [2, 10, 1_000_000])
def test_mean_closed_form(n, estimator):
    t = np.arange(0, 51)
    got = theory.gaussian_variance_mean(n_samples=n, generations=50, estimator=estimator, var0=2.5)
    expected = 2.5 * ((n - 1) / _divisor(n, estimator)) ** t
    assert got.shape == (51,)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    if estimator == "unbiased":
        np.testing.assert_array_equal(got, 2.5)


def test_mean_array_generations_and_dtype():
    got = theory.gaussian_variance_mean(n_samples=4, generations=[3, 0, 3.0], var0=1.0)
    np.testing.assert_allclose(got, [0.75**3, 1.0, 0.75**3], rtol=1e-14)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_mean_against_monte_carlo(estimator):
    n, t, draws, var0 = 10, 5, 200_000, 1.7
    k = _divisor(n, estimator)
    rng = np.random.default_rng(20240601)
    ratio = np.prod(rng.chisquare(n - 1, size=(draws, t)) / k, axis=1)
    sample = var0 * ratio
    # Tolerance: 5 standard errors of the Monte Carlo mean (sample sd / sqrt(draws)).
    se = sample.std(ddof=1) / np.sqrt(draws)
    expected = theory.gaussian_variance_mean(
        n_samples=n, generations=[t], estimator=estimator, var0=var0
    )[0]
    assert abs(sample.mean() - expected) < 5 * se
    # The check is sharp enough to separate the two estimators ((9/10)^5 vs 1).
    other = 0.9**t * var0 if estimator == "unbiased" else var0
    assert abs(sample.mean() - other) > 5 * se


def test_mean_trace_in_d_dimensions_monte_carlo():
    # E[tr S_t] = ((n-1)/k)^t tr S_0 for refitted d-D covariances (Wishart recursion).
    rng = np.random.default_rng(7)
    chains, n, d, gens = 20_000, 6, 3, 3
    cov0 = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.5]])
    chol = np.broadcast_to(np.linalg.cholesky(cov0), (chains, d, d))
    mean = np.zeros((chains, d))
    for _ in range(gens):
        x = mean[:, None, :] + rng.standard_normal((chains, n, d)) @ np.swapaxes(chol, 1, 2)
        mean = x.mean(axis=1)
        dev = x - mean[:, None, :]
        cov = np.einsum("cni,cnj->cij", dev, dev) / n  # MLE
        chol = np.linalg.cholesky(cov)
    trace = np.trace(cov, axis1=1, axis2=2)
    expected = theory.gaussian_variance_mean(
        n_samples=n, generations=[gens], var0=float(np.trace(cov0))
    )[0]
    # 5 standard errors of the MC mean of the trace.
    assert abs(trace.mean() - expected) < 5 * trace.std(ddof=1) / np.sqrt(chains)


# --------------------------------------------------------------------------------------
# gaussian_variance_quantiles
# --------------------------------------------------------------------------------------

Q_GRID = np.array([1e-4, 0.01, 0.1, 0.5, 0.9, 0.99])


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("n", [2, 3, 10, 100, 10_000, 1_000_000])
def test_quantiles_t1_equal_chi2_ppf(n, estimator):
    k = _divisor(n, estimator)
    got = theory.gaussian_variance_quantiles(
        n_samples=n, generations=[1], q=Q_GRID, estimator=estimator, var0=2.5
    )
    assert got.shape == (1, Q_GRID.size)
    np.testing.assert_allclose(got[0], stats.chi2.ppf(Q_GRID, n - 1) / k * 2.5, rtol=1e-8)


def _convolution_cdf(c: float, nu: int) -> float:
    """P(C1 C2 <= c), C_i ~ chi2_nu iid, by adaptive quadrature in s = log C2.

    P = int F(c e^{-s}) f(e^s) e^s ds / int f(e^s) e^s ds. Normalising by the numerically
    integrated density removes the ~1e-13 rounding of scipy's chi2.logpdf for large nu.
    """

    def dens(s):
        return np.exp(stats.chi2.logpdf(np.exp(s), nu) + s)

    sd = np.sqrt(2.0 / nu) if nu > 4 else 2.3
    mid = np.log(nu) if nu > 4 else 0.0
    edges = np.concatenate(
        [
            [mid - 60.0 / nu - 40 * sd],
            np.linspace(mid - 8 * sd, mid + 8 * sd, 33),
            [mid + 12 * sd + 2],
        ]
    )
    num = den = 0.0
    for lo, hi in itertools.pairwise(edges):
        num += integrate.quad(
            lambda s: stats.chi2.cdf(c * np.exp(-s), nu) * dens(s),
            lo,
            hi,
            epsabs=1e-17,
            epsrel=1e-13,
            limit=200,
        )[0]
        den += integrate.quad(dens, lo, hi, epsabs=1e-17, epsrel=1e-13, limit=200)[0]
    return num / den


@pytest.mark.parametrize("n", [2, 10, 100])
def test_quantiles_t2_against_quadrature_convolution(n):
    # Independent reference (direct quadrature of the two-fold product law); the inversion
    # is designed for ~1e-14 absolute CDF error, the reference is good to ~1e-14.
    q = np.array([1e-3, 0.1, 0.5, 0.9, 0.999])
    got = theory.gaussian_variance_quantiles(n_samples=n, generations=[2], q=q, var0=3.0)[0]
    k = n
    ref = np.array([_convolution_cdf(v / 3.0 * k * k, n - 1) for v in got])
    np.testing.assert_allclose(ref, q, rtol=0, atol=1e-10)


def test_quantiles_t2_closed_forms_small_n():
    q = np.array([1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999])
    # n = 2 (nu = 1): C1 C2 = (Z1 Z2)^2 and Z1 Z2 has density K0(|x|)/pi, so
    # P(C1 C2 <= c) = (2/pi) int_0^sqrt(c) K0(x) dx. Unbiased: k = 1, var_2 = C1 C2.
    v = theory.gaussian_variance_quantiles(n_samples=2, generations=[2], q=q, estimator="unbiased")[
        0
    ]
    np.testing.assert_allclose(2 / np.pi * special.iti0k0(np.sqrt(v))[1], q, rtol=0, atol=1e-12)
    # n = 3 (nu = 2): C/2 ~ Exp(1) and P(E1 E2 <= x) = 1 - 2 sqrt(x) K1(2 sqrt(x)).
    v = theory.gaussian_variance_quantiles(n_samples=3, generations=[2], q=q, estimator="unbiased")[
        0
    ]
    np.testing.assert_allclose(
        1 - 2 * np.sqrt(v) * special.k1(2 * np.sqrt(v)), q, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("n", [2, 10])
def test_quantiles_small_t_against_monte_carlo(n):
    draws, var0 = 2_000_000, 0.8
    q = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    rng = np.random.default_rng(1234 + n)
    log_ratio = np.cumsum(np.log(rng.chisquare(n - 1, size=(draws, 5)) / n), axis=1)
    theo = theory.gaussian_variance_quantiles(n_samples=n, generations=[3, 4, 5], q=q, var0=var0)
    # Tolerance: the empirical CDF at the exact quantile is Binomial(N, q)/N, so
    # |F_emp - q| < 5 sqrt(q (1-q) / N). (A 1 % error in the n=10 quantiles would shift
    # F by ~4e-3 at the median, about 10 of these standard errors.)
    tol = 5 * np.sqrt(q * (1 - q) / draws)
    for row, t in enumerate([3, 4, 5]):
        sorted_logs = np.sort(log_ratio[:, t - 1])
        f_emp = np.searchsorted(sorted_logs, np.log(theo[row] / var0)) / draws
        assert np.all(np.abs(f_emp - q) < tol), (t, f_emp - q, tol)


def test_quantiles_n2_heavy_left_tail():
    # nu = 1: log chi2_1 has a heavy left tail; t = 1 is chi2_1 itself, deep in the tail too.
    q = np.array([1e-8, 1e-6, 1e-3, 0.5, 1 - 1e-6])
    got = theory.gaussian_variance_quantiles(n_samples=2, generations=[1, 3, 50], q=q)
    np.testing.assert_allclose(got[0], stats.chi2.ppf(q, 1) / 2, rtol=1e-7)
    assert np.all(np.diff(got, axis=1) > 0)
    assert np.all(np.isfinite(got)) and np.all(got > 0)
    # The exact law at t = 50 is markedly skewed to the left of its log-normal approximation.
    mean, sd = _log_moments(2, "mle", 50)
    z = (np.log(got[2]) - mean) / sd
    assert z[0] < stats.norm.ppf(q[0]) - 1.0


def test_quantiles_large_t_close_to_but_not_normal():
    n, t, q = 10, 1000, np.array([0.1, 0.5, 0.9])
    got = theory.gaussian_variance_quantiles(n_samples=n, generations=[t], q=q, var0=1.0)[0]
    mean, sd = _log_moments(n, "mle", t)
    z = (np.log(got) - mean) / sd
    x = stats.norm.ppf(q)
    # Close to the log-normal (CLT) approximation ...
    assert np.all(np.abs(z - x) < 0.01)
    # ... but measurably different (~2.6e-3 in z, ~4 % in the variance): the deviation is the
    # skewness effect, which the first Cornish-Fisher term reproduces.
    assert np.all(np.abs(z - x)[[0, 2]] > 1e-3)
    assert np.all(np.abs(got / np.exp(mean + sd * x) - 1)[[0, 2]] > 0.02)
    skew = t * special.polygamma(2, 4.5) / sd**3
    cornish_fisher = x + skew * (x * x - 1) / 6
    assert np.all(np.abs(z - cornish_fisher) < 0.05 * np.abs(z - x).max())


@pytest.mark.parametrize("n", [2, 7, 1000])
def test_quantiles_monotone_in_q_and_t0(n):
    q = np.linspace(0.001, 0.999, 41)
    got = theory.gaussian_variance_quantiles(
        n_samples=n, generations=[0, 1, 2, 17, 100], q=q, var0=4.0
    )
    assert got.shape == (5, 41)
    np.testing.assert_array_equal(got[0], 4.0)
    assert np.all(np.diff(got[1:], axis=1) > 0)


def test_quantiles_shapes_scalar_q_and_duplicates():
    a = theory.gaussian_variance_quantiles(n_samples=5, generations=3, q=0.5)
    assert a.shape == (4,)
    b = theory.gaussian_variance_quantiles(n_samples=5, generations=[3, 0, 3], q=[0.5])
    assert b.shape == (3, 1)
    assert b[0, 0] == a[3] == b[2, 0] and b[1, 0] == 1.0
    assert theory.gaussian_variance_quantiles(n_samples=5, generations=[], q=0.5).shape == (0,)


# --------------------------------------------------------------------------------------
# gaussian_variance_cdf
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("n", [2, 10, 1000])
def test_cdf_inverts_quantiles(n, estimator):
    q = np.array([1e-5, 0.05, 0.3, 0.5, 0.8, 0.97])
    gens = [1, 7, 200]
    quant = theory.gaussian_variance_quantiles(
        n_samples=n, generations=gens, q=q, estimator=estimator, var0=0.3
    )
    for row, t in enumerate(gens):
        p = theory.gaussian_variance_cdf(
            threshold=quant[row], n_samples=n, generations=[t], estimator=estimator, var0=0.3
        )
        assert p.shape == (1, q.size)
        np.testing.assert_allclose(p[0], q, rtol=0, atol=1e-8)


def test_cdf_t1_matches_chi2_and_t0_indicator():
    thr = np.array([1e-3, 0.2, 0.5, 1.0, 2.0, np.inf])
    p = theory.gaussian_variance_cdf(threshold=thr, n_samples=6, generations=1, var0=0.5)
    assert p.shape == (2, thr.size)
    np.testing.assert_array_equal(p[0], [0, 0, 1, 1, 1, 1])  # var0 <= threshold at t = 0
    np.testing.assert_allclose(p[1], stats.chi2.cdf(thr / 0.5 * 6, 5), rtol=0, atol=1e-13)
    scalar = theory.gaussian_variance_cdf(threshold=0.5, n_samples=6, generations=[0, 1])
    assert scalar.shape == (2,)
    assert scalar[1] == pytest.approx(stats.chi2.cdf(3.0, 5), abs=1e-13)


def test_cdf_marginal_collapse_probability():
    # With the unbiased estimator E[var_t] = var0 for all t, yet P(var_t <= var0 / 10) -> 1:
    # log var_t drifts to -infinity (Shumailov et al.'s collapse in probability).
    p = theory.gaussian_variance_cdf(
        threshold=0.1, n_samples=10, generations=[0, 10, 100, 1000], estimator="unbiased"
    )
    assert p[0] == 0.0
    assert np.all(np.diff(p) > 0)
    assert p[-1] > 0.999


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=10**6),
    t=st.integers(min_value=1, max_value=300),
    q=st.floats(min_value=1e-4, max_value=1 - 1e-4),
    estimator=st.sampled_from(ESTIMATORS),
)
def test_cdf_quantile_roundtrip_property(n, t, q, estimator):
    v = theory.gaussian_variance_quantiles(n_samples=n, generations=[t], q=q, estimator=estimator)[
        0
    ]
    p = theory.gaussian_variance_cdf(
        threshold=v, n_samples=n, generations=[t], estimator=estimator
    )[0]
    assert abs(p - q) < 1e-8


# --------------------------------------------------------------------------------------
# gaussian_w2_squared_mean
# --------------------------------------------------------------------------------------


def _simulate_w2(n, estimator, gens, chains, mu0, var0, seed):
    rng = np.random.default_rng(seed)
    k = _divisor(n, estimator)
    mu = np.full(chains, mu0)
    sigma = np.full(chains, np.sqrt(var0))
    out = np.empty((gens + 1, chains))
    out[0] = 0.0
    for t in range(1, gens + 1):
        x = mu[:, None] + sigma[:, None] * rng.standard_normal((chains, n))
        mu = x.mean(axis=1)
        sigma = np.sqrt(((x - mu[:, None]) ** 2).sum(axis=1) / k)
        out[t] = (mu - mu0) ** 2 + (sigma - np.sqrt(var0)) ** 2
    return out


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_w2_against_monte_carlo_recursion(estimator):
    n, gens, chains, mu0, var0 = 10, 20, 20_000, 0.7, 2.0
    w2 = _simulate_w2(n, estimator, gens, chains, mu0, var0, seed=99)
    theo = theory.gaussian_w2_squared_mean(
        n_samples=n, generations=gens, estimator=estimator, var0=var0
    )
    assert theo[0] == 0.0
    # Tolerance: 5 standard errors of the MC mean of W2^2 (sample sd / sqrt(chains)),
    # at each of the 20 generations.
    se = w2[1:].std(axis=1, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(w2[1:].mean(axis=1) - theo[1:]) < 5 * se)
    # Sharpness: the formula without the martingale drift of the mean, sum_{s<t} E[var_s]/n,
    # is rejected by the same Monte Carlo.
    drift = (
        np.cumsum(
            theory.gaussian_variance_mean(
                n_samples=n, generations=gens - 1, estimator=estimator, var0=var0
            )
        )
        / n
    )
    assert np.all(np.abs(w2[1:].mean(axis=1) - (theo[1:] - drift)) > 5 * se)


@pytest.mark.parametrize("n", [2, 10, 1000])
def test_w2_closed_forms(n):
    t = np.arange(0, 301)
    var0 = 1.5
    for estimator in ESTIMATORS:
        k = _divisor(n, estimator)
        c = np.exp(0.5 * np.log(2 / k) + special.gammaln(n / 2) - special.gammaln((n - 1) / 2))
        got = theory.gaussian_w2_squared_mean(
            n_samples=n, generations=300, estimator=estimator, var0=var0
        )
        if estimator == "unbiased":
            expected = t * var0 / n + 2 * var0 * (1 - c**t)
        else:
            expected = 2 * var0 * (1 - c**t)
        # rtol: the naive reference loses ~1e-16 * lgamma(n/2) / (1 - c) relative (4e-10
        # at n = 1000) to the log-gamma difference; the module avoids that cancellation.
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-15)


def test_w2_unbiased_grows_linearly_mle_bounded():
    n, var0 = 10, 1.0
    unb = theory.gaussian_w2_squared_mean(
        n_samples=n, generations=[1000, 2000], estimator="unbiased", var0=var0
    )
    # Slope var0 / n once c^t is negligible (c^1000 ~ 1e-12 here).
    assert (unb[1] - unb[0]) / 1000 == pytest.approx(var0 / n, rel=1e-9)
    mle = theory.gaussian_w2_squared_mean(
        n_samples=n, generations=np.arange(0, 5001, 50), estimator="mle", var0=var0
    )
    # Strictly below 2 var0 while 2 c^t is resolvable next to 2 in double precision
    # (c ~ 0.923, so c^t ~ 1e-14 at t = 400); never above it.
    assert np.all(mle[:9] < 2 * var0)
    assert np.all(mle <= 2 * var0)
    assert np.all(np.diff(mle[:9]) > 0)
    assert mle[-1] > 1.999 * var0


def test_w2_large_n_no_cancellation():
    # For n = 1e6, E[W2^2] at t = 1 is O(1/n); a naive log-gamma difference loses ~9 digits.
    n = 1_000_000
    got = theory.gaussian_w2_squared_mean(n_samples=n, generations=[1], estimator="mle")[0]
    # Series: log c = log sqrt(nu/k) - 1/(4 nu) + O(nu^-3), nu = n - 1, k = n.
    nu = n - 1
    log_c = 0.5 * np.log1p(-1 / n) - 1 / (4 * nu) + 1 / (24 * nu**3)
    assert got == pytest.approx(-2 * np.expm1(log_c), rel=1e-9)


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------

BASE = {"n_samples": 10, "generations": 3}
ALL_FUNCS = [
    (theory.gaussian_variance_mean, {}),
    (theory.gaussian_variance_quantiles, {"q": 0.5}),
    (theory.gaussian_variance_cdf, {"threshold": 1.0}),
    (theory.gaussian_w2_squared_mean, {}),
]


@pytest.mark.parametrize(("func", "extra"), ALL_FUNCS)
@pytest.mark.parametrize(
    ("override", "exc", "match"),
    [
        ({"n_samples": 1}, ValueError, "n_samples"),
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": True}, TypeError, "n_samples"),
        ({"n_samples": 10.0}, TypeError, "n_samples"),
        ({"n_samples": "10"}, TypeError, "n_samples"),
        ({"generations": -1}, ValueError, "generations"),
        ({"generations": [0, -2]}, ValueError, "generations"),
        ({"generations": [0.5]}, ValueError, "generations"),
        ({"generations": [[1, 2]]}, ValueError, "generations"),
        ({"generations": 2.0}, TypeError, "generations"),
        ({"generations": True}, TypeError, "generations"),
        ({"generations": ["a"]}, TypeError, "generations"),
        ({"var0": 0.0}, ValueError, "var0"),
        ({"var0": -1.0}, ValueError, "var0"),
        ({"var0": float("inf")}, ValueError, "var0"),
        ({"var0": float("nan")}, ValueError, "var0"),
        ({"var0": "1"}, TypeError, "var0"),
        ({"estimator": "MLE"}, ValueError, "estimator"),
        ({"estimator": None}, ValueError, "estimator"),
    ],
)
def test_bad_common_arguments(func, extra, override, exc, match):
    with pytest.raises(exc, match=match):
        func(**{**BASE, **extra, **override})


@pytest.mark.parametrize(
    ("q", "exc"),
    [
        (0.0, ValueError),
        (1.0, ValueError),
        ([0.5, 1.5], ValueError),
        (float("nan"), ValueError),
        ([[0.5]], ValueError),
        ("0.5", TypeError),
        (True, TypeError),
    ],
)
def test_bad_q(q, exc):
    with pytest.raises(exc, match="q"):
        theory.gaussian_variance_quantiles(n_samples=10, generations=3, q=q)


@pytest.mark.parametrize(
    ("threshold", "exc"),
    [
        (0.0, ValueError),
        (-1.0, ValueError),
        ([1.0, float("nan")], ValueError),
        ([[1.0]], ValueError),
        ("1", TypeError),
    ],
)
def test_bad_threshold(threshold, exc):
    with pytest.raises(exc, match="threshold"):
        theory.gaussian_variance_cdf(threshold=threshold, n_samples=10, generations=3)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        theory.gaussian_variance_mean(10, 3)  # type: ignore[misc]
