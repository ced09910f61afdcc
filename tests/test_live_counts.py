"""Live counts (``collapse_sim._kernels.live_counts``) against dense references.

The live kernels must make the very draws of the dense methods they replace, so every
check here is an exact equality (bits, counts, stream positions), against:

* :func:`dense_resample` — resampling the dense counts by a table of the training items
  written out in category order (the kernel the family used before the live form; kept
  here verbatim as the reference);
* ``categorical.categorical_draw`` and ``categorical.categorical_metrics`` — the dense
  draws of a distribution and the dense metrics;
* the generation-by-generation loop of ``simulate`` (``CategoricalFit.fused_run``
  declined), for the fused run.
"""

import numba as nb
import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim import registry
from collapse_sim._kernels import categorical as kc
from collapse_sim._kernels import live_counts as kl
from collapse_sim._kernels.categorical import (
    ALIAS_FACTOR,
    TABLE_SLACK,
    _shuffled_tokens,
    _xoshiro,
    next_binomial,
)
from collapse_sim.families import categorical as cat
from collapse_sim.sampling import chain_streams

_U64 = nb.uint64


@nb.njit
def _write_items(counts, table):
    """``table[:k]``: category ``j`` written ``counts[j]`` times, in category order.

    Every category writes its first :data:`TABLE_SLACK` entries unconditionally (the
    surplus is overwritten by the next category, or lands in the table's slack), so
    the common counts 0 to 4 take no branch: a loop over each count mispredicts about
    once a category, which cost more than the draws themselves."""
    pos = 0
    for j in range(counts.shape[0]):
        cj = counts[j]
        table[pos] = j
        table[pos + 1] = j
        table[pos + 2] = j
        table[pos + 3] = j
        if cj > TABLE_SLACK:
            for q in range(TABLE_SLACK, cj):
                table[pos + q] = j
        pos += cj


@nb.njit
def _resample_chain(s, counts, k, n, tokens, out, table):
    """``n`` items drawn uniformly with replacement from the ``k`` items of ``counts``
    (``table``: scratch of ``k +`` :data:`TABLE_SLACK` entries)."""
    _write_items(counts, table)
    write = tokens.shape[0] > 0
    bound = _U64(k)
    mask = _U64(0xFFFFFFFF)
    threshold = (mask + _U64(1) - bound) % bound  # 2**32 mod k: Lemire's rejection zone
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    word = _U64(0)
    left = 0
    i = 0
    while i < n:
        if left == 0:
            word, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
            left = 2
        m = (word & mask) * bound
        word >>= _U64(32)
        left -= 1
        if (m & mask) < threshold:
            continue  # rejected: exactly uniform on [0, k)
        item = table[np.int64(m >> _U64(32))]
        if write:
            tokens[i] = item
        else:
            out[item] += 1
        i += 1
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3


@nb.njit
def _binomial_from_counts(s, counts, k, n, tokens, out):
    """``n`` items from ``counts / k`` by conditional binomials on the counts (exact ratios
    of integers), ``O(V)``; tokens (if asked) are the counts written out and shuffled."""
    left = n
    remaining = k
    for j in range(counts.shape[0]):
        if left == 0:
            break
        c = counts[j]
        if c == 0:
            continue
        x = next_binomial(s, left, c / remaining)
        out[j] += x
        left -= x
        remaining -= c
    _shuffled_tokens(s, out, tokens)


@nb.njit
def dense_resample(states, counts, k, n, tokens, out):
    """Like :func:`categorical_draw` for the empirical models ``counts / k`` (``counts``
    ``(chains, V)`` int64, rows summing to ``k`` < 2**31), ``out`` zeroed.

    Per chain, by the same rule as :func:`categorical_draw`: with at most
    :data:`ALIAS_FACTOR` items per live category, resampling the training items
    (``O(V + k + n)``); with more, conditional binomials on the counts (``O(V)``, flat in
    ``n``)."""
    v = counts.shape[1]
    for c in range(states.shape[0]):
        row = counts[c]
        live = 0
        for j in range(v):
            if row[j] > 0:
                live += 1
        if n <= ALIAS_FACTOR * live:
            table = np.empty(k + TABLE_SLACK, dtype=np.int32)
            _resample_chain(states[c], row, k, n, tokens[c], out[c], table)
        else:
            _binomial_from_counts(states[c], row, k, n, tokens[c], out[c])


