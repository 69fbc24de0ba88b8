"""What the web app's tabs do, without the web page: check the inputs, run, write the results.

Each ``prepare_*`` function turns the page's values into a request or raises a one-line
``ValueError`` saying what was wrong and what is accepted (uploads are read with
:mod:`mgdm.image_io` and :mod:`mgdm.audio.wav`, with their limits and messages; the upload's
temporary path is replaced by its file name in the message). Each ``run_*`` function samples
inside a :class:`~mgdm.serve.jobs.Job` (watched, cancellable), and each ``write_*`` function
writes the results into a folder of the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mgdm.audio.separate import Separation, audio_sampler, check_mix, separate_tensor
from mgdm.audio.wav import audio_info, read_audio, write_wav
from mgdm.files import atomic_path
from mgdm.image_io import read_image
from mgdm.priors.base import Denoiser
from mgdm.restore import (
    Restoration,
    prior_image_shape,
    resolve_sampler,
    restore,
    scaled_std,
    scores_clause,
    simulate_observation,
)
from mgdm.samplers.base import Sampler
from mgdm.samplers.registry import build_sampler, sampler_class, sampler_names
from mgdm.serve.jobs import Job
from mgdm.tasks.figures import display_image, observation_display
from mgdm.tasks.registry import TASKS, Task, make_task

MAX_SAMPLES = 16
"""Posterior samples per restoration at most (one gallery tile each)."""

FASHION_MNIST_TEST_IMAGES = 10_000
"""Test images of Fashion-MNIST (indices 0 to 9,999)."""

TEST_IMAGE = "Fashion-MNIST test image"
UPLOAD = "upload"
GENERATED_MIX = "generated mix"


def image_tasks(prior: Denoiser) -> list[str]:
    """The registered tasks that can be built for the prior's images, in registry order."""
    shape = prior_image_shape(prior)
    names = []
    for name in TASKS:
        try:
            make_task(name, shape)
        except ValueError:  # e.g. colorization of grey images
            continue
        names.append(name)
    return names


def samplers_for(domain: str) -> list[str]:
    """The registered samplers meant for ``domain`` (``image``, ``latent``, ``audio``)."""
    return [name for name in sampler_names() if domain in sampler_class(name).domains]


def _upload_error(error: ValueError, path: Path) -> ValueError:
    """``error`` with the upload's temporary path replaced by its file name."""
    return ValueError(str(error).replace(str(path), path.name))


def _uploaded(upload: str | Path | None, missing: str, wanted: str) -> Path:
    """The path of an upload; ``ValueError`` saying ``missing`` without one, or naming
    ``wanted`` (what to upload instead) for an empty file."""
    if upload is None:
        raise ValueError(missing)
    path = Path(upload)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path.name!r} is empty (0 bytes); upload {wanted}.")
    return path


def _budgeted(sampler: Sampler, nfe: float) -> Sampler:
    """``sampler`` rescaled to ``nfe`` network calls per sample; ``nfe = 0`` keeps its default."""
    if not nfe >= 0:
        raise ValueError(
            f"network calls per sample must be 0 (the sampler's default) or more; got {nfe}."
        )
    return sampler.with_budget(nfe) if nfe > 0 else sampler


@dataclass(frozen=True)
class RestoreRequest:
    """A checked restoration: the clean image (when known), the observation, the sampler(s).

    Attributes:
        task: the task built for the prior's images.
        clean: ``[C, H, W]`` in ``[-1, 1]`` (the observation is simulated from it).
        observation: ``y = A(clean) + sigma_y eps`` ``[*task.observation_shape]``.
        notes: how the upload was converted to the prior's format.
        samplers: the sampler, and in compare mode the second one's name.
        compare: the second sampler's name, or ``None``.
        nfe: network calls per sample asked for (0: the sampler's default); in compare mode the
            second sampler gets the calls the first one made.
    """

    task: Task
    clean: Tensor
    observation: Tensor
    notes: tuple[str, ...]
    sampler: Sampler
    compare: str | None
    nfe: float
    samples: int
    seed: int
    sigma_y: float


