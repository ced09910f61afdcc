r"""Schedules: a policy's fraction or ratio as a function of the generation.

The share of synthetic text in what gets scraped grows every year; a schedule says
so in one line::

    cs.FreshReal(fraction=cs.schedule.linear(1.0, 0.1, over=50))   # real share 100% -> 10%

A schedule gives the value :math:`v_t` used to build the training set of generation
:math:`t \ge 2` (generation 1 always trains on the original real sample):

================================= =======================================================
``constant(v)``                   :math:`v_t = v`
``linear(start, end, over)``      :math:`v_t = s + (e - s)\min(1, (t-2)/\text{over})`: from
                                  ``start`` at generation 2 to ``end`` at ``2 + over``,
                                  then ``end``
``exponential(start, end, over)`` geometric interpolation
                                  :math:`v_t = s\,(e/s)^{\min(1, (t-2)/\text{over})}`
                                  (``start``, ``end`` > 0)
``step(values, every)``           :math:`v_t` = ``values[min((t-2) // every, len-1)]``
an array ``a``                    :math:`v_t = a_{t-2}` for :math:`t = 2 \dots G`: length
                                  :math:`G - 1` (checked when the run starts)
================================= =======================================================

Every value is checked against the policy's range for every generation of a run
before any sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import MAX_INT, as_float_array, check_int, check_real


class Schedule:
    """A value per generation (see the module docstring)."""

    def values(self, generations: int) -> np.ndarray:
        """``(generations + 1,)`` float: entry ``t`` is the value for generation ``t``
        (entries 0 and 1 repeat generation 2's value: they are never used)."""
        t = np.arange(generations + 1)
        return self._at(np.maximum(t - 2, 0))

    def at(self, generation: int) -> float:
        """The value for generation ``generation`` (>= 2)."""
        return float(self._at(np.array([max(generation - 2, 0)]))[0])

    def _at(self, s: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        out = {"type": f"schedule.{type(self).__name__.lower()}"}
        for name in getattr(self, "__dataclass_fields__", {}):
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Constant(Schedule):
    """The same value every generation."""

    value: float

    def _at(self, s):
        return np.full(s.shape, self.value, dtype=np.float64)


@dataclass(frozen=True)
class Linear(Schedule):
    """From ``start`` at generation 2 to ``end`` at generation ``2 + over``, then ``end``."""

    start: float
    end: float
    over: int

    def _at(self, s):
        frac = np.minimum(1.0, s / self.over)
        return self.start + (self.end - self.start) * frac


@dataclass(frozen=True)
class Exponential(Schedule):
    """Geometric interpolation from ``start`` to ``end`` over ``over`` generations."""

    start: float
    end: float
    over: int

    def _at(self, s):
        frac = np.minimum(1.0, s / self.over)
        return self.start * (self.end / self.start) ** frac


@dataclass(frozen=True)
class Step(Schedule):
    """``values[0]`` for ``every`` generations from generation 2, then ``values[1]`` …"""

    steps: tuple
    every: int

    def _at(self, s):
        index = np.minimum(s // self.every, len(self.steps) - 1)
        return np.asarray(self.steps, dtype=np.float64)[index]


@dataclass(frozen=True)
class Array(Schedule):
    """Explicit values for generations 2, 3, … (length ``generations - 1``)."""

    entries: tuple

    def at(self, generation: int) -> float:
        """``entries[generation - 2]`` (the last entry beyond the end)."""
        return float(self.entries[min(max(generation - 2, 0), len(self.entries) - 1)])

    def values(self, generations: int) -> np.ndarray:
        if len(self.entries) != max(generations - 1, 0):
            raise ValueError(f"a schedule given as an array must have one value per "
                             f"generation from 2 to {generations}: {max(generations - 1, 0)} "
                             f"values, got {len(self.entries)}")
        head = self.entries[0] if self.entries else 0.0
        return np.asarray([head, head, *self.entries], dtype=np.float64)[:generations + 1]


def constant(value: float) -> Constant:
    """The same ``value`` every generation."""
    return Constant(check_real("value", value))


def linear(start: float, end: float, *, over: int) -> Linear:
    """Linear from ``start`` (generation 2) to ``end`` (generation ``2 + over``), then flat."""
    return Linear(check_real("start", start), check_real("end", end),
                  check_int("over", over, minimum=1, maximum=MAX_INT))


def exponential(start: float, end: float, *, over: int) -> Exponential:
    """Geometric from ``start`` to ``end`` (both > 0) over ``over`` generations, then flat."""
    return Exponential(check_real("start", start, low=0.0, low_open=True),
                       check_real("end", end, low=0.0, low_open=True),
                       check_int("over", over, minimum=1, maximum=MAX_INT))


def step(values, *, every: int) -> Step:
    """``values[i]`` for generations ``2 + i*every`` to ``1 + (i+1)*every``; the last after."""
    arr = as_float_array("values", values)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {arr.shape}")
    return Step(tuple(arr.tolist()), check_int("every", every, minimum=1, maximum=MAX_INT))


def as_schedule(name: str, value) -> Schedule | float:
    """A policy parameter as given: a number stays a float, a sequence becomes an
    :class:`Array` schedule, a :class:`Schedule` is kept."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, list | tuple | np.ndarray):
        arr = as_float_array(name, value)
        if arr.ndim != 1 or arr.size < 1:
            raise ValueError(f"{name} given as an array must be 1-D and non-empty, got shape "
                             f"{arr.shape}")
        return Array(tuple(arr.tolist()))
    return check_real(name, value)


def check_values(name: str, value, generations: int, *, low: float,
                 high: float = np.inf) -> np.ndarray:
    """``(generations + 1,)`` values of a number or schedule, each checked in [low, high]."""
    if isinstance(value, Schedule):
        values = value.values(generations)
    else:
        values = np.full(generations + 1, float(value))
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if generations >= 2 and np.any(bad[2:]):
        t = int(np.flatnonzero(bad[2:])[0]) + 2
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}] at every generation; the "
                         f"schedule gives {values[t]:g} at generation {t}")
    return values
