"""Freeze golden outputs of ``collapse_sim``: run from the repository root as

    python tests/golden/make_golden.py

It rewrites ``tests/golden/outputs.npz`` (and nothing else) with, for every case of
:func:`build_cases` that ``simulate`` accepts, every metric array, every recorded model
array and the run's ``config`` (as JSON); the cases ``simulate`` rejects (``TypeError`` /
``ValueError``) are listed under ``skipped`` with the exception. It also freezes the keys,
labels, file names and manifest of a few small sweeps (``sweep_keys``) and a fingerprint
of the platform the file was made on (``fingerprint``: bit identity holds only there).

``tests/test_golden.py`` imports this file (by path) for the case list and the runners, so
that both define every case once.

Layout of the npz (keys; every value an array, strings as 0-d unicode arrays):

- ``<case_id>/metric/<name>``: ``sim.metrics[name]``, ``(generations + 1, chains)``;
- ``<case_id>/model/<name>``: ``sim.models[name]`` (cases with ``record_models``);
- ``<case_id>/config``: ``json.dumps(sim.config, sort_keys=True)``;
- ``cases``: JSON list of every case description (run and skipped);
- ``skipped``: JSON ``{case_id: {"error": type name, "message": str}}``;
- ``sweep_keys``: JSON, see :func:`sweep_keys`;
- ``fingerprint``: JSON, see :func:`fingerprint`.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

import collapse_sim as cs

OUTPUT = Path(__file__).resolve().parent / "outputs.npz"

SEED = 12345
GENERATIONS = 3
CHAINS = 3
#: scikit-learn fitters loop over chains in Python: fewer chains keep them quick.
SKLEARN_CHAINS = 2

# -- the objects a case names ------------------------------------------------------------------

#: A fixed symmetric positive definite 3x3 covariance with correlations of both signs.
COV3 = [[1.0, 0.5, 0.2], [0.5, 2.0, -0.3], [0.2, -0.3, 0.5]]
COV3_B = [[0.8, -0.2, 0.1], [-0.2, 0.6, 0.15], [0.1, 0.15, 1.2]]

TRUTHS = {
    "gauss1d": lambda: cs.Gaussian(mean=0.0, var=1.0),
    "gauss3d": lambda: cs.Gaussian(mean=[0.0, 1.0, -1.0], cov=COV3),
    "mix1d": lambda: cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0], [2.0]],
                                        covs=[[[1.0]], [[1.0]]]),
    "mix3d": lambda: cs.GaussianMixture(weights=[0.4, 0.6],
                                        means=[[-1.5, 0.0, 1.0], [1.5, 0.5, -1.0]],
                                        covs=[COV3, COV3_B]),
    "reg_fresh": lambda: cs.LinearRegression(weights=[1.0, -1.0, 0.5], noise_std=1.0,
                                             design="fresh"),
    "reg_fixed": lambda: cs.LinearRegression(weights=[1.0, -1.0, 0.5], noise_std=1.0,
                                             design="fixed"),
}
#: Truths of dimension 1 (the scikit-learn fitters run only on these) and regressions.
ONE_D = ("gauss1d", "mix1d")
GAUSSIAN_TRUTHS = ("gauss1d", "gauss3d")
REGRESSION_TRUTHS = ("reg_fresh", "reg_fixed")
MIXTURE_TRUTHS = ("mix1d", "mix3d")
#: Training-set size per truth (every fitter's min_points fits under every policy).
N_SAMPLES = {"gauss1d": 16, "gauss3d": 16, "mix1d": 24, "mix3d": 24,
             "reg_fresh": 20, "reg_fixed": 20}


def _sk_gmm():
    from sklearn.mixture import GaussianMixture

    return cs.SklearnFitter(GaussianMixture(2, max_iter=20))


def _sk_kde():
    from sklearn.neighbors import KernelDensity

    return cs.SklearnFitter(KernelDensity(bandwidth=0.5))


FITTERS = {
    "gauss_mle": lambda: cs.GaussianFit("mle"),
    "gauss_unbiased": lambda: cs.GaussianFit("unbiased"),
    "em_kpp_full": lambda: cs.GaussianMixtureFit(2, max_iter=20, tol=1e-3, init="kmeans++",
                                                 covariance_type="full"),
    "em_kpp_diag": lambda: cs.GaussianMixtureFit(2, max_iter=20, tol=1e-3, init="kmeans++",
                                                 covariance_type="diag"),
    "em_prev_full": lambda: cs.GaussianMixtureFit(2, max_iter=20, tol=1e-3, init="previous",
                                                  covariance_type="full"),
    "em_prev_diag": lambda: cs.GaussianMixtureFit(2, max_iter=20, tol=1e-3, init="previous",
                                                  covariance_type="diag"),
    "sgd_gauss": lambda: cs.SGDGaussianFit(learning_rate=0.05, batch_size=8, epochs=2),
    "sgd_mix": lambda: cs.SGDMixtureFit(n_components=2, learning_rate=0.05, batch_size=8,
                                        epochs=2),
    "sk_gmm": _sk_gmm,
    "sk_kde": _sk_kde,
    "ols": lambda: cs.OLSFit(),
    "ols_ridge_est": lambda: cs.OLSFit(ridge=0.1, noise="estimate"),
    "sgd_reg": lambda: cs.SGDRegressionFit(learning_rate=0.05, batch_size=8, epochs=2),
}
GAUSSIAN_FITS = ("gauss_mle", "gauss_unbiased")
SKLEARN_FITTERS = ("sk_gmm", "sk_kde")
REGRESSION_FITTERS = ("ols", "ols_ridge_est", "sgd_reg")

POLICIES = {
    "replace": lambda: cs.Replace(),
    "keepreal": lambda: cs.KeepReal(0.25),
    "accumulate": lambda: cs.Accumulate(),
    "accsub": lambda: cs.AccumulateSubsample(),
    "freshreal": lambda: cs.FreshReal(0.5),
    "augment": lambda: cs.Augment(0.5),
}
#: Policies under which the main grid records models (every truth x fitter pair).
RECORD_POLICIES = ("replace", "augment")


# -- the cases --------------------------------------------------------------------------------

def _case(truth, fitter, policy, sampling="auto", metrics=None, record_models=False) -> dict:
    chains = SKLEARN_CHAINS if fitter in SKLEARN_FITTERS else CHAINS
    parts = [truth, fitter, policy, sampling]
    if metrics is not None:  # "m_default+l2": the default metrics and l2
        default = cs.metrics.DEFAULT
        names = (["default"] if set(default) <= set(metrics) else []) + [
            m for m in metrics if not (set(default) <= set(metrics) and m in default)]
        parts.append("m_" + "+".join(names))
    if record_models:
        parts.append("rec")
    return {"id": "-".join(parts), "truth": truth, "fitter": fitter, "policy": policy,
            "sampling": sampling, "metrics": None if metrics is None else list(metrics),
            "record_models": record_models, "n_samples": N_SAMPLES[truth],
            "generations": GENERATIONS, "chains": chains, "seed": SEED}


def build_cases() -> list[dict]:
    """Every case, as a JSON-able dict (``id`` unique); valid or not (see ``skipped``)."""
    cases = []
    for truth in TRUTHS:
        for fitter in FITTERS:
            if fitter in SKLEARN_FITTERS and truth not in ONE_D:
                continue  # one Python-level fit per chain: 1-D truths only, by choice
            if (truth in REGRESSION_TRUTHS) != (fitter in REGRESSION_FITTERS):
                # the wrong family: simulate must refuse it (once per pair, recorded skipped)
                cases.append(_case(truth, fitter, "replace"))
                continue
            for policy in POLICIES:
                record = policy in RECORD_POLICIES and fitter != "sk_kde"
                if fitter in GAUSSIAN_FITS and truth in GAUSSIAN_TRUTHS:
                    # "exact" is refused under AccumulateSubsample: recorded as skipped
                    samplings = ("exact", "explicit", "auto")
                else:
                    samplings = ("auto",)
                for sampling in samplings:
                    cases.append(_case(truth, fitter, policy, sampling, record_models=record))
    # the L2 distance, defined between mixtures: every fitter of every mixture truth
    for truth in MIXTURE_TRUTHS:
        for fitter in FITTERS:
            if fitter in REGRESSION_FITTERS or (fitter in SKLEARN_FITTERS and truth not in ONE_D):
                continue
            cases.append(_case(truth, fitter, "replace",
                               metrics=(*cs.metrics.DEFAULT, "l2")))
    # a few requests simulate refuses (recorded as skipped)
    cases += [
        _case("gauss1d", "sk_kde", "replace", record_models=True),  # no components to record
        _case("mix1d", "gauss_mle", "replace", "exact"),  # mixture truth: no Wishart law
        _case("gauss1d", "sgd_gauss", "replace", "exact"),  # SGD needs the points
        _case("gauss1d", "gauss_mle", "replace", metrics=("test_error",)),
        _case("reg_fresh", "ols", "replace", metrics=("variance",)),
    ]
    ids = [c["id"] for c in cases]
    if len(set(ids)) != len(ids):
        raise AssertionError("duplicate case ids")
    return cases


def simulate_kwargs(case: dict) -> dict:
    """The ``simulate`` arguments of a case, with fresh objects."""
    kwargs = {"truth": TRUTHS[case["truth"]](), "fitter": FITTERS[case["fitter"]](),
              "policy": POLICIES[case["policy"]](), "sampling": case["sampling"],
              "record_models": case["record_models"], "n_samples": case["n_samples"],
              "generations": case["generations"], "chains": case["chains"],
              "seed": case["seed"], "progress": False}
    if case["metrics"] is not None:
        kwargs["metrics"] = tuple(case["metrics"])
    return kwargs


def run_case(case: dict) -> dict[str, np.ndarray]:
    """``{key: array}`` of one case (keys prefixed ``<case_id>/``); raises what simulate raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. scikit-learn's ConvergenceWarning
        sim = cs.simulate(**simulate_kwargs(case))
    cid = case["id"]
    out = {f"{cid}/metric/{name}": np.asarray(arr) for name, arr in sim.metrics.items()}
    if sim.models is not None:
        out.update({f"{cid}/model/{name}": np.asarray(arr) for name, arr in sim.models.items()})
    out[f"{cid}/config"] = np.array(json.dumps(sim.config, sort_keys=True))
    return out


