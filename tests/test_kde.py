"""Kernel density estimates: bandwidth rules and densities against scikit-learn and scipy,
the sampling law, ancestry, the closed forms of collapse_sim.theory.kde, bad input."""

import numpy as np
import pytest
from scipy import special, stats
from sklearn.neighbors import KernelDensity

import collapse_sim as cs
from collapse_sim._kernels import kde as _kk
from collapse_sim.sampling import chain_streams
from collapse_sim.testing import check_family


def moons(n=2000, heldout=0.2):
    return cs.Empirical(cs.datasets.two_moons(n, noise=0.1, seed=0), heldout=heldout)


def gaussian_rows(n=50_000, dim=1, seed=0):
    """A large Gaussian sample as an empirical truth (the theory's population correction
    N/(N-1) is then negligible but still applied)."""
    return cs.Empirical(np.random.default_rng(seed).normal(size=(n, dim)), heldout=0.0)


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_sklearn_bandwidth_rules(rule):
    x = np.random.default_rng(1).normal(size=(300, 3)) * 5.0  # scale must not matter
    kde = KernelDensity(bandwidth=rule).fit(x)
    h = cs.KDEFit(bandwidth=rule).factor(300, 3)
    assert h == pytest.approx(kde.bandwidth_, rel=1e-12)
    cov = cs.KDEFit(bandwidth=rule).kernel_cov(x[None])[0]
    np.testing.assert_allclose(cov, h * h * np.eye(3), rtol=1e-12)


def test_scipy_rule_is_gaussian_kde():
    x = np.random.default_rng(2).normal(size=(200, 2)) @ [[2.0, 0.5], [0.0, 1.0]]
    ref = stats.gaussian_kde(x.T)
    model = cs.KDEFit(bandwidth="scipy").fit_chains(x[None])
    np.testing.assert_allclose(model.kernel_cov[0], ref.covariance, rtol=1e-12)
    y = np.random.default_rng(3).normal(size=(50, 2))
    np.testing.assert_allclose(model.logpdf_mean(y)[0], ref.logpdf(y.T).mean(), rtol=1e-10)


def test_density_matches_sklearn_kernel_density_and_the_exact_sum():
    x = np.random.default_rng(4).normal(size=(2, 150, 2))
    near = np.random.default_rng(5).normal(size=(40, 2))
    far = near * 3.0
    model = cs.KDEFit(bandwidth=0.2).fit_chains(x)
    for c in range(2):
        ref = KernelDensity(bandwidth=0.2).fit(x[c]).score_samples(near).mean()
        assert model.logpdf_mean(near)[c] == pytest.approx(ref, rel=1e-10)
        # far out, scikit-learn's tree bounds drift (1e-5 here); the direct log-sum-exp
        # over every centre is the reference
        q = ((far[:, None, :] - x[c][None]) ** 2).sum(-1) / 0.04
        exact = (special.logsumexp(-0.5 * q, axis=1) - np.log(150 * 2 * np.pi * 0.04)).mean()
        assert model.logpdf_mean(far)[c] == pytest.approx(exact, rel=1e-12)


def test_draws_are_a_centre_plus_kernel_noise():
    # Generation-1 ids are the centres' indices, so draw - centres[parent] must be N(0, H):
    # a KS test per coordinate after whitening, and the parents uniform (chi-square).
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(3, 40, 2)) * 10.0
    model = cs.KDEFit(bandwidth="scipy").fit_chains(centres)
    out = model.draw(4000, chain_streams(0, 3))
    parents = model._last[1]
    for c in range(3):
        resid = out[c] - centres[c][parents[c]]
        white = np.linalg.solve(np.linalg.cholesky(model.kernel_cov[c]), resid.T)
        for row in white:
            assert stats.kstest(row, "norm").pvalue > 1e-3
        counts = np.bincount(parents[c], minlength=40)
        assert stats.chisquare(counts).pvalue > 1e-3


def test_vectorised_exponential_is_within_its_documented_error():
    # _exp_small replaces libm's exp in the log-sum-exp; its docstring promises a
    # relative error below 1e-13 on [-40, 40] (64 times the polynomial's, from the squarings)
    x = np.concatenate([np.linspace(-40.0, 40.0, 40_001), [-1e-300, -0.0, 1e-300]])
    got = np.array([_kk._exp_small(v) for v in x])
    assert np.max(np.abs(got / np.exp(x) - 1.0)) < 1e-13


