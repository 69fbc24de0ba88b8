"""Load a diffusers ``UNet2DModel`` and its scheduler configuration as a prior, as diffusers
reads them.

Sources accepted:

* a pipeline folder (``DDPMPipeline.save_pretrained``): ``unet/config.json``, ``unet/diffusion_pytorch_model.safetensors``
  (or ``.bin``), ``scheduler/scheduler_config.json``;
* a UNet folder (``config.json`` and the weights) with ``scheduler_config.json`` beside them or
  given as ``scheduler_config``;
* a Hugging Face Hub id (``owner/name``, e.g. ``google/ddpm-celebahq-256``) of either layout:
  its files are taken from the local Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``), and
  downloaded into it where the machine has a network and ``HF_HUB_OFFLINE`` is not set
  (:func:`hub_snapshot`: only the configurations and weights used here).

Models are built by diffusers' own ``from_pretrained`` (:func:`from_pretrained_checked`), so every
layout diffusers reads loads here too, including the legacy attention names of old checkpoints
(``query``/``key``/``value``/``proj_attn``, renamed by diffusers on load); ``.bin`` weights are
read by diffusers with ``torch.load(weights_only=True)``. Missing, unexpected or misshapen
tensors, which ``from_pretrained`` would only warn about (leaving random weights), are a one-line
``ValueError`` naming them.

Scheduler mapping: ``beta_schedule`` ``linear`` / ``scaled_linear`` / ``squaredcos_cap_v2`` (or
``trained_betas``) over ``num_train_timesteps = T`` steps give the DDPM betas; with ``T = 1000``
our schedule is ``abar[k] = abar_DDPM[k - 1]``, ``abar[0] = 1``
(:func:`mgdm.diffusion.schedules.schedule_from_betas`), any other ``T`` is mapped onto our
1000-step scale by :mod:`mgdm.priors.timescale` (the network is then told the real-valued step
``k T / 1000 - network_time_offset``). ``prediction_type`` ``epsilon`` / ``v_prediction`` /
``sample`` is kept; ``variance_type`` ``learned`` / ``learned_range`` means a ``2C``-channel output
whose first ``C`` channels are used. The UNet is called with ``tau = k - network_time_offset``
(default ``tau = k``, the MGDM reference's convention; ``network_time_offset = 1`` calls it with
the step ``k - 1`` whose noise level is exactly ``abar[k]``; see :mod:`mgdm.priors.neural`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mgdm.checkpoints import mismatch_message, one_line, read_json_object, read_state_dict
from mgdm.diffusion.schedules import NUM_TIMESTEPS, Schedule
from mgdm.priors.neural import PREDICTIONS, EpsilonNetworkPrior, ddpm_betas
from mgdm.priors.timescale import schedule_from_training_betas, with_time_scale

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_LEARNED_VARIANCES = ("learned", "learned_range")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
_SIZE_MISMATCH = re.compile(
    r"size mismatch for ([^:\s]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
    r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)"
)
_HUB_MODEL_FOLDERS = ("unet", "vae")
"""The parts of a Hub pipeline that the priors use (text encoders, safety checkers are not)."""


class DiffusersUNet(nn.Module):
    """``f(x, tau) = unet(x, tau).sample``: a diffusers ``UNet2DModel`` as a plain network."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        return self.unet(x, timesteps).sample


def scheduler_steps(config: dict[str, Any]) -> int:
    """``num_train_timesteps`` of a scheduler configuration (default 1000), checked positive."""
    steps = config.get("num_train_timesteps", NUM_TIMESTEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"num_train_timesteps must be a positive integer; got {steps!r}.")
    return steps


def schedule_from_scheduler_config(config: dict[str, Any]) -> Schedule:
    """Our schedule from a diffusers scheduler configuration (see the module docstring)."""
    steps = scheduler_steps(config)
    if config.get("rescale_betas_zero_snr", False):
        raise ValueError(
            "rescale_betas_zero_snr gives abar = 0 at the last step, which a VP schedule cannot hold."
        )
    if config.get("trained_betas") is not None:
        betas = torch.as_tensor(config["trained_betas"], dtype=torch.float64)
        if betas.numel() != steps:
            raise ValueError(
                f"trained_betas holds {betas.numel()} values but num_train_timesteps is {steps}."
            )
        name = "diffusers-trained"
    else:
        kind = config.get("beta_schedule", "linear")
        betas = ddpm_betas(
            kind, steps, config.get("beta_start", 1e-4), config.get("beta_end", 0.02)
        )
        name = f"diffusers-{kind}"
    return schedule_from_training_betas(betas, name=name)


