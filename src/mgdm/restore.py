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

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mgdm.devices import resolve_device, torch_threads
from mgdm.files import atomic_path
from mgdm.image_io import ConvertedImage, convert_image, save_array, write_image
from mgdm.operators import (
    HighDynamicRange,
    Inpainting,
    LinearOperator,
    Operator,
    SaturatedBlur,
    SuperResolution,
)
from mgdm.operators.noise import GaussianNoise
from mgdm.priors.base import Denoiser
from mgdm.priors.catalog import SHIPPED_PRIORS, load_prior
from mgdm.problem import Problem
from mgdm.random import SampleNoise, derive_seed
from mgdm.samplers.base import Cost, Sampler
from mgdm.samplers.registry import build_sampler
from mgdm.tasks.registry import Task, make_task

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


def resolve_sampler(sampler: Sampler | str, task_name: str, nfe: float | None = None) -> Sampler:
    """``sampler``, built from its registered name with the task's Reference defaults (and for
    MGDM the ``default`` preset) when it is a name; then rescaled to ``nfe`` network calls per
    sample (:meth:`mgdm.samplers.base.Sampler.with_budget`) unless ``nfe`` is ``None``."""
    sampler = build_sampler(sampler, task=task_name) if isinstance(sampler, str) else sampler
    return sampler if nfe is None else sampler.with_budget(nfe)


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
        baseline: the do-nothing estimate ``[C, H, W]`` (:func:`do_nothing_baseline`), or
            ``None`` for an operator without one (phase retrieval).
        baseline_method: how it was made (e.g. ``"bicubic upsampling of y"``; ``""`` without).
        baseline_psnr, baseline_ssim: its scores against ``clean`` (``None`` without either).
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
    baseline: Tensor | None = None
    baseline_method: str = ""
    baseline_psnr: float | None = None
    baseline_ssim: float | None = None


