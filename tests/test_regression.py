"""Linear-regression recursion: the model, OLS/SGD fitters, test error against the closed forms."""

import numba
import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

import collapse_sim as cs
from collapse_sim import theory
from collapse_sim.sampling import chain_streams, regression_points

D, T = 5, 20
TRUTH = cs.LinearRegression(weights=np.linspace(-1.0, 1.0, D), noise_std=1.0)


# -- the model ---------------------------------------------------------------------------------


def test_sample_has_the_stated_law():
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    truth = cs.LinearRegression(weights=[1.0, -2.0], noise_std=0.5, design_cov=cov)
    n = 200_000
    x, y = truth.sample(n, seed=3)
    assert x.shape == (n, 2) and y.shape == (n,)
    # Sample covariance entries have standard error sqrt((S_ii S_jj + S_ij^2) / n) < 0.007;
    # 5 standard errors.
    np.testing.assert_allclose(np.cov(x.T), cov, atol=5 * np.sqrt(2 * 4.0 / n))
    resid = y - x @ truth.weights[0]
    # Residuals are N(0, 0.25): the sample variance has sd 0.25 * sqrt(2 / n); 5 sd.
    assert abs(resid.var() - 0.25) < 5 * 0.25 * np.sqrt(2 / n)
    assert stats.kstest(resid / 0.5, "norm").pvalue > 1e-3


def test_fixed_design_relabels_the_same_features():
    model = TRUTH.broadcast(3)
    design = regression_points(model, 7, chain_streams(0, 3))[:, :, :D]
    again = regression_points(model, 7, chain_streams(1, 3), design)
    np.testing.assert_array_equal(again[:, :, :D], design)
    longer = regression_points(model, 10, chain_streams(1, 3), design)  # rows cycle
    np.testing.assert_array_equal(longer[:, 7:, :D], design[:, :3])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weights": [[[1.0]]]}, ValueError, "weights"),
        ({"weights": [1.0], "noise_std": -1.0}, ValueError, "noise_std"),
        ({"weights": [1.0, 2.0], "noise_std": [1.0, 1.0, 1.0]}, ValueError, "noise_std"),
        ({"weights": [1.0, 2.0], "design_cov": np.eye(3)}, ValueError, "design_cov"),
        ({"weights": [1.0, 2.0], "design_cov": [[1.0, 2.0], [2.0, 1.0]]}, ValueError,
         "design_cov"),
        ({"weights": [1.0], "design": "random"}, ValueError, "design"),
        ({"weights": ["a"]}, TypeError, "weights"),
        ({"weights": [np.nan]}, ValueError, "weights"),
    ],
)
def test_bad_model_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        cs.LinearRegression(**kwargs)


