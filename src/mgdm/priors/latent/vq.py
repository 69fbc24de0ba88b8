"""The VQ autoencoder of CompVis latent diffusion (the "first stage" of the ``ldm-…`` checkpoints),
with the parameter names of ``ldm.models.autoencoder.VQModel`` so that the ``first_stage_model.*``
tensors of a latent-diffusion checkpoint load as they are.

Written from the architecture of taming-transformers / latent-diffusion (both MIT; Esser et al.
2021, Rombach et al. 2022), described here in our words (``ch``, ``ch_mult``, ``num_res_blocks``,
``attn_resolutions``, ``z_channels`` as in their ``ddconfig``):

* a residual block is ``GroupNorm(32, eps 1e-6) -> swish -> conv3x3 -> GroupNorm -> swish ->
  dropout -> conv3x3`` plus the input (through a 1x1 ``nin_shortcut`` when the width changes);
  ``swish(x) = x sigmoid(x)``;
* attention (``AttnBlock``) is single-head self-attention over the pixels with 1x1 ``q``, ``k``,
  ``v`` and ``proj_out`` convolutions: ``x + proj_out(v softmax(q^T k / sqrt(C)))``;
* encoder: ``conv_in``, per level ``num_res_blocks`` residual blocks (attention at the listed
  resolutions), between levels a downsampling by an asymmetric zero pad ``(0, 1, 0, 1)`` and a
  stride-2 3x3 convolution; middle block ``block_1, attn_1, block_2``; ``norm_out``, swish,
  ``conv_out`` to ``z_channels``;
* decoder: ``conv_in`` from ``z_channels``, the middle block, per level (coarsest first)
  ``num_res_blocks + 1`` residual blocks and a nearest-neighbour x2 upsampling followed by a 3x3
  convolution, then ``norm_out``, swish, ``conv_out``;
* ``quant_conv`` (1x1, ``z_channels -> embed_dim``), ``post_quant_conv`` (back) and the codebook
  ``quantize.embedding`` (``n_embed`` vectors of ``embed_dim``).

The latent of an image is what LDM's ``VQModelInterface.encode`` returns, ``h = quant_conv(
Enc(x))`` (not quantized), times the latent model's ``scale_factor``. Decoding follows LDM's
``decode_first_stage``: ``z / scale_factor`` is snapped to the nearest codebook vector
(Euclidean), with the straight-through gradient of the training code (``z + (q(z) - z)``
detached: the backward pass sees the identity), then ``Dec(post_quant_conv(.))``. With
``quantize = False`` the snapping is skipped (LDM's ``force_not_quantize``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mgdm.priors.adm import Upsample
from mgdm.priors.latent.autoencoder import Autoencoder, _check_shape


@dataclass(frozen=True)
class VQConfig:
    """The ``first_stage_config.params`` of a CompVis VQ autoencoder (defaults: vq-f4)."""

    embed_dim: int = 3
    n_embed: int = 8192
    z_channels: int = 3
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0

    @property
    def factor(self) -> int:
        """Image side / latent side: ``2^(len(ch_mult) - 1)``."""
        return 2 ** (len(self.ch_mult) - 1)


VQ_F4 = VQConfig()
"""The vq-f4 first stage of the paper's FFHQ latent model (``ffhq-ldm-vq-4``)."""


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


def _swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    """The first stage's residual block (module docstring); no time embedding."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(self.dropout(_swish(self.norm2(h))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the ``H W`` pixels (module docstring)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        h = self.norm(x)
        q, k, v = (layer(h).reshape(b, c, -1).transpose(1, 2) for layer in (self.q, self.k, self.v))
        weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)  # [B, HW, HW]
        out = (weights @ v).transpose(1, 2).reshape(b, c, height, width)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Zero pad right and bottom by one, then a stride-2 3x3 convolution (no padding)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


def _middle(channels: int, dropout: float) -> nn.Module:
    middle = nn.Module()
    middle.block_1 = ResnetBlock(channels, channels, dropout)
    middle.attn_1 = AttnBlock(channels)
    middle.block_2 = ResnetBlock(channels, channels, dropout)
    return middle


def _run_middle(middle: nn.Module, h: Tensor) -> Tensor:
    return middle.block_2(middle.attn_1(middle.block_1(h)))


def _level(
    channels: int, out: int, blocks: int, attention: bool, dropout: float
) -> tuple[nn.Module, int]:
    """One resolution level: ``blocks`` residual blocks ``channels -> out -> … -> out`` (in
    ``block``), each followed by an attention block (in ``attn``) when ``attention``; and the
    channels it ends with."""
    level = nn.Module()
    level.block = nn.ModuleList()
    level.attn = nn.ModuleList()
    for _ in range(blocks):
        level.block.append(ResnetBlock(channels, out, dropout))
        channels = out
        if attention:
            level.attn.append(AttnBlock(channels))
    return level, channels


def _run_level(level: nn.Module, h: Tensor) -> Tensor:
    """The level's residual blocks in turn, each followed by its attention block if any."""
    for i, block in enumerate(level.block):
        h = block(h)
        if len(level.attn) > 0:
            h = level.attn[i](h)
    return h


