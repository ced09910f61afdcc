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

import inspect
import os
import warnings

import numpy as np

from . import _random
from . import registry as _registry
from . import stages as _stages
from ._buffers import BUFFERS
from ._kernels import split as _split
from ._progress import progress_bar
from ._validation import MAX_INT, check_int, with_article
from .policies import Replace, _Policy
from .protocol import Competence, Fitter, Model, suitable_fitters
from .results import Simulation, warn_large_result
from .sampling import ChainStreams, Moments, subsample

#: Runs expected to take longer than this many seconds show a progress bar when ``progress=None``.
PROGRESS_DELAY = 2.0
#: Memory the fitted models a family keeps whole (``Simulation.fitted``: n-gram language
#: models) may take; later generations are not kept once it is spent.
KEPT_MODELS_MAX_BYTES = 1 << 30


def simulate(
    truth: Model,
    fitter: Fitter,
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
    generation: _stages.Stage | None = None,
) -> Simulation:
    r"""Run ``chains`` independent fit → sample → fit … chains for ``generations`` generations.

    Parameters
    ----------
    truth : Model
        The data-generating distribution (a batch of one) of any family:
        ``Gaussian``, ``GaussianMixture``, ``LinearRegression``, ``Categorical``, ``Zipf`` …
        (see :mod:`collapse_sim.protocol`).
    fitter : Fitter
        Applied to every generation's training set; it must be able to fit the
        truth's data (``fitter.competence(truth)``): ``GaussianFit``,
        ``GaussianMixtureFit``, ``SGDGaussianFit``, ``SGDMixtureFit`` or
        ``SklearnFitter`` for points, ``OLSFit`` or ``SGDRegressionFit`` for a
        ``LinearRegression``, ``CategoricalFit`` for a categorical truth.
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
        Names registered for the pair (truth type, ``fitter.model_type``) in
        :mod:`collapse_sim.registry`; default: the pair's default metrics
        (:data:`collapse_sim.metrics.DEFAULT` for Gaussian and mixture truths,
        ``("test_error",)`` for a regression truth).
    record_models : bool
        Keep every generation's parameters in ``Simulation.models``, as the model
        family declares them (``Model.record``): Gaussians ``mean`` ``(G+1, chains, d)``
        and ``cov`` ``(G+1, chains, d, d)``; mixtures ``weights``, ``means``, ``covs``;
        regressions ``weights`` ``(G+1, chains, d)`` and ``noise_std`` ``(G+1, chains)``;
        categorical models ``probs`` ``(G+1, chains, V)``. Row 0 is the truth expressed
        in the fitter's family (``Fitter.as_model``), the model row 0 of the metrics
        measures when the family cannot represent the truth (see Returns).
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
        path, equal results in distribution across paths. Any family whose fitter
        uses additive statistics that its models can draw by their exact law takes
        the same route (categorical counts: multinomial by conditional binomials).
    generation : Stage, optional
        How the synthetic items are made and chosen (:mod:`collapse_sim.stages`):
        ``Temperature(0.9)``, ``Truncate(2.0)``, ``TopK(50)``, ``TopP(0.9)``,
        ``BestOfK(4, reward=...)``, ``Curate(4, reward=...)`` or a composition with
        ``|``. Default: faithful sampling. Real data is never staged. A stage that only
        transforms the model keeps the exact path; one that draws (truncation of a
        Gaussian, best-of-K, curation) needs the points.

    Returns
    -------
    Simulation
        ``metrics[name]`` is ``(generations + 1, chains)``; row ``t`` measures the
        model fitted at generation ``t``, row 0 the starting point: the truth itself
        when the fitter's family contains it (``fitter.competence(truth)`` is
        ``EXACT``; distances are 0). When the family cannot represent it
        (``APPROXIMATE``: one Gaussian for a mixture), row 0 measures the family's
        model of the truth, ``fitter.as_model(truth)`` -- the moment-matched Gaussian,
        the KL-best one, for a Gaussian fit -- so its distances are the expressivity
        floor (:func:`collapse_sim.theory.gaussian_mismatch_floor`), the curves do not
        start from a 0 that no model of the family reaches, and ``metrics[0]``
        describes the model ``models[0]`` stores. A fitter without such a model
        (``as_model`` raises: a scikit-learn ``KernelDensity``, a mixture fit with
        fewer components than the truth) keeps the truth in row 0. A truth with a
        reference model (an :class:`~collapse_sim.Empirical` data set) measures it:
        the fitter's fit of all its training data.

    Raises
    ------
    TypeError, ValueError
        On invalid arguments, before any sampling. ``ValueError`` also when the
        policy would keep more points than its ``max_bytes`` allows, and when the
        run's arrays would not fit in this machine's memory (the message gives the
        estimate).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> sim = cs.simulate(cs.Gaussian(mean=0.0, var=1.0), cs.GaussianFit(),
    ...                   n_samples=10, generations=5, chains=3, seed=0)
    >>> sim.metrics["variance"].shape
    (6, 3)
    """
    n_samples = check_int("n_samples", n_samples, minimum=2, maximum=MAX_INT)
    generations = check_int("generations", generations, minimum=0, maximum=MAX_INT)
    chains = check_int("chains", chains, minimum=1, maximum=MAX_INT)
    _check_truth(truth)
    _check_fitter(fitter, truth)
    if not isinstance(policy, _Policy):
        raise TypeError(
            "policy must be Replace(), KeepReal(f), Accumulate(), AccumulateSubsample(), "
            f"FreshReal(f) or Augment(r); got {type(policy).__name__}"
        )
    policy.check(generations)
    _stages.check_support(generation, fitter.model_type)
    n_items = truth.items_for(n_samples)  # data items in n_samples units (blocks of tokens …)
    for message in policy.warnings(n_items, generations):
        warnings.warn(message, UserWarning, stacklevel=2)
    pair = (type(truth), fitter.model_type)
    if metrics is None:  # the pair's defaults that apply to this truth and policy
        refused = _registry.refused_by(_registry.defaults(*pair), *pair, policy)
        metrics = [n for n in _registry.defaults(*pair) if n not in refused
                   and (truth.has_heldout or not _registry.lookup(n, *pair).heldout)]
    names = _registry.check_names(metrics, *pair)
    refused = _registry.refused_by(names, *pair, policy)
    if refused:
        raise ValueError(f"metrics {refused} are not defined under {type(policy).__name__} for "
                         f"{fitter.model_type.__name__} models (see their documentation); "
                         "leave them out")
    # row 0 measures the truth, the fitter's best model of it (a family that cannot
    # represent it) or the truth's reference model (a data set's fit)
    own_reference = type(truth).reference is not Model.reference
    first = None if own_reference else _row0_model(truth, fitter)
    _registry.check_names(names, type(truth),
                          fitter.model_type if own_reference else type(first))
    reward = _stages.reward_of(generation)
    if "reward" in names and reward is None:
        raise ValueError("metric 'reward' needs a generation stage with a reward (BestOfK or "
                         "Curate)")
    if n_items < fitter.min_points():
        raise ValueError(
            f"n_samples={n_samples} is too small for {fitter!r}: it needs at least "
            f"{fitter.min_points()} points"
        )
    if not isinstance(record_models, bool):
        raise TypeError("record_models must be True or False")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError("progress must be True, False or None")
    plan = policy.plan(n_items)
    # a fixed policy's training sets are those of generations 1 and 2 (Accumulate's growth
    # is in ``kept``); a schedule's differ every generation, so each is checked
    last = max(generations, 2) if policy.scheduled else 2
    sizes = [policy.training_size(n_items, t) for t in range(1, last + 1)]
    for t, size in enumerate(sizes, start=1):
        if size < fitter.min_points():
            raise ValueError(
                f"{policy!r} trains generation {t} on {size} points; {fitter!r} needs at "
                f"least {fitter.min_points()}: raise n_samples or the policy's fraction/ratio"
            )
    statistics = fitter.needs == "statistics"
    exact = _exact_path(sampling, truth, fitter, plan, policy, generation, n_items)
    kept = kept_bytes(policy, fitter, truth, chains, n_items, generations)
    if kept > getattr(policy, "max_bytes", np.inf):
        raise ValueError(
            f"{type(policy).__name__} must keep {chains} chains x {n_items * generations} "
            f"items x {_item_bytes(truth)} bytes = {kept / 2**30:.2f} GiB of training data, "
            f"above its max_bytes={policy.max_bytes} ({policy.max_bytes / 2**30:.2f} GiB); "
            "lower chains or generations, or raise max_bytes"
        )
    root = _random.as_seed_sequence(seed)
    reference = (truth.reference(fitter, ChainStreams(_random.shared_state(root, 1)))
                 if own_reference else first)
    recorder = (_ModelRecorder(truth, fitter, generations, chains, reference)
                if record_models else None)
    points = not statistics or plan.pool == "subsample" or not exact
    # items a generation holds at once: the real sample, the draws and the training set
    # (Augment(r) trains on n + r n items); none on the exact path, which forms no items
    items = (2 * n_items + max(max(sizes[1:]), n_items)) if points else 0
    _check_memory(truth, chains, items, generations, len(names), kept,
                  0 if recorder is None else recorder.bytes_per_row)
    warn_large_result(generations, chains, len(names),
                      0 if recorder is None else recorder.bytes_per_row)

    streams = ChainStreams(_random.chain_states(root, chains))
    heldout = None
    if _registry.needs_heldout(names, *pair):
        shared = ChainStreams(_random.shared_state(root, 0))
        heldout = truth.heldout(_registry.HELDOUT_SIZE, shared)
    ctx = _registry.MetricContext(truth, heldout, root=root, chains=chains)
    ctx.reward = reward

    # recycled memory: the arrays of results nobody holds any more (a sweep's, a
    # notebook cell run again) are lent to the next run instead of faulting in fresh
    # pages; results someone holds are never lent (collapse_sim._buffers)
    out = {name: BUFFERS.take((generations + 1, chains), np.float64) for name in names}
    for name, value in _registry.evaluate(names, truth, reference, ctx).items():
        out[name][0] = value[0]
    if recorder is not None:
        recorder.allocate()

    fitted = [truth] if getattr(fitter.model_type, "keep_fitted", False) else None
    blocks = None
    if not policy.scheduled:
        stage = {} if generation is None else {"stage": generation}  # older fitters: no stage
        if generation is None or "stage" in inspect.signature(fitter.fused_run).parameters:
            blocks = fitter.fused_run(truth, plan, n_items, generations, streams, exact=exact,
                                      **stage)
    if blocks is None:
        loop = _Loop(truth, fitter, policy, n_items, generations, streams,
                     points=not statistics or plan.pool == "subsample", exact=exact,
                     stage=generation)
        blocks = ((t, 1, loop.step(t)) for t in range(1, generations + 1))
    # progress=None: tqdm's own rule (off when stderr is not a terminal) after a delay.
    disable = {True: False, False: True, None: None}[progress]
    bar = progress_bar(total=generations, desc="generations", unit="gen",  # leaves nothing
                       disable=disable, delay=0.0 if progress else PROGRESS_DELAY)
    try:
        for start, size, model in blocks:
            _check_finite(model, start, chains)
            rows = slice(start, start + size)
            ctx.generation = start
            # the result rows themselves, for metrics that write their values in place
            ctx.destinations = {name: out[name][rows].reshape(-1) for name in names}
            for name, value in _registry.evaluate(names, truth, model, ctx).items():
                if value is not ctx.destinations[name]:
                    out[name][rows] = value.reshape(size, chains)
            ctx.destinations = None
            if recorder is not None:
                recorder.record(rows, model)
            if fitted is not None:
                fitted.append(_keep(model, fitted))
            bar.update(size)
    finally:
        bar.close()

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
    if generation is not None:  # faithful runs keep the configs (and sweep keys) they had
        config["generation"] = generation.to_dict()
    return Simulation(metrics=out, config=config,
                      models=None if recorder is None else recorder.arrays, fitted=fitted)


