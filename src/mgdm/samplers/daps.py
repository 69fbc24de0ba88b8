"""DAPS: decoupled annealing posterior sampling (Zhang et al., arXiv 2407.01521), as the MGDM
Reference runs it (docs/algorithms/daps.md).

Annealing levels ``sigma_0 > … > sigma_{N-1}`` on the poly-7 grid from ``sigma_max`` to
``sigma_min`` (:func:`mgdm.priors.edm.karras_sigmas`) and ``sigma_N = 0``. Starting from
``x ~ sigma_max N(0, I)``, for ``i = 0 … N-1``::

    (1) x̂0 = PF-ODE from sigma_i: Euler steps on the poly-7 grid of ``ode_steps`` levels from
        sigma_i down to ``ode_sigma_min``, then to 0,
            x <- x + (s_j - s_{j+1}) / s_j (D(x; s_j) - x)
        (the last step, to 0, returns D(x; ode_sigma_min));
    (2) Langevin on x0, started at x̂0, ``langevin_steps`` times with step
        eta_i = lr (1 + (i / N)(lr_min_ratio - 1)):
            x0 <- x0 - eta_i grad[ ||y - A(x0)||^2 / (2 tau^2) + ||x0 - x̂0||^2 / (2 sigma_i^2) ]
                  + sqrt(2 eta_i) xi
    (3) x <- x0 + sigma_{i+1} xi.

The output is ``x``, which equals the last ``x0`` since ``sigma_N = 0``. ``D(x; sigma)`` is the
VP prior seen as an EDM denoiser, with ``sigma`` rounded to the prior's schedule
(:class:`mgdm.priors.edm.EDMDenoiser`; the Reference uses a continuous VP time instead).

``tau`` is the likelihood std used inside Langevin; the Reference keeps DAPS's sharp 0.01, not the
problem's ``sigma_y``. ``tau = None`` uses the problem's ``sigma_y`` (the posterior DAPS targets
is then the problem's posterior: used on the exact-posterior benchmark).

Divergence: when the Langevin chain produces NaN or inf the Reference returns zeros; this
implementation raises ``FloatingPointError`` naming the annealing step, its level and the step
size, and returns nothing.

Cost per sample: ``N * ode_steps`` forward network calls (1000 for the Reference's 200 x 5), no
VJP, and ``N * langevin_steps`` operator gradients (10,000).

Tensor shapes: ``x``, ``x̂0``, ``x0`` are ``[B, *sample_shape]``; levels are Python floats shared
by the batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.priors.base import Denoiser
from mgdm.priors.edm import EDMDenoiser, check_sigma_range, karras_sigmas
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import require_gaussian_noise, require_svd
from mgdm.samplers._langevin import check_count, check_finite_run, check_positive, langevin
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import Domain, SamplerConfig, Values

TASK_DEFAULTS: dict[str, dict[str, float]] = {
    "sr4": {"lr": 1e-4},
    "sr16": {"lr": 1e-4},
    "box_inpainting": {"lr": 5e-5},
    "half_mask": {"lr": 5e-5},
    "gaussian_blur": {"lr": 5e-5},
    "motion_blur": {"lr": 5e-5},
    "jpeg": {"lr": 5e-5},
    "phase_retrieval": {"lr": 5e-5},
    "nonlinear_blur": {"lr": 5e-5},
    "hdr": {"lr": 2e-5},
}
"""Reference Langevin learning rate per image task (docs/algorithms/daps.md); Gaussian blur and JPEG are
not listed there and take the default 5e-5."""

AUDIO_DEFAULTS: dict[str, float] = {
    "sigma_max": 20.0,
    "sigma_min": 1e-3,
    "ode_sigma_min": 1e-4,
    "lr": 1e-5,
    "tau": 0.005,
    "lr_min_ratio": 1e-3,
}
"""The Reference's audio settings (VE denoiser; docs/algorithms/README.md §5)."""


