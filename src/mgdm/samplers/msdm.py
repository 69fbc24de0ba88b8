"""MSDM "Dirac" separator (Mariani et al., arXiv 2302.02257; docs/algorithms/msdm.md): source separation
with a multi-source prior and a noise-free mixing constraint.

The stems ``x = (x_1, …, x_S)`` are sampled jointly by the VE probability-flow ODE
``dx/dsigma = (x - D(x; sigma)) / sigma`` on a Karras grid, with the constraint
``sum_s x_s = y`` imposed as a Dirac likelihood: one stem ``c`` is not sampled but set to

    x_c = y - sum_{s != c} x_s                                            (the constraint)

at every evaluation, so the free stems follow the score of ``p(x_{-c}, y - sum x_{-c})``,
``grad_{x_s} = score_s - score_c``. With ``d = (x - D(x; sigma)) / sigma = -sigma score``,
each stem's derivative becomes ``d_s - d_c`` (0 for the constrained stem).

**Sampler** (EDM's stochastic sampler with MSDM's resampling). Levels
``sigma_0 > … > sigma_{N-1}`` on the poly-``rho`` grid from ``sigma_max`` to ``sigma_min``
(:func:`mgdm.priors.edm.karras_sigmas`), ``sigma_N = 0``, ``gamma = min(s_churn / N, sqrt(2) - 1)``.
Start from ``x = sigma_0 xi``; for ``i = 0 … N-1``, ``sigma_hat = (1 + gamma) sigma_i``, repeat
``num_resamples`` times::

    x <- x + sqrt(sigma_hat^2 - sigma_i^2) xi                     (churn)
    x <- constraint(x);  d = (x - D(x; sigma_hat)) / sigma_hat;  d <- d - d_c
    x <- x + (sigma_{i+1} - sigma_hat) d                          (Euler step)
    x <- x + sqrt(sigma_i^2 - sigma_{i+1}^2) xi                   (back to sigma_i, except
                                                                   after the last repeat)

and return ``constraint(x)``: the stems sum to the mixture exactly. (MSDM's published code
returns the state after the last Euler step, whose free stems moved after the constraint was
imposed; the final projection is ours, so the output lies on ``{sum_s x_s = y}`` as the Dirac
posterior does.) The observation noise of the problem is ignored: the constraint is noise-free.

``D(x; sigma)`` is the VP prior seen as an EDM denoiser, ``sigma`` rounded to the prior's
schedule (:class:`mgdm.priors.edm.EDMDenoiser`); MSDM uses its VE network directly.

Defaults: MSDM's separation settings (``exp/eval_msdm_dirac.yaml``: 150 steps, ``s_churn = 20``,
2 resamples, constrained stem 0; the grid ``sigma_min = 1e-4``, ``sigma_max = 1``, ``rho = 7``
of ``evaluation/experiments.py``).

Cost per sample: ``N * num_resamples`` forward network calls (300 with the defaults), no VJP.

Tensor shapes: ``x`` ``[B, S, L]``, the mixture ``y`` ``[B, L]``; levels are Python floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.operators.mixing import Mixing
from mgdm.priors.base import Denoiser
from mgdm.priors.edm import EDMDenoiser, check_sigma_range, karras_sigmas
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import check_real
from mgdm.samplers._langevin import check_count, check_positive
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import SamplerConfig


@dataclass(frozen=True)
class MSDMConfig(SamplerConfig):
    """Hyperparameters of the MSDM Dirac separator. Defaults: MSDM's separation settings.

    Attributes:
        num_steps: N, noise levels of the grid (Euler steps; the last one goes to 0).
        sigma_max: first level (the initial state is ``sigma_max`` times white noise).
        sigma_min: last positive level.
        rho: exponent of the poly grid.
        s_churn: noise injection, ``gamma = min(s_churn / N, sqrt(2) - 1)`` (0: a pure ODE).
        num_resamples: evaluations per level (each one network call).
        constrained_stem: index ``c`` of the stem set to ``y - sum_{s != c} x_s``.
    """

    num_steps: int = 150
    sigma_max: float = 1.0
    sigma_min: float = 1e-4
    rho: float = 7.0
    s_churn: float = 20.0
    num_resamples: int = 2
    constrained_stem: int = 0

    def __post_init__(self) -> None:
        check_count("MSDM", "num_steps", self.num_steps, 1)
        check_count("MSDM", "num_resamples", self.num_resamples, 1)
        check_count("MSDM", "constrained_stem", self.constrained_stem, 0)
        for name in ("sigma_max", "sigma_min", "rho"):
            check_positive("MSDM", name, getattr(self, name))
        check_real("MSDM", "s_churn", self.s_churn, 0.0)
        if not self.sigma_min <= self.sigma_max:
            raise ValueError(
                f"MSDM needs sigma_min <= sigma_max; got {self.sigma_min!r}, {self.sigma_max!r}."
            )

    @property
    def gamma(self) -> float:
        """The churn factor ``min(s_churn / N, sqrt(2) - 1)``."""
        return min(self.s_churn / self.num_steps, math.sqrt(2.0) - 1.0)

    def sigmas(self) -> Tensor:
        """``sigma_0 … sigma_{N-1}`` followed by ``sigma_N = 0``; float64 ``[N + 1]``."""
        levels = karras_sigmas(self.num_steps, self.sigma_max, self.sigma_min, self.rho)
        return torch.cat([levels, levels.new_zeros(1)])

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(N * num_resamples, 0)``."""
        return self.num_steps * self.num_resamples, 0