class Encoder(nn.Module):
    """``x [B, in_channels, R, R] -> [B, z_channels, R / f, R / f]`` (module docstring)."""

    def __init__(self, config: VQConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(config.in_channels, config.ch, 3, padding=1)
        multipliers = (1, *config.ch_mult)
        resolution = config.resolution
        self.down = nn.ModuleList()
        for level, mult in enumerate(config.ch_mult):
            attention = resolution in config.attn_resolutions
            level_module, channels = _level(
                config.ch * multipliers[level],
                config.ch * mult,
                config.num_res_blocks,
                attention,
                config.dropout,
            )
            if level != len(config.ch_mult) - 1:
                level_module.downsample = Downsample(channels)
                resolution //= 2
            self.down.append(level_module)
        self.mid = _middle(channels, config.dropout)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, config.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level_module in self.down:
            h = _run_level(level_module, h)
            if hasattr(level_module, "downsample"):
                h = level_module.downsample(h)
        h = _run_middle(self.mid, h)
        return self.conv_out(_swish(self.norm_out(h)))


class Decoder(nn.Module):
    """``z [B, z_channels, r, r] -> [B, out_ch, r f, r f]`` (module docstring)."""

    def __init__(self, config: VQConfig):
        super().__init__()
        levels = len(config.ch_mult)
        channels = config.ch * config.ch_mult[-1]
        resolution = config.resolution // config.factor
        self.conv_in = nn.Conv2d(config.z_channels, channels, 3, padding=1)
        self.mid = _middle(channels, config.dropout)
        up: list[nn.Module] = []
        for level in reversed(range(levels)):
            out = config.ch * config.ch_mult[level]
            attention = resolution in config.attn_resolutions
            level_module, channels = _level(
                channels, out, config.num_res_blocks + 1, attention, config.dropout
            )
            if level != 0:
                level_module.upsample = Upsample(channels)
                resolution *= 2
            up.insert(0, level_module)
        self.up = nn.ModuleList(up)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, config.out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = _run_middle(self.mid, self.conv_in(z))
        for level_module in reversed(self.up):
            h = _run_level(level_module, h)
            if hasattr(level_module, "upsample"):
                h = level_module.upsample(h)
        return self.conv_out(_swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest codebook vector per latent pixel, with the straight-through gradient."""

    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def forward(self, z: Tensor) -> Tensor:
        """``z [B, embed_dim, h, w]`` -> its quantization (same shape); gradient: identity."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        codebook = self.embedding.weight
        distances = (
            flat.square().sum(1, keepdim=True)
            + codebook.square().sum(1)[None]
            - 2 * flat @ codebook.t()
        )
        nearest = codebook[distances.argmin(1)]
        quantized = nearest.reshape(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        return z + (quantized - z).detach()


class VQModel(nn.Module):
    """The CompVis VQ autoencoder (module docstring): ``encoder``, ``decoder``, ``quantize``,
    ``quant_conv``, ``post_quant_conv``."""

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(config.n_embed, config.embed_dim)
        self.quant_conv = nn.Conv2d(config.z_channels, config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    def encode(self, x: Tensor) -> Tensor:
        """``quant_conv(Enc(x))``, ``[B, embed_dim, R / f, R / f]`` (not quantized)."""
        return self.quant_conv(self.encoder(x))

    def decode(self, h: Tensor, quantize: bool = True) -> Tensor:
        """``Dec(post_quant_conv(q(h)))`` (``q`` the identity when ``quantize`` is false)."""
        if quantize:
            h = self.quantize(h)
        return self.decoder(self.post_quant_conv(h))


class VQAutoencoder(Autoencoder):
    """A :class:`VQModel` as a latent prior's autoencoder: ``Enc(x) = s quant_conv(E(x))``,
    ``Dec(z) = D(post_quant_conv(q(z / s)))`` with ``s = scale_factor`` (module docstring).

    Args:
        model: the VQ model (put in eval mode, parameters frozen).
        scale_factor: LDM's ``scale_factor`` (1 for the vq-f4 FFHQ model).
        quantize: snap latents to the codebook before decoding (LDM's default).
    """

    def __init__(self, model: VQModel, scale_factor: float = 1.0, quantize: bool = True):
        if not (math.isfinite(scale_factor) and scale_factor > 0):
            raise ValueError(f"scale_factor must be a positive number; got {scale_factor!r}.")
        model.eval()
        model.requires_grad_(False)
        self.model = model
        config = model.config
        side = config.resolution // config.factor
        self.image_shape = (config.in_channels, config.resolution, config.resolution)
        self.latent_shape = (config.embed_dim, side, side)
        self.scale_factor = float(scale_factor)
        self.quantize = quantize

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def encode(self, x: Tensor) -> Tensor:
        _check_shape(x, self.image_shape, "images")
        return (self.model.encode(x.to(self.dtype)) * self.scale_factor).to(x.dtype)

    def decode(self, z: Tensor) -> Tensor:
        _check_shape(z, self.latent_shape, "latents")
        h = z.to(self.dtype) / self.scale_factor
        return self.model.decode(h, self.quantize).to(z.dtype)
