"""Tables, the compute curve and sample grids from an image-benchmark database.

* Quality table (the paper's Table 1): one row per task, one column per sampler, the mean of a
  metric over the cells (images x seeds) with its 95 % confidence half-width
  ``1.96 std / sqrt(n)``; the best mean of each row in bold (the smallest for distances, the
  largest for PSNR and SSIM).
* Cost table: per sampler, the network calls per sample (forward-only, forward+backward), the
  seconds per sample and per image (``K`` samples), the peak memory and the number of cells.
* Compute curve: the metric against the network calls per sample, one panel per task: the MGDM
  variants ``…-R{R}`` as a line over R, every other sampler as a point.
* Sample grids, one per task: rows are images; columns the observation pictured in image space
  (``A^+ y`` / ``A^T y`` / ``y``, blank when there is none), each sampler's first sample, the
  clean image.

* Paired differences (:func:`paired_table`): two settings of the same cells (e.g. one budget
  against another), or two samplers on the same cells, one row per task and sampler (pair)
  present in both: the mean of ``a - b`` over the
  (image, seed) cells done in both, with its 95 % half-width; a difference whose interval
  excludes 0 is marked. Pairing removes the spread between images that the intervals of the
  quality table carry.

A report covers one setting (prior, image set, ``sigma_y``, budget, samples per cell);
:func:`select_setting` picks it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mgdm.bench.images_db import (
    SETTING_COLUMNS,
    CellRecord,
    Setting,
    read_cells,
    read_images,
    read_observations,
)
from mgdm.bench.store import decode_array
from mgdm.bench.tables import label_order, mean_ci, plot_compute_points
from mgdm.files import check_output_dir, write_atomically
from mgdm.plotting import pyplot
from mgdm.samplers.settings import TASK_NAMES
from mgdm.tasks.figures import display_image

HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
    "feature_dist": False,
    "lpips": False,
    "sw": False,
    "mean_rmse": False,
}
"""The metrics a report can show, and their direction."""

METRIC_TITLES: dict[str, str] = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "feature_dist": "classifier feature distance",
    "lpips": "LPIPS (AlexNet)",
    "sw": "sliced Wasserstein to the exact posterior",
    "mean_rmse": "RMSE of the sample mean to the exact posterior mean",
}

_SWEEP_LABEL = re.compile(r".*-R(\d+)")


@dataclass(frozen=True)
class Selection:
    """The cells of one setting."""

    setting: Setting
    cells: list[CellRecord]

    @property
    def tasks(self) -> list[str]:
        """Tasks present, the paper's ten first in its order."""
        present = {c.task for c in self.cells}
        order = [t for t in TASK_NAMES if t in present]
        return order + sorted(present - set(order))

    @property
    def samplers(self) -> list[str]:
        """Sampler labels present, in registry order, variants in natural order."""
        algorithm = {c.sampler: c.algorithm for c in self.cells}
        return sorted(algorithm, key=lambda label: label_order(label, algorithm[label]))

    def group(self, task: str | None, sampler: str) -> list[CellRecord]:
        """The cells of ``sampler`` on ``task`` (``None``: every task)."""
        return [c for c in self.cells if c.sampler == sampler and task in (None, c.task)]


def select_setting(cells: Sequence[CellRecord], **filters: object) -> Selection:
    """The cells of the one setting left by ``filters`` (setting columns -> values; ``None``
    keeps all); ``ValueError`` listing the settings when none or several are left."""
    unknown = set(filters) - set(SETTING_COLUMNS)
    if unknown:
        raise ValueError(f"unknown setting filters: {', '.join(sorted(unknown))}.")
    kept = [c for c in cells if all(v is None or getattr(c, k) == v for k, v in filters.items())]
    settings = sorted({c.setting for c in kept}, key=lambda s: tuple(map(str, vars(s).values())))
    if len(settings) != 1:
        every = sorted({c.setting for c in cells}, key=lambda s: tuple(map(str, vars(s).values())))
        listing = "; ".join(_describe(s) for s in every) or "none"
        raise ValueError(
            f"{'no' if not settings else len(settings)} settings match; choose one with --prior, "
            f"--image-set, --sigma-y, --budget, --samples-per-cell. In the database: {listing}."
        )
    return Selection(settings[0], [c for c in kept if c.setting == settings[0]])


def _describe(setting: Setting) -> str:
    budget = "sampler defaults" if setting.budget == 0 else f"budget {setting.budget:g}"
    return (
        f"prior {setting.prior}, images {setting.image_set}, sigma_y {setting.sigma_y:g}, "
        f"{budget}, {setting.samples_per_cell} samples per cell"
    )


def _values(cells: Sequence[CellRecord], metric: str) -> list[float]:
    values = (getattr(c, metric) for c in cells if c.status == "done")
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _format(mean: float, ci: float) -> str:
    return f"{mean:.4g}" + ("" if math.isnan(ci) else f" ± {ci:.2g}")


