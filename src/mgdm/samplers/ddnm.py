"""DDNM+: denoising diffusion null-space model, noisy variant (Wang, Yu, Zhang, arXiv 2212.00490).

For a linear operator with SVD ``A = U diag(s) V^T`` and Gaussian noise ``sigma_y``, in spectral
coordinates ``x̄ = V^T x``, ``ȳ = U^T y`` (docs/algorithms/ddnm.md). On the grid
``T_j = int(linspace(0, 999, K))[j]``, for ``j = K-1, …, 1`` with ``t = T_j``, ``t' = T_{j-1}``,
``a = sqrt(abar_{t'})`` and ``sigma = sqrt(1 - abar_{t'})``::

    x̂0      = D_t(x_t),  ε̂ = (x_t - sqrt(abar_t) x̂0) / sqrt(1 - abar_t)   (one network call)
    x̂0|y    = x̂0 - V Λ V^T A^+ (A x̂0 - y)
    x_{t'}  = a x̂0|y + V (d1 ⊙ V^T ξ + d2 ⊙ V^T ε̂),    ξ ~ N(0, I)

with, per spectral coordinate ``i`` (singular value ``s_i``; ``s_i = 0`` on the null space),
``d1`` the weight of the fresh noise and ``d2`` that of ``ε̂``:

* ``s_i = 0``: no data; ``d1_i = sigma eta``, ``d2_i = sigma sqrt(1 - eta^2)``;
* ``sigma s_i < a sigma_y``: ``λ_i = s_i sigma sqrt(1 - eta^2) / (a sigma_y)``,
  ``d1_i = sigma eta``, ``d2_i = 0``;
* ``sigma s_i >= a sigma_y``: ``λ_i = 1``, ``d1_i = sqrt(sigma^2 - a^2 sigma_y^2 / s_i^2)``,
  ``d2_i = 0``.

In spectral coordinates ``V^T A^+ (A x̂0 - y)`` is ``x̄0_i - ȳ_i / s_i`` where ``s_i > 0``, so
``(V^T x̂0|y)_i = (1 - λ_i) x̄0_i + (λ_i / s_i) ȳ_i``, computed with ``λ_i / s_i`` in closed
form (no division by a small ``s_i``). Only exact zeros (including those an operator sets
itself, such as DDRM's thresholded blur) are null space. On the last transition (``t' = 0``:
``sigma = 0``) every ``λ_i`` is 0 and the output is ``x_0 = D_{T_1}(x_{T_1})``.

DDNM's ``eta`` splits the *total* noise variance ``sigma^2`` of each coordinate (the observation
noise carried by ``λ_i ȳ_i / s_i`` included); it is not DDIM's eta. No time travel (travel
length 1, repeat 1), as the Reference. The returned sample is the final state ``x_0``.

Cost per sample: ``K - 1`` forward calls, no VJP (999 for ``K = 1000``).

Tensor shapes: ``x_t`` ``[B, *sample_shape]``; spectral vectors ``[B, n]``; per-coordinate
coefficients ``[n]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.diffusion.conversions import x0_to_eps
from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import (
    Spectral,
    check_num_steps,
    check_real,
    num_steps_for_budget,
    require_gaussian_noise,
    require_svd,
    reverse_transitions,
)
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import TASK_NAMES, SamplerConfig

TASK_DEFAULTS: dict[str, dict[str, float]] = {task: {} for task in TASK_NAMES}
"""DDNM+ has no per-task hyperparameter in the Reference (eta = 0.85 and 1000 steps everywhere).
Tasks without an SVD (JPEG, phase retrieval, nonlinear blur, HDR, motion blur) are refused by
:meth:`DDNM.check_compatible`."""

MIN_GRID_POINTS = 2
"""One transition ``999 -> 0``."""


@dataclass(frozen=True)
class DDNMConfig(SamplerConfig):
    """Hyperparameters of DDNM+. Field defaults are the Reference's.

    Attributes:
        num_steps: K, points of the grid ``int(linspace(0, 999, K))``: ``K - 1`` transitions down
            to time 0.
        eta: share of fresh noise in the total noise std (DDNM's eta, not DDIM's), in [0, 1].
    """

    task_defaults = TASK_DEFAULTS

    num_steps: int = 1000
    eta: float = 0.85

    def __post_init__(self) -> None:
        check_num_steps("DDNM", self.num_steps, MIN_GRID_POINTS)
        check_real("DDNM", "eta", self.eta, 0.0, 1.0)

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(K - 1, 0)``."""
        return self.num_steps - 1, 0


