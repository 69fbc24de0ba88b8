"""DiffPIR: diffusion plug-and-play image restoration (Zhu et al., arXiv 2305.08995), Reference.

For a linear operator ``A`` and Gaussian noise ``sigma_y`` (docs/algorithms/diffpir.md). On the grid
``T_j = int(linspace(0, 999, K))[j]``, for ``j = K-1, …, 2`` with ``t = T_j``, ``t' = T_{j-1}``::

    x̂0     = D_t(x_t)
    rho_t   = lam sigma_y^2 abar_t / (1 - abar_t)
    x̂0^y   = argmin_z ||y - A z||^2 + rho_t ||z - x̂0||^2
           = the solution of (rho_t I + A^T A) z = rho_t x̂0 + A^T y
    ε̂      = (x_t - sqrt(abar_t) x̂0^y) / sqrt(1 - abar_t)
    x_{t'}  = sqrt(abar_{t'}) x̂0^y + sqrt(1 - abar_{t'}) (sqrt(1 - zeta) ε̂ + sqrt(zeta) ξ)

and the output is the state ``x_{T_1}`` (no final Tweedie; ``K = 1000`` returns ``x_1``; a coarse
grid returns a state that still carries noise of std ``sqrt(1 - abar_{T_1})``).

The last line is the DDIM kernel ``DDIM_eta(x_t, t -> t')`` evaluated at ``x̂0^y`` with the eta
whose noise std is ``sqrt(zeta (1 - abar_{t'}))`` (:func:`zeta_to_ddim_eta`; it exceeds 1 when
``zeta`` is large), so the step is taken with :func:`mgdm.diffusion.bridge.ddim_step`.

Proximal step:

* with an SVD ``A = U diag(s) V^T`` (Reference): ``x̂0^y = V diag(1 / (rho_t + s_i^2)) V^T
  (rho_t x̂0 + A^T y)``, i.e. ``(rho_t x̄0_i + s_i ȳ_i) / (rho_t + s_i^2)`` per spectral
  coordinate, ``x̄0_i`` on the null space;
* for a linear operator without SVD (Proposal): conjugate gradient on the same normal
  equations, started at ``x̂0`` (the residual then stays in the row space of ``A``, where the
  system is well conditioned even though ``rho_t`` is tiny at large ``t``), each sample stopping
  on its own once ``||r|| <= cg_tolerance ||rho_t x̂0 + A^T y||`` or after ``cg_iterations``;
* nonlinear operators are refused (the Reference's single gradient step diverges).

The initial state comes from the provided per-sample noise (Proposal: the Reference draws its
own, which breaks per-sample seeding).

Cost per sample: ``K - 2`` forward calls, no VJP (998 for ``K = 1000``); the operator products of
the proximal step are not network calls.

Tensor shapes: ``x_t`` ``[B, *sample_shape]``; spectral vectors ``[B, n]``; CG scalars ``[B]``.
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
from mgdm.diffusion.conversions import per_sample
from mgdm.diffusion.schedules import Schedule
from mgdm.operators.base import LinearOperator
from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import (
    Spectral,
    check_integer,
    check_num_steps,
    check_real,
    num_steps_for_budget,
    require_gaussian_noise,
    reverse_transitions,
)
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import SamplerConfig

TASK_DEFAULTS: dict[str, dict[str, float]] = {
    "sr4": {"zeta": 0.1},
    "sr16": {"zeta": 0.1},
    "box_inpainting": {"zeta": 1.0},
    "half_mask": {"zeta": 1.0},
    "gaussian_blur": {"zeta": 0.1},
    "motion_blur": {"zeta": 0.1},
    "jpeg": {"zeta": 1.0},
    "phase_retrieval": {"zeta": 1.0},
    "nonlinear_blur": {"zeta": 1.0},
    "hdr": {"zeta": 1.0},
}
"""Reference zeta per image task (docs/algorithms/diffpir.md; lam = 1 everywhere). JPEG, phase retrieval,
nonlinear blur and HDR take the default 1.0 but are refused (nonlinear operators); audio uses
1.0."""

MIN_GRID_POINTS = 3
"""One transition ``T_2 -> T_1``."""


@dataclass(frozen=True)
class DiffPIRConfig(SamplerConfig):
    """Hyperparameters of DiffPIR. Field defaults are the Reference's.

    Attributes:
        num_steps: K, points of the grid ``int(linspace(0, 999, K))``: ``K - 2`` transitions,
            ending at ``T_1``.
        lam: λ of ``rho_t = lam sigma_y^2 abar_t / (1 - abar_t)`` (> 0).
        zeta: ζ, share of fresh noise (variance) in each step, in [0, 1].
        cg_iterations: most conjugate-gradient iterations per proximal step (operators without
            an SVD only).
        cg_tolerance: relative residual at which conjugate gradient stops (same).
    """

    task_defaults = TASK_DEFAULTS

    num_steps: int = 1000
    lam: float = 1.0
    zeta: float = 1.0
    cg_iterations: int = 100
    cg_tolerance: float = 1e-5

    def __post_init__(self) -> None:
        check_num_steps("DiffPIR", self.num_steps, MIN_GRID_POINTS)
        check_real("DiffPIR", "lam", self.lam, 0.0)
        if self.lam == 0:
            raise ValueError("DiffPIR lam = 0 is out of range; accepted: lam > 0.")
        check_real("DiffPIR", "zeta", self.zeta, 0.0, 1.0)
        check_integer("DiffPIR", "cg_iterations", self.cg_iterations, 1)
        check_real("DiffPIR", "cg_tolerance", self.cg_tolerance, 0.0)

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(K - 2, 0)``."""
        return self.num_steps - 2, 0


