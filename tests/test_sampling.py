"""Random streams: the published generator, its distributions, and reproducibility."""

import numba
import numpy as np
import pytest
from scipy import stats

import collapse_sim as cs
from collapse_sim import sampling
from collapse_sim._kernels import moments as _moments
from collapse_sim._kernels import rng as _rng

MASK = (1 << 64) - 1


def _xoshiro256pp_reference(state, count):
    """Pure-Python xoshiro256++ transcribed from Blackman & Vigna's reference C code."""
    s = [int(x) for x in state]

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK

    out = []
    for _ in range(count):
        result = (rotl((s[0] + s[3]) & MASK, 23) + s[0]) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        out.append(result)
    return out


def test_generator_is_xoshiro256plusplus():
    streams = sampling.chain_streams(123, 3)
    start = streams.states.copy()
    raw = np.empty((3, 50), dtype=np.uint64)
    _rng.fill_raw(streams.states, raw)
    for c in range(3):
        assert [int(x) for x in raw[c]] == _xoshiro256pp_reference(start[c], 50)


def test_uniform_matches_scipy_uniform():
    u = sampling.chain_streams(1, 4).uniform(50_000).ravel()
    assert u.min() >= 0.0 and u.max() < 1.0
    # KS at the 1e-3 level: a correct generator fails this with probability 1e-3.
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_matches_scipy_norm():
    z = sampling.chain_streams(2, 8).standard_normal(25_000).ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # Anderson-Darling against the fully specified N(0, 1) weighs the tails, where collapse
    # lives; its asymptotic 0.1% critical value is 5.97 (Marsaglia & Marsaglia 2004).
    assert _anderson_darling_std_normal(z) < 5.97
    # Moments: mean SE = 1/sqrt(N); var SE = sqrt(2/N). 5-SE bounds.
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)


def test_ziggurat_layers_match_normal_probabilities():
    # 10^7 draws in 400 equal bins on [-5, 5] plus two tail bins, against exact normal
    # probabilities: a wrong ziggurat table entry (layer edge, wedge or tail) shifts the mass
    # of the bins it covers. Chi-square goodness of fit, rejected at p < 1e-4.
    z = sampling.chain_streams(17, 10).standard_normal(1_000_000).ravel()
    edges = np.concatenate([[-np.inf], np.linspace(-5, 5, 401), [np.inf]])
    counts = np.histogram(z, edges)[0]
    probs = np.diff(stats.norm.cdf(edges))
    expected = probs * z.size
    keep = expected > 5  # the chi-square approximation needs >= 5 expected per bin
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4
    # Far tail (beyond the base layer's edge r = 3.654, drawn by the exponential rejection):
    # its count is Poisson with mean N * P(|Z| > r); 5-sigma bound.
    tail_expected = z.size * 2 * stats.norm.sf(3.6541528853610088)
    assert abs(np.sum(np.abs(z) > 3.6541528853610088) - tail_expected) < 5 * np.sqrt(
        tail_expected)


def _anderson_darling_std_normal(x):
    x = np.sort(x)
    n = x.size
    i = np.arange(1, n + 1)
    logcdf = stats.norm.logcdf(x)
    logsf = stats.norm.logsf(x[::-1])
    return -n - np.mean((2 * i - 1) * (logcdf + logsf))


def test_anderson_darling_detects_a_wrong_scale():
    z = sampling.chain_streams(2, 8).standard_normal(25_000).ravel()
    assert _anderson_darling_std_normal(1.02 * z) > 5.97


def test_streams_are_independent_across_chains():
    z = sampling.chain_streams(3, 2).standard_normal(100_000)
    r = np.corrcoef(z[0, :, 0], z[1, :, 0])[0, 1]
    assert abs(r) < 5 / np.sqrt(100_000)  # SE of a null correlation is 1/sqrt(N)


def test_chain_batching_does_not_change_draws():
    full = sampling.chain_streams(7, 6).standard_normal(33, 2)
    tail = sampling.chain_streams(7, 3, first=3).standard_normal(33, 2)
    np.testing.assert_array_equal(full[3:], tail)


def test_parallel_build_equals_serial_build():
    kernels = [_rng.fill_standard_normal, _moments.normal_moments]
    for kernel in kernels:
        outs = []
        for build in (kernel.parallel, kernel.serial):
            states = sampling.chain_streams(9, 64).states
            buf = np.empty((64, 101, 2))
            if kernel is _rng.fill_standard_normal:
                build(states, buf)
                outs.append((buf, states))
            else:
                mean, scatter = np.empty((64, 2)), np.empty((64, 2, 2))
                build(states, buf, mean, scatter)
                outs.append((buf, mean, scatter, states))
        for a, b in zip(*outs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_thread_count_does_not_change_draws(threads):
    threads(1)
    one = sampling.chain_streams(5, 37).standard_normal(257)
    threads(numba.config.NUMBA_NUM_THREADS)
    many = sampling.chain_streams(5, 37).standard_normal(257)
    np.testing.assert_array_equal(one, many)


def test_seed_forms():
    a = sampling.chain_streams(np.random.SeedSequence(11), 2).uniform(5)
    b = sampling.chain_streams(11, 2).uniform(5)
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(0)
    c = sampling.chain_streams(gen, 2).uniform(5)
    d = sampling.chain_streams(gen, 2).uniform(5)
    assert not np.array_equal(c, d)  # a Generator is consumed: successive runs differ
    with pytest.raises(ValueError, match="seed"):
        sampling.chain_streams(-1, 2)
    with pytest.raises(TypeError, match="seed"):
        sampling.chain_streams("zero", 2)
    with pytest.raises(ValueError, match="chains"):
        sampling.chain_streams(0, 0)


def test_moments_path_equals_points_path():
    model = cs.Gaussian(mean=[1.0, -2.0, 0.5], cov=[[2.0, 0.3, 0.1], [0.3, 1.0, 0.2],
                                                     [0.1, 0.2, 0.5]]).broadcast(5)
    pts = sampling.gaussian_points(model, 40, sampling.chain_streams(4, 5))
    direct = sampling.Moments.of(pts)
    mom = sampling.gaussian_moments(model, 40, sampling.chain_streams(4, 5))
    np.testing.assert_allclose(mom.mean, direct.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mom.scatter, direct.scatter, rtol=1e-10, atol=1e-12)


def test_moments_addition_is_moments_of_union():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 7, 2))
    b = rng.normal(3.0, 2.0, size=(4, 12, 2))
    union = sampling.Moments.of(a) + sampling.Moments.of(b)
    direct = sampling.Moments.of(np.concatenate([a, b], axis=1))
    assert union.count == 19
    np.testing.assert_allclose(union.mean, direct.mean, rtol=1e-12)
    np.testing.assert_allclose(union.scatter, direct.scatter, rtol=1e-12)


def test_subsample_is_uniform_without_replacement():
    chains, size, k = 2000, 10, 4
    pool = np.broadcast_to(np.arange(size, dtype=float)[None, :, None], (chains, size, 1)).copy()
    picks = sampling.subsample(pool, size, k, sampling.chain_streams(0, chains))[:, :, 0]
    for row in picks[:50]:
        assert len(set(row.tolist())) == k
    counts = np.bincount(picks.astype(int).ravel(), minlength=size)
    # Each index is picked with probability k/size: chi-square goodness of fit.
    expected = np.full(size, chains * k / size)
    assert stats.chisquare(counts, expected).pvalue > 1e-3
