"""The categorical family: binomial sampler, sampling law, fit, bad input, engine, metrics.

Every statistical check has a false-alarm probability of at most ``ALPHA`` = 1e-6 for
a correct implementation (with the fixed seeds below it is deterministic anyway): a
chi-square statistic is compared with ``scipy.stats.chi2.isf(ALPHA, df)`` after pooling
adjacent bins until every expected count is >= 5 (so the chi-square approximation
holds), and ``m`` simultaneous z-scores with the two-sided normal quantile at
``ALPHA / m`` (Bonferroni), their standard errors taken from the exact binomial /
multinomial variances or, where only a plug-in is available, from the sample itself.
"""

import itertools
import warnings

import numba
import numpy as np
import pytest
from scipy import special, stats

import collapse_sim as cs
from collapse_sim import registry
from collapse_sim._kernels import categorical as kc
from collapse_sim.families import categorical as cat
from collapse_sim.sampling import ChainStreams, chain_streams

ALPHA = 1e-6
ZIPF = cs.Zipf(n_categories=12, exponent=1.1)
POLICIES = [cs.Replace(), cs.KeepReal(0.2), cs.Accumulate(), cs.AccumulateSubsample(),
            cs.FreshReal(0.3), cs.Augment(0.5)]
POLICY_IDS = [type(p).__name__ for p in POLICIES]


def chi2_critical(df: int) -> float:
    """Upper ALPHA quantile of the chi-square law with ``df`` degrees of freedom."""
    return float(stats.chi2.isf(ALPHA, df))


def z_critical(tests: int = 1) -> float:
    """Two-sided normal quantile for ``tests`` simultaneous z-tests at family-wise ALPHA."""
    return float(stats.norm.isf(ALPHA / (2 * tests)))


def pool_bins(observed, expected, minimum=5.0):
    """Merge adjacent bins left to right until each expected count is >= ``minimum``.

    A short last group (the right tail) joins the bin before it; the left tail is
    merged by the running sum itself.
    """
    obs, exp = [], []
    run_o = run_e = 0.0
    for o, e in zip(observed, expected, strict=True):
        run_o += o
        run_e += e
        if run_e >= minimum:
            obs.append(run_o)
            exp.append(run_e)
            run_o = run_e = 0.0
    if run_e > 0.0 or run_o > 0.0:
        obs[-1] += run_o
        exp[-1] += run_e
    return np.array(obs), np.array(exp)


def assert_gof(observed, probs, what=""):
    """Chi-square goodness of fit of the counts ``observed`` to the law ``probs``."""
    observed = np.asarray(observed, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    total = observed.sum()
    assert np.all(observed[probs == 0.0] == 0), f"{what}: draws in a probability-0 bin"
    obs, exp = pool_bins(observed, total * probs)
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    df = len(obs) - 1
    assert df >= 1, what
    assert chi2 < chi2_critical(df), f"{what}: chi2 = {chi2:.1f} on {df} df"


def homogeneity_chi2(a, b):
    """Two-sample chi-square statistic and df for discrete samples ``a``, ``b``.

    Expected cell counts are (row total x column total) / N; adjacent values are
    pooled until every expected cell is >= 5.
    """
    values = np.union1d(a, b)
    counts = np.array([[np.count_nonzero(x == v) for v in values] for x in (a, b)], float)
    share = counts.sum(axis=1).min() / counts.sum()
    cols, run = [], np.zeros(2)
    for col in counts.T:
        run = run + col
        if run.sum() * share >= 5.0:
            cols.append(run)
            run = np.zeros(2)
    if run.sum() > 0:
        cols[-1] = cols[-1] + run
    table = np.array(cols).T
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    return float(((table - expected) ** 2 / expected).sum()), table.shape[1] - 1


def run(truth=ZIPF, policy=None, fitter=None, **kw):
    kw = {"n_samples": 30, "generations": 6, "chains": 8, "seed": 5, **kw}
    return cs.simulate(truth, fitter or cs.CategoricalFit(), policy=policy or cs.Replace(),
                       **kw)


def binomial_draws(n, p, chains=64, k=20_000, seed=11):
    out = np.empty((chains, k), dtype=np.int64)
    kc.fill_binomial(chain_streams(seed, chains).states, n, p, out)
    return out


# -- 1. the binomial sampler -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("n", "p"),
    [
        (5, 0.3),       # inversion, n p = 1.5
        (30, 0.2),      # inversion, n p = 6
        (2000, 0.004),  # inversion, large n, n p = 8
        (19, 0.5),      # inversion just below the switch (n p = 9.5)
        (20, 0.5),      # BTRS at the switch (n p = 10)
        (100, 0.25),    # BTRS
        (1000, 0.3),    # BTRS, wide
        (25, 0.8),      # p > 1/2: n - Binomial(n, 0.2), inversion
        (200, 0.7),     # p > 1/2: n - Binomial(n, 0.3), BTRS
        (10**6, 0.5),   # BTRS, very wide
    ],
)
def test_binomial_sampler_matches_pmf(n, p):
    x = binomial_draws(n, p).ravel()
    assert x.min() >= 0 and x.max() <= n
    # Bins lo..hi hold all but 1e-14 of the mass, the rest goes to the two edge bins.
    lo = max(int(stats.binom.ppf(1e-14, n, p)) - 1, 0)
    hi = min(int(stats.binom.isf(1e-14, n, p)) + 1, n)
    pmf = stats.binom.pmf(np.arange(lo, hi + 1), n, p)
    pmf[0] += stats.binom.cdf(lo - 1, n, p)
    pmf[-1] += stats.binom.sf(hi, n, p)
    observed = np.bincount(np.clip(x, lo, hi) - lo, minlength=hi - lo + 1)
    assert_gof(observed, pmf / pmf.sum(), f"Binomial({n}, {p})")


