"""What the figure functions accept, turned into what they draw from.

Every figure function of :mod:`collapse_sim.plotting` takes a preset's
:class:`~collapse_sim.experiments.ExperimentResult` (or its ``curves`` table) *and* your
own runs: one :class:`~collapse_sim.Simulation`, a dict ``{label: Simulation}`` or a list
of them (labelled as :func:`collapse_sim.compare` labels them). This module is the one
place that tells them apart:

* :func:`as_runs` — ``{label: Simulation}`` from any of them;
* :func:`as_curves` — the long quantile table the curve figures read, built from runs by
  the presets' own builder (:func:`collapse_sim.experiments._quantile_curves`);
* :func:`as_result` — a result-like object (``curves``, ``extras``, ``params``,
  ``simulations``) rebuilt from runs by the figure's deriver in
  :mod:`collapse_sim.plotting._derive`;
* :func:`require_metrics`, :func:`require_models` — the errors that say what is missing
  and how to get it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..results import Simulation, _as_runs, _describe, _quantiles

#: What every figure function accepts, for error messages.
ACCEPTED = ("a preset's ExperimentResult (collapse_sim.experiments), its `curves` "
            "DataFrame, a Simulation, or a dict {label: Simulation} or list of Simulations")


def is_result(obj) -> bool:
    """A preset's result (or anything shaped like one: a ``curves`` DataFrame attribute)."""
    return not isinstance(obj, Simulation) and isinstance(getattr(obj, "curves", None),
                                                          pd.DataFrame)


def is_runs(obj) -> bool:
    """One Simulation, or a non-empty dict/list whose values are all Simulations."""
    if isinstance(obj, Simulation):
        return True
    if isinstance(obj, Mapping):
        values = list(obj.values())
    elif isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        values = list(obj)
    else:
        return False
    return bool(values) and all(isinstance(v, Simulation) for v in values)


def run_label(sim: Simulation) -> str:
    """A single run's label: its fitter and policy (``GaussianFit(estimator=mle),
    Replace()``), written as :func:`collapse_sim.compare` writes them."""
    parts = [_describe(sim.config.get(key)) for key in ("fitter", "policy")]
    return ", ".join(p for p in parts if p) or "run"


def as_runs(obj, figure: str) -> dict[str, Simulation]:
    """``{label: Simulation}`` from one Simulation, a dict or list of them, or a preset's
    result (its ``simulations``).

    Raises
    ------
    TypeError
        Naming ``figure`` and the accepted types, for anything else.
    """
    if isinstance(obj, Simulation):
        return {run_label(obj): obj}
    if is_result(obj) and isinstance(getattr(obj, "simulations", None), Mapping):
        return dict(obj.simulations)
    try:
        return _as_runs(obj)
    except TypeError as exc:
        raise TypeError(f"{figure} takes {ACCEPTED}; got {type(obj).__name__} ({exc})") from None


def require_metrics(runs: Mapping[str, Simulation], metrics: Sequence[str], figure: str,
                    *, hint: str = "") -> None:
    """ValueError naming the first metric a run lacks and how to compute it."""
    for name in metrics:
        lacking = [label for label, sim in runs.items() if name not in sim.metrics]
        if lacking:
            have = list(runs[lacking[0]].metrics)
            raise ValueError(
                f"{figure} draws the metric {name!r}, which the runs {lacking} did not "
                f"compute (they have {have}): run simulate(..., metrics=("
                + ", ".join(repr(m) for m in metrics) + ", ...))" + (f"; {hint}" if hint else ""))


def require_models(sim: Simulation, keys: Sequence[str], figure: str, label: str,
                   what: str) -> dict[str, np.ndarray]:
    """``sim.models`` if it holds ``keys``, else a ValueError asking for ``record_models``."""
    models = sim.models or {}
    if not set(keys) <= set(models):
        raise ValueError(f"{figure} needs {what} of run {label!r}: run simulate(..., "
                         f"record_models=True) (this run recorded "
                         f"{sorted(models) or 'no models'})")
    return models


