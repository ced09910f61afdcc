"""Parameter sweeps: results, backends (joblib and a real dask cluster), resuming, CLI, docs."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

import collapse_sim as cs
import collapse_sim.sweeps as SW  # the package (``cs.sweep`` is its function ``sweep``)
from collapse_sim import cli
from collapse_sim.sweeps import backends

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]

BASE = dict(truth=cs.Gaussian(mean=0.0, var=1.0), fitter=cs.GaussianFit(), generations=30,
            chains=40, metrics=["variance", "w2", "tail_mass"])
GRID = {"n_samples": [5, 40], "policy": [cs.Replace(), cs.KeepReal(0.5), cs.Accumulate()]}
SEEDS = [0, 7]


def plain_loop(base, grid, seeds, threshold=SW.DEFAULT_THRESHOLD):
    """What a user would write: simulate in nested loops, the same summaries."""
    rows = []
    for n in grid["n_samples"]:
        for policy in grid["policy"]:
            for seed in seeds:
                sim = cs.simulate(**base, n_samples=n, policy=policy, seed=seed, progress=False)
                rows.append(SW.summarize(sim, threshold))
    return pd.DataFrame(rows)


def test_the_function_does_not_shadow_the_module():
    # cs.sweep is the function; the package that holds it is collapse_sim.sweeps, and no
    # module collapse_sim.sweep exists for the function to hide
    import importlib
    import pkgutil

    import collapse_sim
    import collapse_sim.sweeps as m

    assert callable(collapse_sim.sweep) and not isinstance(collapse_sim.sweep, type(m))
    assert collapse_sim.sweep.__module__ == "collapse_sim.sweeps"
    assert m.sweep is collapse_sim.sweep and m.summarize is SW.summarize
    from collapse_sim import sweep

    assert sweep is collapse_sim.sweep
    for info in pkgutil.walk_packages(collapse_sim.__path__, "collapse_sim."):
        importlib.import_module(info.name)
    importlib.import_module("collapse_sim.plotting")
    assert "collapse_sim.sweep" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("collapse_sim.sweep")
    assert collapse_sim.sweep is m.sweep  # importing everything rebound nothing


@pytest.fixture(scope="module")
def reference():
    return cs.sweep(BASE, GRID, seeds=SEEDS, backend="threading", n_jobs=1, progress=False)


def test_table_equals_a_plain_loop_over_simulate(reference):
    expected = plain_loop(BASE, GRID, SEEDS)
    pd.testing.assert_frame_equal(reference[expected.columns], expected, check_exact=True)
    # one row per configuration and seed, grid order then seed order
    assert len(reference) == 2 * 3 * 2
    assert reference["seed"].tolist() == SEEDS * 6
    assert reference["config"].tolist() == [c for c in range(6) for _ in SEEDS]
    # the summaries are what they claim, computed here from scratch
    sim = cs.simulate(**BASE, n_samples=40, policy=cs.Accumulate(), seed=7)
    row = reference[(reference.n_samples == 40) & (reference.policy == "Accumulate()")
                    & (reference.seed == 7)].iloc[0]
    assert row.final_w2_mean == np.mean(sim.metrics["w2"][-1])
    assert row.final_tail_mass_median == np.median(sim.metrics["tail_mass"][-1])
    assert row.final_variance_ratio == np.median(sim.metrics["variance"][-1])
    assert "final_kl_mean" not in reference.columns  # only metrics that were computed


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_joblib_backends_are_bit_identical(backend, reference):
    table = cs.sweep(BASE, GRID, seeds=SEEDS, backend=backend, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(table, reference, check_exact=True)
    assert table.attrs["computed"] == 12 and table.attrs["reused"] == 0


def test_readable_columns(reference):
    assert reference["n_samples"].dtype.kind == "i"
    assert list(dict.fromkeys(reference["policy"])) == [
        "Replace()", "KeepReal(fraction=0.5)", "Accumulate()"]
    # the varying dataclass field gets its own numeric column, NaN where there is none
    frac = reference.drop_duplicates("config")["policy_fraction"].to_numpy()
    np.testing.assert_array_equal(frac, [np.nan, 0.5, np.nan] * 2)
    assert reference["key"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert reference.groupby("config")["key"].nunique().eq(1).all()
    assert reference["key"].nunique() == 6
    # fitters too, and objects without dataclass fields get distinct labels
    two_d = [cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2)),
             cs.Gaussian(mean=[1.0, 0.0], cov=np.eye(2))]
    table = cs.sweep(dict(BASE, n_samples=10, generations=2, chains=3),
                     {"fitter": [cs.GaussianFit("mle"), cs.GaussianFit("unbiased")],
                      "truth": two_d}, seeds=[0], backend="threading", progress=False)
    assert table["fitter"].tolist()[::2] == ["GaussianFit(estimator='mle')",
                                             "GaussianFit(estimator='unbiased')"]
    assert table["fitter_estimator"].tolist() == ["mle", "mle", "unbiased", "unbiased"]
    assert table["truth"].nunique() == 2


def test_collapse_generation():
    base = dict(BASE, n_samples=10, generations=60, chains=200, metrics=["variance"])
    grid = {"policy": [cs.Replace(), cs.KeepReal(0.5)]}
    table = cs.sweep(base, grid, seeds=[1], threshold=0.2, backend="threading",
                     progress=False)
    sim = cs.simulate(**base, seed=1)
    median = np.median(sim.metrics["variance"], axis=1)
    first = int(np.flatnonzero(median < 0.2)[0])
    assert first >= 1 and (median[:first] >= 0.2).all()
    assert table.collapse_generation[0] == first
    assert np.isnan(table.collapse_generation[1])  # half real data: never collapses
    assert table.attrs["threshold"] == 0.2


def test_curves_are_quantiles_over_chains(reference):
    table, curves = cs.sweep(BASE, GRID, seeds=SEEDS, backend="threading", progress=False,
                             curves=True, quantiles=(0.25, 0.5))
    pd.testing.assert_frame_equal(table, reference, check_exact=True)
    assert len(curves) == 12 * (BASE["generations"] + 1)
    assert {"w2_mean", "w2_q25", "w2_q50", "tail_mass_q25", "variance_q50"} <= set(curves)
    sim = cs.simulate(**BASE, n_samples=5, policy=cs.KeepReal(0.5), seed=7)
    part = curves[(curves.config == 1) & (curves.seed == 7)]
    assert part["policy"].eq("KeepReal(fraction=0.5)").all()
    np.testing.assert_array_equal(part["generation"], np.arange(BASE["generations"] + 1))
    np.testing.assert_array_equal(part["w2_q25"], np.quantile(sim.metrics["w2"], 0.25, axis=1))
    np.testing.assert_array_equal(part["variance_mean"], sim.metrics["variance"].mean(axis=1))


def test_out_dir_resumes_and_refuses_another_sweep(tmp_path, reference):
    out = tmp_path / "runs"
    first = cs.sweep(BASE, GRID, seeds=SEEDS, backend="threading", out_dir=out, progress=False)
    pd.testing.assert_frame_equal(first, reference, check_exact=True)
    files = sorted(out.glob("*.npz"))
    assert len(files) == 12 and not list(out.glob("*.tmp"))
    assert {f.name for f in files} == {f"{k}-seed{s}.npz"
                                       for k, s in zip(first.key, first.seed, strict=True)}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seeds"] == SEEDS and manifest["format"] == SW.FORMAT
    stamps = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}

    again = cs.sweep(BASE, GRID, seeds=SEEDS, backend="threading", out_dir=out, progress=False)
    assert again.attrs == {**again.attrs, "computed": 0, "reused": 12}
    pd.testing.assert_frame_equal(again, reference, check_exact=True)
    assert stamps == {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}

    # curves were not kept: asking for them runs again and keeps them this time
    table, curves = cs.sweep(BASE, GRID, seeds=SEEDS, backend="threading", out_dir=out,
                             progress=False, curves=True)
    assert table.attrs["computed"] == 12
    _, cached = cs.sweep(BASE, GRID, seeds=SEEDS, backend="threading", out_dir=out,
                         progress=False, curves=True)
    pd.testing.assert_frame_equal(cached, curves, check_exact=True)

    with pytest.raises(ValueError, match=r"different sweep \(its grid differ"):
        cs.sweep(BASE, {"n_samples": [5]}, seeds=SEEDS, backend="threading", out_dir=out,
                 progress=False)
    with pytest.raises(ValueError, match="seeds, threshold differ"):
        cs.sweep(BASE, GRID, seeds=[0], threshold=0.5, backend="threading", out_dir=out,
                 progress=False)


KILL_SCRIPT = textwrap.dedent("""
    import sys
    import collapse_sim as cs
    base = dict(truth=cs.Gaussian(mean=0.0, var=1.0), fitter=cs.GaussianFit(),
                generations=40, chains=400, sampling="explicit", metrics=["variance"])
    grid = {"n_samples": [300 + i for i in range(10)]}  # about 0.1 s per run
    cs.sweep(base, grid, seeds=[3], backend="threading", n_jobs=1, out_dir=sys.argv[1],
             progress=False)
