"""DPS: diffusion posterior sampling (Chung et al., arXiv 2209.14687), as the Reference runs it.

On the grid ``T_j = int(linspace(0, 999, K))[j]`` (``K = 1000``: ``T_j = j``), for
``j = K-1, …, 2`` with ``t = T_j`` and ``t' = T_{j-1}`` (docs/algorithms/dps.md)::

    x̂0     = D_t(x_t)                                   (graph kept)
    r       = ||y - A(x̂0)||                              (per sample)
    x'      = DDIM_1(x_t, t -> t') using x̂0              (DDPM ancestral step, fixed variance)
    x_{t'}  = x' - (gamma / r) grad_{x_t} ||y - A(x̂0)||^2  =  x' - 2 gamma grad_{x_t} r

and the output is the Tweedie estimate ``D_{T_1}(x_{T_1})``.

Step-size convention (the Reference's, which is the paper's): ``gamma`` multiplies the gradient of
the *squared* residual divided by the residual norm, each sample with its own norm. The official
DPS code multiplies the gradient of the unsquared norm summed over the batch instead, so its
``scale`` is ``2 gamma``. ``sigma_y`` does not enter the update; whatever the noise model, the
guidance is the Euclidean residual. ``x̂0`` is not clipped.

Cost per sample: ``K - 2`` VJPs (forward + backward through the network) and one forward call
(the final Tweedie); ``K = 1000`` gives 998 VJPs + 1 forward.

Tensor shapes: ``x_t`` is ``[B, *sample_shape]``, ``r`` and times ``[B]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.diffusion.bridge import ddim_step
from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import (
    check_num_steps,
    check_real,
    num_steps_for_budget,
    reverse_transitions,
)
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import Domain, SamplerConfig, Values

TASK_DEFAULTS: dict[str, dict[str, float]] = {
    "sr4": {"gamma": 1.0},
    "sr16": {"gamma": 1.0},
    "box_inpainting": {"gamma": 1.0},
    "half_mask": {"gamma": 1.0},
    "gaussian_blur": {"gamma": 0.3},
    "motion_blur": {"gamma": 0.3},
    "jpeg": {"gamma": 0.2},
    "phase_retrieval": {"gamma": 0.4},
    "nonlinear_blur": {"gamma": 0.1},
    "hdr": {"gamma": 0.07},
}
"""Reference gamma per image task (docs/algorithms/dps.md; JPEG at QF = 2). Unlisted tasks use the
default 0.1 (audio: :data:`AUDIO_DEFAULTS`)."""

AUDIO_DEFAULTS: dict[str, float] = {"gamma": 1.0}
"""The Reference's audio separation setting (docs/algorithms/README.md §5)."""

MIN_GRID_POINTS = 3
"""One guided transition ``T_2 -> T_1`` and the final Tweedie at ``T_1``."""


@dataclass(frozen=True)
class DPSConfig(SamplerConfig):
    """Hyperparameters of DPS. Field defaults are the Reference's.

    Attributes:
        num_steps: K, points of the grid ``int(linspace(0, 999, K))``: ``K - 2`` guided
            transitions, then a Tweedie estimate at ``T_1``.
        gamma: the step size; it multiplies ``grad ||y - A(x̂0)||^2 / ||y - A(x̂0)||`` per sample
            (``>= 0``; 0 gives the unconditional DDPM sampler).
    """

    task_defaults = TASK_DEFAULTS
    domain_defaults: ClassVar[Mapping[Domain, Values]] = {"audio": AUDIO_DEFAULTS}

    num_steps: int = 1000
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_num_steps("DPS", self.num_steps, MIN_GRID_POINTS)
        check_real("DPS", "gamma", self.gamma, 0.0)

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(1, K - 2)``."""
        return 1, self.num_steps - 2


class DPS(Sampler[DPSConfig]):
    """The DPS posterior sampler (see the module docstring)."""

    name: ClassVar[str] = "dps"
    config_class: ClassVar[type[SamplerConfig]] = DPSConfig

    def with_budget(self, nfe: float) -> DPS:
        """DPS with ``K = round(nfe) + 1`` grid points (``K - 1`` calls), at most 1000."""
        return DPS(
            replace(self.config, num_steps=num_steps_for_budget("DPS", nfe, 1, MIN_GRID_POINTS))
        )

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        gamma = self.config.gamma
        transitions = reverse_transitions(self.config.num_steps, last_index=1)
        batch = noise.batch_size
        x_t = prior.initial_state(noise, transitions[0][0]).to(noise.device)
        y = problem.observation_for(batch, x_t)
        for t, t_next in tqdm(transitions, desc="DPS", disable=not progress, leave=False):
            x0_hat, grad_norm = residual_norm_gradient(prior, problem, y, x_t, t)
            x_prior = ddim_step(
                prior.schedule, x_t, x0_hat, t, t_next, noise.randn(*x_t.shape[1:], dtype=x_t.dtype)
            )
            x_t = x_prior - 2.0 * gamma * grad_norm
        with torch.no_grad():
            return prior.denoise(x_t, as_time_vector(transitions[-1][1], batch, x_t.device))


def residual_norm_gradient(
    prior: Denoiser, problem: Problem, y: Tensor, x_t: Tensor, t: int
) -> tuple[Tensor, Tensor]:
    """``(D_t(x_t), grad_{x_t} ||y - A(D_t(x_t))||)`` per sample, with one VJP.

    Args:
        y: the observation broadcast to ``[B, *output_shape]``.
        x_t: the state ``[B, *sample_shape]``.
    Returns:
        the detached Tweedie estimate and the gradient, both ``[B, *sample_shape]``.
    """
    x = x_t.detach().requires_grad_(True)
    with torch.enable_grad():
        x0_hat = prior.denoise(x, as_time_vector(t, x.shape[0], x.device))
        norm = (y - problem.operator(x0_hat)).reshape(x.shape[0], -1).norm(dim=1)
        (grad,) = torch.autograd.grad(norm.sum(), x)
    return x0_hat.detach(), grad
