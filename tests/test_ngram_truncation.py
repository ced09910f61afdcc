"""Top-k and top-p for n-gram language models: the law of the words written, against the
exact truncated next-token distributions computed from the counts (issue 14)."""

import itertools

import numpy as np
import pytest
from scipy import stats

import collapse_sim as cs
from collapse_sim import stages
from collapse_sim.sampling import chain_streams

TEXT = ("the cat sat on the mat . the dog sat on the log . a cat and a dog ran . "
        "the cat ran to the dog . a bird sat . ") * 3


def fitted(order, smoothing):
    truth = cs.NGramTruth(cs.text.Corpus.from_string(TEXT), order=order, heldout=0.0,
                          block_size=8)
    model = cs.NGramFit(order=order, smoothing=smoothing).fit_chains(
        truth.draw(truth.train_blocks, chain_streams(0, 1)), streams=chain_streams(1, 1),
        truth=truth)
    return truth, model


def unigram_law(model, smoothing, beta, top_k=0, top_p=0.0):
    """The exact law of an order-1 model's tokens: weights (c + a)^beta over all V tokens
    (c = 0 for unseen), ranked by count then id, truncated; unseen tokens as one block."""
    v = model.n_types
    counts = _counts(model)
    w = (counts + smoothing) ** beta * ((counts > 0) | (smoothing > 0))
    seen = np.flatnonzero(counts > 0)
    order = seen[np.lexsort((seen, -counts[seen]))]
    unseen = np.flatnonzero(counts == 0)
    keep = np.zeros(v, dtype=bool)
    if top_k:
        keep[order[:top_k]] = True
        keep[unseen] = len(order) < top_k
    else:
        total = w.sum()
        running = 0.0
        for _i, t in enumerate(order):
            keep[t] = True
            running += w[t]
            if running >= (top_p - 1e-12) * total:
                break
        else:
            keep[unseen] = True
    q = np.where(keep, w, 0.0)
    return q / q.sum()


def _counts(model):
    """The root context's counts: the smoothed unigram probabilities times
    (tokens + alpha V), minus alpha."""
    p = model.unigram()[0]
    return np.rint(p * (model.training_tokens + model.smoothing * model.n_types)
                   - model.smoothing)


@pytest.mark.parametrize("stage, beta", [(cs.TopK(3), 1.0), (cs.TopK(40), 1.0),
                                         (cs.TopP(0.5), 1.0), (cs.TopP(0.97), 1.0),
                                         (cs.TopP(0.5) | cs.Temperature(0.5), 2.0),
                                         (cs.Temperature(0.5) | cs.TopP(0.5), 2.0)])
def test_unigram_tokens_follow_the_truncated_law(stage, beta):
    smoothing = 0.5
    _truth, model = fitted(1, smoothing)
    staged = stages.sampling_model(stage, model)
    words = staged.draw(4000, chain_streams(2, 1)).ravel()
    steps = stage.stages if hasattr(stage, "stages") else (stage,)
    top = next(s for s in steps if not isinstance(s, cs.Temperature))
    # the kept set is chosen at the temperature in force when the truncation applies
    beta_at_cut = beta if steps[0] is not top else 1.0
    law = unigram_law(model, smoothing, beta_at_cut, getattr(top, "k", 0), getattr(top, "p", 0.0))
    law = (law ** (beta / beta_at_cut)) * (law > 0)
    law /= law.sum()
    observed = np.bincount(words, minlength=model.n_types)
    assert observed[law == 0].sum() == 0   # nothing outside the kept set
    live = law > 0
    # chi-square goodness of fit on the kept tokens (expected counts >= 5 pooled)
    exp = law[live] * words.size
    big = exp >= 5
    f_obs = np.append(observed[live][big], observed[live][~big].sum())
    f_exp = np.append(exp[big], exp[~big].sum())
    if f_exp[-1] == 0:
        f_obs, f_exp = f_obs[:-1], f_exp[:-1]
    assert stats.chisquare(f_obs, f_exp).pvalue > 1e-3


def test_top_1_of_a_bigram_model_writes_one_continuation_per_word():
    _truth, model = fitted(2, 0.0)
    out = stages.sampling_model(cs.TopK(1), model).draw(50, chain_streams(3, 1))[0]
    # every word it writes after a given word is the same one: that word's likeliest
    # follower (a deterministic continuation; the law tests check which one)
    pairs = {}
    for row in out:
        for a, b in itertools.pairwise(row):
            pairs.setdefault(int(a), set()).add(int(b))
    assert all(len(followers) == 1 for followers in pairs.values())


def test_simulation_with_ngram_top_p_runs_and_loses_vocabulary_faster():
    truth = cs.NGramTruth(cs.text.python_docs(), order=2, heldout=0.1, block_size=32)
    kw = dict(n_samples=3200, generations=4, chains=3, seed=0, metrics=["vocabulary"])
    plain = cs.simulate(truth, cs.NGramFit(), **kw)
    nucleus = cs.simulate(truth, cs.NGramFit(), generation=cs.TopP(0.8), **kw)
    assert np.all(nucleus.metrics["vocabulary"][-1] < plain.metrics["vocabulary"][-1])
