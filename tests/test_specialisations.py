"""Each kernel a common run uses is compiled once, not once per argument flavour.

numba compiles a function again for every new tuple of argument types, and a cold start
pays for each (issue 17: "compile only what the run uses; fewer specialisations"). Three
flavours crept in unnoticed and are checked here:

* read-only arrays (a user-built truth's parameters) next to writable ones (fitted models):
  the families hand kernels writable copies of read-only inputs;
* literal integers (``f(x, 0)`` types ``0`` as ``Literal[int](0)``) next to ``int64``;
* a ``prange`` index (unsigned in the loop's body) passed on to a jitted function.

The runs below go through the exact Gaussian path (serial and parallel builds), the
explicit one, mixture EM with its metrics and categorical refits, faithful and staged, in
a fresh process with an empty numba cache (about 45 s, so marked slow); it then lists
every kernel function with more than one compiled version.
"""

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import numba
import numpy as np
import collapse_sim as cs
from collapse_sim import _kernels
from collapse_sim._kernels import _dispatch
import importlib, pkgutil

g = cs.Gaussian(mean=0.0, var=1.0)
zipf = cs.Zipf(100, 1.0)
for chains in (4, 20_000):  # the exact path's serial and parallel builds
    cs.simulate(g, cs.GaussianFit(), n_samples=10, generations=2, chains=chains, seed=0)
cs.simulate(g, cs.GaussianFit(), n_samples=10, generations=2, chains=4, seed=0,
            sampling="explicit")
cs.simulate(g, cs.GaussianMixtureFit(2), n_samples=20, generations=2, chains=4, seed=0)
cs.simulate(zipf, cs.CategoricalFit(), n_samples=100, generations=3, chains=4, seed=0)
cs.simulate(zipf, cs.CategoricalFit(), n_samples=100, generations=3, chains=4, seed=0,
            generation=cs.TopK(10))

ALLOWED = {"_rotl"}  # a two-line rotate, inlined; its shift amounts are literal on purpose
seen = set()
for info in pkgutil.iter_modules(_kernels.__path__):
    module = importlib.import_module(f"collapse_sim._kernels.{info.name}")
    for name, obj in vars(module).items():
        builds = ([obj.parallel, obj.serial] if isinstance(obj, _dispatch.ChainKernel)
                  else [obj] if isinstance(obj, numba.core.registry.CPUDispatcher) else [])
        for build in builds:
            if id(build) in seen or build.py_func.__name__ in ALLOWED:
                continue
            seen.add(id(build))
            if len(build.signatures) > 1:
                print(f"{module.__name__}.{build.py_func.__name__}: {build.signatures}")
print("checked", len(seen))
"""


@pytest.mark.slow
def test_common_runs_compile_each_kernel_once(tmp_path):
    # an empty numba cache: functions called from other kernels are compiled (and counted)
    # only when their callers are; loaded from the cache they would not be seen
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True, timeout=900, env=env)
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("checked ") and int(lines[-1].split()[1]) > 50, out.stdout
    assert lines[:-1] == [], "compiled more than once:\n" + "\n".join(lines[:-1])
