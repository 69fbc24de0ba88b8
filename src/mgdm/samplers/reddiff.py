"""RED-diff: variational regularisation by denoising diffusion (Mardani et al., arXiv 2305.04391),
as the MGDM Reference runs it (docs/algorithms/reddiff.md).

A point estimate ``mu`` minimises ``data(mu) + lambda E_t[w_t ||eps(x_t, t) - eps||^2]`` with
``x_t = sqrt(abar_t) mu + sqrt(1 - abar_t) eps``, by Adam with the stop-gradient trick (no
backpropagation through the network). One Adam step per time ``t`` of a decreasing sequence
(the Reference: ``t = 999, 998, …, 1``)::

    eps ~ N(0, I);   x_t = sqrt(abar_t) mu + sqrt(1 - abar_t) eps              (sigma_x0 = 0)
    eps_hat = eps_theta(x_t, t)                                                 (no gradient)
    w_t = lambda sqrt(1 - abar_t) / sqrt(abar_t)                                ("linear" weight)
    L(mu) = obs_weight mean((y - A(mu))^2) / 2 + w_t mean(stopgrad(eps_hat - eps) * mu)   ("mean")
    L(mu) = obs_weight ||y - A(mu)||^2 / (2 sigma_y^2) + w_t <stopgrad(eps_hat - eps), mu>  ("sigma_y")

``data_term = "mean"`` (default) is the Reference: means over the entries of ``y`` and of ``x``,
``sigma_y`` nowhere, so the balance of the two terms moves with ``dim(y) / dim(x)``.
``data_term = "sigma_y"`` (an option, docs/algorithms/reddiff.md §2) is the paper's objective, sums
weighted by the Gaussian likelihood.

The means are taken per sample (the Reference's batch mean only rescales every gradient by
``1/B``, which Adam ignores up to its ``eps``): a sample does not depend on its batch.

Initialisation: ``mu = A^+ y`` when the operator is linear with an SVD (the pseudo-inverse maps
to the input shape); otherwise ``mu ~ N(0, I)`` from the sample's stream. The Reference's
placeholder ``A^+`` (the identity on ``y``) for nonlinear operators is not reproduced.

The output is ``mu`` (clamped to the prior's data range by :meth:`Sampler.sample`): an
optimiser's point estimate, not a posterior sample.

Cost per sample: ``num_steps`` forward network calls, no VJP, and ``num_steps`` operator
gradients.

Tensor shapes: ``mu``, ``eps`` and ``x_t`` are ``[B, *sample_shape]``; times ``[B]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.diffusion.conversions import per_sample
from mgdm.diffusion.schedules import NUM_TIMESTEPS
from mgdm.operators.base import LinearOperator
from mgdm.priors.base import Denoiser
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import check_real, require_gaussian_noise
from mgdm.samplers._langevin import check_count, check_positive, data_fit_gradient
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import TASK_NAMES, SamplerConfig

TASK_DEFAULTS: dict[str, dict[str, float]] = {task: {} for task in TASK_NAMES}
"""RED-diff has no per-task hyperparameter in the Reference (the same values for images and
audio)."""

MAX_STEPS = NUM_TIMESTEPS - 1
"""One Adam step per integer time ``999 … 1``."""


@dataclass(frozen=True)
class REDDiffConfig(SamplerConfig):
    """Hyperparameters of RED-diff. Field defaults are the Reference's.

    Attributes:
        num_steps: Adam steps, one per time of ``round(linspace(999, 1, num_steps))``
            (999: every integer time ``999 … 1``; 1: the time 999 only).
        lr: Adam learning rate.
        betas: Adam ``(beta_1, beta_2)``; Adam's ``eps`` is torch's default 1e-8.
        grad_term_weight: ``lambda``, the regulariser's weight in ``w_t``.
        obs_weight: the data term's weight.
        data_term: ``mean`` (Reference: means over entries, no ``sigma_y``) or ``sigma_y``
            (sums, data term divided by ``sigma_y^2``; needs Gaussian noise).
    """

    task_defaults = TASK_DEFAULTS

    num_steps: int = MAX_STEPS
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_term_weight: float = 0.25
    obs_weight: float = 1.0
    data_term: Literal["mean", "sigma_y"] = "mean"

    def __post_init__(self) -> None:
        check_count("RED-diff", "num_steps", self.num_steps, 1)
        if self.num_steps > MAX_STEPS:
            raise ValueError(
                f"RED-diff num_steps = {self.num_steps} is out of range; accepted: 1 <= num_steps <= "
                f"{MAX_STEPS} (one Adam step per integer time 999 … 1)."
            )
        check_positive("RED-diff", "lr", self.lr)
        if len(self.betas) != 2:
            raise ValueError(f"RED-diff betas must be a pair (beta_1, beta_2); got {self.betas!r}.")
        for beta in self.betas:
            check_real("RED-diff", "betas entries", beta, 0.0, 1.0)
            if beta >= 1.0:
                raise ValueError(f"RED-diff betas must lie in [0, 1); got {self.betas!r}.")
        check_real("RED-diff", "grad_term_weight", self.grad_term_weight, 0.0)
        check_real("RED-diff", "obs_weight", self.obs_weight, 0.0)
        if self.data_term not in ("mean", "sigma_y"):
            raise ValueError(
                f"RED-diff data_term = {self.data_term!r} is out of range; accepted: mean, sigma_y."
            )

    def times(self) -> list[int]:
        """The decreasing integer times of the Adam steps, ``round(linspace(999, 1, num_steps))``."""
        grid = torch.linspace(MAX_STEPS, 1, self.num_steps, dtype=torch.float64)
        return grid.round().long().tolist()

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` network calls per sample: ``(num_steps, 0)``."""
        return self.num_steps, 0

    def operator_gradients(self) -> int:
        """Operator-only gradients per sample (one per Adam step)."""
        return self.num_steps


