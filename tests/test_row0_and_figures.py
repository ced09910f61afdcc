"""Row 0 of a misspecified fit, and the legends and theory lines of the demo and regression
figures (issue: "row 0 of a misspecified fit", "demo figure", "regression figure")."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.neighbors import KernelDensity

import collapse_sim as cs
from collapse_sim import experiments, metrics, plotting
from collapse_sim.protocol import Competence
from collapse_sim.theory.regression import _regression_test_error_variance

MIX = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0], [2.0]], covs=[[[1.0]], [[1.0]]])
MIX3 = cs.GaussianMixture(weights=[0.3, 0.3, 0.4], means=[[-3.0], [0.0], [3.0]],
                          covs=[[[1.0]], [[0.5]], [[1.0]]])
#: Metrics with a closed form (or a fixed quadrature) of (truth, model): no held-out data.
CLOSED = ("variance", "mean_shift", "w2", "kl", "tail_mass", "l2")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -- row 0 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fitter", [cs.GaussianFit(), cs.GaussianFit("unbiased"),
                                    cs.SGDGaussianFit(learning_rate=0.05, batch_size=8,
                                                      epochs=2)],
                         ids=["mle", "unbiased", "sgd"])
def test_row0_of_a_gaussian_fit_to_a_mixture_is_its_best_gaussian(fitter):
    assert fitter.competence(MIX) is Competence.APPROXIMATE
    sim = cs.simulate(MIX, fitter, n_samples=40, generations=2, chains=3, seed=0,
                      metrics=CLOSED, record_models=True)
    best = fitter.as_model(MIX)
    floor = cs.theory.gaussian_mismatch_floor(MIX)
    for name in CLOSED:  # row 0 is the metrics of fitter.as_model(truth) ...
        expected = getattr(metrics, name)(MIX, best)[0]
        np.testing.assert_allclose(sim.metrics[name][0], expected, rtol=1e-12, err_msg=name)
    for name in ("kl", "w2", "l2"):  # ... the expressivity floor, not 0
        np.testing.assert_allclose(sim.metrics[name][0], floor[name], rtol=1e-12)
        assert np.all(sim.metrics[name][0] > 0.01), name
    # models[0] is that same model, and the metrics of models[0] are metrics[0]
    np.testing.assert_array_equal(sim.models["mean"][0], np.broadcast_to(best.mean, (3, 1)))
    np.testing.assert_array_equal(sim.models["cov"][0], np.broadcast_to(best.cov, (3, 1, 1)))
    stored = cs.Gaussian(mean=sim.models["mean"][0], cov=sim.models["cov"][0])
    for name in CLOSED:
        np.testing.assert_allclose(sim.metrics[name][0], getattr(metrics, name)(MIX, stored),
                                   rtol=1e-12, err_msg=name)


def test_no_spurious_jump_at_generation_1():
    # With n = 50 000 real points, generation 1 is the best Gaussian up to an O(1/n)
    # statistical error: E[KL_1] - floor ~ (number of parameters)/(2n) times a kurtosis
    # factor of order 1, here ~2e-5; 1e-3 is 50 times that. Before the fix row 0 was the
    # truth (KL 0), and every chain jumped by the floor, 0.172.
    sim = cs.simulate(MIX, cs.GaussianFit(), n_samples=50_000, generations=1, chains=20,
                      seed=3, metrics=("kl", "w2", "tail_mass", "variance"))
    for name in ("kl", "w2", "tail_mass"):
        jump = np.abs(sim.metrics[name][1] - sim.metrics[name][0])
        assert np.median(jump) < 1e-3 * max(1.0, sim.metrics[name][0, 0] * 10), name
    # variance: sd of the sample variance of 5e4 points (kurtosis of the mixture ~1.7,
    # 4th central moment 3*1 + ... = 43, so Var(s^2) ~ (43 - 25)/n) is 0.019: 0.1 is 5 sd
    assert np.all(np.abs(sim.metrics["variance"][1] - 5.0) < 0.1)


def test_row0_of_the_other_approximate_pairs():
    # PPCA of a full-covariance Gaussian: its best PPCA model, KL > 0
    g3 = cs.Gaussian(mean=[0.0, 1.0, 2.0], cov=[[2.0, 0.5, 0.0], [0.5, 1.0, 0.0],
                                               [0.0, 0.0, 1.0]])
    ppca = cs.PPCAFit(1)
    assert ppca.competence(g3) is Competence.APPROXIMATE
    sim = cs.simulate(g3, ppca, n_samples=40, generations=1, chains=2, seed=0,
                      metrics=("kl", "w2", "variance"), record_models=True)
    best = ppca.as_model(g3)
    for name in ("kl", "w2", "variance"):
        np.testing.assert_allclose(sim.metrics[name][0], getattr(metrics, name)(g3, best)[0],
                                   rtol=1e-12, err_msg=name)
    assert np.all(sim.metrics["kl"][0] > 1e-3)
    np.testing.assert_array_equal(sim.models["noise_variance"][0],
                                  np.broadcast_to(best.noise_variance, (2,)))
    # fewer mixture components than the truth has: no best model in closed form
    # (as_model raises), so row 0 stays the truth
    for fitter in (cs.GaussianMixtureFit(2), cs.SklearnFitter(SkGaussianMixture(2))):
        assert fitter.competence(MIX3) is Competence.APPROXIMATE
        with pytest.raises(ValueError, match="components"):
            fitter.as_model(MIX3)
        sim = cs.simulate(MIX3, fitter, n_samples=40, generations=1, chains=2, seed=0,
                          metrics=("kl", "w2"))
        assert np.all(sim.metrics["kl"][0] == 0.0) and np.all(sim.metrics["w2"][0] == 0.0)
    # a scikit-learn estimator without components: no model of the truth, the truth
    kde = cs.SklearnFitter(KernelDensity(bandwidth=0.5))
    assert kde.competence(MIX) is Competence.APPROXIMATE
    sim = cs.simulate(MIX, kde, n_samples=40, generations=1, chains=2, seed=0,
                      metrics=("w2",))
    assert np.all(sim.metrics["w2"][0] == 0.0)


def test_mixture_fitters_contain_gaussians_and_smaller_mixtures():
    gauss = cs.Gaussian(mean=0.0, var=2.0)
    for fitter in (cs.GaussianMixtureFit(2), cs.SGDMixtureFit(2),
                   cs.SklearnFitter(SkGaussianMixture(2))):
        assert fitter.competence(gauss) is Competence.EXACT
        assert fitter.competence(MIX) is Competence.EXACT
        assert fitter.competence(MIX3) is Competence.APPROXIMATE
    assert cs.GaussianMixtureFit(3).competence(MIX3) is Competence.EXACT
    # the truth itself in row 0: distances exactly 0
    sim = cs.simulate(gauss, cs.GaussianMixtureFit(2), n_samples=40, generations=1, chains=2,
                      seed=0, metrics=("kl", "w2", "l2"))
    for name in ("kl", "w2", "l2"):
        assert np.all(sim.metrics[name][0] == 0.0), name


def test_mismatch_preset_starts_on_the_floor():
    result = experiments.run_preset("mismatch", generations=3, chains=40, seed=0)
    c = result.curves.set_index(["fitter", "generation"])
    floor = result.params["floor_kl"]
    assert c.loc[("Gaussian fit", 0), "kl_q50"] == pytest.approx(floor, rel=1e-12)
    assert c.loc[("Gaussian fit", 0), "w2_q50"] == pytest.approx(result.params["floor_w2"],
                                                                 rel=1e-12)
    assert c.loc[("2-component mixture fit", 0), "kl_q50"] == 0.0
    assert "generation 0 of the Gaussian fit" in result.description


# -- figure legends ---------------------------------------------------------------------------

def _style(artist):
    """What a reader tells a legend entry by: line colour, style and marker, or fill colour."""
    if isinstance(artist, Line2D):
        marker = artist.get_marker()
        return ("line", to_rgba(artist.get_color()), artist.get_linestyle(),
                None if marker in (None, "None", "", " ") else marker)
    face = artist.get_facecolor()
    face = face[0] if np.ndim(face) == 2 else face
    return ("fill", tuple(np.round(to_rgba(face), 3)))


def _drawn_styles(ax) -> set:
    styles = {_style(line) for line in ax.lines if len(line.get_xdata()) > 0}
    styles |= {_style(c) for c in ax.collections
               if isinstance(c, PolyCollection) and len(c.get_paths()) > 0
               and any(len(p.vertices) for p in c.get_paths())}
    return styles


def _check_legend(legend, axes) -> list[str]:
    """Every entry of ``legend`` is styled as an artist that is drawn, with data, on ``axes``."""
    drawn = set().union(*(_drawn_styles(ax) for ax in axes))
    labels = [t.get_text() for t in legend.get_texts()]
    for handle, label in zip(legend.legend_handles, labels, strict=True):
        assert _style(handle) in drawn, f"legend entry {label!r} matches no drawn line or band"
    return labels


def test_demo_figure_legend_matches_what_is_drawn_and_the_mean_is_visible():
    result = experiments.run_preset("gaussian", generations=200, chains=200, seed=0)
    fig = plotting.gaussian_demo(result.curves)
    left, right = fig.axes
    assert len(fig.legends) == 1  # the left panel's legend, below the panels
    labels = _check_legend(fig.legends[0], [left])
    _check_legend(right.get_legend(), [right])
    # black dashed lines are the exact medians only; the 10%/90% lines are in colour
    black = [line for line in left.lines if line.get_linestyle() == "--"
             and to_rgba(line.get_color()) == to_rgba("black") and len(line.get_xdata())]
    curves = result.curves
    medians = [curves[curves.estimator == e].theory_q50.to_numpy() for e in ("mle", "unbiased")]
    assert len(black) == 2
    for line, median in zip(black, medians, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), median)
    assert not any("10%, 50%, 90%" in label for label in labels)
    assert sum("exact 10%, 90% quantiles" in label for label in labels) == 2
    # the exact means: markers, drawn above every other line (the MLE's runs along the
    # unbiased median)
    means = [line for line in left.lines if "exact mean" in line.get_label()]
    assert len(means) == 2
    top = max(line.get_zorder() for line in left.lines if line not in means)
    for line in means:
        assert line.get_zorder() > top and line.get_marker() == "o"
    # the standalone panel keeps its own legend, with the same entries
    _, ax = plt.subplots()
    plotting.variance_collapse(result.curves, ax=ax)
    assert _check_legend(ax.get_legend(), [ax]) == labels


def test_regression_figure_legend_and_bound_label():
    result = experiments.run_preset("regression", generations=6, chains=400, seed=0)
    fig = plotting.regression_error(result)
    for ax in fig.axes:
        labels = _check_legend(ax.get_legend(), [ax])
        assert not any("bound on the mean" in label for label in labels)
    dotted = [line for line in fig.axes[1].lines if line.get_linestyle() == ":"]
    assert len(dotted) == 1
    label = dotted[0].get_label()
    assert "limit" in label and "expectation" in label
    # the dotted line is the t -> infinity limit of the closed form, which stays below it
    level = dotted[0].get_ydata()[0]
    p = result.params
    one = p["noise_std"] ** 2 * p["dim"] / (p["n_samples"] - p["dim"] - 1)
    assert level == pytest.approx(np.pi**2 / 6 * one, rel=1e-12)
    big = cs.theory.regression_test_error(n_samples=p["n_samples"], dim=p["dim"],
                                          generations=[10**6], policy="accumulate",
                                          design="fixed")
    assert big[0] < level and big[0] == pytest.approx(level, rel=1e-5)


@pytest.mark.slow
def test_regression_simulated_mean_agrees_with_its_closed_form():
    # The dashed lines are exact expectations, not bounds: every simulated mean must sit on
    # them within Monte Carlo error. SE from the exact variance of the per-chain error
    # (finite since T > d + 3); 3 x 30 correlated means, each compared at 4 SE (a normal
    # tail of 6e-5 per mean; the per-chain error is skewed, which the CLT over 4000 chains
    # makes small).
    n, d, chains, gens = 20, 5, 4000, 30
    result = experiments.run_preset("regression", generations=gens, chains=chains, seed=0,
                                    dim=d)
    for (policy, design), rows in result.curves.groupby(["policy", "design"]):
        if policy == "accumulate" and design == "fresh":
            continue
        se = np.sqrt(_regression_test_error_variance(
            n_samples=n, dim=d, generations=gens, policy=policy, design=design) / chains)
        z = (rows.sim_mean.to_numpy() - rows.theory_mean.to_numpy())[1:] / se[1:]
        assert np.max(np.abs(z)) < 4.0, (policy, design, np.round(z, 2))
        # the sample standard error the figure draws estimates that one (heavy tails:
        # 25% slack)
        np.testing.assert_allclose(rows.sim_mean_se.to_numpy()[1:], se[1:], rtol=0.25)
