"""Theory curves that :meth:`Simulation.plot <collapse_sim.Simulation.plot>` draws over a run:
a registry of (metric, predicate on the configuration, curves), see :func:`register_overlay`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .categorical import (
    categorical_gini_simpson_mean,
    categorical_gini_simpson_mean_accumulate,
    categorical_gini_simpson_mean_fresh,
    categorical_surviving_mean,
    categorical_surviving_mean_accumulate,
)
from .gaussian import gaussian_variance_mean, gaussian_variance_quantiles

__all__ = ["overlay_for", "register_overlay"]

Curves = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class _Overlay:
    metric: str
    predicate: Callable[[dict], bool]
    fn: Callable[[dict], Curves | np.ndarray]
    label: str


_OVERLAYS: list[_Overlay] = []


def register_overlay(metric: str, predicate: Callable[[dict], bool],
                     fn: Callable[[dict], Curves | np.ndarray], *,
                     label: str = "theory") -> None:
    r"""Draw ``fn(config)`` over the runs of ``metric`` for which ``predicate(config)`` holds.

    An *overlay* ties a theory function to the runs it describes: ``predicate`` says
    whether the theory holds for a run *exactly* (same truth family, fitter, estimator and
    policy, no generation stage), judging by its configuration (``Simulation.config``, a
    JSON-able dict), and ``fn`` returns the curves at generations ``0..G``. The keys of
    the curves name statistics across chains: ``"mean"`` (the expectation) and quantiles
    named as the columns of :meth:`Simulation.quantiles
    <collapse_sim.Simulation.quantiles>` (``"q10"``, ``"q50"``, ``"q90"``); a bare
    array counts as ``"mean"``. The plot draws the quantiles dashed and the mean dotted,
    next to the simulated median, band and mean. A later registration for the same
    metric is tried first (:func:`overlay_for`), so an overlay of yours can refine a
    built-in one.

    Registered with the library (the exact results of :mod:`collapse_sim.theory`):

    ================  ==================================================  ====================
    metric            runs                                                curves
    ================  ==================================================  ====================
    ``variance``      ``Gaussian`` truth, ``GaussianFit``, ``Replace``    mean (any dimension:
                                                                          the trace); in 1-D
                                                                          also the exact
                                                                          10/50/90% quantiles
    ``gini_simpson``  ``Categorical``/``Zipf`` truth, ``CategoricalFit``  mean
                      without smoothing; ``Replace``, ``FreshReal(f)``
                      (a fixed ``f``) or ``Accumulate``
    ``support``       the same, ``Replace`` or ``Accumulate``             mean
    ================  ==================================================  ====================

    Parameters
    ----------
    metric : str
        The metric name (a key of ``Simulation.metrics``).
    predicate : callable
        ``predicate(config) -> bool``: whether the theory holds exactly for a run of this
        configuration (``Simulation.config``). Should not raise on configurations it does
        not know (use ``config.get``).
    fn : callable
        ``fn(config)``: a ``(G + 1,)`` array (the mean) or a dict of such arrays keyed by
        ``"mean"`` and quantile names ``"q10"``, ``"q50"``, ``"q90"`` …, where
        ``G = config["generations"]``.
    label : str
        Legend name of the theory ("exact theory", a citation …).

    Examples
    --------
    >>> import numpy as np
    >>> from collapse_sim import theory
    >>> theory.register_overlay(
    ...     "mean_shift", lambda c: c.get("fitter", {}).get("type") == "MyFit",
    ...     lambda c: np.zeros(c["generations"] + 1), label="no drift")
    """
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"metric must be a non-empty str, got {metric!r}")
    for name, value in (("predicate", predicate), ("fn", fn)):
        if not callable(value):
            raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    _OVERLAYS.append(_Overlay(metric, predicate, fn, label))


def overlay_for(metric: str, config: dict) -> tuple[str, dict[str, np.ndarray]] | None:
    """``(label, curves)`` of the latest overlay registered for ``metric`` that applies to a
    run of configuration ``config``, or ``None``.

    Raises
    ------
    ValueError
        If the overlay's function returns something other than ``(G + 1,)`` arrays under
        the accepted keys (naming the overlay).
    """
    from .. import _builtins

    _builtins.load()
    for overlay in reversed(_OVERLAYS):
        if overlay.metric != metric or not overlay.predicate(config):
            continue
        out = overlay.fn(config)
        curves = {"mean": out} if not isinstance(out, Mapping) else dict(out)
        rows = int(config["generations"]) + 1
        for key, value in curves.items():
            value = np.asarray(value, dtype=np.float64)
            if not (key == "mean" or (key.startswith("q") and _is_number(key[1:]))):
                raise ValueError(f"overlay {overlay.label!r} for {metric!r} returned the key "
                                 f"{key!r}; keys must be 'mean' or quantile names like 'q50'")
            if value.shape != (rows,):
                raise ValueError(f"overlay {overlay.label!r} for {metric!r} returned {key!r} "
                                 f"of shape {value.shape}; expected ({rows},), generations "
                                 f"0..{rows - 1}")
            curves[key] = value
        return overlay.label, curves
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- the configurations the built-in theory describes ----------------------------------------

def _type(config: dict, key: str):
    part = config.get(key)
    return part.get("type") if isinstance(part, Mapping) else None


def _plain(config: dict) -> bool:
    """No generation stage, and sizes the theory functions take."""
    return ("generation" not in config and isinstance(config.get("n_samples"), int)
            and isinstance(config.get("generations"), int))


def _gaussian_replace(config: dict) -> bool:
    return (_plain(config) and _type(config, "truth") == "Gaussian"
            and _type(config, "fitter") == "GaussianFit"
            and config["fitter"].get("estimator") in ("mle", "unbiased")
            and _type(config, "policy") == "Replace")


def _gaussian_variance(config: dict) -> dict[str, np.ndarray]:
    """Mean of the total variance (any d); in 1-D also the exact 10/50/90% quantiles."""
    cov = np.asarray(config["truth"]["cov"], dtype=np.float64)
    cov = cov.reshape(-1, cov.shape[-1], cov.shape[-1])[0]
    kw = {"n_samples": config["n_samples"], "generations": config["generations"],
          "estimator": config["fitter"]["estimator"], "var0": float(np.trace(cov))}
    out = {"mean": gaussian_variance_mean(**kw)}
    if cov.shape == (1, 1):
        q = gaussian_variance_quantiles(q=[0.1, 0.5, 0.9], **kw)
        out.update(q10=q[:, 0], q50=q[:, 1], q90=q[:, 2])
    return out


def _truth_probs(config: dict) -> np.ndarray | None:
    """The truth's probabilities from its description (``None`` if only a hash is kept)."""
    truth = config.get("truth") or {}
    if truth.get("type") == "Categorical" and "probs" in truth:
        return np.asarray(truth["probs"], dtype=np.float64).reshape(-1)
    if truth.get("type") == "Zipf":
        from ..families.categorical import Zipf

        return Zipf(n_categories=truth["n_categories"], exponent=truth["exponent"]).probs[0]
    return None


