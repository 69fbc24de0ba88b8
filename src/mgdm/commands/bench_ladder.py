"""Two studies of MGDM on the exact-posterior Gaussian mixtures, each with a table command:

* ``mgdm bench ladder`` / ``ladder-table``: the error ladder (:mod:`mgdm.bench.ladder`);
* ``mgdm bench nfe-curve`` / ``nfe-curve-table``: quality against network calls per sample, MGDM
  beside the baselines at equal budgets (:mod:`mgdm.bench.nfe_curve`).
"""

from __future__ import annotations

import argparse
import sys

from mgdm.bench.ladder import RUNG_LABELS, ladder_table, rung_config, select_rungs
from mgdm.bench.nfe_curve import curve_label, curve_table
from mgdm.commands.arguments import positive_int
from mgdm.commands.bench_gmm import (
    add_problem_options,
    check_problem_options,
    read_rows,
    run_gmm_cells,
)
from mgdm.samplers.base import Sampler
from mgdm.samplers.mgdm import MGDM, PRESETS
from mgdm.samplers.registry import build_sampler, parse_sampler_list


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
        description="Run MGDM's variational preset (the default until 2026-12-05) on the "
        "exact-posterior Gaussian-mixture problems with each of its approximations (potential, "
        "x_ell draw, x_0 draw) replaced by the exact quantity, alone and together, and with more "
        "compute; print the sliced Wasserstein distance to the exact posterior and the share of "
        "the gap to the floor each rung closes.",
    )
    add_problem_options(parser, dims=[8, 80], seeds="0-4", samples=500)
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
    add_problem_options(curve, dims=[80], seeds="0-9", samples=500)
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
    curve.add_argument(
        "--mgdm-preset",
        choices=sorted(PRESETS),
        help="MGDM's preset; its rows keep the label mgdm@N (default: the gmm domain's, gmm; "
        "docs/benchmarks.md §1.7's curves name theirs: variational, the default until "
        "2026-12-05, and default)",
    )
    curve.set_defaults(func=run_curve)
    _add_table_command(bench_sub, "nfe-curve", "compute-curve", print_curve_table)


def print_table(args: argparse.Namespace) -> int:
    rows = read_rows(args.files)
    if not any(row.sampler == "default" for row in rows):
        raise ValueError("no 'default' rung in these files: the ladder is measured against it.")
    sys.stdout.write(ladder_table(rows) + "\n")
    return 0


def print_curve_table(args: argparse.Namespace) -> int:
    rows = read_rows(args.files)
    if not rows:
        raise ValueError("no rows to show (the files are empty).")
    sys.stdout.write(curve_table(rows) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    check_problem_options(args)
    rungs = select_rungs(args.rungs)
    samplers = [(rung.label, MGDM(rung_config(rung, args.particles))) for rung in rungs]
    sys.stdout.write(ladder_table(run_gmm_cells(args, samplers)) + "\n")
    return 0


def run_curve(args: argparse.Namespace) -> int:
    check_problem_options(args)
    names = parse_sampler_list(args.samplers, domain="vector")
    samplers: list[tuple[str, Sampler]] = []
    for budget in sorted(set(args.budgets)):
        for name in names:
            preset = args.mgdm_preset if name == "mgdm" else None
            sampler = build_sampler(name, "gmm", preset=preset).with_budget(budget)
            samplers.append((curve_label(name, budget), sampler))
    sys.stdout.write(curve_table(run_gmm_cells(args, samplers)) + "\n")
    return 0
