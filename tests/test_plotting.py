"""Figures: every function returns what it promises, draws what it says, rejects bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

import collapse_sim as cs
from collapse_sim import experiments, plotting

QUANTILE_LEVELS = (10, 50, 90)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def gauss_sim():
    return cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=20,
                       generations=30, chains=40, seed=0, record_models=True,
                       metrics=("variance",))


@pytest.fixture(scope="module")
def mixture_sim():
    mix = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0], [2.0]], covs=[[[1.0]], [[1.0]]])
    return cs.simulate(mix, cs.GaussianMixtureFit(2), n_samples=60, generations=4, chains=3,
                       seed=0, record_models=True, metrics=("variance",))


def _band_table(column: str, labels, metrics=("variance", "w2"), generations=20):
    """A synthetic quantile table shaped like the presets' ``curves``."""
    rows = []
    g = np.arange(generations + 1)
    for i, label in enumerate(labels):
        frame = {column: label, "generation": g}
        for name in metrics:
            med = np.exp(-0.05 * (i + 1) * g) if name == "variance" else 0.1 * (i + 1) * (1 + g)
            frame[f"{name}_q10"], frame[f"{name}_q50"], frame[f"{name}_q90"] = (
                0.5 * med, med, 2 * med)
        rows.append(pd.DataFrame(frame))
    return pd.concat(rows, ignore_index=True)


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# -- existing figures ----------------------------------------------------------------------------


def test_gaussian_demo_panels_are_log_and_labelled():
    result = experiments.run_preset("gaussian", generations=20, chains=100, seed=0)
    fig = plotting.gaussian_demo(result.curves)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    left, right = fig.axes
    assert left.get_yscale() == "log" and "variance" in left.get_ylabel()
    assert right.get_legend() is not None
    _, ax = plt.subplots()
    assert plotting.variance_collapse(result.curves, ax=ax) is ax
    assert plotting.w2_growth(result.curves, ax=ax) is ax


# -- density evolution ---------------------------------------------------------------------------


def test_density_evolution_draws_truth_and_one_curve_per_generation(gauss_sim):
    _, ax = plt.subplots()
    out = plotting.density_evolution(gauss_sim, generations=[1, 10, 30], chain=3, ax=ax)
    assert out is ax
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["truth", "generation 1", "generation 10", "generation 30"]
    assert _legend_texts(ax) == labels
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "x"
    # the truth's curve is the standard normal density
    truth_line = ax.get_lines()[0]
    x, y = truth_line.get_data()
    np.testing.assert_allclose(y, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), rtol=1e-12)
    # the curve of generation 30 is chain 3's fitted Gaussian
    x30, y30 = ax.get_lines()[3].get_data()
    m, v = gauss_sim.models["mean"][30, 3, 0], gauss_sim.models["cov"][30, 3, 0, 0]
    np.testing.assert_allclose(y30, np.exp(-0.5 * (x30 - m) ** 2 / v) / np.sqrt(2 * np.pi * v),
                               rtol=1e-10)


def test_density_evolution_log_panel_shows_the_tails(gauss_sim):
    ax = plotting.density_evolution(gauss_sim, log=True)
    assert isinstance(ax, Axes) and ax.get_yscale() == "log"
    texts = _legend_texts(ax)
    assert texts[0] == "truth" and "outer 1%" in texts[1]
    # default: log-spaced generations from 1 to G, the median chain named in the legend title
    assert texts[2:] == [f"generation {g}" for g in (1, 2, 5, 13, 30)]
    assert "median variance" in ax.get_legend().get_title().get_text()


