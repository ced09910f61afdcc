r"""Generation stages: what a stage costs on top of faithful sampling (issue 14's goal: at most
2x for Gaussian and categorical families at 1000 chains x n = 1000, best-of-K excepted).

Each row times ``simulate`` as a user calls it (one metric, so the sampling dominates) with a
stage and without, on the same path, in interleaved rounds; ``ratio`` is the median of the
per-round ratios *faithful time / staged time* (above 0.5 meets the goal: the stage costs at
most 2x), with the min-max over rounds.

* Gaussian ``Temperature(0.9)``: the exact path for both (a tempered Gaussian's moments are
  drawn by their exact law); ``Truncate(2.0)``: the explicit path for both (truncated
  points are drawn by inversion).
* Zipf(1) over V = 1000 categories: ``Temperature(0.9)``, ``TopK(100)``, ``TopP(0.9)`` on
  the exact count path against faithful counts.

Standalone: ``python -m benchmarks.bench_stages [--quick] [--repeats R] [--load {off,on,both}]``.
"""

from __future__ import annotations

import numpy as np

import collapse_sim as cs

from ._report import idle_then_loaded, suite_main
from .bench_categorical import interleaved, per_round, ratio_stats

CHAINS, N, GENERATIONS = 1000, 1000, 20
QUICK_SIZES = (50, 100, 3)
V = 1000
ROUNDS = 5
GOAL = 0.5  # faithful / staged: the stage costs at most 2x

CASES = {
    "Gaussian Temperature(0.9), exact path": (
        lambda: cs.Gaussian(0.0, 1.0), cs.GaussianFit, cs.Temperature(0.9), "exact",
        "variance"),
    "Gaussian Truncate(2.0), explicit path": (
        lambda: cs.Gaussian(0.0, 1.0), cs.GaussianFit, cs.Truncate(2.0), "explicit",
        "variance"),
    "Zipf V=1000 Temperature(0.9), exact counts": (
        lambda: cs.Zipf(V, 1.0), cs.CategoricalFit, cs.Temperature(0.9), "exact", "entropy"),
    "Zipf V=1000 TopK(100), exact counts": (
        lambda: cs.Zipf(V, 1.0), cs.CategoricalFit, cs.TopK(100), "exact", "entropy"),
    "Zipf V=1000 TopP(0.9), exact counts": (
        lambda: cs.Zipf(V, 1.0), cs.CategoricalFit, cs.TopP(0.9), "exact", "entropy"),
}


def _run(truth, fitter, stage, sampling, metric, chains, n, generations):
    sim = cs.simulate(truth, fitter, n_samples=n, generations=generations, chains=chains,
                      seed=0, metrics=(metric,), sampling=sampling, generation=stage,
                      progress=False)
    return sim.metrics[metric]


def _rows(repeats: int, quick: bool, label: str) -> list[dict]:
    chains, n, generations = QUICK_SIZES if quick else (CHAINS, N, GENERATIONS)
    rows = []
    for case, (make, fit, stage, sampling, metric) in CASES.items():
        truth = make()
        args = (fit(), sampling, metric, chains, n, generations)

        def faithful(truth=truth, args=args):
            return _run(truth, args[0], None, *args[1:])

        def staged(truth=truth, args=args, stage=stage):
            return _run(truth, args[0], stage, *args[1:])

        faithful()
        staged()  # compile both at these sizes
        rounds = 1 if quick else max(ROUNDS, repeats)
        times, outs = interleaved([("faithful", faithful), ("staged", staged)], rounds)
        base, mine = per_round(times["faithful"]), per_round(times["staged"])
        med, lo, hi = ratio_stats(base, mine)
        assert np.isfinite(outs["staged"]).all()
        rows.append({
            "case": f"{case}, {chains}ch x n={n}{label}",
            "ours_s": float(np.median(mine)), "baseline_s": float(np.median(base)),
            "ratio": med, "goal": GOAL, "baseline": "the same run with faithful sampling",
            "note": f"faithful/staged min-max {lo:.2f}-{hi:.2f} over {rounds} rounds",
        })
    return rows


run, run_loaded = idle_then_loaded(_rows)


if __name__ == "__main__":
    suite_main("python -m benchmarks.bench_stages", run, run_loaded)
