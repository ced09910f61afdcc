"""``out_dir``: the manifest and one atomically written file per finished run (resuming)."""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._io import atomic_write, read_npz
from .labels import _canonical_json

if TYPE_CHECKING:
    from .grid import _Job, _Plan

#: Version tag of the files and the manifest written to ``out_dir``.
FORMAT = "collapse_sim.sweep/1"  # part of every fingerprint: unchanged by the package's rename
#: Name of the file describing the sweep held in ``out_dir``.
MANIFEST = "manifest.json"
#: Temporary files in ``out_dir`` older than this many seconds are leftovers of a killed
#: sweep and are removed when the sweep is resumed.
STALE_SECONDS = 3600


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
        if not manifest.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            # Created exclusively: a hard link to a complete temporary file fails if another
            # sweep created the manifest meanwhile; that one is then checked like any other.
            staged = self.root / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
            atomic_write(staged, lambda fh: fh.write(
                json.dumps(description, indent=1, sort_keys=True).encode()))
            try:
                os.link(staged, manifest)
            except FileExistsError:
                pass
            finally:
                staged.unlink(missing_ok=True)
        self._check(manifest, description)
        # temporary files left by a killed sweep's writes; only old ones, since another
        # process may be writing into this folder right now
        now = time.time()
        for stale in self.root.glob(".*.tmp"):
            try:
                if now - stale.stat().st_mtime > STALE_SECONDS:
                    stale.unlink(missing_ok=True)
            except OSError:
                pass

    def _check(self, manifest: Path, description: dict) -> None:
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{manifest} is not a sweep manifest: {exc}") from exc
        if not isinstance(old, dict):
            raise ValueError(f"{manifest} is not a sweep manifest: not a JSON object")
        if old.get("fingerprint") != self.plan.fingerprint:
            differ = [k for k in ("format", "base", "grid", "seeds", "threshold")
                      if old.get(k) != description[k]]
            raise ValueError(
                f"out_dir {str(self.root)!r} holds a different sweep (its "
                f"{', '.join(differ) or 'fingerprint'} differ): write to another folder, "
                "or delete this one to start afresh")

    def path(self, job: _Job) -> Path:
        return self.root / f"{job.key}-seed{job.seed}.npz"

    def load(self, job: _Job, quantiles) -> dict | None:
        path = self.path(job)
        if not path.exists():
            return None
        try:
            meta, arrays = read_npz(path, "sweep run file")
        except ValueError as exc:
            warnings.warn(f"{exc}; running it again", stacklevel=3)
            return None
        curves = {k[len("curve__"):]: v for k, v in arrays.items() if k.startswith("curve__")}
        if (meta.get("format") != FORMAT or meta.get("key") != job.key
                or meta.get("seed") != job.seed):
            warnings.warn(f"{path} does not hold this run; running it again", stacklevel=3)
            return None
        summary = meta.get("summary")
        if not (isinstance(summary, dict) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in summary.values())):
            warnings.warn(f"{path} has no valid summary (numbers by name); running it again",
                          stacklevel=3)
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
