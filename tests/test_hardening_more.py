"""Hardening, second slice: bounded memory, mistakes refused before any work.

- ``regression_test_error(policy="accumulate")`` no longer allocates ``O(t)`` memory
  for one generation ``t``;
- a sweep spec's ``[plot]`` choices are checked before any run starts;
- a ``SklearnFitter`` that cannot produce what was asked is refused before sampling.
"""

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import collapse_sim as cs
from collapse_sim import cli
from collapse_sim.sweeps import backends, read_spec
from collapse_sim.theory import regression_test_error

ROOT = Path(__file__).resolve().parents[1]


# -- regression_test_error: O(1) memory per generation -------------------------------------

def _reference_scale(t: int) -> float:
    """sum_{i <= t} 1/i^2, summed exactly (math.fsum)."""
    return math.fsum(1.0 / (i * i) for i in range(1, t + 1))


def test_accumulate_test_error_matches_the_direct_sum():
    ts = [0, 1, 2, 3, 7, 100, 1023, 1024, 1025, 1500, 4096, 100_000]
    got = regression_test_error(n_samples=20, dim=5, noise_std=1.5, generations=ts,
                                policy="accumulate", design="fixed")
    scale = 1.5**2 * 5 / (20 - 5 - 1)
    want = np.array([scale * _reference_scale(t) for t in ts])
    assert got[0] == 0.0
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    # the integer form G (t = 0..G) agrees with the array form
    full = regression_test_error(n_samples=20, dim=5, noise_std=1.5, generations=1500,
                                 policy="accumulate", design="fixed")
    np.testing.assert_allclose(full[ts[:-2]], got[:-2], rtol=1e-15)


def test_accumulate_test_error_of_one_late_generation_uses_little_memory():
    # was: a cumulative sum over 1..t, 8 bytes per generation (2.4 GB at t = 3e8)
    tracemalloc.start()
    try:
        value = regression_test_error(n_samples=20, dim=5, generations=[10**7],
                                      policy="accumulate", design="fixed")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    scale = 5 / 14
    # sum_{i <= t} 1/i^2 = pi^2/6 - 1/t + 1/(2t^2) - ... (Euler-Maclaurin)
    t = 10**7
    np.testing.assert_allclose(value, [scale * (math.pi**2 / 6 - 1 / t + 1 / (2 * t * t))],
                               rtol=1e-13)
    huge = regression_test_error(n_samples=20, dim=5, generations=[3 * 10**8, 2**62],
                                 policy="accumulate", design="fixed")
    assert np.all(np.isfinite(huge)) and np.all(huge <= scale * math.pi**2 / 6)
    assert huge[0] < huge[1]


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_generations_beyond_int64_are_refused_not_wrapped():
    # was: 1e30 cast to int64 wrapped to -2**63: IndexError (accumulate) or a negative
    # error (replace)
    for policy in ("replace", "accumulate"):
        with pytest.raises(ValueError, match="generations"):
            regression_test_error(n_samples=20, dim=5, generations=[1e30], policy=policy,
                                  design="fixed")


# -- sweep specs: [plot] checked before any run ---------------------------------------------

SPEC_HEAD = """
[base]
truth = { type = "Gaussian", mean = 0.0, var = 1.0 }
fitter = { type = "GaussianFit" }
generations = 3
chains = 2
metrics = ["variance", "w2"]
[grid]
n_samples = [5, 10]
policy = [{ type = "Replace" }, { type = "KeepReal", fraction = 0.5 }]
[sweep]
seeds = [0]
backend = "threading"
n_jobs = 1
[plot]
"""


@pytest.fixture
def no_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a run started")

    monkeypatch.setattr(backends, "_run_job", forbidden)


