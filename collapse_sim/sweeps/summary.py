"""What a sweep keeps of each run: per-run summaries and per-generation curves.

Computed in the worker, so only these small results travel back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._validation import check_real
from ..results import Simulation

#: Default ``threshold`` of the ``collapse_generation`` summary.
DEFAULT_THRESHOLD = 0.1


def _check_quantiles(quantiles) -> tuple[float, ...]:
    if isinstance(quantiles, str) or not isinstance(quantiles, Sequence) or not quantiles:
        raise TypeError("quantiles must be a non-empty sequence of levels in [0, 1]")
    out = tuple(check_real("quantiles", q, low=0.0, high=1.0) for q in quantiles)
    names = [_quantile_name(q) for q in out]
    if len(set(names)) != len(names):
        raise ValueError(f"quantiles must be distinct percent levels, got {list(out)}")
    return out


def _quantile_name(q: float) -> str:
    return f"q{round(100 * q):02d}"


def summarize(sim: Simulation, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    r"""The per-run numbers of a sweep's table, from one :class:`~collapse_sim.Simulation`.

    See :func:`sweep` (Returns) for their definitions.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> from collapse_sim.sweeps import summarize
    >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=5,
    ...                   generations=40, chains=20, metrics=["variance"], seed=0)
    >>> sorted(summarize(sim))
    ['collapse_generation', 'final_variance_mean', 'final_variance_median', 'final_variance_ratio']
    """
    out: dict[str, float] = {}
    if "variance" in sim.metrics:
        var = sim.metrics["variance"]
        ratio = np.median(var[1:], axis=1) / var[0, 0]
        below = np.flatnonzero(ratio < threshold)
        out["collapse_generation"] = float(below[0] + 1) if below.size else math.nan
        out["final_variance_ratio"] = float(np.median(var[-1]) / var[0, 0])
    for name, arr in sim.metrics.items():
        out[f"final_{name}_median"] = float(np.median(arr[-1]))
        out[f"final_{name}_mean"] = float(np.mean(arr[-1]))
    return out


def _curves(sim: Simulation, quantiles: tuple[float, ...]) -> dict[str, np.ndarray]:
    out = {}
    for name, arr in sim.metrics.items():
        out[f"{name}_mean"] = arr.mean(axis=1)
        qs = np.quantile(arr, quantiles, axis=1)
        for q, row in zip(quantiles, qs, strict=True):
            out[f"{name}_{_quantile_name(q)}"] = row
    return out
