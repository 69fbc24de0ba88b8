"""A small 1-D UNet ``eps_theta(x [B, C, L], t int64 [B]) -> [B, C, L]`` for waveform diffusion.

Layout, for ``channels = (c_0, …, c_{n-1})`` and ``factors = (f_1, …, f_{n-1})``:

* **time embedding** ``e = MLP(sinusoid(t))``: ``c_0`` sinusoidal features of the integer time
  (periods up to 10,000 steps), then ``Linear -> SiLU -> Linear`` to ``4 c_0`` features;
* **input** ``Conv1d(C, c_0, 7)``;
* **down path**: at level ``i`` (length ``L / (f_1 … f_i)``), ``blocks`` residual blocks with
  ``c_i`` channels, whose output is kept for the skip connection, then (except at the last
  level) ``Conv1d(c_i, c_{i+1}, kernel f_{i+1}, stride f_{i+1})``;
* **middle**: residual block, multi-head self-attention over the time axis (optional), residual
  block, at the lowest resolution;
* **up path**, mirrored: at each level the skip is concatenated and ``blocks`` residual blocks
  map back to ``c_i`` channels, then (except at the top) nearest-neighbour upsampling by
  ``f_i`` and ``Conv1d(c_i, c_{i-1}, 3)``;
* **output** ``GroupNorm -> SiLU -> Conv1d(c_0, C, 7)``.

A residual block is ``h = Conv(SiLU(GN(x))) + Linear(SiLU(e))``, ``out = skip(x) + Conv(SiLU(GN(h)))``
with ``kernel_size`` convolutions, GroupNorm of ``gcd(groups, channels)`` groups and a 1x1
convolution as ``skip`` when the channel count changes. ``L`` must be divisible by
``prod(factors)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class UNet1DConfig:
    """The architecture of :class:`UNet1D` (saved with a prior as JSON).

    Attributes:
        in_channels: ``C``, channels of the signal (4 stems jointly, or 1).
        channels: feature channels per level, top first (1 to 6 levels).
        factors: downsampling factor between consecutive levels (``len(channels) - 1`` entries).
        blocks: residual blocks per level on each path.
        attention: self-attention in the middle block (its cost is quadratic in the lowest
            resolution's length ``L / prod(factors)``: 256 for the defaults at ``L = 16384``).
        kernel_size: odd kernel size of the residual blocks' convolutions.
        groups: GroupNorm groups (``gcd(groups, channels)`` per layer).
        head_channels: channels per attention head.
    """

    in_channels: int = 4
    channels: tuple[int, ...] = (32, 64, 96, 128)
    factors: tuple[int, ...] = (4, 4, 4)
    blocks: int = 1
    attention: bool = True
    kernel_size: int = 5
    groups: int = 8
    head_channels: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "factors", tuple(self.factors))

        def positive(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        if not 1 <= len(self.channels) <= 6 or not all(positive(c) for c in self.channels):
            raise ValueError(
                f"channels must be 1 to 6 positive integers (one per level); got {list(self.channels)}."
            )
        if len(self.factors) != len(self.channels) - 1 or not all(
            positive(f) and f >= 2 for f in self.factors
        ):
            raise ValueError(
                f"factors must hold {len(self.channels) - 1} integers >= 2 (one between consecutive "
                f"levels of channels {list(self.channels)}); got {list(self.factors)}."
            )
        for name in ("in_channels", "blocks", "groups", "head_channels"):
            if not positive(getattr(self, name)):
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}.")
        if not positive(self.kernel_size) or self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be a positive odd integer; got {self.kernel_size!r}."
            )

    @property
    def total_factor(self) -> int:
        """``prod(factors)``: the length of a signal must be a multiple of it."""
        return math.prod(self.factors)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "channels": list(self.channels), "factors": list(self.factors)}


def timestep_features(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features ``[cos(t w_k), sin(t w_k)]`` with ``w_k = max_period^(-k / (dim/2))``;
    ``t`` ``[B]`` -> ``[B, dim]`` (float32; a zero column pads an odd ``dim``)."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=t.device)
        / max(half, 1)
    )
    angles = t.to(torch.float32)[:, None] * frequencies[None, :]
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(features, (0, dim - 2 * half))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResidualBlock(nn.Module):
    """GroupNorm/SiLU/Conv twice, the time embedding added in between, plus a skip."""

    def __init__(self, cin: int, cout: int, embedding: int, kernel_size: int, groups: int):
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv1d(cin, cout, kernel_size, padding=kernel_size // 2)
        self.time = nn.Linear(embedding, cout)
        self.norm2 = _norm(cout, groups)
        self.conv2 = nn.Conv1d(cout, cout, kernel_size, padding=kernel_size // 2)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(F.silu(embedding))[:, :, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the time axis, residual: ``x + proj(attn(GN(x)))``."""

    def __init__(self, channels: int, groups: int, head_channels: int):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, length = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(batch, 3, self.heads, -1, length).unbind(1)
        out = F.scaled_dot_product_attention(
            q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3)
        )
        return x + self.proj(out.transpose(2, 3).reshape(batch, channels, length))


