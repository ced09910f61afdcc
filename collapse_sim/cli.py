"""The ``collapse-sim`` command: list presets, run one or a sweep, write figures and tables."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ._preset_catalogue import CATALOGUE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collapse-sim",
        description="Watch model collapse happen: run a preset, get a figure and a table.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the presets")
    run = sub.add_parser(
        "run", help="run a preset; writes OUT/NAME.png and OUT/NAME.csv",
        description="Run a preset; writes OUT/NAME.png and OUT/NAME.csv.",
        epilog="presets: " + ", ".join(CATALOGUE)
        + " (any case; `collapse-sim list` describes them)")
    run.add_argument("name", help="preset name, any case (see `collapse-sim list`)")
    run.add_argument("--generations", type=int, help="number of generations")
    run.add_argument("--chains", type=int, help="number of independent chains")
    run.add_argument("--n-samples", type=int, dest="n_samples", help="samples per generation")
    run.add_argument("--seed", type=int, help="random seed (default 0)")
    run.add_argument("--out", default="collapse-out", help="output folder (default collapse-out)")
    run.add_argument("--quiet", action="store_true", help="print only the output paths")
    sw = sub.add_parser(
        "sweep", help="run a parameter sweep described in TOML; writes OUT/STEM.csv, "
        "OUT/STEM.parquet (with pyarrow) and OUT/STEM.png, keeps finished runs in OUT/STEM.runs")
    sw.add_argument("spec", help="the sweep's TOML file (see docs/sweeps.rst)")
    sw.add_argument("--out", default="collapse-out", help="output folder (default collapse-out)")
    sw.add_argument("--backend", choices=("loky", "threading", "dask"),
                    help="where runs execute (default: the spec's, else loky)")
    sw.add_argument("--client", help="dask scheduler address, e.g. tcp://host:8786")
    sw.add_argument("--allow-remote-scheduler", action="store_true",
                    dest="allow_remote_scheduler",
                    help="connect to a dask scheduler that is not on this machine (it runs "
                         "code and sends pickled data: trust it)")
    sw.add_argument("--n-jobs", type=int, dest="n_jobs", help="joblib workers (default: cores)")
    sw.add_argument("--quiet", action="store_true", help="print only the output paths")
    return parser


def _list() -> int:
    width = max(map(len, CATALOGUE))
    for name, (title, defaults) in CATALOGUE.items():
        sizes = ", ".join(f"{k}={v}" for k, v in defaults.items())
        print(f"{name:<{width}}  {title}\n{'':<{width}}  defaults: {sizes}")
    return 0


def preset_name(name: str) -> str:
    """The preset called ``name`` in any case; ``ValueError`` naming the nearest ones."""
    import difflib

    names = {n.lower(): n for n in CATALOGUE}
    found = names.get(name.lower().replace("-", "_"))
    if found is not None:
        return found
    near = difflib.get_close_matches(name.lower(), list(names), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(names[n]) for n in near)}? " if near else ""
    raise ValueError(f"unknown preset {name!r}; {hint}the presets are: "
                     f"{', '.join(CATALOGUE)} (see `collapse-sim list`)")


def _writable_folder(folder: str) -> Path:
    """``folder``, created if needed; ``OSError`` now, before any simulation, if it cannot be
    created or written to."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"--out {folder!r} cannot be created: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise OSError(f"--out {folder!r} is not writable")
    return out


def _run(args) -> int:
    name = preset_name(args.name)
    out = _writable_folder(args.out)
    from . import experiments  # the simulation machinery only when a preset runs
    start = time.perf_counter()
    result = experiments.run_preset(
        name, generations=args.generations, chains=args.chains,
        n_samples=args.n_samples, seed=args.seed, progress=False if args.quiet else None,
    )
    elapsed = time.perf_counter() - start
    from . import plotting  # matplotlib only when a figure is made

    png, csv = out / f"{name}.png", out / f"{name}.csv"
    fig = plotting.figure_for(result)
    fig.savefig(png, dpi=150)
    result.curves.to_csv(csv, index=False)
    if not args.quiet:
        import pandas as pd

        print(CATALOGUE[name][0])
        print(", ".join(f"{k}={v}" for k, v in result.params.items()))
        with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
            print(result.summary.to_string())
        print()
        print(result.description)
        print(f"\nsimulated in {elapsed:.1f} s")
    print(f"wrote {png}")
    print(f"wrote {csv}")
    return 0


