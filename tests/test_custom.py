"""Extending without forking (collapse_sim.custom): a scipy.stats truth, a fitter from a
function, a metric from a function. Python-speed chains: the runs are small."""

import json

import numba
import numpy as np
import pytest
from scipy import stats

import collapse_sim as cs
from collapse_sim import registry
from collapse_sim.custom import chain_generators, register_simple_metric
from collapse_sim.sampling import chain_streams
from collapse_sim.testing import check_family

# KS tests: with a fixed seed the p-value is one fixed number; under the null it is uniform,
# so a threshold of 1e-3 fails a correct sampler with probability 1e-3 for a random seed, and
# a wrong law (another df, scale or location) of this size (2000 points) gives p << 1e-6.
KS_ALPHA = 1e-3


def mle(points):
    """The Gaussian maximum-likelihood fit, as a user would write it."""
    mean = points.mean(axis=0)
    dev = points - mean
    return cs.Gaussian(mean=mean, cov=dev.T @ dev / len(points))


def robust(points):
    centre = np.median(points, axis=0)
    scale = 1.4826 * np.median(np.abs(points - centre), axis=0)
    return cs.Gaussian(mean=centre, cov=np.diag(scale**2))


# -- ScipyTruth: the law of its draws ---------------------------------------------------------

@pytest.mark.parametrize("dist", [stats.t(df=3, loc=1.0, scale=2.0), stats.lognorm(0.5),
                                  stats.cauchy()], ids=["t3", "lognorm", "cauchy"])
def test_univariate_draws_follow_the_distribution(dist):
    truth = cs.ScipyTruth(dist)
    x = truth.sample(2000, seed=0)
    assert x.shape == (2000, 1) and x.dtype == np.float64
    assert stats.kstest(x[:, 0], dist.cdf).pvalue > KS_ALPHA
    # every chain draws the law, and chains are independent streams
    draws = truth.broadcast(3).draw(1000, chain_streams(5, 3))
    assert not np.array_equal(draws[0], draws[1])
    for c in range(3):
        assert stats.kstest(draws[c, :, 0], dist.cdf).pvalue > KS_ALPHA


def test_a_wrong_law_is_rejected_by_the_same_test():
    # the KS threshold has power: t(3) draws against a t(30) or a rescaled t(3) fail
    x = cs.ScipyTruth(stats.t(df=3)).sample(2000, seed=0)[:, 0]
    assert stats.kstest(x, stats.norm(scale=np.sqrt(3)).cdf).pvalue < 1e-6
    assert stats.kstest(x, stats.t(df=3, scale=1.3).cdf).pvalue < 1e-6


def test_multivariate_draws_follow_the_distribution():
    shape = np.array([[1.0, 0.5], [0.5, 2.0]])
    dist = stats.multivariate_t(loc=[0.0, 1.0], shape=shape, df=4)
    truth = cs.ScipyTruth(dist)
    assert truth.dim == 2
    x = truth.sample(2000, seed=1)
    assert x.shape == (2000, 2)
    # marginals of a multivariate t: t(df) with loc_i and scale sqrt(shape_ii)
    for i, loc in enumerate((0.0, 1.0)):
        marginal = stats.t(df=4, loc=loc, scale=np.sqrt(shape[i, i]))
        assert stats.kstest(x[:, i], marginal.cdf).pvalue > KS_ALPHA
    # a direction mixing both coordinates: u'x is t(df) with scale sqrt(u' shape u)
    u = np.array([0.6, -0.8])
    projected = stats.t(df=4, loc=u @ [0.0, 1.0], scale=np.sqrt(u @ shape @ u))
    assert stats.kstest(x @ u, projected.cdf).pvalue > KS_ALPHA
    np.testing.assert_allclose(truth.cov[0], shape * 4 / 2)
    np.testing.assert_array_equal(truth.mean[0], [0.0, 1.0])


def test_moments_and_infinite_variance():
    assert float(cs.ScipyTruth(stats.t(df=5, scale=2.0)).var[0]) == pytest.approx(4 * 5 / 3)
    for df in (2, 1.5):
        truth = cs.ScipyTruth(stats.t(df=df))
        assert truth.var[0] == np.inf
        assert truth.mean[0, 0] == 0.0
        with pytest.raises(ValueError, match="infinite variance"):
            truth.cov  # noqa: B018
    cauchy = cs.ScipyTruth(stats.t(df=1))
    assert cauchy.var[0] == np.inf
    with pytest.raises(ValueError, match="no finite mean"):
        cauchy.mean  # noqa: B018
    mvt = cs.ScipyTruth(stats.multivariate_t(loc=[0.0, 0.0], shape=np.eye(2), df=2))
    assert mvt.var[0] == np.inf


