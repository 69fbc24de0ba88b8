"""Load a latent diffusion model from a local folder in Stable Diffusion's layout (offline)::

    PATH/vae/config.json + diffusion_pytorch_model.safetensors (or .bin)    AutoencoderKL
    PATH/unet/config.json + weights                                        UNet2DModel, or
                                                                           UNet2DConditionModel
    PATH/scheduler/scheduler_config.json                                   betas, prediction type
    PATH/empty_prompt_embedding.safetensors                                (conditional UNets only)

An unconditional ``UNet2DModel`` is loaded by :func:`mgdm.priors.diffusers_loader.load_diffusers_prior`
(same scheduler mapping and time convention). A text-conditioned ``UNet2DConditionModel`` is used
unconditionally, with the text encoder's embedding of the empty prompt ``c = E_text("")``
(``[1, tokens, cross_attention_dim]``) as ``encoder_hidden_states`` of every call:
``eps_hat(z, tau) = unet(z, tau, c).sample``. No text encoder can be run here, so ``c`` comes from
a file the user makes where the text encoder is available (the error message says how).

Images are ``[in_channels, s * h, s * w]`` in ``[-1, 1]``, with ``(h, w)`` the UNet's
``sample_size`` and ``s = 2^(len(vae.block_out_channels) - 1)``. Models are read by diffusers'
``from_pretrained`` and checked tensor by tensor
(:func:`mgdm.priors.diffusers_loader.from_pretrained_checked`); schedulers of any number of
training steps map as in :mod:`mgdm.priors.diffusers_loader`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mgdm.checkpoints import read_json_object, read_state_dict
from mgdm.priors.diffusers_loader import (
    from_pretrained_checked,
    load_diffusers_prior,
    schedule_from_scheduler_config,
    scheduler_steps,
)
from mgdm.priors.latent.autoencoder import (
    KLAutoencoder,
    downsampling_factor,
    load_autoencoder_kl,
    weights_file,
)
from mgdm.priors.latent.prior import LatentPrior
from mgdm.priors.neural import PREDICTIONS, EpsilonNetworkPrior
from mgdm.priors.timescale import with_time_scale

EMPTY_PROMPT_FILE = "empty_prompt_embedding.safetensors"
"""The file, at the top of a Stable Diffusion folder, holding ``E_text("")``."""

_EXTRA_CONDITIONING = (
    "class_embed_type",
    "num_class_embeds",
    "addition_embed_type",
    "encoder_hid_dim_type",
    "time_cond_proj_dim",
)
"""UNet2DConditionModel options that need inputs other than the text embedding (refused)."""


class EmptyPromptUNet(nn.Module):
    """``f(z, tau) = unet(z, tau, encoder_hidden_states=c).sample`` with ``c`` ``[1, tokens, dim]``
    repeated over the batch: a text-conditioned UNet as an unconditional network."""

    def __init__(self, unet: nn.Module, embedding: Tensor):
        super().__init__()
        self.unet = unet
        self.register_buffer("embedding", embedding)

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        context = self.embedding.to(x.dtype).expand(x.shape[0], -1, -1)
        return self.unet(x, timesteps, encoder_hidden_states=context).sample


def _missing_embedding_message(path: Path) -> str:
    return (
        f"{path.parent} holds a text-conditioned UNet (UNet2DConditionModel), used here with the "
        f"embedding of the empty prompt, and {path.name} is missing. No text encoder runs here: "
        "make the file where one does, e.g. with transformers: `ids = tokenizer([''], "
        "padding='max_length', max_length=tokenizer.model_max_length, return_tensors='pt')"
        ".input_ids; c = text_encoder(ids)[0]` (CLIPTokenizer/CLIPTextModel from the model's "
        "tokenizer/ and text_encoder/ folders), then `safetensors.torch.save_file({'embedding': "
        f"c.contiguous()}}, '{path}')`."
    )


def load_empty_prompt_embedding(path: Path, dim: int) -> Tensor:
    """The one tensor ``[1, tokens, dim]`` of ``path`` (float32)."""
    tensors = read_state_dict(path)
    if len(tensors) != 1:
        raise ValueError(
            f"{path} must hold one tensor [1, tokens, {dim}]; it holds {len(tensors)}."
        )
    (embedding,) = tensors.values()
    if embedding.dim() != 3 or embedding.shape[0] != 1 or embedding.shape[2] != dim:
        raise ValueError(
            f"{path} holds a tensor of shape {list(embedding.shape)}; expected [1, tokens, {dim}] "
            "(the UNet's cross_attention_dim)."
        )
    return embedding.float()


def load_condition_unet(unet_dir: Path, device: torch.device | str = "cpu") -> nn.Module:
    """A text-conditioned ``UNet2DConditionModel`` from ``unet_dir`` (weights checked); refuses
    UNets that need conditioning inputs other than ``encoder_hidden_states``."""
    from diffusers import UNet2DConditionModel

    config = read_json_object(unet_dir / "config.json")
    extra = [f"{key} = {config[key]!r}" for key in _EXTRA_CONDITIONING if config.get(key)]
    if extra:
        raise ValueError(
            f"{unet_dir} needs conditioning inputs other than a text embedding ({', '.join(extra)}); "
            "only text-conditioned UNets such as Stable Diffusion 1.x/2.x are supported."
        )
    if not isinstance(config.get("cross_attention_dim"), int):
        raise ValueError(  # noqa: TRY004 - a bad model folder is an input error (ValueError)
            f"{unet_dir}: cross_attention_dim must be one integer; got "
            f"{config.get('cross_attention_dim')!r}."
        )
    weights = weights_file(unet_dir)
    return from_pretrained_checked(UNet2DConditionModel, unet_dir, f"weights {weights}").to(device)


def load_condition_prior(
    path: Path, device: torch.device | str = "cpu", network_time_offset: int = 0
) -> EpsilonNetworkPrior:
    """The prior on latents of ``path/unet`` (a ``UNet2DConditionModel``) with the empty prompt."""
    scheduler = read_json_object(path / "scheduler" / "scheduler_config.json")
    prediction = scheduler.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"unsupported prediction_type {prediction!r}; known: {', '.join(PREDICTIONS)}."
        )
    if scheduler.get("variance_type") in ("learned", "learned_range"):
        raise ValueError("text-conditioned UNets with learned variances are not supported.")
    embedding_path = path / EMPTY_PROMPT_FILE
    if not embedding_path.is_file():  # before loading a UNet of gigabytes
        raise FileNotFoundError(_missing_embedding_message(embedding_path))
    unet = load_condition_unet(path / "unet", device)
    embedding = load_empty_prompt_embedding(embedding_path, int(unet.config.cross_attention_dim))
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return EpsilonNetworkPrior(
        with_time_scale(
            EmptyPromptUNet(unet, embedding).to(device),
            scheduler_steps(scheduler),
            network_time_offset,
        ),
        (int(unet.config.in_channels), int(height), int(width)),
        schedule=schedule_from_scheduler_config(scheduler),
        prediction=prediction,
        network_time_offset=network_time_offset,
        data_range=None,
    )


def load_latent_prior(
    path: Path | str, device: torch.device | str = "cpu", network_time_offset: int = 0
) -> LatentPrior:
    """The latent prior of a Stable-Diffusion-layout folder (module docstring).

    ``network_time_offset`` is the UNet's time convention (:mod:`mgdm.priors.neural`; 0, the
    default, calls it with ``tau = k``). Raises ``FileNotFoundError`` for a missing part and
    ``ValueError`` for parts that do not fit together.
    """
    path = Path(path)
    for part in ("vae/config.json", "unet/config.json", "scheduler/scheduler_config.json"):
        if not (path / part).is_file():
            raise FileNotFoundError(
                f"{path} is not a latent diffusion folder: {part} is missing (expected vae/, unet/ "
                "and scheduler/ as Stable Diffusion's diffusers layout)."
            )
    unet_class = read_json_object(path / "unet" / "config.json").get("_class_name", "UNet2DModel")
    if unet_class == "UNet2DModel":
        denoiser = load_diffusers_prior(
            path, device=device, network_time_offset=network_time_offset
        )
    elif unet_class == "UNet2DConditionModel":
        denoiser = load_condition_prior(path, device, network_time_offset)
    else:
        raise ValueError(
            f"{path}/unet holds a {unet_class}; supported: UNet2DModel, UNet2DConditionModel."
        )
    vae = load_autoencoder_kl(path / "vae", device)
    factor = downsampling_factor(vae)
    _, height, width = denoiser.sample_shape
    return LatentPrior(denoiser, KLAutoencoder(vae, (height * factor, width * factor)))
