"""Numba-jitted internals of collapse_sim (private).

Kernels never own a random generator: every random draw comes from per-chain
xoshiro256++ states passed in as a ``(chains, 4)`` ``uint64`` array, advanced in
place. Chain ``c`` only ever touches row ``c``, so a ``prange`` over chains gives
bit-identical results whatever the thread count. Public, validated wrappers live
in :mod:`collapse_sim.sampling`, :mod:`collapse_sim.fitting` and
:mod:`collapse_sim.metrics`.
"""
