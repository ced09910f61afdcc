"""The one-pass 1-D Gaussian metrics (collapse_sim/_kernels/gaussian_metrics.py) against the
numpy formulas they replace (bit for bit, the tail mass to 4 units in the last place: its
normal CDF computes its own exponential) and against scipy references (to rounding)."""

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

import collapse_sim as cs
from collapse_sim import registry
from collapse_sim._kernels import gaussian_metrics as gm
from collapse_sim.families import gaussian as G

NAMES = G._METRICS_1D
TRUTHS = [(0.0, 1.0), (3.0, 1e-6), (-2.0, 1e200), (1e-3, 1e-250)]


#: Largest distance, in units in the last place, of the compiled normal CDF (and so of
#: each CDF in the tail mass) from scipy's where the value is a normal number. The two
#: run the same Cephes rational functions in the same order; they differ only in
#: e^(-a^2): the C library's is correctly rounded or nearly (<= 1 ulp), ours (Cody-Waite
#: reduction, Taylor polynomial in Horner's scheme, exact power of 2) within about 2
#: ulp, and the two roundings of the rational part's product and quotient that follow
#: can each turn a difference into one more: 1 + 2 + 1 = 4.
MAX_ULPS = 4


def assert_ulps(got, want, ulps=MAX_ULPS, err_msg=""):
    """``got`` within ``ulps`` units in the last place of ``want``; values below the
    smallest normal number within 2 subnormal steps; inf, NaN and zeros exactly."""
    got, want = np.asarray(got), np.asarray(want)
    exact = ~np.isfinite(want) | (want == 0) | ~np.isfinite(got)
    np.testing.assert_array_equal(got[exact], want[exact], err_msg=err_msg)
    tiny = np.finfo(np.float64).tiny
    g, w = got[~exact], want[~exact]
    bound = np.where(np.abs(w) >= tiny, ulps * np.spacing(np.abs(w)), 2 * 5e-324)
    bad = np.abs(g - w) > bound
    assert not bad.any(), (f"{err_msg}: {bad.sum()} values beyond {ulps} ulp, e.g. "
                           f"{g[bad][:3]} against {w[bad][:3]}")


def _numpy_reference(truth, model, heldout):
    """The numpy formulas the compiled pass replaces."""
    return {"variance": G.variance(truth, model), "mean_shift": G.mean_shift(truth, model),
            "w2": G._w2_numpy(truth, model), "kl": G._kl_numpy(truth, model),
            "nll": G.nll_from_moments(model, *G._heldout_moments(heldout, 1)),
            "tail_mass": G._tail_mass_numpy(truth, model)}


def _assert_matches(got, want, name):
    """Bit for bit; the tail mass, a sum of two CDFs each within :data:`MAX_ULPS` of
    scipy's, within twice that plus the rounding of the sum."""
    if name == "tail_mass":
        assert_ulps(got, want, 2 * MAX_ULPS + 1, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def _models(seed=0, size=20_000):
    """Near-truth, far and collapsed models, with every extreme the engine can hand over."""
    rng = np.random.default_rng(seed)
    m = np.concatenate([rng.normal(size=size) * 0.1, rng.normal(size=size) * 1e3,
                        [0.0, 0.0, 3.0, 1e300, -1e300, 2.5758293035489004, 1e-300, -5e-324]])
    v = np.concatenate([np.exp(rng.normal(size=size) * 5), np.exp(rng.uniform(-740, 709, size)),
                        [0.0, 1.0, 0.0, 1.0, 5e-324, 1e-300, 1e308, 0.0]])
    return G.Gaussian._from_arrays(m[:, None].copy(), v[:, None, None].copy())


def test_ndtr_is_scipys_to_a_few_ulps():
    """Every branch (|x|/sqrt2 < 1, < 8, >= 8, past the underflow threshold), their seams,
    the subnormal range and the special values, against scipy.special.ndtr; most values
    are the same bits."""
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=200_000) * s for s in (0.3, 1.0, 3.0, 10.0, 40.0)]
    xs += [np.linspace(-40, 40, 400_001),  # every branch: |x|/sqrt2 < 1, < 8, >= 8, underflow
           np.linspace(-1.4143, -1.4141, 20_001), np.linspace(1.4141, 1.4143, 20_001),
           np.linspace(11.3, 11.32, 20_001), np.linspace(-11.32, -11.3, 20_001),
           np.linspace(-37.7, -37.6, 20_001), np.linspace(37.6, 37.7, 20_001),
           np.linspace(-38.5, -36.5, 20_001),  # Phi subnormal from about -37.5
           np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 5e-324, 1e300])]
    x = np.concatenate(xs)
    out = np.empty_like(x)
    gm.ndtr(x, out)
    want = special.ndtr(x)
    assert_ulps(out, want)
    assert np.isnan(out[np.isnan(x)]).all()
    assert (out == want).mean() > 0.9


