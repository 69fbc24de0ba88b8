"""The MSDM Slakh2100 checkpoint (Mariani et al. 2024, "Multi-Source Diffusion Models for
Simultaneous Music Generation and Separation") as an audio prior: ``--prior msdm:PATH``.

**Architecture.** MSDM trained ``audio_diffusion_pytorch.AudioDiffusionModel`` of the package
``audio-diffusion-pytorch`` at the version its ``requirements.txt`` pins, 0.0.43 (MIT licence,
archinetai/audio-diffusion-pytorch), inside a PyTorch Lightning module whose attribute ``model``
holds it; the checkpoint's ``state_dict`` therefore has ``model.unet.*`` (the 1-D UNet) and
``model.diffusion.net.*`` (the same tensors again: the diffusion wrapper holds the UNet). We
depend on that exact package version (pyproject.toml) and build the model with MSDM's options
(``exp/train_msdm.yaml``, :data:`MSDM_MODEL_OPTIONS`): 4 input channels (the stems ``bass,
drums, guitar, piano``), ``channels 256, patch_factor 16, patch_blocks 1, resnet_groups 8,
kernel_multiplier_downsample 2, kernel_sizes_init [1, 3, 7], multipliers [1, 2, 4, 4, 4, 4, 4],
factors [4, 4, 4, 2, 2, 2], num_blocks [2, 2, 2, 2, 2, 2], attentions at the last three levels,
attention_heads 8, attention_features 128, attention_multiplier 2, use_nearest_upsample False,
use_skip_scale True, use_attention_bottleneck True``, ``diffusion_sigma_data 0.2`` and
``diffusion_dynamic_threshold 0.0``; the package's defaults for the rest (``use_context_time``).
Data: mono 22,050 Hz (:data:`MSDM_SAMPLE_RATE`), windows of ``2^18`` samples
(:data:`MSDM_LENGTH`, about 11.9 s).

**Denoiser.** The package's ``Diffusion.denoise_fn`` is Karras et al.'s preconditioned VE
denoiser ``D(x~, sigma) = clamp(c_skip x~ + c_out F(c_in x~, log(sigma) / 4), -1, 1)`` with
``sigma_data = 0.2`` (the clamp is the package's, with ``dynamic_threshold = 0``). It is adapted
to our VP time scale as the MGDM reference does (docs: mgdm-algorithm §1): the Karras grid of
:func:`mgdm.audio.prior.msdm_schedule` gives ``sigma_k`` and ``abar_k = 1 / (1 + sigma_k^2)``,
the input is rescaled to the VE state ``x~ = x / sqrt(abar_k)``, and the prior's Tweedie
estimate is ``D_k(x) = D(x~, sigma_k)``; its noise prediction is then
``eps = (x~ - D(x~, sigma_k)) / sigma_k`` (:meth:`~mgdm.priors.base.Denoiser.epsilon` through
``prediction = "sample"``). At ``k = 0`` (``sigma = 0``) the denoiser is the identity.

**Safety.** The checkpoint is a Lightning ``.ckpt`` whose hyper-parameters pickle an
``audio_diffusion_pytorch.LogNormalDistribution``; it is read with ``weights_only=True`` and the
allow-list of :func:`mgdm.checkpoints.read_training_state_dict` (no code from the file runs),
or given as ``.safetensors`` (``mgdm convert-checkpoint``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mgdm.audio.constants import STEMS
from mgdm.audio.prior import AudioPrior, msdm_schedule
from mgdm.checkpoints import build_from_state_dict, read_training_state_dict
from mgdm.diffusion.schedules import Schedule

MSDM_PREFIX = "msdm:"
"""``--prior msdm:PATH`` names the MSDM checkpoint at ``PATH``."""
MSDM_SAMPLE_RATE = 22_050
MSDM_LENGTH = 2**18
MSDM_SIGMA_DATA = 0.2

MSDM_MODEL_OPTIONS: dict[str, Any] = {
    "in_channels": len(STEMS),
    "channels": 256,
    "patch_factor": 16,
    "patch_blocks": 1,
    "resnet_groups": 8,
    "kernel_multiplier_downsample": 2,
    "kernel_sizes_init": [1, 3, 7],
    "multipliers": [1, 2, 4, 4, 4, 4, 4],
    "factors": [4, 4, 4, 2, 2, 2],
    "num_blocks": [2, 2, 2, 2, 2, 2],
    "attentions": [False, False, False, True, True, True],
    "attention_heads": 8,
    "attention_features": 128,
    "attention_multiplier": 2,
    "use_nearest_upsample": False,
    "use_skip_scale": True,
    "use_attention_bottleneck": True,
    "diffusion_sigma_data": MSDM_SIGMA_DATA,
    "diffusion_dynamic_threshold": 0.0,
}
"""``AudioDiffusionModel`` options of MSDM's Slakh2100 model (``exp/train_msdm.yaml``)."""

