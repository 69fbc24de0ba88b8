"""Differentiable JPEG compression (encode + decode) as a forward operator (docs/tasks.md, "7. JPEG").

The pipeline, for ``x`` in ``[-1, 1]`` and ``u = 255 (x + 1) / 2``:

1. colour (RGB only): JFIF RGB -> YCbCr; ``Cb, Cr`` are then averaged over 2 x 2 blocks
   (4:2:0 chroma subsampling; optional). Grayscale images take the luma path alone.
2. per plane: split into 8 x 8 blocks, subtract 128, orthonormal 2-D DCT-II
   ``F[v, u] = 1/4 a(v) a(u) sum_{r, c} f[r, c] cos((2r+1) v pi/16) cos((2c+1) u pi/16)``,
   ``a(0) = 1/sqrt 2``, ``a(k) = 1`` otherwise;
3. quantise: ``q = R(F / Q)`` with ``Q[v, u]`` the standard table (ITU-T T.81 Annex K, row =
   vertical frequency) scaled by the quality factor, and ``R`` a rounding;
4. decode: ``q Q``, inverse DCT, add 128, merge the blocks; 2 x 2 upsampling of the chroma
   (nearest neighbour as DiffJPEG, or libjpeg's "fancy" triangle filter); YCbCr -> RGB; clamp to
   ``[0, 255]``.
5. ``A(x) = 2 decoded / 255 - 1``, the same shape as ``x``.

Rounding ``R``: ``"cubic"`` is DiffJPEG's differentiable surrogate
``r(v) = round(v) + (v - round(v))^3`` (used for the measurement and the likelihood alike);
``"hard"`` is ``round(v)`` (zero gradient: for checks against a real codec).

Tables: with ``clamp_tables=False`` (DiffJPEG, the Reference) ``Q = T f`` with
``f = 50/QF`` for ``QF < 50`` and ``(200 - 2 QF)/100`` otherwise, unrounded and unclamped (QF = 2
gives ``f = 25``: harsher than libjpeg's QF = 2). With ``clamp_tables=True`` the tables are
libjpeg's baseline ones, ``Q = clamp(floor((T s + 50) / 100), 1, 255)`` with the integer scale
``s = floor(5000 / QF)`` or ``200 - 2 QF``: the tables Pillow writes for ``quality=QF``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mgdm.devices import DeviceCopies
from mgdm.operators.base import Operator, image_shape_of

LUMINANCE_TABLE = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float64,
)
"""The standard luminance quantisation table (T.81 Annex K.1), ``[vertical, horizontal]``."""

CHROMINANCE_TABLE = torch.full((8, 8), 99.0, dtype=torch.float64)
CHROMINANCE_TABLE[:4, :4] = torch.tensor(
    [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float64
)
"""The standard chrominance quantisation table (T.81 Annex K.1)."""

RGB_TO_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=torch.float64,
)
"""JFIF colour transform: ``(Y, Cb - 128, Cr - 128) = M (R, G, B)``."""

YCBCR_TO_RGB = torch.tensor(
    [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], dtype=torch.float64
)
"""JFIF inverse colour transform: ``(R, G, B) = M (Y, Cb - 128, Cr - 128)``."""

Rounding = Literal["cubic", "hard"]
Upsampling = Literal["nearest", "fancy"]


def quantization_table(base: Tensor, quality: int, clamp_tables: bool = False) -> Tensor:
    """The ``[8, 8]`` table for quality ``quality`` in 1..100 (see the module docstring)."""
    if not (isinstance(quality, int) and 1 <= quality <= 100):
        raise ValueError(f"the JPEG quality factor must be an integer in 1..100; got {quality!r}.")
    if clamp_tables:
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        return torch.floor((base * scale + 50) / 100).clamp(1, 255)
    factor = 50.0 / quality if quality < 50 else (200 - 2 * quality) / 100
    return base * factor


def dct_matrix(size: int = 8) -> Tensor:
    """The orthonormal DCT-II matrix ``D[k, n] = a(k) sqrt(2/size) cos((2n + 1) k pi / (2 size))``.

    For ``size = 8`` the 2-D transform ``D X D^T`` is JPEG's DCT.
    """
    k = torch.arange(size, dtype=torch.float64)[:, None]
    n = torch.arange(size, dtype=torch.float64)[None, :]
    matrix = math.sqrt(2.0 / size) * torch.cos((2 * n + 1) * k * math.pi / (2 * size))
    matrix[0] /= math.sqrt(2.0)
    return matrix


def fancy_upsample(plane: Tensor) -> Tensor:
    """libjpeg's "fancy" 2x upsampling of ``[..., h, w]`` to ``[..., 2h, 2w]`` (edges replicated).

    Separable triangle filter: per axis, ``out[2i] = (3 s[i] + s[i - 1]) / 4`` and
    ``out[2i + 1] = (3 s[i] + s[i + 1]) / 4`` (libjpeg's ``h2v2_fancy_upsample``, without its
    integer rounding bias).
    """
    for dim in (-2, -1):
        before = torch.cat(
            [plane.narrow(dim, 0, 1), plane.narrow(dim, 0, plane.shape[dim] - 1)], dim
        )
        after = torch.cat(
            [plane.narrow(dim, 1, plane.shape[dim] - 1), plane.narrow(dim, -1, 1)], dim
        )
        even, odd = (3 * plane + before) / 4, (3 * plane + after) / 4
        plane = torch.stack([even, odd], dim=dim).flatten(dim - 1, dim)  # interleave along dim
    return plane


def cubic_round(v: Tensor) -> Tensor:
    """DiffJPEG's rounding surrogate ``round(v) + (v - round(v))^3``.

    It equals ``round(v)`` at integers, stays within 1/8 of it, and has the derivative
    ``3 (v - round(v))^2`` (0 at integers, 3/4 next to the jumps at half-integers).
    """
    rounded = torch.round(v)
    return rounded + (v - rounded) ** 3


class JPEG(Operator):
    """Differentiable JPEG encode + decode: ``[B, C, H, W] -> [B, C, H, W]``, ``C`` in {1, 3}.

    Args:
        image_shape: ``(C, H, W)``; ``H, W`` multiples of 8 (grayscale, or colour without chroma
            subsampling) or of 16 (colour with 4:2:0 subsampling).
        quality: the quality factor QF in 1..100 (the Reference's task uses 2).
        rounding: ``"cubic"`` (differentiable surrogate) or ``"hard"``.
        clamp_tables: libjpeg baseline tables (rounded, clamped to 255) instead of DiffJPEG's.
        chroma_subsampling: 4:2:0 (the Reference, Pillow's default) or 4:4:4 (Pillow
            ``subsampling=0``); colour images only.
        chroma_upsampling: ``"nearest"`` (DiffJPEG, the Reference) or ``"fancy"`` (libjpeg's
            decoder, hence Pillow's) for 4:2:0.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        quality: int = 2,
        rounding: Rounding = "cubic",
        clamp_tables: bool = False,
        chroma_subsampling: bool = True,
        chroma_upsampling: Upsampling = "nearest",
    ):
        channels, height, width = image_shape_of(image_shape)
        if channels not in (1, 3):
            raise ValueError(
                f"JPEG needs 1 (gray) or 3 (RGB) channels; got an image shape {image_shape}."
            )
        if rounding not in ("cubic", "hard"):
            raise ValueError(f"rounding must be 'cubic' or 'hard'; got {rounding!r}.")
        if chroma_upsampling not in ("nearest", "fancy"):
            raise ValueError(
                f"chroma_upsampling must be 'nearest' or 'fancy'; got {chroma_upsampling!r}."
            )
        self.subsampled = channels == 3 and chroma_subsampling
        unit = 16 if self.subsampled else 8
        if height % unit or width % unit:
            raise ValueError(
                f"JPEG on a {'colour 4:2:0' if self.subsampled else 'gray or 4:4:4'} image needs "
                f"H and W to be multiples of {unit}; got {height}x{width}."
            )
        self.quality, self.rounding, self.clamp_tables = quality, rounding, clamp_tables
        self.chroma_upsampling = chroma_upsampling
        self.luma_table = quantization_table(LUMINANCE_TABLE, quality, clamp_tables)
        self.chroma_table = quantization_table(CHROMINANCE_TABLE, quality, clamp_tables)
        self.input_shape = self.output_shape = (channels, height, width)
        dct = dct_matrix(8)
        # flat 8x8 block (row-major) -> flat coefficients
        self._dct2 = DeviceCopies(torch.kron(dct, dct))
        self._luma = DeviceCopies(self.luma_table.reshape(64))
        self._chroma = DeviceCopies(self.chroma_table.reshape(64))
        self._rgb_to_ycbcr, self._ycbcr_to_rgb = map(DeviceCopies, (RGB_TO_YCBCR, YCBCR_TO_RGB))

    def forward(self, x: Tensor) -> Tensor:
        u = 127.5 * (x + 1)
        if self.input_shape[0] == 1:
            decoded = self._code_plane(u[:, 0] - 128, self._luma)[:, None] + 128
        else:
            # Y, Cb - 128, Cr - 128
            ycc = torch.einsum("ij,bjhw->bihw", self._rgb_to_ycbcr.like(x), u)
            luma = self._code_plane(ycc[:, 0] - 128, self._luma) + 128
            chroma = F.avg_pool2d(ycc[:, 1:], 2) if self.subsampled else ycc[:, 1:]
            chroma = torch.stack(
                [self._code_plane(chroma[:, i], self._chroma) for i in range(2)], dim=1
            )
            if self.subsampled and self.chroma_upsampling == "fancy":
                chroma = fancy_upsample(chroma)
            elif self.subsampled:
                chroma = chroma.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
            ycc = torch.cat([luma[:, None], chroma], dim=1)
            decoded = torch.einsum("ij,bjhw->bihw", self._ycbcr_to_rgb.like(x), ycc)
        return decoded.clamp(0, 255) / 127.5 - 1

    def _code_plane(self, plane: Tensor, table: DeviceCopies) -> Tensor:
        """DCT, quantise, dequantise and invert one level-shifted plane ``[B, h, w]`` (``Y - 128``,
        ``Cb - 128`` or ``Cr - 128``); returns the decoded plane, still level-shifted."""
        batch, height, width = plane.shape
        blocks = plane.reshape(batch, height // 8, 8, width // 8, 8).transpose(2, 3)
        blocks = blocks.reshape(batch, height // 8, width // 8, 64)
        dct2, steps = self._dct2.like(plane), table.like(plane)
        coefficients = blocks @ dct2.T / steps
        quantised = (
            torch.round(coefficients) if self.rounding == "hard" else cubic_round(coefficients)
        )
        restored = (quantised * steps) @ dct2
        restored = restored.reshape(batch, height // 8, width // 8, 8, 8).transpose(2, 3)
        return restored.reshape(batch, height, width)

    def __repr__(self) -> str:
        colour = "gray" if self.input_shape[0] == 1 else "4:4:4"
        if self.subsampled:
            colour = "4:2:0" + (", fancy upsampling" if self.chroma_upsampling == "fancy" else "")
        tables = "libjpeg" if self.clamp_tables else "DiffJPEG"
        return (
            f"JPEG(quality={self.quality}, {colour}, rounding={self.rounding}, tables={tables}, "
            f"image_shape={self.input_shape})"
        )
