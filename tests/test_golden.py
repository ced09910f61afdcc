"""Golden outputs: every case of ``tests/golden/make_golden.py`` gives what it gave when
``tests/golden/outputs.npz`` was frozen.

Each case re-runs ``simulate`` with the same description and compares every metric
array, every recorded model array and the JSON of ``sim.config`` with the stored ones;
a case ``simulate`` refused then must still be refused with the same exception type.
The keys, labels, file names and manifests of a few small sweeps are compared as well.

Bit identity holds on the platform that made the file: numba compiles its kernels for
the host CPU's instruction set and OpenBLAS picks its kernels by CPU, so another CPU (or
BLAS build, or numpy/numba/scikit-learn version) may round differently. The file stores
a fingerprint of that platform; where the current one differs, arrays are compared with
``np.allclose(rtol=1e-9, atol=1e-12)`` instead (and a warning says so). Regenerate the
file on the new platform (``python tests/golden/make_golden.py``) to get bit identity
back, after checking this looser test passes there. Configurations, refusals and sweep
keys are compared exactly everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parent / "golden" / "make_golden.py"
_SPEC = importlib.util.spec_from_file_location("_collapse_sim_make_golden", _PATH)
mg = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mg)

CASES = mg.build_cases()
RTOL, ATOL = 1e-9, 1e-12
META_KEYS = {"cases", "skipped", "sweep_keys", "fingerprint"}


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(mg.OUTPUT, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _json(golden, key):
    return json.loads(str(golden[key]))


@pytest.fixture(scope="module")
def exact(golden) -> bool:
    """Whether this is the platform the golden file was made on (bit identity expected)."""
    frozen, here = _json(golden, "fingerprint"), mg.fingerprint()
    if frozen == here:
        return True
    differ = sorted(k for k in frozen.keys() | here.keys() if frozen.get(k) != here.get(k))
    warnings.warn(f"golden outputs were made on another platform ({', '.join(differ)} "
                  f"differ): comparing with allclose(rtol={RTOL}, atol={ATOL}), not bit "
                  "for bit", stacklevel=2)
    return False


def _compare(key: str, new: np.ndarray, old: np.ndarray, exact: bool) -> None:
    assert new.shape == old.shape, f"{key}: shape {new.shape}, golden {old.shape}"
    assert new.dtype == old.dtype, f"{key}: dtype {new.dtype}, golden {old.dtype}"
    if new.dtype.kind in "US":
        assert str(new) == str(old), f"{key} differs"
        return
    if exact:
        if not np.array_equal(new, old, equal_nan=True):
            with np.errstate(invalid="ignore"):
                diff = np.abs(new.astype(float) - old.astype(float))
            raise AssertionError(
                f"{key}: not bit-identical to the golden output (max abs difference "
                f"{np.max(diff, initial=0.0, where=~np.isnan(diff)):.3g})\n"
                f"new:\n{new}\ngolden:\n{old}")
    else:
        # Another CPU/BLAS/library build (see the module docstring): rounding may differ.
        assert np.allclose(new, old, rtol=RTOL, atol=ATOL, equal_nan=True), (
            f"{key}: differs from the golden output beyond rtol={RTOL}, atol={ATOL} "
            f"(platform differs from the golden file's, so bit equality is not "
            f"required)\nnew:\n{new}\ngolden:\n{old}")


def test_case_list_is_the_frozen_one(golden):
    """The cases and the stored arrays match one to one (regenerate after editing CASES)."""
    assert _json(golden, "cases") == json.loads(json.dumps(CASES, sort_keys=True))
    skipped = _json(golden, "skipped")
    prefixes = {key.split("/", 1)[0] for key in golden if key not in META_KEYS}
    assert prefixes == {c["id"] for c in CASES} - set(skipped)
    assert set(_PARALLEL_3D) <= {c["id"] for c in CASES} - set(skipped)


def _check_case(case, golden, exact) -> None:
    cid = case["id"]
    skipped = _json(golden, "skipped")
    if cid in skipped:
        with pytest.raises(mg.REFUSED) as info:
            mg.run_case(case)
        assert type(info.value).__name__ == skipped[cid]["error"], str(info.value)
        return
    new = mg.run_case(case)
    stored = {key for key in golden if key.startswith(f"{cid}/")}
    assert set(new) == stored, f"{cid}: arrays {sorted(new)}, golden {sorted(stored)}"
    config = f"{cid}/config"
    assert json.loads(str(new[config])) == json.loads(str(golden[config]))
    for key in sorted(stored - {config}):
        _compare(key, new[key], golden[key], exact)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case, golden, exact):
    _check_case(case, golden, exact)


#: Every fitter on 1-D and regression truths (Replace, models recorded; the exact and the
#: explicit path of Gaussian fits), and each kernel family once in 3-D: the chain-parallel
#: builds pay a thread wake-up per call (milliseconds here), so not every case runs twice.
_PARALLEL_3D = (
    "gauss3d-gauss_mle-replace-exact-rec", "gauss3d-gauss_unbiased-replace-explicit-rec",
    "mix3d-gauss_mle-replace-auto-rec", "mix3d-em_kpp_full-replace-auto-rec",
    "mix3d-em_prev_diag-replace-auto-rec", "mix3d-sgd_gauss-replace-auto-rec",
    "mix3d-sgd_mix-replace-auto-rec",
)
PARALLEL_CASES = [c for c in CASES if c["id"] in _PARALLEL_3D or (
    c["record_models"] and c["policy"] == "replace"
    and c["truth"] in (*mg.ONE_D, *mg.REGRESSION_TRUTHS)
    and not (c["fitter"] in mg.GAUSSIAN_FITS and c["truth"] in mg.GAUSSIAN_TRUTHS
             and c["sampling"] == "auto"))]


@pytest.mark.parametrize("case", PARALLEL_CASES, ids=[c["id"] for c in PARALLEL_CASES])
def test_case_on_parallel_kernels(case, golden, exact, monkeypatch):
    """The golden sizes run numba's serial kernel builds (small jobs, see
    ``collapse_sim._kernels._dispatch``); the chain-parallel builds must agree."""
    dispatch = pytest.importorskip("collapse_sim._kernels._dispatch")
    if not hasattr(dispatch, "PARALLEL_MIN_WORK"):
        pytest.skip("no serial/parallel kernel dispatch threshold to force")
    monkeypatch.setattr(dispatch, "PARALLEL_MIN_WORK", 0)
    _check_case(case, golden, exact)


def test_sweep_keys(golden):
    """Sweep keys, labels, run-file names and manifests (what resuming a sweep relies on)."""
    new = json.loads(json.dumps(mg.sweep_keys(), sort_keys=True))
    old = _json(golden, "sweep_keys")
    assert new.keys() == old.keys()
    for name in old:
        assert new[name] == old[name], f"sweep {name!r} differs"