@pytest.mark.parametrize(("n", "p", "value"), [(7, 0.0, 0), (7, 1.0, 7), (0, 0.3, 0),
                                               (0, 1.0, 0), (10**9, 0.0, 0),
                                               (10**9, 1.0, 10**9)])
def test_binomial_sampler_degenerate_cases(n, p, value):
    x = binomial_draws(n, p, chains=4, k=100)
    assert np.all(x == value)


def test_binomial_sampler_huge_n_moments():
    n, p = 10**9, 0.3
    x = binomial_draws(n, p, chains=64, k=2000, seed=12).ravel().astype(np.float64)
    size = x.size
    mean, var = n * p, n * p * (1 - p)
    # Sample mean: SE sqrt(var / N). Sample variance: SE var sqrt(2 / (N - 1)) (the
    # binomial's excess kurtosis (1 - 6pq)/(npq) ~ 5e-9 is negligible here).
    z_mean = (x.mean() - mean) / np.sqrt(var / size)
    z_var = (x.var(ddof=1) - var) / (var * np.sqrt(2.0 / (size - 1)))
    assert abs(z_mean) < z_critical(2) and abs(z_var) < z_critical(2), (z_mean, z_var)


def test_binomial_sampler_is_per_chain_and_thread_independent(threads):
    def draw(chains):
        return binomial_draws(40, 0.35, chains=chains, k=600, seed=13)

    threads(1)
    one = draw(40)  # 24000 >= PARALLEL_MIN_WORK elements: the parallel build
    threads(numba.config.NUMBA_NUM_THREADS)
    many = draw(40)
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(draw(3), one[:3])  # 3 chains: the serial build


# -- 2. the categorical sampling law -----------------------------------------------------------

P6 = np.array([0.05, 0.0, 0.5, 0.2, 0.15, 0.1])  # a zero in the middle: never drawn


def test_tokens_are_categorical_at_every_position():
    chains, k = 30_000, 8
    tokens = cs.Categorical(P6).draw(k, chain_streams(21, chains))
    assert tokens.dtype == np.int32 and tokens.shape == (chains, k)
    assert tokens.min() >= 0 and tokens.max() < len(P6)
    assert_gof(np.bincount(tokens.ravel(), minlength=6), P6, "all tokens")
    assert_gof(np.bincount(tokens[:, 0], minlength=6), P6, "first token")
    assert_gof(np.bincount(tokens[:, -1], minlength=6), P6, "last token")
    # Position independence: a (position x category) table against p at every position.
    # Positions are independent multinomials, so the statistics add: k (V' - 1) df.
    alive = P6 > 0
    chi2 = 0.0
    for j in range(k):
        obs = np.bincount(tokens[:, j], minlength=6)[alive]
        exp = chains * P6[alive]
        chi2 += ((obs - exp) ** 2 / exp).sum()
    assert chi2 < chi2_critical(k * (alive.sum() - 1)), chi2