def quality_table(selection: Selection, metric: str) -> str:
    """The Markdown quality table (see the module docstring)."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; accepted: {', '.join(HIGHER_IS_BETTER)}.")
    if not _values(selection.cells, metric):
        raise ValueError(f"no {metric} values in the selected cells; choose another --metric.")
    samplers = selection.samplers
    pick = max if HIGHER_IS_BETTER[metric] else min
    direction = "higher" if HIGHER_IS_BETTER[metric] else "lower"
    lines = [
        (
            f"{METRIC_TITLES[metric]} ({direction} is better), mean ± 95 % CI over images x "
            f"seeds; {_describe(selection.setting)}."
        ),
        "",
        "| task | " + " | ".join(samplers) + " |",
        "|:---|" + "---:|" * len(samplers),
    ]
    for task in selection.tasks:
        stats: dict[str, tuple[float, float]] = {}
        texts: dict[str, str] = {}
        for sampler in samplers:
            group = selection.group(task, sampler)
            values = _values(group, metric)
            if values:
                stats[sampler] = mean_ci(values)
            elif group and all(c.status == "skipped" for c in group):
                texts[sampler] = "skipped"
        best = pick(m for m, _ in stats.values()) if stats else None
        for sampler, (mean, ci) in stats.items():
            texts[sampler] = f"**{_format(mean, ci)}**" if mean == best else _format(mean, ci)
        lines.append(f"| {task} | " + " | ".join(texts.get(s, "–") for s in samplers) + " |")
    return "\n".join(lines)


def paired_table(
    first: Selection, second: Selection, metric: str, pair: tuple[str, str] | None = None
) -> str:
    """The Markdown table of paired differences ``first - second`` (module docstring): each
    sampler against the same sampler, or with ``pair = (a, b)`` sampler ``a`` of ``first``
    against sampler ``b`` of ``second`` (e.g. a variant against the default, in one database or
    two). ``ValueError`` when a sampler of ``pair`` is missing or the two share no done cell."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; accepted: {', '.join(HIGHER_IS_BETTER)}.")
    if pair is None:
        labels = [(sampler, sampler) for sampler in first.samplers]
    else:
        for label, selection, side in ((pair[0], first, "first"), (pair[1], second, "second")):
            if label not in selection.samplers:
                raise ValueError(
                    f"sampler {label!r} is not in the {side} database; it holds "
                    f"{', '.join(selection.samplers)}."
                )
        labels = [pair]
    lines = [
        (
            f"Paired difference of {METRIC_TITLES[metric]}, first - second, mean ± 95 % CI over "
            f"the (image, seed) cells done in both; * marks an interval that excludes 0. "
            f"First: {_describe(first.setting)}. Second: {_describe(second.setting)}."
        ),
        "",
        "| task | sampler | cells | first | second | first - second |",
        "|:---|:---|---:|---:|---:|---:|",
    ]
    rows = 0
    for task in first.tasks:
        for sampler, other in labels:
            ours = {(c.image, c.seed): c for c in first.group(task, sampler)}
            theirs = {(c.image, c.seed): c for c in second.group(task, other)}
            pairs = [
                (float(getattr(ours[k], metric)), float(getattr(theirs[k], metric)))
                for k in sorted(ours.keys() & theirs.keys())
                if ours[k].status == theirs[k].status == "done"
                and getattr(ours[k], metric) is not None
                and getattr(theirs[k], metric) is not None
            ]
            if not pairs:
                continue
            rows += 1
            mean, ci = mean_ci([a - b for a, b in pairs])
            mark = " *" if not math.isnan(ci) and abs(mean) > ci else ""
            name = sampler if sampler == other else f"{sampler} vs {other}"
            lines.append(
                f"| {task} | {name} | {len(pairs)} | {_mean([a for a, _ in pairs]):.4g} | "
                f"{_mean([b for _, b in pairs]):.4g} | {_format(mean, ci)}{mark} |"
            )
    if not rows:
        raise ValueError("the two databases share no done cell of the same task and sampler.")
    return "\n".join(lines) + "\n"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def cost_table(selection: Selection) -> str:
    """The Markdown cost table: per sampler, over the done cells of every task."""
    lines = [
        "| sampler | NFE fwd | NFE fwd+bwd | s / sample | s / image | peak memory (MiB) | cells | "
        + "skipped |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    kinds = set()
    for sampler in selection.samplers:
        group = selection.group(None, sampler)
        done = [c for c in group if c.status == "done"]
        kinds.update(c.peak_memory_kind for c in done)
        memory = max((c.peak_memory_bytes for c in done), default=None)
        memory_text = "–" if memory is None else f"{memory / 2**20:.0f}"
        seconds = _mean([c.seconds_per_sample for c in done])
        lines.append(
            f"| {sampler} | {_mean([c.nfe_forward for c in done]):.0f} | "
            f"{_mean([c.nfe_backward for c in done]):.0f} | "
            f"{seconds:.3g} | {seconds * selection.setting.samples_per_cell:.3g} | "
            f"{memory_text} | {len(done)} | "
            f"{len(group) - len(done)} |"
        )
    notes = {
        "cuda_max_allocated": "peak CUDA memory allocated during a batch",
        "cpu_max_rss": "peak resident memory of the process (CPU runs)",
    }
    if kinds:
        lines.append("")
        lines.append("Peak memory: " + "; ".join(notes[k] for k in sorted(kinds)) + ".")
    return "\n".join(lines)


def report_markdown(selection: Selection, metric: str) -> str:
    """Both tables as one Markdown document."""
    return quality_table(selection, metric) + "\n\n" + cost_table(selection) + "\n"


def compute_curve(selection: Selection, metric: str, path: Path) -> Path:
    """Write the compute-curve PNG (see the module docstring) to ``path``."""
    plt = pyplot()
    tasks = selection.tasks
    columns = min(len(tasks), 5)
    rows = math.ceil(len(tasks) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    for axis, task in zip(axes.flat, tasks):
        points = []
        for sampler in selection.samplers:
            done = [c for c in selection.group(task, sampler) if c.status == "done"]
            values = _values(done, metric)
            if not values:
                continue
            calls = _mean([c.nfe_forward + c.nfe_backward for c in done])
            match = _SWEEP_LABEL.fullmatch(sampler)
            sweeps = int(match.group(1)) if match and done[0].algorithm == "mgdm" else None
            points.append((sampler, calls, _mean(values), sweeps))
        plot_compute_points(axis, points, fontsize=6)
        axis.set_title(task, fontsize=8)
        axis.set_xlabel("network calls per sample", fontsize=7)
        axis.set_ylabel(metric, fontsize=7)
        axis.tick_params(labelsize=6)
    for axis in list(axes.flat)[len(tasks) :]:
        axis.axis("off")
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=110))
    plt.close(figure)
    return path


