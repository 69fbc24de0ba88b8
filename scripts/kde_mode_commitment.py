"""When do samplers commit to the posterior's kernel on the kernel-density exact posterior?
The figures of docs/benchmarks.md §2.1 ("mode commitment").

Usage (from the repository root; about 20 minutes on a 2-core x86 VM)::

    .venv/bin/python scripts/kde_mode_commitment.py --tasks sr4 box_inpainting --images 8 \
        --samples 32 --out docs/results/images/kde-mode-commitment.md

The prior is ``fashion-mnist-kde``: ``N = 1000`` Gaussian kernels ``N(x_n, s^2 I)`` on training
images. Under the benchmark's observations (``sigma_y = 0.05``, the observation seeds of
``mgdm bench images``) the exact posterior puts almost all its weight on one kernel ``n*`` (the
``top weight`` column), so a sample is right or wrong by the kernel it ends in. Each sample is
assigned to the posterior component of highest responsibility (``final``), and along the way every
network call at time ``t`` is watched: the share of the batch whose *prior* responsibilities
``r_n(x_t) ∝ exp(-||x_t - sqrt(abar_t) x_n||^2 / (2 (abar_t s^2 + 1 - abar_t)))`` peak at ``n*``,
averaged over the calls in each time band (for MGDM these include the trial points of its draw).
The last column is the samples' squared Mahalanobis distance to their kernel's posterior mean per
dimension, ``(x - m_n)^T C^{-1} (x - m_n) / d``: 1 on average for exact draws (the first row, a
check of the assignment), below 1 when the samples are too concentrated inside their kernel.

Samplers: MGDM's ``default`` preset and DPS rescaled to ``--budget`` calls per sample, MGDM's
default at 1000 calls, and the ladder's oracle rung "exact potential" (the Gaussian fit with the
true ``g_ell``, docs/algorithms/mgdm.md §12) at ``--budget``, which shows what the practical
potential ``g(D_ell(x))`` costs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from mgdm.bench.images import SamplerVariant, observe
from mgdm.bench.ladder import RUNGS, rung_config
from mgdm.data.fashion_mnist import load_fashion_mnist
from mgdm.operators.noise import GaussianNoise
from mgdm.priors.catalog import load_prior
from mgdm.priors.kernel_density import KernelDensityPosterior, KernelDensityPrior
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers.base import Sampler
from mgdm.samplers.mgdm import MGDM
from mgdm.tasks.registry import make_task

SIGMA_Y = 0.05
EXACT_SEED = 1_000_000
"""First seed of the exact posterior draws of the ``exact posterior`` row."""
BANDS = ((700, 1001), (500, 700), (300, 500), (100, 300), (0, 100))
"""Time bands ``[lo, hi)`` of the table's columns, earliest (noisiest) first."""


class KernelWatch(KernelDensityPrior):
    """``prior`` itself (the same kernels, so the oracle's exact guidance accepts it), recording
    at every call ``(t, share of the batch whose prior responsibilities peak at kernel``
    :attr:`target` ``)``."""

    def __init__(self, prior: KernelDensityPrior):
        self.__dict__.update(prior.__dict__)
        self.watched_centres = prior.mixture.means.float()  # [N, d]
        self.target = 0
        self.calls: list[tuple[int, float]] = []

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        time = int(torch.as_tensor(t).reshape(-1)[0])
        abar = float(self.schedule.abar[time])
        flat = x_t.detach().reshape(x_t.shape[0], -1).float()
        distance = (
            (flat**2).sum(1, keepdim=True)
            - 2 * abar**0.5 * flat @ self.watched_centres.T
            + abar * (self.watched_centres**2).sum(1)[None]
        )  # [B, N], up to the 1/(2 gamma) that does not change the argmax
        share = float((distance.argmin(1) == self.target).float().mean())
        self.calls.append((time, share))
        return super().denoise(x_t, t)


def kernel_fit(posterior: KernelDensityPosterior, samples: Tensor) -> tuple[Tensor, Tensor]:
    """For samples ``[B, ...]``: the posterior component of highest responsibility, ``[B]``, and
    the squared Mahalanobis distance to that component's mean per dimension,
    ``(x - m_n)^T C^{-1} (x - m_n) / d``, ``[B]`` (1 on average for exact draws; below 1: the
    samples are too concentrated inside their kernel)."""
    log_r = posterior.log_responsibilities(samples)  # log w_n - squared / 2 (+ const)
    kernels = log_r.argmax(1)
    squared = 2 * (posterior.log_weights[kernels] - log_r.gather(1, kernels[:, None])[:, 0])
    return kernels, squared / samples[0].numel()


