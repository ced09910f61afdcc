"""Presets reproduce the published findings they are named after."""

import numpy as np
import pandas as pd
import pytest

from collapse_sim import experiments, theory


def test_gmm_preset_components_collapse_as_in_the_paper():
    # Shumailov et al.'s saved run: component standard deviations from about 0.9 to about
    # 0.01 over 2000 generations. Two chains at the preset's full length.
    result = experiments.run_preset("gmm", generations=2000, chains=2, seed=0)
    c = result.curves
    first = c[c.generation == 1]
    last = c[c.generation == 2000]
    # Generation 1 splits the standard normal in two: along the split axis a half-normal
    # has sd sqrt(1 - 2/pi) = 0.60 (soft EM assignments give more), across it 1; with
    # n = 1000 each sd fluctuates by about 0.05, so 0.45 and 1.5 are 3-SE margins.
    assert first.component_sd_min.min() > 0.45 and first.component_sd_max.max() < 1.5
    assert last.component_sd_max.max() < 0.1
    # the mixture has left the first fit far behind
    assert last.l2_to_first.min() > 100 * c[c.generation == 2].l2_to_first.max()
    assert np.isfinite(c.drop(columns=["generation", "chain"]).to_numpy()).all()


def test_mismatch_preset_starts_at_the_floor_and_climbs():
    result = experiments.run_preset("mismatch", generations=100, chains=400, seed=0)
    c = result.curves
    gauss = c[c.fitter == "Gaussian fit"].set_index("generation")
    floor = theory.gaussian_mismatch_floor(result.extras["truth"])["kl"]
    assert gauss.loc[1, "kl_q10"] >= floor - 1e-10  # nothing beats the best Gaussian
    assert gauss.loc[1, "kl_q50"] < 1.1 * floor  # n = 100: close to the floor already
    assert gauss.loc[100, "kl_q50"] > 2 * floor  # recursion adds statistical error
    mix = c[c.fitter == "2-component mixture fit"].set_index("generation")
    assert mix.loc[1, "kl_q50"] < 0.5 * floor  # a mixture can represent the truth


def test_sgd_preset_shows_the_extra_drift_of_approximation_error():
    result = experiments.run_preset("sgd", generations=40, chains=300, seed=0)
    c = result.curves.set_index(["fitter", "generation"])
    mle, small, mid, big = experiments.SGD_SETTINGS
    var = {f: c.loc[(f, 40), "variance_q50"] for f in experiments.SGD_SETTINGS}
    w2 = {f: c.loc[(f, 40), "w2_q50"] for f in experiments.SGD_SETTINGS}
    # Exact fit: E[log var_t] falls by about 1/n per generation; median near 0.45 at t=40.
    assert var[mle] < 0.7
    # SGD's variance bias grows with the step and reverses the drift at rate 0.2.
    assert var[mle] < var[small] < var[mid] < var[big] and var[big] > 1.2
    assert w2[big] > 1.5 * w2[mle]  # the bias compounds: farther from the truth
    assert w2[small] < w2[mle]  # small steps under-fit: the model moves less
    assert set(c.columns) >= {"variance_q10", "variance_q50", "variance_q90", "w2_q50"}
    assert np.isfinite(result.curves.drop(columns="fitter").to_numpy()).all()
    assert f"{var[mle]:.2g}" in result.description


def test_policies_preset_only_replace_collapses():
    result = experiments.run_preset("policies", generations=200, chains=300, seed=0)
    c = result.curves.set_index(["policy", "generation"])
    replace, keep, acc, fresh = experiments.POLICY_SETTINGS
    assert c.loc[(replace, 200), "variance_q50"] < 0.1
    for policy in (keep, acc, fresh):
        assert c.loc[(policy, 200), "variance_q50"] > 0.5, policy
    # Accumulate hardly moves; fresh data keeps a steady spread; a fixed real subset pins
    # each chain wherever it went early; Replace wanders farthest.
    w2 = [c.loc[(p, 200), "w2_q50"] for p in (acc, fresh, keep, replace)]
    assert w2 == sorted(w2)
    # every policy trains generation 1 on the same real sample: identical first fits
    first = c.xs(1, level="generation")["variance_q50"]
    assert first[replace] == first[acc] == first[fresh]


def test_error_sources_preset_floor_and_compounding():
    result = experiments.run_preset("error_sources", generations=20, chains=300, seed=0)
    c = result.curves.set_index(["source", "generation"])
    floor = result.params["floor_w2"]
    assert floor == pytest.approx(0.5150556962058552 / np.sqrt(5), rel=1e-6)  # scale-free
    # The W2-closest Gaussian is a hair closer than the n -> inf fit (0.2288 vs 0.2303).
    for source in ("expressivity", "all three"):
        assert c.loc[(source, 1), "w2_q10"] > 0.98 * floor
    med = {s: c.loc[(s, 1), "w2_q50"] for s in experiments.ERROR_SOURCES}
    assert med["statistical"] < med["approximation"] < med["expressivity"] <= med["all three"]
    at10 = {s: c.loc[(s, 10), "w2_q50"] for s in experiments.ERROR_SOURCES}
    assert at10["approximation"] > 1.2 * at10["statistical"]
    assert at10["all three"] > max(at10["expressivity"], at10["approximation"])
    assert (c.loc["statistical", "floor_w2"] == 0).all()


