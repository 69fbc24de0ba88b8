"""The oracle draw of MGDM's first Gibbs conditional, for priors with exact guidance.

MGDM's step 1 draws ``x_ell`` from ``pi(x) ∝ N(x; m, s^2 I) G(x)``, where ``N(m, s^2 I)`` is the
bridge ``Q^1[0->t](x_ell | x_0, x_t)`` and ``G`` the potential (``g(D_ell(x))``, or the exact
``g_ell``); the practical sampler replaces ``pi`` by a diagonal Gaussian fitted with Adam. This
module draws from ``pi`` itself, up to the error of self-normalised importance resampling with
``N`` particles, so that the ladder (docs/algorithms/mgdm.md §12, docs/benchmarks.md §1.6) can measure what
the fit costs.

Proposal (in the spectral coordinates ``z = V^T x`` of the operator ``A = U diag(s) V^T``, where
the Gauss-Newton curvature ``h_j`` of ``-log G`` is diagonal, :meth:`ExactNoisyLikelihood.curvature`):
a defensive mixture ``q = 1/2 N(mu_q, diag(1/P)) + 1/2 N(m, s^2 I)`` with precision
``P_j = 1/s^2 + h_j`` (``h_j = 0`` beyond the rank) and ``mu_q = m + V diag(1/P) V^T grad log G(m)``
(one Newton step). The bridge half bounds the weights: ``pi / q <= 2 G / Z``. One particle per
chain is selected with probability ``∝ pi / q`` by the Gumbel-max trick, streaming over chunks of
particles so that memory stays ``O(chunk B d)``.

Tensor shapes: ``m`` ``[B, *sample_shape]``; ``s`` and times ``[B]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from mgdm.priors.exact_guidance import ExactNoisyLikelihood
from mgdm.random import SampleNoise

_CHUNK_ELEMENTS = 1 << 22
"""Largest ``[B, chunk, d]`` block of particles, in elements."""

LogPotential = Callable[[Tensor, Tensor], Tensor]
"""``(x [n, *sample_shape], t [n]) -> log G(x)`` ``[n]``."""


def draw_exact_conditional(
    log_potential: LogPotential,
    guidance: ExactNoisyLikelihood,
    plain: bool,
    mean: Tensor,
    std: Tensor,
    t: Tensor,
    particles: int,
    noise: SampleNoise,
) -> Tensor:
    """One draw per chain of ``N(mean, std^2 I) G(x)`` by importance resampling (module
    docstring); ``[B, *sample_shape]`` in ``mean``'s dtype.

    Args:
        log_potential: ``log G``.
        guidance: the exact guidance of the prior (for the SVD and the curvature).
        plain: whether ``G`` is the plain potential ``g(D_t(x))`` (its curvature has no
            variance term).
        mean, std: the bridge ``N(mean, std^2 I)``.
        t: the times ``[B]`` at which ``G`` is evaluated.
        particles: ``N``, proposals per chain.
    """
    svd = guidance.svd
    batch, shape = mean.shape[0], tuple(mean.shape[1:])
    dim = math.prod(shape)
    m = mean.to(torch.float64)
    s2 = (std.to(torch.float64) ** 2)[:, None]  # [B, 1]
    with torch.enable_grad():
        probe = m.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_potential(probe, t).sum(), probe)
    precision = (1.0 / s2).expand(batch, dim).clone()
    precision[:, : guidance.rank] += guidance.curvature(m, t, plain)
    bridge_spectrum = svd.Vt(m)  # [B, d]
    newton_spectrum = bridge_spectrum + svd.Vt(grad.to(torch.float64)) / precision

    chunk = max(1, min(particles, _CHUNK_ELEMENTS // max(1, batch * dim)))
    best_score = torch.full((batch,), -math.inf, dtype=torch.float64, device=m.device)
    best = bridge_spectrum.clone()
    log_half = math.log(0.5)
    for start in range(0, particles, chunk):
        n = min(chunk, particles - start)
        xi = noise.randn(n, dim, dtype=torch.float64).to(m.device)  # [B, n, d]
        pick_bridge = noise.rand(n, dtype=torch.float64).to(m.device) < 0.5  # [B, n]
        gumbel = -torch.log(-torch.log(noise.rand(n, dtype=torch.float64).to(m.device)))
        from_newton = newton_spectrum[:, None] + xi / torch.sqrt(precision)[:, None]
        from_bridge = bridge_spectrum[:, None] + xi * torch.sqrt(s2)[:, None]
        z = torch.where(pick_bridge[..., None], from_bridge, from_newton)  # [B, n, d]
        bridge_sq = ((z - bridge_spectrum[:, None]) ** 2).sum(-1) / s2  # [B, n]
        log_q_bridge = -0.5 * bridge_sq - 0.5 * dim * torch.log(s2)
        log_q_newton = -0.5 * (precision[:, None] * (z - newton_spectrum[:, None]) ** 2).sum(
            -1
        ) + 0.5 * torch.log(precision).sum(-1, keepdim=True)
        log_q = log_half + torch.logaddexp(log_q_bridge, log_q_newton)
        x = svd.V(z.reshape(batch * n, dim)).reshape(batch * n, *shape)
        with torch.no_grad():
            log_g = log_potential(x, t.repeat_interleave(n)).reshape(batch, n)
        log_weight = log_g.to(torch.float64) - 0.5 * bridge_sq - 0.5 * dim * torch.log(s2) - log_q
        score = torch.nan_to_num(log_weight, nan=-math.inf) + gumbel
        top, index = score.max(dim=1)
        better = top > best_score
        chosen = z[torch.arange(batch, device=m.device), index]
        best = torch.where(better[:, None], chosen, best)
        best_score = torch.where(better, top, best_score)
    return svd.V(best).reshape(batch, *shape).to(mean.dtype)