def prepare_restore(
    prior: Denoiser,
    source: str,
    test_index: float | None,
    upload: str | Path | None,
    task_name: str,
    sampler_name: str,
    compare: str | None,
    nfe: float | None,
    samples: float | None,
    sigma_y: float | None,
    seed: float | None,
) -> RestoreRequest:
    """Check the restore tab's values and read the clean image; ``ValueError`` otherwise."""
    count = _whole(samples, "the number of samples", 1, MAX_SAMPLES)
    seed_value = _whole(seed, "the seed", -(2**63), 2**63 - 1)
    if sigma_y is None or not float(sigma_y) > 0:
        raise ValueError(f"sigma_y must be a number > 0 (the observation's noise); got {sigma_y}.")
    task = make_task(task_name, prior_image_shape(prior))
    sampler = _budgeted(build_sampler(sampler_name, task=task.name), float(nfe or 0))
    if compare in ("", "none"):
        compare = None
    if compare is not None:
        if compare == sampler_name:
            raise ValueError(f"compare {sampler_name} with another sampler, not with itself.")
        build_sampler(compare, task=task.name)  # an unknown name is refused here
    notes: tuple[str, ...] = ()
    if source == TEST_IMAGE:
        index = _whole(test_index, "the test image", 0, FASHION_MNIST_TEST_IMAGES - 1)
        from mgdm.data.fashion_mnist import load_fashion_mnist

        clean = load_fashion_mnist("test", indices=[index]).images[0]
        if tuple(clean.shape) != tuple(task.image_shape):
            raise ValueError(
                f"Fashion-MNIST images are {list(clean.shape)}; this prior draws "
                f"{list(task.image_shape)}: upload an image instead."
            )
    elif source == UPLOAD:
        path = _uploaded(
            upload,
            "no image uploaded: choose a file (PNG, JPEG, …) first.",
            "an image (PNG, JPEG, …)",
        )
        try:
            clean, converted = read_image(path, task.image_shape)
        except ValueError as error:
            raise _upload_error(error, path) from None
        notes = tuple(converted)
    else:
        raise ValueError(f"unknown image source {source!r}; accepted: {TEST_IMAGE}, {UPLOAD}.")
    observation = simulate_observation(task, clean, float(sigma_y), seed_value)
    return RestoreRequest(
        task,
        clean,
        observation,
        notes,
        sampler,
        compare,
        float(nfe or 0),
        count,
        seed_value,
        float(sigma_y),
    )


def _whole(value: float | None, what: str, low: int, high: int) -> int:
    """``value`` as a whole number in ``[low, high]``; ``ValueError`` naming ``what``."""
    if value is None or float(value) != int(value) or not low <= int(value) <= high:
        raise ValueError(f"{what} must be a whole number from {low:,} to {high:,}; got {value}.")
    return int(value)


def run_restore(
    request: RestoreRequest, prior: Denoiser, job: Job, device: torch.device
) -> list[Restoration]:
    """The restoration of ``request`` (and in compare mode the second sampler's, rescaled to the
    network calls per sample that the first one made, as counted)."""

    def one(sampler: Sampler) -> Restoration:
        return restore(
            request.observation.to(device),
            request.task,
            prior,
            job.watch(sampler),  # type: ignore[arg-type]  # a Sampler in all but name
            samples=request.samples,
            seed=request.seed,
            sigma_y=request.sigma_y,
            clean=request.clean.to(device),
            threads=None,  # the server's --threads
        )

    results = [one(request.sampler)]
    if request.compare is not None:  # at the calls the first one made (its grid may round nfe)
        budget = results[0].cost.nfe_total
        second = resolve_sampler(request.compare, request.task.name, budget)
        results.append(one(second))
    return results


def image_array(image: Tensor) -> np.ndarray:
    """``[C, H, W]`` in ``[-1, 1]`` -> uint8 ``[H, W]`` (grey) or ``[H, W, 3]``."""
    return (display_image(image.cpu()).numpy() * 255).round().astype(np.uint8)


def save_png(path: Path, pixels: np.ndarray) -> Path:
    """Write uint8 ``pixels`` ``[H, W]`` or ``[H, W, 3]`` as a PNG (atomically)."""
    from PIL import Image

    with atomic_path(path) as temporary:
        Image.fromarray(pixels).save(temporary, format="PNG")
    return path


def write_restoration(
    result: Restoration, folder: Path, label: str
) -> tuple[list[tuple[str, str]], list[Path]]:
    """PNGs of ``result`` at the prior's size in ``folder``, as gallery tiles ``(path, caption)``
    (clean, observation, each sample with its PSNR, the mean, the per-pixel std scaled to its
    maximum, the do-nothing baseline where the task has one), and the downloads: ``{label}-grid.png`` (:func:`mgdm.restore.write_grid`) and
    ``{label}-samples.npy`` (float32 ``[N, C, H, W]`` in ``[-1, 1]``)."""
    from mgdm.restore import write_grid

    folder.mkdir(parents=True, exist_ok=True)
    tiles: list[tuple[str, str]] = []

    def tile(name: str, pixels: np.ndarray, caption: str) -> None:
        tiles.append((str(save_png(folder / f"{label}-{name}.png", pixels)), caption))

    tile("clean", image_array(result.clean), "clean")
    shown, caption = observation_display(result.task.operator, result.observation.cpu())
    tile("observation", (shown.numpy() * 255).round().astype(np.uint8), caption)
    for n, sample in enumerate(result.samples):
        score = f", {float(result.psnr[n]):.1f} dB" if result.psnr is not None else ""
        tile(f"sample-{n}", image_array(sample), f"sample {n}{score}")
    score = f", {result.psnr_mean:.1f} dB" if result.psnr_mean is not None else ""
    tile("mean", image_array(result.mean), f"mean{score}")
    std, top = scaled_std(result)
    scaled = std.cpu().numpy()
    tile("std", (scaled * 255).round().astype(np.uint8), f"std (max {top:.2f})")
    if result.baseline is not None:
        score = f", {result.baseline_psnr:.1f} dB" if result.baseline_psnr is not None else ""
        tile("baseline", image_array(result.baseline), f"no prior: {result.baseline_method}{score}")
    grid = write_grid([result], folder / f"{label}-grid.png")
    samples = folder / f"{label}-samples.npy"
    with atomic_path(samples) as temporary:
        np.save(temporary, result.samples.cpu().numpy().astype(np.float32))
    return tiles, [grid, samples]


