"""Accuracy of the 1-D mixture W2 quadrature where quantile functions nearly jump, and its cost.

Run as ``python benchmarks/w2_accuracy.py`` (about 10 s on 2 cores).

The ``w2`` metric of a Gaussian-mixture model integrates
:math:`\\int(F^{-1}(\\Phi(z)) - G^{-1}(\\Phi(z)))^2\\varphi(z)\\,dz` by the trapezoid rule on
1025 normal scores in [-8, 8] (or on 1025 points of the truth's own variable, the same
integral written :math:`\\int(F^{-1}(G(v)) - v)^2 g(v)\\,dv`, for a truth of two or more
components of similar widths); where a quantile function nearly jumps between two nodes
(separated modes, a collapsed spike, a point mass) those intervals are integrated by
local refinement instead
(``collapse_sim._kernels.mixture_metrics``). For each case below this script prints the
relative error of :math:`W_2` against an independent reference (scipy's adaptive ``quad``
of the same integral with brentq quantiles, ``tests/test_mixture_metrics_fast.py``'s
:func:`quad_reference`), for the refined sum and for the plain full-grid trapezoid sum
(what the metric was before the refinement), the model quantiles each solved, and the
variable the metric integrates in (``z``: normal scores; ``truth``: the truth's own
variable, where the truth has two or more components of similar widths).

Cases (truth / model, all 1-D): two unit modes ``sep`` standard deviations apart against
a Gaussian and against a two-component fit whose second mode sits 1 sd short; spikes of
sd 0.1 and 0.01 at +-10 (a collapsed model); a point mass; EM-like fits of the two-mode
truth with narrower components.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import collapse_sim as cs
from collapse_sim.families import mixture as mm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_mixture_metrics_fast import quad_reference


def _mix(w, mu, sd) -> cs.GaussianMixture:
    return cs.GaussianMixture(np.asarray(w, float), np.asarray(mu, float)[:, None],
                              (np.asarray(sd, float) ** 2)[:, None, None])


def cases() -> list[tuple[str, cs.GaussianMixture, cs.GaussianMixture]]:
    out = []
    for sep in (2, 4, 6, 8, 12):
        truth = _mix([0.7, 0.3], [0.0, sep], [1.0, 1.0])
        out.append((f"modes {sep} sd apart / Gaussian", truth,
                    _mix([1.0], [0.3 * sep], [0.5 * sep + 0.5])))
        out.append((f"modes {sep} sd apart / modes {sep - 1} apart", truth,
                    _mix([0.6, 0.4], [0.1, sep - 1.0], [0.9, 0.8])))
    truth = _mix([0.9, 0.1], [0.0, 8.0], [1.0, 1.0])
    for sd in (0.1, 0.01):
        out.append((f"modes 8 sd apart / spikes sd {sd} at +-10", truth,
                    _mix([0.5, 0.5], [-10.0, 10.0], [sd, sd])))
    out.append(("standard normal / point mass 0.4 at 0", _mix([1.0], [0.0], [1.0]),
                _mix([0.6, 0.4], [0.5, 0.0], [1.0, 0.0])))
    out.append(("modes 4 sd apart / narrow light component", _mix([0.5, 0.5], [-2.0, 2.0],
                                                                   [1.0, 1.0]),
                _mix([0.45, 0.5, 0.05], [-2.0, 2.1, 0.5], [1.0, 0.9, 0.05])))
    return out


def measure(truth, model) -> tuple[float, float, int, float]:
    """``(refined error, grid error, quantiles solved, ms a call)`` of one 1-D case: the
    relative errors of :math:`W_2` against :func:`quad_reference`."""
    ctx = mm._mixture_context(truth)
    sums, nodes = mm.w2_squared_sums(model, [None], ctx)
    start = time.perf_counter()
    for _ in range(20):
        mm.w2_squared_sums(model, [None], ctx)
    ms = (time.perf_counter() - start) / 20 * 1000
    grid = np.sum((mm.project_quantiles(model, None, mm._Z)[0]
                   - ctx.truth_quantiles(None)) ** 2 * mm._ZW)
    w, mus, sds = mm._projected(model, [None])
    _, tw, tmu, tsd, _ = ctx.truth_side([None])
    ref = np.sqrt(quad_reference(w[0], mus[0, 0], sds[0, 0], tw, tmu[0], tsd[0]))
    return (float(np.sqrt(sums[0, 0]) / ref - 1), float(np.sqrt(grid) / ref - 1),
            int(nodes[0, 0]), ms)


def main() -> None:
    print(f"{'case':<48} {'refined':>9} {'grid':>9} {'quantiles':>9} {'ms':>6}  variable")
    for name, truth, model in cases():
        refined, grid, nodes, ms = measure(truth, model)
        vform = mm._mixture_context(truth).w2_grid([None])[6][0]
        print(f"{name:<48} {refined:9.1e} {grid:9.1e} {nodes:9d} {ms:6.2f}  "
              f"{'truth' if vform else 'z'}")


if __name__ == "__main__":
    main()
