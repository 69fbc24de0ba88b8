"""Samplers on a tiny random latent prior: MGDM, DPS and DAPS unchanged, PSLD and ReSample (shapes,
finite outputs, cost counts, per-sample seeding), no clamp of latents, and the refusals."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mgdm.operators.network import NetworkOperator
from mgdm.operators.noise import GaussianNoise, PoissonNoise
from mgdm.operators.super_resolution import SuperResolution
from mgdm.priors import Denoiser, EpsilonNetworkPrior
from mgdm.priors.latent import KLAutoencoder, LatentPrior, decode_samples, latent_problem
from mgdm.priors.latent.autoencoder import build_autoencoder
from mgdm.problem import Problem
from mgdm.samplers import MGDM, preset
from mgdm.samplers.daps import DAPS, DAPSConfig
from mgdm.samplers.ddnm import DDNM
from mgdm.samplers.diffpir import DiffPIR
from mgdm.samplers.dps import DPS, DPSConfig
from mgdm.samplers.pgdm import PGDM
from mgdm.samplers.psld import PSLD, PSLDConfig
from mgdm.samplers.resample import ReSample, ReSampleConfig

IMAGE = (1, 8, 8)


class TinyEpsilon(nn.Module):
    """``eps_hat(z, tau) = 0.5 tanh(conv(z)) + tau / 1000 * 0.01``: a random smooth network."""

    def __init__(self, channels: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, z: Tensor, tau: Tensor) -> Tensor:
        return 0.5 * torch.tanh(self.conv(z)) + 1e-5 * tau.float().view(-1, 1, 1, 1)


class Constant(Denoiser):
    """``D_t(z) = 3`` everywhere: latents far outside ``[-1, 1]``."""

    def __init__(self, prior: Denoiser):
        self.schedule, self.sample_shape = prior.schedule, prior.sample_shape

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        return torch.full_like(x_t, 3.0) + 0.0 * x_t


@pytest.fixture(scope="module")
def prior() -> LatentPrior:
    autoencoder = KLAutoencoder(build_autoencoder((8, 8), 2, seed=0, image_size=8), 8)
    network = TinyEpsilon(autoencoder.latent_shape[0])
    return LatentPrior(EpsilonNetworkPrior(network, autoencoder.latent_shape), autoencoder)


@pytest.fixture(scope="module")
def image_problem() -> Problem:
    operator = SuperResolution(IMAGE, 2)
    y = 0.5 * torch.sin(torch.arange(16.0)).reshape(operator.output_shape)
    return Problem(operator, y, GaussianNoise(0.05))


@pytest.fixture(scope="module")
def problem(prior, image_problem) -> Problem:
    return latent_problem(image_problem, prior)


RESAMPLE = ReSampleConfig(num_steps=12, consistency_every=2, max_iterations=5)

SAMPLERS = {
    "mgdm": (MGDM(preset("fast", num_steps=5)), (3, 4)),  # 1 + 2 Tweedie; 2 x G = 2 VJPs
    "dps": (DPS(DPSConfig(num_steps=5)), (1, 3)),
    "daps": (DAPS(DAPSConfig(annealing_steps=2, ode_steps=2, langevin_steps=3)), (4, 0)),
    "psld": (PSLD(PSLDConfig(num_steps=5)), (1, 3)),
    "resample": (ReSample(RESAMPLE), (0, 11)),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_run_on_a_latent_problem(name, prior, problem):
    sampler, calls = SAMPLERS[name]
    result = sampler.sample(prior, problem, seeds=[0, 1, 2])
    assert result.samples.shape == (3, *prior.sample_shape)
    assert bool(torch.isfinite(result.samples).all())
    images = decode_samples(prior, result.samples)
    assert images.shape == (3, *IMAGE) and images.abs().max() <= 1.0
    assert (result.cost.nfe_forward, result.cost.nfe_backward) == calls


@pytest.mark.parametrize("name", ["psld", "resample"])
def test_latent_samplers_seed_each_sample(name, prior, problem):
    sampler, _ = SAMPLERS[name]
    alone = sampler.sample(prior, problem, seeds=[7]).samples
    batch = sampler.sample(prior, problem, seeds=[3, 7]).samples
    torch.testing.assert_close(batch[1:], alone, rtol=1e-5, atol=1e-5)


def test_resample_schedule_and_hard_consistency(prior, problem):
    reference = ReSampleConfig()
    assert reference.consistency_indices() == list(range(330, 0, -10))
    assert reference.network_calls() == (0, 500)
    assert RESAMPLE.consistency_indices() == [8, 6, 4, 2]
    assert RESAMPLE.operator_gradients() == 20
    sampler = ReSample(ReSampleConfig(max_iterations=50, lr=0.05))
    z0 = torch.zeros(2, *prior.sample_shape)
    y = problem.observation_for(2, z0)

    def residual(z: Tensor) -> Tensor:
        with torch.no_grad():
            return (y - problem.operator(z)).pow(2).reshape(2, -1).mean(1)

    fitted = sampler.hard_consistency(problem, y, z0, tolerance=0.05)
    assert bool((residual(fitted) < residual(z0)).all())
    loose = sampler.hard_consistency(problem, y, z0, tolerance=10.0)
    assert torch.equal(loose, z0)  # already consistent: left unchanged


def test_latents_are_not_clamped(prior, problem):
    constant = LatentPrior(Constant(prior.denoiser), prior.autoencoder)
    assert constant.data_range is None
    samples = DPS(DPSConfig(num_steps=3, gamma=0.0)).sample(constant, problem, seeds=[0]).samples
    assert torch.equal(samples, torch.full_like(samples, 3.0))


def test_pixel_samplers_refuse_a_latent_problem(prior, problem):
    for sampler, message in (
        (PGDM(), "PGDM needs the singular value decomposition.*DecodedOperator has none"),
        (DDNM(), "DDNM needs the singular value decomposition.*DecodedOperator has none"),
        (DiffPIR(), "DiffPIR needs a linear operator.*DecodedOperator is nonlinear"),
    ):
        with pytest.raises(ValueError, match=message):
            sampler.sample(prior, problem, seeds=[0])


def test_latent_samplers_refuse_other_problems(prior, image_problem):
    for sampler in (PSLD(), ReSample()):
        with pytest.raises(ValueError, match="latent diffusion priors only.*SuperResolution"):
            sampler.check_compatible(prior, image_problem)
    nonlinear = NetworkOperator(nn.Tanh(), IMAGE, IMAGE)
    tanh_problem = latent_problem(Problem(nonlinear, torch.zeros(IMAGE), GaussianNoise(0.1)), prior)
    with pytest.raises(ValueError, match="PSLD needs a linear image operator.*NetworkOperator"):
        PSLD().check_compatible(prior, tanh_problem)
    ReSample().check_compatible(prior, tanh_problem)
    poisson = latent_problem(Problem(nonlinear, torch.zeros(IMAGE), PoissonNoise(10.0)), prior)
    with pytest.raises(ValueError, match="Gaussian observation noise"):
        ReSample().check_compatible(prior, poisson)
    ReSample(ReSampleConfig(tolerance=0.1)).check_compatible(prior, poisson)


def test_configs_and_budgets():
    assert PSLD().with_budget(99).config.num_steps == 100
    assert ReSample().with_budget(99).config.num_steps == 100
    with pytest.raises(ValueError, match="PSLD needs at least 2 network calls"):
        PSLD().with_budget(1)
    with pytest.raises(ValueError, match="sigma_scale"):
        ReSampleConfig(sigma_scale=0.0)
    with pytest.raises(ValueError, match="omega"):
        PSLDConfig(omega=-1.0)
