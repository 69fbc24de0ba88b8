"""The image benchmark: samplers x tasks x images x seeds, one database row per cell.

For a prior ``p(x)`` on images ``[C, H, W]`` in ``[-1, 1]``, every task ``A`` (built by
:func:`mgdm.tasks.registry.make_task` with operator seed 0) and every image ``x_i``:

* observation ``y_i = A(x_i) + sigma_y eps_i``, ``eps_i`` from the stream
  ``derive_seed(1, task, i, seed)`` (names enter as :func:`name_key`), so ``y_i`` depends on
  (task, image, seed) only, never on batching or on the process that computes it;
* ``K`` posterior samples per cell with per-sample seeds ``derive_seed(2, task, algorithm, i,
  seed, k)``, ``k < K``: the sampler's registry name (``mgdm`` for every MGDM variant), so the
  variants of one algorithm share their random numbers (common random numbers on the compute
  curve);
* metrics of each sample against ``x_i``, averaged over the ``K`` samples: PSNR, SSIM, the
  classifier feature distance ``feature_dist`` (``[1, 32, 32]`` images, when the classifier is
  given) and LPIPS (when its weights are given); for a :class:`KernelDensityPrior` and a task
  with an SVD, also the sliced Wasserstein distance ``sw`` between the ``K`` samples and ``K``
  exact posterior samples (``K >= 2``), its floor ``sw_floor`` (two exact sets), and
  ``mean_rmse = ||mean_k x^k - E[x | y_i]||_2 / sqrt(d)``.

Several images run in one sampler call (``Problem`` takes one observation per sample). A
**batch** is a fixed chunk of ``batch_size`` consecutive images of one (task, sampler, seed):
batches are the unit of work, of resumption (a batch with a missing cell is rerun whole, so its
samples are computed exactly as in an uninterrupted run) and of sharding over ``torchrun``
ranks (:func:`mgdm.bench.runtime.deal`). The database is :mod:`mgdm.bench.images_db`.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mgdm.bench.images_db import (
    METRICS,
    SCHEMA_VERSION,
    SETTING_COLUMNS,
    CellRecord,
    Setting,
    check_db,
    finished_cells,
    insert_cell,
    insert_image,
    insert_observation,
    merge_rank_files,
    open_db,
    stored_configs,
)
from mgdm.bench.runtime import (
    barrier,
    check_noise_and_budget,
    chunks,
    deal,
    measure_peak_memory,
    process_group,
    progress_bar,
    reset_peak_memory,
    resolve_device,
)
from mgdm.bench.seeds import name_key, parse_seeds
from mgdm.bench.store import config_json, config_matches, encode_array, rank_path
from mgdm.data.fashion_mnist import load_fashion_mnist
from mgdm.likelihood import check_likelihood
from mgdm.metrics.fashion_classifier import (
    SHIPPED_CLASSIFIER_DIR,
    FashionClassifier,
    load_classifier,
)
from mgdm.metrics.image_quality import feature_distance, psnr, ssim
from mgdm.metrics.lpips import LPIPS, load_lpips, lpips
from mgdm.metrics.sliced_wasserstein import sliced_wasserstein
from mgdm.operators.base import LinearOperator, Operator
from mgdm.operators.noise import GaussianNoise
from mgdm.priors.base import Denoiser
from mgdm.priors.catalog import load_prior, prior_domain
from mgdm.priors.kernel_density import KernelDensityPrior
from mgdm.problem import Problem
from mgdm.random import SampleNoise, derive_seed
from mgdm.restore import prior_image_shape
from mgdm.samplers.base import Sampler
from mgdm.samplers.mgdm import check_practical_fit
from mgdm.samplers.registry import build_sampler, parse_sampler_list
from mgdm.samplers.settings import TASK_NAMES
from mgdm.tasks.registry import TASKS, Task, make_task

FASHION_MNIST_TEST = "fashion-mnist-test"
"""Image-set name of the Fashion-MNIST test split (images in the split's order)."""

SW_DIRECTIONS = 1000
"""Projection directions of the sliced Wasserstein metric."""

_MEASURED: tuple[str, ...] = (
    *METRICS,
    "nfe_forward",
    "nfe_backward",
    "seconds_per_sample",
    "batch_samples",
    "peak_memory_bytes",
    "peak_memory_kind",
    "sample",
    "sample_shape",
)
"""The columns of a cell that only a sampled cell fills (NULL when skipped)."""

_OBSERVATION, _SAMPLE, _EXACT, _EXACT_FLOOR, _DIRECTIONS = range(1, 6)
"""Stream tags of :func:`derive_seed` (the first part of every seed)."""


# ----------------------------------------------------------------------------- what runs
@dataclass(frozen=True)
class SamplerVariant:
    """A sampler as it appears in tables: ``label`` (unique), registry ``name``, the MGDM
    ``preset`` (``None`` for the baselines) and configuration ``overrides``."""

    label: str
    name: str
    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def build(self, task: str) -> Sampler:
        """The sampler for ``task``: its per-task Reference defaults, then the overrides."""
        return build_sampler(self.name, task=task, preset=self.preset, **self.overrides)


def sampler_variants(
    samplers: str | Sequence[str],
    mgdm_preset: str = "default",
    mgdm_sweeps: Sequence[int] = (),
    domain: str = "image",
    mgdm_likelihood: str = "plain",
    mgdm_fit: str = "variational",
    mgdm_label: str | None = None,
    mgdm_overrides: dict[str, Any] | None = None,
) -> list[SamplerVariant]:
    """Variants from ``"all"`` (the samplers of ``domain``: ``image`` or ``latent``) / a comma
    list / a list of names, plus one MGDM variant per Gibbs sweep count ``R`` in ``mgdm_sweeps``
    (labelled ``mgdm-R{R}``, after the preset name when it is not ``default``). With
    ``mgdm_likelihood`` ``covariance-corrected`` every MGDM variant uses that potential
    (:mod:`mgdm.likelihood`) and its label carries ``-cc`` (``mgdm-cc``, ``mgdm-cc-R4``); its
    cells on tasks without an SVD are skipped. With ``mgdm_fit`` ``rto`` every MGDM variant draws
    ``x_ell`` by randomize-then-optimise (:mod:`mgdm.samplers.mgdm_rto`) and its label carries
    ``-rto`` (``mgdm-rto``). ``mgdm_label`` replaces the base of the MGDM labels (``mgdm``, or
    ``mgdm-PRESET`` for another preset than ``default``): a run of the ``variational`` preset
    labelled ``mgdm`` resumes the databases written while it was the default. ``mgdm_overrides``
    (MGDM fields) apply to every MGDM variant, after the options above."""
    check_likelihood(mgdm_likelihood)
    check_practical_fit(mgdm_fit)
    text = samplers if isinstance(samplers, str) else ",".join(samplers)
    names = parse_sampler_list(text, domain=domain)
    prefix = "mgdm" if mgdm_preset == "default" else f"mgdm-{mgdm_preset}"
    if mgdm_label is not None:
        if not mgdm_label.strip() or "," in mgdm_label:
            raise ValueError(f"the MGDM label must be a non-empty name; got {mgdm_label!r}.")
        prefix = mgdm_label.strip()
    extra: dict[str, Any] = {}
    if mgdm_likelihood != "plain":
        prefix, extra = f"{prefix}-cc", {"likelihood": mgdm_likelihood}
    if mgdm_fit != "variational":
        prefix, extra = f"{prefix}-{mgdm_fit}", {**extra, "fit": mgdm_fit}
    extra.update(mgdm_overrides or {})
    variants = [
        SamplerVariant(prefix, n, mgdm_preset, dict(extra)) if n == "mgdm" else SamplerVariant(n, n)
        for n in names
    ]
    for sweeps in mgdm_sweeps:
        if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 1:
            raise ValueError(f"Gibbs sweep counts must be integers >= 1; got {sweeps!r}.")
        variants.append(
            SamplerVariant(
                f"{prefix}-R{sweeps}", "mgdm", mgdm_preset, {"gibbs_sweeps": sweeps, **extra}
            )
        )
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"sampler labels must be distinct; got {', '.join(labels)}.")
    return variants


