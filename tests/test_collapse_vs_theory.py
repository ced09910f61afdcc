"""Simulated collapse against the exact theory (statistical integration tests).

Every bound is derived from the sampling distribution of the compared statistic
across independent chains, at 5 standard errors (false-alarm probability about
6e-7 per comparison); seeds are fixed.
"""

import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim import theory

N, G, CHAINS = 100, 1000, 2000
CHECK_T = [1, 10, 100, 1000]
Q = [0.1, 0.5, 0.9]


@pytest.fixture(scope="module", params=["mle", "unbiased"])
def collapse(request):
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(request.param),
                      n_samples=N, generations=G, chains=CHAINS, seed=2024,
                      metrics=("variance", "w2"))
    return request.param, sim


def test_variance_quantiles_match_exact_distribution(collapse):
    estimator, sim = collapse
    q_theory = theory.gaussian_variance_quantiles(n_samples=N, generations=CHECK_T, q=Q,
                                                  estimator=estimator)
    for i, t in enumerate(CHECK_T):
        for j, q in enumerate(Q):
            # The fraction of chains below the exact q-quantile is Binomial(CHAINS, q) / CHAINS.
            frac = np.mean(sim.metrics["variance"][t] <= q_theory[i, j])
            assert abs(frac - q) < 5 * np.sqrt(q * (1 - q) / CHAINS), (t, q, frac)


def test_variance_mean_matches_theory(collapse):
    estimator, sim = collapse
    k = N if estimator == "mle" else N - 1
    for t in (1, 10, 50):
        mean = theory.gaussian_variance_mean(n_samples=N, generations=[t], estimator=estimator)[0]
        # var_t is a product of t iid chi2_{n-1}/k factors: E[var_t^2] = ((n-1)(n+1)/k^2)^t.
        second = ((N - 1) * (N + 1) / k**2) ** t
        se = np.sqrt((second - mean**2) / CHAINS)
        assert abs(sim.metrics["variance"][t].mean() - mean) < 5 * se, t


def test_w2_expectation_matches_theory(collapse):
    estimator, sim = collapse
    w2sq = sim.metrics["w2"] ** 2
    expected = theory.gaussian_w2_squared_mean(n_samples=N, generations=G, estimator=estimator)
    for t in (1, 10, 50):
        se = w2sq[t].std(ddof=1) / np.sqrt(CHAINS)
        assert abs(w2sq[t].mean() - expected[t]) < 5 * se, t


def test_published_contrast_unbiased_vs_mle():
    """Shumailov et al. Thm 3.1: unbiased keeps E[var] yet E[W2^2] grows; MLE's stays < 2."""
    unb = theory.gaussian_w2_squared_mean(n_samples=N, generations=10_000, estimator="unbiased")
    mle = theory.gaussian_w2_squared_mean(n_samples=N, generations=10_000, estimator="mle")
    assert np.all(np.diff(unb) > 0) and unb[-1] > 90  # ~ t/n + 2(1 - c^t)
    assert np.all(mle <= 2.0) and np.all(mle[:1000] < 2.0)  # 2(1 - c^t) rounds to 2 later
    mean_unb = theory.gaussian_variance_mean(n_samples=N, generations=10_000,
                                             estimator="unbiased")
    np.testing.assert_allclose(mean_unb, 1.0)
    # ... while almost every chain's variance is near 0: the median at t = 1000 is ~ 4e-5.
    med = theory.gaussian_variance_quantiles(n_samples=N, generations=[1000], q=0.5,
                                             estimator="unbiased")[0]
    assert med < 1e-3


def test_multivariate_trace_mean_matches_theory():
    cov = np.array([[1.0, 0.4, 0.0], [0.4, 2.0, -0.3], [0.0, -0.3, 0.7]])
    n, chains = 30, 4000
    sim = cs.simulate(cs.Gaussian(mean=np.zeros(3), cov=cov), cs.GaussianFit("mle"),
                      n_samples=n, generations=20, chains=chains, seed=5, metrics="variance")
    expected = theory.gaussian_variance_mean(n_samples=n, generations=20, estimator="mle",
                                             var0=float(np.trace(cov)))
    for t in (1, 5, 20):
        se = sim.metrics["variance"][t].std(ddof=1) / np.sqrt(chains)
        assert abs(sim.metrics["variance"][t].mean() - expected[t]) < 5 * se, t
