"""`mgdm evaluate audio-prior`: spectral distance, held-out loss, determinism, files and card, on
tiny priors trained for two steps on random stems of 64 samples."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from mgdm.audio.constants import STEMS
from mgdm.audio.dataset import StemData, save_stem_tensor
from mgdm.audio.prior import AudioPrior, PreconditionedUNet1D, load_audio_prior
from mgdm.audio.unet1d import UNet1DConfig
from mgdm.audio.wav import read_audio
from mgdm.cli import main
from mgdm.evaluate.audio import (
    band_index,
    clip_rms,
    evaluate_audio_prior,
    frame_power,
    heldout_loss,
    spectral_distance,
)

torch.set_num_threads(1)

LENGTH = 64
TINY_ARGS = ["--channels", "4,8", "--factors", "4", "--batch-size", "4", "--steps", "2"]


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _stem_file(path: Path, split: str, count: int, seed: int) -> Path:
    stems = 0.05 * _randn(count, 4, LENGTH, seed=seed)
    save_stem_tensor(path, StemData(stems, STEMS, 8000, split, seed, 1, "TimGM6mb.sf2"))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A joint run, four single-stem runs under ``independent/`` and a test file of 6 clips."""
    root = tmp_path_factory.mktemp("audio-evaluate")
    train = _stem_file(root / "train.safetensors", "train", 8, 0)
    command = ["train", "audio-prior", "--data", str(train), *TINY_ARGS]
    assert main([*command, "--out", str(root / "joint")]) == 0
    for stem in STEMS:
        out = root / "independent" / stem
        assert main([*command, "--out", str(out), "--stems", stem]) == 0
    return {
        "joint": root / "joint",
        "independent": root / "independent",
        "test": _stem_file(root / "test.safetensors", "test", 6, 2_000_000),
    }


def _evaluate(files, *command: str) -> int:
    return main(
        [
            "evaluate", "audio-prior", "--data", str(files["test"]), "--samples", "4",
            "--steps", "3", "--command", "mgdm train audio-prior --out RUN",
            "--training-hardware", "a test machine", *command,
        ]
    )  # fmt: skip


# --- spectral distance ------------------------------------------------------------------


def test_spectral_distance_closed_forms() -> None:
    noise = _randn(8, 2048, seed=1)
    assert spectral_distance(noise, noise, 8000) == 0.0
    # x against c x: every band's power scales by c^2, so the distance is 20 log10 c exactly
    assert spectral_distance(noise, 3 * noise, 8000) == pytest.approx(20 * math.log10(3), rel=1e-9)
    # white noise of variance v has power v in every bin (on average over frames and clips)
    torch.testing.assert_close(
        frame_power(0.5 * noise, 512, 256).mean(dim=(0, 1, 2)),
        torch.tensor(0.25, dtype=torch.float64),
        rtol=0.03,
        atol=0,
    )
    time = torch.arange(2048) / 8000
    low, high = (
        torch.sin(2 * math.pi * 250 * time)[None],
        torch.sin(2 * math.pi * 2000 * time)[None],
    )
    assert spectral_distance(low, high, 8000) > 10
    silence = torch.zeros(2, 2048)
    assert spectral_distance(silence, silence, 8000) == 0.0
    assert math.isfinite(spectral_distance(silence, low, 8000))
    with pytest.raises(ValueError, match="one length"):
        spectral_distance(noise, noise[:, :1024], 8000)


def test_bands_are_log_spaced_from_20_hz() -> None:
    index = band_index(512, 8000)
    assert index.shape == (257,)
    assert index[:2].tolist() == [-1, -1]  # 0 and 15.6 Hz are below 20 Hz
    inside = index[2:]
    assert bool((inside[1:] >= inside[:-1]).all()) and int(inside[-1]) == 63
    # above a few hundred Hz every band holds several bins, and more at higher frequencies
    counts = torch.bincount(inside, minlength=64)
    assert int(counts[-1]) > int(counts[40]) > 1


# --- evaluation ------------------------------------------------------------------------


def _figures(evaluation) -> dict:
    """The evaluation without its timing and batch size."""
    timing = {"seconds_sampling": 0.0, "seconds_per_sample": 0.0, "batch_size": 0}
    return asdict(replace(evaluation, **timing))


def test_evaluation_is_deterministic_and_measured(files) -> None:
    prior = load_audio_prior(files["joint"])
    evaluation, samples = evaluate_audio_prior(prior, files["test"], count=4, num_steps=3)
    again, samples_again = evaluate_audio_prior(prior, files["test"], count=4, num_steps=3)
    assert samples.shape == (4, 4, LENGTH) and torch.equal(samples, samples_again)
    assert _figures(evaluation) == _figures(again)
    rebatched, samples_rebatched = evaluate_audio_prior(
        prior, files["test"], count=4, num_steps=3, batch_size=3
    )
    torch.testing.assert_close(samples_rebatched, samples)
    assert rebatched.heldout_loss == pytest.approx(evaluation.heldout_loss, rel=1e-5)

    assert [s.stem for s in evaluation.per_stem] == list(STEMS)
    assert evaluation.test_clips == 6 and evaluation.reference_clips == 3
    assert evaluation.floor_clips == 3 and evaluation.spectrum_frame == LENGTH
    losses = torch.tensor([s.heldout_loss for s in evaluation.per_stem])
    assert evaluation.heldout_loss == pytest.approx(float(losses.mean()))
    sample_rms = clip_rms(samples)
    for s, figures in enumerate(evaluation.per_stem):
        assert figures.sample_rms == pytest.approx(float(sample_rms[s]))
        assert figures.spectral_distance_db > 0 and figures.spectral_floor_db > 0
    other_seed, _ = evaluate_audio_prior(prior, files["test"], count=4, num_steps=3, seed=1)
    assert other_seed.heldout_loss != evaluation.heldout_loss


