"""SGDGaussianFit: convergence to the MLE, its bias when short, reproducibility, bad input."""

import numba
import numpy as np
import pytest

import collapse_sim as cs

TRUTH = cs.Gaussian(mean=[1.0, -1.0], cov=[[2.0, 0.5], [0.5, 1.0]])


def _fit(fitter, x, seed=0):
    return fitter.fit_chains(x, streams=cs.sampling.chain_streams(seed, x.shape[0]))


@pytest.mark.parametrize("truth", [TRUTH, cs.Gaussian(mean=2.0, var=3.0)], ids=["2d", "1d"])
def test_converges_to_the_mle_as_the_learning_rate_shrinks(truth):
    chains = 64
    x = np.repeat(truth.sample(400, seed=1)[None], chains, axis=0)  # same data, own streams
    mle = cs.GaussianFit().fit(x)
    errors = []
    for lr, epochs in ((0.01, 300), (0.002, 600)):
        fit = cs.SGDGaussianFit(learning_rate=lr, batch_size=20, epochs=epochs, init="fixed")
        model = _fit(fit, x)
        dev = np.concatenate([(model.mean - mle.mean).ravel(), (model.cov - mle.cov).ravel()])
        errors.append(np.sqrt(np.mean(dev**2)))  # RMS over chains and parameters
    # Constant-rate SGD ends in a stationary spread around the optimum whose variance is
    # proportional to the rate (and a bias proportional to it), so the RMS error shrinks
    # by at least sqrt(5) ~ 2.24 when the rate drops 5x (measured: 5 and 9). Each RMS
    # pools >= 64 independent chains (relative sd <= 9%), so the ratio has sd <= 0.3:
    # requiring > 1.6 is a 2-sd-plus margin that a non-converging SGD (ratio ~ 1) fails.
    assert errors[0] < 0.05 and errors[1] < 0.01, errors
    assert errors[0] / errors[1] > 1.6, errors


def test_one_short_epoch_is_measurably_biased():
    truth = cs.Gaussian(mean=0.0, var=4.0)
    x = np.stack([truth.sample(64, seed=s) for s in range(300)])
    mle = cs.GaussianFit().fit(x).cov[:, 0, 0]
    short = _fit(cs.SGDGaussianFit(learning_rate=0.01, batch_size=16, epochs=1, init="fixed"),
                 x).cov[:, 0, 0]
    # From N(0, 1), 4 steps of rate 0.01 cannot reach the data's variance of about 4: the
    # per-chain gap is positive and its mean is many standard errors from 0.
    gap = mle - short
    assert gap.mean() > 5 * gap.std(ddof=1) / np.sqrt(gap.size)


def test_reproducible_and_thread_independent(threads):
    kw = {"n_samples": 50, "generations": 4, "chains": 9, "seed": 2}
    fit = cs.SGDGaussianFit(learning_rate=0.05, batch_size=10, epochs=2, momentum=0.5,
                            gradient_noise=0.1)
    threads(1)
    a = cs.simulate(TRUTH, fit, **kw)
    threads(numba.config.NUMBA_NUM_THREADS)
    b = cs.simulate(TRUTH, fit, **kw)
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])
    c = cs.simulate(TRUTH, fit, **{**kw, "chains": 4})
    np.testing.assert_array_equal(a.metrics["w2"][:, :4], c.metrics["w2"])


def test_sgd_in_the_recursion_runs_without_nan():
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.SGDGaussianFit(), n_samples=100,
                      generations=30, chains=50, seed=0)
    for name, arr in sim.metrics.items():
        assert np.all(np.isfinite(arr)), name


def test_divergence_is_reported_with_generation_and_chain():
    with pytest.raises(FloatingPointError, match=r"generation 1: the fit of chain \d+"):
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.SGDGaussianFit(learning_rate=50.0),
                    n_samples=100, generations=3, chains=5, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"learning_rate": 0.0}, ValueError, "learning_rate"),
     ({"learning_rate": float("inf")}, ValueError, "learning_rate"),
     ({"batch_size": 0}, ValueError, "batch_size"),
     ({"batch_size": 2.5}, TypeError, "batch_size"),
     ({"epochs": 0}, ValueError, "epochs"),
     ({"momentum": 1.0}, ValueError, "momentum"),
     ({"lr_schedule": "cosine"}, ValueError, "lr_schedule"),
     ({"gradient_noise": -1.0}, ValueError, "gradient_noise"),
     ({"init": "random"}, ValueError, "init")],
)
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        cs.SGDGaussianFit(**kwargs)


def test_batch_larger_than_the_sample_is_refused_before_work():
    with pytest.raises(ValueError, match="n_samples"):
        cs.simulate(TRUTH, cs.SGDGaussianFit(batch_size=64), n_samples=32, generations=2,
                    chains=10**9)
    with pytest.raises(ValueError, match="exact"):
        cs.simulate(TRUTH, cs.SGDGaussianFit(), n_samples=64, generations=2, sampling="exact")


