"""The sync-free sampling loops change no CPU result, and make no host-device synchronisation.

1. Every sampler's output on small problems (a Gaussian mixture in dimension 8, a tiny latent
   prior, a tiny four-stem audio prior) equals, bit for bit, the output recorded by this file's
   ``record`` before the loops were made sync-free (``tests/data/sampler_reference.npz``). Exact
   equality holds on the machine, torch build and CPU kernel set of the recording (float32
   rounding differs between AVX2 and AVX-512 kernels), so elsewhere the comparison is skipped
   with the reason; one thread, as recorded.
2. Where CUDA exists (tests marked ``device``): the step primitives (schedule, conversions,
   bridge, DDIM step) run under ``torch.cuda.set_sync_debug_mode("error")``, where any
   ``.item()``, ``bool(tensor)``, ``.tolist()``, ``nonzero`` or blocking copy raises; and each
   sampler, counted under ``"warn"``, makes no more synchronisations in a run twice as long
   (the setup's, once per run, are allowed; the steps make none).

Provenance: recorded from commit ef45bcb with this work's files (diffusion/, priors/base.py,
samplers/base.py, _langevin.py, daps.py, pnpdm.py, diffpir.py, resample.py, devices.py) at their
c29b19a versions, i.e. before the sync-free loops and --precision; identical to the first
recording at c29b19a except ``gmm/mgdm-reference``, which 989ca85 changed on purpose (MGDM's
shared mixture-index stream is seeded from a hash of the observation). ``gmm/mgdm-rto`` (the
default preset since 2026-12-05, the randomize-then-optimise draw) was added on 2026-12-05,
recorded with the code of that day; the other cases did not change.

Record again (only when a change is *meant* to alter results, and say so in the commit)::

    PYTHONPATH=src .venv/bin/python tests/test_sync_free.py
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

REFERENCE = Path(__file__).parent / "data" / "sampler_reference.npz"
SEEDS = [0, 1, 2]
IMAGE = (1, 8, 8)
AUDIO_LENGTH = 32


def machine() -> str:
    """What exact float32 equality depends on: torch build, CPU kernel set, architecture."""
    capability = torch.backends.cpu.get_cpu_capability()
    return f"torch {torch.__version__}; {capability}; {platform.machine()}"


class TinyEpsilon(nn.Module):
    """``eps_hat(z, tau) = 0.5 tanh(conv(z)) + 1e-5 tau``: a random smooth network."""

    def __init__(self, channels: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, z: Tensor, tau: Tensor) -> Tensor:
        return 0.5 * torch.tanh(self.conv(z)) + 1e-5 * tau.float().view(-1, 1, 1, 1)


def gmm_case() -> tuple[object, object]:
    from mgdm.gmm_problem import make_gmm_problem

    case = make_gmm_problem(8, 2, 0)
    return case.prior, case.problem


def latent_case() -> tuple[object, object]:
    from mgdm.operators.noise import GaussianNoise
    from mgdm.operators.super_resolution import SuperResolution
    from mgdm.priors import EpsilonNetworkPrior
    from mgdm.priors.latent import KLAutoencoder, LatentPrior, latent_problem
    from mgdm.priors.latent.autoencoder import build_autoencoder
    from mgdm.problem import Problem

    autoencoder = KLAutoencoder(build_autoencoder((8, 8), 2, seed=0, image_size=8), 8)
    network = TinyEpsilon(autoencoder.latent_shape[0])
    prior = LatentPrior(EpsilonNetworkPrior(network, autoencoder.latent_shape), autoencoder)
    operator = SuperResolution(IMAGE, 2)
    y = 0.5 * torch.sin(torch.arange(16.0)).reshape(operator.output_shape)
    return prior, latent_problem(Problem(operator, y, GaussianNoise(0.05)), prior)


def image_case() -> tuple[object, object]:
    from mgdm.operators.noise import GaussianNoise
    from mgdm.operators.super_resolution import SuperResolution
    from mgdm.priors import EpsilonNetworkPrior
    from mgdm.problem import Problem

    prior = EpsilonNetworkPrior(TinyEpsilon(1), IMAGE)
    operator = SuperResolution(IMAGE, 2)
    y = 0.5 * torch.sin(torch.arange(16.0)).reshape(operator.output_shape)
    return prior, Problem(operator, y, GaussianNoise(0.05))


def audio_case() -> tuple[object, object]:
    from mgdm.audio.constants import STEMS
    from mgdm.audio.prior import AudioPrior
    from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
    from mgdm.operators.mixing import Mixing
    from mgdm.operators.noise import GaussianNoise
    from mgdm.problem import Problem

    config = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)
    prior = AudioPrior(build_unet1d(config, seed=1), STEMS, 8000, AUDIO_LENGTH)
    mix = 0.1 * torch.randn(AUDIO_LENGTH, generator=torch.Generator().manual_seed(0))
    return prior, Problem(Mixing(4, AUDIO_LENGTH), mix, GaussianNoise(1e-4))


def cases() -> Iterator[tuple[str, Callable[[], tuple[object, object]], object]]:
    """``(key, build prior and problem, sampler)`` for each recorded run."""
    from mgdm.samplers import MGDM, preset
    from mgdm.samplers.daps import DAPS, DAPSConfig
    from mgdm.samplers.dps import DPS, DPSConfig
    from mgdm.samplers.msdm import MSDM
    from mgdm.samplers.psld import PSLD, PSLDConfig
    from mgdm.samplers.registry import build_sampler
    from mgdm.samplers.resample import ReSample, ReSampleConfig
    from mgdm.samplers.step_schedule import StepSchedule

    gmm = gmm_case
    problem = gmm()[1]
    budgets = {"daps": 200}  # DAPS diverges on this problem below 40 annealing steps
    for name in ("dps", "pgdm", "ddnm", "diffpir", "reddiff", "daps", "pnpdm"):
        sampler = build_sampler(name, "gmm", problem=problem).with_budget(budgets.get(name, 40))
        yield f"gmm/{name}", gmm, sampler
    # recorded as the default preset of the time, today's ``variational``
    yield "gmm/mgdm-default", gmm, MGDM(preset("variational", num_steps=8))
    yield "gmm/mgdm-reference", gmm, MGDM(preset("reference", num_steps=8))
    yield "gmm/mgdm-rto", gmm, MGDM(preset("default", num_steps=8))  # recorded 2026-12-05
    image_problem = image_case()[1]
    for name in ("pgdm", "ddnm", "diffpir", "reddiff", "pnpdm"):
        sampler = build_sampler(name, "image", problem=image_problem).with_budget(20)
        yield f"image/{name}", image_case, sampler
    # recorded as the fast preset of the time (the Adam fit, G = 2 then 10 in the last 5)
    fast_of_the_time = preset(
        "fast", fit="variational", num_steps=5, gradient_steps=StepSchedule.parse("2,-5:=10")
    )
    yield "latent/mgdm", latent_case, MGDM(fast_of_the_time)
    yield "latent/dps", latent_case, DPS(DPSConfig(num_steps=5))
    yield (
        "latent/daps",
        latent_case,
        DAPS(DAPSConfig(annealing_steps=2, ode_steps=2, langevin_steps=3)),
    )
    yield "latent/psld", latent_case, PSLD(PSLDConfig(num_steps=5))
    yield (
        "latent/resample",
        latent_case,
        ReSample(ReSampleConfig(num_steps=12, consistency_every=2, max_iterations=5)),
    )
    yield "audio/msdm", audio_case, MSDM(num_steps=6)


def run_all() -> dict[str, np.ndarray]:
    """Every case's samples (one thread), as float32 arrays by key."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outputs = {}
        for key, build, sampler in cases():
            prior, problem = build()
            samples = sampler.sample(prior, problem, SEEDS).samples
            outputs[key] = samples.detach().cpu().numpy()
        return outputs
    finally:
        torch.set_num_threads(previous)


