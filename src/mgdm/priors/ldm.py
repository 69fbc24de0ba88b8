"""CompVis latent-diffusion checkpoints (Rombach et al. 2022, ``ldm.models.diffusion.ddpm.
LatentDiffusion``) with a VQ first stage, as latent priors.

A checkpoint is the ``model.ckpt`` of the latent-diffusion repository (a PyTorch Lightning
checkpoint whose ``state_dict`` holds ``model.diffusion_model.*``, the UNet, and
``first_stage_model.*``, the autoencoder, besides the schedule buffers ``betas``,
``alphas_cumprod``, … and the EMA copy ``model_ema.*``), or that state dict saved as
``.safetensors`` (:func:`mgdm.checkpoints.convert_checkpoint`). It is read by
:func:`mgdm.checkpoints.read_training_state_dict`: ``weights_only=True``, Lightning's metadata
through an allow-list of inert stand-ins, never a pickle executed.

**Configuration.** ``model.params`` of the repository's YAML configuration (``config.yaml``
beside the checkpoint, or a JSON file of the same content), or the preset
:data:`FFHQ_LDM_VQ4` (``configs/latent-diffusion/ffhq-ldm-vq-4.yaml``: ``timesteps 1000,
linear_start 0.0015, linear_end 0.0195``, UNet ``image_size 64, in/out_channels 3,
model_channels 224, attention_resolutions 8,4,2`` (downsampling rates), ``num_res_blocks 2,
channel_mult 1,2,3,4, num_head_channels 32``; first stage vq-f4 ``embed_dim 3, n_embed 8192,
z_channels 3, resolution 256, ch 128, ch_mult 1,2,4, num_res_blocks 2, attn_resolutions []``).

**Mapping.** The UNet is LDM's ``openaimodel.UNetModel``, the guided-diffusion UNet with the same
parameter names, built here as :class:`~mgdm.priors.adm.ADMUNet` (LDM's defaults differ from
guided-diffusion's: ``use_scale_shift_norm False``, ``resblock_updown False``, heads from
``num_head_channels``; attention listed by downsampling rate ``r``, i.e. at resolution
``image_size / r``). The first stage is :class:`~mgdm.priors.latent.vq.VQModel`. LDM's
``beta_schedule``: ``linear`` is ``linspace(sqrt(linear_start), sqrt(linear_end), T)^2``,
``sqrt_linear`` ``linspace(linear_start, linear_end, T)``, ``sqrt`` its square root, ``cosine``
Nichol & Dhariwal's; ``T = timesteps`` steps map to our scale as in :mod:`mgdm.priors.timescale`.
``parameterization`` ``eps`` / ``x0`` / ``v`` is epsilon-, sample- or v-prediction. The latents
are ``z = scale_factor * quant_conv(Enc(x))`` (``scale_factor`` from the configuration, default 1,
or the checkpoint's ``scale_factor`` tensor when LDM's ``scale_by_std`` stored one).

The prior is a :class:`~mgdm.priors.latent.prior.LatentPrior` on ``[3, 64, 64]`` latents decoding
to ``[3, 256, 256]`` images in ``[-1, 1]`` for the FFHQ model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mgdm.checkpoints import build_from_state_dict, one_line, read_training_state_dict
from mgdm.diffusion.schedules import Schedule
from mgdm.priors.adm import ADMConfig, ADMUNet
from mgdm.priors.latent.prior import LatentPrior
from mgdm.priors.latent.vq import VQ_F4, VQAutoencoder, VQConfig, VQModel
from mgdm.priors.neural import EpsilonNetworkPrior, ddpm_betas
from mgdm.priors.timescale import schedule_from_training_betas, with_time_scale

UNET_PREFIX = "model.diffusion_model."
FIRST_STAGE_PREFIX = "first_stage_model."
CONFIG_NAMES = ("config.yaml", "config.yml", "config.json")
"""Configuration files looked for beside a checkpoint (``ldm:PATH``)."""

_PREDICTIONS = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
_IGNORED_FIRST_STAGE = ("loss.",)
"""Parts of a first stage that are training-only (its loss network) and not loaded."""


@dataclass(frozen=True)
class LDMConfig:
    """The options of a CompVis latent diffusion model (module docstring)."""

    unet: ADMConfig
    first_stage: VQConfig = VQ_F4
    timesteps: int = 1000
    beta_schedule: str = "linear"
    linear_start: float = 0.0015
    linear_end: float = 0.0195
    parameterization: str = "eps"
    scale_factor: float = 1.0

    def betas(self) -> Tensor:
        """The ``timesteps`` betas of ``beta_schedule`` (float64, module docstring)."""
        steps, start, end = self.timesteps, self.linear_start, self.linear_end
        if self.beta_schedule == "linear":
            return ddpm_betas("scaled_linear", steps, start, end)
        if self.beta_schedule == "sqrt_linear":
            return ddpm_betas("linear", steps, start, end)
        if self.beta_schedule == "sqrt":
            return ddpm_betas("linear", steps, start, end).sqrt()
        if self.beta_schedule == "cosine":
            return ddpm_betas("cosine", steps)
        raise ValueError(
            f"unknown LDM beta_schedule {self.beta_schedule!r}; known: linear, sqrt_linear, "
            "sqrt, cosine."
        )

    def schedule(self) -> Schedule:
        """Our schedule of :meth:`betas` (:func:`~mgdm.priors.timescale.schedule_from_training_betas`)."""
        return schedule_from_training_betas(self.betas(), name=f"ldm-{self.beta_schedule}")


FFHQ_LDM_VQ4 = LDMConfig(
    unet=ADMConfig(
        image_size=64,
        num_channels=224,
        num_res_blocks=2,
        attention_resolutions="8,16,32",
        channel_mult="1,2,3,4",
        num_heads=-1,
        num_head_channels=32,
        use_scale_shift_norm=False,
        resblock_updown=False,
        in_channels=3,
    ),
)
"""The paper's FFHQ 256 latent model (``ffhq-ldm-vq-4``, module docstring)."""

