"""Atomic file writes, streamed npz writes and checked npz reads (optionally memory-mapped),
shared by ``Simulation`` and the sweep store."""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping
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


#: Bytes of an array converted and written at a time by :func:`write_npz` (the only copy
#: a conversion makes).
WRITE_CHUNK_BYTES = 16 * 2**20
#: The data of every uncompressed entry written by :func:`write_npz` starts at a multiple of
#: this many bytes in the file, so that a memory map of it is aligned for any numeric type.
ALIGN = 64


def write_npz(fh, arrays: Mapping[str, np.ndarray], *, compress: bool = False,
              dtypes: Mapping[str, np.dtype] | None = None,
              check: Callable[[str, np.ndarray, np.ndarray], None] | None = None) -> None:
    """Stream ``arrays`` into the seekable binary file ``fh`` as an npz (``np.load`` reads it).

    Each array becomes the entry ``<name>.npy``, written ``WRITE_CHUNK_BYTES`` at a time
    along its first axis: an array is never copied whole, and ``dtypes[name]`` converts it
    chunk by chunk (``check(name, chunk, converted)`` may refuse a conversion by raising).
    Uncompressed entries (``compress=False``, zip method "stored") have their data aligned
    to ``ALIGN`` bytes in the file (the npy header is padded), so they can be memory-mapped
    (:func:`read_npz` with ``mmap=True``). ``compress=True`` deflates every entry, as
    :func:`numpy.savez_compressed`.
    """
    dtypes = dtypes or {}
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(fh, "w", compression=method, allowZip64=True) as archive:
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            dtype = np.dtype(dtypes.get(name, arr.dtype))
            if dtype.hasobject or arr.dtype.hasobject:
                raise ValueError(f"array {name!r} holds Python objects")
            with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                # stored entries: the data goes straight to fh, from its current position
                out.write(_npy_header(arr.shape, dtype, None if compress else fh.tell()))
                for chunk in _chunks(arr, dtype):
                    if check is not None and dtype != arr.dtype:
                        check(name, chunk[0], chunk[1])
                    out.write(memoryview(chunk[1]).cast("B"))


def _npy_header(shape: tuple, dtype: np.dtype, start: int | None) -> bytes:
    """An npy (version 1.0, or 2.0 for a header over 64 KiB) header whose array data starts
    at a multiple of ``ALIGN`` bytes from ``start`` (file offset of the header; ``None``:
    from the header's own start, as numpy pads it)."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": tuple(int(n) for n in shape)})
    for version, size_format in (((1, 0), "<H"), ((2, 0), "<I")):
        prefix = 8 + struct.calcsize(size_format)
        pad = -((start or 0) + prefix + len(text) + 1) % ALIGN
        body = (text + " " * pad + "\n").encode("latin1")
        if len(body) < 2 ** (8 * struct.calcsize(size_format)):
            return (np.lib.format.magic(*version) + struct.pack(size_format, len(body))
                    + body)
    raise ValueError(f"array header too long: {len(text)} characters")  # pragma: no cover


def _chunks(arr: np.ndarray, dtype: np.dtype):
    """``(source, converted)`` C-contiguous blocks of rows of ``arr``, about
    ``WRITE_CHUNK_BYTES`` each (``converted`` is ``source`` itself when no conversion and no
    copy are needed)."""
    if arr.size == 0:
        return
    if arr.ndim == 0:
        yield arr, np.ascontiguousarray(arr, dtype=dtype).reshape(1)
        return
    row = max(1, arr[0].size * max(arr.dtype.itemsize, dtype.itemsize))
    step = max(1, WRITE_CHUNK_BYTES // row)
    with np.errstate(over="ignore", under="ignore"):  # the caller's check judges the values
        for start in range(0, arr.shape[0], step):
            block = arr[start:start + step]
            yield block, np.ascontiguousarray(block, dtype=dtype)


def read_npz(path: Path, what: str, *, select: Callable[[str], bool] | None = None,
             mmap: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of an npz file written by this package, every failure a ValueError.

    ``meta`` is the JSON object stored as ``__meta__``. Only the entries whose name (without
    ``.npy``) ``select`` accepts are read (default: all). Before reading an array, its
    header's shape and dtype are checked against the size its zip entry declares, so
    a damaged or forged file cannot make the reader allocate more than the file holds;
    a truncated, empty or non-zip file, a missing ``__meta__``, non-JSON metadata or
    object arrays are reported with the path and what is wrong (``what`` names the kind
    of file, e.g. "collapse_sim Simulation file"). A file whose bytes were altered (a
    compressed entry that does not decompress, a checksum that does not match, zip
    flags or methods this package never writes) is reported as damaged.

    ``mmap=True`` memory-maps the uncompressed entries (read-only :class:`numpy.memmap`;
    compressed ones are read into memory): their bytes are read from disk when used, and
    their checksums are not verified (nothing reads them all).
    """
    entry = None  # the zip entry being read, for the messages
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".npy")]
            if "__meta__.npy" not in names:
                raise ValueError("it has no __meta__ entry")
            names = [n for n in names
                     if n == "__meta__.npy" or select is None or select(n[:-4])]
            for entry in names:
                info = archive.getinfo(entry)
                with archive.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, fortran_order, dtype = header(fh)
                    if dtype.hasobject:
                        raise ValueError(f"entry {entry} holds Python objects")
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise ValueError(f"entry {entry} declares {nbytes} bytes but holds "
                                         f"{info.file_size}")
                    headers[entry] = (info, shape, fortran_order, dtype, nbytes)
            entry = None
        arrays = {}
        with np.load(path, allow_pickle=False) as data:  # every entry's size checked above
            for entry in names:
                info, shape, fortran_order, dtype, nbytes = headers[entry]
                if entry != "__meta__.npy" and nbytes and (
                        info.compress_type == zipfile.ZIP_STORED):
                    read = _map_entry if mmap else _read_entry
                    arrays[entry[:-4]] = read(path, info, shape, fortran_order, dtype, nbytes)
                else:
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


