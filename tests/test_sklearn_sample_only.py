"""A scikit-learn-style estimator with only fit and sample: sample-based metrics by default,
density metrics refused before any sampling."""

import numpy as np
import pytest

import collapse_sim as cs


class SampleOnly:
    """Fits a Gaussian by its moments; draws from it; has no score_samples."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def get_params(self, deep=True):
        return {"random_state": self.random_state}

    def set_params(self, **params):
        self.random_state = params.get("random_state", self.random_state)
        return self

    def fit(self, x):
        self.mean_, self.cov_ = x.mean(axis=0), np.atleast_2d(np.cov(x.T, bias=True))
        return self

    def sample(self, n):
        rs = self.random_state
        return rs.multivariate_normal(self.mean_, self.cov_, size=n), np.zeros(n, dtype=int)


def test_defaults_leave_out_the_density_metrics():
    fitter = cs.SklearnFitter(SampleOnly())
    sim = cs.simulate(cs.Gaussian(0.0, 1.0), fitter, n_samples=30, generations=3, chains=3,
                      seed=0)
    assert set(sim.metrics) == {"variance", "mean_shift", "w2", "tail_mass"}
    assert all(np.isfinite(v).all() for v in sim.metrics.values())


@pytest.mark.parametrize("metric", ["nll", "kl"])
def test_density_metrics_are_refused_up_front(metric, monkeypatch):
    fitter = cs.SklearnFitter(SampleOnly())

    def never(*args, **kwargs):
        raise AssertionError("a generation ran before the metric was refused")

    monkeypatch.setattr(SampleOnly, "fit", never)
    with pytest.raises(ValueError, match=f"{metric}.*not defined"):
        cs.simulate(cs.Gaussian(0.0, 1.0), fitter, n_samples=30, generations=3, metrics=metric)
