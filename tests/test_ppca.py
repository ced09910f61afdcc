"""Probabilistic PCA: the closed-form fit against scikit-learn, the sampling law, the kernels,
the family protocol, the trace theory, the NoiseFree stage, the classifier metrics and bad
input.

Statistical checks use fixed seeds and z-scores against ``Z`` = 5 standard errors (a false
alarm probability below 6e-7 per check for a correct implementation, before the
Bonferroni factor of the few checks per test); each standard error comes from the exact
sampling law where it is known (Wishart variances of a sample covariance) or from the
spread across chains (the trace after several refits).
"""

import numpy as np
import pytest
from sklearn.decomposition import PCA

import collapse_sim as cs
from collapse_sim import registry
from collapse_sim._kernels import ppca as kp
from collapse_sim._kernels import rng as krng
from collapse_sim.families import _classifier
from collapse_sim.families.ppca import ppca_from_covariance
from collapse_sim.sampling import Moments, chain_streams
from collapse_sim.testing import check_family
from collapse_sim.theory import ppca_trace_mean

Z = 5.0
DIGITS = cs.datasets.digits()


@pytest.fixture(scope="module")
def digits():
    return cs.Empirical(DIGITS, heldout=0.2)


def small_truth() -> cs.PPCAModel:
    """A PPCA truth in 5 dimensions with 2 components (non-orthogonal W on input)."""
    w = np.array([[2.0, 0.5], [1.0, 1.0], [0.0, 3.0], [0.5, 0.0], [0.0, 0.2]])
    return cs.PPCAModel(mean=[1.0, -2.0, 0.5, 3.0, 0.0], components=w, noise_variance=0.3)


# -- the fit ----------------------------------------------------------------------------------

