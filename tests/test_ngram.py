"""n-gram language models: counting, sampling, scoring and the text metrics against plain
Python references, the Wright–Fisher theory of their refits, and the engine around them."""

from collections import Counter
from itertools import pairwise

import _ngram_hashed as _hashed
import numba
import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim._kernels import ngram as kn
from collapse_sim._kernels.rng import fill_raw
from collapse_sim.families import ngram as fam
from collapse_sim.sampling import chain_streams
from collapse_sim.testing import check_family
from collapse_sim.theory.categorical import categorical_surviving_mean

BOS = -1  # stands for the begin-of-sequence id V in the references below


@pytest.fixture(scope="module")
def docs():
    return cs.text.python_docs()


@pytest.fixture(scope="module")
def small_truth():
    text = ("the cat sat on the mat . the dog sat on the log .\n"
            "a cat and a dog ran to the mat , then the cat sat .\n") * 30
    return cs.NGramTruth(cs.text.Corpus.from_string(text), order=3, heldout=0.1, block_size=8)


def reference_counts(blocks, order, v):
    """{(context oldest-first, token): count} over blocks, contexts of length 0..order-1."""
    out = Counter()
    for block in blocks:
        hist = [v] * (order - 1) + [int(t) for t in block]
        for i, w in enumerate(block):
            full = hist[i:i + order - 1]
            for j in range(order):
                ctx = tuple(full[len(full) - j:]) if j else ()
                out[(ctx, int(w))] += 1
    return dict(out)


def random_blocks(rng, chains, k, length, v, zipf=1.3):
    p = 1.0 / np.arange(1, v + 1) ** zipf
    return rng.choice(v, size=(chains, k, length), p=p / p.sum()).astype(np.int32)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_counts_match_a_python_counter(small_truth, order):
    rng = np.random.default_rng(order)
    blocks = random_blocks(rng, 3, 20, 9, small_truth.n_types)
    model = cs.NGramFit(order=order).fit(blocks, small_truth)
    assert model.batch_size == 3
    for c in range(3):
        assert model.ngram_counts(c) == reference_counts(blocks[c], order, small_truth.n_types)
        np.testing.assert_array_equal(
            model.unigram_counts()[c], np.bincount(blocks[c].ravel(),
                                                   minlength=small_truth.n_types))


def test_serial_and_parallel_builds_agree(small_truth):
    rng = np.random.default_rng(0)
    blocks = random_blocks(rng, 4, 30, 8, small_truth.n_types)
    bound_n, bound_e = 1 + 2 * 30 * 9, 3 * 30 * 8
    outs = []
    for kernel in (kn.build_models.serial, kn.build_models.parallel):
        bufs = [np.zeros((4, bound_n), np.int32) for _ in kn.NODE_ARRAYS]
        ebufs = [np.zeros((4, bound_e), np.int32) for _ in kn.ENTRY_ARRAYS]
        child = np.zeros((4, bound_n), np.int32)
        sizes = np.zeros((4, 2), np.int64)
        w32, w64 = kn.scratch_words(30, 8, small_truth.n_types, 3, bound_n)
        kernel(blocks, small_truth.n_types, 3, *bufs, *ebufs, child, sizes,
               np.zeros((3, w32), np.int32), np.zeros((3, w64), np.int64))
        outs.append((bufs, ebufs, child, sizes))
    for x, y in zip(outs[0], outs[1], strict=True):
        for a, b in zip(x if isinstance(x, list) else [x], y if isinstance(y, list) else [y],
                        strict=True):
            np.testing.assert_array_equal(a, b)


def _chain_arrays(build, blocks, v, order):
    """Every array one chain's build writes, cut to its sizes (one fresh set of buffers)."""
    k, length = blocks.shape
    bound_n, bound_e = 1 + (order - 1) * k * (length + 1), order * k * length
    bufs = [np.full(bound_n, -9, np.int32) for _ in kn.NODE_ARRAYS]
    ebufs = [np.full(bound_e, -9, np.int32) for _ in kn.ENTRY_ARRAYS]
    child = np.full(bound_n, -9, np.int32)
    sizes = np.zeros(2, np.int64)
    if build is _hashed.hashed_build_chain:
        build(blocks, v, order, *bufs, *ebufs, child, sizes)
    elif build is kn._build_chain:
        # scratch as a task reuses it: another chain's leftovers (see below)
        scratch = kn.build_scratch(k, length, v, order, bound_n)
        build(np.ascontiguousarray(blocks[::-1, ::-1]), v, order, *bufs, *ebufs, child,
              sizes, *scratch)
        for a in scratch:
            a.ravel()[::2] = 3
        build(blocks, v, order, *bufs, *ebufs, child, sizes, *scratch)
    else:
        # scratch as a task reuses it: full of another chain's leftovers (here: a first
        # build of the reversed blocks, then garbage), which the build must reset
        scratch = (np.empty(v + 1, np.int32), np.empty(k * length, np.int64),
                   np.empty(v, np.int64), np.empty(v + 3, np.int64),
                   np.empty(k * length, np.int64))
        build(np.ascontiguousarray(blocks[::-1, ::-1]), v, *bufs, *ebufs, child, sizes,
              *scratch)
        for a in scratch:
            a[::2] = 3
        build(blocks, v, *bufs, *ebufs, child, sizes, *scratch)
    nodes, entries = sizes
    return ([b[:nodes] for b in bufs] + [b[:entries] for b in ebufs] + [child[:nodes - 1]],
            sizes)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("v,k,length", [(1, 4, 3), (5, 1, 1), (7, 30, 8), (3, 200, 2),
                                        (40, 12, 64)])
