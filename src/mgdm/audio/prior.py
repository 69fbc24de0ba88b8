"""Audio diffusion priors: the MSDM noise schedule, the multi-source prior, independent stems,
and saving/loading them.

**Schedule** (docs/algorithms/mgdm.md §8.2). MSDM's Karras grid of VE noise levels,
``sigma_min = 5e-4``, ``sigma_max = 20``, ``rho = 3``, 1000 levels flipped so that time ``k``
has ``sigma_k`` increasing with ``k``, and ``sigma_0 = 0``; the VP schedule is
``abar_k = 1 / (1 + sigma_k^2)``. Its levels match waveforms in full-scale units (RMS about
0.04 per stem): ``sigma_1 = 5e-4`` is far below the signal, ``sigma_1000 = 20`` far above.

**Preconditioning** (:class:`PreconditionedUNet1D`, Karras et al. 2022, as MSDM's own
denoiser). Waveforms have an RMS of about ``sigma_data = 0.04`` while the levels reach
``sigma = 20``: an epsilon network must then be accurate to ``sigma_data / sigma`` (1e-3 of its
output) for ``x0_hat = (x - sqrt(1 - abar) eps_hat) / sqrt(abar)`` to be usable; the prior
samples of a briefly trained one (an early version of this trainer) came out at many times the
data's RMS. The priors trained here therefore predict ``x_0`` through EDM's scalings of the VE
input ``x = x_0 + sigma n = x_vp / sqrt(abar)``::

    D(x; sigma) = c_skip x + c_out F(c_in x, k),   c_skip = sd^2 / (sigma^2 + sd^2),
    c_out = sigma sd / sqrt(sigma^2 + sd^2),       c_in = 1 / sqrt(sigma^2 + sd^2)

(``sd = sigma_data``, the RMS of the training clips), trained on ``(F - (x_0 - c_skip x) /
c_out)^2``: EDM's loss weight, a unit-variance target at every level.

**Priors.**

* :class:`AudioPrior`: a network on ``[S, L]`` (``S = 4``: the multi-source prior of
  MSDM; ``S = 1``: a single-stem prior), with the names of its stems and its sample rate. The
  network is called with the integer time ``k`` (``network_time_offset = 0``) and nothing is
  clamped (audio is returned as is).
* :class:`IndependentStemsPrior`: four single-stem priors side by side (ISDM-style, independent
  stems): ``eps([x_1; …; x_4], k) = [eps_1(x_1, k); …; eps_4(x_4, k)]``, i.e. the product
  prior ``p(x) = prod_s p_s(x_s)``. One call of it evaluates the four networks (a sampler's
  cost counts it as one call).

**Files** of a trained prior folder (written by ``mgdm train audio-prior``): ``prior.json``
(kind, stems, sample rate, length, schedule, network configuration, and ``preconditioning``:
``{"kind": "edm", "sigma_data": sd}`` for a :class:`PreconditionedUNet1D`, absent for a plain
epsilon network) and ``model.safetensors``.
:func:`load_audio_prior` reads such a folder, or a folder whose subfolders ``bass/``,
``drums/``, ``guitar/`` and ``piano/`` hold single-stem priors (an :class:`IndependentStemsPrior`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from mgdm.audio.constants import STEMS
from mgdm.audio.unet1d import UNet1D, UNet1DConfig
from mgdm.checkpoints import load_state_dict_checked, read_json_object, read_state_dict
from mgdm.diffusion.schedules import NUM_TIMESTEPS, Schedule, from_ve_sigmas
from mgdm.files import write_atomically
from mgdm.priors.base import Denoiser
from mgdm.priors.edm import karras_sigmas
from mgdm.priors.neural import EpsilonNetworkPrior

PRIOR_FILE = "prior.json"
MODEL_FILE = "model.safetensors"
PRIOR_KIND = "mgdm-audio-prior"
SCHEDULE_NAME = "msdm-karras"

MSDM_SIGMA_MIN = 5e-4
MSDM_SIGMA_MAX = 20.0
MSDM_RHO = 3.0


def msdm_schedule() -> Schedule:
    """The VP schedule of MSDM's Karras VE grid (module docstring): ``abar[k] = 1/(1 + sigma_k^2)``."""
    levels = karras_sigmas(NUM_TIMESTEPS, MSDM_SIGMA_MAX, MSDM_SIGMA_MIN, MSDM_RHO).flip(0)
    sigmas = torch.cat([torch.zeros(1, dtype=torch.float64), levels])
    return Schedule(from_ve_sigmas(sigmas).abar, name=SCHEDULE_NAME)