#: What simulate may raise for a request it refuses.
REFUSED = (TypeError, ValueError)


# -- sweep keys -------------------------------------------------------------------------------

def _sweeps() -> dict[str, tuple[dict, dict]]:
    """Small sweeps ``{name: (base, grid)}``: 25 configurations of every kind."""
    t, f, p = TRUTHS, FITTERS, POLICIES
    small = {"generations": 1, "chains": 1}
    return {
        "truths": ({**small, "fitter": f["gauss_mle"](), "n_samples": 16,
                    "metrics": ["variance", "w2"]},
                   {"truth": [t[name]() for name in ("gauss1d", "gauss3d", "mix1d", "mix3d")]}),
        "fitters": ({**small, "truth": t["mix1d"](), "n_samples": 24,
                     "metrics": ["variance", "w2"]},
                    {"fitter": [f[name]() for name in ("gauss_unbiased", "em_prev_diag",
                                                       "sgd_gauss", "sgd_mix", "sk_gmm")]}),
        "policies": ({**small, "truth": t["gauss1d"](), "fitter": f["gauss_mle"](),
                      "n_samples": 16, "metrics": ["variance"]},
                     {"policy": [make() for make in p.values()]}),
        "regression": ({**small, "n_samples": 20},
                       {"truth": [t["reg_fresh"](), t["reg_fixed"]()],
                        "fitter": [f[name]() for name in REGRESSION_FITTERS]}),
        "sizes": ({**small, "truth": t["gauss1d"](), "fitter": f["gauss_unbiased"]()},
                  {"n_samples": [12, 20], "sampling": ["auto", "explicit"]}),
    }


