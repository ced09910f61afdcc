"""Fuzzing campaign over the public API: no input may crash, hang, or give a wrong number.

Usage (from the repository root)::

    python benchmarks/fuzz.py --budget 300 --seed 0 --out fuzz-report.json

Random inputs — often extreme: 0, negative, huge, NaN, inf, bools, strings, numpy scalars,
wrong shapes — go to

- ``constructors``: every model, fitter and policy class;
- ``simulate``: :func:`collapse_sim.simulate` at small sizes;
- ``metrics``: the functions of :mod:`collapse_sim.metrics`;
- ``theory``: the functions of :mod:`collapse_sim.theory`;
- ``load``: :meth:`collapse_sim.Simulation.load` of damaged files (then ``summary()``).

Every case is a few lines of Python (its own reproducer). Cases run in batches in
worker subprocesses (a crash kills only the worker), each under an in-process timer
and a watchdog in the parent that kills a worker stuck in compiled code. A worker that
dies is replaced; the case it was running is re-run alone, and if it then survives, the
cases the worker ran before it are re-run one by one to find the culprit (a heap
corruption can surface later). Each case is classified:

``clean``
    accepted, and the result is clean: no NaN anywhere, finite where documented
    (``variance``, ``mean_shift``, ``w2``, ``tail_mass``, ``l2``, ``test_error`` and the
    categorical metrics; ``kl``/``nll`` may be ``+inf``), the expected shapes, a
    JSON-serialisable ``to_dict()``;
``rejected``
    ``ValueError``, ``TypeError`` or ``FloatingPointError`` with a message;
``wrong``
    NaN in the result, an infinite value where documented finite, another exception type
    (``IndexError``, ``ZeroDivisionError``, ``KeyError``, ``AttributeError``,
    ``MemoryError``, numba's ``TypingError`` …), an empty message;
``crashed``
    the worker died (signal or abnormal exit);
``hung``
    over ``--case-timeout`` seconds, also when re-run alone.

Prints the counts per class and per API area, and the shortest reproducer of every
distinct finding (grouped by class, API and normalised message); ``--out`` writes the
whole report as JSON. Not part of the test suite.

Workers run with ``COLLAPSE_SIM_MAX_BYTES`` = 1 GiB (unless set) and an address-space
limit of ``FUZZ_MAX_AS`` bytes (default 6 GiB), so a runaway allocation is a
``MemoryError`` (wrong), not a swapping machine. ``--selftest`` runs synthetic cases
(a segfault, hangs, a crash that needs an earlier case) to check the harness itself.
Reproducers assume ``PRELUDE`` (and ``SKLEARN_PRELUDE``/``LOAD_PRELUDE`` when used);
the JSON report holds them whole.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

CLASSES = ("clean", "rejected", "wrong", "crashed", "hung")
AREAS = ("constructors", "simulate", "metrics", "theory", "load")
#: Metrics documented finite for every model (``kl``, ``nll`` and ``l2`` may be ``+inf`` for a
#: degenerate model).
FINITE_METRICS = {"variance", "mean_shift", "w2", "tail_mass", "test_error", "entropy",
                  "gini_simpson", "support", "tv"}
CLEAN_ERRORS = (ValueError, TypeError, FloatingPointError)
#: Metrics defined for each truth family (``simulate``'s ``metrics=`` picks among them).
FAMILY_METRICS = {
    "gauss": ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass"),
    "mix": ("variance", "mean_shift", "w2", "kl", "nll", "tail_mass", "l2"),
    "reg": ("test_error",),
    "cat": ("entropy", "gini_simpson", "support", "tail_mass", "tv", "kl", "nll"),
}

PRELUDE = """\
import math
import numpy as np
import collapse_sim as cs
nan, inf = float("nan"), float("inf")
"""
SKLEARN_PRELUDE = """\
from sklearn.mixture import BayesianGaussianMixture as SkBGM
from sklearn.mixture import GaussianMixture as SkGM
from sklearn.neighbors import KernelDensity
"""
LOAD_PRELUDE = '''\
import io, json, os, tempfile, zipfile


def _saved(record_models=True):
    """A valid Simulation file (a small Gaussian run) in a fresh folder."""
    folder = tempfile.mkdtemp(prefix="fuzzload", dir=os.environ.get("FUZZ_TMP"))
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=5,
                      generations=3, chains=2, seed=0, record_models=record_models)
    return str(sim.save(os.path.join(folder, "s.npz")))


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _rewrite(path, replace=(), drop=(), drop_prefix=None, raw=()):
    """Rewrite the npz: entries replaced by arrays, dropped, or raw bytes added."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    for name in drop:
        entries.pop(name + ".npy", None)
    if drop_prefix is not None:
        entries = {k: v for k, v in entries.items() if not k.startswith(drop_prefix)}
    for name, arr in dict(replace).items():
        entries[name + ".npy"] = _npy(arr)
    entries.update(dict(raw))
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def _meta(config=None, fmt="collapse_sim.Simulation/1", text=None):
    if text is None:
        text = json.dumps({"format": fmt, "config": {} if config is None else config})
    return np.array(text)


def _header(shape, descr="<f8", payload=b""):
    """An npy entry whose header declares ``shape`` but holds only ``payload``."""
    head = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    head += b" " * (63 - (len(head) + 10) % 64) + b"\\n"
    return b"\\x93NUMPY\\x01\\x00" + len(head).to_bytes(2, "little") + head + payload


def _truncate(path, size):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:size])
    return path


def _flip(path, offset, value):
    data = bytearray(open(path, "rb").read())
    data[offset % len(data)] = value
    open(path, "wb").write(bytes(data))
    return path