def parse_tasks(text: str | Sequence[str]) -> list[str]:
    """``"all"`` (the paper's ten tasks) or a comma list of registered task names."""
    if isinstance(text, str):
        if text.strip() == "all":
            return list(TASK_NAMES)
        text = [t.strip() for t in text.split(",") if t.strip()]
    if not text:
        raise ValueError("no task named; give 'all' or a comma list such as 'sr4,half_mask'.")
    for name in text:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; accepted: all, {', '.join(TASKS)}.")
    return list(dict.fromkeys(text))


@dataclass(frozen=True)
class Batch:
    """Consecutive images of one (task, sampler, seed), run in one sampler call."""

    task: str
    variant: SamplerVariant
    seed: int
    images: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """A (task, sampler) ready to run: the sampler, or why its cells are skipped."""

    sampler: Sampler | None
    algorithm: str
    config: str
    skip_reason: str | None


# ----------------------------------------------------------------------------- seeding
def observation_seed(task: str, image: int, seed: int) -> int:
    """Seed of the noise ``eps_i`` of the observation of image ``image``."""
    return derive_seed(_OBSERVATION, name_key(task), image, seed)


def sample_seeds(task: str, algorithm: str, image: int, seed: int, count: int) -> list[int]:
    """The ``count`` per-sample seeds of a cell."""
    return [
        derive_seed(_SAMPLE, name_key(task), name_key(algorithm), image, seed, k)
        for k in range(count)
    ]


