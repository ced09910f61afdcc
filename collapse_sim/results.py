"""The result of a simulation: metric arrays, the configuration, tables, figures and files.

The arrays stay plain NumPy (``Simulation.metrics``, ``Simulation.models``): the engine
writes them row by row and :meth:`Simulation.save` stores them as they are. Labelled views
are made on demand: :meth:`Simulation.to_frame` (pandas), :meth:`Simulation.to_xarray`
(xarray, imported only then), :meth:`Simulation.quantiles`; figures come from
:mod:`collapse_sim.plotting`, imported only by :meth:`Simulation.plot` and :func:`compare`.
"""

from __future__ import annotations

import html
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._io import atomic_write, read_npz

_FORMAT = "collapse_sim.Simulation/1"


class Simulation:
    """Metrics of every chain at every generation, with the configuration that made them.

    Attributes
    ----------
    metrics : dict of str to ndarray
        ``(generations + 1, chains)`` per metric; row 0 is the truth.
    config : dict
        JSON-serialisable description of the run (truth, fitter, policy, sizes,
        seed entropy, metric names): enough to repeat it.
    models : dict of str to ndarray or None
        Recorded parameters (``mean`` ``(G+1, chains, d)``, ``cov``
        ``(G+1, chains, d, d)``) when ``simulate(record_models=True)``.
    fitted : list or None
        The model batches themselves, generation by generation (entry 0 is the truth),
        for families whose models are kept whole (n-gram language models: sparse
        tables no dense array holds), up to
        :data:`~collapse_sim.engine.KEPT_MODELS_MAX_BYTES` (later entries are ``None``).
        Kept in memory only: :meth:`save` does not store them.
    """

    def __init__(self, metrics: dict[str, np.ndarray], config: dict,
                 models: dict[str, np.ndarray] | None = None, fitted: list | None = None):
        self.metrics = dict(metrics)
        self.config = dict(config)
        self.models = None if models is None else dict(models)
        self.fitted = None if fitted is None else list(fitted)

    def text(self, generation: int, chain: int = 0, prompt: str = "", tokens: int = 60,
             seed=0) -> str:
        """What chain ``chain``'s model of generation ``generation`` writes after ``prompt``.

        For language-model runs (:class:`~collapse_sim.NGramTruth`); generation 0 is the
        truth's reference model. ``seed`` fixes the draw (the same seed, the same text).
        See :meth:`collapse_sim.families.ngram.NGramModel.text`.

        Examples
        --------
        >>> import collapse_sim as cs
        >>> corpus = cs.text.Corpus.from_string("the dog ran home .\\n" * 40)
        >>> truth = cs.NGramTruth(corpus, order=2, block_size=8)
        >>> sim = cs.simulate(truth, cs.NGramFit(), n_samples=80, generations=2, chains=2,
        ...                   seed=0, metrics=["vocabulary"])
        >>> sim.text(generation=2, chain=1, prompt="the", tokens=4)
        'the dog ran home.'
        """
        if self.fitted is None:
            raise ValueError("this result keeps no models to write with (only language-model "
                             "runs do, and a loaded result has none: re-run simulate)")
        from ._validation import check_int

        generation = check_int("generation", generation, minimum=0, maximum=self.generations)
        chain = check_int("chain", chain, minimum=0, maximum=self.chains - 1)
        model = self.fitted[generation]
        if model is None:
            from .engine import KEPT_MODELS_MAX_BYTES

            kept = max(g for g, m in enumerate(self.fitted) if m is not None)
            raise ValueError(f"the models of generation {generation} were not kept: those of "
                             f"generations 1..{kept} filled KEPT_MODELS_MAX_BYTES="
                             f"{KEPT_MODELS_MAX_BYTES} (collapse_sim.engine); run fewer chains "
                             "or generations, or raise it")
        if not hasattr(model, "text"):
            raise ValueError(f"{type(model).__name__} models do not write text")
        return model.text(chain=0 if model.batch_size == 1 else chain, prompt=prompt,
                          tokens=tokens, seed=seed)

    @property
    def generations(self) -> int:
        """Number of fitted generations ``G`` (rows are ``0..G``)."""
        return next(iter(self.metrics.values())).shape[0] - 1

    @property
    def chains(self) -> int:
        """Number of chains."""
        return next(iter(self.metrics.values())).shape[1]

    def __repr__(self) -> str:
        return (f"Simulation(generations={self.generations}, chains={self.chains}, "
                f"metrics={list(self.metrics)})")

    def _repr_html_(self) -> str:
        """Jupyter's view: the run in one line, its sizes, and the median [10%, 90%] of
        every metric at about four generations (0, 1, about sqrt(G) and G)."""
        config = self.config
        parts = [_describe(config.get(key)) for key in ("truth", "fitter", "policy")]
        if "generation" in config:
            parts.append("generation stage " + _describe(config["generation"]))
        head = ", ".join(p for p in parts if p)
        sizes = [f"{self.generations} generations", f"{self.chains} chains"]
        if "n_samples" in config:
            sizes.insert(0, f"n_samples={config['n_samples']}")
        seed = config.get("seed")
        if isinstance(seed, dict) and "entropy" in seed:
            sizes.append(f"seed {seed['entropy']}")
        if self.models:
            sizes.append("recorded models: " + ", ".join(
                f"{k} {tuple(v.shape[2:])}" for k, v in self.models.items()))
        gens = sorted({0, 1, round(self.generations ** 0.5), self.generations}
                      & set(range(self.generations + 1)))
        rows = []
        for name, arr in self.metrics.items():
            q = _quantiles(arr[gens], (0.1, 0.5, 0.9))
            cells = "".join(f"<td>{_fmt(q[1, i])} [{_fmt(q[0, i])}, {_fmt(q[2, i])}]</td>"
                            for i in range(len(gens)))
            rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
        header = "".join(f"<th>t = {g}</th>" for g in gens)
        full = html.escape(json.dumps(config, default=str))
        return (
            "<div class='collapse-sim-simulation'>"
            f"<p><b>Simulation</b>: {html.escape(head)}<br>{html.escape(', '.join(sizes))}</p>"
            "<table><caption style='caption-side: bottom; text-align: left'>median "
            f"[10%, 90%] across {self.chains} chains, at generation t</caption>"
            f"<thead><tr><th>metric</th>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            "<details><summary>configuration</summary>"
            f"<pre style='white-space: pre-wrap'>{full}</pre></details></div>"
        )

    def quantiles(self, metric: str, q: Sequence[float] = (0.1, 0.5, 0.9),
                  generations: Sequence[int] | None = None) -> pd.DataFrame:
        """Quantiles of one metric across chains, generation by generation.

        Parameters
        ----------
        metric : str
            A key of :attr:`metrics`.
        q : sequence of float
            Quantile levels in [0, 1] (linear interpolation between order statistics,
            as :func:`numpy.quantile`).
        generations : sequence of int, optional
            Rows to report; default: every generation ``0..G``.

        Returns
        -------
        DataFrame
            Index ``generation``; one column per level, named as in :meth:`summary`
            (``q10``, ``q50``, ``q90`` …). NaN entries (chains without a value) are left
            out; ``inf`` counts as larger than every number, so a median over chains
            most of which are infinite is ``inf``; a generation where no chain has a value
            gives NaN.

        Examples
        --------
        >>> import collapse_sim as cs
        >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=20,
        ...                   generations=3, chains=100, seed=0, metrics="variance")
        >>> sim.quantiles("variance", q=[0.5]).round(2)  # doctest: +NORMALIZE_WHITESPACE
                     q50
        generation
        0           1.00
        1           0.97
        2           0.85
        3           0.78
        """
        arr = self._metric(metric)
        levels, columns = _quantile_columns(q)
        gens = self._generations(generations, default=range(self.generations + 1))
        values = _quantiles(arr[gens], levels).T
        index = pd.Index(gens, name="generation")
        return pd.DataFrame(values, index=index, columns=columns)

    def to_xarray(self):
        """The metrics and recorded models as an :class:`xarray.Dataset`.

        Each metric is a variable of dimensions ``(generation, chain)``; each recorded
        model array (``record_models=True``) a variable ``model_<name>`` of dimensions
        ``(generation, chain, ...)`` named by the model family's ``record_dims``
        (``dim``, ``component``, ``category`` …). Coordinates ``generation`` and ``chain``
        are ``0..G`` and ``0..chains-1``. ``attrs["config"]`` is :attr:`config` as a JSON
        string (``json.loads`` gives it back); ``attrs`` also hold the truth, fitter and
        policy type names and the sizes, for display. The variables share memory with
        :attr:`metrics` and :attr:`models` (no copy is made).

        Returns
        -------
        xarray.Dataset

        Examples
        --------
        >>> import collapse_sim as cs
        >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=20,
        ...                   generations=3, chains=100, seed=0, metrics=("variance", "w2"))
        >>> ds = sim.to_xarray()
        >>> dict(ds.sizes), list(ds.data_vars)
        ({'generation': 4, 'chain': 100}, ['variance', 'w2'])
        >>> float(ds["variance"].median("chain").sel(generation=3).round(2))
        0.78
        """
        import xarray as xr

        coords = {"generation": np.arange(self.generations + 1), "chain": np.arange(self.chains)}
        data = {name: (("generation", "chain"), arr, {"kind": "metric"})
                for name, arr in self.metrics.items()}
        sizes = {"generation": self.generations + 1, "chain": self.chains}
        declared = _record_dims(self.config)
        for name, arr in (self.models or {}).items():
            dims = []
            for i, dim in enumerate(_model_dims(name, arr, declared)):
                size = arr.shape[2 + i]
                if sizes.setdefault(dim, size) != size or dim in dims:
                    dim = f"{name}_{dim}"  # another array uses this name with another size
                    sizes.setdefault(dim, size)
                dims.append(dim)
            data[f"model_{name}"] = (("generation", "chain", *dims), arr, {"kind": "model"})
        attrs = {"config": json.dumps(self.config, default=str)}
        for key in ("truth", "fitter", "policy", "generation"):
            value = self.config.get(key)
            if isinstance(value, dict) and "type" in value:
                attrs[key] = str(value["type"])
        for key in ("n_samples", "generations", "chains", "sampling"):
            value = self.config.get(key)
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                attrs[key] = value
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def plot(self, metric: str | None = None, ax=None, *, theory: bool = True, **kwargs):
        """Median and 10–90% band of ``metric`` against generation, theory overlaid.

        ``metric`` defaults to ``"variance"`` when the run has it, else to its first
        metric. The y axis is logarithmic when the metric collapses towards 0 or spans
        decades (the rule is in :func:`collapse_sim.plotting.plot_simulation`, which
        draws the figure and takes the other keyword arguments); ``theory=True`` adds
        the exact theory where one is registered for this configuration
        (:func:`collapse_sim.theory.register_overlay`).

        Returns
        -------
        matplotlib Axes
        """
        from .plotting.simulation import plot_simulation

        if metric is None:
            metric = "variance" if "variance" in self.metrics else next(iter(self.metrics))
        return plot_simulation(self, metric, ax=ax, theory=theory, **kwargs)

    def _metric(self, metric) -> np.ndarray:
        if not isinstance(metric, str):
            raise TypeError(f"metric must be a str, one of {list(self.metrics)}; "
                            f"got {type(metric).__name__}")
        if metric not in self.metrics:
            raise ValueError(f"metric must be one of {list(self.metrics)} (the metrics this "
                             f"run computed), got {metric!r}")
        return self.metrics[metric]

    def _generations(self, generations, default) -> list[int]:
        """Validated generation rows (``default`` when ``None``)."""
        if generations is None:
            return list(default)
        if isinstance(generations, str | bytes) or not isinstance(
                generations, Sequence | np.ndarray):
            raise TypeError(f"generations must be a sequence of ints, got {generations!r}")
        gens = []
        for g in generations:
            if isinstance(g, bool | np.bool_) or not isinstance(g, int | np.integer):
                raise TypeError(f"generations must be a sequence of ints, got {g!r}")
            if not 0 <= g <= self.generations:
                raise ValueError(f"generations must lie in [0, {self.generations}], got {g}")
            gens.append(int(g))
        return gens

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per ``(generation, chain)``, one column per metric."""
        g, c = self.generations + 1, self.chains
        data = {"generation": np.repeat(np.arange(g), c), "chain": np.tile(np.arange(c), g)}
        data.update({name: arr.ravel() for name, arr in self.metrics.items()})
        return pd.DataFrame(data)

    def summary(self, generations: Sequence[int] | None = None,
                quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
        """Mean and quantiles of every metric across chains at selected generations.

        Parameters
        ----------
        generations : sequence of int, optional
            Rows to report; default: 0, 1 and about five log-spaced generations up to ``G``.
        quantiles : sequence of float
            Quantile levels in [0, 1].

        Returns
        -------
        DataFrame
            Index ``(metric, generation)``; columns ``mean`` and ``q10``, ``q50`` …
            (``inf`` values count as +inf in quantiles and make the mean inf).
        """
        levels, columns = _quantile_columns(quantiles)
        if isinstance(generations, str | bytes):
            raise TypeError(f"generations must be a sequence of ints, got {generations!r}")
        if generations is None:
            generations = default_report_generations(self.generations)
        gens = [int(g) for g in generations]
        for g in gens:
            if not 0 <= g <= self.generations:
                raise ValueError(f"generations must lie in [0, {self.generations}], got {g}")
        rows = []
        for name, arr in self.metrics.items():
            quantiles = _quantiles(arr[gens], levels)
            for i, g in enumerate(gens):
                row = {"metric": name, "generation": g, "mean": float(np.mean(arr[g]))}
                for j, column in enumerate(columns):
                    row[column] = float(quantiles[j, i])
                rows.append(row)
        return pd.DataFrame(rows).set_index(["metric", "generation"])

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (``.npz``), atomically.

        Arrays go into a compressed npz, the configuration into a JSON string
        inside it. The file is written to a temporary name in the same folder,
        flushed to disk and renamed over ``path``, so a crash mid-save leaves any
        previous file intact.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(
                ".npz")
        arrays = {f"metric__{k}": v for k, v in self.metrics.items()}
        if self.models is not None:
            arrays.update({f"model__{k}": v for k, v in self.models.items()})
        meta = json.dumps({"format": _FORMAT, "config": self.config})
        arrays["__meta__"] = np.array(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Simulation:
        """Read a file written by :meth:`save`.

        Raises
        ------
        ValueError
            Naming the file and what is wrong: not an npz (empty, truncated, damaged),
            not a Simulation file, another format version, or arrays of inconsistent
            shapes. Array sizes are checked against the file before they are read.
        """
        what = "collapse_sim Simulation file"
        meta, arrays = read_npz(Path(path), what)
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unsupported format {meta.get('format')!r}")
        config = meta.get("config")
        if not isinstance(config, dict):
            raise ValueError(f"{path} is not a {what}: its config is not an object")
        metrics = {k[len("metric__"):]: v for k, v in arrays.items() if k.startswith("metric__")}
        models = {k[len("model__"):]: v for k, v in arrays.items() if k.startswith("model__")}
        shapes = {v.shape for v in metrics.values()}
        if not metrics or len(shapes) != 1 or len(next(iter(shapes))) != 2 or any(
                v.dtype.kind != "f" for v in metrics.values()):
            raise ValueError(f"{path} is not a {what}: its metrics must be float "
                             f"arrays of one shape (generations + 1, chains), got "
                             f"{ {k: (v.shape, str(v.dtype)) for k, v in metrics.items()} }")
        rows = next(iter(shapes))
        for name, value in models.items():
            if value.shape[:2] != rows:
                raise ValueError(f"{path} is not a {what}: recorded model {name!r} "
                                 f"has shape {value.shape}, metrics {rows}")
        return cls(metrics=metrics, config=config, models=models or None)


def default_report_generations(generations: int) -> list[int]:
    """0, 1 and roughly log-spaced generations up to ``generations`` (inclusive)."""
    if generations <= 1:
        return list(range(generations + 1))
    pts = np.unique(np.round(np.geomspace(1, generations, 6)).astype(int))
    return sorted({0, *pts.tolist()})


def _quantile_columns(quantiles) -> tuple[list[float], list[str]]:
    """Validated quantile levels and their column names: ``q10`` for 0.1, ``q0.1`` for 0.001.

    Two levels never share a name (they did: 0.001 and 0.002 were both ``q00``).
    """
    if isinstance(quantiles, str | bytes):
        raise TypeError(f"quantiles must be a sequence of numbers, got {quantiles!r}")
    levels = [float(q) for q in quantiles]
    if not levels or any(not 0.0 <= q <= 1.0 for q in levels):
        raise ValueError(f"quantiles must be numbers in [0, 1], got {list(quantiles)}")
    columns = []
    for q in levels:
        pct = 100.0 * q
        columns.append(f"q{round(pct):02d}" if abs(pct - round(pct)) < 1e-9 else f"q{pct:g}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"quantiles must be distinct, got {levels}")
    return levels, columns


def _quantiles(arr: np.ndarray, levels) -> np.ndarray:
    """``(len(levels), rows)`` quantiles of each row of ``arr`` ``(rows, chains)``.

    Linear interpolation between order statistics, as :func:`numpy.quantile`, with NaN
    left out (a row of NaN gives NaN) and ``±inf`` ordered like numbers: a quantile next
    to an infinite order statistic is infinite (``numpy.quantile`` gives NaN there, from
    ``inf - inf``), and NaN only between ``-inf`` and ``+inf``.
    """
    arr = np.asarray(arr, dtype=np.float64)
    levels = list(levels)
    big = np.finfo(np.float64).max
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        out = np.nanquantile(np.clip(arr, -big, big), levels, axis=1)
        if np.isinf(arr).any():
            below = np.nanquantile(arr, levels, axis=1, method="lower")
            above = np.nanquantile(arr, levels, axis=1, method="higher")
            out[np.isposinf(above)] = np.inf
            out[np.isneginf(below)] = -np.inf
            out[np.isposinf(above) & np.isneginf(below)] = np.nan
    return out.reshape(len(levels), arr.shape[0])


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _describe(part) -> str:
    """``KeepReal(fraction=0.1)`` from ``{"type": "KeepReal", "fraction": 0.1}``; long
    values (arrays, nested descriptions) are left out."""
    if not isinstance(part, Mapping):
        return "" if part is None else str(part)
    fields = []
    for key, value in part.items():
        if key == "type":
            continue
        if isinstance(value, Mapping):
            value = value.get("type", "…")
        elif isinstance(value, list | tuple):
            flat = np.asarray(value, dtype=object).ravel()
            if flat.size > 4:
                continue
            value = value[0] if len(value) == 1 else value
            while isinstance(value, list) and len(value) == 1:
                value = value[0]
        fields.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return f"{part.get('type', '?')}({', '.join(fields)})"


def _record_dims(config: dict) -> dict[str, tuple[str, ...]]:
    """The ``record_dims`` of the model type of the fitter named in ``config`` ({} if the
    fitter class is not defined in this session, or two classes share its name)."""
    from .protocol import fitter_classes

    name = (config.get("fitter") or {}).get("type")
    found = {id(getattr(cls, "model_type", None)): cls.model_type
             for cls in fitter_classes() if cls.__name__ == name}
    if len(found) != 1:
        return {}
    return dict(getattr(next(iter(found.values())), "record_dims", {}) or {})


def _model_dims(name: str, arr: np.ndarray, declared: dict) -> tuple[str, ...]:
    """Names of the dimensions of a recorded array after ``(generation, chain)``."""
    dims = tuple(declared.get(name, ()))
    if len(dims) != arr.ndim - 2:
        dims = tuple(f"{name}_dim_{i}" for i in range(arr.ndim - 2))
    return dims


class Comparison(NamedTuple):
    """What :func:`compare` returns: the figure's Axes and the quantile table.

    Unpacks as ``ax, table = cs.compare(...)``. In Jupyter it shows the table (the
    figure shows itself).
    """

    #: The matplotlib Axes drawn on.
    ax: Any
    #: Index ``(run, generation)``, columns ``q10``, ``q50``, ``q90`` … (see :func:`compare`).
    table: pd.DataFrame

    def _repr_html_(self) -> str:
        return self.table.to_html()


def _as_runs(runs) -> dict[str, Simulation]:
    """``{label: Simulation}`` from a dict, or from a list labelled by each run's policy.

    A list's labels describe each run's policy (``KeepReal(fraction=0.1)``); where two
    runs share a policy their fitters are added, then their position.

    Raises
    ------
    TypeError
        If ``runs`` is neither, or holds something other than a :class:`Simulation`.
    ValueError
        If it is empty.
    """
    if isinstance(runs, Simulation):
        raise TypeError("runs must be a dict {label: Simulation} or a list of Simulations "
                        "(several runs to compare), got one Simulation: use sim.plot()")
    if isinstance(runs, Mapping):
        out = {str(k): v for k, v in runs.items()}
    elif isinstance(runs, Sequence) and not isinstance(runs, str | bytes):
        out = _labels(list(runs))
    else:
        raise TypeError("runs must be a dict {label: Simulation} or a list of Simulations, "
                        f"got {type(runs).__name__}")
    if not out:
        raise ValueError("runs must hold at least one Simulation, got none")
    for label, sim in out.items():
        if not isinstance(sim, Simulation):
            raise TypeError(f"runs[{label!r}] must be a Simulation, got {type(sim).__name__}")
    return out


def _labels(sims: list) -> dict[str, Simulation]:
    for i, sim in enumerate(sims):
        if not isinstance(sim, Simulation):
            raise TypeError(f"runs[{i}] must be a Simulation, got {type(sim).__name__}")
    labels = [_describe(s.config.get("policy")) or f"run {i}" for i, s in enumerate(sims)]
    if len(set(labels)) < len(labels):
        labels = [f"{lab}, {_describe(s.config.get('fitter'))}" for lab, s in zip(
            labels, sims, strict=True)]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} #{i}" for i, lab in enumerate(labels)]
    return dict(zip(labels, sims, strict=True))


def _runs_quantiles(runs, metric: str, q: Sequence[float] = (0.1, 0.5, 0.9),
                   generations: Sequence[int] | None = None) -> pd.DataFrame:
    """:meth:`Simulation.quantiles` of ``metric`` for several runs, in one table.

    Parameters
    ----------
    runs : dict of str to Simulation, or list of Simulation
        See :func:`compare`. Runs may differ in their number of generations.
    metric : str
        A metric every run computed.
    q : sequence of float
        Quantile levels in [0, 1].
    generations : sequence of int, optional
        Rows; default: :func:`default_report_generations` of the longest run (a
        shorter run shows the rows it reaches, and its last).

    Returns
    -------
    DataFrame
        Index ``(run, generation)``, columns ``q10``, ``q50`` … .

    Raises
    ------
    ValueError
        Naming the runs without ``metric`` and the metrics all runs share.
    """
    runs = _as_runs(runs)
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a str, got {type(metric).__name__}")
    missing = [label for label, sim in runs.items() if metric not in sim.metrics]
    if missing:
        shared = set.intersection(*(set(sim.metrics) for sim in runs.values()))
        order = [m for m in next(iter(runs.values())).metrics if m in shared]
        raise ValueError(f"metric {metric!r} is missing from the runs {missing}; the metrics "
                         f"all runs computed are {order}")
    longest = max(sim.generations for sim in runs.values())
    default = generations is None
    if default:
        generations = default_report_generations(longest)
    else:  # checked against the longest run; a shorter run reports the rows it has
        generations = max(runs.values(), key=lambda s: s.generations)._generations(
            generations, ())
    frames = []
    for label, sim in runs.items():
        gens = [g for g in generations if g <= sim.generations]
        if default and gens[-1] != sim.generations:  # a shorter run: its last row too
            gens.append(sim.generations)
        frame = sim.quantiles(metric, q=q, generations=gens)
        frame.index = pd.MultiIndex.from_arrays([[label] * len(gens), frame.index],
                                                names=["run", "generation"])
        frames.append(frame)
    return pd.concat(frames)


def compare(runs, metric: str = "variance", *, ax=None,
            quantiles: Sequence[float] = (0.1, 0.5, 0.9),
            generations: Sequence[int] | None = None, **kwargs) -> Comparison:
    """Several runs in one figure and one table: the policy-comparison view of your runs.

    Parameters
    ----------
    runs : dict of str to Simulation, or list of Simulation
        ``{"replace": sim_a, "keep 10%": sim_b}``. A list is labelled by each run's policy
        (``KeepReal(fraction=0.1)``); where two runs share a policy their fitters are
        added, then their position.
    metric : str
        A metric every run computed.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    quantiles : sequence of float
        Levels of the table.
    generations : sequence of int, optional
        Rows of the table (default: 0, 1 and about five log-spaced generations).
    **kwargs
        Passed to :func:`collapse_sim.plotting.comparison` (``logx``, ``logy``,
        ``theory``, ``legend``).

    Returns
    -------
    Comparison
        ``(ax, table)``: the Axes (median line and 10–90% band of every run) and the
        quantiles of ``metric`` across chains (:meth:`Simulation.quantiles`) of every run
        at ``generations``: index ``(run, generation)``, columns ``q10``, ``q50`` … . Runs
        may differ in length; a shorter run has the rows it reaches.

    Raises
    ------
    TypeError, ValueError
        Before drawing anything: ``runs`` is not a dict or list of Simulations, or a run
        lacks ``metric``.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> runs = [cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=20,
    ...                     generations=10, chains=100, seed=0, policy=policy,
    ...                     metrics="variance") for policy in (cs.Replace(), cs.KeepReal(0.5))]
    >>> ax, table = cs.compare(runs, metric="variance", generations=[10])
    >>> table.round(2)  # doctest: +NORMALIZE_WHITESPACE
                                        q10   q50   q90
    run                    generation
    Replace()              10          0.10  0.32  1.08
    KeepReal(fraction=0.5) 10          0.34  0.79  1.36
    """
    runs = _as_runs(runs)
    table = _runs_quantiles(runs, metric, q=quantiles, generations=generations)
    from .plotting.simulation import comparison

    return Comparison(comparison(runs, metric, ax=ax, **kwargs), table)
