"""Conversions between the Tweedie denoiser, the epsilon prediction and the score.

For ``x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps`` (VP):

* ``x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar)``
* ``eps_hat = (x_t - sqrt(abar) x0_hat) / sqrt(1 - abar)``
* ``score = -eps_hat / sqrt(1 - abar) = (sqrt(abar) x0_hat - x_t) / (1 - abar)``

``abar`` is a tensor of shape ``[B]`` (one value per sample) or a scalar; it is broadcast over
the trailing dimensions of ``x``. Arithmetic happens in the dtype of ``x``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample scalars ``[B]`` (or a 0-d scalar) to broadcast against ``like``, in
    ``like``'s dtype.

    A 0-d CPU scalar stays on the CPU (torch broadcasts CPU scalars into any device's
    arithmetic, with no copy); per-sample values from the CPU are copied to ``like``'s device
    without making the host wait. Either way no sampling step synchronises with the device.
    """
    values = torch.as_tensor(values)
    if values.dim() == 0 and values.device.type == "cpu":
        return values.to(like.dtype)
    values = values.to(like.device, non_blocking=True).to(like.dtype)
    if values.dim() == 0:
        return values
    return values.reshape(values.shape[0], *([1] * (like.dim() - 1)))


def eps_to_x0(x_t: Tensor, eps: Tensor, abar: Tensor) -> Tensor:
    a = per_sample(abar, x_t)
    return (x_t - torch.sqrt(1 - a) * eps) / torch.sqrt(a)


def x0_to_eps(x_t: Tensor, x0: Tensor, abar: Tensor) -> Tensor:
    a = per_sample(abar, x_t)
    return (x_t - torch.sqrt(a) * x0) / torch.sqrt(1 - a)


def x0_to_score(x_t: Tensor, x0: Tensor, abar: Tensor) -> Tensor:
    a = per_sample(abar, x_t)
    return (torch.sqrt(a) * x0 - x_t) / (1 - a)


def score_to_x0(x_t: Tensor, score: Tensor, abar: Tensor) -> Tensor:
    a = per_sample(abar, x_t)
    return (x_t + (1 - a) * score) / torch.sqrt(a)


def eps_to_score(eps: Tensor, abar: Tensor) -> Tensor:
    return -eps / torch.sqrt(1 - per_sample(abar, eps))


def v_to_eps(x_t: Tensor, v: Tensor, abar: Tensor) -> Tensor:
    """v-prediction ``v = sqrt(abar) eps - sqrt(1 - abar) x_0`` to epsilon."""
    a = per_sample(abar, x_t)
    return torch.sqrt(a) * v + torch.sqrt(1 - a) * x_t
