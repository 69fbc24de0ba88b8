"""Super-resolution by block averaging: ``A x`` is the mean of each ``r x r`` block, per channel."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mgdm.operators.base import GroupMeanSVD, LinearOperator, image_shape_of


class SuperResolution(LinearOperator):
    """``(A x)[c, i, j] = r^-2 sum_{a, b < r} x[c, r i + a, r j + b]``.

    Shapes: ``[B, C, H, W] -> [B, C, H/r, W/r]``.

    Per channel ``A A^T = r^-2 I``: every singular value is ``1/r``, ``A^+ = r^2 A^T`` is
    nearest-neighbour upsampling, and the SVD is matrix-free (:class:`GroupMeanSVD` over the
    ``r x r`` blocks). This is DDRM's ``SuperResolution`` (docs/tasks.md, tasks 1-5).

    Args:
        image_shape: ``(C, H, W)``; ``H`` and ``W`` must be multiples of ``factor``.
        factor: the block side ``r >= 1``.
    """

    def __init__(self, image_shape: tuple[int, int, int], factor: int):
        channels, height, width = image_shape_of(image_shape)
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(
                f"the super-resolution factor must be an integer >= 1; got {factor!r}."
            )
        if height % factor or width % factor:
            raise ValueError(
                f"super-resolution x{factor} needs H and W to be multiples of {factor} "
                f"(blocks of {factor}x{factor} pixels); got an image of {height}x{width}."
            )
        self.factor = factor
        self.input_shape = (channels, height, width)
        self.output_shape = (channels, height // factor, width // factor)
        self._svd = GroupMeanSVD(
            self.output_size, factor**2, self._to_blocks, self._from_blocks, self.output_shape
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.factor)

    def adjoint(self, y: Tensor) -> Tensor:
        r = self.factor
        return y.repeat_interleave(r, dim=-2).repeat_interleave(r, dim=-1) / r**2

    @property
    def svd(self) -> GroupMeanSVD:
        return self._svd

    def _to_blocks(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C*h*w, r*r]`` (blocks in the flat output order)."""
        (c, h, w), r = self.output_shape, self.factor
        blocks = x.reshape(x.shape[0], c, h, r, w, r).permute(0, 1, 2, 4, 3, 5)
        return blocks.reshape(x.shape[0], c * h * w, r * r)

    def _from_blocks(self, blocks: Tensor) -> Tensor:
        """The inverse of :meth:`_to_blocks`."""
        (c, h, w), r = self.output_shape, self.factor
        x = blocks.reshape(blocks.shape[0], c, h, w, r, r).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(blocks.shape[0], *self.input_shape)

    def __repr__(self) -> str:
        return f"SuperResolution(factor={self.factor}, image_shape={self.input_shape})"