def samplers(task: str, budget: int) -> list[tuple[str, Sampler]]:
    """The compared samplers (module docstring), labelled."""
    exact_potential = next(rung for rung in RUNGS if rung.label == "exact potential")
    return [
        (f"mgdm @{budget}", SamplerVariant("m", "mgdm", "default").build(task).with_budget(budget)),
        (f"dps @{budget}", SamplerVariant("d", "dps").build(task).with_budget(budget)),
        ("mgdm @1000", SamplerVariant("m", "mgdm", "default").build(task).with_budget(1000)),
        (
            f"mgdm, exact potential (oracle) @{budget}",
            MGDM(rung_config(exact_potential, 64)).with_budget(budget),
        ),
    ]


def task_table(task_name: str, images: int, samples: int, budget: int) -> str:
    prior = load_prior("fashion-mnist-kde")
    assert isinstance(prior, KernelDensityPrior)
    watch = KernelWatch(prior)
    pixels = load_fashion_mnist("test", limit=images).images
    task = make_task(task_name, tuple(pixels.shape[1:]), seed=0)
    compared = samplers(task_name, budget)
    labels = ["exact posterior", *(label for label, _ in compared)]
    bands = {label: [[] for _ in BANDS] for label in labels}
    final = {label: [] for label in labels}
    spread = {label: [] for label in labels}
    top_weights = []
    for index in range(images):
        y = observe(task, pixels[index : index + 1].float(), [index], 0, SIGMA_Y)
        posterior = prior.posterior(task.operator, y[0], SIGMA_Y)
        watch.target = int(posterior.weights.argmax())
        top_weights.append(float(posterior.weights.max()))
        problem = Problem(
            task.operator, y.expand(samples, *y.shape[1:]).contiguous(), GaussianNoise(SIGMA_Y)
        )
        exact = posterior.sample(SampleNoise(range(EXACT_SEED, EXACT_SEED + samples)))
        draws = [("exact posterior", exact)]
        for label, sampler in compared:
            watch.calls.clear()
            draws.append((label, sampler.sample(watch, problem, list(range(samples))).samples))
            for column, (low, high) in enumerate(BANDS):
                shares = [share for time, share in watch.calls if low <= time < high]
                if shares:
                    bands[label][column].append(sum(shares) / len(shares))
        for label, drawn in draws:
            kernels, distance = kernel_fit(posterior, drawn)
            final[label].append(float((kernels == watch.target).double().mean()))
            spread[label].append(float(distance.mean()))
        print(f"{task_name}: image {index + 1}/{images}", flush=True)
    head = " | ".join(f"t in [{low}, {min(high, 1000)})" for low, high in BANDS)
    caption = (
        f"{task_name}: {images} images x {samples} samples; the exact posterior's top kernel "
        f"weight is {sum(top_weights) / len(top_weights):.3f} on average (min "
        f"{min(top_weights):.3f})."
    )
    lines = [
        caption,
        "",
        f"| sampler | {head} | final: in n* | within-kernel spread |",
        "|:---|" + "---:|" * (len(BANDS) + 2),
    ]

    def mean(values: list[float]) -> str:
        return f"{sum(values) / len(values):.2f}" if values else "-"

    for label in labels:
        cells = " | ".join(mean(values) for values in bands[label])
        lines.append(f"| {label} | {cells} | **{mean(final[label])}** | {mean(spread[label])} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["sr4", "box_inpainting"])
    parser.add_argument("--images", type=int, default=8, help="first N test images")
    parser.add_argument("--samples", type=int, default=32, help="samples per image")
    parser.add_argument("--budget", type=int, default=200, help="network calls per sample")
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tables = [task_table(task, args.images, args.samples, args.budget) for task in args.tasks]
    text = (
        "Share of samples at the posterior's kernel n*: along the trajectory (prior "
        "responsibilities peak at n*, by time band) and at the end (`scripts/"
        f"kde_mode_commitment.py --tasks {' '.join(args.tasks)} --images {args.images} "
        f"--samples {args.samples} --budget {args.budget}`).\n\n" + "\n\n".join(tables) + "\n"
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
