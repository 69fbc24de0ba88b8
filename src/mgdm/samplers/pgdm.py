"""ΠGDM: pseudo-inverse guided diffusion (Song, Vahdat, Mardani, Kautz, ICLR 2023), Reference form.

For a linear operator with SVD ``A = U diag(s) V^T`` and Gaussian noise ``sigma_y``, write
``x̄ = V^T x`` and ``ȳ = U^T y``. The potential at time ``t`` (docs/algorithms/pgdm.md) is::

    phi_t(x̄0) = -1/2 sum_i (ȳ_i - s_i x̄0_i)^2 / (s_i^2 + sigma_y^2 / (1 - abar_t))

summed over the singular values. On the grid ``T_j = int(linspace(0, 999, K))[j]``, for
``j = K-1, …, 2`` with ``t = T_j``, ``t' = T_{j-1}``::

    x̂0      = D_t(x_t)                                  (graph kept)
    x'       = DDIM_eta(x_t, t -> t') using x̂0           (eta = 1: DDPM ancestral step)
    x_{t'}   = x' + sqrt(abar_{t'} abar_t) grad_{x_t} phi_t(V^T x̂0)

and the output is ``D_{T_1}(x_{T_1})``. The gradient is ``1 - abar_t`` times the paper's
likelihood score ``[(y - A x̂0)^T (r_t^2 A A^T + sigma_y^2 I)^{-1} A d x̂0/d x_t]^T`` with
``r_t^2 = 1 - abar_t``; the weight ``sqrt(abar_{t'} abar_t)`` is the Reference's (and azula's).

Coordinates: the Reference runs the whole chain in ``x̄`` with the wrapped network
``ε̄(x̄, t) = V^T ε(V x̄, t)``. Since ``V`` is orthogonal, the DDIM step and the gradient commute
with it, so this module runs the same chain in the original coordinates and evaluates only the
potential spectrally; the fresh noise ``ξ`` of the DDIM step is drawn in the original
coordinates (``V^T ξ`` has the same law). The Reference's pixel-space JPEG surrogate
(``<stopgrad(y - A(x̂0)), x̂0>``) is not implemented: operators without an SVD are refused.

Cost per sample: ``K - 2`` VJPs and one forward call (998 + 1 for ``K = 1000``).

Tensor shapes: ``x_t`` ``[B, *sample_shape]``; spectral vectors ``[B, n]`` with ``n`` the input
size; ``phi_t`` ``[B]``.
"""

from __future__ import annotations

import math
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
"""ΠGDM has no per-task hyperparameter in the Reference (eta = 1 and 1000 steps everywhere).
Tasks without an SVD (JPEG, phase retrieval, nonlinear blur, HDR, motion blur) are refused by
:meth:`PGDM.check_compatible`."""

MIN_GRID_POINTS = 3
"""One guided transition ``T_2 -> T_1`` and the final Tweedie at ``T_1``."""


@dataclass(frozen=True)
class PGDMConfig(SamplerConfig):
    """Hyperparameters of ΠGDM. Field defaults are the Reference's.

    Attributes:
        num_steps: K, points of the grid ``int(linspace(0, 999, K))``: ``K - 2`` guided
            transitions, then a Tweedie estimate at ``T_1``.
        eta: the DDIM eta of the unconditional part of each step (1: DDPM ancestral step).
    """

    task_defaults = TASK_DEFAULTS

    num_steps: int = 1000
    eta: float = 1.0

    def __post_init__(self) -> None:
        check_num_steps("PGDM", self.num_steps, MIN_GRID_POINTS)
        check_real("PGDM", "eta", self.eta, 0.0, 1.0)

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(1, K - 2)``."""
        return 1, self.num_steps - 2


class PGDM(Sampler[PGDMConfig]):
    """The ΠGDM posterior sampler (see the module docstring)."""

    name: ClassVar[str] = "pgdm"
    config_class: ClassVar[type[SamplerConfig]] = PGDMConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        require_svd("PGDM", problem.operator)
        require_gaussian_noise("PGDM", problem)

    def with_budget(self, nfe: float) -> PGDM:
        """ΠGDM with ``K = round(nfe) + 1`` grid points (``K - 1`` calls), at most 1000."""
        return PGDM(
            replace(self.config, num_steps=num_steps_for_budget("PGDM", nfe, 1, MIN_GRID_POINTS))
        )

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        schedule = prior.schedule
        sigma_y = require_gaussian_noise("PGDM", problem)
        svd = require_svd("PGDM", problem.operator)
        transitions = reverse_transitions(self.config.num_steps, last_index=1)
        batch = noise.batch_size
        x_t = prior.initial_state(noise, transitions[0][0]).to(noise.device)
        spectral = Spectral.of(svd, problem, x_t)
        s = spectral.singular_values
        for t, t_next in tqdm(transitions, desc="PGDM", disable=not progress, leave=False):
            abar_t = float(schedule.alpha_bar(t))
            abar_next = float(schedule.alpha_bar(t_next))
            x = x_t.detach().requires_grad_(True)
            with torch.enable_grad():
                x0_hat = prior.denoise(x, as_time_vector(t, batch, x.device))
                residual = spectral.observation - s * spectral.to_spectral(x0_hat)
                phi = -0.5 * (residual**2 / (s**2 + sigma_y**2 / (1.0 - abar_t))).sum(dim=1)
                (grad_phi,) = torch.autograd.grad(phi.sum(), x)
            x_prior = ddim_step(
                schedule,
                x_t,
                x0_hat.detach(),
                t,
                t_next,
                noise.randn(*x_t.shape[1:], dtype=x_t.dtype),
                self.config.eta,
            )
            x_t = x_prior + math.sqrt(abar_next * abar_t) * grad_phi
        with torch.no_grad():
            return prior.denoise(x_t, as_time_vector(transitions[-1][1], batch, x_t.device))
