"""Restoring images: the Python API behind ``mgdm restore``.

A restoration draws ``N`` posterior samples ``x^(n) ~ p(x | y)`` for one observation
``y = A(x) + sigma_y eps`` of a registered task (``A`` from :func:`mgdm.tasks.make_task`), with any
registered sampler and any prior, and summarises them by the posterior mean ``(1/N) sum_n x^(n)``
and the per-pixel standard deviation (``N - 1`` in the denominator; zero for ``N = 1``)::

    from mgdm.restore import restore, simulate_observation
    from mgdm.tasks import make_task
    task = make_task("sr4", (1, 32, 32))
    y = simulate_observation(task, clean, sigma_y=0.05, seed=0)      # or a user's observation
    result = restore(y, task, prior="fashion-mnist", sampler="mgdm", samples=4, clean=clean)
    result.samples, result.mean, result.std, result.psnr, result.cost

Images are ``[C, H, W]`` tensors in ``[-1, 1]``. The prior maps the problem into its own sample
space and its samples back (:meth:`~mgdm.priors.base.Denoiser.problem_in_sample_space`,
:meth:`~mgdm.priors.base.Denoiser.samples_to_data`): with a latent prior the sampler runs on
latents against ``g(y | A(Dec(z)))`` and the samples are decoded (then clamped) before they are
summarised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mgdm.devices import torch_threads
from mgdm.files import atomic_path
from mgdm.operators.noise import GaussianNoise
from mgdm.priors.base import Denoiser
from mgdm.priors.catalog import load_prior
from mgdm.problem import Problem
from mgdm.random import SampleNoise, derive_seed
from mgdm.samplers.base import Cost, Sampler
from mgdm.samplers.registry import build_sampler
from mgdm.tasks.registry import Task

_OBSERVATION_STREAM = 11
_SAMPLE_STREAM = 12


def prior_image_shape(prior: Denoiser) -> tuple[int, ...]:
    """The shape of the images a prior describes: its sample shape, or for a latent prior the
    shape of its decoded latents."""
    return prior.data_shape


def simulate_observation(task: Task, clean: Tensor, sigma_y: float, seed: int = 0) -> Tensor:
    """``y = A(x) + sigma_y eps`` for one clean image ``x`` ``[C, H, W]``; returns
    ``[*task.observation_shape]``. ``eps`` comes from the stream ``derive_seed(seed, 11)``."""
    if tuple(clean.shape) != tuple(task.image_shape):
        raise ValueError(
            f"the clean image has shape {list(clean.shape)} but task {task.name!r} was built for "
            f"{list(task.image_shape)}."
        )
    noise = SampleNoise([derive_seed(seed, _OBSERVATION_STREAM)], device=clean.device)
    return GaussianNoise(sigma_y).observe(task.operator(clean[None]), noise)[0]


def sample_seeds(seed: int, count: int, image: int = 0) -> list[int]:
    """The per-sample seeds of a restoration: sample ``n`` of image ``k`` uses
    ``derive_seed(seed, 12, k, n)``, so asking for more samples or images keeps the first ones."""
    return [derive_seed(seed, _SAMPLE_STREAM, image, n) for n in range(count)]


@dataclass(frozen=True)
class Restoration:
    """The outcome of :func:`restore`.

    Attributes:
        task: the task (operator) the observation came through.
        observation: ``y`` ``[*observation_shape]``.
        samples: ``[N, C, H, W]`` posterior samples, clamped to the prior's data range.
        mean: ``[C, H, W]`` sample mean; ``std``: ``[C, H, W]`` per-pixel sample std.
        cost: network calls per sample and seconds of the sampler run.
        clean: the reference image when one was given, else ``None``.
        psnr, ssim: ``[N]`` per-sample scores against ``clean`` (``None`` without it).
        psnr_mean, ssim_mean: the scores of ``mean`` (``None`` without ``clean``).
    """

    task: Task
    observation: Tensor
    samples: Tensor
    mean: Tensor
    std: Tensor
    cost: Cost
    clean: Tensor | None = None
    psnr: Tensor | None = None
    ssim: Tensor | None = None
    psnr_mean: float | None = None
    ssim_mean: float | None = None


def restore(
    observation: Tensor,
    task: Task,
    prior: Denoiser | str | Path = "fashion-mnist",
    sampler: Sampler | str = "mgdm",
    samples: int = 4,
    seed: int = 0,
    sigma_y: float = 0.05,
    clean: Tensor | None = None,
    progress: bool = False,
    threads: int | None = 1,
) -> Restoration:
    """Draw ``samples`` posterior samples given one ``observation`` (see the module docstring).

    ``prior``: a :class:`Denoiser` or a name/path for :func:`mgdm.priors.load_prior`;
    ``sampler``: a :class:`Sampler` or a registered name (built with the task's Reference defaults
    and, for MGDM, the ``default`` preset); ``sigma_y``: the Gaussian noise level assumed by the
    likelihood; ``clean``: an optional reference image ``[C, H, W]`` for PSNR/SSIM; ``threads``:
    torch's CPU threads during the call (restored afterwards; ``None`` leaves torch's setting
    alone), one by default as ``mgdm restore`` (:func:`mgdm.devices.torch_threads`).
    """
    cleans = None if clean is None else clean[None]
    return restore_batch(
        observation[None], task, prior, sampler, samples, seed, sigma_y, cleans, progress, threads
    )[0]


def restore_batch(
    observations: Tensor,
    task: Task,
    prior: Denoiser | str | Path = "fashion-mnist",
    sampler: Sampler | str = "mgdm",
    samples: int = 4,
    seed: int = 0,
    sigma_y: float = 0.05,
    cleans: Tensor | None = None,
    progress: bool = False,
    threads: int | None = 1,
) -> list[Restoration]:
    """:func:`restore` for ``K`` observations ``[K, *observation_shape]`` (and optional clean
    images ``[K, C, H, W]``) in one sampler call of ``K * samples`` samples; image ``k`` gets the
    seeds, hence the random draws, that ``restore(observations[k], …)`` would give it alone (the
    samples agree up to float32 rounding: docs/determinism.md). The cost (calls per sample, seconds) is that of the whole call. ``threads``: torch's
    CPU threads during the call, as in :func:`restore`."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"the number of samples must be a whole number >= 1; got {samples!r}.")
    if not sigma_y > 0:
        raise ValueError(f"sigma_y must be > 0 (the likelihood's noise level); got {sigma_y}.")
    count = observations.shape[0]
    if cleans is not None and cleans.shape[0] != count:
        raise ValueError(f"{count} observations but {cleans.shape[0]} clean images.")
    with torch_threads(threads):
        prior = load_prior(prior) if isinstance(prior, (str, Path)) else prior
        if tuple(prior_image_shape(prior)) != tuple(task.image_shape):
            raise ValueError(
                f"the prior draws images of shape {list(prior_image_shape(prior))} but task "
                f"{task.name!r} was built for {list(task.image_shape)}."
            )
        sampler = build_sampler(sampler, task=task.name) if isinstance(sampler, str) else sampler
        repeated = observations.repeat_interleave(samples, dim=0)
        problem = prior.problem_in_sample_space(
            Problem(task.operator, repeated, GaussianNoise(sigma_y))
        )
        seeds = [s for k in range(count) for s in sample_seeds(seed, samples, k)]
        result = sampler.sample(prior, problem, seeds, progress=progress)
        images = prior.samples_to_data(result.samples)
        if not bool(torch.isfinite(images).all()):
            raise ValueError(
                f"the sampler returned non-finite samples (NaN or inf): sigma_y = {sigma_y:g} may "
                "be too small for float32 arithmetic, or the observation far outside the range of "
                "A(x) for x in [-1, 1]; nothing was written."
            )
        restorations = []
        for k, drawn in enumerate(images.split(samples)):
            mean = drawn.mean(0)
            std = drawn.std(0, unbiased=True) if samples > 1 else torch.zeros_like(mean)
            scores: dict[str, object] = {}
            if cleans is not None:
                from mgdm.metrics.image_quality import psnr, ssim

                reference = cleans[k].to(drawn)
                scores = {
                    "clean": reference,
                    "psnr": psnr(drawn, reference),
                    "ssim": ssim(drawn, reference),
                    "psnr_mean": float(psnr(mean[None], reference)[0]),
                    "ssim_mean": float(ssim(mean[None], reference)[0]),
                }
            restorations.append(
                Restoration(task, observations[k], drawn, mean, std, result.cost, **scores)
            )
        return restorations