def test_consecutive_tokens_are_independent():
    # The pair (token 0, token 1) of each chain must be distributed as p x p.
    chains = 60_000
    tokens = cs.Categorical(P6).draw(2, chain_streams(22, chains))
    pairs = np.bincount(tokens[:, 0] * 6 + tokens[:, 1], minlength=36)
    assert_gof(pairs, np.outer(P6, P6).ravel(), "pairs")


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("batch", [False, True], ids=["shared", "per-chain"])
def test_tokens_are_a_permutation_of_the_counts_from_the_same_state(exact, batch):
    chains, k = 50, 257
    if batch:  # one member per chain: the per-chain conditionals of a fitted batch
        probs = np.random.default_rng(0).dirichlet(np.full(9, 0.5), size=chains)
        model = cs.Categorical(probs)
    else:
        model = cs.Zipf(n_categories=9, exponent=0.8)
    tokens = model.draw(k, chain_streams(23, chains))
    counts = model.draw_statistics(k, chain_streams(23, chains), exact=exact)
    assert counts.count == k and counts.counts.dtype == np.int64
    per_row = np.array([np.bincount(row, minlength=9) for row in tokens])
    np.testing.assert_array_equal(per_row, counts.counts)
    # ... and the shuffle really permutes: the rows are not in category order.
    assert np.mean([np.all(np.diff(row) >= 0) for row in tokens]) < 0.5


def test_multinomial_counts_mean_and_covariance():
    p = np.array([0.4, 0.3, 0.2, 0.1])
    n, chains = 50, 40_000
    c = cs.Categorical(p).draw_statistics(n, chain_streams(24, chains), exact=True).counts
    assert np.all(c.sum(axis=1) == n)
    v = len(p)
    pairs = [(i, j) for i in range(v) for j in range(i, v)]
    bound = z_critical(v + len(pairs))
    # Means: SE sqrt(n p (1 - p) / N) from the binomial margins.
    z = (c.mean(axis=0) - n * p) / np.sqrt(n * p * (1 - p) / chains)
    assert np.all(np.abs(z) < bound), z
    # Covariances n p_i (delta_ij - p_j): the sample covariance is the mean of the centred
    # products d = (c_i - mean_i)(c_j - mean_j); its SE is their standard deviation / sqrt(N).
    centred = c - c.mean(axis=0)
    for i, j in pairs:
        d = centred[:, i] * centred[:, j]
        target = n * p[i] * ((i == j) - p[j])
        score = (d.sum() / (chains - 1) - target) / (d.std(ddof=1) / np.sqrt(chains))
        assert abs(score) < bound, (i, j, score)


def test_large_vocabulary_counts_and_tokens():
    v, n, chains = 10**5, 1000, 32
    zipf = cs.Zipf(n_categories=v, exponent=1.0)
    counts = zipf.draw_statistics(n, chain_streams(25, chains), exact=True).counts
    assert counts.shape == (chains, v)
    assert np.all(counts.sum(axis=1) == n) and counts.min() >= 0
    tokens = zipf.draw(n, chain_streams(25, chains))
    assert tokens.min() >= 0 and tokens.max() < v
    np.testing.assert_array_equal(np.stack([np.bincount(r, minlength=v) for r in tokens]),
                                  counts)
    # The counts, summed over chains, grouped by rank decade, against the Zipf masses.
    edges = [0, 1, 2, 10, 100, 1000, 10_000, v]
    obs = [counts[:, a:b].sum() for a, b in itertools.pairwise(edges)]
    mass = [zipf.probs[0, a:b].sum() for a, b in itertools.pairwise(edges)]
    assert_gof(obs, mass, "rank decades")


def test_sample_shapes():
    assert cs.Categorical([0.5, 0.5]).sample(7, seed=0).shape == (7,)
    batch = cs.Categorical([[0.5, 0.5], [1.0, 0.0]])
    out = batch.sample(7, seed=0)
    assert out.shape == (2, 7) and np.all(out[1] == 0)


# -- 3. CategoricalFit -------------------------------------------------------------------------

def test_fit_is_relative_frequencies():
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 7, size=(5, 37))
    fit = cs.CategoricalFit().fit(tokens, n_categories=9)
    counts = np.stack([np.bincount(r, minlength=9) for r in tokens])
    np.testing.assert_array_equal(fit.probs, counts / 37)
    assert fit.n_categories == 9 and np.all(fit.probs[:, 7:] == 0.0)
    one = cs.CategoricalFit().fit(tokens[0], n_categories=9)  # (k,) is one chain
    np.testing.assert_array_equal(one.probs, fit.probs[:1])


