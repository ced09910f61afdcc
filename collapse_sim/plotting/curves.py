"""Single-panel curves against generation: variance, W₂, policies, error sources."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._adapt import as_curves, as_result, is_result
from ._common import (
    _METRIC_LABELS,
    _TINY,
    LABELS,
    PALETTE,
    _axes,
    _band_lines,
    _check_columns,
)


def variance_collapse(curves, *, ax=None, group: str = "estimator", legend: bool = True):
    r"""Fitted variance against generation, log scale: simulated bands, theory overlaid.

    Per setting (one colour each): the 10–90% band over chains and the median (solid);
    the exact 10% and 90% quantiles (dashed, in the setting's colour) and the exact
    median (dashed, black); the exact mean :math:`E[\sigma^2_t]` (dotted, open circles),
    drawn on top of every other line: with :math:`n = 100` the MLE's mean
    :math:`(1 - 1/n)^t` runs along the unbiased estimator's median, where a plain line
    would be hidden. Every legend entry is styled as what it names.

    Parameters
    ----------
    curves : DataFrame, ExperimentResult, Simulation, or dict or list of Simulation
        Rows per setting and generation with columns ``generation``, ``sim_q10``,
        ``sim_q50``, ``sim_q90``, ``theory_q10``, ``theory_q50``, ``theory_q90``
        and ``sim_mean``/``theory_mean`` (see
        :func:`collapse_sim.experiments.variance_curves`), and a ``group`` column; or
        the ``gaussian`` preset's result; or your runs (each needs the ``variance``
        metric), one setting per run, divided by the truth's variance (generation 0).
        The exact theory is drawn for the runs it describes — a 1-D Gaussian refitted by
        ``GaussianFit`` under ``Replace`` without a generation stage — and left out
        (with its legend entries) for the others.
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
    curves = _gaussian_curves(curves, "variance_collapse")
    ax = _axes(ax)
    handles = _variance_collapse(curves, ax, group)
    if legend:
        ax.legend(handles=handles, fontsize=7.5, loc="lower left", frameon=True)
    return ax


def _gaussian_curves(curves, figure: str, *, need_w2: bool = False) -> pd.DataFrame:
    """The ``gaussian`` preset's table from a table, a result or runs (see ``_derive``)."""
    if isinstance(curves, pd.DataFrame):
        return curves
    if is_result(curves):
        return curves.curves
    return as_result(curves, "gaussian_demo", name=figure, need_w2=need_w2,
                     caller=figure).curves


