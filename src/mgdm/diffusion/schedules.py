"""Variance-preserving noise schedules on the integer 1000-step time scale.

A :class:`Schedule` stores ``abar[k]`` for every integer time ``k = 0 … 1000`` with
``abar[0] = 1`` (clean data), so that ``q(x_k | x_0) = N(sqrt(abar_k) x_0, (1 - abar_k) I)``.
Samplers may query any integer time, on or off their sampling grid (MGDM's mixture index is
not restricted to the grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mgdm.devices import DeviceCopies, is_host

NUM_TIMESTEPS = 1000
"""Largest time of the integer scale; times are ``0 … NUM_TIMESTEPS``."""


@dataclass(frozen=True)
class Schedule:
    """``abar`` on the integer times ``0 … 1000`` (float64, non-increasing, ``abar[0] = 1``).

    Attributes:
        abar: tensor of shape ``[1001]``.
        name: a short label for reports.

    The table is validated once, here; :meth:`alpha_bar` keeps one copy of it per device, so a
    sampling step on an accelerator neither copies it nor waits for the device.
    """

    abar: Tensor
    name: str = "custom"
    _copies: DeviceCopies = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        abar = torch.as_tensor(self.abar, dtype=torch.float64).reshape(-1)
        if abar.numel() != NUM_TIMESTEPS + 1:
            raise ValueError(
                f"a schedule needs abar at the {NUM_TIMESTEPS + 1} times 0…{NUM_TIMESTEPS}; "
                f"got {abar.numel()} values."
            )
        if (
            not bool(torch.isfinite(abar).all())
            or bool((abar <= 0).any())
            or bool((abar > 1).any())
        ):
            raise ValueError("abar must be finite and in (0, 1].")
        if abar[0] != 1.0:
            raise ValueError(f"abar[0] must be 1 (clean data); got {float(abar[0])}.")
        if bool((abar[1:] > abar[:-1]).any()):
            raise ValueError("abar must be non-increasing in time.")
        object.__setattr__(self, "abar", abar)
        object.__setattr__(self, "_copies", DeviceCopies(abar))

    def alpha_bar(self, t: Tensor | int) -> Tensor:
        """``abar_t`` in float64 for integer times ``t`` (any shape; scalars allowed), on the
        device of ``t`` (a Python int: the CPU).

        Times outside ``0…1000`` raise ``ValueError`` when ``t`` is an int or a CPU tensor; on an
        accelerator they are checked by a device-side assertion (``torch._assert_async``), which
        never makes the host wait (a failure surfaces at the next synchronisation).
        """
        index = torch.as_tensor(t, dtype=torch.int64)
        if is_host(index):
            if bool((index < 0).any()) or bool((index > NUM_TIMESTEPS).any()):
                raise ValueError(f"times must lie in 0…{NUM_TIMESTEPS}; got {index.tolist()}.")
            return self.abar[index]
        torch._assert_async(
            ((index >= 0) & (index <= NUM_TIMESTEPS)).all(),
            f"times must lie in 0…{NUM_TIMESTEPS}",
        )
        return self.table_on(index.device)[index]

    def table_on(self, device: torch.device) -> Tensor:
        """``abar`` ``[1001]`` float64 on ``device``, copied there once per schedule."""
        return self._copies.on(device)

    def to_sigma(self, t: Tensor | int) -> Tensor:
        """The equivalent variance-exploding noise level ``sigma = sqrt((1 - abar) / abar)``."""
        abar = self.alpha_bar(t)
        return torch.sqrt((1.0 - abar) / abar)


def _prepend_one(abar_steps: Tensor, name: str) -> Schedule:
    return Schedule(torch.cat([torch.ones(1, dtype=torch.float64), abar_steps]), name=name)


def schedule_from_betas(betas: Tensor, name: str = "ddpm") -> Schedule:
    """Our schedule from DDPM betas ``[1000]``: ``abar[k] = abar_DDPM[k - 1]``, ``abar[0] = 1``.

    ``abar_DDPM = cumprod(1 - betas)`` clipped to ``[1e-6, 1]``, then 1.0 prepended: the network
    is called with the raw integer ``k`` (one DDPM step of offset, see docs/algorithms/README.md §2.2).
    """
    betas = torch.as_tensor(betas, dtype=torch.float64).reshape(-1)
    if betas.numel() != NUM_TIMESTEPS:
        raise ValueError(
            f"our time scale has {NUM_TIMESTEPS} diffusion steps; this schedule has {betas.numel()}."
        )
    if bool(((betas <= 0) | (betas >= 1)).any()):
        raise ValueError("betas must lie in (0, 1).")
    abar = torch.cumprod(1.0 - betas, dim=0).clamp(1e-6, 1.0)
    return _prepend_one(abar, name)


def ddpm_linear(beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """The DDPM linear-beta schedule, as the MGDM reference builds it:
    ``beta = linspace(beta_start, beta_end, 1000)`` through :func:`schedule_from_betas`."""
    betas = torch.linspace(beta_start, beta_end, NUM_TIMESTEPS, dtype=torch.float64)
    return schedule_from_betas(betas, "ddpm-linear")


def gmm_benchmark() -> Schedule:
    """The schedule of the Gaussian-mixture benchmark (MGDM repository's exact denoiser).

    Per-step ``alpha_k = linspace(0.9999, 0.98, 1000)``, ``abar = cumprod`` clipped at 1e-10,
    1.0 prepended. Up to the clipping this is the DDPM linear schedule.
    """
    alphas = torch.linspace(0.9999, 0.98, NUM_TIMESTEPS, dtype=torch.float64)
    abar = torch.cumprod(alphas, dim=0).clamp_min(1e-10)
    return _prepend_one(abar, "gmm-benchmark")


def cosine(offset: float = 0.008, min_abar: float = 1e-6) -> Schedule:
    """The cosine schedule of Nichol & Dhariwal: ``abar(t) = f(t)/f(0)``,
    ``f(t) = cos^2(pi/2 (t/1000 + offset)/(1 + offset))``, clipped below at ``min_abar``."""
    times = torch.arange(NUM_TIMESTEPS + 1, dtype=torch.float64) / NUM_TIMESTEPS
    f = torch.cos((times + offset) / (1 + offset) * math.pi / 2) ** 2
    abar = (f / f[0]).clamp(min_abar, 1.0)
    abar[0] = 1.0
    return Schedule(abar, name="cosine")


def from_ve_sigmas(sigmas: Tensor) -> Schedule:
    """A VP schedule from variance-exploding noise levels: ``abar = 1 / (1 + sigma^2)``.

    Args:
        sigmas: ``[1001]`` noise levels on the times ``0 … 1000`` with ``sigmas[0] = 0``.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    return Schedule(1.0 / (1.0 + sigmas**2), name="from-ve")


SCHEDULES = {"ddpm-linear": ddpm_linear, "gmm-benchmark": gmm_benchmark, "cosine": cosine}
"""Named schedules, for configuration files and the command line."""


def timestep_grid(num_steps: int) -> Tensor:
    """The sampling grid ``T_j = int(linspace(0, 999, K)[j])`` (float32 linspace, truncated).

    ``K = 20`` gives ``0, 52, 105, …, 946, 999``. Returns int64 of shape ``[K]``.
    """
    if num_steps < 2:
        raise ValueError(f"a timestep grid needs at least 2 points; got {num_steps}.")
    return torch.linspace(0, NUM_TIMESTEPS - 1, num_steps, dtype=torch.float32).long()
