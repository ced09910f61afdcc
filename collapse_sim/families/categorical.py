r"""Discrete distributions refitted by counts: the Wright–Fisher model of vanishing words.

A categorical distribution :math:`p` over :math:`V` categories (a vocabulary), refitted
on :math:`n` items drawn from the previous fit, is one step of the Wright–Fisher
model of population genetics: the counts are multinomial and the next model is

.. math::

    \hat p_j = \frac{c_j + \alpha}{n + V\alpha}, \qquad
    (c_1, \dots, c_V) \sim \mathrm{Multinomial}(n, p),

with :math:`\alpha = 0` for the maximum-likelihood fit. A category whose count hits
0 is gone for good (:math:`\hat p_j = 0` is absorbing): rare words die first, and
the support only ever shrinks — the discrete form of model collapse. Additive
smoothing :math:`\alpha > 0` never lets a category die.

This module is the whole family — model, statistics, fitter, metrics — written
against :mod:`collapse_sim.protocol` and :mod:`collapse_sim.registry` with no edit
to the engine (its kernels are in ``collapse_sim._kernels.categorical``,
``collapse_sim._kernels.live_counts`` and, for generation stages,
``collapse_sim._kernels.staged_counts``).

Since dead categories never come back, a maximum-likelihood fit keeps its counts for
the *live* categories only (:class:`LiveCounts`): resampling :math:`n` items from a fit
of :math:`k` items costs :math:`O(n + k + L)` and its metrics :math:`O(L)` for
:math:`L` live categories, where dense counts cost :math:`O(V)` per chain and
generation. A run that replaces its data every generation goes through
:meth:`CategoricalFit.fused_run` (with or without ``Temperature``, ``TopK`` and ``TopP``
stages): blocks of generations in one kernel, each chain's counts kept in its cache
from one generation to the next. Both give the numbers of
the dense, generation-by-generation computation bit for bit (the tests check it).

Metrics (registered for a categorical truth :math:`p` and models :math:`q`):

================ ===========================================================================
``entropy``      :math:`H(q) = -\sum_j q_j \log q_j` (nats, :math:`0\log 0 = 0`)
``gini_simpson`` :math:`1 - \sum_j q_j^2`: the chance two draws differ
``support``      :math:`\#\{j : q_j > 0\}`: categories still alive
``tail_mass``    :math:`\sum_{j \in R} q_j` over the truth's rarest categories :math:`R`
                 holding 10% of its mass (:func:`tail_set`); the truth has about 0.1
``tv``           total variation :math:`\tfrac12\sum_j |p_j - q_j|`
``kl``           :math:`\mathrm{KL}(p\,\|\,q) = \sum_{p_j>0} p_j\log(p_j/q_j)`; ``+inf``
                 as soon as a category of the truth has died in the model (the right value:
                 the model gives probability 0 to something real)
``nll``          mean :math:`-\log q(x)` over :data:`~collapse_sim.registry.HELDOUT_SIZE`
                 held-out real draws; ``+inf`` once a held-out item's category has died
================ ===========================================================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._buffers import BUFFERS, offsets
from .._kernels import categorical as _kc
from .._kernels import live_counts as _kl
from .._kernels import staged_counts as _ks
from .._validation import as_float_array, check_int, check_real
from ..protocol import Fitter, Model
from ..registry import register_metric

#: Probabilities must sum to 1 within this absolute tolerance (then they are renormalised).
SUM_TOLERANCE = 1e-9
#: Largest number of categories a model may have.
MAX_CATEGORIES = 10_000_000
#: Truths with at most this many categories are described by their probabilities in a
#: result's config; larger ones by their size and a SHA-256 of the probabilities.
LIST_MAX = 4096
#: Share of the truth's mass held by the rare categories ``tail_mass`` watches.
TAIL_SHARE = 0.1


@dataclass(frozen=True)
class LiveCounts:
    r"""Counts of a batch kept for its live categories only (see
    ``collapse_sim._kernels.live_counts``): member ``m`` has ``live[m]`` entries from
    ``off[m]`` on, categories ``ids`` (increasing) with counts ``vals`` (int32, > 0).
    Members' entries never overlap; they need not be in member order."""

    off: np.ndarray
    live: np.ndarray
    ids: np.ndarray
    vals: np.ndarray
    n_categories: int

    @property
    def members(self) -> int:
        """Number of members (chains) in the batch."""
        return self.live.shape[0]


