"""Run the paper's latent and audio architectures at full size, with random weights, through the
same loaders as the released checkpoints: the figures of docs/checkpoints.md.

Usage (from the repository root; about 2 minutes and 5 GB of disk in ``--work`` on a 2-core x86
VM)::

    .venv/bin/python scripts/check_paper_architectures.py --work /tmp/paper-architectures

Writes an MSDM-layout ``msdm.ckpt`` (``state_dict`` with ``model.unet.*`` and
``model.diffusion.net.*``) and an LDM-layout ``ldm.ckpt`` (``model.diffusion_model.*``,
``first_stage_model.*``, ``alphas_cumprod``), loads them as ``msdm:PATH`` and
``ldm-ffhq256:PATH``, and times one network call of each on one CPU thread: the MSDM denoiser on
one ``[4, 2^18]`` window, the LDM UNet on one ``[3, 64, 64]`` latent and the VQ-f4 decoder to one
``[3, 256, 256]`` image.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from mgdm.audio.msdm_prior import build_msdm_model
from mgdm.audio.prior import load_audio_prior
from mgdm.priors.adm import ADMUNet
from mgdm.priors.catalog import load_prior
from mgdm.priors.latent.vq import VQModel
from mgdm.priors.ldm import FFHQ_LDM_VQ4

T = TypeVar("T")


def _timed(what: str, work: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = work()
    print(f"{what}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the two checkpoints")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    model = build_msdm_model().eval()
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "1.7.7"}, args.work / "msdm.ckpt")
    del model, state
    prior = _timed("load msdm:PATH", lambda: load_audio_prior(f"msdm:{args.work / 'msdm.ckpt'}"))
    print(f"  sample shape {list(prior.sample_shape)} at {prior.sample_rate} Hz")
    x = 0.05 * torch.randn(1, *prior.sample_shape)
    with torch.no_grad():
        _timed("MSDM denoiser, one [4, 2^18] window", lambda: prior.denoise(x, torch.tensor([500])))
    del prior

    unet, vq = ADMUNet(FFHQ_LDM_VQ4.unet), VQModel(FFHQ_LDM_VQ4.first_stage)
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state |= {f"first_stage_model.{k}": v for k, v in vq.state_dict().items()}
    state["alphas_cumprod"] = torch.cumprod(1 - FFHQ_LDM_VQ4.betas(), 0).float()
    torch.save({"state_dict": state}, args.work / "ldm.ckpt")
    del unet, vq, state
    prior = _timed(
        "load ldm-ffhq256:PATH", lambda: load_prior(f"ldm-ffhq256:{args.work / 'ldm.ckpt'}")
    )
    z = torch.randn(1, *prior.sample_shape)
    with torch.no_grad():
        _timed("LDM UNet, one [3, 64, 64] latent", lambda: prior.epsilon(z, torch.tensor([500])))
        image = _timed("VQ-f4 decoder, one image", lambda: prior.samples_to_data(z))
    print(f"  decoded shape {list(image.shape[1:])}")


if __name__ == "__main__":
    main()
