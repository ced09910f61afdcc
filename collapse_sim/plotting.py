"""Figures (the only module that imports matplotlib).

Every function takes ``ax=`` (a new figure is made when it is ``None``) and
returns the Axes it drew on. Colours are the Okabe–Ito palette, which stays
distinguishable under the common colour-vision deficiencies.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: Okabe–Ito colours, in the order settings are drawn.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LABELS = {"mle": "MLE (divide by n)", "unbiased": "unbiased (divide by n−1)"}
_TINY = 1e-300


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    return ax


def variance_collapse(curves: pd.DataFrame, *, ax=None, group: str = "estimator"):
    """Fitted variance against generation, log scale: simulated bands, theory overlaid.

    Parameters
    ----------
    curves : DataFrame
        Rows per setting and generation with columns ``generation``, ``sim_q10``,
        ``sim_q50``, ``sim_q90``, ``theory_q10``, ``theory_q50``, ``theory_q90``
        and ``sim_mean``/``theory_mean`` (see
        :func:`collapse_sim.experiments.variance_curves`), and a ``group`` column.
    ax : matplotlib Axes, optional
    group : str
        Column that distinguishes the settings.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    for i, (key, df) in enumerate(curves.groupby(group, sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        g = df["generation"].to_numpy()
        label = LABELS.get(key, str(key))
        ax.fill_between(g, np.maximum(df["sim_q10"], _TINY), np.maximum(df["sim_q90"], _TINY),
                        color=colour, alpha=0.18, linewidth=0,
                        label=f"{label}: 10–90% of chains")
        ax.plot(g, np.maximum(df["sim_q50"], _TINY), color=colour, linewidth=2,
                label=f"{label}: median")
        ax.plot(g, df["theory_q50"], color="black", linestyle="--", linewidth=1)
        for q in ("theory_q10", "theory_q90"):
            ax.plot(g, df[q], color=colour, linestyle="--", linewidth=0.9)
        ax.plot(g, df["theory_mean"], color=colour, linestyle=":", linewidth=2.2, zorder=5,
                label=f"{label}: E[σ²ₜ] (theory)")
    ax.plot([], [], color="black", linestyle="--", linewidth=1,
            label="exact theory: 10%, 50%, 90% quantiles")
    ax.set_yscale("log")
    ax.set_xlabel("generation t")
    ax.set_ylabel(r"fitted variance $\sigma^2_t/\sigma^2_0$")
    ax.set_title("Variance of recursively refitted Gaussians")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", frameon=True)
    return ax


def w2_growth(curves: pd.DataFrame, *, ax=None, group: str = "estimator"):
    """Mean squared Wasserstein-2 distance to the truth against generation, with theory.

    Uses columns ``w2sq_mean`` and ``theory_w2sq_mean`` of ``curves``.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    for i, (key, df) in enumerate(curves.groupby(group, sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        g = df["generation"].to_numpy()
        ax.plot(g, df["w2sq_mean"], color=colour, linewidth=2,
                label=f"{LABELS.get(key, key)}: mean over chains")
        ax.plot(g, df["theory_w2sq_mean"], color="black", linestyle="--", linewidth=1)
    ax.plot([], [], color="black", linestyle="--", linewidth=1, label="exact theory E[W₂²]")
    ax.axhline(2.0, color="grey", linewidth=0.8, linestyle=":")
    ax.annotate("2σ²₀: limit of the MLE's E[W₂²]", (0.02, 2.0),
                xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="grey")
    ax.text(0.98, 0.02, "a few chains wander far: the average over a finite number\n"
            "of chains falls below a heavy-tailed expectation",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="grey")
    ax.set_xlabel("generation t")
    ax.set_ylabel(r"mean squared $W_2$ distance to the truth, $E[W_2^2]/\sigma^2_0$")
    ax.set_title("Distance from the truth: grows (unbiased), saturates (MLE)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def gaussian_demo(curves: pd.DataFrame, *, suptitle: str | None = None):
    """The two-panel demo figure: :func:`variance_collapse` and :func:`w2_growth`.

    Returns
    -------
    matplotlib Figure
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    variance_collapse(curves, ax=left)
    w2_growth(curves, ax=right)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def figure_for(result):
    """The figure of an :class:`~collapse_sim.experiments.ExperimentResult`, by preset name.

    Returns
    -------
    matplotlib Figure
    """
    if result.name == "gaussian":
        return gaussian_demo(result.curves)
    raise ValueError(f"no figure for preset {result.name!r}")
