r"""Recursive 1-D Gaussian refits: ``simulate`` as a user calls it against numpy loops.

Setting: truth :math:`\mathcal N(0, 1)`, ``GaussianFit("mle")``, ``n`` points per
generation, :data:`CHAINS` independent chains. Every side produces the ``(G + 1,
chains)`` variances of every chain's model.

Our side, each path (``sampling="explicit"``: draw the points; default ``"exact"``: draw
the sufficient statistics) timed twice: with the **default metrics** (``metrics=None``,
what a user gets: variance, mean_shift, w2, kl, nll, tail_mass) and **kernel only**
(``metrics=("variance",)``, the work the baselines do).

Baselines (numpy alone, vectorised over chains, one ``default_rng``):

* **numpy loop** — per generation ``rng.normal`` on the ``(chains, n)`` matrix, then
  ``x.mean(axis=1)`` and ``x.var(axis=1)`` (the explicit algorithm);
* **numpy sufficient statistics** — the exact path's algorithm written in numpy: per
  generation :math:`\bar x \sim \mathcal N(\mu, \sigma^2/n)` and the scatter
  :math:`\sum (x_i - \bar x)^2 \sim \sigma^2 \chi^2_{n-1}` (``rng.normal``,
  ``rng.chisquare`` over all chains), then the MLE update
  :math:`\mu \leftarrow \bar x`, :math:`\sigma^2 \leftarrow \text{scatter}/n`.

* **the same with the default metrics** (``numpy loop + metrics``, ``numpy suffstat +
  metrics``) — the same loops computing, every generation, the six arrays ``simulate``
  returns by default (:class:`NumpyMetrics`: the closed forms of variance, mean_shift,
  w2, kl, nll and tail_mass over all chains, scipy's ``ndtr`` for the tail mass, the nll
  on 10,000 held-out draws): what a numpy user writes to get what a user of ours gets.
  :func:`check_metric_formulas` asserts that these formulas give our metrics (to 1e-12)
  on models recorded from ``simulate``.

Rows: explicit default vs numpy loop (goal 2x idle, 1.5x loaded), exact default vs numpy
sufficient statistics (goal 3x) and vs the numpy loop, each with its kernel-only line;
like for like, each path with its default metrics against the numpy side computing the
same metrics (same goals);
the **metric overhead** of each path, ``time(default) / time(variance only) - 1`` per
round (goal <= 50%); normal draws per second inside ``simulate`` against
``Generator.standard_normal``; the first call's compile / cache-load time.

Timing: every job once per round (the four short ones, the exact path's two and the
numpy sufficient statistics' two, :data:`SHORT_REPEATS` times in turn, a round's time
their mean), for at least :data:`ROUNDS` rounds, the sequence's start rotated each
round; times are medians over rounds and each ratio is the median of the per-round
ratios, with their min–max in the note. Compile time is excluded by
warm-up calls at the benchmark's sizes. Under load (:func:`run_loaded`): the same while
one CPU-bound background process runs (started and stopped here).

Correctness (``AssertionError`` otherwise), at the last generation ``G`` (tolerances
from the exact sampling distribution, see :func:`check`):

* the mean over chains of :math:`\log\sigma^2_G` agrees between every pair of sides and
  with its exact expectation within :data:`Z_MAX` standard errors;
* the mean over chains of :math:`\sigma^2_G` agrees between every pair of sides and with
  :math:`((n-1)/n)^G` within :data:`Z_CHEBYSHEV` of its exact standard errors.

Standalone: ``python -m benchmarks.bench_gaussian [--quick] [--repeats R]
[--load {off,on,both}]``.
"""

from __future__ import annotations

import functools
import math
import os
import time

import numpy as np
from scipy import special

import collapse_sim as cs
from collapse_sim._kernels._dispatch import PARALLEL_MIN_WORK

from ._report import suite_main, under_load
from .bench_categorical import interleaved, per_round, ratio_stats