class Counts:
    r"""Category counts of ``count`` items per chain: the sufficient statistics of a fit.

    Kept in the form its producer made — dense ``(chains, V)``, or :class:`LiveCounts`
    (the positive counts only: what the draws of a maximum-likelihood fit produce) —
    and converted on first use of the other form.

    Parameters
    ----------
    count : int
        Items per chain :math:`k`.
    counts : ndarray, optional
        ``(chains, V)`` integer counts, each row summing to ``count``.
    live : LiveCounts, optional
        The same counts in live form (give one of ``counts`` and ``live``).
    """

    __slots__ = ("_dense", "_live", "count")

    def __init__(self, count: int, counts: np.ndarray | None = None, *,
                 live: LiveCounts | None = None):
        if (counts is None) == (live is None):
            raise TypeError("Counts takes one of counts and live")
        self.count = count
        self._dense = counts
        self._live = live

    @property
    def counts(self) -> np.ndarray:
        """``(chains, V)`` int64 counts, each row summing to :attr:`count`."""
        if self._dense is None:
            lv = self._live
            dense = np.zeros((lv.members, lv.n_categories), dtype=np.int64)
            _kl.live_to_dense(lv.off, lv.live, lv.ids, lv.vals, dense)
            self._dense = dense
        return self._dense

    @property
    def chains(self) -> int:
        """Number of chains (members)."""
        return self._dense.shape[0] if self._live is None else self._live.members

    @property
    def n_categories(self) -> int:
        """Number of categories ``V``."""
        return self._dense.shape[1] if self._live is None else self._live.n_categories

    @property
    def has_live(self) -> bool:
        """Whether the live form exists already (no conversion needed)."""
        return self._live is not None

    def live_form(self) -> LiveCounts | None:
        r"""The counts in live form (computed once from the dense form), or ``None`` when a
        count could exceed the int32 entries (:attr:`count` :math:`\ge 2^{31}`)."""
        if self._live is None:
            if self.count >= 2**31:
                return None
            dense = np.ascontiguousarray(self._dense, dtype=np.int64)
            live = np.count_nonzero(dense, axis=1).astype(np.int64)
            off = offsets(live)
            out_live = np.empty_like(live)
            ids = np.empty(off[-1], dtype=np.int32)
            vals = np.empty(off[-1], dtype=np.int32)
            _kl.live_from_dense(dense, off, out_live, ids, vals)
            self._live = LiveCounts(off, out_live, ids, vals, dense.shape[1])
        return self._live

    def __add__(self, other: Counts) -> Counts:
        """Counts of the union of both samples."""
        return Counts(self.count + other.count, self.counts + other.counts)

    def __repr__(self) -> str:
        return f"Counts(count={self.count}, chains={self.chains}, V={self.n_categories})"


#: The buffers of fits nobody holds any more (the engine drops each block's models before
#: it asks for the next block) are lent again, to later blocks and later runs: their
#: fresh memory's page faults were about a fifth of a categorical run on a shared 2-core
#: machine (:mod:`collapse_sim._buffers`).
_BUFFERS = BUFFERS


def _blocked_live(capacity: np.ndarray, n_categories: int,
                  size: int = 1) -> tuple[LiveCounts, np.ndarray]:
    """Room for ``size`` generations of live counts of chains with the given capacities,
    and the start of each block of ``live_counts.CHAIN_BLOCK`` chains (the kernels fill
    a block's chains one after the other and record each member's start).

    Each block has one entry to spare: the kernels compact without a branch, storing
    every entry at the next free place and moving on only past a positive count, so
    a chain that fills its capacity stores one entry beyond it, which must stay in its
    own block."""
    chains = capacity.shape[0]
    starts = np.arange(0, chains, _kl.CHAIN_BLOCK)
    blocks = np.add.reduceat(capacity, starts) if chains else np.zeros(0, dtype=np.int64)
    region = offsets(np.asarray(blocks, dtype=np.int64) * size + 1)
    members = size * chains
    entries = int(region[-1])
    out = LiveCounts(np.empty(members, dtype=np.int64), np.empty(members, dtype=np.int64),
                     _BUFFERS.take(entries), _BUFFERS.take(entries), n_categories)
    return out, region


