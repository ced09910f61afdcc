r"""Exact law of :math:`\log(\sigma_t^2/\sigma_0^2)` by characteristic-function inversion.

The Gil-Pelaez inversion behind :func:`~collapse_sim.theory.gaussian_variance_quantiles`
and :func:`~collapse_sim.theory.gaussian_variance_cdf` (their docstrings give the method
and its measured accuracy).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ._special import _centred_loggamma, _digamma_gap

_LOG_EPS_ALIAS = math.log(1e-14)  # target for the aliasing (tail) error of the inversion
_PHI_TOL = 1e-15  # truncate the Gil-Pelaez series where |phi| falls below this
_BLOCK_T = 1024  # distinct generations handled per inversion set-up
_BLOCK_ELEMS = 1 << 21  # max (points x frequencies) per vectorised evaluation


def _log_ratio_moments(nu: int, k: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and standard deviation of :math:`Y_t = \log(\sigma_t^2/\sigma_0^2)`.

    :math:`\mathbb E Y_t = t[\psi(\nu/2) + \log(2/k)] = t[\log(\nu/k) - (\log a - \psi(a))]`
    and :math:`\operatorname{Var} Y_t = t\,\psi'(\nu/2)`, with :math:`a = \nu/2`.
    """
    a = 0.5 * nu
    per_gen_mean = math.log1p((nu - k) / k) - _digamma_gap(a)
    tf = t.astype(np.float64)
    return tf * per_gen_mean, np.sqrt(tf * float(special.polygamma(1, a)))


def _tail_reach(
    a: float, t: np.ndarray, sd: np.ndarray, log_eps: float
) -> tuple[np.ndarray, np.ndarray]:
    r"""Chernoff bounds on the standardised tails of :math:`Y_t`.

    Returns ``(A_left, A_right)`` with :math:`P(Z_t < -A_{\rm left}) \le \varepsilon` and
    :math:`P(Z_t > A_{\rm right}) \le \varepsilon`, :math:`Z_t = (Y_t - \mathbb E Y_t)/\mathrm{sd}`,
    using :math:`P(Z < -A) \le \exp(t\,c(-x) - x\,A\,\mathrm{sd})` (and the mirror image),
    where :math:`c(x) = \ln\Gamma(a+x) - \ln\Gamma(a) - x\psi(a)` is the centred cumulant
    generating function of :math:`\log C`, minimised over a grid of :math:`x`.
    """
    tf = t.astype(np.float64)[:, None]
    sdc = sd[:, None]
    lg_a, psi_a = special.gammaln(a), special.digamma(a)
    x_left = a * np.geomspace(1e-9, 0.9999, 400)
    c_left = special.gammaln(a - x_left) - lg_a + x_left * psi_a
    reach_left = np.min((tf * c_left - log_eps) / (x_left * sdc), axis=1)
    x_right = a * np.geomspace(1e-9, 1e4, 500)
    c_right = special.gammaln(a + x_right) - lg_a - x_right * psi_a
    reach_right = np.min((tf * c_right - log_eps) / (x_right * sdc), axis=1)
    return reach_left, reach_right


def _phi_cutoff(a: float, t: np.ndarray, sd: np.ndarray, log_tol: float) -> np.ndarray:
    r"""Standardised frequency :math:`v` with :math:`|\varphi_{Z_t}(v)| = e^{\text{log\_tol}}`.

    :math:`\log|\varphi_{Z_t}(v)| = t\,[\operatorname{Re}\ln\Gamma(a + iv/\mathrm{sd}_t)
    - \ln\Gamma(a)]` decreases in :math:`v`; solved by doubling then bisection (a margin of
    ``e`` is added, so that ``loggamma``'s cancellation error is irrelevant here).
    """
    tf = t.astype(np.float64)
    target = log_tol - 1.0
    lg_a = special.gammaln(a)

    def log_abs_phi(u: np.ndarray) -> np.ndarray:
        return tf * (special.loggamma(a + 1j * u).real - lg_a)

    hi = 8.0 / sd
    for _ in range(200):
        grow = log_abs_phi(hi) > target
        if not np.any(grow):
            break
        hi = np.where(grow, 2.0 * hi, hi)
    lo = np.zeros_like(hi)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = log_abs_phi(mid) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return hi * sd


