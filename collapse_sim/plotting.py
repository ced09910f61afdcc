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


def gmm_snapshots(result):
    """The paper's GMM figure: one chain's mixture at several generations, then its drift.

    Top: samples (600 points) and density contours of the model at each snapshot
    generation (0 is the truth). Bottom: L2 distance to the first generation's
    mixture and the components' standard deviations, every chain, log scale.

    Returns
    -------
    matplotlib Figure
    """
    snaps = result.extras["snapshots"]
    fig = plt.figure(figsize=(2.2 * len(snaps), 7.2), layout="constrained")
    grid = fig.add_gridspec(2, len(snaps), height_ratios=[1, 1.25])
    xs = np.linspace(-4, 4, 121)
    xx, yy = np.meshgrid(xs, xs)
    flat = np.column_stack([xx.ravel(), yy.ravel()])
    for i, (t, model) in enumerate(snaps.items()):
        ax = fig.add_subplot(grid[0, i])
        pts = model.sample(600, seed=i)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, color=PALETTE[0], alpha=0.5, linewidths=0)
        dens = np.exp(model.logpdf(flat)).reshape(xx.shape)
        ax.contour(xx, yy, dens, levels=5, colors=PALETTE[1], linewidths=0.7)
        ax.set_xlim(-4, 4)
        ax.set_ylim(-4, 4)
        ax.set_aspect("equal")
        ax.set_title("truth" if t == 0 else f"generation {t}", fontsize=9)
        ax.tick_params(labelsize=7)
    curves = result.curves
    left = fig.add_subplot(grid[1, : len(snaps) // 2])
    right = fig.add_subplot(grid[1, len(snaps) // 2 :])
    for c, df in curves.groupby("chain"):
        colour = PALETTE[c % len(PALETTE)]
        later = df[df.generation >= 2]  # generation 1 is the reference itself (distance 0)
        left.plot(later.generation, later.l2_to_first, color=colour, lw=1, label=f"chain {c}")
        right.plot(df.generation, df.component_sd_max, color=colour, lw=1,
                   label=f"chain {c}: wider component")
        right.plot(df.generation, df.component_sd_min, color=colour, lw=1, ls="--",
                   label=f"chain {c}: narrower component")
    left.set_yscale("log")
    left.set_xlabel("generation t")
    left.set_ylabel("L2 distance to generation 1, ∫(p₁ − pₜ)²")
    left.set_title("Drift away from the first fit")
    right.set_yscale("log")
    right.set_xlabel("generation t")
    right.set_ylabel("component standard deviation (eigenvalues)")
    right.set_title("Components shrink: the tails vanish")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def mismatch(result):
    """Density evolution of a single-Gaussian fit to a bimodal truth, and KL against its floor.

    Returns
    -------
    matplotlib Figure
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    truth, best = result.extras["truth"], result.extras["best"]
    xs = np.linspace(-7, 7, 600)
    left.fill_between(xs, np.exp(truth.logpdf(xs)), color="grey", alpha=0.3,
                      label="truth: ½N(−2,1) + ½N(2,1)")
    left.plot(xs, np.exp(best.logpdf(xs)), color="black", ls="--", lw=1.2,
              label="best Gaussian N(0, 5) (the floor)")
    for i, (t, fit) in enumerate(result.extras["fits"].items()):
        left.plot(xs, np.exp(fit.logpdf(xs)), color=PALETTE[i % len(PALETTE)], lw=1.6,
                  label=f"fitted Gaussian, generation {t} (one chain)")
    left.set_xlabel("x")
    left.set_ylabel("density")
    left.set_title("A Gaussian cannot represent two humps")
    left.legend(fontsize=8)
    curves = result.curves
    for i, (label, df) in enumerate(curves.groupby("fitter", sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        g = df.generation.to_numpy()[1:]
        right.fill_between(g, df.kl_q10.to_numpy()[1:], df.kl_q90.to_numpy()[1:],
                           color=colour, alpha=0.18, lw=0, label=f"{label}: 10–90% of chains")
        right.plot(g, df.kl_q50.to_numpy()[1:], color=colour, lw=2, label=f"{label}: median")
    right.axhline(result.params["floor_kl"], color="black", ls="--", lw=1.2,
                  label=f"floor: KL(truth ‖ N(0, 5)) = {result.params['floor_kl']:.3f}")
    right.set_yscale("log")
    right.set_xscale("log")
    right.set_xlabel("generation t")
    right.set_ylabel("KL(truth ‖ model_t)")
    right.set_title("Expressivity error is a floor; recursion climbs away from it")
    right.grid(True, which="major", alpha=0.3)
    right.legend(fontsize=8, loc="upper left")
    return fig


def figure_for(result):
    """The figure of an :class:`~collapse_sim.experiments.ExperimentResult`, by preset name.

    Returns
    -------
    matplotlib Figure
    """
    if result.name == "gaussian":
        return gaussian_demo(result.curves)
    if result.name == "gmm":
        return gmm_snapshots(result)
    if result.name == "mismatch":
        return mismatch(result)
    raise ValueError(f"no figure for preset {result.name!r}")