class MSDM(Sampler[MSDMConfig]):
    """The MSDM Dirac separator (see the module docstring); needs a :class:`Mixing` operator."""

    name: ClassVar[str] = "msdm"
    config_class: ClassVar[type[SamplerConfig]] = MSDMConfig
    domains: ClassVar[tuple[str, ...]] = ("audio",)

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        operator = problem.operator
        if not isinstance(operator, Mixing):
            raise ValueError(  # noqa: TRY004 - check_compatible's contract is ValueError
                "MSDM's Dirac separator samples stems that sum to a mixture: it needs the Mixing "
                f"operator (mgdm.operators.mixing.Mixing); the problem has {type(operator).__name__}."
            )
        if self.config.constrained_stem >= operator.num_stems:
            raise ValueError(
                f"MSDM constrained_stem = {self.config.constrained_stem} is out of range for "
                f"{operator.num_stems} stems; accepted: 0 … {operator.num_stems - 1}."
            )
        check_sigma_range(
            "MSDM", EDMDenoiser(prior), (1.0 + self.config.gamma) * self.config.sigma_max
        )

    def with_budget(self, nfe: float) -> MSDM:
        """MSDM with ``N = round(nfe / num_resamples)`` levels (``N * num_resamples`` calls)."""
        if isinstance(nfe, bool) or not isinstance(nfe, (int, float)) or not math.isfinite(nfe):
            raise ValueError(f"MSDM budget must be a finite number of network calls; got {nfe!r}.")
        resamples = self.config.num_resamples
        steps = round(nfe / resamples)
        if steps < 1:
            raise ValueError(
                f"MSDM needs at least {resamples} network calls per sample (one level x "
                f"{resamples} resamples); got a budget of {nfe!r}."
            )
        return MSDM(replace(self.config, num_steps=steps))

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        cfg = self.config
        edm = EDMDenoiser(prior)
        sigmas = cfg.sigmas().tolist()
        x = sigmas[0] * noise.randn(*prior.sample_shape)
        y = problem.observation_for(x.shape[0], x)
        for i in tqdm(range(cfg.num_steps), desc="MSDM", disable=not progress, leave=False):
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            sigma_hat = (1.0 + cfg.gamma) * sigma
            for repeat in range(cfg.num_resamples):
                x = x + math.sqrt(sigma_hat**2 - sigma**2) * noise.randn(
                    *x.shape[1:], dtype=x.dtype
                )
                x = self.constrain(x, y)
                with torch.no_grad():
                    d = (x - edm(x, sigma_hat)) / sigma_hat
                d = d - d[:, cfg.constrained_stem : cfg.constrained_stem + 1]
                x = x + (sigma_next - sigma_hat) * d
                if repeat < cfg.num_resamples - 1:
                    renoise = math.sqrt(sigma**2 - sigma_next**2)
                    x = x + renoise * noise.randn(*x.shape[1:], dtype=x.dtype)
        return self.constrain(x, y)

    def constrain(self, x: Tensor, y: Tensor) -> Tensor:
        """``x`` with stem ``c`` replaced by ``y - sum_{s != c} x_s``: ``[B, S, L]``."""
        c = self.config.constrained_stem
        others = x.sum(dim=1) - x[:, c]
        out = x.clone()
        out[:, c] = y - others
        return out
