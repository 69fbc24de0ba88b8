"""The ADM UNet of guided-diffusion (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image
Synthesis"), written from the paper and the options documented by openai/guided-diffusion, with
parameter names identical to that repository's so its released ``.pt`` state dicts load as is.

Architecture (``c = num_channels``, ``mult = channel_mult``, time embedding width ``4c``):

* time embedding: sinusoidal ``[cos(tau f_i), sin(tau f_i)]``, ``f_i = 10000^{-i / (c/2)}``
  (``c`` wide, ``tau`` the integer DDPM step), then ``Linear(c, 4c)``, SiLU, ``Linear(4c, 4c)``;
* encoder: a 3x3 convolution to ``mult[0] c`` channels, then per level ``num_res_blocks``
  residual blocks (attention after each block at the downsampling rates listed in
  ``attention_resolutions``), and between levels a downsampling (a residual block with average
  pooling when ``resblock_updown``, else a stride-2 convolution);
* middle: residual block, attention, residual block;
* decoder: per level ``num_res_blocks + 1`` residual blocks on the concatenation with the skip
  activations, attention as in the encoder, upsampling between levels (a residual block with
  nearest-neighbour upsampling, or nearest upsampling and a 3x3 convolution);
* output: GroupNorm, SiLU, 3x3 convolution to ``C`` (or ``2C`` with ``learn_sigma``) channels.

A residual block is ``GroupNorm(32) -> SiLU -> conv3x3``, then the time embedding through
``SiLU -> Linear`` either added (``h + e``) or, with ``use_scale_shift_norm``, as
``GroupNorm(h) (1 + scale) + shift``, then ``SiLU -> Dropout -> conv3x3`` and the skip (identity
or a 1x1 convolution when the width changes). Attention is multi-head self-attention over the
pixels, from one 1x1 ``qkv`` projection, with ``num_head_channels`` channels per head (or
``num_heads`` heads); the legacy order splits heads before q/k/v, the "new" order q/k/v first.
GroupNorms run in float32; with ``use_fp16`` the convolutions of the encoder, middle and decoder
hold float16 weights (the released checkpoints store float32 weights; ``use_fp16`` is only how
they were sampled). No preset sets it: the network runs float32 unless the user asks for another
precision (``--precision bf16|fp16``, ``Sampler.sample(precision=...)``: autocast around the
network calls, :mod:`mgdm.devices`). Float16 convolutions on a CPU are very slow (one 256 x 256
forward of the ImageNet options had not finished after 35 CPU-minutes).

Checkpoints used by the MGDM paper (flags as guided-diffusion's ``image_sample.py`` takes them;
unlisted flags keep that script's defaults: ``num_heads 4, num_heads_upsample -1, dropout 0.0,
use_new_attention_order False, channel_mult '' -> (1, 1, 2, 2, 4, 4) at 256``):

* ImageNet 256 unconditional (``256x256_diffusion_uncond.pt``, :data:`IMAGENET_256_UNCOND`):
  ``--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --image_size 256
  --learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64
  --num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True``
  (guided-diffusion README; the DPS configuration ``imagenet_model_config.yaml`` agrees except
  ``use_fp16 False``). Our preset keeps every flag but ``use_fp16``, which it sets to False:
  precision is the sampler's setting, not the checkpoint's (the float32 network matches
  guided-diffusion's own float32 network to 1e-6, as measured for issue 18).
* FFHQ 256 as used by DPS (``ffhq_10m.pt``, :data:`FFHQ_256`): ``image_size 256, num_channels 128,
  num_res_blocks 1, channel_mult '', learn_sigma True, class_cond False, attention_resolutions 16,
  num_heads 4, num_head_channels 64, num_heads_upsample -1, use_scale_shift_norm True,
  dropout 0.0, resblock_updown True, use_fp16 False, use_new_attention_order False``, linear
  schedule, 1000 steps (DPS ``configs/model_config.yaml``).

Both predict epsilon in their first 3 output channels (``learn_sigma``: 6 channels) and are
called with the integer DDPM step ``tau`` in ``0 … 999`` (``rescale_timesteps False``); see
:mod:`mgdm.priors.neural` for how our times map to ``tau``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mgdm.checkpoints import load_state_dict_checked, read_state_dict
from mgdm.diffusion.schedules import NUM_TIMESTEPS, Schedule, schedule_from_betas
from mgdm.priors.neural import EpsilonNetworkPrior, ddpm_betas

_DEFAULT_CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}


@dataclass(frozen=True)
class ADMConfig:
    """guided-diffusion's model and diffusion flags (defaults: those of its sampling scripts).

    ``attention_resolutions`` are image sizes in pixels (``"32,16,8"``), ``channel_mult`` a comma
    list or ``""`` for the default of the image size. ``in_channels`` is an extension (guided-
    diffusion fixes 3). Class-conditional models are not supported (the priors are unconditional).
    """

    image_size: int = 64
    num_channels: int = 128
    num_res_blocks: int = 2
    attention_resolutions: str = "16,8"
    channel_mult: str = ""
    learn_sigma: bool = False
    class_cond: bool = False
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    dropout: float = 0.0
    resblock_updown: bool = False
    use_fp16: bool = False
    use_new_attention_order: bool = False
    in_channels: int = 3
    diffusion_steps: int = NUM_TIMESTEPS
    noise_schedule: Literal["linear", "cosine"] = "linear"

    def channel_multipliers(self) -> tuple[float, ...]:
        if self.channel_mult:
            return tuple(float(v) if "." in v else int(v) for v in self.channel_mult.split(","))
        if self.image_size not in _DEFAULT_CHANNEL_MULT:
            raise ValueError(
                f"no default channel_mult for image_size {self.image_size}; give channel_mult, e.g. '1,2,2'."
            )
        return _DEFAULT_CHANNEL_MULT[self.image_size]

    def attention_rates(self) -> tuple[int, ...]:
        """Downsampling rates ``image_size // resolution`` at which attention is used."""
        if not self.attention_resolutions:
            return ()
        return tuple(self.image_size // int(r) for r in self.attention_resolutions.split(","))

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)

    def schedule(self) -> Schedule:
        """Our schedule for ``noise_schedule`` (guided-diffusion scales linear betas by 1000/T)."""
        if self.diffusion_steps != NUM_TIMESTEPS:
            raise ValueError(
                f"only diffusion_steps = {NUM_TIMESTEPS} fits our time scale; got {self.diffusion_steps}."
            )
        return schedule_from_betas(
            ddpm_betas(self.noise_schedule), name=f"adm-{self.noise_schedule}"
        )


