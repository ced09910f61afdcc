r"""What each generation trains on.

Generation 1 always trains on the chain's original real sample: ``n_samples``
points from the truth, drawn once per chain. From generation :math:`t \ge 2` on
the policy decides; "synthetic" points are drawn from the model of generation
:math:`t-1` and :math:`n` is ``n_samples``.

===========================  ===========================================================
policy                       training set of generation :math:`t \ge 2`
===========================  ===========================================================
``Replace()``                :math:`n` synthetic points (Shumailov et al. 2024)
``KeepReal(f)``              the first :math:`k=\mathrm{round}(fn)` points of the original
                             real sample (the same :math:`k` points every generation)
                             + :math:`n-k` synthetic
``KeepReal(f,                :math:`k` points drawn afresh every generation, without
resample=True)``             replacement, from the original real sample + :math:`n-k`
                             synthetic (closer to Shumailov et al.'s language-model code)
``Accumulate()``             the original real sample + :math:`n` synthetic points from
                             each of generations :math:`1..t-1`: :math:`tn` points
                             (Gerstgrasser et al. 2024)
``AccumulateSubsample()``    :math:`n` points drawn without replacement from the pool of
                             ``Accumulate`` (Kazdan et al. 2024, "Collapse or Thrive?")
``FreshReal(f)``             :math:`k=\mathrm{round}(fn)` new points from the truth
                             + :math:`n-k` synthetic (Alemohammad et al. 2023, "fresh
                             data loop")
``Augment(r)``               the whole original real sample + :math:`\mathrm{round}(rn)`
                             synthetic (Bertrand et al. 2023; Alemohammad et al.'s
                             "synthetic augmentation loop")
===========================  ===========================================================

``Accumulate`` keeps only running sufficient statistics when the fitter needs
nothing else (:class:`~collapse_sim.GaussianFit`); otherwise, and always for
``AccumulateSubsample``, the points are kept, and the engine refuses to start a
run whose pool would exceed the policy's ``max_bytes``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ._validation import check_int, check_real, normalise_on_init
from .schedule import Schedule, as_schedule, check_values

#: Default memory ceiling for kept training points (2 GiB).
DEFAULT_MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Plan:
    """Composition of one generation's training set (generations >= 2).

    Attributes
    ----------
    real : int
        Points taken from the chain's original real sample: its first ``real`` points,
        or (``real_resampled``) ``real`` points drawn afresh without replacement.
    fresh : int
        New points from the truth.
    synthetic : int
        Points from the previous generation's model.
    pool : str
        ``"none"``, ``"all"`` (train on everything accumulated) or ``"subsample"``
        (train on ``n`` points drawn from it).
    """

    real: int
    fresh: int
    synthetic: int
    pool: str = "none"
    real_resampled: bool = False


class _Policy:
    """Shared behaviour: a JSON description and the memory the policy must keep."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        normalise_on_init(cls)  # numpy scalars in the parameters become Python numbers

    #: Fields that may be schedules, with their accepted range.
    _scheduled: ClassVar[dict[str, tuple[float, float]]] = {}

    def plan(self, n_samples: int, generation: int = 2) -> Plan:  # pragma: no cover
        raise NotImplementedError

    def _value(self, name: str, generation: int) -> float:
        value = getattr(self, name)
        return value.at(generation) if isinstance(value, Schedule) else value

    @property
    def scheduled(self) -> bool:
        """Whether a fraction or ratio of this policy changes with the generation."""
        return any(isinstance(getattr(self, name), Schedule) for name in self._scheduled)

    def check(self, generations: int) -> None:
        """``ValueError`` if a scheduled value leaves its range in generations 2..G."""
        for name, (low, high) in self._scheduled.items():
            value = getattr(self, name)
            if not isinstance(value, Schedule):
                # one value: checked once, not as an array of every generation (simulate
                # checks the arguments before its memory check, and generations may be huge)
                check_values(name, value, min(generations, 2), low=low, high=high)
                continue
            from .engine import memory_limit

            if 8 * (generations + 1) > memory_limit():  # the run's metric arrays are larger
                raise ValueError(
                    f"{name}: a schedule over {generations} generations needs "
                    f"{8 * (generations + 1) / 2**30:.3g} GiB for its values alone, more "
                    f"than the {memory_limit() / 2**30:.3g} GiB of memory here: lower "
                    "generations (COLLAPSE_SIM_MAX_BYTES sets another limit)")
            check_values(name, value, generations, low=low, high=high)

    def warnings(self, n_samples: int, generations: int) -> list[str]:
        """Messages about a run of ``n_samples`` items that is valid but likely not meant
        (``simulate`` issues each as a ``UserWarning``). Default: none."""
        return []

    def _set_schedule(self, name: str, low: float, high: float = float("inf")) -> None:
        value = as_schedule(name, getattr(self, name))
        if not isinstance(value, Schedule):
            value = check_real(name, value, low=low, high=high)
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        out = {"type": type(self).__name__}
        for k in (f.name for f in dataclasses.fields(self)):
            value = getattr(self, k)
            out[k] = value.to_dict() if isinstance(value, Schedule) else value
        return out

    def training_size(self, n_samples: int, generation: int) -> int:
        """Number of points generation ``generation`` (>= 1) trains on."""
        if generation == 1:
            return n_samples
        p = self.plan(n_samples, generation)
        if p.pool == "all":
            return generation * n_samples
        if p.pool == "subsample":
            return n_samples
        return p.real + p.fresh + p.synthetic

    def kept_bytes(self, chains: int, n_samples: int, generations: int, dim: int,
                   fitter_uses_statistics: bool, *, item_bytes: int | None = None) -> int:
        """Bytes of training data the run must keep across generations (0 if none).

        An item takes ``item_bytes`` bytes (default ``8 * dim``: a float64 point); a
        fitter that uses only additive statistics keeps none under ``Accumulate``.
        """
        p = self.plan(n_samples)
        if p.pool == "subsample" or (p.pool == "all" and not fitter_uses_statistics):
            size = 8 * dim if item_bytes is None else item_bytes
            return size * chains * n_samples * max(generations, 1)
        return 0


