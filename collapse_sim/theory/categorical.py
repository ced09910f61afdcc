r"""Exact and asymptotic theory for a categorical distribution refitted by counts.

The process
-----------
Generation 0 is the truth :math:`p_0 = (p_{0,1}, \dots, p_{0,V})`. Generation :math:`t \ge 1`
is the maximum-likelihood fit (counts over :math:`n`, no smoothing) to the training set of
that generation; under the ``replace`` policy that is :math:`n` i.i.d. tokens of generation
:math:`t-1`:

.. math::

    C_t \mid p_{t-1} \sim \mathrm{Multinomial}(n, p_{t-1}), \qquad p_t = C_t / n .

Generation 1 is the fit to the real sample under every policy (as in
:mod:`collapse_sim.policies`). One category alone is the haploid Wright–Fisher chain of
population genetics: its count :math:`X_t = C_{t,j}` satisfies :math:`X_1 \sim
\mathrm{Binomial}(n, p)` and :math:`X_{t+1} \mid X_t \sim \mathrm{Binomial}(n, X_t/n)`;
0 (*lost*) and :math:`n` (*fixed*) are absorbing.

Results implemented here
------------------------
``replace`` (train on :math:`n` synthetic tokens):

* :func:`categorical_gini_simpson_mean` -- :math:`\mathbb E[1-\sum_j p_{t,j}^2] =
  (1-1/n)^t (1-\sum_j p_{0,j}^2)`.
* :func:`categorical_fixation_probabilities` -- exact probabilities that a category is lost /
  fixed by generation :math:`t` (the :math:`(n+1)`-state chain iterated for
  :math:`n \le` :data:`EXACT_MAX_N`; a matched diffusion / branching approximation beyond).
* :func:`categorical_surviving_mean` -- the expected number of categories still alive.
* :func:`categorical_absorption_time_mean` -- the expected number of generations until a
  category is lost or fixed.
* :func:`rare_category_survival` and :func:`rare_category_median_survival` -- a category seen
  :math:`c` times in the real sample, exactly and in the critical Poisson branching limit;
  its median lifetime grows linearly, :math:`\approx 2c/\ln 2` generations.

``fresh`` (:math:`k` fresh real tokens + :math:`n-k` synthetic ones):
:func:`categorical_gini_simpson_mean_fresh`.

``accumulate`` (generation :math:`t` trains on the real sample and the :math:`n` synthetic
tokens of every earlier generation): :func:`categorical_gini_simpson_mean_accumulate` and
:func:`categorical_surviving_mean_accumulate`.

Why nothing dies under ``accumulate``
-------------------------------------
Let :math:`R` be the count vector of the :math:`n` real tokens and :math:`S_s \sim
\mathrm{Multinomial}(n, p_s)` the synthetic counts drawn from generation :math:`s`. Generation
:math:`t` is fitted to :math:`tn` tokens,

.. math::

    p_t = \frac{R + S_1 + \dots + S_{t-1}}{tn}.

A category with :math:`R_j > 0` has :math:`p_{t,j} \ge R_j/(tn) > 0` for every :math:`t`:
the original real tokens are in every training set, forever, so the category can never be
lost (its probability may shrink like :math:`1/t` but never reaches 0). A category with
:math:`R_j = 0` has :math:`p_{1,j} = 0`, hence :math:`S_{1,j} = 0`, hence :math:`p_{2,j} = 0`,
and so on: it is dead from generation 1 on. The set of live categories is therefore frozen
after the first fit, and :math:`\mathbb E[\#\text{alive at } t \ge 1] = \sum_j
[1 - (1 - p_{0,j})^n]`. Write :math:`C_t = R + \sum_{s<t} S_s`. Given :math:`C_t`,
:math:`\mathbb E[C_{t+1}] = C_t (1 + 1/t)`, so :math:`\mathbb E[p_{t+1} \mid p_t] = p_t`
(a martingale, as under ``replace``), and the expected Gini–Simpson index decays only by the
convergent product :math:`\prod_s (1 - 1/(n s^2))` (derived in
:func:`categorical_gini_simpson_mean_accumulate`): it tends to
:math:`\sin(\pi/\sqrt n)/(\pi/\sqrt n) \approx 1 - \pi^2/(6n)` times its initial value
instead of to 0.

Conventions and limits
----------------------
``generations`` is an integer :math:`G` (meaning :math:`t = 0, 1, \dots, G`) or a 1-D
array-like of non-negative integers, each at most :data:`MAX_GENERATIONS`. ``n_samples`` is an
integer in :math:`[1,` :data:`MAX_N_SAMPLES` :math:`]`. Every function validates its arguments
before doing any work and raises ``TypeError`` / ``ValueError`` naming the parameter and the
accepted range. All functions are pure NumPy/SciPy.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import special, stats

from ..families.categorical import MAX_CATEGORIES, SUM_TOLERANCE

__all__ = [
    "EXACT_MAX_N",
    "MAX_CATEGORIES",
    "MAX_GENERATIONS",
    "MAX_N_SAMPLES",
    "MAX_OUTPUT_ELEMENTS",
    "categorical_absorption_time_mean",
    "categorical_fixation_probabilities",
    "categorical_gini_simpson_mean",
    "categorical_gini_simpson_mean_accumulate",
    "categorical_gini_simpson_mean_fresh",
    "categorical_surviving_mean",
    "categorical_surviving_mean_accumulate",
    "measure_approximation_errors",
    "rare_category_median_survival",
    "rare_category_survival",
]

GenerationsLike = int | Sequence[int] | np.ndarray
Method = Literal["auto", "exact", "approx"]

#: Largest sample size for which the Wright–Fisher chain is iterated exactly. At
#: ``n = 2000`` one call with 1000 generations takes about 1 s (the banded transition
#: matrix has about 8e5 non-zeros); beyond, the matched approximation is used.
EXACT_MAX_N = 2000
#: Upper bound on every generation index (and on the number of generations asked for).
MAX_GENERATIONS = 10**7
#: Upper bound on ``n_samples`` (and on ``count``): every float computation stays far from
#: overflow and ``1/n`` far above the float64 resolution of 1.
MAX_N_SAMPLES = 10**12
#: Upper bound on ``len(generations) * len(p)``: each returned array takes at most 160 MB.
MAX_OUTPUT_ELEMENTS = 20_000_000

# Rows of the binomial transition matrix are truncated to [ppf(eps), n - ppf(eps; 1 - x)]:
# the dropped mass is below 2e-30 per row and per generation.
_BAND_EPS = 1e-30
# Exact path: the chain is iterated until its distance to absorption lies (to _TAIL_TOL in
# sup norm) in the span of the first _TAIL_MODES non-trivial eigenvectors, which are
# polynomials; later generations follow in closed form from that span.
_TAIL_MODES = 8
_TAIL_TOL = 1e-13
# Columns of the iterated chain kept before they are contracted with the weights.
_BUFFER_ELEMENTS = 1 << 22
# Largest number of stored non-zeros of the binomial weight matrix of the asked-for p.
_MAX_WEIGHT_NNZ = 30_000_000
# Approximate path: (generation, probability) pairs evaluated per block, and in total.
_APPROX_BLOCK = 1 << 20
_MAX_APPROX_PAIRS = 200_000_000
# Diffusion series: below _TAU_SMALL (= t/n) its small-time expansion is used (error
# ~0.04 tau^2); above, Legendre terms while exp(-i(i+1) tau / 2) > exp(-_SERIES_EXPONENT).
_TAU_SMALL = 1e-3
_SERIES_EXPONENT = 42.0
_SERIES_MAX_TERMS = math.ceil(math.sqrt(2.0 * _SERIES_EXPONENT / _TAU_SMALL)) + 1
# Poisson(1) Galton–Watson survival q_t is tabulated by exact iteration up to this t.
_GW_TABLE_SIZE = 1 << 16

# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int, maximum: int) -> int:
    """``value`` as ``int`` if it is an integer in ``[minimum, maximum]`` (bool rejected)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int in [{minimum}, {maximum}], got {type(value).__name__}"
        )
    out = int(value)
    if not minimum <= out <= maximum:
        raise ValueError(f"{name} must be an int in [{minimum}, {maximum}], got {out}")
    return out


def _check_n_samples(n_samples: object) -> int:
    return _check_int("n_samples", n_samples, 1, MAX_N_SAMPLES)


