"""PnP-DM: plug-and-play diffusion prior by split Gibbs sampling (Wu et al., arXiv 2405.18782),
as the MGDM Reference runs it (docs/algorithms/pnpdm.md), with the official coupling sign by default.

Target of the split Gibbs sampler at coupling ``rho``:
``pi_rho(x, z) ∝ p(x) N(z; x, rho^2 I) exp(-||y - A z||^2 / (2 sigma_y^2))``. Starting from
``x ~ N(0, I)``, for ``k = 0 … num_iterations - 1`` with ``rho_k = max(rho_0 decay^k, rho_min)``:

1. Likelihood step, ``z ~ pi(z | x, y) ∝ exp(-||y - A z||^2 / (2 sigma_y^2) - ||z - x||^2 / (2 rho_k^2))``.

   * Exact, for an operator with an SVD ``A = U diag(s) V^T`` (``x̄ = V^T x``, ``ȳ = U^T y``),
     per spectral coordinate with ``q_i = s_i^2 / sigma_y^2 + 1 / rho_k^2`` (``s_i = 0`` on the
     null space)::

         z̄_i = (s_i ȳ_i / sigma_y^2 + x̄_i / rho_k^2) / q_i + q_i^{-1/2} ξ_i,   z = V z̄

   * Otherwise (or with ``force_langevin``), ``langevin_steps`` Langevin steps started at ``x``::

         z <- z - gamma grad ||y - A(z)||^2 / (2 sigma_y^2) - (gamma / rho_k^2)(z - x) + sqrt(2 gamma) ξ

     (official PnP-DM, ``pnpdm/tasks/phase_retrieval.py``). ``reference_quirks=True`` reproduces
     the MGDM Reference instead: the coupling term with the opposite sign,
     ``+ (gamma / rho_0^2)(z - x)``, and ``rho_0`` in place of ``rho_k``.

2. Prior step, ``x ~ p(x | z)`` with ``z`` seen as a noisy image at level ``rho_k``: the reverse
   VE SDE of EDM (``sigma(t) = sqrt(t)``, Euler–Maruyama in ``t = sigma^2``) on the geometric grid
   ``sigma_0 = sigma_max > … > sigma_{L-1} = sigma_min`` of ``num_levels`` levels, plus
   ``sigma_L = 0``, started from ``x = z`` at the first level below ``rho_k`` (``j_0 = min{j:
   sigma_j < rho_k}``)::

       x <- x + (1 - sigma_{j+1}^2 / sigma_j^2)(D(x; sigma_j) - x) + sqrt(sigma_j^2 - sigma_{j+1}^2) ξ

   for ``j = j_0 … L-1``, without noise at the last step (which returns ``D(x; sigma_{L-1})``).

The output is the last ``x``. ``D(x; sigma)`` is the VP prior seen as an EDM denoiser, ``sigma``
rounded to the prior's schedule (:class:`mgdm.priors.edm.EDMDenoiser`).

Cost per sample: ``sum_k #{j: sigma_j < rho_k}`` forward network calls (3,848 with the Reference
values; 4,287 with phase retrieval's decay and ``rho_min``), no VJP, plus
``num_iterations * langevin_steps`` operator gradients when the likelihood step is Langevin.

Tensor shapes: ``x``, ``z`` are ``[B, *sample_shape]``; spectral vectors ``[B, n]`` with ``n`` the
input size; levels are Python floats shared by the batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.priors.base import Denoiser
from mgdm.priors.edm import EDMDenoiser, check_sigma_range, geometric_sigmas
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import Spectral, check_real, require_gaussian_noise
from mgdm.samplers._langevin import check_count, check_finite_run, check_positive, langevin
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import TASK_NAMES, Domain, SamplerConfig, Values

TASK_DEFAULTS: dict[str, dict[str, float]] = {task: {} for task in TASK_NAMES}
TASK_DEFAULTS["phase_retrieval"] = {"decay": 0.95, "rho_min": 0.1}
TASK_DEFAULTS["box_inpainting"] = {"force_langevin": True}
TASK_DEFAULTS["half_mask"] = {"force_langevin": True}
"""Reference values per image task (docs/algorithms/pnpdm.md): phase retrieval anneals more slowly to a
smaller ``rho_min``; every in/outpainting task forces the Langevin likelihood step although its
operator has an SVD."""

AUDIO_DEFAULTS: dict[str, float | bool] = {
    "rho_min": 1e-3,
    "force_langevin": True,
    "langevin_step_size": 1e-9,
    "sigma_max": 20.0,
    "sigma_min": 5e-4,
}
"""The Reference's audio settings (docs/algorithms/README.md §5). The VE grid spans the audio
prior's sigma range (5e-4 … 20, :func:`mgdm.audio.prior.msdm_schedule`): the Reference gives only
``rho_min``, and the image grid's ``sigma_min = 0.02`` would exceed ``rho_min = 1e-3``."""


