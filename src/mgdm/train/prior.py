"""Train a small epsilon-prediction DDPM prior on Fashion-MNIST 32 x 32, resumably.

**Objective.** With our DDPM linear schedule (:func:`mgdm.diffusion.schedules.ddpm_linear`,
``abar[k] = abar_DDPM[k - 1]``, ``k = 1 … 1000``), each step draws for every image ``x_0``
(``[B, 1, 32, 32]`` in ``[-1, 1]``) a time ``k ~ U{1, …, 1000}`` and ``eps ~ N(0, I)``, forms
``x_k = sqrt(abar[k]) x_0 + sqrt(1 - abar[k]) eps`` and minimises
``mean((unet(x_k, k) - eps)^2)`` with Adam. The network is called with the integer ``k``, the
convention of :class:`mgdm.priors.neural.EpsilonNetworkPrior` with ``network_time_offset = 0``.

**Randomness, and why resuming is exact.** Nothing is drawn from a running generator:

* the initial weights come from ``torch.manual_seed(seed)`` (global RNG forked, left untouched);
* the data order of epoch ``e`` is ``randperm(N)`` of a generator seeded with
  ``derive_seed(seed, 0, e)``; step ``s`` (1-based) takes the ``(s - 1) mod (N // B)``-th batch of
  ``B`` images of epoch ``(s - 1) // (N // B)`` (the last ``N mod B`` images of a permutation are
  left out of that epoch);
* the times and noise of step ``s`` come from a generator seeded with ``derive_seed(seed, 1, s)``
  (drawn on the CPU, then moved to the device, so the draws do not depend on the device).

The whole random state at step ``s`` is therefore ``(seed, s)``: a checkpoint holds the weights,
Adam's state and ``s``, and a run resumed from it performs the same floating-point operations as
an uninterrupted one (bit for bit on the same device and thread count).

**Output folder** ``DIR``:

* ``config.json`` — the options that define the run (:class:`TrainConfig`); a rerun must match.
  It is written once every option, the data and the model have been checked, and removed with
  the folder's other files (and the folder, when the run created it) when the run fails before
  its first checkpoint (:func:`run_folder`), so a corrected rerun starts afresh;
* ``train_log.csv`` — ``step, loss, seconds`` (cumulative training wall time) per step;
* ``checkpoint.safetensors`` (weights, the step in its metadata) and ``checkpoint_state.pt``
  (``{"step", "seconds", "optimizer"}``, tensors and primitives only, read with
  ``torch.load(weights_only=True)``), each written to a temporary file and moved into place;
* at the end, a diffusers pipeline folder: ``unet/`` (``save_pretrained``, safetensors) and
  ``scheduler/scheduler_config.json`` (``DDPMScheduler``, linear betas ``1e-4 … 0.02``,
  epsilon prediction), loaded by :func:`mgdm.priors.diffusers_loader.load_diffusers_prior`
  (keep its default ``network_time_offset = 0``, the convention the network was trained with).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.checkpoints import load_state_dict_checked, read_json_object, read_state_dict
from mgdm.data.fashion_mnist import load_fashion_mnist
from mgdm.devices import resolve_device
from mgdm.diffusion.schedules import NUM_TIMESTEPS, ddpm_linear
from mgdm.files import check_output_dir
from mgdm.random import derive_seed, torch_generator

IMAGE_SIZE = 32
"""Side of the (padded) Fashion-MNIST images the prior is trained on."""

CONFIG_FILE = "config.json"
LOG_FILE = "train_log.csv"
WEIGHTS_FILE = "checkpoint.safetensors"
STATE_FILE = "checkpoint_state.pt"
RUN_KIND = "mgdm-train-prior"
_TMP = ".tmp"
LOSS_SMOOTHING = 0.98
"""Weight of the running loss in the progress bar's exponential moving average (all trainers)."""


