"""Every figure function of collapse_sim.plotting draws the user's own Simulations.

For each figure: tiny runs (fixed seeds) are drawn without error, the figure shows *those*
runs (a median line's y-data is ``np.median`` of the run's metric per generation, a floor
is the theory's for the run's truth, titles state the run's sizes, not the preset's), and
what the figure cannot draw from a run is a clear error saying what to do instead.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import collapse_sim as cs
from collapse_sim import experiments, plotting, theory

GAUSS = cs.Gaussian(mean=0.0, var=2.0)  # variance 2: relative curves must divide by it
MIX = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0], [2.0]], covs=[[[1.0]], [[1.0]]])
ZIPF = cs.Zipf(n_categories=60, exponent=1.1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _gauss(policy=None, fitter=None, **kw):
    kw = {"n_samples": 20, "generations": 12, "chains": 60, "seed": 0,
          "metrics": ("variance", "w2"), **kw}
    return cs.simulate(GAUSS, fitter or cs.GaussianFit("mle"), policy=policy or cs.Replace(),
                       **kw)


@pytest.fixture(scope="module")
def mle():
    return _gauss()


@pytest.fixture(scope="module")
def unbiased():
    return _gauss(fitter=cs.GaussianFit("unbiased"))


@pytest.fixture(scope="module")
def keep():
    return _gauss(cs.KeepReal(0.5))


@pytest.fixture(scope="module")
def mismatched():
    return cs.simulate(MIX, cs.GaussianFit(), n_samples=30, generations=12, chains=40, seed=0,
                       metrics=("kl", "w2"), record_models=True)


@pytest.fixture(scope="module")
def vocab():
    replace = cs.simulate(ZIPF, cs.CategoricalFit(), n_samples=100, generations=10, chains=8,
                          seed=0, metrics=("support", "entropy"), record_models=True)
    accumulate = cs.simulate(ZIPF, cs.CategoricalFit(), n_samples=100, generations=10,
                             chains=8, seed=0, metrics=("support", "entropy"),
                             policy=cs.Accumulate())
    return {"replace": replace, "accumulate": accumulate}


def line(ax, label):
    found = [x for x in ax.get_lines() if x.get_label() == label]
    assert found, f"no line {label!r} among {[x.get_label() for x in ax.get_lines()]}"
    return found[0]


def median(sim, metric, start=0, scale=1.0):
    return np.median(sim.metrics[metric][start:], axis=1) / scale


def texts(fig):
    """Every title, suptitle and legend text of a figure and its subfigures."""
    out = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return "\n".join(out)


# -- the Gaussian demo -------------------------------------------------------------------------

def test_variance_collapse_draws_the_runs_medians_and_theory_only_where_it_holds(mle, keep):
    ax = plotting.variance_collapse({"replace": mle, "keep half": keep})
    np.testing.assert_allclose(line(ax, "replace: median").get_ydata(),
                               median(mle, "variance", scale=2.0))
    np.testing.assert_allclose(line(ax, "keep half: median").get_ydata(),
                               median(keep, "variance", scale=2.0))
    labels = [x.get_label() for x in ax.get_lines()]
    assert "replace: exact 10%, 90% quantiles" in labels  # Replace + GaussianFit: theory
    assert not any(lab.startswith("keep half: exact") for lab in labels)  # KeepReal: none
    # one Simulation alone, labelled by its fitter and policy
    one = plotting.variance_collapse(mle)
    assert line(one, "GaussianFit(estimator=mle), Replace(): median")


def test_w2_growth_and_gaussian_demo_state_the_runs_sizes(mle, unbiased):
    ax = plotting.w2_growth({"mle": mle, "unbiased": unbiased})
    np.testing.assert_allclose(line(ax, "MLE (divide by n): mean over chains").get_ydata(),
                               (mle.metrics["w2"] ** 2).mean(axis=1) / 2.0)
    assert ax.get_title().endswith("saturates (MLE)")
    fig = plotting.gaussian_demo([mle, unbiased])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    title = fig.get_suptitle()
    assert "n = 20" in title and "12 generations" in title and "60 chains" in title
    assert "cov=2" in title
    # a run of another policy: no theory, and the title claims nothing about estimators
    keep_only = plotting.w2_growth(_gauss(cs.KeepReal(0.5), generations=4, chains=10))
    assert keep_only.get_title() == "Distance from the truth"
    assert "exact theory E[W₂²]" not in [t.get_text() for t in keep_only.get_legend().get_texts()]


# -- curve panels -------------------------------------------------------------------------------

def test_policy_comparison_error_sources_policies_and_sgd_draw_the_runs(mle, keep):
    runs = {"replace": mle, "keep half": keep}
    ax = plotting.policy_comparison(runs)
    np.testing.assert_allclose(line(ax, "keep half").get_ydata(),
                               median(keep, "variance", start=1, scale=2.0))
    ax = plotting.error_sources([mle, keep])
    assert {"Replace()", "KeepReal(fraction=0.5)"} <= {x.get_label() for x in ax.get_lines()}
    band = [t.get_text() for t in ax.get_legend().get_texts() if "shown for" in t.get_text()]
    assert band == ["band: 10–90% of chains (line: median)\nshown for: Replace(), "
                    "KeepReal(fraction=0.5)"]  # the runs' bands, not the preset's names
    fig = plotting.policies(runs)
    left, right = fig.axes
    np.testing.assert_allclose(line(left, "replace").get_ydata(),
                               median(mle, "variance", start=1, scale=2.0))
    np.testing.assert_allclose(line(right, "keep half").get_ydata(), median(keep, "w2", 1))
    sgd = _gauss(fitter=cs.SGDGaussianFit(learning_rate=0.1, batch_size=8, epochs=2),
                 generations=4, chains=20)
    fig = plotting.sgd_drift({"exact": mle, "sgd": sgd})
    left, right = fig.axes
    np.testing.assert_allclose(line(left, "sgd").get_ydata(), median(sgd, "variance", 0, 2.0))
    assert "SGD steps" not in texts(fig)  # no claim of the preset's settings
    assert "n = 20" in fig.get_suptitle()


def test_mismatch_and_error_sources_figure_take_the_floor_of_the_runs_truth(mle, mismatched):
    floor = theory.gaussian_mismatch_floor(MIX)
    mixture = cs.simulate(MIX, cs.GaussianMixtureFit(2), n_samples=30, generations=12,
                          chains=10, seed=0, metrics=("kl", "w2"))
    fig = plotting.mismatch({"gaussian": mismatched, "mixture": mixture})
    left, right = fig.axes
    assert left.get_title() == "gaussian: a Gaussian fitted to a 2-component mixture"
    np.testing.assert_allclose(line(right, "gaussian: median").get_ydata(),
                               median(mismatched, "kl", start=1))
    dashed = [x for x in right.get_lines() if x.get_linestyle() == "--"]
    assert dashed[0].get_ydata()[0] == pytest.approx(floor["kl"])
    assert "N(0, 5)" in texts(fig)  # this truth's best Gaussian
    fig = plotting.error_sources_figure({"statistical": mle, "expressivity": mismatched})
    right = fig.axes[1]
    dashed = [x for x in right.get_lines() if x.get_linestyle() == "--"]
    assert dashed[0].get_ydata()[0] == pytest.approx(floor["w2"])
    assert "variance 5" in texts(fig) and "N(0, 5)" in texts(fig)
    np.testing.assert_allclose(
        line(right, "+ expressivity (Gaussian fit, bimodal truth)").get_ydata(),
        median(mismatched, "w2", start=1))


def test_mismatch_figures_explain_what_they_need(mle, mismatched):
    with pytest.raises(ValueError, match=r"1-D GaussianMixture truth.*cs.compare"):
        plotting.mismatch(_gauss(generations=3, chains=5, metrics=("kl",)))
    with pytest.raises(ValueError, match=r"plotting.error_sources\(runs\)"):
        plotting.error_sources_figure([mle])
    unrecorded = cs.simulate(MIX, cs.GaussianFit(), n_samples=30, generations=3, chains=5,
                             seed=0, metrics=("kl",))
    with pytest.raises(ValueError, match=r"record_models=True"):
        plotting.mismatch(unrecorded)
    with pytest.raises(ValueError, match=r"'kl'.*metrics=\('kl'"):
        plotting.mismatch({"a": mismatched, "b": mle})


def test_gmm_snapshots_frames_the_runs_truth_and_names_its_chain():
    far = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-6.0, 0.0], [6.0, 1.0]],
                             covs=[np.eye(2), np.eye(2)])
    sim = cs.simulate(far, cs.GaussianMixtureFit(2), n_samples=60, generations=4, chains=3,
                      seed=0, record_models=True, metrics=("variance",))
    fig = plotting.gmm_snapshots(sim, chain=1)
    snaps = fig.subfigs[0].axes
    assert snaps[0].get_xlim()[0] <= -9 and snaps[0].get_xlim()[1] >= 9  # both components
    assert fig.subfigs[0].get_suptitle().startswith("Chain 1's mixture")
    with pytest.raises(ValueError, match="one Simulation"):
        plotting.gmm_snapshots({"a": sim, "b": sim})


# -- other families ------------------------------------------------------------------------

def test_regression_error_draws_one_panel_per_policy_with_the_closed_form():
    truth = cs.LinearRegression(weights=np.zeros(3), noise_std=1.0)
    fixed = cs.LinearRegression(weights=np.zeros(3), noise_std=1.0, design="fixed")
    replace = cs.simulate(truth, cs.OLSFit(), n_samples=10, generations=6, chains=200, seed=0)
    acc = cs.simulate(fixed, cs.OLSFit(), n_samples=10, generations=6, chains=200, seed=0,
                      policy=cs.Accumulate())
    fig = plotting.regression_error({"fresh": replace, "fixed": acc})
    left, right = fig.axes
    np.testing.assert_allclose(line(left, "fresh: simulated mean ± 2 s.e.").get_ydata(),
                               replace.metrics["test_error"].mean(axis=1))
    exact = theory.regression_test_error(n_samples=10, dim=3, generations=6)
    dashed = [x for x in left.get_lines() if x.get_linestyle() == "--" and len(x.get_xdata())]
    np.testing.assert_allclose(dashed[0].get_ydata(), exact)
    assert any(x.get_linestyle() == ":" for x in right.get_lines())  # pi^2/6 of one generation
    assert "d = 3 features, T = 10 rows" in fig.get_suptitle()
    assert "200 chains" in fig.get_suptitle()
    only = plotting.regression_error(replace)  # one policy: one panel
    assert len(only.axes) == 1
    with pytest.raises(ValueError, match="LinearRegression truth"):
        plotting.regression_error({"g": replace, "h": _with_metric("test_error")})


def _with_metric(name):
    """A Gaussian run carrying a metric of another family's name (what a user's custom
    metric could be called), to check the truth is refused, not the metric."""
    sim = _gauss(generations=2, chains=5)
    return cs.Simulation({**sim.metrics, name: sim.metrics["variance"]}, sim.config)


def test_vocabulary_draws_support_theory_and_a_recorded_chain(vocab):
    fig = plotting.vocabulary(vocab)
    left, right = fig.axes
    np.testing.assert_allclose(line(left, "replace").get_ydata(),
                               median(vocab["replace"], "support"))
    # the exact expectation (replace and accumulate, no smoothing) is drawn dashed
    dashed = [x for x in left.get_lines() if x.get_linestyle() == "--"
              and len(x.get_xdata())]
    assert len(dashed) == 2
    np.testing.assert_allclose(dashed[0].get_ydata(), theory.categorical_surviving_mean(
        ZIPF.probs[0], 100, np.arange(11)))
    assert "chain 0 of replace" in right.get_ylabel()
    assert right.get_lines()[-1].get_label().startswith("generation 10:")
    with pytest.raises(ValueError, match=r"record_models=True.*cs.compare"):
        plotting.vocabulary(vocab["accumulate"])


def test_sampling_bias_puts_each_run_in_its_row_and_column(mle, vocab):
    cold = _gauss(generations=12, chains=60, generation=cs.Temperature(0.9),
                  metrics=("variance",))
    fig = plotting.sampling_bias({"g": mle, "g cold": cold, "z": vocab["replace"],
                                  "z acc": vocab["accumulate"]})
    axes = np.array(fig.axes).reshape(2, 2)  # rows: variance, entropy; columns: policies
    assert axes[0, 0].get_title() == "Gaussian, Replace()"
    assert axes[1, 1].get_title().startswith("Zipf, Accumulate(")
    np.testing.assert_allclose(line(axes[0, 0], "Temperature(tau=0.9)").get_ydata(),
                               median(cold, "variance"))
    np.testing.assert_allclose(line(axes[1, 0], "faithful").get_ydata(),
                               median(vocab["replace"], "entropy"))
    assert not axes[0, 1].has_data()  # no Gaussian run under Accumulate
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["faithful", "Temperature(tau=0.9)"]
    with pytest.raises(ValueError, match=r"'variance'.*'entropy'"):
        plotting.sampling_bias(_gauss(generations=2, chains=5, metrics=("w2",)))


def test_language_draws_the_runs_own_texts_and_perplexities():
    corpus = cs.text.Corpus.from_string(
        "the dog ran home . the cat sat on the mat . a bird flew over the house .\n" * 30)
    truth = cs.NGramTruth(corpus, order=2, block_size=8, heldout=0.1)
    runs = {name: cs.simulate(truth, cs.NGramFit(), n_samples=160, generations=3, chains=2,
                              seed=0, policy=policy, metrics=["perplexity", "vocabulary"])
            for name, policy in (("replace", cs.Replace()), ("accumulate", cs.Accumulate()))}
    fig = plotting.language(runs, prompt="the", sequences=10)
    ppl = fig.axes[0]
    np.testing.assert_allclose(line(ppl, "accumulate").get_ydata(),
                               median(runs["accumulate"], "perplexity"))
    words = runs["replace"].text(generation=3, chain=0, prompt="the", tokens=24, seed=0)
    assert "".join(words.split()) in "".join(texts(fig).split())  # wrapped on the panel
    assert "chain 0 of replace" in texts(fig)
    loaded = cs.Simulation(runs["replace"].metrics, runs["replace"].config)  # no models
    with pytest.raises(ValueError, match="keeps no n-gram models"):
        plotting.language(loaded)


@pytest.mark.slow
def test_digits_figure_and_gif_from_a_recorded_ppca_run(tmp_path):
    sim = cs.simulate(cs.Empirical(cs.datasets.digits(), heldout=0.2), cs.PPCAFit(n_components=4),
                      n_samples=80, generations=3, chains=2, seed=0, record_models=True,
                      metrics=experiments.DIGITS_METRICS)
    fig = plotting.digits_figure({"mine": sim})
    var_ax = fig.subfigs[1].axes[0]
    np.testing.assert_allclose(line(var_ax, "mine").get_ydata(), median(sim, "variance"))
    assert "(q = 4)" in texts(fig) and "n = 80 digits" in texts(fig)
    path = plotting.animate_digits(sim, tmp_path / "mine", columns=3)
    assert Image.open(path).n_frames == 4
    no_scores = cs.simulate(cs.Empirical(cs.datasets.digits(), heldout=0.2),
                            cs.PPCAFit(n_components=4), n_samples=80, generations=1, chains=1,
                            seed=0, record_models=True)
    with pytest.raises(ValueError, match=r"'classes_covered'.*DIGITS_METRICS"):
        plotting.digits_figure(no_scores)


# -- what cannot be drawn, and what is not a run -------------------------------------------------

def test_kde_collapse_says_what_to_call_instead(mle):
    with pytest.raises(TypeError, match=r"kde_collapse\(\.\.\.\).*sim.plot\('nll'\)"):
        plotting.kde_collapse(mle)


@pytest.mark.parametrize("draw", [
    plotting.variance_collapse, plotting.w2_growth, plotting.gaussian_demo,
    plotting.policy_comparison, plotting.error_sources, plotting.gmm_snapshots,
    plotting.mismatch, plotting.sgd_drift, plotting.policies, plotting.error_sources_figure,
    plotting.regression_error, plotting.vocabulary, plotting.language, plotting.sampling_bias,
    plotting.kde_collapse, plotting.digits_figure,
])
def test_not_a_run_is_a_type_error_naming_what_is_accepted(draw):
    with pytest.raises(TypeError, match=r"Simulation"):
        draw(42)
    with pytest.raises(TypeError, match=r"entry 'a' is a int|Simulation"):
        draw({"a": 1})


def test_missing_metric_names_it_and_how_to_compute_it():
    only_variance = _gauss(generations=2, chains=5, metrics=("variance",))
    with pytest.raises(ValueError, match=r"'w2'.*metrics=\('variance', 'w2'"):
        plotting.policies([only_variance])
    with pytest.raises(ValueError, match=r"'w2'"):
        plotting.gaussian_demo(only_variance)
    with pytest.raises(ValueError, match=r"'support'.*metrics=\('support'"):
        plotting.vocabulary(only_variance)
