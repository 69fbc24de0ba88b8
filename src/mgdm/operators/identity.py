"""The identity operator ``A x = x`` (denoising)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mgdm.operators.base import LinearOperator, SelectionSVD


class Identity(LinearOperator):
    """``A x = x`` on ``[B, *shape]``; ``A^T = A^+ = A``, every singular value is 1.

    Args:
        shape: the shape of one sample (an image ``(C, H, W)`` or any other shape).
    """

    def __init__(self, shape: tuple[int, ...]):
        shape = tuple(shape)
        if not shape or not all(isinstance(v, int) and v > 0 for v in shape):
            raise ValueError(f"Identity needs a shape of positive integers; got {shape!r}.")
        self.input_shape = self.output_shape = shape
        self._svd = SelectionSVD(torch.arange(math.prod(shape)), math.prod(shape), shape, shape)

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        return y

    @property
    def svd(self) -> SelectionSVD:
        return self._svd

    def __repr__(self) -> str:
        return f"Identity(shape={self.input_shape})"
