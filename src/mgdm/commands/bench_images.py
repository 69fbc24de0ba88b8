"""``mgdm bench images``: the image benchmark (samplers x tasks x images x seeds) into SQLite."""

from __future__ import annotations

import argparse
import sys

from mgdm.bench.images import parse_tasks, run_image_benchmark, sampler_variants
from mgdm.bench.seeds import parse_seeds
from mgdm.commands.arguments import add_device_option, positive_float, positive_int
from mgdm.commands.mgdm_options import parse_assignments
from mgdm.priors.catalog import SHIPPED_PRIORS, prior_domain
from mgdm.samplers.mgdm import PRACTICAL_FITS, PRESETS, MGDMConfig
from mgdm.samplers.registry import sampler_names
from mgdm.tasks.registry import TASKS


def parse_int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of integers; got {text!r}"
        ) from None


def add_bench_commands(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``images`` under ``mgdm bench``."""
    parser = bench_sub.add_parser(
        "images",
        help="image benchmark: every sampler on every task, one SQLite row per cell",
        description="Sample the posterior of every (task, sampler, image, seed) cell and store "
        "its metrics, cost and first sample in an SQLite database. A rerun skips finished cells; "
        "under `torchrun --nproc-per-node K` the batches are shared over K processes. "
        "Summarise with `mgdm report --db DB`.",
    )
    parser.add_argument(
        "--db",
        required=True,
        help="the SQLite database: a new file (created when the run starts) or one this command "
        "wrote with the same --batch",
    )
    parser.add_argument(
        "--prior",
        default="fashion-mnist",
        help=f"a shipped prior ({', '.join(SHIPPED_PRIORS)}) or a path (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        default="all",
        help=f"'all' (the paper's ten) or a comma list of {', '.join(TASKS)} (default: all)",
    )
    parser.add_argument(
        "--samplers",
        default="all",
        help=f"'all' or a comma list of {', '.join(sampler_names())} (default: all)",
    )
    parser.add_argument(
        "--images",
        type=int,
        metavar="N",
        default=100,
        help="the first N images of the Fashion-MNIST test split, at most 10,000 "
        "(default: %(default)s)",
    )
    parser.add_argument("--seeds", default="0", help="run seeds, e.g. 0 or 0-3 (default: 0)")
    parser.add_argument(
        "--sigma-y",
        type=positive_float,
        default=0.05,
        help="std of the Gaussian noise on A(x), in the [-1, 1] units of the images "
        "(default: %(default)s, i.e. 0.025 on a [0, 1] scale)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        metavar="NFE",
        help="run every sampler at about NFE network calls per sample (forward + VJP)",
    )
    parser.add_argument(
        "--mgdm-preset",
        default="default",
        choices=sorted(PRESETS),
        help="MGDM preset (default: %(default)s)",
    )
    parser.add_argument(
        "--mgdm-sweeps",
        "--gibbs-sweeps",
        type=parse_int_list,
        default=[],
        metavar="LIST",
        help="comma list of Gibbs sweep counts R: one more MGDM variant per R, labelled mgdm-R{R} "
        "(the compute curve: 1,2,4,6)",
    )
    parser.add_argument(
        "--mgdm-likelihood",
        choices=("plain", "covariance-corrected"),
        default="plain",
        help="MGDM's potential: plain g(D_ell(x)), or covariance-corrected N(y; A D_ell(x), "
        "sigma_y^2 I + (1 - abar_ell) A A^T), labelled mgdm-cc (tasks with an SVD only; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--mgdm-fit",
        choices=PRACTICAL_FITS,
        default="variational",
        help="MGDM's draw of x_ell: the Gaussian variational fit (Adam), or 'rto' "
        "(randomize-then-optimise with Gauss-Newton line steps), labelled mgdm-rto "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--mgdm-set",
        action="append",
        metavar="FIELD=VALUE",
        help="override one field of the MGDM configuration in every MGDM variant (repeatable), "
        "e.g. eta=0.5, index_rule=mix-det, last_step_correction=yes; name the variant with "
        "--mgdm-label",
    )
    parser.add_argument(
        "--mgdm-label",
        help="base of the MGDM labels (default: mgdm, or mgdm-PRESET for another preset than "
        "default; suffixes -cc, -rto, -R{R} follow)",
    )
    parser.add_argument(
        "--samples-per-cell",
        type=positive_int,
        default=1,
        help="posterior samples per (image, seed); 32 or so for the exact-prior metrics "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=8,
        help="images per sampler call; a rerun into the same --db must keep it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--classifier-weights",
        default="shipped",
        help="weights of the feature_dist classifier: 'shipped' (NULL while absent), a path, "
        "or 'none' (default: shipped)",
    )
    parser.add_argument(
        "--lpips-weights",
        help="LPIPS weights (one file: AlexNet trunk features.* and heads lin0-4.*); "
        "no LPIPS without it",
    )
    add_device_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tasks = parse_tasks(args.tasks)
    domain = prior_domain(args.prior)
    mgdm_overrides = parse_assignments(args.mgdm_set)
    MGDMConfig.settings(domain, preset=args.mgdm_preset, **mgdm_overrides)  # ranges, up front
    variants = sampler_variants(
        args.samplers,
        args.mgdm_preset,
        args.mgdm_sweeps,
        domain,
        args.mgdm_likelihood,
        args.mgdm_fit,
        args.mgdm_label,
        mgdm_overrides,
    )
    seeds = parse_seeds(args.seeds)
    classifier = None if args.classifier_weights == "none" else args.classifier_weights
    summary = run_image_benchmark(
        args.prior,
        tasks,
        variants,
        args.images,
        seeds,
        args.sigma_y,
        args.db,
        budget=args.budget,
        samples_per_cell=args.samples_per_cell,
        batch_size=args.batch,
        classifier=classifier,
        lpips_model=args.lpips_weights,
        device=args.device,
        progress=not args.quiet,
    )
    rank = f"rank {summary.rank}: " if summary.world_size > 1 else ""
    sys.stdout.write(
        f"{rank}{summary.done} cells sampled, {summary.skipped} skipped (reasons in the database), "
        f"{summary.already} already in {summary.db_path}; `mgdm report --db {summary.db_path}` "
        "summarises them.\n"
    )
    return 0
