"""What each preset figure reads (``curves``, ``extras``, ``params``), rebuilt from your runs.

One function per figure, registered in :data:`DERIVERS` under the figure's name and called
by :func:`collapse_sim.plotting._adapt.as_result`. Each takes ``{label: Simulation}``,
checks that the runs hold what the figure draws (metrics, recorded models, the right kind
of truth) and returns a :class:`types.SimpleNamespace` shaped like the preset's
:class:`~collapse_sim.experiments.ExperimentResult`. Text the preset's figure states about
its own settings ("one replace chain", "N(0, 5)", "n = 100") is replaced by what the runs
say (``params["titles"]`` and friends), so a figure of your runs never claims the preset's.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..results import Simulation, _describe
from ._adapt import (
    config_value,
    policy_type,
    quantile_curves,
    require_metrics,
    require_models,
    shared,
)


def _result(runs, curves, *, extras=None, params=None) -> SimpleNamespace:
    return SimpleNamespace(name=None, simulations=dict(runs), curves=curves,
                           extras=extras or {}, params=params or {})


def _sizes(runs) -> str:
    """``"n = 20, 50 generations, 300 chains"`` (values the runs share; else left out)."""
    parts = []
    n = shared(config_value(s, "n_samples") for s in runs.values())
    if isinstance(n, int):
        parts.append(f"n = {n}")
    g = shared(s.generations for s in runs.values())
    if g is not None:
        parts.append(f"{g} generations")
    c = shared(s.chains for s in runs.values())
    parts.append(f"{c} chains" if c is not None else "chains per run: "
                 + ", ".join(str(s.chains) for s in runs.values()))
    return ", ".join(parts)


def _truth(sim: Simulation):
    """The run's truth rebuilt from its configuration (Gaussian or mixture), or ``None``."""
    from .densities import _truth_from_config

    try:
        return _truth_from_config(sim.config)
    except (ValueError, KeyError, TypeError):
        return None


# -- the Gaussian demo: variance_collapse, w2_growth, gaussian_demo ----------------------------

def gaussian(runs, *, need_w2: bool = False, caller: str = "gaussian_demo") -> SimpleNamespace:
    """``curves`` as :func:`collapse_sim.experiments.variance_curves` makes them, group column
    ``estimator`` (the runs' labels), relative to the truth's variance. The exact theory is
    filled in where it holds (a 1-D Gaussian refitted by ``GaussianFit`` under ``Replace``,
    no generation stage); elsewhere the theory columns are NaN (only the exact mean of the
    total variance, where a registered overlay gives it) and the figure draws no theory."""
    from ..experiments import QUANTILES, variance_curves
    from ..theory.overlays import _gaussian_replace, overlay_for

    require_metrics(runs, ("variance", "w2") if need_w2 else ("variance",), caller)
    frames = []
    for label, sim in runs.items():
        var0 = float(np.median(sim.metrics["variance"][0]))
        one_d = np.shape(config_value(sim, "truth", "cov", default=[]))[-1:] == (1,)
        estimator = config_value(sim, "fitter", "estimator")
        if one_d and _gaussian_replace(sim.config):
            curve = variance_curves(sim, estimator=estimator,
                                    n_samples=sim.config["n_samples"], var0=var0)
        else:
            var = sim.metrics["variance"] / var0
            curve = {"generation": np.arange(sim.generations + 1), "sim_mean": var.mean(axis=1)}
            q = np.quantile(var, QUANTILES, axis=1)
            for i, level in enumerate(QUANTILES):
                curve[f"sim_q{round(100 * level)}"] = q[i]
                curve[f"theory_q{round(100 * level)}"] = np.nan
            found = overlay_for("variance", sim.config)
            curve["theory_mean"] = (found[1]["mean"] / var0 if found is not None
                                    else np.nan)
            if "w2" in sim.metrics:
                curve["w2sq_mean"] = (sim.metrics["w2"] ** 2).mean(axis=1) / var0
                curve["theory_w2sq_mean"] = np.nan
            curve = pd.DataFrame(curve)
        curve.insert(0, "estimator", label)
        curve["fit_estimator"] = estimator
        frames.append(curve)
    first = next(iter(runs.values()))
    truth = _describe(first.config.get("truth")) if shared(
        _describe(s.config.get("truth")) for s in runs.values()) else "several truths"
    return _result(runs, pd.concat(frames, ignore_index=True),
                   params={"suptitle": f"{truth} refitted: {_sizes(runs)}"})


