"""The Gaussian bridge kernel ``Q^eta[s->u](x_t | x_s, x_u)`` and the DDIM step.

For integer times ``s <= t <= u`` (early, query, late), with ``a_ts = abar_t/abar_s``,
``a_ut = abar_u/abar_t`` and ``a_us = abar_u/abar_s``::

    std = eta * sqrt((1 - a_ut)(1 - a_ts) / (1 - a_us))
    c_u = sqrt((1 - a_ts - std^2) / (1 - a_us))     (evaluated in a cancellation-free form)
    c_s = sqrt(a_ts) - c_u * sqrt(a_us)
    Q(x_t | x_s, x_u) = N(c_u x_u + c_s x_s, std^2 I)

``eta = 1`` is the exact bridge of the VP process (with ``s = 0`` the DDPM posterior
``q(x_t | x_0, x_u)``); ``eta = 0`` is the deterministic DDIM map. ``t = s`` returns ``x_s``.
Coefficients are computed in float64 and cast to the state's dtype (docs/algorithms/mgdm.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mgdm.devices import is_host
from mgdm.diffusion.conversions import per_sample
from mgdm.diffusion.schedules import Schedule


@dataclass(frozen=True)
class BridgeCoefficients:
    """Mean coefficients and std of the bridge, float64 tensors broadcast over the samples."""

    coef_early: Tensor
    coef_late: Tensor
    std: Tensor

    def mean(self, x_early: Tensor, x_late: Tensor) -> Tensor:
        """``c_s x_s + c_u x_u`` with per-sample coefficients; shape of ``x_early``."""
        return (
            per_sample(self.coef_early, x_early) * x_early
            + per_sample(self.coef_late, x_late) * x_late
        )

    def sample(self, x_early: Tensor, x_late: Tensor, noise: Tensor) -> Tensor:
        """A draw ``mean + std * noise`` (``noise`` standard normal, shape of ``x_early``)."""
        return self.mean(x_early, x_late) + per_sample(self.std, noise) * noise


def bridge_coefficients_from_abar(
    abar_early: Tensor, abar_query: Tensor, abar_late: Tensor, eta: float | Tensor = 1.0
) -> BridgeCoefficients:
    """Bridge coefficients from ``abar`` at the three times (float64 tensors, broadcastable)."""
    abar_early = torch.as_tensor(abar_early, dtype=torch.float64)
    abar_query = torch.as_tensor(abar_query, dtype=torch.float64)
    abar_late = torch.as_tensor(abar_late, dtype=torch.float64)
    a_ts = abar_query / abar_early
    a_ut = abar_late / abar_query
    a_us = abar_late / abar_early
    denominator = 1.0 - a_us
    degenerate = denominator <= 0  # s = t = u: nothing to bridge, return x_s
    safe_den = torch.where(degenerate, torch.ones_like(denominator), denominator)
    eta_t = torch.as_tensor(eta, dtype=torch.float64)
    std = eta_t * torch.sqrt(((1.0 - a_ut) * (1.0 - a_ts) / safe_den).clamp_min(0.0))
    # c_u^2 = (1 - a_ts - std^2) / (1 - a_us), rewritten without cancellation using
    # 1 - a_us - (1 - a_ut) = a_ut (1 - a_ts):
    # c_u^2 = (1 - a_ts) [(1 - eta^2)(1 - a_us) + eta^2 a_ut (1 - a_ts)] / (1 - a_us)^2.
    inner = (1.0 - eta_t**2) * denominator + eta_t**2 * a_ut * (1.0 - a_ts)
    coef_late = torch.sqrt(((1.0 - a_ts) * inner).clamp_min(0.0)) / safe_den
    coef_early = torch.sqrt(a_ts) - coef_late * torch.sqrt(a_us)
    std = torch.where(degenerate, torch.zeros_like(std), std)
    coef_late = torch.where(degenerate, torch.zeros_like(coef_late), coef_late)
    coef_early = torch.where(degenerate, torch.ones_like(coef_early), coef_early)
    return BridgeCoefficients(coef_early, coef_late, std)


def bridge_coefficients(
    schedule: Schedule,
    early: Tensor | int,
    query: Tensor | int,
    late: Tensor | int,
    eta: float | Tensor = 1.0,
) -> BridgeCoefficients:
    """Coefficients of ``Q^eta[early->late](x_query | x_early, x_late)`` at integer times.

    Requires ``early <= query <= late`` elementwise; times are scalars or ``[B]`` tensors. The
    order is checked on the host (``ValueError``) when every time is an int or a CPU tensor, else
    by a device-side assertion that does not make the host wait (:meth:`Schedule.alpha_bar`).
    """
    early_t, query_t, late_t = (torch.as_tensor(v, dtype=torch.int64) for v in (early, query, late))
    ordered = (early_t <= query_t) & (query_t <= late_t)
    if is_host(ordered):
        if not bool(ordered.all()):
            raise ValueError("bridge times must satisfy early <= query <= late.")
    else:
        torch._assert_async(ordered.all(), "bridge times must satisfy early <= query <= late")
    return bridge_coefficients_from_abar(
        schedule.alpha_bar(early_t), schedule.alpha_bar(query_t), schedule.alpha_bar(late_t), eta
    )


def ddim_step(
    schedule: Schedule,
    x_t: Tensor,
    x0_hat: Tensor,
    t: Tensor | int,
    t_next: Tensor | int,
    noise: Tensor | None,
    eta: float = 1.0,
) -> Tensor:
    """One DDIM(eta) step ``x_t -> x_{t_next}`` (``t_next < t``) given the Tweedie estimate.

    It samples ``Q^eta[0->t](x_{t_next} | x0_hat, x_t)``: ``eta = 1`` is the DDPM ancestral step,
    ``eta = 0`` deterministic DDIM; ``t_next = 0`` returns ``x0_hat``. ``noise`` may be ``None``
    only when ``eta = 0``.
    """
    coefficients = bridge_coefficients(schedule, 0, t_next, t, eta)
    if noise is None:
        if eta != 0:
            raise ValueError("ddim_step needs noise when eta != 0.")
        return coefficients.mean(x0_hat, x_t)
    return coefficients.sample(x0_hat, x_t, noise)