def _categorical(policies: tuple[str, ...]) -> Callable[[dict], bool]:
    def predicate(config: dict) -> bool:
        truth = config.get("truth") or {}
        known = (truth.get("type") == "Zipf"
                 or (truth.get("type") == "Categorical" and "probs" in truth))
        policy = config.get("policy") or {}
        fixed = not isinstance(policy.get("fraction", 0.0), Mapping)  # not a schedule
        return (_plain(config) and known and _type(config, "fitter") == "CategoricalFit"
                and config["fitter"].get("smoothing") == 0.0
                and policy.get("type") in policies and fixed)
    return predicate


def _gini_simpson(config: dict) -> np.ndarray:
    probs, n, g = _truth_probs(config), config["n_samples"], config["generations"]
    policy = config["policy"]
    if policy["type"] == "Accumulate":
        return categorical_gini_simpson_mean_accumulate(probs, n, g)
    if policy["type"] == "FreshReal":
        return categorical_gini_simpson_mean_fresh(probs, n, round(policy["fraction"] * n), g)
    return categorical_gini_simpson_mean(probs, n, g)


def _support(config: dict) -> np.ndarray:
    probs, n, g = _truth_probs(config), config["n_samples"], config["generations"]
    if config["policy"]["type"] == "Accumulate":
        return categorical_surviving_mean_accumulate(probs, n, g)
    return categorical_surviving_mean(probs, n, g)


register_overlay("variance", _gaussian_replace, _gaussian_variance, label="exact theory")
register_overlay("gini_simpson", _categorical(("Replace", "FreshReal", "Accumulate")),
                 _gini_simpson, label="exact theory")
register_overlay("support", _categorical(("Replace", "Accumulate")), _support,
                 label="theory")
