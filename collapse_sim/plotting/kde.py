r"""Figures of kernel density estimates refitted on their own samples (the ``kde`` preset).

A KDE's density on a grid is the exact mixture
:math:`\hat p(x) = \frac1n\sum_j \mathcal N(x;\, x_j, H)`, evaluated by
:func:`kde_log_density` in blocks of grid points (numpy, no loop over centres).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter
from scipy.linalg import solve_triangular
from scipy.special import ndtr

from ._adapt import as_result
from ._common import PALETTE

#: Frame of the density snapshots (x from, x to, y from, y to): the two moons and a margin.
SNAPSHOT_FRAME = (-2.0, 3.0, -1.6, 2.1)
_DENSITY_RANGE = (1e-3, 30.0)  # colour scale of the snapshots (density, log scale)
_BLOCK = 8192  # grid points per block of kde_log_density


def kde_log_density(model, points, chain: int = 0) -> np.ndarray:
    r"""``(m,)`` log-density :math:`\log\hat p(y_i)` of chain ``chain``'s KDE at ``points``.

    Parameters
    ----------
    model : KDEModel
        A batch of kernel density estimates (:class:`~collapse_sim.KDEModel`).
    points : array_like
        ``(m, d)`` points (a grid: ``np.column_stack([xx.ravel(), yy.ravel()])``).
    chain : int
        The member to evaluate.

    Notes
    -----
    With :math:`H = LL^\top` and whitened centres :math:`u_j = L^{-1}x_j`,
    :math:`\log\hat p(y) = \operatorname{logsumexp}_j(-\tfrac12\lVert L^{-1}y - u_j\rVert^2)
    - \log n - \tfrac d2\log 2\pi - \log\det L`. Cost :math:`O(mnd)`, memory
    :math:`O(n)` per point (points are processed in blocks).

    Examples
    --------
    >>> import numpy as np, collapse_sim as cs
    >>> from collapse_sim.plotting import kde_log_density
    >>> kde = cs.KDEModel(np.zeros((1, 1, 2)), np.eye(2)[None])   # one centre: N(0, I)
    >>> bool(np.isclose(kde_log_density(kde, [[0.0, 0.0]])[0], -np.log(2 * np.pi)))
    True
    """
    centres = np.asarray(model.centres[chain], dtype=np.float64)
    chol = np.asarray(model.chol[chain], dtype=np.float64)
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    n, d = centres.shape
    if points.shape[1] != d:
        raise ValueError(f"points must be (m, {d}), got {points.shape}")
    white_c = solve_triangular(chol, centres.T, lower=True).T
    norms_c = (white_c**2).sum(axis=1)
    const = -np.log(n) - 0.5 * d * np.log(2 * np.pi) - np.log(np.diag(chol)).sum()
    out = np.empty(points.shape[0])
    for start in range(0, points.shape[0], _BLOCK):
        block = solve_triangular(chol, points[start:start + _BLOCK].T, lower=True).T
        # ||y - u||^2 = ||y||^2 + ||u||^2 - 2 y.u (a matrix product), then a log-sum-exp
        # shifted by the smallest distance of each point
        sq = norms_c[None, :] - 2.0 * (block @ white_c.T)
        sq += (block**2).sum(axis=1)[:, None]
        low = sq.min(axis=1)
        sq -= low[:, None]
        sq *= -0.5
        np.exp(sq, out=sq)
        out[start:start + _BLOCK] = np.log(sq.sum(axis=1)) - 0.5 * low + const
    return out


def _mass_in_frame(model, frame, chain: int = 0) -> float:
    """Share of the KDE's mass inside the rectangle ``frame`` (exact for a diagonal kernel,
    as every fixed bandwidth is: a product of normal CDF differences per centre)."""
    centres = model.centres[chain]
    sd = np.sqrt(np.diag(model.kernel_cov[chain]))
    (x0, x1), (y0, y1) = frame[:2], frame[2:]
    px = ndtr((x1 - centres[:, 0]) / sd[0]) - ndtr((x0 - centres[:, 0]) / sd[0])
    py = ndtr((y1 - centres[:, 1]) / sd[1]) - ndtr((y0 - centres[:, 1]) / sd[1])
    return float(np.mean(px * py))


def _grid(frame, scale):
    """A grid over ``frame`` fine enough for kernels of standard deviation ``scale``:
    spacing ``scale`` (at most 0.05, at least 1/400 of the frame's width)."""
    step = max(min(scale, 0.05), (frame[1] - frame[0]) / 400)
    xs = np.arange(frame[0], frame[1] + step / 2, step)
    ys = np.arange(frame[2], frame[3] + step / 2, step)
    return np.meshgrid(xs, ys)


def _plain_log(axis):
    """Plain numbers (1, 10, 100, or 2, 3 within one decade) on a log-scaled axis."""
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(plain)
    low, high = axis.get_view_interval()
    axis.set_minor_formatter(plain if 0 < low and high / low < 10 else NullFormatter())


def _bandwidth_colours(bandwidths):
    picks = (PALETTE[0], PALETTE[2], PALETTE[1], PALETTE[3], PALETTE[4])
    if len(bandwidths) == 1:
        return {bandwidths[0]: PALETTE[0]}
    if len(bandwidths) == 2:
        return dict(zip(bandwidths, (PALETTE[0], PALETTE[1]), strict=True))
    return {h: picks[i % len(picks)] for i, h in enumerate(bandwidths)}


def _bandwidth_label(h, bandwidths):
    if len(bandwidths) > 1 and h == bandwidths[0]:
        return f"h = {h:g} (too small)"
    if len(bandwidths) > 1 and h == bandwidths[-1]:
        return f"h = {h:g} (too large)"
    return f"h = {h:g}"


def _band(ax, g, lo, mid, hi, colour, *, lw=1.8):
    ax.fill_between(g, lo, hi, color=colour, alpha=0.12, lw=0, zorder=1)
    for edge in (lo, hi):
        ax.plot(g, edge, color=colour, lw=0.5, alpha=0.6, zorder=2)
    return ax.plot(g, mid, color=colour, lw=lw, zorder=3)[0]


def _nll_grid(fig, curves, sizes, bandwidths, policies, colours):
    axes = fig.subplots(len(sizes), len(policies), sharex=True, squeeze=False)
    for i, n in enumerate(sizes):
        row = curves[curves.n_samples == n]
        lo, hi = row["nll_q10"].min(), row["nll_q90"].max()
        for j, policy in enumerate(policies):
            ax = axes[i, j]
            for h in bandwidths:
                df = row[(row.policy == policy) & (row.bandwidth == h)]
                _band(ax, df.generation, df.nll_q10, df.nll_q50, df.nll_q90, colours[h])
            ax.set_yscale("log")
            ax.set_ylim(0.85 * lo, 1.2 * hi)
            _plain_log(ax.yaxis)
            ax.grid(True, which="major", alpha=0.3)
            chains = int(row[row.policy == policy]["chains"].iloc[0])
            ax.text(0.02, 0.96, f"n = {n}, {chains} chains", transform=ax.transAxes,
                    fontsize=8, va="top", ha="left",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
            if i == 0:
                ax.set_title(policy, fontsize=10)
            if i == len(sizes) - 1:
                ax.set_xlabel("generation t")
            if j == 0:
                ax.set_ylabel(f"held-out NLL, n = {n}\n(log scale, lower is better)",
                              fontsize=9)
    return axes


def _snapshots(fig, result, bandwidths, colours):
    snaps = result.extras["snapshots"]
    shown = [h for h in bandwidths if h in snaps]
    gens = sorted(next(iter(snaps.values())))
    frame = SNAPSHOT_FRAME
    heldout = result.extras["heldout"]
    norm = LogNorm(*_DENSITY_RANGE, clip=True)
    axes = fig.subplots(len(shown), len(gens), squeeze=False)
    image = None
    n = result.params.get("snapshot_n")
    for i, h in enumerate(shown):
        for j, t in enumerate(gens):
            ax = axes[i, j]
            model = snaps[h][t]
            xx, yy = _grid(frame, np.sqrt(np.linalg.eigvalsh(model.kernel_cov[0])[0]))
            grid = np.column_stack([xx.ravel(), yy.ravel()])
            dens = np.exp(kde_log_density(model, grid)).reshape(xx.shape)
            image = ax.imshow(dens, origin="lower", extent=frame, cmap="Blues", norm=norm,
                              interpolation="bilinear", aspect="equal")
            ax.scatter(heldout[:, 0], heldout[:, 1], s=3, color=PALETTE[4], alpha=0.8,
                       linewidths=0)
            alive = np.unique(model.ids[0][model.ids[0] >= 0]).size
            ax.text(0.02, 0.97, f"{alive} of {model.origin} original points\nhave "
                    f"descendants; {100 * _mass_in_frame(model, frame):.0f}% of the\n"
                    "mass inside this frame", transform=ax.transAxes, fontsize=7,
                    va="top", ha="left",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75,
                          "pad": 1.5})
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colours[h])
                spine.set_linewidth(2)
            if i == 0:
                ax.set_title(f"generation {t}", fontsize=10)
            if j == 0:
                label = _bandwidth_label(h, bandwidths)
                if len(shown) > 1 and h == shown[0]:
                    label += ":\ncollapses onto\na few points"
                elif len(shown) > 1 and h == shown[-1]:
                    label += ":\nmass leaks into\nempty regions"
                ax.set_ylabel(label, fontsize=9, color=colours[h])
    bar = fig.colorbar(image, ax=axes, location="right", shrink=0.7, aspect=30, pad=0.02)
    bar.set_label("density p̂(x) of the KDE (log scale)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(f"(b) One chain's KDE under replace, n = {n}: density (blue) over the "
                 "held-out real points (yellow dots)", fontsize=10)
    return axes


