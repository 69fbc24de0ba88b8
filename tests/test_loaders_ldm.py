"""CompVis latent-diffusion checkpoints (``ldm:PATH``, ``ldm-ffhq256:PATH``) on a small random
model of the same architecture, saved as latent-diffusion saves it (a Lightning checkpoint with
``state_dict`` holding ``model.diffusion_model.*`` and ``first_stage_model.*``, pickled
callback classes and hyper-parameters), and the safe reading of such checkpoints."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from mgdm.checkpoints import read_training_state_dict
from mgdm.cli import main
from mgdm.priors.adm import ADMUNet
from mgdm.priors.catalog import load_prior, prior_domain
from mgdm.priors.latent import LatentPrior
from mgdm.priors.latent.vq import VQModel
from mgdm.priors.ldm import FFHQ_LDM_VQ4, LDMConfig, ldm_config_from_dict, load_ldm_prior

SCALE = 0.8

TINY_YAML = {
    "model": {
        "target": "ldm.models.diffusion.ddpm.LatentDiffusion",
        "params": {
            "linear_start": 0.0015,
            "linear_end": 0.0195,
            "timesteps": 1000,
            "image_size": 8,
            "channels": 3,
            "scale_factor": SCALE,
            "unet_config": {
                "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                "params": {
                    "image_size": 8,
                    "in_channels": 3,
                    "out_channels": 3,
                    "model_channels": 32,
                    "attention_resolutions": [2],
                    "num_res_blocks": 1,
                    "channel_mult": [1, 2],
                    "num_head_channels": 16,
                },
            },
            "first_stage_config": {
                "target": "ldm.models.autoencoder.VQModelInterface",
                "params": {
                    "embed_dim": 3,
                    "n_embed": 16,
                    "ddconfig": {
                        "double_z": False,
                        "z_channels": 3,
                        "resolution": 16,
                        "in_channels": 3,
                        "out_ch": 3,
                        "ch": 32,
                        "ch_mult": [1, 2],
                        "num_res_blocks": 1,
                        "attn_resolutions": [8],
                        "dropout": 0.0,
                    },
                    "lossconfig": {"target": "torch.nn.Identity"},
                },
            },
            "cond_stage_config": "__is_unconditional__",
        },
    }
}


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return model.eval().requires_grad_(False)


def _fake_class(monkeypatch, path: str, base: type = object) -> type:
    """A class pickled by reference under ``path`` (its module tree put in ``sys.modules``)."""
    module_name, _, name = path.rpartition(".")
    parts = module_name.split(".")
    for i in range(1, len(parts) + 1):
        dotted = ".".join(parts[:i])
        if dotted not in sys.modules:
            monkeypatch.setitem(sys.modules, dotted, types.ModuleType(dotted))
    cls = type(name, (base,), {"__module__": module_name, "__qualname__": name})
    monkeypatch.setattr(sys.modules[module_name], name, cls, raising=False)
    return cls


@pytest.fixture(scope="module")
def tiny() -> tuple[LDMConfig, nn.Module, nn.Module]:
    config = ldm_config_from_dict(TINY_YAML)
    return config, _randomised(ADMUNet(config.unet), 0), _randomised(VQModel(config.first_stage), 1)


def _lightning_checkpoint(monkeypatch, unet: nn.Module, vq: nn.Module, config: LDMConfig) -> dict:
    """The dictionary latent-diffusion's Lightning trainer saves (Lightning 1.4 layout)."""
    checkpoint_class = _fake_class(
        monkeypatch, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"
    )
    attribute_dict = _fake_class(
        monkeypatch, "pytorch_lightning.utilities.parsing.AttributeDict", dict
    )
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state |= {f"first_stage_model.{k}": v for k, v in vq.state_dict().items()}
    state["alphas_cumprod"] = torch.cumprod(1 - config.betas(), 0).float()
    state["betas"] = config.betas().float()
    state["model_ema.decay"] = torch.tensor(0.9999)
    return {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": state,
        "callbacks": {checkpoint_class: {"best_model_score": torch.tensor(0.1), "dirpath": "x"}},
        "hyper_parameters": attribute_dict(base_learning_rate=2e-6),
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
    }


def _write_model(folder: Path, checkpoint: dict) -> Path:
    folder.mkdir()
    torch.save(checkpoint, folder / "model.ckpt")
    (folder / "config.yaml").write_text(yaml.safe_dump(TINY_YAML))
    return folder / "model.ckpt"


