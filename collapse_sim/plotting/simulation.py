"""Figures of your own runs: one run against generation, and several runs side by side.

:meth:`Simulation.plot <collapse_sim.Simulation.plot>` and :func:`collapse_sim.compare`
call :func:`plot_simulation` and :func:`comparison`; both read what to draw from the
run itself (its metrics, its configuration, the theory registered for it with
:func:`collapse_sim.theory.register_overlay`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..results import Simulation, _as_runs, _describe, _quantiles
from ._common import PALETTE, _axes, _band_lines

# axis labels of the common metrics (others: the metric's registered description)
_AXIS_LABELS = {
    "variance": r"total variance of the fit, tr $\Sigma_t$",
    "mean_shift": r"distance of the fitted mean from the truth's, $\|m_t - \mu\|$",
    "w2": r"$W_2$ distance to the truth (units of x)",
    "kl": r"KL(truth ‖ model$_t$) (nats)",
    "nll": "mean −log q(x) of held-out real data (nats)",
    "l2": r"squared $L_2$ distance to the truth, $\int (p - q_t)^2$",
    "entropy": "entropy of the model (nats)",
    "gini_simpson": r"Gini–Simpson index $1 - \sum_j q_j^2$",
    "support": "categories with q > 0",
    "tv": "total variation distance to the truth",
    "test_error": r"test error $(\hat w - w)^\top \Sigma_x (\hat w - w)$",
    "perplexity": "perplexity of held-out real text",
}


def _metric_label(metric: str, config: dict | None = None) -> str:
    """Axis label of ``metric``: a readable one for the common metrics, else its registered
    description for the run's truth family (``config["truth"]["type"]``), else its name."""
    truth = (config or {}).get("truth") or {}
    cov = truth.get("cov", truth.get("covs"))
    if metric == "variance" and cov is not None and np.shape(cov)[-1:] == (1,):
        return r"fitted variance $\sigma^2_t$"  # 1-D: the trace is the variance
    if metric in _AXIS_LABELS:
        return _AXIS_LABELS[metric]
    from .. import registry

    specs = list(registry._SPECS.get(metric, {}).values())
    specs.sort(key=lambda spec: spec.truth_type.__name__ != truth.get("type"))  # run's first
    doc = next((spec.doc for spec in specs if spec.doc), "")
    return f"{metric}: {doc}" if doc else metric


def _log_scale(medians: list[np.ndarray], bands: list[np.ndarray]) -> bool:
    """The rule of :func:`plot_simulation`: every drawn value positive and finite, and the
    median spanning at least a factor of 10."""
    values = np.concatenate([np.ravel(v) for v in (*medians, *bands)])
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        return False
    med = np.concatenate([np.ravel(m) for m in medians])
    return bool(med.max() >= 10 * med.min())


def _truth_level(sims) -> float | None:
    """Row 0 when every chain of every run has the same non-zero finite value there (the
    truth's own value, worth a reference line), else ``None``."""
    rows = np.concatenate([np.ravel(sim_metric[0]) for sim_metric in sims])
    value = rows[0]
    if np.isfinite(value) and value != 0 and np.all(rows == value):
        return float(value)
    return None


def _title(config: dict) -> str:
    parts = [_describe(config.get(key)) for key in ("truth", "fitter", "policy")]
    if "generation" in config:
        parts.append(_describe(config["generation"]))
    if isinstance(config.get("n_samples"), int):
        parts.append(f"n = {config['n_samples']}")
    return textwrap.fill(", ".join(p for p in parts if p), 80)


