"""ReSample: latent diffusion with hard data consistency (Song et al., arXiv 2307.08123),
docs/algorithms/latent.md §2.

Latent priors only (:class:`mgdm.priors.latent.LatentPrior` with a problem from
:func:`mgdm.priors.latent.latent_problem`); any differentiable image operator ``A``. On the grid
``T_j = int(linspace(0, 999, K))[j]``, for ``j = K-1, …, 1`` with ``t = T_j`` and ``t' = T_{j-1}``::

    ẑ0      = D_t(z_t)                                                  (graph kept)
    z'      = DDIM_eta(z_t, t -> t') using ẑ0
    z'      <- z' - scale * abar_t * grad_{z_t} ||y - A(Dec(ẑ0))||        (DPS-style guidance)
    if j - 1 is a consistency index:
        ẑ0(y) = argmin_z ||y - A(Dec(z))||^2 from z = ẑ0                  (hard data consistency)
        s^2   = sigma_scale * (1 - abar_t') / (1 - abar_t) * (1 - abar_t / abar_t')
        z_t'  ~ N((s^2 sqrt(abar_t') ẑ0(y) + (1 - abar_t') z') / (s^2 + 1 - abar_t'),
                  s^2 (1 - abar_t') / (s^2 + 1 - abar_t') I)               (stochastic resampling)
    else:
        z_t'  = z'

and the output is the latent ``z_0`` (decode it with :func:`mgdm.priors.latent.decode_samples`).

* The guidance norm is unsquared and per sample; the Reference's step is ``0.5 abar_t``
  (hard-coded in the official code, which ignores its per-task ``scale``).
* Hard data consistency: Adam (step ``lr``, no weight decay) on ``z``, each sample on its own
  residual, stopping a sample once ``mean((y - A(Dec(z)))^2) <= tolerance^2`` (tolerance
  ``sigma_y`` by default: the residual's root mean square reaches the noise level) or after
  ``max_iterations`` steps (the latent optimisation of the paper's Eq. 10).
* Stochastic resampling draws from the product of ``N(sqrt(abar_t') ẑ0(y), (1 - abar_t') I)``,
  the forward noising of the consistent estimate, and ``N(z', s^2 I)``, the unconditional step;
  ``s^2`` is ``sigma_scale`` times the DDPM posterior variance of ``t -> t'``.
* Consistency indices (the Reference's schedule): the destination grid indices
  ``d = j - 1`` with ``0 < d <= (K - 1) - floor(warmup_fraction (K - 1))`` and
  ``d mod consistency_every = 0``; with ``K = 501`` these are ``d = 10, 20, …, 330``.
* Departures from the official code, listed in docs/algorithms/latent.md §2.3: ``ẑ0`` is the Tweedie
  estimate (the official code's "pseudo x0" uses ``1 - abar`` where Tweedie has its square root);
  no "time travel" (extra unconditional steps before the optimisation), no pixel-space stage, no
  final optimisation of ``z_0``; any ``K`` works (the official code needs 500 steps).

Cost per sample: ``K - 1`` VJPs (network, decoder and operator), no forward-only call; ``K = 501``
gives the Reference's 500 steps. Hard data consistency adds at most ``max_iterations`` gradients
of ``A ∘ Dec`` (no network) per consistency index.

Tensor shapes: ``z_t`` is ``[B, *latent_shape]``; residuals and times ``[B]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.devices import is_host
from mgdm.diffusion.bridge import ddim_step
from mgdm.diffusion.schedules import Schedule, timestep_grid
from mgdm.priors.base import Denoiser
from mgdm.priors.latent.problem import require_latent_problem
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import (
    check_integer,
    check_num_steps,
    check_real,
    num_steps_for_budget,
    require_gaussian_noise,
)
from mgdm.samplers._langevin import check_positive
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.dps import residual_norm_gradient
from mgdm.samplers.mgdm import AdamState
from mgdm.samplers.settings import SamplerConfig

TASK_DEFAULTS: dict[str, dict[str, float]] = {
    "sr4": {"sigma_scale": 80.0},
    "sr16": {"sigma_scale": 90.0},
    "half_mask": {"sigma_scale": 60.0},
    "box_inpainting": {"sigma_scale": 80.0},
    "gaussian_blur": {"sigma_scale": 60.0},
    "motion_blur": {"sigma_scale": 80.0},
    "nonlinear_blur": {"sigma_scale": 70.0},
}
"""Reference ``sigma_scale`` per image task (docs/algorithms/latent.md §2); other tasks use the default 40."""

MIN_GRID_POINTS = 2
"""One transition ``T_1 = 999 -> T_0 = 0``."""


@dataclass(frozen=True)
class ReSampleConfig(SamplerConfig):
    """Hyperparameters of ReSample. Field defaults are the Reference's.

    Attributes:
        num_steps: K, points of the grid ``int(linspace(0, 999, K))``: ``K - 1`` transitions.
        eta: DDIM eta of the unconditional step (1: DDPM ancestral).
        guidance_scale: the DPS-style step is ``guidance_scale * abar_t`` times the gradient of
            ``||y - A(Dec(ẑ0))||`` (``>= 0``; 0 disables it).
        sigma_scale: gamma, the factor of the resampling variance ``s^2`` (``> 0``).
        consistency_every: period of the consistency indices.
        warmup_fraction: the first ``floor(warmup_fraction (K - 1))`` transitions have no hard
            data consistency.
        max_iterations: Adam steps of the hard data consistency at most.
        lr: Adam's step, in latent units.
        tolerance: stop a sample's optimisation when its residual's root mean square is below
            it, in the units of ``A(x)`` for ``x`` in ``[-1, 1]``; ``None``: the problem's
            ``sigma_y`` (Gaussian noise).
    """

    task_defaults = TASK_DEFAULTS

    num_steps: int = 501
    eta: float = 1.0
    guidance_scale: float = 0.5
    sigma_scale: float = 40.0
    consistency_every: int = 10
    warmup_fraction: float = 1.0 / 3.0
    max_iterations: int = 200
    lr: float = 5e-3
    tolerance: float | None = None

    def __post_init__(self) -> None:
        check_num_steps("ReSample", self.num_steps, MIN_GRID_POINTS)
        check_real("ReSample", "eta", self.eta, 0.0, 1.0)
        check_real("ReSample", "guidance_scale", self.guidance_scale, 0.0)
        check_positive("ReSample", "sigma_scale", self.sigma_scale)
        check_integer("ReSample", "consistency_every", self.consistency_every, 1)
        check_real("ReSample", "warmup_fraction", self.warmup_fraction, 0.0, 1.0)
        check_integer("ReSample", "max_iterations", self.max_iterations, 0)
        check_positive("ReSample", "lr", self.lr)
        if self.tolerance is not None:
            check_positive(
                "ReSample", "tolerance (or None for the problem's sigma_y)", self.tolerance
            )

    def consistency_indices(self) -> list[int]:
        """The destination grid indices ``d`` after which hard data consistency runs, decreasing."""
        transitions = self.num_steps - 1
        last = transitions - math.floor(self.warmup_fraction * transitions)
        return [d for d in range(last, 0, -1) if d % self.consistency_every == 0]

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(0, K - 1)``."""
        return 0, self.num_steps - 1

    def operator_gradients(self) -> int:
        """The most gradients of ``A ∘ Dec`` the hard data consistency takes per sample."""
        return self.max_iterations * len(self.consistency_indices())