def observe(
    task: Task, images: Tensor, indices: Sequence[int], seed: int, sigma_y: float
) -> Tensor:
    """``y_i = A(x_i) + sigma_y eps_i`` for images ``[n, C, H, W]`` with dataset ``indices``;
    ``[n, *observation_shape]``. ``A`` is applied image by image (no batch-size effect)."""
    noise = GaussianNoise(sigma_y)
    rows = []
    for x, index in zip(images, indices):
        stream = SampleNoise([observation_seed(task.name, index, seed)])
        rows.append(noise.observe(task.operator(x[None].float()), stream))
    return torch.cat(rows)


def observation_view(operator: Operator, y: Tensor) -> Tensor | None:
    """``y`` ``[n, *observation_shape]`` pictured in image space, ``[n, *input_shape]``: ``A^+ y``
    with an SVD, ``A^T y`` for another linear ``A``, ``y`` when it has the image's shape, else
    ``None``."""
    if operator.svd is not None:
        return operator.pseudo_inverse(y)
    if isinstance(operator, LinearOperator):
        return operator.adjoint(y)
    if tuple(operator.output_shape) == tuple(operator.input_shape):
        return y
    return None


# ----------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Scorers:
    """Optional metric models: the Fashion-MNIST classifier and LPIPS (``None``: NULL)."""

    classifier: FashionClassifier | None = None
    lpips_model: LPIPS | None = None
    sw_directions: int = SW_DIRECTIONS


def image_metrics(samples: Tensor, truth: Tensor, scorers: Scorers) -> dict[str, float | None]:
    """PSNR, SSIM, ``feature_dist`` and LPIPS of ``K`` samples ``[K, C, H, W]`` against ``truth``
    ``[C, H, W]``, each averaged over the samples (``None`` where not computed)."""
    values: dict[str, float | None] = {
        "psnr": float(psnr(samples, truth).mean()),
        "ssim": float(ssim(samples, truth).mean()),
        "feature_dist": None,
        "lpips": None,
    }
    if scorers.classifier is not None and tuple(truth.shape) == (1, 32, 32):
        values["feature_dist"] = float(feature_distance(samples, truth, scorers.classifier).mean())
    if scorers.lpips_model is not None:
        values["lpips"] = float(lpips(samples, truth, scorers.lpips_model).mean())
    return values


