"""A fixed non-linear blur: a blur followed by a saturating response (a labelled surrogate).

The paper's non-linear deblurring task runs a pretrained blur network (bkse's GOPRO
"KernelWizard") whose weights cannot be obtained here. :class:`SaturatedBlur` is the offline
surrogate (b) of docs/tasks.md, "Scaling to small images", a *different task*: its numbers are not comparable with the paper's.
A user who holds the network wraps it with :class:`mgdm.operators.network.NetworkOperator`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mgdm.operators.base import Operator
from mgdm.operators.blur import Blur


class SaturatedBlur(Operator):
    """``A(x) = tanh(beta (k * x)) / tanh(beta)``: ``[B, C, H, W] -> [B, C, H, W]``.

    ``k * x`` is the reflection-padded blur ``blur`` (docs/tasks.md, "Scaling to small images" uses the scaled motion kernel,
    :class:`~mgdm.operators.blur.MotionBlur`), followed by an S-shaped sensor response that maps
    ``[-1, 1]`` onto itself, nearly linear around 0 and compressing the extremes (``beta = 2``: a
    slope of ``2 / tanh(2) = 2.07`` at 0 and ``0.15`` at ``+-1``). Deterministic: the kernel is
    the one ``blur`` holds, drawn once from its seed.

    Args:
        blur: the linear blur applied first.
        beta: the saturation strength, > 0.
    """

    def __init__(self, blur: Blur, beta: float = 2.0):
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"the saturation beta must be a finite number > 0; got {beta!r}.")
        self.blur, self.beta = blur, float(beta)
        self.input_shape = self.output_shape = blur.input_shape

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.beta * self.blur.forward(x)) / math.tanh(self.beta)

    def __repr__(self) -> str:
        return f"SaturatedBlur(beta={self.beta:g}, blur={self.blur!r})"
