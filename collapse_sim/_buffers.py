"""Scratch and result buffers lent out again once nothing refers to them.

Fresh memory is written page by page on first touch: the kernel clears each page (a
2 MiB page at a time where numpy asks for transparent huge pages) before a kernel can
store into it. For the fits the families make generation after generation, that was a
fifth of a categorical run and three quarters of a 64-chain n-gram refit. A
:class:`Recycler` keeps the buffers it lent, up to a byte limit, and lends a buffer again
only when no array refers to it any more, so a model a user (or a custom metric, or a
view of its counts) still holds is never overwritten.
"""

import sys
import threading

import numpy as np


class Recycler:
    """Buffers lent out as views, and lent again once nothing else refers to them.

    A request gets the smallest free buffer that holds it without wasting more than its
    own size again (so a small result never keeps a large buffer alive; of equal ones
    the most recently lent), else fresh
    memory, kept for later requests if it fits under ``limit`` once free buffers that
    are kept are let go (the least recently lent first).

    Parameters
    ----------
    limit : int
        Bytes of buffers kept for later requests.
    """

    def __init__(self, limit: int):
        self._buffers: list[np.ndarray] = []  # least recently lent first
        self._limit = limit
        self._lock = threading.Lock()

    def take(self, shape, dtype=np.int32) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``: a view of a buffer nothing
        refers to, or of a fresh one."""
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._lock:
            free = self._free()
            fits = [i for i in free if nbytes <= self._buffers[i].size <= 2 * nbytes + 4096]
            if fits:
                # the smallest; of those the most recently lent (its pages are warmest)
                i = max(fits, key=lambda j: (-self._buffers[j].size, j))
                buf = self._buffers.pop(i)
                self._buffers.append(buf)  # most recently lent last
                return buf[:nbytes].view(dtype).reshape(shape)
            buf = np.empty(max(nbytes, 1), dtype=np.uint8)
            kept = sum(b.size for b in self._buffers)
            for i in free:  # let free buffers go, least recently lent first, to make room
                if kept + buf.size <= self._limit:
                    break
                kept -= self._buffers[i].size
                self._buffers[i] = None
            self._buffers = [b for b in self._buffers if b is not None]
            if kept + buf.size <= self._limit:
                self._buffers.append(buf)
            return buf[:nbytes].view(dtype).reshape(shape)

    def _free(self) -> list[int]:
        """Positions of the kept buffers nothing else refers to (every view of a buffer
        refers to it: numpy views keep their base)."""
        return [i for i in range(len(self._buffers))
                if sys.getrefcount(self._buffers[i]) <= _FREE_REFS]

    def clear(self) -> None:
        """Keep no buffer any more (those lent stay valid: their holders own them)."""
        with self._lock:
            self._buffers.clear()


def offsets(sizes) -> np.ndarray:
    """int64 offsets ``(B + 1,)`` of consecutive segments of the given sizes in one flat
    buffer: segment ``b`` is ``[off[b], off[b + 1])``."""
    sizes = np.asarray(sizes)
    off = np.zeros(sizes.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=off[1:])
    return off


def _refs_when_free() -> int:
    """What ``sys.getrefcount`` reports for a list's element nothing else refers to,
    read the way :meth:`Recycler._free` reads it (2 on CPython 3.11-3.13: the list and
    the call's argument; measured rather than assumed, as interpreters may count
    borrowed references differently)."""
    probe = [np.empty(1, dtype=np.uint8)]
    return sys.getrefcount(probe[0])


_FREE_REFS = _refs_when_free()


#: Bytes of buffers :data:`BUFFERS` keeps for later fits (128 MiB).
RECYCLE_BYTES = 1 << 27
#: The buffers the families' fits share.
BUFFERS = Recycler(RECYCLE_BYTES)