# -- SGDMixtureFit -----------------------------------------------------------------------------

MIX = cs.GaussianMixture(weights=[0.4, 0.6], means=[[-2.0, 0.0], [2.0, 1.0]],
                         covs=[np.diag([1.0, 0.5]), np.diag([0.7, 1.5])])


def test_mixture_sgd_reaches_the_em_maximum():
    x = cs.sampling.draw_points(MIX, 300, cs.sampling.chain_streams(0, 6))
    em = cs.GaussianMixtureFit(n_components=2, covariance_type="diag", tol=1e-12,
                               max_iter=5000).fit(x, seed=1)
    fit = cs.SGDMixtureFit(n_components=2, learning_rate=0.02, batch_size=300, epochs=3000,
                           init="kmeans++")
    sgd = _fit(fit, x, seed=1)
    ll_em = em.logpdf(x).mean(axis=1)
    ll_sgd = sgd.logpdf(x).mean(axis=1)
    # Full-batch gradient descent on the same likelihood, from a start near the same mode,
    # converges to EM's local maximum (deterministic optimisation, no sampling error): the
    # mean log-likelihoods agree to 1e-4 and SGD never ends meaningfully above EM.
    np.testing.assert_allclose(ll_sgd, ll_em, atol=1e-4)
    assert np.all(np.sort(sgd.weights, axis=1) > 0.3)


def test_mixture_sgd_with_too_few_components_stacks_on_the_expressivity_floor():
    kw = {"n_samples": 200, "generations": 1, "chains": 200, "seed": 3, "metrics": ("kl",)}
    floor = cs.theory.gaussian_mismatch_floor(MIX)["kl"]
    one = cs.simulate(MIX, cs.SGDMixtureFit(n_components=1, learning_rate=0.02, batch_size=20,
                                            epochs=3, init="kmeans++"), **kw)
    two = cs.simulate(MIX, cs.GaussianMixtureFit(n_components=2, covariance_type="diag"), **kw)
    # A one-component fit cannot go below the best Gaussian's KL; the 2-component EM fit,
    # which can represent the truth, lands far below that floor in most chains.
    assert np.all(one.metrics["kl"][1] >= floor - 1e-9)
    assert np.median(two.metrics["kl"][1]) < floor / 5


def test_mixture_sgd_reproducible_and_thread_independent(threads):
    kw = {"n_samples": 64, "generations": 3, "chains": 5, "seed": 2, "metrics": ("w2", "l2")}
    fit = cs.SGDMixtureFit(n_components=2, learning_rate=0.05, batch_size=16, epochs=2,
                           momentum=0.3, gradient_noise=0.05)
    threads(1)
    a = cs.simulate(MIX, fit, **kw)
    threads(numba.config.NUMBA_NUM_THREADS)
    b = cs.simulate(MIX, fit, **kw)
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name])


def test_mixture_sgd_empty_component_gives_no_nan():
    # A previous model with a component far from every point: its responsibilities are 0,
    # so its mean and scale keep their values and only its weight moves; no NaN.
    prev = cs.GaussianMixture(weights=[0.999999, 1e-6], means=[[0.0, 0.0], [1e6, 1e6]],
                              covs=[np.eye(2), np.eye(2)])
    x = cs.sampling.draw_points(cs.Gaussian(mean=[0.0, 0.0], cov=np.eye(2)), 50,
                                cs.sampling.chain_streams(0, 3))
    model = cs.SGDMixtureFit(n_components=2, batch_size=10).fit_chains(
        x, streams=cs.sampling.chain_streams(1, 3), previous=prev)
    for arr in (model.weights, model.means, model.covs):
        assert np.all(np.isfinite(arr))
    np.testing.assert_array_equal(model.means[:, 1], 1e6)


def test_mixture_sgd_divergence_is_reported():
    with pytest.raises(FloatingPointError, match=r"generation \d+: the fit of chain \d+"):
        cs.simulate(MIX, cs.SGDMixtureFit(learning_rate=1e3, batch_size=4, epochs=20),
                    n_samples=64, generations=3, chains=3, seed=0, metrics=("variance",))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"n_components": 0}, ValueError, "n_components"),
     ({"learning_rate": -1.0}, ValueError, "learning_rate"),
     ({"batch_size": 0}, ValueError, "batch_size"),
     ({"epochs": 0}, ValueError, "epochs"),
     ({"init": "fixed"}, ValueError, "init")],
)
def test_mixture_sgd_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        cs.SGDMixtureFit(**kwargs)