def _row0_model(truth: Model, fitter: Fitter) -> Model:
    """The model row 0 of the metrics measures for a truth without a reference model.

    The truth itself when it lies in the fitter's family (``Competence.EXACT``). When the
    family cannot represent it (``Competence.APPROXIMATE``), the truth in that family,
    ``fitter.as_model(truth)`` -- for a Gaussian fit (``GaussianFit``, ``SGDGaussianFit``)
    the moment-matched Gaussian, the family's KL-best model, whose distances to the truth
    are the expressivity floor; for ``PPCAFit`` the PPCA of the truth's covariance, also
    KL-best -- which is also what ``record_models`` stores in row 0, so ``metrics[0]`` and
    ``models[0]`` describe the same model and the metrics measure it the way they measure
    every later generation. Where the fitter defines no such model (``as_model`` raises
    ``ValueError`` or ``NotImplementedError``) row 0 stays the truth: a scikit-learn
    estimator without components (``KernelDensity``), and a mixture fit of a mixture truth
    with more components than ``n_components`` (the best mixture of fewer components has
    no closed form).
    """
    if fitter.competence(truth) is not Competence.APPROXIMATE:
        return truth
    try:
        return fitter.as_model(truth)
    except (ValueError, NotImplementedError):
        return truth


def _keep(model, fitted: list):
    """``model``, or ``None`` once the kept models would pass :data:`KEPT_MODELS_MAX_BYTES`."""
    used = sum(m.nbytes for m in fitted[1:] if m is not None)
    if fitted[-1] is None or used + model.nbytes > KEPT_MODELS_MAX_BYTES:
        return None
    return model


