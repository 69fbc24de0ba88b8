"""Argument types for the ``mgdm`` commands.

Each is an ``argparse`` ``type=`` converter: a bad value becomes argparse's one-line error
(``mgdm CMD: error: argument --x: …``, exit status 2) at parse time, before anything is loaded.
"""

from __future__ import annotations

import argparse
import math
import os

import torch

from mgdm.devices import ACCEPTED_DEVICES, DEFAULT_PRECISION, PRECISIONS, resolve_device


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}; got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0; got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A finite number (no ``nan``, ``inf``)."""
    return float(_number(text, float))


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = float(_number(text, float))
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def thread_count(text: str) -> int:
    """A whole number of CPU threads from 1 to 4x the machine's cores (torch crashes when asked
    for a hundred thousand)."""
    value = positive_int(text)
    most = 4 * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(
            f"expected at most {most} threads (4x this machine's cores); got {text!r}"
        )
    return value


def device(text: str) -> torch.device:
    """A device this machine has (:func:`mgdm.devices.resolve_device`)."""
    try:
        return resolve_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).rstrip(".")) from None


def show_progress(args: argparse.Namespace) -> bool:
    """Whether a command shows progress bars: not under ``--quiet`` (one of the common options
    that :mod:`mgdm.cli` gives every command; absent when a parser is built without them)."""
    return not getattr(args, "quiet", False)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device`` (default ``auto``: CUDA where present, else the CPU), checked at parse time
    by :func:`device`, and ``--precision`` of the network calls (default ``fp32``; the ``mgdm``
    command runs the command under :func:`mgdm.devices.use_precision`, and each sampler checks
    it against its device before any work)."""
    parser.add_argument(
        "--device",
        type=device,
        default="auto",
        help=f"{ACCEPTED_DEVICES} (default: auto = cuda where present, else cpu)",
    )
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default=DEFAULT_PRECISION,
        help="precision of the network calls: bf16 and fp16 run them under autocast, the "
        "sampler's state and Gaussian algebra stay float32 (default: %(default)s; "
        "docs/cost.md)",
    )