UNET_PREFIX = "model.unet."
SHARED_PREFIX = "model.diffusion.net."
"""The same UNet seen through the diffusion wrapper: its tensors are not loaded twice."""


def build_msdm_model(options: Mapping[str, Any] | None = None) -> nn.Module:
    """An ``audio_diffusion_pytorch.AudioDiffusionModel`` (version 0.0.43) with MSDM's options,
    or ``options`` (the same keys); weights from torch's default initialisation."""
    from audio_diffusion_pytorch import AudioDiffusionModel, LogNormalDistribution

    options = dict(MSDM_MODEL_OPTIONS if options is None else options)
    return AudioDiffusionModel(
        diffusion_sigma_distribution=LogNormalDistribution(mean=-3.0, std=1.0), **options
    )


class VEDenoiserNetwork(nn.Module):
    """``f(x [B, S, L], k int64 [B]) = D(x / sqrt(abar_k), sigma_k)`` ``[B, S, L]``: the MSDM
    model's VE denoiser on our VP times (module docstring); ``x`` at ``k = 0``.

    Args:
        model: an ``AudioDiffusionModel`` (its ``diffusion.denoise_fn`` is used).
        schedule: the VP schedule whose ``sigma_k = sqrt(1 / abar_k - 1)`` the times index
            (default :func:`~mgdm.audio.prior.msdm_schedule`).
    """

    def __init__(self, model: nn.Module, schedule: Schedule | None = None):
        super().__init__()
        self.model = model
        abar = (schedule if schedule is not None else msdm_schedule()).abar
        sigmas = (1.0 / abar - 1.0).clamp_min(0.0).sqrt().to(torch.float32)  # float32: any device
        self.register_buffer("sigmas", sigmas, persistent=False)

    def ve_state(self, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(x~ = x sqrt(1 + sigma_k^2), sigma_k, sigma_k > 0)``; ``sigma`` ``[B]`` in ``x``'s
        dtype, with 1 in place of 0 (those entries are masked by the third item, ``[B]``)."""
        levels = self.sigmas[k.to(torch.int64).reshape(-1).expand(x.shape[0])]
        noisy = levels > 0
        sigma = torch.where(noisy, levels, torch.ones_like(levels)).to(x.dtype)
        return x * (1 + sigma.square()).sqrt().view(-1, 1, 1), sigma, noisy

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        x_ve, sigma, noisy = self.ve_state(x, k)
        denoised = self.model.diffusion.denoise_fn(x_ve, sigmas=sigma)
        return torch.where(noisy.view(-1, 1, 1), denoised, x)


class MSDMPrior(AudioPrior):
    """An :class:`~mgdm.audio.prior.AudioPrior` whose network is a :class:`VEDenoiserNetwork`:
    it returns the Tweedie estimate, so the prediction is ``"sample"`` (module docstring)."""

    def __init__(
        self,
        network: VEDenoiserNetwork,
        sample_rate: int = MSDM_SAMPLE_RATE,
        length: int = MSDM_LENGTH,
        schedule: Schedule | None = None,
    ):
        super().__init__(network, STEMS, sample_rate, length, schedule)
        self.prediction = "sample"

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``eps = (x~ - D(x~, sigma_k)) / sigma_k`` computed as written (``0`` at ``k = 0``):
        the generic ``(x - sqrt(abar) D) / sqrt(1 - abar)`` loses most digits in float32 where
        ``sigma_k`` is as small as 5e-4. ``[B, 4, L]``."""
        denoised = self.network_output(x_t, t)
        x_ve, sigma, noisy = self.network.ve_state(x_t, t.to(x_t.device))
        eps = (x_ve - denoised) / sigma.view(-1, 1, 1)
        return torch.where(noisy.view(-1, 1, 1), eps, torch.zeros_like(eps))


def msdm_state(state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """The UNet's tensors of an MSDM state dict (``model.unet.*``, prefix removed); ``ValueError``
    naming tensors outside ``model.unet.*`` and ``model.diffusion.net.*``."""
    unet = {k[len(UNET_PREFIX) :]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    other = [k for k in state if not k.startswith((UNET_PREFIX, SHARED_PREFIX))]
    if not unet or other:
        more = f" … (+{len(other) - 5} more)" if len(other) > 5 else ""
        raise ValueError(
            f"{source} is not an MSDM checkpoint: expected {UNET_PREFIX}* (and {SHARED_PREFIX}*) "
            f"tensors; it has {len(unet)} {UNET_PREFIX}* tensors and {len(other)} others "
            f"[{', '.join(other[:5])}{more}]."
        )
    return unet


def load_msdm_prior(
    checkpoint: Path | str,
    device: torch.device | str = "cpu",
    options: Mapping[str, Any] | None = None,
    sample_rate: int | None = None,
    length: int | None = None,
) -> MSDMPrior:
    """The MSDM checkpoint (``.ckpt``, torch state dict or ``.safetensors``) as an
    :class:`~mgdm.audio.prior.AudioPrior` on the four stems ``[4, length]`` at ``sample_rate``
    (module docstring; ``None``: MSDM's 22,050 Hz and ``2^18`` samples). ``options`` replace
    MSDM's model options (:data:`MSDM_MODEL_OPTIONS`; for other models of the family). Raises ``FileNotFoundError`` for a missing file and a one-line ``ValueError`` naming
    the missing, unexpected or misshapen tensors."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"MSDM checkpoint not found: {checkpoint}")
    length = MSDM_LENGTH if length is None else length
    unet_options = MSDM_MODEL_OPTIONS if options is None else options
    factor = int(unet_options["patch_factor"]) ** int(unet_options["patch_blocks"])
    factor *= math.prod(int(f) for f in unet_options["factors"])
    if length % factor:
        raise ValueError(
            f"windows of {length} samples do not fit the UNet's total downsampling by {factor}: "
            "the length must be a multiple of it."
        )
    if int(unet_options["in_channels"]) != len(STEMS):
        raise ValueError(
            f"an MSDM prior models the {len(STEMS)} stems {', '.join(STEMS)}; the options give "
            f"{unet_options['in_channels']} channels."
        )
    state = msdm_state(read_training_state_dict(checkpoint), str(checkpoint))
    built: list[nn.Module] = []

    def unet_of_a_new_model() -> nn.Module:  # the diffusion wrapper holds the same UNet
        built.append(build_msdm_model(options))
        return built[-1].unet

    build_from_state_dict(unet_of_a_new_model, state, f"{checkpoint} ({UNET_PREFIX}*)")
    model = built[-1]
    schedule = msdm_schedule()
    network = VEDenoiserNetwork(model, schedule).to(device)
    return MSDMPrior(
        network,
        MSDM_SAMPLE_RATE if sample_rate is None else sample_rate,
        length,
        schedule,
    )