def do_nothing_baseline(operator: Operator, observations: Tensor) -> tuple[Tensor, str] | None:
    """The observation brought back to the image grid without any prior: what a restoration
    must beat to be worth its cost. ``observations`` ``[B, *output_shape]`` ->
    ``([B, *input_shape]`` clamped to ``[-1, 1]``, the method), or ``None`` where no such
    estimate exists. Per operator family:

    * super-resolution by ``r x r`` block means: bicubic upsampling by ``r`` (the block means
      sit at the block centres, ``align_corners=False``);
    * inpainting: zero filling ``A^T y`` (the missing pixels at 0, mid-grey);
    * HDR ``clip(s x, -1, 1)``: ``y / s`` (exact where no pixel saturated);
    * saturated blur ``tanh(beta (k * x)) / tanh(beta)``: the response undone,
      ``atanh(y tanh(beta)) / beta`` (still blurred);
    * any other operator whose observation is an image of the same shape (blur, JPEG,
      denoising): ``y`` itself;
    * any other linear operator with an SVD (colourisation): the pseudo-inverse ``A^+ y``;
    * anything else (phase retrieval's Fourier magnitudes): ``None``.
    """
    if isinstance(operator, SuperResolution):
        factor = operator.factor
        estimate = torch.nn.functional.interpolate(
            observations, scale_factor=factor, mode="bicubic", align_corners=False
        )
        method = f"bicubic upsampling of y (x{factor})"
    elif isinstance(operator, Inpainting):
        estimate, method = operator.adjoint(observations), "zero filling of y"
    elif isinstance(operator, HighDynamicRange):
        estimate, method = observations / operator.scale, f"y / {operator.scale:g}"
    elif isinstance(operator, SaturatedBlur):
        squashed = (observations * math.tanh(operator.beta)).clamp(-1 + 1e-6, 1 - 1e-6)
        estimate = torch.atanh(squashed) / operator.beta
        method = "y with the sensor response undone (still blurred)"
    elif tuple(operator.output_shape) == tuple(operator.input_shape):
        estimate, method = observations, "y itself"
    elif isinstance(operator, LinearOperator) and operator.svd is not None:
        estimate, method = operator.pseudo_inverse(observations), "pseudo-inverse A^+ y"
    else:
        return None
    return estimate.clamp(-1, 1), method


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
    nfe: float | None = None,
) -> Restoration:
    """Draw ``samples`` posterior samples given one ``observation`` (see the module docstring).

    ``prior``: a :class:`Denoiser` or a name/path for :func:`mgdm.priors.load_prior`;
    ``sampler``: a :class:`Sampler` or a registered name (built with the task's Reference defaults
    and, for MGDM, the ``default`` preset); ``sigma_y``: the Gaussian noise level assumed by the
    likelihood; ``clean``: an optional reference image ``[C, H, W]`` for PSNR/SSIM; ``threads``:
    torch's CPU threads during the call (restored afterwards; ``None`` leaves torch's setting
    alone), one by default as ``mgdm restore`` (:func:`mgdm.devices.torch_threads`); ``nfe``: a
    budget of network calls per sample, applied as ``sampler.with_budget(nfe)``
    (:meth:`mgdm.samplers.base.Sampler.with_budget`; ``None``: the sampler's own steps).
    The result holds the do-nothing baseline (:func:`do_nothing_baseline`) beside the samples,
    scored like them when ``clean`` is given.
    """
    cleans = None if clean is None else clean[None]
    return restore_batch(
        observation[None],
        task,
        prior,
        sampler,
        samples,
        seed,
        sigma_y,
        cleans,
        progress,
        threads,
        nfe=nfe,
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
    *,
    nfe: float | None = None,
    image_keys: Sequence[int] | None = None,
) -> list[Restoration]:
    """:func:`restore` for ``K`` observations ``[K, *observation_shape]`` (and optional clean
    images ``[K, C, H, W]``) in one sampler call of ``K * samples`` samples. Image ``k`` draws
    with the seeds ``sample_seeds(seed, samples, image_keys[k])`` (``image_keys`` defaults to
    ``0 … K - 1``): the draws that ``restore(observations[k], …)`` gives image 0 alone, the
    samples agreeing up to float32 rounding (docs/determinism.md). The cost (calls per sample,
    seconds) is that of the whole call. ``threads`` and ``nfe`` as in :func:`restore`."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"the number of samples must be a whole number >= 1; got {samples!r}.")
    if not sigma_y > 0:
        raise ValueError(f"sigma_y must be > 0 (the likelihood's noise level); got {sigma_y}.")
    count = observations.shape[0]
    if cleans is not None and cleans.shape[0] != count:
        raise ValueError(f"{count} observations but {cleans.shape[0]} clean images.")
    keys = list(range(count)) if image_keys is None else [int(k) for k in image_keys]
    if len(keys) != count:
        raise ValueError(f"{count} observations but {len(keys)} image keys.")
    with torch_threads(threads):
        prior = load_prior(prior) if isinstance(prior, (str, Path)) else prior
        if tuple(prior_image_shape(prior)) != tuple(task.image_shape):
            raise ValueError(
                f"the prior draws images of shape {list(prior_image_shape(prior))} but task "
                f"{task.name!r} was built for {list(task.image_shape)}."
            )
        sampler = resolve_sampler(sampler, task.name, nfe)
        repeated = observations.repeat_interleave(samples, dim=0)
        problem = prior.problem_in_sample_space(
            Problem(task.operator, repeated, GaussianNoise(sigma_y))
        )
        seeds = [s for k in keys for s in sample_seeds(seed, samples, k)]
        result = sampler.sample(prior, problem, seeds, progress=progress)
        images = prior.samples_to_data(result.samples)
        if not bool(torch.isfinite(images).all()):
            raise ValueError(
                f"the sampler returned non-finite samples (NaN or inf): sigma_y = {sigma_y:g} may "
                "be too small for float32 arithmetic, or the observation far outside the range of "
                "A(x) for x in [-1, 1]; nothing was written."
            )
        baseline = do_nothing_baseline(task.operator, observations)
        restorations = []
        for k, drawn in enumerate(images.split(samples)):
            mean = drawn.mean(0)
            std = drawn.std(0, unbiased=True) if samples > 1 else torch.zeros_like(mean)
            scores: dict[str, object] = {}
            if baseline is not None:
                scores = {"baseline": baseline[0][k].to(drawn), "baseline_method": baseline[1]}
            if cleans is not None:
                from mgdm.metrics.image_quality import psnr, ssim

                reference = cleans[k].to(drawn)
                scores |= {
                    "clean": reference,
                    "psnr": psnr(drawn, reference),
                    "ssim": ssim(drawn, reference),
                    "psnr_mean": float(psnr(mean[None], reference)[0]),
                    "ssim_mean": float(ssim(mean[None], reference)[0]),
                }
                if baseline is not None:
                    estimate = baseline[0][k : k + 1].to(drawn)
                    scores["baseline_psnr"] = float(psnr(estimate, reference)[0])
                    scores["baseline_ssim"] = float(ssim(estimate, reference)[0])
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
    return text + scores_clause(result)


def scores_clause(result: Restoration) -> str:
    """``"; PSNR … dB / SSIM … (mean over samples), posterior mean … dB / …"``: the samples'
    mean scores and the posterior mean's; ``""`` without a clean image."""
    if result.psnr is None or result.ssim is None or result.psnr_mean is None:
        return ""
    return (
        f"; PSNR {float(result.psnr.mean()):.2f} dB / SSIM {float(result.ssim.mean()):.3f} "
        f"(mean over samples), posterior mean {result.psnr_mean:.2f} dB / {result.ssim_mean:.3f}"
    )