@pytest.mark.parametrize(("plot", "error", "match"), [
    ('y = "final_kl_mean"', ValueError,
     r"\[plot\] y = 'final_kl_mean' is not a summary column .*accepted: collapse_generation, "
     r"final_variance_ratio, final_variance_median, final_variance_mean, final_w2_median"),
    ('y = "policy"', ValueError, r"\[plot\] y = 'policy'"),
    ('x = "chains"', ValueError,
     r"\[plot\] x = 'chains' is not an identifying column .*accepted: n_samples, policy, "
     r"policy_fraction, seed, config"),
    ('hue = "polcy"', ValueError, r"\[plot\] hue = 'polcy'"),
    ('x = 3', TypeError, r"\[plot\] x must be a column name \(a string\), got 3"),
    ('hue = ["policy"]', TypeError, r"\[plot\] hue must be a column name"),
    ('x = ""', ValueError, r"\[plot\] x = ''"),
    ('colour = "red"', ValueError, r"unknown \[plot\] option"),
])
def test_bad_plot_options_fail_before_any_run(plot, error, match, tmp_path, no_work, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC_HEAD + plot + "\n")
    with pytest.raises(error, match=match):
        read_spec(spec)
    out = tmp_path / "out"
    assert cli.main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[plot]" in err and str(spec) in err
    assert not (out / "bad.runs").exists()  # no run file written, no run started


def test_good_plot_options_are_accepted(tmp_path):
    spec = tmp_path / "good.toml"
    spec.write_text(SPEC_HEAD + 'x = "policy_fraction"\ny = "final_w2_mean"\nhue = "seed"\n')
    assert read_spec(spec)["plot"] == {"x": "policy_fraction", "y": "final_w2_mean",
                                       "hue": "seed"}
    read_spec(ROOT / "examples" / "sweep_spec.toml")  # the documented example
    # default metrics of the pair: the summaries follow them
    spec.write_text(SPEC_HEAD.replace('metrics = ["variance", "w2"]\n', "")
                    + 'y = "final_tail_mass_median"\n')
    read_spec(spec)


def test_plot_y_follows_a_grid_of_metrics(tmp_path, no_work):
    head = SPEC_HEAD.replace('metrics = ["variance", "w2"]\n', "").replace(
        "[sweep]", 'metrics = [["variance"], ["kl"]]\n[sweep]')
    spec = tmp_path / "m.toml"
    spec.write_text(head + 'y = "final_kl_mean"\n')
    read_spec(spec)
    spec.write_text(head + 'y = "final_w2_mean"\n')
    with pytest.raises(ValueError, match="final_kl_median, final_kl_mean"):
        read_spec(spec)


def test_plot_check_leaves_an_invalid_configuration_to_sweep(tmp_path, no_work, capsys):
    # the configuration error, not a confusing plot error, is what the user sees
    spec = tmp_path / "c.toml"
    spec.write_text(SPEC_HEAD.replace('metrics = ["variance", "w2"]', 'metrics = ["nope"]')
                    + 'y = "final_nope_mean"\n')
    assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "error", "match"), [
    ("base = 1\n[grid]\nn_samples = [5]\n[sweep]\nseeds = [0]\n", TypeError,
     r"base must be a table \(\[base\]\), got int"),
    ("plot = 'x'\n[grid]\nn_samples = [5]\n[sweep]\nseeds = [0]\n", TypeError,
     r"plot must be a table"),
    ("[grid]\npolicy = [{ type = [1] }]\n[sweep]\nseeds = [0]\n", ValueError,
     r"grid.policy\[0\]: unknown type \[1\]"),
])
def test_malformed_spec_sections_are_one_line_errors(text, error, match, tmp_path, capsys):
    # was: AttributeError (a traceback from the command line) or "unhashable type: 'list'"
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    with pytest.raises(error, match=match):
        read_spec(spec)
    assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# -- SklearnFitter: refused before sampling ---------------------------------------------------

@pytest.fixture
def no_fit(monkeypatch):
    from collapse_sim.families import sklearn as family

    def forbidden(*args, **kwargs):
        raise AssertionError("a generation was fitted")

    monkeypatch.setattr(family.SklearnFitter, "fit_chains", forbidden)


def test_l2_of_a_kernel_density_is_refused_before_sampling(no_fit):
    from sklearn.neighbors import KernelDensity

    # was: ValueError from the l2 metric only after generation 1 was sampled and fitted
    with pytest.raises(ValueError, match=r"\['l2'\] are not defined .*EstimatorBatch"):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.SklearnFitter(KernelDensity()),
                    n_samples=20, generations=3, chains=2, metrics=("variance", "l2"), seed=0)