class _ModelRecorder:
    """Every generation's parameters as the model family declares them (``Model.record``).

    Row 0 is the truth's reference model when it has one (``Model.reference``: a data
    set's fit), else the truth in the fitter's family (``Fitter.as_model``): a Gaussian fit
    stores a mixture truth by its overall moments, a mixture fit pads a truth with
    fewer components with zero-weight copies of its first component.
    """

    def __init__(self, truth, fitter, generations, chains, reference=None):
        first = fitter.as_model(truth) if reference is None or reference is truth else reference
        self.first = {name: np.asarray(value) for name, value in first.record().items()}
        self.shape = (generations + 1, chains)
        self.bytes_per_row = chains * sum(v[0].nbytes for v in self.first.values())
        self.arrays = {}

    def allocate(self):
        for name, value in self.first.items():
            self.arrays[name] = np.empty((*self.shape, *value.shape[1:]), dtype=value.dtype)
            self.arrays[name][0] = value[0]

    def record(self, rows: slice, model):
        size = rows.stop - rows.start
        for name, value in model.record().items():
            value = np.asarray(value)
            self.arrays[name][rows] = value.reshape(size, self.shape[1], *value.shape[1:])


class _Loop:
    """State carried across generations: the real sample, the pool, the current model.

    Works on any family through the protocol: ``points`` runs keep data items
    (``Model.draw``, ``Fitter.fit_chains``), the others additive statistics
    (``Model.draw_statistics`` or ``Fitter.statistics``, ``Fitter.fit_statistics``).
    """

    def __init__(self, truth, fitter, policy, n, generations, streams, *, points: bool,
                 exact: bool = False, stage=None):
        chains = streams.chains
        self.fitter = fitter
        self.policy = policy
        self.stage = stage
        self.plan = plan = policy.plan(n)
        self.n = n
        self.streams = streams
        self.points = points
        self.exact = exact
        self.model = None
        base = self.truth = truth.broadcast(chains)
        k = plan.real
        real = None
        self.real_points = None
        if exact:
            # the real sample as every policy draws it (same seed, same real data: policies
            # are compared on paired samples), then the statistics of its first k points
            # by their law given it
            if 0 < k < n and not _splits(fitter.statistics_type, n, truth.item_size):
                # no conditional law implemented: the first k and the other n - k points
                # are independent samples (not paired with the other policies)
                self.real_part = self._draw(base, k)
                self.real_all = self.real_part + self._draw(base, n - k)
            else:
                self.real_all = self.real_part = self._draw(base, n)
                if 0 < k < n:
                    self.real_part = _first_of(self.real_all, k, streams)
        else:
            real = base.draw(n, streams)
            self.real_all = real if points else fitter.statistics(real, truth=truth)
            if (policy.scheduled or plan.real_resampled) and not points:
                self.real_points = real
            if plan.real_resampled:
                self.real_part = None  # drawn afresh every generation
            elif 0 < k < n:
                self.real_part = (real[:, :k] if points
                                  else fitter.statistics(real[:, :k], truth=truth))
            else:
                self.real_part = self.real_all
        self.truth = truth.start_run(chains, real)
        self.pool = None
        if plan.pool == "subsample" or (plan.pool == "all" and points):
            # one flat buffer whose first chains * size items are the pool, chain after
            # chain: the training set is a C-contiguous view of it, which fitters read
            # without a copy (the kept data, not twice the kept data, is the peak)
            self.pool = np.empty((chains * n * max(generations, 1), *truth.event_shape),
                                 dtype=truth.dtype)
            self.pool[:chains * n] = real.reshape(chains * n, *truth.event_shape)
            self.pool_size = n
        elif plan.pool == "all":
            self.pool = self.real_all

    def _draw(self, model, k):
        if self.points:
            return model.draw(k, self.streams)
        kind = self.fitter.statistics_type
        if self.exact or (kind is not None and type(model).statistics_type is kind):
            return model.draw_statistics(k, self.streams, exact=self.exact)
        return self.fitter.statistics(model.draw(k, self.streams), truth=self.truth)

    def _grow_pool(self, syn: np.ndarray) -> np.ndarray:
        """Append ``syn`` ``(chains, k, ...)`` to every chain's pool in place; the pool as a
        C-contiguous ``(chains, size, ...)`` view.

        Chain regions move from the last chain backwards, so no data is overwritten
        before it has been moved (each destination starts at or after its source).
        """
        chains, k = syn.shape[:2]
        old, new = self.pool_size, self.pool_size + k
        flat = self.pool
        for c in range(chains - 1, -1, -1):
            if c:
                flat[c * new:c * new + old] = flat[c * old:(c + 1) * old]
            flat[c * new + old:(c + 1) * new] = syn[c]
        self.pool_size = new
        return flat[:chains * new].reshape(chains, new, *flat.shape[1:])

    def _real_prefix(self, k: int, resampled: bool = False):
        """The first ``k`` points of the real sample (or their statistics); ``resampled``:
        ``k`` of its points drawn afresh without replacement from the chain's stream."""
        if resampled:
            source = self.real_all if self.points else self.real_points
            part = subsample(source, self.n, k, self.streams)
            return part if self.points else self.fitter.statistics(part, truth=self.truth)
        if k == self.plan.real or not self.policy.scheduled:
            return self.real_part
        if self.points:
            return self.real_all[:, :k]
        if k == self.n:
            return self.real_all
        return self.fitter.statistics(self.real_points[:, :k], truth=self.truth)

    def _draw_synthetic(self, k: int, t: int):
        """``k`` synthetic items (or their statistics) from the current model, staged."""
        stage = self.stage
        if _stages.only_transforms(stage):
            return self._draw(_stages.sampling_model(stage, self.model), k)
        if not self.points:  # a stage that can draw the statistics directly (Truncate)
            stats = _stages.draw_statistics(stage, self.model, k, self.streams,
                                            self.fitter.statistics_type)
            if stats is not None:
                return stats
        items = _stages.draw(stage, self.model, k, self.streams, where=f"generation {t}")
        if self.points:
            return items
        return self.fitter.statistics(items, truth=self.truth)

    def _fit(self, data):
        if self.points:
            return self.fitter.fit_chains(data, streams=self.streams, previous=self.model,
                                          truth=self.truth)
        return self.fitter.fit_statistics(data)

    def step(self, t: int) -> Model:
        """Fit generation ``t`` (drawing its training data from generation ``t - 1``)."""
        if t == 1:
            self.model = self._fit(self.real_all)
            return self.model
        n = self.n
        plan = self.policy.plan(n, t) if self.policy.scheduled else self.plan
        parts = []
        if plan.real:
            parts.append(self._real_prefix(plan.real, plan.real_resampled))
        if plan.fresh:
            parts.append(self._draw(self.truth, plan.fresh))
        if plan.synthetic:
            syn = self._draw_synthetic(plan.synthetic, t)
            if plan.pool == "none":
                parts.append(syn)
            elif not self.points:
                self.pool = self.pool + syn
                parts.append(self.pool)
            else:
                pool = self._grow_pool(syn)
                if plan.pool == "all":
                    parts.append(pool)
                else:
                    parts.append(subsample(pool, self.pool_size, n, self.streams))
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