def sweep_keys() -> dict:
    """Per small sweep: its table's identifying columns (``key`` and the labels), the names
    of the files it writes to ``out_dir`` and its manifest, with each run file's ``key``
    and canonical ``config`` (what resuming a sweep matches on)."""
    out = {}
    for name, (base, grid) in _sweeps().items():
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = cs.sweep(base, grid, seeds=[0, 7], backend="threading", n_jobs=1,
                             progress=False, out_dir=tmp)
            files = sorted(p.name for p in Path(tmp).iterdir())
            manifest = json.loads((Path(tmp) / "manifest.json").read_text())
            runs = {}
            for fname in files:
                if fname.endswith(".npz"):
                    with np.load(Path(tmp) / fname, allow_pickle=False) as data:
                        meta = json.loads(str(data["__meta__"]))
                    runs[fname] = {k: meta[k] for k in ("format", "key", "seed", "config")}
        ident = ["config", "key", *[c for c in table.columns
                                    if c in grid or any(c.startswith(f"{g}_") for g in grid)],
                 "seed"]
        rows = json.loads(table[ident].to_json(orient="records"))
        out[name] = {"columns": ident, "rows": rows, "parameters": table.attrs["parameters"],
                     "files": files, "manifest": manifest, "runs": runs}
    return out