def test_density_evolution_median_chain_is_the_median(gauss_sim):
    ax = plotting.density_evolution(gauss_sim, generations=[30], chain="median")
    title = ax.get_legend().get_title().get_text()
    chain = int(title.split("no. ")[1].split(":")[0])
    var = gauss_sim.models["cov"][30, :, 0, 0]
    assert var[chain] == np.sort(var)[(var.size - 1) // 2]


def test_density_evolution_several_chains_and_mixtures(mixture_sim):
    ax = plotting.density_evolution(mixture_sim, generations=[1, 4], chain=[0, 1, 2])
    lines = ax.get_lines()
    assert len(lines) == 1 + 2 * 3  # the truth, then 3 chains per generation
    assert _legend_texts(ax) == ["truth", "generation 1", "generation 4"]
    # a mixture truth is drawn as the mixture (two humps), not its best Gaussian
    x, y = lines[0].get_data()
    assert y[np.argmin(np.abs(x))] < y[np.argmin(np.abs(x - 2))]


def test_density_evolution_resolves_collapsed_spikes():
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=5,
                      generations=300, chains=3, seed=1, record_models=True,
                      metrics=("variance",))
    var = sim.models["cov"][300, 0, 0, 0]
    assert var < 1e-8  # far narrower than the plotting grid
    ax = plotting.density_evolution(sim, generations=[300], chain=0)
    _, y = ax.get_lines()[1].get_data()
    np.testing.assert_allclose(y.max(), 1 / np.sqrt(2 * np.pi * var), rtol=0.01)
    assert ax.get_ylim()[1] < y.max()  # cut at the top...
    assert any(t.get_text().startswith("peak") for t in ax.texts)  # ...and its height written


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"generations": [31]}, "generations"),
    ({"generations": [-1]}, "generations"),
    ({"generations": [1.5]}, "generations"),
    ({"generations": []}, "generations"),
    ({"chain": 40}, "chain"),
    ({"chain": "mean"}, "chain"),
    ({"x": [1.0, 0.0]}, "x"),
])
def test_density_evolution_bad_input(gauss_sim, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.density_evolution(gauss_sim, **kwargs)


def test_density_evolution_needs_recorded_1d_models(gauss_sim):
    plain = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(), n_samples=20,
                        generations=3, chains=2, seed=0, metrics=("variance",))
    with pytest.raises(ValueError, match="record_models=True"):
        plotting.density_evolution(plain)
    with pytest.raises(ValueError, match="truth"):
        plotting.density_evolution(gauss_sim.models)
    ax = plotting.density_evolution(gauss_sim.models, truth=cs.Gaussian(mean=0.0, var=1.0),
                                    generations=[2])
    assert len(ax.get_lines()) == 2
    two_d = cs.simulate(cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2)), cs.GaussianFit(),
                        n_samples=20, generations=2, chains=2, seed=0, record_models=True,
                        metrics=("variance",))
    with pytest.raises(ValueError, match="1-D"):
        plotting.density_evolution(two_d)


# -- animation -----------------------------------------------------------------------------------


def test_animate_density_writes_a_gif_with_one_frame_per_generation(gauss_sim, tmp_path):
    gens = [0, 5, 10, 20, 30]
    path = plotting.animate_density(gauss_sim, tmp_path / "collapse", generations=gens,
                                    fps=5, dpi=40)
    assert path == tmp_path / "collapse.gif" and path.exists()
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == len(gens)
        assert gif.info["duration"] == pytest.approx(1000 / 5, abs=10)
    assert not plt.get_fignums()  # the animation's figure is closed


def test_animate_density_log_and_default_frames(mixture_sim, tmp_path):
    path = plotting.animate_density(mixture_sim, tmp_path / "mix.gif", chain=1, log=True,
                                    trail=0, dpi=30)
    with Image.open(path) as gif:
        assert gif.n_frames == mixture_sim.generations + 1  # G <= 60: every generation


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"generations": [0, 99]}, "generations"),
    ({"fps": 0}, "fps"),
    ({"trail": -1}, "trail"),
    ({"chain": [0, 1]}, "chain"),
])
def test_animate_density_bad_input(gauss_sim, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.animate_density(gauss_sim, tmp_path / "bad.gif", **kwargs)
    assert not (tmp_path / "bad.gif").exists()


# -- quantile-band comparisons -------------------------------------------------------------------


def test_policy_comparison_one_median_per_policy_with_bands():
    labels = list(experiments.POLICY_SETTINGS)
    curves = _band_table("policy", labels)
    _, ax = plt.subplots()
    assert plotting.policy_comparison(curves, ax=ax) is ax
    medians = [line for line in ax.get_lines() if line.get_linewidth() > 2]
    assert [line.get_label() for line in medians] == labels
    assert len(ax.collections) == len(labels)  # one 10-90% band each
    texts = _legend_texts(ax)
    assert texts[:4] == labels and "10–90%" in texts[4]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    assert "variance" in ax.get_ylabel()
    assert texts[5] == "the truth's variance"
    ax2 = plotting.policy_comparison(curves, metric="w2", logx=False, legend=False)
    assert ax2.get_yscale() == "linear" and ax2.get_xscale() == "linear"
    assert "W_2" in ax2.get_ylabel() and ax2.get_legend() is None


def test_policy_comparison_bad_input():
    with pytest.raises(ValueError, match="kl_q10"):
        plotting.policy_comparison(_band_table("policy", ["a"]), metric="kl")
    with pytest.raises(TypeError, match="DataFrame"):
        plotting.policy_comparison({"policy": []})


def test_error_sources_draws_four_settings_the_floor_and_two_bands():
    curves = _band_table("source", experiments.ERROR_SOURCES, metrics=("w2",))
    _, ax = plt.subplots()
    assert plotting.error_sources(curves, floor=0.23, ax=ax) is ax
    texts = _legend_texts(ax)
    assert len(texts) == 5 and texts[0].startswith("statistical only")
    assert texts[3].startswith("all three") and "shown for" in texts[4]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    floors = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(floors) == 1 and floors[0].get_ydata()[0] == 0.23
    assert len(ax.collections) == 2  # bands for the two extreme settings only
    every = plotting.error_sources(curves, bands=None)
    assert len(every.collections) == 4


# -- preset figures ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size", "axes"), [
    ("sgd", {"generations": 5, "chains": 20}, 2),
    ("policies", {"generations": 5, "chains": 20}, 2),
    ("error_sources", {"generations": 5, "chains": 20}, 2),
])
def test_figure_for_new_presets(name, size, axes):
    result = experiments.run_preset(name, seed=0, **size)
    fig = plotting.figure_for(result)
    assert isinstance(fig, Figure) and len(fig.axes) == axes
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is not None or fig.legends  # per panel, or one for all