def _exact_path(sampling, truth, fitter, plan, policy=None, stage=None, n=None) -> bool:
    """Whether to draw sufficient statistics directly; ValueError if asked where not exact."""
    if sampling not in ("auto", "exact", "explicit"):
        raise ValueError(f"sampling must be 'auto', 'exact' or 'explicit', got {sampling!r}")
    if sampling == "explicit":
        return False
    kind = fitter.statistics_type
    reason = None
    if fitter.needs != "statistics" or kind is None:
        reason = (f"{type(fitter).__name__} needs the points themselves, not only their "
                  "sufficient statistics")
    elif not (type(truth).exact_statistics and type(truth).statistics_type is kind):
        reason = (f"a {type(truth).__name__} truth cannot draw its samples' "
                  f"{kind.__name__} by their exact law")
    elif not (fitter.model_type.exact_statistics and fitter.model_type.statistics_type is kind):
        reason = (f"{fitter.model_type.__name__} models cannot draw their samples' "
                  f"{kind.__name__} by their exact law")
    elif plan.pool == "subsample":
        reason = "AccumulateSubsample draws subsets of stored points"
    elif not _stages.only_transforms(stage):
        reason = "a generation stage that draws (Truncate, BestOfK, Curate) needs the points"
    elif policy is not None and policy.scheduled and plan.real:
        reason = "KeepReal with a schedule keeps a different share of the real points"
    elif plan.real_resampled and plan.real:
        reason = "KeepReal(resample=True) draws subsets of the stored real points"
    elif 0 < plan.real < (n or 0) and not type(truth).exact_keep_share:
        reason = (f"the first {plan.real} rows of a {type(truth).__name__} sample have no "
                  "law given all of them (rows are drawn without replacement)")
    if reason is None:
        return True
    if sampling == "exact":
        raise ValueError(f"sampling='exact' is not exact here: {reason}; use 'explicit'")
    return False


