"""
Phase diagram: collapse speed against sample size and kept real data
====================================================================

Under pure recursion (``Replace``) a refitted Gaussian's variance collapses to 0
after a number of generations that grows with the sample size ``n``. Keeping a
fraction of the original real points in every generation's training set
(``KeepReal``, Shumailov et al. 2024) stops the collapse, but how much real data
is enough? :func:`collapse_sim.sweep` runs every combination of ``n`` and the
kept fraction (0 is ``Replace``) and reduces each run to a few numbers; we draw
them as a phase diagram.

Run it as a script (``python examples/plot_phase_diagram.py``) or cell by cell in
a notebook; it writes ``phase_diagram.png`` next to where it runs.
"""

# %%
# The sweep: 6 sample sizes x 6 policies, 500 chains of 1000 generations each. The
# exact sampling path draws each generation's sufficient statistics instead of its
# points, so a run costs the same for every ``n``. The runs are short, so threads
# (no worker processes to start) are the right backend.
import collapse_sim as cs

fractions = [0.02, 0.05, 0.1, 0.2, 0.5]
base = dict(truth=cs.Gaussian(mean=0.0, var=1.0), fitter=cs.GaussianFit(estimator="mle"),
            generations=1000, chains=500, sampling="exact", metrics=["variance"])
grid = {
    "n_samples": [10, 20, 50, 100, 200, 500],
    "policy": [cs.Replace()] + [cs.KeepReal(fraction=f) for f in fractions],
}
table = cs.sweep(base, grid, seeds=[0], threshold=0.1, backend="threading", progress=False)
table[["n_samples", "policy", "policy_fraction", "collapse_generation",
       "final_variance_ratio"]].head(8)

# %%
# One row per configuration and seed. ``policy_fraction`` is the varying field of
# the policies (NaN for ``Replace``, which has none: it keeps no real data).
table["kept"] = table["policy_fraction"].fillna(0.0)
ratio = table.pivot(index="kept", columns="n_samples", values="final_variance_ratio")
onset = table.pivot(index="kept", columns="n_samples", values="collapse_generation")
print(ratio.map("{:.2g}".format).to_string())

# %%
# Left: the median over chains of the variance ratio after 1000 generations (log
# colour scale; below 1e-12 shows as 1e-12). Right: the generation at which that
# median first falls below 0.1; blank cells never collapse within 1000 generations.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
xlabels = [str(n) for n in ratio.columns]
ylabels = ["0 (Replace)"] + [f"{f:g}" for f in ratio.index[1:]]
image = left.imshow(np.maximum(ratio.to_numpy(), 1e-12), origin="lower", cmap="viridis",
                    norm=LogNorm(vmin=1e-12, vmax=1.0), aspect="auto")
fig.colorbar(image, ax=left, label="median variance ratio at generation 1000")
left.set_title("Variance left after 1000 generations")
image = right.imshow(onset.to_numpy(), origin="lower", cmap="magma_r", aspect="auto")
fig.colorbar(image, ax=right, label="generation of collapse (median ratio < 0.1)")
right.set_title("How fast the variance collapses (blank: never)")
for (i, j), value in np.ndenumerate(onset.to_numpy()):
    if np.isfinite(value):
        right.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                   color="black" if value < np.nanmax(onset.to_numpy()) / 2 else "white")
for ax in (left, right):
    ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_xlabel("sample size n per generation")
    ax.set_ylabel("fraction of real data kept")
fig.suptitle("Model collapse phase diagram: recursive Gaussian fits (MLE), 500 chains")
fig.savefig("phase_diagram.png", dpi=120)

# %%
# Reading the diagram: the boundary is not a fraction but a count. ``KeepReal(f)``
# keeps ``k = round(f * n)`` real points, and a single kept point cannot hold the
# variance up: the chain's mean drifts onto it and the fit collapses onto that
# point about as fast as under ``Replace`` (``k = 0``). From ``k = 2`` on, the
# kept points have a spread of their own that every generation refits, and the
# variance settles at a level that rises towards 1 with ``k``.
table.assign(k=(table["kept"] * table["n_samples"]).round().astype(int)).groupby("k")[
    "final_variance_ratio"].median().head(6)