def sample_grid(db: Path, selection: Selection, task: str, path: Path, max_images: int = 6) -> Path:
    """Write the sample grid of ``task`` (first seed, first ``max_images`` images) to ``path``."""
    plt = pyplot()
    setting = selection.setting
    cells = [c for c in selection.cells if c.task == task]
    seed = min(c.seed for c in cells)
    images = sorted({c.image for c in cells if c.seed == seed})[:max_images]
    samplers = selection.samplers
    truths = read_images(db, setting.image_set, images)
    views = read_observations(db, setting.image_set, task, seed, setting.sigma_y, images)
    samples = {
        (c.sampler, c.image): decode_array(c.sample, c.sample_shape)
        for c in cells
        if c.seed == seed and c.sample is not None
    }
    titles = ["observation", *samplers, "truth"]
    figure, axes = plt.subplots(
        len(images), len(titles), figsize=(1.2 * len(titles), 1.25 * len(images)), squeeze=False
    )
    for row, image in enumerate(images):
        pictures = [
            views.get(image),
            *(samples.get((s, image)) for s in samplers),
            truths.get(image),
        ]
        for column, picture in enumerate(pictures):
            axis = axes[row, column]
            axis.axis("off")
            if row == 0:
                axis.set_title(titles[column], fontsize=6)
            if picture is not None:
                shown = display_image(picture).numpy()
                axis.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    figure.suptitle(f"{task}, seed {seed}", fontsize=8)
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=110))
    plt.close(figure)
    return path


def write_report(
    db: Path | str,
    metric: str = "psnr",
    out: Path | str | None = None,
    max_images: int = 6,
    **filters: object,
) -> tuple[str, list[Path]]:
    """The Markdown tables of the setting picked by ``filters``; with ``out``, also
    ``table.md``, ``compute_curve.png`` and ``grid_{task}.png`` there. Returns the Markdown and
    the files written (each written whole or not at all). ``ValueError`` for an ``out`` that is
    not a folder that exists or can be created, or ``max_images < 1``, checked before the
    database is read."""
    db = Path(db)
    if max_images < 1:
        raise ValueError(f"the sample grids need >= 1 image; got {max_images}.")
    if out is not None:
        out = check_output_dir(out, "--out")
    selection = select_setting(read_cells(db), **filters)
    text = report_markdown(selection, metric)
    if out is None:
        return text, []
    write_atomically(out / "table.md", lambda temporary: temporary.write_text(text))
    written = [out / "table.md", compute_curve(selection, metric, out / "compute_curve.png")]
    for task in selection.tasks:
        written.append(sample_grid(db, selection, task, out / f"grid_{task}.png", max_images))
    return text, written
