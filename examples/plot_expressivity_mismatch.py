"""
A single Gaussian fitted to two humps: the expressivity floor
=============================================================

The truth is an equal mixture of N(-2, 1) and N(2, 1). No Gaussian represents
it: with infinite data the best fit is the moment-matched N(0, 5), and its KL
divergence from the truth is a floor that no sample size removes. Recursive
refitting then adds statistical error on top. Writes ``expressivity_mismatch.png``.
"""

# %%
import collapse_sim as cs

truth = cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0], [2.0]], covs=[[[1.0]], [[1.0]]])
floor = cs.theory.gaussian_mismatch_floor(truth)
print(f"best Gaussian: {floor['model']}, KL floor {floor['kl']:.4f}, W2 floor {floor['w2']:.4f}")

# %%
# Generation 1 is a fit to real data: its error approaches the floor as n grows, not 0.
for n in (20, 200, 2000):
    sim = cs.simulate(truth, cs.GaussianFit(), n_samples=n, generations=1, chains=300, seed=1,
                      metrics="kl")
    print(f"n={n:5d}: mean KL at generation 1 = {sim.metrics['kl'][1].mean():.4f}")

# %%
# Recursion: the KL climbs away from the floor.
from collapse_sim import experiments, plotting

result = experiments.run_preset("mismatch", generations=150, chains=300, seed=0)
print(result.summary)
fig = plotting.mismatch(result)
fig.savefig("expressivity_mismatch.png", dpi=110)