def test_l2_of_a_mixture_estimator_still_works():
    from sklearn.mixture import GaussianMixture

    truth = cs.Gaussian(mean=0.0, var=1.0)
    sim = cs.simulate(truth, cs.SklearnFitter(GaussianMixture(1)), n_samples=40,
                      generations=2, chains=2, metrics=("l2",), seed=0)
    assert np.all(np.isfinite(sim.metrics["l2"])) and np.all(sim.metrics["l2"][1:] > 0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kernel": "epanechnikov"}, r"kernel='epanechnikov'\) cannot draw samples"),
    ({"kernel": "cosine"}, "cannot draw samples"),
    ({"metric": "manhattan"}, r"metric='manhattan'\) samples Euclidean kernels"),
    ({"metric": "minkowski", "metric_params": {"p": 3}}, r"metric_params=\{'p': 3\}"),
])
def test_kernel_density_that_cannot_sample_its_density_is_refused(kwargs, match):
    from sklearn.neighbors import KernelDensity

    # was: NotImplementedError from KernelDensity.sample after generation 1 (kernel), or
    # nll/kl of a density other than the one sampled, not normalised (metric)
    with pytest.raises(ValueError, match=match):
        cs.SklearnFitter(KernelDensity(**kwargs))


def test_euclidean_kernel_densities_are_accepted():
    from sklearn.neighbors import KernelDensity

    for kwargs in ({}, {"kernel": "tophat"}, {"metric": "l2"}, {"metric": "minkowski"},
                   {"metric": "minkowski", "metric_params": {"p": 2}}):
        cs.SklearnFitter(KernelDensity(**kwargs))
    with pytest.raises(TypeError, match=r"got the class KernelDensity"):
        cs.SklearnFitter(KernelDensity)


# -- fuzzing findings (benchmarks/fuzz.py --budget 300 --seed 0) ------------------------------

def _saved_simulation(tmp_path, name="s.npz", compress=True):
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=5,
                      generations=3, chains=2, seed=0, record_models=True)
    return sim.save(tmp_path / name, compress=compress)


def _entry_offsets(raw: bytes, info) -> tuple[int, int, int]:
    """Offsets of an entry's local header, of its data, and of its central directory record."""
    import struct

    local = info.header_offset
    name_len, extra_len = struct.unpack("<HH", raw[local + 26:local + 30])
    central = raw.index(b"PK\x01\x02", local)
    while struct.unpack("<I", raw[central + 42:central + 46])[0] != local:
        central = raw.index(b"PK\x01\x02", central + 4)
    return local, local + 30 + name_len + extra_len, central


@pytest.mark.parametrize("damage", ["garbage_stream", "encrypted_flag", "unknown_method",
                                    "bad_checksum"])
def test_altered_bytes_of_a_saved_simulation_are_reported_as_damage(tmp_path, damage):
    # was: zlib.error (a flipped byte in the compressed data), RuntimeError ("is
    # encrypted, password required") or NotImplementedError escaping Simulation.load
    import struct
    import zipfile

    path = _saved_simulation(tmp_path)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model__mean.npy")
    assert info.compress_type == zipfile.ZIP_DEFLATED
    local, data, central = _entry_offsets(bytes(raw), info)
    if damage == "garbage_stream":  # deflate block type 3 does not exist
        raw[data:data + info.compress_size] = b"\xff" * info.compress_size
    elif damage == "encrypted_flag":  # general-purpose flag bit 0
        raw[central + 8] |= 0x01
    elif damage == "unknown_method":
        raw[central + 10:central + 12] = struct.pack("<H", 99)
    else:  # the stored CRC-32 (local and central copies) no longer matches the data
        raw[local + 14] ^= 0xFF
        raw[central + 16] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"{path.name} is damaged \(entry model__mean"):
        cs.Simulation.load(path)