def scaled_std(result: Restoration) -> tuple[Tensor, float]:
    """The per-pixel std averaged over channels ``[H, W]``, divided by its maximum ``top``
    (left as it is when ``top`` is 0), and ``top``: how the std is shown."""
    std = result.std.mean(0)
    top = float(std.max())
    return (std / top if top > 0 else std), top


def baseline_line(result: Restoration) -> str:
    """One line on the do-nothing baseline: its method, its PSNR/SSIM when a clean image was
    given, and whether the posterior mean beats it."""
    if result.baseline is None:
        return f"do-nothing baseline: none for {result.task.name} (its observation is no image)"
    text = f"do-nothing baseline ({result.baseline_method})"
    if result.baseline_psnr is None or result.baseline_ssim is None or result.psnr_mean is None:
        return text + ": no score without a clean image"
    text += f": PSNR {result.baseline_psnr:.2f} dB / SSIM {result.baseline_ssim:.3f}"
    gain = result.psnr_mean - result.baseline_psnr
    verdict = "above" if gain > 0 else "BELOW"
    return text + f"; the posterior mean is {abs(gain):.2f} dB {verdict} it"


def write_grid(results: Sequence[Restoration], path: Path | str, titles: bool = True) -> Path:
    """A PNG with one row per restoration: clean (if known), observation, the do-nothing
    baseline (if any), each sample, the posterior mean and the per-pixel std (scaled to its own maximum, shown with its value).
    The file is written to a temporary name first, then moved into place
    (:func:`mgdm.files.atomic_path`)."""
    from mgdm.plotting import pyplot

    plt = pyplot()

    from mgdm.tasks.figures import display_image, observation_display

    if not results:
        raise ValueError("no restoration to draw.")
    columns = (
        max(r.samples.shape[0] for r in results)
        + 3
        + any(r.clean is not None for r in results)
        + any(r.baseline is not None for r in results)
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
        if result.baseline is not None:
            score = f"\n{result.baseline_psnr:.1f} dB" if result.baseline_psnr is not None else ""
            panels.append((display_image(result.baseline), f"do nothing{score}", "gray"))
        for n, sample in enumerate(result.samples):
            score = f"\n{float(result.psnr[n]):.1f} dB" if result.psnr is not None else ""
            panels.append((display_image(sample), f"sample {n}{score}", "gray"))
        score = f"\n{result.psnr_mean:.1f} dB" if result.psnr_mean is not None else ""
        panels.append((display_image(result.mean), f"mean{score}", "gray"))
        std, top = scaled_std(result)
        panels.append((std, f"std (max {top:.2f})", "magma"))
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


FAR_RESIZE = 2.0
"""A resize by more than this factor (up or down) counts as far from the prior's data."""


def prior_description(prior: Denoiser | str | Path) -> str | None:
    """What a prior models, as the catalog or its model card says: a shipped prior's line of
    :data:`mgdm.priors.catalog.SHIPPED_PRIORS`, else the title of ``MODEL_CARD.md`` in its folder,
    else ``None`` (a loaded prior, or a folder without a card)."""
    if isinstance(prior, Denoiser):
        return None
    text = str(prior)
    if text in SHIPPED_PRIORS:
        return f"the shipped prior {text!r} ({SHIPPED_PRIORS[text].removesuffix(' (shipped weights)')})"
    card = Path(text) / "MODEL_CARD.md"
    if card.is_file():
        for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("# "):
                return f"the prior of {text} ({line[2:].strip()})"
    return None


def input_warning(converted: ConvertedImage, prior: Denoiser | str | Path) -> str | None:
    """One line, or ``None``: the warning that an input image reached the prior far from the
    data it models, when its colour was reduced to grey, it was resized by more than
    :data:`FAR_RESIZE` times, or the prior is a shipped one (trained on Fashion-MNIST only, so
    any other image is pulled toward garments)."""
    reasons = []
    if converted.colour_to_grey:
        reasons.append("its colour was reduced to grey")
    if converted.resize_factor > FAR_RESIZE:
        reasons.append(f"it was resized {converted.resize_factor:.1f}x")
    shipped = not isinstance(prior, Denoiser) and str(prior) in SHIPPED_PRIORS
    if not reasons and not shipped:
        return None
    what = prior_description(prior) or "the prior"
    head = f"the input is far from the prior's data ({', '.join(reasons)}); " if reasons else ""
    return (
        f"{head}{what} models only the kind of image it was trained on and draws samples like "
        "them whatever the input: judge them against the do-nothing baseline; for photos pass "
        "a model trained on photos (--prior DIR or adm-ffhq256:PATH, docs/restore.md)."
    )


def save_samples(result: Restoration, folder: Path | str) -> list[Path]:
    """Write each sample, the mean and the std of ``result`` to ``folder`` (created) as PNG and
    float32 ``.npy``: ``sample_NN``, ``mean``, ``std``. Images in ``[-1, 1]`` map to pixels as
    :func:`mgdm.image_io.write_image` maps them; ``std.png`` holds the std in the same pixel
    units (``127.5 std``, clamped to 255), ``std.npy`` the exact values. Each file is written
    atomically; returns the paths."""
    folder = Path(folder)
    written = []
    named = [(f"sample_{n:02d}", sample) for n, sample in enumerate(result.samples)]
    for name, image in [*named, ("mean", result.mean)]:
        written.append(write_image(folder / f"{name}.png", image))
        written.append(save_array(folder / f"{name}.npy", image))
    written.append(write_image(folder / "std.png", result.std - 1))
    written.append(save_array(folder / "std.npy", result.std))
    return written


RESULT_FILE = "result.json"
"""The file whose presence marks an image of a folder run as finished (written last)."""


@dataclass(frozen=True)
class FolderRestoration:
    """What :func:`restore_files` did.

    Attributes:
        restored: the per-image folders written in this call.
        skipped: the inputs whose folder was already finished (resumed runs).
        warnings: the inputs with an :func:`input_warning`, and the warning; those converted far
            from the prior's data (colour to grey, a large resize) first.
    """

    restored: list[Path]
    skipped: list[Path]
    warnings: list[tuple[Path, str]]


def image_key(path: Path) -> int:
    """The number that seeds an input of a folder run: the first 7 bytes of the SHA-256 of its
    file name. Its draws hence depend on the name and ``seed`` only, not on the other inputs,
    the batch it runs in, or earlier runs."""
    return int.from_bytes(hashlib.sha256(path.name.encode("utf-8")).digest()[:7], "big")


def output_folders(paths: Sequence[Path], out_dir: Path) -> dict[Path, Path]:
    """``out_dir / <file stem>`` for each input; ``ValueError`` when two inputs share a stem."""
    folders: dict[Path, Path] = {}
    owners: dict[str, Path] = {}
    for path in paths:
        if path.stem in owners:
            raise ValueError(
                f"{owners[path.stem]} and {path} would both be restored to {out_dir / path.stem}; "
                "rename one, or restore them to different --out-dir folders."
            )
        owners[path.stem] = path
        folders[path] = out_dir / path.stem
    return folders


def restore_files(
    paths: Sequence[Path | str],
    out_dir: Path | str,
    task: str,
    prior: Denoiser | str | Path = "fashion-mnist",
    sampler: Sampler | str = "mgdm",
    samples: int = 4,
    seed: int = 0,
    sigma_y: float = 0.05,
    batch_size: int = 8,
    *,
    nfe: float | None = None,
    device: torch.device | str = "auto",
    progress: bool = False,
    threads: int | None = 1,
    log: Callable[[str], object] | None = None,
) -> FolderRestoration:
    """Restore clean image files in batches with one prior: for each input ``NAME.ext``,
    simulate ``y = A(x) + sigma_y eps`` of ``task`` (the stream ``derive_seed(seed, key)`` with
    :func:`image_key`), draw ``samples`` posterior samples (seeds ``sample_seeds(seed, samples,
    key)``) and write ``out_dir/NAME/``: ``grid.png`` (:func:`write_grid`), the samples, mean and
    std (:func:`save_samples`), ``observation.npy``, ``baseline.png``/``.npy`` (the do-nothing
    estimate) and ``result.json`` (settings, conversions, warning, scores, cost).

    Resumable: an image's folder is written under a temporary name and renamed into place when
    complete, so ``out_dir/NAME/`` exists only finished. A rerun skips finished images, after
    checking that they were made with the same settings (a ``ValueError`` names the first that
    differs). ``batch_size`` images (``batch_size * samples`` samples) run per sampler call; an
    image's samples do not depend on the batch. Inputs inside ``out_dir`` (a glob that reaches
    into it) are left out. ``nfe``: as in :func:`restore`; ``device``: where the prior runs
    (``auto``: CUDA where present, else the CPU; :func:`mgdm.devices.resolve_device`); ``log``:
    called with one line per image (``None``: silent)."""
    from mgdm.files import check_output_dir

    say = log or (lambda line: None)
    device = resolve_device(device)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"the batch size must be a whole number >= 1; got {batch_size!r}.")
    out_dir = check_output_dir(out_dir, "--out-dir")
    given = [Path(p) for p in paths]
    inside = out_dir.resolve()
    inputs = [p for p in given if inside not in p.resolve().parents]  # not our own outputs
    if len(inputs) < len(given):
        say(f"left out {len(given) - len(inputs)} files inside {out_dir} (outputs of a restore)")
    if not inputs:
        raise ValueError("no image to restore.")
    folders = output_folders(inputs, out_dir)
    with torch_threads(threads):
        spec = None if isinstance(prior, Denoiser) else str(prior)
        prior = load_prior(prior, device=device) if spec is not None else prior
        built = make_task(task, prior_image_shape(prior))
        sampler = resolve_sampler(sampler, built.name, nfe)
        settings = {
            "task": built.name,
            "task_seed": built.seed,
            "image_shape": list(built.image_shape),
            "prior": spec if spec is not None else type(prior).__name__,
            "sampler": sampler.name,
            "sampler_config": repr(sampler.config),
            "samples": samples,
            "seed": seed,
            "sigma_y": sigma_y,
        }
        pending = [p for p in inputs if not _finished(folders[p], settings)]
        skipped = [p for p in inputs if p not in pending]
        if skipped:
            say(f"{len(skipped)} of {len(inputs)} images already restored in {out_dir}: skipped")
        restored: list[Path] = []
        warnings: list[tuple[Path, str]] = []
        far: set[Path] = set()
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            converted = [convert_image(p, built.image_shape) for p in batch]
            keys = [image_key(p) for p in batch]
            cleans = torch.stack([c.image for c in converted]).to(device)
            observations = torch.stack(
                [
                    simulate_observation(built, clean, sigma_y, derive_seed(seed, key))
                    for clean, key in zip(cleans, keys)
                ]
            )
            results = restore_batch(
                observations,
                built,
                prior,
                sampler,
                samples,
                seed,
                sigma_y,
                cleans,
                progress,
                threads=None,
                image_keys=keys,
            )
            for path, conversion, result in zip(batch, converted, results):
                warning = input_warning(conversion, spec if spec is not None else prior)
                if warning is not None:
                    warnings.append((path, warning))
                if conversion.colour_to_grey or conversion.resize_factor > FAR_RESIZE:
                    far.add(path)
                record = {
                    "input": str(path),
                    "settings": settings,
                    "notes": list(conversion.notes),
                    "warning": warning,
                    **_scores(result),
                }
                restored.append(_write_result(result, folders[path], record))
                say(f"{path.name}: {summary_line(result)}; {baseline_line(result)}")
        warnings.sort(key=lambda item: item[0] not in far)
        return FolderRestoration(restored, skipped, warnings)


