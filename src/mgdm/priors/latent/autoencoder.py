"""The autoencoder of a latent prior: ``Enc: x [B, C, H, W] -> z [B, C_z, h, w]`` and ``Dec`` back.

Images live in ``[-1, 1]`` (:data:`IMAGE_RANGE`); latents are whatever the diffusion model was
trained on. For a diffusers ``AutoencoderKL`` (Stable Diffusion's VAE, or the one trained by
``mgdm train autoencoder``) that is the posterior mean ``m(x)`` of the encoder, shifted and scaled
as diffusers' pipelines do::

    Enc(x) = (m(x) - shift) * scaling          Dec(z) = vae_decoder(z / scaling + shift)

with ``scaling = config.scaling_factor`` (``1 / std`` of the training latents, 0.18215 for
Stable Diffusion 1.x) and ``shift = config.shift_factor`` (``None``: 0).

Models are read by diffusers' own ``from_pretrained`` (safetensors, or ``.bin`` with
``weights_only=True``), which renames the legacy attention names of old VAE checkpoints
(``query``/``key``/``value``/``proj_attn``); every tensor is then checked to fit
(:func:`mgdm.priors.diffusers_loader.from_pretrained_checked`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mgdm.checkpoints import read_json_object
from mgdm.priors.diffusers_loader import WEIGHT_FILES, from_pretrained_checked

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

IMAGE_RANGE: tuple[float, float] = (-1.0, 1.0)
"""The range of decoded images; final samples are clamped to it."""


class Autoencoder(ABC):
    """A differentiable encoder/decoder pair between images and latents.

    Attributes:
        image_shape: ``(C, H, W)`` of one image.
        latent_shape: ``(C_z, h, w)`` of one latent.
    """

    image_shape: tuple[int, ...]
    latent_shape: tuple[int, ...]

    @abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """``Enc(x)``: ``[B, *image_shape] -> [B, *latent_shape]`` (differentiable)."""

    @abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """``Dec(z)``: ``[B, *latent_shape] -> [B, *image_shape]`` (differentiable)."""


def _check_shape(x: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"expected {what} of shape [B, {', '.join(map(str, shape))}]; got {list(x.shape)}."
        )


class KLAutoencoder(Autoencoder):
    """A diffusers ``AutoencoderKL`` with the scaling of its latents (module docstring).

    Args:
        vae: the model (put in eval mode, parameters frozen).
        image_size: ``(H, W)`` (or one side) of the images; a multiple of the downsampling
            factor ``2^(levels - 1)``, ``levels = len(block_out_channels)``.
        scaling_factor, shift_factor: override ``vae.config``'s values.

    Inputs are cast to the VAE's dtype and outputs returned in the input's dtype.
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        image_size: int | tuple[int, int],
        scaling_factor: float | None = None,
        shift_factor: float | None = None,
    ):
        config = vae.config
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        factor = downsampling_factor(vae)
        if height % factor or width % factor:
            raise ValueError(
                f"images of {height} x {width} pixels do not fit an autoencoder downsampling by "
                f"{factor}: both sides must be multiples of it."
            )
        vae.eval()
        vae.requires_grad_(False)
        self.vae = vae
        self.image_shape = (int(config.in_channels), int(height), int(width))
        self.latent_shape = (int(config.latent_channels), height // factor, width // factor)
        self.scaling_factor = float(
            config.scaling_factor if scaling_factor is None else scaling_factor
        )
        shift = config.get("shift_factor") if shift_factor is None else shift_factor
        self.shift_factor = 0.0 if shift is None else float(shift)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def encode(self, x: Tensor) -> Tensor:
        _check_shape(x, self.image_shape, "images")
        mean = self.vae.encode(x.to(self.dtype)).latent_dist.mean
        return ((mean - self.shift_factor) * self.scaling_factor).to(x.dtype)

    def decode(self, z: Tensor) -> Tensor:
        _check_shape(z, self.latent_shape, "latents")
        unscaled = z.to(self.dtype) / self.scaling_factor + self.shift_factor
        return self.vae.decode(unscaled).sample.to(z.dtype)


def downsampling_factor(vae: AutoencoderKL) -> int:
    """``2^(levels - 1)``: image side / latent side of an ``AutoencoderKL``."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def build_autoencoder(
    channels: tuple[int, ...],
    latent_channels: int,
    seed: int,
    image_channels: int = 1,
    image_size: int = 32,
) -> AutoencoderKL:
    """A fresh ``AutoencoderKL``: one ResNet layer per level, ``block_out_channels = channels``
    (``len(channels)`` levels, downsampling by ``2^(len - 1)``), GroupNorm with
    ``gcd(32, *channels)`` groups, ``scaling_factor = 1`` (the latent prior's trainer sets the
    real one). Weights from ``torch.manual_seed(seed)``; the global RNG state is restored."""
    from diffusers import AutoencoderKL

    levels = len(channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(
            in_channels=image_channels,
            out_channels=image_channels,
            down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels,
            block_out_channels=tuple(channels),
            layers_per_block=1,
            latent_channels=latent_channels,
            norm_num_groups=math.gcd(32, *channels),
            sample_size=image_size,
            scaling_factor=1.0,
        )


def weights_file(folder: Path) -> Path:
    """The weight file of a diffusers model folder (safetensors preferred)."""
    weights = next((folder / n for n in WEIGHT_FILES if (folder / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(
            f"no weights in {folder}: expected one of {', '.join(WEIGHT_FILES)}."
        )
    return weights


def load_autoencoder_kl(vae_dir: Path | str, device: torch.device | str = "cpu") -> AutoencoderKL:
    """The ``AutoencoderKL`` of ``vae_dir`` (``config.json`` + weights) read by diffusers'
    ``from_pretrained``, weights checked (:func:`mgdm.priors.diffusers_loader.from_pretrained_checked`)."""
    from diffusers import AutoencoderKL

    vae_dir = Path(vae_dir)
    config_path = vae_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no autoencoder in {vae_dir}: expected {config_path}.")
    config = read_json_object(config_path)
    if config.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise ValueError(
            f"{vae_dir} holds a {config['_class_name']}; only AutoencoderKL is supported."
        )
    weights = weights_file(vae_dir)
    return from_pretrained_checked(AutoencoderKL, vae_dir, f"weights {weights}").to(device)


def latent_scaling_factor(latents: Tensor) -> float:
    """``1 / std`` of all entries of ``latents`` ``[N, C_z, h, w]`` (float64), Stable Diffusion's
    rule for the ``scaling_factor`` that gives the diffusion model unit-variance data."""
    std = float(latents.detach().to(torch.float64).std())
    if not math.isfinite(std) or std <= 0:
        raise ValueError(f"the latents have std {std}; cannot scale them to unit variance.")
    return 1.0 / std


def encode_images(autoencoder: Autoencoder, images: Tensor, batch_size: int = 256) -> Tensor:
    """``Enc(images)`` in batches without gradient: ``[N, *image_shape] -> [N, *latent_shape]``
    on the images' device."""
    with torch.no_grad():
        return torch.cat([autoencoder.encode(x) for x in images.split(batch_size)])


def reconstruction_psnr(autoencoder: Autoencoder, images: Tensor, batch_size: int = 256) -> Tensor:
    """PSNR in dB of ``clamp(Dec(Enc(x)), -1, 1)`` against each image ``x`` of ``images``
    ``[N, *image_shape]`` in ``[-1, 1]`` (peak-to-peak 2); returns ``[N]``."""
    from mgdm.metrics.image_quality import psnr

    scores = []
    with torch.no_grad():
        for x in images.split(batch_size):
            reconstruction = autoencoder.decode(autoencoder.encode(x)).clamp(*IMAGE_RANGE)
            scores.append(psnr(reconstruction, x))
    return torch.cat(scores)


def evaluate_autoencoder(
    vae_dir: Path | str, limit: int | None = None, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Reconstruction PSNR of the ``AutoencoderKL`` in ``vae_dir`` on the first ``limit`` (``None``:
    all 10,000) Fashion-MNIST test images: ``{"images", "psnr_mean", "psnr_std"}`` in dB."""
    from mgdm.data.fashion_mnist import load_fashion_mnist

    vae = load_autoencoder_kl(vae_dir, device)
    images = load_fashion_mnist("test", limit=limit).images.to(device)
    autoencoder = KLAutoencoder(vae, tuple(images.shape[2:]))
    scores = reconstruction_psnr(autoencoder, images).double()
    return {
        "images": int(scores.numel()),
        "psnr_mean": float(scores.mean()),
        "psnr_std": float(scores.std()) if scores.numel() > 1 else 0.0,
    }
