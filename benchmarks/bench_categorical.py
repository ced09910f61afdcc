r"""Categorical (Wright–Fisher) recursion: ``simulate`` against the numpy loops a user would write.

Setting: a Zipf(1) truth over ``V`` categories, ``CategoricalFit()`` (maximum
likelihood: refit by counts), ``n`` items per generation, many independent chains.
Every side produces the same quantity: the ``(G + 1, chains)`` Gini–Simpson index
:math:`1 - \sum_j q_j^2` of every chain and generation.

Baselines (the strongest loops a user would write with numpy alone):

* **numpy batched** — one ``Generator.multinomial(n, P)`` per generation on the
  ``(chains, V)`` probability matrix (numpy >= 1.22 broadcasts over rows), then
  ``P = counts / n`` and the Gini–Simpson index by ``einsum``;
* **numpy per-chain loop** — ``rng.multinomial(n, P[c])`` for each chain in a Python
  loop, same refit and metric. It is timed on :data:`LOOP_CHAINS` chains and scaled
  linearly to the full chain count (chains are independent, so its cost is linear in
  them).

Our side is ``simulate`` as a user calls it, for ``sampling="exact"`` (counts drawn
directly: resampling the previous counts, alias tables or conditional binomials, see
``collapse_sim._kernels.categorical``; with ``Replace``, blocks of generations in one
kernel on the live counts, ``collapse_sim._kernels.live_counts``) and
``sampling="explicit"`` (tokens drawn, then counted), once with the default metrics
(``metrics=None``: all seven registered for the pair) and once with only
``metrics=("gini_simpson",)`` (the work the baselines do); a row per path gives the
metric overhead ``time(default) / time(gini only) - 1`` per round (goal at most
:data:`GOAL_OVERHEAD`, issue 17).

Timing: in full mode every job runs once per round for at least :data:`ROUNDS`
rounds, ours and baselines alternating (each baseline twice per round, and the
start of the sequence rotated from round to round). A row's ``ours_s`` and
``baseline_s`` are medians over rounds; its ``ratio`` is the *median of the
per-round ratios* (baseline / ours, the baseline's time in a round being the mean
of its runs in that round) and the note gives their min–max. Numba compilation
is excluded by warm-up calls at the benchmark's own sizes (serial and parallel
builds); the first-call time (compile or on-disk cache load) is reported apart,
and in full mode so is the cold compile in a fresh process with an empty cache.

"Exact count path flat in n": the exact path (Gini–Simpson only) at ``n`` = 1e3,
1e5, 1e7 with the same chains, ``V`` and generations, interleaved; rows give the
time at large ``n`` over the time at ``n = 1e3``.

Under load (:func:`run_loaded`, or ``run(load=True)``): the same comparisons while
one CPU-bound background process (a busy Python loop) runs; it is started and
stopped here, always (``finally``). Skipped in quick mode.

Correctness, checked side by side (``AssertionError`` otherwise): the mean over
chains of the last generation's Gini–Simpson index agrees between every variant of
ours and every baseline within :data:`Z_MAX` standard errors, and each agrees with
the Wright–Fisher expectation :math:`H_0 (1 - 1/n)^G`.

Standalone: ``python -m benchmarks.bench_categorical [--quick] [--repeats R]
[--load {off,on,both}]``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

import collapse_sim as cs

from ._report import overhead_row, suite_main, under_load

#: Goal size of the issue: chains x V x n. Generations kept low (10) so that a full run,
#: idle and loaded, stays around three minutes on a shared 2-core machine.
CHAINS, V, N, GENERATIONS = 1000, 1000, 1000, 10
QUICK_SIZES = (50, 100, 100, 5)
EXPONENT = 1.0
#: Chains the per-chain Python loop is timed on (then scaled to ``CHAINS``).
LOOP_CHAINS = 100
#: Sample sizes of the flat-in-n check of the exact path.
FLAT_NS = (10**3, 10**5, 10**7)
#: Minimum number of interleaved rounds in full mode.
ROUNDS = 5
#: Largest accepted |difference of means| in standard errors (correctness check).
Z_MAX = 5.0
GOAL = 10.0
#: Largest cost of the default metrics on top of the run with the Gini–Simpson index only.
GOAL_OVERHEAD = 0.5
METRIC = "gini_simpson"

# ---------------------------------------------------------------------------------------------
# the two sides


def truth_probs(v: int) -> np.ndarray:
    return cs.Zipf(v, EXPONENT).probs[0]


def gini_simpson(p: np.ndarray) -> np.ndarray:
    """``1 - sum_j p_j^2`` per row of ``p``."""
    return 1.0 - np.einsum("ij,ij->i", p, p)


def numpy_batched(p0: np.ndarray, chains: int, generations: int, n: int,
                  seed: int = 0) -> np.ndarray:
    """One broadcast ``Generator.multinomial`` per generation: ``(G + 1, chains)`` Gini–Simpson."""
    rng = np.random.default_rng(seed)
    p = np.broadcast_to(p0, (chains, p0.size))
    out = np.empty((generations + 1, chains))
    out[0] = gini_simpson(p0[None])[0]
    for t in range(1, generations + 1):
        p = rng.multinomial(n, p) / n
        out[t] = gini_simpson(p)
    return out


def numpy_per_chain(p0: np.ndarray, chains: int, generations: int, n: int,
                    seed: int = 0) -> np.ndarray:
    """``rng.multinomial(n, p)`` per chain per generation: ``(G + 1, chains)`` Gini–Simpson."""
    rng = np.random.default_rng(seed)
    p = np.tile(p0, (chains, 1))
    counts = np.empty((chains, p0.size), dtype=np.int64)
    out = np.empty((generations + 1, chains))
    out[0] = gini_simpson(p0[None])[0]
    for t in range(1, generations + 1):
        for c in range(chains):
            counts[c] = rng.multinomial(n, p[c])
        p = counts / n
        out[t] = gini_simpson(p)
    return out


def ours(v: int, chains: int, generations: int, n: int, sampling: str, metrics,
         seed: int = 0) -> np.ndarray:
    sim = cs.simulate(cs.Zipf(v, EXPONENT), cs.CategoricalFit(), n_samples=n,
                      generations=generations, chains=chains, seed=seed, metrics=metrics,
                      sampling=sampling, progress=False)
    return sim.metrics[METRIC]


# ---------------------------------------------------------------------------------------------
# timing helpers


def interleaved(jobs: list[tuple[str, Callable[[], np.ndarray]]], rounds: int,
                shift: int = 1) -> tuple[dict[str, list[list[float]]], dict[str, np.ndarray]]:
    """Run the job sequence ``rounds`` times, rotated by ``shift`` each round.

    Returns every job's times per round (a name may appear several times in a
    round) and each job's first output.
    """
    times: dict[str, list[list[float]]] = {name: [] for name, _ in jobs}
    outputs: dict[str, np.ndarray] = {}
    for r in range(rounds):
        k = (r * shift) % len(jobs)
        for name in times:
            times[name].append([])
        for name, fn in jobs[k:] + jobs[:k]:
            start = time.perf_counter()
            out = fn()
            times[name][-1].append(time.perf_counter() - start)
            outputs.setdefault(name, out)
    return times, outputs


def per_round(times: list[list[float]]) -> np.ndarray:
    return np.array([np.mean(t) for t in times])


def ratio_stats(base: np.ndarray, ours_t: np.ndarray) -> tuple[float, float, float]:
    """Median, min and max of the per-round ratios ``base / ours``."""
    r = base / ours_t
    return float(np.median(r)), float(r.min()), float(r.max())


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


#: The background load's program: a busy loop that checks for its parent every 10^6 steps.
_LOAD_LOOP = """import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""


