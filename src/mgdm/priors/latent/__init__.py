"""Latent-space priors: a diffusion model on autoencoder latents, sampled by any sampler.

* :class:`LatentPrior`: the denoiser on latents ``z`` (what samplers see) with its autoencoder;
* :func:`latent_problem`: an image problem ``y = A(x) + noise`` as the latent problem
  ``y = A(Dec(z)) + noise`` (operator :class:`DecodedOperator`);
* :func:`decode_samples`: the sampler's latents decoded, then clamped to ``[-1, 1]``;
* :func:`load_latent_prior`: a local folder in Stable Diffusion's layout (``vae/``, ``unet/``,
  ``scheduler/``);
* training: :mod:`mgdm.train.latent` (``mgdm train autoencoder``, ``mgdm train latent-prior``).

Example::

    prior = load_latent_prior("ldm-folder")
    result = DPS().sample(prior, latent_problem(problem, prior), seeds=range(4))
    images = decode_samples(prior, result.samples)
"""

from mgdm.priors.latent.autoencoder import (
    IMAGE_RANGE,
    Autoencoder,
    KLAutoencoder,
    evaluate_autoencoder,
    reconstruction_psnr,
)
from mgdm.priors.latent.loader import EMPTY_PROMPT_FILE, load_latent_prior
from mgdm.priors.latent.prior import LatentPrior, decode_samples
from mgdm.priors.latent.problem import DecodedOperator, latent_problem, require_latent_problem

__all__ = [
    "EMPTY_PROMPT_FILE",
    "IMAGE_RANGE",
    "Autoencoder",
    "DecodedOperator",
    "KLAutoencoder",
    "LatentPrior",
    "decode_samples",
    "evaluate_autoencoder",
    "latent_problem",
    "load_latent_prior",
    "reconstruction_psnr",
    "require_latent_problem",
]
