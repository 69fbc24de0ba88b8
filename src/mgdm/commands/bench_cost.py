"""``mgdm bench cost``: seconds and peak memory per 256 x 256 posterior sample (MGDM's reference
and default presets, DPS) on a random-weights ADM with the FFHQ-256 options, timed over a few
outer steps and extrapolated to the full run (:mod:`mgdm.bench.cost`; docs/cost.md)."""

from __future__ import annotations

import argparse
import json
import sys

from mgdm.bench.cost import METHODS, format_table, measure_cost
from mgdm.commands.arguments import add_device_option, non_negative_int, positive_int, show_progress
from mgdm.files import check_output_file, write_atomically
from mgdm.tasks.registry import TASKS


def method_list(text: str) -> list[str]:
    """``all`` or a comma list of :data:`mgdm.bench.cost.METHODS`."""
    if text.strip() == "all":
        return list(METHODS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in METHODS:
            raise argparse.ArgumentTypeError(
                f"unknown method {name!r}; accepted: all, {', '.join(METHODS)}"
            )
    if not names:
        raise argparse.ArgumentTypeError(f"no method named; accepted: all, {', '.join(METHODS)}")
    return names


def add_bench_commands(bench_sub: argparse._SubParsersAction) -> None:
    """Add ``cost`` under ``mgdm bench``."""
    parser = bench_sub.add_parser(
        "cost",
        help="seconds and memory per 256 x 256 sample (MGDM presets, DPS; random-weights ADM)",
        description="Time a few outer steps of MGDM (reference and default presets) and DPS on a "
        "random-weights ADM with the FFHQ-256 options and extrapolate seconds per sample to the "
        "full run; report peak memory and the machine (docs/cost.md).",
    )
    parser.add_argument(
        "--methods",
        type=method_list,
        default=list(METHODS),
        help=f"all or a comma list of {', '.join(METHODS)} (default: all)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        nargs="+",
        default=[1, 4],
        help="batch sizes (default: 1 4)",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=2, help="outer steps timed (default: %(default)s)"
    )
    parser.add_argument(
        "--gradient-steps",
        type=positive_int,
        default=None,
        help="MGDM's Adam steps per timed outer step (default: the preset's; fewer keeps a CPU "
        "run short, the extrapolation uses the full run's counts)",
    )
    parser.add_argument(
        "--chain-points",
        type=positive_int,
        default=None,
        help="at most this many points of MGDM's denoising chain per timed outer step "
        "(default: the preset's)",
    )
    parser.add_argument(
        "--stand-in-size",
        type=positive_int,
        default=None,
        help="run the network-free full run (call counts, the sampler's own work) on SIZE x SIZE "
        "images, scaled by the pixel ratio (default: the network's 256; 64 saves a CPU ~15 min)",
    )
    parser.add_argument(
        "--task",
        choices=tuple(TASKS),
        default="sr4",
        help="the image task of the observation (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="weights, image and noise seed"
    )
    parser.add_argument("--json", default=None, help="also write the report to this .json file")
    add_device_option(parser)
    parser.set_defaults(func=run_cost)


def run_cost(args: argparse.Namespace) -> int:
    out = check_output_file(args.json, "--json", (".json",)) if args.json else None
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if show_progress(args) else None
    report = measure_cost(
        args.methods,
        args.batch,
        args.steps,
        task=args.task,
        device=args.device,
        gradient_steps=args.gradient_steps,
        chain_points=args.chain_points,
        stand_in_size=args.stand_in_size,
        seed=args.seed,
        log=log,
    )
    print(format_table(report))
    if out is not None:
        text = json.dumps(report.to_json(), indent=2) + "\n"
        write_atomically(out, lambda path: path.write_text(text))
        print(f"wrote {out}")
    return 0