@pytest.mark.parametrize("compress", [True, False])
def test_any_single_altered_byte_of_a_saved_simulation_gives_a_value_error(tmp_path, compress):
    # the fuzzer's case: byte 697 set to 237 (zlib.error: invalid distance too far back)
    path = _saved_simulation(tmp_path, compress=compress)
    raw = path.read_bytes()
    damaged = tmp_path / "damaged.npz"
    for offset in range(0, len(raw), 3):
        for value in (237, raw[offset] ^ 0x01):
            data = bytearray(raw)
            data[offset] = value
            damaged.write_bytes(bytes(data))
            try:
                cs.Simulation.load(damaged)
            except ValueError as exc:
                assert "damaged.npz" in str(exc)


TRUTH3 = cs.Gaussian(mean=[-0.26, 0.93, 1.7], cov=[[0.1283, -0.0876, -0.0334],
                                                   [-0.0876, 0.4857, 0.0202],
                                                   [-0.0334, 0.0202, 0.0349]])
MIX3 = cs.GaussianMixture(weights=[0.7, 0.3], means=[[3.5, 3.0, 1.2], [0.25, 3.8, -0.09]],
                          covs=[np.eye(3) * 0.1, np.eye(3) * 0.2])
MIX1_BATCH = cs.GaussianMixture(
    weights=[[0.46, 0.54], [0.02, 0.98]], means=[[[-3.7], [2.9]], [[-1.7], [-2.1]]],
    covs=[[[[0.3]], [[0.008]]], [[[0.03]], [[0.05]]]])
TRUTH1 = cs.Gaussian(mean=[0.4], cov=[[1.3]])


@pytest.mark.parametrize(("call", "match"), [
    # was: ZeroDivisionError from the mixture kernel (kl, nll, evaluate), NaN (the standard
    # error), or a mean of an empty slice (a Gaussian model's nll)
    (lambda: cs.metrics.kl(TRUTH1, MIX1_BATCH, np.zeros((0, 1))), "reference"),
    (lambda: cs.metrics.nll(TRUTH1, MIX1_BATCH, np.full((0, 1), 1e300)), "heldout"),
    (lambda: cs.metrics.nll(TRUTH1, cs.Gaussian(0.0, 1.0), np.zeros((0, 1))), "heldout"),
    (lambda: cs.metrics.kl_standard_error(TRUTH3, MIX3, np.zeros((0, 3))), "reference"),
    (lambda: cs.metrics.evaluate(("kl", "nll"), MIX3, MIX3, cs.metrics.MetricContext(
        MIX3, np.zeros((0, 3)))), "heldout"),
    (lambda: cs.metrics.evaluate(("nll",), TRUTH3, TRUTH3, cs.metrics.MetricContext(
        TRUTH3, np.zeros((0, 3)))), "heldout"),
])
def test_an_empty_sample_is_refused(call, match):
    with pytest.raises(ValueError, match=rf"{match} must hold at least 1 point"):
        call()


def test_a_standard_error_needs_two_reference_points():
    # was: NaN (a standard deviation with ddof=1 of one value)
    with pytest.raises(ValueError, match="reference must hold at least 2 points"):
        cs.metrics.kl_standard_error(TRUTH3, MIX3, np.zeros((1, 3)))
    assert np.isfinite(cs.metrics.kl_standard_error(TRUTH3, MIX3, np.ones((2, 3)))).all()
    # a closed form needs no reference points at all
    np.testing.assert_array_equal(cs.metrics.kl_standard_error(TRUTH3, TRUTH3), [0.0])


@pytest.mark.parametrize("points", [
    np.random.default_rng(0).standard_normal(200),  # was: numba TypingError
    np.zeros((200, 2)),
    np.zeros((200, 3, 1)),
])
def test_reference_of_the_wrong_shape_is_refused(points):
    with pytest.raises(ValueError, match=r"reference must have shape \(n, 3\)"):
        cs.metrics.kl(TRUTH3, MIX3, points)
    with pytest.raises(ValueError, match=r"heldout must have shape \(n, 3\)"):
        cs.metrics.nll(TRUTH3, MIX3, points)


def test_non_finite_held_out_points_are_refused():
    # was: nll = inf, read as a degenerate model
    for bad in (np.full((5, 3), np.nan), np.full((5, 3), np.inf)):
        with pytest.raises(ValueError, match="heldout must contain only finite values"):
            cs.metrics.nll(TRUTH3, TRUTH3, bad)
        with pytest.raises(ValueError, match="heldout must contain only finite values"):
            cs.metrics.evaluate(("kl", "nll"), MIX3, MIX3, cs.metrics.MetricContext(MIX3, bad))
    with pytest.raises(TypeError, match="reference must be real numbers"):
        cs.metrics.kl(TRUTH3, MIX3, np.full((5, 3), "a"))


