"""Exact guidance quantities of an isotropic Gaussian-mixture prior under a linear Gaussian problem.

For a prior ``p_0 = sum_i w_i N(mu_i, lam_i I)`` (a :class:`GaussianMixture` with isotropic
components, or a kernel-density prior) and ``y = A x_0 + sigma_y e`` with ``A = U diag(s) V^T``,
the intermediate potential that MGDM approximates by ``g(D_t(x_t))`` is available in closed form
(docs/algorithms/mgdm.md §12). With ``a = abar_t``, ``gamma_i = a lam_i + 1 - a``, the
responsibilities ``r_i(x)`` of the noised mixture, the component gains ``k_i = sqrt(a) lam_i /
gamma_i`` and variances ``v_i = lam_i (1 - a) / gamma_i``::

    p_{0|t}(x_0 | x) = sum_i r_i(x) N(x_0; m_i(x), v_i I),   m_i(x) = (1 - sqrt(a) k_i) mu_i + k_i x
    g_t(x) = ∫ g(x_0) p_{0|t}(x_0 | x) dx_0
           ∝ sum_i r_i(x) N(y; A m_i(x), sigma_y^2 I + v_i A A^T)

and in the spectral coordinates ``e_ij = (U^T y)_j - s_j (V^T m_i(x))_j`` (``j < r``) the Gaussian
is diagonal: ``log N = -1/2 sum_j [e_ij^2 / (sigma_y^2 + v_i s_j^2) + log(sigma_y^2 + v_i s_j^2)]``
up to a constant shared by all ``x``. Everything is computed in float64 and is differentiable in
``x`` (autograd), in O(B K r) memory, chunked over the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.priors.gaussian_mixture import GaussianMixture
from mgdm.priors.kernel_density import KernelDensityPrior
from mgdm.problem import Problem

_CHUNK_ELEMENTS = 1 << 22
"""Largest ``[chunk, K, r]`` intermediate, in elements."""


class ExactNoisyLikelihood:
    """``log g_t(x_t)`` exactly, and the local curvature of the potential, for one problem.

    Args:
        mixture: the prior's isotropic mixture on flat coordinates ``[B, d]``.
        problem: a linear problem whose operator has an SVD, with Gaussian noise.
        sample_shape: the prior's sample shape (``x`` is ``[B, *sample_shape]``, ``d`` elements).
    """

    def __init__(self, mixture: GaussianMixture, problem: Problem, sample_shape: tuple[int, ...]):
        if mixture.isotropic_variances is None:
            raise ValueError("exact guidance needs a mixture with isotropic components.")
        svd = problem.operator.svd
        if svd is None:
            raise ValueError(
                f"exact guidance needs an operator with an SVD; {type(problem.operator).__name__} "
                "has none."
            )
        self.mixture = mixture
        self.problem = problem
        self.svd = svd
        self.sigma_y = float(problem.sigma_y)
        self.sample_shape = tuple(sample_shape)
        self.rank = svd.rank_size
        self.singular_values = svd.singular_values.to(torch.float64)
        means = mixture.means.reshape(-1, *self.sample_shape)
        self.mean_spectra = svd.Vt(means)[:, : self.rank].to(torch.float64)  # [K, r]

    def _spectra(self, x: Tensor) -> Tensor:
        """``(V^T x)_{:r}``, float64 ``[B, r]``."""
        return self.svd.Vt(x.to(torch.float64))[:, : self.rank]

    def _observation_spectrum(self, batch: int, like: Tensor) -> Tensor:
        """``(U^T y)_{:r}``, float64 ``[B, r]``."""
        y = self.problem.observation_for(batch, like.to(torch.float64))
        return self.svd.Ut(y)[:, : self.rank]

    def _components(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(log r [B, K], gains k [B, K], variances v [B, K])`` at flat float64 ``x`` ``[B, d]``."""
        abar, gamma, logits = self.mixture._isotropic_logits(x, t)
        lam = self.mixture.isotropic_variances.to(x.device)[None]
        gains = torch.sqrt(abar) * lam / gamma
        variances = lam * (1.0 - abar) / gamma
        return torch.log_softmax(logits, dim=-1), gains, variances

    def log_likelihood(self, x: Tensor, t: Tensor) -> Tensor:
        """``log g_t(x)`` up to a constant, float64 ``[B]``, for ``x`` ``[B, *sample_shape]`` at
        times ``t`` ``[B]``; differentiable in ``x``."""
        batch = x.shape[0]
        flat = x.reshape(batch, -1).to(torch.float64)
        spectra = self._spectra(x)
        observed = self._observation_spectrum(batch, x)
        s = self.singular_values.to(x.device)
        mean_spectra = self.mean_spectra.to(x.device)
        n_components = mean_spectra.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // max(1, n_components * self.rank))
        out = []
        for start in range(0, batch, chunk):
            rows = slice(start, start + chunk)
            log_r, gains, variances = self._components(flat[rows], t[rows])
            root = torch.sqrt(self.mixture.schedule.alpha_bar(t[rows].to(x.device)))[:, None, None]
            k = gains[..., None]  # [b, K, 1]
            predicted = s * ((1.0 - root * k) * mean_spectra[None] + k * spectra[rows, None, :])
            residual = observed[rows, None, :] - predicted  # [b, K, r]
            total_var = self.sigma_y**2 + variances[..., None] * s**2  # [b, K, r]
            log_gauss = -0.5 * (residual**2 / total_var + torch.log(total_var)).sum(-1)
            out.append(torch.logsumexp(log_r + log_gauss, dim=-1))
        return torch.cat(out)

    def curvature(self, x: Tensor, t: Tensor, plain: bool) -> Tensor:
        """Gauss-Newton curvature of ``-log`` of the potential in the spectral coordinates
        ``j < r``: ``kbar^2 s_j^2 / (sigma_y^2 + vbar s_j^2)``, float64 ``[B, r]``, with ``kbar``
        and ``vbar`` the responsibility-averaged gain and variance at ``x`` (``vbar = 0`` for the
        ``plain`` potential ``g(D_t(x))``, whose Jacobian is about ``kbar I``)."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        log_r, gains, variances = self._components(flat, t)
        r = torch.exp(log_r)
        kbar = (r * gains).sum(-1, keepdim=True)
        vbar = torch.zeros_like(kbar) if plain else (r * variances).sum(-1, keepdim=True)
        s2 = self.singular_values.to(x.device) ** 2
        return kbar**2 * s2 / (self.sigma_y**2 + vbar * s2)


def exact_guidance(prior: object, problem: Problem) -> ExactNoisyLikelihood:
    """The :class:`ExactNoisyLikelihood` of ``prior`` (a :class:`GaussianMixture` or a
    :class:`~mgdm.priors.kernel_density.KernelDensityPrior`) under ``problem``; a one-line
    ``ValueError`` for any other prior."""
    if isinstance(prior, GaussianMixture):
        return ExactNoisyLikelihood(prior, problem, prior.sample_shape)
    if isinstance(prior, KernelDensityPrior):
        return ExactNoisyLikelihood(prior.mixture, problem, prior.sample_shape)
    raise ValueError(
        f"exact guidance needs a Gaussian-mixture or kernel-density prior; got "
        f"{type(prior).__name__}. Use likelihood='plain' and fit='variational'."
    )