def _check_generations(generations: object) -> np.ndarray:
    """The generations as a 1-D int64 array (an int ``G`` means ``0, 1, ..., G``)."""
    accepted = (
        f"generations must be an int in [0, {MAX_GENERATIONS}] or a 1-D array-like of "
        f"ints in [0, {MAX_GENERATIONS}]"
    )
    if isinstance(generations, bool | np.bool_ | str | bytes):
        raise TypeError(f"{accepted}, got {type(generations).__name__}")
    if isinstance(generations, numbers.Integral):
        g = _check_int("generations", generations, 0, MAX_GENERATIONS)
        return np.arange(g + 1, dtype=np.int64)
    if isinstance(generations, numbers.Number):
        raise TypeError(f"{accepted}, got {type(generations).__name__}")
    try:
        arr = np.asarray(generations)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{accepted}; could not convert it to an array") from exc
    if arr.ndim == 0 and np.issubdtype(arr.dtype, np.integer):
        return _check_generations(int(arr))
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{accepted}, got an array of dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{accepted}, got ndim={arr.ndim}")
    if arr.size > MAX_GENERATIONS + 1:
        raise ValueError(f"{accepted}, with at most {MAX_GENERATIONS + 1} entries")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(
        np.isfinite(arr) & (arr == np.round(arr))
    ):
        raise ValueError(f"{accepted}: entries must be integers")
    if arr.size and (arr.min() < 0 or arr.max() > MAX_GENERATIONS):
        raise ValueError(f"{accepted}, got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def _check_unit(name: str, value: object) -> tuple[np.ndarray, bool]:
    """``(1-D float64 array, was_scalar)``; every entry must lie in [0, 1]."""
    accepted = f"{name} must be a number in [0, 1] or a 1-D array-like of numbers in [0, 1]"
    if isinstance(value, bool | np.bool_ | str | bytes):
        raise TypeError(f"{accepted}, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{accepted}; could not convert it to an array") from exc
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{accepted}, got an array of dtype {arr.dtype}")
    if arr.ndim > 1:
        raise ValueError(f"{accepted}, got ndim={arr.ndim}")
    if arr.size > MAX_OUTPUT_ELEMENTS:
        raise ValueError(f"{accepted}, with at most {MAX_OUTPUT_ELEMENTS} entries")
    out = np.atleast_1d(arr.astype(np.float64))
    if not np.all((out >= 0.0) & (out <= 1.0)):  # also rejects NaN
        raise ValueError(f"{accepted}; got entries outside [0, 1]")
    return out, arr.ndim == 0


def _check_probs(probs: object) -> np.ndarray:
    """``probs`` as a 1-D float64 array of non-negative numbers summing to 1 (renormalised)."""
    accepted = (
        f"probs must be a 1-D array-like of 1 to {MAX_CATEGORIES} finite numbers >= 0 "
        f"summing to 1 (within {SUM_TOLERANCE:g})"
    )
    if isinstance(probs, bool | np.bool_ | str | bytes | numbers.Number):
        raise TypeError(f"{accepted}, got {type(probs).__name__}")
    try:
        arr = np.asarray(probs)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{accepted}; could not convert it to an array") from exc
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"{accepted}, got an array of dtype {arr.dtype}")
    if arr.ndim != 1 or not 1 <= arr.size <= MAX_CATEGORIES:
        raise ValueError(f"{accepted}, got shape {arr.shape}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)) or np.any(out < 0.0):
        raise ValueError(f"{accepted}; got a negative or non-finite entry")
    total = float(out.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"{accepted}; they sum to {total!r}")
    return out / total


def _check_method(method: object, n: int) -> str:
    if not isinstance(method, str) or method not in ("auto", "exact", "approx"):
        raise ValueError(f"method must be one of 'auto', 'exact', 'approx'; got {method!r}")
    if method == "exact" and n > EXACT_MAX_N:
        raise ValueError(
            f"method='exact' needs n_samples in [1, {EXACT_MAX_N}] (EXACT_MAX_N), got {n}"
        )
    if method == "auto":
        return "exact" if n <= EXACT_MAX_N else "approx"
    return method


def _check_output_size(n_generations: int, n_probs: int) -> None:
    if n_generations * n_probs > MAX_OUTPUT_ELEMENTS:
        raise ValueError(
            "len(generations) * len(p) must be at most MAX_OUTPUT_ELEMENTS = "
            f"{MAX_OUTPUT_ELEMENTS}, got {n_generations} * {n_probs}"
        )


def _pow1m(x: float, t: np.ndarray) -> np.ndarray:
    """``(1 - x) ** t`` for integer ``t >= 0`` and ``0 <= x <= 1``, accurate for tiny ``x``."""
    t = np.asarray(t, dtype=np.float64)
    if x >= 1.0:
        return np.where(t == 0, 1.0, 0.0)
    return np.exp(t * math.log1p(-x))


# --------------------------------------------------------------------------------------
# replace: Gini–Simpson
# --------------------------------------------------------------------------------------


def categorical_gini_simpson_mean(
    probs: Sequence[float] | np.ndarray, n_samples: int, generations: GenerationsLike
) -> np.ndarray:
    r"""Expected Gini–Simpson index :math:`\mathbb E[1 - \sum_j p_{t,j}^2]` under ``replace``.

    Parameters
    ----------
    probs : array-like of float
        The truth :math:`p_0`: 1 to :data:`MAX_CATEGORIES` non-negative numbers summing to 1
        (within :data:`SUM_TOLERANCE`; then renormalised).
    n_samples : int
        Tokens per generation :math:`n`, in :math:`[1, 10^{12}]`.
    generations : int or array-like of int
        :math:`G` (meaning :math:`0, \dots, G`) or the generations, each in
        :math:`[0, 10^7]`.

    Returns
    -------
    ndarray
        :math:`(1 - 1/n)^t \,(1 - \sum_j p_{0,j}^2)` for each ``t``, float64.

    Notes
    -----
    Given :math:`p_t`, :math:`C_{t+1,j} \sim \mathrm{Binomial}(n, p_{t,j})`, so
    :math:`\mathbb E[C_{t+1,j}^2] = n p_{t,j}(1-p_{t,j}) + n^2 p_{t,j}^2` and

    .. math::

        \mathbb E\Big[\sum_j p_{t+1,j}^2 \,\Big|\, p_t\Big]
        = \Big(1 - \frac1n\Big) \sum_j p_{t,j}^2 + \frac1n
        \quad\Longrightarrow\quad
        \mathbb E[H_{t+1} \mid p_t] = \Big(1 - \frac1n\Big) H_t,

    with :math:`H = 1 - \sum_j p_j^2` (using :math:`\sum_j p_{t,j} = 1`). Taking
    expectations and iterating from the deterministic :math:`H_0` gives the result. The index
    is the probability that two independent draws differ; it decays geometrically on the time
    scale :math:`n`, the same rate :math:`\lambda_2 = 1 - 1/n` as the second eigenvalue of the
    Wright–Fisher chain.

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> th.categorical_gini_simpson_mean([0.5, 0.5], n_samples=2, generations=3)
    array([0.5   , 0.25  , 0.125 , 0.0625])
    """
    p0 = _check_probs(probs)
    n = _check_n_samples(n_samples)
    t = _check_generations(generations)
    h0 = max(0.0, 1.0 - float(np.dot(p0, p0)))
    return h0 * _pow1m(1.0 / n, t)


# --------------------------------------------------------------------------------------
# exact Wright–Fisher chain
# --------------------------------------------------------------------------------------


def _binomial_rows(n: int, probs: np.ndarray):
    """CSR matrix whose row ``r`` is the Binomial(``n``, ``probs[r]``) pmf on ``0..n``.

    Each row is restricted to ``[ppf(eps), n - ppf(eps; 1 - p)]`` (``eps`` =
    ``_BAND_EPS``), which drops less than ``2 eps`` of its mass.
    """
    from scipy import sparse

    probs = np.asarray(probs, dtype=np.float64)
    lo = stats.binom.ppf(_BAND_EPS, n, probs)
    hi = n - stats.binom.ppf(_BAND_EPS, n, 1.0 - probs)
    lo = np.clip(np.nan_to_num(lo, nan=0.0), 0, n).astype(np.int64)
    hi = np.clip(np.nan_to_num(hi, nan=float(n)), 0, n).astype(np.int64)
    hi = np.maximum(hi, lo)
    lens = hi - lo + 1
    nnz = int(lens.sum())
    if nnz > _MAX_WEIGHT_NNZ:
        raise ValueError(
            f"p: too many distinct probabilities for the exact computation at n_samples={n} "
            f"({nnz} binomial weights > {_MAX_WEIGHT_NNZ}); pass fewer or use method='approx'"
        )
    rows = np.repeat(np.arange(probs.size), lens)
    starts = np.cumsum(lens) - lens
    cols = np.arange(nnz) - np.repeat(starts, lens) + np.repeat(lo, lens)
    vals = stats.binom.pmf(cols, n, probs[rows])
    indptr = np.concatenate([[0], np.cumsum(lens)])
    return sparse.csr_matrix((vals, cols, indptr), shape=(probs.size, n + 1))


@functools.lru_cache(maxsize=2)
def _transition_matrix(n: int):
    """The Wright–Fisher transition matrix ``P[i, j] = Binomial(n, i/n).pmf(j)`` (CSR)."""
    return _binomial_rows(n, np.arange(n + 1) / n)


@functools.lru_cache(maxsize=2)
def _tail_basis(n: int):
    r"""Polynomial invariant subspace of the chain used to jump to late generations.

    Returns ``(phi, phi_pinv, vecs, vecs_inv, log_lams)``: ``phi`` (``(n+1, K)``) spans the
    polynomials of degree ``<= K + 1`` in ``x = i/n`` vanishing at 0 and 1 (columns
    :math:`x(1-x)P^{(1,1)}_j(1-2x)`), which ``P`` maps into themselves; on it ``P`` acts as
    ``vecs @ diag(lams) @ vecs_inv`` with the exact eigenvalues
    :math:`\lambda_k = \prod_{j<k}(1 - j/n)`, ``k = 2..K+1``.
    """
    k_modes = min(_TAIL_MODES, n - 1)
    x = np.arange(n + 1) / n
    if k_modes <= 0:
        empty = np.zeros((n + 1, 0))
        return empty, empty.T, np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0)
    phi = np.column_stack(
        [x * (1.0 - x) * special.eval_jacobi(j, 1.0, 1.0, 1.0 - 2.0 * x) for j in range(k_modes)]
    )
    phi_pinv = np.linalg.pinv(phi)
    m = phi_pinv @ (_transition_matrix(n) @ phi)
    evals, vecs = np.linalg.eig(m)
    order = np.argsort(-evals.real)
    evals, vecs = evals.real[order], vecs.real[:, order]
    ks = np.arange(2, k_modes + 2)
    log_lams = np.array([np.sum(np.log1p(-np.arange(k) / n)) for k in ks])
    if not np.allclose(evals, np.exp(log_lams), rtol=1e-8, atol=1e-12):  # pragma: no cover
        raise RuntimeError("internal error: Wright–Fisher eigenvalues not reproduced")
    return phi, phi_pinv, vecs, np.linalg.inv(vecs), log_lams


