"""Single-panel curves against generation: variance, W₂, policies, error sources."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import (
    _METRIC_LABELS,
    _TINY,
    LABELS,
    PALETTE,
    _axes,
    _band_lines,
    _check_columns,
)
from .simulation import _as_curves


def variance_collapse(curves: pd.DataFrame, *, ax=None, group: str = "estimator",
                      legend: bool = True):
    r"""Fitted variance against generation, log scale: simulated bands, theory overlaid.

    Per setting (one colour each): the 10–90% band over chains and the median (solid);
    the exact 10% and 90% quantiles (dashed, in the setting's colour) and the exact
    median (dashed, black); the exact mean :math:`E[\sigma^2_t]` (dotted, open circles),
    drawn on top of every other line: with :math:`n = 100` the MLE's mean
    :math:`(1 - 1/n)^t` runs along the unbiased estimator's median, where a plain line
    would be hidden. Every legend entry is styled as what it names.

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
    legend : bool
        Draw the legend on the axes (:func:`~collapse_sim.plotting.gaussian_demo` draws
        one below its panels instead).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    handles = _variance_collapse(curves, ax, group)
    if legend:
        ax.legend(handles=handles, fontsize=7.5, loc="lower left", frameon=True)
    return ax


def _variance_collapse(curves: pd.DataFrame, ax, group: str) -> list:
    """Draw :func:`variance_collapse` on ``ax``; its legend handles: per setting the band,
    the median and the exact quantiles, then per setting the exact mean, then the exact
    median (so a three-column legend of two settings reads one setting per column)."""
    groups = list(curves.groupby(group, sort=False))
    handles, means = [], []
    for i, (key, df) in enumerate(groups):
        colour = PALETTE[i % len(PALETTE)]
        g = df["generation"].to_numpy()
        label = LABELS.get(key, str(key))
        handles.append(ax.fill_between(
            g, np.maximum(df["sim_q10"], _TINY), np.maximum(df["sim_q90"], _TINY),
            color=colour, alpha=0.18, linewidth=0, label=f"{label}: 10–90% of chains"))
        handles += ax.plot(g, np.maximum(df["sim_q50"], _TINY), color=colour, linewidth=2,
                           label=f"{label}: median")
        ax.plot(g, df["theory_q50"], color="black", linestyle="--", linewidth=1, zorder=3)
        handles += ax.plot(g, df["theory_q10"], color=colour, linestyle="--", linewidth=0.9,
                           label=f"{label}: exact 10%, 90% quantiles")
        ax.plot(g, df["theory_q90"], color=colour, linestyle="--", linewidth=0.9)
        means.append((g, df["theory_mean"].to_numpy(), colour, label))
    step = max(len(means[0][0]) // 10, 1) if means else 1
    for i, (g, mean, colour, label) in enumerate(means):  # last: on top of every line
        handles += ax.plot(
            g, mean, color=colour, linestyle=":", linewidth=1.6, zorder=6, marker="o",
            markersize=6, markerfacecolor="white", markeredgecolor=colour,
            markeredgewidth=1.6, markevery=(step * (i + 1) // (len(means) + 1), step),
            label=f"{label}: exact mean E[σ²ₜ]")
    handles += ax.plot([], [], color="black", linestyle="--", linewidth=1,
                       label="exact median (each setting)")
    ax.set_yscale("log")
    ax.set_xlabel("generation t")
    ax.set_ylabel(r"fitted variance $\sigma^2_t/\sigma^2_0$")
    ax.set_title("Variance of recursively refitted Gaussians")
    ax.grid(True, which="major", alpha=0.3)
    return handles


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


def policy_comparison(curves, *, metric: str = "variance", ax=None,
                      group: str = "policy", logx: bool = True, legend: bool = True):
    """Median and 10–90% band of a metric per training-data policy, on one axis.

    Parameters
    ----------
    curves : DataFrame, or dict of str to Simulation, or list of Simulation
        Columns ``group``, ``generation``, ``{metric}_q10``, ``{metric}_q50`` and
        ``{metric}_q90`` (the ``policies`` preset's table), or your runs, labelled as
        :func:`collapse_sim.compare` labels them; their ``variance`` is divided by
        the truth's (generation 0), as the axis label says.
    metric : {"variance", "w2", "kl"}
        What to draw. Variance and KL use a log y axis (collapse spans decades),
        W₂ a linear one.
    ax : matplotlib Axes, optional
    group : str
        Column naming the policy.
    logx : bool
        Log generation axis from generation 1 (early differences stay visible).
    legend : bool
        Draw the legend on the axes (a multi-panel figure may want one legend for all).

    Returns
    -------
    matplotlib Axes
    """
    curves = _as_curves(curves, metric, group, relative=metric == "variance")
    _check_columns(curves, [group, "generation", *(f"{metric}_q{q}" for q in (10, 50, 90))])
    ax = _axes(ax)
    handles = _band_lines(ax, curves, metric, group, start=1 if logx else 0)
    if logx:
        ax.set_xscale("log")
    if metric in ("variance", "kl"):
        ax.set_yscale("log")
    if metric == "variance":
        handles.append(ax.axhline(1.0, color="black", lw=0.8, ls="--", zorder=0,
                                  label="the truth's variance"))
    ax.set_xlabel("generation t" + (" (log scale)" if logx else ""))
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric)
                  + (", log scale" if ax.get_yscale() == "log" else ""))
    ax.set_title({"variance": "Fitted variance under each policy",
                  "w2": "Distance from the truth under each policy"}.get(metric, metric))
    ax.grid(True, which="major", alpha=0.3)
    if legend:
        ax.legend(handles=handles, fontsize=8)
    return ax


#: Colours of the four settings of :func:`error_sources`.
ERROR_SOURCE_COLOURS = {"statistical": PALETTE[0], "expressivity": PALETTE[1],
                        "approximation": PALETTE[2], "all three": PALETTE[3]}


def error_sources(curves, *, floor: float | None = None, metric: str = "w2",
                  bands=("statistical", "all three"), ax=None, group: str = "source"):
    r"""Distance to the truth with each error source alone and all three compounded.

    Median (line) and 10–90% band across chains of ``metric`` against generation,
    log–log, one colour per setting (the ``error_sources`` preset's table: statistical,
    expressivity, approximation, all three). ``floor`` draws the expressivity floor
    :math:`W_2(\text{truth}, q^*)` of the best Gaussian :math:`q^*` as a dashed line.
    By default only the two extreme settings get a band (four overlapping bands hide
    each other).

    Parameters
    ----------
    curves : DataFrame, or dict of str to Simulation, or list of Simulation
        Columns ``group``, ``generation`` and ``{metric}_q10/_q50/_q90``, or your runs
        (labelled as :func:`collapse_sim.compare` labels them).
    floor : float, optional
        Expressivity floor, in the metric's units.
    metric : str
        ``"w2"`` (default) or another metric of the table.
    bands : sequence of str or None
        Settings whose 10–90% band is drawn; ``None``: all.
    ax : matplotlib Axes, optional
    group : str
        Column naming the setting.

    Returns
    -------
    matplotlib Axes
    """
    curves = _as_curves(curves, metric, group)
    _check_columns(curves, [group, "generation", *(f"{metric}_q{q}" for q in (10, 50, 90))])
    ax = _axes(ax)
    labels = {"statistical": "statistical only (exact fit, Gaussian truth)",
              "expressivity": "+ expressivity (Gaussian fit, bimodal truth)",
              "approximation": "+ approximation (SGD fit, Gaussian truth)",
              "all three": "all three (SGD fit, bimodal truth)"}
    named = curves.assign(**{group: curves[group].map(lambda k: labels.get(k, k))})
    colours = {labels.get(k, k): c for k, c in ERROR_SOURCE_COLOURS.items()}
    handles = _band_lines(ax, named, metric, group, start=1, colours=colours,
                          bands=None if bands is None else {labels.get(b, b) for b in bands},
                          band_label="band: 10–90% of chains (line: median)" + (
                              "" if bands is None else "\nshown for: " + ", ".join(bands)))
    if floor is not None:
        ax.axhline(floor, color="black", ls="--", lw=1.2, zorder=4)
        name = {"w2": "W₂", "kl": "KL"}.get(metric, metric)
        ax.annotate(f"expressivity floor: {name} of the n → ∞ Gaussian fit = {floor:.2g}",
                    (0.98, floor), xycoords=("axes fraction", "data"), ha="right",
                    va="top", fontsize=8, xytext=(0, -3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("generation t (log scale)")
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric) + ", log scale")
    ax.set_title("Three sources of error, alone and compounded")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    return ax
