"""The error ladder of MGDM on exact posteriors (docs/benchmarks.md §1.6).

On the Gaussian-mixture benchmark (:mod:`mgdm.bench.gmm`) every quantity MGDM approximates is
available exactly (:mod:`mgdm.priors.exact_guidance`, :mod:`mgdm.samplers.mgdm_exact`). Each
*rung* is MGDM's ``variational`` preset (:data:`LADDER_BASE`: the default until 2026-12-05,
whose error the ladder was built to explain; its rung keeps the label ``default``) with some
approximations replaced by their exact counterparts, by the practical randomize-then-optimise
draw (``fit='rto'``, the draw of today's default), or with more compute:

* the potential ``g(D_ell(x))`` -> the true ``g_ell(x)`` (``likelihood='exact'``);
* the Gaussian variational fit of ``x_ell | x_0, x_t`` -> an importance-resampled draw of the
  conditional itself (``fit='exact'``);
* the one-shot Tweedie ``x_0 = D_ell(x_ell)`` -> an exact draw of ``p(x_0 | x_ell)``
  (``denoiser_posterior='exact'``);
* one Gibbs sweep per outer step -> four (``R = 4``), 100 grid points -> 300, and the
  ``mix`` mixture-index rule instead of ``ell = p``.

The share of the gap to the floor that a rung closes, for one ``(dim, obs_dim)`` column, is
``(SW_default - SW_rung) / (SW_default - SW_floor)`` on the column means over seeds; the table
averages it over the columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mgdm.bench.gmm import GMMRow
from mgdm.bench.tables import mean_ci
from mgdm.samplers.mgdm import PRESETS, MGDMConfig

LADDER_BASE: MGDMConfig = PRESETS["variational"]
"""The ladder's first rung: the ``variational`` preset (the Gaussian fit with Adam)."""


@dataclass(frozen=True)
class Rung:
    """A labelled variant of :data:`LADDER_BASE` (``overrides`` of its fields)."""

    label: str
    overrides: Mapping[str, object]
    oracle: bool


_EXACT_POTENTIAL = {"likelihood": "exact"}
_EXACT_DRAW = {"fit": "exact"}
_EXACT_DENOISER = {"denoiser_posterior": "exact"}
_SWEEPS = {"gibbs_sweeps": 4}

RUNGS: tuple[Rung, ...] = (
    Rung("default", {}, oracle=False),
    Rung("exact potential", _EXACT_POTENTIAL, oracle=True),
    Rung("exact x_ell draw", _EXACT_DRAW, oracle=True),
    Rung("exact p(x_0|x_ell)", _EXACT_DENOISER, oracle=True),
    Rung("rto x_ell draw", {"fit": "rto"}, oracle=False),
    Rung("mix index rule", {"index_rule": "mix"}, oracle=False),
    Rung(
        "K = 300",
        {"num_steps": 300, "gradient_steps": PRESETS["dense-grid"].gradient_steps},
        oracle=False,
    ),
    Rung("R = 4", _SWEEPS, oracle=False),
    Rung("exact potential, R = 4", {**_EXACT_POTENTIAL, **_SWEEPS}, oracle=True),
    Rung(
        "exact potential + p(x_0|x_ell), R = 4",
        {**_EXACT_POTENTIAL, **_EXACT_DENOISER, **_SWEEPS},
        oracle=True,
    ),
    Rung(
        "all exact, R = 4",
        {**_EXACT_POTENTIAL, **_EXACT_DRAW, **_EXACT_DENOISER, **_SWEEPS},
        oracle=True,
    ),
)
"""The ladder, in table order: the default, each approximation made exact alone, more compute
alone, then the exact pieces together."""

RUNG_LABELS: tuple[str, ...] = tuple(rung.label for rung in RUNGS)