def test_valid_samples_still_give_the_same_values():
    rng = np.random.default_rng(1)
    heldout = TRUTH3.sample(500, seed=2)
    models = cs.Gaussian(mean=rng.normal(size=(4, 3)), cov=np.stack([np.eye(3)] * 4))
    direct = cs.metrics.nll(TRUTH3, models, heldout)
    dev = heldout - heldout.mean(axis=0)
    np.testing.assert_allclose(direct, cs.metrics.nll_from_moments(
        models, heldout.mean(axis=0), dev.T @ dev / 500), rtol=1e-14)
    kl = cs.metrics.kl(TRUTH3, MIX3, heldout)
    np.testing.assert_allclose(kl, TRUTH3.logpdf(heldout).mean() - MIX3.logpdf(heldout).mean(),
                               rtol=1e-10)
    assert cs.metrics.kl(TRUTH3, MIX3, heldout.tolist()) == pytest.approx(kl, rel=1e-12)


@pytest.mark.parametrize(("truth", "match"), [
    (cs.Gaussian(mean=[0.4], cov=[[0.0]]), "truth covariance must be positive definite"),
    (cs.Gaussian(mean=[1.4, 0.6, 0.1], cov=np.zeros((3, 3))), "positive definite"),
    (cs.Gaussian(mean=[0.0, 0.0], var=[1.0, 2.0]), "truth must be a single distribution"),
])
def test_public_metrics_refuse_a_truth_simulate_refuses(truth, match):
    # was: kl inf, tail_mass of a "region" that is a point, w2 of member 0 of a batch "truth"
    model = cs.Gaussian(mean=np.zeros(truth.dim), cov=np.eye(truth.dim))
    with pytest.raises(ValueError, match=match):
        cs.simulate(truth, cs.GaussianFit(), n_samples=5, generations=1)
    for fn in (cs.metrics.kl, cs.metrics.w2, cs.metrics.tail_mass, cs.metrics.variance,
               cs.metrics.mean_shift, cs.metrics.kl_standard_error):
        with pytest.raises(ValueError, match=match):
            fn(truth, model)
    with pytest.raises(ValueError, match=match):
        cs.metrics.nll(truth, model, np.zeros((3, truth.dim)))


def test_l2_refuses_a_model_of_another_dimension():
    # was: a number (the (1,) and (3,) arrays broadcast against each other)
    with pytest.raises(ValueError, match=r"same shape, got \(1,\) and \(3,\)"):
        cs.metrics.l2(TRUTH1, TRUTH3)
    with pytest.raises(TypeError, match="model must be a Gaussian or GaussianMixture"):
        cs.metrics.l2(TRUTH1, "a")
    with pytest.raises(TypeError, match="truth must be a Gaussian or GaussianMixture"):
        cs.metrics.l2(1, TRUTH1)
    with pytest.raises(ValueError, match=r"batches of the same size .*, got 3 and 2"):
        cs.metrics.l2(cs.Gaussian(mean=[0.0] * 3, var=[1.0] * 3), MIX1_BATCH)
    assert cs.metrics.l2(TRUTH3, TRUTH3)[0] == pytest.approx(0.0, abs=1e-12)


