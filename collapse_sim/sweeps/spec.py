"""Sweeps described in TOML files (what ``collapse-sim sweep`` runs)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from .grid import _with_message

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
    unknown = set(plot) - _SPEC_PLOT
    if unknown:
        raise ValueError(f"{path}: unknown [plot] option(s) {sorted(unknown)}; accepted: "
                         f"{sorted(_SPEC_PLOT)}")
    return {"base": base, "grid": grid, "options": options, "plot": plot}


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
    if kind not in types:
        raise ValueError(f"{where}: unknown type {kind!r}; one of {', '.join(sorted(types))}")
    kwargs = {k: v for k, v in value.items() if k != "type"}
    try:
        return types[kind](**kwargs)
    except (TypeError, ValueError) as exc:
        raise _with_message(exc, f"{where}: {exc}") from exc
