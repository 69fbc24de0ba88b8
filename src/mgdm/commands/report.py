"""``mgdm report``: the tables, compute curve and sample grids of an image-benchmark database."""

from __future__ import annotations

import argparse
import sys

from mgdm.bench.images_db import read_cells
from mgdm.bench.report import HIGHER_IS_BETTER, paired_table, select_setting, write_report
from mgdm.commands.arguments import finite_float, positive_float, positive_int


def _budget(text: str) -> float:
    """``default`` (the samplers' own configurations, stored as 0) or a number of calls > 0."""
    if text == "default":
        return 0.0
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'default' or a number of network calls > 0; got {text!r}"
        ) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="tables and figures of an image-benchmark database (`mgdm bench images`)",
        description="Print the quality table (tasks x samplers, mean ± 95% CI, best in bold) and "
        "the cost table of one setting of the database; with --out, also write table.md, "
        "compute_curve.png and one grid_TASK.png of samples per task.",
    )
    parser.add_argument("--db", required=True, help="the database of `mgdm bench images`")
    parser.add_argument("--out", help="folder for table.md and the PNG figures")
    parser.add_argument(
        "--paired-with",
        metavar="DB",
        help="print instead the paired differences --db minus DB (same tasks, samplers, images "
        "and seeds; DB must hold one setting): e.g. one budget against another",
    )
    parser.add_argument(
        "--pair",
        metavar="A/B",
        help="with --paired-with: sampler A of --db against sampler B of DB (e.g. a variant "
        "against the default; DB may be --db itself)",
    )
    parser.add_argument(
        "--metric",
        default="psnr",
        choices=list(HIGHER_IS_BETTER),
        help="metric of the quality table and the compute curve (default: %(default)s)",
    )
    parser.add_argument(
        "--grid-images", type=positive_int, default=6, help="rows of the sample grids (default: 6)"
    )
    group = parser.add_argument_group("setting (needed when the database holds several)")
    group.add_argument("--prior", help="prior name")
    group.add_argument("--image-set", help="image set, e.g. fashion-mnist-test")
    group.add_argument("--sigma-y", type=finite_float, help="noise std of the observations")
    group.add_argument("--budget", type=_budget, help="'default' or the budget in network calls")
    group.add_argument("--samples-per-cell", type=positive_int, help="samples per (image, seed)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    filters = {
        "prior": args.prior,
        "image_set": args.image_set,
        "sigma_y": args.sigma_y,
        "budget": args.budget,
        "samples_per_cell": args.samples_per_cell,
    }
    pair = None
    if args.pair is not None:
        if args.paired_with is None:
            raise ValueError("--pair A/B needs --paired-with DB (DB may be --db itself).")
        first_label, slash, second_label = args.pair.partition("/")
        if not slash or not first_label.strip() or not second_label.strip():
            raise ValueError(f"--pair takes two sampler labels as A/B; got {args.pair!r}.")
        pair = (first_label.strip(), second_label.strip())
    if args.paired_with is not None:
        if args.out is not None:
            raise ValueError("--paired-with prints a table; it writes no --out folder.")
        first = select_setting(read_cells(args.db), **filters)
        second = select_setting(read_cells(args.paired_with))
        sys.stdout.write(paired_table(first, second, args.metric, pair))
        return 0
    text, written = write_report(args.db, args.metric, args.out, args.grid_images, **filters)
    sys.stdout.write(text)
    for path in written:
        sys.stdout.write(f"wrote {path}\n")
    return 0
