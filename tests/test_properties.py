"""Property test (issue 12): simulate over random valid configurations of every family.

For any family, fitter, policy, sampling path and size that ``simulate`` accepts, it must
either raise one of its documented errors up front (``ValueError`` / ``TypeError``) or a
``FloatingPointError`` for a diverging SGD fit, or return results with no NaN anywhere,
row 0 of every distance metric exactly 0, and the same bits on one thread with the serial
kernels as on every thread with the parallel ones.
"""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import collapse_sim as cs
from collapse_sim import registry
from collapse_sim._kernels import _dispatch
from collapse_sim.testing import _check_row0

MIX = cs.GaussianMixture(weights=[0.3, 0.7], means=[[-1.5], [1.0]], covs=[[[0.5]], [[1.0]]])
GAUSS2 = cs.Gaussian(mean=[0.0, 1.0], cov=[[1.0, 0.4], [0.4, 0.5]])
PAIRS = [
    (cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit()),
    (GAUSS2, cs.GaussianFit("unbiased")),
    (MIX, cs.GaussianFit()),
    (MIX, cs.GaussianMixtureFit(2, max_iter=10)),
    (cs.Gaussian(mean=0.0, var=1.0), cs.SGDGaussianFit(learning_rate=0.05, batch_size=4,
                                                       epochs=2)),
    (cs.LinearRegression(weights=[1.0, -0.5], noise_std=0.5), cs.OLSFit()),
    (cs.LinearRegression(weights=[1.0, -0.5], noise_std=0.5, design="fixed"),
     cs.OLSFit(noise="estimate")),
    (cs.Categorical([0.5, 0.25, 0.15, 0.1]), cs.CategoricalFit()),
    (cs.Zipf(n_categories=30, exponent=1.2), cs.CategoricalFit(smoothing=0.5)),
]
POLICIES = st.one_of(
    st.just(cs.Replace()), st.just(cs.Accumulate()), st.just(cs.AccumulateSubsample()),
    st.builds(cs.KeepReal, st.floats(0.0, 1.0)),
    st.builds(cs.FreshReal, st.floats(0.0, 1.0)),
    st.builds(cs.Augment, st.floats(0.0, 2.0)),
)


def _run(pair, policy, n, generations, chains, seed, sampling):
    truth, fitter = PAIRS[pair]
    return cs.simulate(truth, fitter, n_samples=n, generations=generations, chains=chains,
                       policy=policy, seed=seed, sampling=sampling, progress=False)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(pair=st.integers(0, len(PAIRS) - 1), policy=POLICIES, n=st.integers(2, 40),
       generations=st.integers(0, 4), chains=st.integers(1, 6), seed=st.integers(0, 2**32),
       sampling=st.sampled_from(["auto", "explicit", "exact"]))
def test_simulate_on_random_valid_configurations(pair, policy, n, generations, chains, seed,
                                                 sampling):
    args = (pair, policy, n, generations, chains, seed, sampling)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = _run(*args)
    except (ValueError, TypeError) as err:  # refused up front, with a message
        assert str(err)
        event(f"refused: {type(err).__name__}")
        return
    except FloatingPointError as err:  # a diverging SGD fit, named
        assert "generation" in str(err)
        event("diverged")
        return
    finally:
        numba.set_num_threads(before)
    event("ran")
    truth, fitter = PAIRS[pair]
    for name, values in serial.metrics.items():
        assert values.shape == (generations + 1, chains)
        assert not np.isnan(values).any(), name
        if registry.lookup(name, type(truth), fitter.model_type).distance:
            # 0 at the truth; where the fitter's family cannot represent the truth, row 0
            # measures fitter.as_model(truth): the expressivity floor, finite and >= 0
            _check_row0(name, values[0], truth, fitter)
    old = _dispatch.PARALLEL_MIN_WORK
    try:
        _dispatch.PARALLEL_MIN_WORK = 0  # every kernel on its parallel build, all threads
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        parallel = _run(*args)
    finally:
        _dispatch.PARALLEL_MIN_WORK = old
        numba.set_num_threads(before)
    for name, values in serial.metrics.items():
        np.testing.assert_array_equal(values, parallel.metrics[name], err_msg=name)
