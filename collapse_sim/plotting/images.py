"""Figures of image models refitted on their own samples: digit grids, their curves, a GIF."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from ._adapt import as_result
from ._common import PALETTE, _band_lines

#: Generations the ``digits`` figure shows as rows (those up to the run's last, and the last).
GRID_GENERATIONS = (0, 1, 5, 20, 50, 100, 200, 500)
#: Grey levels of the digits (scikit-learn's ``load_digits``): 0 (white) to 16 (black).
GREY_LEVELS = (0.0, 16.0)


def _mosaic(rows: list[np.ndarray], gap: int = 1) -> np.ndarray:
    """Images ``rows[i]`` ``(m, h, w)`` tiled row by row, ``gap`` pixels of NaN between."""
    m = max(r.shape[0] for r in rows)
    h, w = rows[0].shape[1:]
    out = np.full((len(rows) * (h + gap) - gap, m * (w + gap) - gap), np.nan)
    for i, imgs in enumerate(rows):
        for j, img in enumerate(imgs):
            out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = img
    return out


def digit_grid(images, *, labels=None, ax=None, title: str | None = None,
               levels: tuple[float, float] = GREY_LEVELS):
    """Rows of small grey-level images, one row per entry of ``images``.

    Parameters
    ----------
    images : sequence of ndarray
        Row ``i`` is an ``(m, h, w)`` array of images (rows may be shorter than others).
    labels : sequence of str, optional
        One label per row, written left of it ("generation 5" …).
    ax : matplotlib Axes, optional
    title : str, optional
    levels : (float, float)
        Grey levels drawn white and black; values beyond are clipped.

    Returns
    -------
    matplotlib Axes
    """
    rows = [np.asarray(r, dtype=np.float64) for r in images]
    if not rows or any(r.ndim != 3 for r in rows):
        raise ValueError("images must be a non-empty sequence of (m, h, w) arrays")
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"labels has {len(labels)} entries for {len(rows)} rows of images")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * max(r.shape[0] for r in rows) + 1.2,
                                      0.45 * len(rows) + 0.4), layout="constrained")
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    mosaic = _mosaic(rows)
    ax.imshow(np.clip(mosaic, *levels), cmap=cmap, vmin=levels[0], vmax=levels[1],
              interpolation="nearest")
    h = rows[0].shape[1]
    ax.set_xticks([])
    ax.set_yticks([(h + 1) * i + (h - 1) / 2 for i in range(len(rows))],
                  labels=labels if labels is not None else [""] * len(rows), fontsize=8)
    ax.tick_params(axis="y", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _grid_rows(result, label: str, columns: int):
    images = result.extras["images"][label]
    last = images.shape[0] - 1
    shown = sorted({g for g in GRID_GENERATIONS if g <= last} | {last})
    rows = [result.extras["real_images"][:columns]]
    rows += [images[g, :columns] for g in shown]
    labels = ["real digits"] + [f"generation {g}" for g in shown]
    return rows, labels


def digits_figure(result, *, fig=None, columns: int = 10, seed: int = 0):
    """The ``digits`` preset's figure: sampled digits per generation, and the curves.

    Top: for each setting, ``columns`` images of chain 0 at the generations of
    :data:`GRID_GENERATIONS` (rows; the first row is real training digits): what that
    setting trains on — model samples :math:`\\mu + Wz + \\sigma\\varepsilon`, or the
    noise-free decoded means :math:`\\mu + Wz` — as Shumailov et al.'s VAE figure. Bottom:
    median and 10–90% band over chains of the total variance (with its exact expectation
    under replace, dashed), the noise variance :math:`\\sigma^2` (log scale; exactly 0
    from generation 2 with noise-free means), the number of digits a classifier of the
    real data still finds among the samples, and the entropy of the digits it assigns.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``digits`` preset's result, or your runs of :class:`~collapse_sim.PPCAFit`
        on ``cs.Empirical(cs.datasets.digits(), ...)`` with ``record_models=True`` and
        the metrics ``variance``, ``noise_variance``, ``classes_covered`` and
        ``class_entropy`` (``metrics=collapse_sim.experiments.DIGITS_METRICS``). Chain
        0's images are drawn from its recorded models as the preset draws them (the
        noise-free decoded means under a ``NoiseFree`` stage); the exact mean of the
        total variance is drawn for the first run when it is a ``Replace`` run without a
        stage.
    fig : matplotlib Figure, optional
        Where to draw (default: a new one).
    columns : int
        Images per row.
    seed : int
        Your runs: the seed of the images drawn from the recorded models.

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "digits_figure", shown=max(columns, 24), seed=seed)
    settings = list(result.extras["images"])
    if fig is None:
        # at least the width the four panels below need (one setting of yours)
        fig = plt.figure(figsize=(max(4.6 * len(settings) + 0.6, 14.0), 8.6),
                         layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[0.85, 1.0])
    axes = top.subplots(1, len(settings))
    for ax, label in zip(np.atleast_1d(axes), settings, strict=True):
        rows, labels = _grid_rows(result, label, columns)
        what = ("decoded means μ + Wz" if "noise-free" in label
                else "samples μ + Wz + σε")
        digit_grid(rows, labels=labels, ax=ax, title=f"{label}\n(chain 0's {what})")
    params = result.params
    sizes = [f"q = {params['n_components']}" if params.get("n_components") else "",
             f"n = {params['n_samples']} digits per generation"
             if params.get("n_samples") else ""]
    top.suptitle("Probabilistic PCA" + (f" ({sizes[0]})" if sizes[0] else "")
                 + " refitted on its own samples" + (f", {sizes[1]}" if sizes[1] else ""),
                 fontsize=11)

    curves = result.curves
    colours = dict(zip(settings, PALETTE, strict=False))
    var_ax, noise_ax, cover_ax, ent_ax = bottom.subplots(1, 4)
    handles = _band_lines(var_ax, curves, "variance", "setting", colours=colours)
    rows = curves[curves.setting == settings[0]]
    extra = []
    if rows.variance_theory.notna().any():  # your runs: only a replace run without a stage
        extra.append(var_ax.plot(rows.generation, rows.variance_theory, color="black",
                                 ls="--", lw=1.2, zorder=4, label=f"{settings[0]}: exact mean,"
                                                                  "\ntr C₀ ((n−1)/n)ᵗ")[0])
    (mean,) = var_ax.plot(rows.generation, rows.variance_mean, color=colours[settings[0]],
                          ls=":", lw=1.6, zorder=4, label=f"{settings[0]}: simulated mean")
    var_ax.set_ylabel("total variance tr C (sum of pixel variances)")
    var_ax.set_title("Total variance", fontsize=10)

    # sigma^2 = 0 (a singular model) has no place on a log scale: left out, and said so
    positive = curves.copy()
    for column in [c for c in curves.columns if c.startswith("noise_variance_")]:
        positive[column] = positive[column].where(positive[column] > 0)
    _band_lines(noise_ax, positive, "noise_variance", "setting", colours=colours)
    noise_ax.set_yscale("log")
    noise_ax.set_ylabel("noise variance σ² (per pixel), log scale")
    noise_ax.set_title("The detail left to noise vanishes", fontsize=10)
    zero = [s for s in settings if "noise-free" in s]
    if zero:
        noise_ax.text(0.03, 0.03, f"{zero[0]}:\nσ² = 0 from generation 2\n(not on a log scale)",
                      transform=noise_ax.transAxes, fontsize=7.5, color=colours[zero[0]],
                      va="bottom")

    _band_lines(cover_ax, curves, "classes_covered", "setting", colours=colours)
    cover_ax.set_ylim(0, 10.5)
    cover_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    cover_ax.set_ylabel("digits the classifier still finds\n(≥ 1% of 500 samples each)")
    cover_ax.set_title("Modes disappear", fontsize=10)

    _band_lines(ent_ax, curves, "class_entropy", "setting", colours=colours)
    real = result.extras["real_scores"]
    (ref,) = ent_ax.plot([], [], color="grey", lw=1, ls="-.",
                         label=f"real held-out digits ({real['class_entropy']:.2f})")
    ent_ax.axhline(real["class_entropy"], color="grey", lw=1, ls="-.")
    ent_ax.set_ylabel("entropy of the predicted digits (nats)")
    ent_ax.set_title("Samples concentrate on fewer digits", fontsize=10)
    for ax in (var_ax, noise_ax, cover_ax, ent_ax):
        ax.set_xlabel("generation t")
        ax.grid(True, alpha=0.3)
    bottom.legend(handles=[*handles[:-1], mean, *extra, ref, handles[-1]],
                  loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def animate_digits(result, path, *, fps: float = 8, generations=None, columns: int = 6,
                   dpi: int = 72):
    """Write a GIF of the ``digits`` preset: one frame per generation, every setting's
    images side by side (``4 x columns`` of chain 0's, as :func:`digits_figure`).

    Written with matplotlib's :class:`~matplotlib.animation.PillowWriter` (Pillow is a
    dependency of matplotlib, so no extra package is needed).

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        From the ``digits`` preset, or your runs as :func:`digits_figure` takes them
        (only the recorded models are needed; the metrics are not drawn).
    path : str or PathLike
        Output file; ``.gif`` is appended when missing.
    fps : float
        Frames per second (> 0).
    generations : sequence of int, optional
        The frames, in order (default: every generation up to 60, else 61 evenly spaced).
    columns : int
        Images per row (4 rows per setting).
    dpi : int

    Returns
    -------
    pathlib.Path
        The GIF written.
    """
    from matplotlib.animation import PillowWriter

    if not isinstance(columns, int) or isinstance(columns, bool) or columns < 1:
        raise ValueError(f"columns must be an int >= 1, got {columns!r}")
    result = as_result(result, "animate_digits", shown=max(4 * columns, 24), images_only=True)
    images = result.extras["images"]
    settings = list(images)
    last = next(iter(images.values())).shape[0] - 1
    if generations is None:
        generations = (range(last + 1) if last <= 60
                       else np.unique(np.round(np.linspace(0, last, 61)).astype(int)))
    gens = [int(g) for g in generations]
    if not gens or min(gens) < 0 or max(gens) > last:
        raise ValueError(f"generations must be a non-empty sequence of ints in [0, {last}]")
    if (isinstance(fps, bool) or not isinstance(fps, int | float) or not np.isfinite(fps)
            or fps <= 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    per = 4 * columns
    if per > next(iter(images.values())).shape[1]:
        raise ValueError(f"columns={columns} needs {per} images per generation, the result "
                         f"has {next(iter(images.values())).shape[1]}")
    path = Path(path)
    if path.suffix.lower() != ".gif":
        path = path.with_name(path.name + ".gif")
    fig, axes = plt.subplots(1, len(settings), figsize=(2.6 * len(settings), 2.3))
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    pictures = []
    for ax, label in zip(np.atleast_1d(axes), settings, strict=True):
        ax.set_axis_off()
        ax.set_title(label, fontsize=8)
        blank = _mosaic([np.zeros((columns, *images[label].shape[2:]))] * 4)
        pictures.append(ax.imshow(blank, cmap=cmap, vmin=GREY_LEVELS[0],
                                  vmax=GREY_LEVELS[1], interpolation="nearest"))
    title = fig.suptitle("generation 0", fontsize=10)
    fig.tight_layout()

    def frame(g):
        for picture, label in zip(pictures, settings, strict=True):
            imgs = images[label][g, :per]
            picture.set_data(np.clip(_mosaic([imgs[r * columns:(r + 1) * columns]
                                              for r in range(4)]), *GREY_LEVELS))
        title.set_text(f"generation {g}" + (" (fit of the real data)" if g == 0 else ""))

    writer = PillowWriter(fps=fps)
    try:
        with writer.saving(fig, path, dpi):
            for g in gens:
                frame(g)
                writer.grab_frame()
    finally:
        plt.close(fig)
    return path