@contextlib.contextmanager
def cpu_load():
    """One CPU-bound background Python process for the duration; always stopped on exit.

    Yields a dict filled on exit with ``cpu_share`` (CPU seconds the process got
    over wall seconds, when ``/proc`` tells) and ``alive`` (still running at the end).
    """
    # it spins until stopped, and stops by itself within ~20 ms once this process is gone
    # (a benchmark killed by a signal runs no ``finally``: the load would spin on)
    proc = subprocess.Popen([sys.executable, "-c", _LOAD_LOOP],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    info: dict = {"pid": proc.pid}
    start = time.perf_counter()
    try:
        time.sleep(0.2)  # let it get scheduled
        if proc.poll() is not None:
            raise RuntimeError(f"the background load process exited ({proc.returncode})")
        yield info
    finally:
        info["alive"] = proc.poll() is None
        cpu = _cpu_seconds(proc.pid)
        wall = time.perf_counter() - start
        info["cpu_share"] = None if cpu is None else cpu / wall
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# correctness


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
    return float(x.mean()), se


def check_agreement(last: dict[str, np.ndarray], h0: float, n: int, generations: int) -> str:
    """Assert every pair of sides, and each side vs theory, agree within ``Z_MAX`` SE."""
    expected = h0 * (1.0 - 1.0 / n) ** generations
    stats = {name: _mean_se(x) for name, x in last.items()}
    worst, worst_pair = 0.0, ""
    names = list(stats)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    for a, b in [*pairs, *((a, "theory") for a in names)]:
        ma, sa = stats[a]
        mb, sb = stats[b] if b != "theory" else (expected, 0.0)
        se = np.hypot(sa, sb)
        z = abs(ma - mb) / se if se > 0 else (0.0 if ma == mb else np.inf)
        assert z <= Z_MAX, (
            f"categorical: mean last-generation Gini–Simpson disagrees: {a} {ma:.6f} ± {sa:.2g}"
            f" vs {b} {mb:.6f} ± {sb:.2g} ({z:.1f} SE > {Z_MAX:g})")
        if z > worst:
            worst, worst_pair = z, f"{a} vs {b}"
    means = ", ".join(f"{k} {m:.4f}±{s:.4f}" for k, (m, s) in stats.items())
    return (f"last-gen mean Gini–Simpson {means}; theory H0(1-1/n)^G {expected:.4f}; "
            f"max |z| {worst:.1f} ({worst_pair}) <= {Z_MAX:g}")


# ---------------------------------------------------------------------------------------------
# measurements


VARIANTS = (("exact", None), ("exact", (METRIC,)), ("explicit", None), ("explicit", (METRIC,)))


def _label(sampling: str, metrics) -> str:
    return f"{sampling}, {'default metrics' if metrics is None else 'gini only'}"


def warm_up(v: int, chains: int, n: int) -> tuple[float, float]:
    """First calls (compile or cache load) and the same calls again, in seconds."""
    def calls():
        start = time.perf_counter()
        for sampling in ("exact", "explicit"):
            for c in {2, chains}:  # serial and (at the benchmark's size) parallel builds
                ours(v, c, 2, n, sampling, None)
        return time.perf_counter() - start
    return calls(), calls()


def cold_compile(v: int, chains: int, n: int) -> float:
    """Seconds of the warm-up calls in a fresh process with an empty numba cache."""
    script = (
        "import time, collapse_sim as cs\n"
        "t = time.perf_counter()\n"
        "for s in ('exact', 'explicit'):\n"
        f"    for c in {sorted({2, chains})}:\n"
        f"        cs.simulate(cs.Zipf({v}, {EXPONENT}), cs.CategoricalFit(), n_samples={n},\n"
        "                    generations=2, chains=c, seed=0, sampling=s, progress=False)\n"
        "print(time.perf_counter() - t)\n")
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, env={**os.environ, "NUMBA_CACHE_DIR": cache})
    return float(out.stdout.split()[-1])