@pytest.mark.parametrize("name", ["sgd", "policies", "error_sources"])
def test_cli_runs_the_new_presets(name, tmp_path, capsys):
    from collapse_sim import cli

    assert cli.main(["run", name, "--generations", "6", "--chains", "30", "--seed", "1",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / f"{name}.csv")
    assert len(table) == 4 * 7 and not table.isna().any().any()
    assert experiments.PRESETS[name].title in out and "chains" in out


def test_regression_preset_against_its_closed_forms(tmp_path, capsys):
    from collapse_sim import cli

    result = experiments.run_preset("regression", generations=8, chains=3000, seed=2)
    c = result.curves.set_index(["setting", "generation"])
    for label in ("replace, fresh design", "replace, fixed design", "accumulate, fixed design"):
        rows = c.loc[label]
        # Chebyshev at 30 standard errors (heavy-tailed per-chain error; see
        # tests/test_regression.py): a false alarm has probability <= 1/900 per check.
        policy, design = rows["policy"].iloc[0], rows["design"].iloc[0]
        var = theory._regression_test_error_variance(n_samples=20, dim=5, generations=8,
                                                     policy=policy, design=design)
        assert np.all(np.abs(rows["sim_mean"] - rows["theory_mean"]) <= 30 * np.sqrt(var / 3000))
    assert c.loc["accumulate, fresh design", "theory_mean"].isna().all()
    # replace grows past the accumulate curves, which stay near one generation's error
    assert (c.loc[("replace, fresh design", 8), "sim_mean"]
            > 3 * c.loc[("accumulate, fresh design", 8), "sim_mean"])
    assert cli.main(["run", "regression", "--generations", "4", "--chains", "50",
                     "--out", str(tmp_path)]) == 0
    assert (tmp_path / "regression.png").read_bytes()[:4] == b"\x89PNG"
    assert "heavy-tailed" in capsys.readouterr().out


def test_vocabulary_preset_matches_the_wright_fisher_theory():
    result = experiments.run_preset("vocabulary", generations=30, chains=200, seed=0,
                                    n_samples=2000, n_categories=2000)
    c = result.curves.set_index(["policy", "generation"])
    replace = c.loc["replace"]
    # The mean number of survivors over 200 chains has SE = sd / sqrt(200); the sd across
    # chains of a sum of weakly dependent survival indicators is below sqrt(E[support]),
    # so 5 * sqrt(E / 200) bounds the gap (n = 2000: the exact chain, not the approximation).
    for t in (1, 10, 30):
        expected = replace.loc[t, "support_theory"]
        assert abs(replace.loc[t, "support_mean"] - expected) < 5 * np.sqrt(expected / 200)
    # support never grows under replace; accumulate freezes it after generation 1
    assert (np.diff(replace["support_q50"].to_numpy()) <= 0).all()
    acc = c.loc["accumulate", "support_q50"]
    assert (acc.loc[1:] == acc.loc[1]).all()
    # keeping 10% real anchors more words than replace, fewer than accumulate
    keep = c.loc[("keep 10% real", 30), "support_q50"]
    assert replace.loc[30, "support_q50"] < keep < acc.loc[30]
    assert "rank" in result.description and "Wright–Fisher" in result.description
    assert set(result.extras["ranks"]) == {0, 1, 10, 30}


def test_vocabulary_preset_refuses_zero_generations():
    with pytest.raises(ValueError, match="generations"):
        experiments.run_preset("vocabulary", generations=0)


def test_language_preset_and_cli(tmp_path, capsys):
    """Shakespeare word bigrams, 3 generations: every policy's perplexity rises after
    generation 1 except accumulate's, which stays within 10% of it; words only vanish;
    the CLI prints what each reported generation writes and writes the figure."""
    from collapse_sim import cli

    result = experiments.run_preset("language", generations=3, chains=2, n_samples=20_000,
                                    seed=0)
    c = result.curves.set_index(["policy", "generation"])
    cold = experiments.LANGUAGE_COLD.format(t=0.9)
    for policy in ("replace", "keep 10% real", cold):
        assert c.loc[(policy, 3), "perplexity_q50"] > c.loc[(policy, 1), "perplexity_q50"]
    acc = c.loc["accumulate", "perplexity_q50"]
    assert acc[3] < 1.1 * acc[1]
    for policy in ("replace", "keep 10% real", cold):
        vocab = c.loc[policy, "vocabulary_q50"].to_numpy()
        assert np.all(np.diff(vocab) <= 0)
    assert set(result.extras["texts"]["replace"]) == {0, 1, 3}
    assert cli.main(["run", "language", "--generations", "2", "--chains", "2",
                     "--n-samples", "20000", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "generation  2: the church" in out and "perplexity" in out
    assert (tmp_path / "language.png").read_bytes()[:4] == b"\x89PNG"


def test_sampling_bias_preset_against_its_theory(tmp_path):
    """Temperature and truncation against the exact mean variance (replace): the chains'
    mean of sigma^2_t has the sample standard error, 5 allowed; 10% fresh real data
    stops the shrinking loops from collapsing; the CLI writes the figure."""
    from collapse_sim import cli

    result = experiments.run_preset("sampling_bias", generations=8, chains=400, seed=0)
    c = result.curves.set_index(["setting", "generation"])
    for setting in ("temperature 0.9, replace", "truncate 2σ / top-p 0.9, replace"):
        sim = result.simulations[f"gaussian: {setting}"]
        v = sim.metrics["variance"][8]
        assert abs(v.mean() - c.loc[(setting, 8), "variance_theory"]) < 5 * v.std() / 20
    for stage in ("temperature 0.9", "curate best of 4"):
        assert (c.loc[(f"{stage}, 10% fresh real", 8), "variance_q50"]
                > c.loc[(f"{stage}, replace", 8), "variance_q50"])
        assert (c.loc[(f"{stage}, 10% fresh real", 8), "entropy_q50"]
                >= c.loc[(f"{stage}, replace", 8), "entropy_q50"])
    assert cli.main(["run", "sampling_bias", "--generations", "3", "--chains", "20",
                     "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sampling_bias.png").read_bytes()[:4] == b"\x89PNG"
