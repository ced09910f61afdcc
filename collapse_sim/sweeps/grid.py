"""The grid: checking ``base``, ``grid`` and ``seeds``, and expanding them into runs.

:class:`_Plan` holds the configurations (the Cartesian product of the grid over
``base``), their readable labels and stable keys, and the seeds; it checks every
configuration with a dry run of :func:`~collapse_sim.simulate` before any work, and
assembles the result tables.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import check_int
from ..engine import kept_bytes, simulate
from ..policies import Replace
from .labels import _canonical_json, _label_columns
from .store import FORMAT

_SIGNATURE = inspect.signature(simulate)
_SET_BY_SWEEP = {
    "seed": "each run's seed comes from seeds=",
    "progress": "sweep shows its own progress bar (progress=)",
    "record_models": "a sweep keeps summaries, not every model",
}
#: ``simulate`` arguments added after sweeps existed, left out of a configuration's hash
#: while at their default: earlier sweeps keep their keys (and resume).
_LATER_DEFAULTS = {"generation": None}
#: ``simulate`` keyword arguments that ``base`` and ``grid`` may set.
PARAMETERS: tuple[str, ...] = tuple(p for p in _SIGNATURE.parameters if p not in _SET_BY_SWEEP)
_REQUIRED = tuple(p.name for p in _SIGNATURE.parameters.values()
                  if p.default is inspect.Parameter.empty)


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence | np.ndarray):
        raise TypeError(f"seeds must be a list of non-negative ints, got {type(seeds).__name__}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"seeds must be non-negative ints, got {s!r} "
                            f"({type(s).__name__})")
        if s < 0:
            raise ValueError(f"seeds must be non-negative ints, got {s}")
        out.append(int(s))
    if not out:
        raise ValueError("seeds is empty: give at least one seed, e.g. seeds=[0]")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds contains duplicates: {out}")
    return out


def _check_name(name, where: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{where} keys must be simulate() argument names, got {name!r}")
    if name in _SET_BY_SWEEP:
        raise ValueError(f"{where} cannot set {name!r}: {_SET_BY_SWEEP[name]}")
    if name not in PARAMETERS:
        raise ValueError(f"unknown {where} key {name!r}; simulate() accepts "
                         f"{', '.join(PARAMETERS)}")
    return name


@dataclass(frozen=True)
class _Job:
    index: int
    config: int
    seed: int
    kwargs: dict
    key: str


class _Plan:
    """The expanded grid: configurations, their labels and hashes, and the seeds."""

    def __init__(self, names, configs, labels, hashes, seeds, fingerprint, description,
                 stable):
        self.names = names
        self.configs = configs
        self.labels = labels
        self.hashes = hashes
        self.seeds = seeds
        self.fingerprint = fingerprint
        self.description = description
        self._stable = stable

    @classmethod
    def build(cls, base, grid, seeds, threshold) -> _Plan:
        if not isinstance(base, Mapping):
            raise TypeError(f"base must be a dict of simulate() arguments, got "
                            f"{type(base).__name__}")
        if not isinstance(grid, Mapping):
            raise TypeError(f"grid must be a dict mapping simulate() argument names to lists "
                            f"of values, got {type(grid).__name__}")
        for name in base:
            _check_name(name, "base")
        if not grid:
            raise ValueError("grid is empty: give at least one simulate() argument to vary, "
                             "e.g. grid={'n_samples': [10, 100]}")
        values = {}
        for name, vals in grid.items():
            _check_name(name, "grid")
            if isinstance(vals, str | bytes | Mapping) or not isinstance(
                    vals, Sequence | np.ndarray):
                raise TypeError(f"grid[{name!r}] must be a list of values, got "
                                f"{type(vals).__name__}")
            vals = list(vals)
            if not vals:
                raise ValueError(f"grid[{name!r}] is an empty list: give at least one value")
            canon = [_canonical_json(v) for v in vals]
            if len(set(canon)) != len(canon):
                raise ValueError(f"grid[{name!r}] contains duplicate values")
            values[name] = vals
        missing = [p for p in _REQUIRED if p not in base and p not in values]
        if missing:
            raise TypeError(f"simulate() needs {', '.join(missing)}: give "
                            f"{'it' if len(missing) == 1 else 'them'} in base or grid")
        seeds = _check_seeds(seeds)

        names = list(values)
        columns = {name: _label_columns(name, values[name]) for name in names}
        configs, labels, hashes = [], [], []
        stable = True
        for combo in itertools.product(*(range(len(values[n])) for n in names)):
            kwargs = dict(base)
            row = {}
            for name, i in zip(names, combo, strict=True):
                kwargs[name] = values[name][i]
                row.update(columns[name][i])
            bound = _SIGNATURE.bind_partial(**kwargs)
            bound.apply_defaults()
            normal = {k: v for k, v in bound.arguments.items() if k not in _SET_BY_SWEEP
                      and not (k in _LATER_DEFAULTS and v is _LATER_DEFAULTS[k])}
            text = _canonical_json(normal)
            stable = stable and " at 0x" not in text
            configs.append(kwargs)
            labels.append(row)
            hashes.append(hashlib.sha256(text.encode()).hexdigest()[:16])
        description = {
            "format": FORMAT,
            "base": json.loads(_canonical_json(dict(base))),
            "grid": json.loads(_canonical_json(values)),
            "seeds": seeds,
            "threshold": threshold,
        }
        fingerprint = hashlib.sha256(
            json.dumps(description, sort_keys=True).encode()).hexdigest()
        return cls(names, configs, labels, hashes, seeds, fingerprint, description, stable)

    @property
    def n_jobs(self) -> int:
        return len(self.configs) * len(self.seeds)

    def job(self, index: int) -> _Job:
        c, s = divmod(index, len(self.seeds))
        return _Job(index, c, self.seeds[s], self.configs[c], self.hashes[c])

    def jobs(self) -> Iterator[_Job]:
        return (self.job(i) for i in range(self.n_jobs))

    def validate_configurations(self) -> None:
        """What ``simulate`` would reject, for every configuration, before any run."""
        for c, kwargs in enumerate(self.configs):
            try:
                _dry_run(kwargs, self.seeds[0])
            except (TypeError, ValueError) as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in self.labels[c].items()
                                  if k in self.names)
                raise _with_message(exc, f"grid configuration {c} ({where}): {exc}") from exc

    def check_stable_keys(self) -> None:
        if not self._stable:
            raise TypeError("out_dir needs stable names for every configuration, but a value "
                            "in base or grid has only a memory-address repr (give it a "
                            "to_dict() method or use collapse_sim objects)")

    def table(self, records: dict[int, dict]) -> pd.DataFrame:
        rows = []
        for job in self.jobs():
            rows.append({"config": job.config, "key": job.key, **self.labels[job.config],
                         "seed": job.seed, **records[job.index]["summary"]})
        frame = pd.DataFrame(rows)
        frame.attrs["parameters"] = list(self.names)
        return frame

    def curve_table(self, records: dict[int, dict]) -> pd.DataFrame:
        parts = []
        for job in self.jobs():
            arrays = records[job.index]["curves"]
            size = len(next(iter(arrays.values())))
            head = {"config": job.config, "key": job.key, **self.labels[job.config],
                    "seed": job.seed}
            part = pd.DataFrame({"generation": np.arange(size), **arrays})
            for i, (k, v) in enumerate(head.items()):
                part.insert(i, k, v)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)


def _dry_run(kwargs: dict, seed: int) -> None:
    """Let ``simulate`` check every argument, at the cost of a 0-generation, 1-chain run."""
    generations = check_int("generations", kwargs["generations"], minimum=0)
    chains = check_int("chains", kwargs.get("chains", 1), minimum=1)
    simulate(**{**kwargs, "generations": 0, "chains": 1}, seed=seed, progress=False)
    # simulate's memory ceiling depends on chains and generations, which the dry run shrank
    policy, fitter, truth = kwargs.get("policy", Replace()), kwargs["fitter"], kwargs["truth"]
    kept = kept_bytes(policy, fitter, truth, chains, kwargs["n_samples"], generations)
    limit = getattr(policy, "max_bytes", math.inf)
    if kept > limit:
        raise ValueError(f"{type(policy).__name__} would keep {kept / 2**30:.2f} GiB of "
                         f"training points, above its max_bytes={limit}")


def _with_message(exc: Exception, message: str) -> Exception:
    try:
        return type(exc)(message)
    except Exception:  # an exception class with a custom constructor
        return (TypeError if isinstance(exc, TypeError) else ValueError)(message)
