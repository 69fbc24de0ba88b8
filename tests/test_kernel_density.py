"""The kernel-density prior against brute-force dense formulas on a tiny problem (5 images 4x4)."""

import math

import pytest
import torch

from mgdm.diffusion import ddpm_linear
from mgdm.operators import GaussianBlur, Inpainting, SuperResolution
from mgdm.priors import GaussianMixture, KernelDensityPrior
from mgdm.random import SampleNoise

SHAPE = (1, 4, 4)
SIGMA = 0.3
SIGMA_Y = 0.2


@pytest.fixture(scope="module")
def prior() -> KernelDensityPrior:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(5, *SHAPE, generator=generator, dtype=torch.float64) * 2 - 1
    return KernelDensityPrior(images, SIGMA, ddpm_linear(), dtype=torch.float64)


def _brute_force_denoiser(prior, x_t, t):
    """``sum_n r_n [x_n + sqrt(a) s^2 / gamma (x - sqrt(a) x_n)]`` with explicit [B, N, d] tensors."""
    a = prior.schedule.alpha_bar(t)[:, None, None]
    centres = prior.centres.reshape(1, prior.num_kernels, -1)
    x = x_t.reshape(x_t.shape[0], 1, -1)
    gamma = a * SIGMA**2 + 1 - a
    log_r = torch.log_softmax(-((x - a.sqrt() * centres) ** 2).sum(-1) / (2 * gamma[..., 0]), dim=1)
    component = centres + a.sqrt() * SIGMA**2 / gamma * (x - a.sqrt() * centres)
    return (log_r.exp()[..., None] * component).sum(1).reshape(x_t.shape)


def _matrix(operator) -> torch.Tensor:
    d = math.prod(SHAPE)
    return operator(torch.eye(d, dtype=torch.float64).reshape(d, *SHAPE)).reshape(d, -1).T


