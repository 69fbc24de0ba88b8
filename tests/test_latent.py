"""Latent priors: the decode-then-likelihood gradient, the Stable-Diffusion-layout loader (both UNet
kinds, legacy VAE keys, missing parts), the two training stages (exact resume, export, CLI) and
bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mgdm.data import FASHION_MNIST_DIR
from mgdm.operators.noise import GaussianNoise
from mgdm.operators.super_resolution import SuperResolution
from mgdm.priors import EpsilonNetworkPrior
from mgdm.priors.latent import (
    EMPTY_PROMPT_FILE,
    DecodedOperator,
    KLAutoencoder,
    LatentPrior,
    decode_samples,
    latent_problem,
    load_latent_prior,
)
from mgdm.priors.latent.autoencoder import build_autoencoder
from mgdm.problem import Problem
from mgdm.train.latent import build_latent_unet

installed = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason="dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)

SCALING = 0.7


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (zero-initialised output layers would hide errors), frozen as
    the loaders freeze theirs (CPU attention kernels differ in the last bit otherwise)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return model.eval().requires_grad_(False)


def _tiny_vae(image_size: int = 8, seed: int = 1) -> nn.Module:
    """``[1, s, s] -> [2, s/2, s/2]``, random weights, ``scaling_factor = SCALING``."""
    vae = _randomised(build_autoencoder((8, 8), 2, seed=seed, image_size=image_size), seed)
    vae.register_to_config(scaling_factor=SCALING)
    return vae


def _condition_unet() -> nn.Module:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=4,
        in_channels=2,
        out_channels=2,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=12,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    return _randomised(unet, 2)


def _write_folder(root: Path, unet: nn.Module, vae: nn.Module) -> Path:
    """Stable Diffusion's layout: ``vae/``, ``unet/``, ``scheduler/`` (scaled-linear betas)."""
    from diffusers import DDPMScheduler

    unet.save_pretrained(root / "unet", safe_serialization=True)
    vae.save_pretrained(root / "vae", safe_serialization=True)
    DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    ).save_pretrained(root / "scheduler")
    return root


# --------------------------------------------------------------------------- likelihood
def test_decoded_likelihood_and_its_gradient_against_finite_differences():
    vae = _randomised(build_autoencoder((4, 4), 2, seed=0, image_size=4)).double()
    autoencoder = KLAutoencoder(vae, 4, scaling_factor=0.5)
    operator = SuperResolution((1, 4, 4), 2)
    y = torch.linspace(-0.5, 0.5, 4, dtype=torch.float64).reshape(1, 2, 2)
    problem = Problem(DecodedOperator(operator, autoencoder), y, GaussianNoise(0.1))
    z = torch.randn(2, *autoencoder.latent_shape, dtype=torch.float64, requires_grad=True)

    decoded = vae.decode(z / 0.5).sample
    expected = -((y - operator(decoded)) ** 2).reshape(2, -1).sum(1) / (2 * 0.1**2)
    torch.testing.assert_close(problem.log_likelihood(z), expected)
    assert torch.autograd.gradcheck(problem.log_likelihood, (z,), eps=1e-6, atol=1e-5)


# --------------------------------------------------------------------------- loaders
def test_unconditional_folder_loads_with_equal_outputs(tmp_path):
    unet = _randomised(build_latent_unet((8, 8), (2, 4, 4), seed=0), 3)
    vae = _tiny_vae()
    prior = load_latent_prior(_write_folder(tmp_path, unet, vae))
    assert prior.sample_shape == (2, 4, 4) and prior.image_shape == (1, 8, 8)
    assert prior.data_range is None
    z, t = torch.randn(3, 2, 4, 4), torch.tensor([1, 500, 1000])
    with torch.no_grad():
        assert torch.equal(prior.epsilon(z, t), unet(z, t).sample)
        assert torch.equal(prior.autoencoder.decode(z), vae.decode(z / SCALING).sample)
        x = torch.rand(3, 1, 8, 8) * 2 - 1
        assert torch.equal(prior.autoencoder.encode(x), SCALING * vae.encode(x).latent_dist.mean)
    abar_ddpm = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, 0)
    torch.testing.assert_close(prior.schedule.abar[1:], abar_ddpm.double(), rtol=1e-5, atol=0)


