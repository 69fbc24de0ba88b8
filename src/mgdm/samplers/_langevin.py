"""Operator-only gradients, the Langevin chain and the configuration checks shared by RED-diff,
DAPS and PnP-DM.

These methods differentiate the data-fit term ``||y - A(x)||^2`` through the operator only
(never through the network), so none of this is counted as a network evaluation; the samplers
report these operator gradients separately (docs/algorithms/README.md §3).

Tensor shapes: states ``[B, *input_shape]``; the observation ``y`` broadcast to
``[B, *output_shape]``. Every function is separable over the batch: row ``b`` of the result
depends only on row ``b`` of the inputs and on sample ``b``'s noise stream.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.devices import is_host
from mgdm.operators.base import Operator
from mgdm.random import SampleNoise
from mgdm.samplers._common import check_real


def check_count(method: str, name: str, value: int, minimum: int) -> None:
    """``ValueError`` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    if type(value) is not int or value < minimum:
        raise ValueError(
            f"{method} {name} = {value!r} is out of range; accepted: an integer >= {minimum}."
        )


def check_positive(method: str, name: str, value: float) -> None:
    """``ValueError`` unless ``value`` is a finite real number ``> 0``."""
    check_real(method, name, value, 0.0)
    if value <= 0:
        raise ValueError(f"{method} {name} must be > 0; got {value!r}.")


def data_fit_gradient(operator: Operator, y: Tensor, x: Tensor, weight: float) -> Tensor:
    """``grad_x (weight / 2) ||y - A(x)||^2`` per sample (autograd through ``A``; one operator VJP).

    Args:
        operator: the forward map ``A``.
        y: the observation, ``[B, *output_shape]``.
        x: the point, ``[B, *input_shape]`` (not modified; its graph is not kept).
        weight: the factor in front of the half squared residual (``1 / sigma^2`` for a Gaussian
            likelihood with std ``sigma``).
    Returns:
        the gradient, ``[B, *input_shape]``, detached.
    """
    z = x.detach().requires_grad_(True)
    with torch.enable_grad():
        residual = y - operator(z)
        (grad,) = torch.autograd.grad(0.5 * (residual**2).sum(), z)
    return weight * grad


def langevin(
    z: Tensor,
    anchor: Tensor,
    operator: Operator,
    y: Tensor,
    likelihood_std: float,
    coupling_precision: float,
    step_size: float,
    num_steps: int,
    noise: SampleNoise,
    context: str,
) -> Tensor:
    """Unadjusted Langevin on ``U(z) = ||y - A(z)||^2 / (2 s^2) + c ||z - anchor||^2 / 2``::

        z <- z - gamma grad_z ||y - A(z)||^2 / (2 s^2) - gamma c (z - anchor) + sqrt(2 gamma) xi

    with ``s = likelihood_std``, ``c = coupling_precision`` (``1 / std^2`` of the Gaussian tie to
    ``anchor``), ``gamma = step_size`` and ``xi ~ N(0, I)`` drawn from ``noise``, ``num_steps`` times.
    A negative ``c`` flips the sign of the coupling term (PnP-DM's Reference quirk, docs/algorithms/pnpdm.md).

    Args:
        z: the starting point, ``[B, *input_shape]``.
        anchor: the centre of the Gaussian tie, same shape.
        y: the observation, ``[B, *output_shape]``.
        context: names the caller in the error raised when the chain diverges.
    Returns:
        the last state, ``[B, *input_shape]``.
    Raises:
        FloatingPointError: (CPU tensors; on an accelerator the caller checks once per run with
            :func:`check_finite_run`) when the chain produces non-finite values (step size too large for
            the curvature ``max s_i^2 / s^2 + c`` of the potential). Nothing is replaced silently.
    """
    for _ in range(num_steps):
        drift = data_fit_gradient(operator, y, z, 1.0 / likelihood_std**2)
        drift = drift + coupling_precision * (z - anchor)
        z = (
            z
            - step_size * drift
            + (2.0 * step_size) ** 0.5 * noise.randn(*z.shape[1:], dtype=z.dtype)
        )
    if is_host(z) and not bool(torch.isfinite(z).all()):
        raise FloatingPointError(
            f"{context}: the Langevin chain diverged (non-finite values) with step size {step_size:.3g}, "
            f"likelihood std {likelihood_std:.3g} and coupling precision {coupling_precision:.3g}. "
            "The step must stay below about 2 / (max_i s_i^2 / std^2 + coupling precision); lower the "
            "step size (learning rate)."
        )
    return z


def check_finite_run(samples: Tensor, method: str) -> Tensor:
    """``samples`` of a run of ``method`` whose Langevin chains ran on an accelerator, where
    :func:`langevin` does not check each chain (that would make every step wait for the device):
    one check per run, ``FloatingPointError`` for non-finite values. CPU runs were checked per
    chain already."""
    if not is_host(samples) and not bool(torch.isfinite(samples).all()):
        raise FloatingPointError(
            f"{method}: a Langevin chain diverged (non-finite samples on {samples.device}; on an "
            "accelerator this is checked once per run); lower the step size (learning rate)."
        )
    return samples
