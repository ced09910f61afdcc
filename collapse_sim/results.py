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

from ._io import atomic_write, read_npz, write_npz
from ._validation import check_int

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

    def to_frame(self, metrics: str | Sequence[str] | None = None,
                 generations: Sequence[int] | None = None, *, copy: bool = True
                 ) -> pd.DataFrame:
        """Long table: one row per ``(generation, chain)``, one column per metric.

        Parameters
        ----------
        metrics : str or sequence of str, optional
            The metric columns (default: all).
        generations : sequence of int, optional
            The generations (default: ``0..G``).
        copy : bool
            ``False``: the metric columns of the full table share memory with
            :attr:`metrics` instead of copying them (they are read-only: an edit of the
            frame in place raises ``ValueError: assignment destination is read-only``).

        Returns
        -------
        DataFrame
            ``len(generations) * chains`` rows, ordered by generation then chain; columns
            ``generation`` and ``chain`` (int32), then the metrics. Size:
            ``rows * (8 + 8 * n_metrics)`` bytes (``rows * 8`` with ``copy=False`` and all
            generations), e.g. 5.2 GiB for 1001 rows x 100,000 chains x 6 metrics: a
            subset keeps it small.

        Examples
        --------
        >>> import collapse_sim as cs
        >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=20,
        ...                   generations=3, chains=100, seed=0, metrics=("variance", "w2"))
        >>> sim.to_frame("w2", generations=[0, 3]).shape
        (200, 3)
        """
        names = self._metric_names("metrics", metrics)
        gens = None if generations is None else self._generations(generations, ())
        if not isinstance(copy, bool | np.bool_):
            raise TypeError(f"copy must be True or False, got {copy!r}")
        c = self.chains
        rows = np.arange(self.generations + 1) if gens is None else np.asarray(gens)
        index = np.int32 if max(len(rows), c) < 2**31 else np.int64
        data = {"generation": np.repeat(rows.astype(index), c),
                "chain": np.tile(np.arange(c, dtype=index), len(rows))}
        for name in names:  # one column at a time: no copy but the frame's own
            arr = self.metrics[name] if gens is None else self.metrics[name][gens]
            column = arr.reshape(-1)
            if np.may_share_memory(column, self.metrics[name]):
                if copy:
                    column = column.copy()
                else:
                    column = column.view()
                    column.flags.writeable = False  # the frame must not write into the result
            data[name] = column
        return pd.DataFrame(data, copy=False)

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
    def save(self, path: str | os.PathLike, *, metrics: str | Sequence[str] | None = None,
             dtype=None, compress: bool = False, models: bool = True) -> Path:
        r"""Write to ``path`` (``.npz``), atomically.

        Each array becomes one entry of an npz file (``numpy.load`` reads it), the
        configuration a JSON string inside it. Arrays are streamed to the file about
        16 MiB at a time: saving allocates no copy of them, converted or not. The file is
        written to a temporary name in the same folder, flushed to disk (fsync) and
        renamed over ``path``, so a crash or an error mid-save leaves any previous file
        intact and no partial file.

        Parameters
        ----------
        path : str or path-like
            ``.npz`` is appended when missing.
        metrics : str or sequence of str, optional
            The metrics to store (default: all).
        dtype : {None, "float32", "float64"} or dict of str to dtype, optional
            Type of the stored metric arrays: ``None`` keeps each array's own; one type for
            all; or a dict giving some metrics a type (the others keep theirs). float32
            halves the file: round to nearest keeps a relative error at most
            :math:`2^{-24} \approx 6 \times 10^{-8}` (about 7 significant digits) for
            magnitudes in float32's normal range :math:`[1.18 \times 10^{-38},
            3.4 \times 10^{38}]`; ``inf``, ``-inf``, NaN and 0 stay as they are. A finite
            value outside that range (which float32 would turn into ``inf``, or into 0 or a
            number with fewer digits: a variance collapsed below 1e-38) raises a
            ValueError naming the metric (the previous file, if any, is kept): save that
            metric in float64. Recorded models keep their type.
        compress : bool
            Deflate the arrays (zip, as :func:`numpy.savez_compressed`). Off by default:
            metric values are nearly incompressible (a compressed file is about 95% of
            the plain one) and compressing runs at tens of MB/s, against the disk's
            speed uncompressed; only uncompressed files can be memory-mapped by
            :meth:`load`.
        models : bool
            Store the recorded models (``record_models=True``), if any.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        TypeError, ValueError
            Before writing: an unknown metric, a type other than float32 or float64.

        Examples
        --------
        >>> import collapse_sim as cs, numpy as np, tempfile, pathlib
        >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=20,
        ...                   generations=3, chains=100, seed=0, metrics=("variance", "w2"))
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = sim.save(pathlib.Path(folder.name) / "run.npz", metrics="variance",
        ...                 dtype="float32")
        >>> back = cs.Simulation.load(path)
        >>> list(back.metrics), back.metrics["variance"].dtype
        (['variance'], dtype('float32'))
        >>> bool(np.allclose(back.metrics["variance"], sim.metrics["variance"], rtol=2**-24,
        ...                  atol=0))
        True
        >>> folder.cleanup()
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(
                ".npz")
        names = self._metric_names("metrics", metrics)
        dtypes = _save_dtypes(dtype, names)
        if not isinstance(compress, bool | np.bool_):
            raise TypeError(f"compress must be True or False, got {compress!r}")
        if not isinstance(models, bool | np.bool_):
            raise TypeError(f"models must be True or False, got {models!r}")
        arrays = {"__meta__": np.array(json.dumps({"format": _FORMAT, "config": self.config}))}
        arrays.update({f"metric__{k}": self.metrics[k] for k in names})
        if models and self.models is not None:
            arrays.update({f"model__{k}": v for k, v in self.models.items()})
        dtypes = {f"metric__{k}": v for k, v in dtypes.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: write_npz(fh, arrays, compress=bool(compress),
                                                dtypes=dtypes, check=_check_conversion))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, metrics: str | Sequence[str] | None = None,
             mmap: bool = False, models: bool = True) -> Simulation:
        """Read a file written by :meth:`save` (by this version or an earlier one).

        Parameters
        ----------
        path : str or path-like
        metrics : str or sequence of str, optional
            The metrics to read (default: all the file holds); the others are not read.
        mmap : bool
            Memory-map the arrays instead of reading them: the arrays are read-only
            :class:`numpy.memmap` views of the file, whose pages the operating system
            reads when they are used and may drop again under memory pressure, so a
            result larger than memory can be opened and sliced. Only uncompressed
            arrays (``save(compress=False)``, the default) can be mapped; the others are
            read into memory, with a warning. Mapped arrays' checksums are not verified
            (reading them all is what mapping avoids). Saving over the same path while
            mapped is safe: :meth:`save` replaces the file, and the map keeps the old one.
        models : bool
            Read the recorded models, if the file has them.

        Returns
        -------
        Simulation
            Its metric arrays have the stored type (float32 when saved so).

        Raises
        ------
        ValueError
            Naming the file and what is wrong: not an npz (empty, truncated, damaged),
            not a Simulation file, another format version, arrays of inconsistent
            shapes, or a requested metric it does not hold. Array sizes are checked
            against the file before they are read.
        """
        what = "collapse_sim Simulation file"
        path = Path(path)
        wanted = None if metrics is None else cls._names(
            "metrics", metrics, None, f"the metrics {path} holds")
        if not isinstance(mmap, bool | np.bool_):
            raise TypeError(f"mmap must be True or False, got {mmap!r}")
        if not isinstance(models, bool | np.bool_):
            raise TypeError(f"models must be True or False, got {models!r}")

        def select(key: str) -> bool:
            if key.startswith("metric__"):
                return wanted is None or key[len("metric__"):] in wanted
            return bool(models) and key.startswith("model__")

        meta, arrays = read_npz(path, what, select=select, mmap=bool(mmap))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unsupported format {meta.get('format')!r}")
        config = meta.get("config")
        if not isinstance(config, dict):
            raise ValueError(f"{path} is not a {what}: its config is not an object")
        metrics = {k[len("metric__"):]: v for k, v in arrays.items() if k.startswith("metric__")}
        models = {k[len("model__"):]: v for k, v in arrays.items() if k.startswith("model__")}
        if wanted is not None and len(metrics) < len(wanted):
            held = [n[len("metric__"):-4] for n in _entry_names(path)
                    if n.startswith("metric__")]
            raise ValueError(f"metrics must be among the metrics {path} holds, {held}; got "
                             f"{[m for m in wanted if m not in metrics]}")
        if wanted is not None:
            metrics = {k: metrics[k] for k in wanted}
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
        if mmap:
            read = [k for k, v in metrics.items() if not isinstance(v, np.memmap)]
            read += [f"model {k}" for k, v in models.items() if not isinstance(v, np.memmap)]
            if read:
                warnings.warn(f"{path}: the arrays {read} are compressed and cannot be "
                              "memory-mapped: they were read into memory (save with "
                              "compress=False to map them)", UserWarning, stacklevel=2)
        return cls(metrics=metrics, config=config, models=models or None)

    def _metric_names(self, name: str, metrics) -> list[str]:
        """``metrics`` (a name or a sequence of names of :attr:`metrics`; None: all) as a list."""
        return self._names(name, metrics, list(self.metrics), "the metrics this run computed")

    @staticmethod
    def _names(name: str, metrics, known: list[str] | None, what: str) -> list[str]:
        if metrics is None:
            return list(known)
        if isinstance(metrics, str):
            metrics = [metrics]
        elif not isinstance(metrics, Sequence | np.ndarray) or isinstance(metrics, bytes):
            raise TypeError(f"{name} must be a metric name or a sequence of them, "
                            f"got {type(metrics).__name__}")
        out = list(metrics)
        for m in out:
            if not isinstance(m, str):
                raise TypeError(f"{name} must hold metric names (str), got {m!r}")
        if not out:
            raise ValueError(f"{name} must name at least one metric, got none")
        if len(set(out)) != len(out):
            raise ValueError(f"{name} must not repeat a metric, got {out}")
        if known is not None:
            unknown = [m for m in out if m not in known]
            if unknown:
                raise ValueError(f"{name} must be among {what}, {known}; got {unknown}")
        return out


#: Bytes of metric arrays (plus recorded models) above which :func:`warn_large_result`
#: warns (``simulate`` calls it before allocating them): 4 GiB.
LARGE_RESULT_BYTES = 4 * 2**30


class LargeResultWarning(UserWarning):
    """A run's result will be large (see :data:`LARGE_RESULT_BYTES`): how to store it."""


