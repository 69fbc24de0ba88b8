import math

import pytest
import torch

from mgdm.diffusion import gmm_benchmark
from mgdm.priors import GaussianMixture
from mgdm.random import SampleNoise


def _monte_carlo_denoiser(prior, x_t, t, n=400_000):
    """E[x_0 | x_t] by self-normalised importance sampling with prior draws as proposals."""
    abar = prior.schedule.alpha_bar(t).item()
    x0 = prior.sample(SampleNoise(range(n)))
    log_w = -((x_t[None] - math.sqrt(abar) * x0) ** 2).sum(-1) / (2 * (1 - abar))
    w = torch.softmax(log_w, 0)
    return (w[:, None] * x0).sum(0)


@pytest.mark.parametrize("t", [100, 400, 800])
def test_denoiser_matches_monte_carlo(gmm_2d, t):
    x_t = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    exact = gmm_2d.denoise(x_t, torch.tensor([t]))[0]
    estimate = _monte_carlo_denoiser(gmm_2d, x_t[0], t)
    assert torch.allclose(exact, estimate, atol=0.03)


def test_full_covariance_matches_monte_carlo_and_rotated_diagonal():
    rotation = torch.tensor(
        [[math.cos(0.7), -math.sin(0.7)], [math.sin(0.7), math.cos(0.7)]], dtype=torch.float64
    )
    diag = torch.tensor([[2.0, 0.3], [0.5, 1.0]], dtype=torch.float64)
    full = rotation @ torch.diag_embed(diag) @ rotation.T
    means = torch.tensor([[-3.0, 1.0], [3.0, -1.0]], dtype=torch.float64)
    prior = GaussianMixture(means, torch.tensor([0.6, 0.4]), full, gmm_benchmark())
    x_t = torch.tensor([[0.3, 0.4]], dtype=torch.float64)
    exact = prior.denoise(x_t, torch.tensor([300]))[0]
    assert torch.allclose(exact, _monte_carlo_denoiser(prior, x_t[0], 300), atol=0.03)
    # the same mixture expressed in the rotated frame with diagonal covariances
    rotated = GaussianMixture(means @ rotation, torch.tensor([0.6, 0.4]), diag, gmm_benchmark())
    back = rotated.denoise(x_t @ rotation, torch.tensor([300])) @ rotation.T
    assert torch.allclose(exact, back[0], atol=1e-10)


def test_score_is_the_gradient_of_the_log_density(gmm_2d):
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([10, 100, 300, 600, 900])
    (grad,) = torch.autograd.grad(gmm_2d.log_prob(x, t).sum(), x)
    assert torch.allclose(gmm_2d.score(x.detach(), t), grad, atol=1e-8)


def test_log_density_at_time_zero_is_the_mixture_density(gmm_2d):
    from torch.distributions import MultivariateNormal

    x = torch.randn(4, 2, dtype=torch.float64)
    densities = torch.stack(
        [
            MultivariateNormal(m.double(), torch.diag(c)).log_prob(x)
            for m, c in zip(gmm_2d.means, gmm_2d.eigenvalues)
        ],
        dim=1,
    )
    expected = torch.logsumexp(densities + gmm_2d.log_weights, dim=1)
    assert torch.allclose(gmm_2d.log_prob(x, 0), expected)


def test_exact_denoising_posterior_has_the_tweedie_mean(gmm_2d):
    x_t = torch.tensor([[1.0, -2.0]], dtype=torch.float64).expand(100_000, 2)
    t = torch.full((100_000,), 500)
    draws = gmm_2d.sample_denoising_posterior(x_t, t, SampleNoise(range(100_000)))
    assert torch.allclose(draws.mean(0), gmm_2d.denoise(x_t[:1], t[:1])[0], atol=0.03)


def test_prior_samples_have_the_mixture_moments(gmm_2d):
    draws = gmm_2d.sample(SampleNoise(range(200_000)))
    mean = (gmm_2d.weights[:, None] * gmm_2d.means).sum(0)
    assert torch.allclose(draws.mean(0), mean, atol=0.03)