LDM_PRESETS: dict[str, LDMConfig | None] = {"ldm-ffhq256": FFHQ_LDM_VQ4, "ldm": None}
"""``--prior`` names before ``:PATH``; ``None``: the configuration file beside the checkpoint."""


# --------------------------------------------------------------------------- configuration files
def _get(params: Mapping[str, Any], key: str, default: Any, source: str) -> Any:
    value = params.get(key, default)
    if value is None and default is not None:
        raise ValueError(f"{source}: {key} is empty.")
    return value


def _unet_config(params: Mapping[str, Any], source: str) -> ADMConfig:
    """``unet_config.params`` (LDM's ``UNetModel`` arguments) as an :class:`ADMConfig`."""
    refused = {
        "num_classes": None,
        "use_spatial_transformer": False,
        "context_dim": None,
        "n_embed": None,
        "use_fp16": False,
    }
    for key, allowed in refused.items():
        if params.get(key, allowed) not in (allowed, None, False):
            raise ValueError(
                f"{source}: UNet option {key} = {params[key]!r} is not supported (unconditional "
                "UNets without cross-attention only)."
            )
    if params.get("dims", 2) != 2 or not params.get("conv_resample", True):
        raise ValueError(f"{source}: only 2-d UNets with convolutional resampling are supported.")
    try:
        size = int(params["image_size"])
        in_channels = int(params["in_channels"])
        out_channels = int(params["out_channels"])
        rates = [int(r) for r in params.get("attention_resolutions", [])]
        mult = [int(m) for m in params["channel_mult"]]
        config = ADMConfig(
            image_size=size,
            num_channels=int(params["model_channels"]),
            num_res_blocks=int(params["num_res_blocks"]),
            attention_resolutions=",".join(str(size // r) for r in rates),
            channel_mult=",".join(map(str, mult)),
            learn_sigma=out_channels == 2 * in_channels,
            num_heads=int(params.get("num_heads", -1)),
            num_head_channels=int(params.get("num_head_channels", -1)),
            num_heads_upsample=int(params.get("num_heads_upsample", -1)),
            use_scale_shift_norm=bool(params.get("use_scale_shift_norm", False)),
            dropout=float(params.get("dropout", 0.0)),
            resblock_updown=bool(params.get("resblock_updown", False)),
            use_new_attention_order=bool(params.get("use_new_attention_order", False)),
            in_channels=in_channels,
        )
    except KeyError as error:
        raise ValueError(f"{source}: the UNet configuration lacks {error}.") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: malformed UNet configuration ({one_line(error)}).") from None
    if out_channels not in (in_channels, 2 * in_channels):
        raise ValueError(
            f"{source}: a UNet of {in_channels} input and {out_channels} output channels is "
            "not a diffusion model of its input."
        )
    if any(r < 1 or size % r for r in rates):
        raise ValueError(
            f"{source}: attention_resolutions {rates} must be downsampling rates dividing "
            f"image_size {size}."
        )
    if config.num_heads == -1 and config.num_head_channels == -1:
        raise ValueError(f"{source}: give num_heads or num_head_channels.")
    return config


def _first_stage_config(stage: Mapping[str, Any], source: str) -> VQConfig:
    target = str(stage.get("target", ""))
    if not target.endswith(("VQModelInterface", "VQModel")):
        raise ValueError(
            f"{source}: the first stage is {target or 'not given'}; only VQ autoencoders "
            "(ldm.models.autoencoder.VQModelInterface) are supported here."
        )
    params = stage.get("params", {})
    dd = params.get("ddconfig", {})
    if params.get("remap") is not None or dd.get("double_z", False):
        raise ValueError(f"{source}: remapped codebooks and double_z encoders are not supported.")
    try:
        return VQConfig(
            embed_dim=int(params["embed_dim"]),
            n_embed=int(params["n_embed"]),
            z_channels=int(dd["z_channels"]),
            resolution=int(dd["resolution"]),
            in_channels=int(dd["in_channels"]),
            out_ch=int(dd["out_ch"]),
            ch=int(dd["ch"]),
            ch_mult=tuple(int(m) for m in dd["ch_mult"]),
            num_res_blocks=int(dd["num_res_blocks"]),
            attn_resolutions=tuple(int(r) for r in dd.get("attn_resolutions", [])),
            dropout=float(dd.get("dropout", 0.0)),
        )
    except KeyError as error:
        raise ValueError(f"{source}: the first-stage configuration lacks {error}.") from None
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{source}: malformed first-stage configuration ({one_line(error)})."
        ) from None


def ldm_config_from_dict(config: Mapping[str, Any], source: str = "configuration") -> LDMConfig:
    """An :class:`LDMConfig` from the latent-diffusion YAML's content (``{"model": {"params":
    …}}``, or the ``params`` mapping itself); ``ValueError`` naming what is missing or not
    supported (conditional models, KL first stages)."""
    params = config.get("model", config)
    params = params.get("params", params) if isinstance(params, Mapping) else None
    if not isinstance(params, Mapping) or "unet_config" not in params:
        raise ValueError(
            f"{source}: expected model.params with unet_config and first_stage_config."
        )
    conditioning = params.get("cond_stage_config", "__is_unconditional__")
    if conditioning != "__is_unconditional__" or params.get("conditioning_key") is not None:
        raise ValueError(
            f"{source} describes a conditional latent diffusion model; only unconditional ones "
            "(cond_stage_config: __is_unconditional__) are priors."
        )
    prediction = str(params.get("parameterization", "eps"))
    if prediction not in _PREDICTIONS:
        raise ValueError(
            f"{source}: unknown parameterization {prediction!r}; known: {', '.join(_PREDICTIONS)}."
        )
    unet = _unet_config(params["unet_config"].get("params", {}), source)
    first_stage = _first_stage_config(params.get("first_stage_config", {}), source)
    try:
        ldm = LDMConfig(
            unet=unet,
            first_stage=first_stage,
            timesteps=int(_get(params, "timesteps", 1000, source)),
            beta_schedule=str(_get(params, "beta_schedule", "linear", source)),
            linear_start=float(_get(params, "linear_start", 1e-4, source)),
            linear_end=float(_get(params, "linear_end", 2e-2, source)),
            parameterization=prediction,
            scale_factor=float(_get(params, "scale_factor", 1.0, source)),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: malformed diffusion options ({one_line(error)}).") from None
    if ldm.timesteps < 1:
        raise ValueError(f"{source}: timesteps must be positive; got {ldm.timesteps}.")
    return ldm


def read_ldm_config(path: Path | str) -> LDMConfig:
    """The :class:`LDMConfig` of a latent-diffusion YAML (or JSON) configuration file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LDM configuration not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            content = json.loads(text)
        else:
            import yaml

            content = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not a readable configuration: {one_line(error)}") from error
    except ImportError as error:
        raise ValueError(
            "reading YAML configurations needs PyYAML (pip install pyyaml)."
        ) from error
    if not isinstance(content, Mapping):
        raise ValueError(f"{path} does not hold a mapping of options.")  # noqa: TRY004
    return ldm_config_from_dict(content, str(path))


def config_beside(checkpoint: Path) -> Path:
    """The configuration file next to ``checkpoint`` (:data:`CONFIG_NAMES`, or the checkpoint's
    name with ``.yaml`` / ``.json``); ``FileNotFoundError`` saying where it was looked for."""
    candidates = [checkpoint.with_suffix(s) for s in (".yaml", ".json")]
    candidates += [checkpoint.parent / name for name in CONFIG_NAMES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no configuration beside {checkpoint}: expected {', '.join(CONFIG_NAMES)} in "
        f"{checkpoint.parent} (the repository's configs/latent-diffusion/*.yaml), or use a preset "
        f"({', '.join(p for p in LDM_PRESETS if LDM_PRESETS[p])}:PATH)."
    )


# --------------------------------------------------------------------------- loading
def split_ldm_state(
    state: Mapping[str, Tensor], source: str
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The UNet's and the first stage's tensors of an LDM state dict, prefixes removed (the
    first stage's training-only ``loss.*`` dropped); other entries (schedule buffers, EMA
    weights) are left out. ``ValueError`` when a part is absent."""
    unet = {k[len(UNET_PREFIX) :]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    first = {
        k[len(FIRST_STAGE_PREFIX) :]: v
        for k, v in state.items()
        if k.startswith(FIRST_STAGE_PREFIX)
        and not k[len(FIRST_STAGE_PREFIX) :].startswith(_IGNORED_FIRST_STAGE)
    }
    for part, prefix in ((unet, UNET_PREFIX), (first, FIRST_STAGE_PREFIX)):
        if not part:
            raise ValueError(
                f"{source} has no {prefix}* tensors: not a latent-diffusion checkpoint (expected "
                f"{UNET_PREFIX}* and {FIRST_STAGE_PREFIX}*)."
            )
    return unet, first


def check_stored_schedule(state: Mapping[str, Tensor], config: LDMConfig, source: str) -> None:
    """The checkpoint's ``alphas_cumprod`` buffer, when it has one, must be ``cumprod(1 - betas)``
    of the configuration (relative tolerance 1e-4): a wrong configuration file is refused."""
    stored = state.get("alphas_cumprod")
    if stored is None:
        return
    stored = stored.to(torch.float64).reshape(-1)
    expected = torch.cumprod(1.0 - config.betas(), 0)
    if stored.shape != expected.shape or not torch.allclose(stored, expected, rtol=1e-4, atol=0):
        raise ValueError(
            f"{source}: the checkpoint's alphas_cumprod ({stored.numel()} steps) is not the "
            f"configuration's {config.beta_schedule} schedule of {config.timesteps} steps from "
            f"{config.linear_start} to {config.linear_end}; check the configuration file."
        )


def load_ldm_prior(
    checkpoint: Path | str,
    config: LDMConfig | Path | str | None = None,
    device: torch.device | str = "cpu",
    network_time_offset: int = 0,
    quantize: bool = True,
) -> LatentPrior:
    """A CompVis latent-diffusion checkpoint as a :class:`LatentPrior` (module docstring).

    Args:
        checkpoint: ``model.ckpt`` (a Lightning checkpoint), a torch state dict, or ``.safetensors``.
        config: an :class:`LDMConfig`, a configuration file, or ``None`` for the file beside the
            checkpoint (:func:`config_beside`).
        network_time_offset: the UNet's time convention (:mod:`mgdm.priors.neural`).
        quantize: snap latents to the codebook before decoding (LDM's default).

    Raises ``FileNotFoundError`` for missing files and a one-line ``ValueError`` naming the
    missing, unexpected or misshapen tensors when the checkpoint does not fit the configuration.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    if not isinstance(config, LDMConfig):
        config = read_ldm_config(config if config is not None else config_beside(checkpoint))
    state = read_training_state_dict(checkpoint)
    unet_state, first_state = split_ldm_state(state, str(checkpoint))
    check_stored_schedule(state, config, str(checkpoint))
    vq = build_from_state_dict(
        lambda: VQModel(config.first_stage), first_state, f"{checkpoint} ({FIRST_STAGE_PREFIX}*)"
    )
    unet = build_from_state_dict(
        lambda: ADMUNet(config.unet), unet_state, f"{checkpoint} ({UNET_PREFIX}*)"
    )
    scale = state.get("scale_factor")
    scale_factor = float(scale) if scale is not None and scale.numel() == 1 else config.scale_factor
    if not math.isfinite(scale_factor) or scale_factor <= 0:
        raise ValueError(f"{checkpoint}: scale_factor {scale_factor} is not a positive number.")
    size = config.unet.image_size
    denoiser = EpsilonNetworkPrior(
        with_time_scale(unet.to(device), config.timesteps, network_time_offset),
        (config.unet.in_channels, size, size),
        schedule=config.schedule(),
        prediction=_PREDICTIONS[config.parameterization],  # type: ignore[arg-type]
        learn_sigma=config.unet.learn_sigma,
        network_time_offset=network_time_offset,
        data_range=None,
    )
    autoencoder = VQAutoencoder(vq.to(device), scale_factor, quantize)
    return LatentPrior(denoiser, autoencoder)
