"""The exact sufficient-statistics path against the explicit one: same law, any policy."""

import numpy as np
import pytest
from scipy import stats

import collapse_sim as cs
from collapse_sim import sampling

TRUTH1 = cs.Gaussian(mean=0.5, var=2.0)
TRUTH3 = cs.Gaussian(mean=[1.0, 0.0, -1.0], cov=[[1.0, 0.3, 0.0], [0.3, 2.0, 0.4],
                                                  [0.0, 0.4, 0.5]])
POLICIES = [cs.Replace(), cs.KeepReal(0.1), cs.Accumulate(), cs.FreshReal(0.5),
            cs.Augment(1.0)]

# Two-sample KS tests at level ALPHA. Per (truth, policy) case we test 2 statistics at
# 3 generations: 6 tests, so a correct implementation fails a case with probability at most
# 6 * ALPHA = 6e-4 (Bonferroni), and the 10 cases together at most 6e-3. Fixed seeds make
# the outcome deterministic; these bounds are how the seeds were not cherry-picked.
ALPHA = 1e-4


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("truth", [TRUTH1, TRUTH3], ids=["1d", "3d"])
def test_exact_and_explicit_paths_have_the_same_law(truth, policy):
    kw = {"n_samples": 12, "generations": 20, "chains": 4000, "policy": policy,
          "metrics": ("variance", "mean_shift")}
    exact = cs.simulate(truth, cs.GaussianFit(), seed=1, sampling="exact", **kw)
    explicit = cs.simulate(truth, cs.GaussianFit(), seed=2, sampling="explicit", **kw)
    assert exact.config["sampling"] == "exact" and explicit.config["sampling"] == "explicit"
    for t in (1, 5, 20):
        for name in ("variance", "mean_shift"):
            p = stats.ks_2samp(exact.metrics[name][t], explicit.metrics[name][t]).pvalue
            assert p > ALPHA, (name, t, p)


def test_ks_detects_a_wrong_degrees_of_freedom():
    # The same comparison must be able to fail: an off-by-one in the Wishart degrees of
    # freedom (n instead of n - 1) is caught at generation 1 already.
    g = cs.Gaussian(mean=0.0, var=1.0).broadcast(4000)
    right = sampling.exact_gaussian_moments(g, 12, sampling.chain_streams(1, 4000))
    wrong = sampling.exact_gaussian_moments(g, 13, sampling.chain_streams(2, 4000))
    assert stats.ks_2samp(right.scatter[:, 0, 0], wrong.scatter[:, 0, 0]).pvalue < ALPHA


def test_exact_moments_against_closed_laws():
    n, chains = 7, 50_000
    g = cs.Gaussian(mean=1.0, var=3.0).broadcast(chains)
    m = sampling.exact_gaussian_moments(g, n, sampling.chain_streams(5, chains))
    # scatter / sigma^2 ~ chi2_{n-1}; sqrt(n) (mean - mu) / sigma ~ N(0, 1); independent
    assert stats.kstest(m.scatter[:, 0, 0] / 3.0, stats.chi2(n - 1).cdf).pvalue > ALPHA
    assert stats.kstest((m.mean[:, 0] - 1.0) * np.sqrt(n / 3.0), "norm").pvalue > ALPHA
    r = np.corrcoef(m.mean[:, 0], m.scatter[:, 0, 0])[0, 1]
    assert abs(r) < 5 / np.sqrt(chains)


def test_auto_takes_the_exact_path_only_where_exact():
    g = cs.simulate(TRUTH1, cs.GaussianFit(), n_samples=5, generations=2, chains=2, seed=0)
    assert g.config["sampling"] == "exact"
    sub = cs.simulate(TRUTH1, cs.GaussianFit(), n_samples=5, generations=2, chains=2, seed=0,
                      policy=cs.AccumulateSubsample())
    assert sub.config["sampling"] == "explicit"
    mix = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-1.0], [1.0]], covs=[[[1.0]], [[1.0]]])
    assert cs.simulate(mix, cs.GaussianFit(), n_samples=5, generations=1,
                       chains=2).config["sampling"] == "explicit"