class Categorical(Model):
    r"""A (batch of) categorical distribution(s) over ``V`` categories, numbered 0 to ``V - 1``.

    Data are int32 category ids (tokens): a sample of ``k`` items per chain is an
    array ``(chains, k)``. Drawing costs :math:`O(k + V)` per chain (an alias table or
    conditional binomials: see ``collapse_sim._kernels.categorical``; a fit without
    smoothing resamples its training counts in :math:`O(k + L)`), and the counts alone
    can be drawn directly (``draw_statistics``), so the default ``sampling="auto"``
    path of :func:`collapse_sim.simulate` never forms the tokens and its cost does not
    grow with ``n_samples``.

    Parameters
    ----------
    probs : array_like
        ``(V,)``, or ``(B, V)`` for a batch: non-negative, finite, summing to 1 within
        :data:`SUM_TOLERANCE` (then renormalised), :math:`1 \le V \le` :data:`MAX_CATEGORIES`.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> truth = cs.Categorical([0.5, 0.3, 0.2])
    >>> truth.n_categories, truth.sample(5, seed=0).dtype.name
    (3, 'int32')
    """

    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {"probs": ("category",)}
    statistics_type = Counts
    exact_statistics = True

    def __init__(self, probs):
        p = as_float_array("probs", probs)
        if p.ndim == 1:
            p = p[None]
        if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
            raise ValueError(f"probs must have shape (V,) or (B, V) with B, V >= 1, got "
                             f"{np.shape(probs)}")
        if p.shape[1] > MAX_CATEGORIES:
            raise ValueError(f"probs has {p.shape[1]} categories; at most {MAX_CATEGORIES}")
        if np.any(p < 0):
            raise ValueError(f"probs must be non-negative, got minimum {p.min():g}")
        total = p.sum(axis=1)
        if np.any(np.abs(total - 1.0) > SUM_TOLERANCE):
            raise ValueError(f"probs must sum to 1 within {SUM_TOLERANCE:g}, got sums "
                             f"{total[np.abs(total - 1.0) > SUM_TOLERANCE][:3]}")
        self._set(p / total[:, None])

    def _set(self, probs: np.ndarray) -> None:
        self._probs = np.ascontiguousarray(probs)
        self._probs.flags.writeable = False
        self._counts = None
        self._alpha = 0.0
        self._tail = None

    @classmethod
    def _from_arrays(cls, probs: np.ndarray) -> Categorical:
        """Trusted constructor for a batch of probabilities (no validation, no copies)."""
        obj = Categorical.__new__(Categorical)
        obj._probs = probs
        obj._counts = None
        obj._alpha = 0.0
        obj._tail = None
        return obj

    @classmethod
    def _from_counts(cls, counts: Counts, alpha: float) -> Categorical:
        r"""A fitted batch :math:`(c_j + \alpha)/(k + V\alpha)`, kept as its counts.

        Nothing of size ``(B, V)`` is computed until :attr:`probs` is read: sampling
        (resampling the counts when :math:`\alpha = 0`) and the metrics work on the
        counts directly, with the same arithmetic, so the results are the same bits.
        """
        obj = Categorical.__new__(Categorical)
        obj._probs = None
        obj._counts = counts
        obj._alpha = float(alpha)
        obj._tail = None
        return obj

    @property
    def probs(self) -> np.ndarray:
        r"""``(B, V)`` probabilities (of a fit: :math:`(c_j + \alpha)/(k + V\alpha)`)."""
        if self._probs is None:
            counts = self._counts.counts
            probs = np.empty(counts.shape)
            _kc.smoothed_frequencies(counts, float(self._counts.count), self._alpha, probs)
            self._probs = probs
        return self._probs

    def _resamples(self, k: int) -> bool:
        counts = self._counts
        return counts is not None and self._alpha == 0.0 and counts.count < 2**31 and (
            counts.count <= _kc.RESAMPLE_FACTOR * (k + self.n_categories))

    # -- shape ---------------------------------------------------------------------------------
    @property
    def _shape(self) -> tuple[int, int]:
        if self._counts is None:
            return self._probs.shape
        return self._counts.chains, self._counts.n_categories

    @property
    def n_categories(self) -> int:
        """Number of categories ``V``."""
        return self._shape[1]

    @property
    def batch_size(self) -> int:
        """Number ``B`` of distributions in the batch."""
        return self._shape[0]

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``()``: one item is one category id."""
        return ()

    @property
    def dtype(self) -> np.dtype:
        """int32 category ids."""
        return np.dtype(np.int32)

    def broadcast(self, chains: int) -> Categorical:
        """This distribution for ``chains`` chains (a batch of one stays shared, no copy)."""
        if self.batch_size in (1, chains):
            return self
        raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")

    # -- sampling ------------------------------------------------------------------------------
    def _check_streams(self, k: int, streams) -> None:
        if self.batch_size not in (1, streams.chains):
            raise ValueError(f"a batch of {self.batch_size} cannot draw for "
                             f"{streams.chains} streams")
        check_int("k", k, minimum=0)

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k)`` int32 tokens; row ``c`` from member ``c`` with stream ``c``."""
        self._check_streams(k, streams)
        tokens = np.empty((streams.chains, k), dtype=np.int32)
        if self._resamples(k):
            self._resample(k, streams, tokens)
        elif self.batch_size == 1:
            # a writable copy of read-only probabilities (a truth's): one compiled version
            probs = np.require(self.probs, np.float64, "CW")
            _kl.draw_shared_tokens(streams.states, probs, k, tokens)
        else:
            scratch = np.zeros((streams.chains, self.n_categories), dtype=np.int64)
            _kc.categorical_draw(streams.states, self.probs, k, tokens, scratch)
        return tokens

    def draw_statistics(self, k: int, streams, *, exact: bool) -> Counts:
        """Multinomial counts of ``k`` items per chain without forming the items.

        The same method and draws as :meth:`draw` (resampling the training counts of
        an unsmoothed fit, an alias table for small ``k``, conditional binomials in
        :math:`O(V)` for large ``k``: see ``collapse_sim._kernels.categorical``), so
        the counts equal those of the tokens :meth:`draw` gives from the same stream
        position, and ``exact`` changes nothing: both are exact. Resampled counts and
        the draws of a single distribution come in live form (positive counts only).
        """
        self._check_streams(k, streams)
        chains = streams.chains
        if self._resamples(k):
            return self._resample(k, streams, np.empty((chains, 0), dtype=np.int32))
        if self.batch_size == 1 and k < 2**31:
            probs = np.require(self.probs, np.float64, "CW")  # as in draw
            capacity = np.full(chains, min(k, np.count_nonzero(probs[0])), dtype=np.int64)
            out, region = _blocked_live(capacity, self.n_categories)
            _kl.draw_live(streams.states, probs, k, region, out.off, out.live, out.ids,
                          out.vals)
            return Counts(k, live=out)
        counts = np.zeros((chains, self.n_categories), dtype=np.int64)
        _kc.categorical_draw(streams.states, self.probs, k,
                             np.empty((chains, 0), dtype=np.int32), counts)
        return Counts(k, counts)

    def _resample(self, k: int, streams, tokens: np.ndarray) -> Counts:
        """``k`` items per chain resampled from the training counts (``tokens``: the items,
        when it has columns); their counts in live form."""
        source = self._counts.live_form()
        live = np.broadcast_to(source.live, (streams.chains,))
        out, region = _blocked_live(np.minimum(live, k), self.n_categories)
        _kl.live_resample(streams.states, source.off, source.live, source.ids, source.vals,
                          self._counts.count, k, tokens, region, out.off, out.live, out.ids,
                          out.vals)
        return Counts(k, live=out)

    def sample(self, n: int, seed=None) -> np.ndarray:
        """Draw ``n`` tokens from every member (member ``c`` uses chain ``c``'s stream).

        Returns ``(n,)`` int32 for a batch of one, else ``(B, n)``.
        """
        from ..sampling import chain_streams

        n = check_int("n", n, minimum=1, maximum=2**31 - 1)
        out = self.draw(n, chain_streams(seed, self.batch_size))
        return out[0] if self.batch_size == 1 else out

    # -- protocol --------------------------------------------------------------------------------
    def finite(self) -> np.ndarray:
        """``(B,)`` bool: every probability finite."""
        if self._counts is not None:  # integer counts over a positive total: always finite
            return np.ones(self.batch_size, dtype=bool)
        return np.isfinite(self.probs).all(axis=1)

    def record(self) -> dict[str, np.ndarray]:
        """``probs`` ``(B, V)``."""
        return {"probs": self.probs}

    def to_dict(self) -> dict:
        """The probabilities, or for more than :data:`LIST_MAX` categories their SHA-256."""
        if self.n_categories <= LIST_MAX:
            return {"type": "Categorical", "probs": self.probs.tolist()}
        digest = hashlib.sha256(np.ascontiguousarray(self.probs).tobytes()).hexdigest()
        return {"type": "Categorical", "n_categories": self.n_categories, "sha256": digest}

    def __repr__(self) -> str:
        return f"Categorical(n_categories={self.n_categories}, batch_size={self.batch_size})"

    # -- the truth's rare tail ---------------------------------------------------------------------
    def tail_set(self) -> np.ndarray:
        """Indices of the rarest categories holding at most :data:`TAIL_SHARE` of the mass.

        Categories are taken from the rarest up (ties by index) while their
        cumulative probability stays at or below 10%; categories of probability 0
        are excluded. Defined by the first member (the truth).
        """
        if self._tail is None:
            p = self.probs[0]
            order = np.argsort(p, kind="stable")
            order = order[p[order] > 0.0]
            mass = np.cumsum(p[order])
            self._tail = np.sort(order[mass <= TAIL_SHARE * (1.0 + 1e-12)])
        return self._tail


