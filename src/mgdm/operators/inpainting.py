"""Inpainting: the observation is the vector of the kept pixels of a fixed mask."""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.devices import DeviceCopies
from mgdm.operators.base import LinearOperator, SelectionSVD, image_shape_of


class Inpainting(LinearOperator):
    """``A x = x[mask]``: ``[B, C, H, W] -> [B, m]``, the ``m`` kept entries in row-major order.

    As in the Reference, only the kept entries are observed (docs/tasks.md, "3. Box inpainting"); the adjoint
    ``A^T y`` writes them back and fills the missing entries with 0 (mid grey in ``[-1, 1]``).
    ``A A^T = I``, every singular value is 1 and ``A^+ = A^T``; ``V`` is the permutation that puts
    the kept entries first (:class:`SelectionSVD`).

    Args:
        mask: boolean ``[C, H, W]``, ``True`` where the pixel is kept; at least one must be.
    """

    def __init__(self, mask: Tensor):
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool or mask.dim() != 3:
            raise ValueError(
                "an inpainting mask is a boolean tensor [C, H, W]; "
                f"got {mask.dtype} {list(mask.shape)}."
            )
        flat = mask.reshape(-1)
        kept = torch.nonzero(flat).reshape(-1)
        if kept.numel() == 0:
            raise ValueError("the inpainting mask keeps no pixel.")
        missing = torch.nonzero(~flat).reshape(-1)
        self.mask = mask
        self.input_shape = tuple(mask.shape)
        self.output_shape = (int(kept.numel()),)
        self._kept = DeviceCopies(kept)
        self._svd = SelectionSVD(
            torch.cat([kept, missing]), int(kept.numel()), self.input_shape, self.output_shape
        )

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)[:, self._kept.on(x.device)]

    def adjoint(self, y: Tensor) -> Tensor:
        flat = torch.zeros(y.shape[0], self.input_size, dtype=y.dtype, device=y.device)
        flat = flat.index_copy(1, self._kept.on(y.device), y)
        return flat.reshape(y.shape[0], *self.input_shape)

    @property
    def svd(self) -> SelectionSVD:
        return self._svd

    @property
    def missing_fraction(self) -> float:
        return 1.0 - self.output_shape[0] / self.input_size

    def __repr__(self) -> str:
        return (
            f"Inpainting(image_shape={self.input_shape}, kept={self.output_shape[0]}, "
            f"missing={100 * self.missing_fraction:.1f}%)"
        )


def box_mask(
    image_shape: tuple[int, int, int], rows: tuple[int, int], cols: tuple[int, int]
) -> Tensor:
    """The mask that removes the box of rows ``[r0, r1)`` and columns ``[c0, c1)`` in every channel.

    Returns a boolean ``[C, H, W]`` (``True`` = kept). Raises ``ValueError`` unless the box is
    non-empty and inside the image.
    """
    channels, height, width = image_shape_of(image_shape)
    (r0, r1), (c0, c1) = rows, cols
    if not (0 <= r0 < r1 <= height and 0 <= c0 < c1 <= width):
        raise ValueError(
            f"the box rows [{r0}, {r1}) x columns [{c0}, {c1}) is empty or does not fit in an "
            f"image of {height}x{width}."
        )
    mask = torch.ones(channels, height, width, dtype=torch.bool)
    mask[:, r0:r1, c0:c1] = False
    return mask


def left_half_mask(image_shape: tuple[int, int, int]) -> Tensor:
    """The mask keeping columns ``[0, W // 2)`` (the right half is missing); ``[C, H, W]`` bool."""
    channels, height, width = image_shape_of(image_shape)
    if width < 2:
        raise ValueError(f"the half mask needs an image at least 2 pixels wide; got W = {width}.")
    mask = torch.zeros(channels, height, width, dtype=torch.bool)
    mask[:, :, : width // 2] = True
    return mask