class ReSample(Sampler[ReSampleConfig]):
    """The ReSample posterior sampler for latent priors (see the module docstring)."""

    name: ClassVar[str] = "resample"
    domains: ClassVar[tuple[str, ...]] = ("latent",)
    config_class: ClassVar[type[SamplerConfig]] = ReSampleConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        require_latent_problem("ReSample", problem)
        if self.config.tolerance is None:
            require_gaussian_noise("ReSample (tolerance=None)", problem)

    def with_budget(self, nfe: float) -> ReSample:
        """ReSample with ``K = round(nfe) + 1`` grid points (``K - 1`` calls), at most 1000."""
        return ReSample(
            replace(
                self.config, num_steps=num_steps_for_budget("ReSample", nfe, 1, MIN_GRID_POINTS)
            )
        )

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        cfg = self.config
        tolerance = problem.sigma_y if cfg.tolerance is None else cfg.tolerance
        grid = timestep_grid(cfg.num_steps).tolist()
        consistency = set(cfg.consistency_indices())
        z_t = prior.initial_state(noise, grid[-1]).to(noise.device)
        y = problem.observation_for(noise.batch_size, z_t)
        steps = range(cfg.num_steps - 1, 0, -1)
        for j in tqdm(steps, desc="ReSample", disable=not progress, leave=False):
            t, t_next = grid[j], grid[j - 1]
            z0_hat, grad_norm = residual_norm_gradient(prior, problem, y, z_t, t)
            xi = noise.randn(*z_t.shape[1:], dtype=z_t.dtype)
            z_prior = ddim_step(prior.schedule, z_t, z0_hat, t, t_next, xi, cfg.eta)
            abar_t = float(prior.schedule.alpha_bar(t))
            z_prior = z_prior - cfg.guidance_scale * abar_t * grad_norm
            if j - 1 in consistency:
                z0_y = self.hard_consistency(problem, y, z0_hat, tolerance)
                xi = noise.randn(*z_t.shape[1:], dtype=z_t.dtype)
                z_t = stochastic_resample(
                    prior.schedule, z0_y, z_prior, t, t_next, cfg.sigma_scale, xi
                )
            else:
                z_t = z_prior
        return z_t

    def hard_consistency(self, problem: Problem, y: Tensor, z0: Tensor, tolerance: float) -> Tensor:
        """``ẑ0(y)``: Adam on ``mean((y - A(Dec(z)))^2)`` per sample from ``z0`` ``[B, *latent]``,
        each sample frozen once its mean squared residual is ``<= tolerance^2``."""
        cfg = self.config
        batch = z0.shape[0]
        z = z0.detach().clone()
        adam = AdamState.zeros_like(z)
        done = torch.zeros(batch, dtype=torch.bool, device=z.device)
        step_size = torch.as_tensor(cfg.lr, dtype=z.dtype, device=z.device)
        for _ in range(cfg.max_iterations):
            point = z.detach().requires_grad_(True)
            with torch.enable_grad():
                residual = (y - problem.operator(point)).reshape(batch, -1)
                mse = residual.pow(2).mean(dim=1)
                (grad,) = torch.autograd.grad(mse.sum(), point)
            done = done | (mse.detach() <= tolerance**2)
            if is_host(done) and bool(done.all()):
                break  # on an accelerator all iterations run: finished samples stay frozen
            frozen = done.reshape(batch, *([1] * (z.dim() - 1)))
            z = torch.where(frozen, z, adam.step(z, grad, step_size))
        return z


def stochastic_resample(
    schedule: Schedule,
    z0_y: Tensor,
    z_prior: Tensor,
    t: int,
    t_next: int,
    sigma_scale: float,
    xi: Tensor,
) -> Tensor:
    """A draw of the resampling Gaussian of the module docstring at ``t' = t_next``.

    Args:
        z0_y: the measurement-consistent estimate ``ẑ0(y)`` ``[B, *latent_shape]``.
        z_prior: the (guided) unconditional step ``z'`` at ``t'``, same shape.
        xi: standard normal draws, same shape.
    """
    abar_t = float(schedule.alpha_bar(t))
    abar_next = float(schedule.alpha_bar(t_next))
    variance = sigma_scale * (1.0 - abar_next) / (1.0 - abar_t) * (1.0 - abar_t / abar_next)
    spread = 1.0 - abar_next
    mean = (variance * math.sqrt(abar_next) * z0_y + spread * z_prior) / (variance + spread)
    return mean + math.sqrt(variance * spread / (variance + spread)) * xi