@dataclass(frozen=True)
class TrainConfig:
    """The options that define a training run (a resumed run must use the same ones).

    Attributes:
        channels: ``block_out_channels`` of the UNet, one entry per resolution (1 to 4 levels:
            32, 16, 8, 4 pixels); the lowest resolution has self-attention when there are 2+.
        batch_size: images per step ``B``.
        lr: Adam's learning rate.
        seed: the seed of the weights, the data order and the noise (module docstring), an
            integer in ``0 … 2^63 - 1``.
        limit: train on the first ``limit`` training images (``None``: all 60,000).
    """

    channels: tuple[int, ...] = (32, 64, 64)
    batch_size: int = 64
    lr: float = 2e-4
    seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        channels = tuple(self.channels)
        if not 1 <= len(channels) <= 4 or any(
            not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels
        ):
            raise ValueError(
                f"channels must be 1 to 4 positive integers (one per resolution); got {list(channels)}."
            )
        object.__setattr__(self, "channels", channels)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1; got {self.batch_size}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"learning rate must be a positive number; got {self.lr}.")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or None for all images); got {self.limit}.")
        if type(self.seed) is not int or not 0 <= self.seed < 2**63:
            raise ValueError(f"the seed must be an integer in 0 … 2^63 - 1; got {self.seed!r}.")

    def to_json(self) -> dict[str, object]:
        """The configuration as saved in ``config.json`` (with a ``kind`` tag)."""
        return {"kind": RUN_KIND, **asdict(self), "channels": list(self.channels)}


def parse_channels(text: str) -> tuple[int, ...]:
    """``"32,64,64"`` -> ``(32, 64, 64)``; a ``ValueError`` names a malformed list."""
    try:
        channels = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"--channels must be comma-separated positive integers such as 32,64,64; got {text!r}."
        ) from None
    return TrainConfig(channels=channels).channels


