r"""n-gram language models: one generation (write, then refit) against the loops users write.

Setting: ``cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)``
(26,419 word types, 1.0e6 training tokens) and ``cs.NGramFit(order=2)``: the
maximum-likelihood bigram model, every 64-token block starting from the
begin-of-sequence context. One *generation* takes a fitted model, writes ``k`` blocks
per chain (``model.draw(k, streams)``) and counts them into the next model
(``NGramFit.fit``). Every side starts every round from its model of the same real
blocks (``truth.draw(k, ...)``: ``k`` distinct training blocks per chain), so the
models' sizes do not drift from round to round.

Baselines, 1 chain x 1e6 tokens (15,625 blocks):

* **nltk** — ``nltk.lm.MLE(2)`` fitted as published replication code does
  (``everygrams`` of each block padded with ``<s>``, as ``padded_everygram_pipeline``
  does but on the left only: the library's model has no end symbol, and a ``</s>``
  would send every block's next draw to the unigram model, where ``generate`` scores
  all 26k types — slower still), then ``lm.generate(64, text_seed=["<s>"],
  random_seed=rng)`` per block and a fresh ``MLE(2).fit`` on the text. ``generate``
  scores every continuation of the context at every token, so it is timed on
  :data:`NLTK_BLOCKS` blocks written by the full-size model (refit on them included)
  and scaled linearly to 1e6 tokens. nltk is optional: the rows say "skipped" without it.
* **Counter** — plain Python: ``collections.Counter`` of the (previous, next) word
  pairs, per-context lists of next words and cumulative counts built once per
  generation (``itertools.accumulate``), one ``random.choices(words, cum_weights=...)``
  per token; contexts never seen back off to the unigram lists. Timed at full size.

Baselines vectorised with numpy, at 8 chains x 2048 blocks and 64 chains x 256 blocks
(1,048,576 tokens per generation each; also at 1 chain, without a goal):

* **numpy-chains** — the loop the issue describes: counts by ``np.unique`` of packed
  int64 keys ``(chain, previous, next)``, a CSR of cumulative counts with global
  offsets, and generation one token position at a time for every chain at once
  (``np.searchsorted`` on the global cumulative counts): ``k * 64`` numpy steps.
* **numpy-blocks** — the same model, but a step draws the next token of every block of
  every chain at once (blocks are independent sequences from the begin-of-sequence
  context): 64 numpy steps of ``chains * k`` draws. The strongest form of that loop.
* **numpy-succ** — another model a numpy user may write: the training text argsorted by
  context (each context's list of successors) and a draw is a uniform pick from the
  list (``first[h] + floor(u * count[h])``): maximum-likelihood sampling without any
  search; 64 steps over all blocks of all chains.

Tokens per second of ours alone, ``model.draw`` and ``NGramFit.fit`` timed apart, at
1 chain x 1e6 tokens and 16 chains x 1024 blocks (1,048,576 tokens); and the same for
a word trigram and a character 5-gram of the corpus (:data:`ORDERS`: the general
kernels, which back off and count every depth) at 1 chain x 1e6 and 8 chains x 2048
blocks.

``simulate`` as a user calls it (:func:`measure_simulate`): ``cs.simulate(truth,
NGramFit(2), ...)`` over 5 generations (:data:`SIMULATE`) at 1 chain x 1e6
tokens, 8 chains x 2048 blocks and 64 chains x 256 blocks, with the default metrics
(perplexity of the held-out text, vocabulary, tail mass, entropy, distinct-2/4,
repetition, self-perplexity) against the same call with ``metrics=("vocabulary",)``:
the metric overhead per round (goal at most :data:`GOAL_OVERHEAD`), over at least 9
rounds.

Timing as in ``bench_categorical``: every job runs once per round for at least
:data:`ROUNDS` interleaved rounds, ours next to each baseline and the start of the
sequence rotated from round to round; ``ours_s`` and ``baseline_s`` are medians over
rounds, ``ratio`` the median of the per-round ratios baseline / ours (ours' time in a
round being the mean of its runs in that round), the note gives their min-max.
Compilation is excluded by a first call at every size (its time is reported apart).
Under load (:func:`run_loaded`): the same while one CPU-bound background Python process
runs (``bench_categorical.cpu_load``); skipped in quick mode.

Correctness, checked before timing (``AssertionError`` otherwise), on 2 chains x
:data:`CHECK_SIZES` real blocks: every side's fitted bigram counts equal our model's
``ngram_counts`` exactly; the text every side writes from the fitted models never holds
a bigram the model cannot write, and its bigram counts match the fitted conditionals
(chi-square over every seen context, cells of expected count < 5 pooled per context,
:math:`|X^2 - df| / \sqrt{2 df}` at most :data:`Z_MAX`). After timing, the text every
side wrote in its first timed generation is checked for impossible bigrams too.

Standalone: ``python -m benchmarks.bench_ngram [--quick] [--repeats R]
[--load {off,on,both}]``.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from itertools import accumulate, chain

import numpy as np

import collapse_sim as cs
from collapse_sim.sampling import chain_streams

from ._report import suite_main, under_load
from .bench_categorical import interleaved, per_round, ratio_stats

ORDER, BLOCK = 2, 64
#: Blocks of the 1-chain comparisons (1e6 tokens) and of the nltk timing (scaled up).
ONE_BLOCKS, NLTK_BLOCKS = 15625, 16
#: (chains, blocks per chain) of the numpy comparisons: 1,048,576 tokens each.
MULTI = ((8, 2048), (64, 256))
#: (chains, blocks per chain) of the tokens-per-second rows.
RATES = ((1, 15625), (16, 1024))
#: (chains, real blocks per chain, generated blocks per chain) of the correctness check.
CHECK_SIZES = (2, 200, 400)
#: The ``simulate`` rows (default metrics against ``metrics=("vocabulary",)``): their
#: (chains, blocks per chain), generations and least number of interleaved rounds (their
#: per-round overheads spread widely: more rounds, a steadier median).
SIMULATE = (((1, 15625), (8, 2048), (64, 256)), 5, 9)
QUICK = {"one": 32, "nltk": 2, "multi": ((8, 4), (64, 1)), "rates": ((1, 32), (16, 2)),
         "check": (2, 50, 100), "orders": ((1, 32), (8, 4)),
         "simulate": (((1, 32), (8, 4)), 2, 1)}
#: Minimum number of interleaved rounds in full mode.
ROUNDS = 5
#: Largest accepted chi-square z score in the correctness check.
Z_MAX = 5.0
GOAL_PYTHON, GOAL_NUMPY = 200.0, 10.0
#: Largest cost of the default metrics on top of the run without them (issue 17).
GOAL_OVERHEAD = 0.5
BOS = "<s>"
SEED = 0

# ---------------------------------------------------------------------------------------------
# ours


def ours_generation(model, fit, truth, k: int, streams):
    """Write ``k`` blocks per chain and refit: ``(blocks, new model)``."""
    blocks = model.draw(k, streams)
    return blocks, fit.fit(blocks, truth)


# ---------------------------------------------------------------------------------------------
# nltk (imported lazily: not a dependency)


def have_nltk() -> bool:
    try:
        import nltk.lm  # noqa: F401
    except ImportError:
        return False
    return True


def _nltk_version() -> str:
    import nltk

    return nltk.__version__


def nltk_fit(blocks: list[list[str]]):
    """``nltk.lm.MLE(2)`` on the blocks, each padded on the left with ``<s>``."""
    from nltk.lm import MLE
    from nltk.util import everygrams

    lm = MLE(ORDER)
    lm.fit((everygrams([BOS, *b], max_len=ORDER) for b in blocks),
           vocabulary_text=chain([BOS], chain.from_iterable(blocks)))
    return lm


def nltk_generation(lm, k: int, rng: random.Random):
    blocks = [lm.generate(BLOCK, text_seed=[BOS], random_seed=rng) for _ in range(k)]
    return blocks, nltk_fit(blocks)


def nltk_bigrams(lm) -> dict[tuple[str, str], int]:
    return {(ctx[0], w): c for ctx in lm.counts[2] for w, c in lm.counts[2][ctx].items()}


# ---------------------------------------------------------------------------------------------
# plain Python: Counter + random.choices


def counter_fit(blocks: list[list[str]]):
    """``({context: (next words, cumulative counts)}, unigram (words, cumulative counts))``."""
    pairs = Counter(zip(chain.from_iterable([BOS, *b[:-1]] for b in blocks),
                        chain.from_iterable(blocks), strict=True))
    nexts, weights = defaultdict(list), defaultdict(list)
    for (h, w), c in pairs.items():
        nexts[h].append(w)
        weights[h].append(c)
    table = {h: (nexts[h], list(accumulate(weights[h]))) for h in nexts}
    unigram = Counter(chain.from_iterable(blocks))
    return table, (list(unigram), list(accumulate(unigram.values())))


def counter_generation(model, k: int, rng: random.Random):
    table, unigram = model
    choices, get = rng.choices, table.get
    blocks = []
    for _ in range(k):
        h, block = BOS, []
        for _ in range(BLOCK):
            words, cum = get(h, unigram)
            h = choices(words, cum_weights=cum)[0]
            block.append(h)
        blocks.append(block)
    return blocks, counter_fit(blocks)


def counter_bigrams(model) -> dict[tuple[str, str], int]:
    out = {}
    for h, (words, cum) in model[0].items():
        for w, c in zip(words, np.diff(cum, prepend=0).tolist(), strict=True):
            out[(h, w)] = c
    return out


# ---------------------------------------------------------------------------------------------
# numpy, vectorised over chains


def _contexts(blocks: np.ndarray, v: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``(tokens, rows)``: every token and its context row ``chain * (V+1) + previous``
    (previous = ``V``, the begin-of-sequence symbol, at a block's start)."""
    chains = blocks.shape[0]
    b = blocks.astype(np.int64)
    rows = np.empty_like(b)
    rows[:, :, 0] = v
    rows[:, :, 1:] = b[:, :, :-1]
    rows += (np.arange(chains, dtype=np.int64) * (v + 1))[:, None, None]
    return b, rows