# -- gmm_snapshots ---------------------------------------------------------------------------

def gmm(runs, *, chain: int = 0, chains=None, generations=None) -> SimpleNamespace:
    """Chain ``chain``'s mixtures at ``generations`` and, for ``chains``, the L2 distance to
    generation 1 and the components' standard deviations (one 2-D run, recorded models)."""
    from .. import metrics
    from .._validation import check_int
    from ..families.mixture import GaussianMixture

    if len(runs) != 1:
        raise ValueError(f"gmm_snapshots draws one run; got {len(runs)} ({list(runs)}): pass "
                         "one Simulation")
    (sim,) = runs.values()
    models = sim.models or {}
    if {"weights", "means", "covs"} <= set(models):
        weights, means, covs = models["weights"], models["means"], models["covs"]
    elif {"mean", "cov"} <= set(models):
        weights = np.ones((*models["mean"].shape[:2], 1))
        means, covs = models["mean"][:, :, None], models["cov"][:, :, None]
    else:
        raise ValueError("gmm_snapshots needs the fitted mixtures of every generation: run "
                         "simulate(..., record_models=True) with GaussianMixtureFit or "
                         f"GaussianFit (this run recorded {sorted(models) or 'no models'})")
    if means.shape[-1] != 2:
        raise ValueError(f"gmm_snapshots draws 2-D models; this run's are {means.shape[-1]}-D")
    if sim.generations < 1:
        raise ValueError("gmm_snapshots needs a run of at least 1 generation")
    chain = check_int("chain", chain, minimum=0, maximum=sim.chains - 1)
    if chains is None:
        chains = sorted({chain, *range(min(3, sim.chains))})
    chains = [check_int("chains", c, minimum=0, maximum=sim.chains - 1) for c in chains]
    gens = sim._generations(generations, np.unique(np.round(
        np.linspace(0, sim.generations, 6)).astype(int)).tolist())

    def mixture(t, members):
        return GaussianMixture._from_arrays(weights[t, members], means[t, members],
                                            covs[t, members])

    first = mixture(1, chains)
    sd = np.sqrt(np.clip(np.linalg.eigvalsh(covs[:, chains]), 0.0, None))  # (G+1, C, K, d)
    rows = []
    for t in range(1, sim.generations + 1):
        l2_first = metrics.l2(first, mixture(t, chains))
        for i, c in enumerate(chains):
            rows.append({"generation": t, "chain": c, "l2_to_first": l2_first[i],
                         "component_sd_min": sd[t, i].min(), "component_sd_max": sd[t, i].max()})
    # the frame: the truth's components within 3 of their largest standard deviations
    # (at least the preset's [-4, 4]^2 when they fit in it)
    mu, spread = means[0, chain], np.sqrt(np.linalg.eigvalsh(covs[0, chain]).max())
    low, high = (mu - 3 * spread).min(), (mu + 3 * spread).max()
    if low >= -4 and high <= 4:
        low, high = -4.0, 4.0
    return _result(runs, pd.DataFrame(rows),
                   extras={"snapshots": {t: mixture(t, [chain]) for t in gens},
                           "frame": (float(low), float(high)), "chain": chain})


# -- mismatch, error_sources_figure: a Gaussian fit to a mixture --------------------------------