def build_unet(config: TrainConfig) -> torch.nn.Module:
    """The ``UNet2DModel`` of ``config``: 1 channel in and out, ``32 x 32``, one ResNet layer per
    block, attention at the lowest resolution (when there are 2+ levels), GroupNorm with
    ``gcd(32, *channels)`` groups. Weights from ``torch.manual_seed(config.seed)``; the global
    RNG state is restored afterwards."""
    from diffusers import UNet2DModel

    levels = len(config.channels)
    down = ["DownBlock2D"] * levels
    if levels > 1:
        down[-1] = "AttnDownBlock2D"
    up = [name.replace("Down", "Up") for name in reversed(down)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return UNet2DModel(
            sample_size=IMAGE_SIZE,
            in_channels=1,
            out_channels=1,
            layers_per_block=1,
            block_out_channels=config.channels,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=math.gcd(32, *config.channels),
            attention_head_dim=None,
        )


def diffusion_batch(
    x0: Tensor, abar: Tensor, seed: int, step: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The noised batch of ``step``: ``(x_k [B, C, H, W], k int64 [B], eps [B, C, H, W])``.

    ``k ~ U{1, …, 1000}`` and ``eps ~ N(0, I)`` from a CPU generator seeded with
    ``derive_seed(seed, 1, step)``; ``x_k = sqrt(abar[k]) x_0 + sqrt(1 - abar[k]) eps`` with
    ``abar`` the ``[1001]`` table of our schedule (float64, cast to ``x_0``'s dtype).
    """
    generator = torch_generator(derive_seed(seed, 1, step))
    k = torch.randint(1, NUM_TIMESTEPS + 1, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    a = abar[k].to(device=x0.device, dtype=x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, k.to(x0.device), eps


def batch_indices(num_images: int, batch_size: int, seed: int, step: int) -> Tensor:
    """The image indices ``[batch_size]`` of ``step`` (1-based); see the module docstring."""
    per_epoch = num_images // batch_size
    epoch, position = divmod(step - 1, per_epoch)
    order = torch.randperm(num_images, generator=torch_generator(derive_seed(seed, 0, epoch)))
    return order[position * batch_size : (position + 1) * batch_size]


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)``, flush it to disk; returns the temporary path (not moved)."""
    tmp = path.with_name(path.name + _TMP)
    write(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    return tmp


def save_checkpoint(
    out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, seconds: float
) -> None:
    """Write both checkpoint files to temporaries, then move the weights, then the state.

    A kill between the two moves leaves the new weights with the old state and the new state in
    ``checkpoint_state.pt.tmp``; :func:`load_checkpoint` completes the move (roll forward).
    """
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = {"step": step, "seconds": seconds, "optimizer": optimizer.state_dict()}
    weights_tmp = _atomic(
        out / WEIGHTS_FILE, lambda p: save_file(weights, str(p), metadata={"step": str(step)})
    )
    state_tmp = _atomic(out / STATE_FILE, lambda p: torch.save(state, p))
    os.replace(weights_tmp, out / WEIGHTS_FILE)
    os.replace(state_tmp, out / STATE_FILE)


def _weights_step(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return int((handle.metadata() or {}).get("step", -1))


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the unpickler's own message says what it refused
        raise ValueError(f"{path} cannot be loaded safely (weights_only=True): {error}") from error


def load_checkpoint(
    out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, float]:
    """Restore weights and Adam from ``out``; returns ``(step, seconds)`` (``(0, 0.0)`` if none)."""
    weights_path, state_path = out / WEIGHTS_FILE, out / STATE_FILE
    state_tmp = state_path.with_name(state_path.name + _TMP)
    if not weights_path.is_file():
        return 0, 0.0
    step = _weights_step(weights_path)
    state = _load_state(state_path) if state_path.is_file() else None
    if (state is None or state["step"] != step) and state_tmp.is_file():
        pending = _load_state(state_tmp)
        if pending["step"] == step:  # killed between the two moves of save_checkpoint
            os.replace(state_tmp, state_path)
            state = pending
    if state is None or state["step"] != step:
        raise ValueError(
            f"{out}: the checkpoint's weights (step {step}) and state "
            f"({'missing' if state is None else 'step ' + str(state['step'])}) do not match."
        )
    load_state_dict_checked(model, read_state_dict(weights_path), f"checkpoint {weights_path}")
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), float(state["seconds"])


def check_run_folder(out: Path, wanted: dict[str, object], command: str) -> None:
    """``ValueError`` unless ``out`` can hold the run ``wanted``: a folder that does not exist yet
    and can be created, an empty writable folder, or the folder of the same run (a resume).

    ``wanted["kind"]`` tags the run; a non-empty folder must hold a ``config.json`` of that kind
    whose entries all equal ``wanted``'s, else the message lists the differing options (named as
    ``--option`` of ``command``). Creates nothing.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder.")
    check_output_dir(out, "--out")
    config_path = out / CONFIG_FILE
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not config_path.is_file():
        raise ValueError(
            f"--out {out} is not empty and holds no {CONFIG_FILE}: not a run of `{command}`; "
            "choose an empty or new folder."
        )
    saved = read_json_object(config_path)
    if saved.get("kind") != wanted["kind"]:
        raise ValueError(f"{config_path} is not the configuration of a `{command}` run.")
    differing = [
        f"--{key.replace('_', '-')} (saved {saved.get(key)!r}, requested {value!r})"
        for key, value in wanted.items()
        if saved.get(key) != value
    ]
    if differing:
        raise ValueError(
            f"cannot resume the run in {out} with a different configuration: "
            f"{'; '.join(differing)}. Use the saved options or another --out."
        )


def prepare_run_folder(out: Path, wanted: dict[str, object], command: str) -> None:
    """Create ``out`` with ``config.json`` = ``wanted``, or check that it holds the same run
    (:func:`check_run_folder`)."""
    check_run_folder(out, wanted, command)
    config_path = out / CONFIG_FILE
    if config_path.is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")


@contextmanager
def run_folder(out: Path, wanted: dict[str, object], command: str) -> Iterator[None]:
    """:func:`prepare_run_folder` for the training in the block. When the block raises before the
    run's first checkpoint exists, what the run wrote (``config.json``, ``train_log.csv``,
    temporaries) is removed, and so are ``out`` and the parent folders the call created: a
    failed start leaves nothing behind and does not block a corrected rerun."""
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    fresh = out.is_dir() and not any(out.iterdir())
    prepare_run_folder(out, wanted, command)
    try:
        yield
    except BaseException:
        if (created or fresh) and not (out / WEIGHTS_FILE).exists():
            for path in (out / CONFIG_FILE, out / LOG_FILE, *out.glob(f"*{_TMP}")):
                path.unlink(missing_ok=True)
            for folder in created:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise


def open_training_log(out: Path, step: int) -> tuple[IO[str], Any]:
    """The open log file and its ``csv.writer``, truncated to the rows up to ``step`` (the rows
    a killed run wrote after its last checkpoint are dropped: those steps are redone)."""
    path = out / LOG_FILE
    rows: list[list[str]] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in list(csv.reader(handle))[1:] if row and int(row[0]) <= step]
    handle = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed by train_prior
    writer = csv.writer(handle)
    writer.writerows([["step", "loss", "seconds"], *rows])
    handle.flush()
    return handle, writer


def export_pipeline(model: torch.nn.Module, out: Path) -> None:
    """Write ``out/unet`` (``save_pretrained``, safetensors) and ``out/scheduler`` (the DDPM
    linear betas ``1e-4 … 0.02`` over 1000 steps, epsilon prediction)."""
    from diffusers import DDPMScheduler

    model.save_pretrained(out / "unet", safe_serialization=True)
    DDPMScheduler(
        num_train_timesteps=NUM_TIMESTEPS,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="epsilon",
    ).save_pretrained(out / "scheduler")


def check_run_lengths(steps: int, checkpoint_every: int) -> None:
    """``ValueError`` unless ``steps >= 1`` and ``checkpoint_every >= 1`` (every trainer checks
    them before it touches its run folder)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint interval must be >= 1; got {checkpoint_every}.")


def check_batch_size(batch_size: int, count: int) -> None:
    """``ValueError`` unless a batch of ``batch_size`` fits the ``count`` training images."""
    if count < batch_size:
        raise ValueError(f"batch size {batch_size} exceeds the {count} training images.")


def fit_resumably(
    out: Path,
    model: torch.nn.Module,
    lr: float,
    steps: int,
    checkpoint_every: int,
    loss_at: Callable[[int], Tensor],
    desc: str,
    progress: bool,
) -> None:
    """The training loop of every trainer: Adam(``lr``) on ``loss_at(step)`` (a scalar tensor)
    for ``step = start + 1 … steps``, resuming from ``out``'s last checkpoint (``start``; 0
    without one), logging ``step, loss, seconds`` to ``train_log.csv`` every step and
    checkpointing every ``checkpoint_every`` steps and at the end; the model is left in eval
    mode. ``loss_at`` must draw its randomness from ``step`` alone for the resume to be exact.
    ``ValueError`` when the checkpoint is already past ``steps``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start, seconds = load_checkpoint(out, model, optimizer)
    if start > steps:
        raise ValueError(f"the run in {out} is already at step {start} > --steps {steps}.")
    log_handle, log = open_training_log(out, start)
    model.train()
    running: float | None = None
    bar = tqdm(total=steps, initial=start, desc=desc, unit="step", disable=not progress)
    try:
        for step in range(start + 1, steps + 1):
            began = time.perf_counter()
            loss = loss_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            seconds += time.perf_counter() - began
            log.writerow([step, f"{value:.6g}", f"{seconds:.3f}"])
            log_handle.flush()
            running = (
                value
                if running is None
                else LOSS_SMOOTHING * running + (1 - LOSS_SMOOTHING) * value
            )
            bar.set_postfix(loss=f"{running:.4f}")
            bar.update()
            if step % checkpoint_every == 0 or step == steps:
                save_checkpoint(out, model, optimizer, step, seconds)
    finally:
        bar.close()
        log_handle.close()
    model.eval()


def train_prior(
    out: Path | str,
    config: TrainConfig,
    steps: int,
    checkpoint_every: int = 200,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> torch.nn.Module:
    """Train (or resume) the prior of ``config`` in ``out`` up to ``steps`` steps; returns the UNet.

    A checkpoint is written every ``checkpoint_every`` steps and at the end; rerunning with the
    same ``out`` and ``config`` continues from the last checkpoint (``steps`` may grow). Raises
    ``ValueError`` for ``steps < 1``, ``checkpoint_every < 1``, a device this machine lacks,
    ``limit < batch_size``, a non-empty ``out`` that is not a run of ``config``, or a checkpoint
    already past ``steps``; all but the last before ``out`` is created (:func:`run_folder`).
    """
    check_run_lengths(steps, checkpoint_every)
    out, device = Path(out), resolve_device(device)
    command = "mgdm train prior"
    check_run_folder(out, config.to_json(), command)
    images = load_fashion_mnist("train", limit=config.limit).images
    check_batch_size(config.batch_size, images.shape[0])
    model = build_unet(config).to(device)
    images = images.to(device)
    abar = ddpm_linear().abar

    def loss_at(step: int) -> Tensor:
        x0 = images[batch_indices(images.shape[0], config.batch_size, config.seed, step)]
        x_k, k, eps = diffusion_batch(x0, abar, config.seed, step)
        return torch.nn.functional.mse_loss(model(x_k, k).sample, eps)

    with run_folder(out, config.to_json(), command):
        fit_resumably(
            out, model, config.lr, steps, checkpoint_every, loss_at, "train prior", progress
        )
    export_pipeline(model, out)
    return model


__all__ = [
    "TrainConfig",
    "batch_indices",
    "build_unet",
    "check_batch_size",
    "check_run_folder",
    "check_run_lengths",
    "diffusion_batch",
    "export_pipeline",
    "fit_resumably",
    "parse_channels",
    "prepare_run_folder",
    "run_folder",
    "train_prior",
]
