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
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
import numbers
import os
import tomllib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ._io import atomic_write
from ._validation import check_int, check_real
from .engine import simulate
from .policies import Replace
from .results import Simulation

#: Version tag of the files and the manifest written to ``out_dir``.
FORMAT = "collapse_sim.sweep/1"
#: Execution backends accepted by :func:`sweep`.
BACKENDS = ("loky", "threading", "dask")
#: Seconds allowed to connect to a dask scheduler given by address.
DASK_CONNECT_TIMEOUT = 10.0
#: Default ``threshold`` of the ``collapse_generation`` summary.
DEFAULT_THRESHOLD = 0.1
#: Name of the file describing the sweep held in ``out_dir``.
MANIFEST = "manifest.json"

_SIGNATURE = inspect.signature(simulate)
_SET_BY_SWEEP = {
    "seed": "each run's seed comes from seeds=",
    "progress": "sweep shows its own progress bar (progress=)",
    "record_models": "a sweep keeps summaries, not every model",
}
#: ``simulate`` keyword arguments that ``base`` and ``grid`` may set.
PARAMETERS: tuple[str, ...] = tuple(p for p in _SIGNATURE.parameters if p not in _SET_BY_SWEEP)
_REQUIRED = tuple(p.name for p in _SIGNATURE.parameters.values()
                  if p.default is inspect.Parameter.empty)
_SPEC_SECTIONS = {"base", "grid", "sweep", "plot"}
_SPEC_OPTIONS = {"seeds", "backend", "n_jobs", "client", "threshold", "curves", "quantiles"}
_SPEC_PLOT = {"x", "y", "hue"}


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


# -- validation and expansion ----------------------------------------------------------------

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


def _check_quantiles(quantiles) -> tuple[float, ...]:
    if isinstance(quantiles, str) or not isinstance(quantiles, Sequence) or not quantiles:
        raise TypeError("quantiles must be a non-empty sequence of levels in [0, 1]")
    out = tuple(check_real("quantiles", q, low=0.0, high=1.0) for q in quantiles)
    names = [_quantile_name(q) for q in out]
    if len(set(names)) != len(names):
        raise ValueError(f"quantiles must be distinct percent levels, got {list(out)}")
    return out


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence | np.ndarray):
        raise TypeError(f"seeds must be a list of non-negative ints, got {type(seeds).__name__}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"seeds must be non-negative ints, got {s!r} "
                            f"({type(s).__name__})")
        if s < 0:
            raise ValueError(f"seeds must be non-negative ints, got {s}")
        out.append(int(s))
    if not out:
        raise ValueError("seeds is empty: give at least one seed, e.g. seeds=[0]")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds contains duplicates: {out}")
    return out