def select_rungs(names: str | None) -> list[Rung]:
    """The rungs named in a comma list (``None``: all), in ladder order; ``ValueError`` naming
    the accepted labels for an unknown one. The default rung always comes first."""
    if names is None:
        return list(RUNGS)
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in RUNG_LABELS]
    if unknown:
        raise ValueError(f"unknown ladder rung {unknown[0]!r}; accepted: {'; '.join(RUNG_LABELS)}.")
    return [rung for rung in RUNGS if rung.label in wanted or rung.label == "default"]


def rung_config(rung: Rung, particles: int) -> MGDMConfig:
    """The MGDM configuration of ``rung`` (``particles`` proposals per exact draw)."""
    config = replace(LADDER_BASE, **rung.overrides)
    return replace(config, fit_particles=particles) if config.fit == "exact" else config


def ladder_table(rows: Sequence[GMMRow]) -> str:
    """A Markdown table: one line per rung, one column per ``(dim, obs_dim)`` with the mean SW
    over seeds (± 95 % CI), then the share of the default's gap to the floor that the rung closes
    (mean over the columns; negative: the rung is worse), its network calls per sample, and
    whether it is an oracle; rungs in ladder order (:data:`RUNGS`), other labels after them. The
    floor and the prior close the table. Columns need the ``default`` rung."""
    problems = sorted({(r.dim, r.obs_dim) for r in rows})
    order = {label: index for index, label in enumerate(RUNG_LABELS)}
    labels = sorted(dict.fromkeys(r.sampler for r in rows), key=lambda x: order.get(x, len(order)))
    cells: dict[tuple[str, int, int], list[GMMRow]] = {}
    for row in rows:
        cells.setdefault((row.sampler, row.dim, row.obs_dim), []).append(row)

    def mean_of(label: str, problem: tuple[int, int], field: str = "sw") -> float:
        group = cells.get((label, *problem), [])
        return sum(getattr(r, field) for r in group) / len(group) if group else math.nan

    oracle = {rung.label: rung.oracle for rung in RUNGS}
    header = (
        "| rung | "
        + " | ".join(f"d={d}, d_y={m}" for d, m in problems)
        + " | gap closed | NFE fwd | NFE fwd+bwd | oracle |"
    )
    lines = [header, "|:---|" + "---:|" * (len(problems) + 3) + ":---|"]
    for label in labels:
        texts, shares, group_rows = [], [], []
        for p in problems:
            group = cells.get((label, *p), [])
            group_rows.extend(group)
            if not group:
                texts.append("–")
                continue
            mean, ci = mean_ci([r.sw for r in group])
            texts.append(f"{mean:.2f}" + ("" if math.isnan(ci) else f" ± {ci:.2f}"))
            default, floor = mean_of("default", p), mean_of("default", p, "sw_floor")
            if default - floor > 0:
                shares.append((default - mean) / (default - floor))
        share = f"{100 * sum(shares) / len(shares):+.0f} %" if shares else "–"
        fwd = sum(r.nfe_forward for r in group_rows) / max(len(group_rows), 1)
        bwd = sum(r.nfe_backward for r in group_rows) / max(len(group_rows), 1)
        kind = "yes" if oracle.get(label, False) else "no"
        lines.append(
            f"| {label} | " + " | ".join(texts) + f" | {share} | {fwd:.0f} | {bwd:.0f} | {kind} |"
        )
    for name, field in (("*exact-vs-exact floor*", "sw_floor"), ("*prior samples*", "sw_prior")):
        values = []
        for p in problems:
            group = [r for r in rows if (r.dim, r.obs_dim) == p]
            values.append(f"{sum(getattr(r, field) for r in group) / len(group):.2f}")
        lines.append(f"| {name} | " + " | ".join(values) + " | | | | |")
    seeds = sorted({r.seed for r in rows})
    lines.append("")
    lines.append(
        f"Seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} per cell), {rows[0].n_samples} samples per "
        "run. Network calls per sample: the exact potential and the exact x_ell draw are free "
        "(not counted); an exact p(x_0|x_ell) draw counts as the one forward call of the "
        "Tweedie step it replaces."
    )
    return "\n".join(lines)