'''


# -- generating cases -------------------------------------------------------------------------

#: Out-of-range, wrongly typed and wrongly shaped values, as source code.
EXOTIC = (
    "0", "-1", "-0.0", "1", "2", "3", "10**9", "2**63", "10**30", "-10**9", "nan", "inf", "-inf",
    "1e-300", "1e300", "5e-324", "True", "False", "None", "'a'", "''", "'mle'",
    "np.float32(0.5)", "np.float64(nan)", "np.int64(3)", "np.int8(-1)", "np.uint64(2**64 - 1)",
    "np.bool_(True)", "np.array(2.0)", "np.array([1.0, 2.0])", "np.array([[1.0]])", "[]",
    "[1.0]", "[[1.0, 0.0], [0.0, 1.0]]", "np.zeros((0,))", "np.zeros((2, 0))",
    "np.full(2, nan)", "[nan]", "(1, 2)", "{}", "{'a': 1}", "complex(1, 1)", "object()",
    "b'x'", "np.float16(65504)", "2.5", "0.5", "[0.5, 0.5]", "[1, 2, 3]", "np.array(['a'])",
    "np.arange(3)", "range(3)", "np.array([0.5, 0.5], dtype=np.float32)", "[[[1.0]]]",
    "np.ones((2, 2, 2))", "np.array([1.0, inf])", "[-1.0, 2.0]", "1e-12", "-1e-12", "10**6",
)
#: Exotic values that are not numbers: accepting one for a numeric parameter is suspicious.
NOT_NUMBERS = ("True", "False", "np.bool_(True)", "'a'", "''", "'mle'", "b'x'", "complex(1, 1)",
               "object()", "{}", "{'a': 1}")


#: Source code of a number or of an array of numbers (a numeric parameter's valid value).
_NUMERIC = re.compile(r"[-+0-9.e\[\], ()*]+|np\.(zeros|ones|eye|arange|stack)\(.*")


class Gen:
    """Random source code for arguments: mostly valid, sometimes exotic."""

    def __init__(self, seed: int, p_exotic: float = 0.12):
        self.rng = random.Random(seed)
        self.p = p_exotic
        self.injected: list[tuple[str, str]] = []

    # primitives
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def choice(self, seq):
        return self.rng.choice(list(seq))

    def exotic(self) -> str:
        return self.choice(EXOTIC)

    def maybe(self, name: str, valid: str, p: float | None = None) -> str:
        """``valid``, or with probability ``p`` an exotic value (recorded)."""
        if self.chance(self.p if p is None else p):
            value = self.exotic()
            self.injected.append((name, value, bool(_NUMERIC.fullmatch(valid))))
            return value
        return valid

    def num(self, lo: float, hi: float, *, log: bool = False) -> str:
        if log:
            x = math.exp(self.rng.uniform(math.log(lo), math.log(hi)))
        else:
            x = self.rng.uniform(lo, hi)
        return repr(round(x, 4) if abs(x) > 1e-3 else x)

    def integer(self, lo: int, hi: int) -> str:
        return str(self.rng.randint(lo, hi))

    def vec(self, n: int, lo: float = -2.0, hi: float = 2.0) -> str:
        return "[" + ", ".join(self.num(lo, hi) for _ in range(n)) + "]"

    def simplex(self, k: int, zeros: bool = True) -> str:
        w = [self.rng.random() ** 2 for _ in range(k)]
        if zeros and k > 1 and self.chance(0.2):
            w[self.rng.randrange(k)] = 0.0
        if self.chance(0.1):
            w[self.rng.randrange(k)] = 1e-12
        s = sum(w) or 1.0
        return "[" + ", ".join(repr(x / s) for x in w) + "]"

    def spd(self, d: int, scale: float = 1.0) -> str:
        a = [[self.rng.gauss(0, 1) for _ in range(d)] for _ in range(d)]
        m = [[sum(a[i][k] * a[j][k] for k in range(d)) * scale / d + (scale * 0.1 if i == j
              else 0.0) for j in range(d)] for i in range(d)]
        if self.chance(0.05):  # singular
            m = [[0.0] * d for _ in range(d)]
        return "[" + ", ".join("[" + ", ".join(repr(round(x, 4)) for x in row) + "]"
                               for row in m) + "]"

    def kwargs(self, pairs: list[tuple[str, str]]) -> str:
        parts = [f"{k}={v}" for k, v in pairs if v is not None]
        if self.chance(0.02):
            parts.append("colour=1")  # an unknown keyword
        return ", ".join(parts)

    # models ---------------------------------------------------------------------------------
    def gaussian(self, d: int | None = None, batch: int = 1) -> str:
        d = d or self.choice([1, 1, 2, 3])
        if d == 1 and self.chance(0.6):
            if batch == 1:
                mean, var = self.num(-3, 3), self.num(1e-3, 10, log=True)
            else:
                mean = self.vec(batch)
                var = "[" + ", ".join(self.num(1e-3, 10, log=True) for _ in range(batch)) + "]"
            return (f"cs.Gaussian(mean={self.maybe('mean', mean)}, "
                    f"var={self.maybe('var', var)})")
        if batch == 1:
            mean, cov = self.vec(d), self.spd(d, float(self.num(0.01, 5, log=True)))
        else:
            mean = "[" + ", ".join(self.vec(d) for _ in range(batch)) + "]"
            cov = "[" + ", ".join(self.spd(d) for _ in range(batch)) + "]"
        return f"cs.Gaussian(mean={self.maybe('mean', mean)}, cov={self.maybe('cov', cov)})"

    def mixture(self, d: int | None = None, k: int | None = None, batch: int = 1) -> str:
        d = d or self.choice([1, 1, 2])
        k = k or self.choice([1, 2, 2, 3])

        def one():
            return (self.simplex(k, zeros=False),
                    "[" + ", ".join(self.vec(d, -4, 4) for _ in range(k)) + "]",
                    "[" + ", ".join(self.spd(d, float(self.num(0.05, 3, log=True)))
                                    for _ in range(k)) + "]")

        parts = [one() for _ in range(batch)]
        if batch == 1:
            w, m, c = parts[0]
        else:
            w, m, c = ("[" + ", ".join(p[i] for p in parts) + "]" for i in range(3))
        return (f"cs.GaussianMixture(weights={self.maybe('weights', w)}, "
                f"means={self.maybe('means', m)}, covs={self.maybe('covs', c)})")

    def regression(self, d: int | None = None, batch: int = 1) -> str:
        d = d or self.choice([1, 2, 3])
        w = self.vec(d) if batch == 1 else "[" + ", ".join(self.vec(d) for _ in range(batch)) + "]"
        pairs = [("weights", self.maybe("weights", w))]
        if self.chance(0.6):
            pairs.append(("noise_std", self.maybe("noise_std", self.num(0.0, 3.0))))
        if self.chance(0.4):
            pairs.append(("design_cov", self.maybe("design_cov", self.spd(d))))
        if self.chance(0.4):
            pairs.append(("design", self.maybe("design", self.choice(["'fresh'", "'fixed'"]))))
        return f"cs.LinearRegression({self.kwargs(pairs)})"

    def categorical(self, kind: str | None = None) -> str:
        kind = kind or self.choice(["Categorical", "Zipf"])
        if kind == "Categorical":
            k = self.choice([1, 2, 3, 5, 20])
            return f"cs.Categorical({self.maybe('probs', self.simplex(k))})"
        pairs = [("n_categories", self.maybe("n_categories", self.integer(1, 50))),
                 ("exponent", self.maybe("exponent", self.num(0.0, 3.0)))]
        return f"cs.Zipf({self.kwargs(pairs)})"

    def truth(self, family: str) -> str:
        return {"gauss": self.gaussian, "mix": self.mixture, "reg": self.regression,
                "cat": self.categorical}[family]()

    # fitters ----------------------------------------------------------------------------------
    def sgd_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for name, valid in (("learning_rate", self.num(1e-3, 0.3, log=True)),
                            ("batch_size", self.integer(1, 8)), ("epochs", self.integer(1, 3)),
                            ("momentum", self.num(0.0, 0.9)),
                            ("lr_schedule", self.choice(["'constant'", "'inverse_time'"])),
                            ("gradient_noise", self.num(0.0, 0.5))):
            if name == "batch_size" or self.chance(0.5):
                pairs.append((name, self.maybe(name, valid)))
        return pairs

    def fitter(self, family: str) -> str:
        if family == "gauss":
            kind = self.choice(["GaussianFit", "GaussianFit", "SGDGaussianFit",
                                "GaussianMixtureFit", "SklearnFitter"])
        elif family == "mix":
            kind = self.choice(["GaussianMixtureFit", "GaussianMixtureFit", "SGDMixtureFit",
                                "GaussianFit", "SklearnFitter"])
        elif family == "reg":
            kind = self.choice(["OLSFit", "OLSFit", "SGDRegressionFit"])
        else:
            kind = "CategoricalFit"
        return self.fitter_of(kind)

    def fitter_of(self, kind: str) -> str:
        p = []
        if kind == "GaussianFit":
            if self.chance(0.5):
                p.append(("estimator", self.maybe("estimator",
                                                  self.choice(["'mle'", "'unbiased'"]))))
        elif kind == "GaussianMixtureFit":
            p.append(("n_components", self.maybe("n_components", self.integer(1, 3))))
            for name, valid in (("covariance_type",
                                 self.choice(["'full'", "'diag'", "'spherical'"])),
                                ("max_iter", self.integer(1, 30)),
                                ("tol", self.num(1e-6, 1e-1, log=True)),
                                ("reg_covar", self.num(1e-9, 1e-2, log=True)),
                                ("init", self.choice(["'kmeans++'", "'random'", "'previous'"]))):
                if self.chance(0.4):
                    p.append((name, self.maybe(name, valid)))
        elif kind == "SGDGaussianFit":
            p = self.sgd_pairs()
            if self.chance(0.3):
                p.append(("init", self.maybe("init", self.choice(["'previous'", "'fixed'"]))))
        elif kind == "SGDMixtureFit":
            p = [("n_components", self.maybe("n_components", self.integer(1, 3)))]
            p += self.sgd_pairs()
            if self.chance(0.3):
                p.append(("init", self.maybe("init", self.choice(["'previous'", "'kmeans++'"]))))
        elif kind == "SGDRegressionFit":
            p = self.sgd_pairs()
            if self.chance(0.3):
                p.append(("noise", self.maybe("noise", self.choice(["'keep'", "'estimate'"]))))
        elif kind == "OLSFit":
            if self.chance(0.5):
                p.append(("ridge", self.maybe("ridge", self.num(0.0, 2.0))))
            if self.chance(0.4):
                p.append(("noise", self.maybe("noise", self.choice(["'keep'", "'estimate'"]))))
        elif kind == "CategoricalFit":
            if self.chance(0.5):
                p.append(("smoothing", self.maybe("smoothing", self.num(0.0, 2.0))))
        elif kind == "SklearnFitter":
            est = self.choice([
                f"SkGM(n_components={self.integer(1, 3)}, max_iter=20)",
                f"KernelDensity(bandwidth={self.num(0.05, 2.0)})",
                "KernelDensity(kernel='tophat')", "KernelDensity(bandwidth='scott')",
                f"KernelDensity(kernel={self.choice(['cosine', 'linear', 'exponential'])!r})",
                f"KernelDensity(metric={self.choice(['manhattan', 'l2', 'chebyshev'])!r})",
                "SkBGM(n_components=2, max_iter=20)", "SkGM", "object()",
            ])
            p.append(("estimator", self.maybe("estimator", est)))
        return f"cs.{kind}({self.kwargs(p)})"

    # policies ---------------------------------------------------------------------------------
    def policy(self, kind: str | None = None) -> str:
        kind = kind or self.choice(["Replace", "KeepReal", "Accumulate", "AccumulateSubsample",
                                    "FreshReal", "Augment"])
        p = []
        if kind in ("KeepReal", "FreshReal") and self.chance(0.8):
            p.append(("fraction", self.maybe("fraction", self.num(0.0, 1.0))))
        elif kind == "Augment" and self.chance(0.8):
            p.append(("ratio", self.maybe("ratio", self.num(0.0, 3.0))))
        elif kind in ("Accumulate", "AccumulateSubsample") and self.chance(0.3):
            p.append(("max_bytes", self.maybe("max_bytes", self.choice(["10**6", "2**31",
                                                                           "1000"]))))
        return f"cs.{kind}({self.kwargs(p)})"


CONSTRUCTORS = ("Gaussian", "GaussianMixture", "LinearRegression", "Categorical", "Zipf",
                "GaussianFit", "GaussianMixtureFit", "SGDGaussianFit", "SGDMixtureFit",
                "SGDRegressionFit", "OLSFit", "CategoricalFit", "SklearnFitter", "Replace",
                "KeepReal", "Accumulate", "AccumulateSubsample", "FreshReal", "Augment")


def gen_constructor(g: Gen) -> tuple[str, str]:
    kind = g.choice(CONSTRUCTORS)
    g.p = 0.35
    if kind == "Gaussian":
        src = g.gaussian(batch=g.choice([1, 1, 2]))
    elif kind == "GaussianMixture":
        src = g.mixture(batch=g.choice([1, 1, 2]))
    elif kind == "LinearRegression":
        src = g.regression(batch=g.choice([1, 1, 2]))
    elif kind in ("Categorical", "Zipf"):
        src = g.categorical(kind)
    elif kind in ("Replace", "KeepReal", "Accumulate", "AccumulateSubsample", "FreshReal",
                  "Augment"):
        src = g.policy(kind)
    else:
        src = g.fitter_of(kind)
    if g.chance(0.05):  # positional arguments where keywords are expected
        src = re.sub(r"\b[a-z_]+=", "", src, count=1)
    return f"constructors.{kind}", f"result = {src}"


def gen_simulate(g: Gen) -> tuple[str, str]:
    g.p = 0.07
    family = g.choice(["gauss", "gauss", "mix", "reg", "cat"])
    truth = g.truth(family)
    if g.chance(0.08):
        fitter = g.fitter(g.choice(["gauss", "mix", "reg", "cat"]))
    else:
        fitter = g.fitter(family)
    pairs = [("n_samples", g.maybe("n_samples", g.integer(2, 40))),
             ("generations", g.maybe("generations", g.integer(0, 4))),
             ("chains", g.maybe("chains", g.integer(1, 4)))]
    if g.chance(0.6):
        pairs.append(("policy", g.policy() if not g.chance(0.05) else g.exotic()))
    pairs.append(("seed", g.choice(["0", "1", "12345", "None", "np.random.default_rng(0)",
                                    "np.random.SeedSequence(3)", "2**70", "-1", "1.5", "'x'",
                                    "np.int64(7)", "True"]) if g.chance(0.15) else "0"))
    if g.chance(0.5):
        if g.chance(0.8):
            names = list(FAMILY_METRICS[family])
        else:
            names = ["variance", "mean_shift", "w2", "kl", "nll", "tail_mass", "l2",
                     "test_error", "entropy", "gini_simpson", "support", "tv", "bogus"]
        pick = g.rng.sample(names, g.rng.randint(1, min(3, len(names))))
        metrics = (g.choice([repr(pick), repr(tuple(pick)), repr(pick[0])]) if g.chance(0.85)
                   else g.choice(["[]", "None", g.exotic()]))
        pairs.append(("metrics", metrics))
    if g.chance(0.4):
        pairs.append(("sampling", g.maybe("sampling", g.choice(["'auto'", "'exact'",
                                                               "'explicit'"]))))
    if g.chance(0.2):
        pairs.append(("record_models", g.maybe("record_models", g.choice(["True", "False"]))))
    pairs.append(("progress", "False"))
    return "simulate", f"result = cs.simulate({truth}, {fitter}, {g.kwargs(pairs)})"


def _points(g: Gen, d: int) -> str:
    m = g.choice(["0", "1", "5", "200"])
    shape = g.choice([f"({m}, {d})", f"({m}, {d})", f"({m},)", f"({m}, {d + 1})", f"({m}, {d}, 1)"])
    src = f"np.random.default_rng(0).standard_normal({shape})"
    return g.maybe("points", src) if g.chance(0.8) else g.choice(
        [f"np.full(({m}, {d}), nan)", f"np.full(({m}, {d}), 1e300)"])


def gen_metrics(g: Gen) -> tuple[str, str]:
    g.p = 0.1
    fn = g.choice(["variance", "mean_shift", "w2", "kl", "nll", "tail_mass", "l2",
                   "kl_standard_error", "test_error", "nll_from_moments", "tail_directions",
                   "gaussian_outside", "check_names", "default_for", "evaluate"])
    family = g.choice(["gauss", "gauss", "mix"])
    d = g.choice([1, 1, 2, 3])
    batch = g.choice([1, 2, 3])

    def model(fam, b):
        if fam == "gauss":
            return g.gaussian(d=d, batch=b)
        return g.mixture(d=d, batch=b)

    truth = model(family, 1)
    other = model(g.choice(["gauss", "mix"]) if g.chance(0.5) else family, batch)
    if fn in ("variance", "mean_shift", "w2", "tail_mass", "l2"):
        call = f"cs.metrics.{fn}({truth}, {other})"
    elif fn in ("kl", "kl_standard_error"):
        ref = f", {_points(g, d)}" if g.chance(0.4) else ""
        call = f"cs.metrics.{fn}({truth}, {other}{ref})"
    elif fn == "nll":
        call = f"cs.metrics.nll({truth}, {other}, {_points(g, d)})"
    elif fn == "test_error":
        call = (f"cs.metrics.test_error({g.regression(d=d)}, "
                f"{g.regression(d=g.choice([d, d, d + 1]), batch=batch)})")
    elif fn == "nll_from_moments":
        xbar = g.maybe("xbar", g.choice([f"np.zeros(({batch}, {d}))", f"np.zeros({d})",
                                         f"np.zeros(({batch}, {d + 1}))"]))
        cov_h = g.maybe("cov_h", g.choice([f"np.eye({d})", f"np.zeros(({d}, {d}))",
                                           f"np.eye({d + 1})", f"np.stack([np.eye({d})] * 2)"]))
        call = f"cs.metrics.nll_from_moments({g.gaussian(d=d, batch=batch)}, {xbar}, {cov_h})"
    elif fn == "tail_directions":
        call = f"cs.metrics.tail_directions({g.maybe('d', g.integer(1, 8), p=0.4)})"
    elif fn == "gaussian_outside":
        dd = g.choice([d, d, d + 1])
        centre = g.maybe("centre", f"np.zeros({d})", p=0.2)
        cov0 = g.maybe("cov0", f"np.eye({dd})", p=0.2)
        radius2 = g.maybe("radius2", g.num(0.1, 20.0), p=0.2)
        means = g.maybe("means", g.choice([f"np.zeros(({batch}, {d}))",
                                           f"np.ones(({batch}, {dd}))"]), p=0.2)
        covs = g.maybe("covs", g.choice([f"np.stack([np.eye({d})] * {batch})",
                                         f"np.stack([np.eye({dd})] * {batch + 1})",
                                         f"np.zeros(({batch}, {d}, {d}))"]), p=0.2)
        call = f"cs.metrics.gaussian_outside({centre}, {cov0}, {radius2}, {means}, {covs})"
    elif fn == "check_names":
        names = g.choice(["'variance'", "['kl', 'nll']", "[]", "['variance', 'variance']",
                          "['bogus']", "('w2',)", "[1]", g.exotic()])
        call = f"cs.metrics.check_names({names}, {truth}, cs.GaussianMixture)"
    elif fn == "default_for":
        call = f"cs.metrics.default_for({truth}, {g.choice(['None', 'cs.Gaussian', 'int'])})"
    else:
        names = g.choice(["('variance',)", "('kl', 'nll')", "('tail_mass', 'w2')", "()",
                          "('bogus',)", "('test_error',)"])
        held = _points(g, d) if g.chance(0.7) else "None"
        call = (f"T = {truth}\nresult = cs.metrics.evaluate({names}, T, {other}, "
                f"cs.metrics.MetricContext(T, {held}))")
        return f"metrics.{fn}", call
    return f"metrics.{fn}", f"result = {call}"


def _generations(g: Gen) -> str:
    return g.maybe("generations", g.choice([g.integer(0, 30), f"[{g.integer(0, 40)}]",
                                            "[0, 1, 5, 100]", "np.arange(5)", "[3, 1]",
                                            "[10**6]", "[1.0, 2.0]", "[[1]]", "[2.5]"]), p=0.2)


def gen_theory(g: Gen) -> tuple[str, str]:
    g.p = 0.15
    fn = g.choice(["gaussian_variance_mean", "gaussian_variance_quantiles",
                   "gaussian_variance_cdf", "gaussian_w2_squared_mean", "regression_test_error",
                   "categorical_fixation_probabilities", "categorical_absorption_time_mean",
                   "categorical_gini_simpson_mean", "categorical_gini_simpson_mean_accumulate",
                   "categorical_gini_simpson_mean_fresh", "categorical_surviving_mean",
                   "categorical_surviving_mean_accumulate", "rare_category_survival",
                   "rare_category_median_survival", "best_gaussian_approximation",
                   "gaussian_mismatch_floor"])

    def n():
        return g.maybe("n_samples", g.integer(2, 60))

    def est():
        return g.maybe("estimator", g.choice(["'mle'", "'unbiased'"]))

    def var0():
        return g.maybe("var0", g.num(0.01, 10, log=True))

    def method():
        return g.maybe("method", g.choice(["'auto'", "'exact'", "'approx'"]))

    def gens():
        return _generations(g)

    if fn in ("gaussian_variance_mean", "gaussian_w2_squared_mean"):
        args = f"n_samples={n()}, generations={gens()}, estimator={est()}, var0={var0()}"
    elif fn == "gaussian_variance_quantiles":
        q = g.maybe("q", g.choice(["0.5", "[0.1, 0.9]", "[1e-12, 1 - 1e-12]", "np.array(0.3)"]))
        args = f"n_samples={n()}, generations={gens()}, q={q}, estimator={est()}, var0={var0()}"
    elif fn == "gaussian_variance_cdf":
        th = g.maybe("threshold", g.choice(["0.5", "[0.1, 1.0, 10.0]", "inf", "1e-300",
                                            "[1e300]"]))
        args = (f"threshold={th}, n_samples={n()}, generations={gens()}, estimator={est()}, "
                f"var0={var0()}")
    elif fn == "regression_test_error":
        dim = g.maybe("dim", g.integer(1, 10))
        policy = g.maybe("policy", g.choice(["'replace'", "'accumulate'", "cs.Accumulate()"]))
        design = g.maybe("design", g.choice(["'fresh'", "'fixed'"]))
        noise = g.maybe("noise_std", g.num(0, 3))
        args = (f"n_samples={g.maybe('n_samples', g.integer(2, 60))}, dim={dim}, "
                f"noise_std={noise}, generations={gens()}, policy={policy}, design={design}")
    elif fn in ("categorical_fixation_probabilities", "categorical_surviving_mean"):
        p = g.maybe("p", g.choice([g.num(0.01, 0.99), g.simplex(g.choice([2, 3, 5]))]))
        args = f"{p}, {n()}, {gens()}, method={method()}"
    elif fn == "categorical_absorption_time_mean":
        p = g.maybe("p", g.choice([g.num(0.01, 0.99), g.simplex(g.choice([2, 3]))]))
        args = f"{p}, {n()}, method={method()}"
    elif fn in ("categorical_gini_simpson_mean", "categorical_gini_simpson_mean_accumulate",
                "categorical_surviving_mean_accumulate"):
        args = f"{g.maybe('probs', g.simplex(g.choice([1, 2, 3, 6])))}, {n()}, {gens()}"
    elif fn == "categorical_gini_simpson_mean_fresh":
        args = (f"{g.maybe('probs', g.simplex(g.choice([2, 3])))}, {n()}, "
                f"{g.maybe('fresh', g.integer(0, 20))}, {gens()}")
    elif fn == "rare_category_survival":
        args = f"{g.maybe('count', g.integer(0, 10))}, {n()}, {gens()}, method={method()}"
    elif fn == "rare_category_median_survival":
        args = (f"{g.maybe('count', g.integer(0, 10))}, "
                f"{n() if g.chance(0.7) else 'None'}, method={method()}")
    else:
        args = g.choice([g.gaussian, g.mixture, g.regression, g.categorical, g.exotic])()
    return f"theory.{fn}", f"result = cs.theory.{fn}({args})"


def gen_load(g: Gen) -> tuple[str, str]:
    arrays = ["np.zeros((0, 2))", "np.zeros((4,))", "np.zeros((4, 2, 1))", "np.array(1.0)",
              "np.zeros((4, 2), dtype=np.int64)", "np.zeros((4, 2), dtype=np.complex128)",
              "np.zeros((4, 2), dtype=np.float16)", "np.full((4, 2), nan)", "np.zeros((4, 3))",
              "np.zeros((4, 2), dtype='>f8')", "np.asfortranarray(np.ones((4, 2)))",
              "np.array(['a', 'b'])", "np.zeros((4, 2), dtype=[('a', 'f8')])",
              "np.zeros((0, 0))", "np.array([None], dtype=object)", "np.zeros((1, 1))",
              "np.zeros((4, 2), dtype=np.float32)", "np.zeros((4, 0))", "np.zeros((4, 2, 1, 1))",
              "np.zeros((4, 2), dtype=bool)", "np.array(b'xx')", "np.full((4, 2), inf)"]
    metas = ["'{}'", "'[]'", "'null'", "'not json'", "'{\"format\": 1}'",
             "'{\"format\": \"collapse_sim.Simulation/1\", \"config\": []}'",
             "'{\"format\": \"collapse_sim.Simulation/1\", \"config\": {}}'",
             "'{\"format\": \"collapse_sim.Simulation/1\", \"config\": {\"generations\": -5}}'",
             "'{\"format\": \"collapse_sim.Simulation/0\", \"config\": {}}'", "'\"x\"'",
             "'{\"format\": \"collapse_sim.Simulation/1\"}'", "'NaN'", "'1e999'"]
    kind = g.choice(["truncate", "flip", "metric", "model", "newmetric", "meta", "metaarray",
                     "drop", "raw", "header", "path"])
    base = f"_saved(record_models={g.choice(['True', 'False'])})"
    if kind == "truncate":
        src = f"p = _truncate({base}, {g.integer(0, 3000)})"
    elif kind == "flip":
        src = f"p = _flip({base}, {g.integer(0, 3000)}, {g.integer(0, 255)})"
    elif kind == "metric":
        name = g.choice(["variance", "w2", "kl"])
        src = f"p = _rewrite({base}, replace={{'metric__{name}': {g.choice(arrays)}}})"
    elif kind == "model":
        name = g.choice(["mean", "cov"])
        src = (f"p = _rewrite(_saved(record_models=True), "
               f"replace={{'model__{name}': {g.choice(arrays)}}})")
    elif kind == "newmetric":
        src = f"p = _rewrite({base}, replace={{'metric__extra': {g.choice(arrays)}}})"
    elif kind == "meta":
        src = f"p = _rewrite({base}, replace={{'__meta__': _meta(text={g.choice(metas)})}})"
    elif kind == "metaarray":
        src = f"p = _rewrite({base}, replace={{'__meta__': {g.choice(arrays)}}})"
    elif kind == "drop":
        what = g.choice(["drop=['__meta__']", "drop_prefix='metric__'", "drop_prefix='model__'",
                         "drop_prefix=''"])
        src = f"p = _rewrite({base}, {what})"
    elif kind == "raw":
        entry = g.choice(["'metric__x.npy'", "'__meta__.npy'", "'notes.txt'",
                          "'metric__variance.npy'", "'../escape.npy'"])
        data = g.choice(["b'garbage'", "b''", "b'\\x93NUMPY'", "_npy(np.zeros(3))"])
        src = f"p = _rewrite({base}, raw={{{entry}: {data}}})"
    elif kind == "header":
        entry = g.choice(["metric__variance", "metric__new", "model__mean", "__meta__"])
        shape = g.choice(["(10**12,)", "(4, 2)", "(2**62, 2**62)", "(-1, 2)", "()",
                          "(0, 10**15)"])
        descr = g.choice(["'<f8'", "'|O'", "'<U10'", "'<f8'", "'V0'"])
        payload = g.choice(["b''", "b'\\x00' * 64"])
        src = (f"p = _rewrite({base}, raw={{'{entry}.npy': _header({shape}, {descr}, "
               f"{payload})}})")
    else:
        src = "p = " + g.choice([
            "None", "123", "b'/nonexistent.npz'", "'/nonexistent/x.npz'",
            "tempfile.mkdtemp(dir=os.environ.get('FUZZ_TMP'))",
            "os.path.join(tempfile.mkdtemp(dir=os.environ.get('FUZZ_TMP')), 'empty.npz')",
            "_truncate(_saved(), 0)", "'/dev/null'", "__import__('pathlib').Path(_saved())",
            "_flip(_saved(), 0, 0)"])
        if "empty.npz" in src:
            src += "\nopen(p, 'wb').close()"
    return "load", (f"{src}\nsim = cs.Simulation.load(p)\n"
                    "result = (sim, repr(sim), sim.summary(), sim.to_frame())")


#: ``--selftest`` cases: clean, rejected, wrong, crashed (alone), hung in Python, hung with
#: the timer signal blocked (only the watchdog ends it), crashed only after an earlier case.
SELFTEST = (
    "result = 1.0",
    "raise ValueError('refused')",
    "result = float('nan')",
    "raise KeyError('k')",
    "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
    "while True:\n    pass",
    "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n"
    "time.sleep(3600)",
    "import builtins\nbuiltins._fuzz_armed = True\nresult = 0.0",
    "result = 2.0",
    "import builtins, os, signal\n"
    "if getattr(builtins, '_fuzz_armed', False):\n    os.kill(os.getpid(), signal.SIGABRT)\n"
    "result = 3.0",
)

GENERATORS = {"constructors": gen_constructor, "simulate": gen_simulate,
              "metrics": gen_metrics, "theory": gen_theory, "load": gen_load}
WEIGHTS = {"constructors": 0.2, "simulate": 0.4, "metrics": 0.15, "theory": 0.15, "load": 0.1}


def make_case(seed: int, index: int, areas: list[str]) -> dict:
    g = Gen(seed * 1_000_003 + index)
    area = g.rng.choices(areas, weights=[WEIGHTS[a] for a in areas])[0]
    api, code = GENERATORS[area](g)
    injected = [f"{name}={value}" for name, value, numeric in g.injected
                if numeric and value in NOT_NUMBERS and (
                    f"{name}={value}" in code or (value in code and f"{name}=" not in code))]
    return {"id": index, "area": area, "api": api, "code": code, "injected": injected}


def reproducer(case: dict) -> str:
    code = case["code"]
    head = PRELUDE
    if "SkGM" in code or "SkBGM" in code or "KernelDensity" in code:
        head += SKLEARN_PRELUDE
    if case["area"] == "load":
        head += LOAD_PRELUDE
    return head + code + "\n"


# -- running a case (in a worker) ---------------------------------------------------------------

class _CaseTimeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _CaseTimeout


def _nonfinite(value, path: str, out: list, depth: int = 0) -> None:
    """Append ``(path, "nan"|"inf")`` for every non-finite number inside ``value``."""
    import numpy as np

    if depth > 4 or len(out) > 20:
        return
    if isinstance(value, bool | np.bool_ | str | bytes) or value is None:
        return
    if isinstance(value, float | complex | np.floating | np.complexfloating):
        arr = np.asarray(value)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "fc":
            return
        arr = value
    elif isinstance(value, dict):
        for k, v in value.items():
            _nonfinite(v, f"{path}[{k!r}]", out, depth + 1)
        return
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value[:50]):
            _nonfinite(v, f"{path}[{i}]", out, depth + 1)
        return
    elif type(value).__module__.startswith("pandas"):
        try:
            numeric = value.select_dtypes("number").to_numpy(dtype=float)
        except Exception:
            return
        _nonfinite(numeric, f"{path}.values", out, depth + 1)
        return
    elif type(value).__module__.startswith("collapse_sim"):
        attrs = getattr(value, "__dict__", {})
        for k, v in attrs.items():
            if not k.startswith("__"):
                _nonfinite(v, f"{path}.{k}", out, depth + 1)
        return
    else:
        return
    if np.isnan(arr).any():
        out.append((path, "nan"))
    elif np.isinf(arr).any():
        out.append((path, "inf"))


_BIG_INPUT = re.compile(r"\binf\b|1e300|10\*\*30|1e999|65504")
_NAN_INPUT = re.compile(r"\bnan\b|NaN")


def _check_result(case: dict, ns: dict) -> tuple[str, str, list[str]]:
    """``(class, detail, notes)`` of an accepted case (may raise: then it is wrong)."""
    result = ns.get("result")
    api, code = case["api"], case["code"]
    notes = []
    bad: list[tuple[str, str]] = []
    _nonfinite(result, "result", bad)
    big_input = bool(_BIG_INPUT.search(code))
    for where, kind in bad:
        if case["area"] == "load" and (_NAN_INPUT.search(code) or big_input):
            notes.append(f"{kind} in {where} (from the file)")
            continue
        if kind == "nan":
            return "wrong", f"NaN in {where}", notes
        metric = None
        m = re.match(r"result(?:\.metrics)?\['(\w+)'\]", where)
        if api in ("simulate", "metrics.evaluate") and m:
            metric = m.group(1)
        elif api.startswith("metrics."):
            metric = api.split(".", 1)[1]
        if api.startswith("constructors.") and ".max_bytes" not in where and not big_input:
            return "wrong", f"inf in {where} (accepted)", notes
        if metric in FINITE_METRICS and not big_input:
            return "wrong", f"inf in {where} (documented finite)", notes
        notes.append(f"inf in {where}")
    if api == "simulate":
        sim = result
        rows = (sim.config["generations"] + 1, sim.config["chains"])
        for name, arr in sim.metrics.items():
            if arr.shape != rows:
                return "wrong", f"metrics[{name!r}] has shape {arr.shape}, expected {rows}", notes
        sim.summary()
    if hasattr(result, "to_dict"):
        try:
            json.dumps(result.to_dict(), allow_nan=False)
        except (TypeError, ValueError) as exc:
            return "wrong", f"to_dict() is not JSON: {type(exc).__name__}: {exc}", notes
    if api.startswith("constructors."):
        repr(result)
    if case.get("injected"):  # a bool, str, complex … where a number belongs, accepted
        return "wrong", f"accepted {', '.join(case['injected'])} (a number expected)", notes
    return "clean", "", notes


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return (f"{type(exc).__module__}.{type(exc).__name__}: "
            f"{message[0][:300] if message else ''}{_innermost(exc)}")


def run_case(case: dict, base_ns: dict, timeout: float) -> dict:
    import warnings

    ns = dict(base_ns)
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    caught: list = []
    notes: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                exec(case["code"], ns)
            except CLEAN_ERRORS as exc:
                message = str(exc).strip()
                if not message:
                    cls, detail = "wrong", f"{type(exc).__name__} with an empty message"
                else:
                    cls = "rejected"
                    detail = f"{type(exc).__name__}: {message.splitlines()[0][:300]}"
                    if type(exc) not in CLEAN_ERRORS:  # e.g. numpy's LinAlgError
                        notes = [f"rejected by {type(exc).__module__}.{type(exc).__name__} "
                                 f"(not a message of collapse_sim's own){_innermost(exc)}"]
            except _CaseTimeout:
                raise
            except Exception as exc:  # anything else is a bug
                cls, detail = "wrong", _describe(exc)
            else:
                try:
                    cls, detail, notes = _check_result(case, ns)
                except _CaseTimeout:
                    raise
                except Exception as exc:  # accepted, then failed when used
                    cls, detail = "wrong", f"accepted, then: {_describe(exc)}"
    except _CaseTimeout:
        cls, detail, notes = "hung", f"over {timeout:g} s (in-process timer)", []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    warned = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}"
                     for w in caught if _ours(w)})
    return {"id": case["id"], "cls": cls, "detail": detail, "notes": notes,
            "warnings": warned, "seconds": round(time.perf_counter() - start, 3)}


def _innermost(exc: BaseException) -> str:
    """`` (at file:line)`` of the innermost collapse_sim frame of the traceback."""
    tb, found = exc.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "collapse_sim" in name:
            found = f" (at {name.split('collapse_sim', 1)[1].lstrip('/')}:{tb.tb_lineno})"
        tb = tb.tb_next
    return found


def _ours(w) -> bool:
    return "collapse_sim" in (w.filename or "") or issubclass(w.category, RuntimeWarning)


def worker(path: str, timeout: float, isolate: bool) -> int:
    """Run the cases in ``path`` (JSON), one protocol line per event on the original stdout."""
    import gc
    import resource

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    limit = int(os.environ.get("FUZZ_MAX_AS", 6 * 2**30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with open(path) as fh:
        cases = json.load(fh)
    base_ns: dict = {}
    exec(PRELUDE + SKLEARN_PRELUDE + LOAD_PRELUDE, base_ns)
    proto.write("READY\n")
    for case in cases:
        proto.write(f"S {case['id']}\n")
        record = run_case(case, base_ns, timeout)
        if isolate:  # a heap corruption often shows only at a later collection
            gc.collect()
            junk = [bytearray(4096) for _ in range(2000)]
            del junk
            gc.collect()
        proto.write("R " + json.dumps(record) + "\n")
        if record["cls"] == "hung":  # the interrupted library may be in a broken state
            proto.write("X\n")
            return 0
    proto.write("DONE\n")
    return 0


# -- the campaign (parent) ------------------------------------------------------------------------

class Worker:
    """A worker subprocess running one chunk of cases, its lines on a shared queue."""

    def __init__(self, slot: int, cases: list[dict], tmp: str, timeout: float, events,
                 isolate: bool = False):
        self.slot, self.cases, self.isolate = slot, cases, isolate
        self.by_id = {c["id"]: c for c in cases}
        fd, self.path = tempfile.mkstemp(suffix=".json", dir=tmp)
        with os.fdopen(fd, "w") as fh:
            json.dump(cases, fh)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", self.path,
               "--case-timeout", str(timeout)]
        if isolate:
            cmd.append("--isolate")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.current: int | None = None
        self.started = self.current_since = self.last_event = time.monotonic()
        self.ready = False
        self.done_ids: list[int] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(events,), daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self, events) -> None:
        for line in self.proc.stdout:
            events.put((self, line.rstrip("\n")))
        events.put((self, None))

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            del self.stderr[:-40]

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker's own session only
        except ProcessLookupError:
            pass

    def remaining(self) -> list[dict]:
        done = set(self.done_ids)
        return [c for c in self.cases if c["id"] not in done and c["id"] != self.current]


def run_batches(cases_iter, *, jobs: int, tmp: str, timeout: float, deadline: float | None,
                isolate: bool = False, chunk: int = 30, on_record=None):
    """Run cases from ``cases_iter`` in up to ``jobs`` workers until it is exhausted or the
    deadline passes. Returns ``(records, crashes)``: ``crashes`` lists ``(case, sequence of
    cases the worker ran before it, how it died)``."""
    events: queue.Queue = queue.Queue()
    pending: collections.deque = collections.deque()
    records: dict[int, dict] = {}
    crashes: list[tuple[dict, list[dict], str]] = []
    active: dict[int, Worker] = {}
    exhausted = False
    grace = 15.0 if not isolate else 30.0

    def next_chunk() -> list[dict]:
        nonlocal exhausted
        out = []
        while pending and len(out) < chunk:
            out.append(pending.popleft())
        while not exhausted and len(out) < chunk:
            if deadline is not None and time.monotonic() > deadline:
                exhausted = True
                break
            try:
                out.append(next(cases_iter))
            except StopIteration:
                exhausted = True
        return out

    while True:
        for slot in range(jobs):
            if slot not in active:
                work = next_chunk()
                if work:
                    active[slot] = Worker(slot, work, tmp, timeout, events, isolate)
        if not active:
            break
        try:
            w, line = events.get(timeout=0.5)
        except queue.Empty:
            w, line = None, None
        now = time.monotonic()
        for other in list(active.values()):  # watchdog: stuck in compiled code
            limit = (timeout + grace) if other.current is not None else 120.0
            since = other.current_since if other.current is not None else other.last_event
            if now - since > limit and other.proc.poll() is None:
                other.kill()
                if other.current is not None:
                    record = {"id": other.current, "cls": "hung",
                              "detail": f"over {timeout:g} s (killed by the watchdog)",
                              "notes": [], "warnings": [], "seconds": round(now - since, 1)}
                    records[other.current] = record
                    if on_record:
                        on_record(other.by_id[other.current], record)
                    other.done_ids.append(other.current)
                    other.current = None
        if w is None or w.slot not in active or active[w.slot] is not w:
            continue
        if line is None:  # the worker is gone
            rc = w.proc.wait()
            if w.current is not None:  # died while running a case
                how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
                tail = "".join(w.stderr[-6:]).strip()[-600:]
                before = [w.by_id[i] for i in w.done_ids]
                crashes.append((w.by_id[w.current], before, f"{how}; stderr: {tail}"))
                w.done_ids.append(w.current)
                w.current = None
            pending.extendleft(reversed(w.remaining()))
            os.unlink(w.path)
            del active[w.slot]
            continue
        w.last_event = time.monotonic()
        if line == "READY":
            w.ready = True
        elif line.startswith("S "):
            w.current = int(line[2:])
            w.current_since = time.monotonic()
        elif line.startswith("R "):
            record = json.loads(line[2:])
            records[record["id"]] = record
            if on_record:
                on_record(w.by_id[record["id"]], record)
            w.done_ids.append(record["id"])
            w.current = None
    return records, crashes


def confirm(crashes, hung, *, tmp: str, timeout: float, on_record) -> list[dict]:
    """Re-run crashed and hung cases alone; find the culprit of a crash that needs company.

    Returns the final records of those cases (and of culprits found among the cases run
    before a crash)."""
    final = []
    for case in hung:  # a slow first compilation is not a hang: one more try, alone
        recs, crs = run_batches(iter([case]), jobs=1, tmp=tmp, timeout=2 * timeout,
                                deadline=None, isolate=True)
        rec = recs.get(case["id"]) or {"id": case["id"], "cls": "crashed",
                                       "detail": crs[0][2] if crs else "no result",
                                       "notes": [], "warnings": [], "seconds": 0}
        if rec["cls"] != "hung":
            rec["notes"] = [*rec.get("notes", []), "hung in its batch, finished alone"]
        else:
            rec["detail"] = f"over {2 * timeout:g} s also when run alone"
        final.append((case, rec))
    for case, before, how in crashes:
        recs, crs = run_batches(iter([case]), jobs=1, tmp=tmp, timeout=timeout, deadline=None,
                                isolate=True)
        if crs:
            final.append((case, {"id": case["id"], "cls": "crashed", "detail": crs[0][2],
                                 "notes": [], "warnings": [], "seconds": 0}))
            continue
        rec = dict(recs[case["id"]])
        rec["notes"] = [*rec.get("notes", []), f"worker died here ({how}) but not alone"]
        final.append((case, rec))
        culprits = []
        for earlier in before[-20:][::-1]:  # the most recent first
            _, crs = run_batches(iter([earlier]), jobs=1, tmp=tmp, timeout=timeout,
                                 deadline=None, isolate=True)
            if crs:
                culprits.append(earlier)
                final.append((earlier, {"id": earlier["id"], "cls": "crashed",
                                        "detail": f"{crs[0][2]} (found as the culprit of a "
                                                  f"later crash)",
                                        "notes": [], "warnings": [], "seconds": 0}))
                break
        if not culprits:
            seq = [*before[-20:], case]
            code = "\n".join(f"try:\n{_indent(c['code'])}\nexcept Exception:\n    pass"
                             for c in seq)
            final.append(({"id": -case["id"] - 1, "area": case["area"], "api": case["api"],
                           "code": code, "injected": []},
                          {"id": -case["id"] - 1, "cls": "crashed",
                           "detail": f"{how} (only after the cases before it)",
                           "notes": [], "warnings": [], "seconds": 0}))
    for case, rec in final:
        on_record(case, rec)
    return final


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())


def signature(case: dict, rec: dict) -> str:
    detail = rec["detail"]
    detail = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", detail)
    detail = re.sub(r"[-+]?\d[\d.e+-]*", "#", detail)
    detail = re.sub(r"/\S+", "<path>", detail)
    return f"{rec['cls']} | {case['api']} | {detail[:140]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds of case generation and running (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the case generator")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="worker subprocesses at once (default: cores, at most 4)")
    parser.add_argument("--chunk", type=int, default=30, help="cases per worker subprocess")
    parser.add_argument("--case-timeout", type=float, default=30.0, dest="case_timeout",
                        help="seconds before a case counts as hung (default 30)")
    parser.add_argument("--max-cases", type=int, dest="max_cases",
                        help="stop after this many cases")
    parser.add_argument("--areas", default=",".join(AREAS),
                        help=f"comma-separated subset of {', '.join(AREAS)}")
    parser.add_argument("--selftest", action="store_true",
                        help="run synthetic cases that crash, hang and fail, to check the "
                             "harness classifies them")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--isolate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.case_timeout, args.isolate)
    if args.budget <= 0 or args.jobs < 1 or args.chunk < 1 or args.case_timeout <= 0:
        parser.error("--budget, --jobs, --chunk and --case-timeout must be positive")
    areas = [a.strip() for a in args.areas.split(",") if a.strip()]
    unknown = set(areas) - set(AREAS)
    if unknown or not areas:
        parser.error(f"--areas: unknown {sorted(unknown)}; choose among {', '.join(AREAS)}")

    os.environ.setdefault("COLLAPSE_SIM_MAX_BYTES", str(2**30))  # refuse > 1 GiB runs
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    tmp = tempfile.mkdtemp(prefix="collapse-fuzz-")
    os.environ["FUZZ_TMP"] = tmp
    cases: dict[int, dict] = {}
    final: dict[int, dict] = {}

    def gen():
        if args.selftest:  # the harness itself: a crash, hangs, a crash that needs company
            for i, code in enumerate(SELFTEST):
                cases[i] = {"id": i, "area": "selftest", "api": f"selftest.{i}", "code": code,
                            "injected": []}
                yield cases[i]
            return
        i = 0
        while args.max_cases is None or i < args.max_cases:
            case = make_case(args.seed, i, areas)
            cases[i] = case
            yield case
            i += 1

    start = time.monotonic()
    last_print = [start]

    def on_record(case, rec):
        cases.setdefault(case["id"], case)
        final[case["id"]] = rec
        if time.monotonic() - last_print[0] > 15:
            last_print[0] = time.monotonic()
            counts = collections.Counter(r["cls"] for r in final.values())
            print(f"[{time.monotonic() - start:5.0f} s] {len(final)} cases: "
                  + ", ".join(f"{c} {counts[c]}" for c in CLASSES), flush=True)

    try:
        records, crashes = run_batches(gen(), jobs=args.jobs, tmp=tmp,
                                       timeout=args.case_timeout,
                                       deadline=start + args.budget, chunk=args.chunk,
                                       on_record=on_record)
        hung = [cases[i] for i, r in records.items() if r["cls"] == "hung"]
        confirm(crashes, hung, tmp=tmp, timeout=args.case_timeout, on_record=on_record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - start
    report = summarise(cases, final, args, elapsed)
    print_report(report)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1)
        print(f"wrote {args.out}")
    return 0


def summarise(cases, final, args, elapsed) -> dict:
    counts = collections.Counter(r["cls"] for r in final.values())
    by_area: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_api: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    groups: dict[str, dict] = {}
    notes: dict[str, dict] = {}
    warned: collections.Counter = collections.Counter()
    for cid, rec in final.items():
        case = cases[cid]
        if cid >= 0:
            by_area[case["area"]][rec["cls"]] += 1
            by_api[case["api"]][rec["cls"]] += 1
        for w in rec.get("warnings", []):
            warned[w] += 1
        if rec["cls"] not in ("clean", "rejected"):
            key = signature(case, rec)
            entry = groups.setdefault(key, {"signature": key, "class": rec["cls"],
                                            "api": case["api"], "detail": rec["detail"],
                                            "count": 0, "ids": [], "reproducer": None})
            entry["count"] += 1
            entry["ids"].append(cid)
            code = reproducer(case)
            if entry["reproducer"] is None or len(code) < len(entry["reproducer"]):
                entry["reproducer"], entry["detail"] = code, rec["detail"]
        for note in rec.get("notes", []):
            short = re.sub(r"[-+]?\d[\d.e+-]*", "#", note)[:120]
            key = f"{case['api']} | {short}"
            entry = notes.setdefault(key, {"note": key, "count": 0, "reproducer": None})
            entry["count"] += 1
            code = reproducer(case)
            if entry["reproducer"] is None or len(code) < len(entry["reproducer"]):
                entry["reproducer"] = code
    return {
        "seed": args.seed, "budget": args.budget, "elapsed": round(elapsed, 1),
        "tried": sum(1 for i in final if i >= 0),
        "counts": {c: counts[c] for c in CLASSES},
        "by_area": {a: {c: by_area[a][c] for c in CLASSES} for a in sorted(by_area)},
        "by_api": {a: {c: by_api[a][c] for c in CLASSES} for a in sorted(by_api)},
        "findings": sorted(groups.values(), key=lambda e: (CLASSES.index(e["class"]),
                                                           e["api"], -e["count"])),
        "notes": sorted(notes.values(), key=lambda e: -e["count"]),
        "warnings": dict(warned.most_common(40)),
        "cases": [{**cases[i], **{k: v for k, v in r.items() if k != "id"}}
                  for i, r in sorted(final.items())],
    }


def _short(code: str) -> str:
    """A reproducer without the shared preludes (named in a comment instead)."""
    used = ["PRELUDE"]
    for name, text in (("SKLEARN_PRELUDE", SKLEARN_PRELUDE), ("LOAD_PRELUDE", LOAD_PRELUDE)):
        if text in code:
            code = code.replace(text, "")
            used.append(name)
    code = code.replace(PRELUDE, "")
    return f"# after {' + '.join(used)} of benchmarks/fuzz.py\n{code.strip()}"


def print_report(report: dict) -> None:
    print(f"\n{report['tried']} cases in {report['elapsed']:.0f} s (seed {report['seed']})")
    width = max(len(a) for a in [*report["by_area"], "total"])
    print(f"{'':<{width}}  " + " ".join(f"{c:>9}" for c in CLASSES))
    for area, row in report["by_area"].items():
        print(f"{area:<{width}}  " + " ".join(f"{row[c]:>9}" for c in CLASSES))
    print(f"{'total':<{width}}  " + " ".join(f"{report['counts'][c]:>9}" for c in CLASSES))
    print(f"\n{len(report['findings'])} distinct findings (shortest reproducer of each):")
    for n, entry in enumerate(report["findings"], 1):
        print(f"\n--- [{n}] {entry['class'].upper()} x{entry['count']}  {entry['api']}")
        print(f"    {entry['detail']}")
        print(_indent(_short(entry["reproducer"])))
    if report["notes"]:
        print("\nnotes on accepted cases (review):")
        for entry in report["notes"][:40]:
            print(f"  x{entry['count']}  {entry['note']}")
            if not entry["note"].split(" | ", 1)[1].startswith(("inf in", "nan in")):
                print(_indent(_indent(_short(entry["reproducer"]))))
    if report["warnings"]:
        print("\nwarnings seen (count):")
        for w, k in list(report["warnings"].items())[:20]:
            print(f"  x{k}  {w}")


if __name__ == "__main__":
    sys.exit(main())
