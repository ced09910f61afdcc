"""Seed handling: one independent xoshiro256++ stream per chain.

Every random quantity of a simulation descends from one
:class:`numpy.random.SeedSequence`. Its child ``spawn_key=(0,)`` gives a 256-bit
key from which chain ``c``'s state is derived by SplitMix64 (see
:func:`chain_states`), so chain ``c``'s draws depend only on the seed and its
index: the same whether 10 or 10,000 chains run, on 1 thread or many. Shared
quantities (the held-out sample of the ``nll`` metric) use spawn keys ``(1, ...)``.
"""

from __future__ import annotations

import numbers

import numpy as np

SeedLike = int | np.random.SeedSequence | np.random.Generator | None

CHAIN_KEY = 0
SHARED_KEY = 1
#: Words per chain in a state array: 4 used, the rest padding, so that no two chains'
#: states share a 64-byte cache line (threads advancing neighbouring chains would
#: otherwise invalidate each other's line on every draw: measured 6x slower on 2 cores).
STATE_STRIDE = 16


def as_seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """Normalise ``seed`` to a root :class:`~numpy.random.SeedSequence`.

    ``None`` draws fresh OS entropy (recorded in the result, so the run can be
    repeated); an ``int`` >= 0 or a ``SeedSequence`` is used as is; a
    ``Generator`` is consumed for 128 bits of entropy, so two calls with the same
    generator object give different, reproducible runs.
    """
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key)
    if isinstance(seed, np.random.Generator):
        words = seed.integers(0, 2**32, size=4, dtype=np.uint64)
        return np.random.SeedSequence(sum(int(w) << (32 * i) for i, w in enumerate(words)))
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        return np.random.SeedSequence(int(seed))
    raise TypeError(
        "seed must be None, a non-negative int, a numpy SeedSequence or a numpy Generator, "
        f"got {type(seed).__name__}"
    )


def _state_from(seq: np.random.SeedSequence) -> np.ndarray:
    state = seq.generate_state(4, np.uint64)
    if not state.any():  # the all-zero state is xoshiro's only fixed point
        state[0] = np.uint64(0x9E3779B97F4A7C15)
    return state


def chain_states(root: np.random.SeedSequence, chains: int, first: int = 0) -> np.ndarray:
    """xoshiro256++ states for chains ``first .. first+chains-1``.

    Shape ``(chains, STATE_STRIDE)`` uint64; words 0-3 of each row are the state.
    A 256-bit key ``K`` comes from ``SeedSequence(entropy, spawn_key=(..., 0))``;
    chain ``c``'s four words are outputs ``4c+1 .. 4c+4`` of the SplitMix64
    generator started at ``K[0]``, each XOR-ed with ``K[j]`` (SplitMix64 is the
    seeding procedure xoshiro's authors recommend; consecutive, disjoint blocks of
    one SplitMix64 stream give distinct, decorrelated states). It depends only on
    the seed and ``c``, and costs nanoseconds per chain.
    """
    key = _state_from(np.random.SeedSequence(root.entropy,
                                             spawn_key=(*root.spawn_key, CHAIN_KEY)))
    out = np.zeros((chains, STATE_STRIDE), dtype=np.uint64)
    _splitmix_states(key, first, out)
    return out


def _splitmix_states(key: np.ndarray, first: int, out: np.ndarray) -> None:
    from ._kernels.rng import splitmix_states

    splitmix_states(key, np.uint64(first), out)
    if not out[:, :4].any(axis=1).all():  # all-zero is xoshiro's fixed point (p ~ 2^-256)
        raise RuntimeError("degenerate xoshiro state derived; use another seed")


def shared_state(root: np.random.SeedSequence, index: int) -> np.ndarray:
    """One stream, shape ``(1, STATE_STRIDE)``, for a quantity shared by all chains."""
    child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, SHARED_KEY, index))
    out = np.zeros((1, STATE_STRIDE), dtype=np.uint64)
    out[0, :4] = _state_from(child)
    return out


def seed_record(root: np.random.SeedSequence) -> dict:
    """JSON-serialisable record of ``root`` (Python's json keeps big ints exactly)."""
    entropy = root.entropy
    if not isinstance(entropy, numbers.Integral):
        entropy = [int(e) for e in entropy]
    return {"entropy": int(entropy) if isinstance(entropy, numbers.Integral) else entropy,
            "spawn_key": [int(k) for k in root.spawn_key]}


def seed_from_record(record: dict) -> np.random.SeedSequence:
    """Inverse of :func:`seed_record`."""
    return np.random.SeedSequence(record["entropy"], spawn_key=tuple(record["spawn_key"]))
