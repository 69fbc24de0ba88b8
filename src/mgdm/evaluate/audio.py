"""Unconditional samples of an audio prior and their quality: the figures of its model card.

:func:`evaluate_audio_prior` measures a prior of stems ``[S, L]`` (an :class:`AudioPrior` or an
:class:`IndependentStemsPrior`) against the test clips ``[N, S, L]`` of a stem file of
``mgdm audio-data`` (the stems the prior models, taken from the file by name):

* **held-out loss** per stem: the training objective of :mod:`mgdm.train.audio` on every test
  clip ``x_0`` (all ``N`` of them, not only ``count``): one time ``k ~ U{1, …, 1000}`` and one
  ``eps ~ N(0, I)`` ``[S, L]`` per clip, drawn from a generator seeded by
  ``derive_seed(seed, 22, i)`` for clip ``i`` (so the figure does not depend on the batch),
  ``x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps`` and the mean square of the objective's
  residual (:func:`objective_residual`: EDM's preconditioned one, or ``eps_hat - eps`` for an
  epsilon network) over clips and samples of the stem's channel; the overall loss is the mean over stems (for a joint
  prior exactly the training objective, for independent stems the mean of the parts' objectives);
* **samples**: ``count`` draws of :func:`mgdm.evaluate.prior.sample_prior` (DDIM(eta) on
  ``num_steps`` grid points, sample ``n`` from the seed ``derive_seed(seed, 21, n)``; no clamp);
* **RMS** per stem: the mean over clips of each clip's ``sqrt(mean_t x_t^2)``, for the samples
  and for the ``N`` test clips;
* **spectral distance** per stem (:func:`spectral_distance`) between the samples and the
  *reference* clips, the second half ``N - floor(N/2)`` of the test clips; its **floor** is the
  same distance from the first ``min(count, floor(N/2))`` test clips (real data, as many as the
  samples where the test file allows it) to that reference: what "as good as data" reaches.

**Spectral distance** between two sets of clips ``a [Na, L]`` and ``b [Nb, L]`` at the sample
rate ``r``: frames of ``F = min(512, L)`` samples with hop ``F // 2`` (no padding), each
multiplied by the periodic Hann window ``w``; the power of bin ``j`` of a frame is
``|rfft(w x)_j|^2 / sum(w^2)`` (white noise of variance ``v`` has power ``v`` in every bin);
the power spectrum of a set is its mean over frames and clips. The bins whose frequency
``f_j = j r / F`` lies in ``[20 Hz, r/2]`` go to ``B = 64`` bands spaced evenly in
``log f``: bin ``j`` is in band ``min(floor(B log(f_j / 20) / log(r / 40)), B - 1)``; a band's
level is ``10 log10(mean power of its bins + 1e-10)`` (the floor keeps silent stems finite at
-100 dB), and the distance is the mean over the non-empty bands of ``|level_a - level_b|``
(dB). It is 0 for equal spectra and ``|20 log10 c|`` between ``x`` and ``c x``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from mgdm.audio.dataset import StemData, load_stem_tensor
from mgdm.audio.prior import AudioPrior, IndependentStemsPrior, PreconditionedUNet1D
from mgdm.audio.wav import write_wav
from mgdm.diffusion.schedules import NUM_TIMESTEPS
from mgdm.evaluate.prior import machine_description, sample_prior
from mgdm.random import derive_seed, torch_generator

SPECTRUM_FRAME = 512
"""Samples per spectrum frame (fewer for clips shorter than this: the clip length)."""
SPECTRUM_BANDS = 64
"""Log-spaced frequency bands of the spectral distance."""
LOWEST_FREQUENCY = 20.0
"""Hz; bins below it are left out of the spectral distance."""
POWER_FLOOR = 1e-10
"""Added to every band power before the dB conversion (-100 dB)."""
SAMPLE_STREAM = 21
"""``derive_seed(seed, SAMPLE_STREAM, n)`` seeds prior sample ``n`` (as ``mgdm evaluate prior``)."""
HELDOUT_STREAM = 22
"""``derive_seed(seed, HELDOUT_STREAM, i)`` seeds the time and noise of test clip ``i``."""


@dataclass(frozen=True)
class StemEvaluation:
    """The figures of one stem (module docstring).

    Attributes:
        stem: its name.
        heldout_loss: the training objective on the test clips.
        sample_rms: mean per-clip RMS of the samples (full-scale units).
        data_rms: mean per-clip RMS of the test clips.
        spectral_distance_db: samples vs the reference half of the test clips.
        spectral_floor_db: the other test clips vs the reference half.
    """

    stem: str
    heldout_loss: float
    sample_rms: float
    data_rms: float
    spectral_distance_db: float
    spectral_floor_db: float


@dataclass(frozen=True)
class AudioPriorEvaluation:
    """Figures of an audio model card (all measured by :func:`evaluate_audio_prior`).

    Attributes:
        independent: the prior is an :class:`IndependentStemsPrior`.
        per_stem: one :class:`StemEvaluation` per stem, in the prior's order.
        heldout_loss: the mean of the per-stem held-out losses.
        sample_rate, length: of the prior's clips (Hz, samples).
        test_split, test_first_seed, test_clips: the test file (split, seed of clip 0, ``N``).
        reference_clips, floor_clips: test clips in the spectral reference and in the floor set.
        spectrum_frame, spectrum_hop, spectrum_bands: the spectrum's frame, hop and non-empty bands.
        samples, ddim_steps, eta, batch_size: the sampler (``ddim_steps - 1`` network calls).
        seconds_sampling, seconds_per_sample: wall time of the sampling.
        machine, torch_version, threads: where it ran.
    """

    independent: bool
    per_stem: tuple[StemEvaluation, ...]
    heldout_loss: float
    sample_rate: int
    length: int
    test_split: str
    test_first_seed: int
    test_clips: int
    reference_clips: int
    floor_clips: int
    spectrum_frame: int
    spectrum_hop: int
    spectrum_bands: int
    samples: int
    ddim_steps: int
    eta: float
    batch_size: int
    seconds_sampling: float
    seconds_per_sample: float
    machine: str
    torch_version: str
    threads: int


# --------------------------------------------------------------------------- spectra
def spectrum_frame(length: int) -> tuple[int, int]:
    """``(F, hop)`` of the spectra of clips of ``length`` samples: ``F = min(512, length)``,
    ``hop = max(F // 2, 1)``."""
    frame = min(SPECTRUM_FRAME, length)
    return frame, max(frame // 2, 1)


def frame_power(clips: Tensor, frame: int, hop: int) -> Tensor:
    """Hann-windowed frame powers ``|rfft(w x)_j|^2 / sum(w^2)``: ``[..., L] -> [..., frames,
    F // 2 + 1]`` (float64; frames ``i hop … i hop + F - 1`` that fit in ``L``)."""
    window = torch.hann_window(frame, dtype=torch.float64)
    frames = clips.to(torch.float64).unfold(-1, frame, hop) * window
    return torch.fft.rfft(frames).abs().square() / window.square().sum()


def band_index(frame: int, sample_rate: int, bands: int = SPECTRUM_BANDS) -> Tensor:
    """The band of every rFFT bin, int64 ``[F // 2 + 1]``, ``-1`` below 20 Hz (module docstring)."""
    frequency = torch.arange(frame // 2 + 1, dtype=torch.float64) * sample_rate / frame
    position = torch.log(frequency.clamp_min(LOWEST_FREQUENCY) / LOWEST_FREQUENCY) / math.log(
        sample_rate / 2 / LOWEST_FREQUENCY
    )
    index = torch.floor(bands * position).long().clamp(max=bands - 1)
    return torch.where(frequency >= LOWEST_FREQUENCY, index, -1)


def band_levels_db(clips: Tensor, sample_rate: int, bands: int = SPECTRUM_BANDS) -> Tensor:
    """The levels ``10 log10(P_band + 1e-10)`` of the non-empty bands of the mean power
    spectrum of ``clips`` ``[N, L]``: float64 ``[bands']`` (module docstring)."""
    frame, hop = spectrum_frame(clips.shape[-1])
    spectrum = frame_power(clips, frame, hop).mean(dim=(0, 1))
    index = band_index(frame, sample_rate, bands)
    inside = index >= 0
    sums = torch.zeros(bands, dtype=torch.float64).index_add_(0, index[inside], spectrum[inside])
    counts = torch.bincount(index[inside], minlength=bands)
    filled = counts > 0
    return 10 * torch.log10(sums[filled] / counts[filled] + POWER_FLOOR)


def spectral_distance(a: Tensor, b: Tensor, sample_rate: int) -> float:
    """Mean absolute dB difference of the band levels of ``a`` ``[Na, L]`` and ``b`` ``[Nb, L]``
    (module docstring)."""
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"the clips to compare must have one length; got {a.shape[-1]} and {b.shape[-1]}."
        )
    return float((band_levels_db(a, sample_rate) - band_levels_db(b, sample_rate)).abs().mean())


def clip_rms(clips: Tensor) -> Tensor:
    """Mean over clips of each clip's RMS per stem: ``[N, S, L] -> [S]`` (float64)."""
    return clips.to(torch.float64).square().mean(-1).sqrt().mean(0)


# --------------------------------------------------------------------------- held-out loss
def heldout_noise(seed: int, index: int, shape: tuple[int, ...]) -> tuple[int, Tensor]:
    """``(k, eps [*shape])`` of test clip ``index``: ``k ~ U{1, …, 1000}``, ``eps ~ N(0, I)``
    from a generator seeded by ``derive_seed(seed, 22, index)``."""
    generator = torch_generator(derive_seed(seed, HELDOUT_STREAM, index))
    k = int(torch.randint(1, NUM_TIMESTEPS + 1, (1,), generator=generator))
    return k, torch.randn(shape, generator=generator)


@torch.no_grad()
def heldout_loss(
    prior: AudioPrior | IndependentStemsPrior,
    clips: Tensor,
    seed: int = 0,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Per-stem training objective of ``prior`` on ``clips`` ``[N, S, L]``: ``[S]`` float64, the
    mean square over clips and samples of the residual of :func:`objective_residual`, ``(k,
    eps)`` of clip ``i`` from :func:`heldout_noise` (drawn on the CPU; each batch is moved to
    ``device``, where the prior's network lives)."""
    parts = prior.parts if isinstance(prior, IndependentStemsPrior) else (prior,)
    total = torch.zeros(clips.shape[1], dtype=torch.float64)
    for start in range(0, clips.shape[0], batch_size):
        x0 = clips[start : start + batch_size]
        draws = [heldout_noise(seed, start + i, tuple(x0.shape[1:])) for i in range(x0.shape[0])]
        k = torch.tensor([d[0] for d in draws]).to(device)
        eps = torch.stack([d[1] for d in draws]).to(device)
        x0 = x0.to(device)
        abar = prior.schedule.alpha_bar(k).to(x0.dtype).view(-1, 1, 1)
        x_k = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
        channel = 0
        for part in parts:
            width = part.sample_shape[0]
            window = slice(channel, channel + width)
            residual = objective_residual(part, x0[:, window], x_k[:, window], k, eps[:, window])
            total[window] += residual.to(torch.float64).square().sum(dim=(0, 2)).cpu()
            channel += width
    return total / (clips.shape[0] * clips.shape[2])


def objective_residual(
    prior: AudioPrior, x0: Tensor, x_k: Tensor, k: Tensor, eps: Tensor
) -> Tensor:
    """The residual whose mean square is the training objective of ``prior``'s network, ``[B, S,
    L]``: EDM's :meth:`~mgdm.audio.prior.PreconditionedUNet1D.training_residual` for the priors
    of ``mgdm train audio-prior``, ``eps_hat(x_k, k) - eps`` for a plain epsilon network."""
    if isinstance(prior.network, PreconditionedUNet1D):
        return prior.network.training_residual(x0, x_k, k)
    return prior.epsilon(x_k, k) - eps


# --------------------------------------------------------------------------- evaluation
def stem_clips_for(
    prior: AudioPrior | IndependentStemsPrior, data: StemData, path: Path | str
) -> Tensor:
    """The clips ``[N, S, L]`` of the prior's stems in ``data`` (read from ``path``); ``ValueError``
    when a stem, the length or the sample rate does not match, or ``N < 2``."""
    missing = [stem for stem in prior.stems if stem not in data.names]
    if missing:
        raise ValueError(
            f"{path} holds the stems {list(data.names)}, not {missing}; give a stem file of "
            "`mgdm audio-data --split test` (it holds all four stems)."
        )
    count, _, length = data.stems.shape
    if length != prior.sample_shape[1] or data.sample_rate != prior.sample_rate:
        raise ValueError(
            f"{path} holds clips of {length} samples at {data.sample_rate} Hz; the prior models "
            f"{prior.sample_shape[1]} samples at {prior.sample_rate} Hz: give test clips of that "
            "length and rate."
        )
    if count < 2:
        raise ValueError(
            f"{path} holds {count} clip(s); the spectral floor compares two halves of the test "
            "clips: give at least 2."
        )
    return data.stems[:, [data.names.index(stem) for stem in prior.stems]]


def evaluate_audio_prior(
    prior: AudioPrior | IndependentStemsPrior,
    test_data: StemData | Path | str,
    count: int = 64,
    num_steps: int = 100,
    seed: int = 0,
    eta: float = 1.0,
    batch_size: int = 16,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[AudioPriorEvaluation, Tensor]:
    """Measure ``prior`` on ``test_data``, a stem file or its loaded contents (module
    docstring); returns the figures and the ``count`` samples ``[count, S, L]``. ``batch_size`` clips go through the
    network at once (the figures do not depend on it, up to rounding). ``ValueError`` for a
    test file that does not fit the prior (:func:`stem_clips_for`), for ``count`` or
    ``batch_size`` below 1 and for ``num_steps`` below 2."""
    for name, value in (("number of samples", count), ("batch size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"the {name} must be a positive integer; got {value!r}.")
    if isinstance(test_data, StemData):
        data, source = test_data, "the test data"
    else:
        data, source = load_stem_tensor(test_data), str(test_data)
    clips = stem_clips_for(prior, data, source)
    losses = heldout_loss(prior, clips, seed, batch_size, device)
    started = time.perf_counter()
    seeds = [derive_seed(seed, SAMPLE_STREAM, n) for n in range(count)]
    samples = sample_prior(prior, seeds, num_steps, eta, batch_size, progress, device)
    seconds = time.perf_counter() - started
    half = clips.shape[0] // 2
    floor_set, reference = clips[: min(count, half)], clips[half:]
    sample_rms, data_rms = clip_rms(samples), clip_rms(clips)
    per_stem = tuple(
        StemEvaluation(
            stem=stem,
            heldout_loss=float(losses[s]),
            sample_rms=float(sample_rms[s]),
            data_rms=float(data_rms[s]),
            spectral_distance_db=spectral_distance(
                samples[:, s], reference[:, s], prior.sample_rate
            ),
            spectral_floor_db=spectral_distance(
                floor_set[:, s], reference[:, s], prior.sample_rate
            ),
        )
        for s, stem in enumerate(prior.stems)
    )
    frame, hop = spectrum_frame(clips.shape[-1])
    evaluation = AudioPriorEvaluation(
        independent=isinstance(prior, IndependentStemsPrior),
        per_stem=per_stem,
        heldout_loss=float(losses.mean()),
        sample_rate=prior.sample_rate,
        length=clips.shape[-1],
        test_split=data.split,
        test_first_seed=data.first_seed,
        test_clips=clips.shape[0],
        reference_clips=reference.shape[0],
        floor_clips=floor_set.shape[0],
        spectrum_frame=frame,
        spectrum_hop=hop,
        spectrum_bands=int((band_index(frame, prior.sample_rate).unique() >= 0).sum()),
        samples=count,
        ddim_steps=num_steps,
        eta=eta,
        batch_size=batch_size,
        seconds_sampling=seconds,
        seconds_per_sample=seconds / count,
        machine=machine_description(),
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
    )
    return evaluation, samples


def save_audio_evaluation(evaluation: AudioPriorEvaluation, path: Path | str) -> Path:
    """Write ``evaluation`` as JSON (``per_stem`` as a list of objects) to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(asdict(evaluation), indent=2) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- listening and figure
def write_sample_audio(
    samples: Tensor,
    stems: tuple[str, ...],
    sample_rate: int,
    folder: Path | str,
    reference: Tensor,
    count: int = 4,
) -> list[Path]:
    """Write the first ``count`` samples ``[N, S, L]`` as ``folder/samples/sample{i}_{stem}.wav``
    and ``sample{i}_mix.wav`` (the sum of the stems), and ``folder/samples.png``: the
    spectrograms of sample 0's stems beside those of ``reference`` ``[S, L]`` (one test clip).
    Returns the written paths (the figure last)."""
    folder = Path(folder)
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    written = []
    for i, sample in enumerate(samples[:count]):
        for name, audio in (*zip(stems, sample), ("mix", sample.sum(0))):
            path = folder / "samples" / f"sample{i}_{name}.wav"
            write_wav(path, audio, sample_rate)
            written.append(path)
    written.append(
        write_spectrogram_figure(samples[0], reference, stems, sample_rate, folder / "samples.png")
    )
    return written


def write_spectrogram_figure(
    sample: Tensor, reference: Tensor, stems: tuple[str, ...], sample_rate: int, path: Path
) -> Path:
    """A PNG of ``S`` rows and 2 columns: the log-power spectrograms ``10 log10(frame power +
    1e-10)`` (frames of :func:`spectrum_frame`) of ``sample`` and ``reference``, both ``[S, L]``,
    on one colour scale."""
    from mgdm.plotting import pyplot

    plt = pyplot()
    frame, hop = spectrum_frame(sample.shape[-1])
    levels = 10 * torch.log10(
        frame_power(torch.stack([sample, reference]), frame, hop) + POWER_FLOOR
    )
    seconds = sample.shape[-1] / sample_rate
    figure, axes = plt.subplots(
        len(stems), 2, figsize=(10, 2.2 * len(stems)), squeeze=False, sharex=True, sharey=True
    )
    for column, title in enumerate(("prior sample 0", "test clip 0")):
        for row, stem in enumerate(stems):
            axis = axes[row][column]
            image = axis.imshow(
                levels[column, row].T.numpy(),
                origin="lower",
                aspect="auto",
                extent=(0.0, seconds, 0.0, sample_rate / 2),
                vmin=float(levels.max()) - 100,
                vmax=float(levels.max()),
                cmap="magma",
            )
            axis.set_title(f"{title}: {stem}", fontsize=9)
            axis.set_ylabel("Hz")
        axes[-1][column].set_xlabel("seconds")
    figure.colorbar(image, ax=axes, label="dB (power per bin)")
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
