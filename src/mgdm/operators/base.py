"""Forward operators ``A`` of inverse problems ``y = A(x) + noise``.

Conventions (design.md):

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

import torch
from torch import Tensor


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
        inverse = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
        spectral = svd.Ut(y)[:, : svd.rank_size] * inverse
        padded = torch.zeros(y.shape[0], self.input_size, dtype=y.dtype, device=y.device)
        padded[:, : svd.rank_size] = spectral
        return svd.V(padded)
