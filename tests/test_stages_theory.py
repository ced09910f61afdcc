"""Closed forms of selection stages and of iterated top-p, against exact values and
simulation (issue 14)."""

import math

import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim.theory import stages as th


def test_best_of_k_moments_exact_values():
    m2, v2 = th.best_of_k_normal_moments(2)
    assert m2 == pytest.approx(1 / math.sqrt(math.pi), rel=1e-10)
    assert v2 == pytest.approx(1 - 1 / math.pi, rel=1e-10)
    assert th.best_of_k_normal_moments(3)[0] == pytest.approx(1.5 / math.sqrt(math.pi),
                                                              rel=1e-10)
    assert th.best_of_k_normal_moments(1) == pytest.approx((0.0, 1.0), abs=1e-12)


def test_best_of_k_variance_against_simulation():
    # mean over 4000 independent chains against the exact mean: within 4 standard errors
    n, g, k = 50, 5, 4
    sim = cs.simulate(cs.Gaussian(0.0, 1.0), cs.GaussianFit(), n_samples=n, generations=g,
                      chains=4000, seed=0, metrics=["variance"],
                      generation=cs.BestOfK(k, reward="value"))
    var = sim.metrics["variance"]
    se = var.std(axis=1, ddof=1) / math.sqrt(var.shape[1])
    expected = th.gaussian_best_of_k_variance_mean(n, g, k)
    assert np.all(np.abs(var.mean(axis=1)[1:] - expected[1:]) < 4 * se[1:])


@pytest.mark.slow
def test_curation_tends_to_the_exponential_tilt():
    # Curate(K) with r(x) = x keeps one of K draws with probability ~ e^x: as K -> infinity
    # the kept law is N(mu + sigma^2, sigma^2) (gaussian_tilt with beta = 1). With K = 256
    # the self-normalised choice is biased by O((e^{sigma^2} - 1)/K) ~ 1% for sigma ~ 1;
    # the Monte Carlo error of the mean over 200 chains x 1000 points is ~ 0.002. Tolerance
    # 0.04 covers both with room, and fails for any other tilt coefficient (0.9, 1.1).
    sim = cs.simulate(cs.Gaussian(0.0, 1.0), cs.GaussianFit(), n_samples=1000, generations=2,
                      chains=200, seed=1, metrics=["variance"], record_models=True,
                      generation=cs.Curate(256, reward="value"))
    mean, cov = sim.models["mean"][:, :, 0], sim.models["cov"][:, :, 0, 0]
    expected_mean, expected_var = th.gaussian_tilt(0.0, 1.0, 1.0)
    shift = np.mean((mean[2] - mean[1]) / cov[1])
    assert shift == pytest.approx(expected_mean, abs=0.04)
    assert np.mean(cov[2] / cov[1]) == pytest.approx(expected_var * 0.999, abs=0.04)


def test_top_p_iterates_shrink_to_a_fixed_point():
    probs = cs.Zipf(n_categories=30, exponent=1.0).probs[0]
    sizes, fixed = th.top_p_iterates(probs, 0.8)
    assert sizes[0] == 30 and np.all(np.diff(sizes) <= 0) and sizes[-1] == sizes[-2]
    # a fixed point: one more step keeps it
    again, same = th.top_p_iterates(fixed, 0.8)
    assert again.tolist() == [sizes[-1], sizes[-1]]
    np.testing.assert_allclose(same, fixed)
    # the simulated chains (many tokens: the Wright–Fisher drift is negligible over a few
    # generations) end on the same support
    sim = cs.simulate(cs.Categorical(probs), cs.CategoricalFit(), n_samples=10**7,
                      generations=len(sizes) + 2, chains=20, seed=2, metrics=["support"],
                      generation=cs.TopP(0.8))
    assert np.all(sim.metrics["support"][-1] == sizes[-1])


@pytest.mark.parametrize("call, match", [
    (lambda: th.top_p_iterates([0.5, -0.1], 0.9), "non-negative"),
    (lambda: th.top_p_iterates([0.5, 0.5], 0.0), "p must"),
    (lambda: th.best_of_k_normal_moments(0), "K must"),
    (lambda: th.gaussian_tilt(0.0, -1.0, 1.0), "var must"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _reference_keep_top(p, top_k, top_p):
    """numpy: rank by probability (stable: ties by id), keep a prefix, renormalise."""
    order = np.argsort(-p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1)
    live = (p > 0).sum(axis=1)
    if top_k:
        keep = np.minimum(top_k, live)
    else:
        keep = np.minimum((np.cumsum(ranked, axis=1) < top_p - 1e-12).sum(axis=1) + 1, live)
    mask_sorted = np.arange(p.shape[1])[None, :] < keep[:, None]
    mask = np.zeros_like(mask_sorted)
    np.put_along_axis(mask, order, mask_sorted, axis=1)
    q = np.where(mask, p, 0.0)
    return q / q.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("stage", [cs.TopK(1), cs.TopK(7), cs.TopK(500), cs.TopP(0.3),
                                   cs.TopP(0.9), cs.TopP(1.0)])
def test_categorical_truncation_kernel_matches_the_numpy_ranking(stage):
    from collapse_sim import stages

    rng = np.random.default_rng(5)
    counts = rng.integers(0, 4, size=(50, 40)).astype(float)   # many ties and zeros
    counts[:, 0] += 1
    probs = counts / counts.sum(axis=1, keepdims=True)
    model = cs.Categorical(probs[0])
    batch = type(model)._from_arrays(probs)
    got = stages.sampling_model(stage, batch).probs
    want = _reference_keep_top(probs, getattr(stage, "k", 0), getattr(stage, "p", 0.0))
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
