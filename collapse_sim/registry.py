r"""Metrics registered per (truth type, model type) pair, the most specific match chosen.

Each family registers the metrics it defines with :func:`register_metric`, the
way NumPyro and PyTorch register KL divergences: a function of ``(truth, model,
ctx)`` returning a ``(B,)`` array, for a truth class and a model class (or
tuples of them). For a pair of concrete types the registration whose classes
are closest in the method resolution order wins (truth first, then model); two
registrations at the same distance are an error at registration time only if
they name exactly the same pair.

What ``simulate`` computes by default for a pair, and what it accepts, derive
from this registry (:func:`available`, :func:`defaults`); asking for a metric
that is not registered for the pair is refused before any sampling, naming the
pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ._validation import with_article

MetricFn = Callable[[object, object, "MetricContext"], np.ndarray]

#: Size of the held-out real sample drawn for metrics that need one (``nll``, …), when the
#: truth draws it (an empirical truth returns its own held-out split instead).
HELDOUT_SIZE = 10_000


@dataclass(frozen=True)
class MetricSpec:
    """One registration: ``fn(truth, model, ctx) -> (B,)`` for a (truth, model) class pair.

    Attributes
    ----------
    name : str
    truth_type, model_type : type
    fn : callable
    default : bool
        Computed when ``simulate(metrics=None)``.
    heldout : bool
        Needs the truth's held-out real data (``ctx.heldout``).
    doc : str
        One line for tables and error messages.
    distance : bool
        A distance or divergence from the truth: 0 at the truth itself (row 0).
    needs : str
        A capability of the run the metric needs (``"reward"``: a generation stage with a
        reward); such a metric is left out of :func:`available` and must be asked for.
    """

    name: str
    truth_type: type
    model_type: type
    fn: MetricFn
    default: bool = True
    heldout: bool = False
    doc: str = ""
    order: int = 0
    distance: bool = False
    needs: str = ""
    refuses: tuple[str, ...] = ()


_SPECS: dict[str, dict[tuple[type, type], MetricSpec]] = {}
_COUNTER = [0]
#: :func:`lookup`'s answers, emptied by every registration.
_FOUND: dict[tuple[str, type, type], MetricSpec | None] = {}


def _loaded() -> dict[str, dict[tuple[type, type], MetricSpec]]:
    """The registered metrics, after the built-in families have registered theirs."""
    from . import _builtins

    _builtins.load()
    return _SPECS


def _as_types(value) -> tuple[type, ...]:
    types = value if isinstance(value, tuple) else (value,)
    if not types or not all(isinstance(t, type) for t in types):
        raise TypeError(f"expected a class or a tuple of classes, got {value!r}")
    return types


def register_metric(name: str, truth, model, fn: MetricFn, *, default: bool = True,
                    heldout: bool = False, doc: str = "", distance: bool = False,
                    replace: bool = False, needs: str = "",
                    refuses: tuple[str, ...] = ()) -> None:
    """Register ``fn`` as metric ``name`` for every (truth class, model class) pair given.

    Parameters
    ----------
    name : str
        The metric's name in ``Simulation.metrics``.
    truth, model : type or tuple of types
        Classes of the truth and of the measured model (:meth:`Model.measured`).
    fn : callable
        ``fn(truth, model, ctx) -> ndarray (B,)``; ``ctx`` is a :class:`MetricContext`.
    default : bool
        Whether ``simulate`` computes it when not told otherwise.
    heldout : bool
        Whether it reads ``ctx.heldout`` (the engine then draws the held-out data).
    doc : str
        One-line definition.
    distance : bool
        Whether it is a distance or divergence from the truth (0 at the truth).
    replace : bool
        Allow replacing an existing registration of the same pair (else ``ValueError``).
    needs : str
        A capability of the run it needs (see :class:`MetricSpec`); never a default.
    refuses : tuple of str
        Names of policy classes under which it is not defined (``"AccumulateSubsample"``):
        left out of the defaults of such a run, refused before sampling if asked for.
    """
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty str")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    table = _SPECS.setdefault(name, {})
    _FOUND.clear()
    for t in _as_types(truth):
        for m in _as_types(model):
            old = table.get((t, m))
            if old is not None and not replace:
                raise ValueError(f"metric {name!r} is already registered for "
                                 f"({t.__name__}, {m.__name__}); pass replace=True")
            _COUNTER[0] += 1
            order = _COUNTER[0] if old is None else old.order  # a replacement keeps its place
            table[(t, m)] = MetricSpec(name, t, m, fn, default and not needs, heldout, doc,
                                       order, distance, needs, tuple(refuses))


def _distance(cls: type, target: type) -> int | None:
    mro = cls.__mro__
    return mro.index(target) if target in mro else None


def lookup(name: str, truth_type: type, model_type: type) -> MetricSpec | None:
    """The most specific registration of ``name`` for the pair, or ``None``.

    Answers are remembered until the next registration (the engine asks for every
    metric of every block of generations)."""
    key = (name, truth_type, model_type)
    if key in _FOUND:
        return _FOUND[key]
    best, best_key = None, None
    for (t, m), spec in _loaded().get(name, {}).items():
        dt, dm = _distance(truth_type, t), _distance(model_type, m)
        if dt is None or dm is None:
            continue
        if best_key is None or (dt, dm) < best_key:
            best, best_key = spec, (dt, dm)
    _FOUND[key] = best
    return best


def names() -> tuple[str, ...]:
    """Every registered metric name, in registration order."""
    return tuple(_loaded())


def available(truth_type: type, model_type: type) -> tuple[str, ...]:
    """Metric names defined for the pair, in the order their registrations were made.

    Metrics that need a capability of the run (``reward``: a generation stage with a
    reward) are left out; they are accepted when asked for and the run has it.
    """
    found = [(spec.order, n) for n in _loaded()
             if (spec := lookup(n, truth_type, model_type)) is not None and not spec.needs]
    return tuple(n for _, n in sorted(found))


def defaults(truth_type: type, model_type: type) -> tuple[str, ...]:
    """The metrics ``simulate`` computes for the pair when not told otherwise."""
    return tuple(n for n in available(truth_type, model_type)
                 if lookup(n, truth_type, model_type).default)


def check_names(selection, truth_type: type | None = None,
                model_type: type | None = None) -> tuple[str, ...]:
    """Validate a metric selection: a name or an iterable of distinct registered names.

    With both types, also check that every metric is defined for the pair, naming
    the pair and the metrics it has otherwise.
    """
    if isinstance(selection, str):
        selection = (selection,)
    try:
        selection = tuple(selection)
    except TypeError:
        raise TypeError(f"metrics must be a name or an iterable of names, got "
                        f"{type(selection).__name__}") from None
    if not selection:
        raise ValueError("metrics must name at least one metric")
    for name in selection:
        if not isinstance(name, str) or name not in _loaded():
            raise ValueError(f"unknown metric {name!r}; metrics must be among {names()}")
    if len(set(selection)) != len(selection):
        raise ValueError(f"metrics contains duplicates: {selection}")
    if truth_type is not None and model_type is not None:
        wrong = [n for n in selection if lookup(n, truth_type, model_type) is None]
        if wrong:
            raise ValueError(
                f"metrics {wrong} are not defined for {with_article(truth_type.__name__)} truth "
                f"with {model_type.__name__} models; choose among "
                f"{available(truth_type, model_type)}")
    return selection


#: Spawn key of the streams metrics draw from (text a model writes for the text metrics).
METRIC_KEY = 2


class MetricContext:
    """What metrics share across generations: the truth, its held-out real data, the
    names being evaluated (so a family can compute several metrics in one pass), and the
    generation being measured with random streams of its own (:meth:`streams`).

    During a run, ``destinations`` maps each selected name to the ``(B,)`` float64 view
    of the result rows the engine will store that metric's values in (``None`` outside
    a run). A metric may write its values there and return that very array: the engine
    then copies nothing. Metrics that ignore it are stored as before.
    """

    def __init__(self, truth, heldout: np.ndarray | None,
                 selection: tuple[str, ...] | None = None, *, root=None, chains: int = 1):
        self.truth = truth
        self.heldout = heldout
        self.selection = selection
        self.root = np.random.SeedSequence(0) if root is None else root
        self.chains = chains
        self.generation = 0
        self.destinations = None

    def streams(self, batch: int):
        """Streams for a metric that draws (text a model writes), ``batch`` members.

        Member ``i`` measures generation ``generation + i // chains`` of chain
        ``i % chains``; its stream derives from the seed, that generation and that chain
        only (spawn key ``METRIC_KEY``), never from the simulation's own streams: a metric
        that draws changes neither the run nor the other metrics, and the values do not
        depend on how many chains run.
        """
        from . import _random
        from .sampling import ChainStreams

        per = min(batch, self.chains)
        parts = []
        for g in range(-(-batch // per)):
            seq = np.random.SeedSequence(
                self.root.entropy,
                spawn_key=(*self.root.spawn_key, METRIC_KEY, self.generation + g))
            parts.append(_random.chain_states(seq, per))
        return ChainStreams(np.concatenate(parts)[:batch])


def needs_heldout(selection: Iterable[str], truth_type: type, model_type: type) -> bool:
    """Whether any selected metric reads the held-out data for this pair."""
    return any(lookup(n, truth_type, model_type).heldout for n in selection)


def evaluate(selection: tuple[str, ...], truth, model, ctx: MetricContext
             ) -> dict[str, np.ndarray]:
    """Every metric in ``selection`` for the batch ``model``: ``{name: (B,) array}``."""
    model = model.measured()
    ctx.selection = selection
    out = {}
    for name in selection:
        spec = lookup(name, type(truth), type(model))
        if spec is None:
            truth_name = with_article(type(truth).__name__)
            raise ValueError(f"metric {name!r} is not defined for {truth_name} "
                             f"truth with {type(model).__name__} models")
        out[name] = spec.fn(truth, model, ctx)
    return out


def refused_by(names: Iterable[str], truth_type: type, model_type: type,
               policy) -> list[str]:
    """The metrics among ``names`` that the pair's registrations refuse under ``policy``."""
    kind = type(policy).__name__
    return [n for n in names
            if (spec := lookup(n, truth_type, model_type)) is not None and kind in spec.refuses]
