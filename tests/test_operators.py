"""Forward operators: adjointness, SVDs, pseudo-inverses, gradients, invariances, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from mgdm.operators import (
    Blur,
    Colorization,
    GaussianBlur,
    HighDynamicRange,
    Identity,
    Inpainting,
    LinearOperator,
    MotionBlur,
    NetworkOperator,
    Operator,
    PhaseRetrieval,
    PoissonNoise,
    SaturatedBlur,
    SuperResolution,
    ZeroBoundarySeparableBlur,
    box_mask,
    constant_first_basis,
    gaussian_kernel,
    gaussian_window,
    left_half_mask,
    motion_kernel,
    resample_kernel,
)
from mgdm.random import SampleNoise
from mgdm.tasks import TASKS, make_task

DTYPE = torch.float64


def _random_kernel(size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    kernel = torch.rand(size, size, generator=generator, dtype=DTYPE)
    return kernel / kernel.sum()


LINEAR_OPERATORS: dict[str, LinearOperator] = {
    "sr2": SuperResolution((2, 8, 12), 2),
    "sr4": SuperResolution((1, 8, 8), 4),
    "sr1": SuperResolution((1, 3, 5), 1),
    "box": Inpainting(box_mask((2, 10, 9), (2, 6), (3, 7))),
    "half": Inpainting(left_half_mask((3, 6, 7))),
    "gaussian_blur": GaussianBlur((2, 9, 11), sigma=0.8, kernel_size=5),
    "motion_blur": MotionBlur((1, 10, 12), kernel_size=7, intensity=0.5, seed=3),
    "asymmetric_blur": Blur((2, 7, 9), _random_kernel(5, 1)),
    "separable_blur": ZeroBoundarySeparableBlur((2, 8, 10), gaussian_window(1.0, 5), zero=0.2),
    "colorization": Colorization((3, 5, 7)),
    "identity": Identity((2, 3, 4)),
}
SVD_OPERATORS = {name: op for name, op in LINEAR_OPERATORS.items() if op.svd is not None}


def _dense(operator: LinearOperator) -> torch.Tensor:
    """The ``[m, n]`` matrix of ``operator``, column by column."""
    basis = torch.eye(operator.input_size, dtype=DTYPE).reshape(-1, *operator.input_shape)
    return operator(basis).reshape(operator.input_size, -1).T


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


# --- adjointness ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LINEAR_OPERATORS))
def test_adjoint_inner_products(name: str) -> None:
    op = LINEAR_OPERATORS[name]
    x, y = _randn(3, *op.input_shape, seed=1), _randn(3, *op.output_shape, seed=2)
    left = (op(x) * y).flatten(1).sum(1)
    right = (x * op.adjoint(y)).flatten(1).sum(1)
    torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-12)


LINEAR_TASKS = [name for name in TASKS if make_task(name, (3, 16, 16)).is_linear]


@pytest.mark.parametrize("name", LINEAR_TASKS)
def test_adjoint_of_every_linear_task(name: str) -> None:
    for shape in [(1, 32, 32), (3, 16, 16)] if name != "colorization" else [(3, 16, 16)]:
        op = make_task(name, shape).operator
        x, y = _randn(2, *op.input_shape, seed=3), _randn(2, *op.output_shape, seed=4)
        torch.testing.assert_close(
            (op(x) * y).sum(), (x * op.adjoint(y)).sum(), rtol=1e-10, atol=1e-10
        )


def test_reflection_blur_matches_torch_reflect_padding() -> None:
    op = LINEAR_OPERATORS["asymmetric_blur"]
    x = _randn(2, *op.input_shape, seed=5)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect"),
        op.kernel.flip(0, 1).expand(2, 1, 5, 5),
        groups=2,
    )
    torch.testing.assert_close(op(x), expected)
    # a true convolution: a centred delta gives the kernel itself
    delta = torch.zeros(1, *op.input_shape, dtype=DTYPE)
    delta[0, :, 3, 4] = 1
    torch.testing.assert_close(op(delta)[0, 0, 1:6, 2:7], op.kernel)


# --- SVD and pseudo-inverse ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(SVD_OPERATORS))
def test_svd_reconstructs_the_operator(name: str) -> None:
    op = SVD_OPERATORS[name]
    svd = op.svd
    n, m = op.input_size, op.output_size
    s = svd.singular_values
    assert s.dim() == 1 and s.numel() <= min(n, m) and bool((s >= 0).all())
    x, y = _randn(3, *op.input_shape, seed=6), _randn(3, *op.output_shape, seed=7)
    torch.testing.assert_close(svd.apply(x, m), op(x))  # U S V^T x = A x
    torch.testing.assert_close(svd.V(svd.Vt(x)), x)  # V orthogonal (n x n)
    torch.testing.assert_close(svd.U(svd.Ut(y)), y)  # U orthogonal (m x m)
    z = _randn(3, n, seed=8)
    torch.testing.assert_close(svd.Vt(svd.V(z)), z)
    # the adjoint through the SVD: V S U^T y
    spectral = torch.zeros(3, n, dtype=DTYPE)
    spectral[:, : s.numel()] = s * svd.Ut(y)[:, : s.numel()]
    torch.testing.assert_close(svd.V(spectral), op.adjoint(y))


@pytest.mark.parametrize("name", list(SVD_OPERATORS))
def test_pseudo_inverse_identities(name: str) -> None:
    op = SVD_OPERATORS[name]
    x, y = _randn(3, *op.input_shape, seed=9), _randn(3, *op.output_shape, seed=10)
    pinv = op.pseudo_inverse
    torch.testing.assert_close(op(pinv(op(x))), op(x))  # A A^+ A = A
    torch.testing.assert_close(pinv(op(pinv(y))), pinv(y))  # A^+ A A^+ = A^+
    if op.input_size <= 400:
        dense = _dense(op)
        expected = (torch.linalg.pinv(dense) @ y.reshape(3, -1).T).T
        torch.testing.assert_close(pinv(y).reshape(3, -1), expected)


def test_closed_form_pseudo_inverses() -> None:
    sr = SuperResolution((2, 8, 8), 4)
    y = _randn(2, *sr.output_shape, seed=11)
    torch.testing.assert_close(sr.pseudo_inverse(y), 16 * sr.adjoint(y))  # nearest upsampling
    colour = Colorization((3, 4, 4))
    g = _randn(2, 1, 4, 4, seed=12)
    torch.testing.assert_close(colour.pseudo_inverse(g), g.expand(-1, 3, -1, -1))
    mask = LINEAR_OPERATORS["box"]
    v = _randn(2, *mask.output_shape, seed=13)
    torch.testing.assert_close(mask.pseudo_inverse(v), mask.adjoint(v))
    assert torch.allclose(sr.svd.singular_values, torch.full((8,), 0.25, dtype=DTYPE))


def test_constant_first_basis_is_orthogonal() -> None:
    for size in (1, 3, 16):
        q = constant_first_basis(size)
        torch.testing.assert_close(q.T @ q, torch.eye(size, dtype=DTYPE))
        torch.testing.assert_close(q[:, 0], torch.full((size,), size**-0.5, dtype=DTYPE))


def test_blur_without_svd_has_no_pseudo_inverse() -> None:
    op = LINEAR_OPERATORS["gaussian_blur"]
    assert op.svd is None
    with pytest.raises(NotImplementedError):
        op.pseudo_inverse(_randn(1, *op.output_shape))


def test_separable_blur_matches_the_reference_rank_at_256() -> None:
    # DDRM's Deblurring with a sigma-3 Gaussian keeps 73 of the 256 1-D singular values (docs/tasks.md)
    op = ZeroBoundarySeparableBlur((1, 256, 256), gaussian_window(3.0, 25))
    assert op.svd.rank_size == 73 * 73
    # without truncation it is exactly the zero-boundary separable convolution
    small = ZeroBoundarySeparableBlur((1, 12, 12), gaussian_window(1.0, 5), zero=0.0)
    x = _randn(2, 1, 12, 12, seed=14)
    expected = torch.nn.functional.conv2d(x, gaussian_kernel(1.0, 5)[None, None], padding=2)
    torch.testing.assert_close(small(x), expected)


# --- kernels -------------------------------------------------------------------------------


def test_gaussian_kernel_reference_support() -> None:
    kernel = gaussian_kernel(3.0, 61)
    assert kernel.shape == (61, 61)
    assert math.isclose(float(kernel.sum()), 1.0, rel_tol=1e-12)
    nonzero = torch.nonzero(kernel[30])
    assert (int(nonzero.min()), int(nonzero.max())) == (18, 42)  # 25 x 25 support
    torch.testing.assert_close(kernel, kernel.T)


def test_motion_kernel_is_fixed_by_its_seed() -> None:
    first, second = motion_kernel(61, 0.5, 0), motion_kernel(61, 0.5, 0)
    assert torch.equal(first, second)
    assert math.isclose(float(first.sum()), 1.0, rel_tol=1e-12) and bool((first >= 0).all())
    assert not torch.equal(first, motion_kernel(61, 0.5, 1))
    op = make_task("motion_blur", (1, 32, 32), seed=0).operator
    again = make_task("motion_blur", (1, 32, 32), seed=0).operator
    assert torch.equal(op.kernel, again.kernel)
    assert op.kernel.shape == (9, 9) and math.isclose(float(op.kernel.sum()), 1.0, rel_tol=1e-12)
    x = _randn(2, 1, 32, 32, seed=15)
    assert torch.equal(op(x), op(x))  # the same kernel at every call


def test_resample_kernel_preserves_mass_and_shape() -> None:
    kernel = motion_kernel(61, 0.5, 2)
    small = resample_kernel(kernel, 17)
    assert small.shape == (17, 17) and math.isclose(float(small.sum()), 1.0, rel_tol=1e-12)
    torch.testing.assert_close(resample_kernel(kernel, 61), kernel)


# --- non-linear operators -----------------------------------------------------------------


def test_phase_retrieval_invariances() -> None:
    op = PhaseRetrieval((2, 16, 16))
    assert op.output_shape == (2, 24, 24)
    x = -torch.ones(1, 2, 16, 16, dtype=DTYPE)
    x[:, :, 4:12, 3:11] = _randn(1, 2, 8, 8, seed=16).clamp(-1, 1)  # content on a zero border
    y = op(x)
    torch.testing.assert_close(op(-x - 2), y)  # sign flip of the signal u = (x + 1) / 2
    torch.testing.assert_close(op(x.flip(-2, -1)), y)  # conjugate flip (180-degree rotation)
    torch.testing.assert_close(op(torch.roll(x, (3, -2), (-2, -1))), y)  # translation
    # Parseval with the orthonormal FFT: ||A(x)|| = ||(x + 1) / 2||
    torch.testing.assert_close(y.square().sum(), ((x + 1) / 2).square().sum())


def test_hdr_and_saturated_blur_formulas() -> None:
    x = _randn(2, 1, 8, 8, seed=17).clamp(-1, 1)
    torch.testing.assert_close(HighDynamicRange((1, 8, 8))(x), (2 * x).clamp(-1, 1))
    blur = MotionBlur((1, 8, 8), kernel_size=5, seed=0)
    surrogate = SaturatedBlur(blur, beta=2.0)
    torch.testing.assert_close(surrogate(x), torch.tanh(2 * blur(x)) / math.tanh(2.0))
    ones = torch.ones(1, 1, 8, 8, dtype=DTYPE)
    torch.testing.assert_close(surrogate(ones), ones)  # [-1, 1] onto itself


def test_network_operator_wraps_a_module() -> None:
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Tanh()).double()
    op = NetworkOperator(module, (1, 8, 8), (1, 8, 8))
    x = _randn(2, 1, 8, 8, seed=18).requires_grad_(True)
    op(x).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert not module.training
    wrong = NetworkOperator(module, (1, 8, 8), (1, 4, 4))
    with pytest.raises(ValueError, match="expected"):
        wrong(x)


# --- gradients -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TASKS))
def test_gradients_are_finite(name: str) -> None:
    shape = (3, 16, 16)
    op: Operator = make_task(name, shape).operator
    weights = _randn(1, *op.output_shape, seed=19)
    for x0 in [_randn(2, *shape, seed=20).clamp(-1, 1), -torch.ones(1, *shape, dtype=DTYPE)]:
        x = x0.clone().requires_grad_(True)
        out = op(x)
        (out.square().sum() + (out * weights).sum()).backward()
        assert x.grad is not None and bool(torch.isfinite(x.grad).all()), name
        assert bool(torch.isfinite(out).all())


def test_operators_keep_float32() -> None:
    for name in TASKS:
        op = make_task(name, (3, 16, 16)).operator
        assert op(torch.zeros(1, 3, 16, 16)).dtype == torch.float32, name


# --- bad inputs ----------------------------------------------------------------------------


def test_wrong_input_shapes_raise() -> None:
    op = make_task("sr4", (1, 32, 32)).operator
    with pytest.raises(ValueError, match="expects inputs of shape"):
        op(torch.zeros(2, 3, 32, 32))  # wrong channel count
    with pytest.raises(ValueError, match="expects inputs of shape"):
        op(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="expects inputs of shape"):
        op(torch.zeros(1, 32, 32))  # no batch dimension
    with pytest.raises(ValueError, match="expects inputs of shape"):
        make_task("colorization", (3, 8, 8)).operator(torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SuperResolution((1, 8, 8), 16), "multiples of 16"),
        (lambda: SuperResolution((1, 12, 10), 4), "multiples of 4"),
        (lambda: SuperResolution((1, 8, 8), 0), ">= 1"),
        (lambda: GaussianBlur((1, 4, 4), 1.0, 9), "larger than 4 pixels"),
        (lambda: GaussianBlur((1, 16, 16), 1.0, 8), "odd"),
        (lambda: GaussianBlur((1, 16, 16), 0.0, 5), "sigma"),
        (lambda: MotionBlur((1, 16, 16), 5, intensity=1.5), "intensity"),
        (lambda: ZeroBoundarySeparableBlur((1, 4, 4), gaussian_window(2.0, 11)), "does not fit"),
        (lambda: Colorization((1, 8, 8)), "3 \\(RGB\\) channels"),
        (lambda: Inpainting(torch.zeros(1, 4, 4, dtype=torch.bool)), "keeps no pixel"),
        (lambda: Inpainting(torch.ones(4, 4, dtype=torch.bool)), "\\[C, H, W\\]"),
        (lambda: box_mask((1, 8, 8), (2, 9), (1, 3)), "does not fit"),
        (lambda: PhaseRetrieval((1, 8, 8), oversampling=-1.0), "oversampling"),
        (lambda: HighDynamicRange((1, 8, 8), scale=0.0), "scale"),
        (lambda: Identity(()), "positive integers"),
        (lambda: make_task("sr4", (32, 32)), "\\(C, H, W\\)"),
        (lambda: make_task("sr4", (1, 0, 32)), "\\(C, H, W\\)"),
        (lambda: make_task("sr16", (1, 8, 8)), "multiples of 16"),
        (lambda: make_task("jpeg", (3, 8, 8)), "multiples of 16"),
        (lambda: PoissonNoise(0.0), "rate"),
    ],
)
def test_bad_construction_raises(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- noise ---------------------------------------------------------------------------------


def test_poisson_noise_log_likelihood_and_draws() -> None:
    from scipy.stats import poisson

    noise = PoissonNoise(rate=200.0)
    clean = torch.linspace(-0.9, 0.9, 50, dtype=DTYPE).reshape(1, 50).expand(3, 50)
    y = noise.observe(clean, SampleNoise([5, 6, 5]))
    assert torch.equal(y[0], y[2]) and not torch.equal(y[0], y[1])  # per-sample streams
    alone = noise.observe(clean[:1], SampleNoise([6]))
    assert torch.equal(alone[0], y[1])  # a sample's draw does not depend on its batch
    counts = (200 * (y + 1) / 2).round()
    torch.testing.assert_close(counts, 200 * (y + 1) / 2)  # y is a rescaled count
    rate = 200 * (clean + 1) / 2
    expected = torch.tensor(poisson.logpmf(counts.numpy(), rate.numpy()).sum(1))
    torch.testing.assert_close(noise.log_likelihood(y, clean), expected)
    big = PoissonNoise(rate=800.0).observe(torch.zeros(1, 20000, dtype=DTYPE), SampleNoise([1]))
    assert abs(float(big.std()) - 0.05) < 0.003  # rate 800 gives std 0.05 at A(x) = 0
