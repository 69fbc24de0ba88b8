"""Run samplers on the Gaussian-mixture exact-posterior benchmark and summarise the results.

For each problem ``(dim, obs_dim, seed)`` (see :mod:`mgdm.gmm_problem`) and each sampler,
``n`` posterior samples are scored by the sliced Wasserstein-1 distance to ``n`` exact posterior
samples. Two references come with every row:

* ``sw_floor``: SW between two independent exact sample sets of the same size (the best
  achievable score at this sample size);
* ``sw_prior``: SW of ``n`` prior samples (what no guidance at all would score).

Seeds: the sampler's per-sample seeds, the exact sets and the projection directions are all
derived from ``(dim, obs_dim, seed)``, so a row is reproducible on its own.

Memory: a problem allocates float64 arrays of ``dim x dim`` (the SVD of the operator),
``samples x dim x obs_dim`` (the exact posterior draws) and ``samples x directions`` (the sliced
Wasserstein projections); :func:`run_benchmark` refuses a run whose largest array exceeds the
memory available (Linux's ``MemAvailable``) before it allocates anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mgdm.bench.seeds import seed_block
from mgdm.bench.tables import mean_ci
from mgdm.files import write_atomically
from mgdm.gmm_problem import GMMProblem, make_gmm_problem
from mgdm.metrics.sliced_wasserstein import sliced_wasserstein
from mgdm.random import SampleNoise, derive_seed
from mgdm.samplers.base import Sampler

SamplerSpec = Sampler | Callable[[GMMProblem], Sampler]
"""A sampler, or a function building one for a given problem (problem-dependent settings)."""


def fitted_to_problem(sampler: Sampler) -> Callable[[GMMProblem], Sampler]:
    """``sampler`` with, for each problem, its settings that depend on the problem
    (:meth:`~mgdm.samplers.settings.SamplerConfig.for_problem` in the ``gmm`` domain: DAPS's
    Langevin ``tau`` and ``lr``; the other samplers' configurations are unchanged)."""

    def build(case: GMMProblem) -> Sampler:
        return type(sampler)(sampler.config.for_problem("gmm", case.problem))

    return build


@dataclass(frozen=True)
class GMMRow:
    """One (sampler, problem) result. ``nfe_*`` are per sample; ``seconds`` is the whole run."""

    sampler: str
    dim: int
    obs_dim: int
    seed: int
    sw: float
    sw_floor: float
    sw_prior: float
    nfe_forward: float
    nfe_backward: float
    seconds: float
    n_samples: int


def run_problem(
    dim: int,
    obs_dim: int,
    seed: int,
    samplers: Sequence[tuple[str, SamplerSpec]],
    n_samples: int,
    n_directions: int = 1000,
    device: str | torch.device = "cpu",
) -> list[GMMRow]:
    """Score every sampler on one problem; returns one row per sampler."""
    case = make_gmm_problem(dim, obs_dim, seed)
    directions_seed = derive_seed(dim, obs_dim, seed, 3)
    exact = case.posterior.sample(SampleNoise(seed_block(dim, obs_dim, seed, 1, count=n_samples)))
    exact_again = case.posterior.sample(
        SampleNoise(seed_block(dim, obs_dim, seed, 2, count=n_samples))
    )
    prior_draws = case.prior.sample(SampleNoise(seed_block(dim, obs_dim, seed, 4, count=n_samples)))
    sw_floor = sliced_wasserstein(exact, exact_again, n_directions, directions_seed)
    sw_prior = sliced_wasserstein(exact, prior_draws, n_directions, directions_seed)
    problem = case.problem
    if torch.device(device).type != "cpu":
        problem = type(problem)(problem.operator, problem.observation.to(device), problem.noise)
    rows = []
    for label, spec in samplers:
        sampler = spec if isinstance(spec, Sampler) else spec(case)
        seeds = seed_block(dim, obs_dim, seed, 5, count=n_samples)
        result = sampler.sample(case.prior, problem, seeds, device=device)
        samples = result.samples.to("cpu", torch.float64)
        if not bool(torch.isfinite(samples).all()):
            sw = math.inf
        else:
            sw = sliced_wasserstein(exact, samples, n_directions, directions_seed)
        rows.append(
            GMMRow(
                sampler=label,
                dim=dim,
                obs_dim=obs_dim,
                seed=seed,
                sw=sw,
                sw_floor=sw_floor,
                sw_prior=sw_prior,
                nfe_forward=result.cost.nfe_forward,
                nfe_backward=result.cost.nfe_backward,
                seconds=result.cost.seconds,
                n_samples=n_samples,
            )
        )
    return rows


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable`` of ``/proc/meminfo``);
    ``None`` where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(dim: int, obs_dim: int, n_samples: int, n_directions: int) -> None:
    """``ValueError`` naming the options to reduce when the largest float64 array of a problem
    (module docstring) exceeds the memory available; no check where it is unknown."""
    available = _available_memory()
    arrays = [
        (dim * dim, f"the {dim} x {dim} SVD of the operator", "--dim"),
        (
            n_samples * dim * obs_dim,
            f"the exact posterior draws ({n_samples} x {dim} x {obs_dim})",
            "--samples, --dim or --obs-dim",
        ),
        (
            n_samples * n_directions,
            f"the sliced Wasserstein projections ({n_samples} x {n_directions})",
            "--samples or --directions",
        ),
    ]
    size, what, options = max(arrays)
    if available is not None and 8 * size > available:
        raise ValueError(
            f"dim {dim}, obs_dim {obs_dim}: {what} needs {8 * size / 2**30:,.1f} GiB, more than "
            f"the {available / 2**30:,.1f} GiB of memory available; reduce {options}."
        )


