"""Results people can look at: the notebook view, quantile tables, xarray, one-call figures
and the comparison of a user's own runs."""

import json
import subprocess
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import collapse_sim as cs
from collapse_sim import theory
from collapse_sim.theory import overlays

GAUSS = cs.Gaussian(mean=0.0, var=1.0)
MEAN = "mean of the chains\n(skewed: a few chains carry it)"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def replace():
    # n = 10: the median variance falls by ~exp(-0.2) a generation, a factor ~50 by t = 20
    return cs.simulate(GAUSS, cs.GaussianFit(), n_samples=10, generations=20, chains=200,
                       seed=0, metrics=("variance", "w2"))


@pytest.fixture(scope="module")
def keep():
    return cs.simulate(GAUSS, cs.GaussianFit(), n_samples=10, generations=20, chains=200,
                       seed=0, policy=cs.KeepReal(0.5), metrics=("variance", "w2"))


@pytest.fixture(scope="module")
def mixture_2d():
    return cs.simulate(cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2)), cs.GaussianMixtureFit(2),
                       n_samples=100, generations=4, chains=3, seed=0, record_models=True,
                       metrics="variance")


def labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def line(ax, label):
    (found,) = [x for x in ax.get_lines() if x.get_label() == label]
    return found


# -- the notebook view --------------------------------------------------------------------


def test_repr_html_shows_run_sizes_and_quantiles(replace):
    page = replace._repr_html_()
    for text in ("Simulation", "Gaussian(mean=0, cov=1)", "GaussianFit(estimator=mle)",
                 "Replace()", "n_samples=10", "20 generations", "200 chains",
                 "<th>variance</th>", "<th>w2</th>", "<th>t = 0</th>", "<th>t = 20</th>",
                 "median [10%, 90%]"):
        assert text in page, text
    v = replace.metrics["variance"][20]
    lo, med, hi = np.quantile(v, [0.1, 0.5, 0.9])
    assert f"<td>{med:.3g} [{lo:.3g}, {hi:.3g}]</td>" in page
    assert page.count("<tr>") == 1 + 2  # header + one row per metric


def test_repr_html_escapes_names_and_configuration():
    sim = cs.Simulation({"a<b": np.ones((3, 4))},
                        {"truth": {"type": "<script>x</script>"}, "policy": {"type": "P&Q"}})
    page = sim._repr_html_()
    assert "<script>" not in page and "a<b" not in page and "P&Q" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "a&lt;b" in page and "P&amp;Q" in page


# -- quantile tables ----------------------------------------------------------------------


def test_quantiles_match_numpy(replace):
    table = replace.quantiles("variance", q=(0.1, 0.5, 0.9))
    assert list(table.columns) == ["q10", "q50", "q90"] and table.index.name == "generation"
    np.testing.assert_array_equal(table.index, np.arange(21))
    np.testing.assert_allclose(table.to_numpy(),
                               np.quantile(replace.metrics["variance"], [0.1, 0.5, 0.9],
                                           axis=1).T, rtol=1e-15)
    some = replace.quantiles("w2", q=[0.25], generations=[3, 7])
    assert list(some.index) == [3, 7]
    np.testing.assert_allclose(some["q25"], np.quantile(replace.metrics["w2"][[3, 7]], 0.25,
                                                        axis=1))


