"""Load a diffusers ``UNet2DModel`` folder and its scheduler configuration as a prior (offline).

Layouts accepted (local paths only, nothing is downloaded):

* a pipeline folder (``DDPMPipeline.save_pretrained``): ``unet/config.json``, ``unet/diffusion_pytorch_model.safetensors``
  (or ``.bin``), ``scheduler/scheduler_config.json``;
* a UNet folder (``config.json`` and the weights) with ``scheduler_config.json`` beside them or
  given as ``scheduler_config``.

Weights are read safely (safetensors, or ``torch.load(weights_only=True)`` for ``.bin``) and
checked key by key (:func:`mgdm.priors.neural.load_state_dict_checked`); checkpoints with the
legacy attention key names of old diffusers versions are not converted.

Scheduler mapping: ``beta_schedule`` ``linear`` / ``scaled_linear`` / ``squaredcos_cap_v2`` (or
``trained_betas``) with ``num_train_timesteps = 1000`` give the DDPM betas, and our schedule is
``abar[k] = abar_DDPM[k - 1]``, ``abar[0] = 1`` (:func:`mgdm.diffusion.schedules.schedule_from_betas`);
``prediction_type`` ``epsilon`` / ``v_prediction`` / ``sample`` is kept; ``variance_type``
``learned`` / ``learned_range`` means a ``2C``-channel output whose first ``C`` channels are used.
The UNet is called with ``tau = k - network_time_offset`` (default ``tau = k``, the MGDM
reference's convention; ``network_time_offset = 1`` calls it with the step ``k - 1`` whose noise
level is exactly ``abar[k]``; see :mod:`mgdm.priors.neural`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mgdm.checkpoints import load_state_dict_checked, read_json_object, read_state_dict
from mgdm.diffusion.schedules import NUM_TIMESTEPS, Schedule, schedule_from_betas
from mgdm.priors.neural import PREDICTIONS, EpsilonNetworkPrior, ddpm_betas

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_LEARNED_VARIANCES = ("learned", "learned_range")


class DiffusersUNet(nn.Module):
    """``f(x, tau) = unet(x, tau).sample``: a diffusers ``UNet2DModel`` as a plain network."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        return self.unet(x, timesteps).sample


def schedule_from_scheduler_config(config: dict[str, Any]) -> Schedule:
    """Our schedule from a diffusers scheduler configuration (see the module docstring)."""
    steps = int(config.get("num_train_timesteps", NUM_TIMESTEPS))
    if steps != NUM_TIMESTEPS:
        raise ValueError(
            f"num_train_timesteps must be {NUM_TIMESTEPS} for our time scale; got {steps}."
        )
    if config.get("rescale_betas_zero_snr", False):
        raise ValueError(
            "rescale_betas_zero_snr gives abar = 0 at the last step, which a VP schedule cannot hold."
        )
    if config.get("trained_betas") is not None:
        betas = torch.as_tensor(config["trained_betas"], dtype=torch.float64)
        name = "diffusers-trained"
    else:
        kind = config.get("beta_schedule", "linear")
        betas = ddpm_betas(
            kind, steps, config.get("beta_start", 1e-4), config.get("beta_end", 0.02)
        )
        name = f"diffusers-{kind}"
    return schedule_from_betas(betas, name=name)


def _locate(path: Path, scheduler_config: Path | str | None) -> tuple[Path, Path]:
    """The UNet folder and the scheduler configuration file."""
    if (path / "unet" / "config.json").is_file():
        unet_dir, default_scheduler = path / "unet", path / "scheduler" / "scheduler_config.json"
    elif (path / "config.json").is_file():
        unet_dir, default_scheduler = path, path / "scheduler_config.json"
    else:
        raise FileNotFoundError(
            f"no diffusers UNet in {path}: expected unet/config.json or config.json."
        )
    scheduler = Path(scheduler_config) if scheduler_config is not None else default_scheduler
    if not scheduler.is_file():
        raise FileNotFoundError(
            f"scheduler configuration not found: {scheduler} (give scheduler_config=path/to/scheduler_config.json)."
        )
    return unet_dir, scheduler


def load_diffusers_unet(unet_dir: Path | str, device: torch.device | str = "cpu") -> nn.Module:
    """A ``UNet2DModel`` built from ``unet_dir/config.json`` with the folder's weights (checked)."""
    from diffusers import UNet2DModel

    unet_dir = Path(unet_dir)
    config = read_json_object(unet_dir / "config.json")
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ValueError(
            f"{unet_dir} holds a {config['_class_name']}; only UNet2DModel is supported."
        )
    if config.get("num_class_embeds") is not None or config.get("class_embed_type") is not None:
        raise ValueError(
            "class-conditional UNets are not supported (the priors here are unconditional)."
        )
    weights = next((unet_dir / name for name in WEIGHT_FILES if (unet_dir / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(
            f"no weights in {unet_dir}: expected one of {', '.join(WEIGHT_FILES)}."
        )
    model = UNet2DModel.from_config(config)
    load_state_dict_checked(model, read_state_dict(weights), f"weights {weights}")
    return model.to(device)


def load_diffusers_prior(
    path: Path | str,
    scheduler_config: Path | str | None = None,
    device: torch.device | str = "cpu",
    network_time_offset: int = 0,
) -> EpsilonNetworkPrior:
    """A diffusers ``UNet2DModel`` (pipeline or UNet folder, see the module docstring) as a prior on
    ``[in_channels, sample_size, sample_size]`` images in ``[-1, 1]``."""
    unet_dir, scheduler_path = _locate(Path(path), scheduler_config)
    scheduler = read_json_object(scheduler_path)
    prediction = scheduler.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"unsupported prediction_type {prediction!r}; known: {', '.join(PREDICTIONS)}."
        )
    unet = load_diffusers_unet(unet_dir, device)
    in_channels, out_channels = int(unet.config.in_channels), int(unet.config.out_channels)
    learn_sigma = scheduler.get("variance_type") in _LEARNED_VARIANCES
    if out_channels != in_channels * (2 if learn_sigma else 1):
        raise ValueError(
            f"the UNet maps {in_channels} to {out_channels} channels but the scheduler's variance_type is "
            f"{scheduler.get('variance_type')!r} (learned variances need {2 * in_channels} output channels, "
            f"others {in_channels})."
        )
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return EpsilonNetworkPrior(
        DiffusersUNet(unet),
        (in_channels, int(height), int(width)),
        schedule=schedule_from_scheduler_config(scheduler),
        prediction=prediction,
        learn_sigma=learn_sigma,
        network_time_offset=network_time_offset,
    )