def _mismatched(runs, figure: str, instead: str):
    """``(label, run, mixture truth)`` of the first run whose truth is a 1-D mixture fitted by
    a single Gaussian (the expressivity mismatch the figure draws)."""
    from ..models import GaussianMixture

    for label, sim in runs.items():
        truth = _truth(sim)
        if (isinstance(truth, GaussianMixture) and truth.dim == 1
                and config_value(sim, "fitter", "type") in ("GaussianFit", "SGDGaussianFit")):
            return label, sim, truth
    raise ValueError(f"{figure} draws a single Gaussian fitted to a 1-D GaussianMixture truth "
                     "(the expressivity error and its floor); none of the runs "
                     f"{list(runs)} is one. For other runs use {instead}")


def mismatch(runs) -> SimpleNamespace:
    from .. import theory
    from ..models import Gaussian

    require_metrics(runs, ("kl",), "mismatch")
    label, sim, truth = _mismatched(runs, "mismatch", "cs.compare(runs, metric='kl')")
    models = require_models(sim, ("mean", "cov"), "mismatch", label,
                            "the fitted Gaussians (the density panel)")
    floor = theory.gaussian_mismatch_floor(truth)
    g = sim.generations
    fits = {t: Gaussian(mean=models["mean"][t, 0], cov=models["cov"][t, 0])
            for t in (1, 10, 100, g) if 1 <= t <= g}
    best = floor["model"]
    k = truth.n_components
    return _result(runs, quantile_curves(runs, "fitter", ("kl",)),
                   extras={"truth": truth, "best": best, "fits": fits, "density_run": label},
                   params={"floor_kl": floor["kl"], "floor_w2": floor["w2"],
                           "density_title": f"{label}: a Gaussian fitted to a {k}-component "
                                            "mixture"})


def error_sources(runs) -> SimpleNamespace:
    from .. import theory

    require_metrics(runs, ("w2",), "error_sources_figure")
    _, _, truth = _mismatched(runs, "error_sources_figure",
                              "plotting.error_sources(runs) (the right panel alone)")
    floor = theory.gaussian_mismatch_floor(truth)
    return _result(runs, quantile_curves(runs, "source", ("w2",)),
                   extras={"truths": {"expressivity": truth}, "floor": floor},
                   params={"floor_w2": floor["w2"]})


# -- sgd_drift, policies --------------------------------------------------------------------

def sgd(runs) -> SimpleNamespace:
    require_metrics(runs, ("variance", "w2"), "sgd_drift")
    return _result(runs, quantile_curves(runs, "fitter", ("variance", "w2"),
                                         relative=("variance",)),
                   params={"titles": ("Fitted variance of each run",
                                      "Distance from the truth of each run"),
                           "suptitle": _sizes(runs)})


def policies(runs) -> SimpleNamespace:
    require_metrics(runs, ("variance", "w2"), "policies")
    return _result(runs, quantile_curves(runs, "policy", ("variance", "w2"),
                                         relative=("variance",)),
                   params={"suptitle": _sizes(runs)})


# -- regression_error ------------------------------------------------------------------------