def summary_line(result: Restoration) -> str:
    """One line: the task, the cost, and PSNR/SSIM when a clean image was given."""
    cost = result.cost
    text = (
        f"{result.task.name}: {result.samples.shape[0]} samples, "
        f"{cost.nfe_forward:.0f} forward + {cost.nfe_backward:.0f} forward+backward network calls "
        f"per sample, {cost.seconds_per_sample:.2f} s per sample"
    )
    if result.psnr is not None and result.ssim is not None:
        text += (
            f"; PSNR {float(result.psnr.mean()):.2f} dB / SSIM {float(result.ssim.mean()):.3f} "
            f"(mean over samples), posterior mean {result.psnr_mean:.2f} dB / {result.ssim_mean:.3f}"
        )
    return text


def write_grid(results: Sequence[Restoration], path: Path | str, titles: bool = True) -> Path:
    """A PNG with one row per restoration: clean (if known), observation, each sample, the
    posterior mean and the per-pixel std (scaled to its own maximum, shown with its value).
    The file is written to a temporary name first, then moved into place
    (:func:`mgdm.files.atomic_path`)."""
    from mgdm.plotting import pyplot

    plt = pyplot()

    from mgdm.tasks.figures import display_image, observation_display

    if not results:
        raise ValueError("no restoration to draw.")
    columns = (
        max(r.samples.shape[0] for r in results) + 3 + any(r.clean is not None for r in results)
    )
    figure, axes = plt.subplots(
        len(results), columns, figsize=(1.6 * columns, 1.9 * len(results)), squeeze=False
    )
    for row, result in zip(axes, results):
        panels: list[tuple[Tensor, str, str | None]] = []
        if result.clean is not None:
            panels.append((display_image(result.clean), "clean", "gray"))
        shown, label = observation_display(result.task.operator, result.observation.cpu())
        panels.append((shown, f"{result.task.name}\n{label}", "gray"))
        for n, sample in enumerate(result.samples):
            score = f"\n{float(result.psnr[n]):.1f} dB" if result.psnr is not None else ""
            panels.append((display_image(sample), f"sample {n}{score}", "gray"))
        score = f"\n{result.psnr_mean:.1f} dB" if result.psnr_mean is not None else ""
        panels.append((display_image(result.mean), f"mean{score}", "gray"))
        std = result.std.mean(0)
        top = float(std.max())
        panels.append((std / top if top > 0 else std, f"std (max {top:.2f})", "magma"))
        for axis, (image, title, cmap) in zip(row, panels):
            axis.imshow(
                image.cpu().numpy(), cmap=cmap if image.dim() == 2 else None, vmin=0, vmax=1
            )
            if titles:
                axis.set_title(title, fontsize=7)
        for axis in row:
            axis.axis("off")
    figure.tight_layout()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    finally:
        plt.close(figure)
    return Path(path)
