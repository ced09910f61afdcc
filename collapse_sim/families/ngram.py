r"""n-gram language models refitted on their own text: rare words vanish, text repeats.

The closest thing to the paper's language-model experiment a laptop runs in seconds.
The truth is a real corpus (:class:`NGramTruth`); every chain fits an order-:math:`n`
model to its training text by counting (:class:`NGramFit`), writes new text with it,
and the next generation is fitted to that text.

**Data.** One data item is a *block* of ``block_size`` consecutive tokens (the paper
trains on 64-token blocks), an int32 array of shape ``(block_size,)``. ``n_samples``
counts tokens: a generation trains on ``n_samples // block_size`` blocks, and the
policies keep, mix and accumulate whole blocks (``KeepReal(0.1)`` keeps the first 10%
of a chain's real blocks: the paper's "10% of the original data preserved"). The real
sample of a chain is that many blocks of the corpus's training split, chosen at random
without replacement; fresh real data (``FreshReal``) is another such choice.

**The model.** Every block is a sequence: the history before its first token is the
begin-of-sequence symbol repeated. With counts :math:`c(h, w)` of token :math:`w` after
the context :math:`h` (the :math:`n-1` previous tokens) in the training blocks, and
additive smoothing :math:`\alpha \ge 0` (``NGramFit(smoothing=...)``),

.. math::

    q(w \mid h) = \frac{c(h, w) + \alpha}{c(h) + \alpha V},

where :math:`h` is the longest suffix of the actual history that occurs in the
training text (an unseen context *backs off* to a shorter one, down to the unigram
model). With :math:`\alpha = 0` (maximum likelihood) every context's row is refitted by
multinomial counts — a Wright–Fisher step whose sample size is the number of times the
context is visited — and a word or a continuation that is not drawn is gone for good.

**Perplexity.** The model itself gives probability 0 to everything it has lost, so
perplexity uses a fixed *evaluation* smoothing, separate from the fit's: Jelinek–Mercer
interpolation of the model's own conditionals over every seen suffix context, from the
uniform distribution up, each level with weight :data:`EVAL_WEIGHT`
(see ``collapse_sim._kernels.ngram.log_likelihood``). It is the same for every model and
every generation, never infinite, and for the truth's own model it is the usual
interpolated n-gram perplexity.

Metrics (registered for an :class:`NGramTruth` and :class:`NGramModel` models):

==================== ===============================================================
``perplexity``       :math:`\exp(-\tfrac1m\sum\log P(x_i))` over the held-out real text
``vocabulary``       word types with non-zero unigram probability
``tail_mass``        unigram probability of the truth's rarest types holding 10% of the
                     real training text's tokens (the truth has about 0.1)
``entropy``          entropy of the unigram distribution (nats)
``distinct_2``       distinct 2-grams / 2-grams in :data:`METRIC_TEXT_TOKENS` generated
                     tokens per chain (real text for row 0)
``distinct_4``       the same for 4-grams
``repetition``       share of generated 4-grams that already occurred earlier in the
                     same sequence
``self_perplexity``  perplexity of that generated text under the truth's model (the
                     generation-0 model): the paper's Fig. 1 quantity
==================== ===============================================================

The generated text of the text metrics is drawn from streams of its own (derived from
the seed, the generation and the chain), so adding or removing a metric never changes
the simulation.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np

from .._buffers import BUFFERS, offsets
from .._kernels import ngram as _kn
from .._validation import MAX_INT, check_int, check_real
from ..protocol import Fitter, Model
from ..registry import register_metric

#: Largest model order.
MAX_ORDER = 5
#: Weight :math:`\lambda` of each level of the evaluation interpolation (perplexity).
EVAL_WEIGHT = 0.9
#: Generated tokens per chain that the text metrics measure (rounded down to whole blocks).
METRIC_TEXT_TOKENS = 4096
#: Smallest block size (the 4-gram metrics need room inside a block).
MIN_BLOCK = 8
#: Largest vocabulary (token ids and the begin-of-sequence symbol fit comfortably in int32).
MAX_VOCABULARY = 1 << 24
#: Budget in bytes for the counting buffers of one batch of chains in a fit.
FIT_BUFFER_BYTES = 256 << 20
#: Sampling temperatures accepted by :class:`NGramFit` (weights :math:`c^{1/T}` stay finite
#: in float64 for counts below 2**31 down to this temperature).
MIN_TEMPERATURE = 0.05
#: Largest sampling temperature.
MAX_TEMPERATURE = 100.0
#: Share of the real training tokens the rare types behind ``tail_mass`` hold.
TAIL_SHARE = 0.1


#: Per thread, the bigram events of the last batch drawn from: ``value`` is ``(weak
#: reference to the model, prompt bytes, events)`` (see ``NGramModel._bigram_events``).
_LAST_EVENTS = threading.local()


def _forget_events(ref) -> None:
    """Let the remembered events go with their model (the recycled memory is lent
    again)."""
    last = getattr(_LAST_EVENTS, "value", None)
    if last is not None and last[0] is ref:
        _LAST_EVENTS.value = None


class NGramModel(Model):
    r"""A batch of order-:math:`n` n-gram models over one vocabulary, one per chain.

    Built by :class:`NGramFit` (or as the reference model of an :class:`NGramTruth`),
    not by hand. Each member is sparse: it stores only the contexts and continuations
    seen in its training text (see ``collapse_sim._kernels.ngram``), so its size grows
    with the training text, not with :math:`V^n`.

    Attributes
    ----------
    order : int
        :math:`n`.
    vocabulary : tuple of str
        Token strings by id; id 0 is ``"<unk>"``.
    block_size : int
        Tokens per sequence it writes (the length of a data item).
    smoothing : float
        :math:`\alpha`.
    temperature : float
        The temperature :math:`T` it writes at: token weights
        :math:`(c(h, w) + \alpha)^{1/T}` (1: faithful sampling; below 1 the likely
        continuations gain, above 1 the rare ones). Metrics of the model itself
        (perplexity, vocabulary …) do not depend on it; the text it writes does.
    """

    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {"unigram": ("token",)}
    #: The results keep every generation's models (``Simulation.fitted``): they are
    #: sparse, so no dense parameter array can hold them, and ``Simulation.text`` needs them.
    keep_fitted: ClassVar[bool] = True

    def _set(self, order, vocabulary, block_size, smoothing, arrays, node_off, entry_off,
             tokens, decode=None, encode=None, temperature=1.0):
        self.order = order
        self.temperature = float(temperature)
        self._wcum = None
        self._keep = None  # truncation stages: kept entries (0/1), None: all
        self._keep_unseen = None  # and per context whether its unseen tokens are kept
        self.vocabulary = vocabulary
        self.block_size = block_size
        self.smoothing = float(smoothing)
        self._arrays = arrays
        self._node_off = node_off
        self._entry_off = entry_off
        self.training_tokens = tokens
        self._decode = decode
        self._encode = encode
        self._unigram = None
        self._memo = None

    # -- shape -----------------------------------------------------------------------------
    @property
    def n_types(self) -> int:
        """Vocabulary size :math:`V` (including ``<unk>``)."""
        return len(self.vocabulary)

    @property
    def batch_size(self) -> int:
        """Number of models in the batch."""
        return self._node_off.shape[0] - 1

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``(block_size,)``: one item is a block of tokens."""
        return (self.block_size,)

    @property
    def dtype(self) -> np.dtype:
        """int32 token ids."""
        return np.dtype(np.int32)

    @property
    def nbytes(self) -> int:
        """Bytes of the sparse tables of the whole batch and of what is cached on them."""
        cached = [a for a in (self._unigram, self._wcum, self._keep, self._keep_unseen,
                              *(getattr(self, "_pairs", None) or (None,))[1:])
                  if a is not None]
        return sum(a.nbytes for a in (*self._arrays.values(), *cached))

    def broadcast(self, chains: int) -> NGramModel:
        """This batch for ``chains`` chains (a batch of one is shared, not copied)."""
        if self.batch_size in (1, chains):
            return self
        raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")

    def member(self, index: int) -> NGramModel:
        """Model ``index`` of the batch as a batch of one (copies its tables)."""
        index = check_int("chain", index, minimum=0, maximum=self.batch_size - 1)
        n0, n1 = self._node_off[index], self._node_off[index + 1]
        e0, e1 = self._entry_off[index], self._entry_off[index + 1]
        c0, c1 = n0 - index, n1 - index - 1
        arrays = {}
        for name in _kn.NODE_ARRAYS:
            arrays[name] = self._arrays[name][n0:n1].copy()
        for name in _kn.ENTRY_ARRAYS:
            arrays[name] = self._arrays[name][e0:e1].copy()
        arrays["child"] = self._arrays["child"][c0:c1].copy()
        out = NGramModel.__new__(NGramModel)
        out._set(self.order, self.vocabulary, self.block_size, self.smoothing, arrays,
                 np.array([0, n1 - n0]), np.array([0, e1 - e0]), self.training_tokens,
                 self._decode, self._encode, self.temperature)
        return out

    # -- the kernels' view ----------------------------------------------------------------------
    def _tables(self, *names):
        return tuple(self._arrays[name] for name in names)

    def _generate(self, streams, k: int, length: int, prompt: np.ndarray) -> np.ndarray:
        out = np.empty((streams.chains, k, length), dtype=np.int32)
        beta = 1.0 / self.temperature
        truncated = self._keep is not None
        if self.temperature == 1.0 and not truncated:
            wcum = np.empty(0)
        else:
            if self._wcum is None:
                keep = self._keep if truncated else np.empty(0, dtype=np.uint8)
                self._wcum = np.empty(self._arrays["etok"].shape[0])
                _kn.powered_cumulative(self._node_off, self._entry_off,
                                       *self._tables("efirst", "enum", "ecum"),
                                       self.smoothing, beta, keep, self._wcum)
            wcum = self._wcum
        if self.order == 2 and self.smoothing == 0.0 and wcum.shape[0] == 0:
            occ_off, noff, occ, start = self._bigram_events(prompt)
            _kn.generate_bigram(streams.states, self._node_off, self._entry_off,
                                *self._tables("count", "efirst", "enum", "ecum"), occ_off,
                                noff, occ, start, out)
            return out
        unseen = self._keep_unseen if truncated else np.empty(0, dtype=np.uint8)
        _kn.generate(streams.states, self._node_off, self._entry_off,
                     *self._tables("count", "parent", "token", "efirst", "enum", "cfirst",
                                   "cnum", "etok", "ecum", "enext", "child"),
                     self.n_types, self.order, self.smoothing, wcum, beta, unseen, prompt,
                     out)
        return out

    def _bigram_events(self, prompt: np.ndarray) -> tuple[np.ndarray, ...]:
        """A maximum-likelihood bigram's training events by context and each member's
        start node for ``prompt``, ``(occ_off, noff, occ, start)``
        (:func:`collapse_sim._kernels.ngram.bigram_events`), in recycled memory.

        Not kept on the model: the results keep every generation's models, and the
        events would double their size. Only the last batch's are remembered, per
        thread, while that batch lives (:data:`_LAST_EVENTS`): the text metrics and the
        next generation draw from the same model in turn, and the second draw reuses
        the first one's events."""
        key = prompt.tobytes()
        last = getattr(_LAST_EVENTS, "value", None)
        if last is not None and last[0]() is self and last[1] == key:
            return last[2]
        events = self._make_bigram_events(prompt)
        _LAST_EVENTS.value = (weakref.ref(self, _forget_events), key, events)
        return events

    def _make_bigram_events(self, prompt: np.ndarray) -> tuple[np.ndarray, ...]:
        """:meth:`_bigram_events`, made afresh."""
        count, enum = self._arrays["count"], self._arrays["enum"]
        roots = self._node_off[:-1]
        # per member: the root's entries, then every other node's events
        events = (np.add.reduceat(count, roots, dtype=np.int64) - count[roots]
                  + enum[roots])
        occ_off = offsets(events)
        noff = BUFFERS.take(self._node_off[-1] + self.batch_size, np.int64)
        occ = BUFFERS.take(occ_off[-1], np.int64)
        start = np.empty(self.batch_size, dtype=np.int64)
        _kn.bigram_events(self._node_off, self._entry_off,
                          *self._tables("count", "token", "efirst", "enum", "cfirst", "cnum",
                                        "etok", "ecum", "enext", "child"),
                          self.n_types, prompt, occ_off, noff, occ, start)
        return occ_off, noff, occ, start

    def _bos(self) -> np.ndarray:
        return np.full(max(self.order - 1, 1), self.n_types, dtype=np.int32)

    # -- protocol ------------------------------------------------------------------------------
    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, block_size)`` int32: ``k`` new sequences per chain, each started
        from the begin-of-sequence context; chain ``c`` from model ``c`` and stream ``c``."""
        if self.batch_size not in (1, streams.chains):
            raise ValueError(f"a batch of {self.batch_size} cannot draw for "
                             f"{streams.chains} streams")
        k = check_int("k", k, minimum=0, maximum=MAX_INT)
        return self._generate(streams, k, self.block_size, self._bos())

    def finite(self) -> np.ndarray:
        """Counts are integers: every member is finite."""
        return np.ones(self.batch_size, dtype=bool)

    def to_dict(self) -> dict:
        """Order, vocabulary size, block size, smoothing (never the tables)."""
        return {"type": type(self).__name__, "order": self.order, "n_types": self.n_types,
                "block_size": self.block_size, "smoothing": self.smoothing}

    def record(self) -> dict[str, np.ndarray]:
        """``unigram`` ``(B, V)``: each model's unigram probabilities."""
        return {"unigram": self.unigram()}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(order={self.order}, n_types={self.n_types}, "
                f"batch_size={self.batch_size})")

    # -- what a model says -------------------------------------------------------------------
    def unigram_counts(self) -> np.ndarray:
        """``(B, V)`` int64: how often each type occurs in each model's training text."""
        if self._unigram is None:
            out = np.zeros((self.batch_size, self.n_types), dtype=np.int64)
            _kn.unigram_counts(self._node_off, self._entry_off,
                               *self._tables("efirst", "enum", "etok", "ecum"), out)
            self._unigram = out
        return self._unigram

    def ngram_counts(self, chain: int = 0) -> dict[tuple[tuple[int, ...], int], int]:
        """Every event of model ``chain`` as ``{(context, token): count}``.

        ``context`` lists token ids oldest first, from length 0 (the unigram events) to
        ``order - 1``; the begin-of-sequence symbol is id ``V`` (:attr:`n_types`). For
        teaching and testing on small models: it builds a Python dict of every entry.
        """
        chain = check_int("chain", chain, minimum=0, maximum=self.batch_size - 1)
        a, e0 = int(self._node_off[chain]), int(self._entry_off[chain])
        nodes = int(self._node_off[chain + 1]) - a
        t = self._arrays
        out = {}
        for h in range(nodes):
            context, g = [], h
            while g > 0:
                context.append(int(t["token"][a + g]))
                g = int(t["parent"][a + g])
            first = int(t["efirst"][a + h])
            below = 0
            for r in range(first, first + int(t["enum"][a + h])):
                cum = int(t["ecum"][e0 + r])
                out[(tuple(context), int(t["etok"][e0 + r]))] = cum - below
                below = cum
        return out

    def unigram(self) -> np.ndarray:
        r"""``(B, V)`` unigram probabilities :math:`(c(w) + \alpha)/(T + \alpha V)`."""
        counts = self.unigram_counts()
        total = counts.sum(axis=1, keepdims=True)
        return (counts + self.smoothing) / (total + self.smoothing * self.n_types)

    def log_likelihood(self, texts: np.ndarray) -> np.ndarray:
        """Mean log-probability per token of ``texts`` under the evaluation smoothing.

        ``texts``: ``(m, L)`` blocks scored by every member, or ``(B, m, L)``, block set
        ``c`` scored by member ``c``. Returns ``(B,)``.
        """
        return self.sequence_log_likelihood(texts).mean(axis=1)

    def sequence_log_likelihood(self, texts: np.ndarray) -> np.ndarray:
        """Like :meth:`log_likelihood`, one value per sequence (block): ``(B, m)``."""
        return self._sequence_log_likelihood(self._checked_texts(texts), texts)

    def _checked_texts(self, texts) -> np.ndarray:
        """``texts`` as a validated C-contiguous int32 ``(T, m, L)`` array."""
        texts = np.asarray(texts)
        if texts.ndim == 2:
            texts = texts[None]
        if texts.ndim != 3 or texts.shape[1] < 1 or texts.shape[2] < 1:
            raise ValueError(f"texts must have shape (m, L) or (B, m, L), got {texts.shape}")
        if texts.shape[0] not in (1, self.batch_size) and self.batch_size != 1:
            raise ValueError(f"texts for {texts.shape[0]} chains cannot be scored by a batch "
                             f"of {self.batch_size}")
        if not np.issubdtype(texts.dtype, np.integer):
            raise TypeError(f"texts must be integer token ids, got dtype {texts.dtype}")
        if texts.size and (texts.min() < 0 or texts.max() >= self.n_types):
            raise ValueError(f"token ids must lie in [0, {self.n_types}), got "
                             f"[{texts.min()}, {texts.max()}]")
        return np.ascontiguousarray(texts, dtype=np.int32)

    def _sequence_log_likelihood(self, texts: np.ndarray, source) -> np.ndarray:
        out = np.empty((max(self.batch_size, texts.shape[0]), texts.shape[1]))
        if self.order == 2 and texts.shape[0] == 1:
            # one text for many models (the held-out text, every generation): by its
            # distinct pairs, the same bits
            pair_h, pair_w, inverse = _text_pairs(source, texts[0], self.n_types)
            _kn.bigram_pair_log_likelihood(
                self._node_off, self._entry_off,
                *self._tables("count", "token", "efirst", "enum", "cfirst", "cnum", "etok",
                              "ecum", "child"),
                self.n_types, self.smoothing, EVAL_WEIGHT, pair_h, pair_w, inverse, out)
            return out
        if self.order == 2 and isinstance(self, NGramTruth):
            # the truth scoring every chain's text (self_perplexity): its dense maps made
            # once and its events' log-probabilities in a table kept with it, the same bits
            keys, values = self._pair_table(self.smoothing, EVAL_WEIGHT)
            _kn.bigram_shared_log_likelihood(
                self._node_off, self._entry_off,
                *self._tables("count", "token", "efirst", "enum", "cfirst", "cnum", "etok",
                              "ecum", "child"),
                self.n_types, self.smoothing, EVAL_WEIGHT, keys, values, texts, out)
            return out
        _kn.log_likelihood(self._node_off, self._entry_off,
                           *self._tables("count", "token", "efirst", "enum", "cfirst", "cnum",
                                         "etok", "ecum", "child"),
                           self.n_types, self.order, self.smoothing, EVAL_WEIGHT, texts, out)
        return out

    def perplexity(self, texts: np.ndarray) -> np.ndarray:
        r""":math:`\exp(-\text{mean log-probability})` of ``texts`` (:meth:`log_likelihood`).

        For maximum-likelihood bigrams scoring one text (the held-out text, every
        generation) the mean is taken over all positions at once, with a logarithm per
        distinct count and per seen pair, in time proportional to the smaller of each
        model's size and the text's number of distinct pairs
        (``collapse_sim._kernels.ngram.bigram_mean_log_likelihood``): it agrees with
        :meth:`log_likelihood` up to rounding (a few units in :math:`10^{-13}`).
        """
        source = texts
        texts = self._checked_texts(texts)
        if self.order == 2 and self.smoothing == 0.0 and texts.shape[0] == 1:
            pair_h, pair_w, _ = _text_pairs(source, texts[0], self.n_types)
            keys, mult, pair_mult, ctx_total, tok_total = _text_totals(source, texts[0],
                                                                       self.n_types)
            out = np.empty(self.batch_size)
            _kn.bigram_mean_log_likelihood(
                self._node_off, self._entry_off,
                *self._tables("count", "token", "efirst", "enum", "cfirst", "cnum", "etok",
                              "ecum", "child"),
                self.n_types, EVAL_WEIGHT, pair_h, pair_w, keys, mult, pair_mult, ctx_total,
                tok_total, out)
            return np.exp(-out)
        return np.exp(-self._sequence_log_likelihood(texts, source).mean(axis=1))

    def text(self, chain: int = 0, prompt: str = "", tokens: int = 60, seed=0) -> str:
        """What model ``chain`` writes after ``prompt``: ``tokens`` new tokens, as text.

        The prompt is tokenised like the corpus; its words must be in the vocabulary
        (an unknown word becomes ``<unk>``; a prompt of unknown words only is refused,
        naming them). The history before the prompt is the begin-of-sequence context,
        as at the start of every sequence the model was trained on.
        """
        chain = check_int("chain", chain, minimum=0, maximum=self.batch_size - 1)
        tokens = check_int("tokens", tokens, minimum=1, maximum=1_000_000)
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        ids = self._encode_prompt(prompt)
        history = np.concatenate([np.full(self.order, self.n_types, dtype=np.int32), ids])
        context = history[::-1][:max(self.order - 1, 1)].astype(np.int32)
        from ..sampling import chain_streams

        streams = chain_streams(seed, 1)
        model = self if self.batch_size == 1 else self.member(chain)
        new = model._generate(streams, 1, tokens, np.ascontiguousarray(context))[0, 0]
        return self._decode(np.concatenate([ids, new]))

    def _encode_prompt(self, prompt: str) -> np.ndarray:
        if self._encode is None:
            raise ValueError("this model has no vocabulary to read a prompt with")
        if not prompt.strip():
            return np.empty(0, dtype=np.int32)
        ids = np.asarray(self._encode(prompt), dtype=np.int32)
        if not prompt.endswith("\n") and ids.size and self.vocabulary[ids[-1]] == "\n":
            ids = ids[:-1]  # the tokeniser ends every line; a prompt goes on where it stops
        if ids.size and np.all(ids == 0):
            raise ValueError(f"prompt {prompt!r} has only words the model's vocabulary does "
                             "not contain; use words of the corpus")
        return ids


