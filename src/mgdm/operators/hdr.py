"""High dynamic range reconstruction: the observation is the over-exposed, clipped image."""

from __future__ import annotations

import math

from torch import Tensor

from mgdm.operators.base import Operator, image_shape_of


class HighDynamicRange(Operator):
    """``A(x) = clip(scale x, -1, 1)`` element-wise, ``[B, C, H, W] -> [B, C, H, W]`` (scale 2 in
    the Reference).

    Pixels with ``|x| > 1/scale`` saturate: there the gradient is 0. Non-linear, no adjoint
    (``y / scale`` is a right inverse on ``[-1, 1]``, not a pseudo-inverse).

    Args:
        image_shape: ``(C, H, W)`` (any channel count).
        scale: the exposure factor, > 0.
    """

    def __init__(self, image_shape: tuple[int, int, int], scale: float = 2.0):
        self.input_shape = self.output_shape = image_shape_of(image_shape)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"the HDR scale must be a finite number > 0; got {scale!r}.")
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        return (self.scale * x).clamp(-1, 1)

    def __repr__(self) -> str:
        return f"HighDynamicRange(scale={self.scale:g}, image_shape={self.input_shape})"
