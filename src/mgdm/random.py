"""Per-sample, counter-based random numbers.

Every sample of a batch owns a 64-bit seed. The ``k``-th draw of a sample is a pure function
of ``(seed, k, element index)``, computed with the splitmix64 mixer and Box-Muller, all in
vectorised integer tensor arithmetic. Consequences:

* a sample's random draws depend only on its own seed, never on the batch size or on which
  other samples share the batch (the convention of docs/algorithms/README.md §2.8; the samples
  themselves then agree across batch compositions up to float32 rounding, docs/determinism.md);
* the draws are the same on every device, since no device generator is involved;
* drawing is as cheap as one fused elementwise kernel, whatever the batch size.

All samples of a batch must make the same sequence of draws (which every sampler does: its
control flow does not depend on the batch composition).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """Reinterpret an unsigned 64-bit constant as a signed int64 (torch has no uint64 ops)."""
    value &= _MASK64
    return value - (1 << 64) if value >= (1 << 63) else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _logical_shift_right(z: Tensor, bits: int) -> Tensor:
    """``z >> bits`` as on uint64, for int64 tensors (torch's ``>>`` is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(z: Tensor) -> Tensor:
    """The splitmix64 finaliser, a bijective 64-bit mixer, on int64 tensors (wrapping)."""
    z = (z ^ _logical_shift_right(z, 30)) * _MIX1
    z = (z ^ _logical_shift_right(z, 27)) * _MIX2
    return z ^ _logical_shift_right(z, 31)


def _uniform_open(bits: Tensor) -> Tensor:
    """Map int64 random bits to float64 uniforms in the open interval (0, 1)."""
    top53 = _logical_shift_right(bits, 11).to(torch.float64)
    return (top53 + 0.5) * 2.0**-53


class SampleNoise:
    """Independent random streams, one per sample, addressed by a per-sample seed.

    Args:
        seeds: one integer seed per sample, shape ``[B]``.
        device: where draws are produced.

    Each call of :meth:`randn`, :meth:`rand` or :meth:`randint` consumes one counter value
    for every sample.
    """

    def __init__(self, seeds: Sequence[int] | Tensor, device: torch.device | str = "cpu"):
        seeds_tensor = torch.as_tensor(seeds, dtype=torch.int64).reshape(-1)
        if seeds_tensor.numel() == 0:
            raise ValueError("SampleNoise needs at least one seed; got an empty list.")
        self.device = torch.device(device)
        self._keys = splitmix64(seeds_tensor.to(self.device) * _GOLDEN + 0x1234567)
        self._counter = 0

    @property
    def batch_size(self) -> int:
        return int(self._keys.numel())

    def subset(self, index: Tensor) -> SampleNoise:
        """The streams of the samples selected by ``index``, sharing the current counter.

        Drawing from a subset advances only the subset's counter; use it for draws that a
        group of samples makes in lockstep (the caller keeps the groups' counters aligned by
        drawing from the parent afterwards).
        """
        child = SampleNoise.__new__(SampleNoise)
        child.device = self.device
        child._keys = self._keys[index]
        child._counter = self._counter
        return child

    def skip(self, draws: int) -> None:
        """Advance every stream by ``draws`` counter values without drawing: the streams then
        stand where ``draws`` calls of :meth:`randn` would have left them (so that a code path
        that draws less keeps the later draws where another path puts them)."""
        if draws < 0:
            raise ValueError(f"SampleNoise.skip takes draws >= 0; got {draws}.")
        self._counter += draws

    def _bits(self, per_sample: int) -> Tensor:
        """Fresh int64 random bits of shape ``[B, per_sample]``; advances the counter."""
        self._counter += 1
        stream = splitmix64(self._keys + _signed(self._counter * _GOLDEN))
        element = torch.arange(per_sample, device=self.device, dtype=torch.int64)
        return splitmix64(stream[:, None] + (element[None, :] + 1) * _MIX2)

    def rand(self, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform draws in (0, 1), shape ``[B, *shape]``."""
        count = math.prod(shape)
        return _uniform_open(self._bits(count)).reshape(self.batch_size, *shape).to(dtype)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal draws, shape ``[B, *shape]``.

        Box-Muller on the two 32-bit halves of each 64-bit word (one word gives two normals),
        evaluated in float32; the tails are exact to about 6 standard deviations.
        """
        count = math.prod(shape)
        bits = self._bits((count + 1) // 2)
        low = (bits & 0xFFFFFFFF).to(torch.float32)
        high = _logical_shift_right(bits, 32).to(torch.float32)
        u1 = (low + 0.5) * 2.0**-32
        u2 = (high + 0.5) * 2.0**-32
        radius = torch.sqrt(-2.0 * torch.log(u1))
        angle = (2.0 * math.pi) * u2
        normal = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
        return normal[:, :count].reshape(self.batch_size, *shape).to(dtype)

    def randint(self, low: Tensor | int, high: Tensor | int) -> Tensor:
        """One integer per sample, uniform on ``{low, ..., high - 1}`` (bounds per sample).

        Requires ``high > low`` for every sample. Returns int64, shape ``[B]``.
        """
        low_t = torch.as_tensor(low, dtype=torch.int64, device=self.device).expand(self.batch_size)
        high_t = torch.as_tensor(high, dtype=torch.int64, device=self.device).expand(
            self.batch_size
        )
        if bool((high_t <= low_t).any()):
            raise ValueError("randint needs high > low for every sample.")
        u = self.rand(1, dtype=torch.float64)[:, 0]
        span = (high_t - low_t).to(torch.float64)
        return low_t + torch.minimum(torch.floor(u * span).long(), high_t - low_t - 1)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed deterministically derived from a tuple of integers (e.g. task indices)."""
    z = torch.tensor(0x5EED, dtype=torch.int64)
    for part in parts:
        z = splitmix64(z * _GOLDEN + _signed(int(part)))
    return int(z.item()) & ((1 << 63) - 1)


def content_seeds(rows: Tensor) -> list[int]:
    """One 63-bit seed per row of ``rows`` ``[N, ...]``, a hash (BLAKE2b) of the row's values as
    float64 bytes: equal rows give equal seeds, on any machine and in any batch."""
    values = rows.detach().to("cpu", torch.float64).reshape(rows.shape[0], -1).contiguous()
    seeds = []
    for row in values.numpy():
        digest = hashlib.blake2b(row.tobytes(), digest_size=8).digest()
        seeds.append(int.from_bytes(digest, "little") & ((1 << 63) - 1))
    return seeds


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded with ``seed``, for draws that are not per sample."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) & ((1 << 63) - 1))
    return generator
