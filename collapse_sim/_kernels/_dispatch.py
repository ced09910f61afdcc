"""Serial and chain-parallel builds of one kernel, picked by the size of the job.

Every chain-parallel kernel is compiled twice from the same Python source: with
``parallel=True`` (the loop over chains is a ``prange``) and without (the
``prange`` runs as a plain loop). Both give bit-identical results because chain
``c`` only touches row ``c`` of every array; a test asserts it. Small jobs run
serially: waking worker threads costs more than it saves below
:data:`PARALLEL_MIN_WORK` array elements.

On a machine where other processes keep cores busy, every parallel region waits at
its end for a worker the operating system has descheduled (up to a time slice, several
milliseconds): two threads then ran slower than one, down to 0.4x on the SGD path
(``python -m benchmarks.bench_threads``). So every job also runs serially while other
processes used at least :data:`BUSY_CORES` cores over the last reading of the
machine's CPU counters (Linux ``/proc/stat``, less this process's own CPU time, read at
most every :data:`LOAD_INTERVAL` seconds, and over :data:`FIRST_WINDOW` seconds before
the process's first parallel-sized job; elsewhere the check is off). Which build runs
never changes the results.

A kernel that calls BLAS inside its chain loop (``np.dot`` in numba is a BLAS call) is
declared with ``one_blas_thread=True`` and always runs with BLAS on one thread
(:func:`one_blas_thread`): the chains are its parallelism, and OpenBLAS's own threads
would fight the kernel's and, worse, sum the products in another order, so the same seed
would give other bits under another ``OPENBLAS_NUM_THREADS``. A test checks that every
kernel that reaches a BLAS call is declared so.
"""

import os
import time
import types

import numba as nb
import numpy as np

#: Jobs whose largest array has fewer elements than this run on the serial build.
PARALLEL_MIN_WORK = 1 << 14
#: Cores other processes must keep busy for every job to run on the serial build
#: (``math.inf``: never).
BUSY_CORES = 0.5
#: Seconds between two readings of the machine's CPU counters.
LOAD_INTERVAL = 0.25
#: Seconds the first parallel-sized job of a process waits between its two readings
#: (the counters tick every 10 ms per core: a busy core shows as 2-4 ticks).
FIRST_WINDOW = 0.03


def _cpu_counters() -> tuple[float, float, float] | None:
    """(monotonic seconds, busy CPU seconds of the machine, CPU seconds of this process)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 8 or fields[0] != b"cpu":
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    own = os.times()
    return time.monotonic(), busy / _CLOCK_TICKS, own.user + own.system


try:
    _CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    _CLOCK_TICKS = 100


class _LoadWatch:
    """Whether other processes keep at least :data:`BUSY_CORES` cores busy (Linux)."""

    def __init__(self):
        self.last = None
        self.busy = False

    def others_busy(self) -> bool:
        if BUSY_CORES == np.inf:
            return False
        now = time.monotonic()
        if self.last is not None and now - self.last[0] < LOAD_INTERVAL:
            return self.busy
        sample = _cpu_counters()
        if sample is None:
            return False
        if self.last is None:
            # the process's first job: without an earlier reading it would run threaded
            # for up to LOAD_INTERVAL whatever the load, so it waits for a short one
            time.sleep(FIRST_WINDOW)
            self.last, sample = sample, _cpu_counters()
        wall = sample[0] - self.last[0]
        others = (sample[1] - self.last[1]) - (sample[2] - self.last[2])
        self.busy = others >= BUSY_CORES * wall
        self.last = sample
        return self.busy


_LOAD = _LoadWatch()


def use_parallel(work: int) -> bool:
    """Whether a job whose largest array has ``work`` elements runs on the parallel build."""
    return work >= PARALLEL_MIN_WORK and not _LOAD.others_busy()


_BLAS_CONTROLLER: list = []


def one_blas_thread():
    """Context in which BLAS/LAPACK run on one thread (threadpoolctl, a scikit-learn
    dependency; entering costs about 10 microseconds).

    For kernels whose chains each call BLAS (see the module docstring) and for batches
    of small matrices (``d x d`` per chain), which gain nothing from OpenBLAS's threads:
    they spin up for each matrix, and on a shared 2-core machine a batch of 100
    ``64 x 64`` ``eigh`` took 0.3 s with them and 0.03 s without.
    """
    if not _BLAS_CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


class ChainKernel:
    """A jitted chain loop with a ``parallel`` and a ``serial`` build.

    Calling it runs the parallel build when the largest array argument has at
    least :data:`PARALLEL_MIN_WORK` elements and the machine is not busy with other
    processes (:func:`use_parallel`), else the serial one; with BLAS on one thread
    (:func:`one_blas_thread`) if the kernel was declared with ``one_blas_thread``.
    """

    #: Whether every call runs with BLAS on one thread (see :func:`chain_kernel`).
    one_blas_thread: bool = False

    def __init__(self, fn, error_model: str = "python", one_blas_thread: bool = False):
        self.py_func = fn
        self.one_blas_thread = one_blas_thread
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
        kernel = self.parallel if use_parallel(work) else self.serial
        if self.one_blas_thread:
            with one_blas_thread():
                return kernel(*args)
        return kernel(*args)


def chain_kernel(fn=None, *, error_model: str = "python", one_blas_thread: bool = False):
    """Decorator: build ``fn`` as a :class:`ChainKernel`.

    ``error_model="numpy"`` (as ``@chain_kernel(error_model="numpy")``): a division by
    zero gives inf or NaN as IEEE arithmetic does, instead of raising
    ``ZeroDivisionError`` from inside the kernel, so a diverging fit shows as a
    non-finite result the caller can attribute to its chain.

    ``one_blas_thread=True``: every call runs with BLAS on one thread (required of a
    kernel that reaches a BLAS call, such as ``np.dot``; see the module docstring).
    """
    if fn is None:
        return lambda f: ChainKernel(f, error_model, one_blas_thread)
    return ChainKernel(fn, error_model, one_blas_thread)