@dataclass(frozen=True)
class Replace(_Policy):
    """Train on ``n_samples`` synthetic points from the previous model (pure recursion)."""

    def plan(self, n_samples: int, generation: int = 2) -> Plan:
        return Plan(0, 0, n_samples)


@dataclass(frozen=True)
class KeepReal(_Policy):
    r"""Keep ``round(fraction * n)`` original real points, fill up with synthetic ones.

    Two readings of Shumailov et al. (2024)'s "10% of the original data preserved":

    - ``resample=False`` (default): the kept points are the first
      :math:`k = \mathrm{round}(fn)` of the chain's original real sample, the *same*
      :math:`k` points every generation. The kept points' own mean and spread pin
      every generation, so a chain settles near them.
    - ``resample=True``: every generation draws :math:`k` points afresh, uniformly
      without replacement, from the chain's original :math:`n` real points (the
      chain's stream). Over the generations all :math:`n` real points take turns, so
      the chains stay closer to the original sample: for a standard normal, MLE,
      :math:`n = 100`, the median :math:`|\bar x_t - \mu|` at generation 1000 is about
      0.25 with the same 10 points kept and about 0.16 with fresh ones.

    Which the paper ran: its Methods describe the language-model experiment as
    keeping 10% of the original training data, and the authors' published LM code
    (``curse_recurse``, ``main.py``) builds each generation's training set by walking
    a *shuffled* ``DataLoader`` over the training blocks and copying the first 10% of
    the batches unchanged — a random 10% that changes every time the data is
    regenerated. ``resample=True`` is the closer reading; we are fairly, not fully,
    sure (the scripts that chained the generations are not published, and the code
    copies the blocks of whatever training set it is given).

    ``KeepReal(1.0)`` refits the original sample forever: no drift. When
    :math:`\mathrm{round}(fn) < 2`, ``simulate`` warns: zero points is ``Replace``,
    and one point has no spread of its own, so it cannot stop a variance collapse
    (``KeepReal(0.05)`` at :math:`n = 10` keeps round(0.5) = 0 points).

    Parameters
    ----------
    fraction : float or schedule
        In [0, 1]; a :mod:`~collapse_sim.schedule` (or an array) for a share that
        changes over generations (then the first ``k_t`` real points, or ``k_t``
        fresh ones).
    resample : bool
        Draw the kept real points afresh every generation (see above).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> cs.KeepReal(0.1).plan(100)
    Plan(real=10, fresh=0, synthetic=90, pool='none', real_resampled=False)
    >>> cs.KeepReal(0.1, resample=True).plan(100).real_resampled
    True
    """

    fraction: float = 0.1
    resample: bool = False
    _scheduled: ClassVar[dict[str, tuple[float, float]]] = {"fraction": (0.0, 1.0)}

    def __post_init__(self):
        self._set_schedule("fraction", 0.0, 1.0)
        if not isinstance(self.resample, bool):
            raise TypeError(f"resample must be True or False, got {self.resample!r}")

    def plan(self, n_samples: int, generation: int = 2) -> Plan:
        k = round(self._value("fraction", generation) * n_samples)
        return Plan(k, 0, n_samples - k, real_resampled=self.resample)

    def warnings(self, n_samples: int, generations: int) -> list[str]:
        """A warning when a generation keeps fewer than 2 real points."""
        last = max(generations, 2) if self.scheduled else 2
        kept = [self.plan(n_samples, t).real for t in range(2, last + 1)]
        low = min(kept)
        if low >= 2:
            return []
        what = ("0 points: the run is Replace()" if low == 0 else
                "1 point, which has no spread of its own: it cannot stop the variance "
                "collapse")
        return [f"{self!r} keeps round(fraction * n_samples) = {low} real point(s) of "
                f"n_samples={n_samples} in some generation: {what}; raise fraction or "
                "n_samples to keep at least 2"]

    def __repr__(self) -> str:
        fraction = self.fraction
        extra = ", resample=True" if self.resample else ""
        return f"KeepReal(fraction={fraction!r}{extra})"

    def to_dict(self) -> dict:
        """JSON-serialisable description (``resample`` only when set)."""
        out = super().to_dict()
        if not self.resample:  # configs of runs before the option stay as they were
            del out["resample"]
        return out


