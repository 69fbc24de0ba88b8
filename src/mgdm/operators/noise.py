"""Observation noise models: ``y = A(x) + noise`` and the log-likelihood ``log g(y | x)``.

Noise levels are in the units of ``A(x)`` for images in ``[-1, 1]`` (``sigma_y = 0.05`` is 0.025
on a ``[0, 1]`` scale). Observations are in those units too, for every model (Poisson counts are
rescaled).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from mgdm.random import SampleNoise, torch_generator

MIN_SIGMA_Y = 1e-15
"""The smallest Gaussian noise level accepted. The unnormalised log-likelihood
``-||y - A(x)||^2 / (2 sigma_y^2)`` and its gradient must stay inside float32's range (3.4e38)
for residuals up to the data scale: 4e6 (a million entries of magnitude 2) over ``2 sigma_y^2``
overflows below ``sigma_y`` = 8e-17; the bound keeps a factor of about ten in hand."""
MAX_SIGMA_Y = 1e15
"""The largest Gaussian noise level accepted: ``sigma_y^2`` must stay finite in float32 (below
1.8e19), and a noise level 1e15 times the data range already carries no information."""


class NoiseModel(ABC):
    """A conditional density ``g(y | A(x))`` with a sampler for simulated observations."""

    @abstractmethod
    def log_likelihood(self, y: Tensor, prediction: Tensor) -> Tensor:
        """``log g(y | prediction)`` summed over entries, shape ``[B]`` for ``prediction [B, ...]``."""

    @abstractmethod
    def observe(self, clean: Tensor, noise: SampleNoise) -> Tensor:
        """Simulate ``y`` from ``clean = A(x)``, shape ``[B, ...]``."""


class GaussianNoise(NoiseModel):
    """``y = A(x) + sigma_y * eps``; ``log g = -||y - A(x)||^2 / (2 sigma_y^2)`` (unnormalised,
    as MGDM uses it).

    Args:
        sigma_y: the noise standard deviation, in the units of ``A(x)`` for ``x`` in ``[-1, 1]``.
    """

    def __init__(self, sigma_y: float):
        if not (isinstance(sigma_y, (int, float)) and MIN_SIGMA_Y <= sigma_y <= MAX_SIGMA_Y):
            raise ValueError(
                f"sigma_y must be a number from {MIN_SIGMA_Y:g} to {MAX_SIGMA_Y:g} (std of the "
                f"noise on A(x), x in [-1, 1]; beyond, float32 arithmetic overflows); got "
                f"{sigma_y!r}."
            )
        self.sigma_y = float(sigma_y)

    def log_likelihood(self, y: Tensor, prediction: Tensor) -> Tensor:
        residual = (y - prediction).reshape(prediction.shape[0], -1)
        return -(residual**2).sum(-1) / (2 * self.sigma_y**2)

    def observe(self, clean: Tensor, noise: SampleNoise) -> Tensor:
        return clean + self.sigma_y * noise.randn(*clean.shape[1:], dtype=clean.dtype).to(
            clean.device
        )

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma_y={self.sigma_y})"


class PoissonNoise(NoiseModel):
    """Photon counts ``N ~ Poisson(lambda)`` with ``lambda = rate * max((A(x) + 1) / 2, floor)``.

    ``(A(x) + 1) / 2`` is the intensity in ``[0, 1]`` of a ``[-1, 1]`` image; ``rate`` is the
    expected count at full intensity (more photons, less noise). The observation is rescaled to
    the units of ``A(x)``: ``y = 2 N / rate - 1``, so ``E[y] = A(x)`` and
    ``Var[y] = 2 (A(x) + 1) / rate`` (a per-entry std of ``sqrt(2 (A(x) + 1) / rate)`` in
    ``[-1, 1]`` units; ``rate = 800`` gives 0.05 at ``A(x) = 0``).

    ``log g(y | x) = sum [N log lambda - lambda - log N!]`` with ``N = rate (y + 1) / 2``: the
    log-probability of the counts (normalised, unlike :class:`GaussianNoise`). ``floor`` keeps
    ``lambda > 0`` when ``A(x) <= -1`` (no gradient flows through the floor).

    Args:
        rate: expected count at intensity 1, > 0.
        floor: the smallest intensity, in ``(0, 1)``.
    """

    def __init__(self, rate: float, floor: float = 1e-6):
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ValueError(
                "the Poisson rate must be a finite number > 0 (the expected count at "
                f"intensity 1); got {rate!r}."
            )
        if not (isinstance(floor, (int, float)) and 0 < floor < 1):
            raise ValueError(f"the Poisson intensity floor must lie in (0, 1); got {floor!r}.")
        self.rate, self.floor = float(rate), float(floor)

    def mean_counts(self, prediction: Tensor) -> Tensor:
        """``lambda = rate * max((prediction + 1) / 2, floor)``, same shape as ``prediction``."""
        return self.rate * ((prediction + 1) / 2).clamp(min=self.floor)

    def log_likelihood(self, y: Tensor, prediction: Tensor) -> Tensor:
        counts = (self.rate * (y + 1) / 2).clamp(min=0)
        mean = self.mean_counts(prediction)
        log_pmf = counts * torch.log(mean) - mean - torch.lgamma(counts + 1)
        return log_pmf.reshape(prediction.shape[0], -1).sum(-1)

    def observe(self, clean: Tensor, noise: SampleNoise) -> Tensor:
        """Draw the counts of each sample from its own generator, seeded from its stream of
        ``noise`` (one ``randint`` per sample), and rescale them to ``y``."""
        seeds = noise.randint(0, 2**62).tolist()
        mean = self.mean_counts(clean.detach()).to(device="cpu", dtype=torch.float64)
        counts = torch.stack(
            [torch.poisson(m, generator=torch_generator(s)) for m, s in zip(mean, seeds)]
        )
        return (2 * counts / self.rate - 1).to(device=clean.device, dtype=clean.dtype)

    def __repr__(self) -> str:
        return f"PoissonNoise(rate={self.rate:g})"
