"""1-D SGD fits two chains at a time in lockstep against one chain at a time, one thread.

The library's 1-D SGD kernels (``collapse_sim._kernels.sgd``: ``sgd_gaussian_1d``,
``sgd_run_1d``) fit chains in pairs with ``_sgd_1d_two``; the one-chain fit ``_sgd_1d``
is what they ran before (and still run for the last chain of an odd count). Both give
the same numbers, bit for bit (checked here and in tests/test_sgd.py). This script times
them on the same data, 1000 chains of 100 standard-normal points, 5 epochs of batch 10,
rate 0.05 (``bench_sgd``'s setting), on one thread, the two alternating for
:data:`ROUNDS` rounds in one process (so both see the same machine state)::

    python benchmarks/sgd_lockstep.py

It prints the median time of each and the median and min-max of the per-round ratio
one-chain / pairs (above 1: the pairs are faster).
"""

from __future__ import annotations

import math
import time

import numba as nb
import numpy as np

from collapse_sim._kernels import sgd
from collapse_sim.sampling import chain_streams

CHAINS, N, BATCH, EPOCHS, LR = 1000, 100, 10, 5, 0.05
ROUNDS = 40


@nb.njit(error_model="numpy")
def one_at_a_time(x, states, mean, var, lr, batch, epochs):
    """Every chain by ``_sgd_1d`` alone, from N(0, 1), as the kernels did before."""
    for c in range(x.shape[0]):
        mu, ell = sgd._sgd_1d(x[c], states[c], 0.0, 0.0, lr, batch, epochs, 0.0, 0, 0.0)
        mean[c] = mu
        var[c] = math.exp(2.0 * ell)


def in_pairs(x, states, mean, var, lr, batch, epochs):
    """The library's kernel (pairs), serial build."""
    sgd.sgd_gaussian_1d.serial(x, states, mean, var, False, lr, batch, epochs, 0.0, 0, 0.0)


def main() -> None:
    x = np.random.default_rng(0).standard_normal((CHAINS, N))
    start = chain_streams(0, CHAINS).states.copy()
    sides = {"one chain at a time": one_at_a_time, "pairs (library)": in_pairs}
    outs = {}
    for name, fit in sides.items():  # compile, and check the numbers agree
        mean, var = np.empty(CHAINS), np.empty(CHAINS)
        fit(x, start.copy(), mean, var, LR, BATCH, EPOCHS)
        outs[name] = (mean, var)
    (m1, v1), (m2, v2) = outs.values()
    assert np.array_equal(m1, m2) and np.array_equal(v1, v2), "the two forms differ"
    times = {name: [] for name in sides}
    for _ in range(ROUNDS):
        for name, fit in sides.items():
            states = start.copy()
            t0 = time.perf_counter()
            fit(x, states, *outs[name], LR, BATCH, EPOCHS)
            times[name].append(time.perf_counter() - t0)
    for name, t in times.items():
        print(f"{name:22s} {np.median(t) * 1e3:7.3f} ms for {CHAINS} fits (median of {ROUNDS})")
    ratio = np.array(times["one chain at a time"]) / np.array(times["pairs (library)"])
    print(f"ratio one-chain / pairs: {np.median(ratio):.2f} (per round {ratio.min():.2f}-"
          f"{ratio.max():.2f}); the same numbers bit for bit")


if __name__ == "__main__":
    main()