def test_fit_with_smoothing_kills_nothing():
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 3, size=(4, 11)).astype(np.int32)
    a, v, k = 0.5, 6, 11
    fit = cs.CategoricalFit(smoothing=a).fit(tokens, n_categories=v)
    counts = np.stack([np.bincount(r, minlength=v) for r in tokens])
    np.testing.assert_allclose(fit.probs, (counts + a) / (k + v * a), rtol=1e-15)
    assert np.all(fit.probs > 0.0)
    np.testing.assert_allclose(fit.probs.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize(
    ("tokens", "kwargs", "error", "match"),
    [
        ([[0, -1, 2]], {}, ValueError, "tokens"),
        ([[0, 3, 2]], {}, ValueError, "tokens"),
        ([[0.0, 1.0]], {}, TypeError, "tokens"),
        ([[True, False]], {}, TypeError, "tokens"),
        (np.zeros((2, 2, 2), dtype=int), {}, ValueError, "tokens"),
        (np.zeros((2, 0), dtype=int), {}, ValueError, "tokens"),
        ([[0, 1]], {"n_categories": 0}, ValueError, "n_categories"),
        ([[0, 1]], {"n_categories": 2.0}, TypeError, "n_categories"),
        ([[0, 1]], {"n_categories": True}, TypeError, "n_categories"),
    ],
)
def test_fit_bad_input(tokens, kwargs, error, match):
    kwargs = {"n_categories": 3, **kwargs}
    with pytest.raises(error, match=match):
        cs.CategoricalFit().fit(tokens, **kwargs)


@pytest.mark.parametrize(("smoothing", "error"), [(-0.1, ValueError), (float("nan"), ValueError),
                                                  (float("inf"), ValueError),
                                                  ("1", TypeError), (True, TypeError)])
def test_fit_bad_smoothing(smoothing, error):
    with pytest.raises(error, match="smoothing"):
        cs.CategoricalFit(smoothing=smoothing)


# ids are range-checked before the int32 conversion, so large ids cannot wrap onto valid ones
@pytest.mark.parametrize("bad", [2**32, 2**32 + 1, -(2**32) + 2], ids=str)
def test_fit_rejects_ids_that_wrap_in_int32(bad):
    with pytest.raises(ValueError, match="tokens"):
        cs.CategoricalFit().fit(np.array([[0, bad]], dtype=np.int64), n_categories=3)


# -- 4. constructors' bad input ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("probs", "error"),
    [
        ([0.5, -0.1, 0.6], ValueError),
        ([0.5, float("nan"), 0.5], ValueError),
        ([0.5, float("inf"), 0.5], ValueError),
        ([0.5, 0.4], ValueError),
        ([0.5, 0.5 + 20 * cat.SUM_TOLERANCE], ValueError),
        ([[0.5, 0.5], [0.5, 0.4]], ValueError),  # one bad member of a batch
        ([], ValueError),
        ([[]], ValueError),
        (np.full((1, 1, 2), 0.5), ValueError),
        (np.array(0.5), ValueError),
        ("abc", TypeError),
        ([[0.5, 0.5], [1.0]], TypeError),  # ragged
    ],
    ids=["negative", "nan", "inf", "sum 0.9", "sum beyond tolerance", "batch", "empty",
         "empty row", "3-D", "0-D", "text", "ragged"],
)
def test_categorical_bad_probs(probs, error):
    with pytest.raises(error, match="probs"):
        cs.Categorical(probs)


def test_categorical_too_many_categories():
    big = np.broadcast_to(np.float64(1.0 / (cat.MAX_CATEGORIES + 1)), (cat.MAX_CATEGORIES + 1,))
    with pytest.raises(ValueError, match="probs"):
        cs.Categorical(big)


def test_categorical_rejects_empty_batch():
    with pytest.raises(ValueError, match="probs"):
        cs.Categorical(np.zeros((0, 3)))