def test_sorting_build_writes_the_arrays_of_the_hash_table_build(v, k, length, order):
    """The general build (counting sorts) against the hash-table build it replaced
    (tests/_ngram_hashed.py): the same node ids (order of first appearance), entries,
    counts, back-off, child and successor links, array for array."""
    rng = np.random.default_rng(v * k + order)
    blocks = rng.integers(0, v, size=(k, length)).astype(np.int32)
    blocks[0, :] = blocks[0, 0]  # a repeated token: one context with one successor
    new, new_sizes = _chain_arrays(kn._build_chain, blocks, v, order)
    old, sizes = _chain_arrays(_hashed.hashed_build_chain, blocks, v, order)
    np.testing.assert_array_equal(new_sizes, sizes)
    for name, a, b in zip((*kn.NODE_ARRAYS, *kn.ENTRY_ARRAYS, "child"), new, old,
                          strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("level,order", [("word", 3), ("char", 5)])
def test_sorting_build_on_real_text(level, order):
    corpus = cs.text.shakespeare(level=level)
    truth = cs.NGramTruth(corpus, order=order, heldout=0.1, block_size=64)
    blocks = truth.draw(200, chain_streams(0, 1))[0]
    new, new_sizes = _chain_arrays(kn._build_chain, blocks, truth.n_types, order)
    old, sizes = _chain_arrays(_hashed.hashed_build_chain, blocks, truth.n_types, order)
    np.testing.assert_array_equal(new_sizes, sizes)
    for name, a, b in zip((*kn.NODE_ARRAYS, *kn.ENTRY_ARRAYS, "child"), new, old,
                          strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("v,k,length", [(5, 1, 1), (7, 30, 8), (3, 200, 2), (40, 12, 64)])
def test_bigram_build_writes_the_arrays_of_the_general_build(v, k, length):
    """The order-2 build (counting sorts, no hash table) against the general one: the
    same nodes, entries, counts, back-off and successor links, array for array."""
    rng = np.random.default_rng(v * k)
    blocks = rng.integers(0, v, size=(k, length)).astype(np.int32)
    blocks[0, :] = blocks[0, 0]  # a repeated token: one context with one successor
    fast, fast_sizes = _chain_arrays(kn._build_bigram_chain, blocks, v, 2)
    general, sizes = _chain_arrays(kn._build_chain, blocks, v, 2)
    np.testing.assert_array_equal(fast_sizes, sizes)
    for name, a, b in zip((*kn.NODE_ARRAYS, *kn.ENTRY_ARRAYS, "child"), fast, general,
                          strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_bigram_build_on_real_text():
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    blocks = truth.draw(300, chain_streams(0, 1))[0]
    fast, fast_sizes = _chain_arrays(kn._build_bigram_chain, blocks, truth.n_types, 2)
    general, sizes = _chain_arrays(kn._build_chain, blocks, truth.n_types, 2)
    np.testing.assert_array_equal(fast_sizes, sizes)
    for a, b in zip(fast, general, strict=True):
        np.testing.assert_array_equal(a, b)


def _general_generate(model, streams, k, length, prompt):
    """What ``model._generate`` wrote before the bigram kernel: the general kernel."""
    out = np.empty((streams.chains, k, length), dtype=np.int32)
    kn.generate(streams.states, model._node_off, model._entry_off,
                *model._tables("count", "parent", "token", "efirst", "enum", "cfirst", "cnum",
                               "etok", "ecum", "enext", "child"),
                model.n_types, model.order, model.smoothing, np.empty(0), 1.0,
                np.empty(0, dtype=np.uint8), prompt, out)
    return out


@pytest.mark.parametrize("build", ["serial", "parallel"])
@pytest.mark.parametrize(("v", "chains", "k", "length", "members"),
                         [(6, 3, 40, 5, 3), (30, 4, 37, 16, 1), (200, 2, 5, 64, 2),
                          (3, 1, 17, 1, 1), (10, 2, 150, 3, 2)])
def test_bigram_generation_writes_what_the_general_kernel_writes(v, chains, k, length,
                                                                 members, build):
    """The maximum-likelihood bigram kernel against the general one: the same tokens from
    the same streams (and the streams left in the same state), for a batch of models or
    one model shared by every chain, lane groups cut short (k not a multiple of LANES),
    several walks of BIGRAM_GROUPS groups (k = 150),
    contexts that back off to the root (tokens that only end blocks), a prompt the models
    have seen and one they have not."""
    rng = np.random.default_rng(v + k)
    corpus = cs.text.Corpus.from_string((" ".join(f"w{i}" for i in range(v)) + " .\n") * 20)
    truth = cs.NGramTruth(corpus, order=2, block_size=8)  # its vocabulary only
    blocks = random_blocks(rng, members, 12, 7, truth.n_types - 2)
    blocks[:, :, -1] = truth.n_types - 1  # a token seen only at the end of blocks
    model = cs.NGramFit(order=2).fit(blocks, truth)
    assert np.any(model._arrays["count"][1:] == 0)  # some context backs off to the root
    seen, unseen = int(blocks[0, 0, 0]), truth.n_types - 2
    for prompt in (model._bos(), np.array([seen], np.int32), np.array([unseen], np.int32)):
        want_streams, got_streams = chain_streams(7, chains), chain_streams(7, chains)
        want = _general_generate(model, want_streams, k, length, prompt)
        kernel = getattr(kn.generate_bigram, build)
        occ_off, noff, occ, start = model._bigram_events(prompt)
        got = np.empty_like(want)
        kernel(got_streams.states, model._node_off, model._entry_off,
               *model._tables("count", "efirst", "enum", "ecum"), occ_off, noff, occ, start,
               got)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_streams.states, want_streams.states)


def test_bigram_generation_on_real_text():
    """The bigram kernel as ``model.draw`` calls it, on Shakespeare, against the general
    kernel: 8 chains of 100 blocks of 64 tokens."""
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    model = cs.NGramFit(order=2).fit(truth.draw(300, chain_streams(0, 8)), truth)
    want = _general_generate(model, chain_streams(1, 8), 100, 64, model._bos())
    np.testing.assert_array_equal(model.draw(100, chain_streams(1, 8)), want)


def python_log_prob(counts, order, v, alpha, weight, block):
    """Mean log P of ``block`` by the documented interpolation, from a counts dict."""
    ctx_total = Counter()
    for (ctx, _), c in counts.items():
        ctx_total[ctx] += c
    hist = [v] * (order - 1)
    total = 0.0
    for w in block:
        p = 1.0 / v
        for j in range(order):
            ctx = tuple(hist[len(hist) - j:]) if j else ()
            ch = ctx_total.get(ctx, 0)
            if ch == 0:
                break
            p = (1 - weight) * p + weight * (counts.get((ctx, int(w)), 0) + alpha) / (
                ch + alpha * v)
        total += np.log(p)
        hist = [*hist[1:], int(w)] if order > 1 else hist
    return total


@pytest.mark.parametrize(("order", "alpha"), [(1, 0.0), (2, 0.0), (3, 0.5), (4, 0.0)])
def test_log_likelihood_matches_the_documented_interpolation(small_truth, order, alpha):
    rng = np.random.default_rng(10 + order)
    v = small_truth.n_types
    blocks = random_blocks(rng, 2, 15, 8, v)
    model = cs.NGramFit(order=order, smoothing=alpha).fit(blocks, small_truth)
    texts = random_blocks(rng, 1, 6, 8, v)[0]
    got = model.log_likelihood(texts)
    for c in range(2):
        counts = model.ngram_counts(c)
        want = sum(python_log_prob(counts, order, v, alpha, fam.EVAL_WEIGHT, b)
                   for b in texts) / texts.size
        assert got[c] == pytest.approx(want, rel=1e-12)


def test_generation_follows_the_fitted_conditionals(small_truth):
    """Each generated token after a seen full context is drawn with probability
    c(h, w) / c(h): a chi-square goodness-of-fit test per frequent context. With the
    seed fixed the statistic is a fixed number; each of the (few) contexts tested is
    compared with the chi-square 0.9999 quantile, so a correct sampler fails with
    probability below 1e-3 in all, a wrong conditional law (off by a few percent on
    thousands of draws) fails for sure."""
    from scipy import stats

    v = small_truth.n_types
    rng = np.random.default_rng(3)
    blocks = random_blocks(rng, 1, 40, 8, v, zipf=1.0)
    model = cs.NGramFit(order=2).fit(blocks, small_truth)
    gen = model.draw(400, chain_streams(5, 50))  # 50 chains x 400 blocks x 8 tokens
    counts = model.ngram_counts(0)
    seen = Counter()
    for seq in gen.reshape(-1, 8):
        for prev, w in pairwise([v, *seq.tolist()]):
            seen[(prev, w)] += 1
    contexts = Counter()
    for (prev, _), c in seen.items():
        contexts[prev] += c
    tested = 0
    for prev, total in contexts.most_common(5):
        row = {w: c for (ctx, w), c in counts.items() if ctx == (prev,)}
        assert set(w for (p, w) in seen if p == prev) <= set(row), "unseen continuation drawn"
        ws = sorted(row)
        expected = np.array([row[w] for w in ws], float)
        expected *= total / expected.sum()
        observed = np.array([seen[(prev, w)] for w in ws], float)
        stat = ((observed - expected) ** 2 / expected).sum()
        assert stat < stats.chi2.ppf(0.9999, len(ws) - 1), (prev, stat)
        tested += 1
    assert tested == 5


def test_smoothing_draws_unseen_tokens_at_the_documented_rate(small_truth):
    """With smoothing alpha, a token is drawn uniformly with probability
    alpha V / (c(h) + alpha V). For a unigram model (one context, c = T) the share of
    tokens never seen in training is alpha (V - seen) / (T + alpha V); 400k draws give a
    standard error of sqrt(p(1-p)/400k) and the test allows 5 of them."""
    v = small_truth.n_types
    blocks = np.zeros((1, 4, 8), np.int32) + 3  # one token type only
    alpha = 2.0
    model = cs.NGramFit(order=1, smoothing=alpha).fit(blocks, small_truth)
    gen = model.draw(1000, chain_streams(1, 50))
    share = np.mean(gen != 3)
    want = alpha * (v - 1) / (32 + alpha * v)
    assert abs(share - want) < 5 * np.sqrt(want * (1 - want) / gen.size)


def test_text_statistics_match_python(small_truth):
    rng = np.random.default_rng(4)
    texts = random_blocks(rng, 3, 5, 12, 6, zipf=0.5)
    out = np.empty((3, 3))
    kn.text_statistics(texts, 6, True, True, out)
    hashed = np.empty((3, 3))
    kn.text_statistics(texts, 6, False, False, hashed)
    np.testing.assert_array_equal(out, hashed)  # the hashed keys of large vocabularies agree
    for c in range(3):
        grams2 = [tuple(b[i:i + 2]) for b in texts[c] for i in range(11)]
        grams4 = [tuple(b[i:i + 4]) for b in texts[c] for i in range(9)]
        repeated = sum(9 - len({tuple(b[i:i + 4]) for i in range(9)}) for b in texts[c])
        assert out[c, 0] == len(set(grams2)) / len(grams2)
        assert out[c, 1] == len(set(grams4)) / len(grams4)
        assert out[c, 2] == repeated / len(grams4)


def test_truth_draws_distinct_real_blocks(small_truth):
    blocks = small_truth.draw(small_truth.train_blocks, chain_streams(0, 2))
    for c in range(2):  # a permutation of all the training blocks
        got = sorted(map(tuple, blocks[c].tolist()))
        assert got == sorted(map(tuple, small_truth._train.tolist()))
    index = np.empty((20000, 3), np.int32)
    kn.draw_blocks(chain_streams(1, 20000).states, 10, 3, index)
    assert all(len(set(r)) == 3 for r in index[:200].tolist())
    # every block index equally likely in every position: 6000 draws per cell, se ~ 0.0039
    for j in range(3):
        freq = np.bincount(index[:, j], minlength=10) / 20000
        assert np.abs(freq - 0.1).max() < 5 * np.sqrt(0.1 * 0.9 / 20000)


@pytest.mark.parametrize("n_blocks,k", [(50, 7), (40, 40), (10**6, 5), (100_000, 4)])
def test_block_draws_are_a_partial_fisher_yates_shuffle(n_blocks, k):
    # small n_blocks take the dense array, large ones the hash map of swapped positions:
    # both must be the first k steps of a Fisher-Yates shuffle on the chain's raw outputs
    dense = n_blocks <= kn.DENSE_BLOCKS_FACTOR * k + kn.DENSE_BLOCKS_MIN
    assert dense == (n_blocks < 10**5)
    got = np.empty((3, k), np.int32)
    kn.draw_blocks(chain_streams(4, 3).states.copy(), n_blocks, k, got)
    raw = np.empty((3, k), np.uint64)
    fill_raw(chain_streams(4, 3).states.copy(), raw)
    for c in range(3):
        perm, want = {}, []
        for i in range(k):
            span = n_blocks - i
            u = np.float64(raw[c, i] >> np.uint64(11)) * np.float64(2.0**-53)
            j = i + min(int(u * span), span - 1)
            want.append(perm.get(j, j))
            perm[j] = perm.get(i, i)
        assert got[c].tolist() == want


def test_unigram_survival_matches_wright_fisher_theory(docs):
    """One refit of a unigram model on N tokens keeps sum_w [1 - (1 - c_w/N)^N] types on
    average (each type survives independently in expectation). The chains' mean is
    compared within 4 standard errors; the spread of the count of survivors is at most
    that of independent indicators (multinomial counts are negatively associated), so
    sqrt(sum P(1-P) / chains) bounds the standard error."""
    truth = cs.NGramTruth(docs, order=1, heldout=0.0, block_size=64)
    n = truth.train_blocks * 64  # generation 1 refits the whole training split
    sim = cs.simulate(truth, cs.NGramFit(order=1), n_samples=n, generations=2, chains=64,
                      seed=1, metrics=["vocabulary"])
    np.testing.assert_array_equal(sim.metrics["vocabulary"][1],
                                  np.count_nonzero(truth.unigram_counts()[0]))
    p = truth.unigram()[0]
    expected = categorical_surviving_mean(p, n, [1])[0]
    survive = 1 - (1 - p[p > 0]) ** n
    se = np.sqrt(np.sum(survive * (1 - survive)) / 64)
    assert abs(sim.metrics["vocabulary"][2].mean() - expected) < 4 * se


def test_bigram_rows_are_wright_fisher_steps_with_random_size(docs):
    """Given the number of visits C_h of a context in the generated text, its row of
    next-token counts is Multinomial(C_h, q(.|h)): the number of continuations that
    survive has mean sum_w [1 - (1 - q(w|h))^C_h]. Averaged over 64 chains and compared
    within 4 standard errors (the same independent-indicator bound as above)."""
    truth = cs.NGramTruth(docs, order=2, heldout=0.0, block_size=64)
    n = truth.train_blocks * 64
    sim = cs.simulate(truth, cs.NGramFit(order=2), n_samples=n, generations=2, chains=64,
                      seed=2, metrics=["vocabulary"])
    gen1 = sim.fitted[1].ngram_counts(0)
    # a frequent context: the most common first word
    h = (truth.split.encode("the")[0],)
    row = np.array([c for (ctx, w), c in gen1.items() if ctx == h], float)
    q = row / row.sum()
    diffs, variances = [], []
    model2 = sim.fitted[2]
    for c in range(64):
        counts = {w: n for (ctx, w), n in model2.ngram_counts(c).items() if ctx == h}
        visits = sum(counts.values())
        surv = 1 - (1 - q) ** visits
        diffs.append(len(counts) - surv.sum())
        variances.append(np.sum(surv * (1 - surv)))
    assert abs(np.mean(diffs)) < 4 * np.sqrt(np.sum(variances)) / 64


def test_simulation_shapes_text_and_bit_identity(docs):
    truth = cs.NGramTruth(docs, order=2, heldout=0.1, block_size=32)
    kw = dict(n_samples=3200, generations=3, seed=5, policy=cs.KeepReal(0.1))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = cs.simulate(truth, cs.NGramFit(order=2), chains=3, **kw)
    finally:
        numba.set_num_threads(before)
    many = cs.simulate(truth, cs.NGramFit(order=2), chains=3, **kw)
    two = cs.simulate(truth, cs.NGramFit(order=2), chains=2, **kw)
    assert set(one.metrics) == set(cs.registry.defaults(cs.NGramTruth, cs.NGramModel))
    for name, arr in one.metrics.items():
        assert arr.shape == (4, 3) and np.isfinite(arr).all(), name
        np.testing.assert_array_equal(arr, many.metrics[name], err_msg=name)
        np.testing.assert_array_equal(arr[:, :2], two.metrics[name], err_msg=name)
    assert one.config["truth"]["corpus"]["name"] == "python-docs"
    assert "sha256" in one.config["truth"]["corpus"]
    text = one.text(generation=3, chain=1, prompt="the function", tokens=20)
    assert text.startswith("the function") and len(text.split()) >= 15
    assert text == many.text(generation=3, chain=1, prompt="the function", tokens=20)
    assert one.text(0, prompt="the") != one.text(0, prompt="the", seed=1)


def test_perplexity_rises_and_vocabulary_falls(docs):
    truth = cs.NGramTruth(docs, order=2, heldout=0.1, block_size=64)
    sim = cs.simulate(truth, cs.NGramFit(order=2), n_samples=20_000, generations=6, chains=4,
                      seed=0, metrics=["perplexity", "vocabulary"])
    ppl = sim.metrics["perplexity"].mean(axis=1)
    vocab = sim.metrics["vocabulary"].mean(axis=1)
    assert np.all(np.diff(ppl[1:]) > 0) and np.all(np.diff(vocab) < 0)


def test_every_policy_runs_on_blocks(docs):
    truth = cs.NGramTruth(docs, order=2, heldout=0.1, block_size=16)
    for policy in (cs.Replace(), cs.KeepReal(0.5), cs.Accumulate(), cs.AccumulateSubsample(),
                   cs.FreshReal(0.5), cs.Augment(1.0)):
        sim = cs.simulate(truth, cs.NGramFit(order=2, smoothing=0.01), n_samples=320,
                          generations=3, chains=2, seed=0, policy=policy)
        for name, arr in sim.metrics.items():
            assert np.isfinite(arr).all(), (policy, name)
    # KeepReal(1.0) refits the same real blocks forever: no drift at all
    sim = cs.simulate(truth, cs.NGramFit(order=2), n_samples=320, generations=3, chains=2,
                      seed=0, policy=cs.KeepReal(1.0), metrics=["perplexity", "vocabulary"])
    for arr in sim.metrics.values():
        assert np.all(arr[1:] == arr[1])


def test_conformance(docs):
    check_family(cs.NGramTruth(docs, order=2, heldout=0.1, block_size=8), cs.NGramFit(),
                 n_samples=80)


@pytest.mark.parametrize(("make", "match"), [
    (lambda c: cs.NGramTruth(c, order=0), "order"),
    (lambda c: cs.NGramTruth(c, order=6), "order"),
    (lambda c: cs.NGramTruth(c, heldout=0.95), "heldout"),
    (lambda c: cs.NGramTruth(c, block_size=4), "block_size"),
    (lambda c: cs.NGramTruth(c, level="char"), "level"),
    (lambda c: cs.NGramTruth(cs.text.Corpus.from_string("a b c d ."), block_size=8),
     "fewer than 2 blocks"),
    (lambda c: cs.NGramFit(order=9), "order"),
    (lambda c: cs.NGramFit(smoothing=-1.0), "smoothing"),
])
def test_bad_input_names_the_parameter(docs, make, match):
    with pytest.raises(ValueError, match=match):
        make(docs)


def test_bad_sizes_and_prompts(docs):
    truth = cs.NGramTruth(docs, order=2, heldout=0.1, block_size=64)
    with pytest.raises(ValueError, match="less than one block"):
        cs.simulate(truth, cs.NGramFit(), n_samples=63, generations=1)
    with pytest.raises(ValueError, match="training split has"):
        cs.simulate(truth, cs.NGramFit(), n_samples=10**8, generations=1)
    with pytest.raises(TypeError, match="corpus"):
        cs.NGramTruth("some text")
    sim = cs.simulate(truth, cs.NGramFit(), n_samples=640, generations=1, seed=0,
                      metrics=["vocabulary"])
    with pytest.raises(ValueError, match="zzqx"):
        sim.text(1, prompt="zzqx qqzx")
    with pytest.raises(ValueError, match="generation"):
        sim.text(2)
    nonzero = cs.NGramTruth(docs, order=2, heldout=0.0, block_size=64)
    with pytest.raises(ValueError, match="heldout"):
        cs.simulate(nonzero, cs.NGramFit(), n_samples=640, generations=1,
                    metrics=["perplexity"])


def test_kept_models_stop_at_their_memory_budget(docs, monkeypatch):
    from collapse_sim import engine

    truth = cs.NGramTruth(docs, order=2, heldout=0.1, block_size=32)
    full = cs.simulate(truth, cs.NGramFit(), n_samples=3200, generations=4, chains=2, seed=0,
                       metrics=["vocabulary"])
    one = full.fitted[1].nbytes
    monkeypatch.setattr(engine, "KEPT_MODELS_MAX_BYTES", int(2.5 * one))
    sim = cs.simulate(truth, cs.NGramFit(), n_samples=3200, generations=4, chains=2, seed=0,
                      metrics=["vocabulary"])
    kept = [m is not None for m in sim.fitted]
    assert kept[:2] == [True, True] and kept[-1] is False and kept == sorted(kept, reverse=True)
    np.testing.assert_array_equal(sim.metrics["vocabulary"], full.metrics["vocabulary"])
    with pytest.raises(ValueError, match="were not kept"):
        sim.text(4)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_shared_text_scored_by_pairs_gives_the_bits_of_the_token_loop(smoothing):
    """Many bigram models scoring one text go by the text's distinct pairs: the same
    values, bit for bit, as the per-token kernel, and a text changed in place is
    re-read."""
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    streams = chain_streams(3, 5)
    models = cs.NGramFit(order=2, smoothing=smoothing).fit(truth.draw(40, streams), truth)
    text = np.array(truth.heldout(60, chain_streams(9, 1))).reshape(-1, 64)

    def per_token():
        want = np.empty((models.batch_size, text.shape[0]))
        kn.log_likelihood(models._node_off, models._entry_off,
                          *models._tables("count", "token", "efirst", "enum", "cfirst",
                                          "cnum", "etok", "ecum", "child"),
                          models.n_types, 2, models.smoothing, fam.EVAL_WEIGHT,
                          np.ascontiguousarray(text[None], dtype=np.int32), want)
        return want

    np.testing.assert_array_equal(models.sequence_log_likelihood(text), per_token())
    text[:, 5] = text[0, 0]  # changed in place: not the remembered pairs
    np.testing.assert_array_equal(models.sequence_log_likelihood(text), per_token())


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_batch_of_one_and_the_truth_give_the_bits_of_the_token_loop(smoothing):
    """A batch of one scoring one text (the truth's row-0 perplexity) goes by the text's
    pairs; the truth scoring many texts (self_perplexity) by its pair table: both give
    the per-token kernel's values bit for bit, unseen contexts and pairs included."""
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    models = cs.NGramFit(order=2, smoothing=smoothing).fit(truth.draw(40, chain_streams(3, 4)),
                                                           truth)
    held = np.ascontiguousarray(truth.heldout(0, None)[:300])
    written = models.draw(30, chain_streams(8, 4))  # (4, 30, 64)

    def per_token(model, texts):
        want = np.empty((max(model.batch_size, texts.shape[0]), texts.shape[1]))
        kn.log_likelihood(model._node_off, model._entry_off,
                          *model._tables("count", "token", "efirst", "enum", "cfirst",
                                         "cnum", "etok", "ecum", "child"),
                          model.n_types, 2, model.smoothing, fam.EVAL_WEIGHT,
                          np.ascontiguousarray(texts, dtype=np.int32), want)
        return want

    one = models.member(1)
    np.testing.assert_array_equal(one.sequence_log_likelihood(held), per_token(one, held[None]))
    np.testing.assert_array_equal(truth.sequence_log_likelihood(held),
                                  per_token(truth, held[None]))
    np.testing.assert_array_equal(truth.sequence_log_likelihood(written),
                                  per_token(truth, written))
    keys, _ = truth._pair_table(truth.smoothing, fam.EVAL_WEIGHT)
    assert (keys >= 0).sum() == truth._arrays["etok"].shape[0] - truth._arrays["enum"][0]


def test_entropy_and_tail_mass_match_their_definitions():
    """entropy: scipy.stats.entropy of the unigram probabilities, to rounding (a sum of
    26k terms, each within an ulp: 1e-13 relative is far above it and far below any
    real change). tail_mass: the exact rational value (integer counts, two roundings:
    within 2 ulp). A collapsed model (one type) has entropy exactly 0."""
    from fractions import Fraction

    from scipy import stats

    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    tail = truth.tail_set()
    for smoothing in (0.0, 0.01, 2.5):
        model = cs.NGramFit(order=2, smoothing=smoothing).fit(
            truth.draw(300, chain_streams(5, 3)), truth)
        q = model.unigram()
        np.testing.assert_allclose(fam.entropy(truth, model), stats.entropy(q, axis=1),
                                   rtol=1e-13, atol=0)
        counts = model.unigram_counts()
        alpha, v = Fraction(smoothing), model.n_types
        for c, got in enumerate(fam.tail_mass(truth, model)):
            exact = ((int(counts[c, tail].sum()) + alpha * tail.size)
                     / (int(counts[c].sum()) + alpha * v))
            assert abs(Fraction(got) - exact) <= 2 * np.spacing(float(exact))
    one_type = cs.NGramFit(order=1).fit(np.full((2, 3, 64), 7, dtype=np.int32), truth)
    assert np.array_equal(fam.entropy(truth, one_type), [0.0, 0.0])
    dense = np.empty(model.batch_size)  # the same tally from the dense counts
    for c, row in enumerate(model.unigram_counts()):
        values, tally = np.unique(row, return_counts=True)
        q = (values + model.smoothing) / (row.sum() + model.smoothing * model.n_types)
        dense[c] = -sum(t * (x * np.log(x)) for x, t in zip(q, tally, strict=True) if x > 0)
    np.testing.assert_allclose(fam.entropy(truth, model), dense, rtol=1e-14, atol=0)


def test_the_second_draw_from_a_model_reuses_its_events_only_for_that_model():
    """The text metrics and the next generation draw from the same model in turn: the
    second draw reuses the events of the first (remembered per thread for the last
    model), and drawing from another model in between gives what fresh models give."""
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    fit = cs.NGramFit(order=2)
    a = fit.fit(truth.draw(50, chain_streams(1, 3)), truth)
    b = fit.fit(truth.draw(50, chain_streams(2, 3)), truth)
    first = a._bigram_events(a._bos())
    assert a._bigram_events(a._bos()) is first  # remembered
    got = [m.draw(20, chain_streams(7, 3)) for m in (a, b, a, a)]
    fresh = [fit.fit(truth.draw(50, chain_streams(s, 3)), truth).draw(20, chain_streams(7, 3))
             for s in (1, 2, 1, 1)]
    for g, f in zip(got, fresh, strict=True):
        np.testing.assert_array_equal(g, f)
    a.draw(1, chain_streams(7, 3))
    assert fam._LAST_EVENTS.value[0]() is a
    del a
    assert fam._LAST_EVENTS.value is None  # a dead model's events are let go


def test_perplexity_by_model_size_agrees_with_the_per_position_mean():
    """Maximum-likelihood bigrams scoring one text: the perplexity regrouped by count,
    context and seen pair, the seen pairs found from each model's events (members with
    at most 1/2 as many events as the text has pairs) or from the text's pairs (larger
    ones), agrees with
    exp(-mean of the per-block log-likelihoods). Only the grouping of the ~1e5 terms of
    the sum differs: its rounding error is below n eps = 1.1e5 * 1.1e-16 = 1.2e-11
    relative, the tolerance. Both paths are taken (the 60-block models and the truth's
    1e6 tokens); models with smoothing keep the per-position mean exactly."""
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    held = truth.heldout(0, None)
    pairs = fam._text_pairs(held, held, truth.n_types)[0].shape[0]
    small = cs.NGramFit(order=2).fit(truth.draw(60, chain_streams(2, 5)), truth)
    events = np.diff(small._entry_off)
    assert (events * kn.MEAN_PAIRS_FACTOR <= pairs).all()
    assert truth._arrays["etok"].shape[0] * kn.MEAN_PAIRS_FACTOR > pairs
    for model in (small, truth, small.member(3)):
        want = np.exp(-model.sequence_log_likelihood(held).mean(axis=1))
        np.testing.assert_allclose(model.perplexity(held), want, rtol=1.2e-11, atol=0)
    smooth = cs.NGramFit(order=2, smoothing=0.5).fit(truth.draw(60, chain_streams(2, 3)),
                                                     truth)
    np.testing.assert_array_equal(smooth.perplexity(held),
                                  np.exp(-smooth.sequence_log_likelihood(held).mean(axis=1)))
    # a text changed in place is re-read, its totals too
    text = np.array(held[:200])
    before = small.perplexity(text)
    text[:, 3] = text[0, 0]
    np.testing.assert_allclose(small.perplexity(text),
                               np.exp(-small.sequence_log_likelihood(text).mean(axis=1)),
                               rtol=1.2e-11, atol=0)
    assert not np.array_equal(before, small.perplexity(text))


def test_metric_kernels_parallel_build_writes_the_serial_builds_bits():
    """The metric kernels split their members (or chains) into tasks; each member's value
    is its own, so both builds give the same bits."""
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    models = cs.NGramFit(order=2).fit(truth.draw(60, chain_streams(6, 9)), truth)
    held = truth.heldout(0, None)
    v = models.n_types
    pair_h, pair_w, _ = fam._text_pairs(held, held, v)
    keys, mult, pair_mult, ctx_total, tok_total = fam._text_totals(held, held, v)
    texts = models.draw(8, chain_streams(4, 9))
    tkeys, tvalues = truth._pair_table(truth.smoothing, fam.EVAL_WEIGHT)
    tables = models._tables("count", "token", "efirst", "enum", "cfirst", "cnum", "etok",
                            "ecum", "child")
    truth_tables = truth._tables("count", "token", "efirst", "enum", "cfirst", "cnum", "etok",
                                 "ecum", "child")
    runs = {
        "mean": lambda k, out: k(models._node_off, models._entry_off, *tables, v,
                                 fam.EVAL_WEIGHT, pair_h, pair_w, keys, mult, pair_mult,
                                 ctx_total, tok_total, out),
        "shared": lambda k, out: k(truth._node_off, truth._entry_off, *truth_tables, v, 0.0,
                                   fam.EVAL_WEIGHT, tkeys, tvalues, texts, out),
        "stats": lambda k, out: k(texts, v, True, True, out),
        "entropy": lambda k, out: k(models._node_off, models._entry_off,
                                    *models._tables("count", "efirst", "enum", "ecum"), v,
                                    0.0, out),
        "tail": lambda k, out: k(models._node_off, models._entry_off,
                                 *models._tables("efirst", "enum", "etok", "ecum"),
                                 truth._tail_mask(), out),
    }
    kernels = {"mean": kn.bigram_mean_log_likelihood, "shared": kn.bigram_shared_log_likelihood,
               "stats": kn.text_statistics, "entropy": kn.unigram_entropy,
               "tail": kn.tail_counts}
    shapes = {"mean": (9,), "shared": (9, 8), "stats": (9, 3), "entropy": (9,), "tail": (9,)}
    for name, run in runs.items():
        got = []
        for build in (kernels[name].serial, kernels[name].parallel):
            out = np.empty(shapes[name], dtype=np.int64 if name == "tail" else np.float64)
            run(build, out)
            got.append(out)
        np.testing.assert_array_equal(got[0], got[1], err_msg=name)


def test_perplexity_of_a_vocabulary_too_large_for_32_bit_pair_keys():
    """Above 46,340 types a pair key h (V + 1) + w no longer fits 32 bits: the held-out
    table falls back to 64-bit slots and the regrouped perplexity still agrees with the
    per-position mean (tolerance as in the test above)."""
    rng = np.random.default_rng(11)
    words = np.concatenate([rng.zipf(1.3, size=200_000) % 70_000,
                            rng.integers(0, 70_000, size=300_000)])
    corpus = cs.text.Corpus.from_string(" ".join(f"w{x}" for x in words), name="zipf")
    truth = cs.NGramTruth(corpus, order=2, heldout=0.1, block_size=64)
    assert (truth.n_types + 1) ** 2 >= 2**31
    held = truth.heldout(0, None)
    keys = fam._text_totals(held, held, truth.n_types)[0]
    assert keys.dtype == np.int64
    models = cs.NGramFit(order=2).fit(truth.draw(100, chain_streams(3, 3)), truth)
    for model in (models, truth):
        want = np.exp(-model.sequence_log_likelihood(held).mean(axis=1))
        np.testing.assert_allclose(model.perplexity(held), want, rtol=1.2e-11, atol=0)


def test_vocabulary_counts_the_types_each_model_saw():
    """The vocabulary metric reads each model's number of unigram entries: the number of
    types with a non-zero count in its dense counts (V for a smoothed model)."""
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    model = cs.NGramFit(order=2).fit(truth.draw(40, chain_streams(8, 4)), truth)
    np.testing.assert_array_equal(fam.vocabulary(truth, model),
                                  (model.unigram_counts() > 0).sum(axis=1))
    smooth = cs.NGramFit(order=2, smoothing=0.1).fit(truth.draw(40, chain_streams(8, 2)), truth)
    assert fam.vocabulary(truth, smooth).tolist() == [truth.n_types] * 2


def test_bigram_draw_writes_what_the_one_group_draw_it_replaced_wrote(benchmark_script):
    """``benchmarks/bigram_draw.py`` times the library's draw against the one-group kernel
    it replaced (kept there): both must write the same tokens and leave the streams in the
    same state, here for 3 chains of 150 blocks (three walks of 64, the last one short)."""
    bench = benchmark_script("bigram_draw")
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    args, states = bench.kernel_arguments(truth, 3, 150)
    outs = []
    for kernel in (bench.one_group, kn.generate_bigram.serial, kn.generate_bigram.parallel):
        mine = list(args)
        mine[0] = states.copy()
        mine[-1] = np.full_like(args[-1], -1)
        kernel(*mine)
        outs.append((mine[0], mine[-1]))
    for got_states, got in outs[1:]:
        np.testing.assert_array_equal(got, outs[0][1])
        np.testing.assert_array_equal(got_states, outs[0][0])
