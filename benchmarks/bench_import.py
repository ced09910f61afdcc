"""Start-up cost a user waits for before anything runs: ``import collapse_sim``,
``collapse-sim --help`` and ``collapse-sim list`` (issue 17's budgets: 0.5 s, 1 s, 1 s
wall on the idle machine).

Each round starts a fresh interpreter (``python -c ...``), so nothing is already
imported; the rounds of the three commands are interleaved, and the table reports the
median wall time with the min–max over rounds. The "ratio" is budget / median (at least
1 means within budget). ``import numpy`` is shown for scale (the floor of
any package built on numpy; ``import collapse_sim`` no longer pays even that), and so is
the first ``simulate`` call of a fresh process with the numba cache filled: the public
names load on first use, so that line is where the deferred imports are paid.
Re-measure: ``python -m benchmarks.bench_import``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from ._report import idle_then_loaded, suite_main

FIRST_RUN = ("import collapse_sim as cs\n"
             "cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=100,\n"
             "            generations=10, chains=100, seed=0)")

COMMANDS = {
    "import numpy (floor)": ([sys.executable, "-c", "import numpy"], None),
    "import collapse_sim": ([sys.executable, "-c", "import collapse_sim"], 0.5),
    "collapse-sim --help": ([sys.executable, "-m", "collapse_sim.cli", "--help"], 1.0),
    "collapse-sim list": ([sys.executable, "-m", "collapse_sim.cli", "list"], 1.0),
    "import + first simulate (numba cache filled)": ([sys.executable, "-c", FIRST_RUN], None),
}


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _rows(repeats: int, suffix: str) -> list[dict]:
    rounds = max(5, repeats)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv, _ in COMMANDS.values():  # warm the OS file cache once, untimed
        _wall(argv)
    for _ in range(rounds):
        for name, (argv, _) in COMMANDS.items():
            times[name].append(_wall(argv))
    rows = []
    for name, (_, budget) in COMMANDS.items():
        med = statistics.median(times[name])
        rows.append({
            "case": f"{name}{suffix}", "ours_s": med, "baseline": None, "baseline_s": budget,
            "ratio": None if budget is None else budget / med,
            "goal": None if budget is None else 1.0,
            "note": f"wall min-max {min(times[name]):.3f}-{max(times[name]):.3f} s over "
                    f"{rounds} fresh processes" + ("" if budget is None
                                                   else f"; budget {budget:g} s"),
        })
    return rows


run, run_loaded = idle_then_loaded(lambda repeats, quick, suffix: _rows(repeats, suffix))


if __name__ == "__main__":
    suite_main("python -m benchmarks.bench_import", run, run_loaded)