def _splits(kind, n: int, dim: int) -> bool:
    """Whether :func:`_first_of` can split statistics of type ``kind`` of ``n`` items: Gaussian
    moments of at least ``dim + 1`` points (a non-singular scatter). Other statistics
    (category counts) keep independent first and remaining parts."""
    return kind is Moments and n - 1 >= dim


def _first_of(total: Moments, k: int, streams: ChainStreams) -> Moments:
    """Moments of the first ``k`` of the points whose moments are ``total``, drawn by their
    law given ``total`` (:mod:`collapse_sim._kernels.split`)."""
    chains, d = total.mean.shape
    mean = np.empty((chains, d))
    scatter = np.empty((chains, d, d))
    _split.split_moments(streams.states, total.count, k, np.ascontiguousarray(total.mean),
                         np.ascontiguousarray(total.scatter), mean, scatter)
    return Moments(k, mean, scatter)


def _item_bytes(truth) -> int:
    return truth.item_size * truth.dtype.itemsize


def kept_bytes(policy, fitter, truth, chains: int, n_samples: int, generations: int) -> int:
    """Bytes of training data ``policy`` must keep across generations for this run."""
    return policy.kept_bytes(chains, n_samples, generations, 1, fitter.needs == "statistics",
                             item_bytes=_item_bytes(truth))


