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

from . import custom, datasets, metrics, sampling, schedule, text, theory
from .custom import FunctionFitter, ScipyTruth
from .engine import simulate
from .families.categorical import Categorical, CategoricalFit, Zipf
from .families.empirical import Empirical
from .families.kde import KDEFit, KDEModel
from .families.ngram import NGramFit, NGramModel, NGramTruth
from .families.ppca import NoiseFree, PPCAFit, PPCAModel
from .fitting import GaussianFit, GaussianMixtureFit, OLSFit, SklearnFitter
from .models import Gaussian, GaussianMixture, LinearRegression
from .policies import (
    Accumulate,
    AccumulateSubsample,
    Augment,
    FreshReal,
    KeepReal,
    Replace,
)
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
    """``cs.plotting`` and ``cs.experiments`` on first use: matplotlib loads only when needed."""
    if name in ("plotting", "experiments"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