def test_text_conditioned_folder_uses_the_empty_prompt_embedding(tmp_path):
    unet, vae = _condition_unet(), _tiny_vae()
    root = _write_folder(tmp_path, unet, vae)
    with pytest.raises(FileNotFoundError, match=rf"{EMPTY_PROMPT_FILE} is missing.*text_encoder"):
        load_latent_prior(root)
    save_file({"embedding": torch.randn(1, 5, 7)}, str(root / EMPTY_PROMPT_FILE))
    with pytest.raises(ValueError, match=r"expected \[1, tokens, 12\]"):
        load_latent_prior(root)
    embedding = torch.randn(1, 5, 12)
    save_file({"embedding": embedding}, str(root / EMPTY_PROMPT_FILE))
    prior = load_latent_prior(root)
    z, t = torch.randn(2, 2, 4, 4), torch.tensor([10, 900])
    with torch.no_grad():
        expected = unet(z, t, encoder_hidden_states=embedding.expand(2, -1, -1)).sample
        assert torch.equal(prior.epsilon(z, t), expected)


def test_legacy_vae_attention_names_and_missing_parts(tmp_path):
    unet = build_latent_unet((8, 8), (2, 4, 4), seed=0)
    vae = _tiny_vae()
    root = _write_folder(tmp_path, unet, vae)
    weights = root / "vae" / "diffusion_pytorch_model.safetensors"
    legacy = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    state = {}
    for key, value in load_file(str(weights)).items():
        for new, old in legacy.items():
            key = key.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        state[key] = value
    assert any(".query." in key for key in state)
    save_file(state, str(weights))
    z = torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(
            load_latent_prior(root).autoencoder.decode(z), vae.decode(z / SCALING).sample
        )

    state.pop(next(iter(state)))
    save_file(state, str(weights))
    with pytest.raises(ValueError, match="1 missing keys"):
        load_latent_prior(root)
    (root / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="scheduler/scheduler_config.json is missing"):
        load_latent_prior(root)


# --------------------------------------------------------------------------- bad input
def test_shapes_that_do_not_fit_are_refused():
    autoencoder = KLAutoencoder(_tiny_vae(), 8)
    wrong = EpsilonNetworkPrior(lambda x, t: x, (4, 4, 4), data_range=None)
    with pytest.raises(ValueError, match=r"latents of shape \[4, 4, 4\].*\[2, 4, 4\]"):
        LatentPrior(wrong, autoencoder)
    prior = LatentPrior(EpsilonNetworkPrior(lambda x, t: x, (2, 4, 4)), autoencoder)
    problem = Problem(SuperResolution((1, 16, 16), 2), torch.zeros(1, 8, 8), GaussianNoise(0.1))
    with pytest.raises(ValueError, match=r"images of shape \[1, 16, 16\].*\[1, 8, 8\]"):
        latent_problem(problem, prior)
    with pytest.raises(ValueError, match="multiples of it"):
        KLAutoencoder(_tiny_vae(), 7)
    z = torch.full((1, 2, 4, 4), 30.0)
    images = decode_samples(prior, z)
    assert images.shape == (1, 1, 8, 8) and images.abs().max() <= 1.0


# --------------------------------------------------------------------------- training
AE_OPTIONS = ["--channels", "8,8,8", "--latent-channels", "4", "--batch-size", "8"]
PRIOR_OPTIONS = ["--channels", "8,8", "--batch-size", "8"]
COMMON = ["--limit", "64", "--seed", "3", "--checkpoint-every", "2"]


