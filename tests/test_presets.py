"""Presets reproduce the published findings they are named after."""

import numpy as np

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