def _check_name(name, where: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{where} keys must be simulate() argument names, got {name!r}")
    if name in _SET_BY_SWEEP:
        raise ValueError(f"{where} cannot set {name!r}: {_SET_BY_SWEEP[name]}")
    if name not in PARAMETERS:
        raise ValueError(f"unknown {where} key {name!r}; simulate() accepts "
                         f"{', '.join(PARAMETERS)}")
    return name


@dataclass(frozen=True)
class _Job:
    index: int
    config: int
    seed: int
    kwargs: dict
    key: str


class _Plan:
    """The expanded grid: configurations, their labels and hashes, and the seeds."""

    def __init__(self, names, configs, labels, hashes, seeds, fingerprint, description,
                 stable):
        self.names = names
        self.configs = configs
        self.labels = labels
        self.hashes = hashes
        self.seeds = seeds
        self.fingerprint = fingerprint
        self.description = description
        self._stable = stable

    @classmethod
    def build(cls, base, grid, seeds, threshold) -> _Plan:
        if not isinstance(base, Mapping):
            raise TypeError(f"base must be a dict of simulate() arguments, got "
                            f"{type(base).__name__}")
        if not isinstance(grid, Mapping):
            raise TypeError(f"grid must be a dict mapping simulate() argument names to lists "
                            f"of values, got {type(grid).__name__}")
        for name in base:
            _check_name(name, "base")
        if not grid:
            raise ValueError("grid is empty: give at least one simulate() argument to vary, "
                             "e.g. grid={'n_samples': [10, 100]}")
        values = {}
        for name, vals in grid.items():
            _check_name(name, "grid")
            if isinstance(vals, str | bytes | Mapping) or not isinstance(
                    vals, Sequence | np.ndarray):
                raise TypeError(f"grid[{name!r}] must be a list of values, got "
                                f"{type(vals).__name__}")
            vals = list(vals)
            if not vals:
                raise ValueError(f"grid[{name!r}] is an empty list: give at least one value")
            canon = [_canonical_json(v) for v in vals]
            if len(set(canon)) != len(canon):
                raise ValueError(f"grid[{name!r}] contains duplicate values")
            values[name] = vals
        missing = [p for p in _REQUIRED if p not in base and p not in values]
        if missing:
            raise TypeError(f"simulate() needs {', '.join(missing)}: give "
                            f"{'it' if len(missing) == 1 else 'them'} in base or grid")
        seeds = _check_seeds(seeds)

        names = list(values)
        columns = {name: _label_columns(name, values[name]) for name in names}
        configs, labels, hashes = [], [], []
        stable = True
        for combo in itertools.product(*(range(len(values[n])) for n in names)):
            kwargs = dict(base)
            row = {}
            for name, i in zip(names, combo, strict=True):
                kwargs[name] = values[name][i]
                row.update(columns[name][i])
            bound = _SIGNATURE.bind_partial(**kwargs)
            bound.apply_defaults()
            normal = {k: v for k, v in bound.arguments.items() if k not in _SET_BY_SWEEP}
            text = _canonical_json(normal)
            stable = stable and " at 0x" not in text
            configs.append(kwargs)
            labels.append(row)
            hashes.append(hashlib.sha256(text.encode()).hexdigest()[:16])
        description = {
            "format": FORMAT,
            "base": json.loads(_canonical_json(dict(base))),
            "grid": json.loads(_canonical_json(values)),
            "seeds": seeds,
            "threshold": threshold,
        }
        fingerprint = hashlib.sha256(
            json.dumps(description, sort_keys=True).encode()).hexdigest()
        return cls(names, configs, labels, hashes, seeds, fingerprint, description, stable)

    @property
    def n_jobs(self) -> int:
        return len(self.configs) * len(self.seeds)

    def job(self, index: int) -> _Job:
        c, s = divmod(index, len(self.seeds))
        return _Job(index, c, self.seeds[s], self.configs[c], self.hashes[c])

    def jobs(self) -> Iterator[_Job]:
        return (self.job(i) for i in range(self.n_jobs))

    def validate_configurations(self) -> None:
        """What ``simulate`` would reject, for every configuration, before any run."""
        for c, kwargs in enumerate(self.configs):
            try:
                _dry_run(kwargs, self.seeds[0])
            except (TypeError, ValueError) as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in self.labels[c].items()
                                  if k in self.names)
                raise _with_message(exc, f"grid configuration {c} ({where}): {exc}") from exc

    def check_stable_keys(self) -> None:
        if not self._stable:
            raise TypeError("out_dir needs stable names for every configuration, but a value "
                            "in base or grid has only a memory-address repr (give it a "
                            "to_dict() method or use collapse_sim objects)")

    def table(self, records: dict[int, dict]) -> pd.DataFrame:
        rows = []
        for job in self.jobs():
            rows.append({"config": job.config, "key": job.key, **self.labels[job.config],
                         "seed": job.seed, **records[job.index]["summary"]})
        frame = pd.DataFrame(rows)
        frame.attrs["parameters"] = list(self.names)
        return frame

    def curve_table(self, records: dict[int, dict]) -> pd.DataFrame:
        parts = []
        for job in self.jobs():
            arrays = records[job.index]["curves"]
            size = len(next(iter(arrays.values())))
            head = {"config": job.config, "key": job.key, **self.labels[job.config],
                    "seed": job.seed}
            part = pd.DataFrame({"generation": np.arange(size), **arrays})
            for i, (k, v) in enumerate(head.items()):
                part.insert(i, k, v)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)