def regression(runs) -> SimpleNamespace:
    """Test error per run: mean (± s.e.), 10/90% quantiles, and the closed form where it
    holds (OLS without ridge keeping the noise, no stage, replace, or accumulate with a
    fixed design, T >= d + 2)."""
    from .. import theory
    from ..experiments import QUANTILES

    require_metrics(runs, ("test_error",), "regression_error")
    frames = []
    for label, sim in runs.items():
        truth = sim.config.get("truth") or {}
        if truth.get("type") != "LinearRegression":
            raise ValueError("regression_error draws runs of a LinearRegression truth; run "
                             f"{label!r} has a {truth.get('type')!r} truth")
        dim = int(np.shape(truth["weights"])[-1])
        noise = float(np.ravel(truth["noise_std"])[0])
        design = truth.get("design", "fresh")
        n = sim.config.get("n_samples")
        kind = {"Replace": "replace", "Accumulate": "accumulate"}.get(
            policy_type(sim), _describe(sim.config.get("policy")))
        err = sim.metrics["test_error"]
        q = np.quantile(err, QUANTILES, axis=1)
        frame = {"setting": label, "policy": kind, "design": design,
                 "generation": np.arange(sim.generations + 1), "sim_mean": err.mean(axis=1),
                 "sim_mean_se": (err.std(axis=1, ddof=1) / np.sqrt(sim.chains)
                                 if sim.chains > 1 else np.nan),
                 "dim": dim, "noise_std": noise, "n_samples": n}
        for i, level in enumerate(QUANTILES):
            frame[f"sim_q{round(100 * level)}"] = q[i]
        fitter = sim.config.get("fitter") or {}
        exact = (fitter.get("type") == "OLSFit" and fitter.get("ridge", 0.0) == 0.0
                 and fitter.get("noise", "keep") == "keep" and "generation" not in sim.config
                 and isinstance(n, int) and n >= dim + 2
                 and (kind == "replace" or (kind == "accumulate" and design == "fixed")))
        frame["theory_mean"] = (theory.regression_test_error(
            n_samples=n, dim=dim, noise_std=noise, generations=sim.generations, policy=kind,
            design=design) if exact else np.nan)
        frames.append(pd.DataFrame(frame))
    curves = pd.concat(frames, ignore_index=True)
    params = {"chains": shared(s.chains for s in runs.values())}
    for key in ("dim", "noise_std", "n_samples"):
        params[key] = shared(curves[key])
    return _result(runs, curves, params=params)


# -- vocabulary --------------------------------------------------------------------------------

def vocabulary(runs) -> SimpleNamespace:
    from ..theory.overlays import overlay_for

    require_metrics(runs, ("support",), "vocabulary")
    curves = quantile_curves(runs, "policy", ("support",))
    curves["support_theory"] = np.nan
    for label, sim in runs.items():
        found = overlay_for("support", sim.config)
        if found is not None:
            rows = curves.policy == label
            curves.loc[rows, "support_theory"] = found[1]["mean"][curves.loc[rows, "generation"]]
    recorded = [(label, sim) for label, sim in runs.items() if "probs" in (sim.models or {})]
    if not recorded:
        raise ValueError("vocabulary's right panel is one chain's fitted probabilities at a few "
                         f"generations: none of the runs {list(runs)} recorded them. Run one "
                         "of them again with simulate(..., record_models=True) (chains=1 "
                         "keeps it small) or draw the left panel alone with "
                         "cs.compare(runs, metric='support')")
    label, sim = recorded[0]
    g = sim.generations
    probs = sim.models["probs"]
    ranks = {t: probs[t, 0] for t in sorted({0, 1, min(10, g), min(50, g), g})}
    return _result(runs, curves, extras={"ranks": ranks, "truth": probs[0, 0]},
                   params={"rank_label": f"chain 0 of {label}",
                           "theory_label": "exact expectation (theory)"})


# -- language ----------------------------------------------------------------------------------

def language(runs, *, prompt: str = "", sequences: int = 250) -> SimpleNamespace:
    """Perplexity and vocabulary curves; the first run's rank–frequency curve, and the first
    two runs' sequence perplexities and texts, from the models the runs keep
    (``Simulation.fitted``: n-gram runs keep them, a loaded result does not)."""
    from ..experiments import _report_generations, sequence_perplexities

    require_metrics(runs, ("perplexity", "vocabulary"), "language")
    for label, sim in runs.items():
        if not sim.fitted or not hasattr(sim.fitted[0], "sequence_log_likelihood"):
            raise ValueError("language draws what language models write: run "
                             f"{label!r} keeps no n-gram models (Simulation.fitted; only "
                             "NGramTruth + NGramFit runs do, and a loaded result has none: "
                             "re-run simulate)")
    first_label, first = next(iter(runs.items()))
    kept = [t for t, m in enumerate(first.fitted) if m is not None]
    shown = [t for t in _report_generations(first.generations) if t in kept]
    ranks = {t: np.sort(first.fitted[t].unigram_counts()[0])[::-1] for t in shown}
    two = dict(list(runs.items())[:2])
    histograms, texts = {}, {}
    for label, sim in two.items():
        gens = [t for t in _report_generations(sim.generations)
                if t < len(sim.fitted) and sim.fitted[t] is not None]
        histograms[label] = {t: sequence_perplexities(sim.fitted[0], sim.fitted[t],
                                                      sequences=sequences, seed=0)
                             for t in gens}
        texts[label] = {t: " ".join(sim.text(generation=t, chain=0, prompt=prompt, tokens=24,
                                             seed=0).split()) for t in gens}
    return _result(runs, quantile_curves(runs, "policy", ("perplexity", "vocabulary")),
                   extras={"ranks": ranks, "histograms": histograms, "texts": texts,
                           "prompt": prompt},
                   params={"rank_label": f"chain 0 of {first_label}"})


