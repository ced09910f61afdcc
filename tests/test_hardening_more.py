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
    with pytest.raises(ValueError, match=r"\['l2'\] are not defined .* EstimatorBatch"):
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