def record() -> None:
    """Write :data:`REFERENCE` from the current code (see the module docstring)."""
    outputs = run_all()
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, machine=np.array(machine()), **outputs)
    print(f"wrote {len(outputs)} cases to {REFERENCE} ({machine()})")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as stored:
        recorded_on = str(stored["machine"])
        if recorded_on != machine():
            pytest.skip(f"reference recorded on {recorded_on}; this is {machine()}")
        return {key: stored[key] for key in stored.files if key != "machine"}


def test_samplers_bit_identical_to_the_recorded_outputs(reference) -> None:
    outputs = run_all()
    assert sorted(outputs) == sorted(reference)
    for key, samples in outputs.items():
        assert samples.dtype == reference[key].dtype, key
        np.testing.assert_array_equal(samples, reference[key], err_msg=key)


CUDA = torch.cuda.is_available()
SYNC_MESSAGE = "synchronizing CUDA operation"


@pytest.mark.device
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (scripts/gpu_check.sh runs it)")
def test_step_primitives_never_synchronise_on_cuda() -> None:
    """The schedule, the conversions, the bridge and the DDIM step, as one sampling step calls
    them, under ``torch.cuda.set_sync_debug_mode("error")`` (any synchronisation raises)."""
    from mgdm.diffusion.bridge import bridge_coefficients, ddim_step
    from mgdm.diffusion.conversions import eps_to_x0, per_sample, x0_to_eps
    from mgdm.diffusion.schedules import ddpm_linear
    from mgdm.priors.base import as_time_vector

    cuda = torch.device("cuda")
    schedule = ddpm_linear()
    x = torch.randn(4, 3, device=cuda)
    noise = torch.randn(4, 3, device=cuda)
    late = as_time_vector(500, 4, cuda)
    schedule.alpha_bar(late)  # the table's one copy to the device, before the steps
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            times = as_time_vector(500, 4, cuda)
            abar = schedule.alpha_bar(times)
            x0 = eps_to_x0(x, noise, abar)
            eps = x0_to_eps(x, x0, abar)
            scaled = per_sample(schedule.alpha_bar(250), x) * eps
            step = ddim_step(schedule, x, x0, 500, 300, noise, 1.0)
            deterministic = ddim_step(schedule, x, x0, 500, 300, None, 0.0)
            early = torch.zeros(4, dtype=torch.int64, device=cuda)
            bridge = bridge_coefficients(schedule, early, times - 100, times, 1.0)
            drawn = bridge.sample(x0, step, noise)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    for result in (scaled, deterministic, drawn):
        assert result.device.type == "cuda" and bool(torch.isfinite(result).all())


