"""Factor analysis: the batched fit against scikit-learn, the log-likelihood, degenerate data,
the sampling kernel and its law, the family protocol, stages, metrics and bad input.

Statistical checks use fixed seeds and z-scores against ``Z`` = 5 standard errors (a false
alarm probability below 6e-7 per entry for a correct implementation, so below 1e-4 over the
few dozen entries a test checks); each standard error comes from the exact sampling law
(Wishart variances of a sample covariance).
"""

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import FactorAnalysis
from threadpoolctl import threadpool_limits

import collapse_sim as cs
from collapse_sim._kernels import factor as kf
from collapse_sim._kernels import ppca as kp
from collapse_sim.families.factor import (
    NOISE_FLOOR,
    FactorAnalysisFit,
    FactorAnalysisModel,
    factor_analysis_iterations,
    nll,
)
from collapse_sim.sampling import Moments, chain_streams
from collapse_sim.testing import check_family

Z = 5.0
DIGITS = cs.datasets.digits()


@pytest.fixture(scope="module")
def digits():
    return cs.Empirical(DIGITS, heldout=0.2)


def small_truth() -> FactorAnalysisModel:
    """5 dimensions, 2 factors (non-orthogonal W on input), unequal noise variances."""
    w = np.array([[2.0, 0.5], [1.0, 1.0], [0.0, 3.0], [0.5, 0.0], [0.0, 0.2]])
    return FactorAnalysisModel(mean=[1.0, -2.0, 0.5, 3.0, 0.0], components=w,
                               noise_variance=[0.3, 0.1, 0.5, 1.0, 0.2])


