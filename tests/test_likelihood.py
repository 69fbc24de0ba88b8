import math

import pytest
import torch

from mgdm.diffusion import gmm_benchmark
from mgdm.likelihood import covariance_corrected_log_likelihood
from mgdm.operators import DenseOperator, GaussianNoise
from mgdm.priors import GaussianMixture
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers import MGDM, MGDMConfig


def test_corrected_likelihood_is_exact_for_a_gaussian_prior():
    """For p_0 = N(mu, I), g_t(x_t) = E[g(x_0) | x_t] = N(y; A D_t(x_t), s^2 I + (1 - abar) A A^T):
    compare log-ratios between two states with a Monte-Carlo estimate of g_t."""
    prior = GaussianMixture(torch.tensor([[1.0, -2.0, 0.5]]), torch.ones(1), 1.0, gmm_benchmark())
    matrix = torch.tensor([[1.0, 0.3, -0.5], [0.2, -1.0, 0.4]], dtype=torch.float64)
    sigma_y = 0.3
    problem = Problem(DenseOperator(matrix), torch.tensor([0.4, 1.1]), GaussianNoise(sigma_y))
    t = torch.tensor([400, 400])
    states = torch.tensor([[0.3, -0.2, 0.9], [-0.5, 0.1, 0.2]], dtype=torch.float64)
    extra = 1.0 - prior.schedule.alpha_bar(t)
    corrected = covariance_corrected_log_likelihood(problem, prior.denoise(states, t), extra)
    n = 400_000
    estimates = []
    for state in states:
        draws = prior.sample_denoising_posterior(
            state.expand(n, 3), t[:1].expand(n), SampleNoise(range(n))
        )
        log_g = problem.log_likelihood(draws)
        estimates.append(torch.logsumexp(log_g, 0) - math.log(n))
    assert abs((corrected[0] - corrected[1]).item() - (estimates[0] - estimates[1]).item()) < 0.02


def test_corrected_likelihood_needs_an_svd():
    class NoSVD(DenseOperator):
        @property
        def svd(self):
            return None

    prior = GaussianMixture(torch.zeros(1, 2), torch.ones(1), 1.0, gmm_benchmark())
    problem = Problem(NoSVD(torch.eye(2)), torch.zeros(2), GaussianNoise(0.1))
    with pytest.raises(ValueError, match="needs an operator with an SVD"):
        MGDM(MGDMConfig(likelihood="covariance-corrected")).sample(prior, problem, [0])
    with pytest.raises(ValueError, match="likelihood"):
        MGDMConfig(likelihood="tempered")
