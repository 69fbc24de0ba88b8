"""Unconditional samples of a prior and their quality: the figures of a model card.

* :func:`sample_prior`: ``x_T ~ N(0, (1 - abar_T) I)`` at ``T = 999``, then DDIM(eta) steps on the
  grid ``timestep_grid(K)`` down to 0, each step using the Tweedie estimate ``D_t(x_t)``; one seed
  per sample, so a sample does not depend on its batch.
* :func:`evaluate_prior`: FID-style Fréchet distance in the feature space of the project's
  Fashion-MNIST classifier between ``N`` prior samples and the test split, beside the same
  distance between ``N`` training images and the test split (the floor a perfect model of the
  training distribution would reach with ``N`` samples), plus a sample grid.
"""

from __future__ import annotations

import itertools
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.devices import autocast_dtype, current_precision
from mgdm.diffusion.bridge import ddim_step
from mgdm.diffusion.schedules import NUM_TIMESTEPS, timestep_grid
from mgdm.files import write_atomically
from mgdm.priors.base import Denoiser
from mgdm.random import SampleNoise, derive_seed
from mgdm.samplers.base import CountingDenoiser


def check_grid_points(num_steps: int) -> None:
    """``ValueError`` unless :func:`sample_prior`'s grid can have ``num_steps`` points: 2 to
    1000 (the schedule's times)."""
    if type(num_steps) is not int or not 2 <= num_steps <= NUM_TIMESTEPS:
        raise ValueError(f"the DDIM grid takes 2 to {NUM_TIMESTEPS} points; got {num_steps!r}.")


@torch.no_grad()
def sample_prior(
    prior: Denoiser,
    seeds: list[int],
    num_steps: int = 100,
    eta: float = 1.0,
    batch_size: int = 250,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``len(seeds)`` samples ``[N, *sample_shape]`` by DDIM(eta) with ``num_steps`` grid points
    (:func:`check_grid_points`), clamped to the prior's data range; returned on the CPU.

    ``device`` is where the prior's network lives (the states are drawn there); its calls run in
    the current precision (:func:`mgdm.devices.use_precision`, fp32 unless set).
    """
    check_grid_points(num_steps)
    device = torch.device(device)
    network = CountingDenoiser(prior, autocast_dtype(current_precision(), device))
    grid = timestep_grid(num_steps).tolist()[::-1]
    chunks = []
    bar = tqdm(total=len(seeds) * (len(grid) - 1), desc="prior samples", disable=not progress)
    for start in range(0, len(seeds), batch_size):
        noise = SampleNoise(seeds[start : start + batch_size], device=device)
        x = prior.initial_state(noise, grid[0])
        for t, t_next in itertools.pairwise(grid):
            x0_hat = network.denoise(x, torch.full((x.shape[0],), t, device=device))
            x = ddim_step(prior.schedule, x, x0_hat, t, t_next, noise.randn(*x.shape[1:]), eta)
            bar.update(x.shape[0])
        chunks.append(x.cpu())
    bar.close()
    samples = torch.cat(chunks)
    return samples.clamp(*prior.data_range) if prior.data_range is not None else samples


@dataclass(frozen=True)
class PriorEvaluation:
    """Figures of a model card (all measured by :func:`evaluate_prior`)."""

    samples: int
    ddim_steps: int
    eta: float
    fid_prior_vs_test: float
    fid_train_vs_test: float
    seconds_sampling: float
    seconds_per_sample: float
    classifier_test_accuracy: float
    machine: str
    torch_version: str
    threads: int


def machine_description() -> str:
    """The CPU model (from ``/proc/cpuinfo`` where readable) and core count, or the GPU name."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{model}, {os.cpu_count()} cores"


def evaluate_prior(
    prior: Denoiser,
    count: int = 1000,
    num_steps: int = 100,
    eta: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[PriorEvaluation, Tensor]:
    """Draw ``count`` samples and measure them (see the module docstring); returns the figures
    and the samples ``[count, 1, 32, 32]`` (a latent prior's samples are decoded, then clamped,
    before they are measured; the sampling time includes the decoding). Needs the Fashion-MNIST
    data and the shipped classifier. ``device``: where the prior's network lives (the samples and
    the figures are computed on the CPU from there on)."""
    from mgdm.data.fashion_mnist import load_fashion_mnist
    from mgdm.metrics.fashion_classifier import SHIPPED_CLASSIFIER_DIR, load_classifier
    from mgdm.metrics.image_quality import frechet_distance

    if count < 2:
        raise ValueError(f"the FID needs at least 2 samples; got {count}.")
    classifier = load_classifier()
    test = load_fashion_mnist("test").images
    train = load_fashion_mnist("train", limit=count).images
    started = time.perf_counter()
    seeds = [derive_seed(seed, 21, n) for n in range(count)]
    drawn = sample_prior(prior, seeds, num_steps, eta, progress=True, device=device)
    samples = prior.samples_to_data(drawn.to(device)).cpu()
    seconds = time.perf_counter() - started
    accuracy = json.loads((SHIPPED_CLASSIFIER_DIR / "metrics.json").read_text())["test_accuracy"]
    evaluation = PriorEvaluation(
        samples=count,
        ddim_steps=num_steps,
        eta=eta,
        fid_prior_vs_test=frechet_distance(samples, test, classifier),
        fid_train_vs_test=frechet_distance(train, test, classifier),
        seconds_sampling=seconds,
        seconds_per_sample=seconds / count,
        classifier_test_accuracy=float(accuracy),
        machine=machine_description(),
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
    )
    return evaluation, samples


def write_sample_grid(samples: Tensor, path: Path, columns: int = 8) -> Path:
    """The first ``columns**2`` samples ``[N, 1, H, W]`` tiled into one grey PNG (2 px gaps),
    written whole or not at all."""
    from PIL import Image

    tiles = samples[: columns * columns]
    rows = -(-tiles.shape[0] // columns)
    _, _, height, width = tiles.shape
    canvas = torch.full((rows * (height + 2), columns * (width + 2)), -1.0)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        canvas[
            r * (height + 2) : r * (height + 2) + height, c * (width + 2) : c * (width + 2) + width
        ] = tile[0]
    pixels = ((canvas + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    image = Image.fromarray(pixels).resize(
        (canvas.shape[1] * 4, canvas.shape[0] * 4), Image.NEAREST
    )
    return write_atomically(path, lambda temporary: image.save(temporary, format="PNG"))


def save_evaluation(evaluation: PriorEvaluation, path: Path) -> Path:
    """Write ``evaluation`` as JSON, whole or not at all."""
    text = json.dumps(asdict(evaluation), indent=2) + "\n"
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