def test_density_when_the_window_probes_miss_the_nearest_centre():
    # the 16 centres nearest in the first coordinate lie 100 kernel widths away in the
    # second; the nearest centre is 5 away: the probes' bound overshoots by more than the
    # cutoff, and the window must be summed again around the true nearest centre
    centres = np.array([[0.0, 100.0 + 0.01 * i] for i in range(20)] + [[5.0, 0.0]])
    model = cs.KDEModel(centres[None], np.eye(2)[None])
    y = np.array([[0.0, 0.0], [0.3, -0.2]])
    q = ((y[:, None, :] - centres[None]) ** 2).sum(-1)
    exact = (special.logsumexp(-0.5 * q, axis=1) - np.log(21 * 2 * np.pi)).mean()
    assert model.logpdf_mean(y)[0] == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("d", [1, 3])
def test_density_is_the_exact_log_sum_exp_in_other_dimensions(d):
    # every term within the cutoff counts, with a correlated kernel (whitening by L^-1)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 257, d))  # 257: the four-lane minimum's remainder loop runs
    y = rng.normal(size=(31, d)) * 1.5
    model = cs.KDEFit(bandwidth="scott").fit_chains(x)
    for c in range(3):
        cov = model.kernel_cov[c]
        diff = y[:, None, :] - x[c][None]
        q = np.einsum("ija,ab,ijb->ij", diff, np.linalg.inv(cov), diff)
        exact = (special.logsumexp(-0.5 * q, axis=1) - np.log(257)
                 - 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]).mean()
        assert model.logpdf_mean(y)[c] == pytest.approx(exact, rel=1e-12)


def test_parallel_and_serial_kernels_agree_bit_for_bit():
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(16, 50, 2))
    chol = np.broadcast_to(0.1 * np.eye(2), (16, 2, 2)).copy()
    ids = np.broadcast_to(np.arange(50), (16, 50)).copy()
    results = []
    for build in ("parallel", "serial"):
        states = chain_streams(3, 16).states.copy()
        out, parents = np.empty((16, 300, 2)), np.empty((16, 300), dtype=np.int64)
        stats = np.empty((16, 3))
        getattr(_kk.draw, build)(states, centres, chol, ids, out, parents, stats)
        dens = np.empty(16)
        getattr(_kk.mean_logpdf, build)(centres, chol, out[0], dens)
        results.append((out, parents, stats, dens, states))
    # the draw's statistics are the drawn points' mean and total variance
    out, stats = results[0][0], results[0][2]
    np.testing.assert_allclose(stats[:, :2], out.mean(axis=1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stats[:, 2], out.var(axis=1).sum(axis=1), rtol=1e-10)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_family_conforms():
    check_family(moons(600), cs.KDEFit(bandwidth=0.3))


def _mean_and_se(values):
    return values.mean(axis=1), values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])


@pytest.mark.slow
def test_fixed_bandwidth_variance_relaxes_to_n_h2():
    # Mean over 3000 chains against the closed form: within 4 standard errors (the chains
    # are independent, so the CLT gives the standard error of each generation's mean).
    truth = gaussian_rows()
    v0 = float(np.trace(truth.cov[0]))
    n, h, g = 20, 0.5, 30   # n h^2 = 5 > V0 = 1: the variance grows towards n h^2
    sim = cs.simulate(truth, cs.KDEFit(bandwidth=h), n_samples=n, generations=g, chains=3000,
                      seed=1, metrics=["variance"])
    mean, se = _mean_and_se(sim.metrics["variance"])
    expected = cs.theory.kde_variance_mean(v0, n, g, h, population=truth.train_size)
    assert mean[0] == pytest.approx(expected[0], rel=1e-12)
    assert np.all(np.abs(mean[1:] - expected[1:]) < 4 * se[1:])
    assert expected[-1] > 3.5  # it did move most of the way from 1 to 5


