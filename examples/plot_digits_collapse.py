"""
Handwritten digits blur, merge and disappear (the paper's VAE experiment, as PPCA)
==================================================================================

Shumailov et al. (Nature 2024) train a variational autoencoder on MNIST, sample from
it, train the next VAE on those samples, and repeat: the digits blur and the modes
merge until most generations draw the same few shapes. A VAE whose encoder and decoder
are linear has probabilistic PCA as its optimum (Tipping & Bishop 1999; Lucas et al.
2019), and PPCA is fitted in closed form, so the same loop runs here in seconds, for
many chains at once, on the 1797 digits that ship with scikit-learn.

The script writes ``digits_collapse.png`` and ``digits_collapse.gif``.
"""

# %%
# The truth: a real data set
# --------------------------
# ``cs.Empirical`` holds out 20% of the images for the held-out likelihood and draws
# each chain's real sample from the rest without replacement. Generation 0 is the PPCA
# of all the training images.
import matplotlib.pyplot as plt
import numpy as np

import collapse_sim as cs

digits = cs.Empirical(cs.datasets.digits(), heldout=0.2)
print(digits)

# %%
# One run
# -------
# Ten latent dimensions, 500 images per generation, 100 chains. PPCA keeps the total
# variance of its data exactly, so its mean decays as the theory says, whatever the
# number of components; what changes is *where* the variance sits: the noise variance
# σ² (pixel detail the components do not hold) drains away generation after generation.
sim = cs.simulate(digits, cs.PPCAFit(n_components=10), n_samples=500, generations=50,
                  chains=100, seed=0)
print(sim.summary(generations=[0, 1, 10, 50]))
theory = cs.theory.ppca_trace_mean(trace0=float(sim.metrics["variance"][0, 0]),
                                   n_samples=500, generations=[0, 10, 50],
                                   population=digits.train_size)
print("mean total variance, simulated:",
      sim.metrics["variance"][[0, 10, 50]].mean(axis=1).round(0), " theory:", theory.round(0))

# %%
# What a classifier sees
# ----------------------
# A logistic regression trained once on the real training digits labels 500 samples of
# every chain's model per generation (opt-in metrics: they need the labels).
sim = cs.simulate(digits, cs.PPCAFit(n_components=10), n_samples=200, generations=100,
                  chains=10, seed=0,
                  metrics=["noise_variance", "classes_covered", "class_entropy"])
for name in ("noise_variance", "classes_covered", "class_entropy"):
    print(f"{name:15s} median at t = 0, 20, 100:",
          np.median(sim.metrics[name][[0, 20, 100]], axis=1).round(3))

# %%
# The preset: three settings, the digit grid and the curves
# ----------------------------------------------------------
# ``collapse-sim run digits`` runs the same loop three ways: replace, replace training
# on the noise-free decoded means μ + Wz (what the paper's VAE code does:
# ``generation=cs.NoiseFree()``), and keeping the same 10% of the real images.
result = cs.experiments.run_preset("digits")
print(result.description)
fig = cs.plotting.figure_for(result)
fig.savefig("digits_collapse.png", dpi=110)

# %%
# The same as an animation, one frame per generation.
cs.plotting.animate_digits(result, "digits_collapse.gif")
plt.show()
