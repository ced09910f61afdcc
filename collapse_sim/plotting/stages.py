"""The figure of generation stages: diversity under biased sampling and curation."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from ._adapt import as_result
from ._common import PALETTE, _band_lines

#: Rows of the figure: metric, axis label, what the panels of the preset are titled by.
_ROWS = {"variance": ("fitted variance σ²_t", "Gaussian"),
         "entropy": ("entropy of the vocabulary (nats)", "Zipf vocabulary")}


def sampling_bias(result, *, axes=None):
    """The ``sampling_bias`` preset's figure (2 × 2).

    Columns: training on synthetic data only (replace), and with 10% fresh real data
    every generation. Top row: the fitted variance of the refitted Gaussian (log
    scale); bottom row: the entropy of the refitted Zipf vocabulary. One line per way
    of sampling (median over chains, 10–90% band); dashed black: the exact expectation
    of the variance (faithful, temperature, truncation) and the infinite-sample
    entropy under temperature.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``sampling_bias`` preset's result, or your runs: a row of panels for the
        ``variance`` (Gaussian runs) and one for the ``entropy`` (categorical runs), as
        far as the runs computed them; a column per policy; one line per generation
        stage (``Temperature(tau=0.9)``, ``faithful`` without one; the run's label where
        two runs of a panel share a stage). Exact expectations are drawn where a
        registered theory holds (:func:`collapse_sim.theory.overlay_for`).
    axes : 2-D array of matplotlib Axes, optional
        Rows × columns as above (2 × 2 for the preset; default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "sampling_bias")
    params = getattr(result, "params", None) or {}
    curves = result.curves
    rows = params.get("rows", list(_ROWS))
    regimes = list(dict.fromkeys(curves["regime"]))
    if axes is None:
        fig, axes = plt.subplots(len(rows), len(regimes),
                                 figsize=(6.5 * len(regimes), 0.6 + 3.95 * len(rows)),
                                 layout="constrained", sharex=True, sharey="row",
                                 squeeze=False)
    else:
        fig = axes[0][0].figure
    stages = list(dict.fromkeys(curves["stage"]))
    colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(stages)}
    handles, theory_drawn = {}, False
    for col, regime in enumerate(regimes):
        part = curves[curves["regime"] == regime]
        for row, metric in enumerate(rows):
            label, kind = _ROWS[metric]
            kind = params.get("row_titles", {}).get(metric, kind)
            ax = axes[row][col]
            drawn = part[part[f"{metric}_q50"].notna()]  # your runs: those with the metric
            for line in _band_lines(ax, drawn, metric, "stage", colours=colours):
                handles.setdefault(line.get_label(), line)  # every stage once, band last
            for _, df in drawn.groupby("stage", sort=False):
                theory = df[f"{metric}_theory"]
                if theory.notna().any():
                    theory_drawn = True
                    ax.plot(df["generation"], theory, color="black", ls=(0, (3, 3)), lw=1.0,
                            zorder=5)
            if metric == "variance":
                ax.set_yscale("log")
            ax.set_title(f"{kind}, {regime}")
            if row == len(rows) - 1:
                ax.set_xlabel("generation")
            if col == 0:
                ax.set_ylabel(label)
    band = handles.pop(next(k for k in handles if k.startswith("band")))
    handles = [*handles.values(), band]
    if theory_drawn:
        handles.append(Line2D([], [], color="black", ls=(0, (3, 3)), lw=1.0,
                              label="exact expectation / infinite-sample map"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, 2 * len(regimes)),
               fontsize=9,
               frameon=False)
    if params.get("suptitle"):
        fig.suptitle(params["suptitle"], fontsize=10)
    return fig
