"""A latent diffusion prior as a :class:`~mgdm.priors.base.Denoiser` on latents.

A latent prior is a diffusion model on latents ``z`` (``[C_z, h, w]``) with an autoencoder whose
decoder maps them to images ``x = Dec(z)`` in ``[-1, 1]``. The samplers see only the denoiser on
``z``; the likelihood reaches ``z`` through the decoder, ``g(z) := g(Dec(z))``
(docs/algorithms/README.md §2.1, :func:`mgdm.priors.latent.problem.latent_problem`). Samplers return latents,
never clamped (``data_range = None``); :func:`decode_samples` turns them into images: decoded
first, then clamped to ``[-1, 1]`` (docs/algorithms/mgdm.md §3.4).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.priors.base import Denoiser
from mgdm.priors.latent.autoencoder import IMAGE_RANGE, Autoencoder
from mgdm.priors.latent.problem import latent_problem
from mgdm.problem import Problem
from mgdm.random import SampleNoise


class LatentPrior(Denoiser):
    """The denoiser ``D_t(z_t)`` on latents of ``denoiser``, with the ``autoencoder`` beside it.

    Args:
        denoiser: the diffusion prior on latents (``sample_shape`` = the latent shape).
        autoencoder: the encoder/decoder; its ``latent_shape`` must equal the denoiser's.

    Attributes:
        sample_shape: the latent shape ``(C_z, h, w)``; ``image_shape`` the decoded one.
        data_range: ``None``: latents are never clamped (images are, after decoding).
    """

    data_range = None
    sample_space = "latent"

    def __init__(self, denoiser: Denoiser, autoencoder: Autoencoder):
        if tuple(denoiser.sample_shape) != tuple(autoencoder.latent_shape):
            raise ValueError(
                f"the diffusion model draws latents of shape {list(denoiser.sample_shape)} but the "
                f"autoencoder's latents have shape {list(autoencoder.latent_shape)}."
            )
        self.denoiser = denoiser
        self.autoencoder = autoencoder
        self.schedule = denoiser.schedule
        self.sample_shape = tuple(denoiser.sample_shape)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of a decoded sample."""
        return tuple(self.autoencoder.image_shape)

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The decoded shape, :attr:`image_shape`."""
        return self.image_shape

    def problem_in_sample_space(self, problem: Problem) -> Problem:
        """The problem on latents, operator ``A ∘ Dec`` (:func:`latent_problem`)."""
        return latent_problem(problem, self)

    def samples_to_data(self, samples: Tensor) -> Tensor:
        """Decoded images (:func:`decode_samples`)."""
        return decode_samples(self, samples)

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``D_t(z_t)`` on latents ``[B, *sample_shape]``."""
        return self.denoiser.denoise(x_t, t)

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``eps_hat(z_t, t)`` on latents ``[B, *sample_shape]``."""
        return self.denoiser.epsilon(x_t, t)

    def initial_state(
        self, noise: SampleNoise, t: int, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        return self.denoiser.initial_state(noise, t, dtype)


def decode_samples(prior: LatentPrior, z: Tensor) -> Tensor:
    """Images ``clamp(Dec(z), -1, 1)`` ``[B, *image_shape]`` of latents ``z`` ``[B, *sample_shape]``
    returned by a sampler (no gradient)."""
    with torch.no_grad():
        return prior.autoencoder.decode(z).clamp(*IMAGE_RANGE)