def relative_runs(runs: Mapping[str, Simulation], metric: str) -> dict[str, Simulation]:
    """Runs whose ``metric`` is divided by its generation-0 median (the truth's value), so a
    variance reads :math:`\\sigma^2_t/\\sigma^2_0` (the other metrics are shared, not
    copied)."""
    out = {}
    for label, sim in runs.items():
        arr = sim.metrics[metric]
        first = float(np.median(arr[0]))
        scaled = dict(sim.metrics)
        scaled[metric] = arr / first if np.isfinite(first) and first != 0 else arr
        out[label] = Simulation(scaled, sim.config, sim.models, sim.fitted)
    return out


def quantile_curves(runs: Mapping[str, Simulation], group: str, metrics: Sequence[str],
                    *, relative: Sequence[str] = ()) -> pd.DataFrame:
    """The presets' long table from runs: one row per run and generation, per metric its
    10/50/90% quantiles across chains (``{metric}_q10`` …) and mean (``{metric}_mean``).

    Built by the presets' builder (:func:`collapse_sim.experiments._quantile_curves`);
    quantiles of metrics holding ``±inf`` (a KL once a category died) are taken as
    :meth:`Simulation.quantiles` takes them (an infinite order statistic gives an infinite
    quantile, not NaN). Metrics in ``relative`` are divided by their generation-0 median.
    """
    from ..experiments import QUANTILES, _quantile_curves

    for name in relative:
        runs = relative_runs(runs, name)
    with np.errstate(invalid="ignore"):
        curves = _quantile_curves(dict(runs), group, tuple(metrics))
    for label, sim in runs.items():
        rows = (curves[group] == label).to_numpy()
        for name in metrics:
            arr = sim.metrics[name]
            if not np.isfinite(arr).all():
                q = _quantiles(arr, QUANTILES)
                for i, level in enumerate(QUANTILES):
                    curves.loc[rows, f"{name}_q{round(100 * level)}"] = q[i]
    return curves


def as_curves(obj, figure: str, group: str, metrics: Sequence[str], *,
              relative: Sequence[str] = ()) -> pd.DataFrame:
    """The ``curves`` table a curve figure reads: ``obj`` itself if a DataFrame, a preset
    result's ``curves``, else :func:`quantile_curves` of the runs (after checking that
    every run computed ``metrics``)."""
    if isinstance(obj, pd.DataFrame):
        return obj
    if is_result(obj):
        return obj.curves
    if not is_runs(obj):
        raise TypeError(f"{figure} takes {ACCEPTED}; got {type(obj).__name__}"
                        + _why_not_runs(obj))
    runs = as_runs(obj, figure)
    require_metrics(runs, metrics, figure)
    return quantile_curves(runs, group, metrics, relative=relative)


def _why_not_runs(obj) -> str:
    """The first entry of a dict/list that is not a Simulation, for the error message."""
    items = (obj.items() if isinstance(obj, Mapping) else
             enumerate(obj) if isinstance(obj, Sequence) and not isinstance(obj, str | bytes)
             else ())
    for key, value in items:
        if not isinstance(value, Simulation):
            return f" (entry {key!r} is a {type(value).__name__}, not a Simulation)"
    return " (an empty collection)" if isinstance(obj, Mapping | Sequence) else ""


def as_result(obj, figure: str, *, name: str | None = None, **options):
    """``obj`` if it is a preset's result, else the result-like object the figure's
    deriver (:data:`collapse_sim.plotting._derive.DERIVERS`) builds from the runs, with
    ``options``. ``name`` is the function named in errors (default: ``figure``).

    Raises
    ------
    TypeError
        For a bare DataFrame (the figure needs more than a table) or anything that is not
        a result or runs.
    """
    name = name or figure
    if is_result(obj):
        return obj
    if isinstance(obj, pd.DataFrame):
        raise TypeError(f"{name} needs more than a curves table: pass the preset's "
                        "ExperimentResult, or your own Simulation(s)")
    if not is_runs(obj):
        raise TypeError(f"{name} takes {ACCEPTED}; got {type(obj).__name__}"
                        + _why_not_runs(obj))
    from ._derive import DERIVERS

    return DERIVERS[figure](as_runs(obj, name), **options)


def config_value(sim: Simulation, *path, default=None):
    """``sim.config[path[0]][path[1]]…``, with ``default`` where a key is missing."""
    value = sim.config
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


def policy_type(sim: Simulation) -> str | None:
    return config_value(sim, "policy", "type")


def shared(values) -> object | None:
    """The one value all entries share, else ``None``."""
    values = list(values)
    return values[0] if values and all(v == values[0] for v in values) else None