def test_probs_within_tolerance_are_renormalised():
    raw = np.array([0.2, 0.3, 0.5 + 0.5 * cat.SUM_TOLERANCE])
    model = cs.Categorical(raw)
    np.testing.assert_array_equal(model.probs[0], raw / raw.sum())
    assert abs(model.probs.sum() - 1.0) < 1e-15
    assert not model.probs.flags.writeable
    low = cs.Categorical([0.2, 0.3, 0.5 - 0.5 * cat.SUM_TOLERANCE])
    assert abs(low.probs.sum() - 1.0) < 1e-15


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"exponent": 0.0}, ValueError, "exponent"),
        ({"exponent": -1.0}, ValueError, "exponent"),
        ({"exponent": float("nan")}, ValueError, "exponent"),
        ({"exponent": float("inf")}, ValueError, "exponent"),
        ({"exponent": True}, TypeError, "exponent"),
        ({"exponent": "1"}, TypeError, "exponent"),
        ({"n_categories": 1}, ValueError, "n_categories"),
        ({"n_categories": 0}, ValueError, "n_categories"),
        ({"n_categories": 5.0}, TypeError, "n_categories"),
        ({"n_categories": True}, TypeError, "n_categories"),
        ({"n_categories": cat.MAX_CATEGORIES + 1}, ValueError, "n_categories"),
    ],
)
def test_zipf_bad_input(kwargs, error, match):
    kwargs = {"n_categories": 5, "exponent": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        cs.Zipf(**kwargs)


def test_zipf_law():
    z = cs.Zipf(n_categories=50, exponent=1.3)
    w = np.arange(1, 51) ** -1.3
    np.testing.assert_allclose(z.probs[0], w / w.sum(), rtol=1e-14)
    assert z.n_categories == 50 and z.batch_size == 1
    assert z.to_dict() == {"type": "Zipf", "n_categories": 50, "exponent": 1.3}


def test_to_dict_lists_small_truths_and_hashes_large_ones():
    assert cs.Categorical([0.25, 0.75]).to_dict() == {"type": "Categorical",
                                                      "probs": [[0.25, 0.75]]}
    v = cat.LIST_MAX + 1
    big = cs.Categorical(np.full(v, 1.0 / v)).to_dict()
    assert big["type"] == "Categorical" and big["n_categories"] == v
    assert len(big["sha256"]) == 64 and "probs" not in big
    assert cs.Categorical(np.full(v, 1.0 / v)).to_dict() == big
    other = np.full(v, 1.0 / v)
    other[:2] = [0.5 / v, 1.5 / v]
    assert cs.Categorical(other).to_dict()["sha256"] != big["sha256"]


# -- 5. simulate() -----------------------------------------------------------------------------

def test_incompatible_fitters_name_the_suitable_one():
    with pytest.raises(TypeError, match="CategoricalFit"):
        cs.simulate(ZIPF, cs.GaussianFit(), n_samples=10, generations=1, chains=2**31 - 1)
    with pytest.raises(TypeError, match="CategoricalFit"):
        cs.simulate(cs.Categorical([0.5, 0.5]), cs.GaussianFit(), n_samples=10,
                    generations=1)
    with pytest.raises(TypeError, match="GaussianFit"):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.CategoricalFit(), n_samples=10,
                    generations=1, chains=2**31 - 1)


@pytest.mark.parametrize(("truth", "pair"), [(ZIPF, "Zipf truth with Categorical models"),
                                             (cs.Categorical([0.5, 0.5]),
                                              "Categorical truth with Categorical models")])
def test_gaussian_metric_on_categorical_truth_names_the_pair(truth, pair):
    with pytest.raises(ValueError, match=pair):
        run(truth, metrics="variance", chains=2**31 - 1)
    with pytest.raises(ValueError, match="variance"):
        run(truth, metrics=["entropy", "variance"], chains=2**31 - 1)


def test_exact_sampling_refused_for_accumulate_subsample():
    with pytest.raises(ValueError, match="AccumulateSubsample"):
        run(policy=cs.AccumulateSubsample(), sampling="exact", chains=2**31 - 1)


def _samplings():
    for policy in POLICIES:
        for sampling in ("auto", "exact", "explicit"):
            if sampling == "exact" and isinstance(policy, cs.AccumulateSubsample):
                continue
            yield pytest.param(policy, sampling, id=f"{type(policy).__name__}-{sampling}")


@pytest.mark.parametrize(("policy", "sampling"), list(_samplings()))
def test_every_policy_runs(policy, sampling):
    n, g, chains = 30, 6, 8
    sim = run(policy=policy, sampling=sampling, n_samples=n, generations=g, chains=chains,
              record_models=True)
    exact = sampling != "explicit" and not isinstance(policy, cs.AccumulateSubsample)
    assert sim.config["sampling"] == ("exact" if exact else "explicit")
    assert sim.config["truth"] == ZIPF.to_dict()
    assert set(sim.metrics) == {"entropy", "gini_simpson", "support", "tail_mass", "tv", "kl",
                                "nll"}
    for name, arr in sim.metrics.items():
        assert arr.shape == (g + 1, chains), name
        assert not np.isnan(arr).any(), name
    probs = sim.models["probs"]
    assert probs.shape == (g + 1, chains, ZIPF.n_categories)
    np.testing.assert_array_equal(probs[0], np.broadcast_to(ZIPF.probs, probs[0].shape))
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, rtol=1e-13)
    # Each fit is counts / (training-set size): the policy composed the right number of items.
    for t in range(1, g + 1):
        size = policy.training_size(n, t)
        scaled = probs[t] * size
        np.testing.assert_allclose(scaled, np.round(scaled), atol=1e-9 * size)
    # The metrics are those of the recorded models.
    for t in (1, g):
        model = cs.Categorical(probs[t])
        np.testing.assert_allclose(sim.metrics["entropy"][t], cat.entropy(ZIPF, model),
                                   rtol=1e-12)
        np.testing.assert_array_equal(sim.metrics["support"][t], cat.support(ZIPF, model))


