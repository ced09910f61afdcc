"""Load the built-in families, stages and metrics on first need.

``import collapse_sim`` imports nothing heavy (see :mod:`collapse_sim`'s lazy attributes).
The registries a run consults (metrics, generation stages, theory overlays, fitter
classes) are filled when the modules that define them are imported, so every lookup
calls :func:`load` first: the first call imports every built-in family, later calls
return at once.
"""

from __future__ import annotations

import importlib

_MODULES = ("collapse_sim.families", "collapse_sim.families.ngram", "collapse_sim.stages",
            "collapse_sim.sgd", "collapse_sim.custom", "collapse_sim.theory.overlays")
_STATE = {"loaded": False}


def load() -> None:
    """Import the built-in families and registries (once; re-entrant calls return at once)."""
    if _STATE["loaded"]:
        return
    _STATE["loaded"] = True  # before importing: a module that looks something up while it loads
    try:
        for name in _MODULES:
            importlib.import_module(name)
    except BaseException:
        _STATE["loaded"] = False
        raise
