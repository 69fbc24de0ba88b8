"""scripts/kde_mode_commitment.py: its kernel assignment and its watching prior, on 5 kernels."""

import importlib.util
from pathlib import Path

import pytest
import torch

from mgdm.diffusion import ddpm_linear
from mgdm.operators import SuperResolution
from mgdm.priors import KernelDensityPrior
from mgdm.random import SampleNoise

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kde_mode_commitment.py"
SHAPE = (1, 4, 4)


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("kde_mode_commitment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prior() -> KernelDensityPrior:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(5, *SHAPE, generator=generator, dtype=torch.float64) * 2 - 1
    return KernelDensityPrior(images, 0.1, ddpm_linear(), dtype=torch.float64)


def test_kernel_fit_assigns_components_and_measures_the_spread_inside_them(script, prior):
    operator = SuperResolution(SHAPE, 2)
    posterior = prior.posterior(operator, operator(prior.centres[1:2])[0], 0.05)
    index = torch.tensor([0, 1, 2, 3, 4, 4])
    kernels, spread = script.kernel_fit(posterior, posterior.component_means(index))
    assert torch.equal(kernels, index)
    assert torch.allclose(spread, torch.zeros(6, dtype=torch.float64), atol=1e-9)
    # exact draws: the squared Mahalanobis distance per dimension is chi^2_d / d, mean 1 and
    # standard deviation sqrt(2 / d) = 0.35 per draw, 0.008 for the mean of 2000 draws
    draws = posterior.sample(SampleNoise(range(2000)))
    _, spread = script.kernel_fit(posterior, draws)
    assert abs(float(spread.mean()) - 1.0) < 0.04


def test_kernel_watch_denoises_as_the_prior_and_records_the_share_at_the_target(script, prior):
    watch = script.KernelWatch(prior)
    watch.target = 3
    t = torch.full((2,), 100)
    scale = float(prior.schedule.abar[100]) ** 0.5
    x_t = scale * prior.centres[[3, 0]]  # one sample at the target's noised centre, one not
    assert torch.equal(watch.denoise(x_t, t), prior.denoise(x_t, t))
    assert watch.calls == [(100, 0.5)]