# -- helpers ------------------------------------------------------------------------------------

def random_counts(rng, chains, v, k, live_share=0.4):
    """``(chains, v)`` int64 counts summing to ``k`` per row, about ``live_share`` of the
    categories live (at least one)."""
    out = np.zeros((chains, v), dtype=np.int64)
    for c in range(chains):
        live = np.sort(rng.choice(v, size=max(1, int(live_share * v)), replace=False))
        out[c, live] = rng.multinomial(k, rng.dirichlet(np.full(live.size, 0.5)))
    return out


def live_resample(states, dense, k, n, tokens=False):
    """``(dense counts, tokens)`` of :func:`kl.live_resample` from the dense ``dense``."""
    chains = states.shape[0]
    src = cat.Counts(k, dense).live_form()
    out, region = cat._blocked_live(np.minimum(np.broadcast_to(src.live, (chains,)), n),
                                    dense.shape[1])
    toks = np.empty((chains, n if tokens else 0), dtype=np.int32)
    kl.live_resample(states, src.off, src.live, src.ids, src.vals, k, n, toks, region, out.off,
                     out.live, out.ids, out.vals)
    return cat.Counts(n, live=out).counts, toks


def reference_resample(states, dense, k, n, tokens=False):
    chains = states.shape[0]
    out = np.zeros((chains, dense.shape[1]), dtype=np.int64)
    toks = np.empty((chains, n if tokens else 0), dtype=np.int32)
    rows = np.ascontiguousarray(np.broadcast_to(dense, (chains, dense.shape[1])))
    dense_resample(states, rows, k, n, toks, out)
    return out, toks


# -- resampling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 37, 400, 5000])  # uniform picks, then conditional binomials
@pytest.mark.parametrize("tokens", [False, True])
def test_resample_makes_the_draws_of_the_dense_table(n, tokens):
    rng = np.random.default_rng(n)
    dense = random_counts(rng, 9, 60, 500)
    k = 500
    start = chain_streams(3, 9).states
    a, b = start.copy(), start.copy()
    got, got_tokens = live_resample(a, dense, k, n, tokens)
    want, want_tokens = reference_resample(b, dense, k, n, tokens)
    if tokens:  # the reference counts only when it writes no tokens
        np.testing.assert_array_equal(got_tokens, want_tokens)
        want = np.stack([np.bincount(t, minlength=60) for t in want_tokens])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a, b)  # the same stream positions afterwards
    assert np.all(got.sum(axis=1) == n)


def test_resample_with_rejections_and_a_shared_member():
    """A large ``k`` (2**32 mod k = 967,296: about one pick in 4,400 rejected) and one
    member shared by all chains."""
    rng = np.random.default_rng(1)
    v, k, n = 250_000, 1_000_000, 16_000
    dense = random_counts(rng, 1, v, k, live_share=0.004)  # 1000 live: n <= 16 live
    start = chain_streams(8, 24).states
    a, b = start.copy(), start.copy()
    got, _ = live_resample(a, dense, k, n)
    want, _ = reference_resample(b, dense, k, n)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a, b)


# -- draws from a distribution ------------------------------------------------------------------

P = np.array([[0.3, 0.0, 0.05, 0.25, 0.0, 0.1, 0.2, 0.1]])


@pytest.mark.parametrize("n", [0, 5, 100, 2000])  # alias table, then conditional binomials
def test_draw_live_and_shared_tokens_make_the_draws_of_categorical_draw(n):
    chains, v = 17, P.shape[1]
    start = chain_streams(4, chains).states
    a, b, c, d = (start.copy() for _ in range(4))
    out, region = cat._blocked_live(np.full(chains, min(n, 6), dtype=np.int64), v)
    kl.draw_live(a, P, n, region, out.off, out.live, out.ids, out.vals)
    want = np.zeros((chains, v), dtype=np.int64)
    kc.categorical_draw(b, P, n, np.empty((chains, 0), dtype=np.int32), want)
    np.testing.assert_array_equal(cat.Counts(n, live=out).counts, want)
    np.testing.assert_array_equal(a, b)
    tokens = np.empty((chains, n), dtype=np.int32)
    kl.draw_shared_tokens(c, P, n, tokens)
    want_tokens = np.empty((chains, n), dtype=np.int32)
    kc.categorical_draw(d, P, n, want_tokens, np.zeros((chains, v), dtype=np.int64))
    np.testing.assert_array_equal(tokens, want_tokens)
    np.testing.assert_array_equal(c, d)


