"""The empirical truth (a fixed real data set) and the bundled data sets."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits, make_moons

import collapse_sim as cs
from collapse_sim.sampling import chain_streams


def moons(n=1000, heldout=0.2):
    return cs.Empirical(cs.datasets.two_moons(n, noise=0.1, seed=0), heldout=heldout)


def test_datasets_are_sklearns():
    d = cs.datasets.digits()
    ref = load_digits()
    np.testing.assert_array_equal(d.data, ref.data)
    np.testing.assert_array_equal(d.labels, ref.target)
    assert d.image_shape == (8, 8) and not d.data.flags.writeable
    m = cs.datasets.two_moons(500, noise=0.2, seed=3)
    x, y = make_moons(500, noise=0.2, random_state=3)
    np.testing.assert_array_equal(m.data, x)
    np.testing.assert_array_equal(m.labels, y)
    b = cs.datasets.blobs(301, centers=3, seed=1)
    assert np.bincount(b.labels).tolist() == [101, 100, 100]  # make_blobs' stratified counts


def test_split_is_fixed_and_disjoint():
    data = np.arange(200.0).reshape(100, 2)
    a = cs.Empirical(data, heldout=0.25, split_seed=4)
    b = cs.Empirical(data, heldout=0.25, split_seed=4)
    assert a.train.shape == (75, 2) and a.heldout_points.shape == (25, 2)
    np.testing.assert_array_equal(a.train, b.train)
    rows = np.concatenate([a.train[:, 0], a.heldout_points[:, 0]])
    assert sorted(rows.tolist()) == data[:, 0].tolist()  # a partition of the rows
    c = cs.Empirical(data, heldout=0.25, split_seed=5)
    assert not np.array_equal(a.train, c.train)
    config = a.to_dict()
    assert config["rows"] == 100 and len(json.dumps(config)) < 400
    assert config["sha256"] == c.to_dict()["sha256"]  # the data, not the split


def test_draws_are_subsets_of_the_training_split():
    truth = moons(200)
    out = truth.draw(60, chain_streams(0, 50))
    assert out.shape == (50, 60, 2)
    train = {tuple(r) for r in truth.train}
    for chain in out:
        rows = {tuple(r) for r in chain}
        assert len(rows) == 60 and rows <= train  # without replacement, training rows only


def test_each_row_is_drawn_with_probability_k_over_n():
    # Each of the N = 160 training rows enters a k = 40 subset with probability 1/4; over
    # 4000 chains its count is Binomial(4000, 1/4). The 160 counts are (nearly independent)
    # binomials: a chi-square statistic on them is ~ chi2(159) (minus one degree for the
    # fixed total); the test fails at the 0.1% level.
    truth = moons(200)
    out = truth.draw(40, chain_streams(1, 4000)).reshape(-1, 2)
    index = {tuple(r): i for i, r in enumerate(truth.train)}
    counts = np.bincount([index[tuple(r)] for r in out], minlength=truth.train_size)
    expected = 4000 * 40 / truth.train_size
    chi2 = np.sum((counts - expected) ** 2 / (expected * (1 - 40 / truth.train_size)))
    assert stats.chi2.sf(chi2, truth.train_size - 1) > 1e-3


def test_row_zero_is_the_fit_of_the_training_split():
    truth = moons()
    sim = cs.simulate(truth, cs.GaussianFit(), n_samples=100, generations=2, chains=3,
                      seed=0, record_models=True)
    np.testing.assert_allclose(sim.models["mean"][0, 0], truth.train.mean(axis=0))
    np.testing.assert_allclose(sim.metrics["variance"][0],
                               np.trace(np.cov(truth.train.T, bias=True)))
    # nll of the held-out rows under N(mean, cov) of the training split, by scipy
    ref = -stats.multivariate_normal(truth.train.mean(axis=0),
                                     np.cov(truth.train.T, bias=True)).logpdf(
        truth.heldout_points).mean()
    np.testing.assert_allclose(sim.metrics["nll"][0], ref, rtol=1e-10)
    assert np.all(sim.metrics["mean_shift"][0] < 1e-12)


def test_mixture_metrics_on_an_empirical_truth_match_scipy():
    truth = moons()
    sim = cs.simulate(truth, cs.GaussianMixtureFit(2), n_samples=200, generations=2,
                      chains=3, seed=0, record_models=True)
    w, m, c = (sim.models[k][2, 1] for k in ("weights", "means", "covs"))
    dens = sum(w[j] * stats.multivariate_normal(m[j], c[j]).pdf(truth.heldout_points)
               for j in range(2))
    np.testing.assert_allclose(sim.metrics["nll"][2, 1], -np.log(dens).mean(), rtol=1e-9)
    mean = w @ m
    total = sum(w[j] * (np.trace(c[j]) + np.sum((m[j] - mean) ** 2)) for j in range(2))
    np.testing.assert_allclose(sim.metrics["variance"][2, 1], total, rtol=1e-12)


def test_same_seed_same_run_and_first_chains_agree():
    truth = moons()
    a = cs.simulate(truth, cs.GaussianFit(), n_samples=50, generations=3, chains=6, seed=2,
                    policy=cs.FreshReal(0.5))
    b = cs.simulate(truth, cs.GaussianFit(), n_samples=50, generations=3, chains=2, seed=2,
                    policy=cs.FreshReal(0.5))
    np.testing.assert_array_equal(a.metrics["nll"][:, :2], b.metrics["nll"])


@pytest.mark.parametrize("kwargs, match", [
    ({"data": [[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]}, "finite; row 0"),
    ({"data": np.ones((10, 2)), "heldout": 0.95}, "heldout"),
    ({"data": np.ones((2, 2)), "heldout": 0.5}, "at least 2"),
    ({"data": np.ones((10, 2)), "heldout": 0.01}, "holds out no row"),
    ({"data": np.ones((4, 2, 2))}, "rows"),
    ({"data": np.ones((4, 2)), "labels": [0, 1]}, "labels"),
])
def test_bad_data_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cs.Empirical(**kwargs)


def test_bad_types_are_refused():
    with pytest.raises(TypeError, match="numbers"):
        cs.Empirical(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(TypeError, match="name"):
        cs.Empirical(np.ones((5, 2)), name=3)


def test_too_large_a_sample_and_missing_heldout_are_refused_up_front():
    truth = moons(100)
    with pytest.raises(ValueError, match="exceeds the 80 rows"):
        cs.simulate(truth, cs.GaussianFit(), n_samples=81, generations=1)
    none = cs.Empirical(cs.datasets.two_moons(100), heldout=0.0)
    with pytest.raises(ValueError, match="heldout=0"):
        cs.simulate(none, cs.GaussianFit(), n_samples=10, generations=1, metrics="nll")


def test_without_held_out_rows_the_defaults_leave_out_nll():
    truth = cs.Empirical(cs.datasets.two_moons(200, seed=0), heldout=0.0)
    sim = cs.simulate(truth, cs.GaussianFit(), n_samples=20, generations=2, chains=2, seed=0)
    assert "nll" not in sim.metrics and "variance" in sim.metrics


def test_statistics_are_the_moments_of_the_rows_draw_returns():
    # same stream position: the same rows; their moments by the same arithmetic, without
    # gathering them (collapse_sim._kernels.ppca.subset_moments)
    truth = moons()
    rows = truth.draw(300, chain_streams(3, 5))
    stats_ = truth.draw_statistics(300, chain_streams(3, 5), exact=True)
    ref = cs.families.ppca.moments(rows)
    assert stats_.count == 300
    np.testing.assert_array_equal(stats_.mean, ref.mean)
    np.testing.assert_array_equal(stats_.scatter, ref.scatter)
    np.testing.assert_allclose(stats_.mean, rows.mean(axis=1), rtol=1e-12, atol=1e-14)
    empty = truth.draw_statistics(0, chain_streams(3, 5), exact=True)
    assert empty.count == 0 and not empty.scatter.any()


def test_statistics_do_not_depend_on_blas_or_numba_threads(threads):
    """The scatter of 64-D digit rows is a BLAS product per chain (np.dot in the kernel);
    OpenBLAS run on 2 threads sums it in another order (7e-12 apart on this data), so
    the kernel runs with BLAS on one thread whatever the caller's BLAS setting: the same
    bits with 1 or 2 BLAS threads around it and 1 or 2 numba threads."""
    from threadpoolctl import threadpool_limits

    truth = cs.Empirical(cs.datasets.digits(), heldout=0.2)
    got = []
    for blas in (1, 2):
        for numba_threads in (1, 2):
            threads(numba_threads)
            with threadpool_limits(blas, user_api="blas"):
                got.append(truth.draw_statistics(500, chain_streams(4, 50), exact=True))
    for other in got[1:]:
        np.testing.assert_array_equal(other.mean, got[0].mean)
        np.testing.assert_array_equal(other.scatter, got[0].scatter)


@pytest.mark.parametrize("fitter", [cs.GaussianFit(), cs.PPCAFit(n_components=1)])
def test_statistics_fitters_take_the_exact_path_on_a_data_set(fitter):
    # a data set's real sample is its own rows (exact by definition); the models' draws
    # are then exact too (a Wishart scatter), so "auto" takes the exact path
    truth = moons()
    kw = dict(n_samples=200, generations=3, chains=4, seed=0, metrics=("variance",))
    for policy in (cs.Replace(), cs.Accumulate(), cs.FreshReal(0.3), cs.KeepReal(1.0)):
        sim = cs.simulate(truth, fitter, policy=policy, **kw)
        assert sim.config["sampling"] == "exact"
        explicit = cs.simulate(truth, fitter, policy=policy, sampling="explicit", **kw)
        # generation 1 trains on the same real rows on both paths: the same numbers
        np.testing.assert_allclose(sim.metrics["variance"][1], explicit.metrics["variance"][1],
                                   rtol=1e-12)
    # keeping a share of the real sample needs its first rows: the explicit path
    assert cs.simulate(truth, fitter, policy=cs.KeepReal(0.5), **kw).config["sampling"] == \
        "explicit"
    with pytest.raises(ValueError, match="rows are drawn without replacement"):
        cs.simulate(truth, fitter, policy=cs.KeepReal(0.5), sampling="exact", **kw)


def test_exact_path_on_a_data_set_keeps_the_trace_law():
    # PPCA and the Gaussian fit keep the trace of the sample covariance: under Replace
    # E[tr C_t] = tr C_1 ((n - 1)/n)^(t - 1) given generation 1, on the exact path too.
    # 400 chains: the last generation's mean trace has a standard error of about
    # sd(tr C_t)/20; the tolerance is 5 of them (estimated from the run itself).
    truth = cs.Empirical(cs.datasets.digits(), heldout=0.0)
    n, g = 100, 8
    sim = cs.simulate(truth, cs.PPCAFit(n_components=5), n_samples=n, generations=g,
                      chains=400, seed=1, metrics=("variance",))
    assert sim.config["sampling"] == "exact"
    first, last = sim.metrics["variance"][1], sim.metrics["variance"][g]
    expected = first.mean() * ((n - 1) / n) ** (g - 1)
    se = last.std(ddof=1) / np.sqrt(last.size)
    assert abs(last.mean() - expected) < 5 * se
