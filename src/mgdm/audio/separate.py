"""Source separation of a mix with a diffusion prior: ``separate_tensor`` and ``separate_file``.

**Pipeline.** A mix ``[samples]`` or ``[channels, samples]`` at any accepted rate is

1. split into its channels, each separated on its own (the default), or averaged to mono first
   (``mono=True``: half the work for stereo, one stem channel);
2. resampled to the prior's sample rate (:mod:`mgdm.audio.resample`);
3. cut into windows of the prior's length ``L`` with ``overlap`` (a fraction of ``L``, at most
   1/2): hop ``h = L - O``, ``O = round(overlap * L)``, ``n = max(1, ceil((N - L) / h) + 1)``
   windows, the signal zero-padded at the end to ``(n - 1) h + L``;
4. separated window by window: the posterior of the stems ``x`` ``[S, L]`` given
   ``y = sum_s x_s + sigma_y eps`` (:class:`~mgdm.operators.mixing.Mixing`, Gaussian likelihood
   with ``sigma_y = 1e-4``, the Reference's value), one sample per window with the seed
   ``derive_seed(seed, window index)`` (so a window's draws do not depend on ``batch_size``; the
   stems agree across batch sizes up to float32 rounding, docs/determinism.md);
5. put back together by overlap-add with cross-fade weights that sum to one: window ``i`` has
   weight ``sin^2(pi (j + 1/2) / (2 O))`` on its first ``O`` samples ``j`` (``cos^2`` on its
   last ``O``), 1 elsewhere, and 1 on the outer edges of the first and last windows.
   Hence ``sum_i w_i = 1`` at every sample, and stems that sum to each window's mix sum to
   the whole mix;
6. resampled back to the input's rate and cut to its length: the stems keep the input's rate
   and layout, ``[S, N]`` for a ``[N]`` mix (or with ``mono=True``), ``[S, C, N]`` for a
   ``[C, N]`` mix, as a separator such as Demucs writes them.

**Why each channel.** A stereo mix places instruments across the channels (a guitar panned left
is louder in the left channel); separating each channel keeps that image in the stems, and the
stems of a channel sum to that channel. Separating the mid channel ``(L + R) / 2`` instead would
halve the cost but leave nothing to put the side signal ``(L - R) / 2`` into: every stem would
come out centred, or the side would have to be shared out by a guess. The channels use the same
window seeds, so where they agree (centred sources, a mono recording stored as stereo) their
draws agree too and a source is not given to one stem on the left and another on the right.

**What the stems cannot hold.** The prior models its own band (below half its sample rate,
4 kHz for the shipped 8 kHz priors): resampled back up, the stems sum to the mix low-passed at
that frequency, and the mix's content above it is in no stem.

**Samplers** (``sampler`` by name) run with their ``audio`` settings
(:meth:`~mgdm.samplers.settings.SamplerConfig.settings`, docs/algorithms/README.md §5): ``mgdm``
the audio preset of MGDM (:func:`audio_mgdm_config`, docs/algorithms/mgdm.md §8), ``msdm`` the
Dirac separator (:mod:`mgdm.samplers.msdm`), the baselines the Reference's audio values that
each sampler module declares (``AUDIO_DEFAULTS``); a :class:`~mgdm.samplers.base.Sampler`
instance is used as given.

**Accepted input** (anything else is a one-line ``ValueError`` before a prior is loaded):

* a sample rate of :data:`MIN_SAMPLE_RATE` to :data:`MAX_SAMPLE_RATE` Hz (1 kHz to 384 kHz):
  384 kHz is the highest rate of common recording formats and converters, and below 1 kHz a
  file holds nothing of the music the 8 kHz priors model (its band ends at 500 Hz);
* at most :data:`MAX_MIX_SECONDS` (20 minutes) of audio, longer than nearly any single piece
  of music: decoded, it takes at most 1.8 GB per channel (float32 at 384 kHz), and at 8 kHz it
  makes about 1,200 windows of the shipped priors, each one posterior sample; a mistaken input
  (hours of audio, or a file with a wrong rate) is refused before it is decoded;
* finite samples whose peak amplitude lies between :data:`SILENCE_PEAK` and :data:`MAX_PEAK`
  in full-scale units (:func:`check_mix`);
* ``sigma_y`` above :class:`~mgdm.operators.noise.GaussianNoise`'s lower bound and at most
  :data:`MAX_PEAK`, ``overlap`` in ``[0, 1/2]``, ``batch_size >= 1``, any integer ``seed``
  (:func:`mgdm.random.derive_seed` reduces it modulo ``2^64``), a device this machine has.

The stems are checked to be finite before they are returned (and so before
:func:`separate_file` writes anything): a non-finite result is a ``ValueError`` naming the
likely causes.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.audio.prior import AudioPrior, IndependentStemsPrior, load_audio_prior
from mgdm.audio.resample import resample
from mgdm.audio.wav import audio_info, read_audio, write_wav
from mgdm.devices import resolve_device, torch_threads
from mgdm.files import check_output_dir
from mgdm.operators.mixing import Mixing
from mgdm.operators.noise import GaussianNoise
from mgdm.priors.catalog import ASSETS_DIR
from mgdm.problem import Problem
from mgdm.random import derive_seed
from mgdm.samplers.base import Sampler
from mgdm.samplers.mgdm import MGDMConfig
from mgdm.samplers.registry import build_sampler

AudioDenoiser = AudioPrior | IndependentStemsPrior

AUDIO_SIGMA_Y = 1e-4
"""The std of the Gaussian likelihood of a separation (the Reference's audio value; its
observation itself is noise-free)."""

SHIPPED_AUDIO_PRIORS: dict[str, Path] = {
    "4stem": ASSETS_DIR / "audio-4stem-prior",
    "independent": ASSETS_DIR / "audio-independent-priors",
}
"""The shipped audio priors by name: the four-stem prior and the four single-stem priors of the
independent-stems variant (``--prior``'s default; their model cards are in the folders)."""
DEFAULT_AUDIO_PRIOR = "independent"
"""``--prior``'s default: the four single-stem priors (docs/benchmarks.md §3: MGDM 3.95 dB on them
against 2.03 on the four-stem prior, at the same calls)."""

SILENCE_PEAK = 1e-6
"""A mix whose peak amplitude is below this (-120 dBFS) is refused as silent."""

MAX_PEAK = 1e3
"""A mix whose peak amplitude exceeds this (60 dB above full scale) is refused. A float mix may
exceed full scale a little, but the priors model waveforms of RMS about 0.04 with noise levels
up to ``sigma = 20`` (:mod:`mgdm.audio.prior`): far beyond that, a mix lies outside everything
the prior knows, and above about 1e19 the float32 arithmetic of a sampler overflows to NaN.
Such a file is not in full-scale units (typically integer PCM values stored as floats: 16-bit
samples reach 32,768); scaling it into ``[-1, 1]`` is the fix. The same bound caps ``sigma_y``:
a likelihood std above any accepted mix's amplitude says nothing about the mix."""

MIN_SAMPLE_RATE = 1_000
"""The lowest sample rate (Hz) of a mix (module docstring, *Accepted input*)."""
MAX_SAMPLE_RATE = 384_000
"""The highest sample rate (Hz) of a mix (module docstring, *Accepted input*)."""
MAX_MIX_SECONDS = 1_200
"""The longest mix, in seconds (module docstring, *Accepted input*)."""


def audio_mgdm_config(**overrides: Any) -> MGDMConfig:
    """MGDM's Reference audio configuration (the ``audio`` preset of
    :data:`mgdm.samplers.mgdm.PRESETS`, docs/algorithms/mgdm.md §8), then ``overrides``. Use it
    with ``sigma_y = 1e-4`` (:data:`AUDIO_SIGMA_Y`) in the likelihood."""
    return MGDMConfig.settings("audio", **overrides)


def audio_sampler(name: str, **overrides: Any) -> Sampler:
    """The sampler ``name`` with its audio settings, then ``overrides``:
    ``build_sampler(name, "audio", **overrides)`` (module docstring)."""
    return build_sampler(name, "audio", **overrides)


@dataclass(frozen=True)
class Separation:
    """Separated stems.

    Attributes:
        stems: float32 ``[S, N]`` (a ``[N]`` mix, or ``mono``) or ``[S, C, N]`` (a ``[C, N]``
            mix) at ``sample_rate``.
        names: the ``S`` stem names.
        sample_rate: Hz: the input's.
        mix: the mix as given, float32 ``[N]`` or ``[C, N]`` at ``sample_rate``.
        notes: what was done to the input (channels, resampling, windows, the band).
        prior_rate: the prior's sample rate (Hz), at which the stems were drawn.
        mono: whether the channels were averaged to one before separating.
    """

    stems: Tensor
    names: tuple[str, ...]
    sample_rate: int
    mix: Tensor
    notes: tuple[str, ...]
    prior_rate: int
    mono: bool = False

    def summary(self) -> str:
        """One line: the input's rate and channels -> the prior's rate -> the stems' rate and
        channels."""
        channels_in = 1 if self.mix.dim() == 1 else self.mix.shape[0]
        channels_out = 1 if self.stems.dim() == 2 else self.stems.shape[1]
        how = "averaged to mono" if self.mono and channels_in > 1 else "each channel"
        how = how if channels_in > 1 else "one channel"
        return (
            f"{self.sample_rate} Hz, {_channels(channels_in)} -> separated at the prior's "
            f"{self.prior_rate} Hz ({how}) -> {len(self.names)} stems at {self.sample_rate} Hz, "
            f"{_channels(channels_out)}"
        )


def _channels(count: int) -> str:
    return "1 channel" if count == 1 else f"{count} channels"


def window_weights(num_windows: int, length: int, overlap: int) -> Tensor:
    """Cross-fade weights ``[num_windows, length]`` (module docstring, step 5), float64."""
    weights = torch.ones(num_windows, length, dtype=torch.float64)
    if overlap > 0 and num_windows > 1:
        position = (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap
        fade_in = torch.sin(math.pi / 2 * position) ** 2
        weights[1:, :overlap] = fade_in
        weights[:-1, length - overlap :] = 1.0 - fade_in
    return weights


def split_windows(signal: Tensor, length: int, overlap: int) -> Tensor:
    """``[N] -> [n, length]``: the windows of step 3 (zero-padded at the end)."""
    hop = length - overlap
    count = max(1, math.ceil((signal.shape[-1] - length) / hop) + 1)
    padded = torch.nn.functional.pad(signal, (0, (count - 1) * hop + length - signal.shape[-1]))
    return padded.unfold(0, length, hop)


def overlap_add(windows: Tensor, num_samples: int, overlap: int) -> Tensor:
    """Weighted overlap-add of ``[n, ..., length]`` windows into ``[..., num_samples]``."""
    count, length = windows.shape[0], windows.shape[-1]
    hop = length - overlap
    weights = window_weights(count, length, overlap).to(windows)
    out = windows.new_zeros(*windows.shape[1:-1], (count - 1) * hop + length)
    for i in range(count):
        out[..., i * hop : i * hop + length] += weights[i] * windows[i]
    return out[..., :num_samples]


def separate_windows(
    separate: Callable[[Tensor, list[int]], Tensor],
    mix: Tensor,
    length: int,
    overlap: int,
    batch_size: int,
    seed: int,
    progress: bool = False,
) -> Tensor:
    """Apply ``separate(windows [b, length], seeds) -> [b, S, length]`` to the windows of
    ``mix`` (``[N]``, or ``[C, N]``: the windows of every channel), ``batch_size`` at a time, and
    overlap-add: ``[S, N]`` or ``[S, C, N]``.

    Window ``i`` of every channel gets the seed ``derive_seed(seed, i)``, whatever batch it runs
    in (the channels share their windows' seeds: module docstring, *Why each channel*).
    """
    channels = mix[None] if mix.dim() == 1 else mix
    per_channel = [split_windows(channel, length, overlap) for channel in channels]
    count = per_channel[0].shape[0]
    windows = torch.cat(per_channel)  # [C * count, length], channel-major
    seeds = [derive_seed(seed, i) for _ in channels for i in range(count)]
    outputs = []
    batches = range(0, windows.shape[0], batch_size)
    for start in tqdm(batches, desc="separate", unit="batch", disable=not progress):
        stop = min(start + batch_size, windows.shape[0])
        outputs.append(separate(windows[start:stop], seeds[start:stop]))
    # [C * count, S, length] -> windows [count, C, S, length] -> [C, S, N] -> [S, C, N]
    stems = torch.cat(outputs).reshape(len(channels), count, -1, length).transpose(0, 1)
    stems = overlap_add(stems, mix.shape[-1], overlap).transpose(0, 1)
    return stems[:, 0] if mix.dim() == 1 else stems


def separate_tensor(
    mix: Tensor,
    sample_rate: int,
    prior: AudioDenoiser | Path | str | None = None,
    sampler: Sampler | str = "mgdm",
    *,
    seed: int = 0,
    sigma_y: float = AUDIO_SIGMA_Y,
    overlap: float = 0.5,
    batch_size: int = 4,
    mono: bool = False,
    progress: bool = False,
    device: torch.device | str | None = None,
    threads: int | None = 1,
) -> Separation:
    """Separate ``mix`` (``[samples]`` or ``[channels, samples]`` at ``sample_rate``) into the
    prior's stems, at the mix's rate and in its layout (module docstring; ``mono``: average the
    channels first). ``prior`` is a loaded prior, a shipped prior's name or a prior folder
    (:func:`resolve_prior`), or ``None`` for the shipped default (:data:`DEFAULT_AUDIO_PRIOR`).
    ``device``: where the prior runs (``None``: ``auto``, CUDA where present, else the CPU).
    ``threads``: torch's CPU threads during the call, restored afterwards (``None`` leaves
    torch's setting alone), one by default as ``mgdm separate``
    (:func:`mgdm.devices.torch_threads`). Raises
    ``ValueError`` for a mix of the wrong shape, an empty, silent, too loud, too long or
    non-finite mix, a sample rate outside the accepted range and out-of-range options (all
    before the prior is loaded), and for non-finite stems."""
    if not 0.0 <= overlap <= 0.5:
        raise ValueError(f"the window overlap is a fraction in [0, 0.5]; got {overlap!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"batch_size must be a positive integer (windows per call); got {batch_size!r}."
        )
    noise = GaussianNoise(sigma_y)
    if sigma_y > MAX_PEAK:
        raise ValueError(
            f"sigma_y {sigma_y:g} exceeds {MAX_PEAK:g}, the largest accepted mix amplitude: such "
            "a likelihood says nothing about the mix; the Reference uses 1e-4 (full-scale units)."
        )
    device = resolve_device(device if device is not None else "auto")
    if isinstance(sampler, str):
        sampler = audio_sampler(sampler)
    given, notes = _checked_mix(torch.as_tensor(mix))
    channels = given[None] if given.dim() == 1 else given
    if mono and channels.shape[0] > 1:
        notes.append(f"averaged {channels.shape[0]} channels to mono")
        channels = channels.mean(0, keepdim=True)
    elif channels.shape[0] > 1:
        notes.append(f"separated each of the {channels.shape[0]} channels (the same seeds)")
    peak = float(channels.abs().max())
    if peak < SILENCE_PEAK:
        raise ValueError(
            f"the mix is silent (peak amplitude {peak:.3g} < {SILENCE_PEAK:g}); nothing to separate."
        )
    check_mix(sample_rate, channels.shape[-1], peak)
    with torch_threads(threads):
        if not isinstance(prior, (AudioPrior, IndependentStemsPrior)):
            prior = resolve_prior(prior, device)
        num_stems, length = prior.sample_shape
        at_prior = channels
        if sample_rate != prior.sample_rate:
            at_prior = resample(channels.to(torch.float64), sample_rate, prior.sample_rate)
            at_prior = at_prior.to(torch.float32)
            notes.append(f"resampled from {sample_rate} Hz to the prior's {prior.sample_rate} Hz")
        samples = at_prior.shape[-1]
        overlap_samples = round(overlap * length)
        count = split_windows(at_prior[0], length, overlap_samples).shape[0]
        if count > 1:
            notes.append(f"{count} windows of {length} samples, {overlap_samples} overlapping")
        elif samples < length:
            notes.append(f"one window of {length} samples (the mix zero-padded from {samples})")
        operator = Mixing(num_stems, length)

        def separate(windows: Tensor, seeds: list[int]) -> Tensor:
            problem = Problem(operator, windows.to(device), noise)
            stems = sampler.sample(prior, problem, seeds, progress=progress, device=device).samples
            if not bool(torch.isfinite(stems).all()):
                raise ValueError(
                    f"sampler {sampler.name} returned non-finite stems (NaN or inf); likely "
                    "causes: a mix far outside full scale (its peak amplitude is "
                    f"{peak:.3g}, full scale 1), "
                    f"an extreme sigma_y ({sigma_y:g}; the Reference uses 1e-4) or a broken prior "
                    "network. Nothing was written."
                )
            return stems.cpu()

        stems = separate_windows(
            separate, at_prior, length, overlap_samples, batch_size, seed, progress
        )  # [S, C, samples] at the prior's rate
        if sample_rate != prior.sample_rate:
            stems = resample(stems.to(torch.float64), prior.sample_rate, sample_rate)
            stems = stems[..., : channels.shape[-1]]
            if sample_rate > prior.sample_rate:
                notes.append(
                    f"the stems hold the band below {prior.sample_rate / 2:g} Hz (the prior's); "
                    "the mix above it is in no stem"
                )
        stems = stems.to(torch.float32)
        if given.dim() == 1 or mono:
            stems = stems[:, 0]
        return Separation(
            stems,
            tuple(prior.stems),
            sample_rate,
            given,
            tuple(notes),
            prior.sample_rate,
            mono and given.dim() == 2 and given.shape[0] > 1,
        )


def check_mix(sample_rate: int, samples: int, peak: float | None = None) -> None:
    """``ValueError`` unless a mix of ``samples`` samples per channel at ``sample_rate`` (and, if
    given, of peak amplitude ``peak``) is accepted (module docstring, *Accepted input*)."""
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int)
        or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
    ):
        raise ValueError(
            f"the mix's sample rate is {sample_rate!r} Hz; accepted: whole numbers from "
            f"{MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz."
        )
    if samples > MAX_MIX_SECONDS * sample_rate:
        raise ValueError(
            f"the mix lasts {samples / sample_rate:,.1f} s; at most {MAX_MIX_SECONDS:,} s "
            f"({MAX_MIX_SECONDS // 60} minutes) are separated at once: cut it into parts."
        )
    if peak is not None and peak > MAX_PEAK:
        raise ValueError(
            f"the mix's peak amplitude is {peak:.3g}, over {MAX_PEAK:g} times full scale: it is "
            "not in full-scale units [-1, 1] (integer PCM values stored as floats?); scale it "
            "into [-1, 1] (16-bit samples: divide by 32768)."
        )