def test_posterior_matches_importance_sampling_in_2d(gmm_2d):
    matrix = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([1.5], dtype=torch.float64)
    sigma_y = 0.8
    posterior = gmm_2d.posterior(matrix, y, sigma_y)
    proposals = gmm_2d.sample(SampleNoise(range(400_000)))
    log_w = -((y - proposals @ matrix.T) ** 2).sum(-1) / (2 * sigma_y**2)
    w = torch.softmax(log_w, 0)
    is_mean = (w[:, None] * proposals).sum(0)
    is_second = (w[:, None, None] * proposals[:, :, None] * proposals[:, None, :]).sum(0)
    exact_draws = posterior.sample(SampleNoise(range(200_000)))
    assert torch.allclose(posterior.mean(), is_mean, atol=0.03)
    assert torch.allclose(exact_draws.mean(0), is_mean, atol=0.04)
    second = exact_draws.T @ exact_draws / exact_draws.shape[0]
    assert torch.allclose(second, is_second, atol=0.15)


def test_posterior_components_match_the_dense_formulas(gmm_2d):
    """C_i = (Sigma^-1 + A^T A / s^2)^-1, m_i = C_i(Sigma^-1 mu + A^T y / s^2), and the
    weights by the equivalent evidence form of docs/algorithms/problems.md §3."""
    from torch.distributions import MultivariateNormal

    matrix = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    y = torch.tensor([2.0], dtype=torch.float64)
    s = 0.5
    posterior = gmm_2d.posterior(matrix, y, s)
    log_z = []
    for i, (mu, lam) in enumerate(zip(gmm_2d.means.double(), gmm_2d.eigenvalues)):
        precision = torch.diag(1 / lam) + matrix.T @ matrix / s**2
        cov = torch.linalg.inv(precision)
        mean = cov @ (mu / lam + matrix.T @ y / s**2)
        assert torch.allclose(posterior.component_means[i], mean)
        log_z.append(
            MultivariateNormal(matrix @ mean, s**2 * torch.eye(1, dtype=torch.float64)).log_prob(y)
            + MultivariateNormal(mu, torch.diag(lam)).log_prob(mean)
            - MultivariateNormal(mean, cov).log_prob(mean)
        )
    expected = torch.log_softmax(torch.stack(log_z) + gmm_2d.log_weights, 0)
    assert torch.allclose(posterior.log_weights, expected, atol=1e-9)


def test_exact_initial_state_has_the_noised_marginal(gmm_2d):
    draws = gmm_2d.initial_state(SampleNoise(range(100_000)), 999, torch.float64)
    abar = gmm_2d.schedule.alpha_bar(999).item()
    mean = math.sqrt(abar) * (gmm_2d.weights[:, None] * gmm_2d.means).sum(0)
    assert torch.allclose(draws.mean(0), mean, atol=0.02)


def test_bad_mixtures_are_rejected():
    schedule = gmm_benchmark()
    with pytest.raises(ValueError, match=r"weights must have shape \[K\]"):
        GaussianMixture(torch.zeros(3, 2), torch.ones(2), 1.0, schedule)
    with pytest.raises(ValueError, match="positive"):
        GaussianMixture(torch.zeros(2, 2), torch.ones(2), torch.zeros(2, 2), schedule)
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture(
            torch.zeros(1, 2), torch.ones(1), torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]), schedule
        )
    prior = GaussianMixture(torch.zeros(1, 2), torch.ones(1), 1.0, schedule)
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        prior.denoise(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="sigma_y"):
        prior.posterior(torch.ones(1, 2), torch.ones(1), 0.0)


def test_isotropic_fast_path_matches_the_general_path():
    schedule = gmm_benchmark()
    means = torch.randn(6, 40, dtype=torch.float64) * 5
    variances = torch.rand(6, dtype=torch.float64) + 0.5
    fast = GaussianMixture(means, torch.rand(6), variances, schedule)
    general = GaussianMixture(
        means, torch.rand(6), variances[:, None].expand(6, 40) * torch.ones(6, 40), schedule
    )
    general.weights, general.log_weights = fast.weights, fast.log_weights
    general.isotropic_variances = None  # force the [B, K, d] path
    assert fast.isotropic_variances is not None
    x = torch.randn(9, 40, dtype=torch.float64) * 4
    t = torch.tensor([1, 5, 50, 200, 400, 600, 800, 950, 1000])
    assert torch.allclose(fast.denoise(x, t), general.denoise(x, t), atol=1e-9)
