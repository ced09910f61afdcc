r"""Generation stages: how the synthetic data is made and chosen.

Real pipelines do not sample their models faithfully, and what they publish is
filtered. A *stage* changes how each generation's synthetic items are drawn from the
previous model; ``simulate(..., generation=stage)`` applies it (default: faithful
sampling). Real data — the original sample, kept or fresh real items — is never
staged.

=========================== ===============================================================
stage                       law of a synthetic item
=========================== ===============================================================
``Temperature(tau)``        Gaussian :math:`\mathcal N(\mu, \tau^2\Sigma)`; mixture: every
                            component's covariance times :math:`\tau^2`, weights unchanged;
                            categorical :math:`p_j^{1/\tau}/\sum_i p_i^{1/\tau}`; n-gram:
                            the same per context, on the smoothed counts
``Truncate(k)``             Gaussian conditioned on :math:`(x-\mu)^\top\Sigma^{-1}(x-\mu)
                            \le k^2` (within :math:`k` standard deviations in 1-D), drawn
                            exactly at a bounded cost: a rejection step where a normal lands
                            inside with probability at least 1/4 (at most 64 tries per
                            point, then exact inversion), exact inversion below
``TopK(k)``                 categorical: the ``k`` likeliest categories, renormalised (ties
                            by category id); n-gram: per context, the ``k`` likeliest seen
                            tokens, the unseen ones (one shared smoothing weight) kept as a
                            block only if fewer than ``k`` tokens were seen
``TopP(p)``                 categorical: the smallest set of likeliest categories holding
                            mass :math:`\ge p`, renormalised; n-gram: the same per context,
                            the unseen tokens ranked last as one block
``NoiseFree()``             probabilistic PCA: the decoded means :math:`\mu + Wz` without
                            the noise :math:`\sigma\varepsilon` (what the paper's VAE code
                            trains on; :class:`collapse_sim.NoiseFree`)
``BestOfK(K, reward)``      draw ``K`` candidates, keep the one of highest reward (first on
                            ties): any family
``Curate(K, reward)``       draw ``K`` candidates, keep one with probability
                            :math:`\propto e^{r}` (Bradley–Terry / Luce choice, by the
                            Gumbel-max trick): any family
=========================== ===============================================================

Stages compose left to right with ``|``: ``cs.TopP(0.9) | cs.Temperature(0.8)`` first
truncates, then tempers; ``cs.Temperature(0.9) | cs.BestOfK(4, reward="value")`` draws
the four candidates at temperature 0.9. Model transforms (temperature, truncation to a
set, top-k, top-p) must come before the stages that draw (``Truncate`` of a Gaussian,
best-of-K, curation).

A family supports a stage by registering how (:func:`register_stage`); an unsupported
pair is refused before any sampling, naming both. A stage that only transforms the
model keeps the exact sufficient-statistics path of a family (a tempered Gaussian's
moments are drawn by their exact law); a stage that draws needs the points.

Rewards are a vectorised callable ``reward(items) -> scores`` on items
``(chains, m, *event_shape)`` returning ``(chains, m)`` finite floats, or a named
built-in: ``"value"`` (a point's first coordinate; a token's id), ``"distance"``
(:math:`\lVert x\rVert`) or ``"closeness"`` (:math:`-\lVert x\rVert`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._validation import MAX_INT, check_int, check_real, normalise_on_init
from .protocol import Model

#: Largest number of candidates of best-of-K and curation.
MAX_CANDIDATES = 10_000
#: Largest temperature (a larger one is a uniform distribution for every purpose here).
MAX_TEMPERATURE = 100.0
#: Smallest temperature (below, :math:`p^{1/\tau}` underflows for ordinary probabilities).
MIN_TEMPERATURE = 0.01


def _value(items: np.ndarray) -> np.ndarray:
    arr = np.asarray(items, dtype=np.float64)
    return arr.reshape(arr.shape[0], arr.shape[1], -1)[:, :, 0]


def _norm(items: np.ndarray) -> np.ndarray:
    arr = np.asarray(items, dtype=np.float64)
    return np.sqrt((arr.reshape(arr.shape[0], arr.shape[1], -1) ** 2).sum(axis=2))


#: Named rewards: ``name -> function of items (chains, m, *event) -> (chains, m)``.
REWARDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "value": _value,
    "distance": _norm,
    "closeness": lambda items: -_norm(items),
}


class Stage:
    """A generation stage (see the module docstring); combine with ``|``."""

    #: ``"transform"``: maps the model to the model sampled from; ``"draw"``: draws
    #: items itself from the (transformed) model; ``"select"``: chooses among candidates
    #: drawn by the stages before it (or faithfully).
    kind: ClassVar[str] = "transform"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        normalise_on_init(cls)

    def __or__(self, other: Stage) -> Stages:
        if not isinstance(other, Stage):
            return NotImplemented
        return Stages((*self.parts, *other.parts))

    @property
    def parts(self) -> tuple[Stage, ...]:
        """The single stages, in order."""
        return (self,)

    def to_dict(self) -> dict:
        """JSON-serialisable description (a callable reward by its qualified name)."""
        out: dict[str, Any] = {"type": type(self).__name__}
        for name in (f.name for f in dataclasses.fields(self)):
            value = getattr(self, name)
            if callable(value):
                value = f"callable {getattr(value, '__qualname__', repr(value))}"
            out[name] = value
        return out


@dataclass(frozen=True)
class Temperature(Stage):
    r"""Sample at temperature :math:`\tau`: below 1 the likely values gain, above 1 the
    unlikely ones (see the module table for each family's law).

    Parameters
    ----------
    tau : float
        :math:`\tau` in [:data:`MIN_TEMPERATURE`, :data:`MAX_TEMPERATURE`].
    """

    tau: float = 1.0

    def __post_init__(self):
        check_real("tau", self.tau, low=MIN_TEMPERATURE, high=MAX_TEMPERATURE)


@dataclass(frozen=True)
class Truncate(Stage):
    r"""Keep only values within ``k`` standard deviations (Mahalanobis radius ``k`` in d-D).

    The draws follow the conditioned Gaussian exactly (see the module table for how); a
    Gaussian fit receives their moments directly, without the points being formed.

    Parameters
    ----------
    k : float
        Radius :math:`k > 0` (at most 40: beyond, nothing is cut in float64).
    """

    k: float = 2.0
    kind: ClassVar[str] = "draw"

    def __post_init__(self):
        check_real("k", self.k, low=0.0, low_open=True, high=40.0)


@dataclass(frozen=True)
class TopK(Stage):
    """Keep the ``k`` likeliest categories (ties by id), renormalised.

    Parameters
    ----------
    k : int
        At least 1.
    """

    k: int = 50

    def __post_init__(self):
        check_int("k", self.k, minimum=1, maximum=MAX_INT)


@dataclass(frozen=True)
class TopP(Stage):
    """Keep the smallest set of likeliest categories whose mass reaches ``p`` (nucleus
    sampling, Holtzman et al. 2020), renormalised.

    Parameters
    ----------
    p : float
        In (0, 1].
    """

    p: float = 0.9

    def __post_init__(self):
        check_real("p", self.p, low=0.0, low_open=True, high=1.0)


def _check_reward(reward) -> None:
    if isinstance(reward, str):
        if reward not in REWARDS:
            raise ValueError(f"reward must be a callable or one of {tuple(REWARDS)}, "
                             f"got {reward!r}")
    elif not callable(reward):
        raise TypeError(f"reward must be a callable or a name in {tuple(REWARDS)}, got "
                        f"{type(reward).__name__}")


@dataclass(frozen=True)
class BestOfK(Stage):
    """Draw ``K`` candidates for every synthetic item and keep the one of highest reward.

    With reward :math:`r(x) = x` in 1-D, the kept item is the maximum of ``K`` draws:
    its CDF is :math:`F^K`.

    Parameters
    ----------
    K : int
        Candidates per item, 1 to :data:`MAX_CANDIDATES`.
    reward : str or callable
        See the module docstring.
    """

    K: int = 4
    reward: Any = "value"
    kind: ClassVar[str] = "select"

    def __post_init__(self):
        check_int("K", self.K, minimum=1, maximum=MAX_CANDIDATES)
        _check_reward(self.reward)


@dataclass(frozen=True)
class Curate(Stage):
    r"""Draw ``K`` candidates and keep one with probability :math:`\propto e^{r(x)}`.

    The Bradley–Terry (Luce) choice a reward model makes (Ferbach et al. 2024): the
    Gumbel-max trick, :math:`\arg\max_i r(x_i) + G_i` with :math:`G_i` standard Gumbel
    from the chain's stream. As :math:`K \to \infty` the kept item's law tends to the
    exponential tilt :math:`\propto p(x) e^{r(x)}`.

    Parameters
    ----------
    K : int
        Candidates per item, 1 to :data:`MAX_CANDIDATES`.
    reward : str or callable
        See the module docstring.
    rule : {"bradley-terry"}
        The choice rule.
    """

    K: int = 4
    reward: Any = "value"
    rule: str = "bradley-terry"
    kind: ClassVar[str] = "select"

    def __post_init__(self):
        check_int("K", self.K, minimum=1, maximum=MAX_CANDIDATES)
        _check_reward(self.reward)
        if self.rule != "bradley-terry":
            raise ValueError(f"rule must be 'bradley-terry', got {self.rule!r}")


@dataclass(frozen=True)
class Stages(Stage):
    """Stages applied left to right (made by ``a | b``)."""

    stages: tuple = ()

    def __post_init__(self):
        if not self.stages or not all(isinstance(s, Stage) and not isinstance(s, Stages)
                                      for s in self.stages):
            raise TypeError("Stages holds single stages (compose them with |)")
        seen_draw = False
        for s in self.stages:
            if s.kind == "transform" and seen_draw:
                raise ValueError(f"{s!r} transforms the model, so it must come before the "
                                 "stages that draw (Truncate, BestOfK, Curate)")
            seen_draw = seen_draw or s.kind != "transform"

    @property
    def parts(self) -> tuple[Stage, ...]:
        return self.stages

    def to_dict(self) -> dict:
        """``{"type": "Stages", "stages": [...]}``."""
        return {"type": "Stages", "stages": [s.to_dict() for s in self.stages]}


# -- family support ----------------------------------------------------------------------

_SUPPORT: dict[tuple[type, type], Callable] = {}


def register_stage(stage: type, model: type, fn: Callable) -> None:
    """Declare that models of class ``model`` support ``stage`` (subclasses included).

    ``fn(stage, model)`` returns the model to sample from for a ``"transform"`` stage;
    ``fn(stage, model, k, streams)`` returns ``(chains, k, *event_shape)`` items for a
    ``"draw"`` stage. Select stages (best-of-K, curation) apply to every family.
    """
    if not (isinstance(stage, type) and issubclass(stage, Stage)):
        raise TypeError(f"stage must be a Stage class, got {stage!r}")
    if not (isinstance(model, type) and issubclass(model, Model)):
        raise TypeError(f"model must be a Model class, got {model!r}")
    _SUPPORT[(stage, model)] = fn


_STATISTICS: dict[tuple[type, type], Callable] = {}


def _registered(table: dict) -> dict:
    """``table`` after the built-in families have registered their stage support."""
    from . import _builtins

    _builtins.load()
    return table


def register_stage_statistics(stage: type, model: type, statistics: type, fn: Callable) -> None:
    """Declare a faster route for a ``"draw"`` stage whose items only feed additive
    statistics: ``fn(stage, model, k, streams)`` returns the ``statistics`` (e.g.
    :class:`~collapse_sim.sampling.Moments`) of ``k`` staged items per chain without forming
    them, or ``None`` to decline (the items are then drawn and reduced)."""
    _STATISTICS[(stage, model, statistics)] = fn


def draw_statistics(stage: Stage | None, model: Model, k: int, streams, kind):
    """Statistics of type ``kind`` of ``k`` staged items, by a registered route, else ``None``.

    Only a stage made of model transforms and one registered ``"draw"`` part qualifies."""
    if stage is None or kind is None:
        return None
    draws = [s for s in stage.parts if s.kind != "transform"]
    if len(draws) != 1 or draws[0].kind != "draw":
        return None
    model = sampling_model(stage, model)
    for cls in type(model).__mro__:
        fn = _registered(_STATISTICS).get((type(draws[0]), cls, kind))
        if fn is not None:
            return fn(draws[0], model, k, streams)
    return None


def _lookup(stage: Stage, model_type: type):
    for cls in model_type.__mro__:
        fn = _registered(_SUPPORT).get((type(stage), cls))
        if fn is not None:
            return fn
    return None


def check_support(stage: Stage | None, model_type: type) -> None:
    """``TypeError`` naming both if a stage of ``stage`` does not apply to ``model_type``."""
    if stage is None:
        return
    if not isinstance(stage, Stage):
        raise TypeError(f"generation must be a stage (Temperature, Truncate, TopK, TopP, "
                        f"BestOfK, Curate or a composition with |), got "
                        f"{type(stage).__name__}")
    for s in stage.parts:
        if s.kind != "select" and _lookup(s, model_type) is None:
            supported = sorted({m.__name__ for (st, m) in _registered(_SUPPORT) if st is type(s)})
            raise TypeError(f"{type(s).__name__} does not apply to {model_type.__name__} "
                            f"models; it applies to {', '.join(supported) or 'no family'}")


def only_transforms(stage: Stage | None) -> bool:
    """Whether every part of ``stage`` only transforms the model (exact paths survive)."""
    return stage is None or all(s.kind == "transform" for s in stage.parts)


def sampling_model(stage: Stage | None, model: Model) -> Model:
    """The model after the transform stages of ``stage``."""
    if stage is None:
        return model
    for s in stage.parts:
        if s.kind == "transform":
            model = _lookup(s, type(model))(s, model)
    return model


def reward_of(stage: Stage | None):
    """The reward function of the last select stage of ``stage``, or ``None``."""
    if stage is None:
        return None
    found = None
    for s in stage.parts:
        if s.kind == "select":
            found = _reward_function(s)
    return found


def _reward_function(stage) -> Callable[[np.ndarray], np.ndarray]:
    """A select stage's reward as a function (a named built-in looked up in :data:`REWARDS`)."""
    return REWARDS[stage.reward] if isinstance(stage.reward, str) else stage.reward


def evaluate_reward(reward, items: np.ndarray, where: str) -> np.ndarray:
    """``reward(items)`` checked: ``(chains, m)`` finite floats, else ``ValueError``."""
    try:
        scores = np.asarray(reward(items), dtype=np.float64)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise ValueError(f"{where}: the reward raised {type(exc).__name__}: {exc}") from exc
    if scores.shape != items.shape[:2]:
        raise ValueError(f"{where}: the reward must return shape {items.shape[:2]} (chains, "
                         f"items), got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{where}: the reward returned non-finite values")
    return scores


def draw(stage: Stage | None, model: Model, k: int, streams, where: str = "") -> np.ndarray:
    """``(chains, k, *event_shape)`` synthetic items of ``model`` made by ``stage``."""
    if stage is None:
        return model.draw(k, streams)
    model = sampling_model(stage, model)
    sampler = model.draw
    for s in stage.parts:
        if s.kind == "draw":
            sampler = _drawer(_lookup(s, type(model)), s, model)
        elif s.kind == "select":
            sampler = _selector(s, sampler, where)
    return sampler(k, streams)


def _drawer(fn, stage, model):
    return lambda k, streams: fn(stage, model, k, streams)


def _selector(stage, previous, where):
    reward = _reward_function(stage)

    def sample(k, streams):
        if k == 0:
            return previous(0, streams)
        big = k * stage.K
        if big > MAX_INT:
            raise ValueError(f"{type(stage).__name__}(K={stage.K}) needs {big} candidates per "
                             f"chain; at most {MAX_INT}")
        cand = previous(big, streams)
        scores = evaluate_reward(reward, cand, where or repr(stage)).reshape(-1, k, stage.K)
        if isinstance(stage, Curate):
            u = np.empty((scores.shape[0], big))
            from ._kernels import rng as _rng

            _rng.fill_uniform(streams.states, u)
            with np.errstate(divide="ignore"):
                gumbel = -np.log(-np.log(u))
            scores = scores + gumbel.reshape(scores.shape)
        pick = np.argmax(scores, axis=2)  # first maximum on ties
        index = np.arange(k) * stage.K + pick
        return np.take_along_axis(
            cand, index.reshape(index.shape + (1,) * (cand.ndim - 2)), axis=1)

    return sample


# -- the reward metric -----------------------------------------------------------------------

#: Items per chain whose mean reward the ``reward`` metric reports.
REWARD_SAMPLE = 1000


def _mean_reward(truth, model, ctx) -> np.ndarray:
    """Mean reward of :data:`REWARD_SAMPLE` faithful draws from each model (streams of the
    metric context: the run itself is not touched)."""
    items = model.draw(REWARD_SAMPLE, ctx.streams(model.batch_size))
    return evaluate_reward(ctx.reward, items, f"metric 'reward', generation "
                                              f"{ctx.generation}").mean(axis=1)


def _register_metric():
    from .registry import register_metric

    register_metric("reward", Model, Model, _mean_reward, default=False, needs="reward",
                    doc="mean reward of the model's samples (runs with a BestOfK or Curate "
                        "stage)")


_register_metric()
