"""GaussianMixtureFit: EM against scikit-learn, initialisation, degenerate data, bad input."""

import math

import numba
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import collapse_sim as cs
from collapse_sim._kernels.em import _LOG_2PI, _m_2d_full


def _two_clusters(d, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(-2.0, 1.0, (300, d))
    b = rng.normal(2.0, 0.5, (200, d)) @ np.triu(np.ones((d, d)))
    return np.concatenate([a, b])


def _sklearn_covs(sk, d):
    cov = sk.covariances_
    if sk.covariance_type == "diag":
        return np.stack([np.diag(v) for v in cov])
    if sk.covariance_type == "spherical":
        return np.stack([v * np.eye(d) for v in cov])
    return cov


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("tol", [1e-3, 1e-8])
def test_em_matches_sklearn_from_same_start(d, cov_type, tol):
    x = _two_clusters(d, seed=d)
    w0 = np.array([0.4, 0.6])
    m0 = np.array([[-1.0] * d, [1.0] * d])
    c0 = np.stack([2.0 * np.eye(d), np.eye(d)])
    precisions = {"full": np.linalg.inv(c0), "diag": 1.0 / np.stack([np.diag(c) for c in c0]),
                  "spherical": np.array([0.5, 1.0])}[cov_type]
    sk = SkGaussianMixture(2, covariance_type=cov_type, tol=tol, max_iter=500, reg_covar=1e-6,
                           weights_init=w0, means_init=m0, precisions_init=precisions).fit(x)
    fit = cs.GaussianMixtureFit(2, covariance_type=cov_type, tol=tol, max_iter=500,
                                reg_covar=1e-6)
    ours = fit.fit(x, init_model=cs.GaussianMixture(weights=w0, means=m0, covs=c0))
    assert ours.fit_info["n_iter"][0] == sk.n_iter_  # the same stopping iteration
    np.testing.assert_allclose(ours.weights[0], sk.weights_, rtol=1e-6)
    np.testing.assert_allclose(ours.means[0], sk.means_, rtol=1e-6)
    np.testing.assert_allclose(ours.covs[0], _sklearn_covs(sk, d), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.logpdf(x), sk.score_samples(x), rtol=1e-6)
    np.testing.assert_allclose(ours.fit_info["lower_bound"][0], sk.lower_bound_, rtol=1e-6)


def test_kmeanspp_init_reaches_sklearn_likelihood_in_distribution():
    # Different random streams, same algorithm: on well-separated clusters both find the
    # global optimum, so the mean log-likelihoods agree to EM's tolerance.
    x = _two_clusters(2, seed=5)
    sk = SkGaussianMixture(2, init_params="k-means++", tol=1e-8, random_state=0).fit(x)
    ours = cs.GaussianMixtureFit(2, tol=1e-8).fit(np.broadcast_to(x, (8, *x.shape)), seed=0)
    np.testing.assert_allclose(ours.fit_info["lower_bound"], sk.lower_bound_, rtol=1e-6)
    assert ours.fit_info["converged"].all()


def test_random_init_and_reproducibility(threads):
    x = np.random.default_rng(3).normal(size=(40, 60, 2))
    fit = cs.GaussianMixtureFit(3, init="random", tol=1e-6)
    threads(1)
    a = fit.fit(x, seed=11)
    threads(numba.config.NUMBA_NUM_THREADS)
    b = fit.fit(x, seed=11)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.covs, b.covs)
    c = fit.fit(x, seed=12)
    assert not np.array_equal(a.means, c.means)
    np.testing.assert_allclose(a.weights.sum(axis=1), 1.0)


