"""``mgdm bench``: the benchmarks' sub-commands (``gmm``, ``gmm-table``, ``ladder``, ``ladder-table``, ``images``, ``audio``, ``audio-table``, ``cost``)."""

from __future__ import annotations

import argparse

from mgdm.commands import bench_audio, bench_cost, bench_gmm, bench_images, bench_ladder


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="run a benchmark")
    bench_sub = bench.add_subparsers(
        dest="benchmark", metavar="BENCHMARK", parser_class=type(bench)
    )
    bench_gmm.add_bench_commands(bench_sub)
    bench_ladder.add_bench_commands(bench_sub)
    bench_images.add_bench_commands(bench_sub)
    bench_audio.add_bench_commands(bench_sub)
    bench_cost.add_bench_commands(bench_sub)
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])
