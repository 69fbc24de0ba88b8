"""MSDM's Dirac separator and MGDM's audio preset on a tiny random four-stem prior."""

from __future__ import annotations

import math

import pytest
import torch

from mgdm.audio.constants import STEMS
from mgdm.audio.prior import AudioPrior
from mgdm.audio.separate import audio_mgdm_config, audio_sampler
from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
from mgdm.operators import Identity
from mgdm.operators.mixing import Mixing
from mgdm.operators.noise import GaussianNoise
from mgdm.problem import Problem
from mgdm.samplers.mgdm import MGDM, network_calls
from mgdm.samplers.msdm import MSDM, MSDMConfig

LENGTH = 32


@pytest.fixture(scope="module")
def prior() -> AudioPrior:
    config = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)
    return AudioPrior(build_unet1d(config, seed=1), STEMS, 8000, LENGTH)


@pytest.fixture(scope="module")
def problem() -> Problem:
    mix = 0.1 * torch.randn(LENGTH, generator=torch.Generator().manual_seed(0))
    return Problem(Mixing(4, LENGTH), mix, GaussianNoise(1e-4))


def test_dirac_separator_sums_to_the_mix(prior, problem) -> None:
    result = MSDM(num_steps=6).sample(prior, problem, seeds=[1, 2, 3])
    assert result.samples.shape == (3, 4, LENGTH)
    assert bool(torch.isfinite(result.samples).all())
    torch.testing.assert_close(
        result.samples.sum(1), problem.observation.expand(3, -1), rtol=0, atol=1e-6
    )
    assert result.cost.nfe_forward == 6 * 2 and result.cost.nfe_backward == 0
    # one seed per sample: a sample does not depend on the batch (up to the network's rounding)
    alone = MSDM(num_steps=6).sample(prior, problem, seeds=[2]).samples[0]
    torch.testing.assert_close(alone, result.samples[1], rtol=0, atol=1e-4)
    assert not torch.allclose(result.samples[0], result.samples[1])


def test_dirac_separator_per_sample_mixes_and_other_constrained_stem(prior) -> None:
    mixes = 0.1 * torch.randn(2, LENGTH, generator=torch.Generator().manual_seed(4))
    problem = Problem(Mixing(4, LENGTH), mixes, GaussianNoise(1e-4))
    sampler = MSDM(num_steps=3, num_resamples=1, constrained_stem=3, s_churn=0.0)
    samples = sampler.sample(prior, problem, seeds=[5, 6]).samples
    torch.testing.assert_close(samples.sum(1), mixes, rtol=0, atol=1e-6)


def test_msdm_config_budget_and_compatibility(prior) -> None:
    config = MSDMConfig()
    assert (config.num_steps, config.s_churn, config.num_resamples, config.constrained_stem) == (
        150,
        20.0,
        2,
        0,
    )
    assert math.isclose(config.gamma, 20 / 150)
    sigmas = config.sigmas()
    assert sigmas.shape == (151,) and float(sigmas[0]) == 1.0 and float(sigmas[-1]) == 0.0
    assert MSDMConfig(num_steps=10, s_churn=100.0).gamma == math.sqrt(2) - 1
    assert MSDM().with_budget(100).config.num_steps == 50
    with pytest.raises(ValueError, match="needs at least 2 network calls"):
        MSDM().with_budget(0.5)
    identity = Problem(Identity((4, LENGTH)), torch.zeros(4, LENGTH), GaussianNoise(0.1))
    with pytest.raises(ValueError, match="needs the Mixing operator"):
        MSDM().sample(prior, identity, seeds=[0])
    with pytest.raises(ValueError, match="constrained_stem = 4 is out of range for 4 stems"):
        MSDM(constrained_stem=4).check_compatible(
            prior, Problem(Mixing(4, LENGTH), torch.zeros(LENGTH), GaussianNoise(0.1))
        )
    with pytest.raises(ValueError, match="starts at noise level"):
        MSDM(sigma_max=100.0).check_compatible(
            prior, Problem(Mixing(4, LENGTH), torch.zeros(LENGTH), GaussianNoise(0.1))
        )
    with pytest.raises(ValueError, match="num_resamples = 0 is out of range"):
        MSDMConfig(num_resamples=0)
    with pytest.raises(ValueError, match="sigma_min <= sigma_max"):
        MSDMConfig(sigma_min=2.0)


def test_mgdm_audio_preset_is_the_reference_with_two_sweeps() -> None:
    """The Reference's audio configuration, but R = 2 (measured as good as its R = 6 at a third
    of the calls, docs/benchmarks.md §3); ``gibbs_sweeps=6`` gives the Reference's."""
    assert audio_mgdm_config(gibbs_sweeps=6).gibbs_sweeps == 6
    config = audio_mgdm_config()
    assert (config.num_steps, config.gibbs_sweeps, config.denoising_steps) == (20, 2, 15)
    assert (config.index_rule, config.threshold, config.min_index, config.lr_mode) == (
        "mix",
        13,
        10,
        "absolute",
    )
    assert [config.gradient_steps(i, 20) for i in range(17)] == [3.0] * 10 + [20.0] * 7
    assert {config.learning_rate(i, 20) for i in range(17)} == {0.005}
    assert config.expected_vjp() == 340 and audio_mgdm_config(gibbs_sweeps=6).expected_vjp() == 1020
    # the deterministic tail of `mix`: ell = p for i = 13 … 16, the last chain from ell = 52
    grid = [0, 52, 105, 157, 210, 262, 315, 368, 420, 473, 525, 578, 630, 683, 736, 788, 841, 893]
    tail = [grid[20 - 3 - i] for i in range(13, 17)]
    assert tail[-1] == 52
    forward, backward = network_calls(config, [11] * 13 + tail)
    assert backward == 340 and forward == 1 + 2 * (13 * 11 + 4 * 14)
    assert isinstance(audio_sampler("mgdm"), MGDM) and isinstance(audio_sampler("msdm"), MSDM)
    assert audio_sampler("dps").config.gamma == 1.0


def test_mgdm_runs_on_a_tiny_mix(prior, problem) -> None:
    sampler = MGDM(audio_mgdm_config(num_steps=6, gibbs_sweeps=2, denoising_steps=3, threshold=2))
    result = sampler.sample(prior, problem, seeds=[0, 1])
    assert result.samples.shape == (2, 4, LENGTH)
    assert bool(torch.isfinite(result.samples).all())
    assert result.cost.nfe_backward == sampler.config.expected_vjp() == 2 * 3 * 20  # i >= K - 10


def test_all_in_an_image_or_vector_list_leaves_the_audio_separator_out():
    from mgdm.samplers.registry import parse_sampler_list

    assert "msdm" in parse_sampler_list("all")
    assert "msdm" in parse_sampler_list("all", domain="audio")
    assert "msdm" not in parse_sampler_list("all", domain="image")
    assert len(parse_sampler_list("all", domain="vector")) == 8
