"""An inverse problem on images seen from a latent prior: ``y = A(Dec(z)) + noise``.

:class:`DecodedOperator` is the composition ``A ∘ Dec``, an ordinary (non-linear, SVD-free)
:class:`~mgdm.operators.base.Operator` on latents, so that ``Problem(DecodedOperator(A, ae), y,
noise)`` gives ``log g(y | z) = log g(y | A(Dec(z)))`` per sample and every sampler that needs
only ``[A]`` (a differentiable forward map: MGDM, DPS, DAPS, RED-diff, PnP-DM with Langevin) runs
on it unchanged. Samplers that need an SVD or a linear operator (PGDM, DDNM+, DiffPIR) refuse it
through their usual capability checks. The latent-only samplers (PSLD, ReSample) reach the image
operator ``A`` and the autoencoder through :attr:`DecodedOperator.operator` and
:attr:`DecodedOperator.autoencoder`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from mgdm.operators.base import Operator
from mgdm.priors.latent.autoencoder import Autoencoder
from mgdm.problem import Problem

if TYPE_CHECKING:  # the prior builds its problems with latent_problem
    from mgdm.priors.latent.prior import LatentPrior


class DecodedOperator(Operator):
    """``A(Dec(z))``: ``[B, *latent_shape] -> [B, *output_shape]``, differentiable, non-linear.

    Args:
        operator: the image operator ``A`` (``input_shape`` = the decoded image shape).
        autoencoder: the latent prior's autoencoder (its decoder is applied first).
    """

    is_linear = False

    def __init__(self, operator: Operator, autoencoder: Autoencoder):
        if tuple(operator.input_shape) != tuple(autoencoder.image_shape):
            raise ValueError(
                f"the operator takes images of shape {list(operator.input_shape)} but the latent "
                f"prior decodes images of shape {list(autoencoder.image_shape)}."
            )
        self.operator = operator
        self.autoencoder = autoencoder
        self.input_shape = tuple(autoencoder.latent_shape)
        self.output_shape = tuple(operator.output_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.operator(self.autoencoder.decode(x))

    def __repr__(self) -> str:
        return (
            f"DecodedOperator({self.operator!r} ∘ Dec, {self.input_shape} -> {self.output_shape})"
        )


def latent_problem(problem: Problem, prior: LatentPrior) -> Problem:
    """``problem`` (an operator on images) as a problem on ``prior``'s latents: same observation
    and noise model, operator ``A ∘ Dec``."""
    if isinstance(problem.operator, DecodedOperator):
        raise ValueError(  # noqa: TRY004 - an input error, as every problem check
            "the problem is already a latent problem (its operator decodes latents)."
        )
    operator = DecodedOperator(problem.operator, prior.autoencoder)
    return Problem(operator, problem.observation, problem.noise)


def require_latent_problem(method: str, problem: Problem) -> DecodedOperator:
    """The problem's :class:`DecodedOperator`; ``ValueError`` naming ``method`` for any other
    operator (a problem on pixels: build the latent one with :func:`latent_problem`)."""
    operator = problem.operator
    if not isinstance(operator, DecodedOperator):
        raise ValueError(  # noqa: TRY004 - check_compatible's contract is ValueError
            f"{method} samples latent diffusion priors only: it needs a latent problem (operator "
            f"A ∘ Dec, built by mgdm.priors.latent.latent_problem(problem, prior)); the problem has "
            f"{type(operator).__name__}."
        )
    return operator
