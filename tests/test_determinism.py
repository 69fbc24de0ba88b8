"""The determinism contract of docs/determinism.md, tested as written there.

1. Same inputs, same batch composition, same machine, thread count and torch build: the samples
   are bit-identical, in this process or in a fresh one.
2. Another batch composition or thread count changes float32 rounding. Samplers that do not
   differentiate through the prior (DDNM+, DiffPIR, RED-diff, DAPS, PnP-DM, MSDM) keep every
   sample within ``BOUND * S`` of the same seed's sample alone.
3. Samplers that do (DPS, PGDM, MGDM) can amplify it, so no bound holds per sample; on short runs
   (at most 100 network calls per sample) the median over seeds stays within ``BOUND * S``.

``S = max(D, max |sample alone|)``, ``D`` the data scale of the problem. Samples are compared
directly, never through a metric of them. The figures behind ``BOUND`` come from
``scripts/measure_determinism.py`` (docs/determinism.md quotes them).
"""

from __future__ import annotations

import functools
import hashlib
import statistics
import subprocess
import sys
import textwrap

import pytest
import torch

from mgdm.audio.constants import STEMS
from mgdm.audio.prior import AudioPrior
from mgdm.audio.separate import AUDIO_SIGMA_Y, audio_sampler
from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
from mgdm.gmm_problem import make_gmm_problem
from mgdm.operators import GaussianNoise
from mgdm.operators.mixing import Mixing
from mgdm.problem import Problem
from mgdm.samplers import MGDM, preset
from mgdm.samplers.base import Sampler
from mgdm.samplers.registry import build_sampler

BOUND = 1e-4
"""docs/determinism.md: max |alone - in another batch| / S (see the module docstring)."""
BATCH = [3, 5, 9]
LENGTH = 64


class Case:
    """A prior, a problem and its data scale ``D``; ``per_sample``: one observation per seed."""

    def __init__(self, prior, problem, data_scale: float, per_sample: bool = False):
        self.prior, self.problem = prior, problem
        self.data_scale, self.per_sample = data_scale, per_sample

    def draw(self, sampler, seeds) -> torch.Tensor:
        return sampler.sample(self.prior, self.problem, list(seeds)).samples

    def alone(self, sampler, seeds) -> torch.Tensor:
        """Each seed in a call of its own (with its own observation when ``per_sample``)."""
        rows = []
        for k, seed in enumerate(seeds):
            problem = self.problem
            if self.per_sample:
                observation = problem.observation[k : k + 1]
                problem = Problem(problem.operator, observation, problem.noise)
            rows.append(sampler.sample(self.prior, problem, [seed]).samples[0])
        return torch.stack(rows)

    def gaps(self, alone: torch.Tensor, other: torch.Tensor) -> list[float]:
        """Per sample: ``max |alone - other| / max(D, max |alone|)``."""
        out = []
        for a, b in zip(alone, other):
            scale = max(self.data_scale, float(a.abs().max()))
            out.append(float((a.double() - b.double()).abs().max()) / scale)
        return out


@pytest.fixture(scope="module")
def gmm() -> Case:
    """The 8-D, 25-component Gaussian-mixture problem; D = 16, the largest |mean coordinate|."""
    case = make_gmm_problem(8, 2, 0)
    return Case(case.prior, case.problem, float(case.prior.means.abs().max()))


@pytest.fixture(scope="module")
def audio() -> Case:
    """A tiny random four-stem 1-D UNet prior and three 64-sample mixes, one per seed of
    ``BATCH``; D = the largest |sample| of the mixes."""
    config = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)
    prior = AudioPrior(build_unet1d(config, seed=0), STEMS, 8000, LENGTH)
    mixes = 0.1 * torch.randn(3, LENGTH, generator=torch.Generator().manual_seed(0))
    problem = Problem(Mixing(4, LENGTH), mixes, GaussianNoise(AUDIO_SIGMA_Y))
    return Case(prior, problem, float(mixes.abs().max()), per_sample=True)


@functools.cache
def budgeted(name: str, calls: int) -> Sampler:
    """``name`` rescaled to ``calls`` network calls per sample (built once: MGDM's search of
    its grid size takes a second)."""
    return build_sampler(name).with_budget(calls)


GMM_SAMPLERS = {
    "mgdm-default": lambda: MGDM(preset("default")),
    "dps": lambda: build_sampler("dps").with_budget(200),
    "ddnm": lambda: build_sampler("ddnm").with_budget(200),
}
"""Built anew for every run: MGDM's default preset (508 calls per sample), DPS and DDNM+ at 200."""
AUDIO_OVERRIDES = {
    "ddnm": ("ddnm", {}),
    "msdm": ("msdm", {}),
    "mgdm-R1": ("mgdm", {"gibbs_sweeps": 1}),
}