def estimate_grid(estimate: Tensor, prior: Denoiser, most: int = 8, zoom: int = 4) -> np.ndarray:
    """The first ``most`` current estimates ``x0_hat`` (sample space; decoded for a latent
    prior) side by side, each enlarged ``zoom`` times: uint8 ``[zoom H, zoom W k (+ gaps)]``."""
    with torch.no_grad():
        images = prior.samples_to_data(estimate[:most]).clamp(-1, 1).cpu()
    tiles = [image_array(image) for image in images]
    tiles = [np.kron(t, np.ones((zoom, zoom) + (1,) * (t.ndim - 2), dtype=np.uint8)) for t in tiles]
    gap = np.full((tiles[0].shape[0], zoom) + tiles[0].shape[2:], 255, dtype=np.uint8)
    row = [part for t in tiles for part in (t, gap)][:-1]
    return np.concatenate(row, axis=1)


def scores_text(result: Restoration) -> str:
    """A Markdown line: sampler cost, and PSNR/SSIM of the samples, the mean and the do-nothing
    baseline."""
    cost = result.cost
    text = (
        f"{result.samples.shape[0]} samples, {cost.nfe_total:.0f} network calls per sample "
        f"({cost.nfe_forward:.0f} forward + {cost.nfe_backward:.0f} forward+backward), "
        f"{cost.seconds:.1f} s"
    )
    text += scores_clause(result)
    if result.baseline_psnr is not None and result.baseline_ssim is not None:
        text += (
            f"; without a prior ({result.baseline_method}) {result.baseline_psnr:.2f} dB / "
            f"{result.baseline_ssim:.3f}"
        )
    return text


# ---------------------------------------------------------------------------- separation
@dataclass(frozen=True)
class SeparateRequest:
    """A checked separation: the mix ``[channels, samples]`` at ``sample_rate`` and the sampler."""

    mix: Tensor
    sample_rate: int
    notes: tuple[str, ...]
    sampler: Sampler
    seed: int


def prepare_separation(
    source: str,
    mix_seed: float | None,
    upload: str | Path | None,
    sampler_name: str,
    nfe: float | None,
    seed: float | None,
) -> SeparateRequest:
    """Check the separate tab's values and read (or generate) the mix; ``ValueError`` otherwise.

    A generated mix is one clip of :func:`mgdm.audio.synth.generate_example` (about 2 s at
    8 kHz, the sum of its four stems; needs fluidsynth and a soundfont, which it names when
    missing); an upload is checked from its header (rate, length) before it is decoded."""
    seed_value = _whole(seed, "the seed", -(2**63), 2**63 - 1)
    sampler = _budgeted(audio_sampler(sampler_name), float(nfe or 0))
    notes: tuple[str, ...] = ()
    if source == GENERATED_MIX:
        from mgdm.audio.constants import SAMPLE_RATE
        from mgdm.audio.synth import generate_example

        song = _whole(mix_seed, "the song number", 0, 2**31 - 1)
        mix, rate = generate_example(song).sum(0, keepdim=True), SAMPLE_RATE
        notes = (f"generated song {song}: the sum of its four synthesised stems",)
    elif source == UPLOAD:
        path = _uploaded(
            upload,
            "no mix uploaded: choose an audio file (WAV, FLAC, OGG, AIFF) first.",
            "a WAV, FLAC, OGG or AIFF",
        )
        try:
            frames, rate = audio_info(path)
            check_mix(rate, frames)
            mix, rate = read_audio(path)
        except ValueError as error:
            raise _upload_error(error, path) from None
    else:
        raise ValueError(f"unknown mix source {source!r}; accepted: {GENERATED_MIX}, {UPLOAD}.")
    return SeparateRequest(mix, rate, notes, sampler, seed_value)


def run_separation(
    request: SeparateRequest, prior: Denoiser, job: Job, device: torch.device
) -> Separation:
    """:func:`mgdm.audio.separate.separate_tensor` of the request, watched by ``job``."""
    return separate_tensor(
        request.mix,
        request.sample_rate,
        prior,  # type: ignore[arg-type]  # an audio prior (loaded by the server)
        job.watch(request.sampler),  # type: ignore[arg-type]
        seed=request.seed,
        device=device,
        threads=None,
    )


def write_separation(separation: Separation, folder: Path) -> dict[str, Path]:
    """``folder/mix.wav`` and ``folder/<stem>.wav`` (32-bit float at the prior's rate)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, audio in [("mix", separation.mix), *zip(separation.names, separation.stems)]:
        with atomic_path(folder / f"{name}.wav") as temporary:
            write_wav(temporary, audio, separation.sample_rate)
        written[name] = folder / f"{name}.wav"
    return written