@pytest.mark.parametrize("q", [1, 5, 10, 40, 63])
def test_unbiased_fit_is_sklearn_pca(q):
    """scikit-learn's PCA divides by n - 1: its get_covariance is the 'unbiased' fit."""
    x = DIGITS.data[:400]
    model = cs.PPCAFit(q, estimator="unbiased").fit(x)
    ref = PCA(n_components=q, svd_solver="full").fit(x)
    scale = ref.explained_variance_[0]
    np.testing.assert_allclose(model.cov[0], ref.get_covariance(), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(model.noise_variance[0], ref.noise_variance_, rtol=1e-10,
                               atol=1e-12 * scale)
    # (eigenvalues at rounding level, of the constant pixels, are exactly 0 here)
    np.testing.assert_allclose(model.explained_variance[0], ref.explained_variance_,
                               rtol=1e-10, atol=1e-12 * scale)
    np.testing.assert_allclose(model.mean[0], ref.mean_, rtol=1e-13, atol=1e-13)
    # the same subspace: |cos| = 1 between matching directions (signs are a convention)
    cos = np.abs(np.sum(model.directions[0] * ref.components_.T, axis=0))
    gaps = -np.diff(ref.explained_variance_)
    resolved = np.concatenate([gaps > 1e-6 * scale, [True]])
    resolved[1:] &= gaps > 1e-6 * scale  # a direction is defined if both gaps are open
    np.testing.assert_allclose(cos[resolved], 1.0, atol=1e-8)


def test_mle_is_tipping_bishop():
    """Divisor n; sigma^2 = mean of the discarded eigenvalues; W = U_q (L_q - s2)^(1/2)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 50, 6)) @ rng.standard_normal((6, 6))
    model = cs.PPCAFit(2).fit(x)
    for c in range(2):
        s = np.cov(x[c].T, bias=True)
        lam, u = np.linalg.eigh(s)
        lam, u = lam[::-1], u[:, ::-1]
        s2 = lam[2:].mean()
        w = u[:, :2] * np.sqrt(lam[:2] - s2)
        np.testing.assert_allclose(model.noise_variance[c], s2, rtol=1e-12)
        np.testing.assert_allclose(model.cov[c], w @ w.T + s2 * np.eye(6), atol=1e-12)
        # the trace is kept exactly, for any q
        np.testing.assert_allclose(np.trace(model.cov[c]), np.trace(s), rtol=1e-13)
    # canonical form: orthogonal columns, decreasing, largest entry positive
    wtw = np.swapaxes(model.components, 1, 2) @ model.components
    np.testing.assert_allclose(wtw, wtw * np.eye(2), atol=1e-10)
    top = np.take_along_axis(model.components, np.abs(model.components).argmax(1)[:, None], 1)
    assert np.all(top > 0)


def test_degenerate_fits_are_deliberate():
    rng = np.random.default_rng(2)
    # n <= q: rank n - 1 < q, so sigma^2 = 0: a singular model, nll +inf, logdet -inf
    few = cs.PPCAFit(5).fit(rng.standard_normal((1, 4, 8)))
    assert few.noise_variance[0] == 0.0 and few.logdet()[0] == -np.inf
    assert few.finite().all()
    heldout = rng.standard_normal((20, 8))
    from collapse_sim.families.ppca import nll

    assert nll(None, few, heldout)[0] == np.inf
    # zero variance: a point mass
    same = cs.PPCAFit(2).fit(np.ones((1, 10, 4)))
    assert same.noise_variance[0] == 0.0 and np.all(same.components == 0.0)
    assert np.all(same.cov == 0.0) and np.all(same.sample(3, seed=0) == 1.0)
    # data in a q-dimensional subspace: the discarded eigenvalues are rounding, sigma^2 is 0
    basis = rng.standard_normal((3, 7))
    flat = cs.PPCAFit(3).fit(5.0 + rng.standard_normal((1, 40, 3)) @ basis)
    assert flat.noise_variance[0] == 0.0
    # all eigenvalues equal (isotropic scatter): W = 0, sigma^2 = that eigenvalue
    iso = ppca_from_covariance(np.zeros((1, 4)), 2.0 * np.eye(4)[None], 2)
    assert np.all(iso.components == 0.0) and iso.noise_variance[0] == 2.0
    np.testing.assert_array_equal(iso.cov[0], 2.0 * np.eye(4))


def test_model_constructor_canonical_form():
    truth = small_truth()
    w = np.array([[2.0, 0.5], [1.0, 1.0], [0.0, 3.0], [0.5, 0.0], [0.0, 0.2]])
    np.testing.assert_allclose(truth.cov[0], w @ w.T + 0.3 * np.eye(5), atol=1e-13)
    np.testing.assert_allclose(np.linalg.eigvalsh(truth.cov[0])[::-1][:2],
                               truth.explained_variance[0], rtol=1e-12)
    assert truth.components.shape == (1, 5, 2) and truth.n_components == 2
    np.testing.assert_allclose(truth.logdet(), np.linalg.slogdet(truth.cov[0])[1], rtol=1e-12)
    assert truth.broadcast(3).mean.shape == (3, 5)
    # record_dims describe record()
    for name, arr in truth.record().items():
        assert arr.ndim == 1 + len(cs.PPCAModel.record_dims[name]), name


# -- sampling ---------------------------------------------------------------------------------

def test_draw_is_the_latent_formula_on_the_streams_normals():
    """Per point: q normals z, then d normals eps, exactly fill_standard_normal's."""
    truth = small_truth().broadcast(3)
    x = truth.draw(50, chain_streams(4, 3))
    y = chain_streams(4, 3).standard_normal(50, 7)
    ref = (truth.mean[:, None] + np.einsum("cdq,ckq->ckd", truth.components, y[:, :, :2])
           + np.sqrt(truth.noise_variance)[:, None, None] * y[:, :, 2:])
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-13)


def test_register_normals_are_the_rng_normals():
    a, b = chain_streams(8, 5), chain_streams(8, 5)
    x, y = np.empty((5, 20_000)), np.empty((5, 20_000))  # includes tail and wedge draws
    kp.fill_normals(a.states, x)
    krng.fill_standard_normal(b.states, y)
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.states, b.states)