def test_logpdf_matches_scipy():
    dist = stats.t(df=3, loc=1.0)
    x = np.linspace(-5, 5, 7)
    np.testing.assert_array_equal(cs.ScipyTruth(dist).logpdf(x), dist.logpdf(x))
    mvn = stats.multivariate_normal([0.0, 1.0], [[1.0, 0.2], [0.2, 1.0]])
    pts = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(cs.ScipyTruth(mvn).logpdf(pts), mvn.logpdf(pts))


def test_to_dict_is_compact_json():
    d = cs.ScipyTruth(stats.t(3, 1.0, scale=2.0)).to_dict()
    assert d == {"type": "ScipyTruth", "distribution": "t", "df": 3, "loc": 1.0, "scale": 2.0,
                 "dim": 1}
    big = cs.ScipyTruth(stats.multivariate_normal(np.zeros(30), np.eye(30))).to_dict()
    text = json.dumps(big)
    assert len(text) < 500 and big["cov"]["shape"] == [30, 30] and big["dim"] == 30
    assert big["mean"] == [0.0] * 30


def test_bad_distributions_are_refused_naming_dist():
    with pytest.raises(TypeError, match=r"dist must be a frozen distribution.*stats\.t\(df=3\)"):
        cs.ScipyTruth(stats.t)
    with pytest.raises(TypeError, match="dist must be a continuous distribution"):
        cs.ScipyTruth(stats.poisson(3.0))
    with pytest.raises(TypeError, match=r"dist must be .*has no rvs\(\)"):
        cs.ScipyTruth([1.0, 2.0])
    with pytest.raises(ValueError, match=r"dist=t.*cannot draw"):
        cs.ScipyTruth(stats.t(df=-1.0))
    with pytest.raises(ValueError, match="scalar parameters"):
        cs.ScipyTruth(stats.norm([0.0, 1.0]))


# -- reproducibility ------------------------------------------------------------------------

def test_chain_generators_depend_on_the_chain_only():
    a = chain_generators(chain_streams(3, 4))
    b = chain_generators(chain_streams(3, 2, first=2))
    assert [g.integers(2**62) for g in a[2:]] == [g.integers(2**62) for g in b]
    with pytest.raises(TypeError, match="streams must be"):
        chain_generators(np.zeros((2, 4), dtype=np.uint64))


@pytest.mark.parametrize("fitter", [cs.GaussianFit(), cs.FunctionFitter(robust)],
                         ids=["GaussianFit", "FunctionFitter"])
def test_same_seed_same_result_on_any_thread_count_and_chain_count(fitter):
    truth = cs.ScipyTruth(stats.t(df=4))
    kw = {"n_samples": 30, "generations": 4, "seed": 11, "policy": cs.FreshReal(0.5)}
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = cs.simulate(truth, fitter, chains=5, **kw)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = cs.simulate(truth, fitter, chains=5, **kw)
    finally:
        numba.set_num_threads(before)
    small = cs.simulate(truth, fitter, chains=2, **kw)
    assert set(one.metrics) == {"variance", "kl", "nll"}
    for name in one.metrics:
        np.testing.assert_array_equal(one.metrics[name], many.metrics[name])
        np.testing.assert_array_equal(one.metrics[name][:, :2], small.metrics[name])
    assert not np.array_equal(one.metrics["variance"][1, 0], one.metrics["variance"][1, 1])


# -- FunctionFitter ------------------------------------------------------------------------

@pytest.mark.parametrize("truth", [cs.Gaussian(mean=[0.0, 1.0], cov=[[1.0, 0.3], [0.3, 2.0]]),
                                   cs.ScipyTruth(stats.norm(1.0, 2.0))], ids=["2d", "scipy"])
@pytest.mark.parametrize("policy", [cs.Replace(), cs.KeepReal(0.25), cs.FreshReal(0.5)],
                         ids=repr)
