"""Explicit Gaussian path: ``simulate`` against a plain numpy-vectorised loop, same run.

The baseline is what a user would write without this library: one
``Generator.normal`` call per generation for all chains, then numpy's mean and
variance. ``simulate`` computes the variance metric only (the baseline computes
nothing else). Numba compilation is excluded: a warm-up call runs first and its
time is reported separately.
"""

from __future__ import annotations

import time

import numpy as np

import collapse_sim as cs

CHAINS, GENERATIONS, N = 1000, 1000, 100


def numpy_loop(chains: int, generations: int, n: int, seed: int = 0) -> np.ndarray:
    """Recursive MLE Gaussian refits with numpy: returns the ``(G + 1, chains)`` variances."""
    rng = np.random.default_rng(seed)
    mu, var = np.zeros(chains), np.ones(chains)
    out = np.empty((generations + 1, chains))
    out[0] = var
    for t in range(1, generations + 1):
        x = rng.normal(mu[:, None], np.sqrt(var)[:, None], size=(chains, n))
        mu, var = x.mean(axis=1), x.var(axis=1)
        out[t] = var
    return out


def ours(chains: int, generations: int, n: int, seed: int = 0,
         sampling: str = "explicit") -> np.ndarray:
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit("mle"), n_samples=n,
                      generations=generations, chains=chains, seed=seed, metrics="variance",
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


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(repeats: int = 3, quick: bool = False) -> list[dict]:
    chains, generations, n = (200, 200, 100) if quick else (CHAINS, GENERATIONS, N)
    start = time.perf_counter()
    ours(10, 2, n)  # compile (or load from the on-disk cache)
    compile_s = time.perf_counter() - start
    t_ours = best_of(lambda: ours(chains, generations, n), repeats)
    t_numpy = best_of(lambda: numpy_loop(chains, generations, n), repeats)
    draws = chains * generations * n
    t_raw = best_of(lambda: raw_numpy_normals(draws), repeats)
    case = f"gaussian explicit, {chains} chains x {generations} gens x n={n}"
    exact_rows = []
    for n_exact, goal in ((100, 50.0), (10_000, 2000.0)):
        ours(10, 2, n_exact, sampling="exact")
        t_exact = best_of(lambda n_exact=n_exact: ours(chains, generations, n_exact,
                                                         sampling="exact"), repeats)
        # The numpy loop's cost is linear in generations: time a slice of them at large n.
        base_gens = generations if n_exact <= 1000 else max(generations // 20, 5)
        t_base = best_of(lambda n_exact=n_exact, g=base_gens: numpy_loop(chains, g, n_exact),
                         repeats) * generations / base_gens
        exact_rows.append({
            "case": f"gaussian exact, {chains} chains x {generations} gens x n={n_exact}",
            "ours_s": t_exact, "baseline": "numpy vectorised loop"
            + ("" if base_gens == generations else
               f" (timed on {base_gens} generations, scaled)"),
            "baseline_s": t_base, "ratio": t_base / t_exact, "goal": goal})
    return [
        *exact_rows,
        {"case": case, "ours_s": t_ours, "baseline": "numpy vectorised loop",
         "baseline_s": t_numpy, "ratio": t_numpy / t_ours, "goal": 3.0},
        {"case": "normal draws per second (ours, inside simulate)", "ours_s": t_ours,
         "baseline": "Generator.standard_normal, 1 core", "baseline_s": t_raw,
         "ratio": t_raw / t_ours, "goal": None,
         "note": f"ours {draws / t_ours / 1e6:.0f} M/s, numpy raw {draws / t_raw / 1e6:.0f} M/s"},
        {"case": "numba compile / cache load (first call)", "ours_s": compile_s,
         "baseline": None, "baseline_s": None, "ratio": None, "goal": None},
    ]
