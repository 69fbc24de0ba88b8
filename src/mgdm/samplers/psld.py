"""PSLD: posterior sampling with latent diffusion (Rout et al., arXiv 2307.00619), docs/algorithms/latent.md §1.

Latent priors only (:class:`mgdm.priors.latent.LatentPrior` with a problem from
:func:`mgdm.priors.latent.latent_problem`), and the image operator ``A`` must be linear with an adjoint.
``Enc`` and ``Dec`` are the prior's autoencoder. On the grid ``T_j = int(linspace(0, 999, K))[j]``,
for ``j = K-1, …, 2`` with ``t = T_j`` and ``t' = T_{j-1}``::

    ẑ0      = D_t(z_t)                                   (graph kept)
    x̂0      = Dec(ẑ0)
    z'      = DDIM_1(z_t, t -> t') using ẑ0               (DDPM ancestral step)
    L       = omega ||y - A x̂0|| + gamma ||ẑ0 - Enc(A^T y + x̂0 - A^T A x̂0)||   (per sample)
    z_{t'}  = z' - grad_{z_t} L

and the output is the Tweedie estimate ``D_{T_1}(z_{T_1})``, a latent (decode it with
:func:`mgdm.priors.latent.decode_samples`). The norms are unsquared, as in the official code; the second
term ("gluing") pulls ``ẑ0`` towards the encoding of ``x̂0`` with its measured part replaced by
the observation (exact for inpainting, where ``A^T A`` is the mask; computed as
``x̂0 + A^T (y - A x̂0)``, the same by linearity). ``sigma_y`` does not enter
the update. The final step mirrors DPS (:mod:`mgdm.samplers.dps`); the paper leaves it open.

Cost per sample: ``K - 2`` VJPs (forward + backward through the network, the decoder and the
encoder) and one forward call; ``K = 1000`` gives 998 VJPs + 1 forward.

Tensor shapes: ``z_t`` is ``[B, *latent_shape]``, ``x̂0`` ``[B, *image_shape]``, ``L`` and times
``[B]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mgdm.diffusion.bridge import ddim_step
from mgdm.operators.base import LinearOperator
from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.priors.latent.problem import DecodedOperator, require_latent_problem
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers._common import (
    check_num_steps,
    check_real,
    num_steps_for_budget,
    reverse_transitions,
)
from mgdm.samplers.base import CountingDenoiser, Sampler
from mgdm.samplers.settings import SamplerConfig

TASK_DEFAULTS: dict[str, dict[str, float]] = {
    "sr4": {"omega": 0.9},
    "sr16": {"omega": 0.9},
}
"""Reference omega per image task (docs/algorithms/latent.md §1); other tasks use the default 0.1."""

MIN_GRID_POINTS = 3
"""One guided transition ``T_2 -> T_1`` and the final Tweedie at ``T_1``."""


@dataclass(frozen=True)
class PSLDConfig(SamplerConfig):
    """Hyperparameters of PSLD. Field defaults are the Reference's.

    Attributes:
        num_steps: K, points of the grid ``int(linspace(0, 999, K))``: ``K - 2`` guided
            transitions, then a Tweedie estimate at ``T_1``.
        omega: weight of the measurement term ``||y - A Dec(ẑ0)||`` (``>= 0``).
        gamma: weight of the gluing term ``||ẑ0 - Enc(A^T y + (I - A^T A) Dec(ẑ0))||`` (``>= 0``).
    """

    task_defaults = TASK_DEFAULTS

    num_steps: int = 1000
    omega: float = 0.1
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_num_steps("PSLD", self.num_steps, MIN_GRID_POINTS)
        check_real("PSLD", "omega", self.omega, 0.0)
        check_real("PSLD", "gamma", self.gamma, 0.0)

    def network_calls(self) -> tuple[int, int]:
        """``(forward-only, forward+backward)`` calls per sample: ``(1, K - 2)``."""
        return 1, self.num_steps - 2


class PSLD(Sampler[PSLDConfig]):
    """The PSLD posterior sampler for latent priors (see the module docstring)."""

    name: ClassVar[str] = "psld"
    domains: ClassVar[tuple[str, ...]] = ("latent",)
    config_class: ClassVar[type[SamplerConfig]] = PSLDConfig

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        operator = require_latent_problem("PSLD", problem).operator
        if not isinstance(operator, LinearOperator):
            raise ValueError(  # noqa: TRY004 - check_compatible's contract is ValueError
                "PSLD needs a linear image operator with an adjoint (A^T enters its gluing term); "
                f"{type(operator).__name__} is nonlinear. Use resample, dps, mgdm or daps on "
                "latent problems with nonlinear operators."
            )

    def with_budget(self, nfe: float) -> PSLD:
        """PSLD with ``K = round(nfe) + 1`` grid points (``K - 1`` calls), at most 1000."""
        return PSLD(
            replace(self.config, num_steps=num_steps_for_budget("PSLD", nfe, 1, MIN_GRID_POINTS))
        )

    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        decoded = problem.operator
        assert isinstance(decoded, DecodedOperator)  # check_compatible
        transitions = reverse_transitions(self.config.num_steps, last_index=1)
        batch = noise.batch_size
        z_t = prior.initial_state(noise, transitions[0][0]).to(noise.device)
        y = problem.observation_for(batch, z_t)
        for t, t_next in tqdm(transitions, desc="PSLD", disable=not progress, leave=False):
            z0_hat, grad = self.guidance_gradient(prior, decoded, y, z_t, t)
            z_prior = ddim_step(
                prior.schedule, z_t, z0_hat, t, t_next, noise.randn(*z_t.shape[1:], dtype=z_t.dtype)
            )
            z_t = z_prior - grad
        with torch.no_grad():
            return prior.denoise(z_t, as_time_vector(transitions[-1][1], batch, z_t.device))

    def guidance_gradient(
        self, prior: Denoiser, decoded: DecodedOperator, y: Tensor, z_t: Tensor, t: int
    ) -> tuple[Tensor, Tensor]:
        """``(D_t(z_t), grad_{z_t} L)`` with one VJP, ``L`` of the module docstring per sample.

        Args:
            y: the observation broadcast to ``[B, *output_shape]``.
            z_t: the state ``[B, *latent_shape]``.
        Returns:
            the detached Tweedie estimate and the gradient, both ``[B, *latent_shape]``.
        """
        operator, autoencoder = decoded.operator, decoded.autoencoder
        assert isinstance(operator, LinearOperator)  # check_compatible
        batch = z_t.shape[0]
        z = z_t.detach().requires_grad_(True)
        with torch.enable_grad():
            z0_hat = prior.denoise(z, as_time_vector(t, batch, z.device))
            x0_hat = autoencoder.decode(z0_hat)
            measured = operator(x0_hat)
            fit = (y - measured).reshape(batch, -1).norm(dim=1)
            glued = x0_hat + operator.adjoint(y - measured)
            gluing = (z0_hat - autoencoder.encode(glued)).reshape(batch, -1).norm(dim=1)
            loss = self.config.omega * fit + self.config.gamma * gluing
            (grad,) = torch.autograd.grad(loss.sum(), z)
        return z0_hat.detach(), grad
