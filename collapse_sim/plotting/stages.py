"""The figure of generation stages: diversity under biased sampling and curation."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from ._common import PALETTE, _band_lines


def sampling_bias(result, *, axes=None):
    """The ``sampling_bias`` preset's figure (2 × 2).

    Columns: training on synthetic data only (replace), and with 10% fresh real data
    every generation. Top row: the fitted variance of the refitted Gaussian (log
    scale); bottom row: the entropy of the refitted Zipf vocabulary. One line per way
    of sampling (median over chains, 10–90% band); dashed black: the exact expectation
    of the variance (faithful, temperature, truncation) and the infinite-sample
    entropy under temperature. ``axes``: a 2 × 2 array of matplotlib Axes (default: a
    new figure).

    Returns
    -------
    matplotlib Figure
    """
    if axes is None:
        fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), layout="constrained",
                                 sharex=True, sharey="row")
    else:
        fig = axes[0][0].figure
    curves = result.curves
    stages = list(dict.fromkeys(curves["stage"]))
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(stages)}
    regimes = list(dict.fromkeys(curves["regime"]))
    handles = []
    for col, regime in enumerate(regimes):
        part = curves[curves["regime"] == regime]
        for row, (metric, label) in enumerate((("variance", "fitted variance σ²_t"),
                                               ("entropy", "entropy of the vocabulary (nats)"))):
            ax = axes[row][col]
            handles = _band_lines(ax, part, metric, "stage", colours=colours)
            for _, df in part.groupby("stage", sort=False):
                theory = df[f"{metric}_theory"]
                if theory.notna().any():
                    ax.plot(df["generation"], theory, color="black", ls=(0, (3, 3)), lw=1.0,
                            zorder=5)
            if metric == "variance":
                ax.set_yscale("log")
                ax.set_title(f"Gaussian, {regime}")
            else:
                ax.set_title(f"Zipf vocabulary, {regime}")
                ax.set_xlabel("generation")
            if col == 0:
                ax.set_ylabel(label)
    handles.append(Line2D([], [], color="black", ls=(0, (3, 3)), lw=1.0,
                          label="exact expectation / infinite-sample map"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9,
               frameon=False)
    return fig
