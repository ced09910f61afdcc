"""
Variance collapse of a recursively refitted Gaussian
=====================================================

Each generation fits a Gaussian to ``n`` points sampled from the previous
generation's fit (Shumailov et al., Nature 2024, Section 3). We run 1000
independent chains with the MLE and the unbiased variance estimator and compare
the spread of the fitted variance with the exact theory.

Run it as a script (``python examples/plot_gaussian_collapse.py``) or cell by
cell in a notebook; it writes ``gaussian_collapse.png`` next to where it runs.
"""

# %%
# Simulate: one call per estimator, 1000 chains at once.
import collapse_sim as cs

truth = cs.Gaussian(mean=0.0, var=1.0)
sims = {
    est: cs.simulate(truth, cs.GaussianFit(estimator=est), n_samples=100, generations=1000,
                     chains=1000, policy=cs.Replace(), seed=0)
    for est in ("mle", "unbiased")
}
sims["mle"].metrics["variance"].shape  # (generations + 1, chains)

# %%
# Compare with the theory: the median variance and its 10-90% band.
import numpy as np

q = cs.theory.gaussian_variance_quantiles(n_samples=100, generations=1000, q=[0.1, 0.5, 0.9],
                                          estimator="mle")
for t in (10, 100, 1000):
    lo, med, hi = np.quantile(sims["mle"].metrics["variance"][t], [0.1, 0.5, 0.9])
    print(f"t={t:4d}  simulated median {med:.3g} [{lo:.3g}, {hi:.3g}]   "
          f"theory {q[t, 1]:.3g} [{q[t, 0]:.3g}, {q[t, 2]:.3g}]")

# %%
# The per-chain table is a pandas DataFrame.
frame = sims["unbiased"].to_frame()
print(frame.groupby("generation")["variance"].median().iloc[[0, 10, 100, 1000]])

# %%
# Plot the variance-loss curves with the theory overlay and the growth of W2.
import pandas as pd

from collapse_sim import experiments, plotting

curves = pd.concat(
    [experiments.variance_curves(sim, estimator=est, n_samples=100).assign(estimator=est)
     for est, sim in sims.items()],
    ignore_index=True,
)
fig = plotting.gaussian_demo(curves)
fig.savefig("gaussian_collapse.png", dpi=120)
