r"""Theory for probabilistic PCA refitted on its own samples: the total variance.

The fit
-------
The maximum-likelihood PPCA model of a sample with covariance :math:`S` (eigenvalues
:math:`\lambda_1 \ge \dots \ge \lambda_d`) has :math:`C = WW^\top + \sigma^2 I` with
:math:`WW^\top = U_q(\Lambda_q - \sigma^2 I)U_q^\top` and :math:`\sigma^2 =
\frac{1}{d-q}\sum_{j>q}\lambda_j` (:class:`collapse_sim.PPCAFit`). Its trace is

.. math::

    \operatorname{tr} C = \sum_{i \le q}(\lambda_i - \sigma^2) + d\sigma^2
    = \sum_{i \le q}\lambda_i + (d - q)\sigma^2 = \sum_{i=1}^d \lambda_i
    = \operatorname{tr} S :

PPCA keeps the total variance of its data exactly, for every :math:`q`; it only moves
variance between the kept directions and the isotropic noise.

The recursion
-------------
Under ``Replace`` generation :math:`t \ge 2` fits :math:`n` points drawn from generation
:math:`t-1`, the Gaussian :math:`\mathcal N(\mu_{t-1}, C_{t-1})`. With divisor :math:`k`
(:math:`n` for ``"mle"``, :math:`n-1` for ``"unbiased"``) the scatter matrix is
:math:`\mathrm{Wishart}_d(n-1, C_{t-1})`, so :math:`\mathbb E[S_t \mid C_{t-1}] =
\frac{n-1}{k} C_{t-1}` and, by the trace identity and the tower rule,

.. math::

    \mathbb E[\operatorname{tr} C_t] = \frac{n-1}{k}\,\mathbb E[\operatorname{tr} C_{t-1}]
    \qquad (t \ge 2),

whatever :math:`q`, whatever how the spectrum is split: MLE decays as
:math:`(1 - 1/n)^t`, the unbiased divisor keeps the mean constant (while, as for a single
Gaussian, typical chains still lose variance).

Generation 1 and a finite data set
----------------------------------
When the truth is a data set of :math:`N` training rows (:class:`collapse_sim.Empirical`),
generation 0 is the PPCA of all :math:`N` rows (divisor :math:`k_N = N - \delta`, so
:math:`\operatorname{tr} C_0 = \frac{N}{k_N}\operatorname{tr}\Sigma` with :math:`\Sigma`
the rows' covariance with divisor :math:`N`), and generation 1 fits :math:`n` rows drawn
*without replacement*. For such a sample :math:`\mathbb E[\text{scatter}] = (n-1)
\frac{N}{N-1}\Sigma` (the finite-population correction of the sample covariance), so

.. math::

    \mathbb E[\operatorname{tr} C_1] = \frac{n-1}{k}\,\frac{k_N}{N-1}\,
    \operatorname{tr} C_0,
    \qquad
    \mathbb E[\operatorname{tr} C_t] = \operatorname{tr} C_0
    \Big(\frac{n-1}{k}\Big)^t \frac{k_N}{N-1} \quad (t \ge 1).

The extra factor is :math:`N/(N-1)` for ``"mle"`` (1.0007 for the 1438 training digits)
and exactly 1 for ``"unbiased"``. With a distribution as the truth (``population=None``),
generation 0 is the truth itself and the factor is 1.

Only faithful sampling is covered: the :class:`~collapse_sim.NoiseFree` stage trains on
:math:`\mathcal N(\mu, WW^\top)`, which lacks :math:`d\sigma^2` of the variance.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import (
    Estimator,
    GenerationsLike,
    _validate_estimator,
    _validate_generations,
    _validate_n_samples,
)

__all__ = ["ppca_trace_mean"]


def ppca_trace_mean(
    *,
    trace0: float,
    n_samples: int,
    generations: GenerationsLike,
    estimator: Estimator = "mle",
    population: int | None = None,
) -> np.ndarray:
    r"""Expected total variance :math:`\mathbb E[\operatorname{tr} C_t]` of PPCA refitted
    under ``Replace``, for any number of components (see the module notes).

    .. math::

        \mathbb E[\operatorname{tr} C_t] = \operatorname{tr} C_0
        \Big(\frac{n-1}{k}\Big)^t \rho, \qquad
        \rho = \begin{cases} 1 & t = 0 \text{ or no population} \\
        \frac{N - \delta}{N - 1} & t \ge 1, \text{ a data set of } N \text{ rows}
        \end{cases}

    with :math:`k = n - \delta`, :math:`\delta = 0` (``"mle"``) or 1 (``"unbiased"``).

    Parameters
    ----------
    trace0 : float
        :math:`\operatorname{tr} C_0`: the truth's total variance, or for a data set the
        generation-0 model's (``sim.metrics["variance"][0, 0]``); finite and > 0.
    n_samples : int
        :math:`n`, points per generation, >= 2.
    generations : int or 1-D array_like of int
        ``G`` evaluates at ``t = 0, 1, ..., G``; an array at the given ``t``.
    estimator : {"mle", "unbiased"}
        The fitter's divisor.
    population : int, optional
        :math:`N`, the training rows of an :class:`~collapse_sim.Empirical` truth
        (``truth.train_size``), from which generation 1's :math:`n` rows are drawn without
        replacement; ``N >= n_samples``. ``None``: the truth is a distribution.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(t),)``.

    Examples
    --------
    >>> from collapse_sim.theory import ppca_trace_mean
    >>> ppca_trace_mean(trace0=10.0, n_samples=100, generations=2).round(4)
    array([10.   ,  9.9  ,  9.801])
    >>> ppca_trace_mean(trace0=10.0, n_samples=100, generations=[0, 1], population=1000)
    array([10.        ,  9.90990991])
    """
    if isinstance(trace0, bool) or not isinstance(trace0, numbers.Real):
        raise TypeError(f"trace0 must be a finite real number > 0, got {type(trace0).__name__}")
    trace0 = float(trace0)
    if not (np.isfinite(trace0) and trace0 > 0):
        raise ValueError(f"trace0 must be a finite real number > 0, got {trace0}")
    n = _validate_n_samples(n_samples)
    t = _validate_generations(generations)
    ddof = 0 if _validate_estimator(estimator) == "mle" else 1
    rho = 1.0
    if population is not None:
        if isinstance(population, bool) or not isinstance(population, numbers.Integral):
            raise TypeError(f"population must be an int >= n_samples or None, got "
                            f"{type(population).__name__}")
        if population < n:
            raise ValueError(f"population must be an int >= n_samples={n} (generation 1 draws "
                             f"n_samples of its rows without replacement), got {population}")
        rho = (int(population) - ddof) / (int(population) - 1)
    k = n - ddof
    log_ratio = math.log1p((n - 1 - k) / k)  # log((n - 1) / k), exact 0 when unbiased
    with np.errstate(under="ignore"):
        factor = np.exp(t.astype(np.float64) * log_ratio)
    return trace0 * factor * np.where(t >= 1, rho, 1.0)
