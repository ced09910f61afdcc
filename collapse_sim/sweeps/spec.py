"""Sweeps described in TOML files (what ``collapse-sim sweep`` runs)."""

from __future__ import annotations

import itertools
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from .grid import _with_message
from .labels import _label_columns

_SPEC_SECTIONS = {"base", "grid", "sweep", "plot"}
_SPEC_OPTIONS = {"seeds", "backend", "n_jobs", "client", "threshold", "curves", "quantiles"}
_SPEC_PLOT = {"x", "y", "hue"}


def read_spec(path: str | os.PathLike) -> dict:
    """Read a sweep described in TOML (see the how-to page on sweeps for the format).

    Sections: ``[base]`` and ``[grid]`` (``simulate`` arguments; objects are inline
    tables naming a public ``collapse_sim`` class, e.g. ``{ type = "KeepReal",
    fraction = 0.1 }``), ``[sweep]`` (``seeds`` and the other :func:`sweep` options)
    and ``[plot]`` (``x``, ``y``, ``hue`` of the command line's figure).

    Returns
    -------
    dict
        ``base``, ``grid``, ``options`` (keyword arguments of :func:`sweep`, with
        ``seeds``) and ``plot``; ``sweep(spec["base"], spec["grid"], **spec["options"])``
        runs it.

    Raises
    ------
    ValueError, TypeError
        Before any run: invalid TOML, an unknown section, option or class, and
        ``[plot]`` choices that are not columns of the sweep's table (``x`` and
        ``hue``: a grid column, ``seed`` or ``config``; ``y``: a per-run summary), each
        with a one-line message naming the key and the accepted values.
    """
    path = Path(path)
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    unknown = set(data) - _SPEC_SECTIONS
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; a sweep spec has "
                         f"{sorted(_SPEC_SECTIONS)}")
    for section in _SPEC_SECTIONS & set(data):
        if not isinstance(data[section], dict):
            raise TypeError(f"{path}: {section} must be a table ([{section}]), got "
                            f"{type(data[section]).__name__}")
    base = {k: _from_spec(v, f"base.{k}") for k, v in data.get("base", {}).items()}
    grid = {}
    for key, vals in data.get("grid", {}).items():
        if not isinstance(vals, list):
            raise TypeError(f"{path}: grid.{key} must be an array of values, got "
                            f"{type(vals).__name__}")
        grid[key] = [_from_spec(v, f"grid.{key}[{i}]") for i, v in enumerate(vals)]
    options = dict(data.get("sweep", {}))
    unknown = set(options) - _SPEC_OPTIONS
    if unknown:
        raise ValueError(f"{path}: unknown [sweep] option(s) {sorted(unknown)}; accepted: "
                         f"{sorted(_SPEC_OPTIONS)}")
    if "seeds" not in options:
        raise ValueError(f"{path}: [sweep] must give seeds, e.g. seeds = [0, 1]")
    plot = dict(data.get("plot", {}))
    try:  # before any run: a bad choice would otherwise surface only after the last one
        _check_plot(plot, base, grid)
    except (TypeError, ValueError) as exc:
        raise _with_message(exc, f"{path}: {exc}") from exc
    return {"base": base, "grid": grid, "options": options, "plot": plot}