def measure_goal(sizes, rounds: int, tag: str = "") -> list[dict]:
    """Ours (4 variants) vs both baselines at ``sizes``, interleaved; correctness asserted."""
    chains, v, n, g = sizes
    p0 = truth_probs(v)
    loop_chains = min(chains, LOOP_CHAINS)
    scale = chains / loop_chains
    ours_jobs = [(_label(s, m), lambda s=s, m=m: ours(v, chains, g, n, s, m))
                 for s, m in VARIANTS]
    batched = ("batched", lambda: numpy_batched(p0, chains, g, n))
    loop = ("loop", lambda: numpy_per_chain(p0, loop_chains, g, n))
    jobs = []
    for i, job in enumerate(ours_jobs):
        jobs += [job, batched if i % 2 == 0 else loop]
    load_before = os.getloadavg()[0]
    times, outputs = interleaved(jobs, rounds, shift=2)
    load_after = os.getloadavg()[0]
    check = check_agreement({k: out[-1] for k, out in outputs.items()}, outputs["batched"][0, 0],
                            n, g)
    base = {"batched": per_round(times["batched"]), "loop": per_round(times["loop"]) * scale}
    base_name = {
        "batched": "numpy Generator.multinomial(n, P) on the (chains, V) matrix + einsum",
        "loop": f"numpy rng.multinomial(n, p) per chain, Python loop (timed on {loop_chains} "
                f"chains, x{scale:g})" if scale != 1 else
                "numpy rng.multinomial(n, p) per chain, Python loop"}
    size = (f"{chains} chains x V={v} x n={n} x {g} gens, Zipf({EXPONENT:g}); "
            f"{rounds} interleaved rounds; load avg {load_before:.1f}->{load_after:.1f}")
    rows = []
    for name, _ in ours_jobs:
        t_ours = per_round(times[name])
        for b in ("batched", "loop"):
            med, lo, hi = ratio_stats(base[b], t_ours)
            rows.append({
                "case": f"{tag}categorical {name} vs {b}",
                "ours_s": float(np.median(t_ours)), "baseline": base_name[b],
                "baseline_s": float(np.median(base[b])), "ratio": med, "goal": GOAL,
                "ratio_min": lo, "ratio_max": hi, "rounds": rounds,
                "note": f"per-round ratio {lo:.2f}-{hi:.2f}x (median of rounds); {size}"})
    rows[0]["note"] += "; " + check
    for sampling in ("exact", "explicit"):  # what the default metrics cost (issue 17)
        rows.append(overhead_row(f"{tag}categorical {sampling}: metric overhead",
                                 per_round(times[_label(sampling, None)]),
                                 per_round(times[_label(sampling, (METRIC,))]),
                                 f"the same call with metrics=({METRIC!r},)", GOAL_OVERHEAD,
                                 size))
    return rows


