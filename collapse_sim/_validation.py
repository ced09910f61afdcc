"""Boundary checks shared by the public API: one place, messages that name the parameter."""

from __future__ import annotations

import numbers

import numpy as np

#: Upper bound on sizes (points, chains, generations, batches): 2**31 - 1, so every size
#: fits the kernels' integer types and nothing overflows on the way to an allocation.
MAX_INT = 2**31 - 1
#: Upper bound on iteration counts (EM's max_iter, SGD's epochs): beyond, a run never ends.
MAX_ITERATIONS = 10**6
#: Upper bound on mixture components.
MAX_COMPONENTS = 10**4


def check_int(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = "inf" if maximum is None else str(maximum)
        raise ValueError(f"{name} must be an int in [{minimum}, {upper}], got {value}")
    return value


def check_real(
    name: str,
    value,
    *,
    low: float = -np.inf,
    high: float = np.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as ``float`` if it is a finite real number in the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if not np.isfinite(value) or below or above:
        lo = ("(" if low_open else "[") + f"{low:g}"
        hi = f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{name} must be a finite number in {lo}, {hi}, got {value}")
    return value


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def as_float_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 array, rejecting non-numeric input and non-finite entries.

    Booleans, strings (even numeric ones) and ragged or object input are refused: only
    integers and real numbers are taken as numbers.
    """
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric array-like, got {type(value).__name__}") from exc
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers (int or float), got "
                        f"{type(value).__name__} of dtype {raw.dtype}")
    arr = raw.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def plain_python_fields(obj) -> None:
    """Replace numpy scalars in a (frozen) dataclass's fields by Python numbers.

    Configuration objects hold plain Python numbers, so their ``to_dict`` is JSON and a
    result saves whatever scalar type the user passed (``np.float32(0.1)`` and ``0.1``
    describe the same policy).
    """
    for name in getattr(obj, "__dataclass_fields__", {}):
        value = getattr(obj, name)
        if isinstance(value, np.generic):
            object.__setattr__(obj, name, value.item())


def normalise_on_init(cls) -> None:
    """Make ``cls.__post_init__`` call :func:`plain_python_fields` first (for base classes'
    ``__init_subclass__``: every configuration dataclass gets it without asking)."""
    own = cls.__dict__.get("__post_init__") or getattr(cls, "__post_init__", None)
    if getattr(own, "_normalises", False):
        return  # inherited from a class that already normalises

    def __post_init__(self):
        plain_python_fields(self)
        if own is not None:
            own(self)

    __post_init__._normalises = True
    cls.__post_init__ = __post_init__


def with_article(noun: str) -> str:
    """``"a Gaussian"``, ``"an Exponential"``: for messages that name a class."""
    return f"{'an' if noun[:1].upper() in 'AEIOU' else 'a'} {noun}"