def _exact_lost_fixed(n: int, weights, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Loss / fixation probabilities after ``steps`` further steps, averaged over ``weights``.

    ``weights`` is a ``(m, n+1)`` (sparse) matrix of distributions of the current count;
    ``steps`` a sorted array of distinct integers >= 0. Returns two ``(len(steps), m)``
    arrays: ``weights @ u_s`` and ``weights @ u_s[::-1]`` with :math:`u_s(i) = P(X_s = 0
    \mid X_0 = i)`.

    Backward iteration :math:`u_{s+1} = P u_s` from :math:`u_0 = e_0` (one sparse
    matrix-vector product per generation, whatever the number of rows of ``weights``). The
    residual :math:`r_s = u_s - u_\infty`, :math:`u_\infty(i) = 1 - i/n`, vanishes at 0 and
    :math:`n` and is driven by the transient modes. Every few steps it is projected onto the
    invariant polynomial subspace of :func:`_tail_basis`; once the part outside has sup norm
    :math:`\le` ``_TAIL_TOL``, later steps are evaluated in closed form inside the subspace.
    Because :math:`P` is stochastic, the neglected part stays below ``_TAIL_TOL`` for ever.
    """
    m = weights.shape[0]
    lost = np.empty((steps.size, m))
    fixed = np.empty((steps.size, m))
    if steps.size == 0:
        return lost, fixed
    p_mat = _transition_matrix(n)
    phi, phi_pinv, vecs, vecs_inv, log_lams = _tail_basis(n)
    x = np.arange(n + 1) / n
    u_inf = 1.0 - x
    w_inf_lost = np.asarray(weights @ u_inf).reshape(m)
    w_inf_fixed = np.asarray(weights @ x).reshape(m)
    check_every = 1 if n < 64 else 8
    buf_cols = max(1, _BUFFER_ELEMENTS // (n + 1))
    buf = np.empty((buf_cols, n + 1))
    buf_idx: list[int] = []

    def flush() -> None:
        if buf_idx:
            block = buf[: len(buf_idx)]
            lost[buf_idx] = np.asarray(weights @ block.T).T
            fixed[buf_idx] = np.asarray(weights @ block[:, ::-1].T).T
            buf_idx.clear()

    def projected(u: np.ndarray) -> np.ndarray | None:
        r = u - u_inf
        a = phi_pinv @ r
        if np.max(np.abs(r - phi @ a), initial=0.0) <= _TAIL_TOL:
            return vecs_inv @ a
        return None

    u = np.zeros(n + 1)
    u[0] = 1.0
    s = 0
    coef = projected(u)
    k = 0
    while coef is None and k < steps.size:
        target = int(steps[k])
        while s < target:
            u = p_mat @ u
            s += 1
            if s % check_every == 0:
                coef = projected(u)
                if coef is not None:
                    break
        if coef is not None and s < target:
            break
        buf[len(buf_idx)] = u
        buf_idx.append(k)
        if len(buf_idx) == buf_cols:
            flush()
        k += 1
    flush()
    if k < steps.size:
        # closed form: u_{s+j} = u_inf + phi @ vecs @ (lams**j * coef) (+ < _TAIL_TOL)
        g_lost = np.asarray(weights @ (phi @ vecs)).reshape(m, -1)
        g_fixed = np.asarray(weights @ (phi[::-1] @ vecs)).reshape(m, -1)
        rest = steps[k:] - s
        # beyond j_cut every mode is below 1e-17 (lambda_2 is the slowest): the limit
        scale = float(
            np.abs(coef).sum()
            * max(np.abs(g_lost).max(initial=0.0), np.abs(g_fixed).max(initial=0.0))
        )
        j_cut = 0 if scale <= 1e-17 else math.ceil(math.log(1e-17 / scale) / log_lams[0])
        n_live = int(np.searchsorted(rest, j_cut))
        lost[k + n_live :] = w_inf_lost
        fixed[k + n_live :] = w_inf_fixed
        for start in range(0, n_live, 1 << 16):
            j = rest[start : min(start + (1 << 16), n_live)].astype(np.float64)
            c = np.exp(np.outer(j, log_lams)) * coef
            lost[k + start : k + start + j.size] = w_inf_lost + c @ g_lost.T
            fixed[k + start : k + start + j.size] = w_inf_fixed + c @ g_fixed.T
    np.clip(lost, 0.0, 1.0, out=lost)
    np.clip(fixed, 0.0, 1.0, out=fixed)
    return lost, fixed


# --------------------------------------------------------------------------------------
# approximation for large n: Poisson branching near the boundary, diffusion in the bulk
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _gw_table() -> np.ndarray:
    """``q_t = 1 - f_t(0)`` for ``t = 0.._GW_TABLE_SIZE``, ``f(s) = exp(s - 1)`` (exact)."""
    q = np.empty(_GW_TABLE_SIZE + 1)
    v = 1.0
    q[0] = v
    for t in range(1, _GW_TABLE_SIZE + 1):
        v = -math.expm1(-v)
        q[t] = v
    q.setflags(write=False)
    return q


def _gw_inv_q_asymptotic(t: np.ndarray) -> np.ndarray:
    r""":math:`1/q_t` for ``t >= _GW_TABLE_SIZE`` from the tabulated end point.

    :math:`q_{t+1} = 1 - e^{-q_t}` gives :math:`1/q_{t+1} = 1/q_t + 1/2 + q_t/12 + O(q_t^3)`
    (the Bernoulli series of :math:`q/(1-e^{-q})`). With :math:`q_s \approx 1/(s/2 + a)`,
    :math:`a = 1/q_{T_0} - T_0/2`, summing gives
    :math:`1/q_t = 1/q_{T_0} + (t - T_0)/2 + \tfrac16[\psi(t + 2a) - \psi(T_0 + 2a)]`,
    relative error below :math:`10^{-11}` for :math:`T_0 = 2^{16}`.
    """
    t0 = _GW_TABLE_SIZE
    inv0 = 1.0 / _gw_table()[t0]
    a2 = 2.0 * inv0 - t0
    t = np.asarray(t, dtype=np.float64)
    return inv0 + 0.5 * (t - t0) + (special.digamma(t + a2) - special.digamma(t0 + a2)) / 6.0


def _gw_q(t: np.ndarray) -> np.ndarray:
    """Survival probability ``q_t`` of a Poisson(1) Galton–Watson process from 1 individual."""
    t = np.asarray(t, dtype=np.int64)
    out = np.empty(t.shape)
    small = t <= _GW_TABLE_SIZE
    out[small] = _gw_table()[t[small]]
    if not np.all(small):
        out[~small] = 1.0 / _gw_inv_q_asymptotic(t[~small])
    return out


def _legendre_differences(y: np.ndarray, terms: int) -> np.ndarray:
    """``D[i-1] = P_{i-1}(y) - P_{i+1}(y)`` for ``i = 1..terms`` (Legendre recurrence)."""
    leg = np.empty((terms + 2, y.size))
    leg[0] = 1.0
    leg[1] = y
    for k in range(1, terms + 1):
        leg[k + 1] = ((2 * k + 1) * y * leg[k] - k * leg[k - 1]) / (k + 1)
    return leg[:terms] - leg[2 : terms + 2]


def _diffusion_lost(x: np.ndarray, y: np.ndarray, tau: np.ndarray) -> np.ndarray:
    r"""Loss probability of the Wright–Fisher diffusion, ``(len(tau), len(x))``.

    Kimura's series :math:`u = (1+y)/2 - \tfrac12 \sum_{i \ge 1} [P_{i-1}(y) - P_{i+1}(y)]
    e^{-i(i+1)\tau/2}`, :math:`y = 1 - 2x`, for :math:`\tau \ge` ``_TAU_SMALL``; below, the
    small-time expansion :math:`e^{-2x/\tau}(1 - \tfrac23 x^2/\tau - x/3)`.
    """
    out = np.empty((tau.size, x.size))
    small = tau < _TAU_SMALL
    if np.any(small):
        ts = tau[small][:, None]
        z = x[None, :] / ts
        out[small] = np.exp(-2.0 * z) * (1.0 - (2.0 / 3.0) * x[None, :] * z - x[None, :] / 3.0)
    big = np.flatnonzero(~small)
    if big.size:
        needed = np.ceil(np.sqrt(2.0 * _SERIES_EXPONENT / tau[big])).astype(np.int64)
        needed = np.clip(needed, 1, _SERIES_MAX_TERMS)
        diffs = _legendre_differences(y, int(needed.max()))
        base = 0.5 * (1.0 + y)
        for terms in np.unique(needed):
            rows = big[needed == terms]
            i = np.arange(1, terms + 1, dtype=np.float64)
            w = np.exp(-np.outer(tau[rows], i * (i + 1.0) / 2.0))
            out[rows] = base - 0.5 * (w @ diffs[:terms])
    return out


def _approx_lost(
    x: np.ndarray, y: np.ndarray, counts: np.ndarray, n: int, t: np.ndarray
) -> np.ndarray:
    r"""Matched approximation of :math:`P(\text{lost by } t)`, ``(len(t), len(x))``, ``t >= 1``.

    ``x`` the initial frequencies in (0, 1), ``y = 1 - 2x`` and ``counts = n x`` passed
    separately so that both tails keep full precision.
    """
    tf = t.astype(np.float64)[:, None]
    tau = t.astype(np.float64) / n
    outer = _diffusion_lost(x, y, tau)
    q = _gw_q(t)[:, None]
    c = counts[None, :]
    inner = np.exp(c * np.log1p(-q))
    common = np.exp(-2.0 * c / tf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(common > 0.0, outer / common, 0.0)
    ratio = np.clip(np.nan_to_num(ratio, nan=0.0, posinf=1.0), 0.0, 1.0)
    return np.clip(outer + (inner - common) * ratio, 0.0, 1.0)


def _approx_lost_fixed(p: np.ndarray, n: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lost, fixed)`` of shape ``(len(t), len(p))`` from the matched approximation."""
    lost = np.zeros((t.size, p.size))
    fixed = np.zeros((t.size, p.size))
    lost[:, p == 0.0] = 1.0
    fixed[:, p == 1.0] = 1.0
    zero = t == 0
    inner = (p > 0.0) & (p < 1.0)
    if not np.any(inner) or np.all(zero):
        return lost, fixed
    pi = p[inner]
    y = 1.0 - 2.0 * pi
    cols = np.flatnonzero(inner)
    rows = np.flatnonzero(~zero)
    block = max(1, _APPROX_BLOCK // pi.size)
    for start in range(0, rows.size, block):
        r = rows[start : start + block]
        lost[np.ix_(r, cols)] = _approx_lost(pi, y, n * pi, n, t[r])
        fixed[np.ix_(r, cols)] = _approx_lost(1.0 - pi, -y, n - n * pi, n, t[r])
    # The exact values are non-decreasing in t with limits 1 - p and p; imposing both on the
    # approximation can only move it towards the exact values.
    np.minimum(lost, 1.0 - p, out=lost)
    np.minimum(fixed, p, out=fixed)
    order = np.argsort(t, kind="stable")
    lost[order] = np.maximum.accumulate(lost[order], axis=0)
    fixed[order] = np.maximum.accumulate(fixed[order], axis=0)
    return lost, fixed


# --------------------------------------------------------------------------------------
# replace: loss and fixation
# --------------------------------------------------------------------------------------


def _steps(t: np.ndarray) -> tuple[np.ndarray, np.ndarray | slice]:
    """Sorted distinct ``t - 1`` and the map back to ``t`` (no sort for increasing ``t``)."""
    if t.size < 2 or np.all(t[1:] > t[:-1]):
        return t - 1, slice(None)
    return np.unique(t - 1, return_inverse=True)


def _lost_fixed(p: np.ndarray, n: int, t: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Loss / fixation probabilities ``(len(t), len(p))`` for validated arguments."""
    if p.size == 1:
        uniq, inverse = p, slice(None)
    else:
        uniq, inverse = np.unique(p, return_inverse=True)
    if method == "approx":
        if t.size * uniq.size > _MAX_APPROX_PAIRS:
            raise ValueError(
                f"len(generations) * (distinct p) must be at most {_MAX_APPROX_PAIRS} for "
                f"the approximation, got {t.size} * {uniq.size}"
            )
        lost, fixed = _approx_lost_fixed(uniq, n, t)
        return lost[:, inverse], fixed[:, inverse]
    lost = np.zeros((t.size, uniq.size))
    fixed = np.zeros((t.size, uniq.size))
    lost[:, uniq == 0.0] = 1.0
    fixed[:, uniq == 1.0] = 1.0
    positive = t > 0
    if np.any(positive):
        steps, where = _steps(t[positive])
        weights = _binomial_rows(n, uniq)
        lo, fx = _exact_lost_fixed(n, weights, steps)
        lost[positive] = lo[where]
        fixed[positive] = fx[where]
    return lost[:, inverse], fixed[:, inverse]


def categorical_fixation_probabilities(
    p: float | Sequence[float] | np.ndarray,
    n_samples: int,
    generations: GenerationsLike,
    *,
    method: Method = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    r"""Probabilities that a category is lost / fixed by generation :math:`t` (``replace``).

    A category of probability :math:`p` in the generation-0 model has count
    :math:`X_1 \sim \mathrm{Binomial}(n, p)` in generation 1 and
    :math:`X_{t+1} \mid X_t \sim \mathrm{Binomial}(n, X_t/n)` afterwards (marginally, one
    coordinate of the multinomial refit is exactly this haploid Wright–Fisher chain). It is
    *lost* by :math:`t` if :math:`X_t = 0` and *fixed* if :math:`X_t = n`; both are
    absorbing, so these are also the probabilities of being absorbed at or before :math:`t`.

    Parameters
    ----------
    p : float or array-like of float
        Initial probabilities, each in :math:`[0, 1]`.
    n_samples : int
        Tokens per generation :math:`n`, in :math:`[1, 10^{12}]`.
    generations : int or array-like of int
        :math:`G` (meaning :math:`0, \dots, G`) or the generations, each in
        :math:`[0, 10^7]`; ``len(generations) * len(p)`` at most
        :data:`MAX_OUTPUT_ELEMENTS`.
    method : {"auto", "exact", "approx"}
        ``"exact"`` iterates the chain (:math:`n \le` :data:`EXACT_MAX_N` only);
        ``"approx"`` is the matched approximation below; ``"auto"`` picks ``"exact"``
        whenever it is allowed.

    Returns
    -------
    lost, fixed : ndarray
        Shape ``(len(generations), len(p))``, or ``(len(generations),)`` for a scalar
        ``p``. At :math:`t = 0`: ``lost = [p == 0]``, ``fixed = [p == 1]``. As
        :math:`t \to \infty`: ``lost -> 1 - p``, ``fixed -> p`` (:math:`X_t/n` is a bounded
        martingale).

    Notes
    -----
    **Exact computation** (:math:`n \le` :data:`EXACT_MAX_N`). With
    :math:`P_{ij} = \binom{n}{j}(i/n)^j(1-i/n)^{n-j}` (built with
    :func:`scipy.stats.binom.pmf`, each row restricted to the band outside which it has
    less than :math:`2 \cdot 10^{-30}` of its mass), :math:`u_s = P^s e_0` is the vector of
    loss probabilities within :math:`s` steps from every count, and

    .. math::

        P(\text{lost by } t) = \sum_{i=0}^n \binom{n}{i} p^i (1-p)^{n-i}\, u_{t-1}(i),
        \qquad P(\text{fixed by } t) = \sum_i \binom{n}{i} p^i (1-p)^{n-i}\, u_{t-1}(n-i)

    for :math:`t \ge 1` (the chain is symmetric under :math:`i \mapsto n - i`). One sparse
    matrix-vector product per generation serves every :math:`p` at once. Late generations
    are not iterated: the right eigenvectors of :math:`P` are polynomials in :math:`i`
    (:math:`P` maps polynomials of degree :math:`\le k` to themselves), with eigenvalues
    :math:`\lambda_k = \prod_{j<k}(1 - j/n)`; :math:`u_s - (1 - i/n)` vanishes at
    :math:`0, n` and once it lies, within :math:`10^{-13}` in sup norm, in the span of the
    first 8 transient eigenvectors (polynomials of degree :math:`\le 9` vanishing at
    :math:`0` and :math:`n`, an invariant subspace) it is propagated in closed form. That
    happens after about :math:`0.65 n` generations; because :math:`P` is stochastic, the
    neglected part never grows. Results are exact to about :math:`10^{-13}`. Timing at
    ``n = 2000`` (2-core machine): 1000 generations 0.7 s (up to 2 s when the machine is
    busy); the chain is never iterated beyond about 1300 generations, so any later
    generation costs the same (asking for all :math:`10^7` generations adds a few seconds to
    fill the two 80 MB results).

    **Approximation** (:math:`n >` :data:`EXACT_MAX_N`, or ``method="approx"``). Write
    :math:`x = p`, :math:`c = np`, :math:`\tau = t/n`.

    *Outer solution: the diffusion limit* (Kimura 1955, PNAS 41:144). For the haploid chain
    :math:`\mathbb E[\Delta x] = 0` and :math:`\operatorname{Var}(\Delta x \mid x) =
    x(1-x)/n` per generation, so with :math:`\tau = t/n` the backward equation is
    :math:`\partial_\tau u = \tfrac12 x(1-x)\,\partial_x^2 u` (the diploid model of size
    :math:`N` is the case :math:`n = 2N`). Its eigenfunctions vanishing at 0 and 1 are
    :math:`x(1-x)P^{(1,1)}_{i-1}(1-2x) \propto x(1-x)\,C^{(3/2)}_{i-1}(1-2x)` with rates
    :math:`i(i+1)/2` per :math:`n` generations (:math:`i = 1` gives :math:`e^{-t/n}`, the
    continuum limit of :math:`\lambda_2 = 1 - 1/n`), orthogonal for the speed measure
    :math:`dx/(x(1-x))`. Writing :math:`u = 1 - x - w` (:math:`1 - x` is the stationary
    solution), the initial condition :math:`w(x, 0) = 1 - x` on :math:`(0, 1)` has
    coefficient :math:`\int_0^1 (1-x)P^{(1,1)}_{i-1}\,dx \big/ \int_0^1
    x(1-x)[P^{(1,1)}_{i-1}]^2 dx = (2i+1)/i` on :math:`x(1-x)P^{(1,1)}_{i-1}(1-2x)`; with
    :math:`P^{(1,1)}_{i-1}(1-2x) = i\,{}_2F_1(1-i, i+2; 2; x)` and
    :math:`(1-y^2)P_i'(y) = \tfrac{i(i+1)}{2i+1}(P_{i-1}(y) - P_{i+1}(y))`:

    .. math::

        u_{\mathrm{out}}(x, \tau) = 1 - x - \sum_{i \ge 1} (2i+1)\,x(1-x)\,
        {}_2F_1(1-i, i+2; 2; x)\, e^{-i(i+1)\tau/2}
        = \frac{1+y}{2} - \frac12 \sum_{i \ge 1} \big[P_{i-1}(y) - P_{i+1}(y)\big]
        e^{-i(i+1)\tau/2},

    :math:`y = 1 - 2x`, :math:`P_i` Legendre polynomials (summed while
    :math:`e^{-i(i+1)\tau/2} > e^{-42}`). For :math:`\tau < 10^{-3}` the series is replaced
    by its small-time expansion :math:`e^{-2x/\tau}(1 - \tfrac23 x^2/\tau - \tfrac13 x)`
    (obtained by inserting :math:`u = u_0(z) + \tau u_1(z)`, :math:`z = x/\tau`, into the
    backward equation; checked against the series to :math:`0.04\tau^2`).

    *Inner solution: critical Poisson branching.* While the count is small,
    :math:`\mathrm{Binomial}(n, X/n) \approx \mathrm{Poisson}(X)`: each token has
    Poisson(1) offspring, and :math:`u_{\mathrm{in}} = f_t(0)^{c}` with :math:`f(s) =
    e^{s-1}` iterated :math:`t` times (:func:`rare_category_survival`). Both share the
    Feller limit :math:`u_{\mathrm{com}} = e^{-2c/t}`, and the matched approximation is

    .. math::

        u \approx u_{\mathrm{out}} + (u_{\mathrm{in}} - u_{\mathrm{com}})
        \min\big(1, u_{\mathrm{out}} / u_{\mathrm{com}}\big),

    the last factor switching the boundary-layer correction off in the bulk, where it would
    otherwise add an :math:`O(\log n / n)` error. Fixation is the loss of the complement:
    the same with :math:`p \to 1 - p`.

    Finally the approximation is clipped to the exact bounds ``lost <= 1 - p``,
    ``fixed <= p`` and made non-decreasing over the requested generations (both can only
    bring it closer to the exact values).

    *Measured error* against the exact chain (initial counts :math:`c \in \{0.5, 1, 1.5, 2,
    3, 5, 10, 20, 50, 100, 200, 500\}`, their mirrors :math:`n - c` and :math:`n/2`;
    :math:`t = 0..10n`; lost and fixed): max absolute error :math:`1.02 \times 10^{-4}` at
    :math:`n = 2000` (:data:`EXACT_MAX_N`), :math:`1.95 \times 10^{-4}` at 1000,
    :math:`3.90 \times 10^{-4}` at 500, :math:`7.78 \times 10^{-4}` at 250: :math:`0.20/n`
    (a sweep over every :math:`c = 0.25, 1.25, \dots, 1000.25`, :math:`t < 6n` at
    :math:`n = 2000` gives the same :math:`1.02 \times 10^{-4}`). Re-measure with::

        python -c "from collapse_sim.theory import categorical as m; \
            print(m.measure_approximation_errors(2000))"

    The pure diffusion (no inner correction) is off by up to 0.23 at :math:`n = 2000` for a
    single copy at :math:`t = 1` (:math:`(1-1/n)^n \approx e^{-1}` against the Feller
    :math:`e^{-2}`); pure branching is off by about :math:`0.14\, t/n`.

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> lost, fixed = th.categorical_fixation_probabilities(0.5, 2, [0, 1, 2])
    >>> lost, fixed
    (array([0.   , 0.25 , 0.375]), array([0.   , 0.25 , 0.375]))
    """
    probs, scalar = _check_unit("p", p)
    n = _check_n_samples(n_samples)
    t = _check_generations(generations)
    how = _check_method(method, n)
    _check_output_size(t.size, probs.size)
    lost, fixed = _lost_fixed(probs, n, t, how)
    if scalar:
        return lost[:, 0], fixed[:, 0]
    return lost, fixed


def categorical_surviving_mean(
    probs: Sequence[float] | np.ndarray,
    n_samples: int,
    generations: GenerationsLike,
    *,
    method: Method = "auto",
) -> np.ndarray:
    r"""Expected number of categories with non-zero probability in generation :math:`t`.

    Parameters
    ----------
    probs : array-like of float
        The truth :math:`p_0` (1 to :data:`MAX_CATEGORIES` entries, summing to 1).
    n_samples : int
        Tokens per generation :math:`n`, in :math:`[1, 10^{12}]`.
    generations : int or array-like of int
        :math:`G` (meaning :math:`0, \dots, G`) or the generations, each in
        :math:`[0, 10^7]`.
    method : {"auto", "exact", "approx"}
        As in :func:`categorical_fixation_probabilities`.

    Returns
    -------
    ndarray
        :math:`\sum_j \big(1 - P(\text{lost by } t \mid p_{0,j})\big)` for each ``t``.

    Notes
    -----
    By linearity of expectation the count of live categories needs only the marginal loss
    probabilities of :func:`categorical_fixation_probabilities`: each coordinate of the
    multinomial refit is a Wright–Fisher chain of its own, whatever the others do. Equal
    probabilities are grouped; on the exact path the binomial first-step weights of all
    categories are summed into one row, so the cost is one chain iteration whatever
    :math:`V`. At :math:`t = 0` the value is :math:`\#\{j : p_{0,j} > 0\}`; it decreases to
    1 (every category but one is eventually lost).

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> th.categorical_surviving_mean([0.5, 0.5], 2, [0, 1])
    array([2. , 1.5])
    """
    p0 = _check_probs(probs)
    n = _check_n_samples(n_samples)
    t = _check_generations(generations)
    how = _check_method(method, n)
    uniq, mult = np.unique(p0[p0 > 0.0], return_counts=True)
    alive0 = float(mult.sum())
    out = np.full(t.size, alive0)
    positive = t > 0
    if not np.any(positive):
        return out
    if how == "approx":
        tp = t[positive]
        if tp.size * uniq.size > _MAX_APPROX_PAIRS:
            raise ValueError(
                f"len(generations) * (distinct probs) must be at most {_MAX_APPROX_PAIRS} "
                f"for the approximation, got {tp.size} * {uniq.size}"
            )
        total = np.zeros(tp.size)
        block = max(1, _APPROX_BLOCK // max(1, tp.size))
        for start in range(0, uniq.size, block):
            lo, _ = _approx_lost_fixed(uniq[start : start + block], n, tp)
            total += lo @ mult[start : start + block]
        out[positive] = alive0 - total
        return out
    from scipy import sparse

    row = np.zeros(n + 1)
    for start in range(0, uniq.size, 4096):
        w = _binomial_rows(n, uniq[start : start + 4096])
        row += np.asarray(w.T @ mult[start : start + 4096]).ravel()
    steps, where = _steps(t[positive])
    lost, _ = _exact_lost_fixed(n, sparse.csr_matrix(row[None, :] / alive0), steps)
    out[positive] = alive0 * (1.0 - lost[where, 0])
    return out


# --------------------------------------------------------------------------------------
# replace: absorption time
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _absorption_times(n: int) -> np.ndarray:
    """Expected steps to absorption from every count ``0..n`` (exact linear solve)."""
    tau = np.zeros(n + 1)
    if n >= 2:
        q = _transition_matrix(n)[1:n, 1:n].toarray()
        tau[1:n] = np.linalg.solve(np.eye(n - 1) - q, np.ones(n - 1))
    tau.setflags(write=False)
    return tau


def categorical_absorption_time_mean(
    p: float | Sequence[float] | np.ndarray, n_samples: int, *, method: Method = "auto"
) -> float | np.ndarray:
    r"""Expected number of generations until a category is lost or fixed (``replace``).

    Parameters
    ----------
    p : float or array-like of float
        Probability of the category in the generation-0 model, each in :math:`[0, 1]`.
    n_samples : int
        Tokens per generation :math:`n`, in :math:`[1, 10^{12}]`.
    method : {"auto", "exact", "approx"}
        ``"exact"``: linear solve (:math:`n \le` :data:`EXACT_MAX_N`); ``"approx"``:
        diffusion formula; ``"auto"``: exact whenever allowed.

    Returns
    -------
    float or ndarray
        :math:`\mathbb E[T]`, :math:`T = \min\{t \ge 0 : X_t \in \{0, n\}\}`, where
        :math:`X_t` is the count in generation :math:`t` (so :math:`T = 0` for
        :math:`p \in \{0, 1\}`, and :math:`T \ge 1` otherwise: generation 1 is the first
        refit). A float for a scalar ``p``.

    Notes
    -----
    **Exact.** Let :math:`\tau(i)` be the expected number of steps to absorption from count
    :math:`i`; first-step analysis gives :math:`\tau(i) = 1 + \sum_j P_{ij}\tau(j)` with
    :math:`\tau(0) = \tau(n) = 0`, i.e. :math:`(I - Q)\tau = \mathbf 1` over the transient
    counts :math:`1..n-1` (dense solve, about 0.4 s at :math:`n = 2000`, cached). The first
    refit draws :math:`X_1 \sim \mathrm{Binomial}(n, p)`, so

    .. math::

        \mathbb E[T] = 1 + \sum_{i=0}^{n} \binom{n}{i} p^i (1-p)^{n-i}\, \tau(i),
        \qquad 0 < p < 1 .

    For :math:`p = c/n` this equals :math:`\tau(c)` (one more step of the same chain), so a
    category of count :math:`c` in any generation has :math:`\tau(c)` generations left in
    expectation.

    **Diffusion approximation** (:math:`n >` :data:`EXACT_MAX_N`). With
    :math:`\tau = t/n` the mean absorption time :math:`g(x)` of
    :math:`\tfrac12 x(1-x)\partial_x^2` solves :math:`\tfrac12 x(1-x) g'' = -1`,
    :math:`g(0) = g(1) = 0`, so

    .. math::

        \mathbb E[T] \approx -2n\,\big[p\log p + (1-p)\log(1-p)\big].

    In our convention the clock starts at the generation-0 model of frequency :math:`p`
    and the first refit is the first of the :math:`T` steps, exactly as the diffusion
    started from :math:`x = p` at :math:`\tau = 0`: no shift is added (a convention that
    counts from the first refit's count instead would subtract 1). Measured against the
    exact solve at :math:`n = 2000`: the approximation is too long by 0.65 generations
    at :math:`p = 1/n` (3.9 % relative, :math:`\tau(1) = 16.55`) and by 3.0 generations at
    :math:`p = 1/2` (0.11 %); the absolute error grows like :math:`\tfrac13 \ln n`, the
    relative error falls like :math:`1/\ln n` for a single copy and :math:`\ln n / n` in the
    bulk (:func:`measure_approximation_errors`).

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> round(th.categorical_absorption_time_mean(0.5, 2), 12)
    2.0
    """
    probs, scalar = _check_unit("p", p)
    n = _check_n_samples(n_samples)
    how = _check_method(method, n)
    if how == "approx":
        with np.errstate(divide="ignore", invalid="ignore"):  # p = 1: 0 * log1p(-1)
            tail = np.where(probs < 1.0, (1.0 - probs) * np.log1p(-probs), 0.0)
        out = -2.0 * n * (special.xlogy(probs, probs) + tail)
    else:
        out = np.zeros(probs.size)
        inner = (probs > 0.0) & (probs < 1.0)
        if np.any(inner):
            uniq, inverse = np.unique(probs[inner], return_inverse=True)
            tau = _absorption_times(n)
            vals = np.empty(uniq.size)
            for start in range(0, uniq.size, 4096):
                w = _binomial_rows(n, uniq[start : start + 4096])
                vals[start : start + 4096] = 1.0 + w @ tau
            out[inner] = vals[inverse]
    return float(out[0]) if scalar else out


# --------------------------------------------------------------------------------------
# rare categories
# --------------------------------------------------------------------------------------


def rare_category_survival(
    count: int, n_samples: int, generations: GenerationsLike, *, method: Method = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    r"""Survival of a category seen ``count`` times in the real sample, and its branching limit.

    Parameters
    ----------
    count : int
        :math:`c`, the category's count in the fitted sample, in :math:`[1, n]`.
    n_samples : int
        Tokens per generation :math:`n`, in :math:`[1, 10^{12}]`.
    generations : int or array-like of int
        Refits :math:`t` *after* the fit in which the category has count :math:`c` (in the
        library's numbering, where generation 1 is the fit to the real sample, generation
        :math:`g` is :math:`t = g - 1`), each in :math:`[0, 10^7]`.
    method : {"auto", "exact", "approx"}
        As in :func:`categorical_fixation_probabilities`.

    Returns
    -------
    finite_n, branching : ndarray
        :math:`P(X_t > 0 \mid X_0 = c)` for the Wright–Fisher chain of size :math:`n`
        (exact for :math:`n \le` :data:`EXACT_MAX_N`; fixation counts as survival), and its
        :math:`n \to \infty` limit :math:`1 - f_t(0)^c`.

    Notes
    -----
    The model fitted to the sample gives the category probability :math:`c/n`, so
    ``finite_n`` is ``1 - categorical_fixation_probabilities(c / n, n, t)[0]``. As
    :math:`n \to \infty` with :math:`c` fixed, :math:`\mathrm{Binomial}(n, X/n) \to
    \mathrm{Poisson}(X)`: the :math:`X` tokens of the category have independent Poisson(1)
    numbers of copies in the next generation, a critical Galton–Watson process with
    offspring generating function :math:`f(s) = e^{s-1}` (mean 1, variance
    :math:`\sigma^2 = 1`). Its extinction probability by :math:`t` from one individual is
    the iterate :math:`f_t(0)` (:math:`f_0(0) = 0`, :math:`f_{t+1}(0) = f(f_t(0))`), and the
    :math:`c` lineages are independent:

    .. math::

        P(\text{alive at } t) = 1 - f_t(0)^c, \qquad
        \frac{1}{q_t} = \frac t2 + \frac16 \ln t + O(1), \quad q_t = 1 - f_t(0),

    from :math:`1/q_{t+1} = 1/q_t + 1/2 + q_t/12 + O(q_t^3)`; this is Kolmogorov's
    :math:`q_t \sim 2/(\sigma^2 t)`. :math:`f_t(0)` is iterated exactly up to
    :math:`t = 2^{16}` and continued with the digamma form of that expansion (relative error
    below :math:`10^{-11}`). The limit is already close at moderate :math:`n`: the
    difference is :math:`O(c\,t/n)`.

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> exact, limit = th.rare_category_survival(1, 1000, [0, 1])
    >>> round(float(exact[1]), 6), round(float(limit[1]), 6)
    (0.632305, 0.632121)
    """
    n = _check_n_samples(n_samples)
    c = _check_int("count", count, 1, n)
    t = _check_generations(generations)
    how = _check_method(method, n)
    lost, _ = _lost_fixed(np.array([c / n]), n, t, how)
    with np.errstate(divide="ignore"):  # q_0 = 1: log1p(-1) = -inf, survival 1
        limit = -np.expm1(c * np.log1p(-_gw_q(t)))
    return 1.0 - lost[:, 0], limit


def _branching_median(c: int) -> int:
    """Smallest ``t`` with ``f_t(0) ** c >= 1/2`` (Poisson(1) Galton–Watson from ``c``)."""
    target = -1.0 / math.expm1(-math.log(2.0) / c)  # need 1/q_t >= target
    inv = 1.0 / _gw_table()
    if target <= inv[-1]:
        return int(np.searchsorted(inv, target, side="left"))
    lo, hi = _GW_TABLE_SIZE, _GW_TABLE_SIZE + int(2.0 * (target - inv[-1])) + 2
    while hi - lo > 1:  # invariant: F(lo) < target <= F(hi)
        mid = (lo + hi) // 2
        if _gw_inv_q_asymptotic(np.array([mid]))[0] >= target:
            hi = mid
        else:
            lo = mid
    return hi


def rare_category_median_survival(
    count: int, n_samples: int | None = None, *, method: Method = "auto"
) -> float:
    r"""Median lifetime of a category seen ``count`` times: the smallest :math:`t` with
    :math:`P(\text{lost by } t) \ge 1/2`.

    Parameters
    ----------
    count : int
        :math:`c`, the category's count in the fitted sample, in :math:`[1, 10^{12}]`
        (and at most ``n_samples``).
    n_samples : int or None
        ``None`` (default): the :math:`n \to \infty` critical Poisson branching limit.
        Otherwise the Wright–Fisher chain of this size, in :math:`[1, 10^{12}]`, evaluated
        with :func:`categorical_fixation_probabilities` for :math:`t \le 10^7`.
    method : {"auto", "exact", "approx"}
        As in :func:`categorical_fixation_probabilities` (ignored for ``n_samples=None``).

    Returns
    -------
    float
        The median number of refits :math:`t` after the fit with count :math:`c` (an
        integer value), or ``inf`` if the loss probability never reaches 1/2 (a finite
        chain with :math:`c \ge n/2`: it tends to :math:`1 - c/n`) or only after
        :data:`MAX_GENERATIONS`.

    Notes
    -----
    In the branching limit :math:`P(\text{lost by } t) = (1 - q_t)^c` with
    :math:`q_t \simeq 2/(\sigma^2 t)`. Setting it to 1/2:
    :math:`q_T = 1 - 2^{-1/c} = \ln 2 / c + O(c^{-2})`, hence

    .. math::

        T_{1/2} \simeq \frac{2c}{\sigma^2 \ln 2} - \frac13 \ln T_{1/2} + O(1)
        = 2.885\,c + O(\ln c) \quad (\sigma^2 = 1),

    linear in :math:`c` (the Feller diffusion, where :math:`P(\text{lost by } t) =
    e^{-2c/(\sigma^2 t)}`, gives exactly :math:`2c/(\sigma^2\ln 2)`). A word seen 10 times
    in the real data survives half of the time for about 28 generations; 1000 times, about
    2880. For a finite chain the median is a little larger, close to the limit while
    :math:`c \ll n`: :math:`\mathrm{Binomial}(n, X/n)` has variance :math:`X(1 - X/n) < X`,
    less drift than the Poisson offspring (e.g. :math:`(1 - 1/n)^n < e^{-1}` for the loss
    in one step of a single copy).

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> [th.rare_category_median_survival(c) for c in (1, 10, 100)]
    [2.0, 27.0, 286.0]
    """
    if n_samples is None:
        c = _check_int("count", count, 1, MAX_N_SAMPLES)
        return float(_branching_median(c))
    n = _check_n_samples(n_samples)
    c = _check_int("count", count, 1, n)
    how = _check_method(method, n)
    if 2 * c >= n:
        return math.inf
    p = np.array([c / n])
    start, stop = 0, 64
    while start <= MAX_GENERATIONS:
        t = np.arange(start, min(stop, MAX_GENERATIONS) + 1, dtype=np.int64)
        lost, _ = _lost_fixed(p, n, t, how)
        hit = np.flatnonzero(lost[:, 0] >= 0.5)
        if hit.size:
            return float(t[hit[0]])
        start, stop = stop + 1, 2 * stop
    return math.inf


# --------------------------------------------------------------------------------------
# fresh and accumulate
# --------------------------------------------------------------------------------------


def categorical_gini_simpson_mean_fresh(
    probs: Sequence[float] | np.ndarray,
    n_samples: int,
    fresh: int,
    generations: GenerationsLike,
) -> np.ndarray:
    r"""Expected Gini–Simpson index when :math:`k` of the :math:`n` tokens are fresh real ones.

    Parameters
    ----------
    probs : array-like of float
        The truth :math:`p_0` (1 to :data:`MAX_CATEGORIES` entries, summing to 1).
    n_samples : int
        Tokens per generation :math:`n`, in :math:`[1, 10^{12}]`.
    fresh : int
        :math:`k`, fresh tokens from the truth per generation, in :math:`[0, n]` (the
        library's ``FreshReal(f)`` uses :math:`k = \mathrm{round}(fn)`).
    generations : int or array-like of int
        :math:`G` (meaning :math:`0, \dots, G`) or the generations, each in
        :math:`[0, 10^7]`.

    Returns
    -------
    ndarray
        :math:`\mathbb E[H_t]`, :math:`H = 1 - \sum_j p_j^2`:

        .. math::

            \mathbb E[H_t] = H_0\big[\rho + a^t (1 - \rho)\big], \qquad
            a = \frac{(n-k)(n-k-1)}{n^2}, \qquad
            \rho = \frac{k(2n-k-1)}{n^2 - (n-k)(n-k-1)} .

    Notes
    -----
    The counts of generation :math:`t+1` are :math:`A + B` with independent
    :math:`A \sim \mathrm{Multinomial}(k, p_0)` and :math:`B \sim \mathrm{Multinomial}(m,
    p_t)`, :math:`m = n - k`; the model is :math:`p_{t+1} = (A + B)/n`.

    *Means.* :math:`\mathbb E[p_{t+1} \mid p_t] = (k p_0 + m p_t)/n`, so
    :math:`\mathbb E[p_{t+1}] - p_0 = (m/n)(\mathbb E[p_t] - p_0)`, which is 0 at
    :math:`t = 0`: :math:`\mathbb E[p_t] = p_0` for every :math:`t` and every category (the
    fresh tokens pull towards :math:`p_0`, the synthetic ones are unbiased around
    :math:`p_t`; mixing two unbiased estimates is unbiased).

    *Second moments.* Per category, with :math:`q = p_{0,j}`, :math:`r = p_{t,j}`,
    :math:`\mathbb E[(A_j + B_j)^2] = kq(1-q) + mr(1-r) + (kq + mr)^2`. Summing over
    :math:`j` and taking expectations (:math:`\mathbb E\sum_j q\,r = \sum_j q\,\mathbb
    E[r] = Q := \sum_j q^2`) gives, for :math:`S_t = \mathbb E\sum_j p_{t,j}^2`,

    .. math::

        S_{t+1} = \frac1n + \frac{k(2n-k-1)}{n^2}\, Q + \frac{m(m-1)}{n^2}\, S_t ,
        \qquad S_0 = Q,

    a linear recursion with fixed point :math:`S_\infty`; since
    :math:`n^2 - n - m(m-1) = k(2n-k-1)`, :math:`1 - S_\infty = \rho\,(1 - Q)`, and
    :math:`H_t = 1 - S_t` is as above. Checks: :math:`k = 0` gives :math:`\rho = 0`,
    :math:`a = 1 - 1/n` (:func:`categorical_gini_simpson_mean`); :math:`k = n` gives
    :math:`a = 0`, :math:`\rho = 1 - 1/n`: i.i.d. refits of the truth,
    :math:`\mathbb E[H_t] = (1 - 1/n) H_0` for :math:`t \ge 1`. The stationary index
    :math:`\rho H_0` stays within :math:`O(1/n)` of the truth's for any fixed fraction
    :math:`k/n > 0` (:math:`\rho \to 1` as :math:`n \to \infty`).

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> th.categorical_gini_simpson_mean_fresh([0.5, 0.5], 4, 4, 2)
    array([0.5  , 0.375, 0.375])
    """
    p0 = _check_probs(probs)
    n = _check_n_samples(n_samples)
    k = _check_int("fresh", fresh, 0, n)
    t = _check_generations(generations)
    h0 = max(0.0, 1.0 - float(np.dot(p0, p0)))
    m = n - k
    one_minus_a = k * (2 * n - k - 1) + n  # n^2 - m(m-1), exact Python integers
    rho = k * (2 * n - k - 1) / one_minus_a
    decay = (
        np.exp(t.astype(np.float64) * math.log1p(-one_minus_a / n**2))
        if m > 1
        else ((t == 0).astype(np.float64))
    )
    return h0 * (rho + decay * (1.0 - rho))


def categorical_gini_simpson_mean_accumulate(
    probs: Sequence[float] | np.ndarray, n_samples: int, generations: GenerationsLike
) -> np.ndarray:
    r"""Expected Gini–Simpson index under ``accumulate`` (all real and synthetic data so far).

    Parameters
    ----------
    probs : array-like of float
        The truth :math:`p_0` (1 to :data:`MAX_CATEGORIES` entries, summing to 1).
    n_samples : int
        Tokens per generation :math:`n` (real sample size and synthetic tokens added per
        generation), in :math:`[1, 10^{12}]`.
    generations : int or array-like of int
        :math:`G` (meaning :math:`0, \dots, G`) or the generations, each in
        :math:`[0, 10^7]`.

    Returns
    -------
    ndarray
        .. math::

            \mathbb E[H_t] = H_0 \prod_{s=1}^{t}\Big(1 - \frac{1}{n s^2}\Big)
            \;\xrightarrow[t\to\infty]{}\; H_0\,
            \frac{\sin(\pi/\sqrt n)}{\pi/\sqrt n} .

    Notes
    -----
    With :math:`C_t = R + S_1 + \dots + S_{t-1}` (:math:`tn` tokens) and
    :math:`S_t \sim \mathrm{Multinomial}(n, C_t/(tn))`, write :math:`\pi = C_{t,j}/(tn)`.
    Then :math:`\mathbb E[C_{t+1,j}^2 \mid C_t] = C_{t,j}^2 + 2C_{t,j}\,n\pi
    + n\pi(1-\pi) + n^2\pi^2`, and summing over :math:`j` (:math:`\sum_j C_{t,j} = tn`)

    .. math::

        \mathbb E\Big[\sum_j C_{t+1,j}^2 \Big| C_t\Big] = \Big(\frac{(t+1)^2}{t^2} -
        \frac{1}{n t^2}\Big)\sum_j C_{t,j}^2 + n
        \;\Longrightarrow\;
        \mathbb E[H_{t+1}] = \Big(1 - \frac{1}{n(t+1)^2}\Big)\mathbb E[H_t],

    dividing by :math:`((t+1)n)^2`. Generation 1 (:math:`n` real tokens) is the
    :math:`s = 1` factor :math:`1 - 1/n`. The limit is Euler's product
    :math:`\prod_s (1 - x^2/s^2) = \sin(\pi x)/(\pi x)` at :math:`x = 1/\sqrt n`: about
    :math:`1 - \pi^2/(6n)`, so accumulating keeps the diversity within :math:`O(1/n)` of the
    truth's for ever, while ``replace`` loses it on the time scale :math:`n`. The log
    product is summed as :math:`-\sum_{k \ge 1} \tfrac{x^{2k}}{k}[\zeta(2k) - \zeta(2k,
    t+1)]` (Hurwitz zeta), exact to rounding for every :math:`t`.

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> th.categorical_gini_simpson_mean_accumulate([0.5, 0.5], 2, 2)
    array([0.5    , 0.25   , 0.21875])
    """
    p0 = _check_probs(probs)
    n = _check_n_samples(n_samples)
    t = _check_generations(generations)
    h0 = max(0.0, 1.0 - float(np.dot(p0, p0)))
    if n == 1:
        return h0 * (t == 0).astype(np.float64)
    x = 1.0 / n
    tf = t.astype(np.float64)
    log_prod = np.zeros(t.size)
    k = 1
    while True:
        term = x**k / k * (special.zeta(2.0 * k) - special.zeta(2.0 * k, tf + 1.0))
        log_prod -= term
        if x**k / k * special.zeta(2.0 * k) < 1e-18 or k > 200:
            break
        k += 1
    return h0 * np.exp(log_prod)


def categorical_surviving_mean_accumulate(
    probs: Sequence[float] | np.ndarray, n_samples: int, generations: GenerationsLike
) -> np.ndarray:
    r"""Expected number of live categories under ``accumulate``: frozen after generation 1.

    Parameters
    ----------
    probs : array-like of float
        The truth :math:`p_0` (1 to :data:`MAX_CATEGORIES` entries, summing to 1).
    n_samples : int
        Size :math:`n` of the real sample, in :math:`[1, 10^{12}]`.
    generations : int or array-like of int
        :math:`G` (meaning :math:`0, \dots, G`) or the generations, each in
        :math:`[0, 10^7]`.

    Returns
    -------
    ndarray
        :math:`\#\{j : p_{0,j} > 0\}` at :math:`t = 0` and :math:`\sum_j [1 - (1 -
        p_{0,j})^n]` (the expected number of categories seen in the real sample) for every
        :math:`t \ge 1`.

    Notes
    -----
    See the module docstring: the real tokens are in every training set, so a category seen
    in the real sample keeps a count of at least its real count, and an unseen one has
    probability 0 from generation 1 on. (Under ``fresh`` with :math:`k \ge 1` categories
    can die and come back; under ``replace`` see :func:`categorical_surviving_mean`.)

    Examples
    --------
    >>> from collapse_sim.theory import categorical as th
    >>> th.categorical_surviving_mean_accumulate([0.5, 0.5], 2, 2)
    array([2. , 1.5, 1.5])
    """
    p0 = _check_probs(probs)
    n = _check_n_samples(n_samples)
    t = _check_generations(generations)
    alive0 = float(np.count_nonzero(p0))
    with np.errstate(divide="ignore"):
        seen = float(np.sum(-np.expm1(n * np.log1p(-p0))))  # p = 1 gives log1p(-1) = -inf
    return np.where(t == 0, alive0, seen)


# --------------------------------------------------------------------------------------
# accuracy of the approximations
# --------------------------------------------------------------------------------------


def measure_approximation_errors(
    n_samples: int = EXACT_MAX_N, generations: GenerationsLike | None = None
) -> dict[str, float]:
    r"""Largest errors of the large-:math:`n` approximations against the exact chain.

    Parameters
    ----------
    n_samples : int
        :math:`n`, in :math:`[2,` :data:`EXACT_MAX_N` :math:`]`.
    generations : int or array-like of int, optional
        Where the loss / fixation probabilities are compared; default :math:`0..10n`.

    Returns
    -------
    dict
        ``"fixation_abs"``: max absolute error of ``method="approx"`` in
        :func:`categorical_fixation_probabilities` (lost and fixed) over the initial counts
        :math:`c \in \{0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500\}`, their mirror
        :math:`n - c` and :math:`n/2` (those below :math:`n`);
        ``"absorption_time_abs"`` / ``"absorption_time_rel"``: max absolute (generations) and
        relative error of the diffusion formula of :func:`categorical_absorption_time_mean`
        over every :math:`p = c/n`, :math:`c = 1..n-1`.

    Notes
    -----
    Takes about 2 s at :math:`n = 2000`. Measured, ``n``: ``fixation_abs``,
    ``absorption_time_abs``, ``absorption_time_rel``:

    ====== ============== ===================== =====================
    n      fixation_abs   absorption_time_abs   absorption_time_rel
    ====== ============== ===================== =====================
    250    7.78e-4        2.33                  0.053
    500    3.90e-4        2.56                  0.047
    1000   1.95e-4        2.79                  0.043
    2000   1.02e-4        3.02                  0.039
    ====== ============== ===================== =====================
    """
    n = _check_int("n_samples", n_samples, 2, EXACT_MAX_N)
    t = _check_generations(10 * n if generations is None else generations)
    base = np.array([0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500], dtype=np.float64)
    base = base[base < n]
    counts = np.unique(np.concatenate([base, n - base, [n / 2]]))
    p = counts / n
    lost_e, fixed_e = _lost_fixed(p, n, t, "exact")
    lost_a, fixed_a = _lost_fixed(p, n, t, "approx")
    fix_err = max(np.abs(lost_a - lost_e).max(), np.abs(fixed_a - fixed_e).max())
    c = np.arange(1, n)
    exact_time = _absorption_times(n)[1:n]
    approx_time = categorical_absorption_time_mean(c / n, n, method="approx")
    diff = np.abs(approx_time - exact_time)
    return {
        "fixation_abs": float(fix_err),
        "absorption_time_abs": float(diff.max()),
        "absorption_time_rel": float((diff / exact_time).max()),
    }
