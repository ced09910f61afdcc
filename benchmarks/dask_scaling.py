r"""How a sweep's wall time scales with dask workers, and what a big phase diagram would cost.

Usage (from the repository root)::

    python -m benchmarks.dask_scaling [--quick] [--out DIR] [--repeats R] [--load-repeats L]
                                      [--no-malloc-trim]
    python benchmarks/dask_scaling.py [--quick] [--out DIR] ...

About 2 minutes (``--quick``: about 15 s). Measured on a ``distributed.LocalCluster`` of 1
and of 2 worker processes (1 thread each, both clusters up for the whole run) and on a
plain serial loop of ``simulate`` + ``summarize`` in this process:

* a small phase-diagram grid (``n_samples`` × ``policy`` × seeds of a 1-D Gaussian,
  runs of about 0.03–0.35 s): wall time of ``cs.sweep(..., backend="dask")``;
* near-empty runs (1 generation of 10 chains, one configuration per run, two grid
  sizes): the per-task cost of the sweep itself, directly;
* the bytes a task carries out (its arguments, cloudpickled as dask ships them) and
  back (its record: the per-run summaries; also with ``curves=True``, and the whole
  ``Simulation`` it does *not* send), and dask's own size estimate of a result;
* the workers' compute time (dask's task stream) and the CPU seconds of this process
  (client and in-process scheduler) and of the workers;
* the same with one CPU-bound background Python process (``bench_categorical.cpu_load``);
* (full mode) the grid's runs in fresh processes with and without dask's worker setting
  ``MALLOC_TRIM_THRESHOLD_=65536``, which makes runs slower inside a worker.

Every run uses one core: ``NUMBA_NUM_THREADS=1`` here and in the workers (set by this
script before numba is imported), so "run time" means single-core run time and a
worker is one core. Repeats are interleaved (loop, 1 worker, 2 workers, in rotating
order, every round); medians and min–max over rounds are reported, and the load other
people's processes put on the machine meanwhile.

The model::

    T(W) = F + N s + (kappa R + N o) / W

``W`` workers, ``N`` tasks, ``R`` the serial loop's time for the same runs (measured in
the same round), ``kappa`` how much longer a run takes in a worker (measured: the task
stream's compute time over the loop's), ``F`` a fixed cost per sweep, ``s`` a serial cost
per task (client: expansion, validation dry run, submission, receiving and tabulating the
result; scheduler bookkeeping) and ``o`` a parallel cost per task (in the worker); ``F``,
``s``, ``o`` >= 0 fitted by least squares in relative error on every median. The model
then predicts a 10^4-configuration diagram on 64 workers (upper bound: serial and
parallel parts added; lower bound: the serial part hidden behind the runs); every
assumption is printed and written to ``dask_scaling.json``, with the figure
``dask_scaling.png``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # before numba is imported, here and (inherited) in the workers
    os.environ["NUMBA_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"

import argparse
import contextlib
import itertools
import json
import logging
import math
import pickle
import platform
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python benchmarks/dask_scaling.py``
    sys.path.insert(0, str(ROOT))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import collapse_sim as cs  # noqa: E402
from benchmarks.bench_categorical import cpu_load  # noqa: E402
from collapse_sim.sweeps import DEFAULT_THRESHOLD, backends, summarize  # noqa: E402
from collapse_sim.sweeps.grid import _Plan  # noqa: E402

#: The 10^4-configuration phase diagram the model is asked about.
TARGET_TASKS = 10_000
TARGET_WORKERS = 64
#: Assumed network throughput client <-> scheduler <-> workers (1 Gbit/s Ethernet).
BANDWIDTH = 100e6
#: Run lengths (s, single core) for the sensitivity table of the 64-worker estimate.
RUN_LENGTHS = (0.01, 0.1, 1.0, 10.0)
WORKERS = (1, 2)


def _setup(quick: bool):
    """The grid (base, grid, seeds) and the near-empty runs' base and sizes."""
    base = dict(truth=cs.Gaussian(mean=0.0, var=1.0), fitter=cs.GaussianFit(),
                chains=1000, sampling="explicit",  # every default metric (6)
                generations=20 if quick else 50)
    if quick:
        grid = {"n_samples": [100, 300], "policy": [cs.Replace(), cs.KeepReal(0.5)]}
    else:
        grid = {"n_samples": [100, 300, 1000],
                "policy": [cs.Replace(), cs.KeepReal(0.5), cs.Accumulate()]}
    empty = {**base, "generations": 1, "chains": 10}  # same metrics: ~1 ms per run
    sizes = (10, 40) if quick else (30, 120)
    return base, grid, [0, 1], empty, sizes


