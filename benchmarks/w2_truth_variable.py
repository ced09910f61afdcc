"""How many quadrature nodes the 1-D W2 of two Gaussian mixtures needs, in normal scores
against the truth's own variable, and what the ``w2`` metric gains from the second.

Run as ``python benchmarks/w2_truth_variable.py`` (about 40 s, one core).

For a 1-D truth :math:`G` and model :math:`F`,

.. math::

    W_2^2 = \\int_0^1 (F^{-1}(u) - G^{-1}(u))^2\\,du
          = \\int (F^{-1}(\\Phi(z)) - G^{-1}(\\Phi(z)))^2 \\varphi(z)\\,dz
          = \\int (F^{-1}(G(t)) - t)^2 g(t)\\,dt .

Where the truth's density dips between two modes, its quantile function is steep in
``z`` and the trapezoid rule converges slowly; in the third form (the truth's own
variable ``t``, the transport map :math:`F^{-1}\\circ G`) the dip costs nothing.

Part 1 prints the relative error of both forms against 4097 nodes, for the projection
of ``bench_jax``'s two-mode truth (modes at -2 and 2, unit variances) and three models:
an EM-like fit close to it, a fit with its modes 6 apart, a single Gaussian. Quantiles
by ``scipy.optimize.brentq`` on the CDF or survival function (1e-15).

Part 2 times the metric as built (``w2_squared_sums``: nested levels, early exit,
refinement) on 1000 EM fits of that truth in 2-D (``GaussianMixtureFit(2, tol=1e-3)``,
n = 1000, 50 chains x 20 generations), 16 directions each, once with every direction in
normal scores (``VFORM_SD_RATIO = 0`` for the run) and once as the metric chooses (the
truth's variable: two components of equal widths): quantiles solved per direction, the
share of directions that took the full grid and that were refined, microseconds per
direction (best of 5 calls), and the largest relative difference between the two sums.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

Z = 8.5
NODES = (33, 65, 129, 257, 513, 1025)


def mixture(w, m, s):
    """``(cdf, sf, pdf, quantile(tail probability, upper))`` of a 1-D mixture."""
    w, m, s = map(np.asarray, (w, m, s))

    def cdf(x):
        return np.sum(w * special.ndtr((x - m) / s))

    def sf(x):
        return np.sum(w * special.ndtr((m - x) / s))

    def pdf(x):
        return np.sum(w * np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)))

    def quantile(u, upper):
        lo, hi = (m - 40 * s).min(), (m + 40 * s).max()
        tail = sf if upper else cdf
        return optimize.brentq(lambda x: tail(x) - u, lo, hi, xtol=1e-15, rtol=1e-15)

    return cdf, sf, pdf, quantile


TRUTH = mixture([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
MODELS = {
    "EM-like fit": mixture([0.48, 0.52], [-2.05, 1.98], [1.02, 0.97]),
    "modes 6 apart": mixture([0.5, 0.5], [-3.0, 3.1], [1.0, 0.9]),
    "single Gaussian": mixture([1.0], [0.1], [2.2]),
}


def trapezoid(values, h):
    return h * (values.sum() - 0.5 * (values[0] + values[-1]))


def in_scores(model, nodes):
    z = np.linspace(-Z, Z, nodes)
    vals = []
    for zj in z:
        up, u = zj >= 0, special.ndtr(-abs(zj))
        d = model[3](u, up) - TRUTH[3](u, up)
        vals.append(d * d * np.exp(-0.5 * zj * zj) / np.sqrt(2 * np.pi))
    return trapezoid(np.array(vals), z[1] - z[0])


def in_truth_variable(model, nodes):
    u0 = special.ndtr(-Z)
    t = np.linspace(TRUTH[3](u0, False), TRUTH[3](u0, True), nodes)
    vals = []
    for tj in t:
        up = tj >= 0
        d = model[3](TRUTH[1](tj) if up else TRUTH[0](tj), up) - tj
        vals.append(d * d * TRUTH[2](tj))
    return trapezoid(np.array(vals), t[1] - t[0])


def metric_on_em_fits() -> None:
    import time

    import collapse_sim as cs
    from collapse_sim.families import mixture as mx

    truth = cs.GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [np.eye(2)] * 2)
    sim = cs.simulate(truth, cs.GaussianMixtureFit(2, tol=1e-3), n_samples=1000,
                      generations=20, chains=50, seed=0, metrics=("variance",),
                      progress=False, record_models=True)
    m = sim.models
    model = cs.GaussianMixture._from_arrays(m["weights"][1:].reshape(-1, 2),
                                            m["means"][1:].reshape(-1, 2, 2),
                                            m["covs"][1:].reshape(-1, 2, 2, 2))
    directions = list(mx.slice_directions(2))
    built = mx.VFORM_SD_RATIO
    sums = {}
    print(f"\nthe w2 metric on {model.batch_size} EM fits x {len(directions)} directions:")
    try:
        for label, ratio in (("normal scores", 0.0), ("truth's variable", built)):
            mx.VFORM_SD_RATIO = ratio
            ctx = mx.MixtureContext(truth, np.zeros((1, 2)))  # its own grid cache
            sums[label], nodes = mx.w2_squared_sums(model, directions, ctx)
            best = np.inf
            for _ in range(5):
                start = time.perf_counter()
                mx.w2_squared_sums(model, directions, ctx)
                best = min(best, time.perf_counter() - start)
            print(f"  {label:17s} {nodes.mean():6.0f} quantiles a direction, "
                  f"{np.mean(nodes >= mx.Z_POINTS):4.0%} full grid, "
                  f"{np.mean(nodes > mx.Z_POINTS):4.0%} refined, "
                  f"{best / nodes.size * 1e6:5.2f} us a direction")
    finally:
        mx.VFORM_SD_RATIO = built
    a, b = sums.values()
    print(f"  largest relative difference of the sums: {np.max(np.abs(b / a - 1)):.1e}")


def main() -> None:
    for name, model in MODELS.items():
        ref = in_scores(model, 4097)
        print(f"{name}: W2^2 = {ref:.12g} (normal scores, 4097 nodes); "
              f"truth's variable, 4097 nodes: {in_truth_variable(model, 4097):.12g}")
        for nodes in NODES:
            ez = abs(in_scores(model, nodes) / ref - 1)
            et = abs(in_truth_variable(model, nodes) / ref - 1)
            print(f"  {nodes:5d} nodes: normal scores {ez:.1e}, truth's variable {et:.1e}")


if __name__ == "__main__":
    main()
    metric_on_em_fits()
