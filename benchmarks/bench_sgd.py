"""SGDGaussianFit generations against a numpy minibatch-SGD loop doing the same updates.

1-D Gaussian, recursive: each generation draws ``n`` points from the previous model and
runs ``epochs`` epochs of minibatch SGD (batch ``b``, constant rate) on the negative
log-likelihood over (mean, log-scale), warm-started from the previous model. The
baseline is the loop a user would write in numpy: vectorised over chains, one
iteration per minibatch step, a fresh permutation per chain and epoch.
"""

from __future__ import annotations

import numpy as np

import collapse_sim as cs

from ._report import idle_then_loaded, suite_main
from .bench_categorical import interleaved, per_round, ratio_stats

N, BATCH, EPOCHS, LR = 100, 10, 5, 0.05
#: Interleaved rounds at least (the two jobs rotated each round).
ROUNDS = 5


def numpy_sgd(chains: int, generations: int, seed: int = 0) -> np.ndarray:
    """The baseline: returns the final variances."""
    rng = np.random.default_rng(seed)
    mu, logs = np.zeros(chains), np.zeros(chains)
    sample_mu, sample_sd = np.zeros(chains), np.ones(chains)
    rows = np.arange(chains)[:, None]
    for _ in range(generations):
        x = sample_mu[:, None] + sample_sd[:, None] * rng.standard_normal((chains, N))
        for _ in range(EPOCHS):
            perm = np.argsort(rng.random((chains, N)), axis=1)
            for start in range(0, N, BATCH):
                xb = x[rows, perm[:, start:start + BATCH]]
                sd = np.exp(logs)
                y = (xb - mu[:, None]) / sd[:, None]
                g_mu = -(y / sd[:, None]).mean(axis=1)
                g_log = (1.0 - y * y).mean(axis=1)
                mu -= LR * g_mu
                logs -= LR * g_log
        sample_mu, sample_sd = mu.copy(), np.exp(logs)
    return sample_sd**2


def ours(chains: int, generations: int, seed: int = 0) -> np.ndarray:
    fit = cs.SGDGaussianFit(learning_rate=LR, batch_size=BATCH, epochs=EPOCHS)
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), fit, n_samples=N, generations=generations,
                      chains=chains, seed=seed, metrics="variance", progress=False)
    return sim.metrics["variance"][-1]


def _rows(repeats: int, quick: bool, label: str) -> list[dict]:
    chains, generations = (50, 5) if quick else (1000, 50)
    ours(4, 1)
    ours(2000, 1)  # compile serial and parallel builds
    rounds = 2 if quick else max(ROUNDS, repeats)
    jobs = [("ours", lambda: ours(chains, generations)),
            ("numpy", lambda: numpy_sgd(chains, generations))]
    times, outs = interleaved(jobs, rounds)
    t_ours, t_np = per_round(times["ours"]), per_round(times["numpy"])
    med, lo, hi = ratio_stats(t_np, t_ours)
    return [{
        "case": f"SGD 1-D, {chains} chains x {generations} gens, n={N}, b={BATCH}, "
                f"{EPOCHS} epochs{label}",
        "ours_s": float(np.median(t_ours)),
        "baseline": "numpy minibatch-SGD loop, vectorised over chains",
        "baseline_s": float(np.median(t_np)), "ratio": med, "goal": 10.0,
        "note": f"ratio min-max {lo:.2f}-{hi:.2f} over {rounds} interleaved rounds; median "
                f"final variance ours {np.median(outs['ours']):.3f} vs numpy "
                f"{np.median(outs['numpy']):.3f} (same updates, different random streams)"}]


run, run_loaded = idle_then_loaded(_rows)


if __name__ == "__main__":
    suite_main("python -m benchmarks.bench_sgd", run, run_loaded)
