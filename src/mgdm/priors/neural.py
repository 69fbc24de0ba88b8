"""Neural priors: an adapter from a noise-prediction network to a :class:`Denoiser`, the DDPM
beta schedules (checkpoint I/O is :mod:`mgdm.checkpoints`).

A network ``f(x, tau) -> out`` trained on a DDPM schedule of ``T = 1000`` steps sees, at its
0-based step ``tau``, ``x = sqrt(abar_DDPM[tau]) x_0 + sqrt(1 - abar_DDPM[tau]) eps`` and predicts

* ``"epsilon"``: ``out = eps``;
* ``"v_prediction"``: ``out = v = sqrt(abar) eps - sqrt(1 - abar) x_0``;
* ``"sample"``: ``out = x_0``.

With ``learn_sigma`` it returns ``2C`` channels (the prediction, then the variance interpolation
of guided-diffusion's ``learn_sigma`` / diffusers' ``learned_range``): the first ``C`` channels
are the prediction, the rest is not used (samplers here choose their own variances).

**Time convention.** Our schedules hold ``abar[k] = abar_DDPM[k - 1]`` (1.0 prepended) on the
integer times ``k = 0 … 1000`` (:func:`mgdm.diffusion.schedules.ddpm_linear`). The network is
called with ``tau = k - network_time_offset``:

* ``network_time_offset = 0`` (default): ``tau = k``, the MGDM reference's convention: the
  network is told one DDPM step more than the noise level ``abar[k] = abar_DDPM[k - 1]``
  (harmless; needed for parity with the reference);
* ``network_time_offset = 1``: ``tau = k - 1``, the step whose noise level is exactly ``abar[k]``;
  ``tau`` is clamped at 0 for ``k = 0``, where ``abar = 1`` and the denoiser is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from mgdm.diffusion.conversions import eps_to_x0, per_sample, v_to_eps, x0_to_eps
from mgdm.diffusion.schedules import NUM_TIMESTEPS, Schedule, ddpm_linear
from mgdm.priors.base import Denoiser

Prediction = Literal["epsilon", "v_prediction", "sample"]
PREDICTIONS: tuple[str, ...] = ("epsilon", "v_prediction", "sample")
"""What a network may predict (diffusers' ``prediction_type`` names)."""


class EpsilonNetworkPrior(Denoiser):
    """A diffusion prior from a network ``f(x [B, *sample_shape], tau int64 [B]) -> Tensor``.

    Args:
        network: an eps-, v- or x0-prediction module (put in eval mode, parameters frozen: the
            samplers differentiate with respect to ``x`` only).
        sample_shape: the shape of one sample, e.g. ``(3, 256, 256)``.
        schedule: the VP schedule in our convention (default :func:`ddpm_linear`).
        prediction: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        learn_sigma: the network returns ``2C`` channels; the first ``C`` are used.
        network_time_offset: the network is called with ``max(t - offset, 0)`` (module docstring).
        data_range: the range final samples are clamped to (``[-1, 1]`` for images).

    The input is cast to the dtype of the network's first parameter and the outputs are
    returned in the dtype of ``x_t``; the network must live on ``x_t``'s device.
    """

    def __init__(
        self,
        network: Callable[[Tensor, Tensor], Tensor],
        sample_shape: tuple[int, ...],
        schedule: Schedule | None = None,
        prediction: Prediction = "epsilon",
        learn_sigma: bool = False,
        network_time_offset: int = 0,
        data_range: tuple[float, float] | None = (-1.0, 1.0),
    ):
        if prediction not in PREDICTIONS:
            raise ValueError(
                f"prediction must be one of {', '.join(PREDICTIONS)}; got {prediction!r}."
            )
        if network_time_offset not in (0, 1):
            raise ValueError(f"network_time_offset must be 0 or 1; got {network_time_offset!r}.")
        if isinstance(network, nn.Module):
            network.eval()
            network.requires_grad_(False)
        self.network = network
        self.sample_shape = tuple(sample_shape)
        self.schedule = schedule if schedule is not None else ddpm_linear()
        self.prediction = prediction
        self.learn_sigma = learn_sigma
        self.network_time_offset = network_time_offset
        self.data_range = data_range

    def network_time(self, t: Tensor) -> Tensor:
        """The step ``tau = max(t - network_time_offset, 0)`` the network is called with, int64 ``[B]``."""
        return (t.to(torch.int64) - self.network_time_offset).clamp_min(0)

    def network_output(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The network's prediction (first ``C`` channels), ``[B, *sample_shape]`` in ``x_t``'s dtype."""
        if tuple(x_t.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"expected samples of shape [B, {', '.join(map(str, self.sample_shape))}]; got {list(x_t.shape)}."
            )
        dtype = x_t.dtype
        if isinstance(self.network, nn.Module):
            parameter = next(self.network.parameters(), None)
            if parameter is not None:
                dtype = parameter.dtype
        out = self.network(x_t.to(dtype), self.network_time(t).to(x_t.device))
        channels = self.sample_shape[0]
        expected = 2 * channels if self.learn_sigma else channels
        if (
            out.dim() != x_t.dim()
            or out.shape[0] != x_t.shape[0]
            or out.shape[1] != expected
            or (tuple(out.shape[2:]) != self.sample_shape[1:])
        ):
            hint = (
                ""
                if self.learn_sigma or out.shape[1] != 2 * channels
                else " (set learn_sigma=True?)"
            )
            raise ValueError(
                f"the network returned shape {list(out.shape)}; expected [{x_t.shape[0]}, {expected}, "
                f"{', '.join(map(str, self.sample_shape[1:]))}]{hint}."
            )
        return out[:, :channels].to(x_t.dtype)

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Noise prediction ``eps_hat``, ``[B, *sample_shape]``."""
        out = self.network_output(x_t, t)
        abar = self.schedule.alpha_bar(t)
        if self.prediction == "epsilon":
            return out
        if self.prediction == "v_prediction":
            return v_to_eps(x_t, out, abar)
        return x0_to_eps(x_t, out, abar)

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Tweedie estimate ``x0_hat``, ``[B, *sample_shape]`` (differentiable in ``x_t``)."""
        out = self.network_output(x_t, t)
        abar = self.schedule.alpha_bar(t)
        if self.prediction == "epsilon":
            return eps_to_x0(x_t, out, abar)
        if self.prediction == "v_prediction":
            a = per_sample(abar, x_t)
            return torch.sqrt(a) * x_t - torch.sqrt(1 - a) * out
        return out


# --------------------------------------------------------------------------- beta schedules
def ddpm_betas(
    name: str,
    num_steps: int = NUM_TIMESTEPS,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> Tensor:
    """The DDPM betas ``[num_steps]`` (float64) of a named schedule.

    * ``"linear"``: ``linspace(beta_start, beta_end, T)`` (guided-diffusion scales both by
      ``1000 / T``; pass them scaled);
    * ``"scaled_linear"``: ``linspace(sqrt(beta_start), sqrt(beta_end), T)^2`` (diffusers);
    * ``"cosine"`` / ``"squaredcos_cap_v2"``: ``beta_i = min(1 - f((i+1)/T) / f(i/T), 0.999)``
      with ``f(u) = cos^2(pi/2 (u + 0.008) / 1.008)`` (Nichol & Dhariwal).
    """
    if name == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    if name == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2
    if name in ("cosine", "squaredcos_cap_v2"):
        u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        return (1.0 - f[1:] / f[:-1]).clamp_max(0.999)
    raise ValueError(
        f"unknown beta schedule {name!r}; known: linear, scaled_linear, cosine, squaredcos_cap_v2."
    )