MIN_ANNEALING_STEPS = 2
"""The poly-7 annealing grid needs two levels (``sigma_max`` and ``sigma_min``)."""


@dataclass(frozen=True)
class DAPSConfig(SamplerConfig):
    """Hyperparameters of DAPS. Field defaults are the Reference's image configuration.

    Attributes:
        annealing_steps: N, annealing levels (poly-7 from ``sigma_max`` to ``sigma_min``).
        ode_steps: Euler steps (network calls) of the inner probability-flow ODE.
        langevin_steps: Langevin steps on ``x0`` per annealing level.
        sigma_max: first annealing level (also the std of the initial state).
        sigma_min: last positive annealing level.
        ode_sigma_min: last positive level of each inner ODE grid (``< sigma_min``).
        rho: exponent of the poly grids (7).
        lr: Langevin step size at ``i = 0``, in the units of ``x`` squared.
        lr_min_ratio: ratio of the last step size to ``lr`` (linear decay in ``i``).
        tau: likelihood std inside Langevin, in the units of ``A(x)`` for ``x`` in ``[-1, 1]``;
            ``None``: the problem's ``sigma_y`` (needs Gaussian noise).
    """

    task_defaults = TASK_DEFAULTS
    domain_defaults: ClassVar[Mapping[Domain, Values]] = {"audio": AUDIO_DEFAULTS}

    annealing_steps: int = 200
    ode_steps: int = 5
    langevin_steps: int = 50
    sigma_max: float = 100.0
    sigma_min: float = 0.1
    ode_sigma_min: float = 0.01
    rho: float = 7.0
    lr: float = 5e-5
    lr_min_ratio: float = 0.01
    tau: float | None = 0.01

    def __post_init__(self) -> None:
        check_count("DAPS", "annealing_steps", self.annealing_steps, MIN_ANNEALING_STEPS)
        check_count("DAPS", "ode_steps", self.ode_steps, 1)
        check_count("DAPS", "langevin_steps", self.langevin_steps, 0)
        for name in ("sigma_max", "sigma_min", "ode_sigma_min", "rho", "lr", "lr_min_ratio"):
            check_positive("DAPS", name, getattr(self, name))
        if not self.ode_sigma_min < self.sigma_min < self.sigma_max:
            raise ValueError(
                "DAPS noise levels must satisfy ode_sigma_min < sigma_min < sigma_max; got "
                f"{self.ode_sigma_min!r}, {self.sigma_min!r}, {self.sigma_max!r}."
            )
        if self.tau is not None:
            check_positive("DAPS", "tau (or None for the problem's sigma_y)", self.tau)

    def annealing_sigmas(self) -> Tensor:
        """``sigma_0 … sigma_{N-1}`` followed by ``sigma_N = 0``; float64 ``[N + 1]``."""
        levels = karras_sigmas(self.annealing_steps, self.sigma_max, self.sigma_min, self.rho)
        return torch.cat([levels, levels.new_zeros(1)])

    def ode_sigmas(self, sigma: float) -> Tensor:
        """The inner ODE grid from ``sigma``: ``ode_steps`` poly levels down to ``ode_sigma_min``,
        then 0; float64 ``[ode_steps + 1]``."""
        levels = karras_sigmas(self.ode_steps, sigma, self.ode_sigma_min, self.rho)
        return torch.cat([levels, levels.new_zeros(1)])

    def step_size(self, i: int) -> float:
        """Langevin step ``eta_i = lr (1 + (i / N)(lr_min_ratio - 1))``."""
        return self.lr * (1.0 + (i / self.annealing_steps) * (self.lr_min_ratio - 1.0))

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` network calls per sample: ``(N * ode_steps, 0)``."""
        return self.annealing_steps * self.ode_steps, 0

    def for_problem(self, domain: Domain, problem: Problem) -> DAPSConfig:
        """On the Gaussian-mixture benchmark (``gmm``), this configuration with settings that
        transfer to its scale; unchanged in other domains.

        The image defaults are in pixel units of ``[-1, 1]`` images (Langevin likelihood std
        ``tau = 0.01``, step ``lr = 5e-5``); on mixtures whose modes lie 8-16 apart, observed
        with ``sigma_y`` of order 0.1-1, that step leaves the Langevin chain frozen. Here ``tau``
        is the problem's ``sigma_y`` (``None``) and ``lr = 0.5 sigma_y^2 / s_max^2`` (``s_max``
        the largest singular value of A): the same step x curvature (0.5) as the image default
        gives for inpainting. ``ValueError`` without an SVD or Gaussian noise.
        """
        if domain != "gmm":
            return self
        s_max = float(require_svd("DAPS", problem.operator).singular_values.max())
        sigma_y = require_gaussian_noise("DAPS", problem)
        return replace(self, tau=None, lr=0.5 * sigma_y**2 / s_max**2)

    def operator_gradients(self) -> int:
        """Operator-only gradients per sample, ``N * langevin_steps``."""
        return self.annealing_steps * self.langevin_steps


class DAPS(Sampler[DAPSConfig]):
    """The DAPS posterior sampler (see the module docstring)."""

    name: ClassVar[str] = "daps"
    config_class: ClassVar[type[SamplerConfig]] = DAPSConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        if self.config.tau is None:
            require_gaussian_noise("DAPS (tau=None)", problem)
        check_sigma_range("DAPS", EDMDenoiser(prior), self.config.sigma_max)

    def with_budget(self, nfe: float) -> DAPS:
        """DAPS with ``N = round(nfe / ode_steps)`` annealing levels (``N * ode_steps`` calls)."""
        if isinstance(nfe, bool) or not isinstance(nfe, (int, float)) or not math.isfinite(nfe):
            raise ValueError(f"DAPS budget must be a finite number of network calls; got {nfe!r}.")
        levels = round(nfe / self.config.ode_steps)
        if levels < MIN_ANNEALING_STEPS:
            raise ValueError(
                f"DAPS needs at least {MIN_ANNEALING_STEPS * self.config.ode_steps} network calls per "
                f"sample ({MIN_ANNEALING_STEPS} annealing levels x {self.config.ode_steps} ODE steps); "
                f"got a budget of {nfe!r}."
            )
        return DAPS(replace(self.config, annealing_steps=levels))

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        cfg = self.config
        edm = EDMDenoiser(prior)
        tau = problem.sigma_y if cfg.tau is None else cfg.tau
        sigmas = cfg.annealing_sigmas().tolist()
        x = cfg.sigma_max * noise.randn(*prior.sample_shape)
        y = problem.observation_for(x.shape[0], x)
        for i in tqdm(range(cfg.annealing_steps), desc="DAPS", disable=not progress, leave=False):
            sigma = sigmas[i]
            x0_hat = self.probability_flow(edm, x, sigma)
            step = cfg.step_size(i)
            x0 = langevin(
                x0_hat,
                x0_hat,
                problem.operator,
                y,
                tau,
                1.0 / sigma**2,
                step,
                cfg.langevin_steps,
                noise,
                context=f"DAPS annealing step {i} (sigma_i = {sigma:.4g})",
            )
            x = x0 + sigmas[i + 1] * noise.randn(*x0.shape[1:], dtype=x0.dtype)
        return check_finite_run(x, "DAPS")

    def probability_flow(self, edm: EDMDenoiser, x: Tensor, sigma: float) -> Tensor:
        """``x̂0``: Euler steps of the probability-flow ODE from level ``sigma`` to 0 (no gradient)."""
        levels = self.config.ode_sigmas(sigma).tolist()
        with torch.no_grad():
            for now, nxt in itertools.pairwise(levels):
                x = x + (now - nxt) / now * (edm(x, now) - x)
        return x
