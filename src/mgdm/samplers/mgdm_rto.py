"""MGDM's ``x_ell | x_0, x_t`` draw by randomize-then-optimise with Gauss-Newton line steps.

The conditional of MGDM's Gibbs step 1 (docs/algorithms/mgdm.md §3) is
``q(z) ∝ N(z; m, s^2 I) exp(-phi(z))`` with the Gaussian misfit
``phi(z) = ||y - A(D_ell(z))||^2 / (2 sigma_y^2)``. When ``A ∘ D_ell`` is linear, the minimiser of
the randomised objective

    F(z) = ||y + sigma_y eps - A(D_ell(z))||^2 / (2 sigma_y^2) + ||z - z_0||^2 / (2 s^2),
    z_0 = m + s xi,   xi, eps ~ N(0, I),

is an exact draw of ``q`` (randomize-then-optimise, RTO; a draw of the prior and of the
observation noise, then the MAP of the perturbed problem). The fit approximates the minimiser
with ``G`` steps from ``z_0``, each one network VJP, in place of the Gaussian variational fit's
``G`` Adam steps (same cost). Each step is a line step of nonlinear conjugate gradients
(Polak-Ribière+) on ``F``:

* **trial step** along the direction ``d`` with ``a = -(grad F . d) / kappa``, where the curvature
  ``kappa = ||d||^2 / s^2 + ||J d||^2`` (``J`` the Jacobian of the whitened residual
  ``r = (y + sigma_y eps - A(D_ell(z))) / sigma_y``) takes for ``||J d||^2`` its Cauchy-Schwarz
  lower bound ``(r . J d)^2 / ||r||^2 = (d . grad phi)^2 / (2 phi)``, known without a network
  call (``phi = ||r||^2 / 2``). It is exact when ``J d`` is parallel to ``r``: the first step
  (``d = -grad phi``) is then the exact RTO draw when ``J J^T`` is a multiple of the identity
  (inpainting; averaging super-resolution with a near-identity denoiser);
* **line correction**: the next step's evaluation gives the residual at the trial point, hence
  the exact curvature along ``d`` for a linear ``A ∘ D_ell`` (``||J d||^2 = ||r' - r||^2 / a^2``);
  the trial point moves back to the minimiser along ``d`` (never beyond the trial point) and
  the residual and gradient there are interpolated linearly; the next trial step is scaled by
  the same ratio. The last step has no evaluation after it, unless the caller asks for the
  denoised draw (``denoise``): the forward call that computes ``D_ell`` at the last trial point
  then corrects that step too (**last-step correction**), and ``D_ell`` at the corrected point is
  interpolated along the line as the residual is (exact for a linear ``D_ell``);
* **trust region**: a step is at most ``s sqrt(n)`` long (``n`` the entries of ``z``), the
  length of a draw of the bridge prior's noise: beyond it the linearisation of a non-linear
  ``A ∘ D_ell`` (clipping, JPEG) is not trusted. The exact-draw property above holds while the
  minimiser lies within that distance.

On a linear problem the steps are those of conjugate gradients with exact line searches, one
step late. Nothing in them depends on the units of ``x`` or on a learning rate.
Shapes: ``z``, ``m`` ``[B, *sample_shape]``; ``s``, ``phi``, step lengths per sample ``[B]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mgdm.diffusion.conversions import per_sample
from mgdm.random import SampleNoise

WhitenedResidual = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``(z, ell, eps) -> (r, D_ell(z))``: the whitened, perturbed residual
``r = (y - A(D_ell(z))) / sigma_y + eps`` flattened to ``[B, m]``, and the denoised ``D_ell(z)``
``[B, ...]`` it was computed from."""