def test_lightning_checkpoint_loads_with_config_beside_it(tiny, tmp_path, monkeypatch):
    config, unet, vq = tiny
    path = _write_model(tmp_path / "ldm", _lightning_checkpoint(monkeypatch, unet, vq, config))
    assert prior_domain(f"ldm:{path}") == "latent"
    prior = load_prior(f"ldm:{path}")
    assert isinstance(prior, LatentPrior)
    assert prior.sample_shape == (3, 8, 8) and prior.data_shape == (3, 16, 16)
    assert prior.data_range is None and prior.denoiser.prediction == "epsilon"
    abar = torch.cumprod(1 - config.betas(), 0)
    assert torch.allclose(prior.schedule.abar[1:], abar.clamp_min(1e-6), rtol=1e-12)
    z, t = torch.randn(2, 3, 8, 8), torch.tensor([5, 900])
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(prior.epsilon(z, t), unet(z, t))
        assert torch.equal(prior.autoencoder.encode(x), SCALE * vq.encode(x))
        assert torch.equal(prior.autoencoder.decode(z), vq.decode(z / SCALE))
    # straight-through quantization: the decoder is differentiable in z
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.autoencoder.decode(z).sum(), z)
    assert grad.abs().sum() > 0


def test_decode_snaps_to_the_codebook(tiny):
    _, _, vq = tiny
    h = torch.randn(1, 3, 8, 8)
    codebook = vq.quantize.embedding.weight
    snapped = vq.quantize(h).permute(0, 2, 3, 1).reshape(-1, 3)
    nearest = codebook[torch.cdist(h.permute(0, 2, 3, 1).reshape(-1, 3), codebook).argmin(1)]
    assert torch.allclose(snapped, nearest, atol=1e-6)


def test_safetensors_and_preset(tiny, tmp_path, monkeypatch):
    config, unet, vq = tiny
    path = _write_model(tmp_path / "ldm", _lightning_checkpoint(monkeypatch, unet, vq, config))
    out = tmp_path / "model.safetensors"
    assert main(["convert-checkpoint", str(path), str(out)]) == 0  # safe route: no flag needed
    assert set(load_file(out)) == set(read_training_state_dict(path))
    prior = load_ldm_prior(out, config)
    z, t = torch.randn(1, 3, 8, 8), torch.tensor([300])
    with torch.no_grad():
        assert torch.equal(prior.epsilon(z, t), unet(z, t))
    with pytest.raises(ValueError, match=r"does not fit VQModel: .*shape mismatches \[encoder"):
        load_prior(f"ldm-ffhq256:{out}")  # the tiny model is not the paper's


def test_preset_is_the_papers_model():
    """``ffhq-ldm-vq-4``: 274M UNet parameters (the LDM paper's count), a 55M VQ-f4."""
    with torch.device("meta"):
        unet, vq = ADMUNet(FFHQ_LDM_VQ4.unet), VQModel(FFHQ_LDM_VQ4.first_stage)
    assert sum(p.numel() for p in unet.parameters()) == 274_056_163
    assert sum(p.numel() for p in vq.parameters()) == 55_322_782
    assert unet.config.attention_rates() == (8, 4, 2)


def test_mismatches_are_named(tiny, tmp_path, monkeypatch):
    config, unet, vq = tiny
    checkpoint = _lightning_checkpoint(monkeypatch, unet, vq, config)
    del checkpoint["state_dict"]["first_stage_model.quantize.embedding.weight"]
    checkpoint["state_dict"]["first_stage_model.extra.weight"] = torch.zeros(1)
    path = _write_model(tmp_path / "a", checkpoint)
    with pytest.raises(
        ValueError,
        match=r"\(first_stage_model\.\*\) does not fit VQModel: 1 missing keys "
        r"\[quantize.embedding.weight\]; 1 unexpected keys \[extra.weight\]",
    ):
        load_prior(f"ldm:{path}")
    checkpoint = _lightning_checkpoint(monkeypatch, unet, vq, config)
    checkpoint["state_dict"] = {
        k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("model.")
    }
    path = _write_model(tmp_path / "b", checkpoint)
    with pytest.raises(ValueError, match=r"no model\.diffusion_model\.\* tensors"):
        load_prior(f"ldm:{path}")
    wrong = dataclasses.replace(config, linear_end=0.02)
    path = _write_model(tmp_path / "c", _lightning_checkpoint(monkeypatch, unet, vq, config))
    with pytest.raises(ValueError, match="alphas_cumprod"):
        load_ldm_prior(path, wrong)
    (tmp_path / "c" / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="no configuration beside"):
        load_prior(f"ldm:{path}")


