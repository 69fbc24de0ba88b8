"""The MSDM checkpoint as an audio prior (``msdm:PATH``) on a small random
``audio_diffusion_pytorch`` model of MSDM's family, saved as MSDM's Lightning trainer saves it
(``state_dict`` with ``model.unet.*`` and ``model.diffusion.net.*``, a pickled
``LogNormalDistribution`` among the hyper-parameters)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import soundfile
import torch

from mgdm.audio import msdm_prior
from mgdm.audio.constants import STEMS
from mgdm.audio.msdm_prior import MSDMPrior, build_msdm_model, load_msdm_prior
from mgdm.audio.prior import load_audio_prior, msdm_schedule
from mgdm.cli import main

LENGTH = 256
TINY = {
    **msdm_prior.MSDM_MODEL_OPTIONS,
    "channels": 16,
    "patch_factor": 4,
    "resnet_groups": 4,
    "multipliers": [1, 1, 2],
    "factors": [2, 2],
    "num_blocks": [1, 1],
    "attentions": [False, True],
    "attention_heads": 2,
    "attention_features": 8,
}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_msdm_model(TINY)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model.eval().requires_grad_(False)


def _save(model: torch.nn.Module, path, extra: dict | None = None) -> None:
    from audio_diffusion_pytorch import LogNormalDistribution

    state = {f"model.{k}": v for k, v in model.state_dict().items()} | (extra or {})
    torch.save(
        {
            "epoch": 100,
            "global_step": 400_000,
            "pytorch-lightning_version": "1.7.7",
            "state_dict": state,
            "callbacks": {"ModelCheckpoint{'monitor': 'valid_loss'}": {"best_model_path": "x"}},
            "hyper_parameters": {
                "learning_rate": 1e-4,
                "diffusion_sigma_distribution": LogNormalDistribution(mean=-3.0, std=1.0),
            },
        },
        path,
    )


def test_checkpoint_round_trip(model, tmp_path):
    path = tmp_path / "msdm.ckpt"
    _save(model, path)
    prior = load_msdm_prior(path, options=TINY, length=LENGTH)
    assert isinstance(prior, MSDMPrior) and prior.stems == STEMS
    assert prior.sample_rate == 22_050 and prior.sample_shape == (4, LENGTH)
    assert torch.equal(prior.schedule.abar, msdm_schedule().abar)
    x = 0.1 * torch.randn(3, 4, LENGTH, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, 500, 1000])
    abar = msdm_schedule().alpha_bar(t)
    sigma = (1 / abar - 1).sqrt()
    x_ve = x * (1 + sigma.square()).sqrt().float().view(-1, 1, 1)
    with torch.no_grad():
        expected = model.diffusion.denoise_fn(x_ve, sigmas=sigma.float())
        assert torch.equal(prior.denoise(x, t), expected)  # D_k(x) = D(x / sqrt(abar), sigma)
        eps = (x_ve - expected) / sigma.float().view(-1, 1, 1)
        assert torch.allclose(prior.epsilon(x, t), eps, rtol=1e-6, atol=1e-7)
        assert not prior.epsilon(x, torch.zeros(3, dtype=torch.int64)).any()
        assert torch.equal(prior.denoise(x, torch.zeros(3, dtype=torch.int64)), x)


def test_mismatch_and_foreign_tensors_are_named(model, tmp_path):
    path = tmp_path / "msdm.ckpt"
    state = dict(model.state_dict())
    _save(model, path, {"model.extra.weight": torch.zeros(1)})
    with pytest.raises(
        ValueError, match=r"not an MSDM checkpoint: .*1 others \[model.extra.weight\]"
    ):
        load_msdm_prior(path, options=TINY, length=LENGTH)
    wider = build_msdm_model({**TINY, "channels": 32})
    _save(wider, path)
    with pytest.raises(
        ValueError, match=r"\(model\.unet\.\*\) does not fit UNet1d: .*shape mismatches"
    ):
        load_msdm_prior(path, options=TINY, length=LENGTH)
    with pytest.raises(ValueError, match="multiple of it"):
        load_msdm_prior(path, options=TINY, length=LENGTH + 1)
    assert state  # the fixture's model is untouched


def test_separate_honours_rate_and_window(model, tmp_path, monkeypatch):
    """``mgdm separate --prior msdm:PATH``: the mix is resampled to 22,050 Hz and cut into
    windows of the prior's length (MSDM's options shrunk to the tiny model)."""
    path = tmp_path / "msdm.ckpt"
    _save(model, path)
    monkeypatch.setattr(msdm_prior, "MSDM_MODEL_OPTIONS", TINY)
    monkeypatch.setattr(msdm_prior, "MSDM_LENGTH", LENGTH)
    assert load_audio_prior(f"msdm:{path}").sample_shape == (4, LENGTH)
    tone = 0.1 * np.sin(np.arange(60) * 2 * np.pi * 220 / 8000).astype(np.float32)
    soundfile.write(tmp_path / "mix.wav", tone, 8000, subtype="FLOAT")
    argv = ["separate", str(tmp_path / "mix.wav"), "--out-dir", str(tmp_path / "stems")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main([*argv, "--prior", f"msdm:{path}", "--sampler", "msdm", "--quiet"])
    assert status == 0, out.getvalue()
    assert "resampled from 8000 Hz to the prior's 22050 Hz" in out.getvalue()
    assert f"one window of {LENGTH} samples (the mix zero-padded from 166)" in out.getvalue()
    assert all((tmp_path / "stems" / f"{stem}.wav").is_file() for stem in STEMS)