def test_figure_for_unknown_preset():
    result = experiments.ExperimentResult("nope", {}, pd.DataFrame(), pd.DataFrame(), "")
    with pytest.raises(ValueError, match="no figure"):
        plotting.figure_for(result)


def test_figures_has_every_preset_and_figure_for_looks_it_up(monkeypatch):
    assert set(plotting.FIGURES) == set(experiments.PRESETS)
    assert all(callable(f) for f in plotting.FIGURES.values())
    # a new preset's figure is one more entry
    result = experiments.ExperimentResult("new", {}, pd.DataFrame(), pd.DataFrame(), "")
    fig = Figure()
    monkeypatch.setitem(plotting.FIGURES, "new", lambda r: fig if r is result else None)
    assert plotting.figure_for(result) is fig


def test_regression_error_panels():
    result = experiments.run_preset("regression", generations=5, chains=200, seed=0)
    fig = plotting.regression_error(result)
    assert isinstance(fig, Figure)
    replace, accumulate = fig.axes
    # two simulated means per panel, the dashed closed forms (two on the left, one on the
    # right: accumulate with a fresh design has none) and the dotted pi^2/6 bound
    assert sum(line.get_linestyle() == "-" for line in replace.lines) == 2
    assert sum(line.get_linestyle() == "--" and len(line.get_xdata()) > 0
               for line in replace.lines) == 2
    assert sum(line.get_linestyle() == "--" and len(line.get_xdata()) > 0
               for line in accumulate.lines) == 1
    assert any(line.get_linestyle() == ":" for line in accumulate.lines)
    assert "generation" in replace.get_xlabel() and "test error" in replace.get_ylabel()
    _, axes = plt.subplots(1, 2)
    assert plotting.regression_error(result, axes=axes) is axes[0].figure


@pytest.mark.parametrize(("name", "draw"), [
    ("gaussian", lambda r, axes: plotting.gaussian_demo(r.curves, axes=axes)),
    ("mismatch", lambda r, axes: plotting.mismatch(r, axes=axes)),
    ("sgd", lambda r, axes: plotting.sgd_drift(r, axes=axes)),
    ("policies", lambda r, axes: plotting.policies(r, axes=axes)),
    ("error_sources", lambda r, axes: plotting.error_sources_figure(r, axes=axes)),
])
def test_preset_figures_draw_on_given_axes(name, draw):
    result = experiments.run_preset(name, generations=4, chains=20, seed=0)
    fig, axes = plt.subplots(1, 2, layout="constrained")
    assert draw(result, axes) is fig
    assert all(ax.has_data() for ax in axes)
    with pytest.raises(ValueError, match="axes"):
        draw(result, axes[:1])


def test_gmm_snapshots_draws_in_a_given_figure():
    result = experiments.run_preset("gmm", generations=3, chains=1, n_samples=200, seed=0)
    fig = plt.figure(layout="constrained")
    assert plotting.gmm_snapshots(result, fig=fig) is fig
    assert len(fig.axes) > 2
