"""An operator given by a user-supplied torch module (e.g. a pretrained blur network)."""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.operators.base import Operator


class NetworkOperator(Operator):
    """``A(x) = module(x)``: ``[B, *input_shape] -> [B, *output_shape]``, by autograd.

    The module is put in evaluation mode (no dropout, frozen batch-norm statistics) and must be
    deterministic: any random input it needs (bkse's kernel code ``k``, docs/tasks.md, "9. Non-linear deblurring") is drawn
    once, from a seed, and held by the module. Range conventions are the module's business: wrap
    it (e.g. in ``torch.nn.Sequential``) so that it reads and writes ``[-1, 1]`` images.

    Args:
        module: the network.
        input_shape: the shape of one input sample.
        output_shape: the shape of one output sample (checked at every call).
    """

    def __init__(
        self, module: torch.nn.Module, input_shape: tuple[int, ...], output_shape: tuple[int, ...]
    ):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(
                f"NetworkOperator needs a torch.nn.Module; got {type(module).__name__}."
            )
        self.module = module.eval()
        self.input_shape, self.output_shape = tuple(input_shape), tuple(output_shape)

    def forward(self, x: Tensor) -> Tensor:
        y = self.module(x)
        if tuple(y.shape) != (x.shape[0], *self.output_shape):
            raise ValueError(
                f"the network returned shape {list(y.shape)}; expected [{x.shape[0]}, "
                f"{', '.join(map(str, self.output_shape))}]."
            )
        return y

    def __repr__(self) -> str:
        name = type(self.module).__name__
        return f"NetworkOperator({name}, {self.input_shape} -> {self.output_shape})"
