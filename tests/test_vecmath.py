"""Vectorised special functions (collapse_sim/_kernels/vecmath.py) and the kernels built on
them: the exponential against the C library's, the mixtures' mean log-density against
scipy's ``logsumexp``, the sliced-W2 lanes and the 2-D tail mass on both builds, and the
2-D tail mass against the scalar sum it replaces."""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest
from scipy import special, stats

from collapse_sim._kernels import mixture_metrics as _mm
from collapse_sim._kernels import tails as _tails
from collapse_sim._kernels import vecmath
from collapse_sim._kernels.mixdens import mean_logpdf as logpdf_kernel
from collapse_sim.families import gaussian as G
from collapse_sim.families import mixture as mx


def ulps(got, want):
    """Distance in units in the last place of ``want`` (normal numbers)."""
    return np.abs(got - want) / np.spacing(np.abs(want))


# -- exp ----------------------------------------------------------------------------------

def test_exp_is_within_one_ulp_of_the_c_library():
    """Cody-Waite reduction and a degree-13 Taylor polynomial (remainder below 5e-18
    relative): 1 ulp of rounding at most where the value is normal; most values are the
    same bits."""
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.uniform(-1, 1, 200_000), rng.uniform(-708, 0, 200_000),
                        rng.uniform(0, 600, 200_000), np.linspace(-0.35, 0.35, 10_001)])
    out = np.empty_like(y)
    vecmath.exp(y, out)
    want = np.array([math.exp(v) for v in y])
    assert ulps(out, want).max() <= 1.0
    assert (out == want).mean() > 0.8


def test_exp_subnormal_range_and_special_values():
    y = np.linspace(-745.3, -708.0, 100_001)
    out = np.empty_like(y)
    vecmath.exp(y, out)
    want = np.array([math.exp(v) for v in y])
    # one rounding into the subnormal range: within one subnormal step of the C library
    assert np.max(np.abs(out - want)) <= 5e-324
    special_y = np.array([-np.inf, np.nan, 0.0, -0.0, -745.2, -746.0, -1e300])
    out = np.empty_like(special_y)
    vecmath.exp(special_y, out)
    assert out[0] == 0.0 and np.isnan(out[1]) and out[2] == 1.0 and out[3] == 1.0
    assert np.all(out[4:] == 0.0)


# -- mean log-density of mixtures ---------------------------------------------------------

def _mixtures(rng, count, k, d):
    w = rng.dirichlet(np.ones(k), size=count)
    means = rng.normal(scale=2.0, size=(count, k, d))
    a = rng.normal(size=(count, k, d, d))
    covs = a @ np.swapaxes(a, 2, 3) / d + 0.1 * np.eye(d)
    return mx.GaussianMixture(w, means, covs)


@pytest.mark.parametrize("k,d,m", [(1, 1, 1), (2, 2, 3), (3, 3, 257), (40, 2, 1001),
                                   (2, 2, 2000)])
def test_mean_logpdf_matches_scipy_logsumexp(k, d, m):
    """Blocks, the four interleaved products and a point count that fills neither; the
    reference is scipy's logsumexp of scipy's component log-densities. Tolerance: each
    log-density is a log-sum-exp of at most K terms whose rounding (a few ulp of the
    largest term, and 1 ulp per exponential) stays below 1e-13 of the mean's scale."""
    rng = np.random.default_rng(k * 100 + m)
    model = _mixtures(rng, 6, k, d)
    pts = rng.normal(scale=3.0, size=(m, d))
    got = mx.mean_logpdf(model, pts)
    for b in range(model.batch_size):
        comp = np.stack([np.log(model.weights[b, j]) + stats.multivariate_normal(
            model.means[b, j], model.covs[b, j]).logpdf(pts).reshape(m) for j in range(k)])
        want = special.logsumexp(comp, axis=0).mean()
        assert got[b] == pytest.approx(want, rel=1e-13, abs=1e-13)


def test_mean_logpdf_both_builds_and_no_density():
    rng = np.random.default_rng(7)
    model = _mixtures(rng, 9, 3, 2)
    w = np.ascontiguousarray(model.weights)
    means = np.ascontiguousarray(model.means)
    chols = np.ascontiguousarray(np.linalg.cholesky(model.covs))
    coords = np.ascontiguousarray(rng.normal(size=(701, 2)).T)
    serial, parallel = np.empty(9), np.empty(9)
    logpdf_kernel.serial(w, means, chols, coords, serial)
    logpdf_kernel.parallel(w, means, chols, coords, parallel)
    np.testing.assert_array_equal(serial, parallel)
    # member 0: every component degenerate (zero pivot) -> no density anywhere -> -inf;
    # member 1: one component degenerate, the others still give a finite value
    chols[0, :, 1, 1] = 0.0
    chols[1, 0, 0, 0] = 0.0
    logpdf_kernel.serial(w, means, chols, coords, serial)
    assert serial[0] == -np.inf and np.isfinite(serial[1])