def _dry_run(kwargs: dict, seed: int) -> None:
    """Let ``simulate`` check every argument, at the cost of a 0-generation, 1-chain run."""
    generations = check_int("generations", kwargs["generations"], minimum=0)
    chains = check_int("chains", kwargs.get("chains", 1), minimum=1)
    simulate(**{**kwargs, "generations": 0, "chains": 1}, seed=seed, progress=False)
    # simulate's memory ceiling depends on chains and generations, which the dry run shrank
    policy, fitter, truth = kwargs.get("policy", Replace()), kwargs["fitter"], kwargs["truth"]
    uses_moments = bool(getattr(fitter, "uses_moments", False))
    kept = policy.kept_bytes(chains, kwargs["n_samples"], generations, truth.dim, uses_moments)
    limit = getattr(policy, "max_bytes", math.inf)
    if kept > limit:
        raise ValueError(f"{type(policy).__name__} would keep {kept / 2**30:.2f} GiB of "
                         f"training points, above its max_bytes={limit}")


def _with_message(exc: Exception, message: str) -> Exception:
    try:
        return type(exc)(message)
    except Exception:  # an exception class with a custom constructor
        return (TypeError if isinstance(exc, TypeError) else ValueError)(message)


# -- readable labels and stable keys -----------------------------------------------------------

def _scalar(value):
    """Numbers, strings, booleans and None as plain Python values, else None."""
    if value is None or isinstance(value, bool | str):
        return value, True
    if isinstance(value, np.bool_):
        return bool(value), True
    if isinstance(value, numbers.Integral):
        return int(value), True
    if isinstance(value, numbers.Real):
        return float(value), True
    return None, False


def _shown_fields(value) -> dict:
    """The dataclass fields a label shows: all of a small class's fields (but a resource
    limit like ``max_bytes`` only when set), only the non-default ones of a larger class."""
    fs = fields(value)
    shown = {}
    for f in fs:
        v = getattr(value, f.name)
        at_default = f.default is not MISSING and _same(v, f.default)
        if not (at_default and (len(fs) > 2 or f.name == "max_bytes")):
            shown[f.name] = v
    return shown


def _label(value) -> object:
    """A readable stand-in for a grid value: numbers stay numbers."""
    plain, ok = _scalar(value)
    if ok:
        return plain
    if is_dataclass(value) and not isinstance(value, type):
        args = ", ".join(f"{k}={v!r}" for k, v in _shown_fields(value).items())
        return f"{type(value).__name__}({args})"
    if isinstance(value, list | tuple):
        return ", ".join(str(_label(v)) for v in value)
    return repr(value)


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _label_columns(name: str, vals: list) -> list[dict]:
    """Per value: ``{name: label}`` plus ``{name_field: value}`` for varying dataclass fields."""
    labels = [_label(v) for v in vals]
    if not all(_scalar(v)[1] for v in vals):  # objects (maybe mixed with numbers): strings
        labels = [str(lab) for lab in labels]
    counts: dict = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    # distinct values with the same label (e.g. two 2-D Gaussians): number them
    labels = [f"{lab} #{i}" if counts[lab] > 1 else lab for i, lab in enumerate(labels)]
    rows = [{name: lab} for lab in labels]
    shown = [_shown_fields(v) if is_dataclass(v) and not isinstance(v, type) else {}
             for v in vals]
    for fname in dict.fromkeys(k for fs in shown for k in fs):
        column = [_scalar(fs[fname]) if fname in fs else (np.nan, True) for fs in shown]
        if not all(ok for _, ok in column):
            continue
        column = [v for v, _ in column]
        if len({repr(v) for v in column}) > 1:  # varies across the grid (absent counts)
            for row, v in zip(rows, column, strict=True):
                row[f"{name}_{fname}"] = v
    return rows