def run_benchmark(
    dims: Iterable[int],
    obs_dims: Iterable[int],
    seeds: Iterable[int],
    samplers: Sequence[tuple[str, SamplerSpec]],
    n_samples: int = 1000,
    n_directions: int = 1000,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_rows: Callable[[list[GMMRow]], object] | None = None,
    done: Mapping[tuple[str, int, int, int], GMMRow] | None = None,
    on_cell: Callable[[GMMRow], object] | None = None,
) -> list[GMMRow]:
    """Run every sampler on every problem and return the rows, problem by problem in sampler
    order; ``on_cell(row)`` is called for each new row, ``on_rows(all_rows)`` after each problem.

    ``done`` holds finished rows by ``(sampler label, dim, obs_dim, seed)`` (a resumed run, e.g.
    :func:`mgdm.bench.gmm_db.stored_cells`): they are returned as they are and not run again. A
    row does not depend on which other samplers run beside it, so a resumed run gives the rows of
    an uninterrupted one (seconds aside).

    ``ValueError`` before any problem runs for an ``obs_dim`` above its ``dim`` or a problem too
    large for the memory available (:func:`check_memory`)."""
    done = done or {}
    problems = [(d, m, s) for d in dims for m in obs_dims for s in seeds]
    for d, m, _ in problems:
        if m > d:
            raise ValueError(f"obs_dim {m} exceeds dim {d}.")
        check_memory(d, m, n_samples, n_directions)
    rows: list[GMMRow] = []
    for dim, obs_dim, seed in tqdm(problems, desc="gmm problems", disable=not progress):
        todo = [
            (label, spec) for label, spec in samplers if (label, dim, obs_dim, seed) not in done
        ]
        fresh = {}
        if todo:
            new = run_problem(dim, obs_dim, seed, todo, n_samples, n_directions, device)
            for row in new:
                if on_cell is not None:
                    on_cell(row)
            fresh = {row.sampler: row for row in new}
        rows.extend(
            fresh[label] if label in fresh else done[(label, dim, obs_dim, seed)]
            for label, _ in samplers
        )
        if on_rows is not None:
            on_rows(rows)
    return rows


