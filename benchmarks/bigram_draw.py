"""The maximum-likelihood bigram draw against the one-group draw it replaced, one thread.

``collapse_sim._kernels.ngram.generate_bigram`` walks ``BIGRAM_GROUPS`` groups of
``LANES`` sequences at once, takes their draws first (in the stream's order) and writes
the tokens through a position-major scratch. Before 2026-12-03 it walked one group of
``LANES`` sequences, drawing as it went and writing every token straight into its row;
that kernel is kept below (:func:`one_group`) as the reference. Both write the same
tokens from the same draws (checked here; tests/test_ngram.py checks the library's
against the general kernel). This script times the two serially on Shakespeare word
bigrams (``NGramFit(order=2)`` fitted to real blocks of 64 tokens), 10^6 tokens a call,
at 1, 8 and 64 chains, alternating for :data:`ROUNDS` rounds in one process::

    python benchmarks/bigram_draw.py

It prints, per size, both medians and the median and min-max of the per-round ratio
one-group / library (above 1: the library's is faster).
"""

from __future__ import annotations

import time

import numba as nb
import numpy as np

import collapse_sim as cs
import collapse_sim.families.ngram as family
from collapse_sim._kernels import local
from collapse_sim._kernels import ngram as kn
from collapse_sim.sampling import chain_streams

SIZES = ((1, 15625), (8, 2048), (64, 256))  # (chains, blocks of 64 tokens per chain)
ROUNDS = 15
LANES = kn.LANES


@nb.njit
def one_group(states, node_off, entry_off, count, efirst, enum, ecum, occ_off, noff, occ,
              start, out):
    """The draw of ``generate_bigram`` before 2026-12-03 (serial): one group of LANES
    sequences in lockstep, each position in two passes over the lanes (every lane's event
    index with its draw, then every event), each token written straight into its row."""
    chains, k, length = out.shape
    single = node_off.shape[0] == 2
    low = np.int64(0xFFFFFFFF)
    for c in range(chains):
        m = np.int64(c)
        if single:
            m = 0
        a = node_off[m]
        e0 = entry_off[m] + efirst[a]
        base = a + m
        o = occ_off[m]
        events = o + enum[a]
        root_total = np.int64(count[a])
        root_last = enum[a] - 1
        lane_state = np.empty(LANES, dtype=np.int64)
        lane_event = np.empty(LANES, dtype=np.int64)
        st = states[c]
        s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
        for b0 in range(0, k, LANES):
            lanes = min(LANES, k - b0)
            for lane in range(lanes):
                lane_state[lane] = start[m]
            for i in range(length):
                for lane in range(lanes):
                    g = lane_state[lane]
                    lo = noff[base + g]
                    total = noff[base + g + 1] - lo
                    u, s0, s1, s2, s3 = local.uniform(s0, s1, s2, s3)
                    if total > 0:
                        lane_event[lane] = events + lo + min(np.int64(u * total), total - 1)
                    else:
                        target = min(np.int64(u * root_total), root_total - 1)
                        lane_event[lane] = o + kn._first_above(ecum, e0, 0, root_last,
                                                               target)
                for lane in range(lanes):
                    packed = occ[lane_event[lane]]
                    out[c, b0 + lane, i] = np.int32(packed & low)
                    lane_state[lane] = packed >> 32
        st[0], st[1], st[2], st[3] = s0, s1, s2, s3


def kernel_arguments(truth, chains: int, blocks: int) -> tuple[list, np.ndarray]:
    """The arguments ``model.draw`` passes to ``generate_bigram`` (captured from a draw
    of a model fitted to real blocks) and the streams' state before that draw."""
    model = cs.NGramFit(order=2).fit(truth.draw(blocks, chain_streams(0, chains)), truth)
    seen = {}
    library = kn.generate_bigram

    def capture(*args):
        seen["states"] = args[0].copy()
        seen["args"] = list(args)
        return library(*args)

    family._kn.generate_bigram = capture
    try:
        model.draw(blocks, chain_streams(1, chains))
    finally:
        family._kn.generate_bigram = library
    return seen["args"], seen["states"]


def main() -> None:
    truth = cs.NGramTruth(cs.text.shakespeare(), order=2, heldout=0.1, block_size=64)
    sides = {"one group": one_group, "library": kn.generate_bigram.serial}
    for chains, blocks in SIZES:
        args, states = kernel_arguments(truth, chains, blocks)
        calls = {}
        for name, kernel in sides.items():  # compile, and check the tokens agree
            mine = list(args)
            mine[0] = states.copy()
            mine[-1] = np.empty_like(args[-1])
            kernel(*mine)
            calls[name] = mine
        assert np.array_equal(calls["one group"][-1], calls["library"][-1]), "tokens differ"
        assert np.array_equal(calls["one group"][0], calls["library"][0]), "streams differ"
        times = {name: [] for name in sides}
        for _ in range(ROUNDS):
            for name, kernel in sides.items():
                mine = calls[name]
                mine[0][:] = states
                t0 = time.perf_counter()
                kernel(*mine)
                times[name].append(time.perf_counter() - t0)
        ratio = np.array(times["one group"]) / np.array(times["library"])
        print(f"{chains:3d} chains x {blocks * 64:8d} tokens: one group "
              f"{np.median(times['one group']) * 1e3:6.2f} ms, library "
              f"{np.median(times['library']) * 1e3:6.2f} ms; ratio {np.median(ratio):.2f} "
              f"(per round {ratio.min():.2f}-{ratio.max():.2f}); the same tokens")


if __name__ == "__main__":
    main()
