"""Torch devices by name, checked before any work starts.

Accepted: ``cpu``, ``cuda`` / ``cuda:N`` (where CUDA is present, ``N`` below the device count) and
``mps`` (where the Metal backend is present). ``meta`` and the other device types hold no data a
sampler could return, and are refused.
"""

from __future__ import annotations

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
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(
                f"device {str(spec)!r} is not available: {build} (torch {torch.__version__}); use cpu."
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
