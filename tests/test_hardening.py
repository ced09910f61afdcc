"""Inputs that crashed the interpreter or were silently accepted (issue 12, first slice).

Each case that crashed runs in a subprocess, so a regression shows as a failed test,
not as a dead test run.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim.sampling import chain_streams


def run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("init", [
    "cs.GaussianMixture(weights=[.5, .5], means=[[0.], [1.]], covs=[[[1.]], [[1.]]])",  # 1-D
    "cs.GaussianMixture(weights=[1/3] * 3, means=np.zeros((3, 2)), covs=[np.eye(2)] * 3)",  # K=3
    "cs.Gaussian(mean=[0., 0.], cov=np.eye(2))",  # not a mixture
])
def test_mismatched_init_model_is_refused_not_a_heap_corruption(init):
    # was: free(): invalid size / SIGSEGV, often at a later garbage collection
    proc = run_isolated(f"""
        import gc, numpy as np, collapse_sim as cs
        x = np.random.default_rng(0).standard_normal((3, 50, 2))
        try:
            cs.GaussianMixtureFit(2).fit(x, seed=0, init_model={init})
        except (ValueError, TypeError) as err:
            print("refused:", err)
        gc.collect()
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: init_model" in proc.stdout


def test_standard_normal_out_with_more_rows_than_streams_is_refused():
    proc = run_isolated("""
        import numpy as np
        from collapse_sim.sampling import chain_streams
        try:
            chain_streams(0, 2).standard_normal(4, 1, out=np.empty((1000, 4, 1)))
        except ValueError as err:
            print("refused:", err)
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: out must be" in proc.stdout


def test_standard_normal_out_is_filled_when_it_fits():
    out = np.empty((3, 4, 2))
    got = chain_streams(5, 3).standard_normal(4, 2, out=out)
    assert got is out
    np.testing.assert_array_equal(out, chain_streams(5, 3).standard_normal(4, 2))


def test_metrics_of_models_of_another_dimension_are_refused():
    # was: kl(mix_3d, mix_2d) = -1.39 from out-of-bounds reads
    mix3 = cs.GaussianMixture(weights=[.5, .5], means=np.zeros((2, 3)), covs=[np.eye(3)] * 2)
    mix2 = cs.GaussianMixture(weights=[.5, .5], means=np.zeros((2, 2)), covs=[np.eye(2)] * 2)
    for fn in (cs.metrics.kl, cs.metrics.w2, cs.metrics.tail_mass, cs.metrics.variance):
        with pytest.raises(ValueError, match="same shape"):
            fn(mix3, mix2)


@pytest.mark.parametrize("size, k", [(20, 5), (10, 11)])
def test_subsample_beyond_the_pool_is_refused(size, k):
    # was: values like 3e257 (size beyond the pool) or an endless loop in numba (k > size)
    from collapse_sim.sampling import subsample

    pool = np.zeros((2, 10, 1))
    with pytest.raises(ValueError, match=r"size|k"):
        subsample(pool, size, k, chain_streams(0, 2))


@pytest.mark.parametrize("make", [
    lambda: cs.Gaussian(mean=True, var=1.0),
    lambda: cs.Gaussian(mean=0.0, var="2"),
    lambda: cs.GaussianMixture(weights=[True, False], means=[[0.], [1.]], covs=[[[1.]], [[1.]]]),
    lambda: cs.Categorical(["0.5", "0.5"]),
    lambda: cs.LinearRegression(weights=[1, "2"]),
])
def test_booleans_and_strings_are_not_numbers(make):
    with pytest.raises(TypeError, match="real numbers"):
        make()


@pytest.mark.parametrize("name", ["gmm", "mismatch", "error_sources", "policies", "vocabulary",
                                  "gaussian"])
def test_cli_zero_generations_is_one_line_and_exit_2(name, tmp_path):
    # was: an IndexError traceback (gmm, mismatch, error_sources) or "Data cannot be
    # log-scaled" (policies) after the simulation had run
    proc = subprocess.run([sys.executable, "-m", "collapse_sim.cli", "run", name,
                           "--generations", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "generations" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("make, name", [
    (lambda: cs.SGDGaussianFit(epochs=10**19), "epochs"),  # was: silently 0 epochs
    (lambda: cs.SGDGaussianFit(epochs=2**63 - 1), "epochs"),  # was: an endless loop in numba
    (lambda: cs.SGDMixtureFit(batch_size=2**40), "batch_size"),
    (lambda: cs.GaussianMixtureFit(max_iter=10**20), "max_iter"),
    (lambda: cs.GaussianMixtureFit(n_components=10**9), "n_components"),
])
def test_integer_parameters_have_upper_bounds(make, name):
    with pytest.raises(ValueError, match=rf"{name} must be an int in \[1, \d+\]"):
        make()


@pytest.mark.parametrize("kw", [{"n_samples": 10**30}, {"generations": 2**63}, {"chains": 2**40}])
def test_simulate_sizes_have_upper_bounds(kw):
    args = {"n_samples": 10, "generations": 2, "chains": 2, **kw}
    with pytest.raises(ValueError, match=next(iter(kw))):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), seed=0, **args)


@pytest.mark.parametrize("seed", range(4))
def test_diverging_sgd_is_a_floating_point_error_naming_generation_and_chain(seed):
    # was: a bare ZeroDivisionError from inside the 2-D kernel for some seeds
    truth = cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2))
    with pytest.raises(FloatingPointError, match=r"generation \d+: the fit of chain \d+"):
        cs.simulate(truth, cs.SGDGaussianFit(learning_rate=2, batch_size=10), n_samples=50,
                    generations=20, chains=8, seed=seed)


def test_diverged_regression_weights_are_not_finite():
    # a weight vector whose squared norm overflows would give test_error = inf
    big = cs.LinearRegression(weights=[[1e200, 0.0], [1.0, 2.0]])
    np.testing.assert_array_equal(big.finite(), [False, True])


def test_numpy_scalars_become_plain_numbers_and_results_save(tmp_path):
    # was: simulate succeeded, then save() failed: "float32 is not JSON serializable"
    policy = cs.KeepReal(np.float32(0.25))
    fitter = cs.SGDGaussianFit(learning_rate=np.float32(0.05), batch_size=np.int64(8))
    assert type(policy.fraction) is float and type(fitter.batch_size) is int
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), fitter, n_samples=20, generations=2,
                      chains=2, seed=0, policy=policy)
    back = cs.Simulation.load(sim.save(tmp_path / "run.npz"))
    assert back.config["policy"] == {"type": "KeepReal", "fraction": 0.25}


def test_summary_quantile_columns_are_distinct_and_validated():
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=10,
                      generations=3, chains=5, seed=0, metrics="variance")
    table = sim.summary(quantiles=[0.001, 0.002, 0.5])  # was: two columns named q00
    assert list(table.columns) == ["mean", "q0.1", "q0.2", "q50"]
    for bad, error in (([0.5, 0.5], ValueError), ([1.5], ValueError), ("0.5", TypeError)):
        with pytest.raises(error, match="quantiles"):
            sim.summary(quantiles=bad)
    with pytest.raises(TypeError, match="generations"):  # was: "12" read as [1, 2]
        sim.summary(generations="12")


def _saved(tmp_path):
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=10,
                      generations=3, chains=4, seed=0, metrics=("variance", "w2"))
    return sim.save(tmp_path / "run.npz")


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "no_meta", "bad_json",
                                    "huge_header"])
def test_damaged_simulation_files_give_a_value_error_naming_the_file(tmp_path, damage):
    # was: BadZipFile / EOFError / KeyError without the path, or a 1 GB allocation
    import io
    import zipfile

    path = _saved(tmp_path)
    raw = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "text":
        path.write_text("hello")
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(buf, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if damage == "no_meta" and info.filename == "__meta__.npy":
                    continue
                if damage == "bad_json" and info.filename == "__meta__.npy":
                    out = io.BytesIO()
                    np.save(out, np.array("{not json"))
                    data = out.getvalue()
                if damage == "huge_header" and info.filename.startswith("metric__w2"):
                    out = io.BytesIO()
                    np.lib.format.write_array_header_1_0(
                        out, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
                    data = out.getvalue() + data[-64:]
                dst.writestr(info.filename, data)
        path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match=str(path.name)):
        cs.Simulation.load(path)


def test_a_damaged_sweep_run_file_is_run_again(tmp_path):
    # was: BadZipFile / EOFError escaping the store, KeyError without a summary
    base = {"truth": cs.Gaussian(mean=0.0, var=1.0), "fitter": cs.GaussianFit(),
            "generations": 3, "chains": 4}
    grid = {"n_samples": [10, 20]}
    first = cs.sweep(base, grid, seeds=[0], out_dir=tmp_path, backend="threading",
                     progress=False)
    for run in sorted(tmp_path.glob("*.npz"))[:1]:
        run.write_bytes(run.read_bytes()[:40])
    with pytest.warns(UserWarning, match="running it again"):
        again = cs.sweep(base, grid, seeds=[0], out_dir=tmp_path, backend="threading",
                         progress=False)
    pd_cols = [c for c in first.columns if c.startswith("final")]
    np.testing.assert_array_equal(first[pd_cols].to_numpy(), again[pd_cols].to_numpy())
    assert again.attrs["computed"] == 1


def test_a_manifest_that_is_not_an_object_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("[1, 2]")
    base = {"truth": cs.Gaussian(mean=0.0, var=1.0), "fitter": cs.GaussianFit(),
            "generations": 2, "chains": 2}
    with pytest.raises(ValueError, match="not a sweep manifest"):
        cs.sweep(base, {"n_samples": [10]}, seeds=[0], out_dir=tmp_path, progress=False)


@pytest.mark.parametrize("kappa", [1e3, 1e7, 1e10])
def test_w2_of_an_ill_conditioned_truth_has_no_floor(kappa):
    # was: W2(Sigma, (1 + e) Sigma) ~ sqrt(lambda_min) once cond(Sigma) > 1e7 (row 0 of
    # every 3-D result non-zero); the exact value is sqrt(tr Sigma) (sqrt(1 + e) - 1)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    sigma = (q * np.array([1.0, kappa**-0.5, 1.0 / kappa])) @ q.T
    sigma = 0.5 * (sigma + sigma.T)
    truth = cs.Gaussian(mean=np.zeros(3), cov=sigma)
    near = cs.Gaussian(mean=np.zeros(3), cov=sigma * (1 + 1e-12))
    exact = np.sqrt(np.trace(sigma)) * (np.sqrt(1 + 1e-12) - 1)
    assert cs.metrics.w2(truth, truth)[0] == 0.0
    # rounding of the factorisations grows with sqrt(kappa): 1e-15 * sqrt(kappa) bounds it
    assert abs(cs.metrics.w2(truth, near)[0] - exact) < 1e-15 * np.sqrt(kappa) + 1e-13


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e160, 1e300])
def test_w2_is_finite_and_right_at_any_scale(scale):
    # was: NaN at 1e160 I and above, 1.41 sd at 1e-170 I and below
    truth = cs.Gaussian(mean=np.zeros(2), cov=scale * np.eye(2))
    model = cs.Gaussian(mean=np.full(2, np.sqrt(scale)), cov=4 * scale * np.eye(2))
    exact = np.sqrt(2 * scale + 2 * scale)  # shift^2 = 2 scale, (2 sd - sd)^2 per axis
    np.testing.assert_allclose(cs.metrics.w2(truth, model), [exact], rtol=1e-12)


def test_variance_law_at_huge_n_and_t():
    # was: [1e-189] * 3 and a CDF of 1. log sigma^2_t is a sum of t i.i.d. terms with mean
    # psi((n-1)/2) + log(2/n) and variance psi'((n-1)/2): normal to 1e-9 here
    from scipy import special

    n = t = 10**9
    a = 0.5 * (n - 1)
    mean = t * (np.log1p(-1.0 / n) - (np.log(a) - special.digamma(a)))
    sd = np.sqrt(t * special.polygamma(1, a))
    expected = np.exp(mean + sd * special.ndtri([0.1, 0.5, 0.9]))
    got = cs.theory.gaussian_variance_quantiles(n_samples=n, generations=[t], q=[.1, .5, .9])
    np.testing.assert_allclose(got[0], expected, rtol=1e-7)
    np.testing.assert_allclose(got[0], [0.0221, 0.1353, 0.8289], atol=1e-4)
    cdf = cs.theory.gaussian_variance_cdf(threshold=got[0], n_samples=n, generations=[t])
    np.testing.assert_allclose(cdf[0], [0.1, 0.5, 0.9], atol=1e-9)


@pytest.mark.parametrize("make", [
    lambda: cs.Gaussian(mean=1e200, var=1.0),
    lambda: cs.Gaussian(mean=[1e12, 0.0], cov=np.diag([1e-6, 1.0])),
    lambda: cs.GaussianMixture(weights=[.5, .5], means=[[-1.], [1.]],
                               covs=[[[1e-200]], [[1e-200]]]),
])
def test_truths_below_float_resolution_are_refused(make):
    # was: the truth's own tail_mass 1 (or 0.75) and nll inf
    with pytest.raises(ValueError, match="resolution"):
        cs.simulate(make(), cs.GaussianFit(), n_samples=10, generations=1, chains=2, seed=0)


def test_tail_mass_in_10d_does_not_depend_on_the_number_of_chains():
    # was: 1.4e-17 apart between the first 3 chains of a 5000-chain run and a 3-chain run
    rng = np.random.default_rng(0)
    a = rng.standard_normal((10, 10))
    truth = cs.Gaussian(mean=np.zeros(10), cov=a @ a.T / 10 + np.eye(10))
    kw = {"n_samples": 30, "generations": 2, "seed": 0, "metrics": ("tail_mass",)}
    big = cs.simulate(truth, cs.GaussianFit(), chains=5000, **kw)
    small = cs.simulate(truth, cs.GaussianFit(), chains=3, **kw)
    np.testing.assert_array_equal(big.metrics["tail_mass"][:, :3], small.metrics["tail_mass"])


@pytest.mark.parametrize("kw", [
    {"policy": cs.Augment(10**4), "n_samples": 10**5, "chains": 10**3},  # 16 GB a generation
    {"chains": 2 * 10**8, "n_samples": 10},                                # 25 GB of states
])
def test_memory_of_augment_and_generator_states_is_estimated_up_front(kw, monkeypatch):
    monkeypatch.setenv("COLLAPSE_SIM_MAX_BYTES", str(8 * 2**30))
    args = {"generations": 2, "seed": 0, "metrics": "variance", "sampling": "explicit", **kw}
    with pytest.raises(ValueError, match="GiB"):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), **args)


def test_two_different_sweeps_into_one_fresh_folder_cannot_both_start(tmp_path):
    # was: both accepted (5 of 5 trials), the last manifest written winning
    import threading

    base = {"truth": cs.Gaussian(mean=0.0, var=1.0), "fitter": cs.GaussianFit(),
            "generations": 2, "chains": 2}
    outcomes = []

    def start(n):
        try:
            cs.sweep(base, {"n_samples": [n]}, seeds=[0], out_dir=tmp_path / "out",
                     backend="threading", progress=False)
            outcomes.append("ran")
        except ValueError as err:
            outcomes.append("refused" if "different sweep" in str(err) else str(err))

    threads = [threading.Thread(target=start, args=(n,)) for n in (10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ran", "refused"]


def test_stale_temporary_files_of_a_killed_sweep_are_removed(tmp_path):
    base = {"truth": cs.Gaussian(mean=0.0, var=1.0), "fitter": cs.GaussianFit(),
            "generations": 2, "chains": 2}
    cs.sweep(base, {"n_samples": [10]}, seeds=[0], out_dir=tmp_path, progress=False)
    import os
    import time

    stale, fresh = tmp_path / ".abc-seed0.npz.xyz.tmp", tmp_path / ".def-seed0.npz.uvw.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    cs.sweep(base, {"n_samples": [10]}, seeds=[0], out_dir=tmp_path, progress=False)
    assert not stale.exists() and fresh.exists()  # a fresh one may be another writer's


@pytest.mark.parametrize("address, allowed", [
    ("tcp://127.0.0.1:8786", True), ("localhost:8786", True), ("tcp://[::1]:8786", True),
    ("tcp://10.0.0.5:8786", False), ("tcp://scheduler.example.org:8786", False),
])
def test_cli_connects_to_a_remote_scheduler_only_when_allowed(address, allowed, tmp_path,
                                                            monkeypatch, capsys):
    from collapse_sim import cli

    spec = tmp_path / "spec.toml"
    spec.write_text(
        "[base]\ntruth = { type = \"Gaussian\", mean = 0.0, var = 1.0 }\n"
        "fitter = { type = \"GaussianFit\" }\ngenerations = 2\nchains = 2\n"
        f"[grid]\nn_samples = [10]\n[sweep]\nseeds = [0]\nbackend = \"dask\"\n"
        f"client = \"{address}\"\n")
    assert cli._loopback(address) is allowed
    if not allowed:  # refused before any connection is tried
        assert cli.main(["sweep", str(spec), "--out", str(tmp_path), "--quiet"]) == 2
        assert "--allow-remote-scheduler" in capsys.readouterr().err


def test_saving_removes_temporary_files_a_killed_save_left(tmp_path):
    import os
    import time

    stale = tmp_path / ".run.npz.abc123.tmp"
    fresh = tmp_path / ".run.npz.def456.tmp"  # might be a concurrent writer's: kept
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    _saved(tmp_path)
    assert not stale.exists() and fresh.exists()
