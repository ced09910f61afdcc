"""Accuracy of the 2-D sliced W2 metric's direction quadrature, and where its time goes.

Run as ``python benchmarks/w2_slices_accuracy.py`` (about 30 s on 2 cores).

For a 2-D truth the ``w2`` metric of a Gaussian-mixture model is the sliced distance
:math:`SW_2^2 = \\frac1\\pi\\int_0^\\pi W_2^2(\\theta)\\,d\\theta`, estimated by the midpoint
rule on :data:`collapse_sim.families.mixture.SLICES` = 16 fixed half-circle angles
(:func:`~collapse_sim.families.mixture.slice_directions`); each :math:`W_2^2(\\theta)` is
a trapezoid sum over 1025 normal scores whose model quantiles are solved to 1e-14
(refined where a quantile function nearly jumps between them)
(:func:`~collapse_sim.families.mixture.w2_squared_sums`). This script measures the error
of the angular rule, which the per-direction precision cannot improve: on the EM fits of
``simulate`` (``GaussianMixtureFit(2, tol=1e-3)``, n = 1000, 20 chains x 20 generations,
seed 0) for the two truths of the benchmarks (``bench_mixture``: the standard normal;
``bench_jax``: two unit modes at (+-2, 0)), it computes :math:`SW_2` with 4 to 16
directions and compares it with 64 directions (the reference: the midpoint rule on a
smooth :math:`\\pi`-periodic integrand converges geometrically, so 64 directions are
exact to rounding here). It also prints how many quantiles per direction the adaptive
levels solve and the time of the quadrature for 50 models (one generation of the
benchmarks' 50 chains).
"""

from __future__ import annotations

import time

import numpy as np

import collapse_sim as cs
from collapse_sim.families import mixture as mm

COUNTS = (4, 8, 12, 16)
REFERENCE = 64
TRUTHS = {
    "standard normal (bench_mixture)": cs.Gaussian(mean=np.zeros(2), cov=np.eye(2)),
    "two modes at (+-2, 0) (bench_jax)": cs.GaussianMixture(
        weights=[0.5, 0.5], means=[[-2.0, 0.0], [2.0, 0.0]], covs=[np.eye(2), np.eye(2)]),
}


def directions(count: int) -> list[np.ndarray]:
    """``count`` midpoint angles on the half circle (the metric's for 16)."""
    return list(mm.slice_directions(2, count))


def fitted(truth, chains: int = 20, generations: int = 20) -> mm.GaussianMixture:
    sim = cs.simulate(truth, cs.GaussianMixtureFit(2, tol=1e-3), n_samples=1000,
                      generations=generations, chains=chains, seed=0, metrics=("variance",),
                      progress=False, record_models=True)
    m = sim.models
    return mm.GaussianMixture._from_arrays(m["weights"][1:].reshape(-1, 2),
                                           m["means"][1:].reshape(-1, 2, 2),
                                           m["covs"][1:].reshape(-1, 2, 2, 2))


def sliced(ctx, model, count: int) -> tuple[np.ndarray, np.ndarray]:
    """:math:`SW_2` of every member with ``count`` directions, and the quantiles solved."""
    u = directions(count)
    sums, nodes = mm.w2_squared_sums(model, u, ctx)
    return np.sqrt(sums.mean(axis=1)), nodes


def main() -> None:
    for name, truth in TRUTHS.items():
        model = fitted(truth)
        ctx = mm._mixture_context(truth)
        reference, _ = sliced(ctx, model, REFERENCE)
        print(f"{name}: {model.batch_size} fitted models, relative error of SW2 against "
              f"{REFERENCE} directions")
        for count in COUNTS:
            value, nodes = sliced(ctx, model, count)
            err = np.abs(value / reference - 1.0)
            print(f"  {count:2d} directions: median {np.median(err):.1e}, max {err.max():.1e}"
                  f"; quantiles solved per direction: mean {nodes.mean():.0f}")
        half = mm.GaussianMixture._from_arrays(model.weights[:50], model.means[:50],
                                               model.covs[:50])
        u = directions(mm.SLICES)
        mm.w2_squared_sums(half, u, ctx)
        times = []
        for _ in range(20):
            start = time.perf_counter()
            mm.w2_squared_sums(half, u, ctx)
            times.append(time.perf_counter() - start)
        print(f"  {mm.SLICES} directions for 50 models: {np.median(times) * 1e3:.2f} ms "
              f"(median of 20)")


if __name__ == "__main__":
    main()
