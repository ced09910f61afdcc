"""The fast mixture metrics against the formulas they replace and independent references.

``w2`` of mixture models sums its quadrature on nested grids and stops early where the
sum has converged (``collapse_sim._kernels.mixture_metrics``); it must equal the
full-grid sum of the old implementation (:func:`old_w2`, kept here) up to rounding, and
the exact 1-D :math:`W_2` up to the quadrature error the module documents. ``kl``/``nll``
give the same bits on the serial and the chain-parallel build, and the values of
scikit-learn's ``score_samples``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import collapse_sim as cs
from collapse_sim import _mixture_metrics as mm
from collapse_sim._kernels import _dispatch
from collapse_sim.families.mixture import (
    GaussianMixture,
    _mixture_context,
    mean_logpdf,
    w2_squared_sums,
)

#: Relative agreement with the full-grid sum: rounding of 1025-term sums of quantiles
#: solved to 1e-14 (measured on the 16,000 directions of issue 17's 1000 fits: below
#: 2.6e-12 per direction, where the sum is below 1e-4 and its rounding, about
#: 2e-14 * spread * sqrt(T) absolute, is relatively largest; 6e-14 on w2).
RTOL_GRID = 1e-11


# -- slow references -----------------------------------------------------------------------

def old_w2(ctx, model) -> np.ndarray:
    """The replaced implementation: every model quantile of the full grid, then the sum."""
    directions = [None] if model.dim == 1 else list(mm.slice_directions(model.dim))
    total = np.zeros(model.batch_size)
    for u in directions:
        q = mm.project_quantiles(model, u, mm._Z)
        total += np.sum((q - ctx.truth_quantiles(u)) ** 2 * mm._ZW, axis=1)
    return np.sqrt(total if model.dim == 1 else total / mm.SLICES)


def brentq_quantiles(w, mu, sd, z) -> np.ndarray:
    """Quantiles of one 1-D mixture by scipy's brentq on the CDF / survival function."""
    out = []
    for zj in z:
        u = stats.norm.cdf(zj)
        if zj < 0:
            def g(x, u=u):
                return np.sum(w * stats.norm.cdf(x, mu, sd)) - u
        else:
            def g(x, zj=zj):
                return stats.norm.sf(zj) - np.sum(w * stats.norm.sf(x, mu, sd))
        lo, hi = np.min(mu - 40 * sd), np.max(mu + 40 * sd)
        out.append(optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps))
    return np.array(out)


def fitted_models(chains=8, generations=4, seed=0) -> GaussianMixture:
    """EM fits of issue 17's benchmark setting (2-D standard normal truth, K = 2)."""
    truth = cs.Gaussian(mean=np.zeros(2), cov=np.eye(2))
    sim = cs.simulate(truth, cs.GaussianMixtureFit(2, tol=1e-3), n_samples=1000,
                      generations=generations, chains=chains, seed=seed,
                      metrics=("variance",), progress=False, record_models=True)
    m = sim.models
    return GaussianMixture._from_arrays(m["weights"][1:].reshape(-1, 2),
                                        m["means"][1:].reshape(-1, 2, 2),
                                        m["covs"][1:].reshape(-1, 2, 2, 2))


def random_mixtures(rng, count, k, d, narrow=False) -> GaussianMixture:
    w = rng.dirichlet(np.ones(k), size=count)
    means = rng.normal(scale=2.0, size=(count, k, d))
    a = rng.normal(size=(count, k, d, d))
    covs = a @ np.swapaxes(a, 2, 3) / d + (0.05 if narrow else 0.3) * np.eye(d)
    if narrow:
        covs *= rng.uniform(0.001, 1.0, size=(count, k, 1, 1))
    return GaussianMixture(w, means, covs)


# -- w2 ------------------------------------------------------------------------------------