def test_l2_compares_batches_member_by_member_and_point_masses_give_inf():
    # l2 is symmetric: two batches of fits are compared member by member
    a = cs.Gaussian(mean=[0.0, 1.0], var=[1.0, 2.0])
    b = cs.Gaussian(mean=[0.5, -1.0], var=[0.5, 1.0])
    pairwise = cs.metrics.l2(a, b)
    for i in range(2):
        one = cs.Gaussian(mean=a.mean[i], cov=a.cov[i])
        other = cs.Gaussian(mean=b.mean[i], cov=b.cov[i])
        assert pairwise[i] == pytest.approx(cs.metrics.l2(one, other)[0], rel=1e-14)
    np.testing.assert_allclose(pairwise, cs.metrics.l2(b, a), rtol=1e-14)
    one = cs.Gaussian(mean=[0.5], cov=[[0.5]])
    np.testing.assert_allclose(cs.metrics.l2(a, one), cs.metrics.l2(one, a), rtol=1e-14)
    # was: NaN (inf - inf) for two point masses at the same place, as in
    # gaussian_mismatch_floor of a point-mass truth
    point = cs.Gaussian(mean=[0.3], cov=[[0.0]])
    values = cs.metrics.l2(point, cs.Gaussian(mean=[[0.3], [1.0], [0.3]],
                                              cov=[[[0.0]], [[0.0]], [[1.0]]]))
    np.testing.assert_array_equal(values, [np.inf, np.inf, np.inf])


def test_mismatch_floor_of_a_degenerate_truth_is_refused():
    # was: {"l2": nan, "kl": inf}: a point mass has no density
    for truth in (cs.Gaussian(mean=[-1.4851], cov=[[0.0]]),
                  cs.GaussianMixture(weights=[0.5, 0.5], means=[[0.0], [1.0]],
                                     covs=[[[1.0]], [[0.0]]])):
        with pytest.raises(ValueError, match="truth covariance must be positive definite"):
            cs.theory.gaussian_mismatch_floor(truth)
    with pytest.raises(TypeError, match="truth must be a Gaussian or GaussianMixture"):
        cs.theory.gaussian_mismatch_floor(3.0)
    floor = cs.theory.gaussian_mismatch_floor(TRUTH1)  # a Gaussian is its own best fit
    assert floor["kl"] == 0.0 and floor["w2"] == 0.0 and abs(floor["l2"]) < 1e-15


GOOD_OUTSIDE = (np.zeros(3), np.eye(3), 7.8, np.zeros((2, 3)), np.stack([np.eye(3)] * 2))


@pytest.mark.parametrize(("index", "value", "error", "match"), [
    # the fuzzer's cases: IndexError, AttributeError, TypingError, LinAlgError
    (0, np.zeros(1), ValueError, r"centre must have shape \(d,\) with d >= 2"),
    (0, [np.nan, 0.0, 0.0], ValueError, "centre must contain only finite values"),
    (0, "abc", TypeError, "centre must be real numbers"),
    (1, False, TypeError, "cov0 must be real numbers"),
    (1, "a", TypeError, "cov0 must be real numbers"),
    (1, np.eye(2), ValueError, r"cov0 must have shape \(3, 3\)"),
    (1, np.zeros((3, 3)), ValueError, "cov0 must be positive definite"),
    (1, -np.eye(3), ValueError, "cov0 must be positive semi-definite"),
    (1, np.triu(np.ones((3, 3))), ValueError, "cov0 must be symmetric"),
    (2, [np.nan], TypeError, "radius2 must be a real number"),
    (2, np.bool_(True), TypeError, "radius2 must be a real number"),
    (2, np.nan, ValueError, r"radius2 must be a finite number in \(0"),
    (2, 0.0, ValueError, r"radius2 must be a finite number in \(0"),
    (2, -1.0, ValueError, r"radius2 must be a finite number in \(0"),
    (3, 1e300, ValueError, r"means must have shape \(N, 3\)"),
    (3, np.ones((2, 4)), ValueError, r"means must have shape \(N, 3\)"),
    (3, np.full((2, 3), np.inf), ValueError, "means must contain only finite values"),
    (4, np.array(2.0), ValueError, r"covs must have shape \(2, 3, 3\)"),
    (4, np.stack([np.eye(3)] * 3), ValueError, r"covs must have shape \(2, 3, 3\)"),
    (4, -np.ones((2, 3, 3)), ValueError, "covs must be positive semi-definite"),
    (4, np.full((2, 3, 3), np.nan), ValueError, "covs must contain only finite values"),
])
def test_gaussian_outside_checks_every_argument(index, value, error, match):
    args = list(GOOD_OUTSIDE)
    args[index] = value
    with pytest.raises(error, match=match):
        cs.metrics.gaussian_outside(*args)