# -- platform fingerprint ---------------------------------------------------------------------

def _cpu() -> tuple[str, str]:
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value.strip()
    except OSError:
        model = platform.processor()
    return model, hashlib.sha256(flags.encode()).hexdigest()[:16]


def fingerprint() -> dict:
    """What bit identity depends on: CPU (numba compiles for the host's instruction set,
    OpenBLAS picks kernels by CPU), the BLAS build and the numerical libraries' versions."""
    import llvmlite
    import numba
    import scipy
    import scipy.linalg  # loads scipy's BLAS, so that threadpoolctl lists it
    import sklearn

    model, flags = _cpu()
    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = sorted({(i.get("internal_api"), i.get("version"), i.get("architecture"))
                       for i in threadpool_info() if i.get("user_api") == "blas"}, key=str)
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        pass
    return {"machine": platform.machine(), "system": platform.system(),
            "libc": "-".join(platform.libc_ver()), "cpu_model": model, "cpu_flags": flags,
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "sklearn": sklearn.__version__,
            "numba": numba.__version__, "llvmlite": llvmlite.__version__,
            "blas": [list(b) for b in blas]}


# -- writing ----------------------------------------------------------------------------------

def generate(verbose: bool = False) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    skipped: dict[str, dict] = {}
    cases = build_cases()
    for case in cases:
        start = time.perf_counter()
        try:
            arrays.update(run_case(case))
        except REFUSED as exc:
            skipped[case["id"]] = {"error": type(exc).__name__, "message": str(exc)}
        if verbose:
            status = "skipped" if case["id"] in skipped else "ok"
            print(f"{time.perf_counter() - start:7.3f} s {status:8s}{case['id']}", flush=True)
    arrays["cases"] = np.array(json.dumps(cases, sort_keys=True))
    arrays["skipped"] = np.array(json.dumps(skipped, sort_keys=True))
    arrays["sweep_keys"] = np.array(json.dumps(sweep_keys(), sort_keys=True))
    arrays["fingerprint"] = np.array(json.dumps(fingerprint(), sort_keys=True))
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``np.load``-able npz whose bytes depend only on ``arrays`` (sorted members, fixed
    timestamps), so regenerating an unchanged file leaves it byte-identical."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    tmp.replace(path)


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    start = time.perf_counter()
    arrays = generate(verbose=verbose)
    write_npz(OUTPUT, arrays)
    cases = json.loads(str(arrays["cases"]))
    skipped = json.loads(str(arrays["skipped"]))
    print(f"{OUTPUT}: {len(cases)} cases, {len(cases) - len(skipped)} run, {len(skipped)} "
          f"skipped; {len(arrays)} arrays, {OUTPUT.stat().st_size / 1024:.0f} KiB, "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