@pytest.mark.parametrize("sampling", ["auto", "explicit"])
@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_same_seed_is_bit_identical_and_seeds_differ(policy, sampling):
    a, b = run(policy=policy, sampling=sampling), run(policy=policy, sampling=sampling)
    c = run(policy=policy, sampling=sampling, seed=6)
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    assert not np.array_equal(a.metrics["entropy"], c.metrics["entropy"])


@pytest.mark.parametrize("sampling", ["auto", "explicit"])
@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_thread_count_does_not_change_results(threads, policy, sampling):
    # 64 chains x 300 categories (or tokens) reach PARALLEL_MIN_WORK: the parallel kernels.
    kw = {"truth": cs.Zipf(n_categories=300), "n_samples": 300, "chains": 64,
          "generations": 4, "policy": policy, "sampling": sampling}
    threads(1)
    one = run(**kw)
    threads(numba.config.NUMBA_NUM_THREADS)
    many = run(**kw)
    for name in one.metrics:
        np.testing.assert_array_equal(one.metrics[name], many.metrics[name])


@pytest.mark.parametrize("sampling", ["auto", "explicit"])
@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_chain_batching_does_not_change_results(policy, sampling):
    big = run(policy=policy, sampling=sampling, chains=9, record_models=True)
    small = run(policy=policy, sampling=sampling, chains=4, record_models=True)
    for name in big.metrics:
        np.testing.assert_array_equal(big.metrics[name][:, :4], small.metrics[name])
    np.testing.assert_array_equal(big.models["probs"][:, :4], small.models["probs"])


def test_row_zero_is_the_truth():
    p = np.array([0.3, 0.0, 0.25, 0.2, 0.1, 0.06, 0.05, 0.04, 0.0])
    truth = cs.Categorical(p)
    sim = run(truth, generations=3, chains=5)
    row = {name: arr[0] for name, arr in sim.metrics.items()}
    for name, value in row.items():
        assert np.all(value == value[0]), name  # the same for every chain
    np.testing.assert_array_equal(row["kl"], 0.0)
    np.testing.assert_array_equal(row["tv"], 0.0)
    np.testing.assert_array_equal(row["support"], 7.0)
    alive = p[p > 0]
    np.testing.assert_allclose(row["entropy"], -np.sum(alive * np.log(alive)), rtol=1e-14)
    np.testing.assert_allclose(row["gini_simpson"], 1 - np.sum(p**2), rtol=1e-14)
    # The truth's tail: 0.04 + 0.05 = 0.09 <= 0.1 (adding 0.06 would pass 0.1).
    np.testing.assert_array_equal(truth.tail_set(), [6, 7])
    np.testing.assert_allclose(row["tail_mass"], 0.09, rtol=1e-14)
    assert np.all(row["tail_mass"] <= cat.TAIL_SHARE)
    assert np.all(np.isfinite(row["nll"]))
    # A Zipf truth's tail mass is its own and at most 10%.
    zipf = run(generations=1).metrics["tail_mass"][0]
    np.testing.assert_allclose(zipf, ZIPF.probs[0, ZIPF.tail_set()].sum(), rtol=1e-14)
    assert np.all(zipf <= cat.TAIL_SHARE) and np.all(zipf > 0.05)


def test_zero_generations():
    sim = run(generations=0, record_models=True)
    assert sim.metrics["support"].shape == (1, 8)
    assert sim.models["probs"].shape == (1, 8, ZIPF.n_categories)


# -- 6. exact and explicit paths agree in distribution -----------------------------------------

SMALL = cs.Categorical([0.4, 0.25, 0.15, 0.12, 0.08])


@pytest.mark.parametrize("policy", [cs.Replace(), cs.KeepReal(0.2), cs.Accumulate(),
                                    cs.FreshReal(0.3)], ids=lambda p: type(p).__name__)
def test_exact_and_explicit_paths_agree_in_distribution(policy):
    n, g, chains = 20, 10, 4000
    kw = {"n_samples": n, "generations": g, "chains": chains, "policy": policy,
          "metrics": ["support", "gini_simpson"]}
    exact = run(SMALL, sampling="exact", seed=31, **kw).metrics
    explicit = run(SMALL, sampling="explicit", seed=32, **kw).metrics
    # support in {1..5}: two-sample chi-square homogeneity test.
    chi2, df = homogeneity_chi2(exact["support"][g], explicit["support"][g])
    assert df >= 2 and chi2 < chi2_critical(df), (chi2, df)
    # Gini–Simpson: two-sample KS. Its asymptotic critical value at level ALPHA is
    # sqrt(-log(ALPHA / 2) / 2) sqrt(2 / chains); the data are discrete (ties), which only
    # makes the test conservative.
    d = stats.ks_2samp(exact["gini_simpson"][g], explicit["gini_simpson"][g]).statistic
    assert d < np.sqrt(-np.log(ALPHA / 2) / 2) * np.sqrt(2 / chains), d