def _jobs(base, grid, seeds):
    """``(kwargs, seed)`` for every run, in the sweep's order (grid order, then seeds)."""
    names = list(grid)
    for combo in itertools.product(*(grid[n] for n in names)):
        for seed in seeds:
            yield {**base, **dict(zip(names, combo, strict=True))}, seed


def serial_loop(base, grid, seeds) -> tuple[float, list[float], list[dict]]:
    """The plain loop a user would write: wall time, each run's time, the summaries."""
    times, rows = [], []
    start = time.perf_counter()
    for kwargs, seed in _jobs(base, grid, seeds):
        t = time.perf_counter()
        rows.append(summarize(cs.simulate(**kwargs, seed=seed, progress=False)))
        times.append(time.perf_counter() - t)
    return time.perf_counter() - start, times, rows


def dask_sweep(cluster: dict, base, grid, seeds) -> dict:
    """``cs.sweep`` on the cluster: its wall time, the workers' summed compute time (dask's
    task stream), the CPU seconds of this process (client and in-process scheduler) and of
    the workers, and the summaries."""
    from distributed import get_task_stream

    me, workers = os.getpid(), cluster["pids"]
    cpu = (_own_cpu_seconds([me]), _own_cpu_seconds(workers))
    with get_task_stream(client=cluster["client"]) as stream:
        start = time.perf_counter()
        table = cs.sweep(base, grid, seeds=seeds, backend="dask", client=cluster["client"],
                         progress=False)
        wall = time.perf_counter() - start
    busy = sum(s["stop"] - s["start"] for task in stream.data for s in task["startstops"]
               if s["action"] == "compute")
    summaries = [c for c in table.columns if c.startswith(("final_", "collapse_"))]
    return {"wall": wall, "busy": busy, "main_cpu": _own_cpu_seconds([me]) - cpu[0],
            "workers_cpu": _own_cpu_seconds(workers) - cpu[1],
            "summaries": table[summaries].to_dict("records")}


def _warm_worker(base: dict, policies: list) -> tuple[float, int, int]:
    """Run in every worker: load the numba kernels of the grid (cache load or compile).
    Returns its seconds, numba's thread count and the worker's pid."""
    start = time.perf_counter()
    for policy in policies:
        cs.simulate(**{**base, "chains": 4, "generations": 2}, n_samples=10, policy=policy,
                    seed=0, progress=False)
    return time.perf_counter() - start, numba.config.NUMBA_NUM_THREADS, os.getpid()


def _pre_spawn_environ() -> dict:
    import dask

    return {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
            if v is not None}


def start_cluster(workers: int, base: dict, policies: list) -> dict:
    from distributed import Client, LocalCluster

    warnings.filterwarnings("ignore", message="Port .* is already in use")  # its HTTP server
    start = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"})
    client = Client(cluster)
    started = time.perf_counter() - start
    warm = client.run(_warm_worker, base, policies)
    return {"cluster": cluster, "client": client, "start_s": started,
            "warm_s": [w[0] for w in warm.values()],
            "numba_threads": sorted({w[1] for w in warm.values()}),
            "pids": [w[2] for w in warm.values()]}


# -- the machine's load ------------------------------------------------------------------------