CHAINS, GENERATIONS, N = 1000, 1000, 100
QUICK_SIZES = (200, 200, 100)
#: Minimum number of interleaved rounds (full mode; quick mode runs 2).
ROUNDS = 5
#: Largest accepted |difference| of mean log-variances, in standard errors. The log
#: variance is a sum of G iid terms, so its chain mean is close to normal: 5 SE is a
#: false alarm with probability < 1e-6 per comparison.
Z_MAX = 5.0
#: The same for the mean variance, whose law is heavy-tailed at large G (no CLT to lean
#: on at 1000 chains): by Chebyshev's inequality, 10 exact SE has probability <= 1%.
Z_CHEBYSHEV = 10.0
GOAL_EXPLICIT, GOAL_EXPLICIT_LOADED, GOAL_EXACT, GOAL_OVERHEAD = 2.0, 1.5, 3.0, 0.5
#: The exact path's calls and the numpy sufficient-statistics ones take 10-90 ms: each
#: runs this many times a round (the four in turn, again and again) and the round's time
#: is their mean, so that one call's noise (a page fault burst, a timer interrupt) is
#: not a round's (with one call a round, the exact path's overhead spread over 55-338%).
SHORT_REPEATS = 5

# ---------------------------------------------------------------------------------------------
# the sides


def numpy_loop(chains: int, generations: int, n: int, seed: int = 0,
               metrics: bool = False) -> np.ndarray:
    """Recursive MLE Gaussian refits with numpy: returns the ``(G + 1, chains)`` variances
    (``metrics``: also computes and keeps :class:`NumpyMetrics` every generation)."""
    rng = np.random.default_rng(seed)
    mu, var = np.zeros(chains), np.ones(chains)
    book = _Book(generations, chains, seed, metrics)
    for t in range(1, generations + 1):
        x = rng.normal(mu[:, None], np.sqrt(var)[:, None], size=(chains, n))
        mu, var = x.mean(axis=1), x.var(axis=1)
        book.record(t, mu, var)
    return book.variance


def numpy_suffstat(chains: int, generations: int, n: int, seed: int = 0,
                   metrics: bool = False) -> np.ndarray:
    r"""The exact path's algorithm in numpy: per generation, for all chains at once,
    :math:`\bar x \sim \mathcal N(\mu, \sigma^2/n)`, scatter :math:`\sim \sigma^2\chi^2_{n-1}`,
    then :math:`\mu = \bar x`, :math:`\sigma^2 = \text{scatter}/n`. ``(G + 1, chains)``
    (``metrics``: as :func:`numpy_loop`)."""
    rng = np.random.default_rng(seed)
    mu, var = np.zeros(chains), np.ones(chains)
    book = _Book(generations, chains, seed, metrics)
    for t in range(1, generations + 1):
        mu = rng.normal(mu, np.sqrt(var / n))
        var = var * rng.chisquare(n - 1, chains) / n
        book.record(t, mu, var)
    return book.variance


#: The metrics ``simulate`` returns by default for a 1-D Gaussian, in its order.
METRICS = ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass")


class NumpyMetrics:
    r"""The default metrics of models :math:`\mathcal N(m, v)` against the truth
    :math:`\mathcal N(0, 1)`, the way a numpy user writes them: one vectorised expression per
    metric over all chains, every generation, into ``(G + 1, chains)`` arrays (row 0 the
    truth's own values).

    variance :math:`v`; mean_shift :math:`|m|`; w2 :math:`\sqrt{m^2 + (\sqrt v - 1)^2}`;
    kl :math:`\tfrac12((1 + m^2)/v - 1 + \log v)`; nll, on held-out draws of mean
    :math:`\bar x` and MLE variance :math:`s_h^2`,
    :math:`\tfrac12(\log 2\pi + \log v + (s_h^2 + (\bar x - m)^2)/v)`; tail_mass
    :math:`\Phi((q_{0.005} - m)/\sqrt v) + \Phi((m - q_{0.995})/\sqrt v)` (scipy's
    ``ndtr``). These are the library's formulas (:func:`check_metric_formulas`).
    """

    def __init__(self, generations: int, chains: int, seed: int = 0):
        held = np.random.default_rng(seed + 1).standard_normal(cs.metrics.HELDOUT_SIZE)
        self.xbar, self.cov_h = float(held.mean()), float(held.var())
        self.lo, self.hi = special.ndtri(0.005), special.ndtri(0.995)
        self.out = {name: np.empty((generations + 1, chains)) for name in METRICS}
        self.record(0, np.zeros(chains), np.ones(chains))

    def values(self, mu: np.ndarray, var: np.ndarray) -> dict[str, np.ndarray]:
        """The six metrics of the models ``(mu, var)`` (arrays over chains)."""
        sd, logv = np.sqrt(var), np.log(var)
        return {"variance": var, "mean_shift": np.abs(mu), "w2": np.sqrt(mu**2 + (sd - 1.0) ** 2),
                "kl": 0.5 * ((1.0 + mu**2) / var - 1.0 + logv),
                "nll": 0.5 * (math.log(2 * math.pi) + logv
                              + (self.cov_h + (self.xbar - mu) ** 2) / var),
                "tail_mass": special.ndtr((self.lo - mu) / sd) + special.ndtr((mu - self.hi) / sd)}

    def record(self, t: int, mu: np.ndarray, var: np.ndarray) -> None:
        for name, value in self.values(mu, var).items():
            self.out[name][t] = value


