"""What the benchmarks' tables and plots share: means with confidence intervals, the order of
sampler labels, and the compute curve's points."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from mgdm.samplers.registry import sampler_names


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, 1.96 std / sqrt(n))`` of ``n >= 1`` values: the mean and the half-width of its
    95 % confidence interval (NaN for one value); ``std`` is the sample standard deviation."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def label_order(label: str, algorithm: str) -> tuple[int, list[object]]:
    """Sort key of a sampler label: its algorithm's registry order, then the label in natural
    order (``mgdm-R2`` before ``mgdm-R10``)."""
    registry = sampler_names()
    rank = registry.index(algorithm) if algorithm in registry else len(registry)
    return rank, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label)]


def plot_compute_points(
    axis: Any, points: Sequence[tuple[str, float, float, int | None]], fontsize: int
) -> None:
    """Draw ``(label, calls, score, R)`` points on ``axis``: the MGDM sweep variants (``R`` not
    ``None``) as one line ordered by ``R``, every other sampler as a labelled point."""
    for label, calls, score, sweeps in points:
        if sweeps is None:
            axis.plot(calls, score, "o")
            axis.annotate(label, (calls, score), fontsize=fontsize)
    sweep = sorted((r, calls, score) for _, calls, score, r in points if r is not None)
    if sweep:
        axis.plot(
            [s[1] for s in sweep],
            [s[2] for s in sweep],
            "k.-",
            label="MGDM, R = " + ",".join(str(s[0]) for s in sweep),
        )
        axis.legend(fontsize=fontsize)
