"""collapse_sim: see, measure and understand model collapse.

Generative models trained on data produced by earlier models degrade
(Shumailov et al., Nature 631, 2024). ``collapse_sim`` chains fit -> sample ->
fit over generations for thousands of independent chains at once, and measures
how each chain's model drifts from the truth.

>>> import collapse_sim as cs
>>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(estimator="mle"),
...                   n_samples=100, generations=50, chains=200, seed=0)
>>> sim.metrics["variance"].shape
(51, 200)
"""

from typing import TYPE_CHECKING

# Public names and the module each lives in. ``import collapse_sim`` imports none of them
# (numba kernels, scipy.stats, pandas and matplotlib load on first use, see ``__getattr__``);
# ``tests/test_imports.py`` keeps it that way and ``benchmarks/bench_import.py`` times it.
_LAZY: dict[str, str] = {
    "FunctionFitter": "custom", "ScipyTruth": "custom",
    "simulate": "engine",
    "Categorical": "families.categorical", "CategoricalFit": "families.categorical",
    "Zipf": "families.categorical",
    "Empirical": "families.empirical",
    "FactorAnalysisFit": "families.factor", "FactorAnalysisModel": "families.factor",
    "KDEFit": "families.kde", "KDEModel": "families.kde",
    "NGramFit": "families.ngram", "NGramModel": "families.ngram", "NGramTruth": "families.ngram",
    "NoiseFree": "families.ppca", "PPCAFit": "families.ppca", "PPCAModel": "families.ppca",
    "GaussianFit": "fitting", "GaussianMixtureFit": "fitting", "OLSFit": "fitting",
    "SklearnFitter": "fitting",
    "Gaussian": "models", "GaussianMixture": "models", "LinearRegression": "models",
    "Accumulate": "policies", "AccumulateSubsample": "policies", "Augment": "policies",
    "FreshReal": "policies", "KeepReal": "policies", "Replace": "policies",
    "Comparison": "results", "LargeResultWarning": "results", "Simulation": "results",
    "compare": "results", "estimate_bytes": "results",
    "SGDGaussianFit": "sgd", "SGDMixtureFit": "sgd", "SGDRegressionFit": "sgd",
    "BestOfK": "stages", "Curate": "stages", "Temperature": "stages", "TopK": "stages",
    "TopP": "stages", "Truncate": "stages",
    "sweep": "sweeps",
}
_SUBMODULES = ("custom", "datasets", "experiments", "metrics", "plotting", "sampling",
               "schedule", "text", "theory")

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from . import custom, datasets, experiments, metrics, plotting, sampling, schedule, text, theory
    from .custom import FunctionFitter, ScipyTruth
    from .engine import simulate
    from .families.categorical import Categorical, CategoricalFit, Zipf
    from .families.empirical import Empirical
    from .families.factor import FactorAnalysisFit, FactorAnalysisModel
    from .families.kde import KDEFit, KDEModel
    from .families.ngram import NGramFit, NGramModel, NGramTruth
    from .families.ppca import NoiseFree, PPCAFit, PPCAModel
    from .fitting import GaussianFit, GaussianMixtureFit, OLSFit, SklearnFitter
    from .models import Gaussian, GaussianMixture, LinearRegression
    from .policies import Accumulate, AccumulateSubsample, Augment, FreshReal, KeepReal, Replace
    from .results import Comparison, LargeResultWarning, Simulation, compare, estimate_bytes
    from .sgd import SGDGaussianFit, SGDMixtureFit, SGDRegressionFit
    from .stages import BestOfK, Curate, Temperature, TopK, TopP, Truncate
    from .sweeps import sweep

__version__ = "0.1.0"

__all__ = [
    "Accumulate",
    "AccumulateSubsample",
    "Augment",
    "BestOfK",
    "Categorical",
    "CategoricalFit",
    "Comparison",
    "Curate",
    "Empirical",
    "FactorAnalysisFit",
    "FactorAnalysisModel",
    "FreshReal",
    "FunctionFitter",
    "Gaussian",
    "GaussianFit",
    "GaussianMixture",
    "GaussianMixtureFit",
    "KDEFit",
    "KDEModel",
    "KeepReal",
    "LargeResultWarning",
    "LinearRegression",
    "NGramFit",
    "NGramModel",
    "NGramTruth",
    "NoiseFree",
    "OLSFit",
    "PPCAFit",
    "PPCAModel",
    "Replace",
    "SGDGaussianFit",
    "SGDMixtureFit",
    "SGDRegressionFit",
    "ScipyTruth",
    "Simulation",
    "SklearnFitter",
    "Temperature",
    "TopK",
    "TopP",
    "Truncate",
    "Zipf",
    "__version__",
    "compare",
    "custom",
    "datasets",
    "estimate_bytes",
    "experiments",
    "metrics",
    "plotting",
    "sampling",
    "schedule",
    "simulate",
    "sweep",
    "text",
    "theory",
]


def __getattr__(name: str):
    """A public name on first use (PEP 562): its module is imported then, and cached here."""
    import importlib
    import importlib.util

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES or (not name.startswith("__")
                                 and importlib.util.find_spec(f"{__name__}.{name}")):
        # any submodule, as ``cs.registry`` or ``cs.engine`` worked when this file
        # imported them eagerly
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
