"""Colourisation: the observation is the grey level, the mean of the three colour channels."""

from __future__ import annotations

from torch import Tensor

from mgdm.operators.base import GroupMeanSVD, LinearOperator, image_shape_of


class Colorization(LinearOperator):
    """``(A x)[0, i, j] = (x[0, i, j] + x[1, i, j] + x[2, i, j]) / 3``.

    Shapes: ``[B, 3, H, W] -> [B, 1, H, W]``.

    Every singular value is ``1/sqrt(3)``; ``A^+ = 3 A^T`` copies the grey level to the three
    channels. The SVD is matrix-free (:class:`GroupMeanSVD` over the 3 channels of each pixel),
    as DDRM's ``Colorization``.

    Args:
        image_shape: ``(3, H, W)``.
    """

    def __init__(self, image_shape: tuple[int, int, int]):
        channels, height, width = image_shape_of(image_shape)
        if channels != 3:
            raise ValueError(
                f"colorization needs 3 (RGB) channels; got an image shape {image_shape}."
            )
        self.input_shape = (3, height, width)
        self.output_shape = (1, height, width)
        self._svd = GroupMeanSVD(
            height * width, 3, self._to_groups, self._from_groups, self.output_shape
        )

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1, keepdim=True)

    def adjoint(self, y: Tensor) -> Tensor:
        return (y / 3).repeat(1, 3, 1, 1)

    @property
    def svd(self) -> GroupMeanSVD:
        return self._svd

    def _to_groups(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W] -> [B, H*W, 3]``."""
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 3)

    def _from_groups(self, groups: Tensor) -> Tensor:
        """``[B, H*W, 3] -> [B, 3, H, W]``."""
        _, height, width = self.input_shape
        return groups.reshape(groups.shape[0], height, width, 3).permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return f"Colorization(image_shape={self.input_shape})"