def test_parallel_build_equals_serial_build():
    truth = small_truth().broadcast(64)
    args = (np.ascontiguousarray(truth.mean), np.ascontiguousarray(truth.components),
            np.sqrt(truth.noise_variance))
    outs = []
    for build in (kp.ppca_points.parallel, kp.ppca_points.serial):
        states = chain_streams(9, 64).states
        out = np.empty((64, 300, 5))
        build(states, *args, out)
        outs.append((out, states))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)
    points = (small_truth().sample(300, seed=2)[None].repeat(64, axis=0)
              + np.arange(64)[:, None, None])
    stats = []
    for build in (kp.point_moments.parallel, kp.point_moments.serial):
        mean, m2 = np.empty((64, 5)), np.empty((64, 5, 5))
        build(points, mean, m2)
        stats.append((mean, m2))
    for a, b in zip(*stats, strict=True):
        np.testing.assert_array_equal(a, b)
    moments = []
    for build in (kp.latent_moments.parallel, kp.latent_moments.serial):
        states = chain_streams(9, 64).states
        mean, m2 = np.empty((64, 7)), np.empty((64, 7, 7))
        build(states, 300, mean, m2)
        moments.append((mean, m2, states))
    for a, b in zip(*moments, strict=True):
        np.testing.assert_array_equal(a, b)
    normals = []
    for build in (kp.fill_normals.parallel, kp.fill_normals.serial):
        states = chain_streams(9, 64).states
        out = np.empty((64, 300, 7))
        build(states, out)
        normals.append((out, states))
    for a, b in zip(*normals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_thread_count_and_chain_batching_do_not_change_draws(threads):
    truth = small_truth()
    threads(1)
    one = truth.broadcast(40).draw(500, chain_streams(3, 40))
    threads(2)
    two = truth.broadcast(40).draw(500, chain_streams(3, 40))
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one[5:8], truth.broadcast(3).draw(500, chain_streams(3, 3, 5)))


def test_sampling_law():
    """Sample mean and covariance of 400,000 draws against mu and W W^T + s2 I.

    The sample covariance entry S_ab of N i.i.d. Gaussian points has variance
    (C_aa C_bb + C_ab^2) / N (Wishart), the sample mean entry C_aa / N.
    """
    truth = small_truth()
    n = 400_000
    x = truth.sample(n, seed=11)
    c = truth.cov[0]
    se_mean = np.sqrt(np.diag(c) / n)
    assert np.all(np.abs(x.mean(axis=0) - truth.mean[0]) < Z * se_mean)
    se_cov = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / n)
    assert np.all(np.abs(np.cov(x.T) - c) < Z * se_cov)


def test_statistics_path_equals_the_points_moments():
    """exact=False: the moments of the very points draw() makes (same stream position)."""
    truth = small_truth().broadcast(6)
    points = truth.draw(300, chain_streams(5, 6))
    stats = truth.draw_statistics(300, chain_streams(5, 6), exact=False)
    ref = Moments.of(points)
    np.testing.assert_allclose(stats.mean, ref.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats.scatter, ref.scatter, rtol=1e-11, atol=1e-9)
    # and the blocks of chains the statistics are computed in change nothing
    from collapse_sim.families import ppca as fam

    old = fam.STATISTICS_BLOCK_VALUES
    try:
        fam.STATISTICS_BLOCK_VALUES = 1
        again = truth.draw_statistics(300, chain_streams(5, 6), exact=False)
    finally:
        fam.STATISTICS_BLOCK_VALUES = old
    np.testing.assert_array_equal(again.scatter, stats.scatter)


