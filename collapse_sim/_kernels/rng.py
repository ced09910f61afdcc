"""xoshiro256++ streams and the ziggurat normal sampler, jitted.

xoshiro256++ (Blackman & Vigna, "Scrambled linear pseudorandom number
generators", ACM TOMS 47(4), 2021) has 256 bits of state, period 2^256 - 1 and
passes BigCrush and PractRand; all 64 output bits are usable. Doubles in [0, 1)
take the top 53 bits.

Normals come from the 256-layer ziggurat of Marsaglia & Tsang (J. Stat. Softw.
5(8), 2000) in the form numpy's ``Generator.standard_normal`` uses: one 64-bit
word gives the layer (8 bits), the sign (1 bit) and a 52-bit abscissa, so the
layer and the value never share bits (the flaw Doornik 2005 found in the
original 32-bit code). 99.3% of draws cost one word and one comparison.
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel

_U64 = nb.uint64
_SHIFT_53 = 1.0 / 9007199254740992.0  # 2**-53


@nb.njit
def _rotl(x, k):
    return (x << _U64(k)) | (x >> _U64(64 - k))


@nb.njit
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


@nb.njit
def next_double(s):
    """Uniform double in [0, 1) from the top 53 bits."""
    return np.float64(_next(s) >> _U64(11)) * _SHIFT_53


@nb.njit
def next_below(s, m):
    """Uniform integer in [0, m), m >= 1, as floor(U * m) (bias below m / 2**53)."""
    limit = np.float64(m)
    while True:
        r = np.int64(next_double(s) * limit)
        if r < m:
            return r


_LOW32 = 0xFFFFFFFF


@nb.njit
def shuffle(perm, s):
    """Fisher–Yates shuffle of ``perm`` in place from stream ``s``, exactly uniform.

    Each swap index is Lemire's multiply-shift draw in :math:`[0, i]` ("Fast random
    integer generation in an interval", ACM TOMS 2019) from :math:`b` random bits,
    with his rejection step so every index is exactly equally likely. One
    xoshiro256++ output serves :math:`64/b` swaps — :math:`b = 16` for arrays of at
    most :math:`2^{16}` elements, else 32 — and the state stays in registers for the
    whole shuffle. Arrays longer than :math:`2^{32}` use :func:`next_below`.
    """
    n = perm.shape[0]
    if n > _LOW32:
        for i in range(n - 1, 0, -1):
            j = next_below(s, i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return
    bits = 16 if n <= 65536 else 32
    width = _U64(bits)
    mask = _U64((1 << bits) - 1)
    per_word = 64 // bits
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    word = _U64(0)
    left = 0
    i = n - 1
    while i > 0:
        if left == 0:
            word = _rotl(s0 + s3, 23) + s0
            t = s1 << _U64(17)
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = _rotl(s3, 45)
            left = per_word
        chunk = word & mask
        word >>= width
        left -= 1
        bound = _U64(i + 1)
        m = chunk * bound
        low = m & mask
        if low < bound:
            threshold = (mask + _U64(1) - bound) % bound  # 2**bits mod bound
            if low < threshold:
                continue  # rejected: draw again for the same i
        j = np.int64(m >> width)
        perm[i], perm[j] = perm[j], perm[i]
        i -= 1
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3


def _ziggurat_tables():
    """Layer tables of the 256-layer normal ziggurat (Marsaglia & Tsang 2000), 52-bit form."""
    r = 3.6541528853610088  # right edge of the base layer
    v = 0.00492867323399  # area of every layer
    m1 = 2.0**52
    ki = np.zeros(256, dtype=np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    dn = tn = r
    q = v / math.exp(-0.5 * dn * dn)
    ki[0] = np.uint64((dn / q) * m1)
    ki[1] = 0
    wi[0] = q / m1
    wi[255] = dn / m1
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * m1)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m1
    return ki, wi, fi, r


_ZIG_K, _ZIG_W, _ZIG_F, _ZIG_R = _ziggurat_tables()
_ZIG_INV_R = 1.0 / _ZIG_R
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)


@nb.njit
def next_normal(s):
    """One standard normal from state ``s`` (ziggurat)."""
    while True:
        r = _next(s)
        idx = np.int64(r & _U64(0xFF))
        r = r >> _U64(8)
        sign = r & _U64(1)
        rabs = (r >> _U64(1)) & _MASK52
        x = np.float64(rabs) * _ZIG_W[idx]
        if sign:
            x = -x
        if rabs < _ZIG_K[idx]:
            return x
        if idx == 0:
            # Base layer: the tail beyond r by Marsaglia's exponential rejection.
            while True:
                xx = -_ZIG_INV_R * math.log1p(-next_double(s))
                yy = -math.log1p(-next_double(s))
                if yy + yy > xx * xx:
                    return -(_ZIG_R + xx) if (rabs >> _U64(8)) & _U64(1) else _ZIG_R + xx
        elif (_ZIG_F[idx - 1] - _ZIG_F[idx]) * next_double(s) + _ZIG_F[idx] < math.exp(
            -0.5 * x * x
        ):
            return x


@nb.njit
def _fill_normal_row(s, out):
    """Fill the 1-D array ``out`` with standard normals from state ``s``: the same draws as
    :func:`next_normal`, with the four state words in local variables (loaded once, written
    back once), which runs about 1.3x faster than updating ``s`` on every draw
    (``python -m benchmarks.bench_normals``)."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for i in range(out.shape[0]):
        x, s0, s1, s2, s3 = _local.normal(s0, s1, s2, s3)
        out[i] = x
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


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