def memory_limit() -> int:
    """Physical memory of this machine in bytes (``COLLAPSE_SIM_MAX_BYTES`` overrides it)."""
    env = os.environ.get("COLLAPSE_SIM_MAX_BYTES")
    if env:
        return int(env)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def _check_memory(truth, chains, items, generations, n_metrics, kept, record_row) -> None:
    """Refuse, before allocating anything, a run whose arrays cannot fit in memory.

    Counted: the metric arrays, the recorded models, ``items`` data items per chain held
    during a generation, the training data the policy keeps, and the generator states.
    """
    metric = 8 * (generations + 1) * chains * n_metrics
    record = (generations + 1) * record_row
    data = chains * items * _item_bytes(truth) + chains * 8 * _random.STATE_STRIDE
    total = metric + record + data + kept
    limit = memory_limit()
    if total > limit:
        parts = [f"metric arrays {metric / 2**30:.3g} GiB"]
        if record:
            parts.append(f"recorded models {record / 2**30:.3g} GiB")
        parts.append(f"training data {(data + kept) / 2**30:.3g} GiB")
        raise ValueError(
            f"this run needs about {total / 2**30:.3g} GiB ({', '.join(parts)}), more than "
            f"the {limit / 2**30:.3g} GiB of memory here: lower generations, chains, "
            "n_samples or the metrics (COLLAPSE_SIM_MAX_BYTES sets another limit)")


