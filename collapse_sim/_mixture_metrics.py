"""Metrics when the truth or the model is a Gaussian mixture (private): a facade over
:mod:`collapse_sim.families.mixture`, where the code and the description of every
estimator live.
"""

from .families.mixture import (  # noqa: F401 - re-exported for the tests and benchmarks
    _U,
    _Z,
    _ZW,
    ENTROPY_POINTS,
    MC_POINTS,
    SLICES,
    Z_POINTS,
    MixtureContext,
    _gaussian_projection,
    _model_quantiles,
    _projected,
    components,
    cross_entropy_gaussian,
    kl,
    kl_standard_error,
    l2,
    mean_logpdf,
    nll,
    project_quantiles,
    sample_tail_mass,
    sample_w2,
    slice_directions,
    tail_mass,
    w2,
    w2_squared_sums,
)