IMAGENET_256_UNCOND = ADMConfig(
    image_size=256,
    num_channels=256,
    num_res_blocks=2,
    attention_resolutions="32,16,8",
    learn_sigma=True,
    num_head_channels=64,
    resblock_updown=True,
    use_fp16=False,
    use_scale_shift_norm=True,
)
"""guided-diffusion's ``256x256_diffusion_uncond.pt`` (ImageNet 256, unconditional), run float32
(guided-diffusion samples it with ``--use_fp16 True``; ask for ``--precision fp16`` for that)."""

FFHQ_256 = ADMConfig(
    image_size=256,
    num_channels=128,
    num_res_blocks=1,
    attention_resolutions="16",
    learn_sigma=True,
    num_heads=4,
    num_head_channels=64,
    resblock_updown=True,
    use_fp16=False,
    use_scale_shift_norm=True,
)
"""The FFHQ 256 model used by DPS (``ffhq_10m.pt``)."""


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in float32, returned in the input's dtype."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).to(x.dtype)


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """``[cos(tau f), sin(tau f)]`` with ``f_i = max_period^{-i / half}``, ``i < half = dim // 2``;
    zero-padded to ``dim`` when odd. ``timesteps`` ``[B]`` -> float32 ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=timesteps.device)
        / half
    )
    angles = timesteps.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(embedding, (0, dim % 2))


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding; optionally resamples (``"up"``/``"down"``)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int,
        use_scale_shift_norm: bool,
        resample: Literal["up", "down"] | None = None,
    ):
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.resample = resample
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(
            nn.SiLU(),
            nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels),
        )
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        nn.init.zeros_(self.out_layers[3].weight)
        nn.init.zeros_(self.out_layers[3].bias)
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers[1](self.in_layers[0](x))
        h = self.in_layers[2](self._resample(h))
        x = self._resample(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the ``H W`` pixels with a residual connection.

    ``qkv = Conv1x1(GroupNorm(x))`` ``[B, 3C, T]``; legacy order: per head, channels
    ``[q | k | v]`` (``ch = C / heads`` each); new order: ``[q | k | v]`` each split into heads.
    ``out = x + Conv1x1(softmax(q^T k / sqrt(ch)) v)``.
    """

    def __init__(self, channels: int, num_heads: int, num_head_channels: int, new_order: bool):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(
                    f"channels {channels} not divisible by num_head_channels {num_head_channels}."
                )
            self.num_heads = channels // num_head_channels
        self.new_order = new_order
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))
        length, heads = qkv.shape[-1], self.num_heads
        ch = c // heads
        if self.new_order:
            q, k, v = (t.reshape(b * heads, ch, length) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * heads, 3 * ch, length).split(ch, dim=1)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2).float(), k.transpose(1, 2).float(), v.transpose(1, 2).float()
        )  # [B*heads, T, ch], softmax in float32
        h = attended.transpose(1, 2).reshape(b, c, length).to(qkv.dtype)
        return (flat + self.proj_out(h)).reshape(b, c, height, width)