def zeta_to_ddim_eta(schedule: Schedule, t: int, t_next: int, zeta: float) -> float:
    """The DDIM eta of the step ``t -> t'`` whose noise std is ``sqrt(zeta (1 - abar_{t'}))``.

    The DDIM(eta) std from time ``t`` to ``t'`` is
    ``eta sqrt((1 - abar_{t'})(1 - abar_t / abar_{t'}) / (1 - abar_t))``, hence
    ``eta = sqrt(zeta (1 - abar_t) / (1 - abar_t / abar_{t'}))``.
    """
    abar_t = float(schedule.alpha_bar(t))
    abar_next = float(schedule.alpha_bar(t_next))
    return math.sqrt(zeta * (1.0 - abar_t) / (1.0 - abar_t / abar_next))


def conjugate_gradient_prox(
    operator: LinearOperator,
    x0_hat: Tensor,
    y: Tensor,
    rho: float,
    iterations: int,
    tolerance: float,
) -> Tensor:
    """Solve ``(rho I + A^T A) z = rho x̂0 + A^T y`` per sample by conjugate gradient from ``x̂0``.

    A sample stops updating once its residual norm is at most ``tolerance`` times the norm of its
    right-hand side, so its result does not depend on the other samples of the batch.

    Args:
        x0_hat: ``[B, *input_shape]``; y: ``[B, *output_shape]``.
    Returns:
        ``z`` of shape ``[B, *input_shape]``.
    """

    def normal_matrix(v: Tensor) -> Tensor:
        return rho * v + operator.adjoint(operator(v))

    def dot(u: Tensor, v: Tensor) -> Tensor:
        return (u * v).reshape(u.shape[0], -1).sum(dim=1)

    rhs = rho * x0_hat + operator.adjoint(y)
    threshold = tolerance**2 * dot(rhs, rhs)
    z = x0_hat
    residual = rhs - normal_matrix(z)
    direction = residual
    residual_sq = dot(residual, residual)
    for _ in range(iterations):
        active = residual_sq > threshold
        if is_host(active) and not bool(active.any()):
            break  # on an accelerator all iterations run: converged samples stay frozen
        product = normal_matrix(direction)
        curvature = dot(direction, product)
        step = torch.where(
            active & (curvature > 0), residual_sq / curvature.where(curvature > 0, 1.0), 0.0
        )
        z = z + per_sample(step, z) * direction
        residual = residual - per_sample(step, z) * product
        new_residual_sq = dot(residual, residual)
        ratio = torch.where(active, new_residual_sq / residual_sq.where(residual_sq > 0, 1.0), 0.0)
        direction = residual + per_sample(ratio, z) * direction
        residual_sq = torch.where(active, new_residual_sq, residual_sq)
    return z


class DiffPIR(Sampler[DiffPIRConfig]):
    """The DiffPIR posterior sampler (see the module docstring)."""

    name: ClassVar[str] = "diffpir"
    config_class: ClassVar[type[SamplerConfig]] = DiffPIRConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        operator = problem.operator
        if operator.svd is None and not isinstance(operator, LinearOperator):
            raise ValueError(
                "DiffPIR needs a linear operator (an SVD for the exact proximal step, or an "
                f"adjoint for conjugate gradient); {type(operator).__name__} is nonlinear. Use "
                "dps, mgdm, reddiff, daps or pnpdm for nonlinear operators."
            )
        require_gaussian_noise("DiffPIR", problem)

    def with_budget(self, nfe: float) -> DiffPIR:
        """DiffPIR with ``K = round(nfe) + 2`` grid points (``K - 2`` calls), at most 1000."""
        return DiffPIR(
            replace(self.config, num_steps=num_steps_for_budget("DiffPIR", nfe, 2, MIN_GRID_POINTS))
        )

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        cfg = self.config
        schedule = prior.schedule
        sigma_y = problem.sigma_y
        operator = problem.operator
        transitions = reverse_transitions(cfg.num_steps, last_index=1)
        batch = noise.batch_size
        x_t = prior.initial_state(noise, transitions[0][0]).to(noise.device)
        y = problem.observation_for(batch, x_t)
        svd = operator.svd
        spectral = Spectral.of(svd, problem, x_t) if svd is not None else None
        for t, t_next in tqdm(transitions, desc="DiffPIR", disable=not progress, leave=False):
            abar_t = float(schedule.alpha_bar(t))
            rho = cfg.lam * sigma_y**2 * abar_t / (1.0 - abar_t)
            with torch.no_grad():
                x0_hat = prior.denoise(x_t, as_time_vector(t, batch, x_t.device))
            if spectral is not None:
                s = spectral.singular_values
                x0_bar = (rho * spectral.to_spectral(x0_hat) + s * spectral.observation) / (
                    rho + s**2
                )
                x0_y = spectral.from_spectral(x0_bar)
            else:
                x0_y = conjugate_gradient_prox(
                    operator, x0_hat, y, rho, cfg.cg_iterations, cfg.cg_tolerance
                )
            eta = zeta_to_ddim_eta(schedule, t, t_next, cfg.zeta)
            x_t = ddim_step(
                schedule, x_t, x0_y, t, t_next, noise.randn(*x_t.shape[1:], dtype=x_t.dtype), eta
            )
        return x_t
