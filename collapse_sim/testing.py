"""A conformance check every model family passes (like scikit-learn's ``check_estimator``).

:func:`check_family` drives a (truth, fitter) pair through the protocol of
:mod:`collapse_sim.protocol` and the engine, and raises ``AssertionError`` naming
the first broken promise. A new family calls it from its tests::

    from collapse_sim.testing import check_family
    check_family(MyTruth(...), MyFit())

What it checks (each a separate function, so a failure names it):

- :func:`check_protocol` — the truth describes itself compactly (JSON, small),
  draws ``(chains, k, *event_shape)`` items of its dtype, chain ``c`` from stream
  ``c`` only; the fitter returns a finite batch of its ``model_type``;
- :func:`check_fit_consistency` — fitted on its own samples, the model approaches
  the truth: every *distance* metric of the pair (``register_metric(...,
  distance=True)``) is 0 at the truth (row 0; where the fitter's family cannot
  represent the truth, row 0 measures ``fitter.as_model(truth)``, the floor: >= 0)
  and its median over chains is smaller after a fit on many items than after a fit
  on few;
- :func:`check_reproducibility` — the same seed gives bit-identical results on 1
  and on every numba thread, and the first chains of a run equal a smaller run;
- :func:`check_policies` — every policy runs on every sampling path that applies,
  with no NaN in any metric and row 0 of every distance metric equal to 0 (>= 0 for
  a truth the fitter's family cannot represent);
- :func:`check_record_models` — recorded arrays have the declared dimensions and
  row 0 is the truth in the fitter's family (or the truth's reference model);
- :func:`check_save_load` — a result survives ``save`` / ``load`` bit for bit;
- :func:`check_bad_input` — a fitter class instead of an instance, an unknown
  metric and an unregistered metric are refused with a clear error.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numba
import numpy as np

from . import _random, registry
from .engine import _row0_model, simulate
from .policies import Accumulate, AccumulateSubsample, Augment, FreshReal, KeepReal, Replace
from .protocol import Competence, Fitter, Model
from .results import Simulation
from .sampling import ChainStreams, chain_streams

__all__ = [
    "check_bad_input",
    "check_family",
    "check_fit_consistency",
    "check_policies",
    "check_protocol",
    "check_record_models",
    "check_reproducibility",
    "check_save_load",
]

#: Policies every family must run under.
POLICIES = (Replace(), KeepReal(0.25), Accumulate(), AccumulateSubsample(), FreshReal(0.5),
            Augment(0.5))


def _run_seed() -> int:
    return 7


def _run(truth, fitter, n_samples, **kw):
    kw = {"generations": 3, "chains": 4, "seed": _run_seed(), "progress": False, **kw}
    return simulate(truth, fitter, n_samples=n_samples, **kw)


def _distances(truth, fitter) -> tuple[str, ...]:
    pair = (type(truth), fitter.model_type)
    return tuple(n for n in registry.available(*pair)
                 if registry.lookup(n, *pair).distance
                 and registry.lookup(n, type(truth), type(truth)) is not None)


def _row0_is_truth(truth, fitter) -> bool:
    """Whether row 0 of the metrics measures the truth itself (its distances are then 0),
    not the model the fitter's family has of a truth it cannot represent."""
    return type(truth).reference is not Model.reference or _row0_model(truth, fitter) is truth


def _check_row0(name, values, truth, fitter, where="") -> None:
    if _row0_is_truth(truth, fitter):
        assert np.all(values == 0.0), f"{name} of the truth itself is not 0{where}"
    else:  # the expressivity floor of the fitter's family
        assert np.all(np.isfinite(values) & (values >= 0.0)), (
            f"{name} of fitter.as_model(truth) (row 0) is not finite and >= 0{where}")


def check_protocol(truth: Model, fitter: Fitter, n_samples: int) -> None:
    """Draw shapes, dtypes and stream isolation; the fitter's model type and finiteness."""
    assert isinstance(truth, Model), f"{type(truth).__name__} is not a protocol.Model"
    assert isinstance(fitter, Fitter), f"{type(fitter).__name__} is not a protocol.Fitter"
    assert fitter.competence(truth) is not Competence.INCOMPATIBLE, "fitter cannot fit truth"
    truth.check_truth()
    text = json.dumps(truth.to_dict())
    assert len(text) < 1 << 16, f"truth.to_dict() is {len(text)} characters: describe it compactly"
    json.dumps(fitter.to_dict())
    chains = 3
    items = truth.items_for(n_samples)
    data = truth.broadcast(chains).draw(items, chain_streams(1, chains))
    assert data.shape == (chains, items, *truth.event_shape), data.shape
    assert data.dtype == truth.dtype, (data.dtype, truth.dtype)
    # chain c's draws use stream c only: the last chain alone draws the same items
    alone = truth.broadcast(1).draw(items, chain_streams(1, 1, first=chains - 1))
    np.testing.assert_array_equal(alone[0], data[-1], err_msg="draws depend on other chains")
    run = truth.start_run(chains, data)
    model = fitter.fit_chains(data, streams=chain_streams(2, chains), previous=None, truth=run)
    assert isinstance(model, fitter.model_type), type(model)
    assert model.batch_size == chains, model.batch_size
    assert model.finite().shape == (chains,) and model.finite().all(), "fit is not finite"
    again = model.draw(items, chain_streams(3, chains))
    assert again.shape == data.shape and again.dtype == data.dtype


