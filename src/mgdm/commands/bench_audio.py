"""``mgdm bench audio`` and ``mgdm bench audio-table``: the source-separation benchmark.

``add_bench_commands(bench_sub)`` adds both under ``mgdm bench``; the library is imported when a
command runs. Errors in the input are ``ValueError``s (one line, exit status 2 in
:func:`mgdm.cli.main`).
"""

from __future__ import annotations

import argparse
import sys

from mgdm.commands.arguments import add_device_option, finite_float, positive_int
from mgdm.commands.bench_images import parse_int_list
from mgdm.samplers.mgdm import PRACTICAL_FITS, PRESETS
from mgdm.samplers.registry import sampler_names

AUDIO_HELP = """\
Separate held-out mixtures with every sampler and store SI-SDRi, network calls, seconds and peak
memory per (sampler, mixture, seed, budget) in an SQLite database, one transaction per row; a
rerun skips finished rows. The observation is the noise-free mix y = sum of the stems; the
samplers use a Gaussian likelihood of std 1e-4.

Samplers: MGDM's audio preset once per R in --mgdm-sweeps (mgdm-R1, ...), the baselines with
their audio settings, msdm (the Dirac separator) and, with --independent-prior, mgdm-independent
(MGDM with the largest R on four single-stem priors). Summarise with `mgdm bench audio-table`.
"""


def add_bench_commands(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``audio`` and ``audio-table`` under ``mgdm bench``."""
    parser = bench_sub.add_parser(
        "audio",
        help="source-separation benchmark: SI-SDRi of every sampler, one SQLite row per cell",
        description=AUDIO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prior", required=True, help="four-stem prior folder")
    parser.add_argument(
        "--independent-prior",
        help="folder with bass/ drums/ guitar/ piano/ single-stem priors (mgdm-independent)",
    )
    parser.add_argument(
        "--data", required=True, help="test stem file of `mgdm audio-data` (TEST.safetensors)"
    )
    parser.add_argument(
        "--mixtures",
        type=int,
        default=20,
        metavar="N",
        help="the first N mixtures with two or more active stems (default: %(default)s)",
    )
    parser.add_argument(
        "--samplers",
        default="all",
        help=f"'all' or a comma list of {', '.join(sampler_names())} (default: all)",
    )
    parser.add_argument(
        "--mgdm-sweeps",
        type=parse_int_list,
        default=[1, 2, 4, 6],
        metavar="LIST",
        help="Gibbs sweep counts R, one MGDM variant mgdm-R{R} each (default: 1,2,4,6)",
    )
    parser.add_argument(
        "--mgdm-likelihood",
        choices=("plain", "covariance-corrected"),
        default="plain",
        help="MGDM's potential: plain g(D_ell(x)), or covariance-corrected N(y; A D_ell(x), "
        "sigma_y^2 I + (1 - abar_ell) A A^T), labelled mgdm-cc-R{R} (default: %(default)s)",
    )
    parser.add_argument(
        "--mgdm-fit",
        choices=PRACTICAL_FITS,
        default="variational",
        help="MGDM's draw of x_ell: the Gaussian variational fit (Adam), or 'rto' "
        "(randomize-then-optimise with Gauss-Newton line steps), labelled mgdm-rto-R{R} "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--mgdm-preset",
        choices=sorted(PRESETS),
        default="audio",
        help="the MGDM preset its variants start from; another than audio is named in the "
        "labels, e.g. mgdm-default-R1 (default: %(default)s)",
    )
    parser.add_argument("--seeds", default="0", help="run seeds, e.g. 0 or 0-3 (default: 0)")
    parser.add_argument(
        "--db",
        required=True,
        help="the SQLite database: a new file (created when the run starts) or one this command "
        "wrote with the same prior, data and --batch",
    )
    parser.add_argument(
        "--budget",
        type=float,
        metavar="NFE",
        help="run every sampler at about NFE network calls per window (forward + VJP)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=4,
        help="mixtures per sampler call; a rerun into the same --db must keep it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        metavar="LABELS",
        help="run only these variants, a comma list of labels such as mgdm-independent (to "
        "share one run's variants between processes)",
    )
    add_device_option(parser)
    parser.set_defaults(func=run)

    table = bench_sub.add_parser(
        "audio-table",
        help="the SI-SDRi table and compute curve of an audio-benchmark database",
        description="Print the Markdown table of `mgdm bench audio` (samplers x stems, mean ± "
        "95% CI over mixtures, best in bold; network calls, seconds and peak memory per "
        "mixture); with --out, also write table.md and compute_curve.png (mean SI-SDRi against "
        "network calls: the MGDM variants as a line over R, the others as points).",
    )
    table.add_argument("--db", required=True, help="the database of `mgdm bench audio`")
    table.add_argument("--out", help="folder for table.md and compute_curve.png")
    table.add_argument(
        "--budget",
        type=finite_float,
        help="which budget (0: the samplers' own settings); needed when the database holds several",
    )
    table.set_defaults(func=run_table)


def run(args: argparse.Namespace) -> int:
    from mgdm.bench.audio import run_audio_benchmark

    summary = run_audio_benchmark(
        args.prior,
        args.data,
        args.db,
        independent_prior=args.independent_prior,
        mixtures=args.mixtures,
        samplers=args.samplers,
        mgdm_sweeps=args.mgdm_sweeps,
        mgdm_likelihood=args.mgdm_likelihood,
        mgdm_fit=args.mgdm_fit,
        mgdm_preset=args.mgdm_preset,
        seeds=args.seeds,
        budget=args.budget,
        batch_size=args.batch,
        only=args.only.split(",") if args.only else None,
        device=args.device,
        progress=not args.quiet,
    )
    for note in summary.notes:
        sys.stdout.write(f"note: {note}\n")
    sys.stdout.write(
        f"{summary.done} separations, {summary.diverged} diverged, {summary.skipped} skipped, "
        f"{summary.already} already in {args.db}; `mgdm bench audio-table --db {args.db}` "
        "summarises them (with the reasons of the skipped ones).\n"
    )
    return 0


def run_table(args: argparse.Namespace) -> int:
    from mgdm.bench.audio_report import write_audio_table

    text, written = write_audio_table(args.db, args.out, args.budget)
    sys.stdout.write(text)
    for path in written:
        sys.stdout.write(f"wrote {path}\n")
    return 0