def _busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used (``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


class LoadMeter:
    """Cores kept busy by *other* people's processes (machine minus this benchmark's
    processes: this one, the workers, the background load) and uptime's load average."""

    def __init__(self, pids: list[int]):
        self.pids = pids

    def __enter__(self):
        self.start = (time.perf_counter(), _busy_cpu_seconds(), _own_cpu_seconds(self.pids),
                      os.getloadavg())
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.start[0]
        busy, own = _busy_cpu_seconds(), _own_cpu_seconds(self.pids)
        self.other_cores = (None if busy is None or self.start[1] is None else
                            max(0.0, (busy - self.start[1] - (own - self.start[2])) / wall))
        self.own_cores = (own - self.start[2]) / wall
        self.loadavg = [self.start[3], os.getloadavg()]


# -- why runs are slower inside a worker -----------------------------------------------------

#: What dask's nannies set in every worker's environment (``distributed.nanny.pre-spawn-environ``)
#: that changes how fast ``simulate`` runs: glibc returns freed memory to the system at once.
WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": "65536"}


def _malloc_child(quick: bool) -> None:
    """In a fresh process: the grid's runs for the first seed, timed after a warm-up."""
    base, grid, seeds, _, _ = _setup(quick)
    serial_loop(base, {k: v[:1] for k, v in grid.items()}, seeds[:1])
    print(json.dumps(serial_loop(base, grid, seeds[:1])[0]))


def malloc_check(quick: bool, rounds: int) -> dict:
    """The grid's runs (first seed) in fresh processes with and without dask's worker
    malloc setting, alternating; medians of ``rounds``."""
    import subprocess

    times: dict[str, list[float]] = {"default": [], "dask_worker_malloc": []}
    for r in range(rounds):
        for key in (list(times) if r % 2 == 0 else list(times)[::-1]):
            env = {k: v for k, v in os.environ.items() if k not in WORKER_MALLOC}
            if key != "default":  # (the nannies also put it in *this* process's environment)
                env.update(WORKER_MALLOC)
            out = subprocess.run(
                [sys.executable, "-c", "from benchmarks.dask_scaling import _malloc_child; "
                 f"_malloc_child({quick})"], cwd=ROOT, env=env, capture_output=True,
                text=True, check=True)
            times[key].append(float(out.stdout.strip().splitlines()[-1]))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"seconds": times, "median": med, "env": WORKER_MALLOC,
            "ratio": med["dask_worker_malloc"] / med["default"]}


def client_preparation(base, sizes, rounds: int = 3) -> float:
    """Seconds per configuration the sweep spends in the client before submitting anything:
    expanding and hashing the grid, and the validation dry run of every configuration."""
    grid = {"n_samples": list(range(10, 10 + max(sizes)))}
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        _Plan.build(base, grid, [0], DEFAULT_THRESHOLD).validate_configurations()
        best = min(best, time.perf_counter() - start)
    return best / max(sizes)


# -- what travels -----------------------------------------------------------------------------

def data_volume(client, base, grid, seeds) -> dict:
    """Bytes per task: the arguments shipped out, the record shipped back."""
    import cloudpickle

    plan = _Plan.build(base, grid, seeds, DEFAULT_THRESHOLD)
    per_host = {"127.0.0.1": 2}
    args = [len(cloudpickle.dumps((backends._run_job, job.index, job.kwargs, job.seed,
                                   DEFAULT_THRESHOLD, None, per_host)))
            for job in plan.jobs()]
    job = plan.job(0)
    record = backends._run_job(job.index, job.kwargs, job.seed, DEFAULT_THRESHOLD, None, 1)
    with_curves = backends._run_job(job.index, job.kwargs, job.seed, DEFAULT_THRESHOLD,
                                    (0.1, 0.5, 0.9), 1)
    sim = cs.simulate(**job.kwargs, seed=job.seed, progress=False)
    future = client.submit(backends._run_job, job.index, job.kwargs, job.seed,
                           DEFAULT_THRESHOLD, None, per_host, pure=False)
    future.result()
    dask_nbytes = client.nbytes(keys=[future.key], summary=False).get(future.key)
    future.release()
    return {"args_bytes_median": float(np.median(args)), "args_bytes_max": max(args),
            "result_bytes": len(pickle.dumps(record)),
            "result_bytes_with_curves": len(pickle.dumps(with_curves)),
            "simulation_bytes": len(pickle.dumps(sim)),
            "dask_nbytes_result": dask_nbytes,
            "generations": job.kwargs["generations"], "metrics": len(sim.metrics)}


# -- measuring ---------------------------------------------------------------------------------

def measure_rounds(clusters: dict, setup, rounds: int, tag: str) -> list[dict]:
    """``rounds`` rounds; in each, every case once, starting from a rotating position."""
    base, grid, seeds, empty, sizes = setup
    cases = [("grid", base, grid, seeds)]
    cases += [(f"empty{n}", empty, {"n_samples": list(range(10, 10 + n))}, [0]) for n in sizes]
    ways = ["loop", *(f"dask{w}" for w in WORKERS)]
    out = []
    for r in range(rounds):
        for name, b, g, s in cases:
            order = ways[r % len(ways):] + ways[:r % len(ways)]
            record = {"round": r, "case": name, "condition": tag,
                      "tasks": math.prod(len(v) for v in g.values()) * len(s)}
            results = {}
            for way in order:
                if way == "loop":
                    wall, times, results[way] = serial_loop(b, g, s)
                    record["loop_s"], record["run_s"] = wall, times
                else:
                    w = int(way[4:])
                    got = dask_sweep(clusters[w], b, g, s)
                    results[way] = got["summaries"]
                    record[f"dask{w}_s"], record[f"dask{w}_busy_s"] = got["wall"], got["busy"]
                    record[f"dask{w}_main_cpu_s"] = got["main_cpu"]
                    record[f"dask{w}_workers_cpu_s"] = got["workers_cpu"]
            record["same_results"] = all(
                _same(results["loop"], results[k]) for k in results if k != "loop")
            out.append(record)
            print(f"  {tag} round {r}: {name:<9} " + "  ".join(
                f"{k} {record[f'{k}_s']:.3f} s" for k in ways), flush=True)
    return out


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k]))
                                     for k in x) for x, y in zip(a, b, strict=True))


