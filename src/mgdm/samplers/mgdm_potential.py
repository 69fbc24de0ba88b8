"""MGDM's ``tweedie`` potential: the likelihood corrected by the denoiser's own covariance.

The intermediate potential ``g_t(x) = ∫ g(x_0) p(x_0 | x) dx_0`` is Gaussian when ``p(x_0 | x)``
is, with covariance ``Cov[x_0 | x_t = x] = (1 - a) / sqrt(a) J(x)`` (Tweedie's second-order
formula, ``a = abar_t``, ``J = dD_t/dx``). This potential keeps one scalar of it per sample::

    log G(x) = log N(y; A D_t(x), sigma_y^2 I + v A A^T),   v = (1 - a) / sqrt(a) q

where ``q`` is a Rayleigh quotient of ``J`` along the guidance direction
``w = grad_{x_0} log N(y; A x_0, ...)`` at ``x_0 = D_t(x)``, ``q = <w, J^T w> / <w, w>``. The VJP
``J^T w`` is the gradient the variational fit computes anyway, so ``q`` costs no network call:
each evaluation uses the ``q`` of the previous one (at the first, ``q = sqrt(a)``: the
unit-variance value, ``v = 1 - a``). ``v`` is clipped to ``[0, (1 - a) / a]`` (the variance of
``x_0`` given ``x_t`` under a flat prior). Needs an operator with an SVD
(:func:`mgdm.likelihood.covariance_corrected_log_likelihood`).

Tensor shapes: ``z`` ``[B, *sample_shape]``, times and ``q`` ``[B]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.likelihood import covariance_corrected_log_likelihood
from mgdm.priors.base import Denoiser
from mgdm.problem import Problem


class TweedieCovariancePotential:
    """``log G`` of the module docstring, with its running Jacobian quotient ``q``."""

    def __init__(self, prior: Denoiser, problem: Problem):
        self.prior = prior
        self.problem = problem
        self.quotient: Tensor | None = None
        self._direction: Tensor | None = None

    def variance(self, t: Tensor) -> Tensor:
        """``v`` ``[B]`` at times ``t``."""
        abar = self.prior.schedule.alpha_bar(t)
        root = torch.sqrt(abar)
        quotient = root if self.quotient is None else self.quotient.to(abar)
        return ((1.0 - abar) / root * quotient).clamp(min=0.0).minimum((1.0 - abar) / abar)

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        """``log G(z)`` ``[B]``; its gradient in ``z`` is ``J^T w`` (``v`` held fixed)."""
        x0 = self.prior.denoise(z, t)
        leaf = x0.detach().requires_grad_(True)
        with torch.enable_grad():
            value = covariance_corrected_log_likelihood(self.problem, leaf, self.variance(t))
            (direction,) = torch.autograd.grad(value.sum(), leaf)
        self._direction = direction
        linear = (x0 * direction).flatten(1).sum(1) - (leaf.detach() * direction).flatten(1).sum(1)
        return value.detach() + linear

    def observe(self, gradient: Tensor) -> None:
        """Update ``q`` from ``gradient = J^T w``, the gradient of the last evaluation."""
        direction = self._direction
        assert direction is not None
        norm = (direction * direction).flatten(1).sum(1)
        quotient = (direction * gradient).flatten(1).sum(1) / norm.clamp_min(1e-30)
        if self.quotient is not None:
            quotient = torch.where(norm > 0, quotient, self.quotient)
        self.quotient = quotient.detach()
