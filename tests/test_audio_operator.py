"""The mixing operator of source separation: adjoint, SVD, pseudo-inverse, bad inputs."""

from __future__ import annotations

import pytest
import torch

from mgdm.operators.mixing import Mixing

DTYPE = torch.float64


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


@pytest.mark.parametrize(("stems", "length"), [(4, 16), (3, 5), (1, 7)])
def test_forward_sums_stems_and_adjoint_identity(stems: int, length: int) -> None:
    op = Mixing(stems, length)
    x, y = _randn(3, stems, length, seed=1), _randn(3, length, seed=2)
    torch.testing.assert_close(op(x), x.sum(1))
    assert op.input_shape == (stems, length) and op.output_shape == (length,)
    left = (op(x) * y).sum(1)
    right = (x * op.adjoint(y)).flatten(1).sum(1)
    torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-12)


def test_svd_reconstructs_the_operator_and_is_orthogonal() -> None:
    op = Mixing(4, 6)
    svd = op.svd
    n, m = op.input_size, op.output_size
    torch.testing.assert_close(svd.singular_values, torch.full((6,), 2.0, dtype=DTYPE))
    x, y = _randn(3, 4, 6, seed=3), _randn(3, 6, seed=4)
    torch.testing.assert_close(svd.apply(x, m), op(x))  # U S V^T x = A x
    torch.testing.assert_close(svd.V(svd.Vt(x)), x)  # V orthogonal (n x n)
    z = _randn(3, n, seed=5)
    torch.testing.assert_close(svd.Vt(svd.V(z)), z)
    torch.testing.assert_close(svd.U(svd.Ut(y)), y)
    # the adjoint through the SVD: V S U^T y
    spectral = torch.zeros(3, n, dtype=DTYPE)
    spectral[:, :m] = 2.0 * svd.Ut(y)
    torch.testing.assert_close(svd.V(spectral), op.adjoint(y))
    # the dense matrix: V is orthogonal, its first m columns are (1, 1, 1, 1)/2 per time sample
    basis = svd.V(torch.eye(n, dtype=DTYPE)).reshape(n, n).T  # column j = V e_j
    torch.testing.assert_close(basis.T @ basis, torch.eye(n, dtype=DTYPE))
    first = basis[:, :m].reshape(4, 6, m)
    for sample in range(6):
        expected = torch.zeros(4, 6, dtype=DTYPE)
        expected[:, sample] = 0.5
        torch.testing.assert_close(first[:, :, sample], expected)
    # the null space: A V e_j = 0 for j >= m
    null = basis[:, m:].T.reshape(-1, 4, 6)
    torch.testing.assert_close(op(null), torch.zeros(n - m, 6, dtype=DTYPE))


def test_pseudo_inverse_splits_the_mix_equally() -> None:
    op = Mixing(4, 9)
    y = _randn(2, 9, seed=6)
    pinv = op.pseudo_inverse(y)
    torch.testing.assert_close(pinv, y[:, None, :].expand(-1, 4, -1) / 4)
    torch.testing.assert_close(op(pinv), y)  # A A^+ = I (full row rank)
    dense = torch.cat([torch.eye(9, dtype=DTYPE)] * 4, dim=1)  # [9, 36], stem-major
    expected = (torch.linalg.pinv(dense) @ y.T).T.reshape(2, 4, 9)
    torch.testing.assert_close(pinv, expected)


def test_bad_inputs_raise() -> None:
    op = Mixing(4, 8)
    with pytest.raises(ValueError, match=r"expects inputs of shape \[B, 4, 8\]"):
        op(torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="num_stems must be a positive integer"):
        Mixing(0, 8)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        Mixing(4, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="produces observations of shape"):
        op.check_output(torch.zeros(2, 7))