def test_identical_points_and_empty_components_give_no_nan():
    # All points equal: every component sits on them with covariance reg_covar.
    x = np.full((3, 50, 2), 1.5)
    model = cs.GaussianMixtureFit(3, reg_covar=1e-6).fit(x, seed=0)
    for arr in (model.weights, model.means, model.covs):
        assert np.all(np.isfinite(arr))
    np.testing.assert_allclose(model.covs, np.broadcast_to(1e-6 * np.eye(2), model.covs.shape),
                               rtol=1e-9, atol=1e-20)
    # A component started far from every point loses all its mass: weight ~ 10 eps / n.
    pts = np.random.default_rng(0).normal(size=(1, 100, 1))
    start = cs.GaussianMixture(weights=[0.5, 0.5], means=[[0.0], [1e3]], covs=[[[1.0]], [[1.0]]])
    dead = cs.GaussianMixtureFit(2).fit(pts, init_model=start)
    assert dead.weights[0, 1] < 1e-12
    assert np.all(np.isfinite(dead.means)) and np.all(np.isfinite(dead.covs))
    assert np.all(np.isfinite(dead.logpdf(pts[0])))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_components": 0}, "n_components"), ({"covariance_type": "tied"}, "covariance_type"),
     ({"max_iter": 0}, "max_iter"), ({"tol": 0.0}, "tol"), ({"reg_covar": 0.0}, "reg_covar"),
     ({"reg_covar": float("nan")}, "reg_covar"), ({"init": "k-means"}, "init")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cs.GaussianMixtureFit(**kwargs)


def test_bad_data():
    fit = cs.GaussianMixtureFit(3)
    with pytest.raises(ValueError, match="n_components"):
        fit.fit(np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match="finite"):
        fit.fit(np.full((1, 5, 1), np.nan))
    with pytest.raises(TypeError, match="n_components"):
        cs.GaussianMixtureFit(2.5)