def test_function_fitter_with_the_mle_matches_gaussian_fit(truth, policy):
    # Same streams consumed the same way: the models agree to rounding (the jitted two-pass
    # moments and numpy's sums differ in summation order, ~1e-16 relative per generation).
    kw = {"n_samples": 30, "generations": 8, "chains": 4, "seed": 2, "policy": policy,
          "record_models": True, "metrics": ("variance",)}
    ours = cs.simulate(truth, cs.FunctionFitter(mle), **kw)
    ref = cs.simulate(truth, cs.GaussianFit(), sampling="explicit", **kw)
    for name in ("mean", "cov"):
        scale = np.abs(ref.models[name]).max()
        np.testing.assert_allclose(ours.models[name], ref.models[name], rtol=0,
                                   atol=1e-12 * scale)
    assert ours.config["fitter"] == {"type": "FunctionFitter", "fit": "test_custom.mle",
                                     "model_type": "Gaussian"}


def test_function_fitter_returning_scipy_distributions():
    def laplace_fit(points):
        centre = np.median(points[:, 0])
        return cs.ScipyTruth(stats.laplace(loc=centre, scale=np.mean(np.abs(points - centre))))

    truth = cs.ScipyTruth(stats.laplace(loc=1.0, scale=2.0))
    fitter = cs.FunctionFitter(laplace_fit, model_type=cs.ScipyTruth)
    sim = cs.simulate(truth, fitter, n_samples=200, generations=3, chains=3, seed=0,
                      record_models=True, metrics=("variance", "kl", "nll", "mean_shift"))
    assert sim.models["params"].shape == (4, 3, 2)  # loc, scale
    np.testing.assert_array_equal(sim.models["params"][0], [[1.0, 2.0]] * 3)
    assert np.all(sim.metrics["kl"][0] == 0) and np.all(sim.metrics["mean_shift"][0] == 0)
    assert sim.metrics["variance"][0, 0] == pytest.approx(8.0)
    # generation 1: a laplace fit of 200 points; its variance 2 b^2 within ~4 standard
    # errors of 8 (b-hat has relative sd ~ 1/sqrt(200) = 7%)
    assert np.all(np.abs(sim.metrics["variance"][1] - 8.0) < 8.0 * 4 * 2 * 0.071)
    assert np.all(np.isfinite(sim.metrics["nll"]))
    # a Gaussian truth with such models: the pair is registered too
    sim = cs.simulate(cs.Gaussian(0.0, 1.0), fitter, n_samples=50, generations=2, chains=2,
                      seed=0)
    assert set(sim.metrics) == {"variance", "kl", "nll"}


def test_function_fitter_bad_construction():
    with pytest.raises(TypeError, match="fit must be a function"):
        cs.FunctionFitter(3)
    with pytest.raises(TypeError, match="the class Gaussian"):
        cs.FunctionFitter(cs.Gaussian)
    with pytest.raises(TypeError, match="already a fitter"):
        cs.FunctionFitter(cs.GaussianFit())
    with pytest.raises(TypeError, match="model_type must be one of"):
        cs.FunctionFitter(mle, model_type=cs.Categorical)


@pytest.mark.parametrize("returned, error, message", [
    (lambda x: {"mean": x.mean(0), "cov": np.cov(x.T)}, TypeError,
     r"returned a dict for chain 0; it must return one Gaussian.*cs\.Gaussian\(mean"),
    (lambda x: stats.norm(x.mean(), x.std()), TypeError, r"cs\.ScipyTruth\(dist\)"),
    (lambda x: cs.ScipyTruth(stats.norm(x.mean(), x.std())), TypeError,
     r"model_type=cs\.ScipyTruth"),
    (lambda x: cs.Gaussian(mean=[0.0, 0.0], var=[1.0, 1.0]), ValueError, "a batch of 2"),
    (lambda x: cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2)), ValueError,
     "dimension 2 for chain 0, whose points have dimension 1"),
    (lambda x: cs.Gaussian._from_arrays(np.array([[np.nan]]), np.ones((1, 1, 1))), ValueError,
     "non-finite parameters"),
])
def test_bad_returns_are_refused_naming_the_function_and_chain(returned, error, message):
    fitter = cs.FunctionFitter(returned)
    with pytest.raises(error, match=message) as info:
        cs.simulate(cs.Gaussian(0.0, 1.0), fitter, n_samples=10, generations=1, chains=2,
                    seed=0)
    assert "the fit function test_custom.<lambda> returned" in str(info.value) or \
        "the fit function <lambda> returned" in str(info.value)


def test_errors_inside_the_function_name_the_chain_and_the_data_are_read_only():
    def sorts_in_place(points):
        points.sort(axis=0)
        return mle(points)

    with pytest.raises(ValueError, match="read-only") as info:
        cs.simulate(cs.Gaussian(0.0, 1.0), cs.FunctionFitter(sorts_in_place), n_samples=10,
                    generations=1, chains=2, seed=0)
    assert any("sorts_in_place on chain 0 (10 points)" in n for n in info.value.__notes__)