@pytest.mark.slow
def test_scipy_bandwidth_variance_explodes():
    truth = gaussian_rows(dim=2)
    v0 = float(np.trace(truth.cov[0]))
    sim = cs.simulate(truth, cs.KDEFit(bandwidth="scipy"), n_samples=50, generations=8,
                      chains=4000, seed=2, metrics=["variance"])
    mean, se = _mean_and_se(sim.metrics["variance"])
    expected = cs.theory.kde_scipy_variance_mean(v0, 50, 8, dim=2, population=truth.train_size)
    assert mean[0] == pytest.approx(expected[0], rel=1e-9)
    assert np.all(np.abs(mean[1:] - expected[1:]) < 4 * se[1:])
    assert expected[-1] > 2 * v0


@pytest.mark.slow
def test_accumulated_variance_follows_the_recursion():
    truth = gaussian_rows()
    v0 = float(np.trace(truth.cov[0]))
    sim = cs.simulate(truth, cs.KDEFit(bandwidth=0.4), n_samples=20, generations=15,
                      chains=2000, seed=3, metrics=["variance"], policy=cs.Accumulate())
    mean, se = _mean_and_se(sim.metrics["variance"])
    expected = cs.theory.kde_accumulate_variance_mean(v0, 20, 15, 0.4,
                                                      population=truth.train_size)
    assert np.all(np.abs(mean[1:] - expected[1:]) < 4 * se[1:])


def test_ancestors_follow_wright_fisher():
    n, g = 30, 25
    sim = cs.simulate(moons(400), cs.KDEFit(bandwidth=0.2), n_samples=n, generations=g,
                      chains=2000, seed=4, metrics=["ancestors"])
    mean, se = _mean_and_se(sim.metrics["ancestors"])
    expected = cs.theory.kde_ancestors_mean(n, g, population=320)
    assert mean[0] == 320 and np.all(sim.metrics["ancestors"][1] == n)
    assert np.all(np.abs(mean[2:] - expected[2:]) < 4 * se[2:] + 1e-12)


def test_kept_real_points_keep_their_identity():
    sim = cs.simulate(moons(400), cs.KDEFit(bandwidth=0.2), n_samples=40, generations=30,
                      chains=50, seed=5, metrics=["ancestors"], policy=cs.KeepReal(0.25))
    assert sim.metrics["ancestors"][1:].min() >= 10   # the 10 kept real points, at least
    fresh = cs.simulate(moons(400), cs.KDEFit(bandwidth=0.2), n_samples=40, generations=30,
                        chains=50, seed=5, metrics=["ancestors"], policy=cs.FreshReal(0.5))
    # fresh real points are new, not original: the originals die out as under Replace
    assert np.median(fresh.metrics["ancestors"][-1]) < 10


def test_a_constant_data_set_gives_a_singular_scipy_kernel_and_infinite_nll():
    truth = cs.Empirical(np.ones((50, 2)), heldout=0.2)
    sim = cs.simulate(truth, cs.KDEFit(bandwidth="scipy"), n_samples=10, generations=2,
                      chains=2, seed=0)
    assert np.all(sim.metrics["variance"] == 0.0)
    # a singular kernel has no density: nll is reported as +inf, as for a degenerate
    # Gaussian (KDEModel.logpdf_mean documents it), never NaN
    assert np.all(np.isposinf(sim.metrics["nll"]))


@pytest.mark.parametrize("bandwidth, error", [(0.0, ValueError), (-1.0, ValueError),
                                              (float("nan"), ValueError), ("foo", ValueError),
                                              (True, TypeError), ([0.1], TypeError)])
def test_bad_bandwidth(bandwidth, error):
    with pytest.raises(error, match="bandwidth"):
        cs.KDEFit(bandwidth=bandwidth)


def test_bad_kernel_and_truth():
    with pytest.raises(ValueError, match="kernel"):
        cs.KDEFit(kernel="tophat")
    with pytest.raises(TypeError, match="Empirical"):
        cs.simulate(cs.Gaussian(0.0, 1.0), cs.KDEFit(0.3), n_samples=10, generations=1)
    with pytest.raises(ValueError, match="points"):
        cs.KDEFit(0.3).fit_chains(np.zeros((1, 5, 2))).logpdf_mean(np.zeros((3, 3)))
