"""The staged categorical kernels: ``categorical.keep_top`` (TopK/TopP) against a sorted
reference with ties, and ``staged_counts.staged_run`` across builds (its
equality with the generation-by-generation loop is in ``test_live_counts.py``)."""

import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim._kernels import categorical as kc
from collapse_sim._kernels import staged_counts as ks
from collapse_sim.families import categorical as cat
from collapse_sim.sampling import chain_streams


def reference_keep_top(p, top_k, top_p):
    """The likeliest categories of ``p`` (a stable sort of -p: ties by category id)."""
    live = np.flatnonzero(p > 0)
    order = live[np.argsort(-p[live], kind="stable")]
    if top_k > 0:
        keep = min(top_k, live.size)
    else:
        running = np.cumsum(p[order])
        keep = int(np.argmax(running >= (top_p - 1e-12) * p[live].sum())) + 1
    out = np.zeros_like(p)
    out[order[:keep]] = p[order[:keep]] / p[order[:keep]].sum()
    return out


@pytest.mark.parametrize("top_k,top_p", [(1, 0.0), (3, 0.0), (7, 0.0), (50, 0.0),
                                         (0, 0.3), (0, 0.5), (0, 0.9), (0, 1.0)])
def test_keep_top_keeps_the_likeliest_with_ties_by_id(top_k, top_p):
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 5, size=(40, 30))  # many ties, some dead categories
    counts[:, 0] = np.maximum(counts[:, 0], 1)
    probs = counts / counts.sum(axis=1, keepdims=True)
    out = np.empty_like(probs)
    kc.keep_top(probs, top_k, top_p, out)
    for c in range(probs.shape[0]):
        want = reference_keep_top(probs[c], top_k, top_p)
        np.testing.assert_array_equal(out[c] > 0, want > 0)
        # the mass is summed in category order here, in rank order in the reference: two
        # orders of at most 30 positive terms differ by at most 30 roundings of 2**-53
        np.testing.assert_allclose(out[c], want, rtol=4e-16 * 30, atol=0)


def staged_once(build, stage, states, source, n, size):
    ops = cat._stage_ops(stage)
    powers = np.empty(n + 1)
    ks.count_powers(ops[1][0], n, powers)
    capacity = np.minimum(np.broadcast_to(source.live, (states.shape[0],)), n)
    out, region = cat._blocked_live(capacity, source.n_categories, size)
    build(states, source.off, source.live, source.ids, source.vals, n, n, ops[0], ops[1],
          powers, region, out.off, out.live, out.ids, out.vals)
    return cat.Counts(n, live=out).counts


@pytest.mark.parametrize("stage", [cs.Temperature(0.7), cs.TopK(40) | cs.Temperature(1.3),
                                   cs.TopP(0.8)], ids=repr)
def test_staged_run_parallel_build_equals_serial_build(stage):
    truth = cs.Zipf(500, 1.0)
    chains, n, size = 301, 400, 6  # odd: the last chain runs alone
    start = chain_streams(5, chains)
    source = truth.draw_statistics(n, start, exact=True).live_form()
    outs = []
    for build in (ks.staged_run.serial, ks.staged_run.parallel):
        states = start.states.copy()
        outs.append((states, staged_once(build, stage, states, source, n, size)))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)
