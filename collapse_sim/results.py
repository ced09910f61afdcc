"""The result of a simulation: metric arrays, the configuration, tables and files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

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
            for g in gens:
                row = {"metric": name, "generation": g, "mean": float(np.mean(arr[g]))}
                for q, column in zip(levels, columns, strict=True):
                    row[column] = float(np.quantile(arr[g], q))
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