def bigram_counts(blocks: np.ndarray, v: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted packed keys ``row * (V+1) + next`` of every bigram of ``blocks`` and counts."""
    b, rows = _contexts(blocks, v)
    return np.unique((rows * (v + 1) + b).ravel(), return_counts=True)


def numpy_fit(blocks: np.ndarray, v: int) -> dict:
    """CSR model of every chain: global cumulative counts ``cum`` of the sorted bigrams,
    each row's offset ``before`` and ``total`` (dense over ``chains * (V+1)`` rows), and
    global cumulative unigram counts for contexts never seen."""
    chains, k, length = blocks.shape
    w = v + 1
    keys, counts = bigram_counts(blocks, v)
    row = keys // w
    cum = np.cumsum(counts)
    start = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    stop = np.r_[start[1:], keys.size] - 1
    before = np.zeros(chains * w, dtype=np.int64)
    total = np.zeros(chains * w, dtype=np.int64)
    before[row[start]] = cum[start] - counts[start]
    total[row[start]] = cum[stop] - before[row[start]]
    chain_of = np.arange(chains, dtype=np.int64)[:, None]
    ucum = np.cumsum(np.bincount((chain_of * v + blocks.reshape(chains, -1)).ravel(),
                                 minlength=chains * v))
    return {"v": v, "chains": chains, "keys": keys, "counts": counts, "cum": cum,
            "next": keys - row * w, "before": before, "total": total, "ucum": ucum,
            "ubefore": np.r_[0, ucum[v - 1::v][:-1]], "utotal": k * length}


def _numpy_step(m: dict, row: np.ndarray, u: np.ndarray, chain_of: np.ndarray) -> np.ndarray:
    """One token for every context ``row`` with uniforms ``u``."""
    tot = m["total"][row]
    e = np.searchsorted(m["cum"], m["before"][row] + (u * tot).astype(np.int64), side="right")
    h = m["next"][e]
    if not tot.all():  # contexts never seen: the unigram model (u is unused there)
        unseen = tot == 0
        c = chain_of[unseen]
        t = m["ubefore"][c] + (u[unseen] * m["utotal"]).astype(np.int64)
        h[unseen] = np.searchsorted(m["ucum"], t, side="right") - c * m["v"]
    return h


def numpy_generate_chains(m: dict, k: int, rng: np.random.Generator) -> np.ndarray:
    """Token position by position along every chain's text, all chains at once."""
    chains, w = m["chains"], m["v"] + 1
    steps = k * BLOCK
    u = rng.random((steps, chains))
    out = np.empty((steps, chains), dtype=np.int64)
    chain_of = np.arange(chains, dtype=np.int64)
    base = chain_of * w
    start = base + m["v"]
    row = start
    for p in range(steps):
        if p % BLOCK == 0:
            row = start
        h = _numpy_step(m, row, u[p], chain_of)
        out[p] = h
        row = base + h
    return out.T.reshape(chains, k, BLOCK)


def numpy_generate_blocks(m: dict, k: int, rng: np.random.Generator) -> np.ndarray:
    """Position by position within the blocks, every block of every chain at once."""
    chains, w = m["chains"], m["v"] + 1
    u = rng.random((BLOCK, chains * k))
    out = np.empty((BLOCK, chains * k), dtype=np.int64)
    chain_of = np.repeat(np.arange(chains, dtype=np.int64), k)
    base = chain_of * w
    row = base + m["v"]
    for p in range(BLOCK):
        h = _numpy_step(m, row, u[p], chain_of)
        out[p] = h
        row = base + h
    return out.T.reshape(chains, k, BLOCK)


def numpy_generation(m: dict, k: int, rng: np.random.Generator, by_blocks: bool):
    gen = numpy_generate_blocks if by_blocks else numpy_generate_chains
    blocks = gen(m, k, rng)
    return blocks, numpy_fit(blocks, m["v"])


def succ_fit(blocks: np.ndarray, v: int) -> dict:
    """Each context's list of successors: the text argsorted by context row."""
    chains = blocks.shape[0]
    b, rows = _contexts(blocks, v)
    rows = rows.ravel()
    count = np.bincount(rows, minlength=chains * (v + 1))
    return {"v": v, "chains": chains, "succ": b.ravel()[np.argsort(rows)], "count": count,
            "first": np.cumsum(count) - count, "text": b.reshape(chains, -1)}


def succ_generation(m: dict, k: int, rng: np.random.Generator):
    chains, w = m["chains"], m["v"] + 1
    text = m["text"]
    u = rng.random((BLOCK, chains * k))
    out = np.empty((BLOCK, chains * k), dtype=np.int64)
    chain_of = np.repeat(np.arange(chains, dtype=np.int64), k)
    base = chain_of * w
    row = base + m["v"]
    for p in range(BLOCK):
        cnt = m["count"][row]
        idx = m["first"][row] + (u[p] * cnt).astype(np.int64)
        if cnt.all():
            h = m["succ"][idx]
        else:  # contexts never seen: a uniform token of the chain's text (the unigram model)
            unseen = cnt == 0
            idx[unseen] = 0
            h = m["succ"][idx]
            h[unseen] = text[chain_of[unseen],
                             (u[p][unseen] * text.shape[1]).astype(np.int64)]
        out[p] = h
        row = base + h
    blocks = out.T.reshape(chains, k, BLOCK)
    return blocks, succ_fit(blocks, m["v"])


# ---------------------------------------------------------------------------------------------
# correctness


def ours_bigrams(model, v: int) -> tuple[np.ndarray, np.ndarray]:
    """Our fitted bigram counts as sorted packed keys (as :func:`bigram_counts`) and counts."""
    keys, counts = [], []
    for c in range(model.batch_size):
        for (ctx, w), n in model.ngram_counts(c).items():
            if len(ctx) == 1:
                keys.append((c * (v + 1) + ctx[0]) * (v + 1) + w)
                counts.append(n)
    keys, counts = np.array(keys, dtype=np.int64), np.array(counts, dtype=np.int64)
    order = np.argsort(keys)
    return keys[order], counts[order]


def to_ids(blocks: list[list[str]], index: dict[str, int]) -> np.ndarray:
    """``(1, k, L)`` ids of word blocks (``<s>`` -> V: never a valid next token)."""
    return np.array([[index[w] for w in b] for b in blocks], dtype=np.int64)[None]


def impossible(ref_keys: np.ndarray, gen: np.ndarray, v: int) -> int:
    """Bigrams of ``gen`` the model of ``ref_keys`` cannot write (seen context, unseen next)."""
    keys, _ = bigram_counts(gen, v)
    seen = np.isin(keys // (v + 1), np.unique(ref_keys // (v + 1)))
    return int((seen & ~np.isin(keys, ref_keys)).sum())


def chi_square_z(ref_keys: np.ndarray, ref_counts: np.ndarray, gen: np.ndarray,
                 v: int) -> float:
    """z score of the bigram counts of ``gen`` against the conditionals of the fitted counts
    (every context the model has seen; expected < 5 pooled per context)."""
    w = v + 1
    keys, counts = bigram_counts(gen, v)
    rows, row_index = np.unique(ref_keys // w, return_inverse=True)
    row_total = np.bincount(row_index, weights=ref_counts)
    seen = np.isin(keys // w, rows)
    visits = np.bincount(np.searchsorted(rows, keys[seen] // w), weights=counts[seen],
                         minlength=rows.size)
    expected = visits[row_index] * ref_counts / row_total[row_index]
    observed = np.zeros(ref_keys.size)
    observed[np.searchsorted(ref_keys, keys[seen])] = counts[seen]
    big = expected >= 5
    x2 = float(np.sum((observed[big] - expected[big]) ** 2 / expected[big]))
    pe = np.bincount(row_index[~big], weights=expected[~big], minlength=rows.size)
    po = np.bincount(row_index[~big], weights=observed[~big], minlength=rows.size)
    pooled = pe > 0
    x2 += float(np.sum((po[pooled] - pe[pooled]) ** 2 / pe[pooled]))
    df = int(big.sum() + pooled.sum() - (visits > 0).sum())
    return (x2 - df) / np.sqrt(2 * df)


def self_check(truth, sizes) -> str:
    """Counts equal ours exactly; generated text possible and chi-square-consistent."""
    chains, k, k_gen = sizes
    v, vocab = truth.n_types, truth.vocabulary
    index = {w: i for i, w in enumerate(vocab)} | {BOS: v}
    real = truth.draw(k, chain_streams(SEED + 7, chains))
    fit = cs.NGramFit(order=ORDER)
    model = fit.fit(real, truth)
    ref_keys, ref_counts = ours_bigrams(model, v)
    nm, sm = numpy_fit(real, v), succ_fit(real, v)
    assert np.array_equal(nm["keys"], ref_keys) and np.array_equal(nm["counts"], ref_counts), (
        "ngram: numpy CSR counts differ from ours")
    succ_keys = np.unique(np.repeat(np.arange(sm["count"].size), sm["count"]) * (v + 1)
                          + sm["succ"], return_counts=True)
    assert np.array_equal(succ_keys[0], ref_keys) and np.array_equal(succ_keys[1], ref_counts), (
        "ngram: numpy successor lists differ from ours")
    words = [[vocab[i] for i in b] for b in real[0].tolist()]
    chain0 = ref_keys < (v + 1) ** 2  # keys of chain 0
    ref0 = dict(zip(ref_keys[chain0].tolist(), ref_counts[chain0].tolist(), strict=True))

    def packed(bigrams):
        return {index[h] * (v + 1) + index[w]: c for (h, w), c in bigrams.items()}

    cm = counter_fit(words)
    assert packed(counter_bigrams(cm)) == ref0, "ngram: Counter counts differ from ours"
    rng = np.random.default_rng(SEED + 8)
    texts = {
        "ours": model.draw(k_gen, chain_streams(SEED + 9, chains)),
        "numpy-chains": numpy_generate_chains(nm, k_gen, rng),
        "numpy-blocks": numpy_generate_blocks(nm, k_gen, rng),
        "numpy-succ": succ_generation(sm, k_gen, rng)[0],
        "Counter": to_ids(counter_generation(cm, k_gen, random.Random(SEED + 10))[0], index),
    }
    nltk_note = "nltk not installed: not checked"
    if have_nltk():
        lm = nltk_fit(words)
        assert packed(nltk_bigrams(lm)) == ref0, "ngram: nltk counts differ from ours"
        texts["nltk"] = to_ids(nltk_generation(lm, NLTK_BLOCKS, random.Random(SEED + 11))[0],
                               index)
        nltk_note = f"nltk on {NLTK_BLOCKS} blocks"
    zs = {}
    for name, text in texts.items():
        rk, rc = (ref_keys, ref_counts) if text.shape[0] == chains else (
            ref_keys[chain0], ref_counts[chain0])
        bad = impossible(rk, text, v)
        assert bad == 0, f"ngram: {name} wrote {bad} bigrams its model cannot write"
        zs[name] = chi_square_z(rk, rc, text, v)
        assert abs(zs[name]) <= Z_MAX, (
            f"ngram: {name}'s bigram counts disagree with the fitted conditionals "
            f"(chi-square z {zs[name]:.1f} > {Z_MAX:g})")
    worst = max(zs, key=lambda n: abs(zs[n]))
    return (f"check on {chains} chains x {k} real blocks: fitted counts of every side equal "
            f"ours; {k_gen} blocks/chain written by each side ({nltk_note}) hold no "
            f"impossible bigram, chi-square vs the fitted conditionals max |z| "
            f"{abs(zs[worst]):.1f} ({worst}) <= {Z_MAX:g}")


# ---------------------------------------------------------------------------------------------
# measurements


def prepare(truth, sizes: dict) -> dict:
    """Every side's starting model of the same real blocks, per configuration."""
    v = truth.n_types
    fit = cs.NGramFit(order=ORDER)
    vocab = np.array(truth.vocabulary, dtype=object)
    setup: dict = {"truth": truth, "fit": fit, "v": v, "sizes": sizes,
                   "index": {w: i for i, w in enumerate(truth.vocabulary)} | {BOS: v}}
    k = sizes["one"]
    real = truth.draw(k, chain_streams(SEED, 1))
    words = vocab[real[0]].tolist()
    setup["one"] = {"real": real, "ours": fit.fit(real, truth), "counter": counter_fit(words),
                    "numpy": numpy_fit(real, v), "succ": succ_fit(real, v),
                    "nltk": nltk_fit(words) if have_nltk() else None}
    for chains, kc in (*sizes["multi"], *sizes["rates"]):
        if (chains, kc) not in setup:
            real = truth.draw(kc, chain_streams(SEED, chains))
            setup[chains, kc] = {"real": real, "ours": fit.fit(real, truth),
                                 "numpy": numpy_fit(real, v), "succ": succ_fit(real, v)}
    return setup


def warm_up(setup: dict) -> tuple[float, float]:
    """First draw + fit at every size (compile or cache load), and the same again."""
    def calls():
        start = time.perf_counter()
        for key in ("one", *setup["sizes"]["multi"], *setup["sizes"]["rates"]):
            s = setup[key]
            k = s["real"].shape[1]
            ours_generation(s["ours"], setup["fit"], setup["truth"], k,
                            chain_streams(SEED + 1, s["real"].shape[0]))
        return time.perf_counter() - start
    return calls(), calls()


def _row(case, t_ours, t_base, baseline, goal, note, rounds):
    med, lo, hi = ratio_stats(t_base, t_ours)
    return {"case": case, "ours_s": float(np.median(t_ours)), "baseline": baseline,
            "baseline_s": float(np.median(t_base)), "ratio": med, "goal": goal,
            "ratio_min": lo, "ratio_max": hi, "rounds": rounds,
            "note": f"per-round ratio {lo:.3g}-{hi:.3g}x (median of rounds); {note}"}


def _check_outputs(setup: dict, key, outputs: dict, names: dict) -> str:
    """No side wrote an impossible bigram in its first timed generation."""
    v = setup["v"]
    ref_keys, _ = bigram_counts(setup[key]["real"], v)
    for name, to_array in names.items():
        if name in outputs:
            bad = impossible(ref_keys, to_array(outputs[name][0]), v)
            assert bad == 0, f"ngram: {name} wrote {bad} bigrams its model cannot write"
    return "timed outputs: no impossible bigram"


def measure_one(setup: dict, rounds: int, tag: str = "") -> list[dict]:
    """1 chain x ONE_BLOCKS blocks: ours vs nltk, Counter, numpy-blocks, numpy-succ."""
    truth, fit, v = setup["truth"], setup["fit"], setup["v"]
    s, k, k_nltk = setup["one"], setup["sizes"]["one"], setup["sizes"]["nltk"]
    tokens = k * BLOCK
    streams = chain_streams(SEED + 2, 1)
    py_rng, np_rng = random.Random(SEED + 3), np.random.default_rng(SEED + 4)
    ours = ("ours", lambda: ours_generation(s["ours"], fit, truth, k, streams))
    jobs = [ours, ("Counter", lambda: counter_generation(s["counter"], k, py_rng)),
            ours, ("numpy-blocks", lambda: numpy_generation(s["numpy"], k, np_rng, True)),
            ours, ("numpy-succ", lambda: succ_generation(s["succ"], k, np_rng))]
    if s["nltk"] is not None:
        jobs += [ours, ("nltk", lambda: nltk_generation(s["nltk"], k_nltk, py_rng))]
    load = os.getloadavg()[0]
    times, outputs = interleaved(jobs, rounds, shift=2)
    load = f"load avg {load:.1f}->{os.getloadavg()[0]:.1f}"
    index = setup["index"]
    check = _check_outputs(setup, "one", outputs, {
        "ours": np.asarray, "numpy-blocks": np.asarray, "numpy-succ": np.asarray,
        "Counter": lambda b: to_ids(b, index), "nltk": lambda b: to_ids(b, index)})
    t_ours = per_round(times["ours"])
    size = (f"1 chain x {tokens} tokens ({k} blocks of {BLOCK}), bigram, "
            f"{truth.corpus.name} V={v}; {rounds} interleaved rounds; {load}")
    rows = []
    if s["nltk"] is not None:
        scale = k / k_nltk
        rows.append(_row(f"{tag}ngram gen+refit 1ch x {tokens} tok vs nltk.lm.MLE",
                         t_ours, per_round(times["nltk"]) * scale,
                         f"nltk {_nltk_version()} lm.MLE(2).generate per 64-token block + "
                         f"MLE(2).fit (timed on {k_nltk * BLOCK} tokens, x{scale:g} to {tokens})",
                         GOAL_PYTHON, size, rounds))
    else:
        rows.append({"case": f"{tag}ngram gen+refit 1ch x {tokens} tok vs nltk.lm.MLE",
                     "ours_s": float(np.median(t_ours)), "baseline": None,
                     "baseline_s": None, "ratio": None, "goal": GOAL_PYTHON,
                     "note": "skipped: nltk is not installed (pip install nltk)"})
    rows.append(_row(f"{tag}ngram gen+refit 1ch x {tokens} tok vs Counter+choices", t_ours,
                     per_round(times["Counter"]),
                     "Python Counter of pairs + per-context cum_weights lists, "
                     "random.choices per token", GOAL_PYTHON, size, rounds))
    for name, desc in (("numpy-blocks", "numpy np.unique CSR + searchsorted, 64 steps over "
                        "all blocks"),
                       ("numpy-succ", "numpy successor lists (argsort by context), uniform "
                        "pick, 64 steps over all blocks")):
        rows.append(_row(f"{tag}ngram gen+refit 1ch x {tokens} tok vs {name}", t_ours,
                         per_round(times[name]), desc, None,
                         "no goal at 1 chain; " + size, rounds))
    rows[0]["note"] += "; " + check
    return rows


def measure_multi(setup: dict, chains: int, k: int, rounds: int, tag: str = "") -> list[dict]:
    """``chains`` x ``k`` blocks: ours vs the three numpy loops."""
    truth, fit, v = setup["truth"], setup["fit"], setup["v"]
    s = setup[chains, k]
    streams = chain_streams(SEED + 2, chains)
    rng = np.random.default_rng(SEED + 5)
    ours = ("ours", lambda: ours_generation(s["ours"], fit, truth, k, streams))
    jobs = [ours, ("numpy-chains", lambda: numpy_generation(s["numpy"], k, rng, False)),
            ours, ("numpy-blocks", lambda: numpy_generation(s["numpy"], k, rng, True)),
            ours, ("numpy-succ", lambda: succ_generation(s["succ"], k, rng))]
    load = os.getloadavg()[0]
    times, outputs = interleaved(jobs, rounds, shift=2)
    load = f"load avg {load:.1f}->{os.getloadavg()[0]:.1f}"
    check = _check_outputs(setup, (chains, k), outputs, dict.fromkeys(
        ("ours", "numpy-chains", "numpy-blocks", "numpy-succ"), np.asarray))
    t_ours = per_round(times["ours"])
    tokens = chains * k * BLOCK
    size = (f"{chains} chains x {k} blocks of {BLOCK} ({tokens} tokens), bigram, "
            f"{truth.corpus.name} V={v}; {rounds} interleaved rounds; {load}")
    desc = {"numpy-chains": f"numpy np.unique CSR + searchsorted, {k * BLOCK} steps over "
                            "chains (one token per chain per step)",
            "numpy-blocks": f"numpy np.unique CSR + searchsorted, {BLOCK} steps over all "
                            "blocks of all chains",
            "numpy-succ": f"numpy successor lists (argsort by context), uniform pick, "
                          f"{BLOCK} steps over all blocks"}
    rows = [_row(f"{tag}ngram gen+refit {chains}ch x {k * BLOCK} tok vs {name}", t_ours,
                 per_round(times[name]), desc[name], GOAL_NUMPY, size, rounds)
            for name in desc]
    rows[0]["note"] += "; " + check
    return rows


def measure_rates(setup: dict, rounds: int, tag: str = "") -> list[dict]:
    """Tokens per second of ``model.draw`` and of ``NGramFit.fit`` alone."""
    truth, fit = setup["truth"], setup["fit"]
    jobs = []
    for chains, k in setup["sizes"]["rates"]:
        s = setup[chains, k]
        streams = chain_streams(SEED + 6, chains)
        blocks = s["ours"].draw(k, streams)
        jobs += [(f"draw {chains}", lambda s=s, k=k, st=streams: s["ours"].draw(k, st)),
                 (f"fit {chains}", lambda b=blocks: fit.fit(b, truth))]
    times, _ = interleaved(jobs, rounds)
    return _rate_rows(times, setup["sizes"]["rates"], rounds, f"{tag}ngram ",
                      f", bigram; {os.cpu_count()} CPUs")


def _rate_rows(times: dict, sizes: tuple, rounds: int, case: str, detail: str) -> list[dict]:
    """Rows of tokens per second of the ``"draw {chains}"`` and ``"fit {chains}"`` jobs
    at every ``(chains, blocks per chain)`` of ``sizes``; ``case`` starts each row's name,
    ``detail`` follows the size in its note."""
    rows = []
    for chains, k in sizes:
        tokens = chains * k * BLOCK
        for what, call in (("draw", "model.draw"), ("fit", "NGramFit.fit")):
            t = per_round(times[f"{what} {chains}"])
            rate = tokens / t
            rows.append({
                "case": f"{case}{call} {chains} chain{'s' * (chains > 1)} x "
                        f"{tokens // chains} tok",
                "ours_s": float(np.median(t)), "baseline": None, "baseline_s": None,
                "ratio": None, "goal": None, "rounds": rounds,
                "tokens_per_s": float(np.median(rate)),
                "note": f"{np.median(rate):.3g} tokens/s (rounds {rate.min():.3g}-"
                        f"{rate.max():.3g}); {chains} x {k} blocks of {BLOCK}{detail}; "
                        f"{rounds} interleaved rounds"})
    return rows


#: (level, order) of the longer models' rows, and their (chains, blocks per chain).
ORDERS = (("word", 3), ("char", 5))
ORDER_SIZES = ((1, 15625), (8, 2048))


def measure_orders(sizes: tuple, rounds: int, tag: str = "") -> list[dict]:
    """Tokens per second of ``model.draw`` and ``NGramFit.fit`` for a word trigram and a
    character 5-gram of the same corpus (the general kernels: no goal, rates only)."""
    rows = []
    for level, order in ORDERS:
        truth = cs.NGramTruth(cs.text.shakespeare(level=level), order=order, heldout=0.1,
                              block_size=BLOCK)
        fit = cs.NGramFit(order=order)
        jobs = []
        for chains, k in sizes:
            blocks = truth.draw(k, chain_streams(SEED + 7, chains))
            model = fit.fit(blocks, truth)
            streams = chain_streams(SEED + 8, chains)
            model.draw(k, streams)  # compile outside the rounds
            jobs += [(f"draw {chains}", lambda m=model, k=k, st=streams: m.draw(k, st)),
                     (f"fit {chains}", lambda b=blocks, f=fit, t=truth: f.fit(b, t))]
        times, _ = interleaved(jobs, rounds)
        rows += _rate_rows(times, sizes, rounds, f"{tag}ngram {level} order {order} ",
                           f"; V = {truth.n_types}")
    return rows


def measure_simulate(setup: dict, rounds: int, tag: str = "") -> list[dict]:
    """``simulate`` as a user calls it, default metrics, against the same call with
    ``metrics=("vocabulary",)`` (each model's number of seen types): the metric overhead
    ``time(default) / time(vocabulary) - 1`` per round, at the sizes, generations and
    least rounds of ``setup["sizes"]["simulate"]`` (:data:`SIMULATE`). Both calls evaluate
    the metrics of the ``generations + 1`` rows (row 0: the truth's)."""
    truth, fit = setup["truth"], setup["fit"]
    sizes, generations, least = setup["sizes"]["simulate"]
    rounds = max(rounds, least)
    rows = []
    for chains, k in sizes:
        n = k * BLOCK

        def call(metrics, chains=chains, n=n):
            return cs.simulate(truth, fit, n_samples=n, generations=generations,
                               chains=chains, seed=SEED, metrics=metrics)

        default, kernel = call(None), call(("vocabulary",))  # compile outside the rounds
        assert np.array_equal(default.metrics["vocabulary"], kernel.metrics["vocabulary"])
        names = ", ".join(default.metrics)
        load = os.getloadavg()[0]
        times, _ = interleaved([("default", lambda: call(None)),
                                ("vocabulary", lambda: call(("vocabulary",)))], rounds)
        load = f"load avg {load:.1f}->{os.getloadavg()[0]:.1f}"
        t_default, t_kernel = per_round(times["default"]), per_round(times["vocabulary"])
        over = t_default / t_kernel - 1.0
        size = (f"{chains} chain{'s' * (chains > 1)} x {n} tokens x {generations} "
                f"generations")
        rows.append({
            "case": f"{tag}ngram simulate {size}, default metrics",
            "ours_s": float(np.median(t_default)), "baseline": "metrics=('vocabulary',)",
            "baseline_s": float(np.median(t_kernel)), "ratio": None, "goal": None,
            "rounds": rounds, "overhead": float(np.median(over)),
            "note": f"metric overhead {np.median(over):.0%} (rounds {over.min():.0%}-"
                    f"{over.max():.0%}; goal <= {GOAL_OVERHEAD:.0%}); "
                    f"{np.median(t_default) / generations * 1e3:.1f} ms a generation with "
                    f"the default metrics ({names}), "
                    f"{np.median(t_kernel) / generations * 1e3:.1f} ms without; bigram, "
                    f"{rounds} interleaved rounds; {load}"})
    return rows


def measure_all(setup: dict, rounds: int, tag: str = "") -> list[dict]:
    rows = measure_one(setup, rounds, tag)
    for chains, k in setup["sizes"]["multi"]:
        rows += measure_multi(setup, chains, k, rounds, tag)
    return (rows + measure_rates(setup, rounds, tag)
            + measure_orders(setup["sizes"]["orders"], rounds, tag)
            + measure_simulate(setup, rounds, tag))


def _truth():
    return cs.NGramTruth(cs.text.shakespeare(), order=ORDER, heldout=0.1, block_size=BLOCK)


def _sizes(quick: bool) -> dict:
    if quick:
        return QUICK
    return {"one": ONE_BLOCKS, "nltk": NLTK_BLOCKS, "multi": MULTI, "rates": RATES,
            "check": CHECK_SIZES, "orders": ORDER_SIZES, "simulate": SIMULATE}


def run_loaded(repeats: int = 3, quick: bool = False, setup: dict | None = None) -> list[dict]:
    """The same comparisons while one CPU-bound background process runs (skipped if quick)."""
    if quick:
        return []
    if setup is None:
        setup = prepare(_truth(), _sizes(quick))
    warm_up(setup)  # never compile under load
    return under_load(lambda: measure_all(setup, max(ROUNDS, repeats), tag="[loaded] "))


def run(repeats: int = 3, quick: bool = False, load: bool | None = None) -> list[dict]:
    """Idle measurements; then (``load``, default: full mode) the same under CPU load."""
    sizes = _sizes(quick)
    rounds = max(1, repeats) if quick else max(ROUNDS, repeats)
    truth = _truth()
    check = self_check(truth, sizes["check"])
    setup = prepare(truth, sizes)
    first, again = warm_up(setup)
    rows = measure_all(setup, rounds)
    rows[0]["note"] += "; " + check
    rows.append({"case": "numba compile / cache load (ngram, first calls)", "ours_s": first,
                 "baseline": None, "baseline_s": None, "ratio": None, "goal": None,
                 "note": f"draw + fit at every benchmark size; the same calls warm take "
                         f"{again:.2f} s"})
    if (not quick) if load is None else load:
        rows += run_loaded(repeats, quick, setup)
    return rows


def main() -> None:
    suite_main("python -m benchmarks.bench_ngram", run, run_loaded)


if __name__ == "__main__":
    main()
