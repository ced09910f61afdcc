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

    Parameters
    ----------
    limit : int
        Bytes of buffers kept for later requests; a request that would pass it gets
        fresh memory that is not kept.
    """

    def __init__(self, limit: int):
        self._buffers: list[np.ndarray] = []
        self._limit = limit
        self._lock = threading.Lock()

    def take(self, shape, dtype=np.int32) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``: a view of a buffer nothing
        refers to, or of a fresh one."""
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._lock:
            for buf in self._buffers:
                # referred to by the list, the loop variable and getrefcount's argument
                # only (every view of it refers to it: numpy views keep their base)
                if buf.size >= nbytes and sys.getrefcount(buf) <= 3:
                    return buf[:nbytes].view(dtype).reshape(shape)
            buf = np.empty(max(nbytes, 1), dtype=np.uint8)
            if buf.size + sum(b.size for b in self._buffers) <= self._limit:
                self._buffers.append(buf)
            return buf[:nbytes].view(dtype).reshape(shape)

    def clear(self) -> None:
        """Keep no buffer any more (those lent stay valid: their holders own them)."""
        with self._lock:
            self._buffers.clear()


#: Bytes of buffers :data:`BUFFERS` keeps for later fits (128 MiB).
RECYCLE_BYTES = 1 << 27
#: The buffers the families' fits share.
BUFFERS = Recycler(RECYCLE_BYTES)