def test_denoiser_matches_brute_force_and_is_differentiable(prior):
    generator = torch.Generator().manual_seed(1)
    x_t = torch.randn(6, *SHAPE, generator=generator, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 50, 300, 700, 1000])
    out = prior.denoise(x_t, t)
    assert out.shape == x_t.shape
    assert torch.allclose(out, _brute_force_denoiser(prior, x_t.detach(), t), atol=1e-10)
    assert torch.allclose(out[0], x_t[0].detach(), atol=1e-12)  # t = 0: the identity
    (grad,) = torch.autograd.grad(out.sum(), x_t)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_score_is_the_gradient_of_the_log_density(prior):
    x = torch.randn(3, *SHAPE, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([20, 200, 800])
    (grad,) = torch.autograd.grad(prior.log_prob(x, t).sum(), x)
    assert torch.allclose(prior.score(x.detach(), t), grad, atol=1e-8)
    # at t = 0 the log density is the mixture's
    flat = GaussianMixture(prior.centres.reshape(5, -1), torch.ones(5), SIGMA**2, prior.schedule)
    assert torch.allclose(
        prior.log_prob(x.detach(), 0), flat.log_prob(x.detach().reshape(3, -1), 0)
    )


def test_denoising_posterior_draws_average_to_the_denoiser(prior):
    x_t = torch.randn(1, *SHAPE, dtype=torch.float64).expand(4000, *SHAPE)
    t = torch.full((4000,), 400)
    draws = prior.sample_denoising_posterior(x_t, t, SampleNoise(range(4000)))
    assert draws.shape == x_t.shape
    assert torch.allclose(draws.mean(0), prior.denoise(x_t[:1], t[:1])[0], atol=0.05)


def test_prior_samples_and_initial_state(prior):
    noise = SampleNoise(range(3))
    assert prior.sample(noise).shape == (3, *SHAPE)
    assert prior.initial_state(SampleNoise(range(3)), 999).shape == (3, *SHAPE)


@pytest.mark.parametrize(
    "make_operator",
    [
        lambda: SuperResolution(SHAPE, 2),  # SVD: group means
        lambda: Inpainting(
            torch.rand(SHAPE, generator=torch.Generator().manual_seed(3)) > 0.5
        ),  # SVD: selection
        lambda: GaussianBlur(SHAPE, sigma=0.8, kernel_size=3),  # no SVD: dense path
    ],
    ids=["super_resolution", "inpainting", "blur_dense"],
)
def test_posterior_matches_dense_formulas(prior, make_operator):
    operator = make_operator()
    a = _matrix(operator)  # [m, d]
    d = a.shape[1]
    x_true = prior.centres[2:3] + 0.1
    y = operator(x_true)[0] + 0.05
    posterior = prior.posterior(operator, y, SIGMA_Y)
    # dense brute force: C, m_n, weights N(y; A x_n, s^2 A A^T + sigma_y^2 I)
    c = torch.linalg.inv(torch.eye(d, dtype=torch.float64) / SIGMA**2 + a.T @ a / SIGMA_Y**2)
    centres = prior.centres.reshape(5, -1)
    y_flat = y.reshape(-1)
    means = (c @ (centres.T / SIGMA**2 + (a.T @ y_flat / SIGMA_Y**2)[:, None])).T
    evidence = torch.distributions.MultivariateNormal(
        centres @ a.T, SIGMA**2 * a @ a.T + SIGMA_Y**2 * torch.eye(a.shape[0], dtype=torch.float64)
    )
    weights = torch.softmax(evidence.log_prob(y_flat), 0)
    assert torch.allclose(posterior.weights, weights, atol=1e-10)
    assert torch.allclose(
        posterior.component_means(torch.arange(5)).reshape(5, -1), means, atol=1e-10
    )
    exact_mean = weights @ means
    assert torch.allclose(posterior.mean().reshape(-1), exact_mean, atol=1e-10)
    # responsibilities: log w_n + log N(x; m_n, C) up to a constant per sample
    points = torch.stack([means[3] + 0.01, means[0], exact_mean]).reshape(3, *SHAPE)
    dense = torch.log(weights)[None] + torch.stack(
        [
            torch.distributions.MultivariateNormal(m, c).log_prob(points.reshape(3, -1))
            for m in means
        ],
        dim=1,
    )
    log_r = posterior.log_responsibilities(points)
    assert torch.allclose(log_r - log_r[:, :1], dense - dense[:, :1], atol=1e-8)
    # the generic Gaussian-mixture posterior agrees
    generic = GaussianMixture(centres, torch.ones(5), SIGMA**2, prior.schedule).posterior(
        a, y_flat, SIGMA_Y
    )
    assert torch.allclose(generic.weights, weights, atol=1e-10)
    # sample moments
    n = 20_000
    draws = posterior.sample(SampleNoise(range(n))).reshape(n, -1)
    covariance = c + (weights[:, None] * means).T @ means - torch.outer(exact_mean, exact_mean)
    std = covariance.diagonal().sqrt()
    assert ((draws.mean(0) - exact_mean).abs() < 5 * std / math.sqrt(n)).all()
    assert torch.allclose(
        torch.cov(draws.T), covariance, atol=0.05 * float(covariance.diagonal().max())
    )


def test_posterior_errors(prior):
    blur = GaussianBlur(SHAPE, sigma=0.8, kernel_size=3)
    with pytest.raises(ValueError, match="no SVD"):
        prior.posterior(blur, torch.zeros(SHAPE), SIGMA_Y, max_dense_dim=8)
    with pytest.raises(ValueError, match="sigma_y"):
        prior.posterior(blur, torch.zeros(SHAPE), 0.0)
    with pytest.raises(ValueError, match="shape"):
        prior.denoise(torch.zeros(2, 16), torch.tensor([1, 2]))


def test_from_fashion_mnist():
    from mgdm.data import FASHION_MNIST_DIR

    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    prior = KernelDensityPrior.from_fashion_mnist(20, 0.1, split="test")
    assert prior.sample_shape == (1, 32, 32) and prior.num_kernels == 20
    x = prior.sample(SampleNoise([0, 1]))
    out = prior.denoise(x.float(), torch.tensor([10, 500]))
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