# -- sampling_bias ---------------------------------------------------------------------------

#: Rows of the ``sampling_bias`` figure: metric -> what its panels are titled by.
BIAS_ROWS = ("variance", "entropy")


def sampling_bias(runs) -> SimpleNamespace:
    """One row of panels per metric of :data:`BIAS_ROWS` that some run has, one column per
    policy, one line per run (labelled by its generation stage, or its label where two runs
    of a panel share a stage)."""
    from ..theory.overlays import overlay_for

    rows = [m for m in BIAS_ROWS if any(m in s.metrics for s in runs.values())]
    if not rows:
        raise ValueError("sampling_bias draws 'variance' (Gaussian runs) and 'entropy' "
                         f"(categorical runs); none of the runs {list(runs)} computed either: "
                         "run simulate(..., metrics=('variance',)) or metrics=('entropy',)")
    frames, seen = [], set()
    for label, sim in runs.items():
        names = tuple(m for m in rows if m in sim.metrics)
        if not names:
            continue
        stage = _describe(sim.config.get("generation")) or "faithful"
        regime = _describe(sim.config.get("policy")) or "policy?"
        key = (names, regime, stage)
        if key in seen:
            stage = label
        seen.add(key)
        frame = quantile_curves({label: sim}, "setting", names)
        frame.insert(1, "stage", stage)
        frame.insert(2, "regime", regime)
        for name in BIAS_ROWS:
            found = overlay_for(name, sim.config) if name in names else None
            frame[f"{name}_theory"] = found[1]["mean"] if found is not None else np.nan
        frames.append(frame)
    titles = {}
    for name in rows:
        kinds = dict.fromkeys(config_value(s, "truth", "type") for s in runs.values()
                              if name in s.metrics)
        titles[name] = ", ".join(str(k) for k in kinds)
    return _result(runs, pd.concat(frames, ignore_index=True),
                   params={"rows": rows, "row_titles": titles, "suptitle": _sizes(runs)})


# -- digits_figure, animate_digits -------------------------------------------------------------

DIGITS_DRAWN = ("variance", "noise_variance", "classes_covered", "class_entropy")


def _digits_truth(sim: Simulation, label: str):
    """The run's :class:`~collapse_sim.Empirical` digits truth, rebuilt and checked against
    the SHA-256 its configuration holds."""
    from ..datasets import digits
    from ..families.empirical import Empirical

    spec = sim.config.get("truth") or {}
    if spec.get("type") != "Empirical" or spec.get("name") != "digits":
        raise ValueError("digits_figure draws runs on scikit-learn's digits "
                         "(cs.Empirical(cs.datasets.digits(), ...)); run "
                         f"{label!r} has the truth {_describe(spec)}. For other images use "
                         "plotting.digit_grid")
    truth = Empirical(digits(), heldout=spec.get("heldout", 0.2),
                      split_seed=spec.get("split_seed", 0))
    if truth.to_dict().get("sha256") != spec.get("sha256"):
        raise ValueError(f"run {label!r}'s digits truth does not match the bundled data set "
                         "(another split or other rows): pass the preset's result instead")
    return truth