def test_w2_equals_the_full_grid_on_fitted_models():
    truth = cs.Gaussian(mean=np.zeros(2), cov=np.eye(2))
    model = fitted_models()
    ctx = _mixture_context(truth)
    new, old = mm.w2(ctx, model), old_w2(ctx, model)
    np.testing.assert_allclose(new, old, rtol=RTOL_GRID)
    directions = list(mm.slice_directions(2))
    _, nodes = w2_squared_sums(model, directions, ctx.truth_quantile_table(directions))
    assert np.median(nodes) <= 257  # the early exit is what these fits use


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("narrow", [False, True])
def test_w2_equals_the_full_grid_on_random_mixtures(d, narrow):
    rng = np.random.default_rng(10 * d + narrow)
    truth = cs.GaussianMixture([0.3, 0.7], [[-1.0] * d, [1.5] * d],
                               [np.eye(d), 0.5 * np.eye(d)])
    ctx = _mixture_context(truth)
    for k in (1, 2, 3):
        model = random_mixtures(rng, 40, k, d, narrow)
        new, old = mm.w2(ctx, model), old_w2(ctx, model)
        assert np.all(np.isfinite(new))
        np.testing.assert_allclose(new, old, rtol=RTOL_GRID, err_msg=f"K={k}")


def test_w2_extremes_dead_point_mass_and_far_apart_components():
    truth = cs.GaussianMixture([0.5, 0.5], [[-2.0], [2.0]], [[[1.0]], [[1.0]]])
    ctx = _mixture_context(truth)
    w = np.array([[0.5, 0.5, 0.0],     # a dead component (weight 0)
                  [0.5, 0.5, 0.0],     # the same without it, below
                  [0.4, 0.3, 0.3],     # a point mass (variance 0)
                  [0.5, 0.5, 0.0],     # far apart: 40 standard deviations
                  [0.01, 0.99, 0.0],   # a narrow, light, far component
                  [1.0, 0.0, 0.0]])    # all mass in one point
    means = np.array([[-1.0, 1.5, 30.0], [-1.0, 1.5, 0.0], [-1.0, 0.0, 1.0],
                      [-20.0, 20.0, 0.0], [8.0, 0.0, 0.0], [0.5, 0.0, 0.0]])[:, :, None]
    var = np.array([[1.0, 0.5, 7.0], [1.0, 0.5, 1.0], [1.0, 0.0, 0.3],
                    [1.0, 1.0, 1.0], [1e-4, 1.0, 1.0], [0.0, 1.0, 1.0]])[:, :, None, None]
    model = GaussianMixture(w, means, var)
    new, old = mm.w2(ctx, model), old_w2(ctx, model)
    assert np.all(np.isfinite(new))
    rough = np.arange(6) == 3
    np.testing.assert_allclose(new[~rough], old[~rough], rtol=RTOL_GRID)
    # 40 sd apart with equal weights: at z = 0 every point of the gap solves F(x) = 1/2
    # within 1e-14, so the two solvers may pick different ones: within the documented
    # quadrature error of separated components (up to 4e-3), not rounding
    np.testing.assert_allclose(new[rough], old[rough], rtol=4e-3)
    assert abs(new[0] - new[1]) <= 1e-14 * new[1]  # the dead component changes nothing
    _, nodes = w2_squared_sums(model, [None], ctx.truth_quantile_table([None]))
    # not smooth (point masses, a light narrow component, a near-jump): the full grid
    assert np.all(nodes[2:, 0] == mm.Z_POINTS)
    # W2 to a point mass: sqrt(E(X - a)^2) = sqrt(var + (mean - a)^2) up to quadrature
    assert new[5] == pytest.approx(np.sqrt(5.0 + 0.25), rel=1e-6)


def test_w2_against_brentq_quantiles_and_adaptive_quadrature():
    """Independent references in 1-D: scipy's brentq quantiles on the same grid (equal
    up to rounding), and ``quad`` of the quantile formula (the documented quadrature
    error, below 1e-8 for modes within 4 standard deviations)."""
    truth = cs.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
    ctx = _mixture_context(truth)
    w, mu, sd = np.array([0.3, 0.7]), np.array([-0.5, 1.2]), np.array([0.9, 0.6])
    model = GaussianMixture(w, mu[:, None], (sd**2)[:, None, None])
    new = mm.w2(ctx, model)[0]
    q = brentq_quantiles(w, mu, sd, mm._Z)
    t = brentq_quantiles(np.array([0.5, 0.5]), np.array([-1.0, 1.0]), np.ones(2), mm._Z)
    assert new == pytest.approx(np.sqrt(np.sum((q - t) ** 2 * mm._ZW)), rel=1e-11)

    def quantile(u, ww, mm_, ss):
        return optimize.brentq(lambda x: np.sum(ww * stats.norm.cdf(x, mm_, ss)) - u,
                               -40, 40, xtol=1e-14)

    exact, _ = integrate.quad(
        lambda u: (quantile(u, w, mu, sd) - quantile(u, np.array([0.5, 0.5]),
                                                     np.array([-1.0, 1.0]), np.ones(2))) ** 2,
        1e-12, 1 - 1e-12, limit=200, epsabs=1e-12)
    assert new == pytest.approx(np.sqrt(exact), rel=1e-7)


