"""Observation noise models: ``y = A(x) + noise`` and the log-likelihood ``log g(y | x)``.

Noise levels are in the units of ``A(x)`` for images in ``[-1, 1]`` (``sigma_y = 0.05`` is 0.025
on a ``[0, 1]`` scale).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from torch import Tensor

from mgdm.random import SampleNoise


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
        if not (isinstance(sigma_y, (int, float)) and math.isfinite(sigma_y) and sigma_y > 0):
            raise ValueError(
                f"sigma_y must be a finite number > 0 (std of the noise on A(x), x in [-1, 1]); "
                f"got {sigma_y!r}."
            )
        self.sigma_y = float(sigma_y)

    def log_likelihood(self, y: Tensor, prediction: Tensor) -> Tensor:
        residual = (y - prediction).reshape(prediction.shape[0], -1)
        return -(residual**2).sum(-1) / (2 * self.sigma_y**2)

    def observe(self, clean: Tensor, noise: SampleNoise) -> Tensor:
        return clean + self.sigma_y * noise.randn(*clean.shape[1:], dtype=clean.dtype).to(clean.device)

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma_y={self.sigma_y})"