def digits(runs, *, shown: int | None = None, seed: int = 0,
           images_only: bool = False) -> SimpleNamespace:
    """Chain 0's images at every generation, drawn from its recorded PPCA models as the
    ``digits`` preset draws them (what each run trains on: samples, or the noise-free
    decoded means under a ``NoiseFree`` stage), real digits and the classifier's scores
    (``images_only``: the images alone, for :func:`~collapse_sim.plotting.animate_digits`)."""
    from .. import theory
    from ..experiments import DIGITS_SHOWN
    from ..families._classifier import scores
    from ..families.ppca import NoiseFree, PPCAModel
    from ..sampling import chain_streams
    from ..stages import draw as staged_draw

    shown = DIGITS_SHOWN if shown is None else shown
    figure = "animate_digits" if images_only else "digits_figure"
    if not images_only:
        require_metrics(runs, DIGITS_DRAWN, figure,
                        hint="collapse_sim.experiments.DIGITS_METRICS has them all")
    truth, images = None, {}
    for label, sim in runs.items():
        truth = _digits_truth(sim, label)
        rec = require_models(sim, ("mean", "components", "noise_variance"), figure,
                             label, "the fitted PPCA models (the images)")
        noise_free = config_value(sim, "generation", "type") == "NoiseFree"
        stage = NoiseFree() if noise_free else None
        frames = np.empty((sim.generations + 1, shown, *truth.image_shape))
        for g in range(sim.generations + 1):
            model = PPCAModel(rec["mean"][g, 0], rec["components"][g, 0],
                              rec["noise_variance"][g, 0])
            pts = staged_draw(stage, model, shown,
                              chain_streams(np.random.SeedSequence([seed, g]), 1))
            frames[g] = pts[0].reshape(shown, *truth.image_shape)
        images[label] = frames
    if images_only:
        return _result(runs, pd.DataFrame(), extras={"images": images})
    curves = quantile_curves(runs, "setting", DIGITS_DRAWN)
    curves["variance_theory"] = np.nan
    for label, sim in runs.items():
        estimator = config_value(sim, "fitter", "estimator", default="mle")
        if (policy_type(sim) == "Replace" and "generation" not in sim.config
                and isinstance(sim.config.get("n_samples"), int)):
            rows = curves.setting == label
            trace = theory.ppca_trace_mean(trace0=float(sim.metrics["variance"][0, 0]),
                                           n_samples=sim.config["n_samples"],
                                           generations=sim.generations, estimator=estimator,
                                           population=truth.train_size)
            curves.loc[rows, "variance_theory"] = trace[curves.loc[rows, "generation"]]
    pick = np.random.default_rng(seed).choice(truth.train_size, shown, replace=False)
    real_images = truth.train[pick].reshape(shown, *truth.image_shape)
    real = {name: float(v[0]) for name, v in scores(truth, truth.heldout_points).items()}
    params = {"n_components": shared(config_value(s, "fitter", "n_components")
                                     for s in runs.values()),
              "n_samples": shared(config_value(s, "n_samples") for s in runs.values())}
    return _result(runs, curves, params=params,
                   extras={"images": images, "real_images": real_images, "real_scores": real,
                           "image_shape": truth.image_shape})


def kde(runs):
    raise TypeError("kde_collapse draws the kde preset's grid of sample sizes × bandwidths × "
                    "policies, with density snapshots on the two moons: pass the result of "
                    "collapse_sim.experiments.kde_collapse(...) (or run_preset('kde')). For "
                    "your own KDE runs draw a metric with sim.plot('nll') or "
                    "cs.compare(runs, metric='nll'), and a fitted density with "
                    "plotting.kde_log_density(sim.fitted[t], grid)")


#: Figure name -> the function that rebuilds what it reads from ``{label: Simulation}``.
DERIVERS = {
    "gaussian_demo": gaussian,
    "gmm_snapshots": gmm,
    "mismatch": mismatch,
    "sgd_drift": sgd,
    "policies": policies,
    "error_sources_figure": error_sources,
    "regression_error": regression,
    "vocabulary": vocabulary,
    "language": language,
    "sampling_bias": sampling_bias,
    "digits_figure": digits,
    "animate_digits": digits,
    "kde_collapse": kde,
}