def estimate_bytes(generations: int, chains: int, n_metrics: int, *, itemsize: int = 8,
                   record_row: int = 0) -> int:
    r"""Bytes of a run's result arrays: the metrics and the recorded models.

    .. math:: (G + 1)\,(\text{chains} \cdot n_\text{metrics} \cdot \text{itemsize}
              + \text{record\_row})

    Parameters
    ----------
    generations : int
        ``G``; rows are ``0..G``.
    chains : int
    n_metrics : int
    itemsize : int
        Bytes per value: 8 in memory (float64), 4 for a file saved with
        ``dtype="float32"``.
    record_row : int
        Bytes of the recorded models of one generation (all chains), 0 without
        ``record_models``.

    Returns
    -------
    int
        The size in memory; a file saved uncompressed has this size (plus a few hundred
        bytes per array). :meth:`Simulation.to_frame` needs
        ``(G + 1) * chains * (8 * n_metrics + 8)`` bytes more (its two int32 index
        columns and a copy of the metrics; ``copy=False``: only the index columns).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> cs.estimate_bytes(1000, 100_000, 6) / 2**30  # doctest: +ELLIPSIS
    4.47...
    """
    generations = check_int("generations", generations, minimum=0)
    chains = check_int("chains", chains, minimum=1)
    n_metrics = check_int("n_metrics", n_metrics, minimum=0)
    itemsize = check_int("itemsize", itemsize, minimum=1)
    record_row = check_int("record_row", record_row, minimum=0)
    return (generations + 1) * (chains * n_metrics * itemsize + record_row)


