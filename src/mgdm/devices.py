"""Torch devices by name, checked before any work starts; the numerical precision of the network
calls (:func:`use_precision`, :func:`autocast_dtype`); torch's CPU thread count for the duration
of a call (:func:`torch_threads`); constant tables kept once per device (:class:`DeviceCopies`).

Accepted devices: ``auto`` (the default of every command that runs a network: ``cuda`` where
torch sees a CUDA GPU, else ``cpu``; ``mps`` is never chosen automatically, name it), ``cpu``,
``cuda`` / ``cuda:N`` (where CUDA is present, ``N`` below the device count) and ``mps`` (where the
Metal backend is present). ``meta`` and the other device types hold no data a sampler could
return, and are refused.

Precisions (:data:`PRECISIONS`): ``fp32`` (the default everywhere), ``bf16`` and ``fp16``, which
run the *network calls only* under ``torch.autocast`` with that dtype; the samplers' states and
Gaussian algebra stay float32 (:class:`mgdm.samplers.base.CountingDenoiser` casts each network
output back to the state's dtype). The default is fp32 on every device because it is the only
precision whose results we have measured (the benchmarks, the bit-identical CPU reference of
``tests/test_sync_free.py``), and because MGDM and DPS differentiate through the network, where
half-precision gradients are least understood. ``bf16`` needs a CUDA GPU that supports it (or the
CPU), ``fp16`` CUDA or the CPU; on ``mps`` only ``fp32`` is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

ACCEPTED_DEVICES = "auto, cpu, cuda, cuda:N or mps"

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""Precision names -> the autocast dtype of the network calls (``None``: no autocast, float32)."""

DEFAULT_PRECISION = "fp32"

_PRECISION: ContextVar[str] = ContextVar("mgdm_precision", default=DEFAULT_PRECISION)


def resolve_device(spec: str | torch.device) -> torch.device:
    """The device named by ``spec``; ``ValueError`` (one line: what was wrong, what is accepted)
    for an unknown name or a device that this machine or this torch build does not have.
    ``"auto"``: ``cuda`` where ``torch.cuda.is_available()``, else ``cpu``."""
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def is_host(tensor: torch.Tensor) -> bool:
    """Whether Python can read ``tensor``'s values without a host-device synchronisation (a CPU
    tensor). The sampling loops run their per-step checks (``bool(tensor)``, ``.item()``, early
    exits) only on such tensors; on an accelerator they check once per run, or with
    ``torch._assert_async``, so that no step waits for the device."""
    return tensor.device.type == "cpu"


class DeviceCopies:
    """A constant tensor (an operator's permutation or basis, a schedule's table) and its copies
    on the devices and dtypes it is asked for, each made once.

    Operators and priors build their tables on the CPU; copying a table inside every call would
    make each step of a sampling loop on an accelerator wait for a host-to-device copy. The
    copies are never written to (callers index, multiply or transpose them).
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self._copies: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def on(self, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The tensor on ``device`` in ``dtype`` (default: its own), copied there on first use."""
        dtype = self.tensor.dtype if dtype is None else dtype
        if device == self.tensor.device and dtype == self.tensor.dtype:
            return self.tensor
        copy = self._copies.get((device, dtype))
        if copy is None:
            copy = self._copies[(device, dtype)] = self.tensor.to(device=device, dtype=dtype)
        return copy

    def like(self, other: torch.Tensor) -> torch.Tensor:
        """The tensor on ``other``'s device in ``other``'s dtype (as ``tensor.to(other)``)."""
        return self.on(other.device, other.dtype)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; else a one-line ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}.")
    return precision


def current_precision() -> str:
    """The precision set by the innermost :func:`use_precision` block (``fp32`` outside any)."""
    return _PRECISION.get()


@contextmanager
def use_precision(precision: str | None) -> Iterator[None]:
    """Run the ``with`` block with ``precision`` as the precision of the samplers' network calls
    (where ``Sampler.sample`` is not given one); ``None`` leaves the current setting. The
    ``mgdm`` command runs every command in ``use_precision(args.precision)``."""
    if precision is None:
        yield
        return
    token = _PRECISION.set(check_precision(precision))
    try:
        yield
    finally:
        _PRECISION.reset(token)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``None`` for fp32); a one-line
    ``ValueError`` for an unknown name or a precision that ``device`` cannot run."""
    dtype = PRECISIONS[check_precision(precision)]
    if dtype is None:
        return None
    if device.type == "cuda":
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"precision bf16 needs a GPU with bfloat16 support; {device} has none "
                "(use fp16 or fp32)."
            )
        return dtype
    if device.type == "cpu":
        return dtype
    raise ValueError(
        f"precision {precision} is not supported on {device.type}; accepted there: fp32."
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
