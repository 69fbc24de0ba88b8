"""``mgdm bench gmm``: the exact-posterior Gaussian-mixture benchmark from the command line."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from contextlib import closing
from pathlib import Path

from mgdm.bench.gmm import (
    GMMRow,
    fitted_to_problem,
    paired_ratio_table,
    pivot_table,
    read_json,
    run_benchmark,
    summary_table,
    write_json,
)
from mgdm.bench.gmm_db import (
    STORE,
    check_configs,
    insert_row,
    read_gmm_db,
    run_settings,
    stored_cells,
)
from mgdm.bench.seeds import parse_seeds
from mgdm.bench.store import config_json
from mgdm.commands.arguments import add_device_option, positive_float, positive_int
from mgdm.commands.mgdm_options import add_mgdm_options, mgdm_config_from_args, preset_name
from mgdm.files import check_output_file
from mgdm.samplers.base import Sampler
from mgdm.samplers.registry import build_sampler, parse_sampler_list, sampler_class, sampler_names


def add_problem_options(
    parser: argparse.ArgumentParser, dims: list[int], seeds: str, samples: int
) -> None:
    """The problems, sample sizes, outputs and device of a run on the Gaussian-mixture problems
    (what :func:`check_problem_options` and :func:`run_gmm_cells` read), with these defaults."""
    parser.add_argument(
        "--dim",
        type=positive_int,
        nargs="+",
        default=dims,
        help="data dimensions, even; a run needing more memory than is available is refused "
        "before it starts (arrays of dim x dim and samples x dim x obs-dim float64)",
    )
    parser.add_argument(
        "--obs-dim",
        type=positive_int,
        nargs="+",
        default=[1, 2, 4],
        help="observation dimensions, at most dim",
    )
    parser.add_argument(
        "--seeds", default=seeds, help="problem seeds, e.g. 0-9 or 0,3,5 (default: %(default)s)"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=samples,
        help="samples per problem, >= 2 (default: %(default)s)",
    )
    parser.add_argument(
        "--directions",
        type=positive_int,
        default=1000,
        help="SW projection directions (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        help="write one row per (sampler, dim, obs_dim, seed) to this .json file (rewritten "
        "whole after each problem)",
    )
    parser.add_argument(
        "--db",
        help="also store each (sampler, problem) cell in this SQLite database as it finishes "
        "(created if needed); a rerun skips the cells it holds",
    )
    add_device_option(parser)


def add_bench_commands(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``gmm`` and ``gmm-table`` under ``mgdm bench``."""
    parser = bench_sub.add_parser(
        "gmm",
        help="exact-posterior benchmark on 25-component Gaussian mixtures",
        description="Sample the exact-posterior Gaussian-mixture problems (MCGdiff protocol) and "
        "print the sliced Wasserstein distance to exact posterior samples.",
    )
    add_problem_options(parser, dims=[8], seeds="0-9", samples=1000)
    parser.add_argument(
        "--samplers",
        default="mgdm",
        help=f"'all' or a comma list of {', '.join(sampler_names())} (default: %(default)s)",
    )
    parser.add_argument(
        "--budget",
        type=positive_float,
        help="run every sampler at about this many network calls per sample",
    )
    add_mgdm_options(parser)
    parser.add_argument(
        "--mgdm-label",
        help="name of the MGDM rows in tables and JSON (default: 'mgdm', or 'mgdm-PRESET' for a "
        "preset other than the default)",
    )
    parser.set_defaults(func=run)
    table = bench_sub.add_parser(
        "gmm-table",
        help="print the Markdown summary of saved gmm benchmark rows",
        description="Summarise JSON files written by `mgdm bench gmm --json` or databases of "
        "`mgdm bench gmm --db` as the "
        "Markdown table the benchmark prints (SW mean ± 95%% CI over seeds, per dim, obs_dim, sampler).",
    )
    table.add_argument(
        "files",
        nargs="+",
        help="JSON files of `mgdm bench gmm --json`, or .sqlite databases of its --db",
    )
    table.add_argument(
        "--pivot", action="store_true", help="one line per sampler, one column per (dim, obs_dim)"
    )
    table.add_argument(
        "--only-samplers", help="keep the rows of these samplers (comma list of labels)"
    )
    table.add_argument("--only-dims", help="keep the rows of these dimensions (comma list)")
    table.add_argument("--only-seeds", help="keep the rows of these seeds, e.g. 0-5")
    table.add_argument(
        "--paired",
        metavar="A/B",
        help="also print, per (dim, obs_dim), the mean and geometric mean of the per-seed ratios "
        "SW_A / SW_B of two sampler labels, and on how many seeds A is lower",
    )
    table.set_defaults(func=print_table)


