"""Execute the gallery's notebooks in a real Jupyter kernel, as a user would run them.

sphinx-gallery turns every ``examples/plot_*.py`` into ``docs/auto_examples/<name>.ipynb``
when the documentation is built. This script runs each of them top to bottom with
``nbclient`` in an IPython kernel (``ipykernel``) started from *this* interpreter, so
``import collapse_sim`` inside the notebook finds the same installation as the caller. A
kernel spec pointing at ``sys.executable`` is written to a temporary directory, so no
kernel is installed for the user and a ``python3`` kernel installed elsewhere cannot be
picked up by mistake. A last cell appended to every notebook checks that the kernel's
interpreter is this one.

Every notebook runs in its own empty temporary directory (the examples write their
figures into the working directory), removed afterwards.

Usage (from the repository root, after ``sphinx-build``)::

    python docs/run_notebooks.py                     # every docs/auto_examples/*.ipynb
    python docs/run_notebooks.py path/to/a.ipynb     # given notebooks only

Exit status 1 if any notebook raised; the failing cell and its traceback are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

DOCS = Path(__file__).resolve().parent
KERNEL_NAME = "collapse-sim-docs"
_CHECK = "import sys, collapse_sim\nprint(repr(sys.executable))\nprint(repr(collapse_sim.__file__))"


def _kernel_dir(root: Path) -> Path:
    """Write ``root/kernels/<KERNEL_NAME>/kernel.json`` starting ipykernel with this python."""
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return root


def run_notebook(path: Path, timeout: int) -> float:
    """Execute ``path`` in a fresh kernel and scratch directory; return the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_CHECK))
    with tempfile.TemporaryDirectory(prefix="collapse-sim-nb-") as scratch:
        # local (ipc) sockets under the scratch directory instead of unencrypted TCP ports
        config = Config()
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = os.path.join(scratch, "kernel-ipc")
        client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=timeout,
                                allow_errors=False, shutdown_kernel="immediate", config=config,
                                resources={"metadata": {"path": scratch}})
        start = time.perf_counter()
        client.execute()
        elapsed = time.perf_counter() - start
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    executable = printed.splitlines()[0].strip("'\"")
    if os.path.realpath(executable) != os.path.realpath(sys.executable):
        raise RuntimeError(f"{path.name}: the kernel ran {executable}, not {sys.executable}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: docs/auto_examples/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=600,
                        help="seconds allowed per cell (default 600)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((DOCS / "auto_examples").glob("*.ipynb"))
    if not notebooks:
        print("no notebooks found: build the documentation first "
              "(sphinx-build -b html docs docs/_build/html)", file=sys.stderr)
        return 1
    failed = []
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="collapse-sim-kernels-") as kernels:
        # jupyter_client looks kernel specs up in $JUPYTER_PATH/kernels first
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            [str(_kernel_dir(Path(kernels)))] + ([previous] if previous else []))
        for path in notebooks:
            try:
                seconds = run_notebook(path, args.timeout)
            except CellExecutionError as err:
                failed.append(path.name)
                print(f"FAILED {path.name}\n{err}", file=sys.stderr)
                continue
            except Exception as err:  # kernel died, timeout, wrong interpreter …
                failed.append(path.name)
                print(f"FAILED {path.name}: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            print(f"ok {path.name} ({seconds:.1f} s)", flush=True)
    print(f"{len(notebooks) - len(failed)} of {len(notebooks)} notebooks ran "
          f"in {time.perf_counter() - total:.1f} s with {sys.executable}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
