"""SI-SDR improvement of a separation, as MSDM evaluates it (docs/algorithms/problems.md §1).

For a reference stem ``s``, an estimate ``ŝ`` (one window, ``[n]``) and ``eps = 1e-8``::

    alpha  = (<ŝ, s> + eps) / (||s||^2 + eps)
    SI-SDR(ŝ, s) = 10 log10( (||alpha s||^2 + eps) / (||alpha s - ŝ||^2 + eps) )

``torchmetrics.functional.audio.scale_invariant_signal_distortion_ratio`` has the same formula
with ``eps`` = the machine epsilon of the dtype (1.2e-7 in float32), so the two differ on quiet
windows; this module implements the formula above (computed in float64).

**Windows.** ``window`` samples with ``overlap`` samples shared by consecutive windows (4 s and
2 s at the sample rate by default), hop ``h = window - overlap``: ``ceil((N - overlap) / h)``
windows starting at ``i h``, the last truncated at the end of the signal. A clip of at most
``window`` samples gets one window covering it whole (the Proposal for short clips); report the
window length with the result.

**Per window**, with the mixture ``m = sum_s s``: the window is skipped when at most one
reference stem is active in it (a stem is silent when ``||s_w||_2 / len(w) < 1.5e-5``);
otherwise every stem scores ``SI-SDR(ŝ_w, s_w) - SI-SDR(m_w, s_w)``. The result per stem is the
mean over the kept windows; the overall figure is the mean of the per-stem values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SI_SDR_EPS = 1e-8
SILENCE_THRESHOLD = 1.5e-5
"""A window of a stem is silent when its L2 norm divided by its length is below this."""


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = SI_SDR_EPS) -> Tensor:
    """SI-SDR in dB of ``estimate`` against ``reference`` over the last axis: ``[..., n] -> [...]``
    (float64)."""
    if estimate.shape != reference.shape:
        raise ValueError(
            f"estimate and reference must have the same shape; got {list(estimate.shape)} and "
            f"{list(reference.shape)}."
        )
    estimate, reference = estimate.to(torch.float64), reference.to(torch.float64)
    alpha = ((estimate * reference).sum(-1, keepdim=True) + eps) / (
        (reference**2).sum(-1, keepdim=True) + eps
    )
    scaled = alpha * reference
    return 10 * torch.log10(
        ((scaled**2).sum(-1) + eps) / (((scaled - estimate) ** 2).sum(-1) + eps)
    )


def evaluation_windows(num_samples: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` sample ranges of the evaluation windows (module docstring)."""
    if not 0 <= overlap < window:
        raise ValueError(
            f"windows need 0 <= overlap < window; got overlap {overlap}, window {window}."
        )
    if num_samples < 1:
        raise ValueError("the signals hold no samples.")
    if num_samples <= window:
        return [(0, num_samples)]
    hop = window - overlap
    count = math.ceil((num_samples - overlap) / hop)
    return [(i * hop, min(i * hop + window, num_samples)) for i in range(count)]


def is_silent(signal: Tensor, threshold: float = SILENCE_THRESHOLD) -> Tensor:
    """``||signal||_2 / len(signal) < threshold`` over the last axis: ``[..., n] -> [...]`` (bool)."""
    return torch.linalg.vector_norm(signal.to(torch.float64), dim=-1) / signal.shape[-1] < threshold


@dataclass(frozen=True)
class SeparationScore:
    """SI-SDR improvements of one separation.

    Attributes:
        per_stem: float64 ``[S]``, dB, the mean over the kept windows (NaN if none was kept).
        windows_kept: how many windows had at least two active reference stems.
        windows_total: how many windows there were.
        window: samples per window (the clip length when it is shorter).
    """

    per_stem: Tensor
    windows_kept: int
    windows_total: int
    window: int

    @property
    def mean(self) -> float:
        """The mean of the per-stem values (NaN when no window was kept)."""
        return float(self.per_stem.mean())


def si_sdr_improvement(
    estimates: Tensor,
    references: Tensor,
    sample_rate: int,
    window_seconds: float = 4.0,
    overlap_seconds: float = 2.0,
) -> SeparationScore:
    """SI-SDRi per stem of ``estimates`` against ``references``, both ``[S, N]`` (module docstring)."""
    if estimates.shape != references.shape or references.dim() != 2:
        raise ValueError(
            "estimates and references must both be [stems, samples] of the same shape; got "
            f"{list(estimates.shape)} and {list(references.shape)}."
        )
    window = int(window_seconds * sample_rate)
    overlap = int(overlap_seconds * sample_rate)
    mixture = references.sum(0, keepdim=True).expand_as(references)
    windows = evaluation_windows(references.shape[-1], window, overlap)
    scores = []
    for start, stop in windows:
        reference = references[:, start:stop]
        if int((~is_silent(reference)).sum()) <= 1:
            continue
        estimate, mix = estimates[:, start:stop], mixture[:, start:stop]
        scores.append(si_sdr(estimate, reference) - si_sdr(mix, reference))
    if scores:
        per_stem = torch.stack(scores).mean(0)
    else:
        per_stem = torch.full((references.shape[0],), math.nan, dtype=torch.float64)
    return SeparationScore(per_stem, len(scores), len(windows), min(window, references.shape[-1]))