@pytest.mark.parametrize("variant", ["_em_iteration_2d_full", "_em_iteration_2d_full_k2"])
def test_specialised_2d_full_iteration_equals_general_iteration(variant):
    from collapse_sim._kernels import em

    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]]) + 3.0
    x[0] = [60.0, -40.0]  # far out: one responsibility underflows to 0
    states = []
    for _ in range(2):
        w = np.array([0.3, 0.7])
        m = np.array([[2.0, 3.0], [4.0, 3.5]])
        c = np.stack([np.eye(2), [[1.0, 0.3], [0.3, 0.5]]])
        chol = np.linalg.cholesky(c)
        states.append((w, m, c, chol))
    scratch = [np.empty((2, 2)), np.empty(2), np.empty((2, 2)), np.empty((2, 2, 2))]
    (w1, m1, c1, l1), (w2, m2, c2, l2) = states
    b1 = em._em_iteration(x, em.FULL, 1e-6, w1, m1, c1, l1, *scratch,
                          np.empty((em.BLOCK, 2)), np.empty((2, em.BLOCK)))
    extra = ((np.empty((3, em.BLOCK)),) if variant.endswith("k2")
             else (np.empty((em.BLOCK, 2)), np.empty((2, em.BLOCK))))
    b2 = getattr(em, variant)(x, 1e-6, w2, m2, c2, l2, *extra)
    assert b1 == pytest.approx(b2, rel=1e-12)
    for a, b in ((w1, w2), (m1, m2), (c1, c2)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@numba.njit
def _k2_one_loop(x, reg_covar, weights, means, covs, chol):
    """The two-component 2-D iteration as one loop over the points (the library's form
    before it went in blocks): the reference the blocked form must equal bit for bit."""
    n = x.shape[0]
    lc0 = ((math.log(weights[0]) if weights[0] > 0.0 else -np.inf)
           - (math.log(chol[0, 0, 0]) + math.log(chol[0, 1, 1])) - _LOG_2PI)
    lc1 = ((math.log(weights[1]) if weights[1] > 0.0 else -np.inf)
           - (math.log(chol[1, 0, 0]) + math.log(chol[1, 1, 1])) - _LOG_2PI)
    i00, i01, l0 = 1.0 / chol[0, 0, 0], 1.0 / chol[0, 1, 1], chol[0, 1, 0]
    i10, i11, l1 = 1.0 / chol[1, 0, 0], 1.0 / chol[1, 1, 1], chol[1, 1, 0]
    m00, m01, m10, m11 = means[0, 0], means[0, 1], means[1, 0], means[1, 1]
    n0 = a00 = a01 = q000 = q010 = q011 = 0.0
    n1 = a10 = a11 = q100 = q110 = q111 = 0.0
    total = 0.0
    prod = 1.0
    blocked = 0
    for i in range(n):
        x0 = x[i, 0]
        x1 = x[i, 1]
        d00 = x0 - m00
        d01 = x1 - m01
        y0 = d00 * i00
        y1 = (d01 - l0 * y0) * i01
        v0 = lc0 - 0.5 * (y0 * y0 + y1 * y1)
        d10 = x0 - m10
        d11 = x1 - m11
        z0 = d10 * i10
        z1 = (d11 - l1 * z0) * i11
        v1 = lc1 - 0.5 * (z0 * z0 + z1 * z1)
        if v0 >= v1:
            e = math.exp(v1 - v0)
            total += v0
            inv = 1.0 / (1.0 + e)
            r0 = inv
            r1 = e * inv
        else:
            e = math.exp(v0 - v1)
            total += v1
            inv = 1.0 / (1.0 + e)
            r0 = e * inv
            r1 = inv
        prod *= 1.0 + e
        blocked += 1
        if blocked == 64:
            total += math.log(prod)
            prod = 1.0
            blocked = 0
        n0 += r0
        a00 += r0 * d00
        a01 += r0 * d01
        q000 += r0 * d00 * d00
        q010 += r0 * d01 * d00
        q011 += r0 * d01 * d01
        n1 += r1
        a10 += r1 * d10
        a11 += r1 * d11
        q100 += r1 * d10 * d10
        q110 += r1 * d11 * d10
        q111 += r1 * d11 * d11
    total += math.log(prod)
    w0 = _m_2d_full(0, n0, a00, a01, q000, q010, q011, reg_covar, means, covs)
    w1 = _m_2d_full(1, n1, a10, a11, q100, q110, q111, reg_covar, means, covs)
    weights[0] = w0 / (w0 + w1)
    weights[1] = w1 / (w0 + w1)
    return total / n


@pytest.mark.parametrize("n", [1, 37, 64, 128, 1000, 1001])
def test_blocked_k2_iteration_is_the_one_loop_iteration_bit_for_bit(n):
    # Blocks of 64 points, three loops each: the same operations in the same order as
    # one loop over the points, so every output must be the same bits. Cases: sizes below,
    # at and across the block length; a far point (a responsibility underflows to 0);
    # ties between the components (v0 == v1: both forms pick component 0); a component
    # with weight 0 (log-joint -inf) in the second case.
    from collapse_sim._kernels import em

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]])
    x[0] = [60.0, -40.0]
    cases = [
        (np.array([0.3, 0.7]), np.array([[-0.5, 0.2], [0.8, -0.1]]),
         np.stack([np.eye(2), [[1.0, 0.3], [0.3, 0.5]]])),
        (np.array([0.0, 1.0]), np.array([[0.0, 0.0], [0.1, 0.0]]),
         np.stack([np.eye(2), np.eye(2)])),
        (np.array([0.5, 0.5]), np.array([[0.0, 0.0], [0.0, 0.0]]),
         np.stack([np.eye(2), np.eye(2)])),  # identical components: every point ties
    ]
    for w, m, c in cases:
        chol = np.linalg.cholesky(c)
        ref = [w.copy(), m.copy(), c.copy()]
        new = [w.copy(), m.copy(), c.copy()]
        b_ref = _k2_one_loop(x, 1e-6, *ref, chol)
        b_new = em._em_iteration_2d_full_k2(x, 1e-6, *new, chol, np.empty((3, em.BLOCK)))
        assert np.array_equal(np.float64(b_ref), np.float64(b_new), equal_nan=True)
        for a, b in zip(ref, new, strict=True):
            assert np.array_equal(a, b, equal_nan=True)


