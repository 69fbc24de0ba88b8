"""Audio priors: the 1-D UNet, saving and loading, independent stems, training and exact resume."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mgdm.audio.constants import STEMS
from mgdm.audio.dataset import StemData, save_stem_tensor
from mgdm.audio.prior import (
    AudioPrior,
    IndependentStemsPrior,
    PreconditionedUNet1D,
    load_audio_prior,
    msdm_schedule,
    save_audio_prior,
)
from mgdm.audio.unet1d import UNet1DConfig, build_unet1d

LENGTH = 64
TINY = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)
TINY_ARGS = ["--channels", "4,8", "--factors", "4", "--batch-size", "4", "--seed", "3"]


def _tiny_prior(channels: int = 4, seed: int = 0) -> AudioPrior:
    network = build_unet1d(UNet1DConfig(**{**TINY.to_json(), "in_channels": channels}), seed)
    stems = STEMS if channels == 4 else (STEMS[seed % 4],)
    return AudioPrior(network, stems, 8000, LENGTH)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_msdm_schedule_matches_the_reference_grid() -> None:
    schedule = msdm_schedule()
    sigma = schedule.to_sigma(torch.arange(1001))
    assert float(sigma[0]) == 0.0
    torch.testing.assert_close(sigma[1], torch.tensor(5e-4, dtype=torch.float64))
    torch.testing.assert_close(sigma[1000], torch.tensor(20.0, dtype=torch.float64))
    assert bool((sigma[1:] > sigma[:-1]).all())
    # poly-3 spacing: sigma^(1/3) is linear in k
    root = sigma[1:] ** (1 / 3)
    torch.testing.assert_close(root[1:] - root[:-1], (root[1] - root[0]).expand(999))


def test_unet_shapes_and_bad_inputs() -> None:
    network = build_unet1d(TINY)
    out = network(_randn(3, 4, LENGTH, seed=1), torch.tensor([1, 500, 1000]))
    assert out.shape == (3, 4, LENGTH)
    assert torch.equal(
        build_unet1d(TINY).state_dict()["input.weight"], network.state_dict()["input.weight"]
    )
    with pytest.raises(ValueError, match=r"expects \[B, 4, L\] with L a multiple of 4"):
        network(_randn(1, 4, 66, seed=2), torch.tensor([1]))
    with pytest.raises(ValueError, match="factors must hold 1 integers >= 2"):
        UNet1DConfig(channels=(4, 8), factors=(4, 4))
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        UNet1DConfig(kernel_size=4)


def test_saved_prior_loads_back_with_equal_outputs(tmp_path) -> None:
    prior = _tiny_prior()
    save_audio_prior(tmp_path, prior.network, prior.stems, 8000, LENGTH)
    loaded = load_audio_prior(tmp_path)
    assert isinstance(loaded, AudioPrior) and loaded.stems == STEMS
    assert loaded.sample_shape == (4, LENGTH) and loaded.sample_rate == 8000
    assert loaded.data_range is None
    x, t = _randn(2, 4, LENGTH, seed=3), torch.tensor([10, 700])
    assert torch.equal(loaded.epsilon(x, t), prior.epsilon(x, t))
    assert torch.equal(loaded.denoise(x, t), prior.denoise(x, t))
    assert json.loads((tmp_path / "prior.json").read_text())["schedule"] == "msdm-karras"


def test_edm_preconditioning_identities_and_round_trip(tmp_path) -> None:
    schedule = msdm_schedule()
    network = PreconditionedUNet1D(build_unet1d(TINY, seed=5), sigma_data=0.04)
    x0 = 0.04 * _randn(3, 4, LENGTH, seed=6)
    eps = _randn(3, 4, LENGTH, seed=7)
    # at k = 0 (sigma = 0) the denoiser is the identity
    torch.testing.assert_close(network(x0, torch.zeros(3, dtype=torch.int64)), x0)
    # EDM's loss is the denoising error weighted by 1 / c_out^2
    k = torch.tensor([1, 400, 1000])
    abar = schedule.alpha_bar(k).to(torch.float64).view(-1, 1, 1)
    x_vp = (abar.sqrt() * x0 + (1 - abar).sqrt() * eps).float()
    sigma = (1 / abar - 1).sqrt()  # in float64: 1 - abar is 2.5e-7 at k = 1
    c_out = (sigma * 0.04 / (sigma.square() + 0.04**2).sqrt()).float()
    with torch.no_grad():
        weighted = ((network(x_vp, k) - x0) / c_out).square().mean()
        torch.testing.assert_close(network.training_loss(x0, x_vp, k), weighted, rtol=1e-4, atol=0)
    # saved and loaded: an x0-predicting prior with the same outputs
    save_audio_prior(tmp_path, network, STEMS, 8000, LENGTH)
    description = json.loads((tmp_path / "prior.json").read_text())
    assert description["preconditioning"] == {"kind": "edm", "sigma_data": 0.04}
    loaded = load_audio_prior(tmp_path)
    assert isinstance(loaded.network, PreconditionedUNet1D) and loaded.prediction == "sample"
    prior = AudioPrior(network, STEMS, 8000, LENGTH)
    assert torch.equal(loaded.denoise(x_vp, k), prior.denoise(x_vp, k))
    with pytest.raises(ValueError, match="sigma_data must be a positive number"):
        PreconditionedUNet1D(build_unet1d(TINY, seed=5), sigma_data=0.0)


def test_independent_stems_prior(tmp_path) -> None:
    parts = [_tiny_prior(1, seed) for seed in range(4)]
    joint = IndependentStemsPrior(parts)
    assert joint.sample_shape == (4, LENGTH) and joint.stems == STEMS
    x, t = _randn(2, 4, LENGTH, seed=4), torch.tensor([5, 900])
    expected = torch.cat([p.denoise(x[:, i : i + 1], t) for i, p in enumerate(parts)], dim=1)
    torch.testing.assert_close(joint.denoise(x, t), expected)
    for part in parts:
        save_audio_prior(tmp_path / part.stems[0], part.network, part.stems, 8000, LENGTH)
    loaded = load_audio_prior(tmp_path)
    assert isinstance(loaded, IndependentStemsPrior)
    assert torch.equal(loaded.epsilon(x, t), joint.epsilon(x, t))
    with pytest.raises(ValueError, match="needs single-stem priors"):
        IndependentStemsPrior([_tiny_prior()])


def test_load_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="holds no audio prior: expected prior.json"):
        load_audio_prior(tmp_path)
    (tmp_path / "prior.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON description of an audio prior"):
        load_audio_prior(tmp_path)
    prior = _tiny_prior()
    save_audio_prior(tmp_path, prior.network, prior.stems, 8000, LENGTH)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="has prior.json but no model.safetensors"):
        load_audio_prior(tmp_path)


# --- training --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stem_file(tmp_path_factory) -> Path:
    """Eight random four-stem clips of 64 samples in the format of `mgdm audio-data`."""
    path = tmp_path_factory.mktemp("data") / "train.safetensors"
    stems = 0.05 * _randn(8, 4, LENGTH, seed=5)
    save_stem_tensor(path, StemData(stems, STEMS, 8000, "train", 0, 1, "TimGM6mb.sf2"))
    return path


def _train(data: Path, out: Path, steps: int, *extra: str) -> int:
    from mgdm.commands.train import add_audio_prior_command as add_train_command

    parser = argparse.ArgumentParser()
    add_train_command(parser.add_subparsers(dest="what"))
    args = parser.parse_args(
        [
            "audio-prior",
            "--data",
            str(data),
            "--out",
            str(out),
            "--steps",
            str(steps),
            *TINY_ARGS,
            *extra,
        ]
    )
    return args.func(args)


def _log(out: Path) -> list[list[str]]:
    with open(out / "train_log.csv", newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_training_resumes_exactly_and_loads_as_a_prior(stem_file, tmp_path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _train(stem_file, straight, 4, "--checkpoint-every", "2") == 0
    assert _train(stem_file, resumed, 2) == 0
    assert _train(stem_file, resumed, 4) == 0  # continues from step 2
    a, b = (
        load_file(str(straight / "model.safetensors")),
        load_file(str(resumed / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [row[0] for row in _log(resumed)] == ["step", "1", "2", "3", "4"]
    assert [row[1] for row in _log(resumed)] == [row[1] for row in _log(straight)]
    assert not list(resumed.glob("*.tmp"))
    prior = load_audio_prior(straight)
    assert prior.sample_shape == (4, LENGTH) and prior.stems == STEMS
    assert json.loads((straight / "config.json").read_text())["data"]["count"] == 8


def test_single_stem_training_and_run_errors(stem_file, tmp_path) -> None:
    out = tmp_path / "drums"
    assert _train(stem_file, out, 1, "--stems", "drums") == 0
    prior = load_audio_prior(out)
    assert prior.stems == ("drums",) and prior.sample_shape == (1, LENGTH)
    with pytest.raises(
        ValueError, match=r"cannot resume .* --stems \(saved 'drums', requested 'bass'\)"
    ):
        _train(stem_file, out, 2, "--stems", "bass")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        _train(stem_file, out, 0, "--stems", "drums")
    with pytest.raises(ValueError, match="batch size 16 exceeds the 8 clips"):
        _train(stem_file, tmp_path / "big", 1, "--batch-size", "16")
    with pytest.raises(ValueError, match="must be a multiple of it"):
        _train(stem_file, tmp_path / "deep", 1, "--channels", "4,4,4,4", "--factors", "4,4,8")
    with pytest.raises(ValueError, match="--channels must be comma-separated integers"):
        _train(stem_file, tmp_path / "x", 1, "--channels", "4;8")