class REDDiff(Sampler[REDDiffConfig]):
    """The RED-diff optimiser (see the module docstring)."""

    name: ClassVar[str] = "reddiff"
    config_class: ClassVar[type[SamplerConfig]] = REDDiffConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        if self.config.data_term == "sigma_y":
            require_gaussian_noise("RED-diff (data_term='sigma_y')", problem)

    def with_budget(self, nfe: float) -> REDDiff:
        """RED-diff with ``round(nfe)`` Adam steps (one network call each), at most 999."""
        if isinstance(nfe, bool) or not isinstance(nfe, (int, float)) or not math.isfinite(nfe):
            raise ValueError(
                f"RED-diff budget must be a finite number of network calls; got {nfe!r}."
            )
        if round(nfe) < 1:
            raise ValueError(
                f"RED-diff needs at least 1 network call per sample; got a budget of {nfe!r}."
            )
        return REDDiff(replace(self.config, num_steps=min(round(nfe), MAX_STEPS)))

    def initial_estimate(
        self, problem: Problem, y: Tensor, noise: SampleNoise, like: Tensor
    ) -> Tensor:
        """``A^+ y`` for a linear operator with an SVD, else ``N(0, I)``; ``[B, *input_shape]``."""
        operator = problem.operator
        if isinstance(operator, LinearOperator) and operator.svd is not None:
            mu = operator.pseudo_inverse(y)
            if tuple(mu.shape[1:]) == tuple(operator.input_shape):
                return mu.to(like)
        return noise.randn(*like.shape[1:], dtype=like.dtype)

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        cfg = self.config
        batch = noise.batch_size
        like = torch.empty(batch, *prior.sample_shape, device=noise.device)
        y = problem.observation_for(batch, like)
        mu = self.initial_estimate(problem, y, noise, like).detach().clone().requires_grad_(True)
        if cfg.data_term == "mean":
            data_weight = cfg.obs_weight / y[0].numel()
            regulariser_scale = 1.0 / mu[0].numel()
        else:
            data_weight = cfg.obs_weight / problem.sigma_y**2
            regulariser_scale = 1.0
        optimizer = torch.optim.Adam([mu], lr=cfg.lr, betas=cfg.betas)
        for t in tqdm(cfg.times(), desc="RED-diff", disable=not progress, leave=False):
            times = torch.full((batch,), t, dtype=torch.int64, device=mu.device)
            abar = prior.schedule.alpha_bar(times)
            eps = noise.randn(*mu.shape[1:], dtype=mu.dtype)
            x_t = (
                per_sample(torch.sqrt(abar), mu) * mu.detach()
                + per_sample(torch.sqrt(1 - abar), mu) * eps
            )
            with torch.no_grad():
                eps_hat = prior.epsilon(x_t, times)
            weight = cfg.grad_term_weight * torch.sqrt((1 - abar) / abar)
            grad = data_fit_gradient(problem.operator, y, mu, data_weight)
            grad = grad + per_sample(weight, mu) * regulariser_scale * (eps_hat - eps)
            mu.grad = grad
            optimizer.step()
        return mu.detach()