""")


@pytest.mark.slow
def test_killed_sweep_loses_nothing_that_finished(tmp_path):
    out = tmp_path / "runs"
    script = tmp_path / "run_sweep.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("*.npz")):
            assert proc.poll() is None, "the sweep ended before writing anything"
            assert time.monotonic() < deadline, "no result file within 60 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(out.glob("*.npz"))
    assert 1 <= len(done) < 10, "the sweep was not killed midway"
    stamps = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in done}

    namespace = {}
    exec(KILL_SCRIPT.replace("cs.sweep(", "table = cs.sweep(").replace("sys.argv[1]", "OUT"),
         {"OUT": out}, namespace)
    table = namespace["table"]
    assert table.attrs["reused"] == len(done)
    assert table.attrs["computed"] == 10 - len(done)
    assert stamps == {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in done}
    assert len(list(out.glob("*.npz"))) == 10

    base, grid = namespace["base"], namespace["grid"]
    fresh = cs.sweep(base, grid, seeds=[3], backend="threading", progress=False)
    pd.testing.assert_frame_equal(table, fresh, check_exact=True)


@pytest.mark.slow
def test_dask_local_cluster_is_bit_identical(tmp_path, monkeypatch, reference):
    distributed = pytest.importorskip("distributed")
    # worker processes import collapse_sim from this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.nthreads()) == 2
        table, curves = cs.sweep(BASE, GRID, seeds=SEEDS, backend="dask", client=client,
                                 progress=False, curves=True)
        pd.testing.assert_frame_equal(table, reference, check_exact=True)
        _, local_curves = cs.sweep(BASE, GRID, seeds=SEEDS, backend="loky", n_jobs=2,
                                   progress=False, curves=True)
        pd.testing.assert_frame_equal(curves, local_curves, check_exact=True)
        # by address, writing to out_dir; the worker processes did the runs
        by_address = cs.sweep(BASE, GRID, seeds=SEEDS, backend="dask",
                              client=cluster.scheduler_address, out_dir=tmp_path / "d",
                              progress=False)
        pd.testing.assert_frame_equal(by_address, reference, check_exact=True)
        assert len(list((tmp_path / "d").glob("*.npz"))) == 12
        assert client.status == "running"  # a client we were given stays open


# -- bad input: a clear error before any work -----------------------------------------------

@pytest.fixture
def no_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr(backends, "_run_job", forbidden)  # where the backends look it up


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(grid={"n_sample": [10]}), ValueError,
     r"unknown grid key 'n_sample'; simulate\(\) accepts truth, fitter, n_samples"),
    (dict(base=dict(BASE, colour=1)), ValueError, "unknown base key 'colour'"),
    (dict(grid={"seed": [1, 2]}), ValueError, "seeds="),
    (dict(base=dict(BASE, progress=True)), ValueError, "cannot set 'progress'"),
    (dict(grid={}), ValueError, "grid is empty"),
    (dict(grid={"n_samples": []}), ValueError, r"grid\['n_samples'\] is an empty list"),
    (dict(grid={"n_samples": 10}), TypeError, r"grid\['n_samples'\] must be a list"),
    (dict(grid={"n_samples": [10, 10]}), ValueError, "duplicate"),
    (dict(grid={"n_samples": ["a"]}), TypeError, "n_samples must be an int, got str"),
    (dict(grid={"n_samples": [10, 2.5]}), TypeError, r"configuration 1 \(n_samples=2.5\)"),
    (dict(grid={"n_samples": [10, 1]}), ValueError, "n_samples must be an int in"),
    (dict(grid={"n_samples": [10], "chains": [10, 0]}), ValueError,
     "chains must be an int in"),
    (dict(grid={"n_samples": [10], "policy": [cs.Replace(), "keep"]}), TypeError,
     "policy must be"),
    (dict(grid={"n_samples": [10], "metrics": [["variance"], ["nope"]]}), ValueError,
     "unknown metric 'nope'"),
    (dict(grid={"n_samples": [10], "policy": [cs.AccumulateSubsample(max_bytes=1000)]}),
     ValueError, "max_bytes"),
    (dict(base={k: v for k, v in BASE.items() if k != "truth"}), TypeError,
     r"simulate\(\) needs truth"),
    (dict(base=[("chains", 3)]), TypeError, "base must be a dict"),
    (dict(seeds=[]), ValueError, "seeds is empty"),
    (dict(seeds=["0"]), TypeError, "seeds must be non-negative ints"),
    (dict(seeds=[True]), TypeError, "seeds must be non-negative ints"),
    (dict(seeds=[-1]), ValueError, "non-negative"),
    (dict(seeds=[1, 1]), ValueError, "duplicates"),
    (dict(seeds=3), TypeError, "seeds must be a list"),
    (dict(backend="spark"), ValueError, "backend must be one of 'loky', 'threading', 'dask'"),
    (dict(client="tcp://127.0.0.1:8786"), ValueError, "client is for backend='dask'"),
    (dict(backend="dask", n_jobs=2), ValueError, "n_jobs does not apply"),
    (dict(n_jobs=0), ValueError, "n_jobs must be"),
    (dict(threshold=0), ValueError, "threshold"),
    (dict(curves=True, quantiles=[0.5, 2]), ValueError, "quantiles"),
])
def test_bad_input_fails_before_any_work(kwargs, error, match, no_work, tmp_path):
    args = dict(base=BASE, grid={"n_samples": [10, 20]}, seeds=[0], backend="threading",
                progress=False, out_dir=tmp_path / "out")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        cs.sweep(args.pop("base"), args.pop("grid"), **args)
    assert not (tmp_path / "out").exists()


def test_unreachable_dask_scheduler(monkeypatch, no_work, tmp_path):
    monkeypatch.setattr(backends, "DASK_CONNECT_TIMEOUT", 0.5)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"dask scheduler at 'tcp://127.0.0.1:1'"):
        cs.sweep(BASE, GRID, seeds=[0], backend="dask", client="tcp://127.0.0.1:1",
                 out_dir=tmp_path / "out", progress=False)
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out").exists()
    with pytest.raises(TypeError, match="client must be"):
        cs.sweep(BASE, GRID, seeds=[0], backend="dask", client=42, progress=False)


def test_runtime_errors_name_the_run():
    # a diverging SGD fit is only found by running; the error says which run it was
    fit = cs.SGDGaussianFit(learning_rate=50.0, batch_size=2, epochs=1)
    base = dict(BASE, fitter=fit, generations=3, chains=2, metrics=["variance"])
    with pytest.raises(FloatingPointError) as info:
        cs.sweep(base, {"n_samples": [4]}, seeds=[0], backend="threading", progress=False)
    assert "in the sweep run of seed 0" in "\n".join(getattr(info.value, "__notes__", []))


# -- TOML specs, the command line, the figure, the docs -------------------------------------

def test_cli_runs_the_example_spec_and_resumes(tmp_path, capsys):
    spec = ROOT / "examples" / "sweep_spec.toml"
    args = ["sweep", str(spec), "--out", str(tmp_path), "--backend", "threading"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "32 runs (32 computed, 0 reused" in out and "collapse_generation" in out
    table = pd.read_csv(tmp_path / "sweep_spec.csv")
    assert len(table) == 4 * 4 * 2
    assert set(table.policy) == {"Replace()", "KeepReal(fraction=0.05)",
                                 "KeepReal(fraction=0.2)", "Accumulate()"}
    # the table is the sweep: Replace collapses, and later for larger samples
    replace = table[table.policy == "Replace()"].groupby("n_samples").collapse_generation.median()
    assert replace.is_monotonic_increasing and replace.notna().all()
    assert table[table.policy == "Accumulate()"].collapse_generation.isna().all()
    try:  # Parquet is written when pyarrow is installed (not a dependency), else not at all
        import pyarrow  # noqa: F401
    except ImportError:
        assert not (tmp_path / "sweep_spec.parquet").exists()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sweep_spec.parquet"), table,
                                      check_dtype=False)
    assert (tmp_path / "sweep_spec.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main([*args, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "reused" not in out and f"wrote {tmp_path / 'sweep_spec.csv'}" in out
    assert pd.read_csv(tmp_path / "sweep_spec.csv").equals(table)


def test_cli_and_spec_errors(tmp_path, capsys):
    assert cli.main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path)]) == 2
    assert "missing.toml" in capsys.readouterr().err
    cases = {
        'n_sample = [10]': "unknown grid key 'n_sample'",
        'n_samples = ["a"]': "n_samples must be an int",
        'policy = [{ type = "KeepMost" }]': "grid.policy[0]: unknown type 'KeepMost'",
        'policy = [{ fraction = 0.1 }]': "must name its class",
        'policy = [{ type = "KeepReal", fraction = 2.0 }]': "grid.policy[0]: fraction",
        'n_samples = 10': "grid.n_samples must be an array",
    }
    for line, message in cases.items():
        spec = tmp_path / "bad.toml"
        spec.write_text('[base]\ntruth = { type = "Gaussian", mean = 0.0, var = 1.0 }\n'
                        'fitter = { type = "GaussianFit" }\ngenerations = 2\nn_samples = 5\n'
                        f'[grid]\n{line}\n[sweep]\nseeds = [0]\n')
        assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2, line
        assert message in capsys.readouterr().err, line
    spec.write_text("[grid]\nn_samples = [5]\n[sweep]\nseeds = [0]\nbackground = 1\n")
    with pytest.raises(ValueError, match=r"unknown \[sweep\] option"):
        SW.read_spec(spec)
    spec.write_text("[grid]\nn_samples = [5]\n")
    with pytest.raises(ValueError, match="must give seeds"):
        SW.read_spec(spec)
    spec.write_text("[grids]\nn_samples = [5]\n")
    with pytest.raises(ValueError, match="unknown section"):
        SW.read_spec(spec)


def test_sweep_summary_figure(reference):
    from collapse_sim import plotting

    ax = plotting.sweep_summary(reference, x="n_samples", y="collapse_generation",
                                hue="policy")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["Replace()", "KeepReal(fraction=0.5)", "Accumulate()"]
    assert "never" in labels[-1]  # KeepReal(0.5) and Accumulate never collapse
    ax = plotting.sweep_summary(reference, x="policy", y="final_w2_mean", hue=None)
    assert ax.get_xticklabels()[0].get_text() == "Replace()"
    with pytest.raises(ValueError, match="no column 'chains'"):
        plotting.sweep_summary(reference, x="chains")
    matplotlib.pyplot.close("all")


def test_docs_page_runs_and_ships_the_example_spec(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "sweeps.rst").read_text()
    blocks = re.findall(r"\.\. code-block:: (\w+)\n\n((?:(?:   .*)?\n)+)", text)
    toml = [textwrap.dedent(b) for kind, b in blocks if kind == "toml"]
    assert toml and toml[0].strip() == (ROOT / "examples" / "sweep_spec.toml").read_text().strip()
    python = [textwrap.dedent(b) for kind, b in blocks if kind == "python"]
    assert len(python) >= 5
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    for block in python:
        exec(compile(block, "docs/sweeps.rst", "exec"), namespace)
