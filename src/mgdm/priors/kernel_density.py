"""An exact image prior: a Gaussian kernel-density estimate on a set of training images.

Prior ``p_0 = (1/N) sum_n N(x_n, s^2 I)`` on images of shape ``[C, H, W]`` (``d = C H W``), for
``N`` training images ``x_n`` and a bandwidth ``s``. It is a :class:`GaussianMixture` with equal
weights and one shared isotropic covariance; the mixture (flat ``[B, d]`` coordinates) is held,
not subclassed, because this prior's samples are image-shaped ``[B, C, H, W]``.

Diffusion quantities (``a = abar_t``, ``gamma = a s^2 + 1 - a``) are those of the mixture, computed
by matrix products in O(B N d) without any ``[B, N, d]`` intermediate:
``r_n(x) = softmax_n(-||x - sqrt(a) x_n||^2 / (2 gamma))`` and
``D_t(x) = sum_n r_n (1 - a s^2 / gamma) x_n + (sqrt(a) s^2 / gamma) x``.

Exact posterior under ``y = A x + sigma_y e`` (``A`` linear, ``e ~ N(0, I)``). The components
share their covariance, hence so do the posterior components:
``C = (I / s^2 + A^T A / sigma_y^2)^{-1}``, ``m_n = C (x_n / s^2 + A^T y / sigma_y^2)``, weights
``w~_n ∝ N(y; A x_n, s^2 A A^T + sigma_y^2 I)``. With the SVD ``A = U diag(s_j) V^T`` (``r``
singular values), in the coordinates ``z = V^T x`` and ``y' = U^T y`` everything is diagonal:

* ``j < r``: ``c_j = s^2 sigma_y^2 / (sigma_y^2 + s^2 s_j^2)``,
  ``m_nj = c_j ((V^T x_n)_j / s^2 + s_j y'_j / sigma_y^2)``;
* ``j >= r`` (null space): ``c_j = s^2``, ``m_nj = (V^T x_n)_j``;
* ``log w~_n = -1/2 sum_{j<r} (y'_j - s_j (V^T x_n)_j)^2 / (s^2 s_j^2 + sigma_y^2) + const``.

An operator without an SVD is materialised as a dense ``[m, d]`` matrix and decomposed (only for
``d <= max_dense_dim``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from mgdm.diffusion.schedules import Schedule, ddpm_linear
from mgdm.operators.base import LinearOperator, Operator
from mgdm.operators.dense import DenseSVD
from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.priors.gaussian_mixture import GaussianMixture, sample_categorical
from mgdm.random import SampleNoise

_CHUNK = 1024


class KernelDensityPrior(Denoiser):
    """Equal-weight isotropic Gaussian kernels ``N(x_n, sigma^2 I)`` on ``N`` images.

    Args:
        images: ``[N, *sample_shape]`` (e.g. ``[N, C, H, W]`` in ``[-1, 1]``), the kernel centres.
        sigma: the kernel bandwidth ``s > 0`` (a standard deviation in image units).
        schedule: the diffusion schedule (default :func:`ddpm_linear`).
        dtype: dtype of denoiser outputs (computations are float64).

    Memory: the mixture keeps its means and per-dimension variances in float64, about
    ``16 N d`` bytes.
    """

    data_range = None

    def __init__(
        self,
        images: Tensor,
        sigma: float,
        schedule: Schedule | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        images = torch.as_tensor(images)
        if images.dim() < 2 or images.shape[0] < 1:
            raise ValueError(
                f"images must have shape [N, *sample_shape] with N >= 1; got {tuple(images.shape)}."
            )
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0; got {sigma}.")
        num = images.shape[0]
        self.sigma = float(sigma)
        self.sample_shape = tuple(images.shape[1:])
        self.schedule = schedule if schedule is not None else ddpm_linear()
        self.mixture = GaussianMixture(
            images.reshape(num, -1), torch.ones(num), self.sigma**2, self.schedule, dtype=dtype
        )

    @classmethod
    def from_fashion_mnist(
        cls,
        num_images: int,
        sigma: float,
        split: Literal["train", "test"] = "train",
        schedule: Schedule | None = None,
    ) -> KernelDensityPrior:
        """Kernels on the first ``num_images`` Fashion-MNIST images of ``split`` (``[1, 32, 32]``)."""
        from mgdm.data.fashion_mnist import load_fashion_mnist

        data = load_fashion_mnist(split, limit=num_images)
        return cls(data.images, sigma, schedule)

    @property
    def num_kernels(self) -> int:
        return self.mixture.n_components

    @property
    def dim(self) -> int:
        return self.mixture.dim

    @property
    def centres(self) -> Tensor:
        """The kernel centres ``[N, *sample_shape]`` (float64)."""
        return self.mixture.means.reshape(-1, *self.sample_shape)

    def _flat(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"expected samples of shape [B, {', '.join(map(str, self.sample_shape))}]; got {list(x.shape)}."
            )
        return x.reshape(x.shape[0], -1)

    def _image(self, flat: Tensor) -> Tensor:
        return flat.reshape(flat.shape[0], *self.sample_shape)

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Exact Tweedie ``E[x_0 | x_t]``, ``[B, *sample_shape]`` in the input's dtype (differentiable)."""
        return self._image(self.mixture.denoise(self._flat(x_t), t))

    def log_prob(self, x_t: Tensor, t: Tensor | int) -> Tensor:
        """``log p_t(x_t)`` of the noised marginal, float64 ``[B]``."""
        flat = self._flat(x_t).to(torch.float64)
        times = as_time_vector(t, flat.shape[0], flat.device)
        _, _, logits = self.mixture._isotropic_logits(flat, times)
        return torch.logsumexp(logits, dim=-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def sample_denoising_posterior(self, x_t: Tensor, t: Tensor, noise: SampleNoise) -> Tensor:
        """An exact draw of ``p_{0|t}(x_0 | x_t)`` per sample, ``[B, *sample_shape]``.

        Kernel ``n ~ r_n(x_t)``, then ``x_0 = (1 - sqrt(a) k) x_n + k x_t + sqrt(s^2 (1 - a) / gamma) xi``
        with ``k = sqrt(a) s^2 / gamma``.
        """
        flat = self._flat(x_t).to(torch.float64)
        abar, gamma, logits = self.mixture._isotropic_logits(flat, t)
        component = sample_categorical(logits, noise)
        var = self.sigma**2
        gamma = gamma[:, :1]
        gain = torch.sqrt(abar) * var / gamma
        std = torch.sqrt(var * (1.0 - abar) / gamma)
        xi = noise.randn(self.dim, dtype=torch.float64).to(flat.device)
        centre = self.mixture._on("means", flat.device)[component]
        x0 = (1.0 - torch.sqrt(abar) * gain) * centre + gain * flat + std * xi
        return self._image(x0).to(x_t.dtype)

    def sample(self, noise: SampleNoise) -> Tensor:
        """Exact prior draws, one per stream of ``noise``; ``[B, *sample_shape]`` float64."""
        return self._image(self.mixture.sample(noise))

    def initial_state(
        self, noise: SampleNoise, t: int, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """An exact draw of ``p_t``; ``[B, *sample_shape]``."""
        return self._image(self.mixture.initial_state(noise, t, dtype))

    def posterior(
        self, operator: Operator, y: Tensor, sigma_y: float, max_dense_dim: int = 4096
    ) -> KernelDensityPosterior:
        """The exact posterior under ``y = operator(x) + sigma_y e`` (one observation ``y``).

        ``sigma_y`` is a standard deviation in the units of ``operator(x)`` for ``x`` in the
        prior's image units (``[-1, 1]`` for images).
        """
        return KernelDensityPosterior(self, operator, y, sigma_y, max_dense_dim)


class KernelDensityPosterior:
    """Exact posterior of a :class:`KernelDensityPrior` under a linear Gaussian likelihood.

    Args:
        prior: the kernel-density prior.
        operator: a :class:`LinearOperator` with ``input_shape == prior.sample_shape``; its SVD is
            used when it has one, else the dense matrix (``d <= max_dense_dim``).
        y: the observation, ``[*output_shape]`` or ``[1, *output_shape]``.
        sigma_y: observation noise standard deviation (units of ``operator(x)``, images in [-1, 1]).
        max_dense_dim: the largest ``d`` for which an SVD-free operator is materialised.

    Attributes:
        log_weights: ``[N]`` posterior log-weights of the kernels (float64, normalised).
        spectral_variances: ``[d]`` the diagonal of ``C`` in ``V`` coordinates (float64).
    """

    def __init__(
        self,
        prior: KernelDensityPrior,
        operator: Operator,
        y: Tensor,
        sigma_y: float,
        max_dense_dim: int = 4096,
    ):
        if not isinstance(operator, LinearOperator):
            raise TypeError(
                f"the exact posterior needs a linear operator; {type(operator).__name__} is not linear."
            )
        if tuple(operator.input_shape) != prior.sample_shape:
            raise ValueError(
                f"operator input shape {list(operator.input_shape)} differs from the prior's sample "
                f"shape {list(prior.sample_shape)}."
            )
        if not sigma_y > 0:
            raise ValueError(f"sigma_y must be > 0; got {sigma_y}.")
        y = torch.as_tensor(y, dtype=torch.float64)
        operator.check_output(y)
        if y.numel() != operator.output_size:
            raise ValueError(
                f"the posterior takes one observation; got y of shape {list(y.shape)}."
            )
        self.prior, self.operator, self.sigma_y = prior, operator, float(sigma_y)
        self.y = y.reshape(1, *operator.output_shape)
        svd = operator.svd
        if svd is None:
            if prior.dim > max_dense_dim:
                raise ValueError(
                    f"{type(operator).__name__} has no SVD and d = {prior.dim} exceeds max_dense_dim = "
                    f"{max_dense_dim}: the exact posterior would need a dense {operator.output_size} x "
                    f"{prior.dim} matrix. Use an operator with an SVD or a smaller image."
                )
            self._svd = DenseSVD(_dense_matrix(operator))
            self._flat_svd = True
        else:
            self._svd = svd
            self._flat_svd = False
        var, noise_var = prior.sigma**2, self.sigma_y**2
        s = self._svd.singular_values.to(torch.float64)
        rank = s.numel()
        y_spectral = self._ut(self.y)[0, :rank]  # [r]
        evidence_var = var * s**2 + noise_var
        projected = torch.cat(
            [self._vt(chunk)[:, :rank] for chunk in prior.mixture.means.split(_CHUNK)]
        )  # [N, r]
        log_evidence = -0.5 * ((y_spectral[None] - s * projected) ** 2 / evidence_var).sum(-1)
        self.log_weights = torch.log_softmax(log_evidence, dim=0)
        # z_n = scale * V^T x_n + shift, variances c (tails: null space).
        self._scale = torch.ones(prior.dim, dtype=torch.float64)
        self._shift = torch.zeros(prior.dim, dtype=torch.float64)
        self.spectral_variances = torch.full((prior.dim,), var, dtype=torch.float64)
        self._scale[:rank] = noise_var / evidence_var
        self._shift[:rank] = var * s * y_spectral / evidence_var
        self.spectral_variances[:rank] = var * noise_var / evidence_var

    # flat [B, d] <-> spectral [B, d]
    def _vt(self, flat: Tensor) -> Tensor:
        if self._flat_svd:
            return self._svd.Vt(flat)
        return self._svd.Vt(flat.reshape(flat.shape[0], *self.prior.sample_shape))

    def _v(self, z: Tensor) -> Tensor:
        return self._svd.V(z).reshape(z.shape[0], -1)

    def _ut(self, y: Tensor) -> Tensor:
        return self._svd.Ut(y.reshape(y.shape[0], -1) if self._flat_svd else y)

    @property
    def weights(self) -> Tensor:
        """``[N]`` posterior kernel weights."""
        return torch.exp(self.log_weights)

    def component_means(self, index: Tensor) -> Tensor:
        """Posterior means ``m_n`` of the kernels ``index`` (int64 ``[K]``); ``[K, *sample_shape]``."""
        flat = self._vt(self.prior.mixture.means[index]) * self._scale + self._shift
        return self.prior._image(self._v(flat))

    def log_responsibilities(self, x: Tensor) -> Tensor:
        """``log w~_n + log N(x; m_n, C)`` up to a constant per sample, for ``x`` ``[B,
        *sample_shape]``: ``[B, N]`` float64, whose argmax over ``n`` is the posterior kernel a
        sample belongs to. Computed in the ``V`` coordinates, where ``C`` is diagonal."""
        z = self._vt(x.reshape(x.shape[0], -1).to(torch.float64))  # [B, d]
        means = (
            torch.cat([self._vt(chunk) for chunk in self.prior.mixture.means.split(_CHUNK)])
            * self._scale
            + self._shift
        )  # [N, d]
        precision = 1.0 / self.spectral_variances
        squared = (
            (z**2 * precision).sum(1, keepdim=True)
            - 2 * (z * precision) @ means.T
            + (means**2 * precision).sum(1)[None]
        )
        return self.log_weights[None] - 0.5 * squared

    def mean(self) -> Tensor:
        """The posterior mean ``sum_n w~_n m_n``, ``[*sample_shape]`` float64."""
        average = self.weights[None] @ self.prior.mixture.means  # [1, d]
        return self.prior._image(self._v(self._vt(average) * self._scale + self._shift))[0]

    def sample(self, noise: SampleNoise) -> Tensor:
        """Exact posterior draws, ``[B, *sample_shape]`` float64: kernel ``n ~ w~``, then
        ``x = V (z_n + sqrt(c) xi)``."""
        log_w = self.log_weights[None].expand(noise.batch_size, -1)
        component = sample_categorical(log_w, noise).cpu()
        xi = noise.randn(self.prior.dim, dtype=torch.float64).cpu()
        z = self._vt(self.prior.mixture.means[component]) * self._scale + self._shift
        return self.prior._image(self._v(z + torch.sqrt(self.spectral_variances) * xi))


def _dense_matrix(operator: LinearOperator) -> Tensor:
    """The ``[m, d]`` float64 matrix of ``operator``, from its action on the standard basis."""
    d = operator.input_size
    rows = []
    for start in range(0, d, _CHUNK):
        count = min(_CHUNK, d - start)
        basis = torch.zeros(count, d, dtype=torch.float64)
        basis[torch.arange(count), start + torch.arange(count)] = 1.0
        rows.append(operator(basis.reshape(-1, *operator.input_shape)).reshape(basis.shape[0], -1))
    return torch.cat(rows).T.contiguous()