# -- the model ---------------------------------------------------------------------------------

def _points(records: list[dict]) -> list[tuple[int, int, float, float]]:
    """``(W, N, T, R)`` of every dask measurement."""
    return [(w, r["tasks"], r[f"dask{w}_s"], r["loop_s"]) for r in records for w in WORKERS]


def _kappa(records: list[dict]) -> float:
    """How much longer the grid's runs take inside a worker than in the plain loop: the
    1-worker cluster's compute time (dask's task stream) over the loop's, median of rounds."""
    return float(np.median([r["dask1_busy_s"] / r["loop_s"] for r in records
                            if r["case"] == "grid"]))


def fit(points, kappa: float) -> dict:
    """Least squares of ``T - kappa R/W = F + N s + (N/W) o`` in relative residuals, with
    ``F, s, o >= 0`` (a negative cost would only fit noise); ``kappa`` is measured."""
    from scipy.optimize import lsq_linear

    w_, n_, t_, r_ = (np.array(v, dtype=float) for v in zip(*points, strict=True))
    design = np.column_stack([np.ones_like(n_), n_, n_ / w_]) / t_[:, None]
    target = (t_ - kappa * r_ / w_) / t_
    f, s, o = lsq_linear(design, target, bounds=(0.0, np.inf)).x
    predicted = f + n_ * s + (kappa * r_ + n_ * o) / w_
    return {"F": float(f), "s": float(s), "o": float(o), "kappa": kappa,
            "rel_residuals": [float(v) for v in (t_ - predicted) / t_]}


def predict(model: dict, tasks: float, run: float, workers, longest: float | None = None,
            overlap: bool = False):
    """Wall time of ``tasks`` runs of ``run`` s each (mean, single core) on ``workers``.

    ``overlap=False``: the model as fitted, serial and parallel parts added (an upper
    bound). ``overlap=True``: the client's and scheduler's per-task work fully hidden
    behind the runs, ``F + max(N s, N (r + o) / W)`` (a lower bound). With ``longest``
    (the longest run), no sweep is shorter than that run plus its overhead (relevant
    once workers outnumber tasks)."""
    w = np.asarray(workers, dtype=float)
    parallel = tasks * (model["kappa"] * run + model["o"]) / w
    if longest is not None:
        parallel = np.maximum(parallel, model["kappa"] * longest + model["o"])
    serial = tasks * model["s"]
    return model["F"] + (np.maximum(serial, parallel) if overlap else serial + parallel)


def summarise(records: list[dict]) -> dict:
    """Medians and min–max per case and way, and the fit (on medians and per round)."""
    out: dict = {}
    for case in sorted({r["case"] for r in records}):
        rows = [r for r in records if r["case"] == case]
        entry = {"tasks": rows[0]["tasks"]}
        for key in ("loop_s", *(f"dask{w}_{k}" for w in WORKERS
                                for k in ("s", "busy_s", "main_cpu_s", "workers_cpu_s"))):
            v = np.array([r[key] for r in rows])
            entry[key] = {"median": float(np.median(v)), "min": float(v.min()),
                          "max": float(v.max())}
        runs = np.array([r["run_s"] for r in rows])  # (rounds, tasks)
        entry["run_s_median_per_task"] = [float(v) for v in np.median(runs, axis=0)]
        entry["same_results"] = all(r["same_results"] for r in rows)
        out[case] = entry
    medians = [(w, e["tasks"], e[f"dask{w}_s"]["median"], e["loop_s"]["median"])
               for e in out.values() for w in WORKERS]
    model = fit(medians, _kappa(records))
    rounds = [[r for r in records if r["round"] == k]
              for k in sorted({r["round"] for r in records})]
    per_round = [fit(_points(rs), _kappa(rs)) for rs in rounds]
    model["per_round"] = {p: [m[p] for m in per_round] for p in ("F", "s", "o", "kappa")}
    for e in out.values():  # the per-task overhead measured directly, and CPU per task
        for w in WORKERS:
            e[f"overhead{w}_per_task_s"] = ((e[f"dask{w}_s"]["median"]
                                             - e["loop_s"]["median"] / w) / e["tasks"])
            for k in ("main_cpu_s", "workers_cpu_s"):
                e[f"dask{w}_{k}_per_task"] = e[f"dask{w}_{k}"]["median"] / e["tasks"]
    return {"cases": out, "model": model}