def test_point_moments_equal_the_two_pass_loop():
    """The fitter's BLAS moments against Moments.of, on points far from 0 (two passes: the
    scatter is exact to rounding of the spread, not of the location)."""
    from collapse_sim.families.ppca import moments

    rng = np.random.default_rng(3)
    x = 1e6 + rng.standard_normal((3, 2 * kp.LATENT_ROWS + 7, 4)) * [1.0, 1e-3, 2.0, 0.5]
    ours, ref = moments(x), Moments.of(x)
    np.testing.assert_allclose(ours.mean, ref.mean, rtol=1e-15)
    np.testing.assert_allclose(ours.scatter, ref.scatter, rtol=1e-9, atol=1e-9)
    assert ours.count == ref.count


def test_latent_moments_are_the_moments_of_the_normals():
    """Rows beyond the kernel's buffer (LATENT_ROWS) are accumulated, not lost."""
    k = 2 * kp.LATENT_ROWS + 123
    a, b = chain_streams(4, 3), chain_streams(4, 3)
    mean, m2 = np.empty((3, 5)), np.empty((3, 5, 5))
    kp.latent_moments(a.states, k, mean, m2)
    y = np.empty((3, k, 5))
    kp.fill_normals(b.states, y)
    ref = Moments.of(y)
    np.testing.assert_allclose(mean, ref.mean, rtol=0, atol=1e-14)
    np.testing.assert_allclose(m2, ref.scatter, rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(a.states, b.states)


def test_exact_statistics_law():
    """exact=True: scatter ~ Wishart(k - 1, C), mean ~ N(mu, C / k): first two moments."""
    truth = small_truth()
    chains, k = 20_000, 12
    stats = truth.draw_statistics(k, chain_streams(6, chains), exact=True)
    c = truth.cov[0]
    se = np.sqrt((k - 1) * (np.outer(np.diag(c), np.diag(c)) + c**2) / chains)
    assert np.all(np.abs(stats.scatter.mean(axis=0) - (k - 1) * c) < Z * se)
    assert np.all(np.abs(stats.mean.mean(axis=0) - truth.mean[0])
                  < Z * np.sqrt(np.diag(c) / k / chains))
    cm = c / k  # covariance of the means: the same Wishart variance formula
    se_cm = np.sqrt((np.outer(np.diag(cm), np.diag(cm)) + cm**2) / chains)
    assert np.all(np.abs(np.cov(stats.mean.T) - cm) < Z * se_cm)


# -- the family through the engine ------------------------------------------------------------

def test_check_family_digits(digits):
    check_family(digits, cs.PPCAFit(5), n_large=1000)


def test_check_family_ppca_and_gaussian_truths():
    check_family(small_truth(), cs.PPCAFit(2))
    check_family(cs.Gaussian(mean=[0.0, 1.0, 2.0], cov=[[2.0, 0.5, 0.0], [0.5, 1.0, 0.0],
                                                        [0.0, 0.0, 1.0]]), cs.PPCAFit(1))


def test_default_metrics_and_records(digits):
    sim = cs.simulate(digits, cs.PPCAFit(n_components=10), n_samples=500, generations=3,
                      chains=4, seed=0, record_models=True)
    assert set(sim.metrics) == {"variance", "mean_shift", "nll", "logdet", "noise_variance"}
    assert sim.models["components"].shape == (4, 4, 64, 10)
    assert sim.models["explained_variance"].shape == (4, 4, 10)
    assert sim.models["noise_variance"].shape == (4, 4)
    # row 0 is the fit of the whole training split
    ref = cs.PPCAFit(10).fit(digits.train)
    np.testing.assert_allclose(sim.metrics["variance"][0], np.trace(ref.cov[0]), rtol=1e-12)
    np.testing.assert_allclose(sim.models["noise_variance"][0], ref.noise_variance[0])
    # the low-rank nll equals the Gaussian family's eigen-decomposition nll
    from collapse_sim.families.gaussian import nll as gaussian_nll

    np.testing.assert_allclose(sim.metrics["nll"][0, 0],
                               gaussian_nll(digits, ref, digits.heldout_points)[0], rtol=1e-10)
    for name, arr in sim.metrics.items():
        assert np.isfinite(arr).all(), name


def test_temperature_scales_the_covariance():
    truth = small_truth()
    sim = cs.simulate(truth, cs.PPCAFit(2), n_samples=40, generations=1, chains=2, seed=1,
                      generation=cs.Temperature(0.5), record_models=True)
    assert sim.config["sampling"] == "exact"  # a transform keeps the exact path
    from collapse_sim.stages import sampling_model

    hot = sampling_model(cs.Temperature(0.5), truth)
    assert isinstance(hot, cs.PPCAModel)
    np.testing.assert_allclose(hot.cov, 0.25 * truth.cov, rtol=1e-13)


# -- the NoiseFree stage ----------------------------------------------------------------------

def test_noise_free_stage(digits):
    sim = cs.simulate(digits, cs.PPCAFit(n_components=10), n_samples=300, generations=4,
                      chains=3, seed=0, generation=cs.NoiseFree())
    s2 = sim.metrics["noise_variance"]
    assert np.all(s2[:2] > 1.0)  # generations 0 and 1 are fits of real rows
    assert np.all(s2[2:] == 0.0)  # then the training data lie in a 10-dim subspace
    assert np.all(sim.metrics["nll"][2:] == np.inf)
    assert np.all(sim.metrics["logdet"][2:] == -np.inf)
    assert not np.isnan(np.concatenate(list(sim.metrics.values()))).any()
    # the draws of the noise-free model lie on mu + span(W)
    from collapse_sim.stages import sampling_model

    model = cs.PPCAFit(3).fit(DIGITS.data[:200])
    x = sampling_model(cs.NoiseFree(), model).sample(50, seed=0) - model.mean[0]
    u = model.directions[0]
    np.testing.assert_allclose(x - (x @ u) @ u.T, 0.0, atol=1e-10)
    with pytest.raises(TypeError, match="NoiseFree"):
        cs.simulate(digits, cs.GaussianFit(), n_samples=100, generations=1,
                    generation=cs.NoiseFree())


# -- theory -----------------------------------------------------------------------------------

def _agree(values: np.ndarray, expected: np.ndarray) -> None:
    """Mean over chains of every generation within Z standard errors of ``expected``."""
    mean = values.mean(axis=1)
    se = values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])
    z = np.abs(mean[1:] - expected[1:]) / se[1:]
    assert np.all(z < Z), (z.max(), mean, expected)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["mle", "unbiased"])
