"""Sliced Wasserstein-1 distance between two empirical distributions.

``SW(X, Y) = (1/L) sum_l W_1(theta_l^T X, theta_l^T Y)`` with ``L`` directions
``theta_l = g_l / ||g_l||``, ``g_l ~ N(0, I_d)`` drawn from a given seed. The 1-D ``W_1`` is
exact: ``∫ |F_X(z) - F_Y(z)| dz`` over the merged sorted projections (equal sizes reduce to the
mean absolute difference of the sorted projections).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.random import torch_generator


def wasserstein_1d(a: Tensor, b: Tensor) -> Tensor:
    """Exact W1 between empirical measures, column by column: ``a`` ``[n, L]``, ``b`` ``[m, L]`` -> ``[L]``."""
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return (torch.sort(a, dim=0).values - torch.sort(b, dim=0).values).abs().mean(0)
    values = torch.cat([a, b], dim=0)
    order = torch.argsort(values, dim=0)
    sorted_values = torch.gather(values, 0, order)
    steps = torch.where(order < n, 1.0 / n, -1.0 / m).to(values.dtype)
    cdf_gap = torch.cumsum(steps, dim=0)[:-1]
    widths = sorted_values[1:] - sorted_values[:-1]
    return (cdf_gap.abs() * widths).sum(0)


def random_directions(
    dim: int, count: int, seed: int, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``count`` unit vectors in ``R^dim`` from ``seed``; ``[dim, count]``."""
    g = torch.randn(dim, count, generator=torch_generator(seed), dtype=dtype)
    return g / g.norm(dim=0, keepdim=True)


def sliced_wasserstein(x: Tensor, y: Tensor, n_directions: int = 1000, seed: int = 0) -> float:
    """Sliced W1 between sample sets ``x`` ``[n, d]`` and ``y`` ``[m, d]`` (float64 internally)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"expected [n, d] and [m, d] sample sets; got {list(x.shape)} and {list(y.shape)}."
        )
    if n_directions < 1:
        raise ValueError("n_directions must be >= 1.")
    directions = random_directions(x.shape[1], n_directions, seed).to(x.device)
    xp = x.to(torch.float64) @ directions
    yp = y.to(torch.float64) @ directions
    return float(wasserstein_1d(xp, yp).mean())
