"""Running the jobs: joblib (``"loky"``, ``"threading"``) or a ``dask.distributed`` cluster.

:func:`_run_job` is what a worker runs: one ``(configuration, seed)``, reduced to its
summaries (and curves) before it travels back. The backends yield ``(index, record)``
pairs as runs finish, in any order.
"""

from __future__ import annotations

import numbers
import os

from ..engine import simulate
from .labels import _label
from .summary import _curves, summarize

#: Execution backends accepted by :func:`sweep`.
BACKENDS = ("loky", "threading", "dask")
#: Seconds allowed to connect to a dask scheduler given by address.
DASK_CONNECT_TIMEOUT = 10.0


def _check_backend(backend, n_jobs, client) -> str:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; "
                         f"got {backend!r}")
    if backend == "dask":
        if n_jobs is not None:
            raise ValueError("n_jobs does not apply to backend='dask': the cluster's worker "
                             "threads run the tasks")
    else:
        if client is not None:
            raise ValueError(f"client is for backend='dask', not {backend!r}")
        if n_jobs is not None and (isinstance(n_jobs, bool)
                                   or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0):
            raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}")
    return backend


def _run_job(index: int, kwargs: dict, seed: int, threshold: float,
             quantiles: tuple[float, ...] | None, numba_threads) -> tuple[int, dict]:
    """Run one ``(configuration, seed)`` and reduce it to its summaries (and curves)."""
    import numba

    if isinstance(numba_threads, dict):  # dask: total task threads per host
        numba_threads = _dask_numba_threads(numba_threads)
    before = numba.get_num_threads()
    if numba_threads:
        numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        sim = simulate(**kwargs, seed=seed, progress=False)
    except Exception as exc:
        exc.add_note(f"in the sweep run of seed {seed} with "
                     + ", ".join(f"{k}={_label(v)!r}" for k, v in kwargs.items()))
        raise
    finally:
        numba.set_num_threads(before)
    record = {"summary": summarize(sim, threshold)}
    if quantiles is not None:
        record["curves"] = _curves(sim, quantiles)
        record["quantiles"] = list(quantiles)
    return index, record


def _dask_numba_threads(per_host: dict) -> int | None:
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host

        total = per_host.get(get_address_host(get_worker().address))
    except (ImportError, ValueError):
        return None
    return max(1, (os.cpu_count() or 1) // total) if total else None


def _run_joblib(todo, backend, n_jobs, threshold, quantiles):
    if not todo:
        return
    from joblib import Parallel, cpu_count, delayed, effective_n_jobs

    workers = cpu_count() if n_jobs is None else effective_n_jobs(n_jobs)
    workers = max(1, min(workers, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    tasks = (delayed(_run_job)(job.index, job.kwargs, job.seed, threshold, quantiles, threads)
             for job in todo)
    yield from Parallel(n_jobs=workers, backend=backend, return_as="generator_unordered")(tasks)


def _dask_client(client):
    """``(client, owned)``; raises before any work if the cluster cannot be used."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - dask is a declared extra
        raise ImportError("backend='dask' needs dask.distributed: pip install "
                          "'collapse_sim[dask]'") from exc
    if client is None:
        try:
            return distributed.get_client(), False
        except ValueError:
            raise ValueError("backend='dask' needs client=: a distributed.Client or a "
                             "scheduler address such as 'tcp://127.0.0.1:8786'") from None
    if isinstance(client, str):
        try:
            return distributed.Client(client, timeout=DASK_CONNECT_TIMEOUT), True
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach the dask scheduler at {client!r} within "
                                  f"{DASK_CONNECT_TIMEOUT:g} s: {exc}") from exc
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client or a scheduler address string, "
                        f"got {type(client).__name__}")
    if client.status != "running":
        raise ValueError(f"the dask client is {client.status!r}, not running")
    return client, False


def _run_dask(todo, client, threshold, quantiles):
    if not todo:
        return
    from distributed import as_completed
    from distributed.comm import get_address_host

    per_host: dict[str, int] = {}
    for address, threads in client.nthreads().items():
        host = get_address_host(address)
        per_host[host] = per_host.get(host, 0) + threads
    futures = [client.submit(_run_job, job.index, job.kwargs, job.seed, threshold, quantiles,
                             per_host, pure=False) for job in todo]
    try:
        for future in as_completed(futures):
            result = future.result()
            future.release()
            yield result
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
