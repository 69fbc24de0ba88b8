"""Diffusion core: schedules, Tweedie conversions, bridge kernels and the DDIM step."""

from mgdm.diffusion.bridge import (
    BridgeCoefficients,
    bridge_coefficients,
    bridge_coefficients_from_abar,
    ddim_step,
)
from mgdm.diffusion.conversions import (
    eps_to_score,
    eps_to_x0,
    per_sample,
    score_to_x0,
    v_to_eps,
    x0_to_eps,
    x0_to_score,
)
from mgdm.diffusion.schedules import (
    NUM_TIMESTEPS,
    SCHEDULES,
    Schedule,
    cosine,
    ddpm_linear,
    from_ve_sigmas,
    gmm_benchmark,
    timestep_grid,
)

__all__ = [
    "NUM_TIMESTEPS",
    "SCHEDULES",
    "BridgeCoefficients",
    "Schedule",
    "bridge_coefficients",
    "bridge_coefficients_from_abar",
    "cosine",
    "ddim_step",
    "ddpm_linear",
    "eps_to_score",
    "eps_to_x0",
    "from_ve_sigmas",
    "gmm_benchmark",
    "per_sample",
    "score_to_x0",
    "timestep_grid",
    "v_to_eps",
    "x0_to_eps",
    "x0_to_score",
]