@pytest.mark.parametrize("mu,var", TRUTHS)
def test_one_pass_equals_numpy_formulas(mu, var):
    truth = cs.Gaussian(mean=mu, var=var)
    model = _models()
    heldout = np.random.default_rng(2).normal(mu, math.sqrt(var), size=(500, 1))
    fast = G._metrics_1d(truth, model, NAMES, G._heldout_moments(heldout, 1))
    with np.errstate(all="ignore"):
        ref = _numpy_reference(truth, model, heldout)
    for name in NAMES:
        _assert_matches(fast[name], ref[name], name)
        assert not np.isnan(fast[name]).any(), name
    # any subset, in any order, gives the same values
    sub = G._metrics_1d(truth, model, ("tail_mass", "kl"))
    np.testing.assert_array_equal(sub["kl"], ref["kl"])
    np.testing.assert_array_equal(sub["tail_mass"], fast["tail_mass"])


def test_parallel_build_equals_serial_build():
    """Slices are tasks shared by lanes: the parallel build writes the serial build's
    bits, whatever the number of lanes (each with its scratch, left dirty between
    slices)."""
    truth, model = cs.Gaussian(mean=0.2, var=1.5), _models(11, 60_000)
    m, v = model.mean[:, 0].copy(), model.cov[:, 0, 0].copy()
    with np.errstate(all="ignore"):
        logv = np.log(v)
    lo, hi = G._tail_bounds(truth)
    results = []
    for build, lanes in ((gm.metrics_1d.serial, gm.LANES), (gm.metrics_1d.parallel, gm.LANES),
                         (gm.metrics_1d.parallel, 3), (gm.metrics_1d.serial, 1)):
        outs = tuple(np.empty(m.size) for _ in NAMES)
        build(m, v, logv, 0.2, 1.5, math.sqrt(1.5), math.log(1.5), 0.1, 1.2,
              math.log(2 * math.pi), lo, hi, outs, np.full((lanes, 4, 2 * gm.CHUNK), np.nan),
              np.full((lanes, 2, 2 * gm.CHUNK), -1))
        results.append(np.stack(outs))
    assert m.size > 8 * gm.CHUNK  # every lane takes several slices
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_public_functions_take_the_fast_path_with_the_same_values():
    truth, model = cs.Gaussian(mean=0.5, var=2.0), _models(3, 2000)
    heldout = np.random.default_rng(4).normal(0.5, 1.4, size=(300, 1))
    with np.errstate(all="ignore"):
        ref = _numpy_reference(truth, model, heldout)
    np.testing.assert_array_equal(cs.metrics.w2(truth, model), ref["w2"])
    np.testing.assert_array_equal(cs.metrics.kl(truth, model), ref["kl"])
    np.testing.assert_array_equal(cs.metrics.nll(truth, model, heldout), ref["nll"])
    _assert_matches(cs.metrics.tail_mass(truth, model), ref["tail_mass"], "tail_mass")


def test_registry_shares_one_pass_and_never_serves_stale_values():
    truth = cs.Gaussian(mean=0.0, var=1.0)
    heldout = np.random.default_rng(5).normal(size=(400, 1))
    ctx = registry.MetricContext(truth, heldout)
    for seed in (6, 7):  # a second model must not get the first one's cached values
        model = _models(seed, 500)
        got = registry.evaluate(NAMES, truth, model, ctx)
        with np.errstate(all="ignore"):
            ref = _numpy_reference(truth, model, heldout)
        for name in NAMES:
            _assert_matches(got[name], ref[name], name)
        assert ctx._gaussian_1d is None  # every value served once, nothing kept
    got = registry.evaluate(("kl", "variance"), truth, model, ctx)
    np.testing.assert_array_equal(got["kl"], ref["kl"])


def test_simulate_default_metrics_match_numpy_on_recorded_models():
    truth = cs.Gaussian(mean=1.0, var=4.0)
    for sampling in ("exact", "explicit"):
        sim = cs.simulate(truth, cs.GaussianFit("mle"), n_samples=10, generations=60, chains=50,
                          seed=8, record_models=True, progress=False, sampling=sampling)
        model = G.Gaussian._from_arrays(sim.models["mean"].reshape(-1, 1),
                                        sim.models["cov"].reshape(-1, 1, 1))
        heldout = truth.heldout(registry.HELDOUT_SIZE, cs.sampling.ChainStreams(
            cs._random.shared_state(cs._random.as_seed_sequence(8), 0)))
        ref = _numpy_reference(truth, model, heldout)
        for name in NAMES:
            _assert_matches(sim.metrics[name].ravel(), ref[name], name)


