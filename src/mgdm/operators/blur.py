"""Blur operators: depth-wise 2-D convolution with a fixed kernel, and their kernels.

* :class:`Blur`: ``A x = k * x`` (true convolution, per channel, "same" size) with reflection
  padding, as the Reference's ``blur`` and ``motion_blur`` tasks. Reflection padding has no cheap
  exact SVD, so these operators offer ``A`` and ``A^T`` only.
* :class:`GaussianBlur`, :class:`MotionBlur`: :class:`Blur` with the kernels of docs/tasks.md (tasks 1-5,
  and "Scaling to small images"): :func:`gaussian_kernel`, :func:`motion_kernel`.
* :class:`ZeroBoundarySeparableBlur`: the Reference's ``blur_svd`` (DDRM's ``Deblurring``), a
  separable blur with zero boundaries whose small 1-D singular values are dropped. It has an exact
  matrix-free SVD and is an *approximation* of :class:`GaussianBlur`, for SVD-based samplers.

Images are ``[B, C, H, W]``; kernels are ``[k, k]`` with ``k`` odd and sum 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mgdm.devices import DeviceCopies
from mgdm.operators.base import LinearOperator, SingularValueDecomposition, image_shape_of
from mgdm.random import torch_generator


def gaussian_window(sigma: float, size: int, truncate: float = 4.0) -> Tensor:
    """A centred 1-D Gaussian of odd length ``size``, cut at ``radius = int(truncate sigma + 0.5)``.

    ``w[i] ∝ exp(-(i - size//2)^2 / (2 sigma^2))`` for ``|i - size//2| <= radius`` (else 0),
    normalised to sum 1 (float64). This is what Gaussian-filtering a centred delta gives
    (scipy's ``gaussian_filter`` rule), cut to the array when the support is wider than ``size``.
    """
    if not (isinstance(size, int) and size >= 1 and size % 2 == 1):
        raise ValueError(f"a kernel size must be an odd integer >= 1; got {size!r}.")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"the Gaussian blur sigma must be a finite number > 0; got {sigma!r}.")
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    radius = int(truncate * sigma + 0.5)
    window = torch.exp(-(offsets**2) / (2 * sigma**2)) * (offsets.abs() <= radius)
    return window / window.sum()


def gaussian_kernel(sigma: float, size: int, truncate: float = 4.0) -> Tensor:
    """The ``[size, size]`` Gaussian kernel ``outer(w, w)`` of :func:`gaussian_window` (sum 1).

    At 256 px the Reference uses ``sigma = 3``, ``size = 61``: a 25 x 25 non-zero support.
    """
    window = gaussian_window(sigma, size, truncate)
    return torch.outer(window, window)


def motion_kernel(size: int = 61, intensity: float = 0.5, seed: int = 0) -> Tensor:
    """A ``[size, size]`` camera-shake kernel: a random smooth trajectory, rasterised (sum 1).

    Our own generator (not the "motionblur" package the Reference uses, so its kernels differ).
    With ``N = 8 size`` points, all draws from ``torch_generator(seed)`` (float64):

    1. heading: ``theta_0 ~ U(0, 2 pi)``, and an angular velocity following the AR(1) process
       ``omega_{t+1} = 0.95 omega_t + sqrt(1 - 0.95^2) s eps_t`` with ``s = 8 pi intensity / N``,
       ``eps_t ~ N(0, 1)``; ``theta_t = theta_0 + sum_{u <= t} omega_u``. ``intensity = 0`` gives a
       straight segment; larger values bend and curl the path.
    2. path: ``(row_t, col_t) = sum_{u <= t} (sin theta_u, cos theta_u)``, rescaled so that its
       bounding box's longer side is ``size - 3`` pixels, and centred (bounding-box centre on the
       kernel centre).
    3. raster: each point spreads a unit mass over its four neighbouring pixels with bilinear
       weights; the kernel is then normalised to sum 1.

    The same ``(size, intensity, seed)`` always gives the same kernel.
    """
    if not (isinstance(size, int) and size >= 5 and size % 2 == 1):
        raise ValueError(f"a motion kernel size must be an odd integer >= 5; got {size!r}.")
    if not (math.isfinite(intensity) and 0 <= intensity <= 1):
        raise ValueError(f"the motion-blur intensity must lie in [0, 1]; got {intensity!r}.")
    generator = torch_generator(seed)
    num_points = 8 * size
    rho = 0.95
    scale = 8 * math.pi * intensity / num_points
    theta0 = 2 * math.pi * torch.rand((), generator=generator, dtype=torch.float64)
    shocks = torch.randn(num_points, generator=generator, dtype=torch.float64)
    omega = torch.zeros(num_points, dtype=torch.float64)
    for t in range(1, num_points):
        omega[t] = rho * omega[t - 1] + math.sqrt(1 - rho**2) * scale * shocks[t]
    theta = theta0 + torch.cumsum(omega, dim=0)
    path = torch.cumsum(torch.stack([torch.sin(theta), torch.cos(theta)], dim=1), dim=0)
    low, high = path.min(dim=0).values, path.max(dim=0).values
    path = (path - (low + high) / 2) * ((size - 3) / float((high - low).max())) + size // 2
    base = torch.floor(path).long()
    frac = path - base
    kernel = torch.zeros(size, size, dtype=torch.float64)
    for dr in (0, 1):
        for dc in (0, 1):
            weight = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
            kernel.index_put_((base[:, 0] + dr, base[:, 1] + dc), weight, accumulate=True)
    return kernel / kernel.sum()


def resample_kernel(kernel: Tensor, size: int) -> Tensor:
    """Area-average a square ``[k, k]`` kernel onto ``[size, size]`` and renormalise to sum 1.

    Exact area averaging: ``K' = R K R^T`` with ``R[i, j]`` the overlap of source pixel
    ``[j, j + 1)`` with target pixel ``[i k / size, (i + 1) k / size)`` (docs/tasks.md, "Scaling to small images", motion blur).
    """
    source = kernel.shape[-1]
    edges_target = torch.arange(size + 1, dtype=torch.float64) * (source / size)
    edges_source = torch.arange(source + 1, dtype=torch.float64)
    overlap = torch.minimum(edges_target[1:, None], edges_source[None, 1:]) - torch.maximum(
        edges_target[:-1, None], edges_source[None, :-1]
    )
    resample = overlap.clamp(min=0)
    resampled = resample @ kernel.to(torch.float64) @ resample.T
    return resampled / resampled.sum()


def _reflect_indices(length: int, pad: int) -> Tensor:
    """Indices ``i`` with ``padded = x[..., i]``: reflection padding by ``pad`` (no edge repeat)."""
    inner = torch.arange(length)
    return torch.cat([inner[1 : pad + 1].flip(0), inner, inner[-pad - 1 : -1].flip(0)])


class Blur(LinearOperator):
    """``A x = k * x`` per channel with reflection padding: ``[B, C, H, W] -> [B, C, H, W]``.

    ``(A x)[c, i, j] = sum_{a, b} k[a, b] (P x)[c, i + 2p - a, j + 2p - b]``: a true convolution
    centred on ``k[p, p]``, with ``P`` the reflection padding by ``p = k // 2`` (torch's
    ``reflect``: the edge pixel is not repeated), computed as the "valid" cross-correlation of
    ``P x`` with the flipped kernel. The adjoint is ``A^T y = P^T conv_transpose(y, flip(k))``,
    with ``P^T`` summing every padded pixel back onto the pixel it copies. No SVD.

    Args:
        image_shape: ``(C, H, W)``; needs ``H, W > k // 2`` (reflection padding).
        kernel: ``[k, k]``, ``k`` odd; applied to every channel.
    """

    def __init__(self, image_shape: tuple[int, int, int], kernel: Tensor):
        channels, height, width = image_shape_of(image_shape)
        kernel = torch.as_tensor(kernel, dtype=torch.float64)
        if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise ValueError(
                f"a blur kernel is a square [k, k] tensor with k odd; got {list(kernel.shape)}."
            )
        if not bool(torch.isfinite(kernel).all()):
            raise ValueError("the blur kernel has non-finite entries.")
        pad = kernel.shape[0] // 2
        if pad >= min(height, width):
            raise ValueError(
                f"a {kernel.shape[0]}x{kernel.shape[0]} kernel with reflection padding {pad} "
                f"needs an image larger than {pad} pixels on each side; got {height}x{width}."
            )
        self.kernel = kernel
        self.input_shape = self.output_shape = (channels, height, width)
        self._pad = pad
        self._rows = DeviceCopies(_reflect_indices(height, pad))
        self._cols = DeviceCopies(_reflect_indices(width, pad))
        # the depth-wise conv2d weight [C, 1, k, k]: the flipped kernel for every channel
        self._weight = DeviceCopies(kernel.flip(0, 1).repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        padded = x.index_select(-2, self._rows.on(x.device)).index_select(
            -1, self._cols.on(x.device)
        )
        return F.conv2d(padded, self._weight.like(x), groups=self.input_shape[0])

    def adjoint(self, y: Tensor) -> Tensor:
        padded = F.conv_transpose2d(y, self._weight.like(y), groups=self.input_shape[0])
        channels, height, width = self.input_shape
        rows = torch.zeros(*padded.shape[:-1], width, dtype=y.dtype, device=y.device)
        rows = rows.index_add(-1, self._cols.on(y.device), padded)
        out = torch.zeros(y.shape[0], channels, height, width, dtype=y.dtype, device=y.device)
        return out.index_add(-2, self._rows.on(y.device), rows)

    def __repr__(self) -> str:
        k = self.kernel.shape[0]
        return f"Blur(kernel={k}x{k}, image_shape={self.input_shape})"


class GaussianBlur(Blur):
    """:class:`Blur` with the Gaussian kernel :func:`gaussian_kernel` ``(sigma, kernel_size)``.

    The Reference ``blur`` task at 256 px is ``sigma = 3``, ``kernel_size = 61``.
    """

    def __init__(self, image_shape: tuple[int, int, int], sigma: float, kernel_size: int):
        super().__init__(image_shape, gaussian_kernel(sigma, kernel_size))
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        k = self.kernel.shape[0]
        return f"GaussianBlur(sigma={self.sigma:g}, kernel={k}x{k}, image_shape={self.input_shape})"


class MotionBlur(Blur):
    """:class:`Blur` with a seeded random-trajectory kernel (:func:`motion_kernel`), drawn once.

    The trajectory is drawn at ``trajectory_size`` (61: the Reference's size at 256 px) and, when
    ``kernel_size`` differs, area-resampled to ``kernel_size`` (:func:`resample_kernel`), so that
    a small image sees the same relative motion (docs/tasks.md, "Scaling to small images").
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        kernel_size: int,
        intensity: float = 0.5,
        seed: int = 0,
        trajectory_size: int = 61,
    ):
        kernel = motion_kernel(trajectory_size, intensity, seed)
        if kernel_size != trajectory_size:
            if not (isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 1):
                raise ValueError(f"a kernel size must be an odd integer >= 1; got {kernel_size!r}.")
            kernel = resample_kernel(kernel, kernel_size)
        super().__init__(image_shape, kernel)
        self.intensity, self.seed = float(intensity), int(seed)

    def __repr__(self) -> str:
        k = self.kernel.shape[0]
        return (
            f"MotionBlur(kernel={k}x{k}, intensity={self.intensity:g}, seed={self.seed}, "
            f"image_shape={self.input_shape})"
        )


class _SeparableSVD(SingularValueDecomposition):
    """``A = M_h ⊗ M_w`` per channel, ``M = U diag(s) V^T`` per axis; flat, sorted coordinates."""

    def __init__(
        self,
        rows: tuple[Tensor, Tensor, Tensor],
        cols: tuple[Tensor, Tensor, Tensor],
        shape: tuple[int, int, int],
    ):
        (uh, sh, vh), (uw, sw, vw) = rows, cols
        self._uh, self._vh, self._uw, self._vw = map(DeviceCopies, (uh, vh, uw, vw))
        self._shape = shape
        channels = shape[0]
        values = torch.outer(sh, sw).reshape(-1).repeat(channels)
        order = torch.argsort(values, descending=True, stable=True)
        self._order, self._inverse = DeviceCopies(order), DeviceCopies(torch.argsort(order))
        self.singular_values = values[order][values[order] > 0]

    def _to_spectral(self, x: Tensor, left: DeviceCopies, right: DeviceCopies) -> Tensor:
        flat = (left.like(x).T @ x @ right.like(x)).reshape(x.shape[0], -1)
        return flat[:, self._order.on(x.device)]

    def _from_spectral(self, z: Tensor, left: DeviceCopies, right: DeviceCopies) -> Tensor:
        grid = z[:, self._inverse.on(z.device)].reshape(z.shape[0], *self._shape)
        return left.like(z) @ grid @ right.like(z).T

    def Vt(self, x: Tensor) -> Tensor:
        return self._to_spectral(x, self._vh, self._vw)

    def V(self, z: Tensor) -> Tensor:
        return self._from_spectral(z, self._vh, self._vw)

    def Ut(self, y: Tensor) -> Tensor:
        return self._to_spectral(y, self._uh, self._uw)

    def U(self, z: Tensor) -> Tensor:
        return self._from_spectral(z, self._uh, self._uw)


class ZeroBoundarySeparableBlur(LinearOperator):
    """The Reference's ``blur_svd``: a separable blur with zero boundaries and truncated spectrum.

    Per axis of length ``n``, ``M[i, j] = w[i - j + r]`` for ``|i - j| <= r`` (the 1-D kernel ``w``
    of length ``2 r + 1``, pixels outside the image count as 0), with SVD ``M = U diag(s) V^T``;
    singular values below ``zero`` are set to 0 (DDRM's ``Deblurring``; 73 of 256 are kept for
    ``sigma = 3``). The operator *is* the truncated one, ``A X = M_h' X M_w'^T`` per channel with
    ``M' = U diag(s') V^T``, so its SVD (2-D singular values ``s'_h[i] s'_w[j]``, sorted in
    decreasing order, zeros dropped) is exact. It only approximates :class:`GaussianBlur`
    (different boundary, dropped frequencies): use it where an SVD is required.

    Args:
        image_shape: ``(C, H, W)``.
        window: the 1-D kernel ``w`` (odd length, e.g. :func:`gaussian_window`).
        zero: the threshold on the 1-D singular values (3e-2 in the Reference).
    """

    def __init__(self, image_shape: tuple[int, int, int], window: Tensor, zero: float = 3e-2):
        channels, height, width = image_shape_of(image_shape)
        window = torch.as_tensor(window, dtype=torch.float64)
        if window.dim() != 1 or window.numel() % 2 == 0:
            raise ValueError(
                f"the 1-D blur kernel must have odd length; got shape {list(window.shape)}."
            )
        if window.numel() // 2 >= min(height, width):
            raise ValueError(
                f"a 1-D kernel of length {window.numel()} does not fit an image of "
                f"{height}x{width}."
            )
        self.window, self.zero = window, float(zero)
        self.input_shape = self.output_shape = (channels, height, width)
        rows, cols = self._axis_svd(height), self._axis_svd(width)
        self._rows = DeviceCopies(rows[0] @ torch.diag(rows[1]) @ rows[2].T)
        self._cols = DeviceCopies(cols[0] @ torch.diag(cols[1]) @ cols[2].T)
        self._svd = _SeparableSVD(rows, cols, self.input_shape)

    def _axis_svd(self, length: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(U, s', V)`` of the ``[length, length]`` zero-boundary convolution matrix."""
        radius = self.window.numel() // 2
        offset = torch.arange(length)[:, None] - torch.arange(length)[None, :]
        inside = offset.abs() <= radius
        matrix = torch.where(inside, self.window[(offset + radius).clamp(0, 2 * radius)], 0.0)
        u, s, vh = torch.linalg.svd(matrix)
        return u, torch.where(s < self.zero, torch.zeros_like(s), s), vh.T

    def forward(self, x: Tensor) -> Tensor:
        return self._rows.like(x) @ x @ self._cols.like(x).T

    def adjoint(self, y: Tensor) -> Tensor:
        return self._rows.like(y).T @ y @ self._cols.like(y)

    @property
    def svd(self) -> _SeparableSVD:
        return self._svd

    def __repr__(self) -> str:
        return (
            f"ZeroBoundarySeparableBlur(kernel={self.window.numel()}, zero={self.zero:g}, "
            f"rank={self._svd.rank_size}, image_shape={self.input_shape})"
        )
