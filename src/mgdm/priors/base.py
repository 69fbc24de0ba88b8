"""The prior interface every sampler consumes: a Tweedie denoiser on a VP schedule.

A :class:`Denoiser` returns the posterior-mean estimate ``x0_hat(x_t, t) = E[x_0 | x_t]`` for a
batch ``x_t`` of shape ``[B, *sample_shape]`` at integer times ``t`` of shape ``[B]`` (one time per
sample). Subclasses override :meth:`denoise` (exact priors) or :meth:`epsilon` (networks); the
other follows by the conversions of :mod:`mgdm.diffusion.conversions`.
"""

from __future__ import annotations

from abc import ABC

import torch
from torch import Tensor

from mgdm.diffusion.conversions import eps_to_score, eps_to_x0, x0_to_eps
from mgdm.diffusion.schedules import Schedule
from mgdm.problem import Problem
from mgdm.random import SampleNoise


def as_time_vector(t: Tensor | int, batch_size: int, device: torch.device) -> Tensor:
    """Integer times as an int64 vector ``[B]`` (a scalar is broadcast to the batch); a Python int
    is written on ``device`` directly (no host-to-device copy in a sampling step)."""
    if isinstance(t, int):
        return torch.full((batch_size,), t, dtype=torch.int64, device=device)
    times = torch.as_tensor(t, dtype=torch.int64, device=device)
    if times.dim() == 0:
        return times.expand(batch_size)
    if times.shape != (batch_size,):
        raise ValueError(
            f"times must be a scalar or have shape [{batch_size}]; got {tuple(times.shape)}."
        )
    return times


class Denoiser(ABC):
    """A diffusion prior seen through its Tweedie denoiser.

    Attributes:
        schedule: the VP schedule ``abar`` on integer times 0…1000.
        sample_shape: the shape of one sample (without the batch dimension).
        data_range: ``(low, high)`` to which final samples are clamped, or ``None`` (no clamp).
        sample_space: ``"data"`` when samples are data, ``"latent"`` when they are latents that
            :meth:`samples_to_data` decodes (samplers for latent priors only accept the latter).
    """

    schedule: Schedule
    sample_shape: tuple[int, ...]
    data_range: tuple[float, float] | None = None
    sample_space: str = "data"

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Tweedie estimate ``E[x_0 | x_t]``; ``x_t`` ``[B, *sample_shape]``, ``t`` int64 ``[B]``."""
        if type(self).epsilon is Denoiser.epsilon:
            raise NotImplementedError(f"{type(self).__name__} must override denoise or epsilon.")
        return eps_to_x0(x_t, self.epsilon(x_t, t), self.schedule.alpha_bar(t))

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Noise prediction ``eps_hat = (x_t - sqrt(abar) x0_hat) / sqrt(1 - abar)``."""
        if type(self).denoise is Denoiser.denoise:
            raise NotImplementedError(f"{type(self).__name__} must override denoise or epsilon.")
        return x0_to_eps(x_t, self.denoise(x_t, t), self.schedule.alpha_bar(t))

    def score(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Score of the noised marginal, ``grad log p_t(x_t) = -eps_hat / sqrt(1 - abar)``."""
        return eps_to_score(self.epsilon(x_t, t), self.schedule.alpha_bar(t))

    def initial_state(
        self, noise: SampleNoise, t: int, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """A draw approximating ``p_t`` at a large time ``t``: ``N(0, (1 - abar_t) I)``.

        Exact priors override this to sample ``p_t`` exactly. Shape ``[B, *sample_shape]``.
        """
        std = torch.sqrt(1.0 - self.schedule.alpha_bar(t)).item()
        return std * noise.randn(*self.sample_shape, dtype=dtype)

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of one datum the prior describes: ``sample_shape``, except for a prior on a
        latent space, whose samples decode to data of another shape."""
        return tuple(self.sample_shape)

    def problem_in_sample_space(self, problem: Problem) -> Problem:
        """``problem`` (whose operator acts on data of :attr:`data_shape`) as a problem on this
        prior's samples; the identity, except for latent priors (operator ``A ∘ Dec``)."""
        return problem

    def samples_to_data(self, samples: Tensor) -> Tensor:
        """Samples ``[B, *sample_shape]`` drawn under this prior as data ``[B, *data_shape]``;
        the identity, except for latent priors (decoded)."""
        return samples

    def __call__(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        return self.denoise(x_t, as_time_vector(t, x_t.shape[0], x_t.device))


class WrappedDenoiser(Denoiser):
    """``prior`` seen through a wrapper that intercepts some of its calls (to count, time or
    watch them): the schedule, shapes, data range and sample space are the prior's, and
    :meth:`denoise`, :meth:`epsilon` and :meth:`initial_state` call the prior's own until a
    subclass overrides them."""

    def __init__(self, prior: Denoiser):
        self.prior = prior
        self.schedule = prior.schedule
        self.sample_shape = prior.sample_shape
        self.data_range = prior.data_range
        self.sample_space = prior.sample_space

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.prior.denoise(x_t, t)

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.prior.epsilon(x_t, t)

    def initial_state(
        self, noise: SampleNoise, t: int, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        return self.prior.initial_state(noise, t, dtype)