def test_against_scipy_references():
    """Closed forms against scipy.stats.norm and quadrature (tolerances: quad's reported
    error bound, far below the 1e-8 relative asked; the CDF forms agree to rounding)."""
    mu, var = 0.3, 1.7
    truth, sd0 = cs.Gaussian(mean=mu, var=var), math.sqrt(var)
    m = np.array([0.3, -1.0, 2.5, 0.0, 4.0])
    v = np.array([1.7, 0.5, 3.0, 1e-4, 10.0])
    model = G.Gaussian._from_arrays(m[:, None], v[:, None, None])
    heldout = np.random.default_rng(9).normal(mu, sd0, size=(1000, 1))
    out = G._metrics_1d(truth, model, NAMES, G._heldout_moments(heldout, 1))
    lo, hi = stats.norm.ppf([0.005, 0.995], mu, sd0)
    for i, (mi, vi) in enumerate(zip(m, v, strict=True)):
        q = stats.norm(mi, math.sqrt(vi))
        p = stats.norm(mu, sd0)
        tail = q.cdf(lo) + q.sf(hi)
        assert out["tail_mass"][i] == pytest.approx(tail, rel=1e-12, abs=1e-300)
        kl_quad, err = integrate.quad(lambda x, p=p, q=q: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)),
                                      mu - 40 * sd0, mu + 40 * sd0, epsabs=1e-13, limit=200)
        assert out["kl"][i] == pytest.approx(kl_quad, rel=1e-8, abs=10 * err + 1e-13)
        w2_quad, err = integrate.quad(lambda u, q=q, p=p: (q.ppf(u) - p.ppf(u)) ** 2, 0, 1,
                                      limit=200)
        assert out["w2"][i] ** 2 == pytest.approx(w2_quad, rel=1e-8, abs=10 * err)
        assert out["nll"][i] == pytest.approx(-q.logpdf(heldout[:, 0]).mean(), rel=1e-12)


@pytest.mark.parametrize("mean,expected_tail", [(0.0, 0.0), (10.0, 1.0)])
def test_point_mass_extremes(mean, expected_tail):
    """A collapsed model (variance 0): kl and nll +inf, tail mass 0 inside the truth's 99%
    region and 1 outside, w2 = sqrt(shift^2 + sigma^2); subnormal to huge variances give
    no NaN (nll may overflow to +inf below 1e-300), finite values from 1e-30 on."""
    truth = cs.Gaussian(mean=0.0, var=1.0)
    v = np.array([0.0, 5e-324, 1e-300, 1e-30, 1e30, 1e300])
    model = G.Gaussian._from_arrays(np.full((v.size, 1), mean), v[:, None, None])
    heldout = np.random.default_rng(10).normal(size=(100, 1))
    out = G._metrics_1d(truth, model, NAMES, G._heldout_moments(heldout, 1))
    assert out["kl"][0] == np.inf and out["nll"][0] == np.inf
    assert out["tail_mass"][0] == expected_tail
    assert out["w2"][0] == math.hypot(mean, 1.0)
    for name in NAMES:
        assert not np.isnan(out[name]).any(), name
    assert np.isfinite(out["kl"][3:]).all() and np.isfinite(out["nll"][3:]).all()
    assert out["tail_mass"][-1] == pytest.approx(1.0, abs=1e-12)  # s = 1e150 covers nothing


def test_negligible_cdfs_are_skipped_without_changing_a_bit():
    """A tail CDF below 2**-60 of the other is not evaluated: the tail mass is still
    exactly the sum of both compiled CDFs (each CDF whose argument is within 40 is the
    compiled ``ndtr`` of it, a dead one 0 or 1), on models drifting and narrowing as a
    collapsing chain does (a fifth or more of them skip a CDF), and on the extremes of
    ``_models``."""
    rng = np.random.default_rng(7)
    size = 40_000
    s = np.exp(rng.uniform(np.log(1e-3), np.log(3.0), size))
    m = rng.normal(size=size) * rng.choice([0.1, 0.5, 2.0], size)
    drift = G.Gaussian._from_arrays(m[:, None].copy(), (s * s)[:, None, None].copy())
    truth = G.Gaussian(0.0, 1.0)
    lo, hi = (float(b) for b in G._tail_bounds(truth))
    for k, model in enumerate((drift, _models())):
        mm, sd = model.mean[:, 0], np.sqrt(model.cov[:, 0, 0])
        parts = []
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for gap, dead, arg in ((lo - mm, lo > mm, (lo - mm) / sd),
                                   (mm - hi, mm > hi, (mm - hi) / sd)):
                live = (np.abs(gap) < 40.0 * sd) | np.isnan(mm)
                value = np.where(dead, 1.0, 0.0)
                cdf = np.empty(int(live.sum()))
                gm.ndtr(np.ascontiguousarray(arg[live]), cdf)
                value[live] = cdf
                parts.append(value)
            a, b = (lo - mm) / sd, (mm - hi) / sd
        got = G._metrics_1d(truth, model, ("tail_mass",))["tail_mass"]
        np.testing.assert_array_equal(got, parts[0] + parts[1])
        if k == 0:
            skipped = np.array([gm._negligible(x, y) or gm._negligible(y, x)
                                for x, y in zip(a, b, strict=True)])
            assert skipped.mean() > 0.2