@nb.njit
def next_gamma(s, shape):
    """Gamma(``shape``, 1) draw (Marsaglia & Tsang, ACM TOMS 26(3), 2000), ``shape > 0``.

    For ``shape >= 1``: ``d = shape - 1/3``, ``c = 1/sqrt(9d)``, propose ``v = (1 + c z)^3``
    from a normal ``z`` and accept with the squeeze ``u < 1 - 0.0331 z^4`` or
    ``log u < z^2/2 + d(1 - v + log v)``. For ``shape < 1``: ``Gamma(shape + 1) U^(1/shape)``.
    """
    boost = 1.0
    a = shape
    if a < 1.0:
        boost = math.exp(math.log(1.0 - next_double(s)) / a)  # U^(1/a), U in (0, 1]
        a += 1.0
    d = a - 1.0 / 3.0
    return _gamma_mt(s, d, 1.0 / math.sqrt(9.0 * d)) * boost


@nb.njit
def _gamma_mt(s, d, c):
    """Marsaglia-Tsang acceptance loop for shape ``d + 1/3 >= 1`` with ``c = 1/sqrt(9d)``."""
    while True:
        z = next_normal(s)
        t = 1.0 + c * z
        if t <= 0.0:
            continue
        v = t * t * t
        u = 1.0 - next_double(s)  # (0, 1]
        z2 = z * z
        if u < 1.0 - 0.0331 * z2 * z2 or math.log(u) < 0.5 * z2 + d * (1.0 - v + math.log(v)):
            return d * v


@nb.njit
def next_chisquare(s, df):
    """Chi-square draw with ``df > 0`` degrees of freedom: ``2 Gamma(df / 2)``."""
    return 2.0 * next_gamma(s, 0.5 * df)


@nb.njit(cache=True)
def splitmix_states(key, first, out):
    """Chain ``first + c``'s state: SplitMix64 outputs ``4(first+c)+1 .. +4``, XOR ``key``."""
    golden = _U64(0x9E3779B97F4A7C15)
    for c in range(out.shape[0]):
        base = key[0] + golden * (_U64(4) * (first + _U64(c)))
        for j in range(4):
            z = base + golden * _U64(j + 1)
            z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
            z = z ^ (z >> _U64(31))
            out[c, j] = z ^ key[j]


# last: ``local`` imports this module's constants (``from . import`` tolerates the cycle)
from . import local as _local  # noqa: E402