def _cli(*argv: str) -> int:
    from mgdm.commands.train import add_latent_commands as add_train_commands

    parser = argparse.ArgumentParser()
    add_train_commands(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "diffusion_pytorch_model.safetensors"))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted autoencoder run and a latent prior on it, 4 steps each, by the CLI."""
    autoencoder = tmp_path_factory.mktemp("autoencoder")
    prior = tmp_path_factory.mktemp("latent-prior")
    argv = ["--steps", "4", *COMMON]
    assert (
        _cli("autoencoder", "--out", str(autoencoder), *argv, *AE_OPTIONS, "--eval-limit", "8") == 0
    )
    assert (
        _cli(
            "latent-prior",
            "--autoencoder",
            str(autoencoder),
            "--out",
            str(prior),
            *argv,
            *PRIOR_OPTIONS,
        )
        == 0
    )
    return autoencoder, prior


@installed
def test_autoencoder_resume_equals_an_uninterrupted_run(runs, tmp_path):
    straight, _ = runs
    metrics = json.loads((straight / "metrics.json").read_text())
    assert metrics["images"] == 8 and 0 < metrics["psnr_mean"] < 100
    for steps in ("2", "4"):
        argv = ["--steps", steps, *COMMON, *AE_OPTIONS, "--eval-limit", "2"]
        assert _cli("autoencoder", "--out", str(tmp_path), *argv) == 0
    _assert_same(_weights(straight / "vae"), _weights(tmp_path / "vae"))
    assert (straight / "train_log.csv").read_text().count("\n") == 5
    with pytest.raises(ValueError, match="--kl-weight"):
        _cli(
            "autoencoder",
            "--out",
            str(tmp_path),
            "--steps",
            "4",
            *COMMON,
            *AE_OPTIONS,
            "--kl-weight",
            "0.1",
        )


@installed
def test_latent_prior_resume_export_and_loading(runs, tmp_path):
    from mgdm.data.fashion_mnist import load_fashion_mnist
    from mgdm.priors.latent.autoencoder import load_autoencoder_kl
    from mgdm.train.latent import training_latents

    autoencoder, straight = runs
    for steps in ("2", "4"):
        argv = ["--steps", steps, *COMMON, *PRIOR_OPTIONS]
        assert (
            _cli("latent-prior", "--autoencoder", str(autoencoder), "--out", str(tmp_path), *argv)
            == 0
        )
    _assert_same(_weights(straight / "unet"), _weights(tmp_path / "unet"))

    vae = load_autoencoder_kl(autoencoder / "vae")
    _, scaling = training_latents(vae, load_fashion_mnist("train", limit=64).images)
    saved = json.loads((straight / "vae" / "config.json").read_text())
    assert saved["scaling_factor"] == pytest.approx(scaling, rel=1e-6)
    prior = load_latent_prior(straight)
    assert prior.sample_shape == (4, 8, 8) and prior.image_shape == (1, 32, 32)
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(prior.autoencoder.decode(z), vae.decode(z / scaling).sample)

    other = tmp_path / "other-autoencoder"
    _cli(
        "autoencoder",
        "--out",
        str(other),
        "--steps",
        "1",
        *COMMON,
        *AE_OPTIONS,
        "--eval-limit",
        "1",
    )
    with pytest.raises(ValueError, match="autoencoder-sha256"):
        _cli(
            "latent-prior",
            "--autoencoder",
            str(other),
            "--out",
            str(tmp_path),
            "--steps",
            "4",
            *COMMON,
            *PRIOR_OPTIONS,
        )


@installed
def test_restore_runs_on_a_latent_prior(runs, tmp_path, capsys):
    from mgdm.cli import main

    _, prior_dir = runs
    out = tmp_path / "grid.png"
    argv = ["restore", "--test-image", "0", "--task", "sr4", "--prior", str(prior_dir)]
    assert main([*argv, "--samples", "2", "--nfe", "30", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PSNR" in printed and out.is_file()
    assert (
        main([*argv, "--sampler", "psld", "--nfe", "20", "--samples", "1", "--out", str(out)]) == 0
    )


@installed
def test_image_benchmark_runs_on_a_latent_prior(runs, tmp_path):
    from mgdm.bench.images import run_image_benchmark
    from mgdm.bench.images_db import read_cells

    _, prior_dir = runs
    db = tmp_path / "latent.sqlite"
    summary = run_image_benchmark(
        str(prior_dir), "sr4,jpeg", "all", 1, "0", 0.05, db, budget=30,
        classifier=None, progress=False,
    )  # fmt: skip
    cells = {(c.task, c.sampler): c for c in read_cells(db)}
    assert {s for _, s in cells} == {"mgdm", "dps", "pgdm", "ddnm", "diffpir", "reddiff", "daps",
                                     "pnpdm", "psld", "resample"}  # fmt: skip
    assert cells[("sr4", "psld")].status == "done" and cells[("sr4", "mgdm")].psnr is not None
    assert cells[("jpeg", "psld")].status == "skipped"  # PSLD needs a linear A
    assert cells[("sr4", "ddnm")].status == "skipped"  # no SVD through the decoder
    assert summary.done + summary.skipped == len(cells)
