"""The ``collapse-sim`` command: list presets, run one, write its figure and table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import experiments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collapse-sim",
        description="Watch model collapse happen: run a preset, get a figure and a table.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the presets")
    run = sub.add_parser("run", help="run a preset; writes OUT/NAME.png and OUT/NAME.csv")
    run.add_argument("name", help="preset name (see `collapse-sim list`)")
    run.add_argument("--generations", type=int, help="number of generations")
    run.add_argument("--chains", type=int, help="number of independent chains")
    run.add_argument("--n-samples", type=int, dest="n_samples", help="samples per generation")
    run.add_argument("--seed", type=int, help="random seed (default 0)")
    run.add_argument("--out", default="collapse-out", help="output folder (default collapse-out)")
    run.add_argument("--quiet", action="store_true", help="print only the output paths")
    return parser


def _list() -> int:
    width = max(map(len, experiments.PRESETS))
    for name, preset in experiments.PRESETS.items():
        defaults = ", ".join(f"{k}={v}" for k, v in preset.defaults.items())
        print(f"{name:<{width}}  {preset.title}\n{'':<{width}}  defaults: {defaults}")
    return 0


def _run(args) -> int:
    if args.name not in experiments.PRESETS:
        print(f"collapse-sim: unknown preset {args.name!r}; try `collapse-sim list`",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    start = time.perf_counter()
    result = experiments.run_preset(
        args.name, generations=args.generations, chains=args.chains,
        n_samples=args.n_samples, seed=args.seed, progress=False if args.quiet else None,
    )
    elapsed = time.perf_counter() - start
    from . import plotting  # matplotlib only when a figure is made

    out.mkdir(parents=True, exist_ok=True)
    png, csv = out / f"{args.name}.png", out / f"{args.name}.csv"
    fig = plotting.figure_for(result)
    fig.savefig(png, dpi=150)
    result.curves.to_csv(csv, index=False)
    if not args.quiet:
        import pandas as pd

        print(experiments.PRESETS[args.name].title)
        print(", ".join(f"{k}={v}" for k, v in result.params.items()))
        with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
            print(result.summary.to_string())
        print()
        print(result.description)
        print(f"\nsimulated in {elapsed:.1f} s")
    print(f"wrote {png}")
    print(f"wrote {csv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``collapse-sim`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        return _run(args)
    except (ValueError, TypeError) as exc:
        print(f"collapse-sim: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
