"""How many quadrature nodes the 1-D W2 of two Gaussian mixtures needs, in normal scores
against the truth's own variable (a measurement for a possible redesign of the ``w2``
metric; the metric itself integrates in normal scores).

Run as ``python benchmarks/w2_truth_variable.py`` (about 20 s, one core).

For a 1-D truth :math:`G` and model :math:`F`,

.. math::

    W_2^2 = \\int_0^1 (F^{-1}(u) - G^{-1}(u))^2\\,du
          = \\int (F^{-1}(\\Phi(z)) - G^{-1}(\\Phi(z)))^2 \\varphi(z)\\,dz
          = \\int (F^{-1}(G(t)) - t)^2 g(t)\\,dt .

The metric uses the second form, the trapezoid rule on normal scores ``z`` in [-8.5, 8.5]
(up to 1025 nodes). Where the truth's density dips between two modes, its quantile
function is steep in ``z`` and the rule converges slowly; in the third form (the truth's
own variable ``t``, the transport map :math:`F^{-1}\\circ G`) the dip costs nothing. The
script prints the relative error of both forms against 4097 nodes, for the projection
of ``bench_jax``'s two-mode truth (modes at -2 and 2, unit variances) and three models:
an EM-like fit close to it, a fit with its modes 6 apart, a single Gaussian. Quantiles
by ``scipy.optimize.brentq`` on the CDF or survival function (1e-15).
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
