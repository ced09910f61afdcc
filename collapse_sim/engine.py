r"""The recursive fit/sample loop: ``simulate``.

For every chain independently,

.. math::

    \text{truth} \xrightarrow{\text{sample } n} D_1 \xrightarrow{\text{fit}} M_1
    \xrightarrow{\text{sample}} D_2 \xrightarrow{\text{fit}} M_2 \;\cdots\; M_G,

where the policy decides what :math:`D_t` holds for :math:`t \ge 2` (see
:mod:`collapse_sim.policies`). All chains advance together, one generation at a
time, through chain-parallel kernels; memory stays :math:`O(\text{chains}\times n)`
plus the ``(generations + 1, chains)`` metric arrays, unless models are recorded or
the policy must keep accumulated points.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import _random
from . import metrics as _metrics
from ._kernels import fused as _fused
from ._mixture_metrics import components as _mix_components
from ._validation import check_int
from .fitting import GaussianFit
from .models import EstimatorBatch, Gaussian, GaussianMixture, LinearRegression
from .policies import Replace, _Policy
from .results import Simulation
from .sampling import (
    ChainStreams,
    Moments,
    draw_points,
    exact_gaussian_moments,
    gaussian_moments,
    regression_points,
    subsample,
)
from .sgd import SGDGaussianFit

#: Chain-generations per block of the fused exact 1-D path (bounds its working memory).
FUSED_BLOCK_ELEMENTS = 1 << 16
#: Runs expected to take longer than this many seconds show a progress bar when ``progress=None``.
PROGRESS_DELAY = 2.0


def simulate(
    truth: Gaussian,
    fitter: GaussianFit,
    *,
    n_samples: int,
    generations: int,
    chains: int = 1,
    policy: _Policy = Replace(),  # noqa: B008 - immutable dataclass
    seed: _random.SeedLike = None,
    metrics=None,
    record_models: bool = False,
    progress: bool | None = None,
    sampling: str = "auto",
) -> Simulation:
    r"""Run ``chains`` independent fit → sample → fit … chains for ``generations`` generations.

    Parameters
    ----------
    truth : Gaussian, GaussianMixture or LinearRegression
        The data-generating distribution (a batch of one), positive definite.
    fitter : fitter object
        ``GaussianFit``, ``GaussianMixtureFit``, ``SGDGaussianFit``, ``SGDMixtureFit``,
        ``SklearnFitter``, ``OLSFit`` or ``SGDRegressionFit``.
        It is applied to every generation's training set (``OLSFit`` and
        ``SGDRegressionFit`` for a ``LinearRegression`` truth, the others otherwise).
    n_samples : int
        :math:`n`, the sample size each generation draws (>= 2).
    generations : int
        Number :math:`G` of fitted generations (>= 0).
    chains : int
        Independent replicates (>= 1).
    policy : Replace, KeepReal, Accumulate, AccumulateSubsample, FreshReal or Augment
        What each generation trains on (see :mod:`collapse_sim.policies`).
    seed : int, SeedSequence, Generator or None
        Root of all randomness. Chain ``c`` uses its own stream derived from
        ``(seed, c)``, so results are bit-identical for any thread count and the
        first ``k`` chains of a run equal a ``k``-chain run. ``None`` draws fresh
        entropy, recorded in ``Simulation.config["seed"]``.
    metrics : str or sequence of str, optional
        Names from :data:`collapse_sim.metrics.AVAILABLE`; default
        :data:`collapse_sim.metrics.DEFAULT` for distributions, ``("test_error",)``
        for a regression truth.
    record_models : bool
        Keep every generation's parameters in ``Simulation.models``
        (``mean`` ``(G+1, chains, d)``, ``cov`` ``(G+1, chains, d, d)``; mixtures:
        ``weights``, ``means``, ``covs``; regressions: ``weights`` ``(G+1, chains, d)``
        and ``noise_std`` ``(G+1, chains)``).
    progress : bool or None
        Show a tqdm bar: ``True`` always, ``False`` never, ``None`` only when the
        run lasts longer than :data:`PROGRESS_DELAY` seconds.
    sampling : {"auto", "exact", "explicit"}
        ``"explicit"`` draws every generation's points. ``"exact"`` draws only what a
        Gaussian fit uses — the sample mean, :math:`\mathcal N(\mu, \Sigma/k)`, and the
        scatter matrix, :math:`\mathrm{Wishart}(k - 1, \Sigma)`, independent — so its
        cost does not grow with ``n_samples``; it has exactly the same law (see
        :func:`collapse_sim.sampling.exact_gaussian_moments`). It applies to a
        ``GaussianFit`` of a ``Gaussian`` truth under every policy except
        ``AccumulateSubsample`` (which must keep points to subsample). ``"auto"``
        (default) takes the exact path wherever it applies. The two paths draw
        different random numbers: the same seed gives the same result within a
        path, equal results in distribution across paths.

    Returns
    -------
    Simulation
        ``metrics[name]`` is ``(generations + 1, chains)``; row 0 is the truth,
        row ``t`` the model fitted at generation ``t``.

    Raises
    ------
    TypeError, ValueError
        On invalid arguments, before any sampling. ``ValueError`` also when the
        policy would keep more points than its ``max_bytes`` allows.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(),
    ...                   n_samples=10, generations=5, chains=3, seed=0)
    >>> sim.metrics["variance"].shape
    (6, 3)
    """
    n_samples = check_int("n_samples", n_samples, minimum=2)
    generations = check_int("generations", generations, minimum=0)
    chains = check_int("chains", chains, minimum=1)
    _check_truth(truth)
    _check_fitter(fitter, truth)
    if not isinstance(policy, _Policy):
        raise TypeError(
            "policy must be Replace(), KeepReal(f), Accumulate(), AccumulateSubsample(), "
            f"FreshReal(f) or Augment(r); got {type(policy).__name__}"
        )
    names = _metrics.check_names(_metrics.default_for(truth) if metrics is None else metrics,
                                 truth)
    if n_samples < fitter.min_points():
        raise ValueError(
            f"n_samples={n_samples} is too small for {fitter!r}: it needs at least "
            f"{fitter.min_points()} points"
        )
    if not isinstance(record_models, bool):
        raise TypeError("record_models must be True or False")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError("progress must be True, False or None")
    plan = policy.plan(n_samples)
    for t in (1, 2):
        size = policy.training_size(n_samples, t)
        if size < fitter.min_points():
            raise ValueError(
                f"{policy!r} trains generation {t} on {size} points; {fitter!r} needs at "
                f"least {fitter.min_points()}: raise n_samples or the policy's fraction/ratio"
            )
    uses_moments = bool(getattr(fitter, "uses_moments", False))
    exact = _exact_path(sampling, truth, fitter, plan)
    kept = policy.kept_bytes(chains, n_samples, generations, truth.dim, uses_moments)
    if kept > getattr(policy, "max_bytes", np.inf):
        raise ValueError(
            f"{type(policy).__name__} must keep {chains} chains x {n_samples * generations} "
            f"points x {truth.dim} dims = {kept / 2**30:.2f} GiB of training data, above its "
            f"max_bytes={policy.max_bytes} ({policy.max_bytes / 2**30:.2f} GiB); lower chains "
            f"or generations, or raise max_bytes"
        )

    root = _random.as_seed_sequence(seed)
    streams = ChainStreams(_random.chain_states(root, chains))
    heldout = None
    if "nll" in names or "kl" in names:
        shared = ChainStreams(_random.shared_state(root, 0))
        heldout = draw_points(truth, _metrics.HELDOUT_SIZE, shared)[0]
    ctx = _metrics.MetricContext(truth, heldout)

    out = {name: np.empty((generations + 1, chains)) for name in names}
    for name, value in _metrics.evaluate(names, truth, truth, ctx).items():
        out[name][0] = value[0]
    models = _ModelRecorder(truth, fitter, generations, chains) if record_models else None

    if exact and truth.dim == 1:
        _fused_exact_1d(truth, fitter, plan, n_samples, generations, streams, names, ctx, out,
                        models)
    else:
        _run_loop(truth, fitter, plan, n_samples, generations, streams, names, ctx, out,
                  models, uses_moments, exact, progress)

    config = {
        "truth": truth.to_dict(),
        "fitter": fitter.to_dict(),
        "policy": policy.to_dict(),
        "n_samples": n_samples,
        "generations": generations,
        "chains": chains,
        "seed": _random.seed_record(root),
        "sampling": "exact" if exact else "explicit",
        "metrics": list(names),
    }
    return Simulation(metrics=out, config=config,
                      models=None if models is None else models.arrays)


def _run_loop(truth, fitter, plan, n_samples, generations, streams, names, ctx, out, models,
              uses_moments, exact, progress) -> None:
    """Generation by generation: draw, fit, measure (any fitter, policy and dimension)."""
    loop = _Loop(truth, fitter, plan, n_samples, generations, streams,
                 points=not uses_moments or plan.pool == "subsample", exact=exact)
    # progress=None: tqdm's own rule (off when stderr is not a terminal) after a delay.
    disable = {True: False, False: True, None: None}[progress]
    bar = tqdm(total=generations, desc="generations", unit="gen", leave=False,
               disable=disable, delay=0.0 if progress else PROGRESS_DELAY)
    try:
        for t in range(1, generations + 1):
            model = loop.step(t)
            if not isinstance(model, EstimatorBatch):
                _check_finite(model, t)
            for name, value in _metrics.evaluate(names, truth, model, ctx).items():
                out[name][t] = value
            if models is not None:
                models.record(t, model)
            bar.update(1)
    finally:
        bar.close()


def _fused_exact_1d(truth, fitter, plan, n_samples, generations, streams, names, ctx, out,
                    models) -> None:
    """Exact path in 1-D: every generation of every chain in one kernel, then the metrics of
    all ``generations x chains`` models in one vectorised call each.

    Bit-identical to :func:`_run_loop` with ``exact=True`` (same draws, same arithmetic).
    """
    chains = streams.chains
    # Blocks of generations keep the working memory O(chains x block), not O(chains x G).
    block = max(1, min(generations, FUSED_BLOCK_ELEMENTS // chains))
    carry = np.zeros((chains, 8))
    for start in range(1, generations + 1, block):
        size = min(block, generations + 1 - start)
        m_blk, v_blk = np.empty((chains, size)), np.empty((chains, size))
        _fused.exact_run_1d(streams.states, n_samples, fitter.ddof, plan.real, plan.fresh,
                            plan.synthetic, plan.pool == "all", float(truth.mean[0, 0]),
                            float(truth.cov[0, 0, 0]), start, carry, m_blk, v_blk)
        means = np.ascontiguousarray(m_blk.T)  # (size, chains)
        variances = np.ascontiguousarray(v_blk.T)
        bad = ~(np.isfinite(means) & np.isfinite(variances))
        if bad.any():
            t, c = np.argwhere(bad)[0]
            raise FloatingPointError(f"generation {start + t}: the fit of chain {c} is not finite")
        fitted = Gaussian._from_arrays(means.reshape(-1, 1), variances.reshape(-1, 1, 1))
        rows = slice(start, start + size)
        for name, value in _metrics.evaluate(names, truth, fitted, ctx).items():
            out[name][rows] = value.reshape(size, chains)
        if models is not None:
            models.arrays["mean"][rows] = means[:, :, None]
            models.arrays["cov"][rows] = variances[:, :, None, None]


class _ModelRecorder:
    """Every generation's parameters; row 0 is the truth in the fitter's family.

    Gaussian fitters: ``mean``, ``cov`` (a mixture truth is stored by its overall
    moments: its best Gaussian approximation). Mixture fitters: ``weights``,
    ``means``, ``covs``; a truth with fewer components is padded with
    zero-weight copies of its first component.
    """

    def __init__(self, truth, fitter, generations, chains):
        d = truth.dim
        g = generations + 1
        if isinstance(truth, LinearRegression):
            self.arrays = {"weights": np.empty((g, chains, truth.n_features)),
                           "noise_std": np.empty((g, chains))}
            self.arrays["weights"][0] = truth.weights[0]
            self.arrays["noise_std"][0] = truth.noise_std[0]
            return
        if isinstance(fitter, GaussianFit | SGDGaussianFit):
            self.arrays = {"mean": np.empty((g, chains, d)), "cov": np.empty((g, chains, d, d))}
            self.arrays["mean"][0] = truth.mean[0]
            self.arrays["cov"][0] = truth.cov[0]
            return
        k = getattr(fitter, "n_components", None)
        if k is None:
            k = getattr(getattr(fitter, "estimator", None), "n_components", None)
        if k is None:
            raise ValueError("record_models=True needs a Gaussian or Gaussian mixture fitter")
        self.arrays = {"weights": np.empty((g, chains, k)), "means": np.empty((g, chains, k, d)),
                       "covs": np.empty((g, chains, k, d, d))}
        w, m, c = _mix_components(truth)
        if w.shape[1] > k:
            raise ValueError(
                f"record_models=True stores the truth in row 0 with the fitter's {k} "
                f"components, but the truth has {w.shape[1]}: raise n_components or record "
                "without the truth"
            )
        pad = k - w.shape[1]
        self.arrays["weights"][0] = np.concatenate([w[0], np.zeros(pad)])
        self.arrays["means"][0] = np.concatenate([m[0], np.repeat(m[0, :1], pad, axis=0)])
        self.arrays["covs"][0] = np.concatenate([c[0], np.repeat(c[0, :1], pad, axis=0)])

    def record(self, t, model):
        if isinstance(model, EstimatorBatch):
            model = model.as_mixture()
        if "noise_std" in self.arrays:
            self.arrays["weights"][t] = model.weights
            self.arrays["noise_std"][t] = model.noise_std
        elif "mean" in self.arrays:
            self.arrays["mean"][t] = model.mean
            self.arrays["cov"][t] = model.cov
        else:
            self.arrays["weights"][t] = model.weights
            self.arrays["means"][t] = model.means
            self.arrays["covs"][t] = model.covs


class _Loop:
    """State carried across generations: the real sample, the pool, the current model."""

    def __init__(self, truth, fitter, plan, n, generations, streams, *, points: bool,
                 exact: bool = False):
        self.truth = truth.broadcast(streams.chains)
        self.fitter = fitter
        self.plan = plan
        self.n = n
        self.streams = streams
        self.points = points
        self.exact = exact
        self.model = None
        self.design = None
        k = plan.real
        if exact:
            # the first k real points and the other n - k are independent samples
            first = self._draw(self.truth, k) if 0 < k < n else None
            rest = self._draw(self.truth, n - k if first is not None else n)
            self.real_all = rest if first is None else first + rest
            self.real_part = self.real_all if first is None else first
        else:
            real = draw_points(self.truth, n, streams)
            self.real_all = real if points else Moments.of(real)
            if 0 < k < n:
                self.real_part = real[:, :k] if points else Moments.of(real[:, :k])
            else:
                self.real_part = self.real_all
        # A regression's next labeller inherits the design law and noise level of the one
        # before it: generation 1's is the truth. With a fixed design every later draw
        # relabels the chain's real features.
        if isinstance(truth, LinearRegression):
            self.model = self.truth
            if truth.design == "fixed":
                self.design = np.ascontiguousarray(real[:, :, :truth.n_features])
        self.pool = None
        if plan.pool == "subsample" or (plan.pool == "all" and points):
            self.pool = np.empty((streams.chains, n * max(generations, 1), truth.dim))
            self.pool[:, :n] = real
            self.pool_size = n
        elif plan.pool == "all":
            self.pool = self.real_all

    def _draw(self, model, k):
        if self.design is not None:
            return regression_points(model, k, self.streams, self.design)
        if self.points:
            return draw_points(model, k, self.streams)
        if isinstance(model, Gaussian):
            if self.exact:
                return exact_gaussian_moments(model, k, self.streams)
            return gaussian_moments(model, k, self.streams)
        return Moments.of(draw_points(model, k, self.streams))

    def _fit(self, data):
        if self.points:
            return self.fitter.fit_chains(data, streams=self.streams, previous=self.model)
        return self.fitter.fit_moments(data)

    def step(self, t: int) -> Gaussian:
        """Fit generation ``t`` (drawing its training data from generation ``t - 1``)."""
        if t == 1:
            self.model = self._fit(self.real_all)
            return self.model
        plan, n = self.plan, self.n
        parts = []
        if plan.real:
            parts.append(self.real_part)
        if plan.fresh:
            parts.append(self._draw(self.truth, plan.fresh))
        if plan.synthetic:
            syn = self._draw(self.model, plan.synthetic)
            if plan.pool == "none":
                parts.append(syn)
            elif isinstance(self.pool, Moments):
                self.pool = self.pool + syn
                parts.append(self.pool)
            else:
                self.pool[:, self.pool_size:self.pool_size + n] = syn
                self.pool_size += n
                if plan.pool == "all":
                    parts.append(self.pool[:, :self.pool_size])
                else:
                    parts.append(subsample(self.pool, self.pool_size, n, self.streams))
        self.model = self._fit(_combine(parts, self.points))
        return self.model


def _combine(parts, points: bool):
    if len(parts) == 1:
        return parts[0]
    if points:
        return np.concatenate(parts, axis=1)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _exact_path(sampling, truth, fitter, plan) -> bool:
    """Whether to draw sufficient statistics directly; ValueError if asked where not exact."""
    if sampling not in ("auto", "exact", "explicit"):
        raise ValueError(f"sampling must be 'auto', 'exact' or 'explicit', got {sampling!r}")
    if sampling == "explicit":
        return False
    reason = None
    if not (isinstance(fitter, GaussianFit) and getattr(fitter, "uses_moments", False)):
        reason = (f"{type(fitter).__name__} needs the points themselves, not only their mean "
                  "and scatter matrix")
    elif not isinstance(truth, Gaussian):
        reason = "the truth is not Gaussian, so its samples' mean and scatter have no Wishart law"
    elif plan.pool == "subsample":
        reason = "AccumulateSubsample draws subsets of stored points"
    if reason is None:
        return True
    if sampling == "exact":
        raise ValueError(f"sampling='exact' is not exact here: {reason}; use 'explicit'")
    return False


def _check_truth(truth) -> None:
    if not isinstance(truth, Gaussian | GaussianMixture | LinearRegression):
        raise TypeError(
            "truth must be a collapse_sim.Gaussian, GaussianMixture or LinearRegression, got "
            f"{type(truth).__name__}"
        )
    if truth.batch_size != 1:
        raise ValueError(f"truth must be a single distribution, got a batch of {truth.batch_size}")
    if isinstance(truth, LinearRegression):
        return  # its design covariance was checked positive definite on construction
    covs = truth.covs[0] if isinstance(truth, GaussianMixture) else truth.cov
    lam = np.linalg.eigvalsh(covs)
    if np.any(lam.min(axis=-1) <= 1e-12 * np.maximum(lam.max(axis=-1), 1e-300)):
        raise ValueError(
            "truth covariance must be positive definite (smallest eigenvalue "
            f"{lam.min():.3g}); the tail and KL metrics are undefined otherwise"
        )


def _check_fitter(fitter, truth) -> None:
    if not (hasattr(fitter, "fit_chains") and hasattr(fitter, "min_points")):
        raise TypeError(f"fitter must be a collapse_sim fitter, got {type(fitter).__name__}")
    if isinstance(truth, LinearRegression) and not getattr(fitter, "fits_regression", False):
        raise TypeError(f"the truth is a LinearRegression: fit it with OLSFit or "
                        f"SGDRegressionFit, not {type(fitter).__name__}")
    fitter.check_truth(truth)


def _check_finite(model, t: int) -> None:
    if isinstance(model, LinearRegression):
        bad = ~np.isfinite(model.weights).all(axis=1) | ~np.isfinite(model.noise_std)
    else:
        bad = ~np.isfinite(model.mean).all(axis=1) | ~np.isfinite(model.cov).all(axis=(1, 2))
    bad = np.flatnonzero(bad)
    if bad.size:
        raise FloatingPointError(
            f"generation {t}: the fit of chain {bad[0]} (and {bad.size - 1} others) is not "
            "finite (an SGD fitter diverged? lower its learning_rate)"
        )
