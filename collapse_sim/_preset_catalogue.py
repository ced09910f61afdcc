"""The presets' names, titles and default sizes, without importing what runs them.

``collapse-sim list`` and ``--help`` read this table, so they answer in a fraction of a
second; :data:`collapse_sim.experiments.PRESETS` pairs each entry with the function that
runs it.
"""

from __future__ import annotations

#: name -> (title, default keyword arguments of the preset's function)
CATALOGUE: dict[str, tuple[str, dict]] = {
    "gaussian": (
        "Variance collapse of a recursively refitted 1-D Gaussian (MLE vs unbiased)",
        {"n_samples": 100, "generations": 1000, "chains": 1000, "seed": 0},
    ),
    "gmm": (
        "Shumailov et al.'s GMM experiment: 2-component mixtures refitted on their own samples",
        {"n_samples": 1000, "generations": 2000, "chains": 10, "seed": 0},
    ),
    "mismatch": (
        "Functional expressivity error: a single Gaussian fitted to a bimodal truth",
        {"n_samples": 100, "generations": 300, "chains": 1000, "seed": 0},
    ),
    "sgd": (
        "Function-approximation error: exact MLE against minibatch SGD fits, same truth",
        {"n_samples": 100, "generations": 200, "chains": 1000, "seed": 0},
    ),
    "policies": (
        "What each generation trains on: replace, keep 10% real, accumulate, fresh real",
        {"n_samples": 100, "generations": 1000, "chains": 1000, "seed": 0},
    ),
    "error_sources": (
        "Statistical, expressivity and approximation error, separately and compounded",
        {"n_samples": 100, "generations": 200, "chains": 1000, "seed": 0},
    ),
    "regression": (
        "Least squares refitted on its own labels: replace vs accumulate, against the theory",
        {"n_samples": 20, "generations": 30, "chains": 4000, "seed": 0},
    ),
    "vocabulary": (
        "A Zipf vocabulary refitted on its own text: rare words die first (Wright–Fisher)",
        {"n_samples": 10_000, "generations": 200, "chains": 100, "seed": 0},
    ),
    "sampling_bias": (
        "How synthetic data is made and chosen: temperature, truncation, top-p, curation",
        {"n_samples": 100, "generations": 100, "chains": 500, "seed": 0},
    ),
    "language": (
        "n-gram language models refitted on their own text: perplexity climbs, words vanish",
        {"n_samples": 100_000, "generations": 20, "chains": 8, "seed": 0},
    ),
    "digits": (
        "The paper's VAE experiment as probabilistic PCA on real digits: modes merge and vanish",
        {"n_samples": 200, "generations": 100, "chains": 20, "seed": 0},
    ),
    "kde": (
        "Kernel density estimates on two moons (Kazdan et al.): bandwidth, n, replace vs "
        "accumulate",
        {"generations": 100, "chains": 40, "seed": 0},  # n_samples: 32, 100 and 1000
    ),
}
