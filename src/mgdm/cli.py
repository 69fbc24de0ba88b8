"""The ``mgdm`` command line.

Each command lives in its own module exposing ``add_parser(subparsers)``; the parser sets
``func`` to a callable taking the parsed arguments and returning an exit status. Any
``ValueError`` or ``FileNotFoundError`` raised by the library becomes a one-line message and
exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import torch

COMMAND_MODULES: tuple[str, ...] = (
    "mgdm.audio.cli",
    "mgdm.bench.cli",
    "mgdm.bench.report_cli",
    "mgdm.demo",
    "mgdm.priors.evaluate_cli",
    "mgdm.restore_cli",
    "mgdm.tasks.cli",
    "mgdm.train.cli",
)
"""Modules that contribute sub-commands (a missing optional module is skipped)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mgdm",
        description="Posterior sampling for inverse problems with diffusion priors (MGDM and baselines).",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: %(default)s; the benchmark's small tensors run fastest on one "
        "thread, and several processes sharing cores slow each other down badly when each spins several)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"mgdm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        return 0
    except KeyboardInterrupt:
        print(f"mgdm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
