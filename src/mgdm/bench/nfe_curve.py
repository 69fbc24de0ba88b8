"""Quality against compute: samplers rescaled to several budgets on the Gaussian-mixture
benchmark (docs/benchmarks.md §1.7).

Each sampler runs at ``N`` network calls per sample for every ``N`` of the curve
(:meth:`~mgdm.samplers.base.Sampler.with_budget`; for MGDM the rule of
:meth:`~mgdm.samplers.mgdm.MGDM.with_budget`). Rows are labelled ``NAME@N``; the table has one
line per budget and one column per sampler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mgdm.bench.gmm import GMMRow
from mgdm.bench.tables import mean_ci

SEPARATOR = "@"


def curve_label(name: str, budget: int) -> str:
    """``NAME@N``, the label of ``name`` at ``budget`` calls."""
    return f"{name}{SEPARATOR}{budget}"


def split_label(label: str) -> tuple[str, int]:
    """``(NAME, N)`` of a ``NAME@N`` label; ``ValueError`` for any other label."""
    name, _, budget = label.rpartition(SEPARATOR)
    if not name or not budget.isdigit():
        raise ValueError(f"{label!r} is not a curve label NAME@N (rows of `mgdm bench nfe-curve`).")
    return name, int(budget)


def curve_table(rows: Sequence[GMMRow]) -> str:
    """A Markdown table per ``(dim, obs_dim)``: one line per budget ``N``, one column per sampler
    with the SW mean ± 95 % CI over seeds (the best of a line in bold), then the floor and, per
    sampler, the paired change from the smallest budget to the largest (the mean over seeds of
    ``SW(N_min) - SW(N_max)`` with its 95 % half-width; * when the interval excludes 0)."""
    blocks = []
    for dim, obs_dim in sorted({(r.dim, r.obs_dim) for r in rows}):
        here = [r for r in rows if (r.dim, r.obs_dim) == (dim, obs_dim)]
        cells: dict[tuple[str, int], list[float]] = {}
        by_seed: dict[tuple[str, int], dict[int, float]] = {}
        for row in here:
            cells.setdefault(split_label(row.sampler), []).append(row.sw)
            by_seed.setdefault(split_label(row.sampler), {})[row.seed] = row.sw
        names = list(dict.fromkeys(name for name, _ in cells))
        budgets = sorted({budget for _, budget in cells})
        lines = [
            f"d = {dim}, d_y = {obs_dim}:",
            "",
            "| N (calls / sample) | " + " | ".join(names) + " |",
            "|---:|" + "---:|" * len(names),
        ]
        for budget in budgets:
            stats = {n: mean_ci(cells[(n, budget)]) for n in names if (n, budget) in cells}
            best = min(mean for mean, _ in stats.values())
            texts = []
            for name in names:
                if name not in stats:
                    texts.append("–")
                    continue
                mean, ci = stats[name]
                text = f"{mean:.2f}" + ("" if math.isnan(ci) else f" ± {ci:.2f}")
                texts.append(f"**{text}**" if mean == best else text)
            lines.append(f"| {budget} | " + " | ".join(texts) + " |")
        floor = sum(r.sw_floor for r in here) / len(here)
        seeds = sorted({r.seed for r in here})
        lines.append("")
        lines.append(
            f"Floor {floor:.2f}; seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} per cell), "
            f"{here[0].n_samples} samples per run."
        )
        low, high = budgets[0], budgets[-1]
        for name in names:
            first, last = by_seed.get((name, low), {}), by_seed.get((name, high), {})
            common = sorted(first.keys() & last.keys())
            if low == high or len(common) < 2:
                continue
            mean, ci = mean_ci([first[s] - last[s] for s in common])
            mark = " *" if abs(mean) > ci else ""
            lines.append(
                f"- {name}: SW({low}) - SW({high}) = {mean:.2f} ± {ci:.2f}{mark} "
                f"(paired over {len(common)} seeds)."
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