class Downsample(nn.Module):
    """A stride-2 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling, then a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepSequential(nn.Sequential):
    """Layers applied in turn; residual blocks also receive the time embedding."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ADMUNet(nn.Module):
    """The guided-diffusion UNet: ``forward(x [B, C, H, W], tau [B]) -> [B, out_channels, H, W]``."""

    def __init__(self, config: ADMConfig):
        super().__init__()
        if config.class_cond:
            raise ValueError(
                "class-conditional ADM models are not supported (the priors here are unconditional)."
            )
        self.config = config
        c = config.num_channels
        mults = config.channel_multipliers()
        rates = config.attention_rates()
        emb_dim = 4 * c
        heads_up = (
            config.num_heads if config.num_heads_upsample == -1 else config.num_heads_upsample
        )

        def res(cin: int, cout: int, resample: Literal["up", "down"] | None = None) -> ResBlock:
            return ResBlock(
                cin, emb_dim, config.dropout, cout, config.use_scale_shift_norm, resample
            )

        def attention(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(
                ch, heads, config.num_head_channels, config.use_new_attention_order
            )

        self.time_embed = nn.Sequential(
            nn.Linear(c, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        ch = input_ch = int(mults[0] * c)
        self.input_blocks = nn.ModuleList(
            [TimestepSequential(nn.Conv2d(config.in_channels, ch, 3, padding=1))]
        )
        skip_channels = [ch]
        rate = 1
        for level, mult in enumerate(mults):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(mult * c))]
                ch = int(mult * c)
                if rate in rates:
                    layers.append(attention(ch, config.num_heads))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_channels.append(ch)
            if level != len(mults) - 1:
                down = res(ch, ch, "down") if config.resblock_updown else Downsample(ch)
                self.input_blocks.append(TimestepSequential(down))
                skip_channels.append(ch)
                rate *= 2
        self.middle_block = TimestepSequential(
            res(ch, ch), attention(ch, config.num_heads), res(ch, ch)
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for i in range(config.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), int(c * mult))]
                ch = int(c * mult)
                if rate in rates:
                    layers.append(attention(ch, heads_up))
                if level and i == config.num_res_blocks:
                    layers.append(res(ch, ch, "up") if config.resblock_updown else Upsample(ch))
                    rate //= 2
                self.output_blocks.append(TimestepSequential(*layers))
        self.out = nn.Sequential(
            GroupNorm32(ch), nn.SiLU(), nn.Conv2d(input_ch, config.out_channels, 3, padding=1)
        )
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)
        if config.use_fp16:
            for part in (self.input_blocks, self.middle_block, self.output_blocks):
                for module in part.modules():
                    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                        module.half()

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        """``x`` ``[B, in_channels, H, W]``, ``timesteps`` ``[B]`` (DDPM steps) -> ``[B, out_channels, H, W]``."""
        emb = self.time_embed(timestep_embedding(timesteps, self.config.num_channels))
        h = x.to(self.input_blocks[0][0].weight.dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.to(x.dtype))


def load_adm_unet(
    checkpoint: Path | str, config: ADMConfig, device: torch.device | str = "cpu"
) -> ADMUNet:
    """An :class:`ADMUNet` with the weights of a guided-diffusion checkpoint.

    ``checkpoint``: a ``.safetensors`` file or a torch state dict (``.pt``), loaded with
    ``weights_only=True``. Raises ``ValueError`` naming missing/unexpected keys and shape
    mismatches when the checkpoint does not fit ``config``.
    """
    model = ADMUNet(config)
    load_state_dict_checked(model, read_state_dict(checkpoint), f"checkpoint {checkpoint}")
    return model.to(device)


def load_adm_prior(
    checkpoint: Path | str,
    config: ADMConfig,
    device: torch.device | str = "cpu",
    network_time_offset: int = 0,
) -> EpsilonNetworkPrior:
    """A guided-diffusion checkpoint as a prior on ``[in_channels, image_size, image_size]`` images
    in ``[-1, 1]``: epsilon prediction (first ``C`` channels with ``learn_sigma``), the schedule of
    ``config.noise_schedule``, times mapped as in :mod:`mgdm.priors.neural`."""
    return EpsilonNetworkPrior(
        load_adm_unet(checkpoint, config, device),
        (config.in_channels, config.image_size, config.image_size),
        schedule=config.schedule(),
        prediction="epsilon",
        learn_sigma=config.learn_sigma,
        network_time_offset=network_time_offset,
    )
