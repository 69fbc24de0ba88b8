"""Networks trained with ``T != 1000`` diffusion steps on our 1000-step time scale.

A DDPM of ``T`` steps with betas ``beta_0 … beta_{T-1}`` has the noise level
``A(j) = prod_{i < j} (1 - beta_i)`` after ``j`` steps (``A(0) = 1``; its step ``tau`` sees
``A(tau + 1)``). Our time ``k = 0 … 1000`` stands for ``u(k) = k T / 1000`` steps:

    abar[k] = A(u(k)),  log A interpolated linearly between whole steps,

which for ``T = 1000`` is exactly :func:`mgdm.diffusion.schedules.schedule_from_betas`
(``abar[k] = abar_DDPM[k - 1]``). The network is told the step ``u(k) - network_time_offset``
(clamped at 0), a real number when ``1000`` does not divide ``k T``: the sinusoidal time
embeddings of guided-diffusion, CompVis and diffusers UNets take any real step. With
``network_time_offset = 0`` that is the reference's convention for ``T = 1000`` (one step more
than the noise level), with ``1`` the step whose noise level is ``abar[k]`` (:mod:`mgdm.priors.neural`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mgdm.diffusion.schedules import NUM_TIMESTEPS, Schedule, schedule_from_betas


def schedule_from_training_betas(betas: Tensor, name: str) -> Schedule:
    """Our schedule of a DDPM with betas ``[T]`` (any ``T >= 1``; module docstring)."""
    betas = torch.as_tensor(betas, dtype=torch.float64).reshape(-1)
    steps = betas.numel()
    if steps == NUM_TIMESTEPS:
        return schedule_from_betas(betas, name=name)
    if steps < 1 or bool(((betas <= 0) | (betas >= 1)).any()):
        raise ValueError(f"betas must be at least one value in (0, 1); got {steps} values.")
    log_a = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])
    u = torch.arange(NUM_TIMESTEPS + 1, dtype=torch.float64) * steps / NUM_TIMESTEPS
    low = u.floor().long().clamp_max(steps - 1)
    fraction = u - low
    log_abar = (1 - fraction) * log_a[low] + fraction * log_a[low + 1]
    abar = log_abar.exp().clamp(1e-6, 1.0)
    abar[0] = 1.0
    return Schedule(abar, name=name)


class RescaledTimeNetwork(nn.Module):
    """``f(x, tau) = network(x, u(k) - offset)`` with ``k = tau + offset`` (module docstring):
    a network of ``train_steps`` steps called by :class:`~mgdm.priors.neural.EpsilonNetworkPrior`
    with ``tau = max(k - offset, 0)``; the step passed on is a float32 ``[B]``."""

    def __init__(self, network: nn.Module, train_steps: int, network_time_offset: int = 0):
        super().__init__()
        self.network = network
        self.train_steps = int(train_steps)
        self.network_time_offset = int(network_time_offset)

    def forward(self, x: Tensor, tau: Tensor) -> Tensor:
        k = tau.to(torch.float64) + self.network_time_offset
        step = (k * self.train_steps / NUM_TIMESTEPS - self.network_time_offset).clamp_min(0.0)
        return self.network(x, step.to(torch.float32))


def with_time_scale(network: nn.Module, train_steps: int, network_time_offset: int) -> nn.Module:
    """``network`` itself for ``T = 1000`` steps, else a :class:`RescaledTimeNetwork`."""
    if train_steps == NUM_TIMESTEPS:
        return network
    return RescaledTimeNetwork(network, train_steps, network_time_offset)