@dataclass(frozen=True)
class StepCoefficients:
    """Per-coordinate coefficients of one DDNM+ transition, each ``[n]``.

    In spectral coordinates, ``V^T x̂0|y = keep ⊙ x̄0 + data ⊙ ȳ`` (``keep = 1 - λ``,
    ``data = λ / s``) and ``x̄_{t'} = a V^T x̂0|y + fresh ⊙ ξ̄ + predicted ⊙ ε̄``
    (``fresh = d1``, ``predicted = d2``).
    """

    keep: Tensor
    data: Tensor
    fresh: Tensor
    predicted: Tensor


def step_coefficients(s: Tensor, abar_next: float, sigma_y: float, eta: float) -> StepCoefficients:
    """The coefficients of the table in the module docstring for the transition to ``t'``.

    Args:
        s: singular values padded with zeros to ``[n]``.
        abar_next: ``abar_{t'}``.
    """
    a = math.sqrt(abar_next)
    sigma = math.sqrt(1.0 - abar_next)
    blend = math.sqrt(1.0 - eta**2)
    observed = s > 0
    full = observed & (sigma * s >= a * sigma_y)  # λ = 1: the data is noisier than needed
    partial = observed & ~full  # λ < 1
    safe_s = torch.where(observed, s, torch.ones_like(s))
    zeros = torch.zeros_like(s)
    lam = torch.where(partial, s * sigma * blend / (a * sigma_y), torch.where(full, 1.0, zeros))
    data = torch.where(
        partial,
        torch.full_like(s, sigma * blend / (a * sigma_y)),
        torch.where(full, 1.0 / safe_s, zeros),
    )
    remaining = (sigma**2 - (a * sigma_y / safe_s) ** 2).clamp_min(0.0)
    fresh = torch.where(full, torch.sqrt(remaining), torch.full_like(s, sigma * eta))
    predicted = torch.where(observed, zeros, torch.full_like(s, sigma * blend))
    return StepCoefficients(keep=1.0 - lam, data=data, fresh=fresh, predicted=predicted)


class DDNM(Sampler[DDNMConfig]):
    """The DDNM+ posterior sampler (see the module docstring)."""

    name: ClassVar[str] = "ddnm"
    config_class: ClassVar[type[SamplerConfig]] = DDNMConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        require_svd("DDNM", problem.operator)
        require_gaussian_noise("DDNM", problem)

    def with_budget(self, nfe: float) -> DDNM:
        """DDNM+ with ``K = round(nfe) + 1`` grid points (``K - 1`` calls), at most 1000."""
        return DDNM(
            replace(self.config, num_steps=num_steps_for_budget("DDNM", nfe, 1, MIN_GRID_POINTS))
        )

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        schedule = prior.schedule
        sigma_y = require_gaussian_noise("DDNM", problem)
        svd = require_svd("DDNM", problem.operator)
        transitions = reverse_transitions(self.config.num_steps, last_index=0)
        batch = noise.batch_size
        x_t = prior.initial_state(noise, transitions[0][0]).to(noise.device)
        spectral = Spectral.of(svd, problem, x_t)
        for t, t_next in tqdm(transitions, desc="DDNM+", disable=not progress, leave=False):
            abar_next = float(schedule.alpha_bar(t_next))
            with torch.no_grad():
                x0_hat = prior.denoise(x_t, as_time_vector(t, batch, x_t.device))
            eps_hat = x0_to_eps(x_t, x0_hat, schedule.alpha_bar(t))
            xi = noise.randn(*x_t.shape[1:], dtype=x_t.dtype)
            c = step_coefficients(spectral.singular_values, abar_next, sigma_y, self.config.eta)
            x0_bar = c.keep * spectral.to_spectral(x0_hat) + c.data * spectral.observation
            x_next_bar = (
                math.sqrt(abar_next) * x0_bar
                + c.fresh * spectral.to_spectral(xi)
                + c.predicted * spectral.to_spectral(eps_hat)
            )
            x_t = spectral.from_spectral(x_next_bar)
        return x_t