@pytest.mark.parametrize(
    ("truth", "fitter", "policy", "why"),
    [
        (TRUTH1, cs.GaussianMixtureFit(2), cs.Replace(), "GaussianMixtureFit"),
        (cs.GaussianMixture(weights=[1.0], means=[[0.0]], covs=[[[1.0]]]), cs.GaussianFit(),
         cs.Replace(), "GaussianMixture truth cannot draw"),
        (TRUTH1, cs.GaussianFit(), cs.AccumulateSubsample(), "AccumulateSubsample"),
    ],
)
def test_exact_where_not_exact_is_refused(truth, fitter, policy, why):
    with pytest.raises(ValueError, match=why):
        cs.simulate(truth, fitter, n_samples=5, generations=1, chains=10**9, policy=policy,
                    sampling="exact")


def test_bad_sampling_name():
    with pytest.raises(ValueError, match="sampling"):
        cs.simulate(TRUTH1, cs.GaussianFit(), n_samples=5, generations=1, sampling="fast")


def test_exact_path_extreme_collapse_has_no_nan():
    sim = cs.simulate(TRUTH1, cs.GaussianFit("unbiased"), n_samples=2, generations=5000,
                      chains=32, seed=0, sampling="exact")
    for name, arr in sim.metrics.items():
        assert not np.isnan(arr).any(), name
    assert np.all(sim.metrics["variance"][-1] == 0.0)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_exact_scatter_mean_is_k_minus_1_sigma_even_when_singular(k):
    # E[scatter] = (k - 1) Sigma for k points in any dimension, including k - 1 < d where the
    # Wishart law is singular. Per entry the SE over C chains is sd(entry) / sqrt(C), with
    # Var(M_ij) = (k - 1)(S_ij^2 + S_ii S_jj); 5-SE bound.
    chains = 40_000
    sigma = TRUTH3.cov[0]
    m = sampling.exact_gaussian_moments(TRUTH3.broadcast(chains), k,
                                        sampling.chain_streams(k, chains))
    se = np.sqrt((k - 1) * (sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / chains)
    assert np.all(np.abs(m.scatter.mean(axis=0) - (k - 1) * sigma) <= 5 * se + 1e-12)
    assert np.linalg.matrix_rank(m.scatter[0]) == min(k - 1, 3)


@pytest.mark.parametrize("policy", [*POLICIES, cs.KeepReal(1.0)], ids=repr)
@pytest.mark.parametrize("block", [1 << 16, 5])
def test_fused_1d_run_is_bit_identical_to_the_generation_loop(policy, block, monkeypatch):
    from collapse_sim.families import gaussian

    kw = {"n_samples": 12, "generations": 25, "chains": 6, "seed": 3, "policy": policy,
          "sampling": "exact", "record_models": True}
    monkeypatch.setattr(gaussian, "FUSED_BLOCK_ELEMENTS", block)
    fused = cs.simulate(TRUTH1, cs.GaussianFit("unbiased"), **kw)
    # without its fused_run capability the engine runs the generation-by-generation loop
    monkeypatch.setattr(cs.GaussianFit, "fused_run", lambda self, *args, **kwargs: None)
    loop = cs.simulate(TRUTH1, cs.GaussianFit("unbiased"), **kw)
    for name in fused.metrics:
        np.testing.assert_array_equal(fused.metrics[name], loop.metrics[name])
    np.testing.assert_array_equal(fused.models["cov"], loop.models["cov"])


@pytest.mark.parametrize("policy", [cs.Replace(), cs.KeepReal(0.25), cs.Accumulate(),
                                    cs.FreshReal(0.5)], ids=repr)
def test_fused_1d_run_with_temperature_is_bit_identical_to_the_loop(policy, monkeypatch):
    kw = {"n_samples": 12, "generations": 25, "chains": 6, "seed": 3, "policy": policy,
          "sampling": "exact", "record_models": True, "generation": cs.Temperature(1.07)}
    fused = cs.simulate(TRUTH1, cs.GaussianFit(), **kw)
    monkeypatch.setattr(cs.GaussianFit, "fused_run", lambda self, *args, **kwargs: None)
    loop = cs.simulate(TRUTH1, cs.GaussianFit(), **kw)
    np.testing.assert_array_equal(fused.models["cov"], loop.models["cov"])
    np.testing.assert_array_equal(fused.models["mean"], loop.models["mean"])