def test_trace_theory_on_digits(digits, estimator):
    """E[tr C_t] = tr C_0 ((n-1)/k)^t (N - delta)/(N - 1) for any q, against simulation."""
    n, g = 30, 12
    for q in (3, 20):
        sim = cs.simulate(digits, cs.PPCAFit(q, estimator=estimator), n_samples=n,
                          generations=g, chains=500, seed=q, metrics=["variance"])
        v = sim.metrics["variance"]
        theory = ppca_trace_mean(trace0=float(v[0, 0]), n_samples=n, generations=g,
                                 estimator=estimator, population=digits.train_size)
        _agree(v, theory)
    if estimator == "mle":  # the test can fail: 12 refits at n = 30 lose 33% of the trace
        assert theory[-1] < 0.7 * theory[0]


def test_trace_theory_gaussian_truth_both_paths():
    truth = small_truth()
    n, g = 10, 8
    theory = ppca_trace_mean(trace0=float(np.trace(truth.cov[0])), n_samples=n, generations=g)
    for sampling in ("exact", "explicit"):
        sim = cs.simulate(truth, cs.PPCAFit(1), n_samples=n, generations=g, chains=3000,
                          seed=3, metrics=["variance"], sampling=sampling)
        assert sim.config["sampling"] == sampling
        _agree(sim.metrics["variance"], theory)