def exact_metrics(
    prior: KernelDensityPrior,
    operator: LinearOperator,
    y: Tensor,
    sigma_y: float,
    samples: Tensor,
    seeds: tuple[str, int, int],
    directions: int,
) -> dict[str, float | None]:
    """Scores against the exact posterior ``p(x | y)`` of one observation ``y``.

    ``samples`` ``[K, C, H, W]``; ``seeds = (task, image, seed)``. ``sw``: sliced W1 between the
    samples and ``K`` exact draws (``None`` when ``K = 1``); ``sw_floor``: the same between two
    independent exact sets; ``mean_rmse``: ``||mean_k samples_k - E[x | y]||_2 / sqrt(d)``.
    """
    task, image, seed = seeds
    posterior = prior.posterior(operator, y, sigma_y)
    flat = samples.reshape(samples.shape[0], -1).double()
    error = flat.mean(0) - posterior.mean().reshape(-1)
    values: dict[str, float | None] = {
        "mean_rmse": float(error.norm() / math.sqrt(flat.shape[1])),
        "sw": None,
        "sw_floor": None,
    }
    count = flat.shape[0]
    if count < 2:
        return values

    def exact(tag: int) -> Tensor:
        stream = SampleNoise(
            [derive_seed(tag, name_key(task), image, seed, k) for k in range(count)]
        )
        return posterior.sample(stream).reshape(count, -1)

    reference = exact(_EXACT)
    direction_seed = derive_seed(_DIRECTIONS, name_key(task), image, seed)
    values["sw"] = sliced_wasserstein(flat, reference, directions, direction_seed)
    values["sw_floor"] = sliced_wasserstein(
        exact(_EXACT_FLOOR), reference, directions, direction_seed
    )
    return values


# ----------------------------------------------------------------------------- running
@dataclass
class Summary:
    """What a call of :func:`run_image_benchmark` did (on this rank)."""

    done: int = 0
    skipped: int = 0
    already: int = 0
    db_path: Path = Path()
    rank: int = 0
    world_size: int = 1


class _Runner:
    """Runs batches of one setting and writes their cells (see :func:`run_image_benchmark`)."""

    def __init__(
        self,
        prior: Denoiser,
        setting: Setting,
        images: Tensor,
        budget: float | None,
        scorers: Scorers,
        device: torch.device,
    ):
        self.prior, self.setting, self.images = prior, setting, images
        self.budget, self.scorers, self.device = budget, scorers, device
        self.tasks: dict[str, Task] = {}
        self.plans: dict[tuple[str, str], Plan] = {}
        self.budgeted: dict[tuple[str, object], Sampler] = {}

    def task(self, name: str) -> Task:
        if name not in self.tasks:
            self.tasks[name] = make_task(name, tuple(self.images.shape[1:]), seed=0)
        return self.tasks[name]

    def plan(self, task: str, variant: SamplerVariant) -> Plan:
        """The sampler of (task, variant), at the budget, checked against the task."""
        key = (task, variant.label)
        if key not in self.plans:
            self.plans[key] = self._make_plan(self.task(task), variant)
        return self.plans[key]

    def _make_plan(self, task: Task, variant: SamplerVariant) -> Plan:
        sampler = variant.build(task.name)
        config = config_json(sampler.config)
        try:
            if self.budget is not None:
                sampler = self._with_budget(variant.name, sampler)
                config = config_json(sampler.config)
            zeros = torch.zeros(task.observation_shape)
            sampler.check_compatible(self.prior, self.problem(task, zeros))
        except ValueError as error:
            return Plan(None, variant.name, config, str(error))
        return Plan(sampler, variant.name, config, None)

    def problem(self, task: Task, y: Tensor) -> Problem:
        """``y = A(x) + noise`` for the prior: on latents ``g(y | A(Dec(z)))`` for a latent prior."""
        return self.prior.problem_in_sample_space(
            Problem(task.operator, y, GaussianNoise(self.setting.sigma_y))
        )

    def _with_budget(self, name: str, sampler: Sampler) -> Sampler:
        """``sampler.with_budget(budget)``, computed once per configuration."""
        key = (name, sampler.config)
        if key not in self.budgeted:
            self.budgeted[key] = sampler.with_budget(self.budget)
        return self.budgeted[key]

    def run(self, batch: Batch, connection: sqlite3.Connection) -> list[CellRecord]:
        """Sample one batch, score it, and write its images, observations and cells."""
        setting, task = self.setting, self.task(batch.task)
        index = list(batch.images)
        truth = self.images[index].float()
        y = observe(task, truth, index, batch.seed, setting.sigma_y)
        views = observation_view(task.operator, y)
        for n, i in enumerate(index):
            insert_image(connection, setting.image_set, i, truth[n])
            view = views[n] if views is not None else None
            insert_observation(
                connection, setting.image_set, task.name, i, batch.seed, setting.sigma_y, view
            )
        plan = self.plan(task.name, batch.variant)
        base = dict(
            **{c: getattr(setting, c) for c in SETTING_COLUMNS},
            task=task.name,
            sampler=batch.variant.label,
            seed=batch.seed,
            algorithm=plan.algorithm,
            config=plan.config,
            schema_version=SCHEMA_VERSION,
            device=str(self.device),
        )
        if plan.sampler is None:
            records = [self._skipped(base, i, plan.skip_reason) for i in index]
        else:
            records = self._sample(plan.sampler, task, batch, truth, y, base)
        for record in records:
            insert_cell(connection, record)
        return records

    def _skipped(self, base: dict[str, Any], image: int, reason: str | None) -> CellRecord:
        empty = dict.fromkeys(_MEASURED)
        return CellRecord(
            **base, **empty, image=image, status="skipped", reason=reason, finished_at=time.time()
        )

    def _sample(
        self,
        sampler: Sampler,
        task: Task,
        batch: Batch,
        truth: Tensor,
        y: Tensor,
        base: dict[str, Any],
    ) -> list[CellRecord]:
        count = self.setting.samples_per_cell
        seeds = [
            s
            for i in batch.images
            for s in sample_seeds(task.name, batch.variant.name, i, batch.seed, count)
        ]
        problem = self.problem(task, y.repeat_interleave(count, dim=0).to(self.device))
        reset_peak_memory(self.device)
        result = sampler.sample(self.prior, problem, seeds, device=self.device)
        memory, memory_kind = measure_peak_memory(self.device)
        drawn = self.prior.samples_to_data(result.samples)
        samples = drawn.to("cpu", torch.float32).reshape(len(batch.images), count, *truth.shape[1:])
        exact = isinstance(self.prior, KernelDensityPrior) and task.operator.svd is not None
        records = []
        for n, image in enumerate(batch.images):
            metrics = image_metrics(samples[n], truth[n], self.scorers)
            metrics.update(dict.fromkeys(("sw", "sw_floor", "mean_rmse")))
            if exact:
                metrics.update(
                    exact_metrics(
                        self.prior,
                        task.operator,
                        y[n],
                        self.setting.sigma_y,
                        samples[n],
                        (task.name, image, batch.seed),
                        self.scorers.sw_directions,
                    )
                )
            blob, shape = encode_array(samples[n, 0])
            records.append(
                CellRecord(
                    **base,
                    **metrics,
                    image=image,
                    status="done",
                    reason=None,
                    nfe_forward=result.cost.nfe_forward,
                    nfe_backward=result.cost.nfe_backward,
                    seconds_per_sample=result.cost.seconds_per_sample,
                    batch_samples=result.cost.n_samples,
                    peak_memory_bytes=memory,
                    peak_memory_kind=memory_kind,
                    sample=blob,
                    sample_shape=shape,
                    finished_at=time.time(),
                )
            )
        return records


