"""SGDGaussianFit generations against a numpy minibatch-SGD loop doing the same updates.

1-D Gaussian, recursive: each generation draws ``n`` points from the previous model and
runs ``epochs`` epochs of minibatch SGD (batch ``b``, constant rate) on the negative
log-likelihood over (mean, log-scale), warm-started from the previous model. The
baseline is the loop a user would write in numpy: vectorised over chains, one
iteration per minibatch step, a fresh permutation per chain and epoch.
"""

from __future__ import annotations

import time

import numpy as np

import collapse_sim as cs

N, BATCH, EPOCHS, LR = 100, 10, 5, 0.05


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


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def run(repeats: int = 3, quick: bool = False) -> list[dict]:
    chains, generations = (50, 5) if quick else (1000, 50)
    ours(4, 1)
    ours(2000, 1)  # compile serial and parallel builds
    t_ours, v_ours = _best(lambda: ours(chains, generations), repeats)
    t_np, v_np = _best(lambda: numpy_sgd(chains, generations), repeats)
    return [{
        "case": f"SGD 1-D, {chains} chains x {generations} gens, n={N}, b={BATCH}, "
                f"{EPOCHS} epochs",
        "ours_s": t_ours, "baseline": "numpy minibatch-SGD loop, vectorised over chains",
        "baseline_s": t_np, "ratio": t_np / t_ours, "goal": 10.0,
        "note": f"median final variance ours {np.median(v_ours):.3f} vs numpy "
                f"{np.median(v_np):.3f} (same updates, different random streams)"}]