def _sweep(args) -> int:
    from .sweeps import read_spec, sweep

    spec_path = Path(args.spec)
    spec = read_spec(spec_path)
    options = dict(spec["options"])
    if args.backend is not None:  # another backend: the spec's options for its own go
        options.pop("n_jobs" if args.backend == "dask" else "client", None)
    for name in ("backend", "client", "n_jobs"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    client = options.get("client")
    if isinstance(client, str) and not _loopback(client) and not args.allow_remote_scheduler:
        raise ValueError(
            f"the sweep would connect to the dask scheduler at {client!r}, which is not on "
            "this machine; a scheduler runs code and sends pickled data, so a spec that "
            "names one is as trusted as code: pass --allow-remote-scheduler to connect")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = spec_path.stem
    start = time.perf_counter()
    result = sweep(spec["base"], spec["grid"], out_dir=out / f"{stem}.runs",
                   progress=not args.quiet, **options)
    elapsed = time.perf_counter() - start
    table, curves = result if isinstance(result, tuple) else (result, None)
    x, y, hue = _plot_columns(table, list(spec["grid"]), spec["plot"])
    from . import plotting  # matplotlib only when a figure is made

    paths = [out / f"{stem}.csv"]
    table.to_csv(paths[0], index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        paths.append(out / f"{stem}.parquet")
        table.to_parquet(paths[-1], index=False)
    if curves is not None:
        paths.append(out / f"{stem}-curves.csv")
        curves.to_csv(paths[-1], index=False)
    ax = plotting.sweep_summary(table, x=x, y=y, hue=hue)
    paths.append(out / f"{stem}.png")
    ax.figure.savefig(paths[-1], dpi=150)
    if not args.quiet:
        import pandas as pd

        shown = [c for c in ("collapse_generation", "final_variance_ratio", "final_w2_median",
                             "final_tail_mass_median") if c in table.columns] or [y]
        names = list(spec["grid"])
        print(f"{len(table)} runs ({table.attrs['computed']} computed, "
              f"{table.attrs['reused']} reused from {out / f'{stem}.runs'}) in {elapsed:.1f} s; "
              f"median over seeds:")
        with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120,
                               "display.max_rows", 60):
            print(table.groupby(names, sort=False)[shown].median().to_string())
    for path in paths:
        print(f"wrote {path}")
    return 0


def _loopback(address: str) -> bool:
    """Whether a dask address (``tcp://host:port``, ``host:port``) names this machine."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plot_columns(table, names: list[str], plot: dict) -> tuple[str, str, str | None]:
    """The figure's axes: the spec's [plot] choices, else n_samples (or the first numeric
    grid column) across, collapse_generation up, the next grid column as lines."""
    import pandas as pd

    numeric = [n for n in names if pd.api.types.is_numeric_dtype(table[n])]
    x = plot.get("x") or ("n_samples" if "n_samples" in names else (numeric or names)[0])
    summaries = [c for c in ("collapse_generation", "final_variance_ratio", "final_w2_median")
                 if c in table.columns]
    y = plot.get("y") or (summaries[0] if summaries else table.columns[-1])
    others = [n for n in names if n != x]
    hue = plot.get("hue") or (others[0] if others else None)
    return x, y, hue


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``collapse-sim`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "sweep":
            return _sweep(args)
        return _run(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"collapse-sim: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, ArithmeticError, LookupError, RuntimeError) as exc:
        # never a traceback: one line naming what failed (a bug report can start from it)
        print(f"collapse-sim: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
