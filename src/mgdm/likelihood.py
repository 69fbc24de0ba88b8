"""Approximations of the noisy likelihood ``g_t(x_t) = ∫ g(x_0) p(x_0 | x_t) dx_0``.

``plain`` (DPS-like, MGDM's reference): ``g(D_t(x_t))``, i.e. ``N(y; A D_t(x_t), sigma_y^2 I)``.

``covariance-corrected`` (PGDM-like): ``N(y; A D_t(x_t), sigma_y^2 I + r_t^2 A A^T)`` with
``r_t^2 = 1 - abar_t`` the variance of ``x_0 | x_t`` for data of unit variance. It is exact
when the prior is one Gaussian ``N(mu, I)``, and flattens the potential at high noise instead of
asking ``A D_t(x_t)`` to fit ``y`` to within ``sigma_y``. Needs Gaussian noise and an SVD of
``A``: with ``A = U diag(s) V^T`` and ``e = U^T (y - A D)``,
``log g = -1/2 sum_i e_i^2 / (sigma_y^2 + r^2 s_i^2)`` (``s_i = 0`` beyond the rank), up to
a constant.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.problem import Problem

LIKELIHOODS: tuple[str, ...] = ("plain", "covariance-corrected")


def check_likelihood(name: str) -> str:
    """``name`` if it is one of :data:`LIKELIHOODS`; else a one-line ``ValueError``."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown MGDM likelihood {name!r}; accepted: {', '.join(LIKELIHOODS)}.")
    return name


def check_covariance_correction(problem: Problem) -> None:
    """``ValueError`` unless the problem supports the covariance-corrected likelihood."""
    svd = problem.operator.svd
    if svd is None:
        raise ValueError(
            f"the covariance-corrected likelihood needs an operator with an SVD; "
            f"{type(problem.operator).__name__} has none. Use likelihood='plain'."
        )
    problem.sigma_y  # raises for non-Gaussian noise  # noqa: B018


def covariance_corrected_log_likelihood(
    problem: Problem, x0_hat: Tensor, extra_variance: Tensor
) -> Tensor:
    """``log N(y; A x0_hat, sigma_y^2 I + v A A^T)`` up to a constant, per sample.

    Args:
        x0_hat: ``[B, *input_shape]`` denoised estimates.
        extra_variance: ``v`` per sample, ``[B]`` (``r_t^2``).
    Returns:
        ``[B]``.
    """
    svd = problem.operator.svd
    prediction = problem.operator(x0_hat)
    residual = problem.observation_for(x0_hat.shape[0], prediction) - prediction
    spectral = svd.Ut(residual)  # [B, m]
    variances = torch.full_like(spectral, problem.sigma_y**2)
    s = svd.singular_values.to(spectral)
    rank = s.numel()
    variances[:, :rank] = variances[:, :rank] + extra_variance.to(spectral)[:, None] * s[None] ** 2
    return -0.5 * (spectral**2 / variances).sum(-1)