@numba.njit
def _general_one_loop(x, cov_type, reg_covar, weights, means, covs, chol):
    """The general iteration as one loop over the points (the library's form before it
    went in blocks): the reference the blocked form must equal bit for bit."""
    n, d = x.shape
    k_count = weights.shape[0]
    y = np.empty(d)
    logc = np.empty(k_count)
    vals = np.empty(k_count)
    inv_diag = np.empty((k_count, d))
    shift = np.empty((k_count, d))
    nk = np.zeros(k_count)
    sx = np.zeros((k_count, d))
    sxx = np.zeros((k_count, d, d))
    for k in range(k_count):
        acc = 0.0
        for j in range(d):
            acc += math.log(chol[k, j, j])
            inv_diag[k, j] = 1.0 / chol[k, j, j]
        logc[k] = (math.log(weights[k]) if weights[k] > 0.0 else -np.inf) - acc - 0.5 * d * _LOG_2PI
        for a in range(d):
            shift[k, a] = means[k, a]
    total = 0.0
    prod = 1.0
    blocked = 0
    for i in range(n):
        top = -np.inf
        arg = 0
        for k in range(k_count):
            maha = 0.0
            for a in range(d):
                acc = x[i, a] - means[k, a]
                for b in range(a):
                    acc -= chol[k, a, b] * y[b]
                y[a] = acc * inv_diag[k, a]
                maha += y[a] * y[a]
            vals[k] = logc[k] - 0.5 * maha
            if vals[k] > top:
                top = vals[k]
                arg = k
        acc = 0.0
        for k in range(k_count):
            vals[k] = 1.0 if k == arg else math.exp(vals[k] - top)
            acc += vals[k]
        total += top
        prod *= acc
        blocked += 1
        if blocked == 64:
            total += math.log(prod)
            prod = 1.0
            blocked = 0
        inv = 1.0 / acc
        for k in range(k_count):
            r = vals[k] * inv
            if r == 0.0:
                continue
            nk[k] += r
            for a in range(d):
                da = x[i, a] - shift[k, a]
                sx[k, a] += r * da
                if cov_type == 0:
                    for b in range(a + 1):
                        sxx[k, a, b] += r * da * (x[i, b] - shift[k, b])
                else:
                    sxx[k, a, a] += r * da * da
    total += math.log(prod)
    wsum = 0.0
    for k in range(k_count):
        mass = nk[k] + 10.0 * np.finfo(np.float64).eps
        for a in range(d):
            means[k, a] = shift[k, a] + sx[k, a] / mass
        for a in range(d):
            da = sx[k, a] / mass
            for b in range(a + 1):
                v = sxx[k, a, b] / mass - da * (sx[k, b] / mass) if cov_type == 0 or a == b else 0.0
                covs[k, a, b] = v
                covs[k, b, a] = v
        if cov_type == 2:
            avg = 0.0
            for a in range(d):
                avg += covs[k, a, a]
            avg /= d
            for a in range(d):
                covs[k, a, a] = avg
        for a in range(d):
            covs[k, a, a] += reg_covar
        weights[k] = mass
        wsum += mass
    for k in range(k_count):
        weights[k] /= wsum
    return total / n


@pytest.mark.parametrize("d,k_count,cov_type,n", [
    (1, 2, 0, 37), (1, 4, 0, 200), (3, 2, 0, 64), (3, 3, 1, 129), (2, 3, 2, 200)])
