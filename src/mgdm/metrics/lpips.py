"""LPIPS (Zhang et al., *The Unreasonable Effectiveness of Deep Features as a Perceptual Metric*,
CVPR 2018) with an AlexNet trunk, from weights the user holds on disk.

Written from the paper's description; no weights ship with the project and nothing is
downloaded. The distance between images ``x`` and ``x'`` ``[3, H, W]`` in ``[-1, 1]`` is

``d(x, x') = sum_k 1/(H_k W_k) sum_{h, w} sum_c w_{k,c} (f^_k(x)_{c,h,w} - f^_k(x')_{c,h,w})^2``

where ``f_k`` (``k = 0 … 4``) are the ReLU outputs of AlexNet's five convolutions on the input
shifted and scaled per channel, ``(x - shift) / scale``, ``f^_k = f_k / (||f_k||_2 + 1e-10)`` is
unit-normalised along the channels at every pixel, and ``w_k >= 0`` are the learned linear
heads (``C_k`` weights each, a 1 x 1 convolution to one channel). Grey images are repeated to
three channels.

Weights: one file (``.safetensors`` or a torch file read with ``weights_only=True``) holding

* the trunk under torchvision's AlexNet names: ``features.{0,3,6,8,10}.{weight,bias}``
  (torchvision's ``alexnet().features`` state dict, saved with a ``features.`` prefix);
* the heads under the LPIPS v0.1 release names: ``lin{0..4}.model.1.weight`` of shape
  ``[1, C_k, 1, 1]`` with ``C = 64, 192, 384, 256, 256``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mgdm.checkpoints import load_state_dict_checked, read_state_dict

TRUNK_CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)
"""Channels of the five tapped AlexNet layers (relu1 … relu5)."""

SHIFT: tuple[float, float, float] = (-0.030, -0.088, -0.188)
SCALE: tuple[float, float, float] = (0.458, 0.448, 0.450)
"""LPIPS's input normalisation ``(x - shift) / scale`` per RGB channel, for ``x`` in ``[-1, 1]``
(ImageNet's channel means and standard deviations in those units)."""

MIN_SIZE = 31
"""The smallest height and width the AlexNet trunk accepts (both 3 x 3 max-pools need >= 3 px)."""

_TAPS = (1, 4, 7, 9, 11)
"""Indices in ``features`` of the ReLUs whose outputs are compared."""

_EPS = 1e-10


def _alexnet_features() -> nn.Sequential:
    """AlexNet's convolutional trunk up to relu5, indexed as torchvision's ``features``."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
    )


class LinearHead(nn.Module):
    """A 1 x 1 convolution ``C -> 1`` without bias, stored as ``model.1.weight``.

    Index 0 is LPIPS's dropout, inactive at evaluation; an identity keeps the key names."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _unit_normalise(features: Tensor) -> Tensor:
    """``f / (||f||_2 + eps)`` along the channels of ``[B, C, H, W]``."""
    return features / (features.norm(dim=1, keepdim=True) + _EPS)


class LPIPS(nn.Module):
    """The LPIPS distance (see the module docstring); weights from :func:`load_lpips`."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _alexnet_features()
        for k, channels in enumerate(TRUNK_CHANNELS):
            self.add_module(f"lin{k}", LinearHead(channels))
        self.register_buffer("shift", torch.tensor(SHIFT).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).reshape(1, 3, 1, 1), persistent=False)

    def _taps(self, images: Tensor) -> list[Tensor]:
        """The five unit-normalised feature maps of ``[B, 3, H, W]`` images."""
        x = (images - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                taps.append(_unit_normalise(x))
        return taps

    def forward(self, images: Tensor, reference: Tensor) -> Tensor:
        """``d(images[b], reference[b])`` for ``[B, C, H, W]`` batches in ``[-1, 1]`` (``C`` = 1
        or 3; ``reference`` may be one ``[C, H, W]`` image); returns ``[B]``."""
        images, reference = _rgb(images), _rgb(reference.to(images))
        if (
            reference.shape[0] not in (1, images.shape[0])
            or reference.shape[1:] != images.shape[1:]
        ):
            raise ValueError(
                f"LPIPS: the reference {list(reference.shape)} does not match the images "
                f"{list(images.shape)}."
            )
        reference = reference.expand_as(images)
        distance = torch.zeros(images.shape[0], dtype=images.dtype, device=images.device)
        for k, (a, b) in enumerate(zip(self._taps(images), self._taps(reference))):
            head = getattr(self, f"lin{k}")
            distance = distance + head((a - b) ** 2).mean(dim=(1, 2, 3))
        return distance


def _rgb(images: Tensor) -> Tensor:
    """``[B, 3, H, W]`` from ``[B, 1 | 3, H, W]`` or ``[1 | 3, H, W]`` (grey repeated)."""
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"LPIPS takes [B, 1 or 3, H, W] images; got {list(images.shape)}.")
    if min(images.shape[-2:]) < MIN_SIZE:
        raise ValueError(
            f"LPIPS (AlexNet trunk) needs images of at least {MIN_SIZE} x {MIN_SIZE} px; "
            f"got {list(images.shape[-2:])}."
        )
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def load_lpips(path: Path | str, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS with the trunk and heads of the file ``path`` (names in the module docstring), in
    eval mode without gradients. ``ValueError`` names missing, unexpected and mis-shaped keys."""
    model = LPIPS()
    load_state_dict_checked(model, read_state_dict(path), f"LPIPS weights {path}")
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def lpips(images: Tensor, reference: Tensor, model: LPIPS) -> Tensor:
    """``d(images[b], reference)`` in float32, ``[B]``; see :class:`LPIPS`."""
    return model(images.float(), reference.float())
