"""Atomic file writes and checked npz reads, shared by ``Simulation`` and the sweep store."""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
import zlib
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
    of file, e.g. "collapse_sim Simulation file"). A file whose bytes were altered (a
    compressed entry that does not decompress, a checksum that does not match, zip
    flags or methods this package never writes) is reported as damaged.
    """
    entry = None  # the zip entry being read, for the messages
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".npy")]
            if "__meta__.npy" not in names:
                raise ValueError("it has no __meta__ entry")
            for entry in names:
                info = archive.getinfo(entry)
                with archive.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _fortran_order, dtype = header(fh)
                    if dtype.hasobject:
                        raise ValueError(f"entry {entry} holds Python objects")
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise ValueError(f"entry {entry} declares {nbytes} bytes but holds "
                                         f"{info.file_size}")
            entry = None
        arrays = {}
        with np.load(path, allow_pickle=False) as data:  # every entry's size checked above
            for entry in names:
                arrays[entry[:-4]] = data[entry[:-4]]
    except (zlib.error, NotImplementedError, RuntimeError, zipfile.BadZipFile) as exc:
        # zlib: a compressed stream that does not decompress; BadZipFile: a checksum that
        # does not match, or no zip structure at all; NotImplementedError, RuntimeError: a
        # version, compression method or flag (encryption) that this package never writes
        if isinstance(exc, zipfile.BadZipFile) and "CRC" not in str(exc):
            raise ValueError(f"{path} is not a {what}: BadZipFile: {exc}") from None
        where = "" if entry is None else f" (entry {entry})"
        raise ValueError(f"{path} is damaged{where}, not a readable {what}: "
                         f"{type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not a {what}: {exc}") from None
    except (OSError, EOFError, KeyError) as exc:
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
