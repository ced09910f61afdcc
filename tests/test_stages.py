"""Generation stages and schedules: the laws they produce, the exact theory, bad input."""

import json

import numba
import numpy as np
import pytest
from scipy import special, stats

import collapse_sim as cs
from collapse_sim import stages
from collapse_sim.sampling import chain_streams

G1 = cs.Gaussian(mean=0.0, var=1.0)


def _log_variance_check(sim, n, tau, t):
    """Mean of log sigma^2_t over chains against the exact drift. log sigma^2_t is a sum of t
    i.i.d. log(chi2_{n-1}/n) terms (+ a constant), so its variance is t psi'((n-1)/2)
    exactly and the chains' mean has standard error sqrt(t psi'((n-1)/2) / chains); the
    test allows 4 of them."""
    logs = np.log(sim.metrics["variance"][t])
    want = cs.theory.gaussian_temperature_log_variance_mean(n, [t], tau)[0]
    se = np.sqrt(t * special.polygamma(1, (n - 1) / 2) / logs.size)
    assert abs(logs.mean() - want) < 4 * se, (logs.mean(), want, se)


@pytest.mark.parametrize("tau", [0.95, 1.09])
def test_gaussian_temperature_drift_matches_theory(tau):
    n = 10
    sim = cs.simulate(G1, cs.GaussianFit(), n_samples=n, generations=30, chains=4000, seed=1,
                      generation=cs.Temperature(tau), metrics=["variance"])
    assert sim.config["sampling"] == "exact"  # a transform keeps the exact path
    for t in (1, 10, 30):
        _log_variance_check(sim, n, tau, t)


def test_the_temperature_window():
    """Between sqrt(n/(n-1)) and tau*, the mean variance grows while a typical chain's
    shrinks (n = 10: the window is (1.054, 1.117))."""
    n, tau = 10, 1.09
    assert np.sqrt(n / (n - 1)) < tau < cs.theory.critical_temperature(n)
    mean = cs.theory.gaussian_temperature_variance_mean(n, [1, 200], tau)
    drift = cs.theory.gaussian_temperature_log_variance_mean(n, [200], tau)[0]
    assert mean[1] > 1e4 * mean[0] and drift < -5
    sim = cs.simulate(G1, cs.GaussianFit(), n_samples=n, generations=200, chains=2000,
                      seed=2, generation=cs.Temperature(tau), metrics=["variance"])
    assert np.median(sim.metrics["variance"][200]) < 0.05


def test_truncation_matches_its_variance_factor():
    """Mean sigma^2_t under Truncate(2) against ((n-1)/n)^t c_k^(t-1); the chains' mean has
    the sample standard error; 5 of them allowed."""
    n = 50
    sim = cs.simulate(G1, cs.GaussianFit(), n_samples=n, generations=8, chains=4000, seed=3,
                      generation=cs.Truncate(2.0), metrics=["variance"])
    assert sim.config["sampling"] == "explicit"
    want = cs.theory.gaussian_truncation_variance_mean(n, np.arange(9), 2.0)
    for t in (1, 4, 8):
        v = sim.metrics["variance"][t]
        assert abs(v.mean() - want[t]) < 5 * v.std() / np.sqrt(v.size)


def test_truncation_in_2d_is_the_conditional_law():
    """Points lie within Mahalanobis radius k; their squared radius follows chi2_2
    truncated at k^2 (KS test against the exact CDF, 20,000 points)."""
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    g = cs.Gaussian(mean=[1.0, -1.0], cov=cov)
    x = stages.draw(cs.Truncate(1.5), g, 1000, chain_streams(0, 20))
    diff = x.reshape(-1, 2) - [1.0, -1.0]
    r2 = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    assert r2.max() <= 1.5**2 * (1 + 1e-12)
    cap = stats.chi2.cdf(1.5**2, 2)
    assert stats.kstest(r2, lambda v: stats.chi2.cdf(v, 2) / cap).pvalue > 1e-3


def test_best_of_k_maps_the_cdf_to_its_kth_power():
    x = stages.draw(cs.BestOfK(4, reward="value"), G1.broadcast(20), 1000, chain_streams(1, 20))
    assert stats.kstest(x.ravel(), lambda v: stats.norm.cdf(v) ** 4).pvalue > 1e-3


