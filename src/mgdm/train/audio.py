"""Train an EDM-preconditioned diffusion prior on audio stems, resumably (``mgdm train audio-prior``).

**Objective.** On the MSDM schedule (:func:`mgdm.audio.prior.msdm_schedule`), each step draws
for every clip ``x_0`` (``[B, C, L]`` in WAV units; ``C = 4`` stems jointly, or ``C = 1`` for
one stem) a time ``k ~ U{1, …, 1000}`` and ``eps ~ N(0, I)``, forms
``x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps`` and minimises EDM's preconditioned loss
(:meth:`mgdm.audio.prior.PreconditionedUNet1D.training_loss`, ``sigma_data`` = the RMS of the
training clips' stems) with Adam; the UNet is called with the integer ``k``.

**Randomness and exact resume** are those of the image trainer (:mod:`mgdm.train.prior`, whose
helpers this module uses): weights from ``seed``; the clips of step ``s`` from
:func:`~mgdm.train.prior.batch_indices` (a seeded permutation per epoch); times and noise from
:func:`~mgdm.train.prior.diffusion_batch` (a generator seeded by ``(seed, s)``). A run resumed
from a checkpoint performs the same operations as an uninterrupted one.

**Output folder** ``DIR``: ``config.json`` (the options and the data's fingerprint; a rerun must
match; written once the options and the data are checked, and removed when the run fails before
its first checkpoint), ``train_log.csv`` (``step, loss, seconds``), ``checkpoint.safetensors`` and
``checkpoint_state.pt`` (written atomically every ``checkpoint_every`` steps), and at the end the
prior, ``prior.json`` + ``model.safetensors``, loaded by :func:`mgdm.audio.prior.load_audio_prior`.
A single-stem run (``stems`` one name) is one of the four parts of an independent-stems prior:
train ``DIR/bass``, ``DIR/drums``, ``DIR/guitar`` and ``DIR/piano`` and load ``DIR``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mgdm.audio.constants import STEMS
from mgdm.audio.dataset import load_stem_tensor
from mgdm.audio.prior import PreconditionedUNet1D, msdm_schedule, save_audio_prior
from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
from mgdm.devices import resolve_device
from mgdm.train.prior import (
    batch_indices,
    check_run_folder,
    check_run_lengths,
    diffusion_batch,
    fit_resumably,
    run_folder,
)

RUN_KIND = "mgdm-train-audio-prior"
STEM_CHOICES: tuple[str, ...] = ("all", *STEMS)


@dataclass(frozen=True)
class AudioTrainConfig:
    """The options that define a training run (a resumed run must use the same ones).

    Attributes:
        stems: ``"all"`` (the four stems jointly) or one stem name.
        channels: UNet channels per level (:class:`~mgdm.audio.unet1d.UNet1DConfig`).
        factors: UNet downsampling factors between levels.
        attention: self-attention in the UNet's middle block.
        batch_size: clips per step.
        lr: Adam's learning rate.
        seed: the seed of the weights, the clip order and the noise.
    """

    stems: str = "all"
    channels: tuple[int, ...] = (32, 64, 96, 128)
    factors: tuple[int, ...] = (4, 4, 4)
    attention: bool = True
    batch_size: int = 16
    lr: float = 2e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.stems not in STEM_CHOICES:
            raise ValueError(
                f"--stems must be one of {', '.join(STEM_CHOICES)}; got {self.stems!r}."
            )
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "factors", tuple(self.factors))
        self.network()  # validates channels and factors
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(f"batch size must be a positive integer; got {self.batch_size!r}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be a positive number; got {self.lr}.")

    @property
    def stem_names(self) -> tuple[str, ...]:
        """The stems the prior models, in tensor order."""
        return STEMS if self.stems == "all" else (self.stems,)

    def network(self) -> UNet1DConfig:
        """The UNet of this run."""
        return UNet1DConfig(
            in_channels=len(self.stem_names),
            channels=self.channels,
            factors=self.factors,
            attention=self.attention,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "kind": RUN_KIND,
            **asdict(self),
            "channels": list(self.channels),
            "factors": list(self.factors),
        }


def parse_integers(text: str, option: str) -> tuple[int, ...]:
    """``"32,64"`` -> ``(32, 64)``; a ``ValueError`` names ``option`` and the malformed text."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"{option} must be comma-separated integers such as 32,64,96; got {text!r}."
        ) from None


def train_audio_prior(
    data: Path | str,
    out: Path | str,
    config: AudioTrainConfig,
    steps: int,
    checkpoint_every: int = 200,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> PreconditionedUNet1D:
    """Train (or resume) the prior of ``config`` on the stem file ``data`` in ``out`` up to
    ``steps`` steps; returns the network (also saved as ``out/prior.json`` + ``model.safetensors``),
    EDM-preconditioned with ``sigma_data`` the RMS of the training clips' stems.

    Raises ``ValueError`` for ``steps < 1``, ``checkpoint_every < 1``, a device this machine
    lacks, a data file that is not a stem file (:func:`~mgdm.audio.dataset.load_stem_tensor`),
    silent clips (RMS 0), fewer clips than ``batch_size``, a clip length the UNet cannot
    downsample, a non-empty ``out`` that is not this run on this data, or a checkpoint already
    past ``steps``; all but the last before ``out`` is created
    (:func:`~mgdm.train.prior.run_folder`).
    """
    check_run_lengths(steps, checkpoint_every)
    out, device = Path(out), resolve_device(device)
    stem_data = load_stem_tensor(data)
    missing = [name for name in config.stem_names if name not in stem_data.names]
    if missing:
        raise ValueError(f"{data} holds the stems {list(stem_data.names)}, not {missing}.")
    clips = stem_data.stems[:, [stem_data.names.index(name) for name in config.stem_names]]
    count, _, length = clips.shape
    network_config = config.network()
    if count < config.batch_size:
        raise ValueError(f"batch size {config.batch_size} exceeds the {count} clips of {data}.")
    if length % network_config.total_factor:
        raise ValueError(
            f"clips of {length} samples do not fit a UNet downsampling by {network_config.total_factor} "
            f"(factors {list(config.factors)}): the length must be a multiple of it."
        )
    sigma_data = float(clips.to(torch.float64).square().mean().sqrt())
    if not sigma_data > 0:
        raise ValueError(
            f"the {', '.join(config.stem_names)} clips of {data} are silent (RMS 0): nothing to "
            "learn; choose other stems or data."
        )
    command = "mgdm train audio-prior"
    wanted = {**config.to_json(), "data": stem_data.fingerprint()}
    check_run_folder(out, wanted, command)
    clips = clips.to(device)
    schedule = msdm_schedule()
    model = PreconditionedUNet1D(build_unet1d(network_config, config.seed), sigma_data, schedule)
    model = model.to(device)

    def loss_at(step: int) -> torch.Tensor:
        x0 = clips[batch_indices(count, config.batch_size, config.seed, step)]
        x_k, k, _ = diffusion_batch(x0, schedule.abar, config.seed, step)
        return model.training_loss(x0, x_k, k)

    with run_folder(out, wanted, command):
        fit_resumably(
            out, model, config.lr, steps, checkpoint_every, loss_at, "train audio prior", progress
        )
    save_audio_prior(out, model, config.stem_names, stem_data.sample_rate, length)
    return model
