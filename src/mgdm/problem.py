"""An inverse problem: operator + observation + noise model, giving ``log g(y | x)`` per sample."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mgdm.operators.base import Operator
from mgdm.operators.noise import GaussianNoise, NoiseModel


@dataclass
class Problem:
    """``y = A(x) + noise``.

    Attributes:
        operator: the forward map ``A``.
        observation: ``y`` of shape ``[*output_shape]`` (shared by every sample) or
            ``[B, *output_shape]`` (one observation per sample of a batch of size B).
        noise: the noise model; ``GaussianNoise(sigma_y)`` with ``sigma_y`` in the units of
            ``A(x)`` for ``x`` in ``[-1, 1]``.
    """

    operator: Operator
    observation: Tensor
    noise: NoiseModel

    def __post_init__(self) -> None:
        y = torch.as_tensor(self.observation)
        if y.is_complex() or y.dtype == torch.bool:
            raise ValueError(f"the observation y must hold real numbers; got dtype {y.dtype}.")
        self.operator.check_output(y)
        if not bool(torch.isfinite(y).all()):
            raise ValueError("the observation y has non-finite entries (NaN or inf).")
        self.observation = y

    @property
    def sigma_y(self) -> float:
        """The Gaussian noise std; raises for non-Gaussian noise models."""
        if not isinstance(self.noise, GaussianNoise):
            raise TypeError(f"this sampler needs Gaussian noise; the problem has {self.noise!r}.")
        return self.noise.sigma_y

    def observation_for(self, batch_size: int, like: Tensor) -> Tensor:
        """``y`` broadcast to ``[B, *output_shape]`` in the dtype and device of ``like``."""
        y = self.observation.to(device=like.device, dtype=like.dtype)
        if y.dim() == len(self.operator.output_shape):
            return y.expand(batch_size, *y.shape)
        if y.shape[0] != batch_size:
            raise ValueError(
                f"the problem holds {y.shape[0]} observations but the batch has {batch_size} samples."
            )
        return y

    def log_likelihood(self, x: Tensor) -> Tensor:
        """``log g(y | x)`` for a batch ``x`` ``[B, *input_shape]``; returns ``[B]``."""
        prediction = self.operator(x)
        return self.noise.log_likelihood(self.observation_for(x.shape[0], prediction), prediction)

    def select(self, index: Tensor) -> Problem:
        """The problem restricted to the samples ``index`` (a no-op for a shared observation)."""
        if self.observation.dim() == len(self.operator.output_shape):
            return self
        return Problem(self.operator, self.observation[index], self.noise)
