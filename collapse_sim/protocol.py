r"""The family protocol: what a model, a fitter and their statistics must offer the engine.

A *family* (Gaussians, mixtures, regressions, categorical distributions …) is one
module that defines a :class:`Model` subclass (a batch of distributions, one per
chain; a truth is a batch of one), one or more :class:`Fitter` subclasses that
turn a generation's training data into the next batch of models, and registers
its metrics with :func:`collapse_sim.registry.register_metric`. The engine
(:func:`collapse_sim.simulate`) talks to families only through the methods
below, so a new family needs no edit anywhere else. The conformance check
:func:`collapse_sim.testing.check_family` verifies a family against this contract.

Data. A model draws ``k`` items per chain as an array ``(chains, k, *event_shape)``
of its :attr:`Model.dtype` (float64 points ``(d,)``, int32 tokens ``()``, …), chain
``c`` from stream ``c`` of a :class:`~collapse_sim.sampling.ChainStreams`.

Capabilities a family may opt into:

- **statistics** — a fitter whose ``needs = "statistics"`` depends on its training
  data only through statistics that add up (Gaussian moments, category counts):
  ``Accumulate`` then keeps a running sum instead of the points. A model whose
  :attr:`Model.statistics_type` matches can draw those statistics without forming
  the points (:meth:`Model.draw_statistics`), with ``exact=True`` by their exact law
  (a Wishart scatter, multinomial counts) at a cost that does not grow with ``k``
  (a data set's rows are their own exact statistics; :attr:`Model.exact_keep_share`
  says whether such a truth allows ``KeepReal`` with a share of its sample on that path);
- **held-out data** — :meth:`Model.heldout` returns real data not used for
  training (default: fresh draws from the truth; an empirical truth returns its
  held-out split);
- **a reference** — :meth:`Model.reference` gives the model generation 0 is
  measured by (default: the truth; a data set: the fit of all its training rows);
- **run binding** — :meth:`Model.start_run` lets a truth keep per-chain state
  from the real sample (a regression's fixed design);
- **a fused run** — :meth:`Fitter.fused_run` runs many generations in one kernel.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from ._validation import normalise_on_init


class Competence(enum.IntEnum):
    """How well a fitter suits a truth (PyMC's step-method *competence*, for families).

    ``INCOMPATIBLE``: it cannot fit data of that truth at all; ``APPROXIMATE``: it
    can, but its family cannot represent the truth (functional expressivity
    error: one Gaussian for a mixture); ``EXACT``: the truth lies in its family.
    """

    INCOMPATIBLE = 0
    APPROXIMATE = 1
    EXACT = 2


class Model:
    """A batch of ``B`` distributions, one per chain (a truth is a batch of one).

    Subclasses set :attr:`event_shape` and :attr:`dtype` (or override the
    properties) and implement :meth:`broadcast`, :meth:`draw`, :meth:`finite`,
    :meth:`to_dict` and :meth:`record`; everything else has a default.
    """

    #: Names of the dimensions of each array :meth:`record` returns (after the
    #: ``generation`` and ``chain`` dimensions), e.g. ``{"mean": ("dim",)}``.
    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Type of the additive statistics :meth:`draw_statistics` can draw (``None``: none).
    statistics_type: ClassVar[type | None] = None
    #: Whether :meth:`draw_statistics` supports ``exact=True``.
    exact_statistics: ClassVar[bool] = False
    #: Whether, as a truth on the exact path, a share ``0 < k < n`` of its real sample may
    #: be kept (``KeepReal``): the statistics of the first ``k`` items are then drawn given
    #: those of all ``n`` (Gaussian moments) or apart from them (counts of i.i.d. items).
    #: Rows of a fixed data set, drawn without replacement, allow neither.
    exact_keep_share: ClassVar[bool] = True

    # -- required ------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:  # pragma: no cover - abstract
        """Number ``B`` of distributions in the batch."""
        raise NotImplementedError

    @property
    def event_shape(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        """Shape of one data item: ``(d,)`` for points, ``()`` for tokens."""
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        """dtype of the data this model draws (float64 unless a family says otherwise)."""
        return np.dtype(np.float64)

    def broadcast(self, chains: int) -> Model:  # pragma: no cover - abstract
        """This single distribution repeated ``chains`` times (views, no copies)."""
        raise NotImplementedError

    def draw(self, k: int, streams) -> np.ndarray:  # pragma: no cover - abstract
        """``(chains, k, *event_shape)`` items; row ``c`` from member ``c`` and stream ``c``.

        The batch is 1 (then broadcast) or ``streams.chains``.
        """
        raise NotImplementedError

    def finite(self) -> np.ndarray:  # pragma: no cover - abstract
        """``(B,)`` bool: which members have finite parameters."""
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        """Compact JSON-serialisable description (a data set by name and hash, never its data)."""
        raise NotImplementedError

    def record(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """The parameters ``record_models=True`` keeps: ``{name: (B, ...) array}``."""
        raise NotImplementedError

    # -- defaults ------------------------------------------------------------------------------
    @property
    def item_size(self) -> int:
        """Number of scalars in one data item (the product of :attr:`event_shape`)."""
        return int(np.prod(self.event_shape, dtype=np.int64))

    def items_for(self, n_samples: int) -> int:
        """Data items that make up ``n_samples`` of a generation (default: ``n_samples``).

        A family whose item is a group of units (a block of tokens, when ``n_samples``
        counts tokens) converts here, and raises ``ValueError`` if ``n_samples`` is not
        a usable size; the policies then count items.
        """
        return n_samples

    def check_truth(self) -> None:
        """Raise ``ValueError`` if this model cannot serve as a simulation's truth."""
        if self.batch_size != 1:
            raise ValueError(f"truth must be a single distribution, got a batch of "
                             f"{self.batch_size}")

    @property
    def has_heldout(self) -> bool:
        """Whether :meth:`heldout` serves held-out data (default: ``True``; a data set split
        with ``heldout=0`` has none, and ``simulate`` leaves the metrics that need it out
        of the defaults)."""
        return True

    def heldout(self, size: int, streams) -> np.ndarray:
        """``(size, *event_shape)`` real data for held-out metrics (default: fresh draws)."""
        return self.draw(size, streams)[0]

    def start_run(self, chains: int, real: np.ndarray) -> Model:
        """The truth for one run of ``chains`` chains whose real sample is ``real``.

        Default: the truth broadcast to ``chains``. A family whose later draws depend on
        each chain's real sample (a regression's fixed design) binds it here.
        """
        return self.broadcast(chains)

    def draw_statistics(self, k: int, streams, *, exact: bool):
        """Statistics of ``k`` items per chain without forming them (see the capabilities)."""
        raise NotImplementedError(f"{type(self).__name__} draws no statistics")

    def reference(self, fitter: Fitter, streams) -> Model:
        """The model row 0 of the metrics measures (default: the truth itself).

        A truth that has no density of its own (a fixed data set, :class:`Empirical`)
        returns ``fitter``'s model of all its training data, a batch of one; its metrics are
        then registered against the fitter's model type. ``streams`` (one stream) serve
        any randomness of that fit.
        """
        return self

    def measured(self) -> Model:
        """The model the metrics measure (default: itself; an estimator batch may convert)."""
        return self


class Fitter:
    """Turns each chain's training data into the next generation's model.

    Subclasses (frozen dataclasses with scikit-learn-style parameters) set
    :attr:`model_type`, :attr:`truth_types` and :attr:`needs`, and implement
    :meth:`fit_chains` (``needs = "points"``) or :meth:`statistics` and
    :meth:`fit_statistics` (``needs = "statistics"``).
    """

    #: The model class this fitter returns.
    model_type: ClassVar[type]
    #: Truth classes whose data it can fit (instances of ``model_type`` are fitted exactly).
    truth_types: ClassVar[tuple[type, ...]] = ()
    #: ``"points"``: fits the data items; ``"statistics"``: only additive statistics of them.
    needs: ClassVar[str] = "points"
    #: Type of the statistics a ``needs="statistics"`` fitter consumes.
    statistics_type: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        normalise_on_init(cls)  # numpy scalars in the parameters become Python numbers

    def competence(self, truth) -> Competence:
        """How well this fitter suits ``truth`` (see :class:`Competence`)."""
        if isinstance(truth, self.model_type):
            return Competence.EXACT
        if isinstance(truth, self.truth_types):
            return Competence.APPROXIMATE
        return Competence.INCOMPATIBLE

    def min_points(self) -> int:
        """Smallest training-set size (items per chain) the fit is defined for."""
        return 1

    def fit_chains(self, data: np.ndarray, *, streams, previous: Model | None = None,
                   truth: Model | None = None) -> Model:
        """Fit every chain's items ``data`` ``(chains, k, *event_shape)``.

        ``previous`` is the model of the generation before (``None`` at generation 1),
        ``truth`` the run's truth (:meth:`Model.start_run`); ``streams`` serve any
        randomness of the fit (initialisation, minibatches).
        """
        if self.needs == "statistics":
            return self.fit_statistics(self.statistics(data, truth=truth))
        raise NotImplementedError  # pragma: no cover - abstract

    def statistics(self, data: np.ndarray, *, truth: Model | None = None):
        """Additive statistics of ``data`` (``needs = "statistics"`` fitters).

        ``truth`` (the run's truth) fixes their shape where the data alone cannot
        (the number of categories of a categorical truth).
        """
        raise NotImplementedError(f"{type(self).__name__} uses no statistics")

    def fit_statistics(self, stats) -> Model:
        """Fit from statistics (``needs = "statistics"`` fitters)."""
        raise NotImplementedError(f"{type(self).__name__} uses no statistics")

    def as_model(self, truth: Model) -> Model:
        """``truth`` in this fitter's family: row 0 of ``record_models`` (default: the truth)."""
        if isinstance(truth, self.model_type):
            return truth
        raise ValueError(f"record_models=True cannot store a {type(truth).__name__} truth as a "
                         f"{self.model_type.__name__}")

    def fused_run(self, truth: Model, plan, n_samples: int, generations: int, streams, *,
                  exact: bool, stage=None) -> Iterator[tuple[int, int, Model]] | None:
        """Optionally run whole blocks of generations in one kernel.

        ``exact`` says whether the run takes the exact statistics path; ``stage`` is the
        run's generation stage (``None``: faithful sampling), which the fused run must
        apply or decline (return ``None``). Returns
        ``None`` when not applicable, else an iterator of
        ``(first_generation, size, models)`` whose ``models`` batch holds
        ``size * chains`` members, generation-major. Must give the same models as the
        generation-by-generation loop.
        """
        return None

    def to_dict(self) -> dict:
        """JSON-serialisable description: the class name and the dataclass fields."""
        out: dict[str, Any] = {"type": type(self).__name__}
        for name in getattr(self, "__dataclass_fields__", {}):
            out[name] = getattr(self, name)
        return out


def fitter_classes() -> list[type[Fitter]]:
    """Every :class:`Fitter` subclass defined so far (for suggestions in error messages)."""
    from . import _builtins

    _builtins.load()
    out, todo = [], list(Fitter.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls not in out:
            out.append(cls)
            todo.extend(cls.__subclasses__())
    return out


def suitable_fitters(truth) -> list[str]:
    """Names of the fitters that can fit ``truth`` (checked on the class attributes only)."""
    return [cls.__name__ for cls in fitter_classes()
            if isinstance(truth, (getattr(cls, "model_type", ()), *cls.truth_types))
            and not cls.__name__.startswith("_")]


class PointModel(Model):
    r"""A batch of distributions on :math:`\mathbb R^d`: data are float64 points ``(d,)``.

    Subclasses provide ``dim``; fitters of continuous data (Gaussian, mixture,
    scikit-learn estimators) accept any ``PointModel`` truth.
    """

    @property
    def dim(self) -> int:  # pragma: no cover - abstract
        """Dimension ``d`` of the sample space."""
        raise NotImplementedError

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``(d,)``."""
        return (self.dim,)