def _check_plot(plot: Mapping, base: Mapping, grid: Mapping) -> None:
    """Check a spec's ``[plot]`` choices against the columns its sweep's table will have.

    ``x`` and ``hue`` must name an identifying column of the table (a grid name, a
    ``<name>_<field>`` column of a dataclass field that varies across the grid,
    ``seed`` or ``config``); ``y`` a per-run summary (``collapse_generation``,
    ``final_variance_ratio`` when ``variance`` is computed, ``final_<metric>_median`` and
    ``final_<metric>_mean``). Runs nothing: the metrics come from the registry.

    Parameters
    ----------
    plot : dict
        The ``[plot]`` table: optional ``x``, ``y``, ``hue`` (strings).
    base, grid : dict
        The sweep's ``base`` and ``grid`` (values already built, as :func:`read_spec`
        returns them).

    Raises
    ------
    TypeError
        A choice that is not a string.
    ValueError
        An unknown key, or a column the table will not have; the message names the key
        and lists the accepted columns. ``y`` is checked only when every configuration's
        metrics are known (otherwise :func:`sweep` rejects the configuration itself
        before any run).
    """
    unknown = set(plot) - _SPEC_PLOT
    if unknown:
        raise ValueError(f"unknown [plot] option(s) {sorted(unknown)}; accepted: "
                         f"{sorted(_SPEC_PLOT)}")
    identifying = _identifying_columns(grid)
    summaries = _summary_columns(base, grid)
    for key in ("x", "hue", "y"):
        if key not in plot:
            continue
        accepted = summaries if key == "y" else identifying
        value = plot[key]
        listed = ", ".join(accepted) if accepted is not None else "a summary column"
        if not isinstance(value, str):
            raise TypeError(f"[plot] {key} must be a column name (a string), got "
                            f"{value!r} ({type(value).__name__}); accepted: {listed}")
        if accepted is not None and value not in accepted:
            what = "a summary" if key == "y" else "an identifying"
            raise ValueError(f"[plot] {key} = {value!r} is not {what} column of this "
                             f"sweep's table; accepted: {listed}")


def _identifying_columns(grid: Mapping) -> list[str]:
    """The table's columns for the grid (as :class:`_Plan` builds them), ``seed``, ``config``."""
    columns: dict[str, None] = {}
    for name, vals in grid.items():
        if not isinstance(name, str) or not isinstance(vals, list | tuple) or not vals:
            continue  # sweep() itself rejects it before any run
        for row in _label_columns(name, list(vals)):
            columns.update(dict.fromkeys(row))
    columns.update(dict.fromkeys(("seed", "config")))
    return list(columns)


def _summary_columns(base: Mapping, grid: Mapping) -> list[str] | None:
    """The per-run summary columns (:func:`summarize`) of every configuration, or ``None``
    when some configuration's metrics cannot be worked out (an invalid configuration)."""
    from .. import registry

    choices = []
    for name in ("truth", "fitter", "metrics"):
        if name in grid and isinstance(grid[name], list | tuple):
            choices.append(list(grid[name]))
        else:
            choices.append([base.get(name)])
    columns: dict[str, None] = {}
    for truth, fitter, metrics in itertools.product(*choices):
        try:
            pair = (type(truth), fitter.model_type)
            names = registry.check_names(
                registry.defaults(*pair) if metrics is None else metrics, *pair)
        except Exception:  # an invalid configuration: sweep() reports it, before any run
            return None
        if "variance" in names:
            columns.update(dict.fromkeys(("collapse_generation", "final_variance_ratio")))
        for metric in names:
            columns.update(dict.fromkeys((f"final_{metric}_median", f"final_{metric}_mean")))
    return list(columns)


def _spec_types() -> dict[str, type]:
    import collapse_sim

    return {name: getattr(collapse_sim, name) for name in collapse_sim.__all__
            if isinstance(getattr(collapse_sim, name), type)
            and name not in ("Simulation", "SklearnFitter")}


def _from_spec(value, where: str):
    if not isinstance(value, dict):
        return value
    if "type" not in value:
        raise ValueError(f"{where}: an inline table must name its class, e.g. "
                         '{ type = "KeepReal", fraction = 0.1 }')
    types = _spec_types()
    kind = value["type"]
    if not isinstance(kind, str) or kind not in types:
        raise ValueError(f"{where}: unknown type {kind!r}; one of {', '.join(sorted(types))}")
    kwargs = {k: v for k, v in value.items() if k != "type"}
    try:
        return types[kind](**kwargs)
    except (TypeError, ValueError) as exc:
        raise _with_message(exc, f"{where}: {exc}") from exc