def test_curation_chooses_by_bradley_terry():
    """A three-token categorical, reward = token id, K = 2: the kept token has the exact law
    sum over candidate pairs of p_i p_j e^{r_kept} / (e^{r_i} + e^{r_j}); chi-square test
    on 40,000 draws at the 0.9999 quantile."""
    p = np.array([0.5, 0.3, 0.2])
    truth = cs.Categorical(p)
    x = stages.draw(cs.Curate(2, reward="value"), truth, 2000, chain_streams(2, 20)).ravel()
    law = np.zeros(3)
    for i in range(3):
        for j in range(3):
            law[i] += p[i] * p[j] * np.exp(i) / (np.exp(i) + np.exp(j))
            law[j] += p[i] * p[j] * np.exp(j) / (np.exp(i) + np.exp(j))
    observed = np.bincount(x, minlength=3)
    chi2 = ((observed - law * x.size) ** 2 / (law * x.size)).sum()
    assert chi2 < stats.chi2.ppf(0.9999, 2)


def test_categorical_transforms():
    z = cs.Zipf(n_categories=20, exponent=1.2)
    hot = stages.sampling_model(cs.Temperature(0.8), z).probs[0]
    np.testing.assert_allclose(hot, cs.Zipf(n_categories=20, exponent=1.5).probs[0],
                               rtol=1e-12)
    assert cs.theory.zipf_exponent_under_temperature(1.2, 0.8, [2])[0] == pytest.approx(1.5)
    top = stages.sampling_model(cs.TopK(3), z).probs[0]
    np.testing.assert_allclose(top[:3], z.probs[0, :3] / z.probs[0, :3].sum())
    assert np.all(top[3:] == 0)
    nucleus = stages.sampling_model(cs.TopP(0.5), z).probs[0]
    keep = np.searchsorted(np.cumsum(z.probs[0]), 0.5) + 1
    assert np.count_nonzero(nucleus) == keep
    both = stages.sampling_model(cs.TopK(3) | cs.Temperature(0.5), z).probs[0]
    np.testing.assert_allclose(both[:3], z.probs[0, :3] ** 2 / (z.probs[0, :3] ** 2).sum())


def test_stages_are_bit_identical_across_threads_and_batches():
    st = cs.Temperature(0.9) | cs.Curate(3, reward="closeness")
    kw = dict(n_samples=20, generations=4, seed=5, generation=st, metrics=["variance"])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = cs.simulate(G1, cs.GaussianFit(), chains=5, **kw)
    finally:
        numba.set_num_threads(before)
    many = cs.simulate(G1, cs.GaussianFit(), chains=5, **kw)
    two = cs.simulate(G1, cs.GaussianFit(), chains=2, **kw)
    np.testing.assert_array_equal(one.metrics["variance"], many.metrics["variance"])
    np.testing.assert_array_equal(one.metrics["variance"][:, :2], two.metrics["variance"])


def test_reward_metric_climbs_under_best_of_k():
    sim = cs.simulate(G1, cs.GaussianFit(), n_samples=100, generations=5, chains=50, seed=0,
                      generation=cs.BestOfK(4, reward="value"),
                      metrics=["variance", "reward"])
    r = sim.metrics["reward"].mean(axis=1)
    assert np.all(np.diff(r[1:]) > 0)
    with pytest.raises(ValueError, match="metric 'reward' needs"):
        cs.simulate(G1, cs.GaussianFit(), n_samples=10, generations=2, metrics=["reward"])


def test_ngram_temperature_stage_matches_the_fitter_temperature():
    truth = cs.NGramTruth(cs.text.python_docs(), order=2, heldout=0.1, block_size=32)
    kw = dict(n_samples=3200, generations=3, chains=2, seed=0, metrics=["vocabulary"])
    a = cs.simulate(truth, cs.NGramFit(temperature=0.8), **kw)
    b = cs.simulate(truth, cs.NGramFit(), generation=cs.Temperature(0.8), **kw)
    np.testing.assert_array_equal(a.metrics["vocabulary"], b.metrics["vocabulary"])


