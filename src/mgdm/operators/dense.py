"""A linear operator given by a dense matrix, ``A x = M x`` on flat vectors."""

from __future__ import annotations

import torch
from torch import Tensor

from mgdm.devices import DeviceCopies
from mgdm.operators.base import LinearOperator, SingularValueDecomposition


class DenseSVD(SingularValueDecomposition):
    """Thin wrapper over ``torch.linalg.svd`` of an ``[m, n]`` matrix (full matrices)."""

    def __init__(self, matrix: Tensor):
        u, s, vh = torch.linalg.svd(matrix.to(torch.float64), full_matrices=True)
        self._u, self._v = DeviceCopies(u), DeviceCopies(vh.T)
        self.singular_values = s

    def V(self, z: Tensor) -> Tensor:
        return z @ self._v.like(z).T

    def Vt(self, x: Tensor) -> Tensor:
        return x @ self._v.like(x)

    def U(self, z: Tensor) -> Tensor:
        return z @ self._u.like(z).T

    def Ut(self, y: Tensor) -> Tensor:
        return y @ self._u.like(y)


class DenseOperator(LinearOperator):
    """``A x = M x`` for a matrix ``M`` of shape ``[m, n]``; inputs ``[B, n]``, outputs ``[B, m]``."""

    def __init__(self, matrix: Tensor):
        matrix = torch.as_tensor(matrix)
        if matrix.dim() != 2:
            raise ValueError(
                f"a dense operator needs a 2-D matrix; got shape {tuple(matrix.shape)}."
            )
        if not bool(torch.isfinite(matrix).all()):
            raise ValueError("the operator matrix has non-finite entries.")
        self.matrix = matrix.to(torch.float64)
        self._matrix = DeviceCopies(self.matrix)
        self.input_shape = (matrix.shape[1],)
        self.output_shape = (matrix.shape[0],)
        self._svd: DenseSVD | None = None

    def forward(self, x: Tensor) -> Tensor:
        return x @ self._matrix.like(x).T

    def adjoint(self, y: Tensor) -> Tensor:
        return y @ self._matrix.like(y)

    @property
    def svd(self) -> DenseSVD:
        if self._svd is None:
            self._svd = DenseSVD(self.matrix)
        return self._svd