def rto_draw(
    residual: WhitenedResidual,
    observation_shape: tuple[int, ...],
    mean: Tensor,
    std: Tensor,
    ell: Tensor,
    steps: int,
    noise: SampleNoise,
    *,
    denoise: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """One draw of ``x_ell | x_0, x_t`` by ``steps`` line steps on the randomised objective
    (module docstring), and with ``denoise`` its denoised ``D_ell(x_ell)``.

    Args:
        residual: the whitened, perturbed residual at ``z`` and ``D_ell(z)`` (one network VJP per
            step).
        observation_shape: the shape of one observation (of ``eps``).
        mean, std: the bridge prior ``N(mean, std^2 I)``: ``mean`` ``[B, ...]``, ``std`` ``[B]``.
        ell: times ``[B]`` at which ``D_ell`` is evaluated.
        steps: G, line steps (0: the bridge prior's draw ``z_0``).
        noise: the samples' streams (``xi``, then ``eps``).
        denoise: also return the denoised draw, from one forward call at the last trial point;
            that evaluation corrects the last step too (**last-step correction**, module
            docstring), and the denoised output at the corrected point is interpolated along
            the line, as the residual is.
    Returns:
        ``x_ell`` ``[B, ...]`` and, with ``denoise``, ``x_0`` ``[B, ...]`` (else ``None``); detached.
    """
    batch = mean.shape[0]
    std = std.to(mean.dtype)
    z_0 = mean + per_sample(std, mean) * noise.randn(*mean.shape[1:], dtype=mean.dtype)
    eps = noise.randn(*observation_shape, dtype=mean.dtype).to(mean.device).reshape(batch, -1)
    precision = 1.0 / std**2  # [B]
    radius = std * z_0[0].numel() ** 0.5  # [B]
    tiny = torch.finfo(mean.dtype).tiny

    def dot(a: Tensor, b: Tensor) -> Tensor:
        return (a.reshape(batch, -1) * b.reshape(batch, -1)).sum(-1)

    z = z_0
    trial: _TrialStep | None = None
    ratio = torch.ones_like(precision)
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            whitened, denoised = residual(z, ell, eps)
            (grad_misfit,) = torch.autograd.grad(0.5 * whitened.square().sum(), z)
        evaluation = _Evaluation(z.detach(), whitened.detach(), grad_misfit, denoised.detach())
        if trial is not None:
            evaluation, ratio = trial.corrected(evaluation, precision, ratio)
        point, grad_misfit = evaluation.point, evaluation.grad_misfit
        gradient = grad_misfit + (point - z_0) * per_sample(precision, point)  # grad F
        direction = -gradient
        if trial is not None:  # Polak-Ribière+
            beta = dot(gradient, gradient - trial.gradient) / dot(
                trial.gradient, trial.gradient
            ).clamp_min(tiny)
            direction = direction + per_sample(beta.clamp_min(0.0), point) * trial.direction
        descent = -dot(gradient, direction)
        misfit = 0.5 * evaluation.residual.square().sum(-1)
        length_squared = dot(direction, direction)
        curvature = length_squared * precision + dot(direction, grad_misfit).square() / (
            2.0 * misfit.clamp_min(tiny)
        )
        usable = (curvature > 0) & (descent > 0)
        step = torch.where(usable, descent / curvature.clamp_min(tiny), 0.0) * ratio
        step = torch.minimum(step, radius / length_squared.sqrt().clamp_min(tiny))
        trial = _TrialStep(evaluation, gradient, direction, descent, step)
        z = point + per_sample(step, point) * direction
    z = z.detach()
    if not denoise:
        return z, None
    with torch.no_grad():
        whitened, denoised = residual(z, ell, eps)
    if trial is None:
        return z, denoised
    evaluation = _Evaluation(z, whitened, torch.zeros_like(z), denoised)
    corrected, _ = trial.corrected(evaluation, precision, ratio)
    return corrected.point, corrected.denoised


@dataclass
class _Evaluation:
    """What one network call tells at ``point`` ``[B, ...]``: the whitened residual ``[B, m]``,
    the misfit's gradient and the denoised output ``[B, ...]`` (interpolated along a line after
    a correction)."""

    point: Tensor
    residual: Tensor
    grad_misfit: Tensor
    denoised: Tensor


@dataclass
class _TrialStep:
    """A trial step ``start.point + step * direction``: the evaluation at its start, ``grad F``
    there ``[B, ...]``, the descent ``-grad F . direction`` and the step length ``[B]``."""

    start: _Evaluation
    gradient: Tensor
    direction: Tensor
    descent: Tensor
    step: Tensor

    def corrected(
        self, end: _Evaluation, precision: Tensor, ratio: Tensor
    ) -> tuple[_Evaluation, Tensor]:
        """The line minimiser along ``direction`` from the evaluation ``end`` at the trial point:
        its point, with residual, misfit gradient and denoised output interpolated linearly
        between the two evaluations, and the ratio of its step to the trial step (``ratio``
        where the trial step was 0)."""
        batch = end.residual.shape[0]
        tiny = torch.finfo(end.residual.dtype).tiny
        step = self.step.clamp_min(tiny)
        along = (end.residual - self.start.residual).square().sum(-1) / step.square()  # ||J d||^2
        curvature = along + self.direction.reshape(batch, -1).square().sum(-1) * precision
        best = torch.where(curvature > 0, self.descent / curvature.clamp_min(tiny), self.step)
        best = torch.minimum(best, self.step)
        ratio = torch.where(self.step > 0, best / step, ratio)
        weight = per_sample(ratio, end.point)

        def between(first: Tensor, second: Tensor) -> Tensor:
            return first + weight * (second - first)

        point = self.start.point + per_sample(best, end.point) * self.direction
        residual = self.start.residual + ratio[:, None] * (end.residual - self.start.residual)
        return (
            _Evaluation(
                point,
                residual,
                between(self.start.grad_misfit, end.grad_misfit),
                between(self.start.denoised, end.denoised),
            ),
            ratio,
        )