@dataclass(frozen=True)
class PnPDMConfig(SamplerConfig):
    """Hyperparameters of PnP-DM. Field defaults are the Reference's image configuration.

    Attributes:
        num_iterations: outer Gibbs iterations (likelihood step + prior step).
        rho_0: initial coupling std ``rho_0``.
        decay: ``rho_k = max(rho_0 decay^k, rho_min)``.
        rho_min: floor of the coupling std (must exceed ``sigma_min``, or the prior step is empty).
        num_levels: positive levels of the geometric prior-step grid.
        sigma_max, sigma_min: first and last positive level of that grid.
        force_langevin: use Langevin for the likelihood step even when the operator has an SVD.
        langevin_steps: Langevin steps per likelihood step.
        langevin_step_size: the Langevin step ``gamma``.
        reference_quirks: reproduce the MGDM Reference's Langevin (coupling sign flipped, ``rho_0``
            instead of ``rho_k``); the exact likelihood step is unaffected.
    """

    task_defaults = TASK_DEFAULTS
    domain_defaults: ClassVar[Mapping[Domain, Values]] = {"audio": AUDIO_DEFAULTS}

    num_iterations: int = 99
    rho_0: float = 10.0
    decay: float = 0.9
    rho_min: float = 0.3
    num_levels: int = 99
    sigma_max: float = 100.0
    sigma_min: float = 0.02
    force_langevin: bool = False
    langevin_steps: int = 100
    langevin_step_size: float = 1e-4
    reference_quirks: bool = False

    def __post_init__(self) -> None:
        check_count("PnP-DM", "num_iterations", self.num_iterations, 1)
        check_count("PnP-DM", "num_levels", self.num_levels, 1)
        check_count("PnP-DM", "langevin_steps", self.langevin_steps, 0)
        for name in ("rho_0", "rho_min", "sigma_max", "sigma_min", "langevin_step_size", "decay"):
            check_positive("PnP-DM", name, getattr(self, name))
        check_real("PnP-DM", "decay", self.decay, 0.0, 1.0)
        if not self.sigma_min < self.rho_min <= self.rho_0:
            raise ValueError(
                "PnP-DM needs sigma_min < rho_min <= rho_0 (the prior step starts at the first grid "
                f"level below rho_k); got sigma_min = {self.sigma_min!r}, rho_min = {self.rho_min!r}, "
                f"rho_0 = {self.rho_0!r}."
            )
        if not self.sigma_min < self.sigma_max:
            raise ValueError(
                f"PnP-DM needs sigma_min < sigma_max; got {self.sigma_min!r} and {self.sigma_max!r}."
            )
        for name in ("force_langevin", "reference_quirks"):
            if type(getattr(self, name)) is not bool:
                raise ValueError(
                    f"PnP-DM {name} must be True or False; got {getattr(self, name)!r}."
                )

    def rho(self, k: int) -> float:
        """The coupling std of iteration ``k``, ``max(rho_0 decay^k, rho_min)``."""
        return max(self.rho_0 * self.decay**k, self.rho_min)

    def prior_levels(self) -> Tensor:
        """The prior-step grid ``sigma_0 … sigma_{L-1}`` and the terminal 0; float64 ``[L + 1]``."""
        levels = geometric_sigmas(self.num_levels, self.sigma_max, self.sigma_min)
        return torch.cat([levels, levels.new_zeros(1)])

    def start_index(self, rho: float) -> int:
        """``j_0 = min{j : sigma_j < rho}``, the first grid level below ``rho``."""
        levels = self.prior_levels()[:-1]
        return int(torch.nonzero(levels < rho)[0])

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(sum_k (L - j_0(rho_k)), 0)``."""
        total = sum(
            self.num_levels - self.start_index(self.rho(k)) for k in range(self.num_iterations)
        )
        return total, 0

    def operator_gradients(self, exact_likelihood: bool) -> int:
        """Operator-only gradients per sample: none with the exact step, else one per Langevin step."""
        return 0 if exact_likelihood else self.num_iterations * self.langevin_steps


class PnPDM(Sampler[PnPDMConfig]):
    """The PnP-DM split Gibbs sampler (see the module docstring)."""

    name: ClassVar[str] = "pnpdm"
    config_class: ClassVar[type[SamplerConfig]] = PnPDMConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        require_gaussian_noise("PnP-DM", problem)
        cfg = self.config
        check_sigma_range(
            "PnP-DM", EDMDenoiser(prior), float(cfg.prior_levels()[cfg.start_index(cfg.rho_0)])
        )

    def uses_exact_likelihood(self, problem: Problem) -> bool:
        """Whether the likelihood step is the exact SVD draw (an SVD and no ``force_langevin``)."""
        return problem.operator.svd is not None and not self.config.force_langevin

    def with_budget(self, nfe: float) -> PnPDM:
        """PnP-DM rescaled to about ``nfe`` network calls per sample.

        The cost is about (outer iterations) x (grid levels below ``rho``), so both counts are
        scaled by a common factor ``f = n / num_iterations``: ``num_iterations = n``,
        ``num_levels = max(2, round(f num_levels))``, and ``decay`` becomes ``decay^{1/f}`` so that
        ``rho`` follows the same profile over the run. Of ``n = 1 … 4 num_iterations``, the one
        whose exact count (:meth:`PnPDMConfig.network_calls`) is closest to ``nfe`` is chosen
        (the smaller on ties); ``ValueError`` when ``nfe`` is below the cheapest (one iteration on a
        2-level grid: 1 call).
        """
        if isinstance(nfe, bool) or not isinstance(nfe, (int, float)) or not math.isfinite(nfe):
            raise ValueError(
                f"PnP-DM budget must be a finite number of network calls; got {nfe!r}."
            )
        cfg = self.config
        candidates: list[tuple[int, PnPDMConfig]] = []
        for iterations in range(1, 4 * cfg.num_iterations + 1):
            factor = iterations / cfg.num_iterations
            candidate = replace(
                cfg,
                num_iterations=iterations,
                num_levels=max(2, round(cfg.num_levels * factor)),
                decay=cfg.decay ** (1.0 / factor),
            )
            candidates.append((candidate.network_calls()[0], candidate))
            if candidates[-1][0] > 2 * nfe:
                break
        cheapest = min(cost for cost, _ in candidates)
        if nfe < cheapest:
            raise ValueError(
                f"PnP-DM needs at least {cheapest} network call(s) per sample (one iteration on a "
                f"2-level grid); got a budget of {nfe!r}."
            )
        return PnPDM(min(candidates, key=lambda pair: abs(pair[0] - nfe))[1])

    # ------------------------------------------------------------------ Gibbs steps
    def likelihood_step_exact(
        self, spectral: Spectral, x: Tensor, rho: float, sigma_y: float, noise: SampleNoise
    ) -> Tensor:
        """An exact draw of ``z | x, y`` through the SVD (see the module docstring)."""
        s = spectral.singular_values
        precision = s**2 / sigma_y**2 + 1.0 / rho**2  # [n]
        x_bar = spectral.to_spectral(x)  # [B, n]
        mean = (s * spectral.observation / sigma_y**2 + x_bar / rho**2) / precision
        z_bar = mean + torch.rsqrt(precision) * noise.randn(x_bar.shape[1], dtype=x.dtype)
        return spectral.from_spectral(z_bar)

    def likelihood_step_langevin(
        self, problem: Problem, y: Tensor, x: Tensor, k: int, sigma_y: float, noise: SampleNoise
    ) -> Tensor:
        """``langevin_steps`` Langevin steps on ``z | x, y`` started at ``x``."""
        cfg = self.config
        if cfg.reference_quirks:
            coupling = -1.0 / cfg.rho_0**2
        else:
            coupling = 1.0 / cfg.rho(k) ** 2
        return langevin(
            x,
            x,
            problem.operator,
            y,
            sigma_y,
            coupling,
            cfg.langevin_step_size,
            cfg.langevin_steps,
            noise,
            context=f"PnP-DM likelihood step {k} (rho_k = {cfg.rho(k):.4g})",
        )

    def prior_step(self, edm: EDMDenoiser, z: Tensor, rho: float, noise: SampleNoise) -> Tensor:
        """A draw of ``x | z``: the reverse VE SDE from the first grid level below ``rho`` to 0."""
        cfg = self.config
        levels = cfg.prior_levels().tolist()
        last = len(levels) - 2
        x = z
        with torch.no_grad():
            for j in range(cfg.start_index(rho), last + 1):
                now, nxt = levels[j], levels[j + 1]
                x = x + (1.0 - nxt**2 / now**2) * (edm(x, now) - x)
                if j < last:
                    x = x + math.sqrt(now**2 - nxt**2) * noise.randn(*x.shape[1:], dtype=x.dtype)
        return x

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        cfg = self.config
        edm = EDMDenoiser(prior)
        sigma_y = problem.sigma_y
        x = noise.randn(*prior.sample_shape)
        y = problem.observation_for(x.shape[0], x)
        exact = self.uses_exact_likelihood(problem)
        spectral = Spectral.of(problem.operator.svd, problem, x) if exact else None
        for k in tqdm(range(cfg.num_iterations), desc="PnP-DM", disable=not progress, leave=False):
            rho = cfg.rho(k)
            if spectral is not None:
                z = self.likelihood_step_exact(spectral, x, rho, sigma_y, noise)
            else:
                z = self.likelihood_step_langevin(problem, y, x, k, sigma_y, noise)
            x = self.prior_step(edm, z, rho, noise)
        return check_finite_run(x, "PnP-DM")
