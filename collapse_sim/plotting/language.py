"""Figures of language-model runs: perplexity, vanishing words, and what the models write."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter

from ._adapt import as_result
from ._common import _band_lines


def _generation_colours(generations):
    return dict(zip(generations, plt.get_cmap("viridis")(np.linspace(0.0, 0.85,
                                                                     len(generations))),
                    strict=True))


def language(result, *, fig=None, prompt: str = "", sequences: int = 250):
    """The ``language`` preset's figure (a 2 × 3 grid).

    Top: held-out perplexity and surviving vocabulary against generation (median and
    10–90% band over chains, per policy), and one replace chain's rank–frequency curve
    at the reported generations (log–log: the tail shortens as rare words die). Bottom
    left: histograms of the perplexity of generated sequences under the generation-0
    model, per reported generation (the paper's Fig. 1), sampled faithfully and at a
    temperature below 1: only mode-seeking generation moves the mass to low perplexity.
    Bottom right: what one replace chain writes after the same prompt at each reported
    generation, sampling faithfully and at the preset's temperature.

    Parameters
    ----------
    result : ExperimentResult, Simulation, or dict or list of Simulation
        The ``language`` preset's result, or your n-gram runs
        (:class:`~collapse_sim.NGramTruth` fitted by :class:`~collapse_sim.NGramFit`,
        which keep their models in ``Simulation.fitted``; a loaded result has none):
        each needs the ``perplexity`` and ``vocabulary`` metrics. The rank–frequency
        curve is chain 0 of the first run; the histograms and the texts are those of
        the first two runs.
    fig : matplotlib Figure, optional
        Where to draw (default: a new one).
    prompt : str
        Your runs: what the models continue (default: nothing; the preset's result
        keeps its own prompt).
    sequences : int
        Your runs: generated sequences per chain in each histogram.

    Returns
    -------
    matplotlib Figure
    """
    result = as_result(result, "language", prompt=prompt, sequences=sequences)
    rank_label = (getattr(result, "params", None) or {}).get("rank_label",
                                                              "one replace chain")
    if fig is None:
        fig = plt.figure(figsize=(16, 9.5), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[1.0, 1.05])
    curves = result.curves
    ppl = fig.add_subplot(grid[0, 0])
    handles = _band_lines(ppl, curves, "perplexity", "policy")
    ppl.set_yscale("log")
    ppl.xaxis.set_major_locator(MaxNLocator(integer=True))
    ppl.set_xlabel("generation")
    ppl.set_ylabel("perplexity of held-out real text")
    ppl.set_title("Perplexity climbs")
    ppl.legend(handles=handles, fontsize=8, frameon=False)

    vocab = fig.add_subplot(grid[0, 1])
    handles = _band_lines(vocab, curves, "vocabulary", "policy")
    vocab.set_yscale("log")
    vocab.xaxis.set_major_locator(MaxNLocator(integer=True))
    vocab.set_xlabel("generation")
    vocab.set_ylabel("word types the model can still write")
    vocab.set_title("Rare words vanish")
    vocab.legend(handles=handles, fontsize=8, frameon=False)

    ranks = result.extras["ranks"]
    shown = list(ranks)
    colours = _generation_colours(shown)
    rf = fig.add_subplot(grid[0, 2])
    for g in shown:
        counts = ranks[g][ranks[g] > 0]
        label = ("generation 0 (real text)" if g == 0 else f"generation {g}") + (
            f": {counts.size} types")
        rf.step(np.arange(1, counts.size + 1), counts / counts.sum(), where="post",
                color=colours[g], lw=1.4, label=label)
    rf.set_xscale("log")
    rf.set_yscale("log")
    rf.set_xlabel("rank (most frequent word first)")
    rf.set_ylabel(f"word frequency ({rank_label})")
    rf.set_title("The rank–frequency curve loses its tail")
    rf.legend(fontsize=8, frameon=False)

    inner = grid[1, 0].subgridspec(2, 1, hspace=0.05)
    hists = result.extras["histograms"]
    top = None
    for i, (label, per_gen) in enumerate(hists.items()):
        ax = fig.add_subplot(inner[i], sharex=top)
        top = top or ax
        values = np.concatenate(list(per_gen.values()))
        bins = np.geomspace(max(values.min(), 1.0), values.max(), 50)
        for g, ppls in per_gen.items():
            ax.hist(ppls, bins=bins, density=True, histtype="step", lw=1.4,
                    color=colours[g], label="real text" if g == 0 else f"generation {g}")
        ax.set_xscale("log")
        ticks = [t for t in (5, 10, 20, 50, 100, 200, 500, 1000)
                 if bins[0] <= t <= bins[-1]]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yticks([])
        ax.set_ylabel("replace,\nfaithful" if label == "replace" else
                      label.replace("replace, ", "replace,\n"), fontsize=8)
        if i == 0:
            ax.set_title("Perplexity of generated sequences\nunder the generation-0 model",
                         fontsize=10)
            ax.legend(fontsize=7, frameon=False, loc="upper left")
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("perplexity of one sequence (log scale)")
    prompt = result.extras["prompt"]
    texts = result.extras["texts"]
    columns = grid[1, 1:].subgridspec(1, len(texts), wspace=0.04)
    for i, (label, per_gen) in enumerate(texts.items()):
        panel = fig.add_subplot(columns[i])
        panel.axis("off")
        panel.set_title(f"{label}: chain 0 after “{prompt}”" if prompt else
                        f"{label}: what chain 0 writes", loc="left", fontsize=10)
        y = 0.97
        for g, words in per_gen.items():
            wrapped = textwrap.fill(words, width=52)
            head = "generation 0 (model of the real text)" if g == 0 else f"generation {g}"
            panel.text(0.0, y, head, transform=panel.transAxes, fontsize=9,
                       fontweight="bold", color=colours.get(g, "black"), va="top")
            panel.text(0.0, y - 0.05, wrapped, transform=panel.transAxes, fontsize=9,
                       family="serif", va="top")
            y -= 0.05 + 0.045 * (wrapped.count("\n") + 1) + 0.035
    return fig