def test_sgd_models_can_be_recorded():
    sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.SGDGaussianFit(), n_samples=64,
                      generations=3, chains=4, seed=0, record_models=True, metrics="variance")
    assert sim.models["cov"].shape == (4, 4, 1, 1)
    np.testing.assert_allclose(sim.models["cov"][1:, :, 0, 0], sim.metrics["variance"][1:])


def test_shuffle_is_uniform():
    import numba as nb
    from scipy import stats

    from collapse_sim._kernels.rng import shuffle

    @nb.njit
    def position_counts(s, n, reps):
        counts = np.zeros((n, n), dtype=np.int64)
        perm = np.arange(n)
        for _ in range(reps):
            for i in range(n):
                perm[i] = i
            shuffle(perm, s)
            for i in range(n):
                counts[i, perm[i]] += 1
        return counts

    counts = position_counts(cs.sampling.chain_streams(3, 1).states[0], 5, 100_000)
    # Every element lands in every position with probability 1/5. The 25 cells are
    # multinomial (rows and columns sum to reps), so the chi-square statistic on 16
    # degrees of freedom is conservative; a false alarm has probability < 1e-4.
    expected = np.full((5, 5), 100_000 / 5)
    stat = ((counts - expected) ** 2 / expected).sum()
    assert stat < stats.chi2.ppf(1 - 1e-4, 16)
    one = np.arange(1)
    shuffle(one, cs.sampling.chain_streams(0, 1).states[0])
    assert one.tolist() == [0]


def test_shuffle_of_long_arrays_uses_32_bit_draws_and_stays_uniform():
    from scipy import stats

    from collapse_sim._kernels.rng import shuffle

    n, reps = 70_000, 400  # above 2**16: the 32-bit path
    s = cs.sampling.chain_streams(5, 1).states[0]
    bins = np.zeros(10, dtype=np.int64)
    for _ in range(reps):
        perm = np.arange(n)
        shuffle(perm, s)
        bins[int(np.flatnonzero(perm == 0)[0]) * 10 // n] += 1
    assert np.array_equal(np.sort(perm), np.arange(n))
    # Element 0's final position is uniform: decile counts are multinomial(reps, 1/10);
    # chi-square on 9 degrees of freedom, false alarm 1e-4.
    assert stats.chisquare(bins).statistic < stats.chi2.ppf(1 - 1e-4, 9)


# -- the fused 1-D run -------------------------------------------------------------------------

TRUTH1 = cs.Gaussian(mean=0.3, var=2.0)
FUSED_FITTERS = {
    "plain": cs.SGDGaussianFit(learning_rate=0.05, batch_size=4, epochs=2),
    "momentum-noise-schedule": cs.SGDGaussianFit(learning_rate=0.05, batch_size=5, epochs=2,
                                                 momentum=0.5, lr_schedule="inverse_time",
                                                 gradient_noise=0.1),
    "fixed-start": cs.SGDGaussianFit(batch_size=3, init="fixed"),
}


@pytest.mark.parametrize("fitter", FUSED_FITTERS.values(), ids=FUSED_FITTERS)
@pytest.mark.parametrize("policy", [cs.Replace(), cs.KeepReal(0.25), cs.KeepReal(1.0),
                                    cs.FreshReal(0.5), cs.Augment(0.5)], ids=repr)
@pytest.mark.parametrize("block", [1 << 17, 5])
def test_fused_1d_run_is_bit_identical_to_the_generation_loop(fitter, policy, block,
                                                              monkeypatch):
    from collapse_sim.families import gaussian

    kw = {"n_samples": 12, "generations": 25, "chains": 6, "seed": 3, "policy": policy,
          "record_models": True}
    monkeypatch.setattr(gaussian, "FUSED_BLOCK_ELEMENTS", block)  # 5: blocks of 1 generation
    calls = []
    fused_blocks = gaussian._fused_sgd_1d
    monkeypatch.setattr(gaussian, "_fused_sgd_1d",
                        lambda *args: calls.append(1) or fused_blocks(*args))
    fused = cs.simulate(TRUTH1, fitter, **kw)
    assert calls, "the run did not take the fused path"
    # without its fused_run capability the engine runs the generation-by-generation loop
    monkeypatch.setattr(cs.SGDGaussianFit, "fused_run", lambda self, *args, **kwargs: None)
    loop = cs.simulate(TRUTH1, fitter, **kw)
    for name in fused.metrics:
        np.testing.assert_array_equal(fused.metrics[name], loop.metrics[name])
    for name in ("mean", "cov"):
        np.testing.assert_array_equal(fused.models[name], loop.models[name])


@pytest.mark.parametrize("truth, policy, kwargs", [
    (TRUTH1, cs.Accumulate(), {}),  # a pool of every generation's points
    (TRUTH1, cs.KeepReal(0.25, resample=True), {}),  # real points drawn afresh
    (TRUTH1, cs.Replace(), {"generation": cs.Temperature(1.1)}),  # a generation stage
    (TRUTH, cs.Replace(), {}),  # 2-D
    (cs.GaussianMixture(weights=[0.5, 0.5], means=[[-1.0], [1.0]], covs=[[[1.0]], [[1.0]]]),
     cs.Replace(), {}),  # not a Gaussian truth
], ids=["accumulate", "resampled-real", "stage", "2d", "mixture"])
def test_fused_run_declines_what_it_does_not_do(truth, policy, kwargs, monkeypatch):
    from collapse_sim.families import gaussian

    monkeypatch.setattr(gaussian, "_fused_sgd_1d", lambda *args: pytest.fail("fused"))
    sim = cs.simulate(truth, cs.SGDGaussianFit(batch_size=4, epochs=1), n_samples=12,
                      generations=3, chains=4, seed=0, policy=policy, **kwargs)
    assert np.all(np.isfinite(sim.metrics["variance"]))


def test_fused_1d_run_parallel_build_equals_serial_build(threads, monkeypatch):
    from collapse_sim._kernels import _dispatch

    kw = {"n_samples": 40, "generations": 6, "chains": 33, "seed": 5, "record_models": True}
    fit = FUSED_FITTERS["momentum-noise-schedule"]
    monkeypatch.setattr(_dispatch, "PARALLEL_MIN_WORK", 1 << 60)
    serial = cs.simulate(TRUTH1, fit, **kw)
    monkeypatch.setattr(_dispatch, "PARALLEL_MIN_WORK", 0)
    threads(numba.config.NUMBA_NUM_THREADS)
    parallel = cs.simulate(TRUTH1, fit, **kw)
    threads(1)
    one = cs.simulate(TRUTH1, fit, **kw)
    for name in ("mean", "cov"):
        np.testing.assert_array_equal(parallel.models[name], serial.models[name])
        np.testing.assert_array_equal(one.models[name], serial.models[name])
    # chain c's models do not depend on how many chains run beside it
    few = cs.simulate(TRUTH1, fit, **{**kw, "chains": 5})
    np.testing.assert_array_equal(few.models["cov"], serial.models["cov"][:, :5])


def test_fused_1d_divergence_is_reported_as_by_the_generation_loop(monkeypatch):
    # rate 2 on 16 points: the first fits stay finite and some chain diverges at a later
    # generation, inside the fused run's block; the error must name the same generation,
    # chain and count of other chains (of that generation) as the loop's
    kw = {"n_samples": 16, "generations": 40, "chains": 8, "seed": 0, "metrics": "variance"}
    fit = cs.SGDGaussianFit(learning_rate=2.0, batch_size=4, epochs=3)
    with pytest.raises(FloatingPointError) as fused:
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), fit, **kw)
    monkeypatch.setattr(cs.SGDGaussianFit, "fused_run", lambda self, *args, **kwargs: None)
    with pytest.raises(FloatingPointError) as loop:
        cs.simulate(cs.Gaussian(mean=0.0, var=1.0), fit, **kw)
    assert str(fused.value) == str(loop.value)
    assert not str(fused.value).startswith("generation 1:")