def _canonical(value):
    """A JSON-able description that is the same in every process and session."""
    plain, ok = _scalar(value)
    if ok:
        return plain
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return {"__class__": type(value).__name__, **_canonical(value.to_dict())}
    if is_dataclass(value) and not isinstance(value, type):
        return {"__class__": type(value).__name__,
                **{f.name: _canonical(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _canonical(value.tolist())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"


def _canonical_json(value) -> str:
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))


# -- one run, in the worker ----------------------------------------------------------------------

def _quantile_name(q: float) -> str:
    return f"q{round(100 * q):02d}"


def summarize(sim: Simulation, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    r"""The per-run numbers of a sweep's table, from one :class:`~collapse_sim.Simulation`.

    See :func:`sweep` (Returns) for their definitions.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> from collapse_sim.sweep import summarize
    >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=5,
    ...                   generations=40, chains=20, metrics=["variance"], seed=0)
    >>> sorted(summarize(sim))
    ['collapse_generation', 'final_variance_mean', 'final_variance_median', 'final_variance_ratio']
    """
    out: dict[str, float] = {}
    if "variance" in sim.metrics:
        var = sim.metrics["variance"]
        ratio = np.median(var[1:], axis=1) / var[0, 0]
        below = np.flatnonzero(ratio < threshold)
        out["collapse_generation"] = float(below[0] + 1) if below.size else math.nan
        out["final_variance_ratio"] = float(np.median(var[-1]) / var[0, 0])
    for name, arr in sim.metrics.items():
        out[f"final_{name}_median"] = float(np.median(arr[-1]))
        out[f"final_{name}_mean"] = float(np.mean(arr[-1]))
    return out


def _curves(sim: Simulation, quantiles: tuple[float, ...]) -> dict[str, np.ndarray]:
    out = {}
    for name, arr in sim.metrics.items():
        out[f"{name}_mean"] = arr.mean(axis=1)
        qs = np.quantile(arr, quantiles, axis=1)
        for q, row in zip(quantiles, qs, strict=True):
            out[f"{name}_{_quantile_name(q)}"] = row
    return out


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


# -- backends ---------------------------------------------------------------------------------

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


# -- resumable storage --------------------------------------------------------------------------

class _Store:
    """``out_dir``: a manifest plus one atomically written file per finished run."""

    def __init__(self, out_dir, plan: _Plan):
        self.root = Path(out_dir)
        self.plan = plan

    def open(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"out_dir {str(self.root)!r} exists and is not a folder")
        manifest = self.root / MANIFEST
        description = {**self.plan.description, "fingerprint": self.plan.fingerprint}
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"{manifest} is not a sweep manifest: {exc}") from exc
            if old.get("fingerprint") != self.plan.fingerprint:
                differ = [k for k in ("format", "base", "grid", "seeds", "threshold")
                          if old.get(k) != description[k]]
                raise ValueError(
                    f"out_dir {str(self.root)!r} holds a different sweep (its "
                    f"{', '.join(differ) or 'fingerprint'} differ): write to another folder, "
                    "or delete this one to start afresh")
            return
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(manifest, lambda fh: fh.write(
            json.dumps(description, indent=1, sort_keys=True).encode()))

    def path(self, job: _Job) -> Path:
        return self.root / f"{job.key}-seed{job.seed}.npz"

    def load(self, job: _Job, quantiles) -> dict | None:
        path = self.path(job)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["__meta__"]))
                curves = {k[len("curve__"):]: data[k] for k in data.files
                          if k.startswith("curve__")}
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"{path} is unreadable ({exc}); running it again", stacklevel=3)
            return None
        if (meta.get("format") != FORMAT or meta.get("key") != job.key
                or meta.get("seed") != job.seed):
            warnings.warn(f"{path} does not hold this run; running it again", stacklevel=3)
            return None
        record = {"summary": meta["summary"]}
        if quantiles is not None:
            if meta.get("quantiles") != list(quantiles):
                return None  # curves missing or at other levels: run again
            record["curves"] = curves
        return record

    def write(self, job: _Job, record: dict) -> None:
        meta = {"format": FORMAT, "key": job.key, "seed": job.seed,
                "config": json.loads(_canonical_json(job.kwargs)),
                "summary": record["summary"], "quantiles": record.get("quantiles")}
        arrays = {f"curve__{k}": v for k, v in record.get("curves", {}).items()}
        arrays["__meta__"] = np.array(json.dumps(meta))
        atomic_write(self.path(job), lambda fh: np.savez(fh, **arrays))


