"""The presets' multi-panel figures, and :func:`figure_for`, which picks one by preset name."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from ._adapt import as_result
from ._common import _METRIC_LABELS, _TRUTH_FILL, PALETTE, _band_lines, _two_axes
from .curves import (
    _gaussian_curves,
    _variance_collapse,
    error_sources,
    policy_comparison,
    w2_growth,
)
from .densities import _legend_outside, _truth_pdf, _x_grid, density_evolution
from .discrete import vocabulary
from .images import digits_figure
from .kde import kde_collapse
from .language import language
from .stages import sampling_bias


def gaussian_demo(curves, *, suptitle: str | None = None, axes=None):
    """The two-panel demo figure: :func:`variance_collapse` and :func:`w2_growth`.

    The left panel's legend sits below the panels, in three columns: each estimator's
    band, median and exact quantiles, then the exact means and the exact median.

    Parameters
    ----------
    curves : DataFrame, ExperimentResult, Simulation, or dict or list of Simulation
        The ``gaussian`` preset's ``curves`` (or its result), or your runs: each needs
        the ``variance`` and ``w2`` metrics; the exact theory is drawn for the runs it
        describes (see :func:`variance_collapse`).
    suptitle : str, optional
        Title above the panels. For your runs it defaults to their truth and sizes
        (``"Gaussian(mean=0, cov=2) refitted: n = 20, 50 generations, 300 chains"``).
    axes : sequence of two matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    if not isinstance(curves, pd.DataFrame) and not hasattr(curves, "curves"):
        derived = as_result(curves, "gaussian_demo", need_w2=True)
        curves, suptitle = derived.curves, suptitle or derived.params["suptitle"]
    curves = _gaussian_curves(curves, "gaussian_demo", need_w2=True)
    fig, (left, right) = _two_axes(axes, (12, 5.6))
    handles = _variance_collapse(curves, left, "estimator")
    # below the panels, three columns: each setting's band, median and exact quantiles,
    # then the exact means and the exact median
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8.5,
               frameon=False)
    w2_growth(curves, ax=right)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _component_ellipses(ax, model, colour) -> None:
    """Each component's 1σ and 2σ ellipses (exact at any scale) and a ``+`` at its mean."""
    angle = np.linspace(0.0, 2.0 * np.pi, 181)
    circle = np.stack([np.cos(angle), np.sin(angle)])  # (2, 181)
    for w, mu, cov in zip(model.weights[0], model.means[0], model.covs[0], strict=True):
        if w < 1e-3:  # an emptied component generates (almost) nothing
            continue
        lam, vec = np.linalg.eigh(cov)
        root = vec * np.sqrt(np.clip(lam, 0.0, None))
        for r, style in ((1.0, "-"), (2.0, "--")):
            ring = mu[:, None] + r * root @ circle
            ax.plot(ring[0], ring[1], color=colour, lw=0.8, ls=style)
        ax.plot(mu[0], mu[1], marker="+", color=colour, ms=6, mew=1.2)


def _sd_note(model) -> str:
    """The components' standard deviations √(tr Σ / d) (root mean per-axis variance)."""
    d = model.dim
    sds = np.sqrt(np.trace(model.covs[0], axis1=1, axis2=2) / d)[model.weights[0] >= 1e-3]
    return "sd " + ", ".join(f"{v:.2g}" for v in np.sort(sds))