def test_count_live_and_conversions_round_trip():
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 30, size=(6, 40)).astype(np.int32)
    tokens[2] = 7  # one category only
    counts = cat.count_tokens(tokens, 30)
    want = np.stack([np.bincount(t, minlength=30) for t in tokens])
    np.testing.assert_array_equal(counts.counts, want)
    lv = counts.live_form()
    assert lv.live.tolist() == [np.count_nonzero(r) for r in want]
    for m in range(6):
        ids = lv.ids[lv.off[m]:lv.off[m] + lv.live[m]]
        np.testing.assert_array_equal(ids, np.flatnonzero(want[m]))  # increasing
    back = cat.Counts(40, want).live_form()  # dense -> live -> dense
    np.testing.assert_array_equal(cat.Counts(40, live=back).counts, want)
    assert repr(counts) == "Counts(count=40, chains=6, V=30)"
    with pytest.raises(TypeError, match="one of counts and live"):
        cat.Counts(3)


# -- metrics ------------------------------------------------------------------------------------

@pytest.mark.parametrize("chains,k", [(3, 1000), (300, 60)])  # computed logs, log tables
@pytest.mark.parametrize("logs", [True, False])
def test_live_metrics_give_the_bits_of_the_dense_metrics(chains, k, logs):
    rng = np.random.default_rng(chains)
    v = 40
    dense = random_counts(rng, chains, v, k, live_share=0.5)
    truth = np.r_[rng.dirichlet(np.ones(v - 2)), 0.0, 0.0]  # two impossible categories
    dense[0] = 0  # member 0 keeps every possible category: finite kl and nll
    dense[0, :v - 2] = 1 + rng.multinomial(k - (v - 2), np.full(v - 2, 1 / (v - 2)))
    heldout = np.bincount(rng.choice(v, 30, p=truth), minlength=v) / 30
    tail = (np.arange(v) % 7 == 0)
    with np.errstate(divide="ignore"):
        log_truth = np.log(truth)
    want = np.empty((7, chains))
    kc.categorical_metrics(dense, 0.0, k + v * 0.0, truth, log_truth, tail, heldout, logs, want)
    lv = cat.Counts(k, dense).live_form()
    per_category = np.stack([truth, log_truth, heldout, tail.astype(float)], axis=1)
    flags = (truth > 0).astype(np.int64) + ((heldout > 0).astype(np.int64) << 32)
    got = np.empty((7, chains))
    kl.live_metrics(lv.off, lv.live, lv.ids, lv.vals, k, per_category, flags,
                    np.count_nonzero(truth), np.count_nonzero(heldout), logs, got)
    np.testing.assert_array_equal(got, want)
    if logs:
        assert np.isinf(got[5]).any() and np.isfinite(got[5]).any()  # both kinds exercised
    # tv equals half the L1 distance
    q = dense / k
    np.testing.assert_allclose(got[4], 0.5 * np.abs(q - truth).sum(axis=1), rtol=1e-12,
                               atol=1e-15)


# -- the fused run ------------------------------------------------------------------------------

def simulate_both(monkeypatch, **kw):
    """``(fused, loop)`` results of the same run: the second with the fused run declined."""
    kw = {"record_models": True, "progress": False, **kw}
    fused = cs.simulate(**kw)
    with monkeypatch.context() as m:
        m.setattr(cs.CategoricalFit, "fused_run", lambda *a, stage=None, **k: None)
        loop = cs.simulate(**kw)
    return fused, loop