def test_quantiles_leave_out_nan_and_order_infinities():
    arr = np.array([[1.0, 2.0, np.nan, np.inf, np.inf],
                    [np.nan] * 5,
                    [1.0, 2.0, 3.0, 4.0, -np.inf]])
    sim = cs.Simulation({"kl": arr}, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "All-NaN slice" or "invalid value" warning
        table = sim.quantiles("kl", q=(0.0, 0.5, 1.0))
    # row 0 without the NaN: [1, 2, inf, inf] -> median between 2 and inf is inf
    # (numpy.quantile gives NaN there: inf - inf)
    np.testing.assert_array_equal(table.loc[0], [1.0, np.inf, np.inf])
    assert table.loc[1].isna().all()
    np.testing.assert_array_equal(table.loc[2], [-np.inf, 2.0, 4.0])
    assert sim.summary(generations=[0]).loc[("kl", 0), "q50"] == np.inf


def test_quantiles_reject_bad_arguments(replace):
    with pytest.raises(ValueError, match=r"one of \['variance', 'w2'\]"):
        replace.quantiles("kl")
    with pytest.raises(TypeError, match="metric must be a str"):
        replace.quantiles(0)
    with pytest.raises(ValueError, match=r"quantiles must be numbers in \[0, 1\]"):
        replace.quantiles("variance", q=[1.5])
    with pytest.raises(ValueError, match=r"generations must lie in \[0, 20\]"):
        replace.quantiles("variance", generations=[21])
    with pytest.raises(TypeError, match="generations must be a sequence of ints"):
        replace.quantiles("variance", generations=[1.5])


# -- xarray -------------------------------------------------------------------------------


def test_to_xarray_metrics_coords_and_attrs(replace):
    ds = replace.to_xarray()
    assert dict(ds.sizes) == {"generation": 21, "chain": 200}
    assert list(ds.data_vars) == ["variance", "w2"]
    assert ds["variance"].dims == ("generation", "chain")
    np.testing.assert_array_equal(ds["generation"], np.arange(21))
    np.testing.assert_array_equal(ds["chain"], np.arange(200))
    for name, arr in replace.metrics.items():
        np.testing.assert_array_equal(ds[name].to_numpy(), arr)
    assert json.loads(ds.attrs["config"]) == replace.config
    assert (ds.attrs["truth"], ds.attrs["fitter"], ds.attrs["policy"]) == (
        "Gaussian", "GaussianFit", "Replace")
    assert ds.attrs["generations"] == 20 and ds.attrs["chains"] == 200
    # the labelled table is the long table
    frame = ds.to_dataframe().reset_index()
    pd.testing.assert_frame_equal(frame, replace.to_frame(), check_dtype=False)
    # and the labelled selections agree with the quantile table
    np.testing.assert_allclose(ds["variance"].median("chain"),
                               replace.quantiles("variance", q=[0.5])["q50"])


def test_to_xarray_names_the_recorded_models_dimensions(mixture_2d, tmp_path):
    ds = mixture_2d.to_xarray()
    assert ds["model_weights"].dims == ("generation", "chain", "component")
    assert ds["model_means"].dims == ("generation", "chain", "component", "dim")
    assert ds["model_covs"].dims == ("generation", "chain", "component", "dim", "dim_")
    assert ds.sizes["component"] == 2 and ds.sizes["dim"] == 2
    np.testing.assert_array_equal(ds["model_covs"], mixture_2d.models["covs"])
    assert ds["model_means"].attrs["kind"] == "model" and ds["variance"].attrs["kind"] == "metric"
    back = cs.Simulation.load(mixture_2d.save(tmp_path / "run.npz")).to_xarray()
    assert back["model_covs"].dims == ds["model_covs"].dims


def test_to_xarray_of_an_unknown_family_numbers_the_dimensions():
    sim = cs.Simulation({"m": np.zeros((2, 3))}, {"fitter": {"type": "NotDefinedHere"}},
                        models={"probs": np.zeros((2, 3, 5)), "table": np.zeros((2, 3, 4, 5))})
    ds = sim.to_xarray()
    assert ds["model_probs"].dims == ("generation", "chain", "probs_dim_0")
    assert ds["model_table"].dims == ("generation", "chain", "table_dim_0", "table_dim_1")


def test_importing_the_package_loads_neither_xarray_nor_matplotlib():
    code = ("import sys, collapse_sim; assert 'xarray' not in sys.modules; "
            "assert 'matplotlib' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "ok"


# -- sim.plot() ---------------------------------------------------------------------------


def test_plot_draws_median_band_and_exact_theory(replace):
    ax = replace.plot()
    assert isinstance(ax, Axes) and ax.get_yscale() == "log"
    assert [x for x in labels(ax) if not x.startswith("_")] == [
        "median of the chains", "the truth's value (1)", "10–90% of chains, exact theory",
        "median, exact theory", MEAN, "mean, exact theory"]
    assert len(ax.get_lines()) == 7  # the 90% theory line has no legend entry of its own
    g = np.arange(21)
    np.testing.assert_allclose(line(ax, "median of the chains").get_ydata(),
                               np.median(replace.metrics["variance"], axis=1))
    q = theory.gaussian_variance_quantiles(n_samples=10, generations=20, q=[0.1, 0.5, 0.9])
    np.testing.assert_allclose(line(ax, "median, exact theory").get_ydata(), q[:, 1])
    np.testing.assert_allclose(line(ax, "10–90% of chains, exact theory").get_ydata(), q[:, 0])
    np.testing.assert_allclose(ax.get_lines()[3].get_ydata(), q[:, 2])
    np.testing.assert_allclose(line(ax, "mean, exact theory").get_ydata(),
                               theory.gaussian_variance_mean(n_samples=10, generations=g))
    assert len(ax.collections) == 1  # the band
    assert "variance" in ax.get_ylabel() and "log scale" in ax.get_ylabel()


def test_plot_without_theory_or_where_none_applies(replace, keep):
    for ax in (replace.plot(theory=False), keep.plot()):
        assert labels(ax) == ["median of the chains", "the truth's value (1)"]
    # KeepReal keeps the variance within a decade: linear axis
    assert keep.plot().get_yscale() == "linear"
    # a distance starts at 0 at the truth: linear axis, no truth line, no theory registered
    ax = replace.plot("w2")
    assert labels(ax) == ["median of the chains"] and ax.get_yscale() == "linear"
    staged = cs.simulate(GAUSS, cs.GaussianFit(), n_samples=10, generations=5, chains=50,
                         seed=0, metrics="variance", generation=cs.Temperature(0.9))
    assert "median, exact theory" not in labels(staged.plot())
    ax = plt.subplots()[1]
    assert replace.plot(ax=ax, logy=False) is ax and ax.get_yscale() == "linear"


def test_plot_in_d_dimensions_has_the_mean_only():
    sim = cs.simulate(cs.Gaussian(mean=[0.0, 0.0], cov=[[2.0, 0.3], [0.3, 1.0]]),
                      cs.GaussianFit("unbiased"), n_samples=10, generations=10, chains=100,
                      seed=0, metrics="variance")
    ax = sim.plot()
    assert "mean, exact theory" in labels(ax) and "median, exact theory" not in labels(ax)
    np.testing.assert_allclose(line(ax, "mean, exact theory").get_ydata(), 3.0)  # unbiased
    assert "tr" in ax.get_ylabel()


def test_plot_of_a_categorical_run_overlays_the_wright_fisher_mean():
    truth = cs.Categorical([0.4, 0.3, 0.2, 0.1])
    sim = cs.simulate(truth, cs.CategoricalFit(), n_samples=20, generations=15, chains=100,
                      seed=0, metrics=("gini_simpson", "support", "kl"))
    ax = sim.plot("gini_simpson")
    assert "mean of the chains" in labels(ax)  # not skewed: no warning about the mean
    np.testing.assert_allclose(line(ax, "mean, exact theory").get_ydata(),
                               theory.categorical_gini_simpson_mean(truth.probs[0], 20, 15))
    assert "mean, theory" in labels(sim.plot("support"))
    assert sim.plot().get_ylabel().startswith("Gini")  # no variance: the first metric
    smoothed = cs.simulate(truth, cs.CategoricalFit(smoothing=0.5), n_samples=20,
                           generations=5, chains=20, seed=0, metrics="gini_simpson")
    assert "mean, exact theory" not in labels(smoothed.plot())


def test_plot_rejects_unknown_metric_and_bad_band(replace):
    with pytest.raises(ValueError, match="metric must be one of"):
        replace.plot("kl")
    with pytest.raises(ValueError, match="band"):
        replace.plot(band=(0.9, 0.1))


# -- theory overlays ----------------------------------------------------------------------


def test_register_overlay_latest_wins_and_is_checked(replace, monkeypatch):
    monkeypatch.setattr(overlays, "_OVERLAYS", list(overlays._OVERLAYS))
    theory.register_overlay("w2", lambda c: c["n_samples"] == 10,
                            lambda c: {"q50": np.full(c["generations"] + 1, 0.5)},
                            label="mine")
    label, curves = theory.overlay_for("w2", replace.config)
    assert label == "mine" and list(curves) == ["q50"]
    assert "median, mine" in labels(replace.plot("w2"))
    theory.register_overlay("w2", lambda c: True, lambda c: np.zeros(3), label="short")
    with pytest.raises(ValueError, match=r"'short'.*shape \(3,\); expected \(21,\)"):
        theory.overlay_for("w2", replace.config)
    theory.register_overlay("w2", lambda c: True, lambda c: {"median": np.zeros(21)})
    with pytest.raises(ValueError, match="keys must be 'mean' or quantile names"):
        theory.overlay_for("w2", replace.config)
    with pytest.raises(TypeError, match="fn must be callable"):
        theory.register_overlay("w2", lambda c: True, 3)
    assert theory.overlay_for("nope", replace.config) is None


# -- cs.compare ---------------------------------------------------------------------------


def test_compare_dict_gives_axes_and_quantile_table(replace, keep):
    ax, table = cs.compare({"replace": replace, "keep 50%": keep}, metric="variance")
    assert isinstance(ax, Axes) and ax.get_yscale() == "log"
    assert table.index.names == ["run", "generation"]
    assert list(table.columns) == ["q10", "q50", "q90"]
    gens = cs.results.default_report_generations(20)
    assert list(table.loc["keep 50%"].index) == gens
    pd.testing.assert_frame_equal(table.loc["replace"],
                                  replace.quantiles("variance", generations=gens))
    medians = [x for x in ax.get_lines() if x.get_label() in ("replace", "keep 50%")]
    assert len(medians) == 2
    np.testing.assert_allclose(medians[1].get_ydata(),
                               np.median(keep.metrics["variance"], axis=1))
    assert "<table" in cs.compare([replace, keep])._repr_html_()


def test_compare_list_is_labelled_by_policy(replace, keep):
    result = cs.compare([replace, keep], metric="w2", quantiles=[0.5], generations=[20],
                        theory=True)
    assert isinstance(result, cs.Comparison)
    assert list(result.table.index.get_level_values("run")) == ["Replace()",
                                                                "KeepReal(fraction=0.5)"]
    assert list(result.table.columns) == ["q50"]
    assert result.ax.get_yscale() == "linear"
    # same policy twice: the fitters tell them apart, then their position
    unbiased = cs.simulate(GAUSS, cs.GaussianFit("unbiased"), n_samples=10, generations=8,
                           chains=50, seed=0, metrics="variance")
    _, table = cs.compare([replace, unbiased, replace], theory=True)
    runs = list(dict.fromkeys(table.index.get_level_values("run")))
    assert runs == ["Replace(), GaussianFit(estimator=mle) #0",
                    "Replace(), GaussianFit(estimator=unbiased) #1",
                    "Replace(), GaussianFit(estimator=mle) #2"]
    # a shorter run reports the rows it reaches and its last
    assert list(table.loc[runs[1]].index) == [0, 1, 2, 3, 6, 8]  # of 0, 1, 2, 3, 6, 11, 20


def test_compare_theory_draws_the_mean_of_runs_that_have_one(replace, keep):
    ax, _ = cs.compare({"replace": replace, "keep": keep}, theory=True)
    assert "dotted: mean, theory (replace)" in labels(ax)


def test_compare_rejects_bad_runs_before_drawing(replace, keep):
    with pytest.raises(TypeError, match="got one Simulation"):
        cs.compare(replace)
    with pytest.raises(TypeError, match=r"runs\['b'\] must be a Simulation, got int"):
        cs.compare({"a": replace, "b": 3})
    with pytest.raises(TypeError, match=r"runs\[1\] must be a Simulation"):
        cs.compare([replace, "x"])
    with pytest.raises(ValueError, match="at least one"):
        cs.compare({})
    cat = cs.simulate(cs.Categorical([0.5, 0.5]), cs.CategoricalFit(), n_samples=10,
                      generations=2, chains=5, seed=0, metrics="kl")
    with pytest.raises(ValueError, match=r"missing from the runs \['cat'\]; the metrics all "
                                         r"runs computed are \[\]"):
        cs.compare({"gauss": replace, "cat": cat}, metric="variance")
    with pytest.raises(ValueError, match=r"missing from the runs \['replace', 'keep'\]; the "
                                         r"metrics all runs computed are \['variance', 'w2'\]"):
        cs.compare({"replace": replace, "keep": keep}, metric="kl")
    assert not plt.get_fignums()  # nothing was drawn


# -- the existing figures take Simulations ------------------------------------------------


def test_policy_comparison_takes_runs_relative_to_the_truth():
    runs = {name: cs.simulate(cs.Gaussian(mean=0.0, var=2.0), cs.GaussianFit(), n_samples=10,
                              generations=10, chains=100, seed=0, policy=policy,
                              metrics=("variance", "w2"))
            for name, policy in (("replace", cs.Replace()), ("fresh", cs.FreshReal(0.5)))}
    ax = cs.plotting.policy_comparison(runs)
    median = line(ax, "fresh").get_ydata()  # drawn from generation 1 (log x)
    np.testing.assert_allclose(median, np.median(runs["fresh"].metrics["variance"][1:],
                                                 axis=1) / 2.0)
    ax = cs.plotting.error_sources(list(runs.values()), metric="w2")
    assert {"Replace()", "FreshReal(fraction=0.5)"} <= set(labels(ax))


def test_gmm_snapshots_takes_a_recorded_mixture_run(mixture_2d):
    fig = cs.plotting.gmm_snapshots(mixture_2d, generations=[0, 2, 4])
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.subfigs[0].axes]
    assert titles == ["truth", "generation 2", "generation 4"]
    left = fig.subfigs[1].axes[0]
    assert [x.get_label() for x in left.get_lines()] == ["chain 0", "chain 1", "chain 2"]


def test_gmm_snapshots_explains_what_it_needs(replace):
    unrecorded = cs.simulate(cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2)), cs.GaussianFit(),
                             n_samples=10, generations=2, chains=2, seed=0, metrics="variance")
    with pytest.raises(ValueError, match=r"record_models=True"):
        cs.plotting.gmm_snapshots(unrecorded)
    one_d = cs.simulate(GAUSS, cs.GaussianFit(), n_samples=10, generations=2, chains=2,
                        seed=0, metrics="variance", record_models=True)
    with pytest.raises(ValueError, match="2-D models; this run's are 1-D"):
        cs.plotting.gmm_snapshots(one_d)