def gmm_snapshots(result, *, fig=None, chain: int = 0, chains: Sequence[int] | None = None,
                  generations: Sequence[int] | None = None):
    """The paper's GMM figure: one chain's mixture at several generations, then its drift.

    Top: samples (600 points) of the model at each snapshot generation (0 is the
    truth) with each component's 1σ and 2σ ellipses and its mean (+), drawn exactly
    whatever the component's size (a collapsed component of standard deviation 0.01
    is a dot, not a grid-sized blob); the corner note gives the components' standard
    deviations √(tr Σₖ / d). Bottom: the L2 distance to the first generation's
    mixture (the fit of the real data) and the components' standard deviations, log
    scale: every chain when there are at most five, else the median across chains
    with its 10–90% band and chain 0.

    Parameters
    ----------
    result : ExperimentResult or Simulation
        The ``gmm`` preset's result, or your own run of a 2-D truth fitted by
        ``GaussianMixtureFit`` (or ``GaussianFit``: one component) with
        ``record_models=True`` (a dict or list holding that one run works too).
    fig : matplotlib Figure or SubFigure, optional
        An empty figure to draw in (default: a new one).
    chain : int
        Your run: the chain whose mixtures the top row shows.
    chains : sequence of int, optional
        Your run: the chains of the bottom panels (default: the first three).
    generations : sequence of int, optional
        Your run: the snapshot generations (default: six, evenly spaced from 0 to G;
        0 is the truth in the fitter's family).

    Returns
    -------
    matplotlib Figure

    Raises
    ------
    ValueError
        If your run recorded no models, or not those of a Gaussian or mixture, or is
        not 2-D.
    """
    result = as_result(result, "gmm_snapshots", chain=chain, chains=chains,
                       generations=generations)
    snaps = result.extras["snapshots"]
    low, high = result.extras.get("frame", (-4.0, 4.0))
    if fig is None:
        fig = plt.figure(figsize=(max(2.3 * len(snaps), 9.0), 8.0), layout="constrained")
    # two subfigures: the snapshot row keeps its own spacing, whatever the panels below need
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.3])
    top.suptitle(f"Chain {result.extras.get('chain', 0)}'s mixture: 600 samples (dots), "
                 "each component's 1σ and 2σ ellipses and mean (+)", fontsize=10)
    snap_axes = np.atleast_1d(top.subplots(1, len(snaps)))
    for i, (t, model) in enumerate(snaps.items()):
        ax = snap_axes[i]
        pts = model.sample(600, seed=i)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, color=PALETTE[0], alpha=0.5, linewidths=0)
        _component_ellipses(ax, model, PALETTE[1])
        ax.text(0.03, 0.03, _sd_note(model), transform=ax.transAxes, fontsize=7,
                va="bottom", ha="left", bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ax.set_title("truth" if t == 0 else f"generation {t}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("x₁", fontsize=8)
        if i == 0:
            ax.set_ylabel("x₂", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
    curves = result.curves
    left, right = bottom.subplots(1, 2)
    later = curves[curves.generation >= 2]  # generation 1 is the reference itself (distance 0)
    n_chains = curves["chain"].nunique()
    if n_chains <= 5:
        for c, df in curves.groupby("chain"):
            colour = PALETTE[c % len(PALETTE)]
            part = later[later.chain == c]
            left.plot(part.generation, part.l2_to_first, color=colour, lw=1, label=f"chain {c}")
            right.plot(df.generation, df.component_sd_max, color=colour, lw=1,
                       label=f"chain {c}: wider component")
            right.plot(df.generation, df.component_sd_min, color=colour, lw=1, ls="--",
                       label=f"chain {c}: narrower component")
    else:
        _median_band(left, later, "l2_to_first", PALETTE[0], f"median of {n_chains} chains")
        chain0 = later[later.chain == curves["chain"].min()]
        left.plot(chain0.generation, chain0.l2_to_first, color=PALETTE[0], lw=0.6, alpha=0.6,
                  label="chain 0")
        _median_band(right, curves, "component_sd_max", PALETTE[0],
                     "wider component (median, 10–90%)")
        _median_band(right, curves, "component_sd_min", PALETTE[1],
                     "narrower component (median, 10–90%)", ls="--")
    left.set_yscale("log")
    left.set_xlabel("generation t")
    left.set_ylabel("L2 distance to generation 1, ∫(p₁ − pₜ)²")
    left.set_title("Drift away from the fit of the real data", fontsize=10)
    right.set_yscale("log")
    right.set_xlabel("generation t")
    right.set_ylabel(result.extras.get("sd_label",
                                       "component standard deviation (eigenvalues)"))
    right.set_title("Components shrink: the tails vanish", fontsize=10)
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # minor labels only while the axis spans about a decade (else they pile up)
    low, high = right.get_ylim()
    right.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}") if high / low < 12
                                    else NullFormatter())
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _gauss_text(model) -> str:
    """``N(m, v)`` of a 1-D Gaussian, three significant digits (``N(0, 5)``)."""
    mean = float(np.ravel(model.mean)[0])
    var = float(np.ravel(model.cov)[0])
    return f"N({np.round(mean, 10) + 0.0:.3g}, {np.round(var, 10) + 0.0:.3g})"


def _median_band(ax, df, column, colour, label, ls="-") -> None:
    """Median across chains per generation and the 10–90% band."""
    grouped = df.groupby("generation")[column]
    q = grouped.quantile([0.1, 0.5, 0.9]).unstack()
    ax.fill_between(q.index, q[0.1], q[0.9], color=colour, alpha=0.2, lw=0)
    ax.plot(q.index, q[0.5], color=colour, lw=1.4, ls=ls, label=label)


def mismatch(result, *, axes=None):
    """Density evolution of a single-Gaussian fit to a bimodal truth, and KL against its floor.

    Left: the Gaussian fit's densities at a few generations over the truth, with the best
    Gaussian (the fit's limit as n → ∞). Right: median and 10–90% band of the KL
    divergence of every run, log–log, with the floor KL(truth ‖ best Gaussian) dashed.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``mismatch`` preset's result, or your runs: each needs the ``kl`` metric,
        and one of them (the first such) must fit a single Gaussian (``GaussianFit``) to
        a 1-D ``GaussianMixture`` truth with ``record_models=True`` (the left panel and
        the floor come from it).
    axes : sequence of two matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "mismatch")
    fig, (left, right) = _two_axes(axes, (13, 4.8))
    best = result.extras["best"]
    density_evolution(result.simulations[result.extras.get("density_run", "Gaussian fit")],
                      generations=list(result.extras["fits"]), ax=left)
    who = left.get_legend().get_title().get_text()
    x = left.get_lines()[0].get_xdata()
    best_text = _gauss_text(best)
    (floor_line,) = left.plot(x, _truth_pdf(best, x), color="black", ls="--", lw=1.2,
                              zorder=2.5,
                              label=f"best Gaussian {best_text}:\nthe fit's limit as n → ∞")
    _legend_outside(left, who, [floor_line], loc="upper right")
    left.set_title(result.params.get("density_title", "A Gaussian cannot represent two humps"))
    curves = result.curves
    for i, (label, df) in enumerate(curves.groupby("fitter", sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        g = df.generation.to_numpy()[1:]
        right.fill_between(g, df.kl_q10.to_numpy()[1:], df.kl_q90.to_numpy()[1:],
                           color=colour, alpha=0.18, lw=0, label=f"{label}: 10–90% of chains")
        right.plot(g, df.kl_q50.to_numpy()[1:], color=colour, lw=2, label=f"{label}: median")
    right.axhline(result.params["floor_kl"], color="black", ls="--", lw=1.2,
                  label=f"floor: KL(truth ‖ {best_text}) = {result.params['floor_kl']:.3f}")
    right.set_yscale("log")
    right.set_xscale("log")
    right.set_xlabel("generation t")
    right.set_ylabel("KL(truth ‖ model_t)")
    right.set_title("Expressivity error is a floor; recursion climbs away from it")
    right.grid(True, which="major", alpha=0.3)
    right.legend(fontsize=8, loc="upper left")
    return fig


def sgd_drift(result, *, axes=None):
    """The ``sgd`` preset's figure: fitted variance and W₂ distance, exact MLE vs SGD.

    Left: median and 10–90% band of the fitted variance (log scale); right: the same
    for the W₂ distance to the truth; one legend for both, below them.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``sgd`` preset's result, or your runs (one line each, labelled by the dict's
        keys; each needs the ``variance`` and ``w2`` metrics; the variance is divided by
        the truth's, generation 0).
    axes : sequence of two matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "sgd_drift")
    titles = result.params.get("titles", (
        "Variance: the exact fit collapses; larger SGD steps drift upwards",
        "Distance from the truth: SGD's bias compounds"))
    fig, (left, right) = _two_axes(axes, (12, 5.2))
    handles = _band_lines(left, result.curves, "variance", "fitter")
    handles.append(left.axhline(1.0, color="black", lw=0.8, ls="--", zorder=0,
                                label="the truth's variance"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9,
               frameon=False)
    left.set_yscale("log")
    left.set_xlabel("generation t")
    left.set_ylabel(_METRIC_LABELS["variance"] + ", log scale")
    left.set_title(titles[0])
    _band_lines(right, result.curves, "w2", "fitter", start=1)
    right.set_yscale("log")
    right.set_xlabel("generation t")
    right.set_ylabel(_METRIC_LABELS["w2"] + ", log scale")
    right.set_title(titles[1])
    for ax in (left, right):
        ax.grid(True, which="major", alpha=0.3)
    if result.params.get("suptitle"):
        fig.suptitle(result.params["suptitle"], fontsize=10)
    return fig


def policies(result, *, axes=None):
    """The ``policies`` preset's figure: :func:`policy_comparison` of variance and W₂.

    One legend for both panels, below them.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``policies`` preset's result, or your runs (labelled as
        :func:`collapse_sim.compare` labels them; each needs the ``variance`` and ``w2``
        metrics; the variance is divided by the truth's, generation 0).
    axes : sequence of two matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "policies")
    fig, (left, right) = _two_axes(axes, (12, 5.2))
    policy_comparison(result.curves, metric="variance", ax=left, legend=False)
    policy_comparison(result.curves, metric="w2", ax=right, legend=False)
    handles = left.get_legend_handles_labels()[0]
    from matplotlib.patches import Patch

    handles.insert(-1, Patch(facecolor="grey", alpha=0.3, edgecolor="grey", lw=0.6,
                             label="band: 10–90% of chains\n(line: median)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9,
               frameon=False)
    if result.params.get("suptitle"):
        fig.suptitle(result.params["suptitle"], fontsize=10)
    return fig


def error_sources_figure(result, *, axes=None):
    """The ``error_sources`` preset's figure.

    Left: the bimodal truth and the best Gaussian for it (what expressivity error
    looks like: the gap no amount of data closes). Right: :func:`error_sources` with
    the floor.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``error_sources`` preset's result, or your runs: each needs the ``w2``
        metric, and one of them (the first such) must fit a single Gaussian to a 1-D
        ``GaussianMixture`` truth (the left panel and the floor come from its truth).
        For runs without one, draw the right panel alone with :func:`error_sources`.
    axes : sequence of two matplotlib Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "error_sources_figure")
    fig, (left, right) = _two_axes(axes, (13, 5), width_ratios=[1, 1.6])
    mix, best = result.extras["truths"]["expressivity"], result.extras["floor"]["model"]
    x = _x_grid(mix, None)
    truth_pdf = _truth_pdf(mix, x)
    humps = "two humps" if mix.n_components == 2 else f"{mix.n_components} components"
    moments = _gauss_text(best)[2:-1].split(", ")  # the truth's mean and variance
    left.fill_between(x, truth_pdf, color=_TRUTH_FILL, alpha=0.6, lw=0)
    left.plot(x, truth_pdf, color="black", lw=1.2,
              label=f"{'bimodal' if mix.n_components == 2 else 'mixture'} truth (mean "
                    f"{moments[0]}, variance {moments[1]})")
    left.plot(x, _truth_pdf(best, x), color=PALETTE[1], lw=2, ls="--",
              label=f"moment-matched Gaussian {_gauss_text(best)}\n(the limit of the fit "
                    "as n → ∞)")
    left.set_ylim(0, 1.3 * truth_pdf.max())
    left.set_xlabel("x")
    left.set_ylabel("density p(x)")
    left.set_title(f"Expressivity error: a Gaussian cannot fit {humps}")
    left.legend(fontsize=8, loc="upper left")
    left.grid(True, alpha=0.3)
    error_sources(result.curves, floor=result.params["floor_w2"], ax=right)
    return fig