def check_fit_consistency(truth: Model, fitter: Fitter, n_small: int, n_large: int) -> None:
    """Every distance metric is 0 at the truth (row 0; the floor where the family cannot
    represent the truth) and shrinks from ``n_small`` to ``n_large``."""
    names = _distances(truth, fitter)
    if not names:
        return
    few = _run(truth, fitter, n_small, generations=1, chains=32, metrics=names)
    many = _run(truth, fitter, n_large, generations=1, chains=32, metrics=names)
    for name in names:
        _check_row0(name, few.metrics[name][0], truth, fitter)
        small, large = np.median(few.metrics[name][1]), np.median(many.metrics[name][1])
        assert large < small, (f"{name}: median after fitting {n_large} items ({large:.3g}) is "
                               f"not below that after {n_small} items ({small:.3g})")


def check_reproducibility(truth: Model, fitter: Fitter, n_samples: int) -> None:
    """Bit-identical across thread counts and chain batching."""
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run(truth, fitter, n_samples, chains=5)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = _run(truth, fitter, n_samples, chains=5)
    finally:
        numba.set_num_threads(before)
    small = _run(truth, fitter, n_samples, chains=2)
    for name in one.metrics:
        np.testing.assert_array_equal(one.metrics[name], many.metrics[name],
                                      err_msg=f"{name} differs between thread counts")
        np.testing.assert_array_equal(one.metrics[name][:, :2], small.metrics[name],
                                      err_msg=f"{name} depends on the number of chains")


def check_policies(truth: Model, fitter: Fitter, n_samples: int) -> None:
    """Every policy on every applicable sampling path: no NaN, distances 0 in row 0."""
    distances = set(_distances(truth, fitter))
    for policy in POLICIES:
        for sampling in ("exact", "explicit"):
            try:
                sim = _run(truth, fitter, n_samples, policy=policy, sampling=sampling)
            except ValueError as exc:
                if sampling == "exact" and "not exact" in str(exc):
                    continue
                raise
            for name, values in sim.metrics.items():
                assert not np.isnan(values).any(), f"NaN in {name} under {policy!r}, {sampling}"
                if name in distances:
                    _check_row0(name, values[0], truth, fitter, f" ({policy!r})")


def check_record_models(truth: Model, fitter: Fitter, n_samples: int) -> None:
    """Recorded arrays: declared dimensions, row 0 the truth in the fitter's family."""
    sim = _run(truth, fitter, n_samples, record_models=True)
    if type(truth).reference is Model.reference:
        first = fitter.as_model(truth).record()
    else:  # a truth measured through its reference model (a data set's fit): row 0 is it
        root = _random.as_seed_sequence(_run_seed())
        first = truth.reference(fitter, ChainStreams(_random.shared_state(root, 1))).record()
    dims = fitter.model_type.record_dims
    assert set(sim.models) == set(first), (set(sim.models), set(first))
    for name, arr in sim.models.items():
        assert arr.shape[:2] == (4, 4), f"{name}: {arr.shape}"
        if name in dims:
            assert arr.ndim == 2 + len(dims[name]), f"{name}: {arr.shape} vs dims {dims[name]}"
        np.testing.assert_array_equal(arr[0], np.broadcast_to(first[name][0], arr.shape[1:]))
        assert np.isfinite(arr).all(), f"non-finite recorded {name}"


def check_save_load(truth: Model, fitter: Fitter, n_samples: int) -> None:
    """``save`` then ``load`` returns the same arrays and configuration."""
    sim = _run(truth, fitter, n_samples)
    with tempfile.TemporaryDirectory() as tmp:
        back = Simulation.load(sim.save(Path(tmp) / "run.npz"))
    assert back.config == json.loads(json.dumps(sim.config))
    for name, arr in sim.metrics.items():
        np.testing.assert_array_equal(arr, back.metrics[name])


def check_bad_input(truth: Model, fitter: Fitter, n_samples: int) -> None:
    """A fitter class, an unknown metric, an unregistered metric: clear errors up front."""
    def raises(error, call, what):
        try:
            call()
        except error:
            return
        raise AssertionError(f"{what} was accepted")

    raises(TypeError, lambda: _run(truth, type(fitter), n_samples), "a fitter class")
    raises(ValueError, lambda: _run(truth, fitter, n_samples, metrics="no such metric"),
           "an unknown metric")
    pair = (type(truth), fitter.model_type)
    foreign = [n for n in registry.names() if n not in registry.available(*pair)]
    if foreign:
        raises(ValueError, lambda: _run(truth, fitter, n_samples, metrics=foreign[0]),
               f"metric {foreign[0]!r}, not registered for the pair")
    raises(ValueError, lambda: _run(truth, fitter, n_samples, generations=-1),
           "generations=-1")


def check_family(truth: Model, fitter: Fitter, *, n_samples: int = 40, n_small: int = 20,
                 n_large: int = 2000) -> None:
    """Run every check of this module on ``(truth, fitter)``; ``AssertionError`` on failure.

    Parameters
    ----------
    truth : Model
        A truth of the family (a batch of one).
    fitter : Fitter
        A fitter that can fit it.
    n_samples : int
        Items per generation for the runs (small: the checks run in seconds).
    n_small, n_large : int
        Sample sizes compared by :func:`check_fit_consistency`.
    """
    check_protocol(truth, fitter, n_samples)
    check_fit_consistency(truth, fitter, n_small, n_large)
    check_reproducibility(truth, fitter, n_samples)
    check_policies(truth, fitter, n_samples)
    check_record_models(truth, fitter, n_samples)
    check_save_load(truth, fitter, n_samples)
    check_bad_input(truth, fitter, n_samples)