# -- TOML specs -------------------------------------------------------------------------------

def read_spec(path: str | os.PathLike) -> dict:
    """Read a sweep described in TOML (see the how-to page on sweeps for the format).

    Sections: ``[base]`` and ``[grid]`` (``simulate`` arguments; objects are inline
    tables naming a public ``collapse_sim`` class, e.g. ``{ type = "KeepReal",
    fraction = 0.1 }``), ``[sweep]`` (``seeds`` and the other :func:`sweep` options)
    and ``[plot]`` (``x``, ``y``, ``hue`` of the command line's figure).

    Returns
    -------
    dict
        ``base``, ``grid``, ``options`` (keyword arguments of :func:`sweep`, with
        ``seeds``) and ``plot``; ``sweep(spec["base"], spec["grid"], **spec["options"])``
        runs it.
    """
    path = Path(path)
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    unknown = set(data) - _SPEC_SECTIONS
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; a sweep spec has "
                         f"{sorted(_SPEC_SECTIONS)}")
    base = {k: _from_spec(v, f"base.{k}") for k, v in data.get("base", {}).items()}
    grid = {}
    for key, vals in data.get("grid", {}).items():
        if not isinstance(vals, list):
            raise TypeError(f"{path}: grid.{key} must be an array of values, got "
                            f"{type(vals).__name__}")
        grid[key] = [_from_spec(v, f"grid.{key}[{i}]") for i, v in enumerate(vals)]
    options = dict(data.get("sweep", {}))
    unknown = set(options) - _SPEC_OPTIONS
    if unknown:
        raise ValueError(f"{path}: unknown [sweep] option(s) {sorted(unknown)}; accepted: "
                         f"{sorted(_SPEC_OPTIONS)}")
    if "seeds" not in options:
        raise ValueError(f"{path}: [sweep] must give seeds, e.g. seeds = [0, 1]")
    plot = dict(data.get("plot", {}))
    unknown = set(plot) - _SPEC_PLOT
    if unknown:
        raise ValueError(f"{path}: unknown [plot] option(s) {sorted(unknown)}; accepted: "
                         f"{sorted(_SPEC_PLOT)}")
    return {"base": base, "grid": grid, "options": options, "plot": plot}


def _spec_types() -> dict[str, type]:
    import collapse_sim

    return {name: getattr(collapse_sim, name) for name in collapse_sim.__all__
            if isinstance(getattr(collapse_sim, name), type)
            and name not in ("Simulation", "SklearnFitter")}


def _from_spec(value, where: str):
    if not isinstance(value, dict):
        return value
    if "type" not in value:
        raise ValueError(f"{where}: an inline table must name its class, e.g. "
                         '{ type = "KeepReal", fraction = 0.1 }')
    types = _spec_types()
    kind = value["type"]
    if kind not in types:
        raise ValueError(f"{where}: unknown type {kind!r}; one of {', '.join(sorted(types))}")
    kwargs = {k: v for k, v in value.items() if k != "type"}
    try:
        return types[kind](**kwargs)
    except (TypeError, ValueError) as exc:
        raise _with_message(exc, f"{where}: {exc}") from exc