@pytest.mark.parametrize("sampling", ["exact", "explicit"])
def test_replace_gini_simpson_follows_wright_fisher(sampling):
    # Replace is Wright–Fisher: E[GS_t | q_{t-1}] = (1 - 1/n) GS(q_{t-1}), so
    # E[GS_t] = (1 - 1/n)^t GS_0 on both paths, within 5 simulated standard errors.
    n, g, chains = 20, 10, 4000
    gs = run(SMALL, sampling=sampling, seed=33, n_samples=n, generations=g, chains=chains,
             metrics="gini_simpson").metrics["gini_simpson"]
    gs0 = 1 - np.sum(SMALL.probs[0] ** 2)
    np.testing.assert_array_equal(gs[0], gs0)
    for t in range(1, g + 1):
        se = gs[t].std(ddof=1) / np.sqrt(chains)
        assert abs(gs[t].mean() - (1 - 1 / n) ** t * gs0) < 5 * se, t


# -- 7. absorbing loss, accumulation and smoothing ---------------------------------------------

@pytest.mark.parametrize("sampling", ["auto", "explicit"])
def test_support_only_shrinks_under_replace(sampling):
    sim = run(cs.Zipf(n_categories=50), sampling=sampling, n_samples=30, generations=30,
              chains=200, record_models=True)
    support = sim.metrics["support"]
    assert np.all(np.diff(support, axis=0) <= 0)
    assert np.mean(support[-1] < support[1]) > 0.5  # and it does shrink
    alive = sim.models["probs"] > 0.0
    assert not np.any(alive[1:] & ~alive[:-1])  # a dead category never comes back
    assert np.all(np.isinf(sim.metrics["kl"][1:]))  # 50 categories, 30 draws: some are lost


@pytest.mark.parametrize("policy", [cs.Accumulate(), cs.Augment(0.5)], ids=["Accumulate",
                                                                            "Augment"])
@pytest.mark.parametrize("sampling", ["auto", "explicit"])
def test_no_category_of_the_real_sample_dies_when_it_is_kept(policy, sampling):
    sim = run(cs.Zipf(n_categories=50), policy=policy, sampling=sampling, n_samples=30,
              generations=30, chains=200, record_models=True)
    support = sim.metrics["support"]
    np.testing.assert_array_equal(support[1:], np.broadcast_to(support[1], support[1:].shape))
    assert np.all(support[1] < 50)
    alive = sim.models["probs"][1:] > 0.0
    np.testing.assert_array_equal(alive, np.broadcast_to(alive[0], alive.shape))


@pytest.mark.parametrize("policy", [cs.Replace(), cs.Accumulate()], ids=["Replace",
                                                                         "Accumulate"])
def test_smoothing_keeps_every_category(policy):
    sim = run(cs.Zipf(n_categories=50), fitter=cs.CategoricalFit(smoothing=0.5), policy=policy,
              n_samples=30, generations=30, chains=100)
    np.testing.assert_array_equal(sim.metrics["support"], 50.0)
    assert np.all(np.isfinite(sim.metrics["kl"])) and np.all(np.isfinite(sim.metrics["nll"]))
    assert sim.config["fitter"] == {"type": "CategoricalFit", "smoothing": 0.5}


# -- 8. metric values --------------------------------------------------------------------------

TRUTH4 = cs.Categorical([0.5, 0.25, 0.25, 0.0])
Q = np.array([
    [0.5, 0.25, 0.25, 0.0],    # the truth
    [0.25, 0.25, 0.25, 0.25],  # mass on the truth's empty category: still finite KL
    [0.5, 0.5, 0.0, 0.0],      # a truth category died: KL = inf
    [1.0, 0.0, 0.0, 0.0],      # a point mass
    [0.4, 0.3, 0.2, 0.1],
])


