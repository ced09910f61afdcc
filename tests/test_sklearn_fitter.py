"""SklearnFitter: scikit-learn estimators through the same engine."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.neighbors import KernelDensity

import collapse_sim as cs

MIX = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0], [2.0]], covs=[[[1.0]], [[1.0]]])


def test_gaussian_mixture_estimator_is_reproducible_and_exactly_measured():
    kw = {"n_samples": 60, "generations": 4, "chains": 3, "seed": 5, "record_models": True}
    a = cs.simulate(MIX, cs.SklearnFitter(SkGaussianMixture(2)), **kw)
    b = cs.simulate(MIX, cs.SklearnFitter(SkGaussianMixture(2)), **kw)
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    # the recorded sklearn fits, measured with the library's exact mixture metrics
    t = 4
    model = cs.GaussianMixture(weights=a.models["weights"][t], means=a.models["means"][t],
                               covs=a.models["covs"][t])
    np.testing.assert_allclose(a.metrics["w2"][t], cs.metrics.w2(MIX, model), rtol=1e-12)
    np.testing.assert_allclose(a.metrics["variance"][t], model.var, rtol=1e-12)


def test_each_generation_gets_fresh_draws():
    # scikit-learn rebuilds its generator from an int random_state on every sample() call;
    # the adapter passes a RandomState per chain, so generations must not repeat draws.
    fitter = cs.SklearnFitter(SkGaussianMixture(1, random_state=0))
    streams = cs.sampling.chain_streams(0, 1)
    model = fitter.fit_chains(MIX.sample(200, seed=1)[None], streams=streams)
    first, second = model.sample_points(50), model.sample_points(50)
    assert not np.array_equal(first, second)


def test_kernel_density_runs_and_inflates_variance():
    # A Gaussian KDE's sample is data + bandwidth * noise: variance grows by h^2 per
    # generation in expectation, the opposite of collapse (minus the 1/n shrink).
    h = 0.5
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.SklearnFitter(KernelDensity(bandwidth=h)),
                      n_samples=200, generations=6, chains=20, seed=0,
                      metrics=("variance", "nll", "kl", "tail_mass", "w2", "mean_shift"))
    for arr in sim.metrics.values():
        assert np.all(np.isfinite(arr))
    v = sim.metrics["variance"]
    # E[var_t] ~ 1 + t h^2 (1 - 1/n)^t; 20 chains of sample variances from 2000 points
    assert v[6].mean() > 1.0 + 6 * h**2 * 0.8
    assert np.all(sim.metrics["kl"][1:] > 0)


def test_l2_needs_a_mixture_and_bad_estimators_are_refused():
    with pytest.raises(ValueError, match="l2"):
        cs.simulate(MIX, cs.SklearnFitter(KernelDensity()), n_samples=20, generations=1,
                    chains=1, metrics=("l2",))
    with pytest.raises(TypeError, match="sample"):
        cs.SklearnFitter(object())

    class FitOnly:
        def fit(self, x):
            return self

    with pytest.raises(TypeError, match="sample"):
        cs.SklearnFitter(FitOnly())