def test_config_refusals():
    conditional = {"model": {"params": {**TINY_YAML["model"]["params"], "cond_stage_config": {}}}}
    with pytest.raises(ValueError, match="conditional"):
        ldm_config_from_dict(conditional)
    kl = {**TINY_YAML["model"]["params"]}
    kl["first_stage_config"] = {"target": "ldm.models.autoencoder.AutoencoderKL", "params": {}}
    with pytest.raises(ValueError, match="only VQ autoencoders"):
        ldm_config_from_dict({"model": {"params": kl}})


def test_foreign_pickles_need_the_flag(tiny, tmp_path, monkeypatch):
    """A global outside the allow-list is refused by every reader (named in the message); the
    conversion command runs the pickle only with --trust-pickle."""
    config, unet, vq = tiny
    checkpoint = _lightning_checkpoint(monkeypatch, unet, vq, config)
    checkpoint["hyper_parameters"] = _fake_class(monkeypatch, "evil.payload.Run")()
    path = _write_model(tmp_path / "ldm", checkpoint)
    with pytest.raises(ValueError, match=r"evil\.payload\.Run.*convert-checkpoint --trust-pickle"):
        load_prior(f"ldm:{path}")
    out = tmp_path / "w.safetensors"
    assert main(["convert-checkpoint", str(path), str(out)]) == 2 and not out.exists()
    assert main(["convert-checkpoint", str(path), str(out), "--trust-pickle"]) == 0
    prior = load_ldm_prior(out, config)
    z, t = torch.randn(1, 3, 8, 8), torch.tensor([40])
    with torch.no_grad():
        assert torch.equal(prior.epsilon(z, t), unet(z, t))


def test_restore_command_with_an_ldm_checkpoint(tiny, tmp_path, monkeypatch):
    """``mgdm restore --prior ldm:PATH`` as a user runs it (latent prior: the problem goes
    through the decoder, the samples are decoded)."""
    from PIL import Image

    config, unet, vq = tiny
    path = _write_model(tmp_path / "ldm", _lightning_checkpoint(monkeypatch, unet, vq, config))
    Image.new("RGB", (16, 16), (100, 120, 140)).save(tmp_path / "clean.png")
    argv = ["restore", str(tmp_path / "clean.png"), "--task", "sr4", "--prior", f"ldm:{path}"]
    argv += ["--sampler", "dps", "--nfe", "5", "--samples", "1", "--out", str(tmp_path / "g.png")]
    assert main([*argv, "--quiet"]) == 0
    assert Image.open(tmp_path / "g.png").size[1] >= 16


@pytest.mark.parametrize("flag", [[], ["--trust-pickle"]])
def test_convert_refuses_what_is_no_checkpoint(tmp_path, capsys, flag):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    out = tmp_path / "w.safetensors"
    assert main(["convert-checkpoint", str(tmp_path / "notes.ckpt"), str(out), *flag]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.ckpt" in err and not out.exists()
    assert main(["convert-checkpoint", str(tmp_path / "notes.ckpt"), str(tmp_path / "w.pt")]) == 2


def test_x0_parameterization_and_other_step_counts(tiny, tmp_path, monkeypatch):
    """``parameterization: x0`` with ``timesteps: 500``: the UNet's output is the Tweedie estimate
    and it is told ``k * 500 / 1000`` (real-valued between whole steps)."""
    _, unet, vq = tiny
    params = {**TINY_YAML["model"]["params"], "parameterization": "x0", "timesteps": 500}
    config = ldm_config_from_dict({"model": {"params": params}})
    path = tmp_path / "model.ckpt"
    torch.save(_lightning_checkpoint(monkeypatch, unet, vq, config), path)
    prior = load_ldm_prior(path, config)
    assert prior.denoiser.prediction == "sample"
    z, k = torch.randn(2, 3, 8, 8), torch.tensor([7, 1000])
    with torch.no_grad():
        assert torch.equal(prior.denoise(z, k), unet(z, torch.tensor([3.5, 500.0])))
