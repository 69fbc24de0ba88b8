"""Torch devices by name, checked before any work starts, and torch's CPU thread count for the
duration of a call (:func:`torch_threads`).

Accepted devices: ``cpu``, ``cuda`` / ``cuda:N`` (where CUDA is present, ``N`` below the device
count) and ``mps`` (where the Metal backend is present). ``meta`` and the other device types hold
no data a sampler could return, and are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

ACCEPTED_DEVICES = "cpu, cuda, cuda:N or mps"


def resolve_device(spec: str | torch.device) -> torch.device:
    """The device named by ``spec``; ``ValueError`` (one line: what was wrong, what is accepted)
    for an unknown name or a device that this machine or this torch build does not have."""
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(spec)!r}; accepted: {ACCEPTED_DEVICES}.") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            no_cuda = torch.version.cuda is None
            build = "this torch build has no CUDA" if no_cuda else "no GPU is visible"
            raise ValueError(
                f"device {str(spec)!r} is not available: {build} "
                f"(torch {torch.__version__}); use cpu."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {str(spec)!r} is not available: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}."
            )
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(spec)!r} is not available on this machine; use cpu.")
        return device
    raise ValueError(
        f"device type {device.type!r} cannot run a sampler; accepted: {ACCEPTED_DEVICES}."
    )


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the ``with`` block with torch's intra-op CPU threads set to ``threads``, then restore
    the previous count (also on an error); ``None`` leaves torch's setting alone.

    The API's entry points (:func:`mgdm.restore.restore`, ``restore_batch``,
    :func:`mgdm.audio.separate.separate_tensor`, ``separate_file``) default to one thread, as the
    ``mgdm`` command does: the small tensors of these samplers run fastest on one thread, and
    processes sharing cores slow each other down badly when each spins several.
    ``ValueError`` for a count below 1.
    """
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1 or None; got {threads!r}.")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
