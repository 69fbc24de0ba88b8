"""Forward operators ``A`` of inverse problems ``y = A(x) + noise``.

Conventions (docs/algorithms/README.md §2):

* ``A`` maps a batch ``[B, *input_shape]`` to ``[B, *output_shape]``, batched and differentiable.
* Images live in ``[-1, 1]``; the noise level of a problem is in the units of ``A(x)`` for ``x``
  in that range.
* A :class:`LinearOperator` adds the adjoint ``A^T`` and, where one exists, a matrix-free
  singular value decomposition (:class:`SingularValueDecomposition`) used by PGDM, DDNM+,
  DiffPIR and PnP-DM. An operator without an SVD says so (``svd is None``); nothing falls back
  to a placeholder silently.
* No hidden randomness: an operator with random parts draws them once, at construction.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from mgdm.devices import DeviceCopies


class Operator(ABC):
    """A batched, differentiable forward map ``A: [B, *input_shape] -> [B, *output_shape]``."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    is_linear: bool = False

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Apply ``A`` to a batch ``x`` of shape ``[B, *input_shape]``."""

    def __call__(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.forward(x)

    @property
    def svd(self) -> SingularValueDecomposition | None:
        """The operator's SVD, or ``None`` when it has none."""
        return None

    def check_input(self, x: Tensor) -> None:
        """Raise a ``ValueError`` that names both shapes when ``x`` does not fit."""
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape [B, {', '.join(map(str, self.input_shape))}]; "
                f"got {list(x.shape)}."
            )

    def check_output(self, y: Tensor) -> None:
        """Raise a ``ValueError`` when ``y`` is not ``[*output_shape]`` or ``[B, *output_shape]``."""
        shape = tuple(y.shape)
        if shape != tuple(self.output_shape) and shape[1:] != tuple(self.output_shape):
            raise ValueError(
                f"{type(self).__name__} produces observations of shape {list(self.output_shape)} "
                f"(optionally with a leading batch dimension); got {list(shape)}."
            )


class SingularValueDecomposition(ABC):
    """A matrix-free SVD ``A = U diag(s) V^T`` of a linear operator.

    Spectral coordinates are flat: ``Vt`` maps ``[B, *input_shape] -> [B, n]`` (``n`` = input
    size) and ``Ut`` maps ``[B, *output_shape] -> [B, m]``. The ``r = len(singular_values)`` first
    spectral coordinates of both sides correspond to the singular values (``r <= min(n, m)``,
    zeros allowed); the remaining input coordinates span the null space. Hence
    ``A x = U(pad_m(s * Vt(x)[:, :r]))``.
    """

    singular_values: Tensor

    @abstractmethod
    def V(self, z: Tensor) -> Tensor:
        """``[B, n] -> [B, *input_shape]``."""

    @abstractmethod
    def Vt(self, x: Tensor) -> Tensor:
        """``[B, *input_shape] -> [B, n]``."""

    @abstractmethod
    def U(self, z: Tensor) -> Tensor:
        """``[B, m] -> [B, *output_shape]``."""

    @abstractmethod
    def Ut(self, y: Tensor) -> Tensor:
        """``[B, *output_shape] -> [B, m]``."""

    @property
    def rank_size(self) -> int:
        return int(self.singular_values.numel())

    def apply(self, x: Tensor, output_size: int) -> Tensor:
        """``A x`` through the SVD (a check of the factorisation); ``[B, *output_shape]``."""
        spectral = self.Vt(x)[:, : self.rank_size] * self.singular_values.to(x)
        padded = torch.zeros(x.shape[0], output_size, dtype=x.dtype, device=x.device)
        padded[:, : self.rank_size] = spectral
        return self.U(padded)


class LinearOperator(Operator):
    """A linear operator with an explicit adjoint."""

    is_linear = True

    @abstractmethod
    def adjoint(self, y: Tensor) -> Tensor:
        """Apply ``A^T`` to ``y`` of shape ``[B, *output_shape]``; returns ``[B, *input_shape]``."""

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        return math.prod(self.output_shape)

    def pseudo_inverse(self, y: Tensor, rcond: float = 1e-6) -> Tensor:
        """``A^+ y`` through the SVD (singular values below ``rcond * max`` are dropped).

        Raises ``NotImplementedError`` for an operator without an SVD.
        """
        svd = self.svd
        if svd is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no SVD, hence no pseudo-inverse; use an SVD-free sampler."
            )
        s = svd.singular_values.to(y)
        keep = s > rcond * s.max()
        inverse = torch.where(
            keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s)
        )
        spectral = svd.Ut(y)[:, : svd.rank_size] * inverse
        padded = torch.zeros(y.shape[0], self.input_size, dtype=y.dtype, device=y.device)
        padded[:, : svd.rank_size] = spectral
        return svd.V(padded)


