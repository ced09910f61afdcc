r"""A classifier of the real data as a sample-quality proxy that needs no neural network.

For a labelled data set (:class:`~collapse_sim.Empirical` with ``labels``: the digits), a
multinomial logistic regression (scikit-learn's ``LogisticRegression``, L2 penalty
``C = 1``, lbfgs) is trained once on the training split, pixels divided by their overall
standard deviation, and remembered for that data set and split. At every generation each
chain's model draws :data:`CLASSIFIER_SAMPLES` samples from streams of the metric context
(never the run's own: the run does not change when these metrics are asked for), the
classifier labels them, and three metrics summarise what it sees:

========================= ==================================================================
``classifier_confidence`` mean over the samples of the classifier's top probability
                          :math:`\max_j p(j \mid x)`: how much they look like *some* digit
``class_entropy``         entropy :math:`-\sum_j f_j \log f_j` (nats) of the predicted-class
                          shares :math:`f_j`: :math:`\log 10 \approx 2.30` when the ten
                          digits are equally common, 0 when every sample is one digit
``classes_covered``       number of classes predicted for at least :data:`COVERAGE_SHARE` of
                          the samples (1%: 5 of 500), so that a class the classifier
                          assigns to a stray blurry sample now and then does not count
========================= ==================================================================

They need class labels: registered with ``needs="labels"`` they are computed only when
asked for (``metrics=[..., "classes_covered"]``), and a truth without labels is refused
with a ``ValueError`` naming the metric before any chain is sampled. They apply to every
point model of a labelled data set (PPCA, Gaussian, mixture …).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np

from ..protocol import PointModel
from ..registry import register_metric
from . import _blas
from .empirical import Empirical

#: Samples per chain and generation the classifier labels.
CLASSIFIER_SAMPLES = 500
#: Smallest share of a chain's samples a class needs to count as covered.
COVERAGE_SHARE = 0.01
#: Most classifiers remembered (one per data set and split).
_CACHE_SIZE = 8

_CACHE: dict[tuple, Classifier] = {}


@dataclass(frozen=True)
class Classifier:
    """A fitted linear softmax classifier on the raw features.

    Attributes
    ----------
    coef : ndarray
        ``(K, d)`` weights (already divided by the training scale).
    intercept : ndarray
        ``(K,)``.
    classes : ndarray
        ``(K,)`` labels, in the order of the rows of ``coef``.
    """

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray

    def probabilities(self, points: np.ndarray) -> np.ndarray:
        """Class probabilities ``(B, m, K)`` of the points ``(B, m, d)``.

        One matrix product per member (chain), so a chain's values do not depend on how
        many chains are classified together.
        """
        b, _, d = points.shape
        weights = np.broadcast_to(self.coef.T, (b, d, self.coef.shape[0]))
        with _blas.one_thread():
            logits = np.matmul(points, weights) + self.intercept
        logits -= logits.max(axis=2, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=2, keepdims=True)
        return logits

    def measures(self, points: np.ndarray) -> np.ndarray:
        """``(3, B)``: mean top probability, entropy of the predicted-class shares (nats),
        and the number of classes with at least :data:`COVERAGE_SHARE` of the points."""
        probs = self.probabilities(points)
        m, k = probs.shape[1], probs.shape[2]
        counts = (np.argmax(probs, axis=2)[:, :, None] == np.arange(k)).sum(axis=1)
        shares = counts / m
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(shares > 0, np.log(np.where(shares > 0, shares, 1.0)), 0.0)
        out = np.empty((3, points.shape[0]))
        out[0] = probs.max(axis=2).mean(axis=1)
        out[1] = np.maximum(-(shares * logs).sum(axis=1), 0.0)
        out[2] = (shares >= COVERAGE_SHARE - 1e-12).sum(axis=1)
        return out


def classifier(truth: Empirical, *, metric: str = "this metric") -> Classifier:
    """The logistic regression of ``truth``'s training split (fitted once, remembered).

    Raises
    ------
    ValueError
        If ``truth`` has no class labels (naming ``metric``), or only one class.
    """
    labels = getattr(truth, "train_labels", None)
    if labels is None:
        raise ValueError(f"metric {metric!r} needs class labels, and {truth!r} has none: give "
                         "Empirical(data, labels=...) or a Dataset with labels "
                         "(cs.datasets.digits())")
    classes = np.unique(labels)
    if classes.size < 2:
        raise ValueError(f"metric {metric!r} needs at least 2 classes in the training split, "
                         f"got {classes.size}")
    key = (truth.sha256, truth.heldout_share, truth.split_seed,
           hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest())
    found = _CACHE.get(key)
    if found is None:
        found = _fit(truth.train, labels)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = found
    return found


def _fit(points: np.ndarray, labels: np.ndarray) -> Classifier:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    scale = float(points.std()) or 1.0
    model = LogisticRegression(max_iter=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(points / scale, labels)
    coef = model.coef_ / scale
    intercept = model.intercept_
    if coef.shape[0] == 1:  # binary: softmax of (-z/2, z/2) is the sigmoid of z
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return Classifier(np.ascontiguousarray(coef), np.ascontiguousarray(intercept),
                      np.asarray(model.classes_))


def scores(truth: Empirical, points) -> dict[str, np.ndarray]:
    """The three metrics for given points ``(m, d)`` or ``(B, m, d)`` (e.g. real digits).

    Returns
    -------
    dict
        ``classifier_confidence``, ``class_entropy``, ``classes_covered``: ``(B,)`` each.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[2] != truth.dim:
        raise ValueError(f"points must have shape (m, {truth.dim}) or (B, m, {truth.dim}), got "
                         f"{np.shape(points)}")
    values = classifier(truth).measures(pts)
    return dict(zip(_NAMES, values, strict=True))


_NAMES = ("classifier_confidence", "class_entropy", "classes_covered")


def _measures(truth, model, ctx, name: str) -> np.ndarray:
    """``(3, B)`` for ``model`` at ``ctx.generation`` (shared by the three metrics)."""
    memo = getattr(ctx, "_classifier_memo", None)
    if memo is not None and memo[0] is model and memo[1] == ctx.generation:
        return memo[2]
    clf = classifier(truth, metric=name)
    points = model.draw(CLASSIFIER_SAMPLES, ctx.streams(model.batch_size))
    out = clf.measures(points)
    ctx._classifier_memo = (model, ctx.generation, out)
    return out


def _metric(name: str):
    row = _NAMES.index(name)
    return lambda truth, model, ctx: _measures(truth, model, ctx, name)[row].copy()


_DOCS = {
    "classifier_confidence": "mean top probability a classifier of the real data gives the "
                             "model's samples (needs labels)",
    "class_entropy": "entropy (nats) of the classes a classifier of the real data assigns to "
                     "the model's samples (needs labels)",
    "classes_covered": f"classes assigned to >= {COVERAGE_SHARE:.0%} of the model's samples by "
                       "a classifier of the real data (needs labels)",
}

for _name in _NAMES:
    register_metric(_name, Empirical, PointModel, _metric(_name), needs="labels",
                    doc=_DOCS[_name])