class NGramTruth(NGramModel):
    r"""A real corpus as the truth of a language-model simulation.

    The corpus is split into a training part (the real data a chain's generation 1
    is fitted to) and a held-out part (for ``perplexity``): the held-out part is the end
    of each of up to 10 equal segments of the corpus, each at least 4 blocks long (see
    :meth:`collapse_sim.text.Corpus.split`), and both parts are cut into whole blocks
    that never straddle the seam between two segments. As a model, the truth is the order-``order``
    maximum-likelihood n-gram model of the whole training part: row 0 of every metric,
    the reference of ``self_perplexity``. Drawing from the truth draws real blocks.

    Parameters
    ----------
    corpus : collapse_sim.text.Corpus
        The text (``cs.text.shakespeare()``, ``Corpus.from_file(path)`` …).
    order : int
        Order of the reference model, 1 to :data:`MAX_ORDER`.
    level : {"word", "char"} or None
        Must match the corpus's level (``None``: take it).
    heldout : float
        Share of the corpus held out, in [0, 0.9]; 0 disables ``perplexity``.
    block_size : int
        Tokens per data item (sequence), at least :data:`MIN_BLOCK`.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> corpus = cs.text.Corpus.from_string("the cat sat on the mat .\n" * 50)
    >>> truth = cs.NGramTruth(corpus, order=2, heldout=0.1, block_size=8)
    >>> truth.n_types, truth.train_blocks
    (8, 45)
    """

    def __init__(self, corpus, order: int = 2, level: str | None = None, heldout: float = 0.1,
                 block_size: int = 64):
        from .. import text as _text

        if not isinstance(corpus, _text.Corpus):
            raise TypeError(f"corpus must be a collapse_sim.text.Corpus (cs.text.shakespeare(), "
                            f"Corpus.from_file …), got {type(corpus).__name__}")
        order = check_int("order", order, minimum=1, maximum=MAX_ORDER)
        if level is not None and level != corpus.level:
            raise ValueError(f"level={level!r} but the corpus is tokenised at level "
                             f"{corpus.level!r}; build the corpus with level={level!r}")
        heldout = check_real("heldout", heldout, low=0.0, high=0.9)
        block_size = check_int("block_size", block_size, minimum=MIN_BLOCK, maximum=1 << 20)
        if len(corpus) < 2 * block_size:
            raise ValueError(f"the corpus has {len(corpus)} tokens, fewer than 2 blocks of "
                             f"block_size={block_size}: use a larger corpus or a smaller "
                             "block_size")
        # up to 10 held-out stretches across the corpus, each of at least 4 blocks
        segments = max(1, min(10, int(heldout * len(corpus)) // (4 * block_size)))
        split = corpus.split(heldout, segments=segments)
        if len(split.vocabulary) > MAX_VOCABULARY:
            raise ValueError(f"the corpus has {len(split.vocabulary)} types; at most "
                             f"{MAX_VOCABULARY}")
        train = _blocks(split.train, split.train_lengths, block_size)
        blocks = train.shape[0]
        if blocks < 2:
            raise ValueError(f"the corpus's training split has {split.train.shape[0]} tokens, "
                             f"fewer than 2 blocks of block_size={block_size}: use a larger "
                             "corpus or a smaller block_size")
        self.corpus = corpus
        self.heldout_share = heldout
        self.split = split
        self._train = train
        held = _blocks(split.heldout, split.heldout_lengths, block_size)
        self._heldout = held if held.shape[0] else None
        if heldout > 0 and self._heldout is None:
            raise ValueError(f"heldout={heldout} leaves {split.heldout.shape[0]} held-out "
                             f"tokens, less than one block of block_size={block_size}")
        model = build(self._train[None], len(split.vocabulary), order, 0.0)
        self._set(order, tuple(split.vocabulary), block_size, 0.0, model[0], model[1],
                  model[2], self._train.size, split.decode, split.encode)
        self._tail = None
        self._tail_in = None
        self._pairs = None

    @property
    def train_blocks(self) -> int:
        """Number of whole blocks in the training split."""
        return self._train.shape[0]

    def items_for(self, n_samples: int) -> int:
        """Blocks in ``n_samples`` tokens: ``n_samples // block_size`` (at least 1, at most
        the training split's blocks)."""
        blocks = n_samples // self.block_size
        if n_samples < self.order or blocks < 1:
            raise ValueError(f"n_samples={n_samples} tokens is less than one block of "
                             f"block_size={self.block_size} tokens (and the order "
                             f"{self.order}): raise n_samples")
        if blocks > self.train_blocks:
            raise ValueError(f"n_samples={n_samples} tokens asks for {blocks} real blocks; the "
                             f"corpus's training split has {self.train_blocks} blocks of "
                             f"{self.block_size} tokens ({self.train_blocks * self.block_size}"
                             " tokens): lower n_samples")
        return blocks

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, block_size)``: ``k`` distinct real training blocks per chain, in
        random order (a uniformly random ``k``-subset of the blocks for each chain)."""
        k = check_int("k", k, minimum=0, maximum=self.train_blocks)
        index = np.empty((streams.chains, k), dtype=np.int32)
        _kn.draw_blocks(streams.states, self.train_blocks, k, index)
        return self._train[index]

    @property
    def has_heldout(self) -> bool:
        """Whether the corpus split holds out any text."""
        return self._heldout is not None

    def heldout(self, size: int, streams) -> np.ndarray:
        """The held-out split as ``(m, block_size)`` blocks (``size`` is ignored)."""
        if self._heldout is None:
            raise ValueError("this NGramTruth has heldout=0: perplexity needs held-out text")
        return self._heldout

    def to_dict(self) -> dict:
        """The corpus by name, size and hash; order, held-out share, block size."""
        return {"type": "NGramTruth", "corpus": self.corpus.to_dict(), "order": self.order,
                "heldout": self.heldout_share, "block_size": self.block_size}

    def __getstate__(self) -> dict:
        """Pickled without the pair table (16 MiB for Shakespeare; made again on use)."""
        state = self.__dict__.copy()
        state["_pairs"] = None
        return state

    def _pair_table(self, alpha: float, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, values)``: the bigram truth's (context, token) events and their
        log-probabilities under the evaluation smoothing (``alpha``, ``weight``) in a hash
        table (``collapse_sim._kernels.ngram.bigram_logp_table``), made on first use and
        kept: the reference model scores every chain's text in every generation."""
        if getattr(self, "_pairs", None) is None or self._pairs[0] != (alpha, weight):
            events = int(self._arrays["etok"].shape[0])
            keys = np.full(_kn.table_size(events), -1, dtype=np.int64)
            values = np.zeros(keys.shape[0])
            _kn.bigram_logp_table(self._node_off, self._entry_off,
                                  *self._tables("count", "token", "efirst", "enum", "cfirst",
                                                "cnum", "etok", "ecum", "child"),
                                  self.n_types, alpha, weight, keys, values)
            self._pairs = ((alpha, weight), keys, values)
        return self._pairs[1], self._pairs[2]

    def _tail_mask(self) -> np.ndarray:
        """``(V,)`` uint8: 1 for the types of :meth:`tail_set`."""
        if getattr(self, "_tail_in", None) is None:
            mask = np.zeros(self.n_types, dtype=np.uint8)
            mask[self.tail_set()] = 1
            self._tail_in = mask
        return self._tail_in

    def tail_set(self) -> np.ndarray:
        """Ids of the rarest training types holding at most :data:`TAIL_SHARE` of the tokens.

        Types are taken from the rarest up (ties by id) while their cumulative share of
        the training tokens stays at or below 10%; types never seen in training excluded.
        """
        if self._tail is None:
            counts = self.unigram_counts()[0]
            order = np.argsort(counts, kind="stable")
            order = order[counts[order] > 0]
            share = np.cumsum(counts[order]) / counts.sum()
            self._tail = np.sort(order[share <= TAIL_SHARE * (1.0 + 1e-12)])
        return self._tail

    def __repr__(self) -> str:
        return (f"NGramTruth(corpus={self.corpus.name!r}, order={self.order}, "
                f"n_types={self.n_types}, train_tokens={self._train.size}, "
                f"block_size={self.block_size})")


#: The distinct (context, token) pairs of the last texts scored by many bigram models.
_PAIRS: dict[int, tuple] = {}
_PAIRS_KEPT = 4


def _text_pairs(source, text: np.ndarray, v: int):
    """``(pair_h, pair_w, inverse)`` of a text ``(k, L)``: its distinct (previous token,
    token) pairs (``v`` before a block's first token), sorted, and each position's pair.
    Remembered for the last few arrays ``source`` the caller passed (the held-out text of
    a run is scored by every generation's models), and compared in full before reuse."""
    return _text_entry(source, text, v)[3]


def _text_totals(source, text: np.ndarray, v: int):
    """``(keys, mult, pair_mult, ctx_total, tok_total)`` of a text ``(k, L)`` for
    ``collapse_sim._kernels.ngram.bigram_mean_log_likelihood``: its distinct pairs'
    multiplicities in a hash table (key ``h (v + 1) + w``) and in the pairs' order, and its
    positions per context ``(v + 1,)`` and per token ``(v,)``; remembered with
    :func:`_text_pairs`."""
    entry = _text_entry(source, text, v)
    if entry[4] is None:
        pair_h, pair_w, inverse = entry[3]
        mult = np.bincount(inverse.ravel(), minlength=pair_h.shape[0]).astype(np.int64)
        # 32-bit slots where keys and counts fit (any vocabulary below 46,340 types): the
        # table of a held-out text of 48k pairs is then 1 MiB, not 2 (the perplexity of
        # 64 models of 16,384 tokens: 5.4 -> 4.9 ms)
        small = (v + 1) ** 2 < 2**31 and int(mult.sum()) < 2**31
        dtype = np.int32 if small else np.int64
        keys = np.full(_kn.table_size(pair_h.shape[0]), -1, dtype=dtype)
        values = np.zeros(keys.shape[0], dtype=dtype)
        _kn.fill_table(keys, values, pair_h.astype(np.int64) * (v + 1) + pair_w, mult)
        ctx_total = np.zeros(v + 1, dtype=np.int64)
        np.add.at(ctx_total, pair_h, mult)
        tok_total = np.zeros(v, dtype=np.int64)
        np.add.at(tok_total, pair_w, mult)
        entry[4] = (keys, values, mult, ctx_total, tok_total)
    return entry[4]


def _text_entry(source, text: np.ndarray, v: int) -> list:
    """The remembered entry ``[source ref, v, text, pairs, totals]`` of a text (made
    afresh, and remembered if ``source`` is an array, when there is none)."""
    cached = _PAIRS.get(id(source))
    if (cached is not None and cached[0]() is source and cached[1] == v
            and np.array_equal(cached[2], text)):
        return cached
    previous = np.empty(text.shape, dtype=np.int64)
    previous[:, 0] = v
    previous[:, 1:] = text[:, :-1]
    keys = previous * v + text
    unique, inverse = np.unique(keys.ravel(), return_inverse=True)
    pairs = ((unique // v).astype(np.int32), (unique % v).astype(np.int32),
             np.ascontiguousarray(inverse.reshape(text.shape), dtype=np.int32))
    entry = [weakref.ref(source) if isinstance(source, np.ndarray) else None, v,
             text.copy(), pairs, None]
    if isinstance(source, np.ndarray):
        while len(_PAIRS) >= _PAIRS_KEPT:
            _PAIRS.pop(next(iter(_PAIRS)))
        _PAIRS[id(source)] = entry
    return entry


def _blocks(ids: np.ndarray, lengths: tuple[int, ...], size: int) -> np.ndarray:
    """``(m, size)`` whole blocks of every piece of ``ids`` (pieces of ``lengths``): no block
    straddles a seam between pieces that were not adjacent in the corpus."""
    pieces, start = [], 0
    for length in lengths or (ids.shape[0],):
        whole = length // size * size
        pieces.append(ids[start:start + whole])
        start += length
    return np.ascontiguousarray(np.concatenate(pieces).reshape(-1, size))


def build(tokens: np.ndarray, n_types: int, order: int, smoothing: float):
    """Count ``tokens`` ``(B, k, L)`` into a batch of sparse models.

    Returns ``(arrays, node_off, entry_off)`` for :class:`NGramModel`. Chains are counted
    in batches whose counting buffers stay within :data:`FIT_BUFFER_BYTES`.
    """
    chains, k, length = tokens.shape
    # a depth-j context is one of at most (V + 1)^j and occurs at most k (L + 1) times;
    # the root has at most V entries, a deeper level at most one per token
    max_nodes = 1 + sum(min(k * (length + 1), (n_types + 1) ** j) for j in range(1, order))
    max_entries = min(k * length, n_types) + (order - 1) * k * length
    per_chain = 4 * (len(_kn.NODE_ARRAYS) * max_nodes + len(_kn.ENTRY_ARRAYS) * max_entries
                     + max_nodes)
    step = max(1, min(chains, FIT_BUFFER_BYTES // max(per_chain, 1)))
    parts = []
    for first in range(0, chains, step):
        parts.append(_build_batch(tokens[first:first + step], n_types, order, max_nodes,
                                  max_entries))
    node_off = offsets(np.concatenate([p[1] for p in parts]))
    entry_off = offsets(np.concatenate([p[2] for p in parts]))
    if len(parts) == 1:  # the batch's own (recycled) arrays, not a copy
        return parts[0][0], node_off, entry_off
    arrays = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}
    return arrays, node_off, entry_off


def _build_batch(tokens, n_types, order, max_nodes, max_entries):
    b = tokens.shape[0]
    tokens = np.ascontiguousarray(tokens, dtype=np.int32)
    # the bound buffers and the models' arrays are recycled memory (page faults were
    # three quarters of a 64-chain refit): a model someone holds is never written to
    node_buf = [BUFFERS.take((b, max_nodes)) for _ in _kn.NODE_ARRAYS]
    entry_buf = [BUFFERS.take((b, max_entries)) for _ in _kn.ENTRY_ARRAYS]
    child_buf = BUFFERS.take((b, max(max_nodes - 1, 1)))
    sizes = np.zeros((b, 2), dtype=np.int64)
    tasks = min(b, _kn.BUILD_TASKS if order == 2 else max(1, numba.get_num_threads()))
    words32, words64 = _kn.scratch_words(tokens.shape[1], tokens.shape[2], n_types, order,
                                         max_nodes)
    scratch32 = BUFFERS.take((tasks, words32))
    scratch64 = BUFFERS.take((tasks, words64), np.int64)
    _kn.build_models(tokens, n_types, order, *node_buf, *entry_buf, child_buf, sizes,
                     scratch32, scratch64)
    del scratch32, scratch64  # lent again to the next fit
    node_off = offsets(sizes[:, 0])
    entry_off = offsets(sizes[:, 1])
    out_nodes = [BUFFERS.take(node_off[-1]) for _ in _kn.NODE_ARRAYS]
    out_entries = [BUFFERS.take(entry_off[-1]) for _ in _kn.ENTRY_ARRAYS]
    out_child = BUFFERS.take(node_off[-1] - b)
    _kn.compact_models(sizes, node_off, entry_off, *node_buf, *entry_buf, child_buf,
                       *out_nodes, *out_entries, out_child)
    arrays = dict(zip(_kn.NODE_ARRAYS, out_nodes, strict=True))
    arrays.update(zip(_kn.ENTRY_ARRAYS, out_entries, strict=True))
    arrays["child"] = out_child
    return arrays, sizes[:, 0], sizes[:, 1]


@dataclass(frozen=True)
class NGramFit(Fitter):
    r"""Fit an order-:math:`n` n-gram model to every chain's blocks by counting.

    :math:`q(w \mid h) = (c(h, w) + \alpha)/(c(h) + \alpha V)` for every context seen in
    the training blocks, backing off to the longest seen suffix of an unseen context
    (see :mod:`collapse_sim.families.ngram`). ``smoothing=0`` is maximum likelihood:
    what the model has not seen it never writes, so words and turns of phrase die out
    generation after generation. Counting is :math:`O(n)` stable counting-sort passes
    over the tokens, no hash table (a bigram's: two, of its events).

    Parameters
    ----------
    order : int
        :math:`n`, 1 (unigram) to :data:`MAX_ORDER`.
    smoothing : float
        :math:`\alpha \ge 0`.
    temperature : float
        Sampling temperature :math:`T` of the fitted models, in
        [:data:`MIN_TEMPERATURE`, :data:`MAX_TEMPERATURE`]: generation draws :math:`w` with
        weight :math:`(c(h, w) + \alpha)^{1/T}` (Marchi et al. 2024: :math:`T < 1`
        collapses a closed loop to its modes, :math:`T > 1` flattens it). 1 (default) is
        faithful sampling. Generation-time stages (:mod:`collapse_sim.stages`, when they
        land) generalise this.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> corpus = cs.text.Corpus.from_string("a b a b a c .\n" * 40)
    >>> truth = cs.NGramTruth(corpus, order=2, block_size=8)
    >>> sim = cs.simulate(truth, cs.NGramFit(order=2), n_samples=64, generations=3,
    ...                   chains=2, seed=0, metrics=["vocabulary"])
    >>> sim.metrics["vocabulary"].shape
    (4, 2)
    """

    order: int = 2
    smoothing: float = 0.0
    temperature: float = 1.0

    model_type = NGramModel
    truth_types = (NGramTruth,)
    needs = "points"

    def __post_init__(self):
        check_int("order", self.order, minimum=1, maximum=MAX_ORDER)
        check_real("smoothing", self.smoothing, low=0.0, high=1e6)
        check_real("temperature", self.temperature, low=MIN_TEMPERATURE,
                   high=MAX_TEMPERATURE)

    def fit_chains(self, data: np.ndarray, *, streams=None, previous=None,
                   truth=None) -> NGramModel:
        """Count every chain's blocks ``data`` ``(chains, k, block_size)``."""
        return self.fit(data, truth)

    def fit(self, blocks, truth: NGramModel) -> NGramModel:
        """Fit the blocks ``(chains, k, L)`` (or ``(k, L)``) over ``truth``'s vocabulary."""
        if not isinstance(truth, NGramModel):
            raise TypeError(f"truth must be an NGramTruth (for its vocabulary), got "
                            f"{type(truth).__name__}")
        arr = np.asarray(blocks)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"blocks must be integer token ids, got dtype {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1] < 1 or arr.shape[2] < 1:
            raise ValueError(f"blocks must have shape (chains, k, L) with k, L >= 1, got "
                             f"{arr.shape}")
        v = truth.n_types
        if arr.min() < 0 or arr.max() >= v:
            raise ValueError(f"token ids must lie in [0, {v}), got [{arr.min()}, {arr.max()}]")
        if arr.shape[1] * arr.shape[2] * self.order >= MAX_INT:
            raise ValueError(f"{arr.shape[1] * arr.shape[2]} tokens per chain is too many for "
                             f"order {self.order}")
        arrays, node_off, entry_off = build(arr, v, self.order, self.smoothing)
        out = NGramModel.__new__(NGramModel)
        out._set(self.order, truth.vocabulary, arr.shape[2], self.smoothing, arrays, node_off,
                 entry_off, arr.shape[1] * arr.shape[2], truth._decode, truth._encode,
                 self.temperature)
        return out

    def as_model(self, truth) -> NGramModel:
        """Row 0: the truth's reference model."""
        return truth

    def to_dict(self) -> dict:
        """JSON-serialisable description."""
        return {"type": "NGramFit", "order": self.order, "smoothing": self.smoothing,
                "temperature": self.temperature}


# -- metrics ----------------------------------------------------------------------------------

_TEXT_METRICS = ("distinct_2", "distinct_4", "repetition", "self_perplexity")


def _packed(v: int, order: int) -> bool:
    return float(v) ** order < 2.0**62


def _text_measures(truth: NGramTruth, model: NGramModel, ctx) -> np.ndarray:
    """``(4, B)``: distinct-2, distinct-4, repetition, self-perplexity (memoised)."""
    memo = model._memo
    if memo is not None and memo[0] is truth and memo[1] == ctx.generation:
        return memo[2]
    blocks = max(1, METRIC_TEXT_TOKENS // model.block_size)
    streams = ctx.streams(model.batch_size)
    texts = model.draw(blocks, streams)
    out = np.empty((4, model.batch_size))
    stats = np.empty((model.batch_size, 3))
    v = model.n_types
    _kn.text_statistics(texts, v, _packed(v, 2), _packed(v, 4), stats)
    out[:3] = stats.T
    out[3] = np.exp(-truth.log_likelihood(texts))
    model._memo = (truth, ctx.generation, out)
    return out


def _text_metric(name):
    row = _TEXT_METRICS.index(name)
    return lambda truth, model, ctx: _text_measures(truth, model, ctx)[row].copy()


def perplexity(truth, model, ctx) -> np.ndarray:
    """Perplexity of the held-out real text under each model (evaluation smoothing)."""
    return model.perplexity(ctx.heldout)


def vocabulary(truth, model, ctx=None) -> np.ndarray:
    """Number of types with non-zero unigram probability: with smoothing all :math:`V`,
    else the types each model saw (its root's entries)."""
    if model.smoothing > 0:
        return np.full(model.batch_size, float(model.n_types))
    return model._arrays["enum"][model._node_off[:-1]].astype(np.float64)


def tail_mass(truth, model, ctx=None) -> np.ndarray:
    r"""Unigram probability of the truth's rare tail :math:`R`
    (:meth:`NGramTruth.tail_set`): :math:`\big(\sum_{w\in R} c_w + \alpha|R|\big) /
    (T + \alpha V)`, the counts summed exactly as integers, one division per model."""
    tail = truth.tail_set()
    chosen = np.empty(model.batch_size, dtype=np.int64)
    _kn.tail_counts(model._node_off, model._entry_off,
                    *model._tables("efirst", "enum", "etok", "ecum"), truth._tail_mask(),
                    chosen)
    total = model._arrays["count"][model._node_off[:-1]]
    return (chosen + model.smoothing * tail.size) / (total + model.smoothing * model.n_types)


def entropy(truth, model, ctx=None) -> np.ndarray:
    r"""Entropy :math:`-\sum_w q(w)\log q(w)` of the unigram distribution (nats)
    (``collapse_sim._kernels.ngram.unigram_entropy``: a logarithm per distinct count)."""
    out = np.empty(model.batch_size)
    _kn.unigram_entropy(model._node_off, model._entry_off,
                        *model._tables("count", "efirst", "enum", "ecum"), model.n_types,
                        model.smoothing, out)
    return out


_DOCS = {
    "perplexity": "perplexity of held-out real text",
    "vocabulary": "types with non-zero unigram probability",
    "tail_mass": "unigram mass on the real text's rarest 10% of tokens",
    "entropy": "entropy of the unigram distribution (nats)",
    "distinct_2": "distinct 2-grams / 2-grams of generated text",
    "distinct_4": "distinct 4-grams / 4-grams of generated text",
    "repetition": "share of 4-grams repeated within a generated sequence",
    "self_perplexity": "perplexity of generated text under the truth's model",
}

register_metric("perplexity", NGramTruth, NGramModel, perplexity, heldout=True,
                doc=_DOCS["perplexity"])
for _name, _fn in (("vocabulary", vocabulary), ("tail_mass", tail_mass),
                   ("entropy", entropy)):
    register_metric(_name, NGramTruth, NGramModel, _fn, doc=_DOCS[_name])
for _name in _TEXT_METRICS:
    register_metric(_name, NGramTruth, NGramModel, _text_metric(_name), doc=_DOCS[_name])


# -- generation stages ----------------------------------------------------------------------

def _tempered(stage, model: NGramModel) -> NGramModel:
    r"""The same tables written at temperature :math:`T\tau` (weights
    :math:`(c(h, w) + \alpha)^{1/(T\tau)}` per context; see :class:`NGramFit`)."""
    out = NGramModel.__new__(type(model))
    out.__dict__.update(model.__dict__)
    out.temperature = model.temperature * stage.tau
    out._wcum = None
    out._memo = None
    return out


def _truncated(model: NGramModel, top_k: int, top_p: float) -> NGramModel:
    """A copy of ``model`` writing from truncated next-token distributions (the kept set
    is chosen at the model's current temperature and kept when it changes later)."""
    out = NGramModel.__new__(type(model))
    out.__dict__.update(model.__dict__)
    entries, nodes = model._arrays["etok"].shape[0], model._arrays["count"].shape[0]
    out._keep = (np.ones(entries, dtype=np.uint8) if model._keep is None
                 else model._keep.copy())
    out._keep_unseen = (np.ones(nodes, dtype=np.uint8) if model._keep_unseen is None
                        else model._keep_unseen.copy())
    _kn.truncate(model._node_off, model._entry_off,
                 *model._tables("efirst", "enum", "ecum", "etok"), model.smoothing,
                 1.0 / model.temperature, model.n_types, top_k, top_p, out._keep,
                 out._keep_unseen)
    out._wcum = None
    out._memo = None
    return out


def _top_k(stage, model: NGramModel) -> NGramModel:
    r"""Every context keeps its ``k`` likeliest seen tokens (ties by token id); its unseen
    tokens, which share the smallest weight :math:`\alpha^{1/T}`, are kept as a block only
    when it has fewer than ``k`` seen ones."""
    return _truncated(model, stage.k, 0.0)


def _top_p(stage, model: NGramModel) -> NGramModel:
    r"""Every context keeps the shortest prefix of its tokens, ranked by weight
    :math:`(c(h, w) + \alpha)^{1/T}` (ties by token id, the unseen tokens last and as one
    block), whose mass reaches ``p``."""
    return _truncated(model, 0, stage.p)


def _register_stages():
    from ..stages import Temperature, TopK, TopP, register_stage

    register_stage(Temperature, NGramModel, _tempered)
    register_stage(TopK, NGramModel, _top_k)
    register_stage(TopP, NGramModel, _top_p)


_register_stages()
