"""The ``kde`` preset (Kazdan et al.'s KDE experiment on two moons) and its figure: the
held-out NLL against scikit-learn and the engine's own metric, the theory columns, the
description's numbers, the figure's panels, bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KernelDensity

import collapse_sim as cs
from collapse_sim import experiments, plotting

SIZES, GENERATIONS, CHAINS = (32, 100), 20, 3


@pytest.fixture(scope="module")
def result():
    return experiments.kde_collapse(n_samples=SIZES, generations=GENERATIONS, chains=CHAINS,
                                    seed=0, progress=False)


def _truth():
    return cs.Empirical(cs.datasets.two_moons(1500, noise=0.1, seed=0), heldout=1 / 6)


def test_table_layout_and_kept_models(result):
    c = result.curves
    gens = experiments.kde_nll_generations(GENERATIONS)
    assert 0 < gens.size - 1 < GENERATIONS      # log-spaced: some generations skipped
    settings = len(SIZES) * len(experiments.KDE_POLICIES) * len(experiments.KDE_BANDWIDTHS)
    assert len(c) == settings * gens.size and c.setting.nunique() == settings
    assert set(c.generation) == set(gens.tolist())
    for label, sim in result.simulations.items():
        kept = [t for t, m in enumerate(sim.fitted) if m is not None]
        assert kept == gens.tolist(), label      # entry 0 is the truth itself
        assert sim.metrics["variance"].shape == (GENERATIONS + 1,
                                                 int(c[c.setting == label].chains.iloc[0]))
    # every measured column is finite; theory only where it exists
    measured = [col for col in c.columns if col.startswith(("nll_", "variance_q"))]
    assert np.isfinite(c[measured].to_numpy()).all()
    sub = c.policy == "accumulate-subsample"
    assert c.loc[sub, "ancestors_mean"].isna().all() and c.loc[sub, "variance_theory"].isna().all()
    assert c.loc[~sub, "ancestors_mean"].notna().all()
    assert c.loc[c.policy == "replace", "ancestors_theory"].notna().all()


def test_generation_zero_nll_is_scikit_learns_kde_of_the_training_split(result):
    truth = _truth()
    c = result.curves
    for h in experiments.KDE_BANDWIDTHS:
        ref = KernelDensity(bandwidth=h).fit(truth.train).score_samples(truth.heldout_points)
        row = c[(c.bandwidth == h) & (c.generation == 0)]
        # scikit-learn's tree sums drift by ~1e-9 relative far from the data
        np.testing.assert_allclose(row.nll_q50, -ref.mean(), rtol=1e-7)


@pytest.mark.parametrize("policy", ["replace", "accumulate", "accumulate-subsample"])
def test_nll_equals_the_engines_metric_run_alongside(result, policy):
    # The preset measures the NLL afterwards, on the kept models; the engine's ``nll``
    # metric measures it right after each fit. Same seed, same chains: equal. (A fitted
    # model that later changes under the engine's feet would break this.)
    n, h = 32, 0.1
    label = f"n={n}, h={h:g}, {policy}"
    sim = result.simulations[label]
    again = cs.simulate(_truth(), cs.KDEFit(h), n_samples=n, generations=GENERATIONS,
                        chains=sim.chains, policy=experiments.KDE_POLICIES[policy], seed=0,
                        metrics=["nll", "variance"])
    np.testing.assert_array_equal(again.metrics["variance"], sim.metrics["variance"])
    rows = result.curves[result.curves.setting == label]
    gens = rows.generation.to_numpy()
    np.testing.assert_allclose(rows.nll_q50, np.median(again.metrics["nll"][gens], axis=1),
                               rtol=1e-12)


def test_accumulate_keeps_every_original_point(result):
    # every original point is in every accumulated pool, in every chain
    for n in SIZES:
        sim = result.simulations[f"n={n}, h=0.1, accumulate"]
        assert np.all(sim.metrics["ancestors"][1:] == n)


def test_theory_columns_are_the_theory_functions(result):
    truth = _truth()
    v0 = float(np.trace(truth.cov[0]))
    c = result.curves.set_index(["setting", "generation"])
    gens = experiments.kde_nll_generations(GENERATIONS)
    for n in SIZES:
        for h in experiments.KDE_BANDWIDTHS:
            rep = c.loc[f"n={n}, h={h:g}, replace"]
            np.testing.assert_allclose(rep.variance_theory, cs.theory.kde_variance_mean(
                v0, n, gens, h, dim=2, population=1250), rtol=1e-12)
            np.testing.assert_allclose(rep.ancestors_theory, cs.theory.kde_ancestors_mean(
                n, GENERATIONS, population=1250)[gens], rtol=1e-12)
            acc = c.loc[f"n={n}, h={h:g}, accumulate"]
            np.testing.assert_allclose(acc.variance_theory, cs.theory.kde_accumulate_variance_mean(
                v0, n, GENERATIONS, h, dim=2, population=1250)[gens], rtol=1e-12)
            # generation 0 is the same KDE of the training split for every policy
            assert rep.loc[0, "variance_mean"] == pytest.approx(rep.loc[0, "variance_theory"])


def test_description_numbers_come_from_the_curves(result):
    c = result.curves.set_index(["setting", "generation"])
    g, n, d = GENERATIONS, 100, result.description

    def cell(policy, h, col, gen=g, size=n):
        return c.loc[(f"n={size}, h={h:g}, {policy}", gen), col]

    small, best, large = experiments.KDE_BANDWIDTHS
    expected = [
        f"h={best:g} is the best of the bandwidths tried (NLL "
        f"{cell('replace', best, 'nll_q50', 0):.3g})",
        f"mean {cell('replace', small, 'ancestors_mean'):.3g} of {n} at generation {g}",
        f"Wright–Fisher theory {cell('replace', small, 'ancestors_theory'):.3g}",
        f"from {cell('replace', small, 'variance_mean', 1):.3g} to "
        f"{cell('replace', small, 'variance_mean'):.3g} "
        f"(± {2 * cell('replace', small, 'variance_se'):.2g}, two standard errors; theory "
        f"{cell('replace', small, 'variance_theory'):.3g}",
        f"from {cell('replace', large, 'nll_q50', 1):.3g} to "
        f"{cell('replace', large, 'nll_q50'):.3g}",
        f"{cell('accumulate', small, 'nll_q50'):.3g} (h={small:g})",
        f"n·d·h² = {n * 2 * large**2:.3g}",
        f"{cell('accumulate-subsample', large, 'nll_q50'):.3g}",
        f"n=32: {CHAINS}",
    ]
    for text in expected:
        assert text in d, text
    assert result.params["snapshot_n"] == 100


def test_snapshots_are_chain_zero_of_the_replace_run(result):
    snaps = result.extras["snapshots"]
    assert set(snaps) == set(experiments.KDE_BANDWIDTHS)
    for h, per_gen in snaps.items():
        assert set(per_gen) == {1, 10, GENERATIONS}
        sim = result.simulations[f"n=100, h={h:g}, replace"]
        for t, model in per_gen.items():
            assert model.batch_size == 1
            if sim.fitted[t] is not None:
                np.testing.assert_array_equal(model.centres[0], sim.fitted[t].centres[0])
    assert result.extras["heldout"].shape == (250, 2)


def test_figure_has_the_expected_panels(result):
    fig = plotting.figure_for(result)
    assert plotting.FIGURES["kde"] is plotting.kde_collapse
    axes = fig.get_axes()
    # NLL grid (sizes x policies) + snapshots (bandwidths x 3 generations) + colour bar
    # + ancestors + variance
    assert len(axes) == len(SIZES) * 3 + 3 * 3 + 1 + 2
    titles = [ax.get_title() for ax in axes]
    for policy in experiments.KDE_POLICIES:
        assert policy in titles
    assert {"generation 1", "generation 10", f"generation {GENERATIONS}"} <= set(titles)
    assert any(t.startswith("(c) Ancestors") for t in titles)
    assert any(t.startswith("(d) Variance") for t in titles)
    labels = " ".join(ax.get_ylabel() for ax in axes)
    assert "collapses onto" in labels and "mass leaks into" in labels
    # the held-out NLL panels are on a log scale and show a median line per bandwidth
    nll_axes = [ax for ax in axes if ax.get_ylabel().startswith("held-out NLL")]
    assert len(nll_axes) == len(SIZES) and all(ax.get_yscale() == "log" for ax in nll_axes)
    plt.close(fig)


def test_kde_log_density_is_scikit_learns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    model = cs.KDEFit(0.3).fit_chains(x[None])
    y = rng.normal(size=(500, 2)) * 2
    ref = KernelDensity(bandwidth=0.3).fit(x).score_samples(y)
    np.testing.assert_allclose(plotting.kde_log_density(model, y), ref, rtol=1e-8)
    # a full kernel covariance (scipy's rule) against the exact mixture
    full = cs.KDEFit("scipy").fit_chains((x @ [[1.0, 0.6], [0.0, 0.5]])[None])
    from scipy import stats

    kde = stats.gaussian_kde(full.centres[0].T)
    np.testing.assert_allclose(plotting.kde_log_density(full, y), kde.logpdf(y.T), rtol=1e-9)


def test_chains_and_generations_rules():
    assert [experiments.kde_chains(40, n, "replace") for n in (32, 100, 1000)] == [40, 40, 4]
    assert [experiments.kde_chains(40, n, "accumulate") for n in (32, 100, 1000)] == [10, 10, 2]
    assert experiments.kde_chains(1, 1000, "accumulate") == 1
    assert experiments.kde_nll_generations(5).tolist() == [0, 1, 2, 3, 4, 5]
    gens = experiments.kde_nll_generations(100)
    assert gens[0] == 0 and gens[1] == 1 and gens[-1] == 100 and np.all(np.diff(gens) > 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_samples": 2000}, "n_samples"), ({"n_samples": ()}, "n_samples"),
    ({"bandwidths": [0.1, 0.0]}, "bandwidths"), ({"bandwidths": []}, "bandwidths"),
    ({"generations": 0}, "generations"), ({"chains": 0}, "chains")])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        experiments.kde_collapse(**{"n_samples": 32, "generations": 2, "chains": 2, **kwargs})


def test_cli_runs_the_preset(tmp_path, capsys):
    from collapse_sim import cli

    assert cli.main(["run", "kde", "--generations", "2", "--chains", "2", "--n-samples", "32",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert experiments.PRESETS["kde"].title in out and "held-out negative" in out
    assert (tmp_path / "kde.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / "kde.csv")
    assert len(table) == 9 * 3 and set(table.n_samples) == {32}


@pytest.mark.slow
def test_the_two_failure_modes_and_the_cure():
    # 30 chains, 40 generations at n = 32: medians far apart against their spread across
    # chains (the 10-90% bands of the three settings below do not overlap at the end)
    r = experiments.kde_collapse(n_samples=32, generations=40, chains=30, seed=3,
                                 progress=False)
    c = r.curves.set_index(["setting", "generation"])

    def at(label, col, gen=40):
        return c.loc[(f"n=32, {label}", gen), col]

    # too small: the NLL explodes under replace, and accumulation pulls it back down
    assert at("h=0.02, replace", "nll_q10") > 5 * at("h=0.02, replace", "nll_q90", 1)
    assert at("h=0.02, accumulate", "nll_q90") < at("h=0.02, accumulate", "nll_q10", 1)
    # too large: the variance grows (mass leaks out), by about d h^2 per generation early on
    assert at("h=0.5, replace", "variance_q10") > 3 * at("h=0.5, replace", "variance_q90", 1)
    # replace ends worse than accumulate for every bandwidth
    for h in experiments.KDE_BANDWIDTHS:
        assert at(f"h={h:g}, replace", "nll_q50") > at(f"h={h:g}, accumulate", "nll_q50")