class PreconditionedUNet1D(torch.nn.Module):
    """EDM's preconditioning of a :class:`UNet1D` on the integer times of a VP schedule (module
    docstring): ``forward(x_vp [B, C, L], k int64 [B]) -> x0_hat [B, C, L]``.

    Args:
        unet: the raw network ``F``.
        sigma_data: ``sd``, the RMS of the training data (full-scale units).
        schedule: the VP schedule whose ``sigma_k = sqrt(1 / abar_k - 1)`` the times ``k`` index
            (default :func:`msdm_schedule`).
    """

    def __init__(self, unet: UNet1D, sigma_data: float, schedule: Schedule | None = None):
        super().__init__()
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be a positive number; got {sigma_data!r}.")
        self.unet = unet
        self.sigma_data = float(sigma_data)
        abar = (schedule if schedule is not None else msdm_schedule()).abar
        sigmas = (1.0 / abar - 1.0).clamp_min(0.0).sqrt().to(torch.float32)
        self.register_buffer("sigmas", sigmas, persistent=False)

    @property
    def config(self) -> UNet1DConfig:
        """The configuration of the wrapped UNet (what :func:`save_audio_prior` records)."""
        return self.unet.config

    def _scalings(self, k: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, sqrt(1 + sigma^2))`` at the times ``k``, each ``[B, 1, 1]``."""
        sigma = self.sigmas[k.to(torch.int64)].view(-1, 1, 1)
        total = sigma.square() + self.sigma_data**2
        return (
            self.sigma_data**2 / total,
            sigma * self.sigma_data / total.sqrt(),
            total.rsqrt(),
            (1 + sigma.square()).sqrt(),
        )

    def forward(self, x_vp: Tensor, k: Tensor) -> Tensor:
        k = k.reshape(-1).expand(x_vp.shape[0])
        c_skip, c_out, c_in, to_ve = self._scalings(k)
        x = to_ve * x_vp
        return c_skip * x + c_out * self.unet(c_in * x, k)

    def training_residual(self, x0: Tensor, x_vp: Tensor, k: Tensor) -> Tensor:
        """``F(c_in x, k) - (x_0 - c_skip x) / c_out`` ``[B, C, L]`` for the clean clips ``x0``
        and their noisy versions ``x_vp`` at the times ``k >= 1`` (module docstring)."""
        c_skip, c_out, c_in, to_ve = self._scalings(k)
        x = to_ve * x_vp
        return self.unet(c_in * x, k) - (x0 - c_skip * x) / c_out

    def training_loss(self, x0: Tensor, x_vp: Tensor, k: Tensor) -> Tensor:
        """EDM's loss: the mean square of :meth:`training_residual`."""
        return self.training_residual(x0, x_vp, k).square().mean()


class AudioPrior(EpsilonNetworkPrior):
    """A network prior on stems ``[S, L]`` that knows its stems and sample rate.

    Args:
        network: ``f(x [B, S, L], k int64 [B]) -> [B, S, L]``: ``x0_hat`` for a
            :class:`PreconditionedUNet1D`, else ``eps``.
        stems: the ``S`` stem names, in tensor order.
        sample_rate: Hz.
        length: ``L``, samples per window.
        schedule: the VP schedule (default :func:`msdm_schedule`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        stems: Sequence[str],
        sample_rate: int,
        length: int,
        schedule: Schedule | None = None,
    ):
        super().__init__(
            network,
            (len(stems), length),
            schedule if schedule is not None else msdm_schedule(),
            prediction="sample" if isinstance(network, PreconditionedUNet1D) else "epsilon",
            data_range=None,
        )
        self.stems = tuple(stems)
        self.sample_rate = int(sample_rate)


class IndependentStemsPrior(Denoiser):
    """Single-stem priors side by side, presented as one prior on ``[S, L]`` (module docstring).

    Args:
        parts: one prior per stem, each of ``sample_shape (1, L)`` and naming one stem; equal
            lengths, sample rates and schedules.
    """

    def __init__(self, parts: Sequence[AudioPrior]):
        parts = tuple(parts)
        if not parts or any(p.sample_shape[0] != 1 for p in parts):
            raise ValueError(
                "IndependentStemsPrior needs single-stem priors (sample shape [1, L]); got "
                f"{[list(p.sample_shape) for p in parts]}."
            )
        first = parts[0]
        for part in parts[1:]:
            if part.sample_shape != first.sample_shape or part.sample_rate != first.sample_rate:
                raise ValueError(
                    f"the single-stem priors differ: {part.stems[0]} is {list(part.sample_shape)} at "
                    f"{part.sample_rate} Hz, {first.stems[0]} is {list(first.sample_shape)} at "
                    f"{first.sample_rate} Hz."
                )
            if not torch.equal(part.schedule.abar, first.schedule.abar):
                raise ValueError(
                    f"the single-stem priors {first.stems[0]} and {part.stems[0]} use different "
                    "noise schedules."
                )
        self.parts = parts
        self.stems = tuple(p.stems[0] for p in parts)
        self.sample_rate = first.sample_rate
        self.schedule = first.schedule
        self.sample_shape = (len(parts), first.sample_shape[1])
        self.data_range = None

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        """``[eps_s(x_t[:, s:s+1], t)]_s``, ``[B, S, L]``."""
        return torch.cat(
            [part.epsilon(x_t[:, s : s + 1], t) for s, part in enumerate(self.parts)], dim=1
        )


def save_audio_prior(
    out: Path | str,
    network: UNet1D | PreconditionedUNet1D,
    stems: Sequence[str],
    sample_rate: int,
    length: int,
) -> None:
    """Write ``prior.json`` and ``model.safetensors`` of ``network`` into the folder ``out``.

    Each file goes to a temporary file first and is moved into place (the weights before
    ``prior.json``, so a folder with ``prior.json`` has its weights).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    description = {
        "kind": PRIOR_KIND,
        "stems": list(stems),
        "sample_rate": int(sample_rate),
        "length": int(length),
        "schedule": SCHEDULE_NAME,
        "network": network.config.to_json(),
    }
    if isinstance(network, PreconditionedUNet1D):
        description["preconditioning"] = {"kind": "edm", "sigma_data": network.sigma_data}
    weights = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    write_atomically(out / MODEL_FILE, lambda tmp: save_file(weights, str(tmp)))
    write_atomically(
        out / PRIOR_FILE,
        lambda tmp: tmp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8"),
    )