def make_batches(
    tasks: Sequence[str],
    variants: Sequence[SamplerVariant],
    seeds: Sequence[int],
    indices: Sequence[int],
    batch_size: int,
) -> list[Batch]:
    """Every batch of the run, in a fixed order (tasks, samplers, seeds, image chunks)."""
    return [
        Batch(task, variant, seed, tuple(chunk))
        for task in tasks
        for variant in variants
        for seed in seeds
        for chunk in chunks(indices, batch_size)
    ]


def _cells(batch: Batch) -> list[tuple[str, str, int, int]]:
    return [(batch.task, batch.variant.label, i, batch.seed) for i in batch.images]


def _resolve_classifier(
    classifier: FashionClassifier | str | Path | None,
) -> FashionClassifier | None:
    """The classifier of ``feature_dist``: ``"shipped"`` (``None`` while its weights are absent),
    a weights path, a model, or ``None``."""
    if classifier is None or isinstance(classifier, FashionClassifier):
        return classifier
    if str(classifier) == "shipped":
        if not (SHIPPED_CLASSIFIER_DIR / "model.safetensors").is_file():
            return None
        return load_classifier()
    return load_classifier(classifier)


def _resolve_lpips(model: LPIPS | str | Path | None) -> LPIPS | None:
    """The LPIPS model: a model, a weights path (:func:`mgdm.metrics.lpips.load_lpips`), or
    ``None``."""
    if not isinstance(model, (str, Path)):
        return model
    if not Path(model).is_file():
        raise FileNotFoundError(
            f"no LPIPS weights at {model}; pass the file holding the AlexNet trunk (features.*) "
            "and the heads (lin0-4.*)."
        )
    return load_lpips(model)