def test_mixtures_with_different_component_counts_are_refused():
    def varying(points):
        k = 1 if points[0, 0] > 0 else 2
        return cs.GaussianMixture(weights=np.ones(k) / k, means=np.zeros((k, 1)),
                                  covs=np.ones((k, 1, 1)))

    fitter = cs.FunctionFitter(varying, model_type=cs.GaussianMixture)
    with pytest.raises(ValueError, match="every chain needs the same number"):
        cs.simulate(cs.Gaussian(0.0, 1.0), fitter, n_samples=10, generations=1, chains=8,
                    seed=0)


# -- metrics -------------------------------------------------------------------------------

def test_student_t_refitted_by_gaussians_loses_its_tails_and_collapses():
    truth = cs.ScipyTruth(stats.t(df=3))
    sim = cs.simulate(truth, cs.GaussianFit(), n_samples=100, generations=100, chains=200,
                      seed=0)
    var = sim.metrics["variance"]
    assert var[0, 0] == 3.0
    # generation 1: the sample variance of 100 t(3) points; its median is below 3 (heavy
    # right skew of the sample variance), the KL to the truth is positive
    assert np.median(var[1]) < 3.0 and np.all(sim.metrics["kl"][1] > 0)
    # collapse: the median variance keeps falling (MLE: E[var_t] = (1 - 1/n)^(t-1) var_1)
    assert np.median(var[100]) < 0.5 * np.median(var[1])


def test_row0_of_an_exact_fitter_measures_the_truth_itself():
    def t_fit(points):  # a Student-t of known df, location and scale by the median and MAD
        centre = np.median(points[:, 0])
        mad = np.median(np.abs(points[:, 0] - centre)) / stats.t(df=3).ppf(0.75)
        return cs.ScipyTruth(stats.t(df=3, loc=centre, scale=mad))

    truth = cs.ScipyTruth(stats.t(df=3))
    sim = cs.simulate(truth, cs.FunctionFitter(t_fit, model_type=cs.ScipyTruth),
                      n_samples=100, generations=2, chains=3, seed=0,
                      metrics=("variance", "kl", "nll", "mean_shift"))
    assert sim.metrics["kl"][0, 0] == 0.0 and sim.metrics["mean_shift"][0, 0] == 0.0
    assert sim.metrics["variance"][0, 0] == 3.0
    # nll at row 0: the truth's own held-out average, an estimate of its entropy (sd of
    # -log p(X) for a t3 is about 1.1, so 10,000 points give a standard error of 0.011)
    assert sim.metrics["nll"][0, 0] == pytest.approx(stats.t(df=3).entropy(), abs=0.05)
    assert np.all(sim.metrics["kl"][1:] > 0)


def test_cauchy_truth_variance_row0_inf_and_mean_shift_refused_up_front(monkeypatch):
    truth = cs.ScipyTruth(stats.cauchy())
    sim = cs.simulate(truth, cs.GaussianFit(), n_samples=50, generations=2, chains=2, seed=0)
    assert sim.metrics["variance"][0, 0] == np.inf
    assert np.isfinite(sim.metrics["variance"][1:]).all()

    def never(*args, **kwargs):
        raise AssertionError("a generation was fitted before the metric was refused")

    monkeypatch.setattr(cs.GaussianFit, "fit_statistics", never)
    with pytest.raises(ValueError, match=r"mean_shift.*no finite mean"):
        cs.simulate(truth, cs.GaussianFit(), n_samples=50, generations=2, chains=2, seed=0,
                    metrics=("variance", "mean_shift"))


def test_unregistered_metrics_are_refused_naming_the_pair():
    with pytest.raises(ValueError, match="not defined for a ScipyTruth truth with Gaussian"):
        cs.simulate(cs.ScipyTruth(stats.t(df=3)), cs.GaussianFit(), n_samples=10,
                    generations=1, metrics=("w2",))


