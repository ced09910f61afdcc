"""Atomic file writes shared by ``Simulation.save`` and the sweep store."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``.

    ``write(fh)`` writes to the binary file object ``fh``. A crash at any point leaves
    either the previous file or the complete new one, never a partial file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