class _ZeroNetwork(torch.nn.Module):
    """A network that outputs zeros (and carries a UNet configuration, as a UNet1D does)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = UNet1DConfig(in_channels=4, channels=(4,), factors=())
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x) * self.weight


def test_heldout_loss_is_the_objective_of_zero_predictors(files) -> None:
    prior = load_audio_prior(files["joint"])
    clips = 0.05 * _randn(64, 4, LENGTH, seed=7)
    loss = heldout_loss(prior, clips[:5], seed=0, batch_size=2)
    assert loss.shape == (4,) and bool((loss > 0).all())
    torch.testing.assert_close(loss, heldout_loss(prior, clips[:5], seed=0, batch_size=5))
    # eps_hat = 0: the loss is the mean of eps^2; F = 0 under EDM's scalings with sigma_data the
    # data's RMS: the mean square of a unit-variance target. Both are 1 up to sampling error.
    epsilon_zero = AudioPrior(_ZeroNetwork(), STEMS, 8000, LENGTH)
    edm_zero = AudioPrior(PreconditionedUNet1D(_ZeroNetwork(), 0.05), STEMS, 8000, LENGTH)
    for zero in (epsilon_zero, edm_zero):
        assert bool(((heldout_loss(zero, clips) - 1).abs() < 0.1).all())


def test_bad_test_data(files, tmp_path) -> None:
    prior = load_audio_prior(files["joint"])
    short = _randn(4, 4, 2 * LENGTH, seed=3)
    save_stem_tensor(tmp_path / "long.safetensors", StemData(short, STEMS, 8000, "test", 0, 1, "x"))
    with pytest.raises(ValueError, match="clips of 128 samples at 8000 Hz; the prior models 64"):
        evaluate_audio_prior(prior, tmp_path / "long.safetensors", count=1, num_steps=2)
    with pytest.raises(ValueError, match="number of samples must be a positive integer"):
        evaluate_audio_prior(prior, files["test"], count=0)


# --- command line ----------------------------------------------------------------------


def test_cli_writes_evaluation_audio_and_card(files, capsys) -> None:
    folder = files["joint"]
    assert _evaluate(files, "--prior", str(folder)) == 0  # --run defaults to --prior
    assert "held-out loss" in capsys.readouterr().out
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert evaluation["samples"] == 4 and evaluation["ddim_steps"] == 3
    assert not evaluation["independent"] and len(evaluation["per_stem"]) == 4
    assert (folder / "samples.png").stat().st_size > 1000
    stems = [read_audio(folder / "samples" / f"sample3_{stem}.wav")[0] for stem in STEMS]
    mix, rate = read_audio(folder / "samples" / "sample3_mix.wav")
    assert rate == 8000 and mix.shape == (1, LENGTH)
    torch.testing.assert_close(mix, sum(stems))
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith("# 4-stem music diffusion prior (joint")
    assert f"**{evaluation['heldout_loss']:.4f}**" in card
    for figures in evaluation["per_stem"]:
        assert (
            f"| {figures['stem']} | {figures['heldout_loss']:.4f} | {figures['sample_rms']:.4f} | "
            f"{figures['data_rms']:.4f} | {figures['spectral_distance_db']:.2f} | "
            f"{figures['spectral_floor_db']:.2f} |"
        ) in card
    assert "**8 clips** (song seeds 0 … 7)" in card and "GPL-2" in card
    assert "`mgdm train audio-prior --out RUN`" in card and "Hardware: a test machine." in card
    assert "| all | 0.0004 | 4 | 0 | 2 |" in card  # lr, batch, seed, steps of the run
    network = load_audio_prior(folder).network
    assert f"{sum(p.numel() for p in network.parameters()):,} |" in card


def test_cli_independent_stems_lists_every_part(files) -> None:
    folder = files["independent"]
    assert _evaluate(files, "--prior", str(folder), "--run", str(folder)) == 0
    assert json.loads((folder / "evaluation.json").read_text())["independent"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith("# Independent-stems music prior")
    for stem in STEMS:
        assert f"| {stem} | 0.0004 | 4 | 0 | 2 |" in card


def test_cli_errors_say_what_is_expected(files, capsys) -> None:
    assert _evaluate(files, "--prior", str(files["independent"]), "--run", str(files["joint"])) == 2
    error = capsys.readouterr().err
    assert "is not a finished `mgdm train audio-prior` run" in error
    assert "the folder holding the four runs bass/, drums/, guitar/, piano/" in error
    assert _evaluate(files, "--prior", str(files["joint"]), "--run", str(files["joint"] / "x")) == 2
    assert "--run is the `mgdm train audio-prior --out` folder" in capsys.readouterr().err
