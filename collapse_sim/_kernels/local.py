"""Random draws on register-resident xoshiro256++ state, for kernels that keep a chain's
four state words in local variables (load once, write back once).

Each function takes the four words and returns ``(value, s0, s1, s2, s3)``; the streams are
those of :mod:`collapse_sim._kernels.rng` (same words, same order of use), so a kernel that
switches to these draws the same numbers.
"""

import math

import numba as nb
import numpy as np

from . import categorical as _categorical  # a module, not a name: the imports form a cycle
from .rng import _MASK52, _SHIFT_53, _U64, _ZIG_F, _ZIG_INV_R, _ZIG_K, _ZIG_R, _ZIG_W


@nb.njit(inline="always")
def uniform(s0, s1, s2, s3):
    r, s0, s1, s2, s3 = _categorical._xoshiro(s0, s1, s2, s3)
    return np.float64(r >> _U64(11)) * _SHIFT_53, s0, s1, s2, s3


@nb.njit(inline="always")
def normal(s0, s1, s2, s3):
    """One standard normal (the ziggurat of :func:`rng.next_normal`, same stream) on
    register-resident state: (value, new state)."""
    while True:
        r, s0, s1, s2, s3 = _categorical._xoshiro(s0, s1, s2, s3)
        idx = np.int64(r & _U64(0xFF))
        r = r >> _U64(8)
        sign = r & _U64(1)
        rabs = (r >> _U64(1)) & _MASK52
        x = np.float64(rabs) * _ZIG_W[idx]
        if sign:
            x = -x
        if rabs < _ZIG_K[idx]:
            return x, s0, s1, s2, s3
        if idx == 0:
            while True:
                u, s0, s1, s2, s3 = uniform(s0, s1, s2, s3)
                v, s0, s1, s2, s3 = uniform(s0, s1, s2, s3)
                xx = -_ZIG_INV_R * math.log1p(-u)
                yy = -math.log1p(-v)
                if yy + yy > xx * xx:
                    out = -(_ZIG_R + xx) if (rabs >> _U64(8)) & _U64(1) else _ZIG_R + xx
                    return out, s0, s1, s2, s3
        else:
            u, s0, s1, s2, s3 = uniform(s0, s1, s2, s3)
            if (_ZIG_F[idx - 1] - _ZIG_F[idx]) * u + _ZIG_F[idx] < math.exp(-0.5 * x * x):
                return x, s0, s1, s2, s3
