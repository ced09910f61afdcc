r"""The moments of the first :math:`k` of :math:`n` Gaussian points, given the moments of all
:math:`n`, drawn by their exact conditional law (the paired exact path of ``KeepReal``).

For :math:`n` i.i.d. :math:`\mathcal N(\mu, \Sigma)` points, an orthonormal basis of the
contrasts (vectors orthogonal to :math:`\mathbf 1`) splits into :math:`k-1` contrasts within
the first :math:`k` points, :math:`n-k-1` within the others and one between the two groups,
:math:`u_i = \sqrt{(n-k)/(nk)}` for :math:`i \le k` and :math:`-\sqrt{k/(n(n-k))}` after.
Stack the projections of the centred points on them as the rows of
:math:`E = [E_1; E_2; e^\top]`, :math:`(n-1)\times d`, rows i.i.d. :math:`\mathcal N(0,\Sigma)`.
Then the total scatter is :math:`S = E^\top E`, the first group's scatter is
:math:`S_k = E_1^\top E_1` and its mean is :math:`\bar x_k = \bar x + \sqrt{(n-k)/(nk)}\,e`.

Write :math:`E = QR` (:math:`Q` with orthonormal columns, :math:`R` upper triangular with a
positive diagonal, so :math:`L = R^\top` is the Cholesky factor of :math:`S`). The law of
:math:`E` is invariant under :math:`E \mapsto HE` for every orthogonal :math:`H`, and
:math:`HE = (HQ)R`: given :math:`R`, :math:`Q` is uniform on its Stiefel manifold whatever
:math:`\Sigma`, independent of :math:`S` and of :math:`\bar x`. With :math:`Q_1` the first
:math:`k-1` rows of :math:`Q` and :math:`q` its last row,

.. math::

    S_k = L\,(Q_1^\top Q_1)\,L^\top, \qquad e = L\,q .

So, given :math:`(\bar x, S)`, the first group's moments are drawn from standard
quantities: :math:`A \sim \mathrm{Wishart}_d(k-1, I)`, :math:`B \sim \mathrm{Wishart}_d(n-k-1, I)`
and :math:`z \sim \mathcal N(0, I_d)`, independent (the Gram blocks of a fresh standard
:math:`E`), :math:`T` the Cholesky factor of :math:`A + B + zz^\top`, and
:math:`Q_1^\top Q_1 = T^{-1} A T^{-\top}`, :math:`q = T^{-1} z`. In one dimension this is
:math:`S_k = S\,X_1/(X_1+X_2+z^2)` and :math:`e = \sqrt{S}\,z/\sqrt{X_1+X_2+z^2}` with
:math:`X_1 \sim \chi^2_{k-1}`, :math:`X_2 \sim \chi^2_{n-k-1}`. The cost does not grow with
:math:`n`. It needs :math:`n - 1 \ge d` (a non-singular total scatter).
"""

import math

import numba as nb
import numpy as np

from ._dispatch import chain_kernel
from .linalg import cholesky_psd_one
from .rng import next_chisquare, next_normal


@nb.njit
def split_1d(s, n, k, mean, scatter):
    """``(mean, scatter)`` of the first ``k`` of ``n`` points given all ``n``'s (d = 1).

    Draws, in this order, :math:`X_1 \\sim \\chi^2_{k-1}` (none if ``k = 1``),
    :math:`X_2 \\sim \\chi^2_{n-k-1}` (none if ``k = n - 1``) and one normal.
    """
    x1 = next_chisquare(s, k - 1) if k > 1 else 0.0
    x2 = next_chisquare(s, n - k - 1) if n - k > 1 else 0.0
    z = next_normal(s)
    total = x1 + x2 + z * z
    part = scatter * (x1 / total)
    shift = math.sqrt(scatter) * (z / math.sqrt(total)) * math.sqrt((n - k) / (n * k))
    return mean + shift, part


@nb.njit
def _bartlett(s, df, d, out):
    """``out`` += ``A A^T`` for :math:`A` the Bartlett factor of :math:`\\mathrm{Wishart}_d(df, I)`
    (rank ``min(df, d)``), as ``moments.exact_normal_moments`` draws it."""
    a = np.zeros((d, d))
    for i in range(d):
        left = df - i
        a[i, i] = math.sqrt(next_chisquare(s, left)) if left > 0 else 0.0
        for j in range(min(i, df)):
            a[i, j] = next_normal(s)
    for i in range(d):
        for j in range(d):
            acc = 0.0
            for t in range(min(i, j) + 1):
                acc += a[i, t] * a[j, t]
            out[i, j] += acc


@nb.njit
def _solve_lower(t, b):
    """:math:`T^{-1} b` in place for the lower-triangular, non-singular ``t``."""
    d = t.shape[0]
    for i in range(d):
        acc = b[i]
        for j in range(i):
            acc -= t[i, j] * b[j]
        b[i] = acc / t[i, i]


@chain_kernel
def split_moments(states, n, k, mean, scatter, out_mean, out_scatter):
    """Chain ``c``: ``out_mean[c]``, ``out_scatter[c]`` of the first ``k`` of the ``n`` points
    whose moments are ``mean[c]`` ``(d,)`` and ``scatter[c]`` ``(d, d)``; ``0 < k < n``,
    ``n - 1 >= d``.

    In 1-D through :func:`split_1d`; in ``d`` dimensions it draws :math:`A`, then
    :math:`B` (Bartlett factors) and then :math:`z`, and forms :math:`L U L^\\top` and
    :math:`\\bar x + \\sqrt{(n-k)/(nk)}\\, L q` (see the module).
    """
    chains, d = mean.shape
    factor = math.sqrt((n - k) / (n * k))
    for c in nb.prange(chains):
        s = states[c]
        if d == 1:
            m, v = split_1d(s, n, k, mean[c, 0], scatter[c, 0, 0])
            out_mean[c, 0] = m
            out_scatter[c, 0, 0] = v
            continue
        a = np.zeros((d, d))
        _bartlett(s, k - 1, d, a)
        total = a.copy()
        _bartlett(s, n - k - 1, d, total)
        z = np.empty(d)
        for i in range(d):
            z[i] = next_normal(s)
        for i in range(d):
            for j in range(d):
                total[i, j] += z[i] * z[j]
        t = np.empty((d, d))
        cholesky_psd_one(total, t)
        # U = T^-1 A T^-T: solve T Y = A column by column, then T U = Y^T
        y = np.empty((d, d))
        col = np.empty(d)
        for j in range(d):
            for i in range(d):
                col[i] = a[i, j]
            _solve_lower(t, col)
            for i in range(d):
                y[i, j] = col[i]
        u = np.empty((d, d))
        for j in range(d):
            for i in range(d):
                col[i] = y[j, i]
            _solve_lower(t, col)
            for i in range(d):
                u[i, j] = col[i]
        _solve_lower(t, z)  # q = T^-1 z
        low = np.empty((d, d))
        cholesky_psd_one(np.ascontiguousarray(scatter[c]), low)
        lu = np.zeros((d, d))
        for i in range(d):
            for j in range(d):
                acc = 0.0
                for t_ in range(i + 1):
                    acc += low[i, t_] * u[t_, j]
                lu[i, j] = acc
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for t_ in range(j + 1):
                    acc += lu[i, t_] * low[j, t_]
                out_scatter[c, i, j] = acc
                out_scatter[c, j, i] = acc
        for i in range(d):
            acc = 0.0
            for j in range(i + 1):
                acc += low[i, j] * z[j]
            out_mean[c, i] = mean[c, i] + factor * acc
