"""Figures of discrete families: vocabularies losing their rare words."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ._adapt import as_result
from ._common import _band_lines


def vocabulary(result, *, axes=None):
    """The ``vocabulary`` preset's figure: surviving words, and one chain's rank–frequency.

    Left: the number of words with non-zero probability against generation (median
    and 10–90% band over chains, per policy; the exact expectation dashed black).
    Right: one replace chain's rank–frequency curve (its probabilities sorted, log–log),
    one curve per generation: each refit ends sooner, at the ``1/n`` floor of a word
    seen once, as the rare words die.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``vocabulary`` preset's result, or your categorical runs: each needs the
        ``support`` metric (one line per run; the exact expectation where the theory
        holds: ``CategoricalFit`` without smoothing under ``Replace`` or ``Accumulate``),
        and at least one must have ``record_models=True`` (``chains=1`` keeps it small):
        the right panel is chain 0 of the first such run.
    axes : sequence of two matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "vocabulary")
    params = getattr(result, "params", None) or {}
    rank_label = params.get("rank_label", "one replace chain")
    if axes is None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    else:
        left, right = axes
        fig = left.figure
    curves = result.curves
    handles = _band_lines(left, curves, "support", "policy")
    for _, df in curves.groupby("policy", sort=False):
        if df["support_theory"].notna().any():  # dashed black over the median line
            left.plot(df.generation, df.support_theory, color="black", ls=(0, (3, 3)),
                      lw=1.1, zorder=5)
    theory_handle = left.plot([], [], color="black", ls=(0, (3, 3)), lw=1.1,
                              label=params.get("theory_label",
                                               "exact expectation (replace, accumulate)"))[0]
    left.set_xscale("symlog", linthresh=1)
    left.set_yscale("log")
    left.set_xlabel("generation")
    left.set_ylabel("words with probability > 0")
    left.set_title("Surviving vocabulary")
    if curves["support_theory"].notna().any():
        handles.append(theory_handle)
    left.legend(handles=handles, fontsize=8, frameon=False)

    truth = result.extras["truth"]
    rank = np.arange(1, truth.size + 1)
    right.plot(rank, np.sort(truth)[::-1], color="black", lw=2.5, alpha=0.35,
               label=f"truth: {truth.size} words")
    later = [g for g in result.extras["ranks"] if g > 0]
    colours = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(later)))
    for colour, g in zip(colours, later, strict=True):
        p = result.extras["ranks"][g]
        p = np.sort(p[p > 0])[::-1]
        right.step(np.arange(1, p.size + 1), p, where="post", color=colour, lw=1.4,
                   label=f"generation {g}: {p.size} words left")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("rank (most frequent word first)")
    right.set_ylabel(f"probability ({rank_label})")
    right.set_title("The rank–frequency curve loses its tail")
    right.legend(fontsize=8, frameon=False)
    return fig
