"""xoshiro256++ streams and the Marsaglia polar method, jitted.

xoshiro256++ (Blackman & Vigna, "Scrambled linear pseudorandom number
generators", ACM TOMS 47(4), 2021) has 256 bits of state, period 2^256 - 1 and
passes BigCrush and PractRand; all 64 output bits are usable. Doubles in [0, 1)
take the top 53 bits. Normals come from the Marsaglia polar method, one pair per
accepted point (acceptance probability pi/4); the spare of an odd count is
discarded so that a call's consumption depends only on its own length.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel

_U64 = nb.uint64
_SHIFT_53 = 1.0 / 9007199254740992.0  # 2**-53


@nb.njit(inline="always")
def _rotl(x, k):
    return (x << _U64(k)) | (x >> _U64(64 - k))


@nb.njit(inline="always")
def _next(s):
    """Advance the 4-word state ``s`` in place and return the next 64-bit output."""
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << _U64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@nb.njit(inline="always")
def next_double(s):
    """Uniform double in [0, 1) from the top 53 bits."""
    return np.float64(_next(s) >> _U64(11)) * _SHIFT_53


@nb.njit(inline="always")
def next_below(s, m):
    """Uniform integer in [0, m), m >= 1, as floor(U * m) (bias below m / 2**53)."""
    limit = np.float64(m)
    while True:
        r = np.int64(next_double(s) * limit)
        if r < m:
            return r


@nb.njit(inline="always")
def _fill_normal_row(s, out):
    """Fill the 1-D array ``out`` with standard normals from state ``s``."""
    n = out.shape[0]
    i = 0
    while i < n:
        while True:
            u = 2.0 * next_double(s) - 1.0
            v = 2.0 * next_double(s) - 1.0
            r2 = u * u + v * v
            if r2 < 1.0 and r2 > 0.0:
                break
        f = math.sqrt(-2.0 * math.log(r2) / r2)
        out[i] = u * f
        if i + 1 < n:
            out[i + 1] = v * f
        i += 2


@chain_kernel
def fill_standard_normal(states, out):
    """Fill ``out[c]`` (any trailing shape, C-contiguous) with normals from ``states[c]``."""
    chains = out.shape[0]
    flat = out.reshape(chains, -1)
    for c in nb.prange(chains):
        _fill_normal_row(states[c], flat[c])


@chain_kernel
def fill_uniform(states, out):
    """Fill ``out[c]`` (2-D, C-contiguous) with uniforms in [0, 1) from ``states[c]``."""
    for c in nb.prange(out.shape[0]):
        s = states[c]
        row = out[c]
        for i in range(row.shape[0]):
            row[i] = next_double(s)


@chain_kernel
def fill_raw(states, out):
    """Fill ``out[c]`` (2-D uint64) with raw 64-bit outputs (for generator tests)."""
    for c in nb.prange(out.shape[0]):
        s = states[c]
        row = out[c]
        for i in range(row.shape[0]):
            row[i] = _next(s)