def _check_truth(truth) -> None:
    if not isinstance(truth, Model):
        raise TypeError(
            "truth must be a collapse_sim model (Gaussian, GaussianMixture, LinearRegression, "
            f"Categorical, Zipf …), got {type(truth).__name__}"
        )
    truth.check_truth()


def _check_fitter(fitter, truth) -> None:
    if isinstance(fitter, type):
        raise TypeError(f"fitter must be a fitter instance, got the class {fitter.__name__}: "
                        f"write {fitter.__name__}(...)")
    if not isinstance(fitter, Fitter):
        raise TypeError(f"fitter must be a collapse_sim fitter, got {type(fitter).__name__}")
    if fitter.competence(truth) is Competence.INCOMPATIBLE:
        kinds = ", ".join(t.__name__ for t in fitter.truth_types)
        others = ", ".join(suitable_fitters(truth)) or "a fitter of its family"
        raise TypeError(f"{type(fitter).__name__} fits {kinds} truths, not "
                        f"{with_article(type(truth).__name__)}: fit it with {others}")


def _check_finite(model, start: int, chains: int) -> None:
    finite = model.finite()
    if finite.all():
        return
    bad = np.argwhere(~finite.reshape(-1, chains))
    if bad.size:
        t, c = bad[0]
        others = int(np.count_nonzero(bad[:, 0] == t)) - 1  # in that generation, as a loop
        raise FloatingPointError(
            f"generation {start + t}: the fit of chain {c} (and {others} others) is not "
            "finite (an SGD fitter diverged? lower its learning_rate)"
        )