def test_metric_values_by_hand():
    model = cs.Categorical(Q)
    p = TRUTH4.probs[0]
    heldout = np.array([0, 0, 1, 2, 0, 1, 0, 2], dtype=np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no log(0) or 0/0 warnings escape
        got = registry.evaluate(("entropy", "gini_simpson", "support", "tail_mass", "tv", "kl",
                                 "nll"), TRUTH4, model, registry.MetricContext(TRUTH4, heldout))
    np.testing.assert_allclose(got["entropy"], -special.xlogy(Q, Q).sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(got["entropy"][[0, 1, 3]], [1.5 * np.log(2), np.log(4), 0.0],
                               rtol=1e-14, atol=0)
    np.testing.assert_allclose(got["gini_simpson"], 1 - (Q**2).sum(axis=1), rtol=1e-14)
    np.testing.assert_array_equal(got["support"], [3, 4, 2, 1, 4])
    np.testing.assert_allclose(got["tv"], 0.5 * np.abs(Q - p).sum(axis=1), rtol=1e-14)
    # KL(p || q) = inf exactly when a category with p > 0 has q = 0.
    dead = (Q[:, p > 0] == 0).any(axis=1)
    np.testing.assert_array_equal(np.isposinf(got["kl"]), dead)
    with np.errstate(divide="ignore"):
        direct = special.xlogy(p, p).sum() - special.xlogy(p, Q).sum(axis=1)
    np.testing.assert_allclose(got["kl"], direct, rtol=1e-13, atol=1e-15)
    assert got["kl"][0] == 0.0
    # NLL: mean -log q(x) over the held-out tokens; inf once one of their categories died.
    with np.errstate(divide="ignore"):
        direct_nll = -np.log(Q[:, heldout]).mean(axis=1)
    np.testing.assert_allclose(got["nll"], direct_nll, rtol=1e-13)
    np.testing.assert_array_equal(np.isposinf(got["nll"]), [False, False, True, True, False])
    # The same held-out tokens without category 2: the third model is finite again.
    short = np.array([0, 1, 1, 0], dtype=np.int32)
    with np.errstate(divide="ignore"):
        direct_short = -np.log(Q[:, short]).mean(axis=1)
    np.testing.assert_allclose(cat.nll(TRUTH4, model, short), direct_short, rtol=1e-13)
    assert np.isfinite(direct_short[2])
    # tail_mass: every category of this truth has p >= 0.25 > 10%, so its tail is empty.
    assert TRUTH4.tail_set().size == 0
    np.testing.assert_array_equal(got["tail_mass"], 0.0)


@pytest.mark.parametrize(
    ("probs", "tail"),
    [
        ([0.05, 0.03, 0.05, 0.87], [0, 1]),            # a tie at the boundary: lower index in
        ([0.04, 0.02, 0.04, 0.9], [0, 1, 2]),          # exactly 10% (up to rounding): included
        ([0.0, 0.05, 0.95], [1]),                      # probability 0 is never in the tail
        ([0.3, 0.05, 0.05, 0.05, 0.55], [1, 2]),       # three tied, two fit
        ([0.5, 0.5], []),                              # nothing is rare enough
        ([0.02] * 5 + [0.9], [0, 1, 2, 3, 4]),         # all tied, all fit
        ([0.11, 0.89], []),
    ],
)
def test_tail_set_definition(probs, tail):
    truth = cs.Categorical(probs)
    np.testing.assert_array_equal(truth.tail_set(), tail)
    p = truth.probs[0]
    assert p[truth.tail_set()].sum() <= cat.TAIL_SHARE * (1 + 1e-12)
    model = cs.Categorical(np.stack([p, np.full(len(p), 1 / len(p))]))
    np.testing.assert_allclose(cat.tail_mass(truth, model),
                               [p[tail].sum(), len(tail) / len(p)], rtol=1e-14)


def test_metrics_are_registered_for_categorical_pairs():
    names = ("entropy", "gini_simpson", "support", "tail_mass", "tv", "kl", "nll")
    assert registry.defaults(cs.Categorical, cs.Categorical) == names
    assert registry.defaults(cs.Zipf, cs.Categorical) == names
    assert "variance" not in registry.available(cs.Zipf, cs.Categorical)
    assert registry.needs_heldout(["nll"], cs.Zipf, cs.Categorical)
    assert not registry.needs_heldout(["kl"], cs.Zipf, cs.Categorical)


def test_counts_add_and_chain_streams_copy():
    a = cat.Counts(3, np.array([[1, 2, 0]]))
    b = cat.Counts(2, np.array([[0, 1, 1]]))
    total = a + b
    assert total.count == 5
    np.testing.assert_array_equal(total.counts, [[1, 3, 1]])
    # ChainStreams copies its states: two streams from one state array draw the same.
    states = chain_streams(40, 3).states
    s1, s2 = ChainStreams(states[:, :4]), ChainStreams(states[:, :4])
    np.testing.assert_array_equal(SMALL.draw(10, s1), SMALL.draw(10, s2))