def measure_flat(sizes, rounds: int, tag: str = "") -> list[dict]:
    """The exact path (Gini–Simpson only) at every ``FLAT_NS``, interleaved."""
    chains, v, _, g = sizes
    jobs = [(f"{n:.0e}", lambda n=n: ours(v, chains, g, n, "exact", (METRIC,)))
            for n in FLAT_NS]
    for n in FLAT_NS:  # first call at each n (same kernels, other branches)
        ours(v, chains, 1, n, "exact", (METRIC,))
    times, _ = interleaved(jobs, rounds)
    small = per_round(times[jobs[0][0]])
    rows = []
    for name, _ in jobs[1:]:
        t = per_round(times[name])
        med, lo, hi = ratio_stats(t, small)
        rows.append({
            "case": f"{tag}categorical exact, time n={name} / n={jobs[0][0]}",
            "ours_s": float(np.median(t)), "baseline": f"the same run at n={FLAT_NS[0]}",
            "baseline_s": float(np.median(small)), "ratio": med, "goal": None,
            "ratio_min": lo, "ratio_max": hi, "rounds": rounds,
            "note": (f"ratio column = time at n={name} over time at n={FLAT_NS[0]} (1 = flat in "
                     f"n; not a speed-up), per-round {lo:.2f}-{hi:.2f}; {chains} chains x V={v}"
                     f" x {g} gens, gini only, {rounds} interleaved rounds")})
    return rows


def run_loaded(repeats: int = 3, quick: bool = False) -> list[dict]:
    """The goal-size comparisons while one CPU-bound background process runs (skipped if quick)."""
    if quick:
        return []
    sizes = (CHAINS, V, N, GENERATIONS)
    warm_up(V, CHAINS, N)  # no-op cost if already warm; never compile under load
    return under_load(lambda: measure_goal(sizes, max(ROUNDS, repeats), tag="[loaded] "))


def run(repeats: int = 3, quick: bool = False, load: bool | None = None) -> list[dict]:
    """Idle measurements; then (``load``, default: full mode) the same under CPU load."""
    sizes = QUICK_SIZES if quick else (CHAINS, V, N, GENERATIONS)
    chains, v, n, _ = sizes
    rounds = max(1, repeats) if quick else max(ROUNDS, repeats)
    first, again = warm_up(v, chains, n)
    rows = measure_goal(sizes, rounds)
    rows += measure_flat(sizes, rounds)
    note = (f"exact + explicit, chains 2 and {chains}, 2 gens, default metrics; the same calls "
            f"warm take {again:.2f} s")
    if not quick:
        cold = cold_compile(v, chains, n)
        note += f"; cold compile (fresh process, empty numba cache) {cold:.1f} s"
    rows.append({"case": "numba compile / cache load (categorical, first calls)", "ours_s": first,
                 "baseline": None, "baseline_s": None, "ratio": None, "goal": None,
                 "note": note})
    if (not quick) if load is None else load:
        rows += run_loaded(repeats, quick)
    return rows


def main() -> None:
    suite_main("python -m benchmarks.bench_categorical", run, run_loaded)


if __name__ == "__main__":
    main()
