"""Truncate draws the truncated Gaussian exactly on each of its routes (bounded rejection,
its inversion fallback, pure inversion), and register-resident normals are the stream of
rng.next_normal."""

import numba as nb
import numpy as np
import pytest
from scipy import stats

import collapse_sim as cs
from collapse_sim import stages
from collapse_sim._kernels import local, rng
from collapse_sim.families import gaussian as gfam
from collapse_sim.sampling import chain_streams


@nb.njit
def _local_normals(state, m):
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    out = np.empty(m)
    for i in range(m):
        out[i], s0, s1, s2, s3 = local.normal(s0, s1, s2, s3)
    return out


@nb.njit
def _array_normals(state, m):
    out = np.empty(m)
    for i in range(m):
        out[i] = rng.next_normal(state)
    return out


def test_register_resident_normals_are_the_same_stream():
    state = chain_streams(3, 1).states[0].copy()
    np.testing.assert_array_equal(_local_normals(state.copy(), 100_000),
                                  _array_normals(state.copy(), 100_000))


def _draw(k, d, tries=None, monkeypatch=None):
    if tries is not None:
        monkeypatch.setattr(gfam, "TRUNCATION_TRIES", tries)
    truth = cs.Gaussian(mean=np.zeros(d), cov=np.eye(d)) if d > 1 else cs.Gaussian(0.0, 1.0)
    return stages.draw(cs.Truncate(k), truth.broadcast(4), 5000, chain_streams(1, 4),
                       where="test")


@pytest.mark.parametrize("k, tries", [(2.0, None), (2.0, 1), (0.3, None)])
def test_one_dimensional_truncation_is_scipys_truncnorm(k, tries, monkeypatch):
    # (2, default): rejection; (2, 1 try): most points by the inversion fallback;
    # (0.3): acceptance 0.24 < 0.25, pure inversion
    x = _draw(k, 1, tries, monkeypatch).ravel()
    assert np.abs(x).max() <= k
    assert stats.kstest(x, stats.truncnorm(-k, k).cdf).pvalue > 1e-3


@pytest.mark.parametrize("k, tries", [(2.5, None), (2.5, 1), (0.8, None)])
def test_radius_in_three_dimensions_is_a_truncated_chi(k, tries, monkeypatch):
    x = _draw(k, 3, tries, monkeypatch).reshape(-1, 3)
    r2 = (x * x).sum(axis=1)
    cap = stats.chi2(3).cdf(k * k)
    assert r2.max() <= k * k * (1 + 1e-12)
    assert stats.kstest(r2, lambda t: stats.chi2(3).cdf(np.minimum(t, k * k)) / cap).pvalue \
        > 1e-3
    # directions uniform: each coordinate of x/|x| has mean 0 and variance 1/3
    u = x / np.sqrt(r2)[:, None]
    assert np.all(np.abs(u.mean(axis=0)) < 4 * np.sqrt(1 / 3 / len(u)))


@pytest.mark.parametrize("d, k", [(1, 2.0), (3, 2.5)])
def test_truncated_moments_equal_the_moments_of_the_drawn_points(d, k):
    # the fused route draws the same normals (no point needs 64 tries here), so its moments
    # are those of the points the draw route forms, up to the summation order
    from collapse_sim.sampling import Moments

    truth = cs.Gaussian(mean=np.arange(d, dtype=float),
                        cov=np.eye(d) * 2.0 + 0.3) if d > 1 else cs.Gaussian(1.0, 2.0)
    model = truth.broadcast(5)
    fused = gfam._truncated_moments(cs.Truncate(k), model, 400, chain_streams(4, 5))
    points = gfam._truncated(cs.Truncate(k), model, 400, chain_streams(4, 5))
    ref = Moments.of(points)
    np.testing.assert_allclose(fused.mean, ref.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused.scatter, ref.scatter, rtol=1e-10, atol=1e-9)


def test_a_truncated_run_takes_the_fused_route_and_keeps_its_law():
    # E[var_t]/var_0 = r^t c_k^(t-1) (theory.gaussian_truncation_variance_mean): within 4 SE
    sim = cs.simulate(cs.Gaussian(0.0, 1.0), cs.GaussianFit(), n_samples=50, generations=4,
                      chains=4000, seed=0, metrics=["variance"], generation=cs.Truncate(1.5),
                      sampling="explicit")
    v = sim.metrics["variance"]
    se = v.std(axis=1, ddof=1) / np.sqrt(v.shape[1])
    expected = cs.theory.gaussian_truncation_variance_mean(50, 4, 1.5)
    assert np.all(np.abs(v.mean(axis=1)[1:] - expected[1:]) < 4 * se[1:])