def image_shape_of(image_shape: tuple[int, ...] | list[int]) -> tuple[int, int, int]:
    """Validate an image shape ``(C, H, W)`` of positive integers and return it as a tuple."""
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(
            f"an image shape is (C, H, W) with positive integers; got {image_shape!r}."
        )
    return shape  # type: ignore[return-value]


def constant_first_basis(size: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """An orthogonal ``[size, size]`` matrix whose first column is ``1 / sqrt(size)``.

    It is the Householder reflection ``Q = I - 2 v v^T / (v^T v)`` with ``v = e_1 - 1/sqrt(size)``,
    which maps ``e_1`` to the normalised constant vector (``Q = I`` when ``size = 1``). ``Q`` is
    symmetric, so ``Q^{-1} = Q^T = Q``.
    """
    constant = torch.full((size,), size**-0.5, dtype=dtype)
    v = -constant
    v[0] += 1.0
    norm2 = v @ v
    eye = torch.eye(size, dtype=dtype)
    if float(norm2) == 0.0:
        return eye
    return eye - 2.0 * torch.outer(v, v) / norm2


class GroupMeanSVD(SingularValueDecomposition):
    """The SVD of an operator whose output is the mean of each of ``G`` disjoint groups of inputs.

    Each group has ``g`` inputs.

    Such an operator (block averaging, the channel mean of colourisation) has, per group, the
    row ``(1/g) 1^T = (1/sqrt(g)) q^T`` with ``q = 1/sqrt(g)``: every singular value is
    ``1/sqrt(g)``, ``U`` is the identity on the flat output, and ``V`` applies, per group, an
    orthogonal ``[g, g]`` basis ``Q`` whose first column is ``q`` (:func:`constant_first_basis`).

    Spectral coordinates: ``Vt(x)[:, :G]`` are the ``q``-components of the groups (in the order
    of the flat output), ``Vt(x)[:, G:]`` the ``g - 1`` within-group contrasts per group, which
    span the null space.

    Args:
        num_groups: ``G``, the output size.
        group_size: ``g``.
        to_groups: ``[B, *input_shape] -> [B, G, g]``, group ``k`` feeding flat output entry ``k``.
        from_groups: the inverse rearrangement ``[B, G, g] -> [B, *input_shape]``.
        output_shape: the operator's output shape (``prod = G``).
    """

    def __init__(
        self,
        num_groups: int,
        group_size: int,
        to_groups: Callable[[Tensor], Tensor],
        from_groups: Callable[[Tensor], Tensor],
        output_shape: tuple[int, ...],
    ):
        self.num_groups, self.group_size = num_groups, group_size
        self._to_groups, self._from_groups = to_groups, from_groups
        self._output_shape = output_shape
        self._basis = DeviceCopies(constant_first_basis(group_size))
        self.singular_values = torch.full((num_groups,), group_size**-0.5, dtype=torch.float64)

    def Vt(self, x: Tensor) -> Tensor:
        coefficients = self._to_groups(x) @ self._basis.like(x)
        rest = coefficients[:, :, 1:].reshape(x.shape[0], -1)
        return torch.cat([coefficients[:, :, 0], rest], dim=1)

    def V(self, z: Tensor) -> Tensor:
        first = z[:, : self.num_groups, None]
        rest = z[:, self.num_groups :].reshape(z.shape[0], self.num_groups, self.group_size - 1)
        return self._from_groups(torch.cat([first, rest], dim=2) @ self._basis.like(z).T)

    def U(self, z: Tensor) -> Tensor:
        return z.reshape(z.shape[0], *self._output_shape)

    def Ut(self, y: Tensor) -> Tensor:
        return y.reshape(y.shape[0], -1)


class SelectionSVD(SingularValueDecomposition):
    """The SVD of an operator that keeps ``m`` entries of its input (unit singular values).

    ``A x = reshape(flat(x)[order[:m]], output_shape)`` for a permutation ``order`` of the ``n``
    flat input indices: ``Vt(x) = flat(x)[order]`` (kept entries first, then the null space),
    ``V`` is its inverse permutation, ``U`` reshapes ``[B, m]`` to the output shape, and the ``m``
    singular values are 1.

    Args:
        order: int64 permutation of ``range(n)``, kept entries first.
        num_kept: ``m``.
        input_shape, output_shape: the operator's shapes (``prod(output_shape) = m``).
    """

    def __init__(
        self,
        order: Tensor,
        num_kept: int,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
    ):
        self._order = DeviceCopies(order)
        self._inverse = DeviceCopies(torch.argsort(order))
        self._input_shape, self._output_shape = input_shape, output_shape
        self.singular_values = torch.ones(num_kept, dtype=torch.float64)

    def Vt(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)[:, self._order.on(x.device)]

    def V(self, z: Tensor) -> Tensor:
        return z[:, self._inverse.on(z.device)].reshape(z.shape[0], *self._input_shape)

    def U(self, z: Tensor) -> Tensor:
        return z.reshape(z.shape[0], *self._output_shape)

    def Ut(self, y: Tensor) -> Tensor:
        return y.reshape(y.shape[0], -1)
