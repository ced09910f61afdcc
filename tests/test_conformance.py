"""Every family of the library passes the conformance check of ``collapse_sim.testing``."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import collapse_sim as cs
from collapse_sim.testing import check_family

COV3 = [[1.0, 0.3, 0.0], [0.3, 2.0, -0.4], [0.0, -0.4, 0.5]]
MIX = cs.GaussianMixture(weights=[0.4, 0.6], means=[[-2.0], [2.0]], covs=[[[1.0]], [[0.5]]])

CASES = {
    "gaussian-1d": (cs.Gaussian(mean=0.5, var=2.0), cs.GaussianFit()),
    "gaussian-3d": (cs.Gaussian(mean=[0.0, 1.0, -1.0], cov=COV3), cs.GaussianFit("unbiased")),
    "gaussian-on-mixture": (MIX, cs.GaussianFit()),
    "mixture-em": (MIX, cs.GaussianMixtureFit(2, max_iter=30)),
    "sgd-gaussian": (cs.Gaussian(mean=0.0, var=1.0),
                     cs.SGDGaussianFit(learning_rate=0.05, batch_size=8, epochs=3)),
    "sgd-mixture": (MIX, cs.SGDMixtureFit(2, learning_rate=0.05, batch_size=8, epochs=3)),
    "sklearn-gmm": (MIX, cs.SklearnFitter(SkGaussianMixture(2, max_iter=30))),
    "regression-fresh": (cs.LinearRegression(weights=[1.0, -1.0], noise_std=0.5), cs.OLSFit()),
    "regression-fixed": (cs.LinearRegression(weights=[1.0, -1.0], noise_std=0.5,
                                             design="fixed"), cs.OLSFit(noise="estimate")),
    "regression-sgd": (cs.LinearRegression(weights=np.ones(2), noise_std=0.5),
                       cs.SGDRegressionFit(learning_rate=0.02, batch_size=8, epochs=3)),
    "categorical": (cs.Categorical([0.5, 0.2, 0.15, 0.1, 0.05]), cs.CategoricalFit()),
    "zipf-smoothed": (cs.Zipf(n_categories=50, exponent=1.1), cs.CategoricalFit(smoothing=0.1)),
    "empirical-gaussian": (cs.Empirical(cs.datasets.two_moons(400, seed=0)), cs.GaussianFit()),
    "empirical-mixture": (cs.Empirical(cs.datasets.two_moons(400, seed=0)),
                          cs.GaussianMixtureFit(2, max_iter=30)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_family_conforms(case):
    truth, fitter = CASES[case]
    check_family(truth, fitter)


def test_check_family_catches_a_broken_family():
    class Leaky(cs.Categorical):
        """Draws depend on the number of chains: chain c uses stream 0."""

        def draw(self, k, streams):
            out = super().draw(k, streams)
            out[:] = out[0]
            return out

    with pytest.raises(AssertionError, match="depend on other chains"):
        check_family(Leaky([0.5, 0.5]), cs.CategoricalFit())
