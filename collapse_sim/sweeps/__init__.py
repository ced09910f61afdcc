"""Parameter sweeps: :func:`~collapse_sim.simulate` over a grid of settings and seeds.

:func:`sweep` expands a grid of :func:`~collapse_sim.simulate` keyword arguments,
runs every ``(configuration, seed)`` pair on joblib (``"loky"`` processes or
``"threading"``) or on a ``dask.distributed`` cluster, and returns one table
row per pair. Each run is reduced to a few numbers (and, when asked, to
per-generation quantile curves) *in the worker*, so only small results travel
back and no more than one run's chains per worker are in memory at a time.

Reproducibility: the pair ``(configuration, seed)`` runs exactly
``simulate(**configuration, seed=seed)``, so results are bit-identical whatever
the backend, the number of workers or the order in which runs finish.

Resuming: with ``out_dir``, each finished run is written at once to its own
file, named by a stable hash of its configuration and its seed, through a
temporary file renamed into place (a killed sweep leaves only whole files).
Running the same sweep again reuses them.

``collapse_sim.sweep`` is the function :func:`sweep`; this package,
``collapse_sim.sweeps``, holds it and the rest: ``grid`` (checking and expanding the
grid), ``labels`` (readable labels and stable keys), ``backends`` (joblib and dask),
``store`` (``out_dir``), ``summary`` (per-run summaries and curves) and ``spec``
(TOML specs, :func:`read_spec`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from .._validation import check_real
from .backends import (
    BACKENDS,
    DASK_CONNECT_TIMEOUT,
    _check_backend,
    _dask_client,
    _run_dask,
    _run_joblib,
)
from .grid import PARAMETERS, _Plan
from .spec import read_spec
from .store import FORMAT, MANIFEST, _Store
from .summary import DEFAULT_THRESHOLD, _check_quantiles, summarize

__all__ = [
    "BACKENDS",
    "DASK_CONNECT_TIMEOUT",
    "DEFAULT_THRESHOLD",
    "FORMAT",
    "MANIFEST",
    "PARAMETERS",
    "read_spec",
    "summarize",
    "sweep",
]


def sweep(
    base: Mapping,
    grid: Mapping,
    *,
    seeds: Sequence[int],
    backend: str = "loky",
    n_jobs: int | None = None,
    client=None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    curves: bool = False,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    r"""Run :func:`~collapse_sim.simulate` for every configuration of a grid and every seed.

    Parameters
    ----------
    base : dict
        ``simulate`` keyword arguments shared by every run (``truth``, ``fitter``,
        ``generations``, ``chains``, ``policy``, ``metrics``, ``sampling`` …).
    grid : dict of str to list
        Values to try for some of those arguments; every combination (the
        Cartesian product, in the order given) is one configuration. A name in
        both ``base`` and ``grid`` takes the grid's values.
    seeds : sequence of int
        Seeds (non-negative ints); every configuration runs once per seed, with
        ``simulate(..., seed=seed)``.
    backend : {"loky", "threading", "dask"}
        ``"loky"``: joblib worker processes; ``"threading"``: joblib threads (the
        numba kernels release the GIL; no process start-up, good for many small
        runs); ``"dask"``: tasks on a ``dask.distributed`` cluster (``client``).
    n_jobs : int or None
        joblib workers (``-1``: one per core). ``None`` means one per core. Each
        worker's numba kernels get ``cores // workers`` threads (at least 1) so that
        workers do not oversubscribe the machine; results do not depend on it.
        Not used by ``"dask"`` (the cluster's worker threads decide).
    client : distributed.Client, str or None
        For ``backend="dask"``: a ``Client``, or a scheduler address such as
        ``"tcp://10.0.0.1:8786"`` (connected within :data:`DASK_CONNECT_TIMEOUT`
        seconds and closed at the end). ``None`` uses the current default client.
    out_dir : str or path, optional
        Folder where each finished run is written at once (``<hash>-seed<s>.npz``,
        atomically), with a ``manifest.json`` describing the sweep. Running the
        same sweep again skips the runs already there; a killed sweep loses only
        the runs in progress. A folder holding a *different* sweep (other
        ``base``, ``grid``, ``seeds`` or ``threshold``) is refused with a
        ``ValueError``: use one folder per sweep.
    progress : bool
        Show a tqdm bar over the runs.
    threshold : float
        Level, > 0, of the ``collapse_generation`` summary (see Returns).
    curves : bool
        Also return per-generation curves (mean and ``quantiles`` over chains of
        every metric) for every run.
    quantiles : sequence of float
        Quantile levels of the curves.

    Returns
    -------
    table : DataFrame
        One row per configuration and seed, in grid order then seed order. Columns:

        - ``config`` (index of the configuration), ``key`` (its stable hash);
        - one column per grid name: numbers stay numbers, objects become labels
          such as ``"KeepReal(fraction=0.1)"``; for objects that are dataclasses,
          each field that varies across the grid also gets a column
          ``<name>_<field>`` (``policy_fraction``: NaN where the class has none);
        - ``seed``;
        - when ``variance`` is among the metrics: ``collapse_generation``, the
          first generation :math:`t \ge 1` at which the median over chains of
          :math:`\operatorname{tr}\hat\Sigma_t / \operatorname{tr}\Sigma_0` falls
          below ``threshold`` (NaN if it never does within ``generations``), and
          ``final_variance_ratio``, that median at the last generation;
        - for every computed metric ``m``: ``final_m_median`` and ``final_m_mean``,
          the median and mean over chains at the last generation.

        ``table.attrs`` holds ``parameters`` (the grid names), ``threshold``,
        ``computed`` and ``reused`` (the number of runs run now and read from ``out_dir``).
    curves : DataFrame
        Only when ``curves=True`` (the result is then the pair ``(table, curves)``):
        one row per configuration, seed and generation, with the same identifying
        columns and ``m_mean``, ``m_q10``, ``m_q50`` … for every metric ``m``.

    Raises
    ------
    ValueError, TypeError
        Before any run starts: an unknown or reserved name in ``base``/``grid``
        (the message lists the accepted ones), an empty grid or empty value list,
        a value ``simulate`` would reject (the message names the parameter and the
        configuration), bad ``seeds``, an unknown backend, an ``out_dir`` holding
        another sweep.
    ConnectionError
        When the dask scheduler address cannot be reached.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> base = dict(truth=cs.Gaussian(mean=0.0, var=1.0), fitter=cs.GaussianFit(),
    ...             generations=20, chains=50, metrics=["variance"])
    >>> table = cs.sweep(base, {"n_samples": [5, 50]}, seeds=[0, 1],
    ...                  backend="threading", n_jobs=1, progress=False)
    >>> table[["n_samples", "seed"]].values.tolist()
    [[5, 0], [5, 1], [50, 0], [50, 1]]
    >>> bool(table.final_variance_ratio[0] < table.final_variance_ratio[2])
    True
    """
    if not isinstance(progress, bool):
        raise TypeError("progress must be True or False")
    if not isinstance(curves, bool):
        raise TypeError("curves must be True or False")
    threshold = check_real("threshold", threshold, low=0.0, low_open=True)
    quantiles = _check_quantiles(quantiles) if curves else None
    backend = _check_backend(backend, n_jobs, client)
    plan = _Plan.build(base, grid, seeds, threshold)
    plan.validate_configurations()
    if out_dir is not None:
        plan.check_stable_keys()
    connection = _dask_client(client) if backend == "dask" else None
    try:
        store = _Store(out_dir, plan) if out_dir is not None else None
        if store is not None:
            store.open()
        records: dict[int, dict] = {}
        todo = []
        for job in plan.jobs():
            cached = store.load(job, quantiles) if store is not None else None
            if cached is None:
                todo.append(job)
            else:
                records[job.index] = cached
        reused = len(records)

        bar = tqdm(total=plan.n_jobs, initial=reused, desc="sweep", unit="run",
                   disable=not progress)
        try:
            if connection is not None:
                results = _run_dask(todo, connection[0], threshold, quantiles)
            else:
                results = _run_joblib(todo, backend, n_jobs, threshold, quantiles)
            for index, record in results:
                if store is not None:
                    store.write(plan.job(index), record)
                records[index] = record
                bar.update(1)
        finally:
            bar.close()
    finally:
        if connection is not None and connection[1]:
            connection[0].close()

    table = plan.table(records)
    table.attrs.update(computed=len(todo), reused=reused, threshold=threshold)
    if not curves:
        return table
    return table, plan.curve_table(records)