def test_schedules():
    lin = cs.schedule.linear(1.0, 0.1, over=9)
    np.testing.assert_allclose(lin.values(12)[2:], [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3,
                                                     0.2, 0.1, 0.1])
    geo = cs.schedule.exponential(1.0, 0.01, over=2)
    np.testing.assert_allclose(geo.values(5)[2:], [1.0, 0.1, 0.01, 0.01])
    stp = cs.schedule.step([0.5, 0.0], every=3)
    assert stp.values(7)[2:].tolist() == [0.5, 0.5, 0.5, 0.0, 0.0, 0.0]
    policy = cs.FreshReal(fraction=lin)
    json.dumps(policy.to_dict())
    # a constant schedule is the fixed policy, bit for bit (same path)
    for fixed, sched in ((cs.KeepReal(0.1), cs.KeepReal(cs.schedule.constant(0.1))),
                         (cs.FreshReal(0.3), cs.FreshReal([0.3] * 5))):
        a = cs.simulate(G1, cs.GaussianFit(), n_samples=50, generations=6, chains=3, seed=0,
                        policy=fixed, sampling="explicit", metrics=["variance"])
        b = cs.simulate(G1, cs.GaussianFit(), n_samples=50, generations=6, chains=3, seed=0,
                        policy=sched, sampling="explicit", metrics=["variance"])
        np.testing.assert_array_equal(a.metrics["variance"], b.metrics["variance"])


def test_a_growing_real_share_slows_collapse():
    grow = cs.FreshReal(fraction=cs.schedule.linear(0.0, 0.9, over=10))
    shrink = cs.FreshReal(fraction=cs.schedule.linear(0.9, 0.0, over=10))
    out = {}
    for name, policy in (("grow", grow), ("shrink", shrink)):
        sim = cs.simulate(G1, cs.GaussianFit(), n_samples=20, generations=40, chains=2000,
                          seed=0, policy=policy, metrics=["variance"])
        out[name] = np.median(sim.metrics["variance"][40])
    assert out["grow"] > 2 * out["shrink"]


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: cs.Temperature(0.0), ValueError, "tau"),
    (lambda: cs.Temperature(float("nan")), ValueError, "tau"),
    (lambda: cs.Truncate(-1.0), ValueError, "k"),
    (lambda: cs.TopP(0.0), ValueError, "p"),
    (lambda: cs.TopP(1.5), ValueError, "p"),
    (lambda: cs.TopK(0), ValueError, "k"),
    (lambda: cs.BestOfK(0), ValueError, "K"),
    (lambda: cs.BestOfK(2, reward="nope"), ValueError, "reward"),
    (lambda: cs.BestOfK(2, reward=3), TypeError, "reward"),
    (lambda: cs.Curate(2, rule="softmax"), ValueError, "rule"),
    (lambda: cs.Truncate(2.0) | cs.Temperature(0.9), ValueError, "before"),
    (lambda: cs.schedule.linear(0, 1, over=0), ValueError, "over"),
    (lambda: cs.schedule.exponential(0.0, 1, over=2), ValueError, "start"),
    (lambda: cs.KeepReal(1.5), ValueError, "fraction"),
    (lambda: cs.Augment([[1.0]]), ValueError, "ratio"),
])
def test_bad_stage_and_schedule_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_pairs_and_rewards_are_named():
    with pytest.raises(TypeError, match="TopP does not apply to Gaussian"):
        cs.simulate(G1, cs.GaussianFit(), n_samples=10, generations=2, generation=cs.TopP(0.9))
    with pytest.raises(TypeError, match="generation must be a stage"):
        cs.simulate(G1, cs.GaussianFit(), n_samples=10, generations=2, generation=0.9)
    wrong = cs.BestOfK(2, reward=lambda x: x[:, :1, 0])
    with pytest.raises(ValueError, match="generation 2: the reward must return shape"):
        cs.simulate(G1, cs.GaussianFit(), n_samples=10, generations=2, generation=wrong)
    nan = cs.Curate(2, reward=lambda x: np.full(x.shape[:2], np.nan))
    with pytest.raises(ValueError, match="non-finite"):
        cs.simulate(G1, cs.GaussianFit(), n_samples=10, generations=2, generation=nan)
    with pytest.raises(ValueError, match="not exact"):
        cs.simulate(G1, cs.GaussianFit(), n_samples=10, generations=2, sampling="exact",
                    generation=cs.Truncate(2.0))