def estimate(model: dict, run: float, volume: dict, warm_s: float) -> dict:
    """The 10^4-configuration, 64-worker phase diagram, term by term (upper bound: the
    model as fitted), and the lower bound with the serial part hidden behind the runs."""
    n, w = TARGET_TASKS, TARGET_WORKERS
    traffic = n * (volume["args_bytes_max"] + volume["result_bytes"])
    terms = {"fixed_F": model["F"], "serial_N_s": n * model["s"],
             "parallel_N_kappa_r_plus_o_over_W": n * (model["kappa"] * run + model["o"]) / w,
             "worker_warm_up": warm_s, "traffic_at_bandwidth": traffic / BANDWIDTH}
    total = sum(terms.values())
    lower = float(predict(model, n, run, [w], overlap=True)[0]) + warm_s + terms[
        "traffic_at_bandwidth"]
    ideal = n * run / w
    knee = (model["kappa"] * run + model["o"]) / model["s"] if model["s"] > 0 else math.inf
    return {"tasks": n, "workers": w, "run_s": run, "terms_s": terms, "total_s": total,
            "lower_s": lower, "ideal_s": ideal, "serial_loop_s": n * run,
            "efficiency": ideal / total, "traffic_bytes": traffic, "knee_workers": knee,
            "by_run_length": {str(r): [float(predict(model, n, r, [w], overlap=True)[0]
                                             + warm_s),
                                       float(predict(model, n, r, [w])[0] + warm_s)]
                              for r in RUN_LENGTHS}}


# -- the figure --------------------------------------------------------------------------------

