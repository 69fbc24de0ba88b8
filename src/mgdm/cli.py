"""The ``mgdm`` command line.

Each top-level command lives in its own module of :mod:`mgdm.commands` exposing
``add_parser(subparsers)``; the parser sets ``func`` to a callable taking the parsed arguments
and returning an exit status.

Errors reach the user as one line on stderr (:func:`run_command`):

* bad input, whether argparse or the library refuses it (``ValueError``, ``FileNotFoundError``,
  any other ``OSError`` such as a permission refused), and running out of memory (with what to
  reduce): exit status 2;
* anything else is a defect of mgdm: one line naming the exception, exit status 1;
* ``--debug`` lets every exception through with its traceback.

The common options (:func:`add_common_options`: ``--threads``, ``--debug``, ``--quiet``) are
accepted before the command and after it, at every level (``mgdm restore x.png --task sr4
--threads 2``); given twice, the later wins. ``--device`` belongs to the commands that run on
one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import torch

import mgdm
from mgdm.checkpoints import one_line
from mgdm.commands import (
    arguments,
    audio_data,
    bench,
    convert_checkpoint,
    demo,
    evaluate,
    report,
    restore,
    separate,
    serve,
    tasks,
    train,
)
from mgdm.devices import use_precision

COMMANDS = (
    audio_data,
    bench,
    convert_checkpoint,
    demo,
    evaluate,
    report,
    restore,
    separate,
    serve,
    tasks,
    train,
)
"""The modules of the top-level commands, each with ``add_parser(subparsers)``, in the order
``mgdm --help`` lists them. Imported explicitly: a broken command module is an import error,
not a silently missing command."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


COMMON_DEFAULTS = {"threads": 1, "debug": False, "quiet": False}
"""The values of the common options when given nowhere."""


def add_common_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """Add ``--threads``, ``--debug`` and ``--quiet`` to ``parser``: with their defaults on the
    top-level parser (``top``), with ``argparse.SUPPRESS`` on a sub-command, so that a sub-command
    sets them only when they are given after it (argparse copies a sub-parser's defaults over the
    values parsed before it)."""

    def default(name: str) -> object:
        return COMMON_DEFAULTS[name] if top else argparse.SUPPRESS

    group = parser.add_argument_group("common options (before or after the command)")
    group.add_argument(
        "--threads",
        type=arguments.thread_count,
        default=default("threads"),
        help=f"torch CPU threads, 1 to 4x this machine's cores (default: "
        f"{COMMON_DEFAULTS['threads']}: the samplers' small tensors run fastest on one thread, and "
        "processes sharing cores slow each other down badly when each spins several)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default("debug"),
        help="on an error, show the full traceback instead of a one-line message",
    )
    group.add_argument(
        "--quiet", action="store_true", default=default("quiet"), help="no progress bars"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mgdm`` parser: every command of :data:`COMMANDS`, each (sub-)command with the common
    options and its full name as ``command_prog``."""
    parser = _Parser(
        prog="mgdm",
        description="Posterior sampling for inverse problems with diffusion priors (MGDM and "
        "baselines).",
    )
    parser.add_argument("--version", action="version", version=f"mgdm {mgdm.__version__}")
    add_common_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.add_parser(subparsers)
    _finish_commands(parser)
    return parser


def _finish_commands(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command the common options (:func:`add_common_options`), and every
    (sub-)command the default ``command_prog`` = its full name (``mgdm train audio-prior``),
    which prefixes its error messages; the innermost command's default wins."""
    parser.set_defaults(command_prog=parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_common_options(child, top=False)
                _finish_commands(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), set torch's threads and run the command;
    returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    torch.set_num_threads(args.threads)
    return run_command(args)


MEMORY_MESSAGES = ("can't allocate memory", "out of memory", "not enough memory")
"""Markers of an allocator's failure in a ``RuntimeError`` (CPU and CUDA allocators)."""


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.func(args)`` and turn any exception into one line on stderr and an exit
    status (module docstring); with ``args.debug``, exceptions propagate with their traceback."""
    prefix = args.command_prog
    if getattr(args, "debug", False):
        with use_precision(getattr(args, "precision", None)):
            return int(args.func(args) or 0)
    try:
        with use_precision(getattr(args, "precision", None)):  # --precision (add_device_option)
            return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        return 0
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:  # OSError includes FileNotFoundError, PermissionError
        print(f"{prefix}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as error:
        if not isinstance(error, MemoryError) and not any(
            marker in str(error) for marker in MEMORY_MESSAGES
        ):
            return _internal_error(prefix, error)
        print(
            f"{prefix}: error: out of memory ({one_line(error)[:160]}); reduce the size of the "
            "run (fewer samples, a smaller batch or dimension) or use a device with more memory.",
            file=sys.stderr,
        )
        return 2
    except Exception as error:  # noqa: BLE001 - the boundary: one line instead of a traceback
        return _internal_error(prefix, error)


def _internal_error(prefix: str, error: BaseException) -> int:
    print(
        f"{prefix}: internal error: {type(error).__name__}: {one_line(error)[:300]} "
        "(rerun with --debug for the traceback, and please report it)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