def _load_images(images: Tensor | int) -> tuple[Tensor, str]:
    """``[N, C, H, W]`` images and their image-set name (an int: the first N test images;
    ``ValueError`` when the split holds fewer)."""
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[0] < 1:
            raise ValueError(f"images must be [N >= 1, C, H, W]; got {list(images.shape)}.")
        return images.float(), "custom"
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"the number of images must be an integer >= 1; got {images!r}.")
    pixels = load_fashion_mnist("test", limit=images).images
    if pixels.shape[0] < images:
        raise ValueError(
            f"the Fashion-MNIST test split holds {pixels.shape[0]:,} images; the run asks for "
            f"{images:,}: give at most {pixels.shape[0]:,} images."
        )
    return pixels, FASHION_MNIST_TEST


def _check_options(
    sigma_y: float, budget: float | None, samples_per_cell: int, batch_size: int, directions: int
) -> None:
    """``ValueError`` for an option out of range (:func:`check_noise_and_budget`; the counts
    integers >= 1)."""
    check_noise_and_budget(sigma_y, budget)
    for name, value in (
        ("samples per cell", samples_per_cell),
        ("batch size", batch_size),
        ("number of sliced-Wasserstein directions", directions),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"the {name} must be an integer >= 1; got {value!r}.")


def run_settings(batch_size: int, sw_directions: int) -> dict[str, str]:
    """The run settings stored with the database (:data:`mgdm.bench.images_db.RUN_OPTIONS`)."""
    return {"batch": str(batch_size), "sw_directions": str(sw_directions)}