# -- OLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ridge", [0.0, 3.0])
def test_ols_matches_scikit_learn(ridge):
    pts = regression_points(TRUTH.broadcast(4), 30, chain_streams(5, 4))
    model = cs.OLSFit(ridge=ridge).fit_chains(pts, previous=TRUTH)
    for c in range(4):
        ref = Ridge(alpha=ridge, fit_intercept=False, solver="cholesky").fit(pts[c, :, :D],
                                                                               pts[c, :, D])
        np.testing.assert_allclose(model.weights[c], ref.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(model.noise_std, 1.0)  # noise="keep": inherited


def test_ols_with_fewer_rows_than_features_is_the_minimum_norm_solution():
    pts = regression_points(TRUTH.broadcast(2), 3, chain_streams(0, 2))
    model = cs.OLSFit().fit_chains(pts, previous=TRUTH)
    for c in range(2):
        ref = np.linalg.lstsq(pts[c, :, :D], pts[c, :, D], rcond=None)[0]
        np.testing.assert_allclose(model.weights[c], ref, rtol=1e-8, atol=1e-10)


def test_estimated_noise_is_unbiased():
    chains = 20_000
    sim = cs.simulate(TRUTH, cs.OLSFit(noise="estimate"), n_samples=T, generations=1,
                      chains=chains, seed=4, record_models=True)
    var = sim.models["noise_std"][1] ** 2
    # (T - d) s^2 / sigma^2 ~ chi2_{T-d}: the mean of s^2 has sd sqrt(2 / (T - d) / chains).
    assert abs(var.mean() - 1.0) < 5 * np.sqrt(2 / (T - D) / chains)


# -- simulation against theory -----------------------------------------------------------------

CASES = [("replace", "fresh"), ("replace", "fixed"), ("accumulate", "fixed")]
CHECK_GENERATIONS = [1, 2, 10]


@pytest.mark.slow
@pytest.mark.parametrize(("policy", "design"), CASES)
def test_test_error_matches_the_closed_form(policy, design):
    chains = 20_000
    truth = cs.LinearRegression(weights=np.zeros(D), noise_std=1.0, design=design)
    pol = cs.Replace() if policy == "replace" else cs.Accumulate()
    sim = cs.simulate(truth, cs.OLSFit(), n_samples=T, generations=10, chains=chains,
                      policy=pol, seed=11)
    err = sim.metrics["test_error"]
    assert np.all(err[0] == 0.0)
    kw = {"n_samples": T, "dim": D, "generations": CHECK_GENERATIONS, "policy": policy,
          "design": design}
    mean = theory.regression_test_error(**kw)
    var = theory._regression_test_error_variance(**kw)
    got = err[CHECK_GENERATIONS].mean(axis=1)
    # The per-chain error is heavy-tailed (inverse-Wishart moments), so no normal
    # approximation: Chebyshev with the exact variance. k = 30 standard errors gives a
    # false-alarm probability <= 1/900 per check, <= 1% over the 9 checks of this test.
    tol = 30 * np.sqrt(var / chains)
    np.testing.assert_array_less(np.abs(got - mean), tol)
    # The bound still has power: following the other policy's curve would exceed it at
    # t = 10, and (replace) being one generation off would at t = 1 and 2.
    other = {"replace": "accumulate", "accumulate": "replace"}[policy]
    alt = theory.regression_test_error(**{**kw, "policy": other, "design": "fixed"})
    assert abs(alt - mean)[-1] > tol[-1]
    if policy == "replace":
        shifted = theory.regression_test_error(**{**kw, "generations": [2, 3, 11]})
        assert np.all((np.abs(shifted - mean) > tol)[:2])


def test_the_variance_formula_matches_inverse_wishart_moments():
    # The Chebyshev bound above rests on E tr W^-1, E (tr W^-1)^2 and E tr W^-2 for
    # W^-1 ~ InvWishart(T, I_d); check the formula's single-generation variance against
    # scipy's inverse-Wishart sampler and exact Gaussian-noise moments given W.
    k = 400_000
    w_inv = stats.invwishart(df=T, scale=np.eye(D)).rvs(size=k, random_state=7)
    tr1 = np.trace(w_inv, axis1=1, axis2=2)
    tr2 = np.einsum("bij,bji->b", w_inv, w_inv)
    m2 = tr1.mean()
    m4 = (tr1**2 + 2 * tr2).mean()  # E[(e'Ae)^2 | W] = (tr A)^2 + 2 tr A^2
    var = theory._regression_test_error_variance(n_samples=T, dim=D, generations=[1])[0]
    # Both sample means have finite variance here (T - d = 15 > 7); 2% is > 5 of their
    # standard errors (measured relative sd of the m4 estimate: 0.3%).
    assert abs((m4 - m2**2) / var - 1.0) < 0.02
    assert abs(m2 / theory.regression_test_error(n_samples=T, dim=D, generations=[1])[0]
               - 1.0) < 0.01


def test_theory_bad_input():
    with pytest.raises(ValueError, match="no published closed form"):
        theory.regression_test_error(n_samples=20, dim=5, generations=3, policy="accumulate",
                                     design="fresh")
    with pytest.raises(ValueError, match="n_samples"):
        theory.regression_test_error(n_samples=6, dim=5, generations=3)
    with pytest.raises(ValueError, match="policy"):
        theory.regression_test_error(n_samples=20, dim=5, generations=3, policy="fresh")
    np.testing.assert_allclose(
        theory.regression_test_error(n_samples=20, dim=5, generations=3,
                                     policy=cs.Accumulate(), design="fixed"),
        5 / 14 * np.array([0.0, 1.0, 1.25, 1.25 + 1 / 9]))
    # bounded by pi^2/6 times one generation's error
    far = theory.regression_test_error(n_samples=20, dim=5, generations=[10_000],
                                       policy="accumulate", design="fixed")
    assert far[0] < np.pi**2 / 6 * 5 / 14


# -- SGD ---------------------------------------------------------------------------------------


def test_sgd_converges_to_ols():
    pts = regression_points(TRUTH.broadcast(4), 40, chain_streams(2, 4))
    ols = cs.OLSFit().fit_chains(pts, previous=TRUTH)
    fit = cs.SGDRegressionFit(learning_rate=0.2, batch_size=40, epochs=3000, init="fixed")
    sgd = fit.fit_chains(pts, streams=chain_streams(0, 4), previous=TRUTH)
    # Full-batch gradient descent on a strongly convex quadratic converges geometrically.
    np.testing.assert_allclose(sgd.weights, ols.weights, atol=1e-8)


def test_short_sgd_adds_approximation_error():
    kw = {"n_samples": 40, "generations": 3, "chains": 2000, "seed": 1}
    ols = cs.simulate(TRUTH, cs.OLSFit(), **kw).metrics["test_error"]
    sgd = cs.simulate(TRUTH, cs.SGDRegressionFit(learning_rate=0.05, batch_size=10, epochs=1),
                      **kw).metrics["test_error"]
    # Four steps of rate 0.05 from w = 0 leave most of ||w||^2 = 2.5 unlearned: far above
    # the OLS error (about 0.15 per generation), by many standard errors.
    gap = sgd[1] - ols[1]
    assert gap.mean() > 5 * gap.std(ddof=1) / np.sqrt(gap.size)


def test_regression_reproducible_and_thread_independent(threads):
    kw = {"n_samples": 30, "generations": 4, "chains": 7, "seed": 3}
    truth = cs.LinearRegression(weights=np.ones(3), noise_std=0.5, design="fixed")
    fit = cs.SGDRegressionFit(learning_rate=0.05, batch_size=5, epochs=3, momentum=0.5,
                              gradient_noise=0.1, noise="estimate")
    threads(1)
    a = cs.simulate(truth, fit, **kw)
    threads(numba.config.NUMBA_NUM_THREADS)
    b = cs.simulate(truth, fit, **kw)
    np.testing.assert_array_equal(a.metrics["test_error"], b.metrics["test_error"])
    c = cs.simulate(truth, fit, **{**kw, "chains": 3})
    np.testing.assert_array_equal(a.metrics["test_error"][:, :3], c.metrics["test_error"])


def test_divergence_names_generation_and_chain():
    with pytest.raises(FloatingPointError, match=r"generation 1: the fit of chain 0"):
        cs.simulate(TRUTH, cs.SGDRegressionFit(learning_rate=50.0, batch_size=10, epochs=50),
                    n_samples=50, generations=3, chains=4, seed=0)


def test_record_models_and_save_round_trip(tmp_path):
    sim = cs.simulate(TRUTH, cs.OLSFit(), n_samples=T, generations=3, chains=5, seed=0,
                      record_models=True)
    assert sim.models["weights"].shape == (4, 5, D)
    np.testing.assert_array_equal(sim.models["weights"][0], np.broadcast_to(TRUTH.weights, (5, D)))
    diff = sim.models["weights"][2] - TRUTH.weights
    np.testing.assert_allclose(np.sum(diff**2, axis=1), sim.metrics["test_error"][2])
    again = cs.Simulation.load(sim.save(tmp_path / "reg.npz"))
    np.testing.assert_array_equal(again.metrics["test_error"], sim.metrics["test_error"])
    assert again.config["truth"]["type"] == "LinearRegression"


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: cs.SGDRegressionFit(learning_rate=0.0), ValueError, "learning_rate"),
        (lambda: cs.SGDRegressionFit(learning_rate=np.inf), ValueError, "learning_rate"),
        (lambda: cs.SGDRegressionFit(batch_size=0), ValueError, "batch_size"),
        (lambda: cs.SGDRegressionFit(epochs=0), ValueError, "epochs"),
        (lambda: cs.SGDRegressionFit(noise="fixed"), ValueError, "noise"),
        (lambda: cs.OLSFit(ridge=-1.0), ValueError, "ridge"),
        (lambda: cs.OLSFit(noise="x"), ValueError, "noise"),
    ],
)
def test_bad_fitter_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_simulate_input():
    kw = {"n_samples": 20, "generations": 2, "chains": 2}
    with pytest.raises(TypeError, match="OLSFit, SGDRegressionFit"):
        cs.simulate(TRUTH, cs.GaussianFit(), **kw)
    with pytest.raises(TypeError, match="LinearRegression"):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.OLSFit(), **kw)
    with pytest.raises(ValueError, match="not defined for a LinearRegression truth"):
        cs.simulate(TRUTH, cs.OLSFit(), metrics=("variance",), **kw)
    with pytest.raises(ValueError, match="not defined for a Gaussian truth"):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), metrics="test_error",
                    **kw)
    with pytest.raises(ValueError, match="batch_size"):  # more than n points per batch
        cs.simulate(TRUTH, cs.SGDRegressionFit(batch_size=32), **kw)
    with pytest.raises(ValueError, match="sampling='exact' is not exact"):
        cs.simulate(TRUTH, cs.OLSFit(), sampling="exact", **kw)
