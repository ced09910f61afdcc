"""``import collapse_sim`` stays light: public names load on first use (issue 17).

Each check runs in a fresh interpreter, so modules this test session already imported
cannot hide an eager import.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("scipy.stats", "pandas", "matplotlib", "numba", "sklearn", "xarray")


def _modules_after(code: str) -> list[str]:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules
            if any(m == h or m.startswith(h + ".") for h in (*HEAVY, "collapse_sim._kernels"))]


@pytest.mark.parametrize("code", ["import collapse_sim",
                                  "import collapse_sim.cli",
                                  "from collapse_sim.cli import main\n"
                                  "import contextlib, io\n"
                                  "with contextlib.redirect_stdout(io.StringIO()):\n"
                                  "    main(['list'])"])
def test_import_and_cli_list_load_nothing_heavy(code):
    loaded = _heavy(_modules_after(code))
    assert loaded == [], f"{code!r} imported {loaded[:8]}"


def test_heavy_check_can_fail():
    """The check above would see an eager import (so it is not vacuously empty)."""
    assert "pandas" in _heavy(_modules_after("import collapse_sim\ncollapse_sim.Simulation"))


def test_every_public_name_resolves_and_is_listed():
    import collapse_sim as cs

    for name in cs.__all__:
        assert getattr(cs, name) is not None, name
    assert set(cs.__all__) <= set(dir(cs))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        cs.nonexistent  # noqa: B018


def test_registries_fill_whichever_family_is_imported_first():
    """A run that reaches the engine through one family's module still sees every family's
    metrics and stage support (the lookups load the built-ins first)."""
    code = (
        "from collapse_sim.families.categorical import CategoricalFit, Zipf\n"
        "from collapse_sim.engine import simulate\n"
        "from collapse_sim import registry\n"
        "sim = simulate(Zipf(20, 1.1), CategoricalFit(), n_samples=200, generations=2,\n"
        "               chains=3, seed=0)\n"
        "import json\n"
        "print(json.dumps([sorted(sim.metrics), 'kl' in registry.names(),\n"
        "                  'tail_mass' in registry.names()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    metrics, has_kl, has_gaussian_metric = json.loads(out.stdout.splitlines()[-1])
    assert metrics and has_kl and has_gaussian_metric


@pytest.mark.parametrize("env, expected", [({}, "passive"),
                                           ({"OMP_WAIT_POLICY": "active"}, "active"),
                                           ({"GOMP_SPINCOUNT": "1000"}, None)])
def test_openmp_workers_wait_passively_unless_the_user_chose(env, expected):
    """The kernels set OMP_WAIT_POLICY=passive before numba's OpenMP runtime starts (2 threads
    on a shared machine otherwise run slower than one), never over the user's own choice."""
    import os

    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import os, collapse_sim.sampling\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**base, **env})
    assert out.stdout.split()[-1] == str(expected)


def test_submodules_are_attributes_on_first_use():
    """``cs.registry``, ``cs.engine`` ... work without importing them first, as they did when
    the package imported them eagerly (a fresh interpreter: nothing imported them yet)."""
    code = ("import collapse_sim as cs\n"
            "print(cs.registry.__name__, cs.engine.__name__, cs._io.__name__,\n"
            "      callable(cs.engine.simulate))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["collapse_sim.registry", "collapse_sim.engine",
                                  "collapse_sim._io", "True"]