class Zipf(Categorical):
    r"""Zipf's law over ``n_categories`` ranks: :math:`p_r \propto r^{-s}`, :math:`r = 1..V`.

    The heavy tail of real vocabularies: category 0 is the most frequent word.

    Parameters
    ----------
    n_categories : int
        :math:`V`, from 2 to :data:`MAX_CATEGORIES`.
    exponent : float
        :math:`s > 0` (natural language: about 1).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> z = cs.Zipf(n_categories=4, exponent=1.0)
    >>> [round(float(x), 4) for x in z.probs[0]]
    [0.48, 0.24, 0.16, 0.12]
    """

    def __init__(self, n_categories: int, exponent: float = 1.0):
        self.n_categories_ = check_int("n_categories", n_categories, minimum=2,
                                       maximum=MAX_CATEGORIES)
        self.exponent = check_real("exponent", exponent, low=0.0, low_open=True, high=1e3)
        weights = np.arange(1, self.n_categories_ + 1, dtype=np.float64) ** -self.exponent
        self._set((weights / weights.sum())[None])

    def to_dict(self) -> dict:
        """``{"type": "Zipf", "n_categories": V, "exponent": s}``."""
        return {"type": "Zipf", "n_categories": self.n_categories_, "exponent": self.exponent}

    def __repr__(self) -> str:
        return f"Zipf(n_categories={self.n_categories_}, exponent={self.exponent:g})"


