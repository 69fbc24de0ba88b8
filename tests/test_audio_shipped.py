"""The shipped audio priors: they load, their model cards state their measured figures, and a
short mix separates with them through the API and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from mgdm.audio.constants import CLIP_LENGTH, SAMPLE_RATE, STEMS
from mgdm.audio.prior import MODEL_FILE, PRIOR_FILE, AudioPrior, IndependentStemsPrior
from mgdm.audio.separate import SHIPPED_AUDIO_PRIORS, resolve_prior, separate_tensor
from mgdm.audio.wav import read_audio
from mgdm.cli import main
from mgdm.samplers.msdm import MSDM

FAST = MSDM(num_steps=3, num_resamples=1)


@pytest.fixture(scope="module")
def four_stem() -> AudioPrior:
    prior = resolve_prior("4stem")
    assert isinstance(prior, AudioPrior)
    return prior


def test_shipped_priors_load_with_the_data_conventions(four_stem) -> None:
    independent = resolve_prior(None)  # the default
    assert isinstance(independent, IndependentStemsPrior)
    for prior in (four_stem, independent):
        assert prior.stems == STEMS
        assert prior.sample_rate == SAMPLE_RATE and prior.sample_shape == (4, CLIP_LENGTH)
        x = torch.randn(2, 4, CLIP_LENGTH, generator=torch.Generator().manual_seed(0)) * 0.05
        with torch.no_grad():
            eps = prior.epsilon(x, torch.tensor([10, 900]))
        assert eps.shape == x.shape and torch.isfinite(eps).all()
    with pytest.raises(ValueError, match=r"neither a shipped prior \(4stem, independent\)"):
        resolve_prior("no-such-prior")


@pytest.mark.parametrize("name", sorted(SHIPPED_AUDIO_PRIORS))
def test_model_cards_state_the_measured_figures(name: str) -> None:
    folder = SHIPPED_AUDIO_PRIORS[name]
    evaluation = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert evaluation["independent"] == (name == "independent")
    assert [s["stem"] for s in evaluation["per_stem"]] == list(STEMS)
    for stem in evaluation["per_stem"]:
        assert f"{stem['heldout_loss']:.4f}" in card
        assert f"{stem['spectral_distance_db']:.2f}" in card
    assert (folder / "samples.png").is_file()
    parts = [folder] if name == "4stem" else [folder / stem for stem in STEMS]
    for part in parts:
        assert (part / PRIOR_FILE).is_file() and (part / MODEL_FILE).is_file()


def test_short_mix_separates_with_the_shipped_prior(four_stem, tmp_path, capsys) -> None:
    t = np.arange(2000) / SAMPLE_RATE
    mix = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
    result = separate_tensor(torch.from_numpy(mix).float(), SAMPLE_RATE, four_stem, FAST, seed=0)
    assert result.stems.shape == (4, 2000) and torch.isfinite(result.stems).all()
    torch.testing.assert_close(result.stems.sum(0), result.mix, rtol=0, atol=1e-5)

    path = tmp_path / "mix.wav"
    soundfile.write(path, mix, SAMPLE_RATE)
    out = tmp_path / "stems"
    argv = ["separate", str(path), "--out-dir", str(out), "--sampler", "msdm"]
    assert main([*argv, "--prior", "independent"]) == 0
    assert "wrote 4 stems of 0.25 s at 8000 Hz" in capsys.readouterr().out
    total = sum(read_audio(out / f"{stem}.wav")[0][0] for stem in STEMS)
    torch.testing.assert_close(total, read_audio(path)[0][0], rtol=0, atol=1e-5)  # 16-bit mix