def warn_large_result(generations: int, chains: int, n_metrics: int, record_row: int = 0,
                      *, stacklevel: int = 3) -> int:
    """Warn (:class:`LargeResultWarning`) when :func:`estimate_bytes` exceeds
    :data:`LARGE_RESULT_BYTES`, with the ways to keep the result small; return the estimate.

    ``stacklevel=3`` points the warning at the caller of the function that calls this
    one (``simulate``'s caller).
    """
    size = estimate_bytes(generations, chains, n_metrics, record_row=record_row)
    if size > LARGE_RESULT_BYTES:
        warnings.warn(
            f"this run's result arrays will take {size / 2**30:.3g} GiB "
            f"({generations + 1} rows x {chains} chains x {n_metrics} metrics"
            + (", plus recorded models" if record_row else "")
            + f"), above LARGE_RESULT_BYTES={LARGE_RESULT_BYTES / 2**30:.3g} GiB "
            "(collapse_sim.results). Compute fewer metrics (metrics=); store a part, or "
            "half of it, with sim.save(path, metrics=..., dtype='float32') (uncompressed, "
            "the default, saves at disk speed); open it without reading it with "
            "Simulation.load(path, mmap=True); tabulate a part with "
            "sim.to_frame(metrics=..., generations=...)",
            LargeResultWarning, stacklevel=stacklevel)
    return size