def _ancestors(ax, curves, sizes, bandwidths):
    h = bandwidths[len(bandwidths) // 2]
    # colour here means n, not h: shades of grey, darker for larger n
    shades = plt.get_cmap("Greys")(np.linspace(0.35, 0.7, len(sizes)))
    colours = dict(zip(sizes, shades, strict=True))
    handles = []
    for n in sizes:
        df = curves[(curves.n_samples == n) & (curves.policy == "replace")
                    & (curves.bandwidth == h) & (curves.generation >= 1)]
        colour = colours.get(n, "grey")
        line = _band(ax, df.generation, df.ancestors_q10, df.ancestors_mean,
                     df.ancestors_q90, colour)
        line.set_label(f"n = {n}: mean over chains")
        handles.append(line)
        ax.plot(df.generation, df.ancestors_theory, color="black", ls=(0, (3, 2)), lw=1.1,
                zorder=4)
    handles.append(Line2D([], [], color="black", ls=(0, (3, 2)), lw=1.1,
                          label="Wright–Fisher theory (exact mean)"))
    handles.append(Patch(facecolor="grey", alpha=0.25, label="10–90% of chains"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("generation t")
    ax.set_ylabel("original points with descendants")
    _plain_log(ax.xaxis)
    _plain_log(ax.yaxis)
    ax.set_title(f"(c) Ancestors under replace (h = {h:g}; the\ngenealogy does not depend "
                 "on h)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncols=2)


def _variance(ax, curves, n, bandwidths, colours, dim):
    for h in bandwidths:
        df = curves[(curves.n_samples == n) & (curves.policy == "replace")
                    & (curves.bandwidth == h) & (curves.generation >= 1)]
        _band(ax, df.generation, df.variance_q10, df.variance_mean, df.variance_q90,
              colours[h])
        ax.plot(df.generation, df.variance_theory, color="black", ls=(0, (3, 2)), lw=1.1,
                zorder=4)
        ax.axhline(n * dim * h * h, color=colours[h], ls=":", lw=1.0, zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("generation t")
    ax.set_ylabel("total variance tr(S + H) of the KDE")
    _plain_log(ax.xaxis)
    _plain_log(ax.yaxis)
    ax.set_title(f"(d) Variance under replace, n = {n}: it relaxes\ntowards n·d·h² (dotted)",
                 fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color="grey", lw=1.8, label="mean over chains"),
               Line2D([], [], color="black", ls=(0, (3, 2)), lw=1.1,
                      label="exact mean (theory)"),
               Line2D([], [], color="grey", ls=":", lw=1.0, label="n·d·h²: where it tends")]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncols=2)


def kde_collapse(result, *, fig=None):
    """The ``kde`` preset's figure (Kazdan et al. 2024's KDE experiment on two moons).

    (a) Held-out NLL against generation: one panel per sample size (rows) and policy
    (columns), one colour per bandwidth, median over chains with the 10–90% band.
    (b) One replace chain's density at generations 1, 10 and the last, for every
    bandwidth (rows), over the held-out points: too small a bandwidth collapses onto a
    few points, too large a one leaks mass into the empty regions (each panel states
    how many original points still have descendants and how much mass is left in the
    frame). (c) Original points with descendants under replace against the exact
    Wright–Fisher mean. (d) The total variance under replace against its exact mean,
    relaxing towards :math:`n d h^2`. ``fig``: a matplotlib Figure to draw into
    (default: a new one).

    Parameters
    ----------
    result : ExperimentResult
        From :func:`collapse_sim.experiments.kde_collapse` (or ``run_preset("kde")``).
        The figure is that preset's grid of sample sizes × bandwidths × policies with
        density snapshots on the two moons, which a Simulation does not hold: your own
        runs raise a TypeError that says what to call instead (``sim.plot("nll")``,
        :func:`collapse_sim.compare`, :func:`kde_log_density`).
    fig : matplotlib Figure, optional
        Where to draw (default: a new one).

    Returns
    -------
    matplotlib Figure

    Raises
    ------
    TypeError
        For a Simulation or runs (see above), or anything that is not a preset's result.
    """
    result = as_result(result, "kde_collapse")
    curves = result.curves
    sizes = sorted(curves.n_samples.unique())
    bandwidths = sorted(curves.bandwidth.unique())
    policies = list(dict.fromkeys(curves.policy))
    colours = _bandwidth_colours(bandwidths)
    if fig is None:
        fig = plt.figure(figsize=(15, 2.2 + 2.6 * len(sizes) + 2.0 * max(len(bandwidths), 2)),
                         layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.6 * len(sizes) + 1.2,
                                                      2.0 * max(len(bandwidths), 2) + 1.0])
    _nll_grid(top, curves, sizes, bandwidths, policies, colours)
    handles = [Line2D([], [], color=colours[h], lw=2, label=_bandwidth_label(h, bandwidths))
               for h in bandwidths]
    handles.append(Patch(facecolor="grey", alpha=0.25, label="band: 10–90% of chains"))
    top.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9,
               frameon=False, title="colour: bandwidth h; line: median over chains",
               title_fontsize=9)
    top.suptitle("(a) Held-out negative log-likelihood of the real test points against "
                 "generation: replace diverges, accumulating stays bounded", fontsize=11)
    left, right = bottom.subfigures(1, 2, width_ratios=[2.3, 1.0])
    _snapshots(left, result, bandwidths, colours)
    anc, var = right.subplots(2, 1)
    _ancestors(anc, curves, sizes, bandwidths)
    dim = result.extras["heldout"].shape[1]
    _variance(var, curves, result.params.get("snapshot_n", sizes[0]), bandwidths, colours,
              dim)
    return fig