class UNet1D(nn.Module):
    """The epsilon network (see the module docstring): ``forward(x [B, C, L], t [B]) -> [B, C, L]``."""

    def __init__(self, config: UNet1DConfig):
        super().__init__()
        self.config = config
        c, k, g = config.channels, config.kernel_size, config.groups
        embedding = 4 * c[0]
        self.time_mlp = nn.Sequential(
            nn.Linear(c[0], embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        self.input = nn.Conv1d(config.in_channels, c[0], 7, padding=3)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for level, width in enumerate(c):
            self.down.append(
                nn.ModuleList(
                    ResidualBlock(width, width, embedding, k, g) for _ in range(config.blocks)
                )
            )
            if level < len(c) - 1:
                factor = config.factors[level]
                self.downsample.append(nn.Conv1d(width, c[level + 1], factor, stride=factor))
        self.middle1 = ResidualBlock(c[-1], c[-1], embedding, k, g)
        self.attention = (
            SelfAttention(c[-1], g, config.head_channels) if config.attention else nn.Identity()
        )
        self.middle2 = ResidualBlock(c[-1], c[-1], embedding, k, g)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(c))):
            width = c[level]
            self.up.append(
                nn.ModuleList(
                    ResidualBlock(2 * width if b == 0 else width, width, embedding, k, g)
                    for b in range(config.blocks)
                )
            )
            if level > 0:
                self.upsample.append(nn.Conv1d(width, c[level - 1], 3, padding=1))
        self.output = nn.Sequential(
            _norm(c[0], g), nn.SiLU(), nn.Conv1d(c[0], config.in_channels, 7, padding=3)
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        cfg = self.config
        if x.dim() != 3 or x.shape[1] != cfg.in_channels or x.shape[2] % cfg.total_factor:
            raise ValueError(
                f"UNet1D expects [B, {cfg.in_channels}, L] with L a multiple of "
                f"{cfg.total_factor} (the product of factors {list(cfg.factors)}); got {list(x.shape)}."
            )
        embedding = self.time_mlp(
            timestep_features(t.reshape(-1).expand(x.shape[0]), cfg.channels[0])
        )
        h = self.input(x)
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, embedding)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.middle2(self.attention(self.middle1(h, embedding)), embedding)
        for i, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, embedding)
            if i < len(self.upsample):
                level = len(cfg.channels) - 1 - i
                h = F.interpolate(h, scale_factor=cfg.factors[level - 1], mode="nearest")
                h = self.upsample[i](h)
        return self.output(h)


def build_unet1d(config: UNet1DConfig, seed: int = 0) -> UNet1D:
    """A :class:`UNet1D` with weights from ``torch.manual_seed(seed)`` (global RNG restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet1D(config)
