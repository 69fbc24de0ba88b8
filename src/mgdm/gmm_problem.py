"""The Gaussian-mixture exact-posterior problems of the MCGdiff protocol (docs/algorithms/problems.md §2).

Prior: 25 components ``N(mu_ij, I_d)`` with ``mu_ij = (8i, 8j, 8i, 8j, …)``, ``i, j in -2…2``,
weights ``w ∝ xi^2`` with ``xi ~ N(0, 1)`` (MCGdiff's rule; the MGDM repository's ``gmm_25``
draws ``U(0, 1)`` weights instead). Operator: ``G ~ N(0, 1)^{d_y x d}``, ``G = U S V^T``, and
``A = U diag(s) V[:, :d_y]^T`` with ``s = sort_desc(U(0, 1)^{d_y})``. Noise
``sigma_y = u * max(s)``, ``u ~ U(0, 1)``; ``y = A x* + sigma_y eps`` with ``x* ~ prior``.
Everything is drawn from one generator seeded by ``(dim, obs_dim, seed)``: the same triple gives
the same problem on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mgdm.diffusion.schedules import gmm_benchmark
from mgdm.operators.dense import DenseOperator
from mgdm.operators.noise import GaussianNoise
from mgdm.priors.gaussian_mixture import GaussianMixture, GaussianMixturePosterior
from mgdm.problem import Problem
from mgdm.random import derive_seed, torch_generator


@dataclass
class GMMProblem:
    """One benchmark problem with its exact posterior."""

    dim: int
    obs_dim: int
    seed: int
    prior: GaussianMixture
    problem: Problem
    posterior: GaussianMixturePosterior
    x_true: Tensor

    @property
    def sigma_y(self) -> float:
        return self.problem.sigma_y


def grid_means(dim: int, spacing: float = 8.0) -> Tensor:
    """The 25 means ``(s i, s j, s i, s j, …)`` for ``i, j in -2…2``; ``[25, dim]`` float64."""
    if dim < 2 or dim % 2:
        raise ValueError(f"the mixture benchmark needs an even dimension >= 2; got {dim}.")
    ticks = torch.arange(-2, 3, dtype=torch.float64) * spacing
    pairs = torch.stack(torch.meshgrid(ticks, ticks, indexing="ij"), dim=-1).reshape(-1, 2)
    return pairs.repeat(1, dim // 2)


def make_gmm_problem(dim: int, obs_dim: int, seed: int) -> GMMProblem:
    """The benchmark problem for ``(dim, obs_dim, seed)`` (see the module docstring)."""
    if obs_dim < 1 or obs_dim > dim:
        raise ValueError(f"obs_dim must be in 1…dim = 1…{dim}; got {obs_dim}.")
    generator = torch_generator(derive_seed(dim, obs_dim, seed))
    means = grid_means(dim)
    weights = torch.randn(means.shape[0], generator=generator, dtype=torch.float64) ** 2
    prior = GaussianMixture(means, weights, 1.0, gmm_benchmark())
    gaussian = torch.randn(obs_dim, dim, generator=generator, dtype=torch.float64)
    u, _, vh = torch.linalg.svd(gaussian, full_matrices=True)
    singular = torch.sort(
        torch.rand(obs_dim, generator=generator, dtype=torch.float64), descending=True
    ).values
    matrix = u @ torch.diag(singular) @ vh[:obs_dim]
    sigma_y = float(torch.rand(1, generator=generator, dtype=torch.float64) * singular.max())
    component = torch.multinomial(prior.weights, 1, generator=generator)
    x_true = means[component[0]] + torch.randn(dim, generator=generator, dtype=torch.float64)
    y = matrix @ x_true + sigma_y * torch.randn(obs_dim, generator=generator, dtype=torch.float64)
    operator = DenseOperator(matrix)
    problem = Problem(operator, y.to(torch.float32), GaussianNoise(sigma_y))
    posterior = prior.posterior(matrix, y, sigma_y)
    return GMMProblem(dim, obs_dim, seed, prior, problem, posterior, x_true)