def test_blocked_general_iteration_is_the_one_loop_iteration_bit_for_bit(d, k_count, cov_type,
                                                                        n):
    # The general E/M step in blocks of 64 points (three loops each) against its one-loop
    # form: same operations, same order, so the same bits (full, diagonal, spherical; a
    # far point whose responsibilities underflow; one component with weight 0).
    from collapse_sim._kernels import em

    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d))
    x[0] = 50.0
    w = np.full(k_count, 1.0 / (k_count - 1))
    w[-1] = 0.0
    m = rng.normal(size=(k_count, d))
    c = np.stack([np.eye(d) * (0.4 + 0.3 * k) for k in range(k_count)])
    chol = np.linalg.cholesky(c)
    ref = [w.copy(), m.copy(), c.copy()]
    new = [w.copy(), m.copy(), c.copy()]
    b_ref = _general_one_loop(x, cov_type, 1e-6, *ref, chol)
    scratch = (np.empty((k_count, d)), np.empty(k_count), np.empty((k_count, d)),
               np.empty((k_count, d, d)), np.empty((em.BLOCK, k_count)), np.empty((2, em.BLOCK)))
    b_new = em._em_iteration(x, cov_type, 1e-6, *new, chol, *scratch)
    assert np.array_equal(np.float64(b_ref), np.float64(b_new))
    for a, b in zip(ref, new, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cov_type", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 63, 64, 300])
def test_1d_two_component_iteration_is_the_general_iteration_bit_for_bit(cov_type, n):
    # The 1-D two-component iteration repeats the general one's operations on scalars:
    # the same bits for every covariance type (they coincide in 1-D); cases with a far
    # point (a responsibility underflows), a dead component, equal components (ties).
    from collapse_sim._kernels import em

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 1))
    x[0] = 40.0
    for w, m, v in (([0.3, 0.7], [-0.4, 0.9], [0.5, 1.7]), ([0.0, 1.0], [0.0, 0.2], [1.0, 1.0]),
                    ([0.5, 0.5], [0.1, 0.1], [1.0, 1.0])):
        w, m = np.array(w), np.array(m)[:, None]
        c = np.array(v)[:, None, None]
        chol = np.sqrt(c)
        gen = [w.copy(), m.copy(), c.copy()]
        spec = [w.copy(), m.copy(), c.copy()]
        scratch = (np.empty((2, 1)), np.empty(2), np.empty((2, 1)), np.empty((2, 1, 1)),
                   np.empty((em.BLOCK, 2)), np.empty((2, em.BLOCK)))
        b_gen = em._em_iteration(x, cov_type, 1e-6, *gen, chol, *scratch)
        b_spec = em._em_iteration_1d_k2(x, 1e-6, *spec, chol, np.empty((3, em.BLOCK)))
        assert np.array_equal(np.float64(b_gen), np.float64(b_spec))
        for a, b in zip(gen, spec, strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("d,cov_type", [(1, 0), (2, 0), (3, 1), (3, 2)])
def test_centre_m_step_is_the_one_hot_m_step_bit_for_bit(d, cov_type):
    # The k-means++ start's M-step from its K centres alone must give the bits of the
    # M-step over one-hot responsibilities on all n points (centres repeated, a signed
    # zero among the coordinates).
    from collapse_sim._kernels import em

    rng = np.random.default_rng(d * 10 + cov_type)
    x = rng.normal(size=(50, d)) * 3.0
    x[7, 0] = -0.0
    for centres in ([3, 41], [7, 7, 12], [0]):
        centres = np.array(centres)
        k_count = centres.size
        resp = np.zeros((50, k_count))
        resp[centres, np.arange(k_count)] = 1.0
        dense = [np.empty(k_count), np.empty((k_count, d)), np.empty((k_count, d, d))]
        sparse = [np.empty(k_count), np.empty((k_count, d)), np.empty((k_count, d, d))]
        em._m_step(x, resp, cov_type, 1e-6, *dense)
        em._m_step_centres(x, centres, cov_type, 1e-6, *sparse)
        for a, b in zip(dense, sparse, strict=True):
            assert np.array_equal(a.view(np.int64), b.view(np.int64))  # signed zeros too



@numba.njit
def _2d_full_one_loop(x, reg_covar, weights, means, covs, chol):
    """The 2-D full-covariance iteration as one loop over the points (the library's form
    before it went in blocks): the reference the blocked form must equal bit for bit."""
    n = x.shape[0]
    k_count = weights.shape[0]
    logc = np.empty(k_count)
    vals = np.empty(k_count)
    i00 = np.empty(k_count)
    i11 = np.empty(k_count)
    l10 = np.empty(k_count)
    m0 = np.empty(k_count)
    m1 = np.empty(k_count)
    n_k = np.zeros(k_count)
    a0 = np.zeros(k_count)
    a1 = np.zeros(k_count)
    q00 = np.zeros(k_count)
    q10 = np.zeros(k_count)
    q11 = np.zeros(k_count)
    for k in range(k_count):
        logc[k] = ((math.log(weights[k]) if weights[k] > 0.0 else -np.inf)
                   - (math.log(chol[k, 0, 0]) + math.log(chol[k, 1, 1])) - _LOG_2PI)
        i00[k] = 1.0 / chol[k, 0, 0]
        i11[k] = 1.0 / chol[k, 1, 1]
        l10[k] = chol[k, 1, 0]
        m0[k] = means[k, 0]
        m1[k] = means[k, 1]
    total = 0.0
    prod = 1.0
    blocked = 0
    for i in range(n):
        x0 = x[i, 0]
        x1 = x[i, 1]
        top = -np.inf
        arg = 0
        for k in range(k_count):
            y0 = (x0 - m0[k]) * i00[k]
            y1 = ((x1 - m1[k]) - l10[k] * y0) * i11[k]
            v = logc[k] - 0.5 * (y0 * y0 + y1 * y1)
            vals[k] = v
            if v > top:
                top = v
                arg = k
        acc = 0.0
        for k in range(k_count):
            e = 1.0 if k == arg else math.exp(vals[k] - top)
            vals[k] = e
            acc += e
        total += top
        prod *= acc
        blocked += 1
        if blocked == 64:
            total += math.log(prod)
            prod = 1.0
            blocked = 0
        inv = 1.0 / acc
        for k in range(k_count):
            r = vals[k] * inv
            if r == 0.0:
                continue
            d0 = x0 - m0[k]
            d1 = x1 - m1[k]
            n_k[k] += r
            a0[k] += r * d0
            a1[k] += r * d1
            q00[k] += r * d0 * d0
            q10[k] += r * d1 * d0
            q11[k] += r * d1 * d1
    total += math.log(prod)
    wsum = 0.0
    for k in range(k_count):
        weights[k] = _m_2d_full(k, n_k[k], a0[k], a1[k], q00[k], q10[k], q11[k], reg_covar,
                                means, covs)
        wsum += weights[k]
    for k in range(k_count):
        weights[k] /= wsum
    return total / n


@pytest.mark.parametrize("k_count,n", [(2, 37), (3, 64), (4, 1000), (3, 129)])
def test_blocked_2d_full_iteration_is_the_one_loop_iteration_bit_for_bit(k_count, n):
    # The 2-D full-covariance iteration (any K) in blocks of 64 points against its one-loop
    # form: the same bits (a far point whose responsibilities underflow, a dead component).
    from collapse_sim._kernels import em

    rng = np.random.default_rng(n + k_count)
    x = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]])
    x[0] = [60.0, -40.0]
    w = np.full(k_count, 1.0 / (k_count - 1))
    w[-1] = 0.0
    m = rng.normal(size=(k_count, 2))
    c = np.stack([[[1.0 + 0.2 * k, 0.3], [0.3, 0.5 + 0.1 * k]] for k in range(k_count)])
    chol = np.linalg.cholesky(c)
    ref = [w.copy(), m.copy(), c.copy()]
    new = [w.copy(), m.copy(), c.copy()]
    b_ref = _2d_full_one_loop(x, 1e-6, *ref, chol)
    b_new = em._em_iteration_2d_full(x, 1e-6, *new, chol, np.empty((em.BLOCK, k_count)),
                                     np.empty((2, em.BLOCK)))
    assert np.array_equal(np.float64(b_ref), np.float64(b_new))
    for a, b in zip(ref, new, strict=True):
        assert np.array_equal(a.view(np.int64), b.view(np.int64))
