"""Metrics against independent references: scipy, textbook formulas and Monte Carlo."""

import math

import numpy as np
import pytest
from scipy import integrate, linalg, stats

import collapse_sim as cs
from collapse_sim import metrics

NAMES = ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass")

# Documented absolute error of the d-D tail_mass estimator (metrics module docstring),
# measured by benchmarks/tail_mass_accuracy.py over model means inside and outside the
# region: below 1e-9 for d = 2, below 5e-4 for d = 3, below 1e-2 for d = 4, 5.
TAIL_ERR = {2: 1e-9, 3: 5e-4, 5: 1e-2}


def random_spd(d, rng, spread=1.5):
    """A random anisotropic covariance: random rotation, log-uniform eigenvalues."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    lam = np.exp(rng.uniform(-spread, spread, d))
    return (q * lam) @ q.T


def random_truth(d, rng):
    if d == 1:
        return cs.Gaussian(mean=rng.normal(), var=math.exp(rng.uniform(-1.5, 1.5)))
    return cs.Gaussian(mean=rng.standard_normal(d), cov=random_spd(d, rng))


def random_models(truth, count, rng):
    """A batch of anisotropic models around ``truth``: distorted covariance, shifted mean."""
    d = truth.dim
    if d == 1:
        sd = math.sqrt(truth.cov[0, 0, 0])
        mean = truth.mean[0, 0] + sd * rng.normal(0.0, 0.7, count)
        var = truth.cov[0, 0, 0] * np.exp(rng.uniform(-1.0, 1.0, count))
        return cs.Gaussian(mean=mean, var=var)
    chol = np.linalg.cholesky(truth.cov[0])
    means = truth.mean[0] + rng.normal(0.0, 0.6, (count, d)) @ chol.T
    covs = np.stack([chol @ random_spd(d, rng, spread=1.0) @ chol.T for _ in range(count)])
    return cs.Gaussian(mean=means, cov=covs)


def members(model):
    """(mean, cov) of every member as plain numpy arrays."""
    return [(model.mean[c].copy(), model.cov[c].copy()) for c in range(model.batch_size)]


def all_metrics(truth, model, heldout):
    return {
        "variance": metrics.variance(truth, model),
        "mean_shift": metrics.mean_shift(truth, model),
        "w2": metrics.w2(truth, model),
        "kl": metrics.kl(truth, model),
        "nll": metrics.nll(truth, model, heldout),
        "tail_mass": metrics.tail_mass(truth, model),
    }


def heldout_of(truth, size, seed):
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(truth.cov[0])
    return truth.mean[0] + rng.standard_normal((size, truth.dim)) @ chol.T


# -- variance, mean_shift ---------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_variance_and_mean_shift(d):
    rng = np.random.default_rng(100 + d)
    truth = random_truth(d, rng)
    model = random_models(truth, 6, rng)
    var = metrics.variance(truth, model)
    shift = metrics.mean_shift(truth, model)
    assert var.shape == shift.shape == (6,)
    for c, (m, s) in enumerate(members(model)):
        assert var[c] == pytest.approx(sum(s[i, i] for i in range(d)), rel=1e-14)
        ref = math.sqrt(sum((m[i] - truth.mean[0, i]) ** 2 for i in range(d)))
        assert shift[c] == pytest.approx(ref, rel=1e-14)


# -- w2 ---------------------------------------------------------------------------------------


def test_w2_1d_formula():
    rng = np.random.default_rng(1)
    truth = random_truth(1, rng)
    model = random_models(truth, 8, rng)
    mu, sigma = truth.mean[0, 0], math.sqrt(truth.cov[0, 0, 0])
    # W2 between N(m, s^2) and N(mu, sigma^2) is sqrt((m - mu)^2 + (s - sigma)^2).
    ref = [math.hypot(m[0] - mu, math.sqrt(s[0, 0]) - sigma) for m, s in members(model)]
    np.testing.assert_allclose(metrics.w2(truth, model), ref, rtol=1e-13)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_w2_matches_sqrtm_formula(d):
    rng = np.random.default_rng(10 + d)
    truth = random_truth(d, rng)
    model = random_models(truth, 5, rng)
    mu, sig = truth.mean[0], truth.cov[0]
    root = linalg.sqrtm(sig).real
    ref = []
    for m, s in members(model):
        cross = linalg.sqrtm(root @ s @ root).real
        ref.append(math.sqrt(np.sum((m - mu) ** 2) + np.trace(s + sig - 2.0 * cross)))
    out = metrics.w2(truth, model)
    assert out.min() > 0.1  # away from 0, where both sides lose digits to cancellation
    np.testing.assert_allclose(out, ref, rtol=1e-9)


def test_w2_is_symmetric():
    rng = np.random.default_rng(2)
    a = cs.Gaussian(mean=rng.standard_normal(3), cov=random_spd(3, rng))
    b = cs.Gaussian(mean=rng.standard_normal(3), cov=random_spd(3, rng))
    assert metrics.w2(a, b)[0] == pytest.approx(metrics.w2(b, a)[0], rel=1e-10)


# -- kl ---------------------------------------------------------------------------------------


def kl_reference(mu, sig, m, s):
    """KL(N(mu, sig) || N(m, s)) with explicit inverse and determinants."""
    d = len(mu)
    inv = np.linalg.inv(s)
    delta = m - mu
    logdet_ratio = math.log(np.linalg.det(s) / np.linalg.det(sig))
    return 0.5 * (np.trace(inv @ sig) + delta @ inv @ delta - d + logdet_ratio)


def test_kl_1d_formula():
    rng = np.random.default_rng(3)
    truth = random_truth(1, rng)
    model = random_models(truth, 8, rng)
    mu, v0 = truth.mean[0, 0], truth.cov[0, 0, 0]
    # KL(N(mu, v0) || N(m, v)) = 1/2 [v0/v + (m - mu)^2/v - 1 + log(v/v0)].
    ref = [0.5 * (v0 / s[0, 0] + (m[0] - mu) ** 2 / s[0, 0] - 1 + math.log(s[0, 0] / v0))
           for m, s in members(model)]
    np.testing.assert_allclose(metrics.kl(truth, model), ref, rtol=1e-12)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_kl_matches_direct_formula(d):
    rng = np.random.default_rng(20 + d)
    truth = random_truth(d, rng)
    model = random_models(truth, 5, rng)
    ref = [kl_reference(truth.mean[0], truth.cov[0], m, s) for m, s in members(model)]
    np.testing.assert_allclose(metrics.kl(truth, model), ref, rtol=1e-10)


def test_kl_direction_by_monte_carlo():
    # KL(truth || model) = E_truth[log p_truth(X) - log p_model(X)]. The Monte Carlo mean
    # of N i.i.d. log-ratios has SE = sd(log-ratio) / sqrt(N); 5-SE bound. The reverse
    # direction KL(model || truth) differs from it by far more than that bound.
    rng = np.random.default_rng(4)
    truth = random_truth(3, rng)
    model = random_models(truth, 1, rng)
    x = heldout_of(truth, 200_000, seed=5)
    ratio = stats.multivariate_normal.logpdf(x, truth.mean[0], truth.cov[0]) - (
        stats.multivariate_normal.logpdf(x, model.mean[0], model.cov[0])
    )
    se = ratio.std(ddof=1) / math.sqrt(x.shape[0])
    value = metrics.kl(truth, model)[0]
    assert abs(value - ratio.mean()) < 5 * se
    reverse = kl_reference(model.mean[0], model.cov[0], truth.mean[0], truth.cov[0])
    assert abs(reverse - value) > 20 * se


# -- nll --------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_nll_matches_scipy_logpdf(d):
    rng = np.random.default_rng(30 + d)
    truth = random_truth(d, rng)
    model = random_models(truth, 4, rng)
    heldout = heldout_of(truth, metrics.HELDOUT_SIZE, seed=31)
    out = metrics.nll(truth, model, heldout)
    for c, (m, s) in enumerate(members(model)):
        ref = -stats.multivariate_normal.logpdf(heldout, m, s).mean()
        assert out[c] == pytest.approx(ref, rel=1e-10)
    if d == 1:
        ref = -stats.norm.logpdf(heldout[:, 0], model.mean[0, 0], math.sqrt(model.cov[0, 0, 0]))
        assert out[0] == pytest.approx(ref.mean(), rel=1e-10)


def test_nll_rejects_heldout_of_wrong_shape():
    truth = cs.Gaussian(mean=np.zeros(2), cov=np.eye(2))
    with pytest.raises(ValueError, match="heldout"):
        metrics.nll(truth, truth, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="heldout"):
        metrics.nll(truth, truth, np.zeros(10))


# -- tail_mass --------------------------------------------------------------------------------


def test_tail_mass_1d_matches_scipy():
    rng = np.random.default_rng(5)
    truth = random_truth(1, rng)
    model = random_models(truth, 10, rng)
    mu, sigma = truth.mean[0, 0], math.sqrt(truth.cov[0, 0, 0])
    lo, hi = stats.norm.ppf(0.005, mu, sigma), stats.norm.isf(0.005, mu, sigma)
    ref = []
    for m, s in members(model):
        sd = math.sqrt(s[0, 0])
        ref.append(stats.norm.cdf(lo, m[0], sd) + stats.norm.sf(hi, m[0], sd))
    np.testing.assert_allclose(metrics.tail_mass(truth, model), ref, rtol=1e-10, atol=1e-15)


def _mc_outside(truth, mean, cov, z):
    """Fraction of the points x = mean + L z outside the truth's 99% ellipsoid.

    With W = inverse Cholesky factor of the truth (W^T W = Sigma^-1), the Mahalanobis
    distance of x is |W (x - mu)|^2 = |W L z + W (mean - mu)|^2.
    """
    whiten = np.linalg.inv(np.linalg.cholesky(truth.cov[0]))
    shift = whiten @ (mean - truth.mean[0])
    y = np.einsum("ni,ji->nj", z, whiten @ np.linalg.cholesky(cov)) + shift
    maha = np.einsum("ni,ni->n", y, y)
    return np.count_nonzero(maha > stats.chi2.ppf(0.99, truth.dim)) / z.shape[0]


@pytest.mark.parametrize("d", [2, 3, 5])
def test_tail_mass_matches_monte_carlo(d):
    rng = np.random.default_rng(40 + d)
    truth = random_truth(d, rng)
    model = random_models(truth, 4, rng)
    n = 2_000_000
    z = np.random.default_rng(41 + d).standard_normal((n, d))
    out = metrics.tail_mass(truth, model)
    for c, (m, s) in enumerate(members(model)):
        p = _mc_outside(truth, m, s, z)
        # The MC fraction is binomial: SE = sqrt(p (1 - p) / n) (~2e-4 at p = 0.1). Allow
        # 4 SE plus the documented estimator error TAIL_ERR[d].
        tol = 4 * math.sqrt(p * (1 - p) / n) + TAIL_ERR[d]
        assert abs(out[c] - p) < tol, (c, out[c], p, tol)


def test_tail_mass_2d_matches_quadrature():
    # Independent high-accuracy reference for d = 2: integrate the model density over the
    # truth ellipse, in truth-whitened polar coordinates (the ellipse is the disc of radius R).
    rng = np.random.default_rng(6)
    truth = random_truth(2, rng)
    model = random_models(truth, 3, rng)
    whiten = np.linalg.inv(np.linalg.cholesky(truth.cov[0]))
    radius = math.sqrt(stats.chi2.ppf(0.99, 2))
    out = metrics.tail_mass(truth, model)
    for c, (m, s) in enumerate(members(model)):
        b = whiten @ (m - truth.mean[0])
        prec = np.linalg.inv(whiten @ s @ whiten.T)
        norm = 1.0 / (2 * math.pi * math.sqrt(1.0 / np.linalg.det(prec)))

        def density(rho, theta, b=b, prec=prec, norm=norm):
            w = np.array([rho * math.cos(theta), rho * math.sin(theta)]) - b
            return norm * math.exp(-0.5 * w @ prec @ w) * rho

        inside, err = integrate.dblquad(density, 0.0, 2 * math.pi, 0.0, radius,
                                        epsabs=1e-13, epsrel=1e-13)
        assert err < 1e-11
        assert abs(out[c] - (1.0 - inside)) < TAIL_ERR[2]


@pytest.mark.parametrize("d", [2, 3, 5])
def test_tail_mass_isotropic_models_match_noncentral_chi2(d):
    # Model N(mu + L b, c^2 Sigma) with L L^T = Sigma: in the truth-whitened frame it is
    # N(b, c^2 I), so P(outside) = P(||b + c Z||^2 > r2) = ncx2.sf(r2 / c^2, d, |b|^2 / c^2).
    # Centred (b = 0) every direction of the estimator is exact; shifted, the direction
    # average carries the documented estimator error.
    rng = np.random.default_rng(50 + d)
    truth = random_truth(d, rng)
    chol = np.linalg.cholesky(truth.cov[0])
    r2 = stats.chi2.ppf(0.99, d)
    for scale in (0.5, 1.0, 1.3, 2.0):
        centred = cs.Gaussian(mean=truth.mean[0], cov=scale**2 * truth.cov[0])
        ref = stats.chi2.sf(r2 / scale**2, d)
        assert abs(metrics.tail_mass(truth, centred)[0] - ref) < 1e-12
        b = rng.normal(0.0, 0.7, d)
        assert b @ b < r2  # mean inside the region (see the next test for outside)
        shifted = cs.Gaussian(mean=truth.mean[0] + chol @ b, cov=scale**2 * truth.cov[0])
        ref = stats.ncx2.sf(r2 / scale**2, d, b @ b / scale**2)
        assert abs(metrics.tail_mass(truth, shifted)[0] - ref) < TAIL_ERR[d]


@pytest.mark.parametrize("d", [2, 3, 5])
def test_tail_mass_with_mean_outside_the_region(d):
    # A chain whose mean has drifted outside the truth's 99% region (whitened radius
    # |b| > r) is common in long runs. Reference as above: ncx2 for isotropic models. The
    # documented accuracy makes no exception for this case.
    rng = np.random.default_rng(55 + d)
    truth = random_truth(d, rng)
    chol = np.linalg.cholesky(truth.cov[0])
    r2 = stats.chi2.ppf(0.99, d)
    for radius in (1.01, 1.3, 2.0):
        for scale in (0.2, 0.5, 2.0):
            b = rng.standard_normal(d)
            b *= radius * math.sqrt(r2) / np.linalg.norm(b)
            model = cs.Gaussian(mean=truth.mean[0] + chol @ b, cov=scale**2 * truth.cov[0])
            ref = stats.ncx2.sf(r2 / scale**2, d, b @ b / scale**2)
            err = abs(metrics.tail_mass(truth, model)[0] - ref)
            assert err < TAIL_ERR[d], (radius, scale, err)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_tail_mass_rank_one_model_is_exact_1d_problem(d):
    # Model m + s t v, t ~ N(0, 1) (rank one): whitened, w = b + t g with b = W (m - mu), g = s W v,
    # and ||w||^2 > r2 is a quadratic inequality in t solved in closed form.
    rng = np.random.default_rng(60 + d)
    truth = random_truth(d, rng)
    whiten = np.linalg.inv(np.linalg.cholesky(truth.cov[0]))
    r2 = stats.chi2.ppf(0.99, d)
    for s in (0.3, 1.0, 2.0):
        v = rng.standard_normal(d)
        v /= np.linalg.norm(v)
        m = truth.mean[0] + 0.5 * rng.standard_normal(d)
        model = cs.Gaussian(mean=m, cov=s * s * np.outer(v, v))
        b, g = whiten @ (m - truth.mean[0]), s * (whiten @ v)
        qa, qb, qc = g @ g, b @ g, b @ b - r2
        disc = qb * qb - qa * qc
        if disc <= 0:
            ref = 1.0
        else:
            lo, hi = (-qb - math.sqrt(disc)) / qa, (-qb + math.sqrt(disc)) / qa
            ref = stats.norm.cdf(lo) + stats.norm.sf(hi)
        assert abs(metrics.tail_mass(truth, model)[0] - ref) < TAIL_ERR[d]


# -- at the truth -----------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_metrics_at_the_truth(d):
    rng = np.random.default_rng(70 + d)
    truth = random_truth(d, rng)
    heldout = heldout_of(truth, 1000, seed=71)
    out = all_metrics(truth, truth, heldout)
    assert out["variance"][0] == pytest.approx(np.trace(truth.cov[0]), rel=1e-15)
    assert out["mean_shift"][0] == 0.0
    assert abs(out["kl"][0]) < 1e-12
    assert abs(out["tail_mass"][0] - 0.01) < 1e-12
    ref = -stats.multivariate_normal.logpdf(heldout, truth.mean[0], truth.cov[0]).mean()
    assert out["nll"][0] == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_w2_at_the_truth_is_zero(d):
    # Row 0 of every simulation is the truth itself; its W2 must be 0 to rounding, not
    # sqrt(rounding) (~3e-8) as a cancellation in tr S + tr Sigma - 2 tr(...)^(1/2) leaves.
    rng = np.random.default_rng(70 + d)
    truth = random_truth(d, rng)
    assert metrics.w2(truth, truth)[0] < 1e-12


# -- degenerate models ------------------------------------------------------------------------


def test_degenerate_1d_models():
    truth = cs.Gaussian(mean=0.0, var=1.0)
    model = cs.Gaussian(mean=[0.0, 3.0, 2.5], var=[0.0, 0.0, 0.0])
    out = all_metrics(truth, model, heldout_of(truth, 500, seed=1))
    np.testing.assert_array_equal(out["kl"], np.inf)
    np.testing.assert_array_equal(out["nll"], np.inf)
    np.testing.assert_array_equal(out["variance"], 0.0)
    np.testing.assert_allclose(out["mean_shift"], [0.0, 3.0, 2.5])
    np.testing.assert_allclose(out["w2"], [1.0, math.sqrt(10.0), math.sqrt(7.25)], rtol=1e-14)
    # Point masses: at 0 and 2.5 (inside the central region |x| <= 2.5758) and 3 (outside).
    np.testing.assert_array_equal(out["tail_mass"], [0.0, 1.0, 0.0])


@pytest.mark.parametrize("d", [2, 3, 5])
def test_degenerate_dd_models(d):
    rng = np.random.default_rng(80 + d)
    truth = random_truth(d, rng)
    mu, sig = truth.mean[0], truth.cov[0]
    chol = np.linalg.cholesky(sig)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    inside = mu + chol @ np.full(d, 0.5 / math.sqrt(d))  # whitened radius 0.5
    outside = mu + chol @ np.full(d, 10.0 / math.sqrt(d))  # whitened radius 10
    means = np.stack([inside, inside, outside, mu])
    covs = np.stack([2.0 * np.outer(v, v), np.zeros((d, d)), np.zeros((d, d)), sig])
    model = cs.Gaussian(mean=means, cov=covs)  # rank 1, point in, point out, regular
    out = all_metrics(truth, model, heldout_of(truth, 500, seed=2))
    for name, value in out.items():
        assert not np.isnan(value).any(), name
    assert np.all(np.isinf(out["kl"][:3])) and np.all(out["kl"][:3] > 0)
    assert np.all(np.isinf(out["nll"][:3])) and np.all(out["nll"][:3] > 0)
    assert np.isfinite(out["kl"][3]) and np.isfinite(out["nll"][3])  # per member, not per batch
    for name in ("variance", "mean_shift", "w2", "tail_mass"):
        assert np.all(np.isfinite(out[name])), name
    np.testing.assert_allclose(out["variance"], [2.0, 0.0, 0.0, np.trace(sig)], rtol=1e-14)
    assert out["tail_mass"][1] == 0.0 and out["tail_mass"][2] == 1.0
    assert 0.0 < out["tail_mass"][0] < 1.0
    # W2 closed forms. Point mass at m: W2^2 = |m - mu|^2 + tr Sigma. Rank one S = a v v^T:
    # Sigma^(1/2) S Sigma^(1/2) = a u u^T with u = Sigma^(1/2) v, whose square root has
    # trace sqrt(a) |u| = sqrt(a v^T Sigma v), so
    # W2^2 = |m - mu|^2 + a + tr Sigma - 2 sqrt(a v^T Sigma v).
    shift2 = np.sum((inside - mu) ** 2)
    rank1 = shift2 + 2.0 + np.trace(sig) - 2.0 * math.sqrt(2.0 * v @ sig @ v)
    point_in = shift2 + np.trace(sig)
    point_out = np.sum((outside - mu) ** 2) + np.trace(sig)
    np.testing.assert_allclose(out["w2"][:3], np.sqrt([rank1, point_in, point_out]), rtol=1e-9)


def test_nearly_singular_models_never_nan():
    truth = cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2))
    model = cs.Gaussian(mean=np.zeros((3, 2)), cov=np.stack([
        np.diag([1.0, 1e-15]),  # relatively singular (below 1e-14): +inf
        np.diag([1e-300, 1e-300]),  # tiny but isotropic and regular: KL ~ 1e300, finite
        np.diag([5e-324, 1.0]),  # subnormal variance: relatively singular, +inf
    ]))
    out = all_metrics(truth, model, heldout_of(truth, 200, seed=3))
    for name, value in out.items():
        assert not np.isnan(value).any(), name
    assert out["kl"][0] == np.inf and out["kl"][2] == np.inf
    assert out["nll"][0] == np.inf and out["nll"][2] == np.inf
    # KL = 1/2 [tr(S^-1) - 2 + log det S] = 1/2 [2e300 - 2 - 1200 log 10] ~ 1e300.
    assert out["kl"][1] == pytest.approx(1e300, rel=1e-12)
    truth1 = cs.Gaussian(mean=0.0, var=1.0)
    tiny = cs.Gaussian(mean=[0.0, 0.1], var=[5e-324, 1e-300])
    out = all_metrics(truth1, tiny, heldout_of(truth1, 200, seed=4))
    for name, value in out.items():
        assert not np.isnan(value).any(), name
    # 1 / 5e-324 overflows: beyond the float range shows as +inf (module docstring).
    assert out["kl"][0] == np.inf and out["nll"][0] == np.inf
    # KL = 1/2 [(1 + 0.01) / 1e-300 - 1 + log(1e-300)] = 5.05e299.
    assert out["kl"][1] == pytest.approx(5.05e299, rel=1e-12)
    np.testing.assert_array_equal(out["tail_mass"], [0.0, 0.0])


# -- registry ---------------------------------------------------------------------------------


def test_available_metrics():
    categorical = {"entropy", "gini_simpson", "support", "tv"}  # other names are shared
    # (a superset: other families, e.g. the docs' example family, may register more names)
    assert {*NAMES, "l2", "test_error", *categorical} <= set(metrics.AVAILABLE)
    assert set(metrics.DEFAULT) == set(NAMES)
    assert metrics.REGRESSION == ("test_error",)
    assert set(metrics.DISTRIBUTION) == {*NAMES, "l2", "kl_se"}  # l2, kl_se: on request


def test_evaluate_matches_the_functions():
    rng = np.random.default_rng(9)
    truth = random_truth(3, rng)
    model = random_models(truth, 3, rng)
    heldout = heldout_of(truth, 500, seed=10)
    got = metrics.evaluate(metrics.DEFAULT, truth, model, metrics.MetricContext(truth, heldout))
    ref = all_metrics(truth, model, heldout)
    assert set(got) == set(NAMES)
    for name in NAMES:
        np.testing.assert_array_equal(got[name], ref[name])


def test_check_names_accepts_valid_selections():
    assert metrics.check_names("kl") == ("kl",)
    assert metrics.check_names(["w2", "variance"]) == ("w2", "variance")
    assert metrics.check_names(iter(NAMES)) == NAMES


@pytest.mark.parametrize(
    "names, error",
    [
        ("wasserstein", ValueError),
        (["kl", "no_such_metric"], ValueError),
        ([], ValueError),
        ((), ValueError),
        (["kl", "w2", "kl"], ValueError),
        ([1], ValueError),
        (["kl", None], ValueError),
        (3, TypeError),
        (None, TypeError),
    ],
)
def test_check_names_rejects_bad_selections(names, error):
    with pytest.raises(error, match="metric"):
        metrics.check_names(names)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_distances_of_the_truth_to_itself_are_exactly_zero(d):
    # row 0 of every result: the matrix square roots and eigen-decompositions round, so
    # without the equality short-cut W2 came out near 1e-15 and rounding decided its sign
    rng = np.random.default_rng(d)
    truth = random_truth(d, rng)
    for name in ("w2", "kl", "mean_shift"):
        value = metrics.evaluate((name,), truth, truth, metrics.MetricContext(truth, None))[name]
        assert value[0] == 0.0, name


@pytest.mark.parametrize("d", [2, 3, 4])
def test_outside_probability_does_not_depend_on_eigenvector_signs(d, monkeypatch):
    # An eigenvector is defined up to its sign and LAPACK builds choose differently; the
    # d >= 3 direction sets are not symmetric under one axis' reflection, so before the
    # signs were fixed a nearly rank-one covariance (a collapsed component: 2 of 16 points
    # plus reg_covar) moved by up to 7e-4 relative with them. Every sign pattern must now
    # give the same bits (2-D: the trapezoid angles are symmetric, the signs moved only the
    # rounding; fixed there too).
    rng = np.random.default_rng(d)
    centre = rng.normal(size=d)
    a = rng.normal(size=(d, d))
    cov0 = a @ a.T + d * np.eye(d)
    u = rng.normal(size=d)
    rank_one = np.outer(u, u) + 1e-6 * np.diag(1.0 + np.arange(d))
    b = rng.normal(size=(d, d))
    covs = np.stack([rank_one, b @ b.T + 0.1 * np.eye(d), 0.3 * cov0])
    means = centre + rng.normal(size=(3, d))
    r2 = float(stats.chi2.ppf(0.99, d))
    base = metrics.gaussian_outside(centre, cov0, r2, means, covs)
    eigh = np.linalg.eigh
    for signs in rng.choice([-1.0, 1.0], size=(6, d)):
        monkeypatch.setattr(np.linalg, "eigh",
                            lambda m, _s=signs: (eigh(m)[0], eigh(m)[1] * _s))
        flipped = metrics.gaussian_outside(centre, cov0, r2, means, covs)
        monkeypatch.setattr(np.linalg, "eigh", eigh)
        assert np.array_equal(flipped, base), (signs, flipped - base)