@pytest.mark.parametrize("sampling", ["exact", "explicit"])
@pytest.mark.parametrize("chains", [1, 5, 8])
@pytest.mark.parametrize("v,n", [(40, 60), (12, 100), (12, 300)])  # picks, mixed, binomials
def test_fused_run_gives_the_models_and_metrics_of_the_loop(monkeypatch, sampling, chains, v,
                                                            n):
    fused, loop = simulate_both(monkeypatch, truth=cs.Zipf(v, 1.2), fitter=cs.CategoricalFit(),
                                n_samples=n, generations=9, chains=chains, seed=21,
                                sampling=sampling)
    assert set(fused.metrics) == set(loop.metrics)
    for name in fused.metrics:
        np.testing.assert_array_equal(fused.metrics[name], loop.metrics[name], err_msg=name)
    np.testing.assert_array_equal(fused.models["probs"], loop.models["probs"])


STAGES = [cs.Temperature(0.8), cs.Temperature(1.7), cs.TopK(5), cs.TopP(0.7),
          cs.Temperature(0.5) | cs.TopK(7), cs.TopP(0.9) | cs.Temperature(0.6),
          cs.TopK(3) | cs.TopP(0.5) | cs.Temperature(2.0)]


@pytest.mark.parametrize("stage", STAGES, ids=repr)
@pytest.mark.parametrize("sampling", ["exact", "explicit"])
@pytest.mark.parametrize("v,n", [(40, 60), (12, 100), (30, 3000), (20, 10**6)])
# alias tables, both, conditional binomials (and no scratch of n items for them)
def test_staged_fused_run_gives_the_models_and_metrics_of_the_loop(monkeypatch, stage,
                                                                   sampling, v, n):
    fused, loop = simulate_both(monkeypatch, truth=cs.Zipf(v, 1.2), fitter=cs.CategoricalFit(),
                                n_samples=n, generations=9, chains=5, seed=21,
                                sampling=sampling, generation=stage)
    assert set(fused.metrics) == set(loop.metrics)
    for name in fused.metrics:
        np.testing.assert_array_equal(fused.metrics[name], loop.metrics[name], err_msg=name)
    np.testing.assert_array_equal(fused.models["probs"], loop.models["probs"])


def random_stage(rng, v):
    """A random sequence of one to three transform stages."""
    parts = []
    for _ in range(rng.integers(1, 4)):
        kind = rng.integers(3)
        if kind == 0:
            parts.append(cs.Temperature(float(np.exp(rng.uniform(np.log(0.05), np.log(5))))))
        elif kind == 1:
            parts.append(cs.TopK(int(rng.integers(1, v + 4))))
        else:
            parts.append(cs.TopP(float(rng.uniform(0.05, 1.0))))
    stage = parts[0]
    for part in parts[1:]:
        stage = stage | part
    return stage


