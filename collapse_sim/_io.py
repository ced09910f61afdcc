"""Atomic file writes and checked npz reads, shared by ``Simulation`` and the sweep store."""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


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
    _fsync_dir(path.parent)
    _remove_stale(path)


#: A temporary file of an earlier write to the same path older than this many seconds was
#: left by a killed process (a live writer's file is younger) and is removed.
STALE_SECONDS = 3600


def _remove_stale(path: Path) -> None:
    now = time.time()
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_SECONDS:
                stale.unlink(missing_ok=True)
        except OSError:
            pass


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX: fsync the folder's entry table)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse it
        pass
    finally:
        os.close(fd)


def read_npz(path: Path, what: str) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of an npz file written by this package, every failure a ValueError.

    ``meta`` is the JSON object stored as ``__meta__``. Before reading an array, its
    header's shape and dtype are checked against the size its zip entry declares, so
    a damaged or forged file cannot make the reader allocate more than the file holds;
    a truncated, empty or non-zip file, a missing ``__meta__``, non-JSON metadata or
    object arrays are reported with the path and what is wrong (``what`` names the kind
    of file, e.g. "collapse_sim Simulation file").
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".npy")]
            if "__meta__.npy" not in names:
                raise ValueError("it has no __meta__ entry")
            for name in names:
                info = archive.getinfo(name)
                with archive.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _fortran_order, dtype = header(fh)
                    if dtype.hasobject:
                        raise ValueError(f"entry {name} holds Python objects")
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise ValueError(f"entry {name} declares {nbytes} bytes but holds "
                                         f"{info.file_size}")
        with np.load(path, allow_pickle=False) as data:  # every entry's size checked above
            arrays = {name[:-4]: data[name[:-4]] for name in names}
    except ValueError as exc:
        raise ValueError(f"{path} is not a {what}: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path} is not a {what}: {type(exc).__name__}: {exc}") \
            from None
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except ValueError as exc:
        raise ValueError(f"{path} is not a {what}: its metadata is not JSON "
                         f"({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is not a {what}: its metadata is not an object")
    return meta, arrays
