"""``mgdm bench ladder``: MGDM's error ladder on the exact-posterior Gaussian mixtures, and
``mgdm bench ladder-table`` to print it from saved rows (:mod:`mgdm.bench.ladder`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from contextlib import closing
from pathlib import Path

from mgdm.bench.gmm import GMMRow, read_json, run_benchmark, write_json
from mgdm.bench.gmm_db import (
    STORE,
    check_configs,
    insert_row,
    read_gmm_db,
    run_settings,
    stored_cells,
)
from mgdm.bench.ladder import RUNG_LABELS, ladder_table, rung_config, select_rungs
from mgdm.bench.seeds import parse_seeds
from mgdm.bench.store import config_json
from mgdm.commands.arguments import add_device_option, positive_int
from mgdm.files import check_output_file
from mgdm.samplers.mgdm import MGDM

DATABASE_SUFFIXES = (".sqlite", ".db")
"""``ladder-table`` reads a file with one of these suffixes as a database, any other as JSON."""


def add_bench_commands(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``ladder`` and ``ladder-table`` under ``mgdm bench``."""
    parser = bench_sub.add_parser(
        "ladder",
        help="MGDM's error ladder: each approximation replaced by its exact counterpart",
        description="Run MGDM's default preset on the exact-posterior Gaussian-mixture problems "
        "with each of its approximations (potential, x_ell draw, x_0 draw) replaced by the exact "
        "quantity, alone and together, and with more compute; print the sliced Wasserstein "
        "distance to the exact posterior and the share of the gap to the floor each rung closes.",
    )
    parser.add_argument("--dim", type=positive_int, nargs="+", default=[8, 80], help="dimensions")
    parser.add_argument(
        "--obs-dim", type=positive_int, nargs="+", default=[1, 2, 4], help="observation dimensions"
    )
    parser.add_argument("--seeds", default="0-4", help="problem seeds (default: %(default)s)")
    parser.add_argument(
        "--samples", type=int, default=500, help="samples per problem, >= 2 (default: %(default)s)"
    )
    parser.add_argument(
        "--directions", type=positive_int, default=1000, help="SW directions (default: %(default)s)"
    )
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
    parser.add_argument("--json", help="write the rows to this JSON file after each problem")
    parser.add_argument(
        "--db", help="SQLite database of finished cells: a rerun resumes and skips them"
    )
    add_device_option(parser)
    parser.set_defaults(func=run)
    table = bench_sub.add_parser(
        "ladder-table",
        help="print the ladder table of saved `mgdm bench ladder` rows",
        description="Print the Markdown ladder table from JSON files of `mgdm bench ladder "
        "--json` or databases of its --db.",
    )
    table.add_argument("files", nargs="+", help="JSON files or .sqlite databases")
    table.set_defaults(func=print_table)


def print_table(args: argparse.Namespace) -> int:
    rows: list[GMMRow] = []
    for path in args.files:
        is_database = Path(path).suffix.lower() in DATABASE_SUFFIXES
        rows.extend(read_gmm_db(path) if is_database else read_json(path))
    if not any(row.sampler == "default" for row in rows):
        raise ValueError("no 'default' rung in these files: the ladder is measured against it.")
    sys.stdout.write(ladder_table(rows) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    seeds = parse_seeds(args.seeds)
    if args.samples < 2:
        raise ValueError(f"--samples must be >= 2; got {args.samples}.")
    for d in args.dim:
        if d < 2 or d % 2:
            raise ValueError(f"--dim values must be even integers >= 2; got {d}.")
    rungs = select_rungs(args.rungs)
    if args.json:
        check_output_file(args.json, "--json", (".json",))
    settings = run_settings(args.samples, args.directions)
    if args.db:
        STORE.check(args.db, settings)
    samplers = [(rung.label, MGDM(rung_config(rung, args.particles))) for rung in rungs]
    configs = {label: config_json(sampler.config) for label, sampler in samplers}
    on_rows = (lambda rows: write_json(rows, args.json)) if args.json else None
    with contextlib.ExitStack() as stack:
        done, on_cell = {}, None
        if args.db:
            connection = stack.enter_context(closing(STORE.open(args.db, settings)))
            check_configs(connection, configs, Path(args.db))
            done = stored_cells(connection)

            def on_cell(row: GMMRow) -> None:
                insert_row(connection, row, configs[row.sampler], time.time())

        rows = run_benchmark(
            args.dim,
            args.obs_dim,
            seeds,
            samplers,
            args.samples,
            args.directions,
            args.device,
            progress=not args.quiet,
            on_rows=on_rows,
            done=done,
            on_cell=on_cell,
        )
    sys.stdout.write(ladder_table(rows) + "\n")
    return 0
