"""Figures (the only part of ``collapse_sim`` that imports matplotlib).

Single-panel functions take ``ax=`` (a new figure is made when it is ``None``) and
return the Axes they drew on: :func:`variance_collapse`, :func:`w2_growth`,
:func:`density_evolution`, :func:`policy_comparison`, :func:`error_sources`, and for
your own runs :func:`plot_simulation` (what ``Simulation.plot`` draws) and
:func:`comparison` (what :func:`collapse_sim.compare` draws).
Every figure of a preset takes that preset's result (or its ``curves`` table) *or your
own runs*: a :class:`~collapse_sim.Simulation`, a dict ``{label: Simulation}`` or a list
of them, as far as the runs hold what the figure draws (a missing metric or unrecorded
models is a ValueError saying how to get them; :func:`kde_collapse`, which draws the
``kde`` preset's grid, says what to call instead). :func:`density_evolution` takes a
Simulation with recorded models; :func:`curves_from_runs` makes the quantile table of
your runs.
Multi-panel figures of the presets make their own Figure and return it
(:func:`gaussian_demo`, :func:`gmm_snapshots`, :func:`mismatch`, :func:`sgd_drift`,
:func:`policies`, :func:`error_sources_figure`, :func:`regression_error`,
:func:`vocabulary`, :func:`language`, :func:`sampling_bias`, :func:`kde_collapse`,
:func:`digits_figure`;
:func:`figure_for` picks one by preset name from :data:`FIGURES`).
:func:`animate_density` and :func:`animate_digits` write a GIF and return its path;
:func:`digit_grid` tiles small images (rows: generations); :func:`kde_log_density`
evaluates a kernel density estimate on a grid.

Colours are the Okabe–Ito palette, which stays distinguishable under the common
colour-vision deficiencies; medians are solid lines, 10–90% ranges across chains
shaded bands, theory and floors dashed.
"""

from . import _common, curves, presets
from .curves import error_sources, policy_comparison, variance_collapse, w2_growth
from .densities import animate_density, density_evolution
from .discrete import vocabulary
from .images import animate_digits, digit_grid, digits_figure
from .kde import kde_collapse, kde_log_density
from .language import language
from .presets import (
    error_sources_figure,
    figure_for,
    gaussian_demo,
    gmm_snapshots,
    mismatch,
    policies,
    regression_error,
    sgd_drift,
)
from .simulation import comparison, curves_from_runs, plot_simulation
from .stages import sampling_bias
from .sweeps import sweep_summary

__all__ = [
    "ERROR_SOURCE_COLOURS",
    "FIGURES",
    "PALETTE",
    "animate_density",
    "animate_digits",
    "comparison",
    "curves_from_runs",
    "density_evolution",
    "digit_grid",
    "digits_figure",
    "error_sources",
    "error_sources_figure",
    "figure_for",
    "gaussian_demo",
    "gmm_snapshots",
    "kde_collapse",
    "kde_log_density",
    "language",
    "mismatch",
    "plot_simulation",
    "policies",
    "policy_comparison",
    "regression_error",
    "sampling_bias",
    "sgd_drift",
    "sweep_summary",
    "variance_collapse",
    "vocabulary",
    "w2_growth",
]

# The public data, bound here so that its ``#:`` documentation is part of this module's
# (the API reference documents ``collapse_sim.plotting``, not the submodules).

#: Okabe–Ito colours, in the order settings are drawn.
PALETTE = _common.PALETTE
LABELS = _common.LABELS  # legend names of the variance estimators
#: Colours of the four settings of :func:`error_sources`.
ERROR_SOURCE_COLOURS = curves.ERROR_SOURCE_COLOURS
#: The figure of every preset, by preset name: a function that takes the preset's
#: :class:`~collapse_sim.experiments.ExperimentResult` and returns a matplotlib Figure
#: (see :func:`figure_for`). A new preset's figure is one more entry.
FIGURES = presets.FIGURES
