r"""Metrics when the truth or the model is a Gaussian mixture (private; see ``metrics``).

Every model is handled as a mixture: a Gaussian is one component of weight 1.

``w2``. 1-D: exact up to quadrature, :math:`W_2^2=\int_0^1(F^{-1}(u)-G^{-1}(u))^2du`
with :math:`u=\Phi(z)`, the trapezoid rule on :data:`Z_POINTS` points of
:math:`z\in[-8,8]` (the mass beyond is 1e-15) and quantiles solved by
safeguarded Newton on the CDF (lower half) or survival function (upper half).
Measured relative error against adaptive quadrature of the quantile formula: below
1e-8 while the modes of the two distributions lie within about 4 standard
deviations of each other, 1e-5 to 7e-5 at 6, up to 4e-3 at 12 (narrow, separated
components, where the quantile function nearly jumps between modes). d >= 2: the
*sliced* Wasserstein-2 distance
:math:`SW_2^2=E_\theta[W_2^2(\theta_\#p,\theta_\#q)]` over :data:`SLICES` fixed
directions — a different distance from :math:`W_2` (:math:`SW_2 \le W_2`; it is
what scales to mixtures), estimated with the directions' quadrature error.

``kl``. :math:`\mathrm{KL}(p\|q)=E_p[\log p]-E_p[\log q]`. For a Gaussian model the
cross-entropy :math:`-E_p[\log q]` depends on :math:`p` only through its mean and
covariance: closed form; the entropy :math:`-E_p[\log p]` of the truth is computed
once (1-D: adaptive quadrature; d-D: Monte Carlo on :data:`ENTROPY_POINTS` points,
standard error stated in ``MixtureContext.entropy_se``). For a mixture model both
terms are averages over the same :data:`MC_POINTS` held-out truth points
(common random numbers), so the estimate's standard error is
``sd(log p - log q) / sqrt(MC_POINTS)`` (:func:`kl_standard_error`).

``nll``. Average of :math:`-\log q` over the held-out sample (its first
:data:`MC_POINTS` points for mixture models).

``tail_mass``. The truth's central region holds 99% of its mass: 1-D, between
its 0.5% and 99.5% quantiles; d-D, the ellipsoid
:math:`(x-\mu)^\top\Sigma^{-1}(x-\mu)\le r^2` around the truth's overall mean and
covariance with :math:`r` solved so the truth has exactly 1% outside. A mixture
model's mass outside is the weighted sum of its components' (each Gaussian).

``l2``. :math:`\int(p-q)^2 = \sum_{ij}a_ia_j\mathcal N(\mu_i;\mu_j,\Sigma_i+\Sigma_j)`
summed over the pairs of :math:`pp`, :math:`qq` and :math:`-2pq`: closed form.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, special

from ._kernels import linalg as _linalg
from ._kernels import mixdens as _md
from .models import GaussianMixture

Z_POINTS = 1025
SLICES = 16
MC_POINTS = 2000
ENTROPY_POINTS = 200_000
_Z = np.linspace(-8.0, 8.0, Z_POINTS)
_ZW = np.full(Z_POINTS, _Z[1] - _Z[0]) * np.exp(-0.5 * _Z**2) / math.sqrt(2 * math.pi)
_ZW[[0, -1]] *= 0.5
_U = special.ndtr(_Z)


def components(model):
    """``(weights (B,K), means (B,K,d), covs (B,K,d,d))`` of a Gaussian or mixture batch."""
    if isinstance(model, GaussianMixture):
        return model.weights, model.means, model.covs
    return np.ones((model.batch_size, 1)), model.mean[:, None], model.cov[:, None]


def _chol(covs):
    b, k, d, _ = covs.shape
    flat = np.ascontiguousarray(covs).reshape(b * k, d, d)
    out = np.empty_like(flat)
    _linalg.psd_cholesky(flat, out)
    return out.reshape(b, k, d, d)


def mean_logpdf(model, pts) -> np.ndarray:
    """``(B,)`` mean log-density of the points ``pts`` ``(m, d)`` under every member.

    Remembered on the model for the last ``pts`` (``kl`` and ``nll`` share it).
    """
    memo = getattr(model, "_mean_logpdf_memo", None)
    if memo is not None and memo[0] is pts:
        return memo[1]
    w, m, c = components(model)
    out = np.empty(w.shape[0])
    _md.mean_logpdf(np.ascontiguousarray(w), np.ascontiguousarray(m), _chol(c),
                    np.ascontiguousarray(pts), out)
    model._mean_logpdf_memo = (pts, out)
    return out


class MixtureContext:
    """Truth-side quantities computed once per simulation."""

    def __init__(self, truth, heldout):
        self.truth = truth
        self.heldout = heldout
        self.mc = np.ascontiguousarray(heldout[:MC_POINTS])
        self._entropy = None
        self.entropy_se = 0.0
        self._quantiles = {}
        self._radius2 = None
        self._log_p_mc = None

    # -- entropy of the truth ------------------------------------------------------------------
    def entropy(self) -> float:
        """:math:`-E_p[\\log p]` of the truth."""
        if self._entropy is None:
            truth = self.truth
            if truth.dim == 1:
                _, m, c = components(truth)
                lo = float(np.min(m[0, :, 0] - 12 * np.sqrt(c[0, :, 0, 0])))
                hi = float(np.max(m[0, :, 0] + 12 * np.sqrt(c[0, :, 0, 0])))

                def integrand(x):
                    lp = float(truth.logpdf(np.array([[x]]))[0])
                    return -math.exp(lp) * lp

                points = sorted(m[0, :, 0].tolist())
                self._entropy, _ = integrate.quad(integrand, lo, hi, points=points, limit=400)
            else:
                from .sampling import chain_streams, draw_points

                pts = draw_points(truth, ENTROPY_POINTS, chain_streams(20240917, 1))[0]
                lp = truth.logpdf(pts)
                self._entropy = float(-lp.mean())
                self.entropy_se = float(lp.std(ddof=1) / math.sqrt(ENTROPY_POINTS))
        return self._entropy

    def log_p_mc(self) -> np.ndarray:
        if self._log_p_mc is None:
            self._log_p_mc = self.truth.logpdf(self.mc)
        return self._log_p_mc

    # -- quantiles of (projected) truth --------------------------------------------------------
    def truth_quantiles(self, direction=None) -> np.ndarray:
        key = None if direction is None else tuple(np.round(direction, 15))
        if key not in self._quantiles:
            self._quantiles[key] = project_quantiles(self.truth, direction, _Z)[0]
        return self._quantiles[key]

    # -- tail region -----------------------------------------------------------------------------
    def radius2(self, tail_fn) -> float:
        """Squared Mahalanobis radius with exactly 1% of the truth outside (d >= 2)."""
        if self._radius2 is None:
            target = 0.01

            def excess(r2):
                return float(tail_fn(self.truth, r2)[0]) - target

            hi = 10.0
            while excess(hi) > 0:
                hi *= 2.0
            self._radius2 = optimize.brentq(excess, 1e-9, hi, xtol=1e-13, rtol=1e-13)
        return self._radius2


def project_quantiles(model, direction, z) -> np.ndarray:
    """``(B, len(z))`` ``Phi(z)``-quantiles of every member projected on ``direction``.

    ``z`` is increasing (normal scores, so tail levels keep their precision); in 1-D
    ``direction`` is ``None``.
    """
    w, m, c = components(model)
    if direction is None:
        mus, var = m[:, :, 0], c[:, :, 0, 0]
    else:
        mus = m @ direction
        var = np.einsum("i,bkij,j->bk", direction, c, direction)
    out = np.empty((w.shape[0], len(z)))
    _md.quantiles_1d(np.ascontiguousarray(w), np.ascontiguousarray(mus),
                     np.ascontiguousarray(np.sqrt(np.clip(var, 0.0, None))),
                     np.ascontiguousarray(z, dtype=np.float64), out)
    return out


def slice_directions(d: int) -> np.ndarray:
    """:data:`SLICES` fixed unit vectors (half-circle angles for d = 2; Sobol' beyond)."""
    if d == 2:
        ang = np.pi * (np.arange(SLICES) + 0.5) / SLICES
        return np.column_stack([np.cos(ang), np.sin(ang)])
    from scipy import stats

    u = special.ndtri(stats.qmc.Sobol(d, scramble=True, seed=7).random(SLICES))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def _model_quantiles(model, direction) -> np.ndarray:
    if isinstance(model, GaussianMixture):
        return project_quantiles(model, direction, _Z)
    if direction is None:
        mu, var = model.mean[:, 0], model.cov[:, 0, 0]
    else:
        mu = model.mean @ direction
        var = np.einsum("i,bij,j->b", direction, model.cov, direction)
    return mu[:, None] + np.sqrt(np.clip(var, 0.0, None))[:, None] * _Z[None, :]


#: Moments of the normal-score quadrature: sum of weights, of weights * z, of weights * z^2.
_A0, _A1, _A2 = float(np.sum(_ZW)), float(np.sum(_ZW * _Z)), float(np.sum(_ZW * _Z**2))


def _gaussian_projection(model, direction):
    if direction is None:
        mu, var = model.mean[:, 0], model.cov[:, 0, 0]
    else:
        mu = model.mean @ direction
        var = np.einsum("i,bij,j->b", direction, model.cov, direction)
    return mu, np.sqrt(np.clip(var, 0.0, None))


def _w2_squared_gaussian(ctx: MixtureContext, model, direction) -> np.ndarray:
    r"""The quadrature :math:`\sum_i w_i (\mu + s z_i - q_i)^2` for Gaussian models in O(1).

    The model's quantiles are :math:`\mu + s z_i`, so the sum expands into the
    truth-side sums :math:`P_j = \sum_i w_i z_i^{j_1} q_i^{j_2}`, computed once, and the
    quadrature's moments: the same number as the direct sum up to rounding. Where the
    expansion cancels (a result below ``1e-9`` of its terms) the direct sum is used.
    """
    q = ctx.truth_quantiles(direction)
    key = ("moments", None if direction is None else tuple(np.round(direction, 15)))
    if key not in ctx._quantiles:
        ctx._quantiles[key] = (float(np.sum(_ZW * q)), float(np.sum(_ZW * _Z * q)),
                               float(np.sum(_ZW * q * q)))
    p0, p1, p2 = ctx._quantiles[key]
    mu, sd = _gaussian_projection(model, direction)
    out = (mu * mu * _A0 + sd * sd * _A2 + p2 + 2.0 * mu * sd * _A1
           - 2.0 * mu * p0 - 2.0 * sd * p1)
    scale = mu * mu * _A0 + sd * sd * _A2 + p2
    rough = ~(out > 1e-9 * scale)
    if rough.any():
        direct = mu[rough, None] + sd[rough, None] * _Z[None, :]
        out[rough] = np.sum((direct - q) ** 2 * _ZW, axis=1)
    return out


def w2(ctx: MixtureContext, model) -> np.ndarray:
    if not isinstance(model, GaussianMixture):
        if model.dim == 1:
            return np.sqrt(_w2_squared_gaussian(ctx, model, None))
        total = sum(_w2_squared_gaussian(ctx, model, direction)
                    for direction in slice_directions(model.dim))
        return np.sqrt(total / SLICES)
    if model.dim == 1:
        q_model = _model_quantiles(model, None)
        return np.sqrt(np.sum((q_model - ctx.truth_quantiles()) ** 2 * _ZW, axis=1))
    total = np.zeros(model.batch_size)
    for direction in slice_directions(model.dim):
        q_model = _model_quantiles(model, direction)
        total += np.sum((q_model - ctx.truth_quantiles(direction)) ** 2 * _ZW, axis=1)
    return np.sqrt(total / SLICES)


def cross_entropy_gaussian(truth, model) -> np.ndarray:
    """:math:`-E_p[\\log q]` for Gaussian models ``q``, from the truth's mean and covariance."""
    from .metrics import nll_from_moments

    return nll_from_moments(model, truth.mean[0], truth.cov[0])


def kl(ctx: MixtureContext, model) -> np.ndarray:
    if not isinstance(model, GaussianMixture):
        value = cross_entropy_gaussian(ctx.truth, model) - ctx.entropy()
    else:
        # the truth's term through the same kernel as the model's: exactly 0 at the truth
        value = mean_logpdf(ctx.truth, ctx.mc)[0] - mean_logpdf(model, ctx.mc)
    return np.where(np.isnan(value), np.inf, value)


def kl_standard_error(ctx: MixtureContext, model) -> np.ndarray:
    """Monte Carlo standard error of :func:`kl` per member (0 where it is closed form)."""
    if not isinstance(model, GaussianMixture):
        return np.full(model.batch_size, ctx.entropy_se)
    lq = model.logpdf(ctx.mc)
    diff = ctx.log_p_mc()[None, :] - lq
    return diff.std(axis=1, ddof=1) / math.sqrt(ctx.mc.shape[0])


def nll(ctx: MixtureContext, model) -> np.ndarray:
    value = -mean_logpdf(model, ctx.mc)
    return np.where(np.isnan(value), np.inf, value)


def tail_mass(ctx: MixtureContext, model, gaussian_tail) -> np.ndarray:
    """Mass outside the truth's 99% region; ``gaussian_tail(centre, cov_whitener, r2, model)``."""
    w, m, c = components(model)
    d = m.shape[2]
    if d == 1:
        lo, hi = project_quantiles(ctx.truth, None, special.ndtri([0.005, 0.995]))[0]
        sd = np.sqrt(np.clip(c[:, :, 0, 0], 0.0, None))
        mu = m[:, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = special.ndtr((lo - mu) / sd) + special.ndtr((mu - hi) / sd)
        point = ((mu < lo) | (mu > hi)).astype(float)
        return np.sum(w * np.where(sd > 0, spread, point), axis=1)
    r2 = ctx.radius2(lambda mix, rr: _components_outside(ctx.truth, mix, rr, gaussian_tail))
    return _components_outside(ctx.truth, model, r2, gaussian_tail)


def _components_outside(truth, model, r2, gaussian_tail) -> np.ndarray:
    w, m, c = components(model)
    b, k, d = m.shape
    outside = gaussian_tail(truth.mean[0], truth.cov[0], r2, m.reshape(b * k, d),
                            c.reshape(b * k, d, d))
    return np.sum(w * outside.reshape(b, k), axis=1)


def l2(truth, model) -> np.ndarray:
    r""":math:`\int (p - q)^2\,dx`, closed form for Gaussian mixtures."""
    return _overlap(model, model) + _overlap(truth, truth) - 2.0 * _overlap(truth, model)


def _overlap(a, b) -> np.ndarray:
    r""":math:`\int p_a p_b` per member: ``sum_ij w_i v_j N(mu_i - nu_j; 0, S_i + T_j)``."""
    wa, ma, ca = components(a)
    wb, mb, cb = components(b)
    batch = max(wa.shape[0], wb.shape[0])
    d = ma.shape[2]
    diff = ma[:, :, None, :] - mb[:, None, :, :]
    cov = ca[:, :, None] + cb[:, None, :]
    cov = np.broadcast_to(cov, (batch, *cov.shape[1:]))
    diff = np.broadcast_to(diff, (batch, *diff.shape[1:]))
    sign, logdet = np.linalg.slogdet(cov)
    regular = sign > 0
    safe = np.where(regular[..., None, None], cov, np.eye(d))
    sol = np.linalg.solve(safe, diff[..., None])[..., 0]
    quad = np.sum(diff * sol, axis=-1)
    with np.errstate(over="ignore", divide="ignore"):
        dens = np.exp(-0.5 * (d * math.log(2 * math.pi) + np.where(regular, logdet, 0.0) + quad))
    # a singular S_i + T_j (two point masses): infinite density where they coincide
    dens = np.where(regular, dens, np.where(np.all(diff == 0, axis=-1), np.inf, 0.0))
    weight = np.broadcast_to(wa[:, :, None] * wb[:, None, :], dens.shape)
    with np.errstate(invalid="ignore"):
        return np.sum(np.where(weight > 0, weight * dens, 0.0), axis=(1, 2))


def sample_w2(ctx: MixtureContext, pts: np.ndarray) -> np.ndarray:
    """W2 (sliced in d-D) between the truth and the empirical law of ``pts`` ``(B, m, d)``."""
    d = pts.shape[2]
    if d == 1:
        q = np.quantile(pts[:, :, 0], _U, axis=1).T
        return np.sqrt(np.sum((q - ctx.truth_quantiles()) ** 2 * _ZW, axis=1))
    total = np.zeros(pts.shape[0])
    for direction in slice_directions(d):
        q = np.quantile(pts @ direction, _U, axis=1).T
        total += np.sum((q - ctx.truth_quantiles(direction)) ** 2 * _ZW, axis=1)
    return np.sqrt(total / SLICES)


def sample_tail_mass(ctx: MixtureContext, pts: np.ndarray, gaussian_tail) -> np.ndarray:
    """Fraction of ``pts`` ``(B, m, d)`` outside the truth's central 99% region."""
    truth = ctx.truth
    d = pts.shape[2]
    if d == 1:
        lo, hi = project_quantiles(truth, None, special.ndtri([0.005, 0.995]))[0]
        return np.mean((pts[:, :, 0] < lo) | (pts[:, :, 0] > hi), axis=1)
    if isinstance(truth, GaussianMixture):
        r2 = ctx.radius2(lambda mix, rr: _components_outside(truth, mix, rr, gaussian_tail))
    else:
        from scipy import stats

        r2 = float(stats.chi2.ppf(0.99, d))
    inv = np.linalg.inv(np.linalg.cholesky(truth.cov[0]))
    white = (pts - truth.mean[0]) @ inv.T
    return np.mean(np.sum(white**2, axis=2) > r2, axis=1)