class _Book:
    """What a numpy side keeps per generation: the variances alone, or (``metrics``) every
    array of :class:`NumpyMetrics`, the variances among them."""

    def __init__(self, generations: int, chains: int, seed: int, metrics: bool):
        self.metrics = NumpyMetrics(generations, chains, seed) if metrics else None
        if self.metrics is None:
            self.variance = np.empty((generations + 1, chains))
            self.variance[0] = 1.0
        else:
            self.variance = self.metrics.out["variance"]

    def record(self, t: int, mu: np.ndarray, var: np.ndarray) -> None:
        if self.metrics is None:
            self.variance[t] = var
        else:
            self.metrics.record(t, mu, var)


@functools.cache
def check_metric_formulas(chains: int = 200, generations: int = 50, n: int = 20) -> str:
    """Assert that :class:`NumpyMetrics` computes our default metrics: on the models a
    ``simulate`` run records (both paths; n = 20 so that the chains reach the tails),
    within 1e-12 relative (the formulas are the library's; the tail mass's normal CDF is
    within a few units in the last place of scipy's), the nll against the library's
    :func:`~collapse_sim.families.gaussian.nll_from_moments` with the same held-out
    moments. Run once per process (cached): the idle and the loaded rows share it."""
    from collapse_sim.families.gaussian import nll_from_moments

    for sampling in ("explicit", "exact"):
        sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit("mle"), n_samples=n,
                          generations=generations, chains=chains, seed=0, sampling=sampling,
                          record_models=True, progress=False)
        assert tuple(sim.metrics) == METRICS, f"default metrics changed: {tuple(sim.metrics)}"
        mu = sim.models["mean"][..., 0].ravel()
        var = sim.models["cov"][..., 0, 0].ravel()
        numpy_side = NumpyMetrics(0, 1)
        got = numpy_side.values(mu, var)
        model = cs.Gaussian(mean=mu[:, None], cov=var[:, None, None])
        ours_nll = nll_from_moments(model, np.array([numpy_side.xbar]),
                                    np.array([[numpy_side.cov_h]]))
        for name in METRICS:
            want = ours_nll if name == "nll" else sim.metrics[name].ravel()
            np.testing.assert_allclose(got[name], want, rtol=1e-12, atol=1e-300,
                                       err_msg=f"{sampling}: {name}")
    return ("numpy metrics = ours to 1e-12 on recorded models (both paths, "
            f"{chains} chains x {generations} gens, n={n})")


def ours(chains: int, generations: int, n: int, sampling: str, metrics,
         seed: int = 0) -> np.ndarray:
    """``simulate`` as a user calls it; the ``(G + 1, chains)`` variances."""
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit("mle"), n_samples=n,
                      generations=generations, chains=chains, seed=seed, metrics=metrics,
                      progress=False, sampling=sampling)
    return sim.metrics["variance"]