def test_w2_of_non_finite_models_is_nan_or_inf():
    truth = cs.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
    ctx = _mixture_context(truth)
    w = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
    means = np.array([[[np.nan], [1.0]], [[0.0], [1.0]], [[0.0], [np.nan]]])
    covs = np.array([[[[1.0]], [[1.0]]], [[[np.inf]], [[1.0]]], [[[1.0]], [[1.0]]]])
    got = mm.w2(ctx, GaussianMixture._from_arrays(w, means, covs))
    assert np.isnan(got[0]) and got[1] == np.inf
    assert np.isfinite(got[2])  # a dead component's parameters are ignored


def test_w2_squared_sums_validates_its_inputs():
    model = GaussianMixture([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    good = np.zeros((1, mm.Z_POINTS))
    with pytest.raises(ValueError, match="table"):
        w2_squared_sums(model, [None], np.zeros((1, 7)))
    with pytest.raises(ValueError, match="table"):
        w2_squared_sums(model, [None], np.full((1, mm.Z_POINTS), np.nan))
    with pytest.raises(ValueError, match="direction"):
        w2_squared_sums(model, [np.ones(2)], good)
    with pytest.raises(TypeError, match="GaussianMixture"):
        w2_squared_sums(cs.Gaussian(mean=[0.0], cov=[[1.0]]), [None], good)


# -- kl / nll ------------------------------------------------------------------------------

def _sklearn(w, means, covs) -> SkGaussianMixture:
    sk = SkGaussianMixture(len(w), covariance_type="full")
    sk.weights_, sk.means_, sk.covariances_ = w, means, covs
    sk.precisions_cholesky_ = np.linalg.inv(np.linalg.cholesky(covs)).transpose(0, 2, 1)
    return sk


def test_mean_logpdf_matches_sklearn_and_both_builds_agree(monkeypatch):
    truth = cs.Gaussian(mean=np.zeros(2), cov=np.eye(2))
    model = fitted_models(chains=12, generations=2)
    ctx = _mixture_context(truth)
    ours = mean_logpdf(model, ctx.mc).copy()
    for b in range(model.batch_size):
        sk = _sklearn(model.weights[b], model.means[b], model.covs[b])
        assert ours[b] == pytest.approx(sk.score_samples(ctx.mc).mean(), rel=1e-12)
    # 12 chains x 2000 points x 2 components is parallel work; force the other build
    fresh = GaussianMixture._from_arrays(model.weights, model.means, model.covs)
    monkeypatch.setattr(_dispatch, "PARALLEL_MIN_WORK", 10**12)
    np.testing.assert_array_equal(mean_logpdf(fresh, ctx.mc), ours)


def test_kl_and_nll_extremes():
    """A dead component changes nothing; a variance-0 component contributes no density
    (finite while another component has some); all mass on points: kl = nll = inf."""
    truth = cs.Gaussian(mean=np.zeros(2), cov=np.eye(2))
    ctx = _mixture_context(truth)
    eye = np.eye(2)
    w = np.array([[0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.6, 0.4, 0.0], [0.5, 0.5, 0.0]])
    means = np.array([[[0, 0], [1, 1], [50, 50]], [[0, 0], [1, 1], [0, 0]],
                      [[0, 0], [1, 1], [0, 0]], [[0, 0], [3, 0], [0, 0]]], dtype=float)
    covs = np.array([[eye, 2 * eye, eye], [eye, 2 * eye, eye], [eye, 0 * eye, eye],
                     [0 * eye, 0 * eye, eye]])
    model = GaussianMixture(w, means, covs)
    kl, nll = mm.kl(ctx, model), mm.nll(ctx, model)
    assert not np.any(np.isnan(kl)) and not np.any(np.isnan(nll))
    assert kl[0] == kl[1] and nll[0] == nll[1]
    # the degenerate component contributes no density: log(0.6 N(x; 0, I)) on average
    ref = np.mean(np.log(0.6) + stats.multivariate_normal(np.zeros(2), eye).logpdf(ctx.mc))
    assert nll[2] == pytest.approx(-ref, rel=1e-12)
    assert kl[3] == np.inf and nll[3] == np.inf