def _locate(path: Path, info: zipfile.ZipInfo, shape, fortran_order: bool,
            dtype: np.dtype, nbytes: int) -> tuple[int, int]:
    """``(start of the entry's data, start of its array data)``: file offsets of the npy
    header and of the array in the uncompressed entry ``info``, its headers checked."""
    if info.flag_bits & 0x1:
        raise RuntimeError("the entry is flagged as encrypted")  # reported as damage
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("bad local file header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        data = fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)
        if header(fh) != (shape, fortran_order, dtype):
            raise zipfile.BadZipFile("the entry's header differs from its local copy")
        start = fh.tell()
        end = fh.seek(0, os.SEEK_END)
    if start + nbytes > min(end, data + info.compress_size):
        raise ValueError(f"entry {info.filename} runs past the end of its data")
    return data, start


def _read_entry(path: Path, info: zipfile.ZipInfo, shape, fortran_order: bool,
                dtype: np.dtype, nbytes: int) -> np.ndarray:
    """The array of the uncompressed entry ``info``, read straight into the array itself
    (``np.load`` copies it 2 MiB at a time through the zip reader), its CRC-32 checked as
    the zip reader does.

    Entries above :data:`OVERLAP_BYTES` are read in :data:`READ_CHUNK_BYTES` pieces while
    a second thread checksums the pieces already read (``zlib.crc32`` releases the GIL),
    so the check costs little beyond the read itself: 3.7 GB/s of CRC-32 would otherwise
    add about a third to a 4.8 GB load.
    """
    data, start = _locate(path, info, shape, fortran_order, dtype, nbytes)
    arr = np.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
    view = memoryview(arr.reshape(-1, order="A").view(np.uint8))
    with open(path, "rb") as fh:
        fh.seek(data)
        crc = zlib.crc32(fh.read(start - data))
        if nbytes <= OVERLAP_BYTES:
            got = fh.readinto(view)
            if got != nbytes:
                raise ValueError(f"entry {info.filename} is truncated")
            crc = _crc_chunks(view, crc)
        else:
            crc = _read_while_checksumming(fh, view, crc, info.filename)
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    return arr


def _crc_chunks(view: memoryview, crc: int) -> int:
    """``crc`` continued over ``view``, :data:`CRC_CHUNK_BYTES` at a time."""
    for i in range(0, len(view), CRC_CHUNK_BYTES):
        crc = zlib.crc32(view[i:i + CRC_CHUNK_BYTES], crc)
    return crc


def _read_while_checksumming(fh, view: memoryview, crc: int, name: str) -> int:
    """Fill ``view`` from ``fh`` piece by piece; a worker thread continues ``crc`` over each
    piece once it is read. Returns the final CRC; ``ValueError`` if the file ends early."""
    import queue
    import threading

    pieces: queue.Queue = queue.Queue()
    result = [crc]

    def checksum() -> None:
        value = result[0]
        while (piece := pieces.get()) is not None:
            value = _crc_chunks(piece, value)
        result[0] = value

    worker = threading.Thread(target=checksum, name="collapse_sim-crc32", daemon=True)
    worker.start()
    try:
        for i in range(0, len(view), READ_CHUNK_BYTES):
            piece = view[i:i + READ_CHUNK_BYTES]
            got = fh.readinto(piece)
            if got != len(piece):
                raise ValueError(f"entry {name} is truncated")
            pieces.put(piece)
    finally:
        pieces.put(None)
        worker.join()
    return result[0]


#: Entries larger than this are read and checksummed at the same time (two threads).
OVERLAP_BYTES = 2**26
#: Bytes read per piece when reading and checksumming overlap.
READ_CHUNK_BYTES = 2**25

#: Bytes checksummed at a time (``zlib.crc32`` of one buffer over 4 GiB fails on some builds).
CRC_CHUNK_BYTES = 2**30


def _map_entry(path: Path, info: zipfile.ZipInfo, shape, fortran_order: bool, dtype: np.dtype,
               nbytes: int) -> np.memmap:
    """A read-only memory map of the array data of the uncompressed entry ``info``."""
    _data, start = _locate(path, info, shape, fortran_order, dtype, nbytes)
    return np.memmap(path, dtype=dtype, mode="r", offset=start, shape=tuple(shape),
                     order="F" if fortran_order else "C")