DATABASE_SUFFIXES = (".sqlite", ".db")
"""The tables read a file with one of these suffixes as a database, any other as JSON."""


def read_rows(files: list[str]) -> list[GMMRow]:
    """The rows of JSON files (``--json``) and databases (``--db``, by suffix)."""
    rows: list[GMMRow] = []
    for path in files:
        is_database = Path(path).suffix.lower() in DATABASE_SUFFIXES
        rows.extend(read_gmm_db(path) if is_database else read_json(path))
    return rows


def print_table(args: argparse.Namespace) -> int:
    rows = read_rows(args.files)
    if args.only_samplers:
        keep = {name.strip() for name in args.only_samplers.split(",")}
        rows = [r for r in rows if r.sampler in keep]
    if args.only_dims:
        try:
            dims = {int(d) for d in args.only_dims.split(",")}
        except ValueError:
            raise ValueError(
                f"--only-dims takes a comma list of integers; got {args.only_dims!r}."
            ) from None
        rows = [r for r in rows if r.dim in dims]
    if args.only_seeds:
        seeds = set(parse_seeds(args.only_seeds))
        rows = [r for r in rows if r.seed in seeds]
    if not rows:
        raise ValueError("no rows to show (the files are empty or the filters keep nothing).")
    sys.stdout.write((pivot_table(rows) if args.pivot else summary_table(rows)) + "\n")
    if args.paired:
        numerator, slash, denominator = args.paired.partition("/")
        if not (slash and numerator.strip() and denominator.strip()):
            raise ValueError(f"--paired takes two sampler labels as A/B; got {args.paired!r}.")
        table = paired_ratio_table(rows, numerator.strip(), denominator.strip())
        sys.stdout.write("\n" + table + "\n")
    return 0


def check_problem_options(args: argparse.Namespace) -> None:
    """One-line ``ValueError`` for ``--samples`` below 2, an odd or too small ``--dim``, or a
    ``--json`` path that cannot be written (shared by every command on these problems)."""
    if args.samples < 2:
        raise ValueError(f"--samples must be >= 2; got {args.samples}.")
    for d in args.dim:
        if d < 2 or d % 2:
            raise ValueError(f"--dim values must be even integers >= 2; got {d}.")
    if args.json:
        check_output_file(args.json, "--json", (".json",))


def run_gmm_cells(args: argparse.Namespace, samplers: list[tuple[str, Sampler]]) -> list[GMMRow]:
    """Run the labelled ``samplers`` on the problems of ``args`` (``--dim``, ``--obs-dim``,
    ``--seeds``, ``--samples``, ``--directions``, ``--device``), each fitted to its problem;
    resume from and write to ``--db`` (finished cells skipped, a label stored with another
    configuration refused) and ``--json`` (after each problem)."""
    seeds = parse_seeds(args.seeds)
    settings = run_settings(args.samples, args.directions)
    if args.db:
        STORE.check(args.db, settings)
    configs = {label: config_json(sampler.config) for label, sampler in samplers}
    objects = {label: sampler.config for label, sampler in samplers}
    on_rows = (lambda rows: write_json(rows, args.json)) if args.json else None
    with contextlib.ExitStack() as stack:
        done, on_cell = {}, None
        if args.db:
            connection = stack.enter_context(closing(STORE.open(args.db, settings)))
            check_configs(connection, configs, Path(args.db), objects)
            done = stored_cells(connection)

            def on_cell(row: GMMRow) -> None:
                insert_row(connection, row, configs[row.sampler], time.time())

        return run_benchmark(
            args.dim,
            args.obs_dim,
            seeds,
            [(label, fitted_to_problem(sampler)) for label, sampler in samplers],
            args.samples,
            args.directions,
            args.device,
            progress=not args.quiet,
            on_rows=on_rows,
            done=done,
            on_cell=on_cell,
        )


def run(args: argparse.Namespace) -> int:
    check_problem_options(args)
    mgdm_config = mgdm_config_from_args(args, "gmm")  # checked even when no MGDM runs
    samplers: list[tuple[str, Sampler]] = []
    for name in parse_sampler_list(args.samplers, domain="vector"):
        label = name
        if name == "mgdm":
            sampler = sampler_class(name)(mgdm_config)
            preset = preset_name(args)
            label = args.mgdm_label or ("mgdm" if preset is None else f"mgdm-{preset}")
        else:
            sampler = build_sampler(name, "gmm")
        if args.budget is not None:
            sampler = sampler.with_budget(args.budget)
        samplers.append((label, sampler))
    sys.stdout.write(summary_table(run_gmm_cells(args, samplers)) + "\n")
    return 0