# --------------------------------------------------------------------------- the Hugging Face Hub
def is_hub_id(spec: str | Path) -> bool:
    """Whether ``spec`` reads as a valid Hub id ``owner/name`` and names no existing path."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(spec)
    if not _HUB_ID.match(text) or Path(text).exists():
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host accepts a connection within ``timeout`` seconds (``False`` at
    once in offline mode): checked once before downloading, because huggingface_hub retries a
    failed connection with a back-off of about 20 s per file."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:  # no route, no DNS, refused, timed out
        return False


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot folder of the Hub model ``repo_id`` holding what the loaders read:
    ``model_index.json``, the scheduler's, UNet's and autoencoder's configurations and weights
    (safetensors, else ``.bin``), or a UNet repository's ``config.json``, weights and
    ``scheduler_config.json``. A model in the local Hugging Face cache (``HF_HUB_CACHE``,
    ``HF_HOME``) is read from there without any network access; otherwise the files are
    downloaded into the cache (``huggingface_hub.hf_hub_download``; ``HF_HUB_OFFLINE`` and the
    user's token apply) if the Hub can be reached. ``FileNotFoundError`` says what to do when
    the model is neither cached nor reachable."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    def cached(filename: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, filename, local_files_only=True))
        except (EntryNotFoundError, OSError):  # not in the cache
            return None

    offline = cached("model_index.json") is not None or cached("config.json") is not None
    if not offline and not hub_reachable():
        raise FileNotFoundError(
            _hub_message(repo_id, "not in the cache, and the Hub cannot be reached")
        )

    def fetch(filename: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, filename, local_files_only=offline))
        except EntryNotFoundError:  # absent from the repository (or from the cache)
            return None
        except OSError as error:  # not found on the Hub, gated, connection lost
            raise FileNotFoundError(_hub_message(repo_id, error)) from error

    index = fetch("model_index.json")
    if index is not None:
        snapshot = index.parent
        components = read_json_object(index, "pipeline index")
        folders = [f for f in _HUB_MODEL_FOLDERS if f in components]
        if "scheduler" in components:
            fetch("scheduler/scheduler_config.json")
    else:
        config = fetch("config.json")
        if config is None:
            raise FileNotFoundError(
                _hub_message(repo_id, "neither model_index.json nor config.json is available")
            )
        snapshot = config.parent
        folders = [""]
        fetch("scheduler_config.json")
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        if folder:
            fetch(f"{prefix}config.json")
        if not any(fetch(f"{prefix}{name}") for name in WEIGHT_FILES):
            raise FileNotFoundError(
                _hub_message(repo_id, f"no {prefix}{' or '.join(WEIGHT_FILES)} is available")
            )
    if "unet" in folders:
        from mgdm.priors.latent.loader import EMPTY_PROMPT_FILE  # lazy: the latent loader uses us

        fetch(EMPTY_PROMPT_FILE)
    return snapshot


def _hub_message(repo_id: str, error: BaseException | str) -> str:
    from huggingface_hub import constants

    return (
        f"the Hugging Face model {repo_id!r} is not a local folder and could not be read from the "
        f"Hugging Face cache ({constants.HF_HUB_CACHE}) or the Hub ({one_line(error)}); download "
        f"it where a network is (`hf download {repo_id}`, then copy the cache or set "
        "HF_HUB_CACHE), or pass the folder of a saved pipeline."
    )


# --------------------------------------------------------------------------- loading
def from_pretrained_checked(
    model_class: type, folder: Path | str, source: str | None = None
) -> nn.Module:
    """``model_class.from_pretrained(folder)`` (diffusers' own reading: its configuration,
    safetensors or ``.bin`` weights, legacy key names converted), in float32, with every
    missing, unexpected or misshapen tensor a one-line ``ValueError`` naming ``source`` (default:
    the folder) instead of diffusers' warnings and randomly initialised weights."""
    from diffusers.utils import logging as diffusers_logging

    source = source or f"weights in {folder}"
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # diffusers' own warnings become our one line
    try:
        model, info = model_class.from_pretrained(str(folder), output_loading_info=True)
    except RuntimeError as error:
        mismatched = [
            f"{key}: checkpoint {checkpoint} vs model {model}"
            for key, checkpoint, model in _SIZE_MISMATCH.findall(str(error))
        ]
        if not mismatched:
            raise
        raise ValueError(
            mismatch_message(source, model_class.__name__, [], [], mismatched)
        ) from None
    finally:
        diffusers_logging.set_verbosity(verbosity)
    missing, unexpected = list(info["missing_keys"]), list(info["unexpected_keys"])
    mismatched = [f"{key}: checkpoint {a} vs model {b}" for key, a, b in info["mismatched_keys"]]
    if missing or unexpected or mismatched:
        raise ValueError(
            mismatch_message(source, model_class.__name__, missing, unexpected, mismatched)
        )
    return model.float()


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
    """The ``UNet2DModel`` of ``unet_dir`` (``config.json`` + weights) through
    :func:`from_pretrained_checked`; unconditional UNets only."""
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
    if weights.suffix == ".bin":  # a pickle: refused in our words before diffusers reads it
        read_state_dict(weights)
    return from_pretrained_checked(UNet2DModel, unet_dir, f"weights {weights}").to(device)


def load_diffusers_prior(
    path: Path | str,
    scheduler_config: Path | str | None = None,
    device: torch.device | str = "cpu",
    network_time_offset: int = 0,
) -> EpsilonNetworkPrior:
    """A diffusers ``UNet2DModel`` (pipeline or UNet folder, or a Hub id; see the module
    docstring) as a prior on ``[in_channels, sample_size, sample_size]`` images in ``[-1, 1]``."""
    if not Path(str(path)).exists() and is_hub_id(path):
        path = hub_snapshot(str(path))
    unet_dir, scheduler_path = _locate(Path(path), scheduler_config)
    scheduler = read_json_object(scheduler_path)
    prediction = scheduler.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"unsupported prediction_type {prediction!r}; known: {', '.join(PREDICTIONS)}."
        )
    schedule = schedule_from_scheduler_config(scheduler)  # checked before the weights are read
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
    network = with_time_scale(DiffusersUNet(unet), scheduler_steps(scheduler), network_time_offset)
    return EpsilonNetworkPrior(
        network,
        (in_channels, int(height), int(width)),
        schedule=schedule,
        prediction=prediction,
        learn_sigma=learn_sigma,
        network_time_offset=network_time_offset,
    )
