"""Readable labels and stable keys of grid values.

:func:`_label` and :func:`_label_columns` turn the values of a grid into the table's
identifying columns (numbers stay numbers, objects become strings such as
``"KeepReal(fraction=0.1)"``). :func:`_canonical_json` describes a value the same way in
every process and session: its hash names a configuration's files in ``out_dir``, so it
must not change between releases (see :data:`collapse_sim.sweeps.FORMAT`).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass

import numpy as np


def _scalar(value):
    """Numbers, strings, booleans and None as plain Python values, else None."""
    if value is None or isinstance(value, bool | str):
        return value, True
    if isinstance(value, np.bool_):
        return bool(value), True
    if isinstance(value, numbers.Integral):
        return int(value), True
    if isinstance(value, numbers.Real):
        return float(value), True
    return None, False


def _shown_fields(value) -> dict:
    """The dataclass fields a label shows: all of a small class's fields (but a resource
    limit like ``max_bytes`` or a flag like ``resample`` only when set), only the
    non-default ones of a larger class."""
    fs = fields(value)
    shown = {}
    for f in fs:
        v = getattr(value, f.name)
        at_default = f.default is not MISSING and _same(v, f.default)
        if not (at_default and (len(fs) > 2 or f.name == "max_bytes"
                                or isinstance(f.default, bool))):
            shown[f.name] = v
    return shown


def _label(value) -> object:
    """A readable stand-in for a grid value: numbers stay numbers."""
    plain, ok = _scalar(value)
    if ok:
        return plain
    if is_dataclass(value) and not isinstance(value, type):
        args = ", ".join(f"{k}={v!r}" for k, v in _shown_fields(value).items())
        return f"{type(value).__name__}({args})"
    if isinstance(value, list | tuple):
        return ", ".join(str(_label(v)) for v in value)
    return repr(value)


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _label_columns(name: str, vals: list) -> list[dict]:
    """Per value: ``{name: label}`` plus ``{name_field: value}`` for varying dataclass fields."""
    labels = [_label(v) for v in vals]
    if not all(_scalar(v)[1] for v in vals):  # objects (maybe mixed with numbers): strings
        labels = [str(lab) for lab in labels]
    counts: dict = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    # distinct values with the same label (e.g. two 2-D Gaussians): number them
    labels = [f"{lab} #{i}" if counts[lab] > 1 else lab for i, lab in enumerate(labels)]
    rows = [{name: lab} for lab in labels]
    shown = [_shown_fields(v) if is_dataclass(v) and not isinstance(v, type) else {}
             for v in vals]
    for fname in dict.fromkeys(k for fs in shown for k in fs):
        column = [_scalar(fs[fname]) if fname in fs else (np.nan, True) for fs in shown]
        if not all(ok for _, ok in column):
            continue
        column = [v for v, _ in column]
        if len({repr(v) for v in column}) > 1:  # varies across the grid (absent counts)
            for row, v in zip(rows, column, strict=True):
                row[f"{name}_{fname}"] = v
    return rows


def _canonical(value):
    """A JSON-able description that is the same in every process and session."""
    plain, ok = _scalar(value)
    if ok:
        return plain
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return {"__class__": type(value).__name__, **_canonical(value.to_dict())}
    if is_dataclass(value) and not isinstance(value, type):
        return {"__class__": type(value).__name__,
                **{f.name: _canonical(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _canonical(value.tolist())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"


def _canonical_json(value) -> str:
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))
