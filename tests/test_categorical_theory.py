"""Tests for the categorical (Wright–Fisher) theory, ``collapse_sim.theory.categorical``.

Every Monte Carlo check is an independent plain-NumPy simulation with a fixed seed, compared
with a tolerance derived from the sampling distribution of the simulated estimate (stated at
each check): a correct formula fails with negligible probability, a wrong one (checked
explicitly in some tests) fails reliably. Exact checks compare with independent dense matrix
computations or with identities of the chain.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from collapse_sim.theory import categorical as theory

# Largest deviation, in standard errors, tolerated by the Monte Carlo checks. With at most a
# few hundred compared quantities per test, a correct formula fails with probability < 1e-4.
Z = 5.0


def _transition(n: int) -> np.ndarray:
    """Dense Wright–Fisher matrix, built independently of the module."""
    i = np.arange(n + 1)
    return stats.binom.pmf(i[None, :], n, i[:, None] / n)


def _exact_by_matrix_power(p, n, gens):
    """Loss / fixation probabilities from dense matrix powers (independent reference)."""
    p = np.asarray(p, dtype=float)
    i = np.arange(n + 1)
    w = stats.binom.pmf(i[None, :], n, p[:, None])
    mat = _transition(n)
    lost = np.empty((len(gens), p.size))
    fixed = np.empty_like(lost)
    for k, t in enumerate(gens):
        if t == 0:
            lost[k], fixed[k] = p == 0, p == 1
        else:
            dist = w @ np.linalg.matrix_power(mat, int(t) - 1)
            lost[k], fixed[k] = dist[:, 0], dist[:, n]
    return lost, fixed


def _binomial_tolerance(prob: np.ndarray, draws: int) -> np.ndarray:
    # Z standard errors of a simulated frequency, sqrt(P(1-P)/draws) with the theoretical
    # P; floored at Z/draws (Z events out of `draws`) for probabilities near 0 or 1, where the
    # normal approximation does not hold and a handful of events would otherwise fail.
    return Z * np.sqrt(np.maximum(prob * (1.0 - prob), 1.0 / draws) / draws)


def _gini(p: np.ndarray) -> np.ndarray:
    return 1.0 - np.sum(p * p, axis=-1)


# --------------------------------------------------------------------------------------
# replace: Gini–Simpson
# --------------------------------------------------------------------------------------


def test_gini_simpson_closed_form():
    probs = np.array([0.5, 0.25, 0.15, 0.1])
    h0 = 1.0 - np.sum(probs**2)
    got = theory.categorical_gini_simpson_mean(probs, 10, 20)
    np.testing.assert_allclose(got, h0 * 0.9 ** np.arange(21), rtol=1e-13)
    # n = 1: one token, a point mass from generation 1 on.
    np.testing.assert_array_equal(theory.categorical_gini_simpson_mean(probs, 1, 2), [h0, 0, 0])
    # array generations keep their order; huge n stays accurate ((1-1/n)^t = exp(-t/n)).
    got = theory.categorical_gini_simpson_mean(probs, 10**12, [10**7, 0, 10**7])
    np.testing.assert_allclose(got, h0 * np.exp([-1e-5, 0.0, -1e-5]), rtol=1e-12)
    # a one-category truth has index 0 for ever
    np.testing.assert_array_equal(theory.categorical_gini_simpson_mean([1.0], 5, 3), 0.0)


def test_gini_simpson_against_multinomial_simulation():
    probs = np.array([0.5, 0.25, 0.15, 0.1])
    n, gens, chains = 10, 20, 20_000
    rng = np.random.default_rng(20240611)
    p = np.broadcast_to(probs, (chains, probs.size)).copy()
    sims = [_gini(p)]
    for _ in range(gens):
        p = rng.multinomial(n, p) / n
        sims.append(_gini(p))
    sims = np.array(sims)
    expected = theory.categorical_gini_simpson_mean(probs, n, gens)
    # Tolerance: Z standard errors of each mean (sample sd / sqrt(chains)), + rounding.
    se = sims.std(axis=1, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(sims.mean(axis=1) - expected) <= Z * se + 1e-12)
    # Sharp enough to reject the rate 1 - 1/(n-1) (the "unbiased" variance rate).
    wrong = expected[-1] / 0.9**gens * (1 - 1 / (n - 1)) ** gens
    assert abs(sims[-1].mean() - wrong) > Z * se[-1]


# --------------------------------------------------------------------------------------
# replace: loss and fixation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40, 300])
def test_fixation_matches_dense_matrix_powers(n):
    p = [0.0, 0.013, 0.2, 0.5, 0.77, 1.0]
    gens = [0, 1, 2, 3, 5, 13, 50, 200, 1000, 5000]
    lost, fixed = theory.categorical_fixation_probabilities(p, n, gens)
    ref_lost, ref_fixed = _exact_by_matrix_power(p, n, gens)
    assert lost.shape == fixed.shape == (len(gens), len(p))
    # 1e-12: rounding (~1e-15) plus the documented 1e-13 closed-form tail.
    np.testing.assert_allclose(lost, ref_lost, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fixed, ref_fixed, rtol=0, atol=1e-12)


def test_fixation_first_generations_in_closed_form():
    n = 25
    p = np.array([0.01, 0.3, 0.5, 0.9])
    lost, fixed = theory.categorical_fixation_probabilities(p, n, [0, 1, 2])
    np.testing.assert_array_equal(lost[0], 0.0)
    np.testing.assert_array_equal(fixed[0], 0.0)
    # atol 1e-29: binomial rows are truncated where their tails hold < 1e-30 (documented)
    np.testing.assert_allclose(lost[1], (1 - p) ** n, rtol=1e-12, atol=1e-29)
    np.testing.assert_allclose(fixed[1], p**n, rtol=1e-12, atol=1e-29)
    # t = 2: lost = E[(1 - X_1/n)^n], X_1 ~ Binomial(n, p)
    i = np.arange(n + 1)
    w = stats.binom.pmf(i[None, :], n, p[:, None])
    np.testing.assert_allclose(lost[2], w @ (1 - i / n) ** n, rtol=1e-12)
    np.testing.assert_allclose(fixed[2], w @ (i / n) ** n, rtol=1e-12, atol=1e-29)


@pytest.mark.parametrize("n", [5, 50, 400])
def test_fixation_sum_rules_monotonicity_and_limits(n):
    p = np.array([0.0, 1 / n, 0.1, 0.37, 0.5, 1 - 1 / n, 1.0])
    gens = np.arange(0, 40 * n + 1, max(1, n // 10))
    lost, fixed = theory.categorical_fixation_probabilities(p, n, gens)
    assert np.all((lost >= 0) & (fixed >= 0))
    assert np.all(lost + fixed <= 1 + 1e-12)
    assert np.all(np.diff(lost, axis=0) >= -1e-14)
    assert np.all(np.diff(fixed, axis=0) >= -1e-14)
    # absorption is certain and X_t / n is a martingale: lost -> 1 - p, fixed -> p
    np.testing.assert_allclose(lost[-1], 1 - p, atol=1e-12)
    np.testing.assert_allclose(fixed[-1], p, atol=1e-12)
    # symmetry i -> n - i of the chain
    _, fixed_r = theory.categorical_fixation_probabilities(1 - p, n, gens)
    np.testing.assert_allclose(lost, fixed_r, atol=1e-13)


def test_fixation_shapes_duplicates_and_order():
    lost, fixed = theory.categorical_fixation_probabilities(0.3, 20, 5)
    assert lost.shape == fixed.shape == (6,)
    many, _ = theory.categorical_fixation_probabilities([0.3, 0.1, 0.3], 20, [5, 0, 2, 5])
    np.testing.assert_allclose(many[:, 0], lost[[5, 0, 2, 5]], atol=1e-15)
    np.testing.assert_array_equal(many[:, 0], many[:, 2])
    single, _ = theory.categorical_fixation_probabilities(0.3, 20, np.int64(5))
    np.testing.assert_array_equal(single, lost)
    empty, _ = theory.categorical_fixation_probabilities([0.3], 20, [])
    assert empty.shape == (0, 1)


def test_fixation_against_binomial_simulation():
    n, gens, chains = 25, 60, 50_000
    p = np.array([0.04, 0.3, 0.5])
    lost, fixed = theory.categorical_fixation_probabilities(p, n, gens)
    rng = np.random.default_rng(77)
    for j, pj in enumerate(p):
        x = np.full(chains, n * pj)  # generation-0 "count": X_1 ~ Binomial(n, p)
        sim_lost, sim_fixed = [0.0], [0.0]
        for _ in range(gens):
            x = rng.binomial(n, x / n)
            sim_lost.append(np.mean(x == 0))
            sim_fixed.append(np.mean(x == n))
        # Tolerance: Z binomial standard errors of each frequency (see _binomial_tolerance).
        assert np.all(
            np.abs(np.array(sim_lost) - lost[:, j]) <= _binomial_tolerance(lost[:, j], chains)
        )
        assert np.all(
            np.abs(np.array(sim_fixed) - fixed[:, j]) <= _binomial_tolerance(fixed[:, j], chains)
        )


def test_fixation_auto_switches_to_the_approximation():
    n = theory.EXACT_MAX_N + 1
    auto = theory.categorical_fixation_probabilities([1e-3, 0.4], n, [0, 1, 10, 5000])
    approx = theory.categorical_fixation_probabilities(
        [1e-3, 0.4], n, [0, 1, 10, 5000], method="approx"
    )
    np.testing.assert_array_equal(auto[0], approx[0])
    np.testing.assert_array_equal(auto[1], approx[1])


def test_approximation_error_small_n():
    # The approximation error is about 0.2 / n (measured: 7.78e-4 at n = 250); allow 15 %.
    n = 250
    errors = theory.measure_approximation_errors(n)
    assert errors["fixation_abs"] <= 1.15 * 0.78e-3
    assert errors["fixation_abs"] > 1e-5  # it really is an approximation


def test_approximation_error_at_exact_max_n():  # ~2 s
    # The documented bounds at n = EXACT_MAX_N (measured 1.02e-4, 3.02 generations, 3.9 %).
    errors = theory.measure_approximation_errors(theory.EXACT_MAX_N)
    assert errors["fixation_abs"] <= 1.2e-4
    assert errors["absorption_time_abs"] <= 3.1
    assert errors["absorption_time_rel"] <= 0.04


@pytest.mark.parametrize("n", [10**4, 10**6, 10**10])
def test_approximation_is_consistent_for_large_n(n):
    p = np.array([0.5 / n, 1 / n, 7 / n, 1e-3, 0.3, 0.5, 1 - 2 / n])
    gens = np.unique(np.concatenate([np.arange(60), np.geomspace(1, 10**7, 60).astype(int)]))
    lost, fixed = theory.categorical_fixation_probabilities(p, n, gens)
    assert np.all((lost >= 0) & (fixed >= 0) & (lost + fixed <= 1 + 1e-12))
    assert np.all(np.diff(lost, axis=0) >= 0) and np.all(np.diff(fixed, axis=0) >= 0)
    # rare categories: the Poisson branching limit, exact as n -> infinity; the gap is
    # O(c t / n) (0.14 t/n measured at n = 2000)
    limit = 1 - np.exp(n * p[:3] * np.log1p(-_poisson_gw_q(59)))
    np.testing.assert_allclose(1 - lost[59, :3], limit, atol=1e-12 + 0.3 * 59 / n * 7)
    if n == 10**4:  # t = 10^7 = 1000 n: absorbed
        np.testing.assert_allclose(lost[-1], 1 - p, atol=1e-12)


def test_diffusion_series_against_kimura_hypergeometric_form():
    # The outer (diffusion) part alone -- a private helper: in the public function it always
    # comes with the boundary-layer correction, which matters even in the bulk (loss goes
    # through small counts). Legendre form vs Kimura's 2F1 form, and the small-time
    # expansion below tau = 1e-3 (error ~0.04 tau^2).
    from scipy import special

    x = np.array([0.001, 0.01, 0.1, 0.45, 0.8, 0.999])
    tau = np.array([2e-4, 9e-4, 1e-3, 0.01, 0.3, 2.0])
    i = np.arange(1, 1000)[:, None, None]  # exp(-i(i+1) tau/2) < 1e-40 beyond, tau >= 2e-4
    terms = (2 * i + 1) * x * (1 - x) * special.hyp2f1(1 - i, i + 2, 2, x)
    kimura = 1 - x - np.sum(terms * np.exp(-i * (i + 1) * tau[:, None] / 2), axis=0)
    got = theory._diffusion_lost(x, 1 - 2 * x, tau)
    np.testing.assert_allclose(got[2:], kimura[2:], atol=1e-12)
    assert np.all(np.abs(got[:2] - kimura[:2]) <= 0.05 * tau[:2, None] ** 2)


def _poisson_gw_q(t: int) -> float:
    """1 - f_t(0) for f(s) = exp(s - 1), by direct iteration of q -> 1 - exp(-q)."""
    q = 1.0
    for _ in range(t):
        q = -math.expm1(-q)  # iterating s = f_t(0) instead loses ~1e-7 relative by t = 1e6
    return q


# --------------------------------------------------------------------------------------
# replace: surviving categories
# --------------------------------------------------------------------------------------


def test_surviving_mean_against_multinomial_simulation():
    probs = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02, 0.0])
    n, gens, chains = 20, 40, 20_000
    rng = np.random.default_rng(5)
    p = np.broadcast_to(probs, (chains, probs.size)).copy()
    alive = [np.count_nonzero(p, axis=1)]
    for _ in range(gens):
        p = rng.multinomial(n, p) / n
        alive.append(np.count_nonzero(p, axis=1))
    alive = np.array(alive, dtype=float)
    expected = theory.categorical_surviving_mean(probs, n, gens)
    assert expected[0] == 8.0
    # Tolerance: Z standard errors of each mean (sample sd / sqrt(chains)) + rounding.
    se = alive.std(axis=1, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(alive.mean(axis=1) - expected) <= Z * se + 1e-9)


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_surviving_mean_is_the_sum_of_survival_probabilities(method):
    probs = np.array([0.4, 0.2, 0.2, 0.1, 0.05, 0.05, 0.0])
    n, gens = 60, [0, 1, 3, 10, 100, 1000, 10**6]
    got = theory.categorical_surviving_mean(probs, n, gens, method=method)
    lost, _ = theory.categorical_fixation_probabilities(probs, n, gens, method=method)
    np.testing.assert_allclose(got, np.sum(1 - lost[:, probs > 0], axis=1), atol=1e-10)
    # permutation invariance; eventually one category is left
    perm = theory.categorical_surviving_mean(probs[::-1], n, gens, method=method)
    np.testing.assert_allclose(perm, got, atol=1e-12)
    assert abs(got[-1] - 1.0) < 1e-9


def test_surviving_mean_large_n_uses_the_approximation():
    probs = np.full(1000, 1e-3)
    got = theory.categorical_surviving_mean(probs, 10**6, [0, 1, 100, 1000])
    assert got[0] == 1000
    # each category starts with 1000 tokens: lost by t with probability ~exp(-2000/t)
    np.testing.assert_allclose(got[1:3], 1000, atol=1e-5)
    assert got[3] == pytest.approx(1000 * (1 - math.exp(-2)), rel=1e-3)


# --------------------------------------------------------------------------------------
# replace: absorption time
# --------------------------------------------------------------------------------------


def test_absorption_time_first_step_equations():
    n = 30
    p = np.arange(n + 1) / n
    tau = theory.categorical_absorption_time_mean(p, n)
    assert tau[0] == tau[-1] == 0.0
    # tau(c) = 1 + sum_j P[c, j] tau(j) on the transient counts
    rhs = 1 + _transition(n) @ tau
    np.testing.assert_allclose(tau[1:-1], rhs[1:-1], rtol=1e-12)
    # small cases by hand: n = 1 absorbs at once; n = 2, p = 1/2: tau = 1 + tau/2
    assert theory.categorical_absorption_time_mean(0.3, 1) == pytest.approx(1.0, rel=1e-14)
    assert theory.categorical_absorption_time_mean(0.5, 2) == pytest.approx(2.0, rel=1e-14)
    # a scalar gives a float
    assert isinstance(theory.categorical_absorption_time_mean(0.5, 2), float)


def test_absorption_time_is_the_sum_of_non_absorption_probabilities():
    # E[T] = sum_{t >= 0} P(T > t) = sum_t (1 - lost_t - fixed_t)
    n = 30
    p = np.array([0.02, 0.25, 0.5])
    lost, fixed = theory.categorical_fixation_probabilities(p, n, 60 * n)
    np.testing.assert_allclose(
        np.sum(1 - lost - fixed, axis=0),
        theory.categorical_absorption_time_mean(p, n),
        rtol=1e-10,
    )


def test_absorption_time_against_simulation():
    n, p, chains = 20, 0.3, 20_000
    rng = np.random.default_rng(11)
    x = np.full(chains, n * p)
    time = np.zeros(chains)
    live = np.ones(chains, dtype=bool)
    for _ in range(5000):  # P(not absorbed after 5000 = 250 n steps) ~ exp(-250)
        x[live] = rng.binomial(n, x[live] / n)
        time[live] += 1
        live &= (x > 0) & (x < n)
        if not live.any():
            break
    assert not live.any()
    expected = theory.categorical_absorption_time_mean(p, n)
    # Tolerance: Z standard errors of the mean (sample sd / sqrt(chains)).
    se = time.std(ddof=1) / np.sqrt(chains)
    assert abs(time.mean() - expected) <= Z * se
    # the diffusion value, 24.4, is rejected at n = 20 (exact 23.2)
    diffusion = theory.categorical_absorption_time_mean(p, n, method="approx")
    assert abs(time.mean() - diffusion) > Z * se


def test_absorption_time_diffusion_formula():
    p = np.array([0.0, 1e-9, 0.2, 0.5, 1.0])
    n = 10**9
    got = theory.categorical_absorption_time_mean(p, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = -2 * n * np.nan_to_num(p * np.log(p) + (1 - p) * np.log1p(-p))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert got[0] == got[-1] == 0.0


# --------------------------------------------------------------------------------------
# rare categories
# --------------------------------------------------------------------------------------


def test_rare_category_survival_exact_and_limit():
    n, c = 400, 3
    finite, limit = theory.rare_category_survival(c, n, 100)
    lost, _ = theory.categorical_fixation_probabilities(c / n, n, 100)
    np.testing.assert_allclose(finite, 1 - lost, atol=0)
    assert finite[0] == limit[0] == 1.0
    np.testing.assert_allclose(limit[1], 1 - math.exp(-c), rtol=1e-14)
    np.testing.assert_allclose(limit[7], 1 - (1 - _poisson_gw_q(7)) ** c, rtol=1e-13)
    # the limit is O(c t / n) away from the finite chain (measured below 0.3 c t / n)
    t = np.arange(101)
    assert np.all(np.abs(finite - limit) <= 0.3 * c * t / n + 1e-12)


def test_branching_limit_against_poisson_simulation():
    c, gens, chains = 4, 60, 100_000
    rng = np.random.default_rng(3)
    x = np.full(chains, c)
    sim = [1.0]
    for _ in range(gens):
        x = rng.poisson(x)
        sim.append(np.mean(x > 0))
    _, limit = theory.rare_category_survival(c, 10**12, gens)
    # Tolerance: Z binomial standard errors of each frequency.
    assert np.all(np.abs(np.array(sim) - limit) <= _binomial_tolerance(limit, chains))


def test_branching_limit_asymptotics():
    # 1/q_t = t/2 + ln(t)/6 + O(1) (Kolmogorov: q_t ~ 2 / (sigma^2 t), sigma^2 = 1), and the
    # continuation beyond the tabulated range agrees with direct iteration.
    t = np.array([10**4, 10**5, 10**6])
    _, limit = theory.rare_category_survival(1, 10**12, t)
    resid = 1 / limit - t / 2 - np.log(t) / 6
    assert abs(resid[2] - resid[1]) < 1e-3 and abs(resid[1] - resid[0]) < 1e-2
    np.testing.assert_allclose(limit[2], _poisson_gw_q(10**6), rtol=1e-9)


def test_median_survival_branching_limit():
    for c in [1, 2, 10, 137]:
        med = theory.rare_category_median_survival(c)
        _, limit = theory.rare_category_survival(c, 10**12, [int(med) - 1, int(med)])
        assert limit[0] > 0.5 >= limit[1]
    # linear growth with slope 2 / ln 2 (= 2 c / (sigma^2 ln 2) with sigma^2 = 1)
    big = theory.rare_category_median_survival(10**6)
    assert big / 10**6 == pytest.approx(2 / math.log(2), rel=1e-5)
    small = [theory.rare_category_median_survival(c) for c in (1000, 2000, 4000)]
    slopes = np.diff(small) / np.diff([1000, 2000, 4000])
    np.testing.assert_allclose(slopes, 2 / math.log(2), rtol=1e-3)


def test_median_survival_finite_chain():
    n, c = 200, 5
    med = theory.rare_category_median_survival(c, n)
    finite, _ = theory.rare_category_survival(c, n, [int(med) - 1, int(med)])
    assert finite[0] > 0.5 >= finite[1]
    # finite size slows the loss a little (binomial variance X(1 - X/n) < X)
    assert (
        theory.rare_category_median_survival(c)
        <= med
        <= 1.2 * (theory.rare_category_median_survival(c))
    )
    # the loss probability tends to 1 - c/n <= 1/2: never reached
    assert theory.rare_category_median_survival(100, 200) == math.inf
    assert theory.rare_category_median_survival(3, 4) == math.inf


# --------------------------------------------------------------------------------------
# fresh
# --------------------------------------------------------------------------------------


def test_fresh_reductions_and_recursion():
    probs = np.array([0.6, 0.3, 0.1])
    q = np.sum(probs**2)
    n = 12
    for k in range(n + 1):
        got = theory.categorical_gini_simpson_mean_fresh(probs, n, k, 30)
        s = 1 - got
        m = n - k
        # the derived recursion, re-applied step by step
        rhs = 1 / n + k * (2 * n - k - 1) * q / n**2 + m * (m - 1) * s[:-1] / n**2
        np.testing.assert_allclose(s[1:], rhs, rtol=1e-13)
        assert got[0] == pytest.approx(1 - q, rel=1e-14)
    replace = theory.categorical_gini_simpson_mean(probs, n, 30)
    np.testing.assert_allclose(
        theory.categorical_gini_simpson_mean_fresh(probs, n, 0, 30), replace, rtol=1e-13
    )
    iid = theory.categorical_gini_simpson_mean_fresh(probs, n, n, 30)
    np.testing.assert_allclose(iid[1:], (1 - 1 / n) * (1 - q), rtol=1e-14)
    # huge n: no cancellation in 1 - a
    big = theory.categorical_gini_simpson_mean_fresh(probs, 10**12, 0, [10**7])
    np.testing.assert_allclose(big, (1 - q) * np.exp(-1e-5), rtol=1e-12)


def test_fresh_against_simulation():
    probs = np.array([0.6, 0.3, 0.1])
    n, k, gens, chains = 12, 4, 30, 40_000
    rng = np.random.default_rng(123)
    p = np.broadcast_to(probs, (chains, 3)).copy()
    sims = [_gini(p)]
    for _ in range(gens):
        counts = rng.multinomial(k, probs, size=chains) + rng.multinomial(n - k, p)
        p = counts / n
        sims.append(_gini(p))
    sims = np.array(sims)
    expected = theory.categorical_gini_simpson_mean_fresh(probs, n, k, gens)
    # Tolerance: Z standard errors of each mean (sample sd / sqrt(chains)) + rounding.
    se = sims.std(axis=1, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(sims.mean(axis=1) - expected) <= Z * se + 1e-12)
    # E[p_t] = p_0 for every category (Z standard errors of each mean)
    se_p = p.std(axis=0, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(p.mean(axis=0) - probs) <= Z * se_p)
    # the fresh tokens matter: the replace prediction is rejected
    replace = theory.categorical_gini_simpson_mean(probs, n, gens)[-1]
    assert abs(sims[-1].mean() - replace) > Z * se[-1]


# --------------------------------------------------------------------------------------
# accumulate
# --------------------------------------------------------------------------------------


def test_accumulate_product_and_limit():
    probs = np.array([0.5, 0.3, 0.2])
    h0 = 1 - np.sum(probs**2)
    for n in [2, 3, 50, 10**4]:
        t = np.arange(3001)
        ref = h0 * np.concatenate([[1.0], np.cumprod(1 - 1 / (n * t[1:] ** 2.0))])
        got = theory.categorical_gini_simpson_mean_accumulate(probs, n, 3000)
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        # Euler: prod_s (1 - 1/(n s^2)) = sinc(1/sqrt(n)); the tail after 10^7 is ~1e-7 / n
        far = theory.categorical_gini_simpson_mean_accumulate(probs, n, [10**7])[0]
        assert far == pytest.approx(h0 * np.sinc(1 / np.sqrt(n)), rel=2e-7 / n)
    np.testing.assert_allclose(
        theory.categorical_gini_simpson_mean_accumulate(probs, 1, 2), [h0, 0, 0], rtol=1e-15
    )


def test_accumulate_against_simulation():
    probs = np.array([0.55, 0.3, 0.1, 0.05])
    n, gens, chains = 8, 12, 20_000
    rng = np.random.default_rng(99)
    real = rng.multinomial(n, probs, size=chains)
    pool = real.astype(float)
    p = pool / n
    sims, alive = [_gini(np.broadcast_to(probs, p.shape))], [np.full(chains, 4.0)]
    sims.append(_gini(p))
    alive.append(np.count_nonzero(p, axis=1).astype(float))
    for t in range(1, gens):
        pool = pool + rng.multinomial(n, p)  # generation t's synthetic tokens
        p = pool / ((t + 1) * n)  # generation t + 1 trains on (t + 1) n tokens
        sims.append(_gini(p))
        alive.append(np.count_nonzero(p, axis=1).astype(float))
        # no category seen in the real sample ever dies; unseen ones never appear
        assert np.array_equal(p > 0, real > 0)
    sims, alive = np.array(sims), np.array(alive)
    expected = theory.categorical_gini_simpson_mean_accumulate(probs, n, gens)
    # Tolerance: Z standard errors of each mean (sample sd / sqrt(chains)) + rounding.
    se = sims.std(axis=1, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(sims.mean(axis=1) - expected) <= Z * se + 1e-12)
    exp_alive = theory.categorical_surviving_mean_accumulate(probs, n, gens)
    se_a = alive.std(axis=1, ddof=1) / np.sqrt(chains)
    assert np.all(np.abs(alive.mean(axis=1) - exp_alive) <= Z * se_a + 1e-12)


def test_accumulate_surviving_closed_form():
    probs = np.array([0.5, 0.5, 0.0])
    np.testing.assert_allclose(
        theory.categorical_surviving_mean_accumulate(probs, 2, 3), [2, 1.5, 1.5, 1.5]
    )
    np.testing.assert_array_equal(theory.categorical_surviving_mean_accumulate([1.0], 5, 2), 1)


# --------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------

FIX = theory.categorical_fixation_probabilities


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: theory.categorical_gini_simpson_mean([0.5, 0.6], 5, 3), ValueError, "probs"),
        (lambda: theory.categorical_gini_simpson_mean([1.2, -0.2], 5, 3), ValueError, "probs"),
        (lambda: theory.categorical_gini_simpson_mean([[0.5, 0.5]], 5, 3), ValueError, "probs"),
        (lambda: theory.categorical_gini_simpson_mean([], 5, 3), ValueError, "probs"),
        (lambda: theory.categorical_gini_simpson_mean([np.nan, 1], 5, 3), ValueError, "probs"),
        (lambda: theory.categorical_gini_simpson_mean("ab", 5, 3), TypeError, "probs"),
        (lambda: theory.categorical_gini_simpson_mean(0.5, 5, 3), TypeError, "probs"),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 0, 3), ValueError, "n_samples"),
        (
            lambda: theory.categorical_gini_simpson_mean([1.0], 10**12 + 1, 3),
            ValueError,
            r"n_samples must be an int in \[1, 1000000000000\]",
        ),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 2.5, 3), TypeError, "n_samples"),
        (lambda: theory.categorical_gini_simpson_mean([1.0], True, 3), TypeError, "n_samples"),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 5, -1), ValueError, "generations"),
        (
            lambda: theory.categorical_gini_simpson_mean([1.0], 5, 10**7 + 1),
            ValueError,
            r"generations must be an int in \[0, 10000000\]",
        ),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 5, [1.5]), ValueError, "generations"),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 5, [[1]]), ValueError, "generations"),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 5, [-1]), ValueError, "generations"),
        (
            lambda: theory.categorical_gini_simpson_mean([1.0], 5, [10**7 + 1]),
            ValueError,
            "generations",
        ),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 5, "3"), TypeError, "generations"),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 5, True), TypeError, "generations"),
        (lambda: theory.categorical_gini_simpson_mean([1.0], 5, 2.0), TypeError, "generations"),
        (lambda: FIX(1.5, 5, 3), ValueError, r"p must be a number in \[0, 1\]"),
        (lambda: FIX(-0.1, 5, 3), ValueError, "p must"),
        (lambda: FIX(np.nan, 5, 3), ValueError, "p must"),
        (lambda: FIX([[0.5]], 5, 3), ValueError, "p must"),
        (lambda: FIX("a", 5, 3), TypeError, "p must"),
        (lambda: FIX(0.5, 5, 3, method="fast"), ValueError, "method"),
        (
            lambda: FIX(0.5, theory.EXACT_MAX_N + 1, 3, method="exact"),
            ValueError,
            "method='exact' needs n_samples",
        ),
        (lambda: FIX(np.full(10_000, 0.5), 5, 10_000), ValueError, r"len\(generations\)"),
        (
            lambda: theory.categorical_surviving_mean([0.5, 0.5], 5, 3, method="x"),
            ValueError,
            "method",
        ),
        (lambda: theory.categorical_absorption_time_mean(2.0, 5), ValueError, "p must"),
        (lambda: theory.categorical_absorption_time_mean(0.5, 0), ValueError, "n_samples"),
        (lambda: theory.rare_category_survival(0, 5, 3), ValueError, r"count must be .*\[1, 5\]"),
        (lambda: theory.rare_category_survival(6, 5, 3), ValueError, "count"),
        (lambda: theory.rare_category_survival(1.0, 5, 3), TypeError, "count"),
        (lambda: theory.rare_category_median_survival(0), ValueError, "count"),
        (lambda: theory.rare_category_median_survival(10**12 + 1), ValueError, "count"),
        (lambda: theory.rare_category_median_survival(3, 2), ValueError, "count"),
        (
            lambda: theory.categorical_gini_simpson_mean_fresh([1.0], 5, 6, 3),
            ValueError,
            r"fresh must be an int in \[0, 5\]",
        ),
        (lambda: theory.categorical_gini_simpson_mean_fresh([1.0], 5, -1, 3), ValueError, "fresh"),
        (lambda: theory.categorical_gini_simpson_mean_fresh([1.0], 5, 0.5, 3), TypeError, "fresh"),
        (lambda: theory.categorical_gini_simpson_mean_accumulate([2.0], 5, 3), ValueError, "probs"),
        (
            lambda: theory.categorical_surviving_mean_accumulate([1.0], -5, 3),
            ValueError,
            "n_samples",
        ),
        (
            lambda: theory.measure_approximation_errors(theory.EXACT_MAX_N + 1),
            ValueError,
            "n_samples",
        ),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_validation_happens_before_heavy_work():
    # A huge request with one bad argument fails at once (no matrix is built).
    with pytest.raises(ValueError, match="p must"):
        FIX([0.5, 1.5], theory.EXACT_MAX_N, 10**7)
    with pytest.raises(ValueError, match="len"):
        theory.categorical_fixation_probabilities(np.linspace(0, 1, 100), 2000, 10**6)
