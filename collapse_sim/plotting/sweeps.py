"""Figures of sweep tables (:func:`collapse_sim.sweep`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import PALETTE, _axes


def sweep_summary(frame: pd.DataFrame, *, x: str = "n_samples", y: str = "collapse_generation",
                  hue: str | None = "policy", ax=None):
    """One summary of a :func:`~collapse_sim.sweep` against one parameter, a line per another.

    Lines join the median over seeds; when there are several seeds, each seed's
    value is a faint dot. A missing ``collapse_generation`` (no collapse within
    the run) counts as later than any generation: a median that is missing is
    drawn as an open triangle on the top edge.

    Parameters
    ----------
    frame : DataFrame
        The table returned by :func:`collapse_sim.sweep`.
    x : str
        Column on the horizontal axis (log scale when positive and spanning
        a factor of 10 or more).
    y : str
        Summary column on the vertical axis (log scale when positive and spanning
        a factor of 100 or more).
    hue : str or None
        Column whose values get one line each; ``None``, or a column the table
        lacks, draws a single line.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    for name in (x, y):
        if name not in frame.columns:
            raise ValueError(f"the sweep table has no column {name!r}; it has "
                             f"{', '.join(map(str, frame.columns))}")
    ax = _axes(ax)
    numeric_x = pd.api.types.is_numeric_dtype(frame[x])
    order = list(dict.fromkeys(frame[x]))
    if numeric_x:
        order = sorted(order)
    position = {v: (v if numeric_x else i) for i, v in enumerate(order)}
    groups = frame.groupby(hue, sort=False) if hue in frame.columns else [(None, frame)]
    values = frame[y].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    log_y = bool(finite.size and finite.min() > 0 and finite.max() >= 100 * finite.min())
    top = finite.max() if finite.size else 1.0
    span = (finite.max() - finite.min()) if finite.size else 1.0
    edge = top * 2.0 if log_y else top + 0.1 * (span or abs(top) or 1.0)  # "never" row
    xvals = np.array([position[v] for v in order], dtype=float)
    log_x = bool(numeric_x and xvals.min() > 0 and xvals.max() >= 10 * xvals.min())
    groups = list(groups)
    never = False
    for i, (key, df) in enumerate(groups):
        colour = PALETTE[i % len(PALETTE)]
        label = None if key is None else str(key)
        xs = np.array([position[v] for v in df[x]], dtype=float)
        ys = df[y].to_numpy(dtype=float)
        if df.groupby(x).size().max() > 1:
            ax.scatter(xs, ys, s=10, color=colour, alpha=0.35, linewidths=0)
        # NaN (e.g. never collapsed) ranks above everything in the median
        med = (pd.DataFrame({"x": xs, "y": np.where(np.isnan(ys), np.inf, ys)})
               .groupby("x", sort=True)["y"].median())
        ok = np.isfinite(med.to_numpy())
        ax.plot(med.index[ok], med.to_numpy()[ok], color=colour, marker="o", markersize=4,
                linewidth=1.8, label=label)
        if (~ok).any():
            never = True
            # side by side, so that settings that all never collapse stay visible
            shift = (i - (len(groups) - 1) / 2) * 0.025
            gx = med.index[~ok].to_numpy(dtype=float)
            gx = gx * np.exp(shift * np.log(xvals.max() / xvals.min())) if log_x else (
                gx + shift * max(np.ptp(xvals), 1.0))
            ax.scatter(gx, np.full(gx.size, edge), marker="^", facecolors="none",
                       edgecolors=colour, s=40, zorder=4, clip_on=False)
    if never:
        ax.axhline(edge, color="grey", linewidth=0.8, linestyle=":")
        ax.scatter([], [], marker="^", facecolors="none", edgecolors="black",
                   label="never within the run (top row)")
    if log_x:
        ax.set_xscale("log")
        ax.minorticks_off()
    if numeric_x:
        ax.set_xticks(xvals, [f"{v:g}" for v in xvals])
    else:
        ax.set_xticks(range(len(order)), [str(v) for v in order], rotation=20, ha="right")
    if log_y:
        ax.set_yscale("log")
    ylabels = {
        "collapse_generation": "generation at which the median variance ratio\nfalls below "
                               + (f"{frame.attrs['threshold']:g}" if "threshold" in frame.attrs
                                  else "the threshold"),
        "final_variance_ratio": "median variance ratio at the last generation",
    }
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabels.get(y, y.replace("_", " ")))
    ax.set_title(f"{y.replace('_', ' ')} against {x.replace('_', ' ')}")
    ax.grid(True, which="major", alpha=0.3)
    if hue in frame.columns or never:
        ax.legend(fontsize=8, title=hue if hue in frame.columns else None, title_fontsize=8)
    return ax