# -- sliced W2 lanes ----------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 3])
def test_w2_lanes_same_bits_on_both_builds(d):
    """Directions leave the shared lanes at different levels, some are refined; point
    masses, a dead component and non-finite members included: both builds give the
    same bits."""
    rng = np.random.default_rng(d)
    model = _mixtures(rng, 24, 3, d)
    w, m, c = model.weights.copy(), model.means.copy(), model.covs.copy()
    w[1] = [1.0, 0.0, 0.0]
    c[2, 0] = 0.0  # a point mass
    m[3, 1, 0] = np.nan
    m[4, 2, 0] = np.inf
    w[5], m[5], c[5] = [0.5, 0.5, 0.0], 0.0, 0.01 * np.eye(d)  # spikes 20 apart: refined
    m[5, 0], m[5, 1] = -10.0, 10.0
    model = mx.GaussianMixture._from_arrays(w, m, c)
    directions = [None] if d == 1 else list(mx.slice_directions(d))
    mus = np.stack([m @ u if u is not None else m[:, :, 0] for u in directions], axis=1)
    sds = np.stack([np.sqrt(np.einsum("i,bkij,j->bk", u, c, u)) if u is not None
                    else np.sqrt(c[:, :, 0, 0]) for u in directions], axis=1)
    for truth, vform in ((mx.GaussianMixture([0.4, 0.6], [[-1.0] * d, [1.0] * d],
                                             [np.eye(d), 0.5 * np.eye(d)]), True),
                         (mx.GaussianMixture([1.0], [[0.5] * d], [np.eye(d)]), False)):
        ctx = mx._mixture_context(truth)
        _, tw, tmu, tsd, _ = ctx.truth_side(directions)
        var, z, dens, curv, weights, target, vf, tq, tqp = ctx.w2_grid(directions)
        assert np.all(vf == vform)  # both integration variables
        args = (np.ascontiguousarray(w), np.ascontiguousarray(mus),
                np.ascontiguousarray(sds), var, z, dens, curv, weights, target, vf, tq, tw,
                tmu, tsd, tqp)
        out_s, out_p = np.empty(mus.shape[:2]), np.empty(mus.shape[:2])
        n_s, n_p = (np.empty(mus.shape[:2], dtype=np.int64) for _ in range(2))
        _mm.w2_squared.serial(*args, out_s, n_s)
        _mm.w2_squared.parallel(*args, out_p, n_p)
        np.testing.assert_array_equal(out_s, out_p)
        np.testing.assert_array_equal(n_s, n_p)
        assert np.isnan(out_s[3]).all() and np.isinf(out_s[4]).all()
        assert np.any(n_s > mx.Z_POINTS)  # some directions were refined
    assert np.all(np.isfinite(np.delete(out_s, [3, 4], axis=0)))


# -- 2-D tail mass ------------------------------------------------------------------------

@nb.njit
def _scalar_trapezoid(beta, lam, radius2, n_trap, out):
    """The replaced scalar loop: angles and exponentials by the C library."""
    for c in range(beta.shape[0]):
        b1, b2 = beta[c, 0], beta[c, 1]
        s1 = math.sqrt(max(lam[c, 0], 0.0))
        s2 = math.sqrt(max(lam[c, 1], 0.0))
        e = b1 * b1 + b2 * b2 - radius2
        acc = 0.0
        for i in range(n_trap):
            theta = 2.0 * math.pi * (i + 0.5) / n_trap
            acc += _tails._inside_2d(b1, b2, s1, s2, theta, e)
        out[c] = 1.0 - acc / n_trap


def test_tail_mass_2d_trapezoid_equals_the_scalar_sum():
    """Centres inside the region (the trapezoid branch), degenerate and point-mass
    models, NaN: the vectorised sum equals the scalar one up to the exponentials' last
    bit (the value is 1 - a mean of terms in [0, 1]: within a few 1e-16 absolute); NaN
    where the scalar sum gives NaN; both builds the same bits."""
    rng = np.random.default_rng(5)
    n = 4000
    beta = rng.normal(size=(n, 2)) * 0.8
    lam = np.exp(rng.normal(size=(n, 2)) * 2.0)
    lam[:5] = 0.0
    lam[5:10, 1] = 0.0
    beta[10] = np.nan
    radius2 = stats.chi2.ppf(0.99, 2)
    n_trap = G.tail_directions(2)
    want = np.empty(n)
    _scalar_trapezoid(beta, lam, radius2, n_trap, want)
    nodes, weights = G._gauss_legendre()
    cos_t, sin_t = G._trapezoid_angles()
    got_s, got_p = np.empty(n), np.empty(n)
    _tails.outside_ball_2d.serial(beta, lam, radius2, cos_t, sin_t, nodes, weights, got_s)
    _tails.outside_ball_2d.parallel(beta, lam, radius2, cos_t, sin_t, nodes, weights, got_p)
    np.testing.assert_array_equal(got_s, got_p)
    inside = np.sum(beta**2, axis=1) <= radius2
    inside |= ~np.all(lam > 0, axis=1)
    np.testing.assert_array_equal(np.isnan(got_s[inside]), np.isnan(want[inside]))
    ok = inside & ~np.isnan(want)
    assert np.max(np.abs(got_s[ok] - want[ok])) <= 1e-15
