"""Fourier phase retrieval: the observation is the magnitude of an oversampled Fourier transform."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mgdm.operators.base import Operator, image_shape_of


class PhaseRetrieval(Operator):
    """``A(x) = |shift(FFT2(shift^-1(P((x + 1) / 2))))|``.

    Shapes: ``[B, C, H, W] -> [B, C, H + 2 p_h, W + 2 p_w]``.

    ``P`` zero-pads ``p_h = int(oversampling / 8 * H)`` rows and ``p_w = int(oversampling / 8 * W)``
    columns on each side (the Reference's rule, with the image size in place of its hard-coded
    256: 32 -> 48, 64 -> 96, 256 -> 384 for ``oversampling = 2``); ``FFT2`` is the orthonormal 2-D
    DFT per channel, centred by ``ifftshift`` before and ``fftshift`` after (docs/tasks.md, "8. Phase retrieval").

    The magnitude does not change under a circular translation of the padded image, under
    ``u -> -u`` (``x -> -x - 2``), nor under the point reflection ``u[n] -> u[-n mod N]`` (the
    conjugate flip): a 180-degree rotation of the image, up to a translation. Non-linear, no
    adjoint; the gradient at a zero Fourier coefficient is taken as 0 (``torch.abs``).

    Args:
        image_shape: ``(C, H, W)``.
        oversampling: the padding rule's factor (2.0 in the Reference).
    """

    def __init__(self, image_shape: tuple[int, int, int], oversampling: float = 2.0):
        channels, height, width = image_shape_of(image_shape)
        if not (math.isfinite(oversampling) and oversampling >= 0):
            raise ValueError(f"oversampling must be a finite number >= 0; got {oversampling!r}.")
        self.oversampling = float(oversampling)
        self.pad = (int(oversampling / 8 * height), int(oversampling / 8 * width))
        self.input_shape = (channels, height, width)
        self.output_shape = (channels, height + 2 * self.pad[0], width + 2 * self.pad[1])

    def forward(self, x: Tensor) -> Tensor:
        ph, pw = self.pad
        padded = F.pad((x + 1) / 2, (pw, pw, ph, ph))
        spectrum = torch.fft.fft2(torch.fft.ifftshift(padded, dim=(-2, -1)), norm="ortho")
        return torch.fft.fftshift(spectrum, dim=(-2, -1)).abs()

    def __repr__(self) -> str:
        return (
            f"PhaseRetrieval(oversampling={self.oversampling:g}, pad={self.pad}, "
            f"image_shape={self.input_shape})"
        )
