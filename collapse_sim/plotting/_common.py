"""What the figures share: colours, labels, axes helpers and quantile bands."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

#: Okabe–Ito colours, in the order settings are drawn.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LABELS = {"mle": "MLE (divide by n)", "unbiased": "unbiased (divide by n−1)"}
_TINY = 1e-300
#: Colour of the truth in density plots (drawn as a grey area with a black outline).
_TRUTH_FILL = "#BBBBBB"


_METRIC_LABELS = {
    "variance": r"fitted variance $\sigma^2_t/\sigma^2_0$",
    "w2": r"$W_2$ distance to the truth (units of x)",
    "kl": r"KL(truth ‖ model$_t$) (nats)",
}


def _two_axes(axes, figsize, **kwargs):
    """``(figure, (left, right))``: new axes side by side, or the two given ones."""
    if axes is None:
        fig, pair = plt.subplots(1, 2, figsize=figsize, layout="constrained", **kwargs)
        return fig, pair
    if len(axes) != 2:
        raise ValueError(f"axes must be two matplotlib Axes, got {len(axes)}")
    return axes[0].figure, tuple(axes)


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    return ax


def _check_columns(curves, needed, name="curves"):
    if not isinstance(curves, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(curves).__name__}")
    missing = [c for c in needed if c not in curves.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {missing}")


def _band_lines(ax, curves: pd.DataFrame, metric: str, group: str, *, start: int = 0,
                colours=None, bands=None,
                band_label: str = "band: 10–90% of chains\n(line: median)") -> list:
    """Median line and 10–90% band of ``metric`` for every value of ``group``.

    Bands are drawn first and lines on top, so no band hides a median; every band has
    a thin edge in its colour, so overlapping bands stay tellable apart. Returns the
    legend handles (one line per setting, then a patch explaining the bands).
    ``bands`` limits the bands to those settings (default: all).
    """
    lines = []
    for i, (key, df) in enumerate(curves.groupby(group, sort=False)):
        colour = (colours or {}).get(key, PALETTE[i % len(PALETTE)])
        df = df[df["generation"] >= start]
        g = df["generation"].to_numpy()
        if bands is None or key in bands:
            lo, hi = df[f"{metric}_q10"].to_numpy(), df[f"{metric}_q90"].to_numpy()
            ax.fill_between(g, lo, hi, color=colour, alpha=0.1, lw=0, zorder=1)
            for edge in (lo, hi):
                ax.plot(g, edge, color=colour, lw=0.6, alpha=0.7, zorder=2)
        lines.append((g, df[f"{metric}_q50"].to_numpy(), colour, str(key)))
    handles = [ax.plot(g, med, color=colour, lw=2.2, zorder=3, label=key)[0]
               for g, med, colour, key in lines]
    from matplotlib.patches import Patch

    handles.append(Patch(facecolor="grey", alpha=0.3, edgecolor="grey", lw=0.6,
                         label=band_label))
    return handles
