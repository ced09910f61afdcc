r"""Kernel density estimates refitted on their own samples: the exact mean variance and the
Wright–Fisher loss of ancestors.

Setting (:class:`collapse_sim.KDEFit`): generation :math:`t` is the Gaussian KDE of its
:math:`n` training points :math:`x^{(t)}_j` with kernel covariance :math:`H`; its variance
(total, a trace) is :math:`V_t = S_t + \operatorname{tr} H`, with :math:`S_t` the training
points' total variance (divisor :math:`n`). A draw from it is a uniformly chosen centre
plus :math:`\mathcal N(0, H)` noise, so the draws are i.i.d. with the KDE's mean and
variance :math:`V_t`, and (a sample variance with divisor :math:`n`)

.. math::

    \mathbb E[S_{t+1} \mid V_t] = \Big(1 - \frac1n\Big) V_t .

**Fixed bandwidth, replace** (:math:`H = h^2 I`, so :math:`\operatorname{tr}H = dh^2`):
:math:`\mathbb E V_{t+1} = (1 - 1/n)\,\mathbb E V_t + d h^2`, whose fixed point is
:math:`n d h^2`:

.. math::

    \mathbb E[V_t] = n d h^2 + (V_1 - n d h^2)\Big(1 - \frac1n\Big)^{t-1},
    \qquad \mathbb E[V_1] = c\,V_0 + d h^2 ,

with :math:`V_0` the truth's variance and :math:`c = 1 - 1/n` for i.i.d. real samples, or
:math:`c = \frac{N}{N-1}(1 - \frac1n)` when the real sample is drawn without replacement
from :math:`N` rows (an :class:`~collapse_sim.Empirical` truth, :math:`V_0` its
training split's variance with divisor :math:`N`). For i.i.d. samples this is
:math:`nh^2 + (V_0 - nh^2)(1 - 1/n)^t` in 1-D: the variance does not collapse, it relaxes
to :math:`n d h^2` — it shrinks when :math:`h < \sigma/\sqrt n` and grows when
:math:`h > \sigma/\sqrt n`.

**scipy's rule** (:math:`H = f^2\hat\Sigma_t`, :math:`f^2 = n^{-2/(d+4)}`,
:math:`\hat\Sigma_t` the unbiased sample covariance, so
:math:`\operatorname{tr} H = f^2 S_t\,n/(n-1)`):
:math:`V_t = S_t\,(1 + f^2 n/(n-1))` and
:math:`\mathbb E S_{t+1} = (1 - 1/n) V_t = g\, S_t` with

.. math::

    g = 1 - \frac1n + f^2 = 1 - \frac1n + n^{-2/(d+4)} > 1 ,

so :math:`\mathbb E V_t = (1 + f^2 n/(n-1))\, c V_0\, g^{t-1}` grows geometrically: the
data-scaled bandwidth feeds on its own spread and the variance explodes.

**Fixed bandwidth, accumulate** (generation :math:`t` trains on the pool of all
:math:`m = tn` points so far): adding :math:`n` draws :math:`Y` (mean :math:`\bar y`,
variance :math:`S_Y`) to a pool of :math:`m` points with variance :math:`S`,

.. math::

    S' = \frac{m S + n S_Y + \frac{mn}{m+n}\lVert\bar y - \bar x\rVert^2}{m + n},\quad
    \mathbb E[S' \mid S] = \frac{(m + n - 1 + \frac{m}{m+n}) S
    + (n - 1 + \frac{m}{m+n})\, d h^2}{m + n},

using :math:`\mathbb E S_Y = (1 - 1/n)(S + dh^2)` and
:math:`\mathbb E\lVert \bar y - \bar x\rVert^2 = (S + dh^2)/n`. Iterated exactly; for large
:math:`n` it is :math:`S_{t+1} \approx S_t + dh^2/(t+1)`, so the pooled variance grows like
:math:`d h^2 \log t`: slowly, without bound.

**Ancestors** (replace): each draw picks its centre uniformly, so the centres of
generation :math:`t+1` choose their parents among the :math:`n` centres of generation
:math:`t` as in a neutral Wright–Fisher population. Traced backwards, :math:`j` lineages
have :math:`i` distinct parents with the occupancy probability
:math:`P(j \to i) = \binom{n}{i} \, i!\, S(j, i) / n^{j}` (:math:`S` the Stirling numbers
of the second kind); the number of generation-1 points with descendants at generation
:math:`t` is the number of lineages left after :math:`t - 1` such steps from :math:`n`:
:math:`\mathbb E A_t = \sum_i i\,(P^{t-1})_{n,i}`. For large :math:`n` the coalescent gives
:math:`\mathbb E A_t \approx 2n/(t-1)` once :math:`1 \ll t \ll n`.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int, check_real
from ._checks import GenerationsLike, _validate_generations

__all__ = ["kde_accumulate_variance_mean", "kde_ancestors_mean", "kde_scipy_variance_mean",
           "kde_variance_mean"]


def _first_factor(n: int, population: int | None) -> float:
    """:math:`c`: the expected divisor-``n`` sample variance of a real sample over ``V_0``."""
    c = 1.0 - 1.0 / n
    if population is not None:
        population = check_int("population", population, minimum=n, maximum=10**15)
        if population < 2:
            raise ValueError("population must be >= 2")
        c *= population / (population - 1.0)
    return c


def _common(variance0, n_samples, generations, dim):
    v0 = check_real("variance0", variance0, low=0.0)
    n = check_int("n_samples", n_samples, minimum=2, maximum=10**12)
    d = check_int("dim", dim, minimum=1, maximum=10**6)
    return v0, n, d, _validate_generations(generations)


def kde_variance_mean(variance0: float, n_samples: int, generations: GenerationsLike,
                      bandwidth: float, *, dim: int = 1,
                      population: int | None = None) -> np.ndarray:
    r""":math:`\mathbb E[V_t]` of a KDE with fixed bandwidth :math:`h` under ``Replace``
    (see the module notes); row 0 is :math:`V_0 + d h^2`, the KDE of the truth itself.

    Parameters
    ----------
    variance0 : float
        Total variance :math:`V_0` of the truth (an Empirical truth: of its training
        split, divisor :math:`N`).
    n_samples : int
        :math:`n`.
    generations : int or array_like
        ``G`` (meaning ``0, 1, ..., G``) or the generations wanted.
    bandwidth : float
        :math:`h > 0`.
    dim : int
        :math:`d`.
    population : int, optional
        :math:`N`, when the real sample is drawn without replacement from ``N`` rows.

    Examples
    --------
    >>> from collapse_sim.theory import kde_variance_mean
    >>> kde_variance_mean(1.0, 100, [0, 1, 10**6], 0.05).round(4).tolist()  # -> n h^2
    [1.0025, 0.9925, 0.25]
    """
    v0, n, d, t = _common(variance0, n_samples, generations, dim)
    h = check_real("bandwidth", bandwidth, low=0.0, low_open=True)
    k = d * h * h
    v1 = _first_factor(n, population) * v0 + k
    steps = np.maximum(t - 1, 0).astype(np.float64)
    out = n * k + (v1 - n * k) * np.exp(steps * np.log1p(-1.0 / n))
    return np.where(t == 0, v0 + k, out)


def kde_scipy_variance_mean(variance0: float, n_samples: int, generations: GenerationsLike,
                            *, dim: int = 1, population: int | None = None) -> np.ndarray:
    r""":math:`\mathbb E[V_t]` of a KDE with scipy's data-scaled Scott bandwidth under
    ``Replace``: :math:`(1 + f^2 n/(n-1))\,c V_0\,g^{t-1}`, :math:`g = 1 - 1/n + f^2`,
    :math:`f^2 = n^{-2/(d+4)}` (see the module notes). Row 0 is the scipy KDE of the truth:
    :math:`V_0(1 + f_N^2 N/(N-1))` with ``population`` :math:`N` rows, :math:`V_0` without.

    Examples
    --------
    >>> from collapse_sim.theory import kde_scipy_variance_mean
    >>> kde_scipy_variance_mean(1.0, 100, [1, 2]).round(4).tolist()   # grows by g = 1.1485
    [1.1485, 1.319]
    """
    v0, n, d, t = _common(variance0, n_samples, generations, dim)
    f2 = n ** (-2.0 / (d + 4))
    g = 1.0 - 1.0 / n + f2
    first = (1.0 + f2 * n / (n - 1.0)) * _first_factor(n, population) * v0
    steps = np.maximum(t - 1, 0).astype(np.float64)
    with np.errstate(over="ignore"):
        out = first * np.exp(steps * np.log(g))
    if population is None:
        row0 = v0
    else:
        fn2 = population ** (-2.0 / (d + 4))
        row0 = v0 * (1.0 + fn2 * population / (population - 1.0))
    return np.where(t == 0, row0, out)


def kde_accumulate_variance_mean(variance0: float, n_samples: int, generations: int,
                                 bandwidth: float, *, dim: int = 1,
                                 population: int | None = None) -> np.ndarray:
    r""":math:`\mathbb E[V_t]` (``t = 0, ..., generations``) of a KDE with fixed bandwidth under
    ``Accumulate``, by the exact linear recursion of the module notes (row 0:
    :math:`V_0 + dh^2`).

    Examples
    --------
    >>> from collapse_sim.theory import kde_accumulate_variance_mean
    >>> kde_accumulate_variance_mean(1.0, 100, 3, 0.1).round(4).tolist()
    [1.01, 1.0, 1.0025, 1.0047]
    """
    v0 = check_real("variance0", variance0, low=0.0)
    n = check_int("n_samples", n_samples, minimum=2, maximum=10**12)
    d = check_int("dim", dim, minimum=1, maximum=10**6)
    g = check_int("generations", generations, minimum=0, maximum=10**7)
    h = check_real("bandwidth", bandwidth, low=0.0, low_open=True)
    k = d * h * h
    out = np.empty(g + 1)
    out[0] = v0 + k
    s = _first_factor(n, population) * v0
    for t in range(1, g + 1):
        out[t] = s + k
        m = t * n
        s = ((m + n - 1 + m / (m + n)) * s + (n - 1 + m / (m + n)) * k) / (m + n)
    return out


def _occupancy_matrix(n: int) -> np.ndarray:
    """``T[j, i]``: probability that ``j`` balls thrown uniformly into ``n`` bins occupy
    exactly ``i`` of them (``j, i = 0 .. n``), row by row by the one-ball recursion
    :math:`p_{j+1}(i) = p_j(i)\\,i/n + p_j(i-1)\\,(n-i+1)/n`."""
    out = np.zeros((n + 1, n + 1))
    row = np.zeros(n + 1)
    row[0] = 1.0
    out[0] = row
    i = np.arange(n + 1, dtype=np.float64)
    for j in range(1, n + 1):
        new = row * i / n
        new[1:] += row[:-1] * (n - i[1:] + 1) / n
        row = new
        out[j] = row
    return out


def kde_ancestors_mean(n_samples: int, generations: int,
                       population: int | None = None) -> np.ndarray:
    r""":math:`\mathbb E[A_t]` (``t = 0, ..., generations``): original points with descendants
    under ``Replace`` (neutral Wright–Fisher, exact by the occupancy chain of the module
    notes). :math:`A_1 = n`; row 0 is ``population`` (the reference KDE rests on every
    training row) or :math:`n` when not given. :math:`O(n^2)` memory and
    :math:`O(n^2 (1 + \text{generations}))` time: ``n_samples`` at most 5000.

    Examples
    --------
    >>> from collapse_sim.theory import kde_ancestors_mean
    >>> kde_ancestors_mean(100, 3).round(2).tolist()
    [100.0, 100.0, 63.4, 47.09]
    """
    n = check_int("n_samples", n_samples, minimum=1, maximum=5000)
    g = check_int("generations", generations, minimum=0, maximum=10**6)
    if population is not None:
        population = check_int("population", population, minimum=n, maximum=10**15)
    trans = _occupancy_matrix(n)
    out = np.empty(g + 1)
    out[0] = n if population is None else population
    dist = np.zeros(n + 1)
    dist[n] = 1.0
    values = np.arange(n + 1, dtype=np.float64)
    for t in range(1, g + 1):
        out[t] = dist @ values
        dist = dist @ trans
    return out