def plot(summary: dict, estimates: dict, meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    workers = np.unique(np.geomspace(1, TARGET_WORKERS, 200).round(2))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    blue, orange, grey = "#0072B2", "#D55E00", "0.35"

    # left: the measured grid, measured points and the fitted model through them
    idle = summary["idle"]
    grid = idle["cases"]["grid"]
    n, loop = grid["tasks"], grid["loop_s"]["median"]
    longest = max(grid["run_s_median_per_task"])
    runs = loop / n
    few = np.unique(np.geomspace(1, n, 100).round(2))  # no more workers than tasks
    left.plot(few, predict(idle["model"], n, runs, few, longest), "-", color=blue,
              lw=1.8, label="model fitted on these measurements (quiet rounds)")
    left.plot(few, loop / few, ":", color=grey, lw=1.4, label="ideal: serial loop time / W")
    w = np.array(WORKERS, dtype=float)
    med = np.array([grid[f"dask{k}_s"]["median"] for k in WORKERS])
    err = np.array([[m - grid[f"dask{k}_s"]["min"], grid[f"dask{k}_s"]["max"] - m]
                    for k, m in zip(WORKERS, med, strict=True)]).T
    left.errorbar(w, med, yerr=err, fmt="o", color=blue, ms=7, capsize=3,
                  label=f"measured, dask LocalCluster (median, min–max of {meta['rounds']})")
    left.errorbar([1], [loop], yerr=[[loop - grid["loop_s"]["min"]],
                                     [grid["loop_s"]["max"] - loop]],
                  fmt="s", mfc="white", mec="k", ecolor="k", ms=7, capsize=3,
                  label="measured, serial loop (no dask)")
    if "loaded" in summary:
        lg = summary["loaded"]["cases"]["grid"]
        lmed = np.array([lg[f"dask{k}_s"]["median"] for k in WORKERS])
        left.plot(w, lmed, "^", color=orange, ms=7,
                  label="measured with 1 extra CPU-bound process (median)")
    flat = float(predict(idle["model"], n, runs, [n], longest)[0])
    left.annotate(f"bounded by the longest\nrun (κ × {longest:.2f} s)",
                  (n, flat), xytext=(0, 5), textcoords="offset points", ha="right",
                  va="bottom", fontsize=8, color=blue)
    left.set_title(f"Measured: this grid, {n} runs of {runs:.2f} s on average (1 core each)",
                   fontsize=10)

    # right: the 10^4-configuration diagram
    est = estimates["idle"]
    r = est["run_s"]
    model = idle["model"]
    extra = est["terms_s"]["worker_warm_up"] + est["terms_s"]["traffic_at_bandwidth"]
    upper = predict(model, TARGET_TASKS, r, workers) + extra
    lower = predict(model, TARGET_TASKS, r, workers, overlap=True) + extra
    right.fill_between(workers, lower, upper, color=blue, alpha=0.15, lw=0)
    right.plot(workers, upper, "-", color=blue, lw=1.8,
               label=f"model as fitted: F + N s + N (κ r + o) / W  (κ = {model['kappa']:.2f})")
    right.plot(workers, lower, "--", color=blue, lw=1.2,
               label="if the serial part overlapped the runs: F + max(N s, N (κ r + o) / W)")
    right.plot(workers, TARGET_TASKS * r / workers, ":", color=grey, lw=1.4,
               label="ideal: N r / W")
    floor = model["F"] + TARGET_TASKS * model["s"]
    right.axhline(floor, color="0.5", lw=1, ls="-.",
                  label=f"serial part F + N s = {floor:.0f} s (more workers do not reduce it)")
    right.plot([TARGET_WORKERS], [est["total_s"]], "o", color=blue, ms=7)
    right.annotate(f"64 workers: {est['lower_s']:.0f}–{est['total_s']:.0f} s\n"
                   f"(ideal {est['ideal_s']:.0f} s, one core {est['serial_loop_s']:.0f} s)",
                   (TARGET_WORKERS, est["total_s"]), xytext=(0.35, 0.1),
                   textcoords="axes fraction", ha="center", va="center", fontsize=9, color=blue,
                   arrowprops=dict(arrowstyle="->", color=blue, lw=1))
    right.set_title(f"Predicted: {TARGET_TASKS:,} configurations × 1 seed, runs like these "
                    f"(r = {r:.2f} s)", fontsize=10)

    for ax, top in ((left, n), (right, TARGET_WORKERS)):
        ticks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= top / 1.3] + [top]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlim(0.85, top * 1.2)
        ax.set_xlabel("dask workers W (1 process × 1 thread = 1 core each)")
        ax.grid(True, which="major", color="0.9", lw=0.8)
    left.legend(fontsize=8, loc="lower left")
    right.legend(fontsize=8, loc="upper right")
    left.set_ylabel("sweep wall time (s)")
    right.set_ylabel("predicted wall time (s)")
    load = meta["loadavg_idle"]
    fig.suptitle(
        f"cs.sweep(backend=\"dask\") on LocalClusters of 1 and 2 workers, {meta['cpus']}-core "
        f"shared machine, {meta['date']}\nquiet rounds: other people's processes kept "
        f"{meta['other_cores_idle']:.1f} cores busy on average, load average "
        f"{load[0][0]:.1f} → {load[1][0]:.1f}; model T(W) = F + N s + (κ R + N o) / W, "
        f"R = serial loop time", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- report ------------------------------------------------------------------------------------

def _fmt_range(e: dict) -> str:
    return f"{e['median']:.3f} [{e['min']:.3f}–{e['max']:.3f}]"


def print_report(summary: dict, volume: dict, estimates: dict, meta: dict) -> None:
    for cond, s in summary.items():
        n_rounds = meta["rounds"] if cond == "idle" else meta["load_rounds"]
        print(f"\n{cond}: wall time s, median [min–max] of {n_rounds} rounds; other people's "
              f"processes {meta[f'other_cores_{cond}']:.2f} cores, load average "
              f"{meta[f'loadavg_{cond}'][0][0]:.1f} -> {meta[f'loadavg_{cond}'][1][0]:.1f}")
        print(f"{'case':<9} {'tasks':>5} {'serial loop':>22} {'dask 1 worker':>22} "
              f"{'dask 2 workers':>22} {'loop/d1':>8} {'loop/d2':>8} {'ovh1 ms':>8} "
              f"{'ovh2 ms':>8}")
        for case, e in s["cases"].items():
            lp = e["loop_s"]["median"]
            print(f"{case:<9} {e['tasks']:>5} {_fmt_range(e['loop_s']):>22} "
                  f"{_fmt_range(e['dask1_s']):>22} {_fmt_range(e['dask2_s']):>22} "
                  f"{lp / e['dask1_s']['median']:>8.2f} {lp / e['dask2_s']['median']:>8.2f} "
                  f"{1e3 * e['overhead1_per_task_s']:>8.2f} {1e3 * e['overhead2_per_task_s']:>8.2f}"
                  f"{'' if e['same_results'] else '  RESULTS DIFFER'}")
        m = s["model"]
        pr = m["per_round"]
        print(f"model T = F + N s + (kappa R + N o)/W: kappa = {m['kappa']:.2f} (measured), "
              f"F = {m['F']:.3f} s, s = {1e3 * m['s']:.2f} ms, o = {1e3 * m['o']:.2f} ms; "
              f"per-round: kappa {min(pr['kappa']):.2f}–{max(pr['kappa']):.2f}, F "
              f"{min(pr['F']):.3f}–{max(pr['F']):.3f} s, s {1e3 * min(pr['s']):.2f}–"
              f"{1e3 * max(pr['s']):.2f} ms, o {1e3 * min(pr['o']):.2f}–{1e3 * max(pr['o']):.2f}"
              " ms; residuals "
              + ", ".join(f"{100 * v:+.0f}%" for v in m["rel_residuals"]))
        for case, e in s["cases"].items():
            print(f"  {case}: CPU per task, client+scheduler process "
                  + ", ".join(f"{1e3 * e[f'dask{w}_main_cpu_s_per_task']:.2f} ms (W={w})"
                              for w in WORKERS)
                  + "; workers " + ", ".join(
                      f"{1e3 * e[f'dask{w}_workers_cpu_s_per_task']:.2f} ms (W={w})"
                      for w in WORKERS)
                  + f"; serial loop {1e3 * e['loop_s']['median'] / e['tasks']:.2f} ms")
        g = s["cases"]["grid"]
        print(f"workers' compute (task stream), grid: 1 worker {g['dask1_busy_s']['median']:.3f} s,"
              f" 2 workers {g['dask2_busy_s']['median']:.3f} s (serial loop "
              f"{g['loop_s']['median']:.3f} s)")
    print(f"\nbytes per task: arguments out {volume['args_bytes_median']:.0f} (max "
          f"{volume['args_bytes_max']}), result back {volume['result_bytes']} "
          f"({volume['result_bytes_with_curves']} with curves=True; dask's estimate "
          f"{volume['dask_nbytes_result']}); the Simulation itself would be "
          f"{volume['simulation_bytes']:,}")
    print(f"client preparation (grid expansion, hashing, validation dry run) "
          f"{1e3 * volume['client_preparation_s_per_config']:.2f} ms per configuration")
    print(f"cluster start {meta['cluster_start_s']}, worker warm-up (numba cache load) "
          f"{meta['worker_warm_s']} s, numba threads in workers {meta['worker_numba_threads']}")
    for cond, est in estimates.items():
        t = est["terms_s"]
        print(f"\n{TARGET_TASKS:,} tasks on {TARGET_WORKERS} workers ({cond} fit), runs of "
              f"{est['run_s']:.3f} s: {est['total_s']:.0f} s = F {t['fixed_F']:.1f} + N s "
              f"{t['serial_N_s']:.1f} + N(kappa r+o)/W "
              f"{t['parallel_N_kappa_r_plus_o_over_W']:.1f} + warm-up "
              f"{t['worker_warm_up']:.1f} + traffic {t['traffic_at_bandwidth']:.2f} (lower "
              f"bound, serial part overlapped: {est['lower_s']:.0f} s); ideal "
              f"{est['ideal_s']:.0f} s, serial loop {est['serial_loop_s']:.0f} s, efficiency "
              f"{100 * est['efficiency']:.0f}%, stops scaling near W = {est['knee_workers']:.0f}")
        print("  by run length: " + ", ".join(f"r = {k} s: {v[0]:.0f}–{v[1]:.0f} s"
                                              for k, v in est["by_run_length"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_scaling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run, ~30 s)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="rounds on the quiet machine (default 5; quick 2)")
    parser.add_argument("--load-repeats", type=int, default=None,
                        help="rounds with one CPU-bound background process (default 3; "
                             "quick 1; 0 skips them)")
    parser.add_argument("--no-malloc-trim", action="store_true",
                        help="start the workers without dask's MALLOC_TRIM_THRESHOLD_=65536 "
                             "(runs then take as long in a worker as in the loop)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                        help="output directory (default benchmarks/results/)")
    args = parser.parse_args()
    rounds = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    load_rounds = (args.load_repeats if args.load_repeats is not None
                   else (1 if args.quick else 3))
    begin = time.perf_counter()
    if args.no_malloc_trim:
        import dask

        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    numba.set_num_threads(1)  # in case numba was imported before the environment was set
    setup = _setup(args.quick)
    base, grid, seeds, empty, _ = setup
    serial_loop(base, {k: v[:1] for k, v in grid.items()}, seeds[:1])  # warm this process
    policies = grid["policy"]
    clusters = {}
    try:
        for w in WORKERS:
            clusters[w] = start_cluster(w, base, policies)
            print(f"cluster of {w} worker(s): started in {clusters[w]['start_s']:.1f} s, "
                  f"warm-up {max(clusters[w]['warm_s']):.2f} s", flush=True)
        for c in clusters.values():  # connect and warm the sweep's code path once
            cs.sweep(empty, {"n_samples": [10, 11]}, seeds=[0], backend="dask",
                     client=c["client"], progress=False)
        pids = [os.getpid(), *(p for c in clusters.values() for p in c["pids"])]
        meta = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "date": time.strftime("%Y-%m-%d"),
                "machine": platform.machine(), "cpus": os.cpu_count(),
                "python": platform.python_version(), "numba": numba.__version__,
                "quick": args.quick, "rounds": rounds, "load_rounds": load_rounds,
                "numba_threads_here": numba.get_num_threads(),
                "worker_numba_threads": sorted({t for c in clusters.values()
                                                for t in c["numba_threads"]}),
                "cluster_start_s": {w: round(c["start_s"], 2) for w, c in clusters.items()},
                "worker_warm_s": round(max(t for c in clusters.values() for t in c["warm_s"]),
                                       2),
                "loadavg_start": list(os.getloadavg()),
                "worker_pre_spawn_environ": _pre_spawn_environ(),
                "grid": {k: [str(v) for v in vals] for k, vals in grid.items()},
                "base": {k: str(v) for k, v in base.items()}, "seeds": seeds}
        if meta["worker_numba_threads"] != [1]:
            print(f"warning: workers run numba on {meta['worker_numba_threads']} threads, not "
                  "1: run this file as a script so NUMBA_NUM_THREADS=1 is set before numba "
                  "is imported")
        summary, records = {}, {}
        with LoadMeter(pids) as meter:
            records["idle"] = measure_rounds(clusters, setup, rounds, "idle")
        meta["other_cores_idle"], meta["loadavg_idle"] = meter.other_cores, meter.loadavg
        summary["idle"] = summarise(records["idle"])
        if load_rounds:
            with cpu_load() as info:
                with LoadMeter([*pids, info["pid"]]) as meter:
                    records["loaded"] = measure_rounds(clusters, setup, load_rounds, "loaded")
            meta["other_cores_loaded"], meta["loadavg_loaded"] = meter.other_cores, meter.loadavg
            meta["background_cpu_share"] = info["cpu_share"]
            summary["loaded"] = summarise(records["loaded"])
        volume = data_volume(clusters[2]["client"], base, grid, seeds)
        volume["client_preparation_s_per_config"] = client_preparation(empty, setup[4])
    finally:
        logging.getLogger("distributed").setLevel(logging.ERROR)  # no INFO lines at close
        for c in clusters.values():
            c["client"].close()
            c["cluster"].close()
    malloc = None if args.quick else malloc_check(False, 4)  # not in quick mode: ~15 s
    meta["loadavg_end"] = list(os.getloadavg())
    grid_case = summary["idle"]["cases"]["grid"]
    run = grid_case["loop_s"]["median"] / grid_case["tasks"]
    estimates = {cond: estimate(s["model"], run, volume, meta["worker_warm_s"])
                 for cond, s in summary.items()}
    print_report(summary, volume, estimates, meta)
    if malloc is not None:
        print(f"runs in fresh processes: {malloc['median']['default']:.3f} s, with dask's worker "
              f"setting {malloc['env']}: {malloc['median']['dask_worker_malloc']:.3f} s "
              f"({malloc['ratio']:.2f}x; kappa = {summary['idle']['model']['kappa']:.2f})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta["seconds"] = time.perf_counter() - begin
    (out / "dask_scaling.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "volume": volume, "estimates": estimates,
         "malloc_check": malloc,
         "assumptions": {"tasks": TARGET_TASKS, "workers": TARGET_WORKERS,
                         "bandwidth_bytes_per_s": BANDWIDTH,
                         "run_s": "mean single-core run time of the measured grid",
                         "one task per configuration (1 seed)": True},
         "records": records}, indent=1, default=float))
    plot(summary, estimates, meta, out / "dask_scaling.png")
    print(f"\ntotal {meta['seconds']:.0f} s; wrote {out / 'dask_scaling.json'} and "
          f"{out / 'dask_scaling.png'}")


if __name__ == "__main__":
    main()
