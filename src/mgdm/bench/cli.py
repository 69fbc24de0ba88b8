"""``mgdm bench``: the benchmarks' sub-commands (``gmm``, ``gmm-table``, ``images``, ``audio``, ``audio-table``)."""

from __future__ import annotations

import argparse

from mgdm.audio import bench_cli as audio_bench_cli
from mgdm.bench import gmm_cli, images_cli


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="run a benchmark")
    bench_sub = bench.add_subparsers(
        dest="benchmark", metavar="BENCHMARK", parser_class=type(bench)
    )
    gmm_cli.add_bench_commands(bench_sub)
    images_cli.add_bench_commands(bench_sub)
    audio_bench_cli.add_bench_commands(bench_sub)
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])
