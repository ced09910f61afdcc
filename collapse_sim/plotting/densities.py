"""Fitted densities over the truth's: :func:`density_evolution` and :func:`animate_density`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ._common import _TRUTH_FILL, PALETTE, _axes


def _truth_from_config(config: dict):
    """The truth of a :class:`~collapse_sim.Simulation`, rebuilt from ``config["truth"]``."""
    from ..models import Gaussian, GaussianMixture

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
    from .._mixture_metrics import components

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
