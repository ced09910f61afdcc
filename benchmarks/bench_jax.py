r"""GMM EM: ``simulate`` against the strongest JAX peer, same process, interleaved rounds.

Setting (issue 17): recursive refitting of a 2-component, 2-D Gaussian mixture with
full covariances, ``n = 1000`` points per generation, truth
``GaussianMixture(weights=[0.5, 0.5], means=[[-2, 0], [2, 0]], covs=[I, I])`` (as in
``bench_threads``), ``GaussianMixtureFit(2, tol=1e-3)``: every generation samples ``n``
points from each chain's current mixture and fits a new one by EM started afresh.

The JAX peer (float64, ``jax_enable_x64``) does the same job the way a JAX user would:

* **per chain**: k-means++ seeding as scikit-learn's ``init_params="k-means++"`` (the
  first centre uniform, then greedy with ``2 + floor(log K)`` local trials drawn in
  proportion to the squared distance), one-hot responsibilities on the centres and an
  M-step (so the start is the two centres with covariances ``reg_covar * I``; this is
  collapse_sim's default ``init="kmeans++"``); then EM with scikit-learn's updates
  (``N_k = sum_i r_ik + 10 eps``, ``reg_covar = 1e-6`` on the diagonal, weights
  renormalised) in a ``lax.while_loop`` that stops after the first iteration whose mean
  log-likelihood (measured in its E-step) changed by less than ``tol = 1e-3``, or after
  ``max_iter = 100`` iterations (scikit-learn's and collapse_sim's rule), the E-step's
  log-densities from Cholesky factors and a ``logsumexp`` over components; then ``n``
  points from the fitted mixture (labels by ``jax.random.categorical``, points
  ``mu + L z``) and the fitted mixture's total variance ``tr Cov``;
* **over chains**: ``jax.lax.map`` (chains one after another, each with its own
  ``while_loop``) or ``jax.vmap`` (a batched ``while_loop`` that runs until the last
  chain has converged, masking the others);
* **the algebra**: scikit-learn's E-step as written (``jnp.linalg.cholesky``,
  ``solve_triangular``, ``einsum`` over ``(K, N, D)`` arrays: what a JAX user writes
  first), or the iteration written out on ``(K, N)`` arrays of the two coordinates with
  the 2 x 2 Cholesky factors in closed form, as our kernel does ("elementwise": XLA
  fuses it into a few loops; the same updates, equal to rounding);
* **batching**: ``lax.map`` one chain at a time or ``batch_size=5`` chains vmapped at a
  time;
* **the whole generation jitted** (one compiled call per generation; a Python loop over
  generations, the state ``(weights, means, covs)`` staying on the device). Compilation
  is excluded by warm-up calls and reported in its own row.

The variants in :data:`PEERS` (quick mode: the first two) are all timed, and the
fastest is the baseline of the ratio (the strongest peer).

What differs from collapse_sim: the random streams (JAX's threefry keys against our
xoshiro256++ streams), so results agree in distribution, not bit for bit; and the
arithmetic of the E-step (scikit-learn's order of operations against our fused single
pass), equal to rounding.

Our side: ``cs.simulate(truth, cs.GaussianMixtureFit(2, tol=1e-3), n_samples=1000,
generations=G, chains=C, seed=0)`` with ``metrics=("variance",)`` (the work the peer
does) and with the default metrics (what a user gets), two rows.

Timing as in ``bench_categorical``: at least :data:`ROUNDS` interleaved rounds, the
job order rotated every round; a row's ratio is the median of the per-round ratios
(peer time / our time, above 1 = we are faster) with their min–max. The same runs
again with one CPU-bound background process (started and stopped here) unless quick.

Correctness (``AssertionError`` otherwise): chains are independent and identically
distributed on each side, so the mean over chains of the total variance after the last
generation, and of the generation-1 EM log-likelihood (scikit-learn's ``lower_bound_``),
are compared between JAX and ours by a two-sample z statistic: the difference of the
means over the standard error ``sqrt(s_a^2/C + s_b^2/C)`` estimated from the spread over
chains; it must stay within :data:`Z_MAX`.

When ``import jax`` fails, :func:`run` returns no rows and prints why.

Standalone: ``python -m benchmarks.bench_jax [--quick] [--repeats R]
[--load {off,on,both}]``; in the suite: ``python -m benchmarks`` (suite ``"jax"``).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

import collapse_sim as cs

from ._report import suite_main, under_load
from .bench_categorical import interleaved, per_round, ratio_stats

N, D, K = 1000, 2, 2
TOL, MAX_ITER, REG_COVAR = 1e-3, 100, 1e-6
#: chains x generations (full mode: a few seconds per round on this machine).
CHAINS, GENERATIONS = 50, 20
QUICK_SIZES = (20, 5)
ROUNDS = 5
GOAL = 2.5
#: Largest accepted |difference of means| in standard errors (correctness check).
Z_MAX = 5.0


def truth() -> cs.GaussianMixture:
    return cs.GaussianMixture(weights=[0.5, 0.5], means=[[-2.0, 0.0], [2.0, 0.0]],
                              covs=[np.eye(2), np.eye(2)])


def ours(chains: int, generations: int, metrics) -> np.ndarray:
    """Total variance ``(G + 1, chains)`` of ``simulate`` as a user calls it."""
    sim = cs.simulate(truth(), cs.GaussianMixtureFit(K, tol=TOL), n_samples=N,
                      generations=generations, chains=chains, seed=0, metrics=metrics,
                      progress=False)
    return sim.metrics["variance"]


def ours_bound(chains: int, seed: int = 0) -> np.ndarray:
    """Generation-1 EM lower bounds of ``chains`` chains fitted to fresh truth samples
    (what ``simulate``'s first generation does; its models are not kept by default)."""
    streams = cs.sampling.chain_streams(seed, chains)
    x = cs.sampling.mixture_points(truth(), N, streams)
    model = cs.GaussianMixtureFit(K, tol=TOL).fit_chains(x, streams=streams)
    return np.asarray(model.fit_info["lower_bound"])


# ---------------------------------------------------------------------------------------------
# the JAX peer


def make_peer(jax, mode: str, algebra: str = "lapack", batch_size: int | None = None):
    """A jitted ``generation(keys, w, mu, cov) -> (w, mu, cov, tr_cov, bound, n_iter)``.

    ``mode``: ``"map"`` (``lax.map`` over chains, ``batch_size`` chains vmapped at a
    time if given) or ``"vmap"``. ``algebra``: ``"lapack"``, scikit-learn's E-step
    with ``jnp.linalg.cholesky``, ``solve_triangular`` and ``einsum`` over ``(K, N, D)``
    arrays; ``"closed"``, the same with the 2 x 2 Cholesky factors and their inverses
    written out (:math:`l_{00}=\\sqrt{a_{00}}`, :math:`l_{10}=a_{10}/l_{00}`,
    :math:`l_{11}=\\sqrt{a_{11}-l_{10}^2}`), as our kernel does; ``"elementwise"``,
    the whole EM iteration on ``(K, N)`` arrays of the two coordinates (no matrix
    products: XLA fuses it into a few loops), the same updates.
    """
    closed_form = algebra != "lapack"
    jnp = jax.numpy
    lax = jax.lax
    eps10 = 10.0 * float(np.finfo(np.float64).eps)
    trials = 2 + int(math.log(K))
    eye = jnp.eye(D)

    def cholesky(cov):
        if not closed_form:
            return jnp.linalg.cholesky(cov)
        l00 = jnp.sqrt(cov[:, 0, 0])
        l10 = cov[:, 1, 0] / l00
        l11 = jnp.sqrt(cov[:, 1, 1] - l10 * l10)
        zero = jnp.zeros_like(l00)
        return jnp.stack([jnp.stack([l00, zero], -1), jnp.stack([l10, l11], -1)], -2)

    def precision_cholesky(cov):
        """``(L^{-1})^T`` with ``L L^T = cov``: scikit-learn's ``precisions_cholesky_``."""
        chol = cholesky(cov)
        if not closed_form:
            return jnp.swapaxes(jax.scipy.linalg.solve_triangular(
                chol, jnp.broadcast_to(eye, cov.shape), lower=True), 1, 2)
        i00, i11 = 1.0 / chol[:, 0, 0], 1.0 / chol[:, 1, 1]
        i10 = -chol[:, 1, 0] * i00 * i11
        zero = jnp.zeros_like(i00)
        return jnp.stack([jnp.stack([i00, i10], -1), jnp.stack([zero, i11], -1)], -2)

    def sample(key, w, mu, cov):
        kl, kz = jax.random.split(key)
        labels = jax.random.categorical(kl, jnp.log(w), shape=(N,))
        chol = cholesky(cov)  # (K, D, D)
        z = jax.random.normal(kz, (N, D))
        return mu[labels] + jnp.einsum("nab,nb->na", chol[labels], z)

    def m_step(x, resp):
        nk = resp.sum(axis=0) + eps10  # (K,)
        mu = (resp.T @ x) / nk[:, None]
        diff = x[None, :, :] - mu[:, None, :]  # (K, N, D)
        cov = jnp.einsum("nk,kna,knb->kab", resp, diff, diff) / nk[:, None, None]
        cov = cov + REG_COVAR * eye
        return nk / nk.sum(), mu, cov

    def e_step(x, w, mu, cov):
        """Mean log-likelihood and responsibilities (scikit-learn's ``_e_step``)."""
        prec = precision_cholesky(cov)  # (K, D, D)
        log_det = jnp.sum(jnp.log(jnp.diagonal(prec, axis1=1, axis2=2)), axis=1)
        y = jnp.einsum("nd,kde->kne", x, prec) - jnp.einsum("kd,kde->ke", mu, prec)[:, None]
        log_prob = -0.5 * (D * math.log(2 * math.pi) + jnp.sum(y * y, axis=2)) + log_det[:, None]
        weighted = log_prob.T + jnp.log(w)  # (N, K)
        norm = jax.scipy.special.logsumexp(weighted, axis=1)
        return norm.mean(), jnp.exp(weighted - norm[:, None])

    def kmeans_pp(key, x):
        """Indices of greedy k-means++ centres (scikit-learn's ``_kmeans_plusplus``)."""
        k0, key = jax.random.split(key)
        first = jax.random.randint(k0, (), 0, N)
        closest = jnp.sum((x - x[first]) ** 2, axis=1)
        centres = [first]
        for _ in range(1, K):
            key, sub = jax.random.split(key)
            targets = jax.random.uniform(sub, (trials,)) * closest.sum()
            ids = jnp.minimum(jnp.searchsorted(jnp.cumsum(closest), targets), N - 1)
            dists = jnp.minimum(closest[None], jnp.sum((x[None] - x[ids][:, None]) ** 2, axis=2))
            best = jnp.argmin(dists.sum(axis=1))
            centres.append(ids[best])
            closest = dists[best]
        return jnp.stack(centres)

    def fit(key, x):
        centres = kmeans_pp(key, x)
        resp = jnp.zeros((N, K)).at[centres, jnp.arange(K)].set(1.0)
        w, mu, cov = m_step(x, resp)

        def cond(state):
            it, done = state[0], state[1]
            return (it < MAX_ITER) & ~done

        def body(state):
            it, _, bound, w, mu, cov = state
            new, resp = e_step(x, w, mu, cov)
            w, mu, cov = m_step(x, resp)
            return it + 1, jnp.abs(new - bound) < TOL, new, w, mu, cov

        it, _, bound, w, mu, cov = lax.while_loop(
            cond, body, (jnp.int32(0), jnp.bool_(False), -jnp.inf, w, mu, cov))
        return w, mu, cov, bound, it

    def fit_elementwise(key, x):
        """:func:`fit` with the EM iteration on ``(K, N)`` arrays (``D = 2`` only)."""
        centres = kmeans_pp(key, x)
        resp = jnp.zeros((N, K)).at[centres, jnp.arange(K)].set(1.0)
        w, mu, cov = m_step(x, resp)
        x0, x1 = x[:, 0][None], x[:, 1][None]  # (1, N)

        def body(state):
            it, _, bound, w, m0, m1, c00, c10, c11 = state
            l00 = jnp.sqrt(c00)
            l10 = c10 / l00
            l11 = jnp.sqrt(c11 - l10 * l10)
            y0 = (x0 - m0[:, None]) / l00[:, None]
            y1 = ((x1 - m1[:, None]) - l10[:, None] * y0) / l11[:, None]
            logc = jnp.log(w) - jnp.log(l00) - jnp.log(l11) - math.log(2 * math.pi)
            weighted = logc[:, None] - 0.5 * (y0 * y0 + y1 * y1)  # (K, N)
            norm = jax.scipy.special.logsumexp(weighted, axis=0)
            r = jnp.exp(weighted - norm[None])
            nk = r.sum(axis=1) + eps10
            m0 = (r * x0).sum(axis=1) / nk
            m1 = (r * x1).sum(axis=1) / nk
            d0, d1 = x0 - m0[:, None], x1 - m1[:, None]
            c00 = (r * d0 * d0).sum(axis=1) / nk + REG_COVAR
            c10 = (r * d1 * d0).sum(axis=1) / nk
            c11 = (r * d1 * d1).sum(axis=1) / nk + REG_COVAR
            new = norm.mean()
            return (it + 1, jnp.abs(new - bound) < TOL, new, nk / nk.sum(), m0, m1, c00, c10,
                    c11)

        def cond(state):
            return (state[0] < MAX_ITER) & ~state[1]

        it, _, bound, w, m0, m1, c00, c10, c11 = lax.while_loop(
            cond, body, (jnp.int32(0), jnp.bool_(False), -jnp.inf, w, mu[:, 0], mu[:, 1],
                         cov[:, 0, 0], cov[:, 1, 0], cov[:, 1, 1]))
        cov = jnp.stack([jnp.stack([c00, c10], -1), jnp.stack([c10, c11], -1)], -2)
        return w, jnp.stack([m0, m1], -1), cov, bound, it

    def one_chain(key, w, mu, cov):
        ks, kf = jax.random.split(key)
        fitter = fit_elementwise if algebra == "elementwise" else fit
        w, mu, cov, bound, it = fitter(kf, sample(ks, w, mu, cov))
        m = w @ mu
        total = jnp.sum(w @ jnp.diagonal(cov, axis1=1, axis2=2)) \
            + jnp.sum(w @ (mu * mu)) - m @ m  # tr of the mixture's covariance
        return w, mu, cov, total, bound, it

    if mode == "map":
        def generation(keys, w, mu, cov):
            return lax.map(lambda a: one_chain(*a), (keys, w, mu, cov), batch_size=batch_size)
    elif mode == "vmap":
        generation = jax.vmap(one_chain)
    else:
        raise ValueError(f"mode must be 'map' or 'vmap', got {mode!r}")
    return jax.jit(generation)


def peer_run(jax, step, chains: int, generations: int, seed: int = 0):
    """Total variance ``(G, chains)`` (generations 1..G) and generation-1 bounds."""
    jnp = jax.numpy
    t = truth()
    w = jnp.broadcast_to(jnp.asarray(t.weights[0]), (chains, K))
    mu = jnp.broadcast_to(jnp.asarray(t.means[0]), (chains, K, D))
    cov = jnp.broadcast_to(jnp.asarray(t.covs[0]), (chains, K, D, D))
    key = jax.random.PRNGKey(seed)
    totals, bound1 = [], None
    for g in range(generations):
        key, sub = jax.random.split(key)
        w, mu, cov, total, bound, _ = step(jax.random.split(sub, chains), w, mu, cov)
        totals.append(total)
        if g == 0:
            bound1 = bound
    return np.asarray(jnp.stack(totals)), np.asarray(bound1)


# ---------------------------------------------------------------------------------------------
# correctness


def _z(a: np.ndarray, b: np.ndarray) -> float:
    se = math.hypot(a.std(ddof=1) / math.sqrt(a.size), b.std(ddof=1) / math.sqrt(b.size))
    return abs(a.mean() - b.mean()) / se if se > 0 else (0.0 if a.mean() == b.mean() else np.inf)


def check_agreement(var_ours: np.ndarray, var_jax: np.ndarray, b_ours: np.ndarray,
                    b_jax: np.ndarray) -> str:
    """Assert the mean last-generation total variance and the mean generation-1 lower bound
    agree between JAX and ours within ``Z_MAX`` standard errors (the SE from the spread over
    chains of each side, the chains being i.i.d.)."""
    z_var, z_b = _z(var_ours, var_jax), _z(b_ours, b_jax)
    text = (f"last-gen mean total variance ours {var_ours.mean():.4f}±"
            f"{var_ours.std(ddof=1) / math.sqrt(var_ours.size):.4f} vs JAX {var_jax.mean():.4f}±"
            f"{var_jax.std(ddof=1) / math.sqrt(var_jax.size):.4f} (|z| {z_var:.1f}); gen-1 mean "
            f"log-lik ours {b_ours.mean():.4f} vs JAX {b_jax.mean():.4f} (|z| {z_b:.1f}; "
            f"{b_ours.size} chains each); both <= {Z_MAX:g}")
    assert z_var <= Z_MAX and z_b <= Z_MAX, "jax: ours and the JAX peer disagree: " + text
    return text


# ---------------------------------------------------------------------------------------------
# measurements


def _import_jax():
    try:
        import jax
    except ImportError as exc:
        return None, str(exc)
    jax.config.update("jax_enable_x64", True)
    return jax, None


#: The JAX variants timed: name -> ``make_peer`` arguments (quick mode: the first two).
PEERS = {"JAX lax.map, elementwise": ("map", "elementwise"),
         "JAX lax.map": ("map", "lapack"),
         "JAX lax.map(batch_size=5), elementwise": ("map", "elementwise", 5),
         "JAX vmap, elementwise": ("vmap", "elementwise")}


def measure(jax, steps: dict, sizes, rounds: int, tag: str = "") -> list[dict]:
    chains, g = sizes
    ours_jobs = [("ours, variance only", lambda: ours(chains, g, ("variance",))),
                 ("ours, default metrics", lambda: ours(chains, g, None))]
    peer_jobs = [(name, lambda step=step: peer_run(jax, step, chains, g)[0])
                 for name, step in steps.items()]
    jobs = [ours_jobs[0], peer_jobs[0], ours_jobs[1], *peer_jobs[1:]]
    load_before = os.getloadavg()[0]
    times, outputs = interleaved(jobs, rounds)
    load_after = os.getloadavg()[0]
    t = {name: per_round(times[name]) for name, _ in jobs}
    # the fastest variant by median time (choosing the best of several noisy medians
    # favours the peer slightly: the ratio errs on the side of JAX)
    best = min(steps, key=lambda name: np.median(t[name]))
    check = check_agreement(outputs["ours, variance only"][-1], outputs[best][-1],
                            ours_bound(chains), peer_run(jax, steps[best], chains, 1)[1])
    peers = ", ".join(f"{name} {np.median(t[name]):.3f} s" for name in steps)
    size = (f"{chains} chains x {g} gens x n={N}, 2-D, K={K}, tol={TOL:g}; {rounds} interleaved "
            f"rounds; load avg {load_before:.1f}->{load_after:.1f}; {peers}")
    rows = []
    for name, _ in ours_jobs:
        med, lo, hi = ratio_stats(t[best], t[name])
        rows.append({
            "case": f"{tag}GMM EM {name} vs {best}", "ours_s": float(np.median(t[name])),
            "baseline": f"{best} over chains + while_loop EM, float64, jitted generation",
            "baseline_s": float(np.median(t[best])), "ratio": med, "goal": GOAL,
            "ratio_min": lo, "ratio_max": hi, "rounds": rounds,
            "note": f"per-round ratio {lo:.2f}-{hi:.2f}x (median of rounds); {size}"})
    rows[0]["note"] += "; " + check
    return rows


def _steps(jax, chains: int, quick: bool = False) -> tuple[dict, float, float]:
    """Jitted generations of every :data:`PEERS` variant, warmed up at ``chains``;
    (steps, JAX compile + first-call seconds, our warm-up seconds)."""
    start = time.perf_counter()
    names = list(PEERS)[:2] if quick else list(PEERS)  # quick: ~5 s of compiling each
    steps = {name: make_peer(jax, *PEERS[name]) for name in names}
    for step in steps.values():
        peer_run(jax, step, chains, 2)  # compiles for this chain count
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for metrics in (("variance",), None):
        ours(chains, 2, metrics)
    return steps, compile_s, time.perf_counter() - start


def run_loaded(repeats: int = 3, quick: bool = False, steps: dict | None = None) -> list[dict]:
    """The comparison while one CPU-bound background process runs (skipped if quick);
    ``steps``: the warmed-up peers of :func:`run`, if it already compiled them."""
    if quick:
        return []
    jax, why = _import_jax()
    if jax is None:
        print(f"bench_jax: JAX is not installed ({why}); skipped (pip install -e '.[bench]')")
        return []
    if steps is None:
        steps, _, _ = _steps(jax, CHAINS)  # never compile under load
    rounds = max(ROUNDS, repeats)
    return under_load(lambda: measure(jax, steps, (CHAINS, GENERATIONS), rounds,
                                      tag="[loaded] "))


def run(repeats: int = 3, quick: bool = False, load: bool | None = None) -> list[dict]:
    """Idle rows, then (``load``, default: full mode) the same under CPU load; no rows
    (and a printed line) when JAX is absent."""
    jax, why = _import_jax()
    if jax is None:
        print(f"bench_jax: JAX is not installed ({why}); skipped (pip install -e '.[bench]')")
        return []
    sizes = QUICK_SIZES if quick else (CHAINS, GENERATIONS)
    rounds = max(1, repeats) if quick else max(ROUNDS, repeats)
    steps, compile_s, warm_s = _steps(jax, sizes[0], quick)
    rows = measure(jax, steps, sizes, rounds)
    rows.append({"case": f"JAX compile ({len(steps)} variants, warm-up)",
                 "ours_s": compile_s, "baseline": None, "baseline_s": None, "ratio": None,
                 "goal": None,
                 "note": (f"jax {jax.__version__}; 2 gens of each variant incl. jit compile; our "
                          f"warm-up (numba cache load, both metric sets) took {warm_s:.2f} s")})
    if (not quick) if load is None else load:
        rows += run_loaded(repeats, quick, steps)
    return rows


def main() -> None:
    suite_main("python -m benchmarks.bench_jax", run, run_loaded)


if __name__ == "__main__":
    main()
