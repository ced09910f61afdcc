"""Gaussian model: construction, log-density against scipy, sampling, and bad input."""

import numpy as np
import pytest
from scipy import stats

import collapse_sim as cs


def random_spd(d, rng, spread=1.5):
    """A random anisotropic covariance: random rotation, log-uniform eigenvalues."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    lam = np.exp(rng.uniform(-spread, spread, d))
    return (q * lam) @ q.T


# -- construction -----------------------------------------------------------------------------


def test_scalar_mean_and_var():
    g = cs.Gaussian(mean=0.5, var=2.0)
    assert (g.dim, g.batch_size) == (1, 1)
    assert g.mean.shape == (1, 1) and g.cov.shape == (1, 1, 1)
    assert g.mean[0, 0] == 0.5 and g.cov[0, 0, 0] == 2.0
    np.testing.assert_array_equal(g.var, [2.0])


def test_vector_mean_and_matrix_cov():
    cov = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.5]])
    g = cs.Gaussian(mean=[1.0, -2.0, 3.0], cov=cov)
    assert (g.dim, g.batch_size) == (3, 1)
    assert g.mean.shape == (1, 3) and g.cov.shape == (1, 3, 3)
    np.testing.assert_array_equal(g.mean[0], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(g.cov[0], cov)
    np.testing.assert_allclose(g.var, [3.5])


def test_batched_mean_and_cov():
    rng = np.random.default_rng(0)
    means = rng.standard_normal((4, 3))
    covs = np.stack([random_spd(3, rng) for _ in range(4)])
    g = cs.Gaussian(mean=means, cov=covs)
    assert (g.dim, g.batch_size) == (3, 4)
    assert g.mean.shape == (4, 3) and g.cov.shape == (4, 3, 3)
    np.testing.assert_allclose(g.mean, means)
    np.testing.assert_allclose(g.cov, covs, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(g.var, np.trace(covs, axis1=1, axis2=2))


def test_batch_broadcasts_between_mean_and_cov():
    rng = np.random.default_rng(1)
    covs = np.stack([random_spd(2, rng) for _ in range(3)])
    g = cs.Gaussian(mean=[1.0, 2.0], cov=covs)  # (d,) mean, (B, d, d) cov
    assert g.mean.shape == (3, 2)
    np.testing.assert_array_equal(g.mean, np.tile([1.0, 2.0], (3, 1)))
    means = rng.standard_normal((5, 2))
    g = cs.Gaussian(mean=means, cov=covs[0])  # (B, d) mean, (d, d) cov
    assert g.cov.shape == (5, 2, 2)
    for c in range(5):
        np.testing.assert_allclose(g.cov[c], covs[0], rtol=1e-15, atol=1e-15)


def test_one_dimensional_batch_from_vectors():
    g = cs.Gaussian(mean=[0.0, 1.0, -2.0], var=[1.0, 4.0, 0.25])
    assert (g.dim, g.batch_size) == (1, 3)
    assert g.mean.shape == (3, 1) and g.cov.shape == (3, 1, 1)
    np.testing.assert_array_equal(g.mean[:, 0], [0.0, 1.0, -2.0])
    np.testing.assert_array_equal(g.cov[:, 0, 0], [1.0, 4.0, 0.25])
    # A scalar mean broadcasts against a (B,) var and vice versa.
    np.testing.assert_array_equal(cs.Gaussian(mean=3.0, var=[1.0, 2.0]).mean[:, 0], [3.0, 3.0])
    np.testing.assert_array_equal(cs.Gaussian(mean=[1.0, 2.0], var=5.0).cov[:, 0, 0], [5.0, 5.0])


def test_parameters_are_copied_and_read_only():
    # The model must not alias the caller's arrays: mutating them afterwards must not
    # change (or invalidate the validation of) the model.
    mean, cov = np.zeros(2), np.eye(2)
    g = cs.Gaussian(mean=mean, cov=cov)
    mean[0], cov[0, 0] = 9.0, 9.0
    assert g.cov[0, 0, 0] == 1.0 and g.mean[0, 0] == 0.0
    mean, var = np.array([1.0, 2.0]), np.array([1.0, 3.0])
    g = cs.Gaussian(mean=mean, var=var)
    mean[0], var[0] = 9.0, -5.0
    assert g.mean[0, 0] == 1.0 and g.cov[0, 0, 0] == 1.0
    with pytest.raises(ValueError):
        g.mean[0, 0] = 1.0
    with pytest.raises(ValueError):
        g.cov[0, 0, 0] = 1.0


# -- logpdf -----------------------------------------------------------------------------------


def test_logpdf_1d_matches_scipy():
    g = cs.Gaussian(mean=1.5, var=2.5)
    x = np.linspace(-10.0, 12.0, 101)
    out = g.logpdf(x)
    assert out.shape == (101,)
    np.testing.assert_allclose(out, stats.norm.logpdf(x, 1.5, np.sqrt(2.5)), rtol=1e-12)
    np.testing.assert_allclose(g.logpdf(x[:, None]), out, rtol=0, atol=0)


def test_logpdf_3d_matches_scipy():
    rng = np.random.default_rng(2)
    mean = rng.standard_normal(3)
    cov = random_spd(3, rng)
    g = cs.Gaussian(mean=mean, cov=cov)
    x = mean + 3.0 * rng.standard_normal((200, 3))
    out = g.logpdf(x)
    assert out.shape == (200,)
    ref = stats.multivariate_normal.logpdf(x, mean, cov)
    np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-11)


def test_logpdf_batched_matches_scipy():
    rng = np.random.default_rng(3)
    means = rng.standard_normal((4, 3))
    covs = np.stack([random_spd(3, rng) for _ in range(4)])
    g = cs.Gaussian(mean=means, cov=covs)
    shared = 2.0 * rng.standard_normal((50, 3))
    out = g.logpdf(shared)  # (n, d): every member evaluates the same points
    assert out.shape == (4, 50)
    rows = 2.0 * rng.standard_normal((4, 50, 3))
    out_rows = g.logpdf(rows)  # (B, n, d): one row of points per member
    assert out_rows.shape == (4, 50)
    for c in range(4):
        ref = stats.multivariate_normal.logpdf(shared, means[c], covs[c])
        np.testing.assert_allclose(out[c], ref, rtol=1e-11, atol=1e-11)
        ref = stats.multivariate_normal.logpdf(rows[c], means[c], covs[c])
        np.testing.assert_allclose(out_rows[c], ref, rtol=1e-11, atol=1e-11)


def test_logpdf_batched_1d_matches_scipy():
    g = cs.Gaussian(mean=[0.0, 2.0, -1.0], var=[1.0, 0.5, 9.0])
    x = np.linspace(-5.0, 5.0, 21)
    out = g.logpdf(x)
    assert out.shape == (3, 21)
    for c, (m, v) in enumerate([(0.0, 1.0), (2.0, 0.5), (-1.0, 9.0)]):
        np.testing.assert_allclose(out[c], stats.norm.logpdf(x, m, np.sqrt(v)), rtol=1e-12)


def test_logpdf_rejects_bad_points():
    g = cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2))
    with pytest.raises(ValueError, match="x"):
        g.logpdf(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="x"):
        g.logpdf(np.zeros(5))
    with pytest.raises(ValueError, match="x"):
        g.logpdf([[0.0, np.nan]])
    batch = cs.Gaussian(mean=np.zeros((3, 2)), cov=np.eye(2))
    with pytest.raises(ValueError, match="x"):
        batch.logpdf(np.zeros((2, 4, 2)))


# -- degenerate (collapsed) models ------------------------------------------------------------


def test_logpdf_zero_variance_1d():
    g = cs.Gaussian(mean=0.3, var=0.0)
    out = g.logpdf([0.3, 0.3 + 1e-9, -4.0, 100.0])
    np.testing.assert_array_equal(out, [np.inf, -np.inf, -np.inf, -np.inf])
    batch = cs.Gaussian(mean=[0.0, 1.0], var=[0.0, 1.0])
    out = batch.logpdf([0.0, 1.0])
    assert out[0, 0] == np.inf and out[0, 1] == -np.inf
    np.testing.assert_allclose(out[1], stats.norm.logpdf([0.0, 1.0], 1.0, 1.0), rtol=1e-12)


def test_logpdf_all_zero_cov():
    mean = np.array([0.5, -1.0, 2.0])
    g = cs.Gaussian(mean=mean, cov=np.zeros((3, 3)))
    out = g.logpdf(np.vstack([mean, mean + np.array([0.0, 0.0, 1e-6]), np.zeros(3)]))
    np.testing.assert_array_equal(out, [np.inf, -np.inf, -np.inf])


def test_logpdf_axis_aligned_singular_cov():
    g = cs.Gaussian(mean=[0.1, 0.2], cov=[[0.0, 0.0], [0.0, 2.0]])
    on = np.array([[0.1, 0.2], [0.1, -3.7], [0.1, 50.0]])
    off = np.array([[0.1 + 1e-6, 0.2], [-0.1, -3.7], [3.0, 0.0]])
    np.testing.assert_array_equal(g.logpdf(on), np.inf)
    np.testing.assert_array_equal(g.logpdf(off), -np.inf)


def test_logpdf_rank_one_cov_on_and_off_its_line():
    # Support: the line mean + t v with v = (0.6, 0.8) -- not along an axis, so the
    # null direction (-0.8, 0.6) is only known to rounding. Points built as mean + t v
    # in floating point are on the support to within a few ulps and must get +inf;
    # points 1e-3 off the line (a distance far above rounding) must get -inf.
    v = np.array([0.6, 0.8])
    mean = np.array([0.3, -1.7])
    g = cs.Gaussian(mean=mean, cov=4.0 * np.outer(v, v))
    t = np.array([0.0, 1.0, -2.5, 0.1, 7.0])
    on = mean + t[:, None] * v
    off = on + 1e-3 * np.array([-0.8, 0.6])
    np.testing.assert_array_equal(g.logpdf(off), -np.inf)
    np.testing.assert_array_equal(g.logpdf(on), np.inf)


def test_logpdf_of_own_samples_of_singular_model_is_plus_inf():
    # Samples of a rank-deficient model lie on its support (x = mean + L z exactly, up to
    # rounding), so their log-density is +inf.
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 2))
    g = cs.Gaussian(mean=[1.0, -2.0, 0.5], cov=a @ a.T)  # rank 2 in 3-D
    x = g.sample(50, seed=5)
    null = np.linalg.svd(a.T)[2][-1]  # unit vector orthogonal to the column space
    assert np.abs((x - g.mean[0]) @ null).max() < 1e-12  # on the support, to rounding
    np.testing.assert_array_equal(g.logpdf(x), np.inf)


@pytest.mark.parametrize("mean_scale, spread", [(1.0, 1e-4), (1.0, 1e-8), (1e8, 1.0)])
def test_logpdf_on_support_of_collapsing_model(mean_scale, spread):
    # A collapsing chain: rank-one spread far below the size of its mean. Its own samples
    # x = fl(mean + spread * t * v) are off the support line only by the rounding of x,
    # ~eps * |mean| (2e-16 * |mean|), far below the spread; they must get +inf. A point
    # displaced by 1e-3 * spread across the line is far above rounding: -inf.
    v = np.array([0.6, 0.8])
    mean = mean_scale * np.array([1.0, -2.0])
    g = cs.Gaussian(mean=mean, cov=spread**2 * np.outer(v, v))
    x = g.sample(500, seed=3)
    np.testing.assert_array_equal(g.logpdf(x), np.inf)
    off = x + 1e-3 * spread * np.array([-0.8, 0.6])
    np.testing.assert_array_equal(g.logpdf(off), -np.inf)


def test_degenerate_logpdf_never_nan():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((4, 1))
    models = [
        cs.Gaussian(mean=0.0, var=0.0),
        cs.Gaussian(mean=np.zeros(4), cov=np.zeros((4, 4))),
        cs.Gaussian(mean=np.ones(4), cov=a @ a.T),
        cs.Gaussian(mean=np.zeros(3), cov=np.diag([1.0, 0.0, 1e-300])),
    ]
    for g in models:
        pts = np.vstack([g.mean, 1e6 * rng.standard_normal((20, g.dim)), np.zeros((1, g.dim))])
        out = g.logpdf(pts)
        assert not np.isnan(out).any()
        assert np.all(np.isinf(out))  # no density anywhere: only +-inf


# -- sampling ---------------------------------------------------------------------------------


def test_sample_shapes():
    assert cs.Gaussian(0.0, 1.0).sample(7, seed=0).shape == (7, 1)
    assert cs.Gaussian(np.zeros(3), cov=np.eye(3)).sample(7, seed=0).shape == (7, 3)
    assert cs.Gaussian(np.zeros((4, 3)), cov=np.eye(3)).sample(7, seed=0).shape == (4, 7, 3)
    assert cs.Gaussian([0.0, 1.0], [1.0, 2.0]).sample(7, seed=0).shape == (2, 7, 1)


def test_sample_reproducible_by_seed():
    g = cs.Gaussian(mean=[1.0, 2.0], cov=[[2.0, 0.5], [0.5, 1.0]])
    a = g.sample(100, seed=42)
    np.testing.assert_array_equal(a, g.sample(100, seed=42))
    b = g.sample(100, seed=43)
    assert not np.any(a == b)  # continuous draws from different streams never coincide
    g1 = cs.Gaussian(0.0, 1.0)
    np.testing.assert_array_equal(g1.sample(50, seed=7), g1.sample(50, seed=7))
    assert not np.any(g1.sample(50, seed=7) == g1.sample(50, seed=8))


def test_batched_member_uses_its_chain_stream():
    # Member c draws from chain c's stream, so member 0 of a batch reproduces a batch of one.
    rng = np.random.default_rng(8)
    means = rng.standard_normal((3, 2))
    covs = np.stack([random_spd(2, rng) for _ in range(3)])
    batch = cs.Gaussian(mean=means, cov=covs).sample(20, seed=11)
    single = cs.Gaussian(mean=means[0], cov=covs[0]).sample(20, seed=11)
    np.testing.assert_allclose(batch[0], single, rtol=0, atol=0)
    assert not np.any(batch[1] == batch[2])


def test_sample_1d_matches_scipy_norm():
    # Fixed seed: a KS p-value below 1e-3 has probability 1e-3 for a correct sampler.
    n = 1_000_000
    g = cs.Gaussian(mean=1.5, var=4.0)
    x = g.sample(n, seed=2024)[:, 0]
    assert stats.kstest(x, "norm", args=(1.5, 2.0)).pvalue > 1e-3
    # The test has power: the same sample is rejected against a 2% wrong scale (largest CDF
    # gap ~0.02 * phi(1) = 0.0048, 2.5x the 1e-3 critical value 1.95 / sqrt(n)).
    assert stats.kstest(x, "norm", args=(1.5, 2.04)).pvalue < 1e-3
    # Moments at 5 SE: SE(mean) = sd / sqrt(n); SE(var) = var * sqrt(2 / (n - 1)).
    assert abs(x.mean() - 1.5) < 5 * 2.0 / np.sqrt(n)
    assert abs(x.var(ddof=1) - 4.0) < 5 * 4.0 * np.sqrt(2 / (n - 1))


def test_sample_batched_1d_members_follow_their_own_distribution():
    params = [(0.0, 1.0), (-3.0, 0.25), (10.0, 9.0)]
    g = cs.Gaussian(mean=[p[0] for p in params], var=[p[1] for p in params])
    x = g.sample(10_000, seed=99)
    for c, (m, v) in enumerate(params):
        assert stats.kstest(x[c, :, 0], "norm", args=(m, np.sqrt(v))).pvalue > 1e-3


def test_sample_3d_moments():
    rng = np.random.default_rng(12)
    mean = rng.standard_normal(3)
    cov = random_spd(3, rng)
    n = 200_000
    x = cs.Gaussian(mean=mean, cov=cov).sample(n, seed=13)
    # Sampling distribution (x_k i.i.d. N(mu, Sigma)):
    #   xbar_i ~ N(mu_i, Sigma_ii / n)  ->  SE(xbar_i) = sqrt(Sigma_ii / n);
    #   the sample covariance C_ij is an average of (x_i - mu_i)(x_j - mu_j), whose
    #   variance for a Gaussian (Isserlis) is Sigma_ii Sigma_jj + Sigma_ij^2, so
    #   SE(C_ij) = sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / n) (the 1/n mean correction is
    #   O(1/n), negligible). Bounds at 5 SE: each of the 3 + 6 checks fails with
    #   probability 6e-7 for a correct sampler.
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * se_mean)
    diag = np.diag(cov)
    se_cov = np.sqrt((np.outer(diag, diag) + cov**2) / n)
    assert np.all(np.abs(np.cov(x, rowvar=False) - cov) < 5 * se_cov)


def test_sample_of_degenerate_models():
    x = cs.Gaussian(mean=0.7, var=0.0).sample(10, seed=0)
    np.testing.assert_array_equal(x, 0.7)
    x = cs.Gaussian(mean=[1.0, 2.0], cov=np.zeros((2, 2))).sample(10, seed=0)
    np.testing.assert_array_equal(x, np.tile([1.0, 2.0], (10, 1)))
    # Rank one along v: every point is mean + t v; t has variance 4 (cov = 4 v v^T).
    v = np.array([0.6, 0.8])
    x = cs.Gaussian(mean=[0.3, -1.7], cov=4.0 * np.outer(v, v)).sample(20_000, seed=1)
    dev = x - [0.3, -1.7]
    assert np.abs(dev @ [-0.8, 0.6]).max() < 1e-12
    assert stats.kstest(dev @ v, "norm", args=(0.0, 2.0)).pvalue > 1e-3


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(mean=np.nan, var=1.0), "mean"),
        (dict(mean=[0.0, np.inf], cov=np.eye(2)), "mean"),
        (dict(mean=0.0, var=np.inf), "var"),
        (dict(mean=0.0, var=-1.0), "var"),
        (dict(mean=[0.0, 0.0], var=[1.0, -1e-3]), "var"),
        (dict(mean=[0.0, 0.0], cov=[[1.0, np.nan], [np.nan, 1.0]]), "cov"),
        (dict(mean=[0.0, 0.0], cov=[[1.0, 2.0], [2.0, 1.0]]), "cov"),  # eigenvalue -1
        (dict(mean=[0.0, 0.0], cov=[[-1.0, 0.0], [0.0, 1.0]]), "cov"),
        (dict(mean=[0.0, 0.0], cov=[[1.0, 0.5], [0.4, 1.0]]), "cov"),  # asymmetric
        (dict(mean=[0.0, 0.0], cov=np.ones((2, 3))), "cov"),
        (dict(mean=[0.0, 0.0], cov=np.ones((2, 2, 2, 2))), "cov"),
        (dict(mean=[0.0, 0.0, 0.0], cov=np.eye(2)), "mean"),
        (dict(mean=np.zeros((3, 2)), cov=np.stack([np.eye(2)] * 2)), "batch"),
        (dict(mean=np.zeros((2, 2)), var=1.0), "mean"),
        (dict(mean=[0.0, 1.0, 2.0], var=[1.0, 2.0]), "var"),  # (3,) vs (2,)
    ],
)
def test_bad_values_raise_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        cs.Gaussian(**kwargs)


def test_psd_and_symmetry_messages_say_what_is_wrong():
    with pytest.raises(ValueError, match="cov must be positive semi-definite"):
        cs.Gaussian(mean=[0.0, 0.0], cov=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="cov must be symmetric"):
        cs.Gaussian(mean=[0.0, 0.0], cov=[[1.0, 0.5], [0.4, 1.0]])
    # PSD matrices at the edge are accepted: rank one, and a rank-one a a^T whose computed
    # eigenvalues include rounding-level negatives.
    cs.Gaussian(mean=[0.0, 0.0], cov=[[1.0, 1.0], [1.0, 1.0]])
    a = np.random.default_rng(7).standard_normal((4, 1))
    assert np.linalg.eigvalsh(a @ a.T).min() < 0.0
    cs.Gaussian(mean=np.zeros(4), cov=a @ a.T)


def test_var_and_cov_exactly_one_required():
    with pytest.raises(TypeError, match="var") as info:
        cs.Gaussian(mean=0.0, var=1.0, cov=[[1.0]])
    assert "cov" in str(info.value)
    with pytest.raises(TypeError, match="var") as info:
        cs.Gaussian(mean=0.0)
    assert "cov" in str(info.value)


def test_non_numeric_input_raises_type_error_naming_the_parameter():
    with pytest.raises(TypeError, match="mean"):
        cs.Gaussian(mean="zero", var=1.0)
    with pytest.raises(TypeError, match="var"):
        cs.Gaussian(mean=0.0, var=object())
    with pytest.raises(TypeError, match="cov"):
        cs.Gaussian(mean=[0.0], cov=[["a"]])


def test_gaussian_finite_flags_exactly_the_non_finite_members():
    """The one-sum shortcut of ``Gaussian.finite`` never hides a NaN or an infinity, and
    finite entries whose sum overflows are still finite."""
    from collapse_sim.families.gaussian import Gaussian

    mean = np.zeros((6, 2))
    cov = np.tile(np.eye(2), (6, 1, 1))
    mean[1, 0] = np.nan
    cov[3, 1, 1] = np.inf
    mean[4] = -np.inf
    got = Gaussian._from_arrays(mean, cov).finite()
    assert got.tolist() == [True, False, True, False, False, True]
    huge = Gaussian._from_arrays(np.full((3, 1), 1e308), np.full((3, 1, 1), 1e308))
    assert huge.finite().tolist() == [True, True, True]
    assert Gaussian._from_arrays(np.zeros((4, 1)), np.ones((4, 1, 1))).finite().all()
