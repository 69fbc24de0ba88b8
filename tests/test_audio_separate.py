"""Separation API and command: windows and overlap-add, resampling, SI-SDRi, files, bad inputs."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import soundfile
import torch

from mgdm.audio.constants import STEMS
from mgdm.audio.metrics import evaluation_windows, si_sdr, si_sdr_improvement
from mgdm.audio.prior import AudioPrior, save_audio_prior
from mgdm.audio.resample import resample
from mgdm.audio.separate import (
    overlap_add,
    separate_file,
    separate_tensor,
    separate_windows,
    split_windows,
    window_weights,
)
from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
from mgdm.audio.wav import read_audio
from mgdm.samplers.msdm import MSDM

LENGTH = 64
FAST = MSDM(num_steps=3, num_resamples=1)


@pytest.fixture(scope="module")
def prior() -> AudioPrior:
    config = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)
    return AudioPrior(build_unet1d(config, seed=2), STEMS, 8000, LENGTH)


def _tone(rate: int, seconds: float, hz: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * hz * t + c) for c in range(channels)], axis=1)


# --- windows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "overlap"), [(64, 32), (200, 32), (201, 16), (10, 32), (130, 0)]
)
def test_windows_and_overlap_add_reconstruct(samples: int, overlap: int) -> None:
    signal = torch.randn(samples, generator=torch.Generator().manual_seed(samples))
    windows = split_windows(signal, LENGTH, overlap)
    assert windows.shape[1] == LENGTH
    count = windows.shape[0]
    padded = (count - 1) * (LENGTH - overlap) + LENGTH
    assert padded >= samples > padded - LENGTH or count == 1
    # the cross-fade weights sum to one at every sample
    coverage = overlap_add(torch.ones(count, 1, LENGTH, dtype=torch.float64), padded, overlap)
    torch.testing.assert_close(coverage, torch.ones(1, padded, dtype=torch.float64))
    assert window_weights(count, LENGTH, overlap).shape == (count, LENGTH)

    # an identity-like "separation": stem 0 = the window, the others its halves with signs
    def separate(batch: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        assert len(seeds) == batch.shape[0]
        return torch.stack([batch, 0.5 * batch, -0.5 * batch, batch * 0], dim=1)

    stems = separate_windows(separate, signal, LENGTH, overlap, batch_size=2, seed=0)
    assert stems.shape == (4, samples)
    torch.testing.assert_close(stems[0], signal)
    torch.testing.assert_close(stems.sum(0), signal)


def test_windows_of_several_channels_share_their_seeds() -> None:
    signal = torch.randn(2, 200, generator=torch.Generator().manual_seed(0))
    seen: list[int] = []

    def separate(batch: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        seen.extend(seeds)
        return torch.stack([batch, -batch], dim=1)

    stems = separate_windows(separate, signal, LENGTH, 32, batch_size=3, seed=5)
    assert stems.shape == (2, 2, 200)
    torch.testing.assert_close(stems[0], signal)
    half = len(seen) // 2
    assert seen[:half] == seen[half:] and len(set(seen[:half])) == half  # per window, per channel


# --- resampling --------------------------------------------------------------------------


def test_resample_keeps_tones_and_removes_aliases() -> None:
    t32 = torch.arange(16000, dtype=torch.float64) / 32000
    low = torch.sin(2 * math.pi * 440 * t32) + 0.5 * torch.sin(2 * math.pi * 3000 * t32)
    out = resample(low, 32000, 8000)
    assert out.shape == (4000,)
    t8 = torch.arange(4000, dtype=torch.float64) / 8000
    expected = torch.sin(2 * math.pi * 440 * t8) + 0.5 * torch.sin(2 * math.pi * 3000 * t8)
    torch.testing.assert_close(out[100:-100], expected[100:-100], rtol=0, atol=1e-4)
    high = torch.sin(2 * math.pi * 6000 * t32)  # above the new Nyquist frequency
    assert float(resample(high, 32000, 8000)[100:-100].abs().max()) < 1e-4
    assert resample(torch.zeros(2, 3, 441), 44100, 8000).shape == (2, 3, 80)
    up = resample(expected, 8000, 44100)
    assert up.shape == (22050,)
    assert torch.equal(resample(low, 8000, 8000), low)
    with pytest.raises(ValueError, match="new_rate must be a positive integer"):
        resample(low, 8000, 0)


def test_resample_agrees_with_scipy_on_band_limited_signals() -> None:
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(0)
    t = np.arange(4410) / 44100
    x = sum(rng.normal() * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (100, 900, 2500))
    ours = resample(torch.from_numpy(x), 44100, 8000).numpy()
    theirs = signal.resample_poly(x, 80, 441)
    np.testing.assert_allclose(ours[50:-50], theirs[50:-50], atol=2e-3)


# --- SI-SDR ------------------------------------------------------------------------------


def test_si_sdr_matches_torchmetrics_where_epsilon_is_negligible() -> None:
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    generator = torch.Generator().manual_seed(1)
    reference = torch.randn(3, 2000, generator=generator, dtype=torch.float64)
    estimate = reference + 0.3 * torch.randn(3, 2000, generator=generator, dtype=torch.float64)
    expected = scale_invariant_signal_distortion_ratio(estimate, reference)
    torch.testing.assert_close(si_sdr(estimate, reference), expected, rtol=1e-9, atol=1e-9)
    # a quiet window: the epsilons differ (1e-8 here, 1.2e-7 in float32 torchmetrics)
    quiet = (1e-5 * reference[0]).float()
    ours, theirs = (
        si_sdr(0.5 * quiet, quiet),
        scale_invariant_signal_distortion_ratio(0.5 * quiet, quiet),
    )
    energy = float(quiet.double().pow(2).sum())  # estimate = s / 2: <ŝ, s> = energy / 2
    alpha = (0.5 * energy + 1e-8) / (energy + 1e-8)
    expected_db = 10 * math.log10((alpha**2 * energy + 1e-8) / ((alpha - 0.5) ** 2 * energy + 1e-8))
    assert math.isclose(float(ours), expected_db, rel_tol=1e-6)
    assert float(theirs) < float(ours) - 1.0


def test_si_sdr_improvement_windows_and_silent_rule() -> None:
    assert evaluation_windows(262_144, 88_200, 44_100) == [
        (0, 88_200),
        (44_100, 132_300),
        (88_200, 176_400),
        (132_300, 220_500),
        (176_400, 262_144),
    ]
    assert evaluation_windows(16_384, 32_000, 16_000) == [(0, 16_384)]
    generator = torch.Generator().manual_seed(2)
    references = 0.1 * torch.randn(4, 16_384, generator=generator)
    score = si_sdr_improvement(references.clone(), references, 8000)
    assert score.windows_kept == score.windows_total == 1 and score.window == 16_384
    mixture = references.sum(0)
    energy = references.double().pow(2).sum(-1)
    perfect = 10 * torch.log10((energy + 1e-8) / 1e-8)  # alpha = 1, no error
    expected = perfect - si_sdr(mixture.expand(4, -1), references)
    torch.testing.assert_close(score.per_stem, expected, rtol=0, atol=1e-3)
    assert math.isclose(score.mean, float(expected.mean()), rel_tol=1e-6)
    lonely = torch.zeros_like(references)
    lonely[1] = references[1]  # one active stem: the window is skipped
    skipped = si_sdr_improvement(lonely, lonely, 8000)
    assert skipped.windows_kept == 0 and math.isnan(skipped.mean)
    with pytest.raises(ValueError, match="same shape"):
        si_sdr_improvement(references[:3], references, 8000)


# --- separate_tensor / separate_file -----------------------------------------------------


def test_separate_tensor_keeps_the_rate_and_channels(prior) -> None:
    stereo = torch.from_numpy(_tone(16000, 0.02, channels=2).T.copy()).float()  # [2, 320]
    result = separate_tensor(stereo, 16000, prior, FAST, seed=3, batch_size=3)
    assert result.stems.shape == (4, 2, 320) and result.sample_rate == 16000
    assert result.prior_rate == 8000 and result.names == STEMS and result.mix.shape == (2, 320)
    assert any("separated each of the 2 channels" in n for n in result.notes)
    assert any("resampled from 16000 Hz" in n for n in result.notes)
    assert any("4 windows of 64 samples" in n for n in result.notes)
    assert any("band below 4000 Hz" in n for n in result.notes)
    assert result.summary() == (
        "16000 Hz, 2 channels -> separated at the prior's 8000 Hz (each channel) -> 4 stems at "
        "16000 Hz, 2 channels"
    )
    # MSDM's stems sum to the mix at the prior's rate: back at 16 kHz, to the mix low-passed
    band = resample(resample(stereo.double(), 16000, 8000), 8000, 16000)[..., :320].float()
    torch.testing.assert_close(result.stems.sum(0), band, rtol=0, atol=1e-5)
    # each channel is separated on its own, with the same seeds as a mono mix
    right = separate_tensor(stereo[1], 16000, prior, FAST, seed=3, batch_size=4)
    assert right.stems.shape == (4, 320)
    torch.testing.assert_close(right.stems, result.stems[:, 1], rtol=0, atol=1e-4)
    again = separate_tensor(stereo, 16000, prior, FAST, seed=3, batch_size=1)
    torch.testing.assert_close(again.stems, result.stems, rtol=0, atol=1e-4)  # batch-free seeds


def test_separate_tensor_mono_averages_the_channels(prior) -> None:
    stereo = torch.from_numpy(_tone(8000, 0.02, channels=2).T.copy()).float()  # [2, 160]
    result = separate_tensor(stereo, 8000, prior, FAST, seed=1, mono=True)
    assert result.stems.shape == (4, 160) and result.sample_rate == 8000 and result.mono
    assert any("averaged 2 channels to mono" in n for n in result.notes)
    torch.testing.assert_close(result.stems.sum(0), stereo.mean(0), rtol=0, atol=1e-5)
    assert "(averaged to mono) -> 4 stems at 8000 Hz, 1 channel" in result.summary()


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        (torch.zeros(0), r"empty \(0 samples\)"),
        (torch.zeros(500), "silent"),
        (torch.zeros(2, 3, 4), r"must be \[samples\] or \[channels, samples\]"),
        (torch.ones(400, 2), r"400 channels of 2 samples.*transpose"),
        (torch.tensor([0.1, float("nan")]), "non-finite"),
        (torch.ones(10, dtype=torch.int32), "floating-point"),
    ],
)
def test_separate_tensor_rejects_bad_mixes(prior, mix: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        separate_tensor(mix, 8000, prior, FAST)


def test_separate_command_writes_four_stems(prior, tmp_path, capsys) -> None:
    from mgdm.commands.separate import add_parser

    mix_path = tmp_path / "mix.wav"
    soundfile.write(mix_path, _tone(8000, 0.012), 8000)
    save_audio_prior(tmp_path / "prior", prior.network, STEMS, 8000, LENGTH)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "stems"
    argv = ["separate", str(mix_path), "--out-dir", str(out), "--prior", str(tmp_path / "prior")]
    args = parser.parse_args([*argv, "--sampler", "msdm", "--seed", "1"])
    assert args.func(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{s}.wav" for s in STEMS]
    printed = capsys.readouterr().out
    assert "wrote 4 stems of 0.01 s at 8000 Hz" in printed
    assert (
        "8000 Hz, 1 channel -> separated at the prior's 8000 Hz (one channel) -> 4 stems" in printed
    )
    mix, _ = read_audio(mix_path)
    total = torch.zeros(96)
    for stem in STEMS:
        audio, rate = read_audio(out / f"{stem}.wav")
        assert rate == 8000 and audio.shape == (1, 96)
        total += audio[0]
    torch.testing.assert_close(total, mix[0], rtol=0, atol=1e-5)  # Dirac: the stems sum to the mix
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".stems")]
    written, separation = separate_file(mix_path, out, prior=prior, sampler=FAST)
    assert set(written) == set(STEMS) and separation.stems.shape == (4, 1, 96)  # the file layout


@pytest.mark.parametrize(("suffix", "rate"), [(".flac", 44100), (".ogg", 22050), (".mp3", 44100)])
def test_separate_file_reads_formats_and_writes_at_the_input_rate(
    prior, tmp_path, suffix: str, rate: int
) -> None:
    if suffix == ".mp3" and "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile reads no MP3 (1.1.0 or later does)")
    mix_path = tmp_path / f"mix{suffix}"
    soundfile.write(mix_path, _tone(rate, 0.01, channels=2), rate)
    frames = soundfile.info(str(mix_path)).frames
    written, separation = separate_file(mix_path, tmp_path / "stems", prior=prior, sampler=FAST)
    assert separation.summary().startswith(f"{rate} Hz, 2 channels -> separated at the prior's")
    for stem in STEMS:
        info = soundfile.info(str(written[stem]))
        assert (info.samplerate, info.channels, info.frames) == (rate, 2, frames)


def test_separate_file_errors_leave_nothing(prior, tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="does not exist"):
        separate_file(tmp_path / "missing.wav", out, prior=prior, sampler=FAST)
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(ValueError, match="cannot read .* as audio"):
        separate_file(tmp_path / "notes.txt", out, prior=prior, sampler=FAST)
    soundfile.write(tmp_path / "silent.wav", np.zeros((800, 1)), 8000)
    with pytest.raises(ValueError, match="silent"):
        separate_file(tmp_path / "silent.wav", out, prior=prior, sampler=FAST)
    with pytest.raises(ValueError, match="silent"):  # the mix is checked before the prior
        separate_file(tmp_path / "silent.wav", out, prior=tmp_path, sampler=FAST)
    soundfile.write(tmp_path / "tone.wav", _tone(8000, 0.01), 8000)
    with pytest.raises(ValueError, match="holds no audio prior"):
        separate_file(tmp_path / "tone.wav", out, prior=tmp_path, sampler=FAST)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "silent.wav", "tone.wav"]
    with pytest.raises(ValueError, match="overlap is a fraction in"):
        separate_tensor(torch.ones(10), 8000, prior, FAST, overlap=0.7)
