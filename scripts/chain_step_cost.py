"""Time one step of MGDM's M-point denoising chain against a plain DDIM step: the figures of
docs/cost.md §4.

Usage (from the repository root; about a minute on a 2-core x86 VM)::

    .venv/bin/python scripts/chain_step_cost.py

The network is a stand-in that costs almost nothing (``D(x, t) = x / 2``), so the times are the
bookkeeping around a call: for each batch size, microseconds per step of

* ``MGDM.denoise_chain`` with M = 20 from ``ell = 500`` (the reference preset's chain; one shared
  index, as the default draws it);
* the same 19 DDIM(eta = 1) steps written as a plain loop, drawing the noise from the same
  per-sample streams (:class:`mgdm.random.SampleNoise`);
* the plain loop drawing its noise from one ``torch.Generator`` for the batch (as a sampler
  without per-sample streams does; its samples then depend on the batch they were drawn in).

One CPU thread; the median of five repeats.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from mgdm.diffusion.bridge import bridge_coefficients
from mgdm.diffusion.schedules import ddpm_linear
from mgdm.priors.base import Denoiser
from mgdm.random import SampleNoise
from mgdm.samplers.base import CountingDenoiser
from mgdm.samplers.mgdm import MGDM, MGDMConfig

POINTS = 20
ELL = 500
DIM = 80


class HalfDenoiser(Denoiser):
    """``D(x, t) = x / 2``: a network call that costs almost nothing."""

    data_range = None

    def __init__(self, dim: int):
        self.schedule = ddpm_linear()
        self.sample_shape = (dim,)

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        return 0.5 * x_t


def plain_ddim(prior: Denoiser, x: Tensor, draw: Callable[[], Tensor]) -> Tensor:
    """The chain's 19 steps as a plain DDIM(eta = 1) loop with noise from ``draw()``."""
    times = torch.linspace(0, ELL, POINTS).long().flip(0).tolist()
    for now, nxt in itertools.pairwise(times):
        t_now = torch.full((x.shape[0],), now)
        t_next = torch.full((x.shape[0],), nxt)
        x0_hat = prior.denoise(x, t_now)
        kernel = bridge_coefficients(prior.schedule, torch.zeros_like(t_next), t_next, t_now, 1.0)
        x = kernel.sample(x0_hat, x, draw())
    return x


def microseconds_per_step(run: Callable[[], Tensor], repeats: int) -> float:
    run()  # warm-up
    medians = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        medians.append((time.perf_counter() - started) / repeats / (POINTS - 1) * 1e6)
    return statistics.median(medians)


def row(mgdm: MGDM, batch: int) -> list[float]:
    """Microseconds per step of the three loops (module docstring) at ``batch`` samples."""
    prior = CountingDenoiser(HalfDenoiser(DIM))
    x = torch.randn(batch, DIM, generator=torch.Generator().manual_seed(0))
    ell = torch.full((batch,), ELL)
    repeats = 100 if batch < 500 else 10

    def chain() -> Tensor:
        return mgdm.denoise_chain(prior, x, ell, SampleNoise(range(batch)))

    def streams() -> Tensor:
        noise = SampleNoise(range(batch))
        return plain_ddim(prior, x, lambda: noise.randn(DIM))

    def one_generator() -> Tensor:
        generator = torch.Generator().manual_seed(0)
        return plain_ddim(prior, x, lambda: torch.randn(batch, DIM, generator=generator))

    return [microseconds_per_step(f, repeats) for f in (chain, streams, one_generator)]


def main() -> None:
    torch.set_num_threads(1)
    mgdm = MGDM(MGDMConfig(denoising_steps=POINTS))
    print(
        f"| batch | MGDM chain (M = {POINTS}) | plain DDIM, per-sample streams |"
        " plain DDIM, one generator |"
    )
    print("|---:|---:|---:|---:|")
    for batch in (1, 16, 500):
        print(f"| {batch} | " + " | ".join(f"{v:.0f} µs" for v in row(mgdm, batch)) + " |")


if __name__ == "__main__":
    main()