def count_tokens(tokens: np.ndarray, n_categories: int) -> Counts:
    """Counts of ``tokens`` ``(chains, k)`` over ``n_categories`` categories (ids checked)."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must have shape (chains, k), got {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= n_categories):
        raise ValueError(f"tokens must be category ids in [0, {n_categories}), got range "
                         f"[{tokens.min()}, {tokens.max()}]")
    tokens = np.ascontiguousarray(tokens, dtype=np.int32)  # ids checked first: no wrap-around
    k = tokens.shape[1]
    if k >= 2**31:  # counts beyond int32: dense
        out = np.zeros((tokens.shape[0], n_categories), dtype=np.int64)
        _kc.count_tokens(tokens, out)
        return Counts(k, out)
    live, region = _blocked_live(np.full(tokens.shape[0], min(k, n_categories),
                                         dtype=np.int64), n_categories)
    _kl.count_live(tokens, n_categories, region, live.off, live.live, live.ids, live.vals)
    return Counts(k, live=live)


@dataclass(frozen=True)
class CategoricalFit(Fitter):
    r"""Fit by counts: :math:`\hat p_j = (c_j + \alpha)/(k + V\alpha)`.

    With ``smoothing=0`` (maximum likelihood) every generation is a Wright–Fisher
    step and a category that draws no item is lost forever; additive smoothing
    :math:`\alpha > 0` (Laplace's rule for :math:`\alpha = 1`) gives every category
    at least :math:`\alpha/(k + V\alpha)`, so none dies.

    Parameters
    ----------
    smoothing : float
        :math:`\alpha \ge 0`.

    Examples
    --------
    >>> import numpy as np, collapse_sim as cs
    >>> fit = cs.CategoricalFit().fit(np.array([[0, 0, 2, 2]]), n_categories=3)
    >>> fit.probs.tolist()
    [[0.5, 0.0, 0.5]]
    """

    smoothing: float = 0.0

    model_type = Categorical
    truth_types = (Categorical,)
    needs = "statistics"
    statistics_type = Counts

    def __post_init__(self):
        check_real("smoothing", self.smoothing, low=0.0, high=1e12)

    def statistics(self, data: np.ndarray, *, truth=None) -> Counts:
        """Counts of the tokens ``(chains, k)`` over the truth's categories."""
        return count_tokens(data, truth.n_categories)

    def fit_statistics(self, stats: Counts) -> Categorical:
        """The smoothed relative frequencies of every chain."""
        # kept as counts: without smoothing, draws resample them (the empirical distribution)
        return Categorical._from_counts(stats, self.smoothing)

    def fused_run(self, truth, plan, n_samples, generations, streams, *, exact, stage=None):
        """Maximum-likelihood refits that replace their data: blocks of generations in one
        kernel each (``collapse_sim._kernels.live_counts.live_run``; with a generation
        stage of ``Temperature``, ``TopK`` and ``TopP`` parts,
        ``collapse_sim._kernels.staged_counts.staged_run``).

        Each chain resamples its own live counts (or draws from their staged
        probabilities) generation after generation while they stay in its cache, with
        the draws and arithmetic of the generation-by-generation loop (the same models,
        bit for bit). Declined (``None``) with smoothing, any other generation stage, or
        a policy that keeps real, fresh or accumulated data.
        """
        ops = _stage_ops(stage)
        if (self.smoothing != 0.0 or (stage is not None and ops is None) or generations < 1
                or plan.real or plan.fresh or plan.pool != "none"
                or plan.synthetic != n_samples or not isinstance(truth, Categorical)
                or n_samples >= 2**31):
            return None
        return _fused_blocks(self, truth, n_samples, generations, streams, exact, ops)

    def fit(self, tokens, n_categories: int) -> Categorical:
        """Fit every chain's tokens ``(chains, k)`` (or ``(k,)``) over ``n_categories``."""
        n_categories = check_int("n_categories", n_categories, minimum=1,
                                 maximum=MAX_CATEGORIES)
        arr = np.asarray(tokens)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"tokens must be integer category ids, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] < 1:
            raise ValueError(f"tokens must have shape (chains, k) with k >= 1, got {arr.shape}")
        return self.fit_statistics(count_tokens(arr, n_categories))

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "CategoricalFit", "smoothing": self.smoothing}