class _StandardisedInverter:
    r"""Gil-Pelaez inversion for :math:`Z_t = (Y_t - \mathbb E Y_t)/\mathrm{sd}(Y_t)`.

    For a block of distinct generations ``t`` (all ``>= 1``) this precomputes

    .. math::

        \varphi_t(v_j) = \exp\!\big(t\,D(a, i v_j/\mathrm{sd}_t)\big), \qquad
        v_j = (j + \tfrac12) h,

    (the location term cancels exactly after centring, so ``k`` plays no role) and evaluates

    .. math::

        F_t(z) \approx \tfrac12 - \sum_{j \ge 0}
            \frac{\operatorname{Im}[e^{-i v_j z}\varphi_t(v_j)]}{\pi (j + \frac12)}, \qquad
        f_t(z) \approx \frac{h}{\pi}\sum_{j \ge 0}\operatorname{Re}[e^{-i v_j z}\varphi_t(v_j)].

    The midpoint sum for :math:`F` equals :math:`\tfrac12 - \tfrac12\mathbb E[\mathrm{sq}(Z - z)]`
    where sq is the square wave of period :math:`4\pi/h` equal to sign on
    :math:`(-2\pi/h, 2\pi/h)`, so its aliasing error is at most :math:`P(|Z - z| > 2\pi/h)`.
    ``h = 2 pi / (A_left + A_right)`` with Chernoff reaches at level ``eps`` therefore keeps it
    below ``2 eps`` for every ``z`` in ``[-A_left, A_right]``; outside that range ``F`` is 0 or
    1 to within ``eps``.
    """

    def __init__(self, a: float, t: np.ndarray, sd: np.ndarray, log_eps: float) -> None:
        self.reach_left, self.reach_right = _tail_reach(a, t, sd, log_eps)
        period = float(np.max(self.reach_left + self.reach_right)) + 0.5
        h = 2.0 * math.pi / period
        # Per generation, the frequency beyond which |phi_t(v)| < _PHI_TOL (|phi| decreases
        # in v); a crude loggamma is accurate enough to place the cut-off.
        v_cut = _phi_cutoff(a, t, sd, math.log(_PHI_TOL))
        n_per_t = np.maximum(1, np.ceil(v_cut / h).astype(np.int64))
        n_keep = int(np.max(n_per_t))
        v = (np.arange(n_keep) + 0.5) * h
        used = np.arange(n_keep)[None, :] < n_per_t[:, None]
        phi = np.zeros((t.size, n_keep), dtype=np.complex128)
        rows, cols = np.nonzero(used)
        phi[rows, cols] = np.exp(t[rows] * _centred_loggamma(a, 1j * v[cols] / sd[rows]))
        weight = 1.0 / (math.pi * (np.arange(n_keep) + 0.5))
        self.h = h
        self.v = v
        self.phi_re_w = phi.real * weight
        self.phi_im_w = phi.imag * weight
        self.phi_re = phi.real
        self.phi_im = phi.imag

    def cdf_pdf(
        self, z: np.ndarray, rows: np.ndarray, with_pdf: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """CDF (and density) of ``Z_t`` at points ``z`` for generation rows ``rows``."""
        cdf = np.empty(z.shape)
        pdf = np.empty(z.shape) if with_pdf else None
        step = max(1, _BLOCK_ELEMS // self.v.size)
        for lo in range(0, z.size, step):
            sl = slice(lo, lo + step)
            r = rows[sl]
            arg = z[sl, None] * self.v
            cos, sin = np.cos(arg), np.sin(arg)
            # Im[e^{-ivz} phi] = Im(phi) cos(vz) - Re(phi) sin(vz)
            cdf[sl] = (
                0.5
                - np.einsum("ij,ij->i", self.phi_im_w[r], cos)
                + np.einsum("ij,ij->i", self.phi_re_w[r], sin)
            )
            if pdf is not None:
                # Re[e^{-ivz} phi] = Re(phi) cos(vz) + Im(phi) sin(vz)
                pdf[sl] = (self.h / math.pi) * (
                    np.einsum("ij,ij->i", self.phi_re[r], cos)
                    + np.einsum("ij,ij->i", self.phi_im[r], sin)
                )
        return np.clip(cdf, 0.0, 1.0), pdf


#: Below this standardised skewness and excess kurtosis, ``Z_t`` is normal to within the
#: fourth-order Cornish-Fisher / Edgeworth expansions, whose errors are O(g1^3, g1 g2, g2^2)
#: <= 1e-12: they are used instead of the inversion, which loses its precision there
#: (n = t = 1e9 gave quantiles of 1e-189 instead of 0.022 / 0.135 / 0.83).
NEAR_NORMAL = 1e-4


def _shape_moments(a: float, t: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skewness ``g1`` and excess kurtosis ``g2`` of ``Z_t`` (cumulants t psi^(r)(a))."""
    tf = t.astype(np.float64)
    return (tf * float(special.polygamma(2, a)) / sd**3,
            tf * float(special.polygamma(3, a)) / sd**4)


def _near_normal(a: float, t: np.ndarray, sd: np.ndarray) -> np.ndarray:
    g1, g2 = _shape_moments(a, t, sd)
    return (np.abs(g1) < NEAR_NORMAL) & (np.abs(g2) < NEAR_NORMAL)


def _edgeworth_cdf(a: float, t: np.ndarray, sd: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Fourth-order Edgeworth CDF of ``Z_t`` at ``z`` (shape ``(len(t), m)``)."""
    g1, g2 = (g[:, None] for g in _shape_moments(a, t, sd))
    he2, he3, he5 = z * z - 1.0, z**3 - 3.0 * z, z**5 - 10.0 * z**3 + 15.0 * z
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return special.ndtr(z) - pdf * (g1 * he2 / 6.0 + g2 * he3 / 24.0 + g1 * g1 * he5 / 72.0)


def _cornish_fisher(a: float, t: np.ndarray, sd: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Fourth-order Cornish-Fisher quantiles of ``Z_t`` (shape ``(len(t), len(q))``)."""
    x = special.ndtri(q)[None, :]
    g1, g2 = (g[:, None] for g in _shape_moments(a, t, sd))
    return (
        x
        + g1 * (x * x - 1.0) / 6.0
        + g2 * (x**3 - 3.0 * x) / 24.0
        - g1 * g1 * (2.0 * x**3 - 5.0 * x) / 36.0
    )


def _standardised_quantiles(a: float, t: np.ndarray, sd: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles of ``Z_t`` for distinct ``t >= 1``: safeguarded Newton on the exact CDF, or
    the Cornish-Fisher expansion where ``Z_t`` is normal to 1e-12 (:data:`NEAR_NORMAL`)."""
    normal = _near_normal(a, t, sd)
    if normal.any():
        out = np.empty((t.size, q.size))
        out[normal] = _cornish_fisher(a, t[normal], sd[normal], q)
        if (~normal).any():
            out[~normal] = _standardised_quantiles(a, t[~normal], sd[~normal], q)
        return out
    tail = float(min(np.min(q), 1.0 - np.max(q)))
    log_eps = min(_LOG_EPS_ALIAS, math.log(tail) - math.log(1e3))
    out = np.empty((t.size, q.size))
    for b0 in range(0, t.size, _BLOCK_T):
        tb, sdb = t[b0 : b0 + _BLOCK_T], sd[b0 : b0 + _BLOCK_T]
        inv = _StandardisedInverter(a, tb, sdb, log_eps)
        rows = np.repeat(np.arange(tb.size), q.size)
        target = np.tile(q, tb.size)
        lo = np.repeat(-inv.reach_left, q.size)
        hi = np.repeat(inv.reach_right, q.size)
        z = np.clip(_cornish_fisher(a, tb, sdb, q).ravel(), lo, hi)
        z = np.where(np.isfinite(z), z, 0.5 * (lo + hi))
        active = np.arange(z.size)
        for _ in range(200):
            if active.size == 0:
                break
            za = z[active]
            cdf, pdf = inv.cdf_pdf(za, rows[active])
            diff = cdf - target[active]
            below = diff < 0.0
            lo[active] = np.where(below, za, lo[active])
            hi[active] = np.where(below, hi[active], za)
            with np.errstate(divide="ignore", invalid="ignore"):
                newton = za - diff / pdf
            la, ha = lo[active], hi[active]
            ok = (pdf > 0.0) & (newton > la) & (newton < ha)
            znew = np.where(ok, newton, 0.5 * (la + ha))
            scale = np.maximum(1.0, np.abs(za))
            done = (
                (diff == 0.0)
                | (ok & (np.abs(znew - za) <= 1e-13 * scale))
                | (ha - la <= 1e-13 * scale)
            )
            z[active] = np.where(diff == 0.0, za, znew)
            active = active[~done]
        out[b0 : b0 + _BLOCK_T] = z.reshape(tb.size, q.size)
    return out


def _standardised_cdf(a: float, t: np.ndarray, sd: np.ndarray, z: np.ndarray) -> np.ndarray:
    """CDF of ``Z_t`` for distinct ``t >= 1`` at points ``z`` (shape ``(len(t), m)``); the
    Edgeworth expansion where ``Z_t`` is normal to 1e-12 (:data:`NEAR_NORMAL`)."""
    normal = _near_normal(a, t, sd)
    if normal.any():
        out = np.empty(z.shape)
        out[normal] = np.clip(_edgeworth_cdf(a, t[normal], sd[normal], z[normal]), 0.0, 1.0)
        if (~normal).any():
            out[~normal] = _standardised_cdf(a, t[~normal], sd[~normal], z[~normal])
        return out
    out = np.empty(z.shape)
    for b0 in range(0, t.size, _BLOCK_T):
        tb, sdb = t[b0 : b0 + _BLOCK_T], sd[b0 : b0 + _BLOCK_T]
        zb = z[b0 : b0 + _BLOCK_T]
        inv = _StandardisedInverter(a, tb, sdb, _LOG_EPS_ALIAS)
        res = np.where(zb > inv.reach_right[:, None], 1.0, 0.0)
        inside = (zb >= -inv.reach_left[:, None]) & (zb <= inv.reach_right[:, None])
        rows = np.broadcast_to(np.arange(tb.size)[:, None], zb.shape)[inside]
        if rows.size:
            res[inside] = inv.cdf_pdf(zb[inside], rows, with_pdf=False)[0]
        out[b0 : b0 + _BLOCK_T] = res
    return out
