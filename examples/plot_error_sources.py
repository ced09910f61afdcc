"""
Three sources of error, alone and compounded
============================================

Shumailov et al. (Nature 2024) trace model collapse to three errors that compound
over generations:

* **statistical** error: every generation sees only :math:`n` samples;
* **functional expressivity** error: the model family cannot represent the truth
  (here, a single Gaussian for a two-humped distribution);
* **function approximation** error: the learning procedure does not find the best
  model of its data (here, minibatch SGD instead of the exact maximum-likelihood fit).

We switch them on one at a time, then all together, and measure the Wasserstein-2
distance of every chain's model to the truth. The script writes ``error_sources.png``.
"""

# %%
# The two truths
# --------------
# The bimodal truth is the mixture :math:`\tfrac12\mathcal N(-2, 1) +
# \tfrac12\mathcal N(2, 1)` rescaled to mean 0 and variance 1. With unlimited data a
# Gaussian fit to it converges to the moment-matched :math:`\mathcal N(0, 1)`: the
# same model the Gaussian truth is. Every setting thus aims at the same Gaussian,
# and the distance of :math:`\mathcal N(0, 1)` from the mixture is the expressivity
# floor, which no amount of data removes.
import collapse_sim as cs
from collapse_sim import experiments

mix = experiments.standardised_bimodal()
floor = cs.theory.gaussian_mismatch_floor(mix)
print(f"limit of the Gaussian fit: {floor['model']}")
print(f"floor: W2 = {floor['w2']:.4f}, KL = {floor['kl']:.4f} nats")

# %%
# Each source alone, then all three
# ---------------------------------
# Statistical error is present everywhere (n = 100 points per generation). The SGD
# fitter uses learning rate 0.15, batch 32, 5 epochs (see the SGD example for how the
# rate changes its drift). 500 chains per setting: the W2 distance to a mixture is
# computed by quadrature for every chain and generation, the slow part of this run
# (``collapse-sim run error_sources`` uses 1000).
result = experiments.run_preset("error_sources", generations=200, chains=500, seed=0)
table = result.curves.pivot(index="generation", columns="source", values="w2_q50")
print("median W2 to the truth")
print(table.loc[[1, 3, 10, 30, 100, 200], list(experiments.ERROR_SOURCES)].round(3))

# %%
# Reading the table (and the figure below, log-log):
#
# * statistical error alone starts small and grows as each chain random-walks away;
# * expressivity error starts at the floor: even generation 1, fitted to real data,
#   is that far from the truth;
# * approximation error makes every generation's step larger and biased, so the
#   distance grows faster than with the exact fit;
# * with all three, chains start on the floor *and* drift fastest. After enough
#   generations the random walk dwarfs the floor, and what remains is the statistical
#   error amplified by the approximation error.
from collapse_sim import plotting

fig = plotting.figure_for(result)
fig.savefig("error_sources.png", dpi=120)
print(result.description)