# -- the progress bar ---------------------------------------------------------------------


def test_progress_bar_outside_a_notebook_is_tqdm_and_leaves_nothing():
    import io

    from tqdm.std import tqdm

    from collapse_sim._progress import progress_bar

    out = io.StringIO()
    bar = progress_bar(total=3, file=out, disable=False, delay=0.0)
    assert type(bar) is tqdm and bar.leave is False
    bar.update(3)
    bar.close()
    assert out.getvalue().split("\r")[-1].strip() == ""  # the last write blanks the line


def test_a_finished_run_leaves_no_bar(capsys):
    cs.simulate(GAUSS, cs.GaussianFit(), n_samples=10, generations=5, chains=10, seed=0,
                metrics="variance", progress=True)
    err = capsys.readouterr().err
    assert "generations" in err  # a bar was shown ...
    assert err.split("\r")[-1].strip() == ""  # ... and its line blanked at the end


def test_notebook_bar_empties_its_output_when_it_finishes(monkeypatch):
    # In Jupyter the widget's output keeps a text copy of the bar as first displayed (what an
    # exported notebook shows): a finished bar must replace that output by nothing.
    pytest.importorskip("ipywidgets")
    from collapse_sim import _progress

    monkeypatch.setattr(_progress, "_in_notebook", lambda: True)
    calls = []

    class Handle:
        def update(self, obj, raw=False):
            calls.append(("update", obj, raw))

    def display(obj, display_id=None):
        calls.append(("display", type(obj).__name__, display_id))
        return Handle()

    monkeypatch.setattr("IPython.display.display", display)
    bar = _progress.progress_bar(total=3, disable=False, delay=0.0)
    assert calls == [("display", "TqdmHBox", True)]
    bar.update(3)
    bar.close()
    assert calls[-1] == ("update", {}, True)
    bar = _progress.progress_bar(total=3, disable=False, delay=0.0)  # stopped early:
    bar.update(1)
    bar.close()
    assert calls[-1][0] == "update" and calls[-1][2] is False  # the red bar stays
