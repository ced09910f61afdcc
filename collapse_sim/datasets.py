r"""Small real data sets, read from installed packages (no download).

Each function returns a :class:`Dataset`: the points as a read-only float64 array
``(N, d)``, optional integer labels, a name for configurations, and the image shape
when the rows are images. Pass it (or any ``(N, d)`` array) to
:class:`collapse_sim.Empirical`.

=====================  ==============================================================
``digits()``           scikit-learn's bundled ``load_digits``: 1797 handwritten digits,
                       8 × 8 pixels of grey levels 0–16, labels 0–9 (the UCI optdigits
                       test set; shipped inside scikit-learn, so no network is needed)
``two_moons(n)``       two interleaved half circles (scikit-learn's ``make_moons``)
                       with Gaussian noise of standard deviation ``noise``
``blobs(n)``           isotropic Gaussian clusters (scikit-learn's ``make_blobs``:
                       component counts as equal as possible, not i.i.d. labels)
=====================  ==============================================================

The generated sets are deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import MAX_INT, check_int, check_real

__all__ = ["Dataset", "blobs", "digits", "two_moons"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A fixed real data set: ``data`` ``(N, d)`` with optional ``labels`` ``(N,)``.

    Attributes
    ----------
    data : ndarray
        ``(N, d)`` float64 points, read-only.
    name : str
        Short name stored in configurations (never the data).
    labels : ndarray or None
        ``(N,)`` int64 class labels, read-only.
    image_shape : tuple of int or None
        ``(height, width)`` when each row is an image flattened row by row.
    """

    data: np.ndarray
    name: str
    labels: np.ndarray | None = None
    image_shape: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        shape = "" if self.image_shape is None else f", images {self.image_shape}"
        labels = "" if self.labels is None else f", {len(np.unique(self.labels))} classes"
        return f"Dataset({self.name!r}, {self.data.shape[0]} x {self.data.shape[1]}{shape}{labels})"


def _frozen(array, dtype) -> np.ndarray:
    out = np.array(array, dtype=dtype)
    out.setflags(write=False)
    return out


def digits() -> Dataset:
    """The 1797 handwritten digits bundled with scikit-learn (8 × 8 grey levels 0–16).

    Returns
    -------
    Dataset
        ``data`` ``(1797, 64)``, ``labels`` 0–9, ``image_shape`` ``(8, 8)``.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> cs.datasets.digits()
    Dataset('digits', 1797 x 64, images (8, 8), 10 classes)
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Dataset(_frozen(bunch.data, np.float64), "digits",
                   _frozen(bunch.target, np.int64), (8, 8))


def two_moons(n: int = 10_000, noise: float = 0.1, seed: int = 0) -> Dataset:
    r"""Two interleaved half circles in the plane (scikit-learn's ``make_moons``).

    The first moon is :math:`(\cos\theta, \sin\theta)`, the second
    :math:`(1 - \cos\theta, \tfrac12 - \sin\theta)`, :math:`\theta` evenly spaced on
    :math:`[0, \pi]` (``n // 2`` and ``n - n // 2`` points), plus
    :math:`\mathcal N(0, \text{noise}^2 I)`; rows shuffled.

    Parameters
    ----------
    n : int
        Number of points (>= 2).
    noise : float
        Standard deviation of the Gaussian noise (>= 0).
    seed : int
        Seed of the noise and the shuffle (the same seed, the same points).

    Examples
    --------
    >>> import collapse_sim as cs
    >>> cs.datasets.two_moons(1000, noise=0.1, seed=0)
    Dataset('two_moons', 1000 x 2, 2 classes)
    """
    from sklearn.datasets import make_moons

    n = check_int("n", n, minimum=2, maximum=MAX_INT)
    noise = check_real("noise", noise, low=0.0)
    seed = check_int("seed", seed, minimum=0, maximum=2**32 - 1)
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return Dataset(_frozen(x, np.float64), "two_moons", _frozen(y, np.int64))


def blobs(n: int = 1000, centers: int = 3, dim: int = 2, std: float = 1.0,
          seed: int = 0) -> Dataset:
    """Isotropic Gaussian clusters (scikit-learn's ``make_blobs``, Kazdan et al.'s KDE data).

    Cluster centres are uniform on :math:`[-10, 10]^d`; cluster ``j`` gets
    ``n // centers`` points, the first ``n % centers`` clusters one more (stratified
    counts, not i.i.d. labels); rows shuffled.

    Parameters
    ----------
    n : int
        Number of points (>= 2).
    centers : int
        Number of clusters (>= 1).
    dim : int
        Dimension (>= 1).
    std : float
        Standard deviation of every cluster (> 0).
    seed : int
        Seed of the centres, the points and the shuffle.

    Examples
    --------
    >>> import collapse_sim as cs
    >>> cs.datasets.blobs(300, centers=3, seed=0)
    Dataset('blobs', 300 x 2, 3 classes)
    """
    from sklearn.datasets import make_blobs

    n = check_int("n", n, minimum=2, maximum=MAX_INT)
    centers = check_int("centers", centers, minimum=1, maximum=n)
    dim = check_int("dim", dim, minimum=1, maximum=10_000)
    std = check_real("std", std, low=0.0, low_open=True)
    seed = check_int("seed", seed, minimum=0, maximum=2**32 - 1)
    x, y = make_blobs(n_samples=n, centers=centers, n_features=dim, cluster_std=std,
                      random_state=seed)
    return Dataset(_frozen(x, np.float64), "blobs", _frozen(y, np.int64))