def raw_numpy_normals(count: int) -> float:
    """Seconds for ``count`` draws of ``Generator.standard_normal`` in 1e5-sized blocks."""
    rng = np.random.default_rng(1)
    block = 100_000
    start = time.perf_counter()
    for _ in range(count // block):
        rng.standard_normal(block)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# correctness


def check(last: dict[str, np.ndarray], n: int, generations: int) -> str:
    r"""Assert that every side's last-generation variances follow the exact law.

    Under MLE refits :math:`\sigma^2_G = \prod_{t \le G} W_t`, :math:`W_t \sim
    \chi^2_{n-1}/n` iid, whatever the means do. So :math:`\log\sigma^2_G` has mean
    :math:`G(\psi(\tfrac{n-1}2) + \log 2 - \log n)` and variance :math:`G\,\psi'(\tfrac{n-1}2)`
    (near-normal: a sum of G iid terms), and :math:`\sigma^2_G` has mean
    :math:`((n-1)/n)^G` and variance :math:`((n^2-1)/n^2)^G - ((n-1)/n)^{2G}`. Standard
    errors over ``c`` chains are these standard deviations over :math:`\sqrt c`; a
    difference of two sides has the two SEs in quadrature.
    """
    k = (n - 1) / 2
    log_mean = generations * (special.digamma(k) + math.log(2.0) - math.log(n))
    log_sd = math.sqrt(generations * special.polygamma(1, k))
    var_mean = ((n - 1) / n) ** generations
    var_sd = math.sqrt(max(((n * n - 1) / (n * n)) ** generations - var_mean**2, 0.0))
    names = list(last)
    worst = 0.0
    for stat, expected, sd, z_max in (("log", log_mean, log_sd, Z_MAX),
                                      ("var", var_mean, var_sd, Z_CHEBYSHEV)):
        means = {k_: float(np.mean(np.log(x) if stat == "log" else x)) for k_, x in last.items()}
        se = {k_: sd / math.sqrt(x.size) for k_, x in last.items()}
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        for a, b in [*pairs, *((a, None) for a in names)]:
            diff = means[a] - (expected if b is None else means[b])
            tol = se[a] if b is None else math.hypot(se[a], se[b])
            z = abs(diff) / tol
            assert z <= z_max, (
                f"gaussian: mean last-generation {stat} variance of {a} ({means[a]:.6g}) vs "
                f"{'theory' if b is None else b} ({expected if b is None else means[b]:.6g}):"
                f" {z:.1f} SE > {z_max:g}")
            worst = max(worst, z / z_max)
    return (f"check: mean log-variance at G={generations} within {Z_MAX:g} SE of "
            f"{log_mean:.3f} and of each other, mean variance within {Z_CHEBYSHEV:g} SE of "
            f"{var_mean:.3g} (worst at {worst:.0%} of its tolerance)")


# ---------------------------------------------------------------------------------------------
# measurements


def warm_up(chains: int, n: int) -> float:
    """Seconds of the first calls (compile or on-disk cache load) of every variant."""
    # enough generations that the exact path's blocks reach its parallel build
    generations = max(2, -(-PARALLEL_MIN_WORK // chains) + 1)
    start = time.perf_counter()
    for sampling in ("explicit", "exact"):
        for metrics in (None, ("variance",)):
            ours(chains, generations, n, sampling, metrics)
    return time.perf_counter() - start


JOBS = (("explicit, default metrics", "explicit", None),
        ("explicit, variance only", "explicit", ("variance",)),
        ("exact, default metrics", "exact", None),
        ("exact, variance only", "exact", ("variance",)))


def measure(sizes, rounds: int, label: str = "", loaded: bool = False) -> list[dict]:
    chains, generations, n = sizes
    mine = {name: (lambda s=s, m=m: ours(chains, generations, n, s, m)) for name, s, m in JOBS}
    long_jobs = [("explicit, default metrics", mine["explicit, default metrics"]),
                 ("explicit, variance only", mine["explicit, variance only"]),
                 ("numpy loop", lambda: numpy_loop(chains, generations, n)),
                 ("numpy loop + metrics",
                  lambda: numpy_loop(chains, generations, n, metrics=True))]
    short_jobs = [("exact, default metrics", mine["exact, default metrics"]),
                  ("exact, variance only", mine["exact, variance only"]),
                  ("numpy suffstat", lambda: numpy_suffstat(chains, generations, n)),
                  ("numpy suffstat + metrics",
                   lambda: numpy_suffstat(chains, generations, n, metrics=True))]
    jobs = long_jobs + short_jobs * SHORT_REPEATS
    load_before = os.getloadavg()[0]
    times, outputs = interleaved(jobs, rounds)
    load_after = os.getloadavg()[0]
    checked = check({k: out[-1] for k, out in outputs.items()}, n, generations)
    t = {k: per_round(v) for k, v in times.items()}
    size = (f"{chains} chains x {generations} gens x n={n}; {rounds} interleaved rounds; "
            f"load avg {load_before:.1f}->{load_after:.1f}")

    def row(case, mine, base, baseline, goal, what="ratio"):
        med, lo, hi = ratio_stats(t[base], t[mine])
        return {"case": f"gaussian {case}{label}", "ours_s": float(np.median(t[mine])),
                "baseline": baseline, "baseline_s": float(np.median(t[base])), "ratio": med,
                "goal": goal, "ratio_min": lo, "ratio_max": hi, "rounds": rounds,
                "note": f"{what} min-max {lo:.2f}-{hi:.2f}; {size}"}

    loop = "numpy vectorised loop (rng.normal (chains, n), mean, var)"
    suff = "numpy sufficient statistics (N(mu, var/n) mean, var*chi2(n-1) scatter)"
    rows = [
        row("explicit, default metrics", "explicit, default metrics", "numpy loop", loop,
            GOAL_EXPLICIT_LOADED if loaded else GOAL_EXPLICIT),
        row("explicit, variance only (kernel)", "explicit, variance only", "numpy loop", loop,
            None),
        row("exact, default metrics", "exact, default metrics", "numpy suffstat", suff,
            GOAL_EXACT),
        row("exact, variance only (kernel)", "exact, variance only", "numpy suffstat", suff,
            None),
        row("exact, default metrics vs explicit loop", "exact, default metrics", "numpy loop",
            loop, None),
        row("explicit, default metrics vs numpy loop with the same metrics",
            "explicit, default metrics", "numpy loop + metrics", loop + " + the six metrics",
            GOAL_EXPLICIT_LOADED if loaded else GOAL_EXPLICIT),
        row("exact, default metrics vs numpy suffstat with the same metrics",
            "exact, default metrics", "numpy suffstat + metrics", suff + " + the six metrics",
            GOAL_EXACT),
    ]
    for path in ("explicit", "exact"):
        over = t[f"{path}, default metrics"] / t[f"{path}, variance only"] - 1.0
        rows.append({
            "case": f"gaussian {path}: metric overhead{label}",
            "ours_s": float(np.median(t[f"{path}, default metrics"])),
            "baseline": "the same call with metrics=('variance',)",
            "baseline_s": float(np.median(t[f"{path}, variance only"])),
            "ratio": None, "goal": None, "overhead": float(np.median(over)),
            "overhead_min": float(over.min()), "overhead_max": float(over.max()),
            "overhead_goal": GOAL_OVERHEAD,
            "note": (f"time(default)/time(variance) - 1 = {np.median(over):.0%} (min-max "
                     f"{over.min():.0%}-{over.max():.0%}; goal <= {GOAL_OVERHEAD:.0%}); {size}")})
    by_case = {r["case"]: r for r in rows}
    by_case[f"gaussian explicit, default metrics{label}"]["note"] += "; " + checked
    like = by_case[f"gaussian explicit, default metrics vs numpy loop with the same metrics{label}"]
    like["note"] += "; " + check_metric_formulas()
    draws = chains * generations * n
    t_raw = min(raw_numpy_normals(draws) for _ in range(2 if rounds > 1 else 1))
    t_var = float(np.median(t["explicit, variance only"]))
    rows.append({"case": f"normal draws per second (explicit, inside simulate){label}",
                 "ours_s": t_var, "baseline": "Generator.standard_normal, 1 core",
                 "baseline_s": t_raw, "ratio": t_raw / t_var, "goal": None,
                 "note": f"ours {draws / t_var / 1e6:.0f} M/s (variance only, whole run), "
                         f"numpy raw {draws / t_raw / 1e6:.0f} M/s"})
    return rows


def run(repeats: int = 3, quick: bool = False, load: bool = False) -> list[dict]:
    sizes = QUICK_SIZES if quick else (CHAINS, GENERATIONS, N)
    compile_s = warm_up(sizes[0], sizes[2])
    rounds = 2 if quick else max(ROUNDS, repeats)
    rows = measure(sizes, rounds)
    rows.append({"case": "numba compile / cache load (first calls)", "ours_s": compile_s,
                 "baseline": None, "baseline_s": None, "ratio": None, "goal": None,
                 "note": "explicit + exact, default and variance-only metrics"})
    if load and not quick:
        rows += run_loaded(repeats, quick)
    return rows


def run_loaded(repeats: int = 3, quick: bool = False) -> list[dict]:
    """The same comparisons while one CPU-bound background process runs."""
    sizes = QUICK_SIZES if quick else (CHAINS, GENERATIONS, N)
    warm_up(sizes[0], sizes[2])  # never compile under load
    rounds = 2 if quick else max(ROUNDS, repeats)
    return under_load(lambda: measure(sizes, rounds, ", loaded", loaded=True))


if __name__ == "__main__":
    suite_main("python -m benchmarks.bench_gaussian", run, run_loaded)