def load_audio_prior(
    path: Path | str, device: torch.device | str = "cpu"
) -> AudioPrior | IndependentStemsPrior:
    """The prior saved in the folder ``path`` (module docstring), or for ``"msdm:PATH"`` the MSDM
    checkpoint at ``PATH`` (:mod:`mgdm.audio.msdm_prior`); ``ValueError`` says what is missing
    or malformed."""
    if str(path).startswith("msdm:"):  # the MSDM checkpoint: mgdm.audio.msdm_prior
        from mgdm.audio.msdm_prior import load_msdm_prior

        return load_msdm_prior(str(path)[len("msdm:") :], device)
    path = Path(path)
    if (path / PRIOR_FILE).is_file():
        return _load_single(path, device)
    if path.is_dir() and all((path / stem / PRIOR_FILE).is_file() for stem in STEMS):
        parts = [_load_single(path / stem, device) for stem in STEMS]
        for stem, part in zip(STEMS, parts):
            if part.stems != (stem,):
                raise ValueError(
                    f"{path / stem} holds a prior of the stems {list(part.stems)}; expected the "
                    f"single-stem prior of {stem!r}."
                )
        return IndependentStemsPrior(parts)
    raise ValueError(
        f"{path} holds no audio prior: expected {PRIOR_FILE} and {MODEL_FILE} (a folder written by "
        f"`mgdm train audio-prior`), or the subfolders {', '.join(STEMS)} each holding a "
        "single-stem prior (independent stems)."
    )


def _load_single(path: Path, device: torch.device | str) -> AudioPrior:
    description = read_json_object(path / PRIOR_FILE, "description of an audio prior")
    try:
        if description.get("kind") != PRIOR_KIND:
            raise ValueError(f"{path / PRIOR_FILE} is not the description of an audio prior.")
        if description["schedule"] != SCHEDULE_NAME:
            raise ValueError(
                f"{path / PRIOR_FILE}: unknown schedule {description['schedule']!r}; known: "
                f"{SCHEDULE_NAME}."
            )
        network_config = UNet1DConfig(**description["network"])
        preconditioning = description.get("preconditioning")
        if preconditioning is not None and preconditioning.get("kind") != "edm":
            raise ValueError(
                f"{path / PRIOR_FILE}: unknown preconditioning {preconditioning!r}; known: edm."
            )
        sigma_data = None if preconditioning is None else float(preconditioning["sigma_data"])
        stems = tuple(description["stems"])
        sample_rate, length = description["sample_rate"], description["length"]
    except KeyError as error:
        raise ValueError(
            f"{path / PRIOR_FILE} lacks the entry {error} of an audio prior."
        ) from None
    except (TypeError, AttributeError) as error:
        raise ValueError(
            f"{path / PRIOR_FILE} is a malformed audio-prior description: {error}"
        ) from None
    for name, value in (("sample_rate", sample_rate), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{path / PRIOR_FILE}: {name} must be a positive integer; got {value!r}."
            )
    if network_config.in_channels != len(stems) or length % network_config.total_factor:
        raise ValueError(
            f"{path / PRIOR_FILE}: a network of {network_config.in_channels} channels and total "
            f"downsampling {network_config.total_factor} does not fit {len(stems)} stems of "
            f"{length} samples."
        )
    network: UNet1D | PreconditionedUNet1D = UNet1D(network_config)
    if sigma_data is not None:
        network = PreconditionedUNet1D(network, sigma_data)
    try:
        weights = read_state_dict(path / MODEL_FILE)
    except FileNotFoundError:
        raise ValueError(f"{path} has {PRIOR_FILE} but no {MODEL_FILE}.") from None
    broken = [name for name, value in weights.items() if not bool(torch.isfinite(value).all())]
    if broken:
        raise ValueError(
            f"{path / MODEL_FILE} holds non-finite weights (NaN or inf) in {len(broken)} tensors "
            f"({', '.join(broken[:3])}{', …' if len(broken) > 3 else ''}): the training diverged "
            "or the file is damaged; use another checkpoint."
        )
    load_state_dict_checked(network, weights, str(path / MODEL_FILE))
    return AudioPrior(network.to(device), stems, sample_rate, length)