def plot_simulation(sim: Simulation, metric: str = "variance", *, ax=None, theory: bool = True,
                    band: Sequence[float] = (0.1, 0.9), logy: bool | None = None,
                    logx: bool = False, colour: str | None = None):
    r"""One metric of one run against generation: median, band across chains, theory.

    Draws the median across chains (solid line) and the ``band`` quantiles (10–90% by
    default, shaded), a grey line at the truth's own value when generation 0 has one
    (``variance``: the truth's variance; not for distances, which are 0 there), and,
    with ``theory=True``, the theory registered for the run's configuration
    (:func:`collapse_sim.theory.overlay_for`): its median and band quantiles dashed
    black, its mean dotted black next to the simulated mean (dotted, in colour).

    **Log scale.** With ``logy=None`` the y axis is logarithmic when every drawn quantile
    is positive and finite and the simulated median spans at least a factor of 10 over
    the generations drawn — a collapse towards 0 (the variance of a refitted Gaussian)
    or a growth over decades; otherwise linear (distances, which start at 0; metrics
    that stay within a decade; metrics with infinite values, which are left out of the
    drawing and noted on the axes).

    Parameters
    ----------
    sim : Simulation
    metric : str
        A key of ``sim.metrics``.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    theory : bool
        Overlay the registered theory, if one applies.
    band : (float, float)
        Quantile levels of the shaded band.
    logy : bool or None
        Force a log or linear y axis (``None``: the rule above).
    logx : bool
        Log generation axis, from generation 1.
    colour : str, optional
        Colour of the simulated curves (default: the first of :data:`PALETTE`).

    Returns
    -------
    matplotlib Axes
    """
    if not isinstance(sim, Simulation):
        raise TypeError(f"sim must be a Simulation, got {type(sim).__name__}")
    arr = sim._metric(metric)
    if (isinstance(band, str | bytes) or len(band) != 2
            or not 0.0 <= float(band[0]) < float(band[1]) <= 1.0):
        raise ValueError(f"band must be two quantile levels 0 <= low < high <= 1, got {band!r}")
    lo_q, hi_q = float(band[0]), float(band[1])
    ax = _axes(ax)
    colour = colour or PALETTE[0]
    start = 1 if logx else 0
    g = np.arange(start, sim.generations + 1)
    lo, med, hi = _quantiles(arr[start:], (lo_q, 0.5, hi_q))
    overlay = None
    if theory:
        from ..theory.overlays import overlay_for

        overlay = overlay_for(metric, sim.config)
    if logy is None:
        logy = _log_scale([med], [lo, hi])

    def shown(values):  # non-finite values (and <= 0 on a log axis) are left out
        keep = np.isfinite(values) & ((values > 0) if logy else True)
        return np.where(keep, values, np.nan)

    pct = f"{100 * lo_q:g}–{100 * hi_q:g}%"
    ax.fill_between(g, shown(lo), shown(hi), color=colour, alpha=0.2, lw=0, zorder=1,
                    label=f"{pct} of {sim.chains} chains")
    ax.plot(g, shown(med), color=colour, lw=2.2, zorder=3, label="median of the chains")
    level = _truth_level([arr])
    if level is not None and not (logy and level <= 0):
        ax.axhline(level, color="grey", lw=0.9, ls="-", zorder=0,
                   label=f"the truth's value ({level:.3g})")
    if overlay is not None:
        label, curves = overlay
        names = {f"q{round(100 * q):02d}" for q in (lo_q, hi_q)}
        ends = [curves[k][start:] for k in sorted(names) if k in curves]
        for i, values in enumerate(ends):
            ax.plot(g, shown(values), color="black", ls="--", lw=1.0, zorder=4,
                    label=None if i else f"{pct} of chains, {label}")
        if "q50" in curves:
            ax.plot(g, shown(curves["q50"][start:]), color="black", ls="--", lw=1.6,
                    zorder=4, label=f"median, {label}")
        if "mean" in curves:
            mean = np.mean(arr[start:], axis=1)
            # a skewed law (mean well above the median): the mean over finitely many
            # chains is noisy and mostly below its expectation; say so
            skewed = np.isfinite(mean[-1]) and med[-1] > 0 and mean[-1] > 2 * med[-1]
            ax.plot(g, shown(mean), color=colour, ls=":", lw=2.0, zorder=3,
                    label="mean of the chains" + (
                        "\n(skewed: a few chains carry it)" if skewed else ""))
            ax.plot(g, shown(curves["mean"][start:]), color="black", ls=":", lw=1.6,
                    zorder=4, label=f"mean, {label}")
    infinite = np.flatnonzero(~np.isfinite(med))
    if infinite.size:  # say what is missing (KL once a category died is +inf)
        share = np.mean(~np.isfinite(arr[-1]))
        nowhere = not np.isfinite(med[1:] if start == 0 else med).any()
        ax.text(0.5 if nowhere else 0.99, 0.5 if nowhere else 0.02,
                f"median infinite from generation {g[infinite[0]]} on (not drawn);\n"
                f"at generation {sim.generations}, {share:.0%} of chains are infinite",
                transform=ax.transAxes, ha="center" if nowhere else "right",
                va="center" if nowhere else "bottom", fontsize=9 if nowhere else 8,
                color="black" if nowhere else "grey")
    if g.size > 1:
        ax.set_xlim(g[0], g[-1])
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("generation t" + (" (log scale)" if logx else ""))
    ax.set_ylabel(_metric_label(metric, sim.config) + (", log scale" if logy else ""))
    ax.set_title(_title(sim.config), fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def curves_from_runs(runs, metric: str, group: str = "run", *,
                     relative: bool = False) -> pd.DataFrame:
    """The long table the curve figures read, from your runs.

    Parameters
    ----------
    runs : dict of str to Simulation, or list of Simulation
        As :func:`collapse_sim.compare` takes them.
    metric : str
        A metric every run computed.
    group : str
        Name of the column holding each run's label.
    relative : bool
        Divide each run's values by its generation-0 value (the truth's; ``variance``
        becomes :math:`\\sigma^2_t/\\sigma^2_0`).

    Returns
    -------
    DataFrame
        Columns ``group``, ``generation``, ``{metric}_q10``, ``{metric}_q50``,
        ``{metric}_q90``: one row per run and generation.
    """
    from ..results import _runs_quantiles

    runs = _as_runs(runs)
    longest = max(sim.generations for sim in runs.values())
    table = _runs_quantiles(runs, metric, generations=range(longest + 1))
    if relative:
        first = {label: float(np.median(sim.metrics[metric][0])) for label, sim in runs.items()}
        table = table.div(table.index.get_level_values("run").map(first), axis=0)
    table.columns = [f"{metric}_{c}" for c in table.columns]
    return table.reset_index().rename(columns={"run": group})


def comparison(runs, metric: str = "variance", *, ax=None, logx: bool = False,
               logy: bool | None = None, theory: bool = False, legend: bool = True):
    """Median and 10–90% band of ``metric`` for several runs, on one axis.

    One colour per run (the median solid, the band shaded with thin edges); a grey line
    at the truth's value when all runs share it at generation 0; the y axis log by the
    rule of :func:`plot_simulation`, applied to all runs together. With ``theory=True``,
    the registered theory's mean (:func:`collapse_sim.theory.register_overlay`) of every
    run that has one, dotted in the run's colour.

    Parameters
    ----------
    runs : dict of str to Simulation, or list of Simulation
        As :func:`collapse_sim.compare` takes them.
    metric : str
    ax : matplotlib Axes, optional
    logx : bool
        Log generation axis from generation 1.
    logy : bool or None
        Force the y scale (``None``: automatic).
    theory : bool
    legend : bool

    Returns
    -------
    matplotlib Axes
    """
    runs = _as_runs(runs)
    curves = curves_from_runs(runs, metric)
    ax = _axes(ax)
    start = 1 if logx else 0
    drawn = curves[curves["generation"] >= start]
    if logy is None:
        logy = _log_scale([drawn[f"{metric}_q50"].to_numpy()],
                          [drawn[f"{metric}_q10"].to_numpy(), drawn[f"{metric}_q90"].to_numpy()])
    handles = _band_lines(ax, curves, metric, "run", start=start)
    level = _truth_level([sim.metrics[metric] for sim in runs.values()])
    if level is not None:
        handles.append(ax.axhline(level, color="grey", lw=0.9, zorder=0,
                                  label=f"the truth's value ({level:.3g})"))
    if theory:
        from ..theory.overlays import overlay_for

        drew = []
        for i, (name, sim) in enumerate(runs.items()):
            found = overlay_for(metric, sim.config)
            if found is not None and "mean" in found[1]:
                g = np.arange(start, sim.generations + 1)
                ax.plot(g, found[1]["mean"][start:], color=PALETTE[i % len(PALETTE)], ls=":",
                        lw=1.8, zorder=4)
                drew.append(name)
        if drew:
            handles.append(ax.plot([], [], color="black", ls=":", lw=1.8,
                                   label=f"dotted: mean, theory ({', '.join(drew)})")[0])
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlim(start, max(start + 1, curves["generation"].max()))
    ax.set_xlabel("generation t" + (" (log scale)" if logx else ""))
    config = next(iter(runs.values())).config
    ax.set_ylabel(_metric_label(metric, config) + (", log scale" if logy else ""))
    ax.set_title(f"{metric} of {len(runs)} runs: median and 10–90% of chains", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if legend:
        ax.legend(handles=handles, fontsize=8)
    return ax
