"""Where and how a benchmark run executes, for every benchmark: the device a process binds to,
the peak memory of a sampler call, the ``torchrun`` process group and the split of the work over
its ranks, the progress bar, and the checks of the options every benchmark shares."""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import torch
from tqdm.auto import tqdm

from mgdm import devices

Work = TypeVar("Work")


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` checked by :func:`mgdm.devices.resolve_device` (``ValueError`` for one this
    machine does not have), with a bare ``cuda`` bound to GPU ``LOCAL_RANK mod (number of GPUs)``
    (one GPU per ``torchrun`` process where there are enough)."""
    device = devices.resolve_device(device)
    if device.type == "cuda" and device.index is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak that :func:`measure_peak_memory` reads (CUDA; a no-op on the CPU, whose
    peak resident set cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def measure_peak_memory(device: torch.device) -> tuple[int, str]:
    """``(bytes, kind)``: CUDA's peak allocation since :func:`reset_peak_memory`
    (``cuda_max_allocated``), or the process's peak resident set so far (``cpu_max_rss``)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "cpu_max_rss"


@contextmanager
def process_group() -> Iterator[tuple[int, int]]:
    """``(rank, world_size)``: from ``torchrun``'s environment (joining a gloo group, which
    carries only barriers here), else ``(0, 1)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield 0, 1
        return
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=timedelta(days=7))
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        if created:
            dist.destroy_process_group()


def barrier(world_size: int) -> None:
    """Wait for every rank of the :func:`process_group` (nothing to wait for alone)."""
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def deal(work: Sequence[Work], size: Callable[[Work], int], world_size: int) -> list[list[Work]]:
    """Share ``work`` over ``world_size`` ranks: each item, in order, goes to the rank with the
    smallest total ``size`` (cells) so far (the lowest rank on ties); every rank computes the
    same split."""
    shares: list[list[Work]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for item in work:
        rank = load.index(min(load))
        shares[rank].append(item)
        load[rank] += size(item)
    return shares


def chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    """``indices`` cut into consecutive chunks of ``size`` (the last one shorter): the batches
    of one sampler call each."""
    return [list(indices[start : start + size]) for start in range(0, len(indices), size)]


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    """A progress bar over ``total`` cells (nothing shown unless ``enabled``)."""
    return tqdm(total=total, unit="cell", desc=desc, disable=not enabled)


def check_noise_and_budget(sigma_y: float, budget: float | None) -> None:
    """``ValueError`` unless ``sigma_y`` is a finite number > 0 and ``budget`` is ``None`` or a
    finite number of network calls > 0."""
    if not (isinstance(sigma_y, (int, float)) and math.isfinite(sigma_y) and sigma_y > 0):
        raise ValueError(f"sigma_y must be a finite number > 0; got {sigma_y!r}.")
    if budget is not None and not (
        isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0
    ):
        raise ValueError(f"the budget must be a number of network calls > 0; got {budget!r}.")