def digit_chains(chains=4, n=600, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([DIGITS.data[rng.choice(DIGITS.data.shape[0], n, replace=False)]
                     for _ in range(chains)])


# -- the fit ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("q", "tol"), [(1, 1e-2), (5, 1e-2), (10, 1e-2), (10, 1e-3)])
def test_fit_is_sklearn_factor_analysis(q, tol):
    """Four chains fitted at once, each against FactorAnalysis(svd_method="lapack").

    The same algorithm from the same start with the same stopping rule: the same number of
    iterations, and W W^T, psi and the log-likelihood equal up to rounding (scikit-learn
    adds 1e-12 to sqrt(psi), which moves the digits' floored pixels by ~1e-6 relative; the
    rest agrees to ~1e-10).
    """
    x = digit_chains()
    n = x.shape[1]
    model = FactorAnalysisFit(q, tol=tol).fit(x)
    for c in range(x.shape[0]):
        with threadpool_limits(1, user_api="blas"):  # OpenBLAS threads: 50x slower when busy
            ref = FactorAnalysis(n_components=q, svd_method="lapack", tol=tol).fit(x[c])
        scale = np.trace(ref.get_covariance())
        assert model.n_iter[c] == ref.n_iter_
        w = model.components[c]
        np.testing.assert_allclose(w @ w.T, ref.components_.T @ ref.components_, rtol=0,
                                   atol=1e-10 * scale)
        np.testing.assert_allclose(model.noise_variance[c], ref.noise_variance_, rtol=1e-6,
                                   atol=1e-10 * scale)
        np.testing.assert_allclose(model.cov[c], ref.get_covariance(), rtol=0,
                                   atol=1e-10 * scale)
        np.testing.assert_allclose(model.mean[c], ref.mean_, rtol=1e-13, atol=1e-13)
        # the log-likelihood of the training data: ours (Woodbury) vs scikit-learn's score
        np.testing.assert_allclose(model.logpdf(x[c])[c].sum(), ref.score(x[c]) * n,
                                   rtol=1e-10)
        np.testing.assert_allclose(model.logpdf(x[c])[c], ref.score_samples(x[c]), rtol=1e-9)
    # the chains of a batch do not see each other: chain 2 alone gives the same model
    alone = FactorAnalysisFit(q, tol=tol).fit(x[2])
    np.testing.assert_array_equal(alone.cov[0], model.cov[2])


def test_log_likelihood_is_exact_with_surplus_factors():
    """With more factors than the data hold (eigenvalues of S~ below 1), the stopping rule's
    log-likelihood is the model's true one (scikit-learn's log(lambda) + 1 would not be)."""
    truth = small_truth()
    x = truth.sample(2000, seed=4)
    s = np.cov(x.T, bias=True)[None]
    w, psi, ll, n_iter = factor_analysis_iterations(s, 4, 2000.0, tol=1e-6)
    model = FactorAnalysisModel(x.mean(axis=0), w[0], psi[0])
    assert n_iter[0] < 1000
    np.testing.assert_allclose(ll[0], model.logpdf(x).sum(), rtol=1e-10)


def test_fit_recovers_the_truth_covariance():
    """as_model (the fit of an exact covariance) recovers a factor-analysis truth, and the
    fit of many points approaches it."""
    truth = small_truth()
    fitted = FactorAnalysisFit(2).as_model(cs.Gaussian(mean=truth.mean[0], cov=truth.cov[0]))
    # (the iterations converge linearly and slowly in the weakly loaded 5th dimension: to
    # rounding of the likelihood, C within ~3e-7 and psi within ~3e-5)
    np.testing.assert_allclose(fitted.cov[0], truth.cov[0], rtol=0, atol=2e-6)
    np.testing.assert_allclose(fitted.noise_variance[0], truth.noise_variance[0], atol=2e-4)
    assert FactorAnalysisFit(2).as_model(truth) is truth


def test_degenerate_data_stay_finite():
    """A constant pixel (variance 0) ends at the floor; all-constant data give W = 0; one
    point per chain; no NaN anywhere, and the fit stops early."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 200, 6)) @ rng.standard_normal((6, 6))
    x[:, :, 2] = 7.3  # a constant pixel (not 0: its scatter is rounding, not exactly 0)
    x[1] = 5.0  # chain 1: every point equal
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings, no convergence warning
        model = FactorAnalysisFit(2).fit(x)
        one = FactorAnalysisFit(2).fit(x[:, :1])
    for m in (model, one):
        for arr in (m.mean, m.components, m.noise_variance, m.cov, m.logdet()):
            assert np.isfinite(arr).all()
    assert model.noise_variance[0, 2] == NOISE_FLOOR and model.noise_variance[2, 2] == NOISE_FLOOR
    assert np.all(np.abs(model.components[0, 2]) < 1e-10)  # rounding of the constant
    np.testing.assert_array_equal(model.noise_variance[1], NOISE_FLOOR)
    np.testing.assert_array_equal(model.components[1], 0.0)
    assert model.n_iter.max() < 1000 and model.n_iter[1] <= 3
    np.testing.assert_array_equal(one.noise_variance, NOISE_FLOOR)
    # a custom floor is honoured
    floored = FactorAnalysisFit(2, noise_floor=1e-3).fit(x[0])
    assert floored.noise_variance[0, 2] == 1e-3
    # the held-out likelihood of data that share the constant pixel is finite
    assert np.isfinite(model.logpdf(x[0])[[0, 2]]).all()


def test_digits_runs_have_no_nan(digits):
    """The digits hold three pixels that are always 0: floored, finite metrics, no NaN."""
    sim = cs.simulate(digits, FactorAnalysisFit(10), n_samples=300, generations=3, chains=3,
                      seed=0, record_models=True)
    assert set(sim.metrics) == {"variance", "mean_shift", "nll", "logdet", "noise_variance"}
    for name, arr in sim.metrics.items():
        assert np.isfinite(arr).all(), name
    for name, arr in sim.models.items():
        assert np.isfinite(arr).all(), name
    assert sim.models["noise_variance"].shape == (4, 3, 64)
    assert sim.models["components"].shape == (4, 3, 64, 10)
    zero = np.flatnonzero(digits.train.std(axis=0) == 0)
    assert zero.size and np.all(sim.models["noise_variance"][0][:, zero] == NOISE_FLOOR)
    # row 0 is the fit of the whole training split
    ref = FactorAnalysisFit(10).fit(digits.train)
    np.testing.assert_allclose(sim.metrics["variance"][0], np.trace(ref.cov[0]), rtol=1e-12)
    np.testing.assert_allclose(sim.metrics["noise_variance"][0], ref.noise_variance[0].mean())


# -- metrics ----------------------------------------------------------------------------------

def test_nll_logdet_logpdf_against_scipy(digits):
    """Woodbury nll, logdet and logpdf against scipy's dense multivariate normal (a model
    without floored variances, so the dense route is well conditioned)."""
    truth = small_truth()
    models = FactorAnalysisFit(2).fit(truth.broadcast(3).draw(50, chain_streams(1, 3)))
    held = truth.sample(500, seed=9)
    ours = nll(truth, models, held)
    for c in range(3):
        dense = stats.multivariate_normal(models.mean[c], models.cov[c])
        np.testing.assert_allclose(ours[c], -dense.logpdf(held).mean(), rtol=1e-10)
        np.testing.assert_allclose(models.logpdf(held)[c], dense.logpdf(held), rtol=1e-10)
        np.testing.assert_allclose(models.logdet()[c], np.linalg.slogdet(models.cov[c])[1],
                                   rtol=1e-12)
    # on the digits (floored pixels): the training-split fit's nll equals -mean logpdf
    ref = FactorAnalysisFit(10).fit(digits.train)
    np.testing.assert_allclose(nll(digits, ref, digits.heldout_points),
                               -ref.logpdf(digits.heldout_points).mean(), rtol=1e-8)
    # a singular model (psi with a zero) has no density: +inf, never NaN
    flat = FactorAnalysisModel(truth.mean, truth.components, [0.3, 0.0, 0.5, 1.0, 0.2])
    assert nll(truth, flat, held)[0] == np.inf and flat.logdet()[0] == -np.inf


# -- sampling ---------------------------------------------------------------------------------

def test_draw_is_the_latent_formula_on_the_streams_normals():
    """Per point: q normals z, then d normals eps, as PPCA draws them."""
    truth = small_truth()
    x = truth.draw(50, chain_streams(2, 1))[0]
    y = np.empty((1, 50, 7))
    kp.fill_normals(chain_streams(2, 1).states, y)
    expected = (truth.mean[0] + y[0, :, :2] @ truth.components[0].T
                + np.sqrt(truth.noise_variance[0]) * y[0, :, 2:])
    np.testing.assert_allclose(x, expected, rtol=1e-13, atol=1e-13)


def test_sampling_law():
    """Sample mean and covariance of 400,000 draws against mu and W W^T + diag psi.

    For N i.i.d. Gaussian points the MLE covariance entry S_ab has variance
    (C_aa C_bb + C_ab^2) / N (the Wishart variance, to O(1/N^2)), the mean entry C_aa / N;
    each entry is checked within Z of those standard errors.
    """
    truth = small_truth()
    n = 400_000
    x = truth.sample(n, seed=11)
    c = truth.cov[0]
    se_mean = np.sqrt(np.diag(c) / n)
    assert np.all(np.abs(x.mean(axis=0) - truth.mean[0]) < Z * se_mean)
    se_cov = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / n)
    assert np.all(np.abs(np.cov(x.T, bias=True) - c) < Z * se_cov)


def test_statistics_paths():
    """exact=False: the moments of the very points draw() makes; exact=True: scatter ~
    Wishart(k - 1, C), whose mean (k - 1) C is checked entry by entry with the Wishart
    standard error sqrt((k - 1)(C_aa C_bb + C_ab^2) / chains)."""
    truth = small_truth().broadcast(6)
    points = truth.draw(300, chain_streams(5, 6))
    got = truth.draw_statistics(300, chain_streams(5, 6), exact=False)
    ref = Moments.of(points)
    np.testing.assert_allclose(got.mean, ref.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.scatter, ref.scatter, rtol=1e-11, atol=1e-9)
    single = small_truth()
    chains, k = 20_000, 12
    exact = single.draw_statistics(k, chain_streams(6, chains), exact=True)
    c = single.cov[0]
    se = np.sqrt((k - 1) * (np.outer(np.diag(c), np.diag(c)) + c**2) / chains)
    assert np.all(np.abs(exact.scatter.mean(axis=0) - (k - 1) * c) < Z * se)


def test_parallel_build_equals_serial_build_and_threads(threads):
    truth = small_truth().broadcast(64)
    args = (np.ascontiguousarray(truth.mean), np.ascontiguousarray(truth.components),
            np.ascontiguousarray(np.sqrt(truth.noise_variance)))
    outs = []
    for build in (kf.factor_points.parallel, kf.factor_points.serial):
        states = chain_streams(9, 64).states
        out = np.empty((64, 300, 5))
        build(states, *args, out)
        outs.append((out, states))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)
    threads(1)
    one = truth.draw(500, chain_streams(3, 64))
    threads(2)
    two = truth.draw(500, chain_streams(3, 64))
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one[5:8],
                                  small_truth().broadcast(3).draw(500, chain_streams(3, 3, 5)))


def test_same_seed_is_bit_identical_across_thread_counts(threads, digits):
    kw = {"n_samples": 300, "generations": 3, "chains": 3, "seed": 5, "record_models": True}
    threads(1)
    one = cs.simulate(digits, FactorAnalysisFit(5), **kw)
    threads(2)
    two = cs.simulate(digits, FactorAnalysisFit(5), **kw)
    for name in one.metrics:
        np.testing.assert_array_equal(one.metrics[name], two.metrics[name])
    for name in one.models:
        np.testing.assert_array_equal(one.models[name], two.models[name])


# -- the family through the engine ------------------------------------------------------------

def test_check_family_factor_and_gaussian_truths():
    check_family(small_truth(), FactorAnalysisFit(2))
    check_family(cs.Gaussian(mean=[0.0, 1.0, 2.0], cov=[[2.0, 0.5, 0.0], [0.5, 1.0, 0.0],
                                                        [0.0, 0.0, 1.0]]), FactorAnalysisFit(1))


def test_check_family_digits(digits):
    check_family(digits, FactorAnalysisFit(5), n_large=1000)


def test_stages(digits):
    """NoiseFree trains on mu + W z: from generation 2 the data lie in a q-dimensional
    subspace and every psi sits at the floor (finite, never NaN). Temperature scales C."""
    sim = cs.simulate(digits, FactorAnalysisFit(5), n_samples=200, generations=3, chains=2,
                      seed=0, generation=cs.NoiseFree(), record_models=True)
    psi = sim.models["noise_variance"]
    assert np.all(psi[1].mean(axis=1) > 1.0)
    np.testing.assert_array_equal(psi[2:], NOISE_FLOOR)
    for arr in sim.metrics.values():
        assert not np.isnan(arr).any()
    from collapse_sim.families.factor import _tempered

    hot = _tempered(cs.Temperature(1.5), small_truth())
    np.testing.assert_allclose(hot.cov, 2.25 * small_truth().cov, rtol=1e-13, atol=1e-15)


def test_classifier_metrics_apply(digits):
    sim = cs.simulate(digits, FactorAnalysisFit(5), n_samples=200, generations=2, chains=2,
                      seed=0, metrics=["classes_covered", "classifier_confidence"])
    assert np.all(sim.metrics["classes_covered"][0] >= 8)
    assert np.all((sim.metrics["classifier_confidence"] > 0)
                  & (sim.metrics["classifier_confidence"] <= 1))


# -- bad input --------------------------------------------------------------------------------

def test_bad_input(digits):
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_components"):
            FactorAnalysisFit(n_components=bad)
    for bad in (1.5, True, "3"):
        with pytest.raises(TypeError, match="n_components"):
            FactorAnalysisFit(n_components=bad)
    with pytest.raises(ValueError, match="tol"):
        FactorAnalysisFit(3, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        FactorAnalysisFit(3, max_iter=0)
    for bad in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="noise_floor"):
            FactorAnalysisFit(3, noise_floor=bad)
    with pytest.raises(ValueError, match="estimator"):
        FactorAnalysisFit(3, estimator="ml")
    for q in (64, 100):  # refused before any sampling
        with pytest.raises(ValueError, match=r"n_components=\d+ must be below .* d=64"):
            cs.simulate(digits, FactorAnalysisFit(q), n_samples=100, generations=1)
    with pytest.raises(ValueError, match="n_components"):
        FactorAnalysisFit(3).fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="data"):
        FactorAnalysisFit(1).fit(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="data"):
        FactorAnalysisFit(1).fit(np.array([[0.0, 1.0, np.inf]] * 4))
    for bad in (np.array([["a", "b", "c"]] * 4), np.ones((4, 3), dtype=complex),
                np.ones((4, 3), dtype=bool)):
        with pytest.raises(TypeError, match="data"):
            FactorAnalysisFit(1).fit(bad)
    with pytest.raises(ValueError, match="at least 2 points"):
        FactorAnalysisFit(1, estimator="unbiased").fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="components"):
        FactorAnalysisModel(np.zeros(3), np.zeros((3, 3)), np.ones(3))  # q = d
    with pytest.raises(ValueError, match="noise_variance"):
        FactorAnalysisModel(np.zeros(3), np.zeros((3, 1)), 1.0)  # a scalar: one per dim
    with pytest.raises(ValueError, match="noise_variance"):
        FactorAnalysisModel(np.zeros(3), np.zeros((3, 1)), [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="mean"):
        FactorAnalysisModel(np.zeros(4), np.zeros((3, 1)), np.ones(3))
