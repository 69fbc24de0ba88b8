"""Band-limited resampling by a rational factor (windowed sinc), in torch.

To change the rate from ``r_in`` to ``r_out``, write ``r_out / r_in = up / down`` in lowest
terms. Output sample ``j`` sits at the input time ``tau_j = j * down / up`` (in input samples),
and

    y[j] = sum_k x[k] h(tau_j - k),
    h(tau) = c * sinc(c * tau) * w(tau / W),   c = rolloff * min(1, up / down),

with ``sinc(u) = sin(pi u) / (pi u)``, the cutoff ``c`` a fraction of the input Nyquist
frequency, the Kaiser window ``w(u) = I0(beta sqrt(1 - u^2)) / I0(beta)`` on ``|u| <= 1`` and the
half-width ``W = ceil(zero_crossings / c)`` input samples. Samples outside the signal count as
zeros. ``sum_k h(tau - k) ≈ 1``, so a constant keeps its level.

**Evaluation.** With ``tau_j = b_j + p_j / up`` (``b_j`` an integer, ``p_j = j * down mod up``
the phase), ``y[j]`` is the dot product of the ``2W + 1`` input samples ``x[b_j - W … b_j + W]``
with the filter of phase ``p_j``. The outputs ``j = r + m * up`` of row ``r`` share the phase
``(r * down) mod up`` and sit at ``b_j = floor(r * down / up) + m * down``: each of the
``min(up, N_out)`` rows is one matrix-vector product of a strided view of the input (in chunks
of :data:`CHUNK_ELEMENTS`) with its filter. Time is hence ``O(N_out * (2W + 1))``, about
``34 * max(N_in, N_out)`` multiplications per channel with the defaults, and the filter table
holds ``min(up, N_out) * (2W + 1)`` numbers, whatever the ratio: a 1 Hz input or coprime rates
such as 44,101 and 8,000 Hz cost no more than any other ratio for the same lengths.

With the defaults (16 zero crossings per side, rolloff 0.94, beta 10) the stop band is about
100 dB down and the pass band is flat to within 1e-3 up to ``0.9 *`` the lower Nyquist frequency.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CHUNK_ELEMENTS = 2**22
"""Input taps read by one matrix-vector product per channel (``outputs * (2W + 1)``): bounds
the working memory of :func:`resample` to a few tens of MB per channel."""


def resampled_length(length: int, orig_rate: int, new_rate: int) -> int:
    """``ceil(length * new_rate / orig_rate)``: the samples of a resampled signal."""
    return -(-length * new_rate // orig_rate)


def resample(
    signal: Tensor,
    orig_rate: int,
    new_rate: int,
    *,
    zero_crossings: int = 16,
    rolloff: float = 0.94,
    beta: float = 10.0,
) -> Tensor:
    """Resample ``signal`` ``[..., L]`` from ``orig_rate`` to ``new_rate`` (see the module docstring).

    Returns ``[..., ceil(L * new_rate / orig_rate)]`` in the dtype of ``signal`` (the filters are
    built in float64). Equal rates return a copy.
    """
    for name, rate in (("orig_rate", orig_rate), ("new_rate", new_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise ValueError(f"{name} must be a positive integer (Hz); got {rate!r}.")
    if signal.dim() == 0:
        raise ValueError("resample needs a signal with a time axis [..., L]; got a scalar.")
    if orig_rate == new_rate:
        return signal.clone()
    divisor = math.gcd(orig_rate, new_rate)
    up, down = new_rate // divisor, orig_rate // divisor
    length = signal.shape[-1]
    out_length = resampled_length(length, orig_rate, new_rate)
    cutoff = rolloff * min(1.0, up / down)
    width = math.ceil(zero_crossings / cutoff)
    phases = torch.arange(min(up, out_length), dtype=torch.int64) * down % up  # of the rows
    filters = _phase_filters(phases, up, width, cutoff, beta).to(signal)  # [rows, 2W + 1]
    flat = signal.reshape(-1, length)
    # taps[:, b] = x[b - W … b + W], zeros outside the signal (a view, nothing copied)
    taps = torch.nn.functional.pad(flat, (width, width)).unfold(-1, 2 * width + 1, 1)
    out = flat.new_empty(flat.shape[0], out_length)
    step = max(1, CHUNK_ELEMENTS // (2 * width + 1))
    for row, phase_filter in enumerate(filters):
        # outputs j = row + m * up, m = 0 … count - 1, sit at b_j = row * down // up + m * down
        first, count = row * down // up, -(-(out_length - row) // up)
        for m in range(0, count, step):
            n = min(step, count - m)
            b = first + m * down
            window = taps[:, b : b + (n - 1) * down + 1 : down]  # [channels, n, 2W + 1]
            out[:, row + m * up : row + (m + n - 1) * up + 1 : up] = window @ phase_filter
    return out.reshape(*signal.shape[:-1], out_length)


def _phase_filters(phases: Tensor, up: int, width: int, cutoff: float, beta: float) -> Tensor:
    """``[len(phases), 2W + 1]`` float64: row ``r``, tap ``i`` holds ``h(phases[r] / up + W - i)``,
    the weight of ``x[b + i - W]`` for an output at ``tau = b + phases[r] / up``."""
    offsets = torch.arange(-width, width + 1, dtype=torch.float64)
    tau = phases.to(torch.float64)[:, None] / up - offsets[None, :]
    u = (tau / width).clamp(-1.0, 1.0)
    window = torch.special.i0(beta * torch.sqrt(1.0 - u**2)) / torch.special.i0(
        torch.tensor(beta, dtype=torch.float64)
    )
    window = torch.where(tau.abs() <= width, window, torch.zeros_like(window))
    return cutoff * torch.sinc(cutoff * tau) * window
