"""An exact prior: a Gaussian mixture, with closed-form diffusion quantities.

Prior ``p_0 = sum_i w_i N(mu_i, Sigma_i)`` in ``R^d`` (``K`` components). Covariances are given
as isotropic scalars ``[K]``, diagonals ``[K, d]`` or full matrices ``[K, d, d]``; internally each
is held as an eigendecomposition ``Sigma_i = Q_i diag(lam_i) Q_i^T`` (``Q_i = I`` for diagonal).

Noised marginal at time t (``a = abar_t``): ``p_t = sum_i w_i N(sqrt(a) mu_i, Gamma_i)`` with
``Gamma_i = a Sigma_i + (1 - a) I``. With responsibilities
``r_i(x) = softmax_i(log w_i + log N(x; sqrt(a) mu_i, Gamma_i))``::

    score(x)  = -sum_i r_i Gamma_i^{-1} (x - sqrt(a) mu_i)
    D_t(x)    = sum_i r_i [mu_i + sqrt(a) Sigma_i Gamma_i^{-1} (x - sqrt(a) mu_i)]
    p_{0|t}   = sum_i r_i N(mu_i + sqrt(a) Sigma_i Gamma_i^{-1}(x - sqrt(a) mu_i),
                            Sigma_i - a Sigma_i Gamma_i^{-1} Sigma_i)

(docs/algorithms/problems.md §4). All computations run in float64, responsibilities by log-sum-exp.

The exact posterior under ``y = A x + sigma_y eps`` (docs/algorithms/problems.md §3) is again a mixture; it is
sampled without any ``d x d`` matrix by Matheron's rule: draw ``x ~ N(mu_i, Sigma_i)`` and
``e ~ N(0, sigma_y^2 I)``, then ``x + Sigma_i A^T S_i^{-1} (y - A x - e)`` with
``S_i = A Sigma_i A^T + sigma_y^2 I`` is a draw of component i's posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mgdm.devices import DeviceCopies
from mgdm.diffusion.conversions import x0_to_score
from mgdm.diffusion.schedules import Schedule
from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.random import SampleNoise

_LOG_2PI = math.log(2 * math.pi)


def _validate_mixture(means: Tensor, weights: Tensor) -> None:
    if means.dim() != 2:
        raise ValueError(f"means must have shape [K, d]; got {tuple(means.shape)}.")
    if weights.shape != (means.shape[0],):
        raise ValueError(
            f"weights must have shape [K] = [{means.shape[0]}]; got {tuple(weights.shape)}."
        )
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()) or weights.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero.")


class GaussianMixture(Denoiser):
    """A Gaussian-mixture prior with exact denoiser, score, log-density and sampling.

    Args:
        means: ``[K, d]`` component means.
        weights: ``[K]`` non-negative weights (normalised here).
        covariances: ``[K]`` or scalar (isotropic), ``[K, d]`` (diagonal) or ``[K, d, d]`` (full,
            symmetric positive definite).
        schedule: the diffusion schedule.
        dtype: dtype of the returned tensors (computations are float64).
    """

    data_range = None

    def __init__(
        self,
        means: Tensor,
        weights: Tensor,
        covariances: Tensor | float,
        schedule: Schedule,
        dtype: torch.dtype = torch.float32,
    ):
        means = torch.as_tensor(means, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        _validate_mixture(means, weights)
        n_components, dim = means.shape
        cov = torch.as_tensor(covariances, dtype=torch.float64)
        if cov.dim() == 0:
            cov = cov.expand(n_components)
        if cov.dim() == 1:
            if cov.shape != (n_components,):
                raise ValueError(f"isotropic covariances must have shape [K] = [{n_components}].")
            cov = cov[:, None].expand(n_components, dim)
        if cov.dim() == 2:
            if cov.shape != (n_components, dim):
                raise ValueError(
                    f"diagonal covariances must have shape [K, d] = [{n_components}, {dim}]."
                )
            if bool((cov <= 0).any()):
                raise ValueError("diagonal covariances must be positive.")
            self.eigenvalues = cov.clone()
            self.eigenvectors: Tensor | None = None
        elif cov.dim() == 3:
            if cov.shape != (n_components, dim, dim):
                raise ValueError(
                    f"full covariances must have shape [K, d, d] = [{n_components}, {dim}, {dim}]."
                )
            if not torch.allclose(cov, cov.transpose(1, 2), atol=1e-10):
                raise ValueError("full covariances must be symmetric.")
            eigenvalues, eigenvectors = torch.linalg.eigh(cov)
            if bool((eigenvalues <= 0).any()):
                raise ValueError("full covariances must be positive definite.")
            self.eigenvalues = eigenvalues
            self.eigenvectors = eigenvectors
        else:
            raise ValueError("covariances must be a scalar, [K], [K, d] or [K, d, d].")
        self.means = means
        self.mean_sq_norms = (means**2).sum(-1)
        isotropic = self.eigenvectors is None and bool(
            (self.eigenvalues == self.eigenvalues[:, :1]).all()
        )
        self.isotropic_variances: Tensor | None = (
            self.eigenvalues[:, 0].clone() if isotropic else None
        )
        self.weights = weights / weights.sum()
        self.log_weights = torch.log(self.weights)
        self.schedule = schedule
        self.sample_shape = (dim,)
        self.dtype = dtype
        self._copies: dict[str, DeviceCopies] = {}

    def _on(self, name: str, device: torch.device) -> Tensor:
        """The table ``name`` (``means``, ``eigenvalues``, ...) on ``device``, copied there once
        (a per-call copy would make every step on an accelerator wait for it)."""
        if name not in self._copies:
            self._copies[name] = DeviceCopies(getattr(self, name))
        return self._copies[name].on(device)

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def covariance_matrices(self) -> Tensor:
        """Dense ``[K, d, d]`` covariances (for small d: tests and exact computations)."""
        if self.eigenvectors is None:
            return torch.diag_embed(self.eigenvalues)
        q = self.eigenvectors
        return q @ torch.diag_embed(self.eigenvalues) @ q.transpose(1, 2)

    # ---------------------------------------------------------------- internal linear algebra
    def _to_eigen(self, v: Tensor) -> Tensor:
        """Per-component coordinates ``Q_i^T v``: ``v`` ``[B, K, d]`` -> ``[B, K, d]``."""
        if self.eigenvectors is None:
            return v
        return torch.einsum("kde,bkd->bke", self._on("eigenvectors", v.device), v)

    def _from_eigen(self, v: Tensor) -> Tensor:
        """Inverse of :meth:`_to_eigen`: ``Q_i v``."""
        if self.eigenvectors is None:
            return v
        return torch.einsum("kde,bke->bkd", self._on("eigenvectors", v.device), v)

    def _noised(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Shared quantities at time t for x_t ``[B, d]``.

        Returns ``(abar [B,1,1], centred eigen-coordinates [B,K,d], Gamma eigenvalues [B,K,d],
        component log-terms log w_i + log N(x; sqrt(abar) mu_i, Gamma_i) [B,K])``: their
        log-softmax is the log responsibilities, their logsumexp ``log p_t(x_t)``.
        """
        x = x_t.to(torch.float64)
        device = x.device
        abar = self.schedule.alpha_bar(t.to(device))[:, None, None]
        means = self._on("means", device)
        lam = self._on("eigenvalues", device)[None]
        centred = self._to_eigen(x[:, None, :] - torch.sqrt(abar) * means[None])
        gamma = abar * lam + (1.0 - abar)
        log_density = -0.5 * (
            (centred**2 / gamma).sum(-1) + torch.log(gamma).sum(-1) + self.dim * _LOG_2PI
        )
        return abar, centred, gamma, self._on("log_weights", device)[None] + log_density

    # ---------------------------------------------------------------- diffusion quantities
    def log_prob(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """``log p_t(x_t)`` of the noised marginal, float64 ``[B]``."""
        x_t = self._check(x_t)
        t = as_time_vector(t, x_t.shape[0], x_t.device)
        log_terms = self._noised(x_t, t)[3]
        return torch.logsumexp(log_terms, dim=-1)

    def _isotropic_logits(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Responsibility logits for isotropic components ``Sigma_i = lam_i I``, by matrix products.

        For float64 ``x`` ``[B, d]`` at times ``t`` ``[B]``, with ``a = abar_t`` and
        ``gamma_i = a lam_i + 1 - a``:
        ``logit_i = log w_i - ||x - sqrt(a) mu_i||^2 / (2 gamma_i) - d/2 log gamma_i``, i.e.
        ``log(w_i N(x; sqrt(a) mu_i, gamma_i I)) + d/2 log(2 pi)``, where
        ``||x - sqrt(a) mu_i||^2 = ||x||^2 - 2 sqrt(a) x.mu_i + a ||mu_i||^2``. Cost O(B K d) in
        BLAS, no ``[B, K, d]`` intermediate. Returns ``(abar [B, 1], gamma [B, K], logits [B, K])``.
        """
        assert self.isotropic_variances is not None
        device = x.device
        abar = self.schedule.alpha_bar(t.to(device))[:, None]  # [B, 1]
        root = torch.sqrt(abar)
        lam = self._on("isotropic_variances", device)[None]  # [1, K]
        gamma = abar * lam + (1.0 - abar)  # [B, K]
        sq_dist = (
            (x**2).sum(-1, keepdim=True)
            - 2 * root * (x @ self._on("means", device).T)
            + abar * self._on("mean_sq_norms", device)[None]
        ).clamp_min(0.0)
        logits = (
            self._on("log_weights", device)[None]
            - sq_dist / (2 * gamma)
            - 0.5 * self.dim * torch.log(gamma)
        )
        return abar, gamma, logits

    def _isotropic_denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Tweedie for isotropic components ``Sigma_i = lam_i I`` with matrix products only.

        With the responsibilities ``r_i = softmax_i(logit_i)`` of :meth:`_isotropic_logits` and
        ``k_i = sqrt(a) lam_i / gamma_i``: ``D_t(x) = sum_i r_i (1 - sqrt(a) k_i) mu_i +
        (sum_i r_i k_i) x``. Cost O(B K d) in BLAS, no ``[B, K, d]`` intermediate.
        """
        assert self.isotropic_variances is not None
        x = x_t.to(torch.float64)
        abar, gamma, logits = self._isotropic_logits(x, t)
        root = torch.sqrt(abar)
        lam = self._on("isotropic_variances", x.device)[None]  # [1, K]
        resp = torch.softmax(logits, dim=-1)
        gain = root * lam / gamma  # k_i, [B, K]
        x0 = (resp * (1.0 - root * gain)) @ self._on("means", x.device) + (resp * gain).sum(
            -1, keepdim=True
        ) * x
        return x0.to(x_t.dtype)

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Exact Tweedie ``E[x_0 | x_t]``, ``[B, d]`` in the input's dtype (differentiable)."""
        x_t = self._check(x_t)
        if self.isotropic_variances is not None:
            return self._isotropic_denoise(x_t, t)
        abar, centred, gamma, log_terms = self._noised(x_t, t)
        lam = self._on("eigenvalues", x_t.device)[None]
        shift = self._from_eigen(torch.sqrt(abar) * lam / gamma * centred)
        component_means = self._on("means", x_t.device)[None] + shift
        x0 = (torch.softmax(log_terms, dim=-1)[..., None] * component_means).sum(1)
        return x0.to(x_t.dtype)

    def score(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        x_t = self._check(x_t)
        t = as_time_vector(t, x_t.shape[0], x_t.device)
        x0 = self.denoise(x_t.to(torch.float64), t)
        return x0_to_score(x_t.to(torch.float64), x0, self.schedule.alpha_bar(t)).to(x_t.dtype)

    def sample_denoising_posterior(self, x_t: Tensor, t: Tensor, noise: SampleNoise) -> Tensor:
        """An exact draw of ``p_{0|t}(x_0 | x_t)`` per sample; ``[B, d]``."""
        x_t = self._check(x_t)
        abar, centred, gamma, log_terms = self._noised(x_t, t)
        lam = self._on("eigenvalues", x_t.device)[None]
        component = sample_categorical(log_terms, noise)
        b = torch.arange(x_t.shape[0], device=x_t.device)
        mean_eigen = (torch.sqrt(abar) * lam / gamma * centred)[b, component]
        var_eigen = (lam * (1.0 - abar) / gamma)[b, component]
        xi = noise.randn(self.dim, dtype=torch.float64)
        offset = mean_eigen + torch.sqrt(var_eigen) * xi
        if self.eigenvectors is not None:
            offset = torch.einsum(
                "bde,be->bd", self._on("eigenvectors", x_t.device)[component], offset
            )
        return (self._on("means", x_t.device)[component] + offset).to(x_t.dtype)

    def initial_state(
        self, noise: SampleNoise, t: int, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """An exact draw of ``p_t``: ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``, ``x_0 ~ p_0``."""
        abar = self.schedule.alpha_bar(t).item()
        x0 = self.sample(noise).to(torch.float64)
        eps = noise.randn(self.dim, dtype=torch.float64)
        return (math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps).to(dtype)

    # ---------------------------------------------------------------- exact sampling
    def _component_draw(self, component: Tensor, xi: Tensor) -> Tensor:
        """``mu_c + Sigma_c^{1/2} xi`` for component indices ``[B]`` and ``xi`` ``[B, d]``."""
        scaled = torch.sqrt(self._on("eigenvalues", xi.device)[component]) * xi
        if self.eigenvectors is not None:
            scaled = torch.einsum(
                "bde,be->bd", self._on("eigenvectors", xi.device)[component], scaled
            )
        return self._on("means", xi.device)[component] + scaled

    def sample(self, noise: SampleNoise) -> Tensor:
        """Exact prior draws, one per stream of ``noise``; ``[B, d]`` float64."""
        log_w = self._on("log_weights", noise.device)[None].expand(noise.batch_size, -1)
        component = sample_categorical(log_w, noise)
        return self._component_draw(component, noise.randn(self.dim, dtype=torch.float64))

    def posterior(self, matrix: Tensor, y: Tensor, sigma_y: float) -> GaussianMixturePosterior:
        """The exact posterior of this prior under ``y = matrix @ x + sigma_y * eps``."""
        return GaussianMixturePosterior(self, matrix, y, sigma_y)

    def _check(self, x_t: Tensor) -> Tensor:
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(f"expected samples of shape [B, {self.dim}]; got {tuple(x_t.shape)}.")
        return x_t


def sample_categorical(log_probs: Tensor, noise: SampleNoise) -> Tensor:
    """One categorical draw per row of ``log_probs`` ``[B, K]`` (inverse CDF), int64 ``[B]``."""
    probs = torch.softmax(log_probs, dim=-1)
    cdf = torch.cumsum(probs, dim=-1)
    u = noise.rand(1, dtype=torch.float64).to(cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).clamp_max(log_probs.shape[-1] - 1)[:, 0]


@dataclass
class GaussianMixturePosterior:
    """Exact posterior of a :class:`GaussianMixture` under a linear Gaussian likelihood.

    Component i has covariance ``C_i = Sigma_i - Sigma_i A^T S_i^{-1} A Sigma_i``, mean
    ``m_i = mu_i + Sigma_i A^T S_i^{-1} (y - A mu_i)`` and weight
    ``w~_i ∝ w_i N(y; A mu_i, S_i)``, with ``S_i = A Sigma_i A^T + sigma_y^2 I``.
    """

    prior: GaussianMixture
    matrix: Tensor
    y: Tensor
    sigma_y: float

    def __post_init__(self) -> None:
        a = torch.as_tensor(self.matrix, dtype=torch.float64)
        y = torch.as_tensor(self.y, dtype=torch.float64).reshape(-1)
        if a.dim() != 2 or a.shape[1] != self.prior.dim:
            raise ValueError(f"matrix must have shape [m, {self.prior.dim}]; got {tuple(a.shape)}.")
        if y.shape != (a.shape[0],):
            raise ValueError(f"y must have shape [{a.shape[0]}]; got {tuple(y.shape)}.")
        if not self.sigma_y > 0:
            raise ValueError(f"sigma_y must be > 0; got {self.sigma_y}.")
        self.matrix, self.y = a, y
        # Sigma_i A^T, [K, d, m], without forming Sigma_i when it is diagonal.
        if self.prior.eigenvectors is None:
            self._cov_at = self.prior.eigenvalues[:, :, None] * a.T[None]
        else:
            q, lam = self.prior.eigenvectors, self.prior.eigenvalues
            self._cov_at = q @ (lam[:, :, None] * (q.transpose(1, 2) @ a.T[None]))
        s = a[None] @ self._cov_at + self.sigma_y**2 * torch.eye(a.shape[0], dtype=torch.float64)
        self._s_chol = torch.linalg.cholesky(s)
        residual = y[None, :] - self.prior.means @ a.T  # [K, m]
        solved = torch.cholesky_solve(residual[..., None], self._s_chol)[..., 0]
        self.component_means = self.prior.means + (self._cov_at @ solved[..., None])[..., 0]
        log_det = 2 * torch.log(torch.diagonal(self._s_chol, dim1=-2, dim2=-1)).sum(-1)
        log_evidence = -0.5 * ((residual * solved).sum(-1) + log_det + a.shape[0] * _LOG_2PI)
        self.log_weights = torch.log_softmax(self.prior.log_weights + log_evidence, dim=0)

    @property
    def weights(self) -> Tensor:
        return torch.exp(self.log_weights)

    def mean(self) -> Tensor:
        """The posterior mean, ``[d]`` float64."""
        return (self.weights[:, None] * self.component_means).sum(0)

    def sample(self, noise: SampleNoise) -> Tensor:
        """Exact posterior draws by Matheron's rule, ``[B, d]`` float64."""
        log_w = self.log_weights.to(noise.device)[None].expand(noise.batch_size, -1)
        component = sample_categorical(log_w, noise)
        x = self.prior._component_draw(component, noise.randn(self.prior.dim, dtype=torch.float64))
        e = self.sigma_y * noise.randn(self.matrix.shape[0], dtype=torch.float64)
        residual = self.y[None] - x @ self.matrix.T - e
        solved = torch.cholesky_solve(residual[..., None], self._s_chol[component])
        return x + (self._cov_at[component] @ solved)[..., 0]
