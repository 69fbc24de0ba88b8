"""The table and compute curve of the audio benchmark (``mgdm bench audio-table``): per sampler
label, SI-SDRi per stem and their mean over mixtures (seeds averaged per mixture) with 95 %
confidence intervals, network calls, seconds and peak memory per mixture."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mgdm.audio.constants import STEMS
from mgdm.bench.audio_db import AudioRow, read_audio_db
from mgdm.bench.tables import label_order, mean_ci, plot_compute_points
from mgdm.files import check_output_dir, write_atomically
from mgdm.plotting import pyplot

_SWEEP_LABEL = re.compile(r"mgdm-R(\d+)")
_COLUMN_TITLES = (*STEMS, "mean")


@dataclass(frozen=True)
class LabelStats:
    """The table row of one sampler label at one budget.

    Attributes:
        label, algorithm, independent: the sampler.
        scores: per column of :data:`_COLUMN_TITLES`, ``(mean, 95 % CI half-width)`` over the
            mixtures of the per-mixture means over seeds (``None``: no value).
        nfe_forward, nfe_backward, seconds: means over the done rows, per mixture.
        peak_memory: the largest peak over the done rows, bytes (``None``: none done).
        mixtures: mixtures with a done row.
        diverged: rows whose stems were non-finite.
        skipped: the reason of the skipped rows (``None``: none skipped).
    """

    label: str
    algorithm: str
    independent: bool
    scores: tuple[tuple[float, float] | None, ...]
    nfe_forward: float
    nfe_backward: float
    seconds: float
    peak_memory: int | None
    mixtures: int
    diverged: int
    skipped: str | None


def label_stats(rows: Sequence[AudioRow]) -> LabelStats:
    """The statistics of the rows of one label (and one budget)."""
    done = [r for r in rows if r.status == "done"]
    per_mixture: dict[int, list[tuple[float | None, ...]]] = {}
    for row in done:
        per_mixture.setdefault(row.mixture, []).append((*row.si_sdri, row.si_sdri_mean))
    scores = []
    for column in range(len(_COLUMN_TITLES)):
        means = []
        for values in per_mixture.values():
            finite = [
                v[column] for v in values if v[column] is not None and math.isfinite(v[column])
            ]
            if finite:
                means.append(sum(finite) / len(finite))
        scores.append(mean_ci(means) if means else None)
    skipped = [r.reason for r in rows if r.status == "skipped"]

    def mean(name: str) -> float:
        return sum(getattr(r, name) for r in done) / len(done) if done else math.nan

    return LabelStats(
        rows[0].sampler,
        rows[0].algorithm,
        rows[0].prior == "independent",
        tuple(scores),
        mean("nfe_forward"),
        mean("nfe_backward"),
        mean("seconds"),
        max((r.peak_memory_bytes for r in done), default=None),
        len(per_mixture),
        sum(r.status == "diverged" for r in rows),
        skipped[0] if skipped else None,
    )


def _order(stats: LabelStats) -> tuple[int, bool, list[object]]:
    """Registry order, joint before independent, labels in natural order (R2 before R10)."""
    rank, parts = label_order(stats.label, stats.algorithm)
    return rank, stats.independent, parts


def select_budget(rows: Sequence[AudioRow], budget: float | None) -> list[AudioRow]:
    """The rows of ``budget`` (``None``: the only budget in ``rows``); ``ValueError`` naming the
    budgets present otherwise."""
    budgets = sorted({r.budget for r in rows})
    if not budgets:
        raise ValueError("the database holds no separations yet.")
    if budget is None and len(budgets) == 1:
        budget = budgets[0]
    if budget not in budgets:
        listing = ", ".join("0 (own settings)" if b == 0 else f"{b:g}" for b in budgets)
        raise ValueError(f"choose one --budget of the database: {listing}.")
    return [r for r in rows if r.budget == budget]


def table_stats(rows: Sequence[AudioRow]) -> list[LabelStats]:
    """One :class:`LabelStats` per label of ``rows`` (one budget), in table order."""
    groups: dict[str, list[AudioRow]] = {}
    for row in rows:
        groups.setdefault(row.sampler, []).append(row)
    return sorted((label_stats(group) for group in groups.values()), key=_order)


def _window_text(meta: dict[str, str], rows: Sequence[AudioRow]) -> str:
    """Which SI-SDRi windows the rows used, in words."""
    data = json.loads(meta["data"])
    rate, length = data["sample_rate"], data["length"]
    done = [r for r in rows if r.status == "done"]
    if done and all(r.windows_total == 1 for r in done):
        return (
            f"one window covering each clip ({length:,} samples, {length / rate:.2f} s at "
            f"{rate} Hz)"
        )
    window = max((r.window_samples for r in done), default=4 * rate)
    return (
        f"windows of {window:,} samples ({window / rate:g} s) with 2 s overlap over clips of "
        f"{length:,} samples at {rate} Hz"
    )


def _cell(score: tuple[float, float] | None, best: float | None) -> str:
    if score is None:
        return "–"
    mean, ci = score
    text = f"{mean:.2f}" + ("" if math.isnan(ci) else f" ± {ci:.2f}")
    return f"**{text}**" if mean == best else text


def audio_table(meta: dict[str, str], rows: Sequence[AudioRow]) -> str:
    """The Markdown table of the rows of one budget: SI-SDRi per stem and mean (best in bold),
    then network calls, seconds and peak memory per mixture, and notes."""
    stats = table_stats(rows)
    budget = rows[0].budget
    data = json.loads(meta["data"])
    bests = [
        max((s.scores[c][0] for s in stats if s.scores[c] is not None), default=None)
        for c in range(len(_COLUMN_TITLES))
    ]
    lines = [
        "SI-SDRi (dB, higher is better), mean ± 95 % CI over mixtures (seeds averaged per "
        f"mixture); {_window_text(meta, rows)}; data: {data['split']} split, first seed "
        f"{data['first_seed']}; "
        + (
            "the samplers' own settings."
            if budget == 0
            else f"every sampler at about {budget:g} network calls per window."
        ),
        "",
        "| sampler | " + " | ".join(_COLUMN_TITLES) + " | NFE fwd | NFE fwd+bwd | s / mixture "
        "| peak MiB | mixtures |",
        "|:---|" + "---:|" * (len(_COLUMN_TITLES) + 5),
    ]
    notes = []
    for s in stats:
        if s.mixtures == 0:
            cells = ["skipped" if s.skipped else "–"] * len(_COLUMN_TITLES) + ["–"] * 4
        else:
            memory = "–" if s.peak_memory is None else f"{s.peak_memory / 2**20:.0f}"
            cells = [_cell(score, best) for score, best in zip(s.scores, bests)]
            cells += [f"{s.nfe_forward:.0f}", f"{s.nfe_backward:.0f}", f"{s.seconds:.3g}", memory]
        lines.append(f"| {s.label} | " + " | ".join(cells) + f" | {s.mixtures} |")
        if s.skipped:
            notes.append(f"{s.label} skipped: {s.skipped}")
        if s.diverged:
            notes.append(f"{s.label}: {s.diverged} separations diverged (non-finite stems).")
    notes.append(
        "Network calls and seconds per mixture (all its windows); mgdm-independent's call runs "
        "the four single-stem networks. Peak memory: CUDA allocation or the process's resident "
        "set (CPU)."
    )
    return "\n".join([*lines, "", *notes]) + "\n"


def compute_curve(stats: Sequence[LabelStats], path: Path) -> Path:
    """Write the PNG of mean SI-SDRi against network calls per mixture: the joint MGDM variants
    ``mgdm-R{R}`` as a line over ``R``, every other sampler as a labelled point."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 4.0))
    points = []
    for s in stats:
        score = s.scores[-1]
        if score is None:
            continue
        match = _SWEEP_LABEL.fullmatch(s.label)
        sweeps = (
            int(match.group(1)) if match and s.algorithm == "mgdm" and not s.independent else None
        )
        points.append((s.label, s.nfe_forward + s.nfe_backward, score[0], sweeps))
    plot_compute_points(axis, points, fontsize=7)
    calls = [x for line in axis.get_lines() for x in line.get_xdata()]
    if calls and min(calls) > 0 and max(calls) > 10 * min(calls):
        axis.set_xscale("log")
    axis.set_xlabel("network calls per mixture (forward + VJP)")
    axis.set_ylabel("mean SI-SDRi (dB)")
    figure.tight_layout()
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=110))
    plt.close(figure)
    return path


def write_audio_table(
    db: Path | str, out: Path | str | None = None, budget: float | None = None
) -> tuple[str, list[Path]]:
    """The Markdown table of ``budget`` (``None``: the database's only one); with ``out``, also
    ``table.md`` and ``compute_curve.png`` there (each written whole or not at all). Returns the
    text and the files written. ``ValueError`` for an ``out`` that is not a folder that exists
    or can be created, checked before the database is read."""
    if out is not None:
        out = check_output_dir(out, "--out")
    meta, rows = read_audio_db(db)
    rows = select_budget(rows, budget)
    text = audio_table(meta, rows)
    if out is None:
        return text, []
    write_atomically(out / "table.md", lambda temporary: temporary.write_text(text, "utf-8"))
    return text, [out / "table.md", compute_curve(table_stats(rows), out / "compute_curve.png")]
