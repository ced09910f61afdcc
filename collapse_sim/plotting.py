"""Figures (the only module that imports matplotlib).

Single-panel functions take ``ax=`` (a new figure is made when it is ``None``) and
return the Axes they drew on: :func:`variance_collapse`, :func:`w2_growth`,
:func:`density_evolution`, :func:`policy_comparison`, :func:`error_sources`.
Multi-panel figures of the presets make their own Figure and return it
(:func:`gaussian_demo`, :func:`gmm_snapshots`, :func:`mismatch`, :func:`sgd_drift`,
:func:`policies`, :func:`error_sources_figure`; :func:`figure_for` picks one by
preset name). :func:`animate_density` writes a GIF and returns its path.

Colours are the Okabe–Ito palette, which stays distinguishable under the common
colour-vision deficiencies; medians are solid lines, 10–90% ranges across chains
shaded bands, theory and floors dashed.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: Okabe–Ito colours, in the order settings are drawn.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LABELS = {"mle": "MLE (divide by n)", "unbiased": "unbiased (divide by n−1)"}
_TINY = 1e-300


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


def gaussian_demo(curves: pd.DataFrame, *, suptitle: str | None = None, axes=None):
    """The two-panel demo figure: :func:`variance_collapse` and :func:`w2_growth`.

    ``axes``: two matplotlib Axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    fig, (left, right) = _two_axes(axes, (12, 4.8))
    variance_collapse(curves, ax=left)
    w2_growth(curves, ax=right)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def gmm_snapshots(result, *, fig=None):
    """The paper's GMM figure: one chain's mixture at several generations, then its drift.

    Top: samples (600 points) and density contours of the model at each snapshot
    generation (0 is the truth). Bottom: L2 distance to the first generation's
    mixture and the components' standard deviations, every chain, log scale.
    ``fig``: an empty matplotlib Figure (or SubFigure) to draw in (default: a new one).

    Returns
    -------
    matplotlib Figure
    """
    snaps = result.extras["snapshots"]
    if fig is None:
        fig = plt.figure(figsize=(2.2 * len(snaps), 7.6), layout="constrained")
    # two subfigures: the snapshot row keeps its own spacing, whatever the panels below need
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.3])
    top.suptitle("One chain's mixture: 600 samples (dots) and density contours",
                 fontsize=10)
    xs = np.linspace(-4, 4, 121)
    xx, yy = np.meshgrid(xs, xs)
    flat = np.column_stack([xx.ravel(), yy.ravel()])
    snap_axes = top.subplots(1, len(snaps))
    for i, (t, model) in enumerate(snaps.items()):
        ax = snap_axes[i]
        pts = model.sample(600, seed=i)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, color=PALETTE[0], alpha=0.5, linewidths=0)
        dens = np.exp(model.logpdf(flat)).reshape(xx.shape)
        ax.contour(xx, yy, dens, levels=5, colors=PALETTE[1], linewidths=0.7)
        ax.set_xlim(-4, 4)
        ax.set_ylim(-4, 4)
        ax.set_aspect("equal")
        ax.set_title("truth" if t == 0 else f"generation {t}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("x₁", fontsize=8)
        if i == 0:
            ax.set_ylabel("x₂", fontsize=8)
    curves = result.curves
    left, right = bottom.subplots(1, 2)
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


def mismatch(result, *, axes=None):
    """Density evolution of a single-Gaussian fit to a bimodal truth, and KL against its floor.

    ``axes``: two matplotlib Axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    fig, (left, right) = _two_axes(axes, (13, 4.8))
    best = result.extras["best"]
    density_evolution(result.simulations["Gaussian fit"],
                      generations=list(result.extras["fits"]), ax=left)
    who = left.get_legend().get_title().get_text()
    x = left.get_lines()[0].get_xdata()
    (floor_line,) = left.plot(x, _truth_pdf(best, x), color="black", ls="--", lw=1.2,
                              zorder=2.5, label="best Gaussian N(0, 5):\nthe fit's limit as n → ∞")
    _legend_outside(left, who, [floor_line], loc="upper right")
    left.set_title("A Gaussian cannot represent two humps")
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


# -- densities ---------------------------------------------------------------------------------

#: Colour of the truth in density plots (drawn as a grey area with a black outline).
_TRUTH_FILL = "#BBBBBB"


def _truth_from_config(config: dict):
    """The truth of a :class:`~collapse_sim.Simulation`, rebuilt from ``config["truth"]``."""
    from .models import Gaussian, GaussianMixture

    spec = config.get("truth", {})
    kind = spec.get("type")
    if kind == "Gaussian":
        return Gaussian(mean=np.asarray(spec["mean"])[0], cov=np.asarray(spec["cov"])[0])
    if kind == "GaussianMixture":
        return GaussianMixture(weights=np.asarray(spec["weights"])[0],
                               means=np.asarray(spec["means"])[0],
                               covs=np.asarray(spec["covs"])[0])
    raise ValueError(f"cannot draw the density of a {kind!r} truth; pass truth= explicitly")


def _recorded(sim_or_models, truth):
    """``(models, truth)`` from a Simulation with recorded models, or a models dict + truth."""
    if isinstance(sim_or_models, dict):
        models = sim_or_models
        if truth is None:
            raise ValueError("truth is required when sim_or_models is a dict of recorded "
                             "models (a Simulation carries its truth in its config)")
    else:
        models = getattr(sim_or_models, "models", None)
        if models is None:
            raise ValueError("sim_or_models has no recorded models: run "
                             "simulate(..., record_models=True)")
        if truth is None:
            truth = _truth_from_config(sim_or_models.config)
    if not ({"mean", "cov"} <= set(models) or {"weights", "means", "covs"} <= set(models)):
        raise ValueError("sim_or_models must hold recorded models: 'mean' and 'cov' "
                         "(Gaussian fits) or 'weights', 'means' and 'covs' (mixtures)")
    dim = (models["mean"] if "mean" in models else models["means"]).shape[-1]
    if dim != 1 or truth.dim != 1:
        raise ValueError(f"density plots are 1-D; the models have dimension {dim} and the "
                         f"truth {truth.dim} (see gmm_snapshots for 2-D mixtures)")
    return models, truth


def _components_1d(models, t: int, chains) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and variances ``(len(chains), K)`` of generation ``t``'s 1-D models."""
    if "mean" in models:
        m = np.asarray(models["mean"])[t, chains, 0]
        v = np.asarray(models["cov"])[t, chains, 0, 0]
        return np.ones_like(m)[:, None], m[:, None], v[:, None]
    return (np.asarray(models["weights"])[t, chains], np.asarray(models["means"])[t, chains, :, 0],
            np.asarray(models["covs"])[t, chains, :, 0, 0])


def _pdf_1d(weights, means, variances, x) -> np.ndarray:
    r"""``(B, len(x))`` mixture densities :math:`\sum_k w_k\,\mathcal N(x; m_k, v_k)`.

    A component of variance 0 (a fully collapsed model) has no density and adds nothing.
    """
    v = np.where(variances > 0, variances, np.inf)[:, :, None]
    z2 = (x[None, None, :] - means[:, :, None]) ** 2 / v
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        dens = weights[:, :, None] * np.exp(-0.5 * z2) / np.sqrt(2 * np.pi * v)
    return np.nan_to_num(dens, nan=0.0, posinf=0.0).sum(axis=1)


def _model_variance(models, t: int) -> np.ndarray:
    """Total variance of every chain's model at generation ``t``."""
    w, m, v = _components_1d(models, t, slice(None))
    mu = (w * m).sum(axis=1)
    return (w * (v + m**2)).sum(axis=1) - mu**2


def _check_generations(generations, last: int, name: str = "generations") -> list[int]:
    gens = [generations] if np.isscalar(generations) else list(generations)
    if not gens:
        raise ValueError(f"{name} must name at least one generation")
    out = []
    for g in gens:
        if isinstance(g, bool) or not isinstance(g, int | np.integer):
            raise ValueError(f"{name} must hold integers, got {g!r}")
        if not 0 <= g <= last:
            raise ValueError(f"{name}: generation {g} is outside the recorded range [0, {last}]")
        out.append(int(g))
    return out


def _pick_chains(models, chain, reference: int) -> tuple[list[int], str]:
    """Chain indices to draw and a legend title saying which they are."""
    n_chains = (models["mean"] if "mean" in models else models["weights"]).shape[1]
    if isinstance(chain, str):
        if chain != "median":
            raise ValueError(f"chain must be an index, a list of indices or 'median', "
                             f"got {chain!r}")
        var = _model_variance(models, reference)
        c = int(np.argsort(var, kind="stable")[(n_chains - 1) // 2])
        return [c], (f"a typical chain (no. {c}: median variance\n"
                     f"of {n_chains} chains at generation {reference})")
    chains = [chain] if np.isscalar(chain) else list(chain)
    for c in chains:
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or not 0 <= c < n_chains:
            raise ValueError(f"chain must be in [0, {n_chains - 1}] (or 'median'), got {c!r}")
    if len(chains) == 1:
        title = f"chain {chains[0]}"
    elif len(chains) <= 6:
        title = "chains " + ", ".join(str(c) for c in chains)
    else:
        title = f"{len(chains)} chains"
    return [int(c) for c in chains], title


def _x_grid(truth, x) -> np.ndarray:
    if x is not None:
        x = np.asarray(x, dtype=float)
        if x.ndim != 1 or x.size < 2 or not np.all(np.diff(x) > 0):
            raise ValueError("x must be an increasing 1-D grid of at least 2 points")
        return x
    lo, hi = _truth_quantiles(truth, (1e-5, 1 - 1e-5))
    pad = 0.05 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, 801)


def _truth_pdf(truth, x) -> np.ndarray:
    from ._mixture_metrics import components

    w, m, c = components(truth)
    return _pdf_1d(w, m[:, :, 0], c[:, :, 0, 0], x)[0]


def _truth_quantiles(truth, levels) -> tuple[float, ...]:
    """Quantiles of a 1-D truth (trapezoid CDF on a fine grid; ample for plotting)."""
    mu, sd = float(truth.mean[0, 0]), float(np.sqrt(truth.cov[0, 0, 0]))
    grid = np.linspace(mu - 12 * sd, mu + 12 * sd, 40001)
    pdf = _truth_pdf(truth, grid)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return tuple(float(np.interp(q, cdf, grid)) for q in levels)


def _central_99(truth) -> tuple[float, float]:
    """The truth's 0.5% and 99.5% quantiles (the region of the ``tail_mass`` metric)."""
    return _truth_quantiles(truth, (0.005, 0.995))


def _y_range(truth_peak: float, peaks, *, log: bool) -> tuple[float, float]:
    """y-limits of a density plot: the truth stays readable next to collapsed spikes.

    Linear: up to the tallest curve within 4x the truth's peak. Log: six decades
    below the truth's peak, up to the tallest curve within 1000x of it. Taller
    curves are cut (see :func:`_mark_off_scale`).
    """
    if log:
        shown = [p for p in peaks if p <= 1e3 * truth_peak]
        return truth_peak * 1e-6, 3 * max([truth_peak, *shown])
    shown = [p for p in peaks if p <= 4 * truth_peak]
    return 0.0, 1.08 * max([truth_peak, *shown])


def _curve(models, t: int, c: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density of chain ``c``'s model at generation ``t`` on ``x`` refined near its modes.

    A collapsed component can be far narrower than the grid spacing; 81 extra points
    over ±5 standard deviations of every component resolve its spike.
    """
    w, m, v = _components_1d(models, t, [c])
    sd = np.sqrt(np.maximum(v[0], 0.0))
    extra = (m[0][:, None] + sd[:, None] * np.linspace(-5, 5, 81)[None]).ravel()
    xs = np.union1d(x, extra[(extra > x[0]) & (extra < x[-1])])
    return xs, _pdf_1d(w, m, v, xs)[0]


def _draw_truth(ax, x, truth_pdf, *, tails: tuple[float, float] | None) -> list:
    """The truth's density as a grey area; with ``tails``, hatch outside them.

    Returns the legend proxies of what has no line handle (the hatched tails).
    """
    ax.fill_between(x, truth_pdf, color=_TRUTH_FILL, alpha=0.6, lw=0, zorder=1)
    ax.plot(x, truth_pdf, color="black", lw=1.2, zorder=2, label="truth")
    if tails is not None:
        lo, hi = tails
        for left, right in ((x[0], lo), (hi, x[-1])):
            ax.axvspan(left, right, facecolor="none", edgecolor="#BBBBBB", hatch="//",
                       lw=0, zorder=0)
        ax.axvline(lo, color="#777777", ls=":", lw=1, zorder=1)
        ax.axvline(hi, color="#777777", ls=":", lw=1, zorder=1)
        from matplotlib.patches import Patch

        return [Patch(facecolor="none", edgecolor="#888888", hatch="//", lw=0,
                      label="the truth's outer 1%\n(its tails)")]
    return []


def _legend_outside(ax, title: str | None, extra=(), loc: str | None = None):
    """Legend: truth first, then ``extra`` proxies, then the rest.

    To the right of the axes by default, or inside them at ``loc``.
    """
    handles = ax.get_legend_handles_labels()[0]
    rest = [h for h in handles[1:] if all(h is not e for e in extra)]
    where = ({"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "frameon": False}
             if loc is None else {"loc": loc, "framealpha": 0.9})
    return ax.legend(handles=[*handles[:1], *extra, *rest], fontsize=8, title=title,
                     title_fontsize=8, alignment="left", **where)


def density_evolution(sim_or_models, *, generations=None, chain="median", truth=None,
                      log: bool = False, x=None, legend: bool | str = True, ax=None):
    r"""Fitted densities of chosen generations drawn over the truth's: the tails vanish.

    Every generation :math:`t` in ``generations`` adds the density
    :math:`p_t(x)` of the model fitted at generation :math:`t` (one curve per chosen
    chain), over the truth's density (grey area). With ``log=True`` the y axis is the
    log-density, where tail loss is plain to see: a Gaussian with variance
    :math:`\sigma_t^2 < \sigma_0^2` has :math:`\log p_t(x) = -(x-\mu_t)^2/2\sigma_t^2 +
    \text{const}`, so far from its mean it falls below the truth by orders of
    magnitude; the hatched strips are the truth's outer 1% (what the ``tail_mass``
    metric measures: the truth puts 0.01 there).

    Parameters
    ----------
    sim_or_models : Simulation or dict
        A 1-D :class:`~collapse_sim.Simulation` run with ``record_models=True``
        (Gaussian or mixture fitter), or its ``models`` dict (then ``truth`` is
        required).
    generations : int or sequence of int, optional
        Generations to draw, each in ``[0, G]``; default: about five log-spaced ones
        from 1 to ``G``. Row 0 is the truth expressed in the fitter's family.
    chain : int, sequence of int or "median"
        Which chains to draw. ``"median"`` (default) is the chain whose model variance
        at the last chosen generation is the median across chains: a typical chain,
        not a lucky or unlucky one. Several chains are drawn as thinner curves, one
        colour per generation.
    truth : Gaussian or GaussianMixture, optional
        Default: rebuilt from ``sim.config["truth"]``.
    log : bool
        Logarithmic y axis (the tails).
    x : array_like, optional
        Increasing grid of x values; default: the truth's mean ± 4.5 standard
        deviations. Each curve is refined near its own modes, so collapsed spikes
        narrower than the grid still show.
    legend : bool or str
        ``True``: the legend to the right of the axes (outside the data); a matplotlib
        location such as ``"upper right"``: inside the axes there; ``False``: none.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ValueError
        Without recorded models, for models of dimension > 1, for a generation
        outside ``[0, G]`` (the message names ``generations``) or a bad ``chain``.

    Notes
    -----
    On a linear axis the y range fits the truth and the curves up to 4 times its
    peak; a taller (collapsed) curve is cut at the top and its peak height is
    written next to it.
    """
    models, truth = _recorded(sim_or_models, truth)
    last = (models["mean"] if "mean" in models else models["weights"]).shape[0] - 1
    if generations is None:
        generations = [g for g in _default_generations(last) if g > 0] or [0]
    gens = _check_generations(generations, last)
    chains, who = _pick_chains(models, chain, gens[-1])
    ax = _axes(ax)
    x = _x_grid(truth, x)
    base = _truth_pdf(truth, x)
    extra = _draw_truth(ax, x, base, tails=_central_99(truth) if log else None)
    peaks = []
    thin = len(chains) > 1
    for i, t in enumerate(gens):
        colour = _GENERATION_COLOURS[i % len(_GENERATION_COLOURS)]
        for j, c in enumerate(chains):
            xs, dens = _curve(models, t, c, x)
            ax.plot(xs, dens, color=colour, lw=1.0 if thin else 2.0, alpha=0.8 if thin else 1,
                    zorder=3, label=f"generation {t}" if j == 0 else None)
            peaks.append((float(dens.max()), float(xs[np.argmax(dens)]), colour))
    if log:
        ax.set_yscale("log")
    bottom, top = _y_range(float(base.max()), [p for p, _, _ in peaks], log=log)
    ax.set_ylim(bottom, top)
    _mark_off_scale(ax, peaks, top)
    if log:
        ax.set_ylabel("density p(x), log scale")
        ax.set_title("Tails vanish: log-density of the fits")
    else:
        ax.set_ylabel("density p(x)")
        ax.set_title("Fitted densities over the truth")
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel("x")
    ax.grid(True, which="major", alpha=0.3)
    if legend:
        _legend_outside(ax, who, extra, loc=legend if isinstance(legend, str) else None)
    return ax


def _mark_off_scale(ax, peaks, top: float) -> list:
    """Write the height of peaks above ``top`` next to them at the top edge, staggered.

    ``peaks`` holds ``(height, x, colour)``; one label per colour (the tallest), so
    several chains of one generation share a label.
    """
    tallest = {}
    for height, where, colour in peaks:
        if height > top and height > tallest.get(colour, (0.0,))[0]:
            tallest[colour] = (height, where)
    texts = []
    for colour, (height, where) in tallest.items():
        texts.append(ax.annotate(f"peak {height:.3g} ↑", (where, top),
                                 xytext=(4, -10 - 11 * len(texts)), textcoords="offset points",
                                 color=colour, fontsize=8, va="top", fontweight="bold"))
    return texts


def _default_generations(last: int) -> list[int]:
    """0, 1 and about five log-spaced generations up to ``last`` (what the figures show)."""
    if last <= 1:
        return list(range(last + 1))
    pts = np.unique(np.round(np.geomspace(1, last, 5)).astype(int))
    return sorted({0, *pts.tolist()})


#: Colours of successive generations in density plots (Okabe–Ito, no black: that is the truth).
_GENERATION_COLOURS = PALETTE[:6]


def animate_density(sim_or_models, path, *, generations=None, chain="median", truth=None,
                    fps: float = 6, log: bool = False, x=None, trail: int = 4, dpi: int = 100):
    """Write a GIF of the fitted density, generation by generation, over the truth's.

    Each frame draws the truth (grey) and the chosen chain's model at one generation
    (bold), with the ``trail`` previous frames fading behind it, so the collapse reads
    as motion: the curve narrows, wanders and its tails fall away. Written with
    matplotlib's :class:`~matplotlib.animation.PillowWriter` (no ffmpeg needed).

    Parameters
    ----------
    sim_or_models : Simulation or dict
        As in :func:`density_evolution` (1-D, recorded models).
    path : str or PathLike
        Output file; ``.gif`` is appended when missing.
    generations : sequence of int, optional
        One frame per entry, in order; default: every generation when there are at
        most 60, else 61 evenly spaced ones from 0 to ``G``.
    chain : int or "median"
        The chain to follow (default: the one with the median variance at the last
        frame's generation).
    truth, x :
        As in :func:`density_evolution`.
    fps : float
        Frames per second (> 0).
    log : bool
        Logarithmic y axis.
    trail : int
        Number of earlier frames drawn faintly (>= 0).
    dpi : int
        Resolution of the frames.

    Returns
    -------
    pathlib.Path
        The GIF written; it has exactly ``len(generations)`` frames.

    Raises
    ------
    ValueError
        As :func:`density_evolution`, and for a non-positive ``fps`` or negative ``trail``.
    """
    from pathlib import Path

    from matplotlib.animation import PillowWriter

    models, truth = _recorded(sim_or_models, truth)
    last = (models["mean"] if "mean" in models else models["weights"]).shape[0] - 1
    if generations is None:
        generations = (list(range(last + 1)) if last <= 60
                       else np.unique(np.round(np.linspace(0, last, 61)).astype(int)).tolist())
    gens = _check_generations(generations, last)
    if not (np.isscalar(chain) or isinstance(chain, str)):
        raise ValueError(f"chain must be one index or 'median', got {chain!r}")
    if (isinstance(fps, bool) or not isinstance(fps, int | float) or not np.isfinite(fps)
            or fps <= 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if isinstance(trail, bool) or not isinstance(trail, int | np.integer) or trail < 0:
        raise ValueError(f"trail must be an integer >= 0, got {trail!r}")
    (c,), who = _pick_chains(models, chain, gens[-1])
    path = Path(path)
    if path.suffix.lower() != ".gif":
        path = path.with_name(path.name + ".gif")
    x = _x_grid(truth, x)
    base = _truth_pdf(truth, x)
    curves = [_curve(models, t, c, x) for t in gens]
    heights = [float(d.max()) for _, d in curves]
    peak = float(base.max())
    fig, ax = plt.subplots(figsize=(7.6, 4.2), layout="constrained")
    extra = _draw_truth(ax, x, base, tails=_central_99(truth) if log else None)
    if log:
        ax.set_yscale("log")
    bottom, top = _y_range(peak, heights, log=log)
    ax.set_ylim(bottom, top)
    ax.set_ylabel("density p(x), log scale" if log else "density p(x)")
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel("x")
    ax.grid(True, alpha=0.3)
    ghosts = [ax.plot([], [], color=PALETTE[0], lw=1, zorder=3)[0] for _ in range(trail)]
    (line,) = ax.plot([], [], color=PALETTE[0], lw=2.2, zorder=4, label="fitted model")
    if trail:
        ax.plot([], [], color=PALETTE[0], lw=1, alpha=0.4,
                label=f"previous {trail} frame{'s' if trail > 1 else ''}")
    _legend_outside(ax, who, extra)
    note = ax.text(0.02, 0.96, "", transform=ax.transAxes, va="top", fontsize=9,
                   color=PALETTE[0], fontweight="bold")
    title = ax.set_title("Recursively refitted model: generation 0")
    fig.canvas.draw()
    fig.set_layout_engine("none")  # freeze the layout: it would be redone on every frame

    def frame(i):
        line.set_data(*curves[i])
        for k, ghost in enumerate(ghosts):
            j = i - 1 - k
            ghost.set_data(*(curves[j] if j >= 0 else ([], [])))
            ghost.set_alpha(0.45 * (1 - k / max(trail, 1)))
        title.set_text(f"Recursively refitted model: generation {gens[i]}")
        note.set_text(f"peak {heights[i]:.3g} (off scale)" if heights[i] > top else "")

    # PillowWriter frame by frame (not FuncAnimation.save, which draws every frame 3x)
    writer = PillowWriter(fps=fps)
    try:
        with writer.saving(fig, path, dpi):
            for i in range(len(gens)):
                frame(i)
                writer.grab_frame()
    finally:
        plt.close(fig)
    return path


# -- quantile-band comparisons -----------------------------------------------------------------


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


def _check_columns(curves, needed, name="curves"):
    if not isinstance(curves, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(curves).__name__}")
    missing = [c for c in needed if c not in curves.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {missing}")


_METRIC_LABELS = {
    "variance": r"fitted variance $\sigma^2_t/\sigma^2_0$",
    "w2": r"$W_2$ distance to the truth (units of x)",
    "kl": r"KL(truth ‖ model$_t$) (nats)",
}


def policy_comparison(curves: pd.DataFrame, *, metric: str = "variance", ax=None,
                      group: str = "policy", logx: bool = True, legend: bool = True):
    """Median and 10–90% band of a metric per training-data policy, on one axis.

    Parameters
    ----------
    curves : DataFrame
        Columns ``group``, ``generation``, ``{metric}_q10``, ``{metric}_q50`` and
        ``{metric}_q90`` (the ``policies`` preset's table).
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


def error_sources(curves: pd.DataFrame, *, floor: float | None = None, metric: str = "w2",
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
    curves : DataFrame
        Columns ``group``, ``generation`` and ``{metric}_q10/_q50/_q90``.
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


def sgd_drift(result, *, axes=None):
    """The ``sgd`` preset's figure: fitted variance and W₂ distance, exact MLE vs SGD.

    Left: median and 10–90% band of the fitted variance (log scale); right: the same
    for the W₂ distance to the truth; one legend for both, below them. ``axes``: two
    matplotlib Axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    fig, (left, right) = _two_axes(axes, (12, 5.2))
    handles = _band_lines(left, result.curves, "variance", "fitter")
    handles.append(left.axhline(1.0, color="black", lw=0.8, ls="--", zorder=0,
                                label="the truth's variance"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9,
               frameon=False)
    left.set_yscale("log")
    left.set_xlabel("generation t")
    left.set_ylabel(_METRIC_LABELS["variance"] + ", log scale")
    left.set_title("Variance: the exact fit collapses; larger SGD steps drift upwards")
    _band_lines(right, result.curves, "w2", "fitter", start=1)
    right.set_yscale("log")
    right.set_xlabel("generation t")
    right.set_ylabel(_METRIC_LABELS["w2"] + ", log scale")
    right.set_title("Distance from the truth: SGD's bias compounds")
    for ax in (left, right):
        ax.grid(True, which="major", alpha=0.3)
    return fig


def policies(result, *, axes=None):
    """The ``policies`` preset's figure: :func:`policy_comparison` of variance and W₂.

    One legend for both panels, below them. ``axes``: two matplotlib Axes to draw on
    (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    fig, (left, right) = _two_axes(axes, (12, 5.2))
    policy_comparison(result.curves, metric="variance", ax=left, legend=False)
    policy_comparison(result.curves, metric="w2", ax=right, legend=False)
    handles = left.get_legend_handles_labels()[0]
    from matplotlib.patches import Patch

    handles.insert(-1, Patch(facecolor="grey", alpha=0.3, edgecolor="grey", lw=0.6,
                             label="band: 10–90% of chains\n(line: median)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9,
               frameon=False)
    return fig


def error_sources_figure(result, *, axes=None):
    """The ``error_sources`` preset's figure.

    Left: the bimodal truth and the best Gaussian for it (what expressivity error
    looks like: the gap no amount of data closes). Right: :func:`error_sources` with
    the floor. ``axes``: two matplotlib Axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib Figure
    """
    fig, (left, right) = _two_axes(axes, (13, 5), width_ratios=[1, 1.6])
    mix, best = result.extras["truths"]["expressivity"], result.extras["floor"]["model"]
    x = _x_grid(mix, None)
    truth_pdf = _truth_pdf(mix, x)
    left.fill_between(x, truth_pdf, color=_TRUTH_FILL, alpha=0.6, lw=0)
    left.plot(x, truth_pdf, color="black", lw=1.2, label="bimodal truth (mean 0, variance 1)")
    left.plot(x, _truth_pdf(best, x), color=PALETTE[1], lw=2, ls="--",
              label="moment-matched Gaussian N(0, 1)\n(the limit of the fit as n → ∞)")
    left.set_ylim(0, 1.3 * truth_pdf.max())
    left.set_xlabel("x")
    left.set_ylabel("density p(x)")
    left.set_title("Expressivity error: a Gaussian cannot fit two humps")
    left.legend(fontsize=8, loc="upper left")
    left.grid(True, alpha=0.3)
    error_sources(result.curves, floor=result.params["floor_w2"], ax=right)
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
    if result.name == "sgd":
        return sgd_drift(result)
    if result.name == "policies":
        return policies(result)
    if result.name == "error_sources":
        return error_sources_figure(result)
    if result.name == "regression":
        return regression_error(result)
    raise ValueError(f"no figure for preset {result.name!r}")


def regression_error(result, *, axes=None):
    """Test error of recursively refitted least squares against generation, theory dashed.

    Two panels with their own scales: replacing the data (error grows linearly) and
    accumulating it (error stays below :math:`\\pi^2/6` times one generation's).
    Solid lines are simulated means over chains, dashed black lines the closed
    forms of :func:`collapse_sim.theory.regression_test_error`; the band is the
    10–90% range over chains of the setting named in each panel's title.

    Parameters
    ----------
    result : ExperimentResult
        From the ``regression`` preset (:func:`collapse_sim.experiments.regression_collapse`):
        ``curves`` has ``setting``, ``policy``, ``design``, ``generation``,
        ``sim_mean``, ``sim_q10``, ``sim_q90`` and ``theory_mean`` (NaN where no
        closed form exists).
    axes : sequence of two matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure
    """
    fig, axes = _two_axes(axes, (11.5, 4.4))
    curves = result.curves
    params = result.params
    one = params["noise_std"] ** 2 * params["dim"] / (params["n_samples"] - params["dim"] - 1)
    colours = dict(zip(curves["setting"].unique(), PALETTE, strict=False))
    banded = {"replace": "fresh", "accumulate": "fixed"}
    for ax, policy in zip(axes, ("replace", "accumulate"), strict=True):
        for label, rows in curves[curves["policy"] == policy].groupby("setting", sort=False):
            g = rows["generation"].to_numpy()
            colour = colours[label]
            if rows["design"].iloc[0] == banded[policy]:
                ax.fill_between(g, rows["sim_q10"], rows["sim_q90"], color=colour,
                                alpha=0.15, linewidth=0, label=f"{label}: 10–90% of chains")
            ax.plot(g, rows["sim_mean"], color=colour, linewidth=2.0,
                    label=f"{label}: simulated mean")
            theory_mean = rows["theory_mean"].to_numpy()
            if np.isfinite(theory_mean).any():
                ax.plot(g, theory_mean, color="black", linestyle="--", linewidth=1.0)
        ax.plot([], [], color="black", linestyle="--", linewidth=1.0, label="closed form")
        if policy == "accumulate":
            ax.axhline(np.pi**2 / 6 * one, color="grey", linestyle=":", linewidth=1.0,
                       label="π²/6 × one generation: bound on the mean (fixed design)")
        ax.set_xlabel("generation t")
        ax.set_xlim(0, curves["generation"].max())
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    axes[0].set_ylabel("test error  (ŵ − w)ᵀ Σ (ŵ − w)")
    axes[0].set_title("replace: error grows linearly (Dohmatob et al. 2024)", fontsize=10)
    axes[1].set_title("accumulate: error stays bounded (Gerstgrasser et al. 2024)", fontsize=10)
    fig.suptitle(f"Least squares refitted on its own labels: d = {params['dim']} features, "
                 f"T = {params['n_samples']} rows per generation, noise σ = "
                 f"{params['noise_std']:g}, {params['chains']} chains", fontsize=11)
    return fig


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