@pytest.mark.parametrize("seed", range(12))
def test_staged_fused_run_on_random_settings(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    v = int(rng.integers(2, 80))
    n = int(rng.choice([2, 3, 7, 50, 300, 5000]))
    stage = random_stage(rng, v)
    fused, loop = simulate_both(monkeypatch, truth=cs.Zipf(v, float(rng.uniform(0.3, 2.0))),
                                fitter=cs.CategoricalFit(), n_samples=n,
                                generations=int(rng.integers(1, 7)),
                                chains=int(rng.integers(1, 8)), seed=seed,
                                sampling=str(rng.choice(["exact", "explicit"])),
                                generation=stage)
    for name in fused.metrics:
        np.testing.assert_array_equal(fused.metrics[name], loop.metrics[name],
                                      err_msg=f"{name}, {stage!r}")
    np.testing.assert_array_equal(fused.models["probs"], loop.models["probs"])


def test_tempered_counts_whose_power_overflows():
    # tau = 0.01: 3000**100 overflows; the counts are divided by their largest first, in
    # the loop (powered_rows) and in the fused run alike, so the weights stay finite
    counts = np.array([[3000, 2990, 5, 0]])
    model = cat.Categorical._from_counts(cat.Counts(5995, counts), 0.0)
    probs = cat._tempered(cs.Temperature(0.01), model).probs[0]
    w = (counts[0] / 3000) ** 100
    # c / 3000 is rounded once (half an ulp), which the power multiplies by 100: 50 ulp
    np.testing.assert_allclose(probs, w / w.sum(), rtol=1e-13, atol=0)
    assert probs[2] > 0 and probs[3] == 0


@pytest.mark.parametrize("stage", [None, cs.Temperature(0.8) | cs.TopP(0.95)], ids=repr)
def test_fused_run_in_small_blocks_and_across_builds(monkeypatch, threads, stage):
    kw = {"truth": cs.Zipf(300, 1.0), "fitter": cs.CategoricalFit(), "n_samples": 200,
          "generations": 12, "chains": 101, "seed": 2, "generation": stage}
    whole = cs.simulate(**kw)
    monkeypatch.setattr(cat, "FUSED_BLOCK_ENTRIES", 3000)  # blocks of a few generations
    blocks = cs.simulate(**kw)
    threads(1)
    one = cs.simulate(**kw)
    for name in whole.metrics:
        np.testing.assert_array_equal(whole.metrics[name], blocks.metrics[name], err_msg=name)
        np.testing.assert_array_equal(whole.metrics[name], one.metrics[name], err_msg=name)


def test_live_run_parallel_build_equals_serial_build():
    truth = cs.Zipf(500, 1.0)
    chains, n, size = 301, 400, 6  # odd: the last chain runs alone
    start = chain_streams(5, chains)
    src = truth.draw_statistics(n, start, exact=True).live_form()
    capacity = np.minimum(src.live, n)
    outs = []
    for build in (kl.live_run.serial, kl.live_run.parallel):
        out, region = cat._blocked_live(capacity, 500, size)
        states = start.states.copy()
        build(states, src.off, src.live, src.ids, src.vals, n, n, region, out.off, out.live,
              out.ids, out.vals)
        dense = cat.Counts(n, live=out).counts  # the entries in use only
        outs.append((states, out.off, out.live, dense))
    for a, b in zip(*outs, strict=True):  # states, offsets, live counts, counts
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("policy,fitter,stage", [
    (cs.Replace(), cs.CategoricalFit(), None),
    (cs.KeepReal(0.2), cs.CategoricalFit(), None),
    (cs.Replace(), cs.CategoricalFit(smoothing=0.5), None),
    (cs.Replace(), cs.CategoricalFit(), cs.Temperature(0.8)),
    (cs.Replace(), cs.CategoricalFit(), cs.Temperature(0.8) | cs.TopK(5) | cs.TopP(0.9)),
    (cs.Replace(), cs.CategoricalFit(), cs.BestOfK(3)),
    (cs.Replace(), cs.CategoricalFit(), cs.TopK(5) | cs.BestOfK(3)),
    (cs.KeepReal(0.2), cs.CategoricalFit(), cs.TopK(5)),
])
def test_fused_run_only_where_it_is_the_loop(policy, fitter, stage):
    truth = cs.Zipf(20)
    plan = policy.plan(50)
    blocks = fitter.fused_run(truth, plan, 50, 4, chain_streams(0, 3), exact=True, stage=stage)
    transforms = stage is None or all(type(s) in (cs.Temperature, cs.TopK, cs.TopP)
                                      for s in stage.parts)
    fused = type(policy) is cs.Replace and fitter.smoothing == 0 and transforms
    assert (blocks is not None) == fused


# -- recycled buffers ---------------------------------------------------------------------------

def test_recycled_buffers_never_overwrite_counts_someone_holds():
    truth = cs.Zipf(200, 1.0)
    kept = truth.draw_statistics(100, chain_streams(0, 50), exact=True)
    lv = kept.live_form()
    snapshot = cat.Counts(100, live=lv).counts.copy()
    for seed in range(1, 6):  # dropped at once: their buffers are lent again
        truth.draw_statistics(100, chain_streams(seed, 50), exact=True)
    np.testing.assert_array_equal(cat.Counts(100, live=kept.live_form()).counts, snapshot)
    first = truth.draw_statistics(100, chain_streams(7, 50), exact=True).live_form()
    addresses = {a.__array_interface__["data"][0] for a in (first.ids, first.vals)}
    del first
    again = truth.draw_statistics(100, chain_streams(8, 50), exact=True).live_form()
    # lent again once dropped (the most recently lent buffers of their size come first)
    assert {a.__array_interface__["data"][0] for a in (again.ids, again.vals)} == addresses


def test_models_kept_by_a_metric_keep_their_counts(monkeypatch):
    """A custom metric that keeps every model it measures: the fused run's later blocks
    (a generation or two each here) must not reuse those models' buffers."""
    monkeypatch.setattr(cat, "FUSED_BLOCK_ENTRIES", 8000)
    kept = []

    def keep(truth, model, ctx):
        kept.append(model)
        return np.zeros(model.batch_size)

    registry.register_metric("kept_models_test", cs.Categorical, cs.Categorical, keep,
                       default=False, replace=True)
    sim = cs.simulate(cs.Zipf(300, 1.0), cs.CategoricalFit(), n_samples=200, generations=8,
                      chains=40, seed=3, metrics=["kept_models_test", "support"],
                      record_models=True, progress=False)
    assert len(kept) > 4  # several blocks
    probs = np.concatenate([m.probs.reshape(-1, 40, 300) for m in kept[1:]])
    np.testing.assert_array_equal(probs, sim.models["probs"][1:])


# -- writes stay inside the output ----------------------------------------------------------------

SENTINEL = -7


def padded(out, extra=64):
    """``out`` with its entry arrays extended by ``extra`` sentinel entries (returned
    apart, to be checked untouched)."""
    size = out.ids.shape[0]
    ids = np.full(size + extra, SENTINEL, dtype=np.int32)
    vals = np.full(size + extra, SENTINEL, dtype=np.int32)
    return cat.LiveCounts(out.off, out.live, ids[:size], vals[:size], out.n_categories), ids, vals


@pytest.mark.parametrize("chains", [3, 16, 40])
def test_kernels_write_nothing_past_the_region(chains):
    """Compaction stores every entry at the next free place: a chain filling its
    capacity (here n = 1 draw among many live categories) stores one entry past it,
    which must land in its own block's spare entry, never past the output."""
    rng = np.random.default_rng(chains)
    dense = random_counts(rng, chains, 80, 400, live_share=0.5)
    src = cat.Counts(400, dense).live_form()
    states = chain_streams(1, chains).states
    for n in (1, 2):
        out, region = cat._blocked_live(np.minimum(src.live, n), 80)
        out, ids, vals = padded(out)
        kl.live_resample(states, src.off, src.live, src.ids, src.vals, 400, n,
                         np.empty((chains, 0), dtype=np.int32), region, out.off, out.live,
                         out.ids, out.vals)
        assert np.all(ids[out.ids.shape[0]:] == SENTINEL) and np.all(
            vals[out.vals.shape[0]:] == SENTINEL)
        out, region = cat._blocked_live(np.minimum(src.live, n), 80, 3)
        out, ids, vals = padded(out)
        kl.live_run(states, src.off, src.live, src.ids, src.vals, 400, n, region, out.off,
                    out.live, out.ids, out.vals)
        assert np.all(ids[out.ids.shape[0]:] == SENTINEL)
    tokens = rng.integers(0, 80, size=(chains, 1)).astype(np.int32)
    out, region = cat._blocked_live(np.ones(chains, dtype=np.int64), 80)
    out, ids, vals = padded(out)
    kl.count_live(tokens, 80, region, out.off, out.live, out.ids, out.vals)
    assert np.all(ids[out.ids.shape[0]:] == SENTINEL)
    out, region = cat._blocked_live(np.ones(chains, dtype=np.int64), 8)
    out, ids, vals = padded(out)
    kl.draw_live(states, P, 1, region, out.off, out.live, out.ids, out.vals)
    assert np.all(ids[out.ids.shape[0]:] == SENTINEL)
    np.testing.assert_array_equal(out.live, 1)


def test_metric_tables_follow_a_held_out_array_changed_in_place():
    truth = cs.Zipf(20, 1.0)
    model = cat.CategoricalFit().fit(np.arange(20).repeat(np.arange(1, 21))[None], 20)
    heldout = np.arange(10)
    first = cat.nll(truth, model, heldout)
    heldout[:] = 0  # the same array, other items
    changed = cat.nll(cat.Categorical(truth.probs), model, heldout)  # a fresh truth: no memo
    np.testing.assert_array_equal(cat.nll(truth, model, heldout), changed)
    assert not np.array_equal(first, changed)
    heldout[:] = 19  # and again, with the model's own memo last filled for this truth
    assert cat.nll(truth, model, heldout)[0] == cat.nll(cat.Categorical(truth.probs), model,
                                                        heldout.copy())[0]
