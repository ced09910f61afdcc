"""Numba compile cost of a first run, kept apart from throughput.

Each measurement is a fresh Python process running a tiny simulation on every
path (exact 1-D, explicit 1-D and 3-D, mixture EM): once with an empty on-disk
cache (``NUMBA_CACHE_DIR`` pointing at a new folder: everything compiles), then
again with that folder filled (kernels load from the cache). The difference
between the two is what ``cache=True`` saves a user on every later start. A last row
times the README's demo command (``collapse-sim run gaussian``) the same way, against
its 12 s budget for a cold start (issue 17); it compiles only the kernels that run uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

SCRIPT = """
import time
t0 = time.perf_counter()
import numpy as np
import collapse_sim as cs
t1 = time.perf_counter()
g = cs.Gaussian(mean=0.0, var=1.0)
g3 = cs.Gaussian(mean=np.zeros(3), cov=np.eye(3))
for chains in (4, 40_000):  # serial and parallel builds
    cs.simulate(g, cs.GaussianFit(), n_samples=10, generations=2, chains=chains, seed=0)
    cs.simulate(g, cs.GaussianFit(), n_samples=10, generations=2, chains=chains, seed=0,
                sampling="explicit")
cs.simulate(g3, cs.GaussianFit(), n_samples=10, generations=2, chains=4, seed=0)
cs.simulate(g, cs.GaussianMixtureFit(2), n_samples=20, generations=2, chains=4, seed=0)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def _run(cache_dir: str) -> tuple[float, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    imp, first = out.stdout.split()
    return float(imp), float(first)


DEMO_BUDGET_S = 12.0


def _demo(cache_dir: str, out_dir: str) -> float:
    """Wall seconds of the README's demo command, ``collapse-sim run gaussian``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "collapse_sim.cli", "run", "gaussian", "--quiet",
                    "--out", out_dir], env=env, capture_output=True, check=True)
    return time.perf_counter() - start


def demo_rows() -> list[dict]:
    """The README demo from an empty numba cache (what a new user waits for) and again with
    the cache it filled."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        cold = _demo(cache, out)
        warm = _demo(cache, out)
    return [{"case": "README demo (collapse-sim run gaussian), empty numba cache",
             "ours_s": cold, "baseline": None, "baseline_s": DEMO_BUDGET_S,
             "ratio": DEMO_BUDGET_S / cold, "goal": 1.0,
             "note": f"budget {DEMO_BUDGET_S:g} s (ratio = budget / time); "
                     f"{warm:.1f} s again with the cache filled"}]


def run(repeats: int = 1, quick: bool = False) -> list[dict]:
    if quick:  # compiling everything twice in fresh processes takes a minute: not a smoke test
        return []
    with tempfile.TemporaryDirectory() as cache:
        imp_cold, cold = _run(cache)
        imp_warm, warm = _run(cache)
    note = f"import {imp_cold:.1f} s cold, {imp_warm:.1f} s warm"
    return [
        {"case": "first run, empty numba cache (compile everything)", "ours_s": cold,
         "baseline": None, "baseline_s": None, "ratio": None, "goal": None, "note": note},
        {"case": "first run, numba cache filled (load compiled kernels)", "ours_s": warm,
         "baseline": "the same run with an empty cache", "baseline_s": cold,
         "ratio": cold / warm, "goal": None},
        *demo_rows(),
    ]