def run_image_benchmark(
    prior: Denoiser | str,
    tasks: str | Sequence[str],
    samplers: str | Sequence[str | SamplerVariant],
    images: Tensor | int,
    seeds: str | Sequence[int],
    sigma_y: float,
    db_path: Path | str,
    *,
    prior_name: str | None = None,
    image_set: str | None = None,
    budget: float | None = None,
    samples_per_cell: int = 1,
    batch_size: int = 8,
    classifier: FashionClassifier | str | Path | None = "shipped",
    lpips_model: LPIPS | str | Path | None = None,
    sw_directions: int = SW_DIRECTIONS,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Summary:
    """Run every (task, sampler, image, seed) cell not yet in the database ``db_path``.

    Args:
        prior: a denoiser, or a name or path for :func:`mgdm.priors.load_prior`.
        tasks: ``"all"`` (the paper's ten) or task names (:data:`mgdm.tasks.registry.TASKS`).
        samplers: ``"all"``, a comma list, or names and :class:`SamplerVariant` objects.
        images: ``[N, C, H, W]`` images in ``[-1, 1]``, or ``N``: the first ``N`` images of the
            Fashion-MNIST test split (at most the 10,000 it holds).
        seeds: run seeds (``"0-3"`` or integers); each gives new noise and new sampler draws.
        sigma_y: std of the Gaussian noise on ``A(x)`` (``[-1, 1]`` units), finite and > 0.
        db_path: the SQLite file (:mod:`mgdm.bench.images_db`); finished cells are skipped. An
            existing file must be a database of this benchmark written with the same
            ``batch_size`` and ``sw_directions``; a new one is created once the run starts.
        prior_name: the prior's name in the database (default: ``prior`` when it is a string).
        image_set: the images' name in the database (default ``fashion-mnist-test`` for ``N``,
            ``custom`` for a tensor).
        budget: run every sampler at about this many network calls per sample
            (``Sampler.with_budget``); ``None``: each sampler's own configuration.
        samples_per_cell: ``K`` posterior samples per (image, seed); metrics average over them.
        batch_size: images per sampler call (``batch_size * K`` samples).
        classifier: the ``feature_dist`` classifier: ``"shipped"`` (NULL while the shipped weights
            are absent), a weights path, a model, or ``None``.
        lpips_model: the LPIPS model, the path of its weights (:func:`mgdm.metrics.lpips.
            load_lpips`), or ``None``.
        sw_directions: projection directions of ``sw``.
        device: where the sampler runs (metrics are computed on the CPU); one this machine has.
        progress: show a progress bar over cells (rank 0).

    Under ``torchrun`` (``WORLD_SIZE > 1``) the pending batches are shared over the ranks
    (:func:`mgdm.bench.runtime.deal`), each writing ``DB.rank{r}``; rank 0 merges them into ``db_path`` at the end.
    Returns this rank's counts. The options, the device and the database are checked
    (``ValueError``) before anything is loaded, the images, metric models and prior are loaded
    next, and only then is the database created or extended.
    """
    _check_options(sigma_y, budget, samples_per_cell, batch_size, sw_directions)
    task_names = parse_tasks(tasks)
    domain = (
        prior_domain(prior)
        if isinstance(prior, str)
        else ("latent" if prior.sample_space == "latent" else "image")
    )
    variants = [
        v
        for item in ([samplers] if isinstance(samplers, str) else samplers)
        for v in (
            [item] if isinstance(item, SamplerVariant) else sampler_variants(item, domain=domain)
        )
    ]
    seed_list = parse_seeds(seeds) if isinstance(seeds, str) else sorted(set(seeds))
    if prior_name is None and not isinstance(prior, str):
        raise ValueError("give prior_name: the name under which the prior's cells are stored.")
    device = resolve_device(device)
    db = Path(db_path)
    settings = run_settings(batch_size, sw_directions)
    check_db(db, settings)
    pixels, default_set = _load_images(images)
    with process_group() as (rank, world):
        scorers = Scorers(
            _resolve_classifier(classifier), _resolve_lpips(lpips_model), sw_directions
        )
        if isinstance(prior, str):
            prior_name, prior = prior, load_prior(prior, device=device)
        if tuple(pixels.shape[1:]) != prior_image_shape(prior):
            raise ValueError(
                f"the images have shape {list(pixels.shape[1:])} but the prior draws "
                f"{list(prior_image_shape(prior))}."
            )
        setting = Setting(
            prior_name,
            image_set or default_set,
            float(sigma_y),
            float(budget or 0),
            samples_per_cell,
        )
        runner = _Runner(prior, setting, pixels, budget, scorers, device)
        if rank == 0:
            open_db(db, settings).close()
            merge_rank_files(db)
        barrier(world)
        done = finished_cells(db, setting)
        _check_stored_configs(runner, db, setting, task_names, variants)
        batches = make_batches(
            task_names, variants, seed_list, list(range(pixels.shape[0])), batch_size
        )
        pending = [b for b in batches if not done.issuperset(_cells(b))]
        mine = deal(pending, lambda b: len(b.images), world)[rank]
        summary = Summary(
            already=sum(len(b.images) for b in batches) - sum(len(b.images) for b in pending),
            db_path=db,
            rank=rank,
            world_size=world,
        )
        out = db if world == 1 else rank_path(db, rank)
        total = sum(len(b.images) for b in mine)
        with (
            closing(open_db(out, settings)) as connection,
            progress_bar(total, "image cells", progress and rank == 0) as bar,
        ):
            for batch in mine:
                for record in runner.run(batch, connection):
                    new = (record.task, record.sampler, record.image, record.seed) not in done
                    summary.done += new and record.status == "done"
                    summary.skipped += new and record.status == "skipped"
                bar.update(len(batch.images))
        barrier(world)
        if rank == 0:
            merge_rank_files(db)
    return summary


def _check_stored_configs(
    runner: _Runner,
    db: Path,
    setting: Setting,
    tasks: Sequence[str],
    variants: Sequence[SamplerVariant],
) -> None:
    """``ValueError`` when ``db`` holds cells of a (task, sampler) sampled with another
    configuration than the one this run would use."""
    stored = stored_configs(db, setting)
    for task in tasks:
        for variant in variants:
            plan = runner.plan(task, variant)
            current = plan.sampler.config if plan.sampler is not None else None
            if not all(
                config_matches(c, current, plan.config)
                for c in stored.get((task, variant.label), ())
            ):
                raise ValueError(
                    f"{db} holds {variant.label!r} cells of task {task!r} sampled with another "
                    "configuration; use another database or another sampler label."
                )
