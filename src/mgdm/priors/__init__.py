"""Priors: the denoiser interface, exact priors, and neural priors from local checkpoints."""

from mgdm.checkpoints import load_state_dict_checked, read_state_dict
from mgdm.diffusion.schedules import schedule_from_betas
from mgdm.priors.adm import (
    FFHQ_256,
    IMAGENET_256_UNCOND,
    ADMConfig,
    ADMUNet,
    load_adm_prior,
    load_adm_unet,
)
from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.priors.catalog import SHIPPED_PRIORS, load_prior
from mgdm.priors.diffusers_loader import (
    load_diffusers_prior,
    load_diffusers_unet,
    schedule_from_scheduler_config,
)
from mgdm.priors.gaussian_mixture import GaussianMixture, GaussianMixturePosterior
from mgdm.priors.kernel_density import KernelDensityPosterior, KernelDensityPrior
from mgdm.priors.ldm import FFHQ_LDM_VQ4, LDMConfig, load_ldm_prior
from mgdm.priors.neural import EpsilonNetworkPrior, ddpm_betas

__all__ = [
    "FFHQ_256",
    "FFHQ_LDM_VQ4",
    "IMAGENET_256_UNCOND",
    "SHIPPED_PRIORS",
    "ADMConfig",
    "ADMUNet",
    "Denoiser",
    "EpsilonNetworkPrior",
    "GaussianMixture",
    "GaussianMixturePosterior",
    "KernelDensityPosterior",
    "KernelDensityPrior",
    "LDMConfig",
    "as_time_vector",
    "ddpm_betas",
    "load_adm_prior",
    "load_adm_unet",
    "load_diffusers_prior",
    "load_diffusers_unet",
    "load_ldm_prior",
    "load_prior",
    "load_state_dict_checked",
    "read_state_dict",
    "schedule_from_betas",
    "schedule_from_scheduler_config",
]
