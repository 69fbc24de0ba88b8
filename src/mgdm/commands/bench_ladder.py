"""Two studies of MGDM on the exact-posterior Gaussian mixtures, each with a table command:

* ``mgdm bench ladder`` / ``ladder-table``: the error ladder (:mod:`mgdm.bench.ladder`);
* ``mgdm bench nfe-curve`` / ``nfe-curve-table``: quality against network calls per sample, MGDM
  beside the baselines at equal budgets (:mod:`mgdm.bench.nfe_curve`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from contextlib import closing
from pathlib import Path

from mgdm.bench.gmm import GMMRow, fitted_to_problem, read_json, run_benchmark, write_json
from mgdm.bench.gmm_db import (
    STORE,
    check_configs,
    insert_row,
    read_gmm_db,
    run_settings,
    stored_cells,
)
from mgdm.bench.ladder import RUNG_LABELS, ladder_table, rung_config, select_rungs
from mgdm.bench.nfe_curve import curve_label, curve_table
from mgdm.bench.seeds import parse_seeds
from mgdm.bench.store import config_json
from mgdm.commands.arguments import add_device_option, positive_int
from mgdm.files import check_output_file
from mgdm.samplers.base import Sampler
from mgdm.samplers.mgdm import MGDM
from mgdm.samplers.registry import build_sampler, parse_sampler_list

DATABASE_SUFFIXES = (".sqlite", ".db")
"""``ladder-table`` reads a file with one of these suffixes as a database, any other as JSON."""


def _add_problem_options(parser: argparse.ArgumentParser, dims: list[int], seeds: str) -> None:
    """The problems, sample sizes and outputs of a study (as ``mgdm bench gmm``)."""
    parser.add_argument("--dim", type=positive_int, nargs="+", default=dims, help="dimensions")
    parser.add_argument(
        "--obs-dim", type=positive_int, nargs="+", default=[1, 2, 4], help="observation dimensions"
    )
    parser.add_argument("--seeds", default=seeds, help="problem seeds (default: %(default)s)")
    parser.add_argument(
        "--samples", type=int, default=500, help="samples per problem, >= 2 (default: %(default)s)"
    )
    parser.add_argument(
        "--directions", type=positive_int, default=1000, help="SW directions (default: %(default)s)"
    )
    parser.add_argument("--json", help="write the rows to this JSON file after each problem")
    parser.add_argument(
        "--db", help="SQLite database of finished cells: a rerun resumes and skips them"
    )
    add_device_option(parser)


def _add_table_command(bench_sub: argparse._SubParsersAction, name: str, study: str, func) -> None:
    table = bench_sub.add_parser(
        f"{name}-table",
        help=f"print the table of saved `mgdm bench {name}` rows",
        description=f"Print the Markdown {study} table from JSON files of `mgdm bench {name} "
        "--json` or databases of its --db.",
    )
    table.add_argument("files", nargs="+", help="JSON files or .sqlite databases")
    table.set_defaults(func=func)


def add_bench_commands(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``ladder``, ``ladder-table``, ``nfe-curve`` and ``nfe-curve-table`` under ``mgdm bench``."""
    parser = bench_sub.add_parser(
        "ladder",
        help="MGDM's error ladder: each approximation replaced by its exact counterpart",
        description="Run MGDM's default preset on the exact-posterior Gaussian-mixture problems "
        "with each of its approximations (potential, x_ell draw, x_0 draw) replaced by the exact "
        "quantity, alone and together, and with more compute; print the sliced Wasserstein "
        "distance to the exact posterior and the share of the gap to the floor each rung closes.",
    )
    _add_problem_options(parser, [8, 80], "0-4")
    parser.add_argument(
        "--rungs",
        help=f"comma list of rungs (default: all): {'; '.join(RUNG_LABELS)}",
    )
    parser.add_argument(
        "--particles",
        type=positive_int,
        default=64,
        help="proposals per chain of the exact x_ell draw (default: %(default)s)",
    )
    parser.set_defaults(func=run)
    _add_table_command(bench_sub, "ladder", "ladder", print_table)
    curve = bench_sub.add_parser(
        "nfe-curve",
        help="quality against network calls: samplers rescaled to several budgets",
        description="Run each sampler rescaled to every budget (network calls per sample) on "
        "the exact-posterior Gaussian-mixture problems and print the sliced Wasserstein distance "
        "to the exact posterior, one line per budget.",
    )
    _add_problem_options(curve, [80], "0-9")
    curve.add_argument(
        "--budgets",
        type=positive_int,
        nargs="+",
        default=[200, 500, 1000, 2000],
        help="network calls per sample (default: %(default)s)",
    )
    curve.add_argument(
        "--samplers", default="mgdm,dps", help="comma list of samplers (default: %(default)s)"
    )
    curve.set_defaults(func=run_curve)
    _add_table_command(bench_sub, "nfe-curve", "compute-curve", print_curve_table)


def _read_rows(files: list[str]) -> list[GMMRow]:
    rows: list[GMMRow] = []
    for path in files:
        is_database = Path(path).suffix.lower() in DATABASE_SUFFIXES
        rows.extend(read_gmm_db(path) if is_database else read_json(path))
    return rows


def print_table(args: argparse.Namespace) -> int:
    rows = _read_rows(args.files)
    if not any(row.sampler == "default" for row in rows):
        raise ValueError("no 'default' rung in these files: the ladder is measured against it.")
    sys.stdout.write(ladder_table(rows) + "\n")
    return 0


def print_curve_table(args: argparse.Namespace) -> int:
    rows = _read_rows(args.files)
    if not rows:
        raise ValueError("no rows to show (the files are empty).")
    sys.stdout.write(curve_table(rows) + "\n")
    return 0


def _check_problems(args: argparse.Namespace) -> None:
    if args.samples < 2:
        raise ValueError(f"--samples must be >= 2; got {args.samples}.")
    for d in args.dim:
        if d < 2 or d % 2:
            raise ValueError(f"--dim values must be even integers >= 2; got {d}.")
    if args.json:
        check_output_file(args.json, "--json", (".json",))


def _run_cells(args: argparse.Namespace, samplers: list[tuple[str, Sampler]]) -> list[GMMRow]:
    """Run ``samplers`` on the problems of ``args``, resuming from and writing to ``--db``
    and ``--json`` as ``mgdm bench gmm`` does."""
    seeds = parse_seeds(args.seeds)
    settings = run_settings(args.samples, args.directions)
    if args.db:
        STORE.check(args.db, settings)
    configs = {label: config_json(sampler.config) for label, sampler in samplers}
    on_rows = (lambda rows: write_json(rows, args.json)) if args.json else None
    with contextlib.ExitStack() as stack:
        done, on_cell = {}, None
        if args.db:
            connection = stack.enter_context(closing(STORE.open(args.db, settings)))
            objects = {label: sampler.config for label, sampler in samplers}
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
    _check_problems(args)
    rungs = select_rungs(args.rungs)
    samplers = [(rung.label, MGDM(rung_config(rung, args.particles))) for rung in rungs]
    sys.stdout.write(ladder_table(_run_cells(args, samplers)) + "\n")
    return 0


def run_curve(args: argparse.Namespace) -> int:
    _check_problems(args)
    names = parse_sampler_list(args.samplers, domain="vector")
    samplers: list[tuple[str, Sampler]] = []
    for budget in sorted(set(args.budgets)):
        for name in names:
            sampler = build_sampler(name, "gmm").with_budget(budget)
            samplers.append((curve_label(name, budget), sampler))
    sys.stdout.write(curve_table(_run_cells(args, samplers)) + "\n")
    return 0