def regression_error(result, *, axes=None):
    """Test error of recursively refitted least squares against generation, theory dashed.

    Two panels with their own scales: replacing the data (error grows linearly) and
    accumulating it (the expected error stays below :math:`\\pi^2/6` times one
    generation's). Solid lines are simulated means over chains, each in a darker band
    of ± 2 Monte Carlo standard errors (where the mean of that many chains may fall by
    chance, about 95% of the time); dashed black lines are the exact expectations of
    :func:`collapse_sim.theory.regression_test_error`; the light band is the 10–90%
    range over chains of the setting named in its legend entry. The dotted line of the
    accumulate panel is :math:`\\pi^2/6` times one generation's error: the limit, as
    :math:`t \\to \\infty`, of the expected error with a fixed design, which that
    expectation never exceeds (a simulated mean, being random, can).

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        From the ``regression`` preset (:func:`collapse_sim.experiments.regression_collapse`):
        ``curves`` has ``setting``, ``policy``, ``design``, ``generation``,
        ``sim_mean``, ``sim_q10``, ``sim_q90`` and ``theory_mean`` (NaN where no
        closed form exists), and optionally ``sim_mean_se`` (the bands of ± 2
        standard errors). Or your runs of a :class:`~collapse_sim.LinearRegression`
        truth with the ``test_error`` metric: one panel per policy (replace and
        accumulate first), one line per run, the closed form where it holds (OLS
        without ridge, ``noise="keep"``, no generation stage, replace or accumulate
        with a fixed design, ``n_samples >= dim + 2``).
    axes : sequence of matplotlib Axes, optional
        One per panel (two for the preset).

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "regression_error")
    curves = result.curves
    params = result.params
    known = [p for p in ("replace", "accumulate") if p in set(curves["policy"])]
    panels = known + [p for p in dict.fromkeys(curves["policy"]) if p not in known]
    if axes is None and len(panels) != 2:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.75 * len(panels), 4.6),
                                 layout="constrained", squeeze=False)
        axes = axes[0]
    elif len(panels) != 2:
        if len(axes) != len(panels):
            raise ValueError(f"axes must be {len(panels)} matplotlib Axes (one per policy "
                             f"{panels}), got {len(axes)}")
        fig = axes[0].figure
    else:
        fig, axes = _two_axes(axes, (11.5, 4.6))
    colours = dict(zip(curves["setting"].unique(), PALETTE, strict=False))
    banded = {"replace": "fresh", "accumulate": "fixed"}
    for ax, policy in zip(axes, panels, strict=True):
        part = curves[curves["policy"] == policy]
        band_design = banded.get(policy, part["design"].iloc[0])
        if not (part["design"] == band_design).any():  # your runs: band the first
            band_design = part["design"].iloc[0]
        for label, rows in part.groupby("setting", sort=False):
            g = rows["generation"].to_numpy()
            colour = colours[label]
            mean = rows["sim_mean"].to_numpy()
            if rows["design"].iloc[0] == band_design:
                ax.fill_between(g, rows["sim_q10"], rows["sim_q90"], color=colour,
                                alpha=0.12, linewidth=0, label=f"{label}: 10–90% of chains")
            if "sim_mean_se" in rows:
                se = rows["sim_mean_se"].to_numpy()
                ax.fill_between(g, mean - 2 * se, mean + 2 * se, color=colour, alpha=0.45,
                                linewidth=0, zorder=2.5)
            ax.plot(g, mean, color=colour, linewidth=1.6, label=f"{label}: simulated mean"
                    + (" ± 2 s.e." if "sim_mean_se" in rows else ""))
            theory_mean = rows["theory_mean"].to_numpy()
            if np.isfinite(theory_mean).any():
                ax.plot(g, theory_mean, color="black", linestyle="--", linewidth=1.0,
                        zorder=3)
        if np.isfinite(part["theory_mean"].to_numpy(dtype=float)).any():
            ax.plot([], [], color="black", linestyle="--", linewidth=1.0,
                    label="exact expectation (closed form)")
        bounded = part[(part["design"] == "fixed")
                       & np.isfinite(part["theory_mean"].to_numpy(dtype=float))]
        if policy == "accumulate" and not bounded.empty:
            first = bounded.iloc[0]
            dim, noise, n = (params.get(k) if params.get(k) is not None else first[k]
                             for k in ("dim", "noise_std", "n_samples"))
            one = noise**2 * dim / (n - dim - 1)
            ax.axhline(np.pi**2 / 6 * one, color="grey", linestyle=":", linewidth=1.2,
                       label="π²/6 × one generation: limit of the exact\n"
                             "expectation as t → ∞ (fixed design)")
        ax.set_xlabel("generation t")
        ax.set_xlim(0, curves["generation"].max())
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.set_title({"replace": "replace: error grows linearly (Dohmatob et al. 2024)",
                      "accumulate": "accumulate: error stays bounded (Gerstgrasser et al. "
                                    "2024)"}.get(policy, policy), fontsize=10)
    axes[0].set_ylabel("test error  (ŵ − w)ᵀ Σ (ŵ − w)")
    sizes = [f"d = {params['dim']} features" if params.get("dim") is not None else "",
             f"T = {params['n_samples']} rows per generation"
             if params.get("n_samples") is not None else "",
             f"noise σ = {params['noise_std']:g}" if params.get("noise_std") is not None
             else "",
             f"{params['chains']} chains" if params.get("chains") is not None else ""]
    fig.suptitle("Least squares refitted on its own labels: "
                 + ", ".join(p for p in sizes if p), fontsize=11)
    return fig


# preset name -> function of its ExperimentResult returning the Figure (re-exported and
# documented as collapse_sim.plotting.FIGURES); a new preset's figure is one more entry.
FIGURES: dict[str, Callable] = {
    "gaussian": lambda result: gaussian_demo(result.curves),
    "gmm": gmm_snapshots,
    "mismatch": mismatch,
    "sgd": sgd_drift,
    "policies": policies,
    "error_sources": error_sources_figure,
    "regression": regression_error,
    "vocabulary": vocabulary,
    "language": language,
    "sampling_bias": sampling_bias,
    "kde": kde_collapse,
    "digits": digits_figure,
}


def figure_for(result):
    """The figure of an :class:`~collapse_sim.experiments.ExperimentResult`, by preset name.

    The preset's figure function is looked up in :data:`FIGURES`.

    Returns
    -------
    matplotlib Figure

    Raises
    ------
    ValueError
        For a preset that has no figure.
    """
    figure = FIGURES.get(result.name)
    if figure is None:
        raise ValueError(f"no figure for preset {result.name!r}")
    return figure(result)
