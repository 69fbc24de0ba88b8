"""Checkpoint loaders on small randomly initialised models the tests create themselves."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from mgdm.diffusion import ddpm_linear
from mgdm.diffusion.conversions import eps_to_x0, v_to_eps, x0_to_eps
from mgdm.priors import (
    ADMConfig,
    ADMUNet,
    EpsilonNetworkPrior,
    load_adm_prior,
    read_state_dict,
)

TINY_ADM = ADMConfig(
    image_size=32,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2",
    attention_resolutions="16",
    learn_sigma=True,
    num_head_channels=16,
    resblock_updown=True,
    in_channels=1,
)


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (the zero-initialised output layers would hide errors)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def adm_model() -> ADMUNet:
    return _randomised(ADMUNet(TINY_ADM))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_adm_checkpoint_round_trip(adm_model, tmp_path, suffix):
    from safetensors.torch import save_file

    path = tmp_path / f"model{suffix}"
    state = {k: v.contiguous() for k, v in adm_model.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    prior = load_adm_prior(path, TINY_ADM)
    assert prior.sample_shape == (1, 32, 32) and prior.learn_sigma
    assert torch.equal(prior.schedule.abar, ddpm_linear().abar)
    x = torch.randn(2, 1, 32, 32)
    t = torch.tensor([3, 700])
    with torch.no_grad():
        expected = adm_model(x, t)
    assert expected.shape == (2, 2, 32, 32)
    assert torch.equal(prior.epsilon(x, t), expected[:, :1])  # learn_sigma: first C channels


def test_adm_mismatch_names_keys_and_shapes(adm_model, tmp_path):
    wider = ADMUNet(dataclasses.replace(TINY_ADM, num_channels=64)).state_dict()
    torch.save(wider, tmp_path / "wider.pt")
    with pytest.raises(
        ValueError, match=r"shape mismatches \[time_embed.0.weight: checkpoint \[256, 64\]"
    ):
        load_adm_prior(tmp_path / "wider.pt", TINY_ADM)
    state = dict(adm_model.state_dict())
    state.pop("out.2.bias")
    state["label_emb.weight"] = torch.zeros(3, 128)
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(
        ValueError, match=r"1 missing keys \[out.2.bias\]; 1 unexpected keys \[label_emb.weight\]"
    ):
        load_adm_prior(tmp_path / "edited.pt", TINY_ADM)


@dataclasses.dataclass
class _Arbitrary:
    """Not a tensor: ``torch.load(weights_only=True)`` must refuse to rebuild it."""


def test_unsafe_pickle_is_refused(tmp_path):
    torch.save({"weight": torch.zeros(1), "hook": _Arbitrary()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="safely"):
        read_state_dict(tmp_path / "evil.pt")


def test_adm_presets_have_the_released_sizes():
    """Parameter counts of the paper's checkpoints' architectures (built on the meta device)."""
    from mgdm.priors import FFHQ_256, IMAGENET_256_UNCOND

    counts = []
    for config in (IMAGENET_256_UNCOND, FFHQ_256):
        with torch.device("meta"):
            model = ADMUNet(dataclasses.replace(config, use_fp16=False))
        counts.append(sum(p.numel() for p in model.parameters()))
        assert model.out[2].out_channels == 6
    assert counts == [552_814_086, 93_563_910]


def test_adm_fp16_torso_runs_close_to_float32(adm_model):
    half = ADMUNet(dataclasses.replace(TINY_ADM, use_fp16=True))
    half.load_state_dict(adm_model.state_dict())
    assert half.input_blocks[1][0].in_layers[2].weight.dtype == torch.float16
    x, t = torch.randn(1, 1, 32, 32), torch.tensor([100])
    with torch.no_grad():
        reference, out = adm_model(x, t), half(x, t)
    assert out.dtype == torch.float32
    assert (out - reference).abs().max() < 0.02 * reference.abs().max()


class _GaussianOracle(nn.Module):
    """Exact predictions for data ``x_0 ~ N(0, I)`` at the noise level of step ``tau``:
    ``x0_hat = sqrt(a) x``, ``eps = sqrt(1 - a) x``, ``v = 0``; ``a = abar[tau + offset]``."""

    def __init__(self, prediction: str, offset: int, learn_sigma: bool = False):
        super().__init__()
        self.prediction, self.offset, self.learn_sigma = prediction, offset, learn_sigma
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        a = ddpm_linear().alpha_bar(tau + self.offset).to(x.dtype)[:, None, None, None]
        out = {
            "epsilon": torch.sqrt(1 - a) * x,
            "v_prediction": torch.zeros_like(x),
            "sample": torch.sqrt(a) * x,
        }[self.prediction]
        return torch.cat([out, torch.full_like(x, 99.0)], 1) if self.learn_sigma else out


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("offset", [0, 1])
def test_adapter_conversions_and_time_offset(prediction, offset):
    prior = EpsilonNetworkPrior(
        _GaussianOracle(prediction, offset, learn_sigma=True).double(),
        (2, 4, 4),
        prediction=prediction,
        learn_sigma=True,
        network_time_offset=offset,
    )
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    t = torch.tensor([1, 400, 1000])
    a = ddpm_linear().alpha_bar(t)[:, None, None, None]
    assert torch.allclose(prior.denoise(x, t), torch.sqrt(a) * x, atol=1e-10)
    assert torch.allclose(prior.epsilon(x, t), torch.sqrt(1 - a) * x, atol=1e-10)
    assert torch.equal(prior.network_time(torch.tensor([0, 5])), torch.tensor([0, 5 - offset]))


class _ConvNet(nn.Module):
    """``f(x, tau) = conv(x)``: a stand-in network (time ignored)."""

    def __init__(self, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(1, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_adapter_denoise_epsilon_consistency_and_errors():
    torch.manual_seed(0)
    net = _ConvNet(2)  # learn_sigma: 2C channels
    prior = EpsilonNetworkPrior(net, (1, 8, 8), learn_sigma=True)
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    t = torch.tensor([10, 200, 600, 999])
    eps = net(x.detach(), t)[:, :1]
    a = prior.schedule.alpha_bar(t)
    assert torch.allclose(prior.epsilon(x, t), eps)
    assert torch.allclose(prior.denoise(x, t), eps_to_x0(x.detach(), eps, a), atol=1e-6)
    assert torch.allclose(x0_to_eps(x.detach(), prior.denoise(x, t), a), eps, atol=1e-4)
    (grad,) = torch.autograd.grad(prior.denoise(x, t).sum(), x)
    assert grad.abs().sum() > 0 and not any(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="learn_sigma=True"):
        EpsilonNetworkPrior(_ConvNet(2), (1, 8, 8))(x.detach(), t)
    with pytest.raises(ValueError, match="shape"):
        prior(torch.zeros(1, 2, 8, 8), 5)


def _tiny_unet(in_channels: int, out_channels: int):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=out_channels,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    return _randomised(unet)


def test_diffusers_pipeline_folder_round_trip(tmp_path):
    from diffusers import DDPMScheduler

    from mgdm.priors import load_diffusers_prior

    unet = _tiny_unet(1, 1)
    unet.save_pretrained(tmp_path / "unet")
    scheduler = DDPMScheduler()
    scheduler.save_pretrained(tmp_path / "scheduler")
    prior = load_diffusers_prior(tmp_path)
    assert (
        prior.sample_shape == (1, 8, 8) and prior.prediction == "epsilon" and not prior.learn_sigma
    )
    assert torch.equal(prior.schedule.abar, ddpm_linear().abar)
    assert torch.allclose(prior.schedule.abar[1:].float(), scheduler.alphas_cumprod, rtol=1e-5)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([7, 950])
    with torch.no_grad():
        assert torch.equal(prior.epsilon(x, t), unet(x, t).sample)


def test_diffusers_v_prediction_learned_variance_and_mismatch(tmp_path):
    from diffusers import DDPMScheduler

    from mgdm.priors import load_diffusers_prior

    unet = _tiny_unet(1, 2)
    unet.save_pretrained(tmp_path)
    DDPMScheduler(
        prediction_type="v_prediction",
        variance_type="learned_range",
        beta_schedule="squaredcos_cap_v2",
    ).save_pretrained(tmp_path)
    prior = load_diffusers_prior(tmp_path, network_time_offset=1)
    assert prior.prediction == "v_prediction" and prior.learn_sigma
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([7, 950])
    with torch.no_grad():
        v = unet(x, t - 1).sample[:, :1]
    assert torch.allclose(
        prior.epsilon(x, t), v_to_eps(x, v, prior.schedule.alpha_bar(t)), atol=1e-6
    )
    config = json.loads((tmp_path / "config.json").read_text())
    config["block_out_channels"] = [16, 64]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shape mismatches"):
        load_diffusers_prior(tmp_path)