#: Entries (8 bytes each) a block of the fused run may hold: 8 MiB.
FUSED_BLOCK_ENTRIES = 1 << 20


def _stage_ops(stage) -> tuple[np.ndarray, np.ndarray] | None:
    """``(ops, params)`` of ``staged_counts.staged_run`` for a stage made of
    ``Temperature``, ``TopK`` and ``TopP`` parts; ``None`` for any other (or none)."""
    from ..stages import Temperature, TopK, TopP

    if stage is None:
        return None
    ops, params = [], []
    for part in stage.parts:
        if type(part) is Temperature:
            ops.append(_ks.TEMPERATURE)
            params.append(1.0 / part.tau)  # the beta of _tempered
        elif type(part) is TopK:
            ops.append(_ks.TOP_K)
            params.append(float(part.k))
        elif type(part) is TopP:
            ops.append(_ks.TOP_P)
            params.append(float(part.p))
        else:
            return None
    return np.array(ops, dtype=np.int64), np.array(params, dtype=np.float64)


def _fused_blocks(fitter: CategoricalFit, truth: Categorical, n: int, generations: int,
                  streams, exact: bool, ops: tuple[np.ndarray, np.ndarray] | None = None):
    """``(first generation, size, models)`` blocks of :meth:`CategoricalFit.fused_run`.

    Generation 1 is drawn as the generation-by-generation loop draws the real sample
    (counts on the exact path, tokens then counts on the explicit one); every later
    generation of a block comes from ``live_run`` (``ops``: the stages of
    ``staged_run``) in one parallel region.
    """
    chains = streams.chains
    base = truth.broadcast(chains)
    if exact:
        real = base.draw_statistics(n, streams, exact=True)
    else:
        real = fitter.statistics(base.draw(n, streams), truth=truth)
    model = fitter.fit_statistics(real)
    yield 1, 1, model
    source, count, t = model._counts.live_form(), real.count, 2
    v = truth.n_categories
    powers = np.zeros(1)
    if ops is not None and ops[0].size and ops[0][0] == _ks.TEMPERATURE:
        powers = np.empty(max(count, n) + 1)
        _ks.count_powers(ops[1][0], max(count, n), powers)
    while t <= generations:
        capacity = np.minimum(np.broadcast_to(source.live, (chains,)), n)
        size = int(max(1, min(generations + 1 - t,
                              FUSED_BLOCK_ENTRIES // max(int(capacity.sum()), 1))))
        out, region = _blocked_live(capacity, v, size)
        if ops is None:
            _kl.live_run(streams.states, source.off, source.live, source.ids, source.vals,
                         count, n, region, out.off, out.live, out.ids, out.vals)
        else:
            _ks.staged_run(streams.states, source.off, source.live, source.ids, source.vals,
                           count, n, ops[0], ops[1], powers, region, out.off, out.live,
                           out.ids, out.vals)
        yield t, size, Categorical._from_counts(Counts(n, live=out), 0.0)
        last = (size - 1) * chains  # the last generation of the block starts the next one
        source = LiveCounts(out.off[last:], out.live[last:], out.ids, out.vals, v)
        count, t = n, t + size


# -- metrics --------------------------------------------------------------------------------------

_METRICS = ("entropy", "gini_simpson", "support", "tail_mass", "tv", "kl", "nll")


#: Metrics that need a logarithm of every live probability (the others are cheaper).
_LOGS = frozenset({"entropy", "kl", "nll"})


def _kept(sample: np.ndarray | None) -> np.ndarray | None:
    """A copy of a held-out sample for a memo (the caller may change its array later)."""
    return None if sample is None else sample.copy()


def _same_sample(kept: np.ndarray | None, sample: np.ndarray | None) -> bool:
    """Whether a memo's held-out sample is ``sample`` (compared in full)."""
    if kept is None or sample is None:
        return kept is None and sample is None
    return np.array_equal(kept, sample)


def _truth_tables(truth, heldout: np.ndarray | None, v: int):
    """``(p, log p, held-out frequencies, rare-set mask, per-category table, flags)`` of the
    metric kernels, computed once per truth and held-out sample (memoised on the truth;
    the held-out sample is compared in full, as a caller may change its array)."""
    memo = getattr(truth, "_table_memo", None)
    if memo is not None and _same_sample(memo[0], heldout):
        return memo[1]
    freq = np.zeros(v) if heldout is None else np.bincount(heldout, minlength=v) / heldout.size
    tail = np.zeros(v, dtype=np.bool_)
    tail[truth.tail_set()] = True
    p = truth.probs[0]
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    per_category = np.stack([p, log_p, freq, tail.astype(np.float64)], axis=1)
    flags = (p > 0).astype(np.int64) + ((freq > 0).astype(np.int64) << 32)
    tables = (p, log_p, freq, tail, per_category, flags)
    truth._table_memo = (_kept(heldout), tables)
    return tables


def _all_metrics(truth, model, heldout: np.ndarray | None, selection=None) -> np.ndarray:
    """``(7, B)``: the metrics of :data:`_METRICS` in one pass (memoised on the model).

    Without a logarithmic metric in ``selection``, the logarithms are skipped (their
    rows are then NaN and never returned).
    """
    logs = selection is None or bool(_LOGS & set(selection))
    memo = getattr(model, "_metric_memo", None)
    if (memo is not None and memo[0] is truth and memo[2] >= logs
            and _same_sample(memo[1], heldout)):
        return memo[3]
    v = model.n_categories
    p, log_p, freq, tail, per_category, flags = _truth_tables(truth, heldout, v)
    out = np.empty((len(_METRICS), model.batch_size))
    counts = model._counts
    if counts is not None and model._alpha == 0.0 and counts.has_live:
        lv = counts.live_form()  # the positive counts only: O(live) per member
        _kl.live_metrics(lv.off, lv.live, lv.ids, lv.vals, counts.count, per_category, flags,
                         np.count_nonzero(p), np.count_nonzero(freq), logs, out)
    elif counts is not None:  # straight from the counts
        denom = counts.count + v * model._alpha
        _kc.categorical_metrics(counts.counts, model._alpha, denom, p, log_p, tail, freq, logs,
                                out)
    else:
        _kc.categorical_metrics(np.ascontiguousarray(model.probs), 0.0, 1.0, p, log_p, tail,
                                freq, logs, out)
    model._metric_memo = (truth, _kept(heldout), logs, out)
    return out


def _metric(name: str):
    row = _METRICS.index(name)
    return lambda truth, model, ctx: _all_metrics(truth, model, ctx.heldout,
                                                  ctx.selection)[row].copy()


def entropy(truth, model) -> np.ndarray:
    r"""Shannon entropy :math:`-\sum_j q_j\log q_j` of each model, in nats."""
    return _all_metrics(truth, model, None)[0].copy()


def gini_simpson(truth, model) -> np.ndarray:
    r"""Gini–Simpson index :math:`1 - \sum_j q_j^2`: the chance two draws differ."""
    return _all_metrics(truth, model, None)[1].copy()


def support(truth, model) -> np.ndarray:
    r"""Number of categories with :math:`q_j > 0`, as float."""
    return _all_metrics(truth, model, None)[2].copy()


def tail_mass(truth, model) -> np.ndarray:
    r"""Model probability of the truth's rare tail :math:`R` (see :meth:`Categorical.tail_set`)."""
    return _all_metrics(truth, model, None)[3].copy()


def tv(truth, model) -> np.ndarray:
    r"""Total variation :math:`\tfrac12\sum_j |p_j - q_j|`."""
    return _all_metrics(truth, model, None)[4].copy()


def kl(truth, model) -> np.ndarray:
    r""":math:`\mathrm{KL}(p\,\|\,q)`: ``+inf`` once a category of the truth died in the model."""
    return _all_metrics(truth, model, None)[5].copy()


def nll(truth, model, heldout: np.ndarray) -> np.ndarray:
    r"""Mean :math:`-\log q(x)` of the held-out tokens ``heldout`` ``(m,)`` (inf if one died)."""
    return _all_metrics(truth, model, np.asarray(heldout))[6].copy()


_DOCS = {"entropy": "entropy -sum q log q (nats)", "gini_simpson": "1 - sum q^2",
         "support": "categories with q > 0", "tail_mass": "model mass on the truth's rarest 10%",
         "tv": "total variation distance", "kl": "KL(truth || model)",
         "nll": "mean -log q of held-out real draws"}
for _name in _METRICS:
    register_metric(_name, Categorical, Categorical, _metric(_name), doc=_DOCS[_name],
                    distance=_name in ("tv", "kl"), heldout=_name == "nll")


# -- generation stages ----------------------------------------------------------------------

def _tempered(stage, model: Categorical) -> Categorical:
    r""":math:`p_j^{1/\tau} / \sum_i p_i^{1/\tau}` per member, from a fit's counts
    :math:`(c_j + \alpha)^{1/\tau}` when it has them (dead categories stay dead; where
    the largest count's power overflows, as :math:`1300^{100}` does at
    :math:`\tau = 0.01`, from the counts divided by the largest: ``powered_rows``)."""
    beta = 1.0 / stage.tau
    if model._counts is not None and model._probs is None:  # straight from the counts
        values, offset = model._counts.counts, model._alpha
    else:
        values, offset = np.ascontiguousarray(model.probs), 0.0
        # p^(1/tau) of probabilities: rescale by the row maximum first (no underflow)
        values = values / values.max(axis=1, keepdims=True)
    out = np.empty(values.shape)
    _kc.powered_rows(values, float(offset), beta, out)
    return Categorical._from_arrays(out)


def _keep_top(model: Categorical, top_k: int, top_p: float) -> Categorical:
    """Each member restricted to its likeliest categories (ties by id), renormalised."""
    probs = np.ascontiguousarray(model.probs)
    out = np.empty_like(probs)
    _kc.keep_top(probs, top_k, top_p, out)
    return Categorical._from_arrays(out)


def _top_k(stage, model: Categorical) -> Categorical:
    """The ``k`` likeliest categories (ties by id) of each member, renormalised."""
    return _keep_top(model, stage.k, 0.0)


def _top_p(stage, model: Categorical) -> Categorical:
    """The smallest likeliest set holding mass >= p (within 1e-12), renormalised."""
    return _keep_top(model, 0, stage.p)


def _register_stages():
    from ..stages import Temperature, TopK, TopP, register_stage

    register_stage(Temperature, Categorical, _tempered)
    register_stage(TopK, Categorical, _top_k)
    register_stage(TopP, Categorical, _top_p)


_register_stages()