def write_json(rows: Sequence[GMMRow], path: str | Path) -> None:
    """Write the rows whole or not at all (:func:`mgdm.files.write_atomically`)."""
    text = json.dumps([asdict(r) for r in rows], indent=1)
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def read_json(path: str | Path) -> list[GMMRow]:
    """Rows written by :func:`write_json`; ``ValueError`` for a missing file, a folder, or a file
    that is not such a list."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}" if not path.exists() else f"{path} is a folder.")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        rows = [GMMRow(**record) for record in records]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        raise ValueError(
            f"{path} is not a gmm benchmark JSON file ({error}); expected the output of "
            "`mgdm bench gmm --json`."
        ) from None
    for row in rows:
        for name, value in asdict(row).items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (isinstance(value, str) if name == "sampler" else number):
                raise ValueError(
                    f"{path}: a row's {name} is {value!r}; expected the output of "
                    "`mgdm bench gmm --json`."
                )
    return rows


def summary_table(rows: Sequence[GMMRow]) -> str:
    """A Markdown table: one line per (dim, obs_dim, sampler) with SW mean ± 95 % CI over seeds."""
    groups: dict[tuple[int, int, str], list[GMMRow]] = {}
    for row in rows:
        groups.setdefault((row.dim, row.obs_dim, row.sampler), []).append(row)
    lines = [
        "| dim | obs_dim | sampler | seeds | SW (mean ± 95% CI) | floor | prior | NFE fwd | NFE fwd+bwd | s / sample |",
        "|---:|---:|:---|---:|:---|---:|---:|---:|---:|---:|",
    ]
    for (dim, obs_dim, sampler), group in groups.items():
        sw, ci = mean_ci([r.sw for r in group])
        floor = sum(r.sw_floor for r in group) / len(group)
        prior = sum(r.sw_prior for r in group) / len(group)
        fwd = sum(r.nfe_forward for r in group) / len(group)
        bwd = sum(r.nfe_backward for r in group) / len(group)
        sps = sum(r.seconds / r.n_samples for r in group) / len(group)
        ci_text = "" if math.isnan(ci) else f" ± {ci:.2f}"
        lines.append(
            f"| {dim} | {obs_dim} | {sampler} | {len(group)} | {sw:.2f}{ci_text} | {floor:.2f} | "
            f"{prior:.2f} | {fwd:.0f} | {bwd:.0f} | {sps:.2e} |"
        )
    return "\n".join(lines)


def pivot_table(rows: Sequence[GMMRow]) -> str:
    """A Markdown table with one line per sampler and one column per ``(dim, obs_dim)``: SW mean
    ± 95 % CI over seeds (the best mean of a column in bold), then the mean network calls and
    seconds per sample; the exact-vs-exact floor and the prior's SW close the table."""
    problems = sorted({(r.dim, r.obs_dim) for r in rows})
    samplers = list(dict.fromkeys(r.sampler for r in rows))
    cells: dict[tuple[str, int, int], list[GMMRow]] = {}
    for row in rows:
        cells.setdefault((row.sampler, row.dim, row.obs_dim), []).append(row)
    best = {
        p: min(
            (
                mean_ci([r.sw for r in cells[(name, *p)]])[0]
                for name in samplers
                if (name, *p) in cells
            ),
            default=math.nan,
        )
        for p in problems
    }
    header = (
        "| sampler | "
        + " | ".join(f"d={d}, d_y={m}" for d, m in problems)
        + " | NFE fwd | NFE fwd+bwd | s / sample |"
    )
    lines = [header, "|:---|" + "---:|" * (len(problems) + 3)]
    for name in samplers:
        texts, group_rows = [], []
        for p in problems:
            group = cells.get((name, *p), [])
            group_rows.extend(group)
            if not group:
                texts.append("–")
                continue
            mean, ci = mean_ci([r.sw for r in group])
            text = f"{mean:.2f}" + ("" if math.isnan(ci) else f" ± {ci:.2f}")
            texts.append(f"**{text}**" if mean == best[p] else text)
        fwd = sum(r.nfe_forward for r in group_rows) / len(group_rows)
        bwd = sum(r.nfe_backward for r in group_rows) / len(group_rows)
        sps = sum(r.seconds / r.n_samples for r in group_rows) / len(group_rows)
        lines.append(f"| {name} | " + " | ".join(texts) + f" | {fwd:.0f} | {bwd:.0f} | {sps:.1e} |")
    for label, field in (("exact-vs-exact floor", "sw_floor"), ("prior samples", "sw_prior")):
        values = []
        for p in problems:
            refs = {(r.seed, getattr(r, field)) for r in rows if (r.dim, r.obs_dim) == p}
            values.append(f"{sum(v for _, v in refs) / len(refs):.2f}")
        lines.append(f"| *{label}* | " + " | ".join(values) + " | | | |")
    seeds = sorted({r.seed for r in rows})
    n = sorted({r.n_samples for r in rows})
    lines.append("")
    lines.append(
        f"Seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} max per cell), {', '.join(map(str, n))} samples per run."
    )
    return "\n".join(lines)


def paired_ratio_table(rows: Sequence[GMMRow], numerator: str, denominator: str) -> str:
    """Per ``(dim, obs_dim)``, over the seeds both samplers ran: the mean of the per-seed ratios
    ``SW_numerator / SW_denominator`` (the issue's paired ratio), their geometric mean, and on
    how many seeds the numerator is lower; a last line averages the columns' ratios.

    ``ValueError`` when the two samplers share no problem.
    """
    sw = {(r.sampler, r.dim, r.obs_dim, r.seed): r.sw for r in rows}
    problems = sorted({(r.dim, r.obs_dim) for r in rows})
    header = (
        f"| {numerator} / {denominator} | paired ratio (mean) | geometric mean | "
        f"{numerator} lower | seeds |"
    )
    lines = [header, "|:---|---:|---:|---:|---:|"]
    means, geometric = [], []
    for dim, obs_dim in problems:
        seeds = sorted(
            r.seed
            for r in rows
            if (r.sampler, r.dim, r.obs_dim) == (numerator, dim, obs_dim)
            and (denominator, dim, obs_dim, r.seed) in sw
        )
        if not seeds:
            continue
        ratios = [
            sw[(numerator, dim, obs_dim, s)] / sw[(denominator, dim, obs_dim, s)] for s in seeds
        ]
        means.append(sum(ratios) / len(ratios))
        geometric.append(math.exp(sum(math.log(q) for q in ratios) / len(ratios)))
        lower = sum(q < 1 for q in ratios)
        lines.append(
            f"| d={dim}, d_y={obs_dim} | {means[-1]:.2f} | {geometric[-1]:.2f} | {lower} | "
            f"{len(seeds)} |"
        )
    if not means:
        raise ValueError(
            f"samplers {numerator!r} and {denominator!r} share no problem in these rows."
        )
    lines.append(
        f"| *average over columns* | {sum(means) / len(means):.2f} | "
        f"{sum(geometric) / len(geometric):.2f} | | |"
    )
    return "\n".join(lines)
