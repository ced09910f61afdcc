"""Functional expressivity: the best single Gaussian for a mixture, and its error floor."""

from __future__ import annotations


def best_gaussian_approximation(truth):
    r"""The Gaussian :math:`q^*` closest to ``truth`` in :math:`\mathrm{KL}(\text{truth}\,\|\,q)`.

    For any distribution :math:`p` with mean :math:`\mu` and covariance :math:`\Sigma`,

    .. math::

        \mathrm{KL}(p\,\|\,\mathcal N(m, S)) = -H(p) + \tfrac12\big[d\log 2\pi + \log\det S
        + \operatorname{tr}(S^{-1}\Sigma) + (\mu - m)^\top S^{-1}(\mu - m)\big],

    minimised at :math:`m = \mu`, :math:`S = \Sigma`: moment matching. For a mixture
    :math:`\mu = \sum_k w_k\mu_k` and
    :math:`\Sigma = \sum_k w_k(\Sigma_k + \mu_k\mu_k^\top) - \mu\mu^\top`.

    Parameters
    ----------
    truth : Gaussian or GaussianMixture
        A single distribution.

    Returns
    -------
    Gaussian
    """
    from ..models import Gaussian, GaussianMixture

    if not isinstance(truth, Gaussian | GaussianMixture):
        raise TypeError(f"truth must be a Gaussian or GaussianMixture, got {type(truth).__name__}")
    if truth.batch_size != 1:
        raise ValueError("truth must be a single distribution, not a batch")
    return Gaussian(mean=truth.mean[0], cov=truth.cov[0])


def gaussian_mismatch_floor(truth) -> dict:
    r"""Error floor of fitting a single Gaussian to ``truth``: what no sample size removes.

    The MLE Gaussian fit converges to :func:`best_gaussian_approximation` as the
    sample size grows, so its distance to the truth converges to the distance of
    :math:`q^*`, not to 0 (functional expressivity error, Shumailov et al. 2024).

    Parameters
    ----------
    truth : Gaussian or GaussianMixture
        A truth :func:`~collapse_sim.simulate` accepts: a single distribution whose
        covariances are positive definite.

    Returns
    -------
    dict
        ``{"kl": KL(truth || q*), "w2": W2(truth, q*), "l2": int (p - q*)^2, "model": q*}``.
        ``kl`` is :math:`H(q^*) - H(p)` (entropy of the truth by quadrature in 1-D,
        Monte Carlo with 2e5 points in d-D); ``w2`` is exact up to quadrature in 1-D
        and the sliced distance in d-D (see :mod:`collapse_sim.metrics`).

    Raises
    ------
    ValueError
        For a degenerate truth (a singular covariance, e.g. ``Gaussian(mean=0.0,
        var=0.0)``), as ``simulate`` does: a point mass has no density, so the ``l2``
        distance between densities does not exist (:math:`\int p^2 = \infty`) and
        ``kl`` is infinite: there is no floor to state.
    """
    from .. import metrics
    from ..models import Gaussian, GaussianMixture

    if not isinstance(truth, Gaussian | GaussianMixture):
        raise TypeError(f"truth must be a Gaussian or GaussianMixture, got {type(truth).__name__}")
    truth.check_truth()  # before any work: a single, non-degenerate distribution
    best = best_gaussian_approximation(truth)
    return {
        "kl": float(metrics.kl(truth, best)[0]),
        "w2": float(metrics.w2(truth, best)[0]),
        "l2": float(metrics.l2(truth, best)[0]),
        "model": best,
    }