def _checked_mix(mix: Tensor) -> tuple[Tensor, list[str]]:
    """The float32 mix ``[N]`` or ``[C, N]`` as given, and the notes (none yet); ``ValueError``
    for bad shapes or content (the silence check is the caller's, after any averaging)."""
    if not mix.is_floating_point():
        raise ValueError(f"the mix must hold floating-point samples; got {mix.dtype}.")
    if mix.dim() == 2:
        channels, samples = mix.shape
        if channels > samples > 0:
            raise ValueError(
                f"the mix has shape {list(mix.shape)}: {channels} channels of {samples} samples; "
                "expected [channels, samples] (transpose a [samples, channels] array)."
            )
        if channels == 0:
            raise ValueError(f"the mix has shape {list(mix.shape)}: no channel.")
    elif mix.dim() != 1:
        raise ValueError(
            f"the mix must be [samples] or [channels, samples]; got shape {list(mix.shape)}."
        )
    if mix.numel() == 0:
        raise ValueError("the mix is empty (0 samples); nothing to separate.")
    if not bool(torch.isfinite(mix).all()):
        raise ValueError("the mix has non-finite samples (NaN or inf).")
    return mix.to(torch.float32), []


def separate_file(
    path: Path | str,
    out_dir: Path | str,
    prior: AudioDenoiser | Path | str | None = None,
    sampler: Sampler | str = "mgdm",
    threads: int | None = 1,
    **options: Any,
) -> tuple[dict[str, Path], Separation]:
    """Separate the audio file ``path`` (any format libsndfile reads: WAV, FLAC, OGG, MP3, AIFF)
    and write ``out_dir/<stem>.wav`` (32-bit float, at the file's rate, with its channels, or one
    with ``mono=True``) for every stem; returns the written paths by stem name and the
    separation.

    ``prior`` is a loaded prior, a shipped prior's name or a prior folder
    (:func:`resolve_prior`), or ``None`` for the shipped default (:data:`DEFAULT_AUDIO_PRIOR`). ``options`` go to
    :func:`separate_tensor`; ``threads``: torch's CPU threads during the call, as there.
    ``out_dir`` is checked (an existing folder or one that can be created) and the file's sample
    rate and length are checked from its header before it is decoded. The stems are written to a
    temporary folder next to ``out_dir`` and moved in at the end: on any error ``out_dir`` is left
    as it was.
    """
    out_dir = check_output_dir(out_dir, "--out-dir")
    samples, rate = audio_info(path)
    check_mix(rate, samples)
    audio, rate = read_audio(path)
    separation = separate_tensor(audio, rate, prior, sampler, threads=threads, **options)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, stem in zip(separation.names, separation.stems):
            write_wav(tmp / f"{name}.wav", stem, separation.sample_rate)
        out_dir.mkdir(exist_ok=True)
        written = {}
        for name in separation.names:
            os.replace(tmp / f"{name}.wav", out_dir / f"{name}.wav")
            written[name] = out_dir / f"{name}.wav"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written, separation


def resolve_prior(prior: Path | str | None, device: torch.device | str = "cpu") -> AudioDenoiser:
    """``load_audio_prior(prior)`` for an existing folder, else the shipped prior named ``prior``
    (:data:`SHIPPED_AUDIO_PRIORS`; ``None``: :data:`DEFAULT_AUDIO_PRIOR`)."""
    name = DEFAULT_AUDIO_PRIOR if prior is None else str(prior)
    if Path(name).exists() or name.startswith("msdm:"):  # msdm:PATH: the MSDM checkpoint
        return load_audio_prior(name, device)
    if name in SHIPPED_AUDIO_PRIORS:
        return load_audio_prior(SHIPPED_AUDIO_PRIORS[name], device)
    raise ValueError(
        f"audio prior {name!r} is neither a shipped prior ({', '.join(SHIPPED_AUDIO_PRIORS)}) "
        "nor an existing folder."
    )
