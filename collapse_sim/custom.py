r"""Plug in your own truth, fitter and metric without subclassing anything.

Three adapters turn plain Python objects into the pieces :func:`collapse_sim.simulate`
runs (see :mod:`collapse_sim.protocol` for what they adapt to):

- :class:`ScipyTruth` — a truth (or a model) from any frozen ``scipy.stats``
  distribution: ``ScipyTruth(stats.t(df=3))``, ``ScipyTruth(stats.multivariate_t(...))``;
- :class:`FunctionFitter` — a fitter from a function ``fit(points) -> model`` applied to
  every chain's training points;
- :func:`register_simple_metric` — a metric from a function ``fn(truth, model) -> (B,)``.

They run at Python speed, chain by chain: every draw of a :class:`ScipyTruth` calls
scipy once per chain, every :class:`FunctionFitter` fit calls the function once per
chain and generation. The jitted families (``Gaussian`` with ``GaussianFit`` …) run
thousands of chains in the time these run tens; use small runs, or write a family
(:doc:`/howto_add_family`) when an experiment outgrows them.

Randomness stays reproducible: each chain draws a 64-bit word from its own
xoshiro256++ stream and seeds a :class:`numpy.random.Generator` with it
(:func:`chain_generators`), so the same seed gives bit-identical results whatever the
thread count, and the first ``k`` chains of a run equal a ``k``-chain run.

Metrics of a :class:`ScipyTruth` truth (registered here, all Monte Carlo over the
held-out sample of :data:`collapse_sim.registry.HELDOUT_SIZE` fresh draws where a
density is involved):

========================  =================================================================
metric                    definition
========================  =================================================================
``variance``              total variance :math:`\operatorname{tr}\Sigma_q` of the model; of
                          the truth at row 0 (``inf`` when it is infinite: a Student-t with
                          ``df <= 2``)
``kl``                    :math:`\mathrm{KL}(p\,\|\,q) \approx \frac1m\sum_i
                          [\log p(x_i) - \log q(x_i)]` over the held-out points
                          :math:`x_i \sim p`, clipped at 0 (0 at row 0)
``nll``                   :math:`-\frac1m\sum_i \log q(x_i)` (at row 0: the truth's own,
                          an estimate of its entropy)
``mean_shift``            :math:`\lVert m_q - \mu_p\rVert` (not a default: ask for it;
                          refused before generation 1 when the truth has no mean, e.g. a
                          Student-t with ``df <= 1``)
========================  =================================================================

Row 0: :class:`ScipyTruth` keeps the default :meth:`Model.reference
<collapse_sim.protocol.Model.reference>` (the truth itself) rather than a fit of a large
sample, which for a heavy-tailed truth would report a finite variance where the truth has
none. Where row 0 measures the truth itself (a fitter whose models are ``ScipyTruth``, or
a truth that no model of the fitter's family stands for, such as one of infinite variance
for a Gaussian fit; see :func:`collapse_sim.simulate`), the metrics above are registered
for the pair (``ScipyTruth``, ``ScipyTruth``) as well. For a truth whose variance is
infinite the expectations behind ``kl`` and ``nll`` of a Gaussian model are infinite too
(its log-density is quadratic); their held-out averages stay finite and are dominated by
the largest held-out points.

The models these metrics measure: ``Gaussian``, ``GaussianMixture`` and ``ScipyTruth``
batches, and scikit-learn estimators (``SklearnFitter``: ``variance`` and ``mean_shift``
from 2,000 points of each estimator; ``kl`` and ``nll`` only for estimators with
``score_samples``). ``Gaussian`` and ``GaussianMixture`` truths get ``variance``, ``kl``,
``nll`` and ``mean_shift`` for ``ScipyTruth`` models too. Other pairs are refused before
sampling, naming the pair.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import registry as _registry
from ._kernels import rng as _rng
from ._random import SeedLike
from ._validation import MAX_INT, check_int, with_article
from .families.gaussian import Gaussian, _batched_points, _gaussian_of
from .families.gaussian import nll as _gaussian_nll
from .families.mixture import GaussianMixture, mean_logpdf
from .families.sklearn import DensityEstimatorBatch, EstimatorBatch
from .protocol import Fitter, Model, PointModel
from .sampling import ChainStreams, chain_streams

__all__ = ["FunctionFitter", "ScipyTruth", "chain_generators", "register_simple_metric"]

#: Array parameters with more elements than this are described in ``to_dict`` by their
#: shape and a hash, not their values (a configuration stays small).
DESCRIBE_MAX_ELEMENTS = 64
#: Attributes of a frozen multivariate distribution that are settings, not parameters.
_SETTINGS = frozenset({"dim", "maxpts", "abseps", "releps", "allow_singular"})


def chain_generators(streams: ChainStreams) -> list[np.random.Generator]:
    """One :class:`numpy.random.Generator` per chain, seeded from the chain's own stream.

    Chain ``c``'s generator is ``numpy.random.default_rng(w)``, with ``w`` the next 64-bit
    output of stream ``c``: it depends on the seed and ``c`` only, so code that draws
    chain by chain from these generators (scipy's ``rvs(..., random_state=g)``) keeps the
    library's guarantees — bit-identical on any thread count, the first ``k`` chains of
    a run equal to a ``k``-chain run. Each call advances every stream by one output.

    Parameters
    ----------
    streams : ChainStreams
        The per-chain streams a model's ``draw`` or a fitter's ``fit_chains`` receives.

    Returns
    -------
    list of numpy.random.Generator
        ``streams.chains`` independent generators.

    Examples
    --------
    >>> from collapse_sim.custom import chain_generators
    >>> from collapse_sim.sampling import chain_streams
    >>> a = chain_generators(chain_streams(0, 3))
    >>> b = chain_generators(chain_streams(0, 1, first=2))
    >>> a[2].standard_normal() == b[0].standard_normal()
    True
    """
    if not isinstance(streams, ChainStreams):
        raise TypeError(f"streams must be a collapse_sim.sampling.ChainStreams, got "
                        f"{type(streams).__name__}")
    words = np.empty((streams.chains, 1), dtype=np.uint64)
    _rng.fill_raw(streams.states, words)
    return [np.random.default_rng(int(w)) for w in words[:, 0]]


# -- a truth from scipy.stats -----------------------------------------------------------------

def _plain(value) -> Any:
    """``value`` as JSON: numbers as Python numbers, small arrays as lists, big ones hashed."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        return repr(value)
    if arr.size <= DESCRIBE_MAX_ELEMENTS:
        return arr.tolist()
    digest = hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return {"shape": list(arr.shape), "sha256": digest.hexdigest()[:16]}


def _name(dist) -> str:
    gen = getattr(dist, "dist", None)
    if gen is not None and isinstance(getattr(gen, "name", None), str):
        return gen.name
    return type(dist).__name__.removesuffix("_frozen")


def _parameters(dist, univariate: bool) -> dict[str, Any]:
    """The distribution's parameters by name (univariate: shapes, ``loc``, ``scale``)."""
    if univariate:
        gen = dist.dist
        names = [s.strip() for s in (gen.shapes or "").split(",") if s.strip()]
        names += ["loc", "scale"]
        values = dict(zip(names, dist.args, strict=False))
        values.update(dist.kwds)
        values.setdefault("loc", 0.0)
        values.setdefault("scale", 1.0)
        return {n: values[n] for n in names if n in values}
    out = {}
    for key, value in vars(dist).items():
        if key.startswith("_") or key in _SETTINGS or isinstance(value, (bool, np.bool_)):
            continue
        if isinstance(value, (numbers.Real, np.ndarray)):
            out[key] = value
    if isinstance(getattr(type(dist), "cov", None), property):  # multivariate_normal's cov
        out["cov"] = dist.cov
    return out


def _finite_parameters(dist, univariate: bool) -> bool:
    for value in _parameters(dist, univariate).values():
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf" and not np.isfinite(arr).all():
            return False
    return True


def _value(obj, name: str):
    """Attribute ``name`` of ``obj``, called if it is a method; ``None`` if absent or failing."""
    value = getattr(obj, name, None)
    try:
        value = value() if callable(value) else value
        return None if value is None else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _moments(dist, univariate: bool, dim: int) -> tuple[np.ndarray | None, np.ndarray | None,
                                                         float | None]:
    """``(mean (d,) or None, cov (d, d) or None, total variance)`` of one distribution.

    ``None`` mean: it does not exist (or is unknown); total variance ``inf``: the second
    moment is infinite; ``None``: unknown (a distribution that reports no moments).
    """
    if univariate:
        with np.errstate(all="ignore"):
            mean, var = float(dist.mean()), float(dist.var())
        finite_mean = np.isfinite(mean)
        if np.isfinite(var):
            return (np.array([mean]) if finite_mean else None), np.array([[var]]), var
        # scipy reports an infinite second moment as inf, or nan when the mean is missing
        # too (E|X| infinite implies E X^2 infinite)
        return (np.array([mean]) if finite_mean else None), None, float("inf")
    if all(hasattr(dist, a) for a in ("df", "loc", "shape")):  # multivariate_t
        df = float(dist.df)
        loc, shape = np.asarray(dist.loc, float), np.asarray(dist.shape, float)
        mean = loc.reshape(dim) if df > 1 else None
        if df == np.inf:
            return mean, shape.reshape(dim, dim), float(np.trace(shape))
        if df > 2:
            cov = shape.reshape(dim, dim) * df / (df - 2)
            return mean, cov, float(np.trace(cov))
        return mean, None, float("inf")
    mean, cov = _value(dist, "mean"), _value(dist, "cov")
    mean = mean.reshape(dim) if mean is not None and mean.size == dim else None
    if cov is not None and cov.size == dim * dim and np.isfinite(cov).all():
        cov = cov.reshape(dim, dim)
        return mean, cov, float(np.trace(cov))
    return mean, None, None


def _check_dist(dist, name: str = "dist") -> tuple[int, bool]:
    """``(dim, univariate)`` of a frozen continuous distribution; TypeError/ValueError else."""
    from scipy import stats

    if isinstance(dist, (stats.rv_continuous, stats.rv_discrete)):
        raise TypeError(f"{name} must be a frozen distribution: call stats.{dist.name}(...) with "
                        f"its parameters, e.g. stats.t(df=3), not the unfrozen stats.{dist.name}")
    if isinstance(getattr(dist, "dist", None), stats.rv_discrete):
        raise TypeError(f"{name} must be a continuous distribution; stats.{dist.dist.name} is "
                        "discrete (its items have no density)")
    for method in ("rvs", "logpdf"):
        if not callable(getattr(dist, method, None)):
            raise TypeError(
                f"{name} must be a frozen scipy.stats distribution (or an object with "
                f"rvs(size, random_state) and logpdf(x) methods); {type(dist).__name__} has "
                f"no {method}()")
    univariate = isinstance(getattr(dist, "dist", None), stats.rv_continuous)
    if univariate:
        shapes = {np.shape(v) for v in _parameters(dist, True).values()}
        if shapes - {()}:
            raise ValueError(
                f"{name} must be one distribution with scalar parameters, got parameters of "
                f"shapes {sorted(shapes - {()})} (for points in d dimensions use a "
                "multivariate distribution such as stats.multivariate_t)")
    try:
        probe = np.asarray(dist.rvs(size=2, random_state=np.random.default_rng(0)),
                           dtype=np.float64)
    except Exception as exc:  # scipy reports bad parameters only when drawing
        raise ValueError(f"{name}={_name(dist)}{_parameters_text(dist, univariate)} cannot "
                         f"draw: {exc}") from exc
    if univariate:
        dim = 1
    else:
        if probe.ndim not in (1, 2) or probe.shape[0] != 2:
            raise ValueError(f"{name} must draw points (vectors): rvs(size=2) gave shape "
                             f"{probe.shape}, not (2, d)")
        dim = 1 if probe.ndim == 1 else probe.shape[1]
    if not np.isfinite(probe).all():
        raise ValueError(f"{name} drew non-finite values {probe.tolist()}: check its parameters")
    return dim, univariate


def _parameters_text(dist, univariate: bool) -> str:
    try:
        params = _parameters(dist, univariate)
    except Exception:
        return "(...)"
    parts = []
    for key, value in params.items():
        arr = np.asarray(value)
        text = f"{arr.item():g}" if arr.ndim == 0 and arr.dtype.kind in "biuf" else (
            f"<{arr.shape} array>" if arr.ndim else repr(value))
        parts.append(f"{key}={text}")
    return "(" + ", ".join(parts) + ")"


class ScipyTruth(PointModel):
    r"""A truth (or a batch of models) from frozen ``scipy.stats`` distributions.

    Any frozen continuous distribution works: univariate ones (``stats.t(df=3)``,
    ``stats.lognorm(0.5)`` …) give points of shape ``(1,)``, multivariate ones
    (``stats.multivariate_normal``, ``stats.multivariate_t``, ``stats.dirichlet`` …)
    points of shape ``(d,)``; so does any object with ``rvs(size, random_state)`` and
    ``logpdf(x)`` methods. Every fitter of points accepts it (``GaussianFit``,
    ``GaussianMixtureFit``, ``SklearnFitter``, :class:`FunctionFitter` …).

    Drawing calls ``rvs`` once per chain with a generator seeded from that chain's
    stream (:func:`chain_generators`), at Python speed: about 25 µs per chain for a
    univariate distribution, plus scipy's own cost per point. Only the draws from the
    truth pay it (the real sample, fresh real data, held-out points); a Gaussian fit's
    synthetic draws stay in the jitted kernels.

    Parameters
    ----------
    dist : frozen scipy.stats distribution
        One distribution (scalar parameters for a univariate one).

    Attributes
    ----------
    dists : tuple
        The frozen distributions of the batch (one for a truth).

    Raises
    ------
    TypeError
        ``dist`` is not frozen (``stats.t`` instead of ``stats.t(df=3)``), is discrete,
        or lacks ``rvs``/``logpdf``.
    ValueError
        Its parameters are invalid (scipy refuses to draw), or it draws non-finite
        values or arrays that are not points.

    Notes
    -----
    Moments: :attr:`mean` and :attr:`cov` come from scipy (``dist.mean()``, ``dist.var()``;
    ``multivariate_t`` from ``loc``, ``shape`` and ``df``). A Student-t with
    :math:`\nu \le 2` has infinite variance: :attr:`var` is ``inf`` (so is the ``variance``
    metric at row 0) and :attr:`cov` raises ``ValueError``, so ``GaussianFit`` cannot
    record it as row 0 of ``record_models``. With :math:`\nu \le 1` (Cauchy) it has no
    mean either: the ``mean_shift`` metric is refused.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> from scipy import stats
    >>> truth = cs.ScipyTruth(stats.t(df=3))
    >>> truth
    ScipyTruth(t(df=3, loc=0, scale=1))
    >>> truth.dim, float(truth.var[0])
    (1, 3.0)
    >>> sim = cs.simulate(truth, cs.GaussianFit(), n_samples=50, generations=3, chains=2,
    ...                   seed=0)
    >>> sorted(sim.metrics)
    ['kl', 'nll', 'variance']
    >>> float(cs.ScipyTruth(stats.t(df=2)).var[0])
    inf
    """

    record_dims: ClassVar[dict[str, tuple[str, ...]]] = {"params": ("parameter",)}

    def __init__(self, dist):
        dim, univariate = _check_dist(dist)
        self._set([dist], dim, [univariate])

    def _set(self, dists, dim: int, univariate) -> None:
        self.dists = tuple(dists)
        self._dim = dim
        self._univariate = tuple(univariate)
        self._moments: list | None = None

    @classmethod
    def _from_list(cls, dists, dim: int, univariate) -> ScipyTruth:
        """Trusted constructor for batches (no validation)."""
        obj = cls.__new__(cls)
        obj._set(dists, dim, univariate)
        return obj

    # -- shape -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Dimension ``d`` of the points."""
        return self._dim

    @property
    def batch_size(self) -> int:
        """Number of distributions in the batch (1 for a truth)."""
        return len(self.dists)

    @property
    def dist(self):
        """The frozen distribution of a batch of one."""
        if self.batch_size != 1:
            raise ValueError(f"a batch of {self.batch_size} has no single dist; use dists")
        return self.dists[0]

    def broadcast(self, chains: int) -> ScipyTruth:
        """This single distribution repeated ``chains`` times (the same object)."""
        if self.batch_size == chains:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot broadcast a batch of {self.batch_size} to {chains} chains")
        return ScipyTruth._from_list(self.dists * chains, self._dim, self._univariate * chains)

    # -- moments ---------------------------------------------------------------------------
    def _all_moments(self) -> list:
        if self._moments is None:
            self._moments = [_moments(d, u, self._dim)
                             for d, u in zip(self.dists, self._univariate, strict=True)]
        return self._moments

    @property
    def mean(self) -> np.ndarray:
        """``(B, d)`` means; ``ValueError`` if a member has none (a Student-t with ``df <= 1``)."""
        out = []
        for c, (mean, _, _) in enumerate(self._all_moments()):
            if mean is None:
                raise ValueError(f"{self._describe(c)} has no finite mean (its first moment "
                                 "diverges, as a Student-t's with df <= 1, or scipy does not "
                                 "report it)")
            out.append(mean)
        return np.stack(out)

    @property
    def cov(self) -> np.ndarray:
        """``(B, d, d)`` covariances; ``ValueError`` if a member's variance is infinite."""
        out = []
        for c, (_, cov, total) in enumerate(self._all_moments()):
            if cov is None:
                why = ("infinite variance (a Student-t with df <= 2)" if total == np.inf
                       else "no covariance that scipy reports")
                raise ValueError(f"{self._describe(c)} has {why}: what needs its covariance "
                                 "(recording it as a Gaussian, mean_shift's reference) does "
                                 "not apply")
            out.append(cov)
        return np.stack(out)

    @property
    def var(self) -> np.ndarray:
        """``(B,)`` total variances :math:`\\operatorname{tr}\\Sigma`, ``inf`` where infinite."""
        out = []
        for c, (_, _, total) in enumerate(self._all_moments()):
            if total is None:
                raise ValueError(f"the variance of {self._describe(c)} is unknown: scipy "
                                 "reports no covariance for it")
            out.append(total)
        return np.array(out, dtype=np.float64)

    # -- densities and draws -------------------------------------------------------------------
    def logpdf(self, x) -> np.ndarray:
        """Log-density at points ``x``: ``(n, d)`` (``(n,)`` when ``d = 1``) under every
        member, or ``(B, n, d)``; returns ``(n,)`` for a batch of one, else ``(B, n)``."""
        pts, squeeze = _batched_points(self, x)
        n = pts.shape[1]
        out = np.empty((self.batch_size, n))
        for c, (dist, uni) in enumerate(zip(self.dists, self._univariate, strict=True)):
            arg = pts[c, :, 0] if uni else pts[c]
            out[c] = np.asarray(dist.logpdf(arg), dtype=np.float64).reshape(n)
        return out[0] if squeeze else out

    def draw(self, k: int, streams) -> np.ndarray:
        """``(chains, k, d)`` points: chain ``c`` calls member ``c``'s ``rvs`` (or the only
        member's) with a generator seeded from stream ``c`` (:func:`chain_generators`)."""
        k = check_int("k", k, minimum=0, maximum=MAX_INT)
        chains = streams.chains
        if self.batch_size not in (1, chains):
            raise ValueError(f"a batch of {self.batch_size} cannot draw for {chains} chains")
        out = np.empty((chains, k, self._dim))
        for c, gen in enumerate(chain_generators(streams)):
            member = c if self.batch_size > 1 else 0
            draws = self.dists[member].rvs(size=k, random_state=gen)
            out[c] = np.asarray(draws, dtype=np.float64).reshape(k, self._dim)
        return out

    def sample(self, n: int, seed: SeedLike = None) -> np.ndarray:
        """``n`` points from every member, member ``c`` with chain ``c``'s stream of ``seed``:
        ``(n, d)`` for a batch of one, else ``(B, n, d)``."""
        n = check_int("n", n, minimum=1, maximum=MAX_INT)
        pts = self.draw(n, chain_streams(seed, self.batch_size))
        return pts[0] if self.batch_size == 1 else pts

    # -- family protocol ---------------------------------------------------------------------
    def finite(self) -> np.ndarray:
        """``(B,)`` bool: every numeric parameter finite."""
        return np.array([_finite_parameters(d, u)
                         for d, u in zip(self.dists, self._univariate, strict=True)])

    def record(self) -> dict[str, np.ndarray]:
        """``params`` ``(B, p)``: each member's numeric parameters, flattened in the order
        of :meth:`to_dict` (univariate: shapes, ``loc``, ``scale``)."""
        rows = []
        for d, u in zip(self.dists, self._univariate, strict=True):
            values = [np.asarray(v, dtype=np.float64).ravel()
                      for v in _parameters(d, u).values()]
            rows.append(np.concatenate(values) if values else np.empty(0))
        if len({r.size for r in rows}) > 1:
            raise ValueError("record_models=True needs every member to have the same number "
                             "of parameters (one family of distributions)")
        return {"params": np.stack(rows)}

    def to_dict(self) -> dict:
        """``{"type": "ScipyTruth", "distribution": name, **parameters, "dim": d}``: the
        parameters by name (arrays above :data:`DESCRIBE_MAX_ELEMENTS` elements by shape and
        hash); a batch adds ``batch_size`` and describes its first member."""
        dist = self.dists[0]
        out: dict[str, Any] = {"type": "ScipyTruth", "distribution": _name(dist)}
        for key, value in _parameters(dist, self._univariate[0]).items():
            reserved = key in ("type", "distribution", "dim", "batch_size")
            out[f"param_{key}" if reserved else key] = _plain(value)
        out["dim"] = self._dim
        if self.batch_size > 1:
            out["batch_size"] = self.batch_size
        return out

    def _describe(self, member: int = 0) -> str:
        dist = self.dists[member]
        return f"{_name(dist)}{_parameters_text(dist, self._univariate[member])}"

    def __repr__(self) -> str:
        if self.batch_size == 1:
            return f"ScipyTruth({self._describe()})"
        return f"ScipyTruth(batch of {self.batch_size} {_name(self.dists[0])}, dim={self.dim})"


# -- a fitter from a function ------------------------------------------------------------------

def _function_name(fn) -> str:
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return qualname if module in (None, "__main__", "builtins") else f"{module}.{qualname}"


def _stack(model_type: type, models: list) -> Model:
    if model_type is Gaussian:
        return Gaussian._from_arrays(np.concatenate([m.mean for m in models]),
                                     np.concatenate([m.cov for m in models]))
    if model_type is GaussianMixture:
        return GaussianMixture._from_arrays(np.concatenate([m.weights for m in models]),
                                            np.concatenate([m.means for m in models]),
                                            np.concatenate([m.covs for m in models]))
    return ScipyTruth._from_list([m.dists[0] for m in models], models[0].dim,
                                 [m._univariate[0] for m in models])


#: Model types a :class:`FunctionFitter`'s function may return (it stacks them into a batch).
FUNCTION_MODEL_TYPES = (Gaussian, GaussianMixture, ScipyTruth)


@dataclass(frozen=True, eq=False, repr=False)
class FunctionFitter(Fitter):
    r"""A fitter from a plain function ``fit(points) -> model``, called chain by chain.

    The contract: ``fit`` receives one chain's training points, a read-only float64
    array ``(k, d)``, and returns **one** distribution of ``model_type`` (a batch of one):
    ``cs.Gaussian(mean=..., cov=...)`` (the default), a ``cs.GaussianMixture``, or a
    ``cs.ScipyTruth(frozen scipy distribution)``. The fitter calls it for every chain of
    every generation, at Python speed (about 30 µs per call for the ``Gaussian``
    constructor's checks, plus the function's own work), checks what it returns, and
    stacks the chains' models into the batch the engine samples from — jitted for
    Gaussian and mixture models, chain by chain through scipy for ``ScipyTruth``.
    The metrics of the pair (truth type, ``model_type``) apply as for any fitter.

    Parameters
    ----------
    fit : callable
        ``fit(points: ndarray (k, d)) -> model``. It must not use global random state
        (the run would no longer be reproducible): deterministic fits are the use case.
    model_type : {Gaussian, GaussianMixture, ScipyTruth}
        The class ``fit`` returns, declared up front so that the metrics can be chosen
        and checked before any sampling.

    Raises
    ------
    TypeError
        ``fit`` is not callable (or is a class or a collapse_sim fitter), ``model_type``
        is not one of :data:`FUNCTION_MODEL_TYPES`. During a run: ``fit`` returned
        something else than a ``model_type`` (the message names the function and chain).
    ValueError
        During a run: ``fit`` returned a batch, a model of the wrong dimension, with
        non-finite parameters, or mixtures with different numbers of components.

    Examples
    --------
    A robust fit, median and scaled median absolute deviation:

    >>> import numpy as np, collapse_sim as cs
    >>> def robust(points):
    ...     centre = np.median(points, axis=0)
    ...     scale = 1.4826 * np.median(np.abs(points - centre), axis=0)
    ...     return cs.Gaussian(mean=centre, cov=np.diag(scale**2))
    >>> sim = cs.simulate(cs.Gaussian(0.0, 1.0), cs.FunctionFitter(robust),
    ...                   n_samples=50, generations=3, chains=2, seed=0)
    >>> sim.metrics["variance"].shape
    (4, 2)
    """

    fit: Callable[[np.ndarray], Model]
    model_type: type = Gaussian

    truth_types: ClassVar[tuple[type, ...]] = (PointModel,)

    def __post_init__(self):
        fit = self.fit
        if isinstance(fit, Fitter):
            raise TypeError(f"fit must be a function fit(points) -> model; "
                            f"{type(fit).__name__}(...) is already a fitter: pass it to "
                            "simulate directly")
        if isinstance(fit, type) or not callable(fit):
            what = f"the class {fit.__name__}" if isinstance(fit, type) else type(fit).__name__
            raise TypeError(f"fit must be a function fit(points) -> model, got {what}")
        if self.model_type not in FUNCTION_MODEL_TYPES:
            names = ", ".join(t.__name__ for t in FUNCTION_MODEL_TYPES)
            got = getattr(self.model_type, "__name__", repr(self.model_type))
            raise TypeError(f"model_type must be one of {names} (the classes FunctionFitter "
                            f"can stack into a batch), got {got}")

    def fit_chains(self, data: np.ndarray, *, streams=None, previous=None,
                   truth=None) -> Model:
        """Call ``fit`` on every chain's points ``data[c]`` and stack the models."""
        name = _function_name(self.fit)
        chains, k, d = data.shape
        models = []
        for c in range(chains):
            points = data[c].view()
            points.flags.writeable = False  # the engine's pool: the function must not edit it
            try:
                model = self.fit(points)
            except Exception as exc:
                exc.add_note(f"raised by the fit function {name} on chain {c} ({k} points)")
                raise
            models.append(self._check(model, c, d, name, models[0] if models else None))
        return _stack(self.model_type, models)

    def _check(self, model, chain: int, dim: int, name: str, first) -> Model:
        kind = self.model_type.__name__
        where = f"the fit function {name} returned"
        if not isinstance(model, self.model_type):
            got = type(model).__name__
            if isinstance(model, Model):
                hint = (f"return a {kind}, or declare FunctionFitter({name}, "
                        f"model_type=cs.{got})" if type(model) in FUNCTION_MODEL_TYPES
                        else f"return a {kind}")
            elif callable(getattr(model, "rvs", None)):
                hint = ("wrap a frozen scipy distribution: return cs.ScipyTruth(dist), with "
                        f"FunctionFitter({name}, model_type=cs.ScipyTruth)")
            else:
                hint = "build the model, e.g. cs.Gaussian(mean=..., cov=...)"
            raise TypeError(f"{where} {with_article(got)} for chain {chain}; it must return "
                            f"one {kind} (model_type): {hint}")
        if model.batch_size != 1:
            raise ValueError(f"{where} a batch of {model.batch_size} for chain {chain}; it "
                             "must return one distribution")
        if model.dim != dim:
            raise ValueError(f"{where} a model of dimension {model.dim} for chain {chain}, "
                             f"whose points have dimension {dim}")
        if not model.finite().all():
            raise ValueError(f"{where} a model with non-finite parameters for chain {chain}")
        if (isinstance(model, GaussianMixture) and first is not None
                and model.n_components != first.n_components):
            raise ValueError(f"{where} {model.n_components} components for chain {chain} but "
                             f"{first.n_components} for chain 0: every chain needs the same "
                             "number")
        return model

    def as_model(self, truth) -> Model:
        """Row 0 of ``record_models``: the truth's moment-matched Gaussian for Gaussian
        models (``ValueError`` for a truth of infinite variance), else the truth itself
        if it is a ``model_type``."""
        if self.model_type is Gaussian:
            return _gaussian_of(truth)
        return super().as_model(truth)

    def to_dict(self) -> dict:
        """``{"type": "FunctionFitter", "fit": qualified name, "model_type": class name}``."""
        return {"type": "FunctionFitter", "fit": _function_name(self.fit),
                "model_type": self.model_type.__name__}

    def __repr__(self) -> str:
        return f"FunctionFitter({_function_name(self.fit)}, model_type={self.model_type.__name__})"


# -- a metric from a function ----------------------------------------------------------------

_SIMPLE: set[tuple[str, type, type]] = set()


def register_simple_metric(name: str, fn: Callable[[Any, Any], Any], truth_type, model_type,
                           *, default: bool = False, distance: bool = False,
                           doc: str = "") -> None:
    """Register ``fn(truth, model) -> (B,)`` as metric ``name`` for the pairs given.

    A thin layer over :func:`collapse_sim.registry.register_metric` for the common case:
    no context argument, the output checked (one finite-or-infinite number per member of
    the batch; ``NaN`` is refused with a message naming the metric), and registering the
    same name again from this function (re-running a notebook cell) replaces the earlier
    registration, while a built-in metric of the same pair is never replaced.

    Row 0 of a run measures the truth itself (a batch of one) as a model: when the
    truth's class is not a ``model_type`` (a :class:`ScipyTruth` truth fitted by
    Gaussians), register the metric for ``(truth_type, truth_type)`` too, with a function
    that measures the truth; ``simulate`` refuses the metric before sampling otherwise.

    Parameters
    ----------
    name : str
        The metric's name in ``Simulation.metrics``.
    fn : callable
        ``fn(truth, model)``: ``truth`` the run's truth, ``model`` the batch of ``B``
        fitted models of one generation; returns ``B`` numbers (a scalar for ``B = 1``).
    truth_type, model_type : type or tuple of types
        Classes of the truth and of the models it applies to.
    default : bool
        Whether ``simulate`` computes it when not told which metrics (default ``False``:
        ask for it, ``metrics=("variance", name)``).
    distance : bool
        It is a distance from the truth (0 at the truth itself).
    doc : str
        One line for tables and error messages.

    Examples
    --------
    >>> import numpy as np, collapse_sim as cs
    >>> from scipy import special
    >>> def above_2(truth, model):        # P(x > 2) under each 1-D Gaussian
    ...     return special.ndtr((model.mean[:, 0] - 2) / np.sqrt(model.cov[:, 0, 0]))
    >>> cs.custom.register_simple_metric("above_2", above_2, cs.Gaussian, cs.Gaussian)
    >>> sim = cs.simulate(cs.Gaussian(0.0, 1.0), cs.GaussianFit(), n_samples=20,
    ...                   generations=2, chains=3, seed=0, metrics=("above_2",))
    >>> round(float(sim.metrics["above_2"][0, 0]), 4)
    0.0228
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not callable(fn):
        raise TypeError(f"fn must be a function fn(truth, model) -> (B,), got "
                        f"{type(fn).__name__}")
    truths = _registry._as_types(truth_type)
    models = _registry._as_types(model_type)
    label = _function_name(fn)

    def metric(truth, model, ctx):
        value = np.asarray(fn(truth, model), dtype=np.float64)
        size = model.batch_size
        if value.shape == () and size == 1:
            value = value.reshape(1)
        if value.shape != (size,):
            raise ValueError(f"metric {name!r}: {label} returned shape {value.shape}; it must "
                             f"return ({size},), one value per model of the batch")
        if np.isnan(value).any():
            bad = int(np.flatnonzero(np.isnan(value))[0])
            generation = getattr(ctx, "generation", "?")
            raise ValueError(f"metric {name!r}: {label} returned NaN for model {bad} of the "
                             f"batch (generation {generation})")
        return value

    specs = _registry._SPECS.get(name, {})
    for t in truths:
        for m in models:
            if (t, m) in specs and (name, t, m) not in _SIMPLE:
                raise ValueError(f"metric {name!r} is already registered for ({t.__name__}, "
                                 f"{m.__name__}) by collapse_sim: choose another name")
    for t in truths:
        for m in models:
            _registry.register_metric(name, t, m, metric, default=default, distance=distance,
                                      doc=doc or f"{label}(truth, model)",
                                      replace=(name, t, m) in _SIMPLE)
            _SIMPLE.add((name, t, m))


# -- metrics of ScipyTruth truths and models -------------------------------------------------

def _memo(obj, key: str, heldout: np.ndarray, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` remembered on ``obj`` for the last ``heldout`` (``kl`` and ``nll`` share)."""
    memo = getattr(obj, key, None)
    if memo is not None and memo[0] is heldout:
        return memo[1]
    value = compute()
    setattr(obj, key, (heldout, value))
    return value


def _mean_log_q(model, heldout: np.ndarray) -> np.ndarray:
    """``(B,)`` mean log-density of the held-out points under every member of ``model``."""
    if isinstance(model, Gaussian):  # a quadratic log-density: the held-out moments suffice
        return -_gaussian_nll(None, model, heldout)
    if isinstance(model, GaussianMixture):
        return mean_logpdf(model, heldout)
    if isinstance(model, DensityEstimatorBatch):
        return _memo(model, "_custom_log_q", heldout,
                     lambda: model.score_samples(heldout).mean(axis=1))
    return _memo(model, "_custom_log_q", heldout, lambda: model.logpdf(heldout).reshape(
        model.batch_size, -1).mean(axis=1))


def _mean_log_p(truth, heldout: np.ndarray) -> float:
    return float(_memo(truth, "_custom_log_p", heldout,
                       lambda: np.asarray(truth.logpdf(heldout)).mean()))


def _model_variance(truth, model, ctx) -> np.ndarray:
    if isinstance(model, EstimatorBatch):  # sample-based: the estimators' own points
        pts = model.metric_sample
        dev = pts - pts.mean(axis=1, keepdims=True)
        return np.sum(dev**2, axis=(1, 2)) / (pts.shape[1] - 1)
    if isinstance(model, ScipyTruth):
        return model.var
    return np.trace(model.cov, axis1=1, axis2=2).copy()


def _model_mean_shift(truth, model, ctx) -> np.ndarray:
    try:  # checked at row 0, before any generation is fitted
        centre = truth.mean
    except ValueError as exc:
        raise ValueError(f"metric 'mean_shift' needs the truth's mean: {exc}; leave "
                         "mean_shift out of metrics") from None
    if model is truth:
        return np.zeros(1)
    try:
        mean = (model.metric_sample.mean(axis=1) if isinstance(model, EstimatorBatch)
                else model.mean)
    except ValueError as exc:
        raise ValueError(f"metric 'mean_shift' needs the models' means: {exc}") from None
    return np.sqrt(np.sum((mean - centre) ** 2, axis=1))


def _model_nll(truth, model, ctx) -> np.ndarray:
    return -_mean_log_q(model, ctx.heldout)


def _model_kl(truth, model, ctx) -> np.ndarray:
    if model is truth:
        return np.zeros(1)
    with np.errstate(invalid="ignore"):
        value = _mean_log_p(truth, ctx.heldout) - _mean_log_q(model, ctx.heldout)
    return np.where(np.isnan(value), np.inf, np.maximum(value, 0.0))


_SAMPLE_MODELS = (Gaussian, GaussianMixture, ScipyTruth, EstimatorBatch)
_DENSITY_MODELS = (Gaussian, GaussianMixture, ScipyTruth, DensityEstimatorBatch)
_register = _registry.register_metric
_register("variance", ScipyTruth, _SAMPLE_MODELS, _model_variance,
          doc="total variance of the model (of the truth at row 0: inf when infinite)")
_register("kl", ScipyTruth, _DENSITY_MODELS, _model_kl, heldout=True, distance=True,
          doc="KL(truth || model), Monte Carlo over the held-out points, clipped at 0")
_register("nll", ScipyTruth, _DENSITY_MODELS, _model_nll, heldout=True,
          doc="mean -log q of held-out real points")
_register("mean_shift", ScipyTruth, _SAMPLE_MODELS, _model_mean_shift, default=False,
          distance=True, doc="||m - mu|| (refused for a truth without a mean)")
# Gaussian and mixture truths with ScipyTruth models (a FunctionFitter returning them)
_register("variance", (Gaussian, GaussianMixture), ScipyTruth, _model_variance,
          doc="total variance of the model (inf when infinite)")
_register("kl", (Gaussian, GaussianMixture), ScipyTruth, _model_kl, heldout=True,
          distance=True, doc="KL(truth || model), Monte Carlo over the held-out points")
_register("nll", (Gaussian, GaussianMixture), ScipyTruth, _model_nll, heldout=True,
          doc="mean -log q of held-out real points")
_register("mean_shift", (Gaussian, GaussianMixture), ScipyTruth, _model_mean_shift,
          default=False, distance=True, doc="||m - mu||")