def test_gaussian_outside_agrees_with_tail_mass():
    from scipy import stats

    rng = np.random.default_rng(3)
    for d in (2, 3, 4):
        a = rng.normal(size=(d, d))
        truth = cs.Gaussian(mean=rng.normal(size=d), cov=a @ a.T + d * np.eye(d))
        b = rng.normal(size=(3, d, d))
        models = cs.Gaussian(mean=rng.normal(size=(3, d)),
                             cov=b @ np.swapaxes(b, 1, 2) + np.eye(d))
        r2 = float(stats.chi2.ppf(cs.metrics.TAIL_LEVEL, d))
        np.testing.assert_array_equal(
            cs.metrics.gaussian_outside(truth.mean[0].tolist(), truth.cov[0], r2, models.mean,
                                        models.cov),
            cs.metrics.tail_mass(truth, models))
    # a collapsed model (singular covariance) is a valid argument; an empty batch too
    assert cs.metrics.gaussian_outside(np.zeros(2), np.eye(2), 3.0, np.zeros((1, 2)),
                                       np.zeros((1, 2, 2)))[0] == 0.0
    assert cs.metrics.gaussian_outside(np.zeros(3), np.eye(3), 3.0, np.zeros((0, 3)),
                                       np.zeros((0, 3, 3))).shape == (0,)


@pytest.mark.parametrize(("d", "error"), [
    (object(), TypeError), (True, TypeError), (np.bool_(True), TypeError), ("mle", TypeError),
    (complex(1, 1), TypeError), (2.0, TypeError), (0, ValueError), (-1, ValueError),
    (1, ValueError),
])
def test_tail_directions_checks_the_dimension(d, error):
    # was: 512 for anything
    with pytest.raises(error, match="d must be an int"):
        cs.metrics.tail_directions(d)


def test_tail_directions_of_valid_dimensions():
    got = [cs.metrics.tail_directions(d) for d in (2, 3, 4, np.int64(5), 50)]
    assert got == [128, 256, 512, 512, 512]


@pytest.mark.parametrize("fn", [cs.theory.gaussian_variance_mean,
                                cs.theory.gaussian_w2_squared_mean])
def test_generations_as_an_int_are_capped_before_any_allocation(fn):
    # was: generations=10**9 (t = 0..1e9) allocated an 8 GB arange: MemoryError or the
    # process killed
    tracemalloc.start()
    try:
        for g in (10**7 + 1, 10**9, 2**70):
            with pytest.raises(ValueError, match=r"at most 10000001|2\*\*63 - 1"):
                fn(n_samples=5, generations=g)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    with pytest.raises(ValueError, match=r"pass a list of the generations wanted instead"):
        fn(n_samples=5, generations=10**9)
    assert fn(n_samples=5, generations=[10**9]).shape == (1,)  # what the message suggests
    with pytest.raises(ValueError, match=r"at most 10000001 ints"):
        fn(n_samples=5, generations=np.zeros(10**7 + 2, dtype=np.int64))
    with pytest.raises(ValueError, match="generations"):
        cs.theory.regression_test_error(n_samples=40, dim=3, generations=10**7 + 1)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("bad", [[1e30], [2.0**63], [float("inf")],
                                 np.array([2**63], dtype=np.uint64), [2**64], [-(2**70)]])
def test_generations_beyond_int64_are_refused_by_every_closed_form(bad):
    # was: gaussian_variance_mean(n_samples=5, generations=[1e30]) -> [inf] (1e30 cast to
    # int64 wrapped to -2**63)
    for fn in (cs.theory.gaussian_variance_mean, cs.theory.gaussian_w2_squared_mean):
        with pytest.raises(ValueError, match=r"ints in \[0, 2\*\*63 - 1\]"):
            fn(n_samples=5, generations=bad)
    with pytest.raises(ValueError, match=r"ints in \[0, 2\*\*63 - 1\]"):
        cs.theory.gaussian_variance_quantiles(n_samples=5, generations=bad, q=0.5)
    with pytest.raises(ValueError, match=r"ints in \[0, 2\*\*63 - 1\]"):
        cs.theory.gaussian_variance_cdf(threshold=0.5, n_samples=5, generations=bad)


