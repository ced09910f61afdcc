"""What every benchmark suite shares: printing its rows, and its command line."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


def print_rows(rows: list[dict]) -> None:
    """One line per row (case, our time, the baseline's, their ratio, the goal), then its
    baseline and note indented below it."""
    for r in rows:
        base = "" if r["baseline_s"] is None else f"{r['baseline_s']:.3f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        goal = "" if r["goal"] is None else f">={r['goal']:g}x"
        print(f"{r['case']:<58} {r['ours_s']:>8.3f} {base:>8} {ratio:>7} {goal:>6}")
        details = [f"baseline: {r['baseline']}"] if r.get("baseline") else []
        details += [r["note"]] if r.get("note") else []
        if details:
            print("    " + "; ".join(details))


def overhead_row(case: str, full, cheap, baseline: str, goal: float, details: str = "") -> dict:
    """The row of a metric overhead: ``time(default) / time(cheap) - 1`` per round, from the
    per-round times ``full`` (the default metrics) and ``cheap`` (the same call with one
    cheap metric, described by ``baseline``), its median and min-max against ``goal``
    (issue 17: at most +50%); ``details`` ends the note."""
    import numpy as np

    over = np.asarray(full) / np.asarray(cheap) - 1.0
    return {"case": case, "ours_s": float(np.median(full)), "baseline": baseline,
            "baseline_s": float(np.median(cheap)), "ratio": None, "goal": None,
            "overhead": float(np.median(over)), "overhead_min": float(over.min()),
            "overhead_max": float(over.max()), "overhead_goal": goal,
            "note": f"time(default)/time(cheap) - 1 = {np.median(over):+.0%} (min-max "
                    f"{over.min():+.0%} to {over.max():+.0%}; goal <= +{goal:.0%})"
                    + (f"; {details}" if details else "")}


def under_load(measure: Callable[[], list[dict]]) -> list[dict]:
    """``measure()``'s rows, taken while one CPU-bound background process runs
    (:func:`benchmarks.bench_categorical.cpu_load`, started and stopped here); each row's
    note says so, with the share of a core the process got and whether it lived through."""
    import os

    from .bench_categorical import cpu_load

    with cpu_load() as info:
        rows = measure()
    share = "" if info["cpu_share"] is None else f", it got {info['cpu_share']:.0%} of a core"
    for row in rows:
        row["note"] += (f"; under load: 1 busy Python process on {os.cpu_count()} CPUs{share}"
                        f"{'' if info['alive'] else ' (it died early!)'}")
    return rows


def idle_then_loaded(rows: Callable[[int, bool, str], list[dict]]
                     ) -> tuple[Callable[..., list[dict]], Callable[..., list[dict]]]:
    """``(run, run_loaded)`` of a suite whose rows come from ``rows(repeats, quick, suffix)``.

    ``run(repeats, quick, load=False)`` gives the idle rows, then, with ``load`` in full
    mode, the loaded ones; ``run_loaded(repeats, quick)`` gives the rows (their case names
    ending in ", loaded") while one CPU-bound background process runs, started and stopped
    here (:func:`under_load`, whose note says what share of a core the process got)."""

    def run_loaded(repeats: int = 3, quick: bool = False) -> list[dict]:
        return under_load(lambda: rows(repeats, quick, ", loaded"))

    def run(repeats: int = 3, quick: bool = False, load: bool = False) -> list[dict]:
        out = rows(repeats, quick, "")
        if load and not quick:
            out += run_loaded(repeats, quick)
        return out

    return run, run_loaded


def suite_main(prog: str, run: Callable[..., list[dict]],
               run_loaded: Callable[..., list[dict]]) -> None:
    """``python -m benchmarks.<suite> [--quick] [--repeats R] [--load off|on|both]``."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", choices=("off", "on", "both"), default="both",
                        help="off: idle only; on: loaded only; both (default)")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.load == "on":
        rows = run_loaded(args.repeats, args.quick)
    else:
        rows = run(args.repeats, args.quick, load=args.load == "both")
    print_rows(rows)
    print(f"total {time.perf_counter() - start:.0f} s")