def sync_count(run: Callable[[], object]) -> int:
    """Synchronisations reported by ``torch.cuda.set_sync_debug_mode("warn")`` during ``run``."""
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum(SYNC_MESSAGE in str(w.message) for w in caught)


def cuda_image_case() -> tuple[object, object]:
    from mgdm.operators.noise import GaussianNoise
    from mgdm.operators.super_resolution import SuperResolution
    from mgdm.priors import EpsilonNetworkPrior
    from mgdm.problem import Problem

    cuda = torch.device("cuda")
    prior = EpsilonNetworkPrior(TinyEpsilon(1).to(cuda), IMAGE)
    operator = SuperResolution(IMAGE, 2)
    y = 0.5 * torch.sin(torch.arange(16.0)).reshape(operator.output_shape)
    return prior, Problem(operator, y.to(cuda), GaussianNoise(0.05))


@pytest.mark.device
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (scripts/gpu_check.sh runs it)")
@pytest.mark.parametrize(
    "name", ["dps", "reddiff", "pgdm", "ddnm", "diffpir", "daps", "pnpdm", "mgdm"]
)
def test_samplers_make_no_synchronisation_per_step_on_cuda(name) -> None:
    """A run twice as long makes no more synchronisations (those of the setup, once per run:
    seeds, observation, initial state), so the steps make none."""
    from mgdm.samplers.registry import build_sampler

    prior, problem = cuda_image_case()
    base = build_sampler(name, "image", problem=problem)
    counts = []
    for budget in (10, 20):
        sampler = base.with_budget(budget)
        sampler.sample(prior, problem, SEEDS)  # warm-up: the schedule's copy to the device
        counts.append(sync_count(lambda s=sampler: s.sample(prior, problem, SEEDS)))
    assert counts[0] == counts[1], f"{name}: {counts[0]} syncs at 10 calls, {counts[1]} at 20"


if __name__ == "__main__":
    sys.exit(record())