def _has(df: pd.DataFrame, column: str) -> bool:
    """The column exists and has a finite value (a setting without theory has NaN)."""
    return column in df and bool(np.isfinite(df[column].to_numpy(dtype=float)).any())


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
        if _has(df, "theory_q50"):  # runs the exact theory does not describe have none
            ax.plot(g, df["theory_q50"], color="black", linestyle="--", linewidth=1, zorder=3)
            handles += ax.plot(g, df["theory_q10"], color=colour, linestyle="--",
                               linewidth=0.9, label=f"{label}: exact 10%, 90% quantiles")
            ax.plot(g, df["theory_q90"], color=colour, linestyle="--", linewidth=0.9)
        if _has(df, "theory_mean"):
            means.append((g, df["theory_mean"].to_numpy(), colour, label))
    step = max(len(means[0][0]) // 10, 1) if means else 1
    for i, (g, mean, colour, label) in enumerate(means):  # last: on top of every line
        handles += ax.plot(
            g, mean, color=colour, linestyle=":", linewidth=1.6, zorder=6, marker="o",
            markersize=6, markerfacecolor="white", markeredgecolor=colour,
            markeredgewidth=1.6, markevery=(step * (i + 1) // (len(means) + 1), step),
            label=f"{label}: exact mean E[σ²ₜ]")
    if any(_has(df, "theory_q50") for _, df in groups):
        handles += ax.plot([], [], color="black", linestyle="--", linewidth=1,
                           label="exact median (each setting)")
    ax.set_yscale("log")
    ax.set_xlabel("generation t")
    ax.set_ylabel(r"fitted variance $\sigma^2_t/\sigma^2_0$")
    ax.set_title("Variance of recursively refitted Gaussians")
    ax.grid(True, which="major", alpha=0.3)
    return handles


def w2_growth(curves, *, ax=None, group: str = "estimator"):
    r"""Mean squared Wasserstein-2 distance to the truth against generation, with theory.

    Parameters
    ----------
    curves : DataFrame, ExperimentResult, Simulation, or dict or list of Simulation
        A table with columns ``group``, ``generation``, ``w2sq_mean`` and
        ``theory_w2sq_mean`` (:func:`collapse_sim.experiments.variance_curves`), the
        ``gaussian`` preset's result, or your runs (each needs the ``variance`` and
        ``w2`` metrics; :math:`W_2^2` is divided by the truth's variance). The exact
        theory, and the MLE's limit :math:`2\sigma^2_0`, are drawn for the runs the
        theory describes (a 1-D Gaussian refitted by ``GaussianFit`` under ``Replace``).
    ax : matplotlib Axes, optional
    group : str
        Column that distinguishes the settings.

    Returns
    -------
    matplotlib Axes
    """
    curves = _gaussian_curves(curves, "w2_growth", need_w2=True)
    ax = _axes(ax)
    theory, limit = [], False
    for i, (key, df) in enumerate(curves.groupby(group, sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        g = df["generation"].to_numpy()
        ax.plot(g, df["w2sq_mean"], color=colour, linewidth=2,
                label=f"{LABELS.get(key, key)}: mean over chains")
        if _has(df, "theory_w2sq_mean"):
            ax.plot(g, df["theory_w2sq_mean"], color="black", linestyle="--", linewidth=1)
            estimator = df["fit_estimator"].iloc[0] if "fit_estimator" in df else key
            theory.append(estimator)
            limit = limit or estimator == "mle"
    if theory:
        ax.plot([], [], color="black", linestyle="--", linewidth=1,
                label="exact theory E[W₂²]")
    if limit:
        ax.axhline(2.0, color="grey", linewidth=0.8, linestyle=":")
        # the preset's runs climb far above the line; shorter runs of yours may end near
        # it, under the legend (upper left): then the note goes to the right
        right = "fit_estimator" in curves
        ax.annotate("2σ²₀: limit of the MLE's E[W₂²]", (0.98 if right else 0.02, 2.0),
                    xycoords=("axes fraction", "data"), va="top" if right else "bottom",
                    fontsize=8, color="grey", ha="right" if right else "left")
    ax.text(0.98, 0.02, "a few chains wander far: the average over a finite number\n"
            "of chains falls below a heavy-tailed expectation",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="grey")
    ax.set_xlabel("generation t")
    ax.set_ylabel(r"mean squared $W_2$ distance to the truth, $E[W_2^2]/\sigma^2_0$")
    ax.set_title("Distance from the truth: grows (unbiased), saturates (MLE)"
                 if set(theory) == {"mle", "unbiased"} else "Distance from the truth")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def policy_comparison(curves, *, metric: str = "variance", ax=None,
                      group: str = "policy", logx: bool = True, legend: bool = True):
    """Median and 10–90% band of a metric per training-data policy, on one axis.

    Parameters
    ----------
    curves : DataFrame, ExperimentResult, Simulation, or dict or list of Simulation
        Columns ``group``, ``generation``, ``{metric}_q10``, ``{metric}_q50`` and
        ``{metric}_q90`` (the ``policies`` preset's table, or its result), or your runs,
        labelled as :func:`collapse_sim.compare` labels them (each needs ``metric``);
        their ``variance`` is divided by the truth's (generation 0), as the axis label
        says.
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
    curves = as_curves(curves, "policy_comparison", group, (metric,),
                       relative=("variance",) if metric == "variance" else ())
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
    curves : DataFrame, ExperimentResult, Simulation, or dict or list of Simulation
        Columns ``group``, ``generation`` and ``{metric}_q10/_q50/_q90`` (the
        ``error_sources`` preset's table, or its result), or your runs (labelled as
        :func:`collapse_sim.compare` labels them; each needs ``metric``).
    floor : float, optional
        Expressivity floor, in the metric's units.
    metric : str
        ``"w2"`` (default) or another metric of the table.
    bands : sequence of str or None
        Settings whose 10–90% band is drawn (those present; when none of them is, the
        first and the last setting); ``None``: all.
    ax : matplotlib Axes, optional
    group : str
        Column naming the setting.

    Returns
    -------
    matplotlib Axes
    """
    curves = as_curves(curves, "error_sources", group, (metric,))
    _check_columns(curves, [group, "generation", *(f"{metric}_q{q}" for q in (10, 50, 90))])
    if bands is not None:  # the settings present; else the two extremes of those drawn
        present = list(dict.fromkeys(curves[group]))
        bands = [b for b in bands if b in present] or list(dict.fromkeys(
            [present[0], present[-1]]))
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