def test_1d_fits_do_not_depend_on_how_chains_are_paired():
    # the 1-D kernels fit chains two at a time in lockstep; a chain fitted alone (the last
    # of an odd count) or beside another gets the same bits
    x = cs.Gaussian(mean=1.0, var=2.0).sample(5 * 30, seed=4).reshape(5, 30, 1)
    fit = FUSED_FITTERS["momentum-noise-schedule"]
    previous = cs.Gaussian(mean=0.5, var=1.5)
    for chains in (3, 4, 5):
        streams = cs.sampling.chain_streams(8, 5)
        model = fit.fit_chains(x[:chains], streams=cs.sampling.ChainStreams(
            streams.states[:chains].copy()), previous=previous)
        if chains == 3:
            first = model
        else:
            np.testing.assert_array_equal(model.mean[:3], first.mean)
            np.testing.assert_array_equal(model.cov[:3], first.cov)


def test_lockstep_benchmark_compares_equal_fits(benchmark_script):
    """``benchmarks/sgd_lockstep.py`` times the pairs against one chain at a time: the two
    must give the same numbers (here 7 chains: three pairs and one alone)."""
    bench = benchmark_script("sgd_lockstep")
    x = np.random.default_rng(1).standard_normal((7, 40))
    start = cs.sampling.chain_streams(2, 7).states.copy()
    results = []
    for fit in (bench.one_at_a_time, bench.in_pairs):
        mean, var, states = np.empty(7), np.empty(7), start.copy()
        fit(x, states, mean, var, 0.05, 8, 3)
        results.append((mean, var, states))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