def test_trace_theory_finite_population_factor():
    """Generation 1 draws without replacement: the N/(N-1) factor is visible at N = 40."""
    rng = np.random.default_rng(5)
    truth = cs.Empirical(rng.standard_normal((40, 3)) * [3.0, 1.0, 0.5], heldout=0.0)
    n = 30
    sim = cs.simulate(truth, cs.PPCAFit(1), n_samples=n, generations=1, chains=20_000,
                      seed=1, metrics=["variance"])
    v = sim.metrics["variance"]
    with_fpc = ppca_trace_mean(trace0=float(v[0, 0]), n_samples=n, generations=1,
                               population=40)
    without = ppca_trace_mean(trace0=float(v[0, 0]), n_samples=n, generations=1)
    se = v[1].std(ddof=1) / np.sqrt(v.shape[1])
    assert abs(v[1].mean() - with_fpc[1]) < Z * se
    assert abs(v[1].mean() - without[1]) > 2 * Z * se  # the factor matters here


def test_theory_bad_input():
    with pytest.raises(ValueError, match="trace0"):
        ppca_trace_mean(trace0=0.0, n_samples=10, generations=2)
    with pytest.raises(TypeError, match="trace0"):
        ppca_trace_mean(trace0="1", n_samples=10, generations=2)
    with pytest.raises(ValueError, match="population"):
        ppca_trace_mean(trace0=1.0, n_samples=10, generations=2, population=5)
    with pytest.raises(TypeError, match="population"):
        ppca_trace_mean(trace0=1.0, n_samples=10, generations=2, population=10.5)
    with pytest.raises(ValueError, match="estimator"):
        ppca_trace_mean(trace0=1.0, n_samples=10, generations=2, estimator="biased")
    np.testing.assert_array_equal(
        ppca_trace_mean(trace0=2.0, n_samples=10, generations=3, estimator="unbiased",
                        population=10), 2.0)


# -- classifier metrics -----------------------------------------------------------------------

CLASS_METRICS = ["classifier_confidence", "classes_covered", "class_entropy"]


def test_classifier_metrics_see_collapse(digits):
    clf = _classifier.classifier(digits)
    accuracy = np.mean(clf.classes[clf.probabilities(digits.heldout_points[None])[0].argmax(1)]
                       == digits.heldout_labels)
    assert accuracy > 0.9
    real = _classifier.scores(digits, digits.heldout_points)
    assert real["classes_covered"][0] == 10 and real["class_entropy"][0] > 2.2
    # the reference model (PPCA of all real digits) covers every class
    sim = cs.simulate(digits, cs.PPCAFit(10), n_samples=300, generations=1, chains=2, seed=0,
                      metrics=CLASS_METRICS)
    assert sim.metrics["classes_covered"][0, 0] == 10
    assert sim.metrics["class_entropy"][0, 0] > 2.1
    # a collapsed model (one digit's mean, tiny spread) covers one class
    ones = digits.train[digits.train_labels == 1]
    tiny = cs.PPCAModel(ones.mean(axis=0), np.eye(64, 2) * 0.1, 0.01)
    out = _classifier.scores(digits, tiny.sample(500, seed=0))
    assert out["classes_covered"][0] == 1 and out["class_entropy"][0] == 0.0
    assert out["classifier_confidence"][0] > 0.9


def test_classifier_metrics_are_reproducible(digits):
    a = cs.simulate(digits, cs.PPCAFit(4), n_samples=100, generations=2, chains=5, seed=2,
                    metrics=CLASS_METRICS)
    b = cs.simulate(digits, cs.PPCAFit(4), n_samples=100, generations=2, chains=2, seed=2,
                    metrics=CLASS_METRICS)
    c = cs.simulate(digits, cs.PPCAFit(4), n_samples=100, generations=2, chains=5, seed=2,
                    metrics=["variance"])
    for name in CLASS_METRICS:
        np.testing.assert_array_equal(a.metrics[name][:, :2], b.metrics[name])
    # asking for the classifier metrics does not change the run
    full = cs.simulate(digits, cs.PPCAFit(4), n_samples=100, generations=2, chains=5, seed=2,
                       metrics=["variance", *CLASS_METRICS])
    np.testing.assert_array_equal(full.metrics["variance"], c.metrics["variance"])


