"""The mixing operator of source separation: the mix is the sum of the stems.

``A x = sum_s x[s]`` for ``x`` of shape ``[S, L]``, i.e. ``A = [1 … 1] ⊗ I_L`` (docs/algorithms/problems.md §1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mgdm.operators.base import GroupMeanSVD, LinearOperator


class MixingSVD(GroupMeanSVD):
    """The SVD of :class:`Mixing`, matrix-free.

    Per time sample ``n`` the operator's row is ``1^T = sqrt(S) q^T`` with ``q = 1 / sqrt(S)``
    (``(1, 1, 1, 1) / 2`` for four stems): the sum is ``S`` times the group mean over the stems
    of each time sample, so the factorisation is :class:`GroupMeanSVD`'s (``U`` the identity on
    the mix, ``V`` an orthogonal ``[S, S]`` basis per time sample whose first column is ``q``)
    with every singular value multiplied by ``S``: ``L`` singular values ``sqrt(S)`` (2 for four
    stems).

    Spectral coordinates: ``Vt(x)[:, :L] = A x / sqrt(S)``; ``Vt(x)[:, L:]`` holds the ``S - 1``
    contrasts of each time sample (time-major), which span the null space.
    """

    def __init__(self, num_stems: int, length: int):
        super().__init__(
            length,
            num_stems,
            lambda x: x.transpose(1, 2),
            lambda groups: groups.transpose(1, 2),
            (length,),
        )
        self.singular_values = torch.full((length,), math.sqrt(num_stems), dtype=torch.float64)


class Mixing(LinearOperator):
    """``(A x)[n] = sum_s x[s, n]``: ``[B, S, L] -> [B, L]``.

    The adjoint copies the mix to every stem; the pseudo-inverse ``A^+ y = A^T y / S`` splits it
    equally (through :class:`MixingSVD`). No noise inside: the noise model of a separation problem
    goes in its :class:`~mgdm.problem.Problem`.

    Args:
        num_stems: ``S``.
        length: ``L``, samples per stem.
    """

    def __init__(self, num_stems: int = 4, length: int = 2**14):
        for name, value in (("num_stems", num_stems), ("length", length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Mixing {name} must be a positive integer; got {value!r}.")
        self.num_stems = num_stems
        self.length = length
        self.input_shape = (num_stems, length)
        self.output_shape = (length,)
        self._svd = MixingSVD(num_stems, length)

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(dim=1)

    def adjoint(self, y: Tensor) -> Tensor:
        return y[:, None, :].repeat(1, self.num_stems, 1)

    @property
    def svd(self) -> MixingSVD:
        return self._svd

    def __repr__(self) -> str:
        return f"Mixing(num_stems={self.num_stems}, length={self.length})"
