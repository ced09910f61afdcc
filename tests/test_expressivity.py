"""Functional expressivity error: a single Gaussian fitted to a bimodal truth."""

import numpy as np
import pytest

import collapse_sim as cs

MIX = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0], [2.0]], covs=[[[1.0]], [[1.0]]])


def test_best_gaussian_is_moment_matching():
    best = cs.theory.best_gaussian_approximation(MIX)
    assert best.mean[0, 0] == 0.0
    assert best.cov[0, 0, 0] == pytest.approx(5.0)  # 1 + (0.5 * 4 + 0.5 * 4)
    mix2 = cs.GaussianMixture(weights=[0.3, 0.7], means=[[0.0, 1.0], [2.0, -1.0]],
                              covs=[np.eye(2), [[2.0, 0.5], [0.5, 1.0]]])
    pts = mix2.sample(400_000, seed=1)
    best2 = cs.theory.best_gaussian_approximation(mix2)
    # sample moments of 4e5 points: SE of a mean ~ sd/630, of a covariance entry ~ 2 sd^2/630
    np.testing.assert_allclose(best2.mean[0], pts.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(best2.cov[0], np.cov(pts.T), atol=0.02)


def test_floor_is_the_minimum_kl_over_gaussians():
    floor = cs.theory.gaussian_mismatch_floor(MIX)
    # KL(truth || N(m, s2)) over a grid of Gaussians never goes below the floor.
    grid = cs.Gaussian(mean=np.repeat([-0.3, 0.0, 0.3], 3), var=np.tile([4.0, 5.0, 6.0], 3))
    kl = cs.metrics.kl(MIX, grid)
    assert kl.min() == pytest.approx(floor["kl"], rel=1e-12)
    assert np.all(kl >= floor["kl"] - 1e-12)
    assert floor["kl"] > 0.1 and floor["w2"] > 0.3 and floor["l2"] > 0.01


def test_first_generation_error_approaches_the_floor_not_zero():
    floor = cs.theory.gaussian_mismatch_floor(MIX)
    excess = {}
    for n in (20, 200, 2000, 20_000):
        sim = cs.simulate(MIX, cs.GaussianFit(), n_samples=n, generations=1, chains=400,
                          seed=1, metrics=("kl", "w2"))
        kl = sim.metrics["kl"][1]
        # Every fitted Gaussian is at least as far as the best one (the floor is a minimum).
        assert np.all(kl >= floor["kl"] - 1e-10), n
        excess[n] = kl.mean() - floor["kl"]
    # The excess is the statistical error, O(1/n) (delta method: a sum of squared parameter
    # errors); n * excess stays within a factor 3 across three decades of n ...
    scaled = np.array([n * e for n, e in excess.items()])
    assert scaled.max() / scaled.min() < 3.0, scaled
    # ... while the error itself tends to the floor, not to 0.
    assert excess[20_000] < 1e-3 * floor["kl"] * 10
    assert sim.metrics["w2"][1].mean() == pytest.approx(floor["w2"], rel=0.01)


def test_bad_truth_for_floor():
    with pytest.raises(TypeError, match="truth"):
        cs.theory.best_gaussian_approximation("bimodal")