def test_sklearn_fitters_of_a_scipy_truth():
    from sklearn.neighbors import KernelDensity

    class SampleOnly:
        def get_params(self, deep=True):
            return {}

        def fit(self, x):
            self.mean_, self.sd_ = x.mean(axis=0), x.std(axis=0)
            return self

        def sample(self, n):
            return self.mean_ + self.sd_ * np.random.default_rng(0).standard_normal((n, 1))

    truth = cs.ScipyTruth(stats.t(df=4))
    sim = cs.simulate(truth, cs.SklearnFitter(SampleOnly()), n_samples=30, generations=2,
                      chains=2, seed=0)
    assert set(sim.metrics) == {"variance"}
    with pytest.raises(ValueError, match=r"nll.*not defined"):
        cs.simulate(truth, cs.SklearnFitter(SampleOnly()), n_samples=30, generations=2,
                    metrics=("nll",))
    sim = cs.simulate(truth, cs.SklearnFitter(KernelDensity(bandwidth=0.5)), n_samples=30,
                      generations=2, chains=2, seed=0)
    assert set(sim.metrics) == {"variance", "kl", "nll"}
    assert np.all(sim.metrics["kl"][1:] > 0)


def test_register_simple_metric():
    def beyond(truth, model):
        sd = np.sqrt(model.cov[:, 0, 0])
        return stats.norm.sf(4, loc=model.mean[:, 0], scale=sd) * 2

    def beyond_truth(truth, model):
        return [2 * d.sf(4) for d in model.dists]

    register_simple_metric("test_beyond_4", beyond, cs.ScipyTruth, cs.Gaussian)
    truth = cs.ScipyTruth(stats.t(df=2))  # infinite variance: row 0 is the truth itself
    kw = {"n_samples": 50, "generations": 2, "chains": 3, "seed": 0}
    # row 0 measures (ScipyTruth, ScipyTruth): refused until registered for it, up front
    with pytest.raises(ValueError, match=r"test_beyond_4.*ScipyTruth truth with ScipyTruth"):
        cs.simulate(truth, cs.GaussianFit(), metrics=("test_beyond_4",), **kw)
    register_simple_metric("test_beyond_4", beyond_truth, cs.ScipyTruth, cs.ScipyTruth)
    sim = cs.simulate(truth, cs.GaussianFit(), metrics=("test_beyond_4",), **kw)
    assert sim.metrics["test_beyond_4"][0, 0] == 2 * stats.t(df=2).sf(4)
    assert "test_beyond_4" not in cs.simulate(truth, cs.GaussianFit(), **kw).metrics  # opt-in
    # registering again from the helper replaces (a notebook cell run twice) ...
    register_simple_metric("test_beyond_4", lambda t, m: np.zeros(m.batch_size),
                           cs.ScipyTruth, cs.Gaussian)
    sim = cs.simulate(truth, cs.GaussianFit(), metrics=("test_beyond_4",), **kw)
    assert np.all(sim.metrics["test_beyond_4"][1:] == 0)
    # ... but a built-in metric is never replaced
    with pytest.raises(ValueError, match=r"already registered.*choose another name"):
        register_simple_metric("variance", beyond, cs.ScipyTruth, cs.Gaussian)
    with pytest.raises(TypeError, match="fn must be a function"):
        register_simple_metric("test_x", 3, cs.ScipyTruth, cs.Gaussian)


@pytest.mark.parametrize("name, fn, message", [
    ("test_bad_shape", lambda t, m: np.zeros(m.batch_size + 1),
     r"returned shape \(2,\); it must return \(1,\)"),  # row 0: the truth, a batch of one
    ("test_bad_nan", lambda t, m: np.full(m.batch_size, np.nan),
     r"returned NaN for model 0 of the batch \(generation 0\)"),
])
def test_simple_metric_outputs_are_checked(name, fn, message):
    register_simple_metric(name, fn, cs.Gaussian, cs.Gaussian)
    with pytest.raises(ValueError, match=f"metric '{name}'.*{message}"):
        cs.simulate(cs.Gaussian(0.0, 1.0), cs.GaussianFit(), n_samples=10, generations=1,
                    chains=3, seed=0, metrics=(name,))
    assert registry.lookup(name, cs.Gaussian, cs.Gaussian).default is False


# -- the conformance check ----------------------------------------------------------------

@pytest.mark.parametrize("truth, fitter", [
    (cs.ScipyTruth(stats.norm(1.0, 2.0)), cs.FunctionFitter(mle)),
    (cs.ScipyTruth(stats.t(df=5)), cs.GaussianFit()),
    (cs.ScipyTruth(stats.multivariate_normal([0.0, 1.0], [[1.0, 0.3], [0.3, 2.0]])),
     cs.FunctionFitter(robust)),
], ids=["norm-function", "t5-gaussianfit", "mvn-robust"])
def test_check_family(truth, fitter):
    check_family(truth, fitter)