def _save_dtypes(dtype, names: list[str]) -> dict[str, np.dtype]:
    """``{metric: stored dtype}`` for the metrics ``save`` converts."""
    if dtype is None:
        return {}
    if isinstance(dtype, Mapping):
        unknown = [k for k in dtype if k not in names]
        if unknown:
            raise ValueError(f"dtype's keys must be metrics being saved, {names}; got {unknown}")
        return {k: _float_dtype(v) for k, v in dtype.items() if v is not None}
    return dict.fromkeys(names, _float_dtype(dtype))


def _float_dtype(value) -> np.dtype:
    try:
        out = np.dtype(value)
    except TypeError:
        out = np.dtype(object)
    if out.type not in (np.float32, np.float64):
        raise ValueError(f"dtype must be None, 'float32' or 'float64' (or a dict of them), "
                         f"got {value!r}")
    return out


_F32 = np.finfo(np.float32)


def _check_conversion(name: str, source: np.ndarray, converted: np.ndarray) -> None:
    """Refuse a conversion that turns a finite value into ``inf`` or a nonzero value into
    one below float32's normal range (0 or fewer digits)."""
    if converted.dtype != np.float32:
        return
    mag = np.abs(converted)
    bad = (np.isinf(mag) & np.isfinite(source)) | ((mag < _F32.tiny) & (source != 0)
                                                     & ~np.isnan(source))
    if bad.any():
        value = float(source.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
        raise ValueError(
            f"metric {name.removeprefix('metric__')!r} holds {value:.6g}, outside float32's "
            f"normal range (magnitudes {_F32.tiny:.3g} to {_F32.max:.3g}): float32 would "
            f"make it {'inf' if abs(value) > 1 else '0 or lose digits'}; save it in float64 "
            "(dtype=None, or a dict dtype={other_metric: 'float32', ...}); no file was written")


def _entry_names(path: Path) -> list[str]:
    """Entry names of the zip file ``path`` (for error messages)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


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
