"""Serial and chain-parallel builds of one kernel, picked by the size of the job.

Every chain-parallel kernel is compiled twice from the same Python source: with
``parallel=True`` (the loop over chains is a ``prange``) and without (the
``prange`` runs as a plain loop). Both give bit-identical results because chain
``c`` only touches row ``c`` of every array; a test asserts it. Small jobs run
serially: waking worker threads costs more than it saves below
:data:`PARALLEL_MIN_WORK` array elements, and on a shared, loaded machine it can
cost milliseconds.
"""

import types

import numba as nb
import numpy as np

#: Jobs whose largest array has fewer elements than this run on the serial build.
PARALLEL_MIN_WORK = 1 << 14


class ChainKernel:
    """A jitted chain loop with a ``parallel`` and a ``serial`` build.

    Calling it runs the parallel build when the largest array argument has at
    least :data:`PARALLEL_MIN_WORK` elements, else the serial one.
    """

    def __init__(self, fn, error_model: str = "python"):
        self.py_func = fn
        self.parallel = nb.njit(parallel=True, cache=True, error_model=error_model)(fn)
        # numba's on-disk cache keys entries by the function's qualified name and
        # signature, not by the parallel flag: compiled from ``fn`` itself, the serial
        # build would load the parallel one from the cache. A renamed copy gets its own.
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__doc__ = fn.__doc__
        self.serial = nb.njit(cache=True, error_model=error_model)(twin)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, *args):
        work = max((a.size for a in args if isinstance(a, np.ndarray)), default=0)
        kernel = self.parallel if work >= PARALLEL_MIN_WORK else self.serial
        return kernel(*args)


def chain_kernel(fn=None, *, error_model: str = "python"):
    """Decorator: build ``fn`` as a :class:`ChainKernel`.

    ``error_model="numpy"`` (as ``@chain_kernel(error_model="numpy")``): a division by
    zero gives inf or NaN as IEEE arithmetic does, instead of raising
    ``ZeroDivisionError`` from inside the kernel, so a diverging fit shows as a
    non-finite result the caller can attribute to its chain.
    """
    if fn is None:
        return lambda f: ChainKernel(f, error_model)
    return ChainKernel(fn, error_model)