def test_largest_generations_are_still_accepted():
    got = cs.theory.gaussian_variance_mean(n_samples=5, generations=[2**63 - 1, 2**62])
    assert got.shape == (2,) and np.all(got == 0.0)  # (4/5)^t underflows
    assert cs.theory.gaussian_variance_mean(n_samples=5, generations=[2.0**62, 3.0]).shape == (2,)
    assert cs.theory.gaussian_variance_mean(n_samples=5, generations=10**7).shape == (10**7 + 1,)


def test_mixture_w2_works_in_blocks_of_members():
    # was: one (chains, 1025) quantile grid at once and its temporaries: a MemoryError
    # (8 GB) for a million chains (fuzzer, simulate with GaussianMixtureFit, chains=10**6)
    from collapse_sim.families.mixture import W2_BLOCK

    count = 5000
    assert count > 4 * W2_BLOCK
    rng = np.random.default_rng(0)
    models = cs.GaussianMixture(np.full((count, 2), 0.5), rng.normal(size=(count, 2, 1)),
                                np.full((count, 2, 1, 1), 0.5))
    truth = cs.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
    cs.metrics.w2(truth, cs.GaussianMixture([1.0], [[0.0]], [[[1.0]]]))  # compiled
    tracemalloc.start()
    try:
        values = cs.metrics.w2(truth, models)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < count * 1025 * 8  # less than one grid of every member
    for i in (0, W2_BLOCK - 1, W2_BLOCK, count - 1):  # each member's value is its own
        one = cs.GaussianMixture(models.weights[i], models.means[i], models.covs[i])
        assert cs.metrics.w2(truth, one)[0] == values[i]


# -- fuzzing findings (benchmarks/fuzz.py --budget 300 --seed 20261202) ------------------------

def test_nll_from_moments_checks_its_arguments():
    # was: IndexError ("array is 0-dimensional") for a scalar xbar
    model = cs.Gaussian(mean=[[1.0, 0.3, 0.5], [-1.5, -0.2, -0.8]], cov=np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError, match=r"xbar must have shape \(3,\)"):
        cs.metrics.nll_from_moments(model, np.array(2.0), np.eye(3))
    with pytest.raises(ValueError, match=r"cov_h must have shape \(3, 3\)"):
        cs.metrics.nll_from_moments(model, np.zeros(3), np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError, match="xbar must contain only finite"):
        cs.metrics.nll_from_moments(model, np.array([0.0, np.nan, 0.0]), np.eye(3))
    with pytest.raises(TypeError, match="model must be a Gaussian"):
        cs.metrics.nll_from_moments("model", np.zeros(3), np.eye(3))
    value = cs.metrics.nll_from_moments(model, np.zeros(3), np.eye(3))
    assert value.shape == (2,) and np.all(np.isfinite(value))


def test_huge_generations_are_refused_before_any_array_of_that_length(monkeypatch):
    # was: MemoryError (7.45 GiB) from an array of a constant policy value per generation,
    # made while simulate checked its arguments, before its memory check. Now a constant is
    # checked once; a schedule longer than memory allows is refused by name.
    monkeypatch.setenv("COLLAPSE_SIM_MAX_BYTES", str(2**30))
    allocated = []
    real_full = np.full

    def watching_full(shape, *args, **kwargs):
        allocated.append(np.prod(shape))
        return real_full(shape, *args, **kwargs)

    monkeypatch.setattr(np, "full", watching_full)
    for policy in (cs.Augment(), cs.KeepReal(0.1), cs.Replace()):
        with pytest.raises(ValueError, match="GiB of memory here"):
            cs.simulate(cs.Gaussian(mean=[-1.5, 1.0], cov=np.eye(2)),
                        cs.GaussianMixtureFit(2), n_samples=35, generations=10**9, chains=3,
                        policy=policy, seed=0, progress=False)
    assert max(allocated, default=0) < 10**6
    with pytest.raises(ValueError, match="fraction: a schedule over 1000000000 generations"):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=10,
                    generations=10**9, chains=1,
                    policy=cs.KeepReal(cs.schedule.Linear(0.1, 0.5, 10)), seed=0,
                    progress=False)
