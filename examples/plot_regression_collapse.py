"""
Regression: test error grows linearly when data is replaced, stays bounded when it accumulates
===============================================================================================

Least squares is refitted generation after generation on labels produced by the
previous fit plus fresh noise (Dohmatob, Feng & Kempe 2024). With T rows and d
features per generation, each refit adds on average σ²d/(T−d−1) to the test error,
so after t generations of replacing the data it is t times that. Keeping every
generation's data (Gerstgrasser et al. 2024) bounds its expectation by π²/6 times one
generation's error (a simulated mean, being random, can cross that line). Writes
``regression_collapse.png``.
"""

# %%
# The closed forms
import numpy as np

import collapse_sim as cs

print(cs.theory.regression_test_error(n_samples=20, dim=5, generations=5))
print(cs.theory.regression_test_error(n_samples=20, dim=5, generations=5, policy="accumulate",
                                      design="fixed"))

# %%
# One setting by hand: replace, fresh design, 2000 chains.
truth = cs.LinearRegression(weights=np.zeros(5), noise_std=1.0)
sim = cs.simulate(truth, cs.OLSFit(), n_samples=20, generations=10, chains=2000, seed=0)
err = sim.metrics["test_error"]
for t in (1, 5, 10):
    print(f"t={t:2d}: simulated mean {err[t].mean():.3f} ± {err[t].std() / np.sqrt(2000):.3f}, "
          f"median {np.median(err[t]):.3f}")

# %%
# The four settings side by side, with the closed forms dashed.
from collapse_sim import experiments, plotting

result = experiments.run_preset("regression", generations=30, chains=2000, seed=0)
print(result.summary)
fig = plotting.regression_error(result)
fig.savefig("regression_collapse.png", dpi=110)