@dataclass(frozen=True)
class FreshReal(_Policy):
    """Mix ``round(fraction * n)`` fresh points from the truth with synthetic ones.

    ``FreshReal(1.0)`` is i.i.d. refits of the truth every generation.

    Parameters
    ----------
    fraction : float or schedule
        In [0, 1]; a :mod:`~collapse_sim.schedule` (or an array) for a real share that
        changes over generations: ``schedule.linear(1.0, 0.1, over=50)``.
    """

    fraction: float = 0.5
    _scheduled: ClassVar[dict[str, tuple[float, float]]] = {"fraction": (0.0, 1.0)}

    def __post_init__(self):
        self._set_schedule("fraction", 0.0, 1.0)

    def plan(self, n_samples: int, generation: int = 2) -> Plan:
        k = round(self._value("fraction", generation) * n_samples)
        return Plan(0, k, n_samples - k)


@dataclass(frozen=True)
class Augment(_Policy):
    """The whole original real sample plus ``round(ratio * n)`` synthetic points.

    Parameters
    ----------
    ratio : float or schedule
        Synthetic-to-real ratio, >= 0 (a :mod:`~collapse_sim.schedule` or an array for
        one that changes over generations).
    """

    ratio: float = 1.0
    _scheduled: ClassVar[dict[str, tuple[float, float]]] = {"ratio": (0.0, float("inf"))}

    def __post_init__(self):
        self._set_schedule("ratio", 0.0)

    def plan(self, n_samples: int, generation: int = 2) -> Plan:
        return Plan(n_samples, 0, round(self._value("ratio", generation) * n_samples))


@dataclass(frozen=True)
class Accumulate(_Policy):
    """Train on all real and synthetic data so far: ``t * n`` points at generation ``t``.

    Parameters
    ----------
    max_bytes : int
        Ceiling on the memory for kept points when the fitter needs the points
        themselves (a Gaussian fit keeps only running moments, using none).
    """

    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self):
        check_int("max_bytes", self.max_bytes, minimum=0)

    def plan(self, n_samples: int, generation: int = 2) -> Plan:
        return Plan(0, 0, n_samples, pool="all")


@dataclass(frozen=True)
class AccumulateSubsample(_Policy):
    """Accumulate everything, but train on ``n`` points drawn without replacement from it.

    Parameters
    ----------
    max_bytes : int
        Ceiling on the memory for the kept pool (``8 * chains * n * generations * d`` bytes).
    """

    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self):
        check_int("max_bytes", self.max_bytes, minimum=0)

    def plan(self, n_samples: int, generation: int = 2) -> Plan:
        return Plan(0, 0, n_samples, pool="subsample")


Policy = Replace | KeepReal | FreshReal | Augment | Accumulate | AccumulateSubsample
