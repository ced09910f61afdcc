"""Argument checks shared by the closed forms (``TypeError``/``ValueError`` naming the
offending parameter), and the argument types they accept."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np

Estimator = Literal["mle", "unbiased"]
GenerationsLike = int | Sequence[int] | np.ndarray
_ESTIMATORS: tuple[str, ...] = ("mle", "unbiased")


def _validate_n_samples(n_samples: object) -> int:
    """Return ``n_samples`` as ``int``; it must be an integer ``>= 2`` (``bool`` rejected)."""
    if isinstance(n_samples, bool | np.bool_) or not isinstance(n_samples, numbers.Integral):
        raise TypeError(f"n_samples must be an int >= 2, got {type(n_samples).__name__}")
    n = int(n_samples)
    if n < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n}")
    return n


def _validate_estimator(estimator: object) -> str:
    """Return ``estimator`` if it is ``"mle"`` or ``"unbiased"``."""
    if not isinstance(estimator, str) or estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of 'mle', 'unbiased'; got {estimator!r}")
    return estimator


def _validate_var0(var0: object) -> float:
    """Return ``var0`` as ``float``; it must be a finite real number ``> 0``."""
    if isinstance(var0, bool | np.bool_) or not isinstance(var0, numbers.Real):
        raise TypeError(f"var0 must be a finite real number > 0, got {type(var0).__name__}")
    value = float(var0)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"var0 must be a finite real number > 0, got {value}")
    return value


#: Most generations evaluated in one call: an int ``G`` asks for the ``G + 1`` generations
#: ``0, 1, ..., G`` (one int64 and at least one float64 each), so ``G`` is at most
#: ``MAX_GENERATIONS`` (as in :mod:`collapse_sim.theory.categorical`), and an array holds at
#: most ``MAX_GENERATIONS + 1`` entries. Later generations are reached by listing them.
MAX_GENERATIONS = 10**7
#: Largest generation index: every index is an int64.
MAX_GENERATION_INDEX = 2**63 - 1

_GENERATIONS_ACCEPTED = (
    f"generations must be an int in [0, {MAX_GENERATIONS}] (meaning 0, 1, ..., G) or a 1-D "
    f"array-like of at most {MAX_GENERATIONS + 1} ints in [0, 2**63 - 1]"
)


def _validate_generations(generations: object) -> np.ndarray:
    """Return the generations to evaluate as a 1-D ``int64`` array.

    An integer ``G`` in ``[0, MAX_GENERATIONS]`` means ``t = 0, 1, ..., G``; otherwise
    ``generations`` must be a 1-D array-like of at most ``MAX_GENERATIONS + 1`` integers in
    ``[0, 2**63 - 1]`` (integral floats are accepted). Checked before anything is allocated:
    ``generations=10**9`` would have been an 8 GB ``arange``, and a float beyond int64
    (``[1e30]``) would have wrapped around when cast.
    """
    if isinstance(generations, bool | np.bool_):
        raise TypeError(f"{_GENERATIONS_ACCEPTED}, got bool")
    if isinstance(generations, numbers.Integral):
        g = int(generations)
        if g < 0:
            raise ValueError(f"{_GENERATIONS_ACCEPTED}; got {g}")
        if g > MAX_GENERATION_INDEX:
            raise ValueError(f"{_GENERATIONS_ACCEPTED}; got {g}")
        if g > MAX_GENERATIONS:
            raise ValueError(
                f"generations={g} asks for the {g + 1} generations 0, 1, ..., {g}; at most "
                f"{MAX_GENERATIONS + 1} are evaluated at once (generations <= "
                f"{MAX_GENERATIONS}): pass a list of the generations wanted instead, e.g. "
                f"generations=[0, 1, 10, {g}]")
        return np.arange(g + 1, dtype=np.int64)
    if isinstance(generations, str | bytes | numbers.Number):
        raise TypeError(f"{_GENERATIONS_ACCEPTED}, got {type(generations).__name__}")
    try:
        arr = np.asarray(generations)
    except (TypeError, ValueError) as exc:  # ragged input etc.
        raise TypeError(f"{_GENERATIONS_ACCEPTED}; could not convert it to an array") from exc
    if arr.ndim == 0 and np.issubdtype(arr.dtype, np.integer):
        return _validate_generations(int(arr))
    if arr.dtype == object and arr.ndim == 1 and all(
        isinstance(x, numbers.Integral) and not isinstance(x, bool | np.bool_) for x in arr
    ):  # Python ints too large for any NumPy integer type
        raise ValueError(f"{_GENERATIONS_ACCEPTED}; got integers outside the int64 range")
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{_GENERATIONS_ACCEPTED}, got an array of dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{_GENERATIONS_ACCEPTED}, got ndim={arr.ndim}")
    if arr.size > MAX_GENERATIONS + 1:
        raise ValueError(f"{_GENERATIONS_ACCEPTED}, got {arr.size} entries: evaluate them in "
                         "several calls")
    if np.issubdtype(arr.dtype, np.floating) and (
        not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))
    ):
        raise ValueError(f"{_GENERATIONS_ACCEPTED}: entries must be integers")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{_GENERATIONS_ACCEPTED}, got {arr.min()}")
    # float(2**63 - 1) rounds up to 2**63, the first float beyond int64: compare as floats
    if arr.size and (arr.max() >= 2.0**63 if np.issubdtype(arr.dtype, np.floating)
                     else int(arr.max()) > MAX_GENERATION_INDEX):
        raise ValueError(f"{_GENERATIONS_ACCEPTED}, got {arr.max()}")
    return arr.astype(np.int64)


def _validate_open_unit(name: str, value: object) -> tuple[np.ndarray, bool]:
    """Return ``(values as 1-D float array, was_scalar)``; values must lie in ``(0, 1)``."""
    arr, scalar = _as_real_1d(name, value)
    if not np.all((arr > 0.0) & (arr < 1.0)):  # also rejects NaN
        raise ValueError(f"{name} must lie in the open interval (0, 1)")
    return arr, scalar


def _validate_threshold(threshold: object) -> tuple[np.ndarray, bool]:
    """Return ``(threshold as 1-D float array, was_scalar)``; entries must be ``> 0``."""
    arr, scalar = _as_real_1d("threshold", threshold)
    if not np.all(arr > 0.0):  # also rejects NaN; +inf is allowed
        raise ValueError("threshold must be > 0 (may be +inf)")
    return arr, scalar


def _as_real_1d(name: str, value: object) -> tuple[np.ndarray, bool]:
    if isinstance(value, bool | np.bool_ | str | bytes):
        raise TypeError(f"{name} must be a real number or a 1-D array-like of real numbers")
    message = f"{name} must be a real number or a 1-D array-like of real numbers"
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(message) from exc
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"{name} must be a real number or a 1-D array-like of real numbers, "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got ndim={arr.ndim}")
    return np.atleast_1d(arr.astype(np.float64)), arr.ndim == 0


def _divisor(n: int, estimator: str) -> int:
    """The divisor ``k`` of the variance estimator: ``n`` (MLE) or ``n - 1`` (unbiased)."""
    return n if estimator == "mle" else n - 1