@functools.cache
def audio_budgeted(label: str) -> Sampler:
    """The audio settings of ``label`` at 70 calls per sample (`mgdm bench audio --budget 70`)."""
    name, overrides = AUDIO_OVERRIDES[label]
    return audio_sampler(name, **overrides).with_budget(70)


# ----------------------------------------------------------------------------- 1. bit-identical
@pytest.mark.parametrize("name", list(GMM_SAMPLERS))
def test_reruns_of_the_same_batch_are_bit_identical(gmm, name):
    first = gmm.draw(GMM_SAMPLERS[name](), BATCH)
    gmm.draw(GMM_SAMPLERS[name](), [5, 11])  # another batch in between leaves no trace
    again = gmm.draw(GMM_SAMPLERS[name](), BATCH)
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])  # distinct seeds, distinct samples


@pytest.mark.parametrize("name", list(AUDIO_OVERRIDES))
def test_reruns_on_a_neural_prior_are_bit_identical(audio, name):
    first = audio.draw(audio_budgeted(name), BATCH)
    again = audio.draw(audio_budgeted(name), BATCH)
    assert torch.equal(first, again) and bool(torch.isfinite(first).all())
    assert not torch.equal(first[0], first[1])


def test_a_fresh_process_gives_the_same_bits(gmm):
    """The same run in another interpreter (same machine, one thread, same build)."""
    code = textwrap.dedent(
        """
        import hashlib, torch
        from mgdm.gmm_problem import make_gmm_problem
        from mgdm.samplers.registry import build_sampler
        torch.set_num_threads(1)
        case = make_gmm_problem(8, 2, 0)
        sampler = build_sampler("mgdm").with_budget(100)
        samples = sampler.sample(case.prior, case.problem, [3, 5, 9]).samples
        print(hashlib.sha256(samples.contiguous().numpy().tobytes()).hexdigest())
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as in the child
        here = gmm.draw(budgeted("mgdm", 100), BATCH)
    finally:
        torch.set_num_threads(before)
    digest = hashlib.sha256(here.contiguous().numpy().tobytes()).hexdigest()
    assert child.stdout.strip().splitlines()[-1] == digest


# ----------------------------------------------------------------------------- 2. per sample
@pytest.mark.parametrize("name", ["ddnm", "diffpir"])
def test_samplers_without_network_gradients_stay_within_the_bound(gmm, name):
    sampler = budgeted(name, 100)
    together = gmm.draw(sampler, BATCH)
    gaps = gmm.gaps(gmm.alone(sampler, BATCH), together)
    assert max(gaps) <= BOUND, gaps
    # the bound is small against what tells samples apart: distinct seeds differ by far more
    assert gmm.gaps(together[:1], together[1:2])[0] > 100 * BOUND


@pytest.mark.parametrize("name", ["ddnm", "msdm"])
def test_neural_prior_samplers_without_network_gradients_stay_within_the_bound(audio, name):
    """One mix per call vs three mixes in one call, as the audio benchmark's --batch changes."""
    sampler = audio_budgeted(name)
    together = audio.draw(sampler, BATCH)
    gaps = audio.gaps(audio.alone(sampler, BATCH), together)
    assert max(gaps) <= BOUND, gaps
    assert audio.gaps(together[:1], together[1:2])[0] > 100 * BOUND


def test_another_thread_count_stays_within_the_bound(audio):
    """1 vs 2 threads, same batch: measured to change the tiny 1-D UNet's samples by rounding
    (the Gaussian mixture's came out bit-identical, so it would test nothing)."""
    sampler = audio_budgeted("ddnm")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = audio.draw(sampler, BATCH)
        torch.set_num_threads(2)
        two = audio.draw(sampler, BATCH)
    finally:
        torch.set_num_threads(before)
    assert max(audio.gaps(one, two)) <= BOUND


# ----------------------------------------------------------------------------- 3. median
@pytest.mark.parametrize("name", ["mgdm", "dps"])
def test_samplers_with_network_gradients_stay_within_the_bound_in_median(gmm, name):
    seeds = range(16)
    sampler = budgeted(name, 100)
    gaps = gmm.gaps(gmm.alone(sampler, seeds), gmm.draw(sampler, seeds))
    assert statistics.median(gaps) <= BOUND, gaps
