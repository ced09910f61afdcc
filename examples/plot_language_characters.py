"""
Character-level models: collapse shows in the spelling
======================================================

At the level of characters an n-gram model of order 5 knows Shakespeare's spelling:
it writes whole words it has seen, and glues fragments into words that look
plausible. Refitted on its own text it forgets, generation by generation, which
fragments make real words: perplexity on held-out text climbs and the misspellings
multiply. (The same model at word level loses words instead: see the previous
example.)

The script writes ``language_characters.png``.
"""

# %%
# Simulate
# --------
# ``level="char"`` tokenises into single characters (case and punctuation kept, the
# line break is a token). Each generation counts 200,000 characters in blocks of 128;
# four chains, twenty generations.
import textwrap

import matplotlib.pyplot as plt
import numpy as np

import collapse_sim as cs

corpus = cs.text.shakespeare(level="char")
truth = cs.NGramTruth(corpus, order=5, heldout=0.1, block_size=128)
print(truth)
sim = cs.simulate(truth, cs.NGramFit(order=5), n_samples=200_000, generations=20, chains=4,
                  seed=0, metrics=["perplexity", "vocabulary", "distinct_4"])
print(sim.summary(generations=[0, 1, 5, 10, 20]))

# %%
# What the models write
# ---------------------
# Generation 0 is the model of the whole training text; later ones were fitted on text
# their predecessors wrote. Look at the words, not the sense (there is none at any
# generation): they drift from Shakespeare's spelling to near-words.
shown = [0, 1, 5, 10, 20]
texts = {g: sim.text(generation=g, prompt="The king ", tokens=160, seed=0) for g in shown}
for g, text in texts.items():
    print(f"--- generation {g}\n{text}\n")

# %%
# The figure
# ----------
# Left: held-out perplexity per character (median and 10-90% band over chains) — a
# character model of real text is hard to surprise (about 4.7), its descendants ever
# easier. Right: the same prompt continued at each generation.
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), layout="constrained",
                                  width_ratios=[1, 1.6])
t = np.arange(sim.generations + 1)
ppl = sim.metrics["perplexity"]
left.fill_between(t, *np.quantile(ppl, [0.1, 0.9], axis=1), alpha=0.3, color="#0072B2")
left.plot(t, np.median(ppl, axis=1), color="#0072B2", lw=2)
left.set_xlabel("generation")
left.set_ylabel("perplexity of held-out text (per character)")
left.set_title("Order-5 character models refitted on their own text")
left.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
right.axis("off")
right.set_title("What chain 0 writes after “The king ” (/ marks a line break)", loc="left",
                fontsize=10)
y = 1.0
for g, text in texts.items():
    body = textwrap.fill(" / ".join(text.split("\n")), width=100)
    right.text(0, y, f"generation {g}", fontweight="bold", va="top", fontsize=9,
               transform=right.transAxes)
    right.text(0, y - 0.05, body, family="serif", va="top", fontsize=9,
               transform=right.transAxes)
    y -= 0.07 + 0.05 * (body.count("\n") + 1)
fig.savefig("language_characters.png", dpi=110)
plt.show()
