"""Diffusers models as diffusers reads them: legacy attention names, schedulers of other than
1000 training steps, and Hub ids resolved from a Hugging Face cache the test lays out (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mgdm.diffusion.conversions import v_to_eps
from mgdm.priors import load_diffusers_prior
from mgdm.priors.catalog import load_prior, prior_domain
from mgdm.priors.timescale import schedule_from_training_betas

LEGACY = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _tiny_unet(out_channels: int = 1) -> nn.Module:
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=out_channels,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return unet.eval().requires_grad_(False)


def _save_pipeline(folder: Path, unet: nn.Module, **scheduler: object) -> None:
    """``DDPMPipeline``'s layout, the UNet's attention weights under their legacy names."""
    from diffusers import DDPMScheduler

    unet.save_pretrained(folder / "unet")
    DDPMScheduler(**scheduler).save_pretrained(folder / "scheduler")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    renamed = {}
    for key, value in load_file(weights).items():
        for new, old in LEGACY.items():
            if ".attentions." in key and f".{new}." in key:
                key = key.replace(f".{new}.", f".{old}.")
        renamed[key] = value
    assert any(".query." in key for key in renamed)
    save_file(renamed, weights)
    index = {"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"]}
    index["scheduler"] = ["diffusers", "DDPMScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))


def test_legacy_attention_names_load(tmp_path):
    unet = _tiny_unet()
    _save_pipeline(tmp_path, unet)
    prior = load_diffusers_prior(tmp_path)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([7, 950])
    with torch.no_grad():
        assert torch.equal(prior.epsilon(x, t), unet(x, t).sample)


@pytest.mark.parametrize(("steps", "offset"), [(500, 0), (4000, 1)])
def test_other_training_step_counts(tmp_path, steps, offset):
    """``T`` steps on our 1000: ``abar[k] = A(k T / 1000)``, the UNet told ``k T / 1000 - offset``
    (real-valued between whole steps), v-prediction converted as for ``T = 1000``."""
    unet = _tiny_unet()
    _save_pipeline(tmp_path, unet, num_train_timesteps=steps, prediction_type="v_prediction")
    prior = load_diffusers_prior(tmp_path, network_time_offset=offset)
    betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
    a = torch.cumprod(1 - betas, 0).clamp_min(1e-6)  # A(j) = a[j - 1], clamped as for T = 1000
    k = torch.tensor([1, 2, 7, 500, 1000])
    step = k * steps / 1000
    whole = [2 * steps // 1000 - 1, steps // 2 - 1, steps - 1]  # k = 2, 500, 1000
    assert torch.allclose(prior.schedule.alpha_bar(k[[1, 3, 4]]), a[whole], rtol=1e-12)
    assert torch.equal(prior.schedule.abar, schedule_from_training_betas(betas, "x").abar)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        v = unet(x, (step - offset).clamp_min(0).float()).sample
    expected = v_to_eps(x, v, prior.schedule.alpha_bar(k))
    assert torch.allclose(prior.epsilon(x, k), expected, atol=1e-6)


def test_mismatch_is_one_line(tmp_path):
    _save_pipeline(tmp_path, _tiny_unet())
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    config["block_out_channels"] = [16, 64]
    (tmp_path / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"does not fit UNet2DModel: .* shape mismatches \[down"):
        load_diffusers_prior(tmp_path)
    config["block_out_channels"] = [16, 32]
    (tmp_path / "unet" / "config.json").write_text(json.dumps(config))
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    del state["conv_out.bias"]
    save_file(state, weights)
    with pytest.raises(ValueError, match=r"1 missing keys \[conv_out.bias\]; 0 unexpected"):
        load_diffusers_prior(tmp_path)


def _offline_cache(tmp_path: Path, monkeypatch, repo_id: str) -> Path:
    """An empty snapshot of ``repo_id`` in a Hugging Face cache laid out as huggingface_hub lays
    it out (``refs/main`` naming the snapshot), offline. huggingface_hub reads ``HF_HUB_CACHE``
    and ``HF_HUB_OFFLINE`` into its ``constants`` when imported, so they are set there as well
    as in the environment."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    for name, value in (("HF_HOME", tmp_path / "hf"), ("HF_HUB_CACHE", cache)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return repo / "snapshots" / REVISION


def test_hub_id_from_the_local_cache(tmp_path, monkeypatch):
    unet = _tiny_unet()
    _save_pipeline(_offline_cache(tmp_path, monkeypatch, "google/ddpm-tiny"), unet)
    assert prior_domain("google/ddpm-tiny") == "image"
    prior = load_prior("google/ddpm-tiny")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 999])
    with torch.no_grad():
        assert torch.equal(prior.epsilon(x, t), unet(x, t).sample)
    with pytest.raises(FileNotFoundError, match=r"'google/not-cached' .*hf download google/not"):
        load_prior("google/not-cached")


def test_hub_latent_pipeline_from_the_local_cache(tmp_path, monkeypatch):
    """A pipeline with ``vae/`` (Stable Diffusion's layout) is a latent prior from the Hub too."""
    from diffusers import DDPMScheduler, UNet2DModel

    from mgdm.priors.latent import LatentPrior
    from mgdm.priors.latent.autoencoder import build_autoencoder

    snapshot = _offline_cache(tmp_path, monkeypatch, "someone/tiny-ldm")
    build_autoencoder((8, 8), 2, seed=1, image_size=8).save_pretrained(snapshot / "vae")
    UNet2DModel(
        sample_size=4,
        in_channels=2,
        out_channels=2,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ).save_pretrained(snapshot / "unet")
    DDPMScheduler(beta_schedule="scaled_linear").save_pretrained(snapshot / "scheduler")
    index = {name: ["diffusers", "x"] for name in ("unet", "vae", "scheduler")}
    (snapshot / "model_index.json").write_text(json.dumps(index))
    assert prior_domain("someone/tiny-ldm") == "latent"
    prior = load_prior("someone/tiny-ldm")
    assert isinstance(prior, LatentPrior)
    assert prior.sample_shape == (2, 4, 4) and prior.data_shape == (1, 8, 8)