def test_classifier_metrics_are_opt_in_and_need_labels():
    pair = (cs.Empirical, cs.PPCAModel)
    assert not set(CLASS_METRICS) & set(registry.defaults(*pair))
    unlabelled = cs.Empirical(DIGITS.data, heldout=0.2)
    for name in CLASS_METRICS:
        with pytest.raises(ValueError, match=f"{name}.*needs class labels"):
            cs.simulate(unlabelled, cs.PPCAFit(3), n_samples=50, generations=2, chains=2,
                        seed=0, metrics=[name])


# -- bad input --------------------------------------------------------------------------------

def test_bad_input(digits):
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_components"):
            cs.PPCAFit(n_components=bad)
    for bad in (1.5, True, "3"):
        with pytest.raises(TypeError, match="n_components"):
            cs.PPCAFit(n_components=bad)
    with pytest.raises(ValueError, match="estimator"):
        cs.PPCAFit(3, estimator="ml")
    for q in (64, 100):
        with pytest.raises(ValueError, match=r"n_components=\d+ must be below .* d=64"):
            cs.simulate(digits, cs.PPCAFit(q), n_samples=100, generations=1)
    with pytest.raises(ValueError, match="n_components"):
        cs.PPCAFit(3).fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="at least 2 points"):
        cs.PPCAFit(1, estimator="unbiased").fit(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="finite"):
        cs.PPCAFit(1).fit(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="components"):
        cs.PPCAModel(np.zeros(3), np.zeros((3, 3)), 1.0)  # q = d
    with pytest.raises(ValueError, match="mean"):
        cs.PPCAModel(np.zeros(4), np.zeros((3, 1)), 1.0)
    with pytest.raises(ValueError, match="noise_variance"):
        cs.PPCAModel(np.zeros(3), np.zeros((3, 1)), -1.0)
    with pytest.raises(ValueError, match="n_samples"):  # beyond the training split
        cs.simulate(digits, cs.PPCAFit(3), n_samples=2000, generations=1)


# -- the preset, its figure and GIF -----------------------------------------------------------

@pytest.mark.slow
def test_digits_preset_figure_gif_and_cli(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image

    from collapse_sim import cli, experiments, plotting

    result = experiments.run_preset("digits", generations=6, chains=3, n_samples=100)
    assert set(result.simulations) == set(experiments.DIGITS_SETTINGS)
    images = result.extras["images"]["replace"]
    assert images.shape == (7, experiments.DIGITS_SHOWN, 8, 8)
    assert np.isfinite(images).all() and "nan" not in result.description
    # the theory column is the closed form, for replace only
    rows = result.curves[result.curves.setting == "replace"]
    np.testing.assert_allclose(rows.variance_theory.to_numpy(),
                               result.extras["theory_variance"])
    # quantiles of infinite values are infinite, not NaN (the noise-free setting's nll)
    free = result.curves[result.curves.setting == "replace, noise-free means"]
    assert np.all(free.nll_q50.to_numpy()[2:] == np.inf)
    assert not result.curves.drop(columns="variance_theory").isna().any().any()
    fig = plotting.figure_for(result)
    fig.savefig(tmp_path / "digits.png")
    path = plotting.animate_digits(result, tmp_path / "digits", generations=[0, 3, 6])
    assert path.suffix == ".gif" and Image.open(path).n_frames == 3
    with pytest.raises(ValueError, match="generations"):
        plotting.animate_digits(result, tmp_path / "x.gif", generations=[7])
    with pytest.raises(ValueError, match="fps"):
        plotting.animate_digits(result, tmp_path / "x.gif", fps=0)
    assert cli.main(["run", "digits", "--generations", "2", "--chains", "2",
                     "--out", str(tmp_path / "cli")]) in (0, None)
    assert (tmp_path / "cli" / "digits.png").exists()
    assert experiments.PRESETS["digits"].title in capsys.readouterr().out
