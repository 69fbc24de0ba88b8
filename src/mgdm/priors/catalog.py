"""Priors by name or path, for the command line and the Python API.

``load_prior(spec)`` accepts:

* ``"fashion-mnist"``: the shipped epsilon-prediction DDPM on 32 x 32 Fashion-MNIST
  (``mgdm/assets/fashion-mnist-ddpm``, see its ``MODEL_CARD.md``);
* ``"fashion-mnist-latent"``: the shipped latent DDPM on the 4 x 8 x 8 latents of a KL
  autoencoder (``mgdm/assets/fashion-mnist-ldm``, Stable Diffusion's layout);
* ``"fashion-mnist-kde"``: the exact kernel-density prior on the first 1,000 Fashion-MNIST
  training images with bandwidth 0.1 (needs the Debian data package; exact posteriors);
* a path to a diffusers folder (a pipeline folder with ``unet/`` and ``scheduler/``, or a UNet
  folder with ``config.json``); with a ``vae/`` folder too (Stable Diffusion's layout), a latent
  prior (:func:`mgdm.priors.latent.load_latent_prior`);
* a Hugging Face Hub id ``owner/name`` of such a model (e.g. ``google/ddpm-celebahq-256``), read
  from the local Hugging Face cache or downloaded into it where a network is
  (:func:`mgdm.priors.diffusers_loader.hub_snapshot`);
* ``"adm-ffhq256:PATH"`` or ``"adm-imagenet256:PATH"``: a guided-diffusion checkpoint of the
  paper's FFHQ 256 or ImageNet 256 unconditional model (``.pt`` via ``weights_only=True`` or
  ``.safetensors``);
* ``"ldm-ffhq256:PATH"``: the paper's CompVis latent-diffusion FFHQ 256 model (``ffhq-ldm-vq-4``,
  VQ-f4 first stage; ``model.ckpt`` read with an allow-list, or ``.safetensors``), and
  ``"ldm:PATH"``: any unconditional VQ latent-diffusion checkpoint whose ``config.yaml`` lies
  beside it (:mod:`mgdm.priors.ldm`); both latent priors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mgdm.priors.adm import FFHQ_256, IMAGENET_256_UNCOND, ADMConfig, load_adm_prior
from mgdm.priors.base import Denoiser
from mgdm.priors.diffusers_loader import hub_snapshot, is_hub_id, load_diffusers_prior
from mgdm.priors.ldm import LDM_PRESETS, load_ldm_prior

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
SHIPPED_PIXEL_PRIOR_DIR = ASSETS_DIR / "fashion-mnist-ddpm"
"""The shipped pixel-space prior (diffusers layout: ``unet/``, ``scheduler/``)."""
SHIPPED_LATENT_PRIOR_DIR = ASSETS_DIR / "fashion-mnist-ldm"
"""The shipped latent prior (Stable Diffusion's layout: ``vae/``, ``unet/``, ``scheduler/``)."""

KDE_IMAGES = 1000
KDE_SIGMA = 0.1

SHIPPED_PRIORS: dict[str, str] = {
    "fashion-mnist": "epsilon-prediction DDPM, 32x32 grey Fashion-MNIST (shipped weights)",
    "fashion-mnist-latent": "latent DDPM on a KL autoencoder's 4x8x8 latents of Fashion-MNIST "
    "(shipped weights)",
    "fashion-mnist-kde": f"exact kernel-density prior on {KDE_IMAGES} Fashion-MNIST training "
    f"images, bandwidth {KDE_SIGMA} (exact posteriors for linear tasks)",
}
"""Names :func:`load_prior` knows, with a line each."""

ADM_PRESETS: dict[str, ADMConfig] = {
    "adm-ffhq256": FFHQ_256,
    "adm-imagenet256": IMAGENET_256_UNCOND,
}


def prior_domain(spec: str | Path) -> str:
    """``"latent"`` for the shipped latent prior, an ``ldm…:PATH`` checkpoint or a folder in
    Stable Diffusion's layout (with ``vae/``), else ``"image"``; decided from the name and files,
    without loading anything."""
    preset, separator, _ = str(spec).partition(":")
    if separator and preset in LDM_PRESETS:
        return "latent"
    if is_hub_id(spec):
        return "latent" if "vae" in _hub_components(str(spec)) else "image"
    path = SHIPPED_LATENT_PRIOR_DIR if str(spec) == "fashion-mnist-latent" else Path(str(spec))
    return "latent" if (path / "vae" / "config.json").is_file() else "image"


def _hub_components(repo_id: str) -> dict:
    """The ``model_index.json`` of a Hub pipeline (:func:`hub_snapshot`: from the cache, or
    downloaded with the model, which :func:`load_prior` then finds in the cache), or ``{}`` when
    there is none (a UNet repository, or neither cache nor network: :func:`load_prior` then
    says what is missing)."""
    from mgdm.checkpoints import read_json_object

    try:
        index = hub_snapshot(repo_id) / "model_index.json"
        return read_json_object(index, "pipeline index") if index.is_file() else {}
    except (OSError, ValueError):  # not cached and unreachable, or not JSON
        return {}


def load_prior(spec: str | Path, device: torch.device | str = "cpu") -> Denoiser:
    """The prior named or located by ``spec`` (see the module docstring).

    Raises ``ValueError`` for an unknown name or a path that is neither a diffusers folder nor
    an ``adm-…:PATH`` checkpoint, ``FileNotFoundError`` for missing files (with what to do).
    """
    text = str(spec)
    if text == "fashion-mnist":
        if not (SHIPPED_PIXEL_PRIOR_DIR / "unet").is_dir():
            raise FileNotFoundError(
                f"the shipped prior is missing from {SHIPPED_PIXEL_PRIOR_DIR}; reinstall mgdm or "
                "train one with `mgdm train prior --out DIR` and pass DIR."
            )
        return load_diffusers_prior(SHIPPED_PIXEL_PRIOR_DIR, device=device)
    if text == "fashion-mnist-latent":
        if not (SHIPPED_LATENT_PRIOR_DIR / "vae").is_dir():
            raise FileNotFoundError(
                f"the shipped latent prior is missing from {SHIPPED_LATENT_PRIOR_DIR}; train one "
                "with `mgdm train autoencoder` and `mgdm train latent-prior` and pass its folder."
            )
        return load_prior(SHIPPED_LATENT_PRIOR_DIR, device)
    if text == "fashion-mnist-kde":
        from mgdm.data.fashion_mnist import load_fashion_mnist
        from mgdm.priors.kernel_density import KernelDensityPrior

        images = load_fashion_mnist("train", limit=KDE_IMAGES).images.to(device)
        return KernelDensityPrior(images, KDE_SIGMA)
    preset, separator, checkpoint = text.partition(":")
    if separator and preset in ADM_PRESETS:
        if not checkpoint:
            raise ValueError(
                f"the prior {text!r} needs a checkpoint path after the colon ({preset}:PATH)."
            )
        return load_adm_prior(checkpoint, ADM_PRESETS[preset], device=device)
    if separator and preset in LDM_PRESETS:
        if not checkpoint:
            raise ValueError(
                f"the prior {text!r} needs a checkpoint path after the colon ({preset}:PATH)."
            )
        return load_ldm_prior(checkpoint, LDM_PRESETS[preset], device=device)
    path = hub_snapshot(text) if is_hub_id(text) else Path(text)
    if prior_domain(path) == "latent":
        from mgdm.priors.latent.loader import load_latent_prior  # lazy: avoids an import cycle

        return load_latent_prior(path, device=device)
    if path.is_dir():
        return load_diffusers_prior(path, device=device)
    if path.is_file():
        raise ValueError(
            f"{path} is a file: name its architecture, e.g. --prior adm-ffhq256:{path} or "
            f"adm-imagenet256:{path} (guided-diffusion checkpoints), ldm-ffhq256:{path} or "
            f"ldm:{path} (CompVis latent diffusion); diffusers models are folders."
        )
    known = ", ".join([*SHIPPED_PRIORS, *(f"{p}:PATH" for p in (*ADM_PRESETS, *LDM_PRESETS))])
    raise ValueError(
        f"unknown prior {text!r}: not a known name nor an existing path; known: {known}, a diffusers folder or a Hugging Face Hub id (owner/name)."
    )