def _finished(folder: Path, settings: dict[str, object]) -> bool:
    """Whether ``folder`` holds a finished restoration made with ``settings``; ``ValueError``
    for one made with other settings, or a folder that is not a finished restoration."""
    if not folder.exists():
        return False
    record = folder / RESULT_FILE
    if not folder.is_dir() or not record.is_file():
        raise ValueError(
            f"{folder} exists but is not a finished restoration (no {RESULT_FILE}); remove it or "
            "choose another --out-dir."
        )
    try:
        stored = json.loads(record.read_text(encoding="utf-8")).get("settings", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise ValueError(f"{record} is not a readable result; remove {folder}.") from None
    for key, value in settings.items():
        if stored.get(key) != value:
            detail = f" ({stored.get(key)!r}, this run {value!r})" if len(repr(value)) < 40 else ""
            raise ValueError(
                f"{folder} was restored with another {key}{detail}; use another --out-dir for "
                "other settings (or remove the folder)."
            )
    return True


def _scores(result: Restoration) -> dict[str, object]:
    """The JSON fields of one restoration's scores and cost."""
    cost = result.cost
    return {
        "psnr": None if result.psnr is None else [round(float(v), 4) for v in result.psnr],
        "ssim": None if result.ssim is None else [round(float(v), 5) for v in result.ssim],
        "psnr_mean": result.psnr_mean,
        "ssim_mean": result.ssim_mean,
        "baseline": {
            "method": result.baseline_method or None,
            "psnr": result.baseline_psnr,
            "ssim": result.baseline_ssim,
        },
        "cost": {
            "nfe_forward": cost.nfe_forward,
            "nfe_backward": cost.nfe_backward,
            "seconds_per_sample": cost.seconds_per_sample,
        },
    }


def _write_result(result: Restoration, folder: Path, record: dict[str, object]) -> Path:
    """Write one image's outputs to a temporary folder beside ``folder``, then rename it to
    ``folder`` (so ``folder`` exists only complete); returns ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_grid([result], temporary / "grid.png")
        save_samples(result, temporary)
        save_array(temporary / "observation.npy", result.observation)
        if result.baseline is not None:
            write_image(temporary / "baseline.png", result.baseline)
            save_array(temporary / "baseline.npy", result.baseline)
        text = json.dumps(record, indent=1)
        (temporary / RESULT_FILE).write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder
