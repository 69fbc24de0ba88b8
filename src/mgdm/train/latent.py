"""Train a latent diffusion prior on Fashion-MNIST 32 x 32 in two resumable stages.

**1. Autoencoder** (``mgdm train autoencoder --out AE``). A diffusers ``AutoencoderKL``
(:func:`mgdm.priors.latent.autoencoder.build_autoencoder`; with 3 levels, ``[1, 32, 32] -> [4, 8, 8]``)
is trained on images ``x`` (``[B, 1, 32, 32]`` in ``[-1, 1]``) with the reparameterised
posterior ``z = m(x) + s(x) xi``, ``xi ~ N(0, I)``, and the loss::

    mean((Dec(z) - x)^2) + kl_weight * mean_b KL(N(m, s^2) || N(0, I)) / (C_z h w)

(the KL per latent entry). The result is ``AE/vae`` (``save_pretrained``, safetensors,
``scaling_factor = 1``).

**2. Latent DDPM** (``mgdm train latent-prior --autoencoder AE --out LDM``). Every training
image is encoded once to its posterior mean ``m(x)``; the scaling factor is ``1 / std`` of all
those entries (Stable Diffusion's rule, :func:`mgdm.priors.latent.autoencoder.latent_scaling_factor`)
and the data are ``z_0 = scaling * m(x)``, ``[4, 8, 8]`` of unit variance. On them an
epsilon-prediction ``UNet2DModel`` is trained exactly as the pixel prior
(:mod:`mgdm.train.prior`: DDPM linear schedule, ``k ~ U{1, …, 1000}``, the network called with
``k``, ``mean((unet(z_k, k) - eps)^2)``). The result is a folder in Stable Diffusion's layout,
``LDM/vae`` (the autoencoder with ``scaling_factor`` in its ``config.json``), ``LDM/unet`` and
``LDM/scheduler``, loaded by :func:`mgdm.priors.latent.loader.load_latent_prior`.

**Randomness and exact resume** are those of :mod:`mgdm.train.prior`, whose helpers this module
uses: weights from ``seed``; the images of step ``s`` from
:func:`~mgdm.train.prior.batch_indices`; the noise of step ``s`` (``xi`` of the autoencoder, or
times and ``eps`` via :func:`~mgdm.train.prior.diffusion_batch`) from a generator seeded by
``(seed, s)``. A run resumed from its last checkpoint performs the same operations as an
uninterrupted one. Each run folder holds ``config.json`` (the options; the latent prior's also
the SHA-256 of the autoencoder's weights; a rerun must match), ``train_log.csv`` (``step, loss,
seconds``) and the atomically written ``checkpoint.safetensors`` + ``checkpoint_state.pt``. As in
:mod:`mgdm.train.prior`, the folder is created only once the options, the data, the autoencoder
and the networks have been checked, and removed when the run fails before its first checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mgdm.checkpoints import file_sha256
from mgdm.data.fashion_mnist import load_fashion_mnist
from mgdm.devices import resolve_device
from mgdm.diffusion.schedules import ddpm_linear
from mgdm.priors.latent.autoencoder import (
    KLAutoencoder,
    build_autoencoder,
    encode_images,
    latent_scaling_factor,
    load_autoencoder_kl,
    weights_file,
)
from mgdm.random import derive_seed, torch_generator
from mgdm.train.prior import (
    IMAGE_SIZE,
    TrainConfig,
    batch_indices,
    check_batch_size,
    check_run_folder,
    check_run_lengths,
    diffusion_batch,
    export_pipeline,
    fit_resumably,
    run_folder,
)

AUTOENCODER_RUN_KIND = "mgdm-train-autoencoder"
LATENT_PRIOR_RUN_KIND = "mgdm-train-latent-prior"


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """The options that define an autoencoder run (a resumed run must use the same ones).

    Attributes:
        channels: ``block_out_channels``, 2 to 4 levels (latent side ``32 / 2^(levels - 1)``).
        latent_channels: ``C_z``.
        kl_weight: the weight of the KL per latent entry against the per-pixel MSE.
        batch_size, lr, seed, limit: as :class:`mgdm.train.prior.TrainConfig`.
    """

    channels: tuple[int, ...] = (32, 64, 64)
    latent_channels: int = 4
    kl_weight: float = 1e-4
    batch_size: int = 64
    lr: float = 5e-4
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        shared = TrainConfig(self.channels, self.batch_size, self.lr, self.seed, self.limit)
        object.__setattr__(self, "channels", shared.channels)
        if len(self.channels) < 2:
            raise ValueError(
                f"an autoencoder needs 2 to 4 levels of channels (1 downsampling or more); got "
                f"{list(self.channels)}."
            )
        if type(self.latent_channels) is not int or self.latent_channels < 1:
            raise ValueError(f"latent channels must be >= 1; got {self.latent_channels!r}.")
        if not (math.isfinite(self.kl_weight) and self.kl_weight >= 0):
            raise ValueError(f"the KL weight must be a number >= 0; got {self.kl_weight!r}.")

    def to_json(self) -> dict[str, object]:
        """The configuration as saved in ``config.json`` (with a ``kind`` tag)."""
        return {"kind": AUTOENCODER_RUN_KIND, **asdict(self), "channels": list(self.channels)}


# --------------------------------------------------------------------------- autoencoder
def autoencoder_loss(vae: nn.Module, x: Tensor, kl_weight: float, seed: int, step: int) -> Tensor:
    """The loss of the module docstring on the batch ``x`` ``[B, C, H, W]``; the posterior noise
    ``xi`` comes from a CPU generator seeded with ``derive_seed(seed, 1, step)``."""
    posterior = vae.encode(x).latent_dist
    generator = torch_generator(derive_seed(seed, 1, step))
    xi = torch.randn(posterior.mean.shape, generator=generator).to(x)
    reconstruction = vae.decode(posterior.mean + posterior.std * xi).sample
    kl_per_entry = posterior.kl().mean() / posterior.mean[0].numel()
    return torch.nn.functional.mse_loss(reconstruction, x) + kl_weight * kl_per_entry


def train_autoencoder(
    out: Path | str,
    config: AutoencoderTrainConfig,
    steps: int,
    checkpoint_every: int = 200,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> nn.Module:
    """Train (or resume) the autoencoder of ``config`` in ``out`` up to ``steps`` steps; writes
    ``out/vae`` and returns the ``AutoencoderKL``.

    Raises ``ValueError`` for ``steps < 1``, ``checkpoint_every < 1``, a device this machine
    lacks, ``limit < batch_size``, a non-empty ``out`` that is not this run, or a checkpoint
    already past ``steps``; all but the last before ``out`` is created.
    """
    check_run_lengths(steps, checkpoint_every)
    out, device = Path(out), resolve_device(device)
    command = "mgdm train autoencoder"
    check_run_folder(out, config.to_json(), command)
    images = load_fashion_mnist("train", limit=config.limit).images
    check_batch_size(config.batch_size, images.shape[0])
    vae = build_autoencoder(config.channels, config.latent_channels, config.seed).to(device)
    images = images.to(device)

    def loss_at(step: int) -> Tensor:
        x = images[batch_indices(images.shape[0], config.batch_size, config.seed, step)]
        return autoencoder_loss(vae, x, config.kl_weight, config.seed, step)

    with run_folder(out, config.to_json(), command):
        fit_resumably(
            out, vae, config.lr, steps, checkpoint_every, loss_at, "train autoencoder", progress
        )
    vae.save_pretrained(out / "vae", safe_serialization=True)
    return vae


# --------------------------------------------------------------------------- latent DDPM
def locate_vae(path: Path | str) -> Path:
    """The ``AutoencoderKL`` folder of ``path``: ``path/vae`` (a run or pipeline folder) or
    ``path`` itself (a folder with ``config.json``); ``ValueError`` when neither exists."""
    path = Path(path)
    for folder in (path / "vae", path):
        if (folder / "config.json").is_file():
            return folder
    raise ValueError(
        f"no autoencoder in {path}: expected {path}/vae/config.json (the output of `mgdm train "
        "autoencoder`) or config.json."
    )


def build_latent_unet(
    channels: tuple[int, ...], latent_shape: tuple[int, int, int], seed: int
) -> nn.Module:
    """A ``UNet2DModel`` on latents ``[C_z, h, w]`` (``h = w``, ``C_z`` channels in and out): one
    ResNet layer per block, ``block_out_channels = channels`` (one level per resolution
    ``h, h/2, …``), attention at the lowest resolution (2+ levels), GroupNorm with
    ``gcd(32, *channels)`` groups. Weights from ``torch.manual_seed(seed)``; the global RNG state
    is restored."""
    from diffusers import UNet2DModel

    latent_channels, height, width = latent_shape
    if height != width or height % 2 ** (len(channels) - 1):
        raise ValueError(
            f"a UNet with {len(channels)} levels needs square latents whose side is a multiple of "
            f"{2 ** (len(channels) - 1)}; got {height} x {width}."
        )
    down = ["DownBlock2D"] * len(channels)
    if len(channels) > 1:
        down[-1] = "AttnDownBlock2D"
    up = [name.replace("Down", "Up") for name in reversed(down)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=height,
            in_channels=latent_channels,
            out_channels=latent_channels,
            layers_per_block=1,
            block_out_channels=tuple(channels),
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=math.gcd(32, *channels),
            attention_head_dim=None,
        )


def training_latents(vae: nn.Module, images: Tensor) -> tuple[Tensor, float]:
    """``(scaling * m(x) [N, C_z, h, w], scaling)`` for the images ``[N, 1, 32, 32]``: posterior
    means, scaled to unit variance (``scaling = 1 / std``)."""
    unscaled = KLAutoencoder(vae, IMAGE_SIZE, scaling_factor=1.0, shift_factor=0.0)
    means = encode_images(unscaled, images)
    scaling = latent_scaling_factor(means)
    return scaling * means, scaling


def train_latent_prior(
    autoencoder: Path | str,
    out: Path | str,
    config: TrainConfig,
    steps: int,
    checkpoint_every: int = 200,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> nn.Module:
    """Train (or resume) a latent DDPM on the autoencoder of ``autoencoder`` (see
    :func:`locate_vae`) in ``out`` up to ``steps`` steps; writes ``out/vae``, ``out/unet`` and
    ``out/scheduler`` and returns the UNet. ``config.channels`` are the UNet's levels on the
    latent grid. Errors as :func:`train_autoencoder`, plus a run folder made with another
    autoencoder (its weights' SHA-256 differs), an unreadable autoencoder, or channels whose
    levels do not fit its latents, all before ``out`` is created."""
    check_run_lengths(steps, checkpoint_every)
    out, device = Path(out), resolve_device(device)
    vae_dir = locate_vae(autoencoder)
    wanted = {
        **config.to_json(),
        "kind": LATENT_PRIOR_RUN_KIND,
        "autoencoder_sha256": file_sha256(weights_file(vae_dir)),
    }
    command = "mgdm train latent-prior"
    check_run_folder(out, wanted, command)
    images = load_fashion_mnist("train", limit=config.limit).images
    check_batch_size(config.batch_size, images.shape[0])
    vae = load_autoencoder_kl(vae_dir, device)
    latent_shape = KLAutoencoder(vae, IMAGE_SIZE).latent_shape
    unet = build_latent_unet(config.channels, latent_shape, config.seed).to(device)
    abar = ddpm_linear().abar
    with run_folder(out, wanted, command):
        latents, scaling = training_latents(vae, images.to(device))

        def loss_at(step: int) -> Tensor:
            z0 = latents[batch_indices(latents.shape[0], config.batch_size, config.seed, step)]
            z_k, k, eps = diffusion_batch(z0, abar, config.seed, step)
            return torch.nn.functional.mse_loss(unet(z_k, k).sample, eps)

        fit_resumably(
            out, unet, config.lr, steps, checkpoint_every, loss_at, "train latent prior", progress
        )
    export_pipeline(unet, out)
    vae.register_to_config(scaling_factor=scaling, shift_factor=None)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    return unet


__all__ = [
    "AutoencoderTrainConfig",
    "autoencoder_loss",
    "build_latent_unet",
    "locate_vae",
    "train_autoencoder",
    "train_latent_prior",
    "training_latents",
]
