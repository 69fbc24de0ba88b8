"""The image restoration tasks by name: operator, scaled to any image size (docs/tasks.md).

The paper ran every task on 256 x 256 RGB images. For an ``H x W`` image the registry applies the
scaling rules of docs/tasks.md, "Scaling to small images" (a proposal: the same difficulty in relative terms), with
``n = min(H, W)`` where a single size is needed:

* box: rows ``[floor(50 H/256), floor(200 H/256))`` x columns
  ``[floor(50 W/256), floor(200 W/256))`` (150/256 of each side, 50/256 above and left, 56/256
  below and right);
* Gaussian blur: ``sigma = 3 n / 256``, kernel ``2 ceil(30 n / 256) + 1``;
* motion blur: the 61 x 61 trajectory kernel (intensity 0.5, drawn from the task's seed)
  area-resampled to ``2 ceil(30 n / 256) + 1``;
* phase retrieval: ``int(2 / 8 * H)`` rows and ``int(2 / 8 * W)`` columns of zeros per side;
* the other operators need no scaling.

The noise model is not part of a task: the Reference uses ``GaussianNoise(0.05)`` (``sigma_y``
in the ``[-1, 1]`` units of ``A(x)``) for every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mgdm.operators import (
    JPEG,
    Colorization,
    GaussianBlur,
    HighDynamicRange,
    Identity,
    Inpainting,
    MotionBlur,
    Operator,
    PhaseRetrieval,
    SaturatedBlur,
    SuperResolution,
    box_mask,
    image_shape_of,
    left_half_mask,
)

ImageShape = tuple[int, int, int]


def scaled_kernel_size(n: int) -> int:
    """``2 ceil(30 n / 256) + 1``: the 61-px kernel of a 256-px image, scaled to ``n`` px."""
    return 2 * (-(-30 * n // 256)) + 1


def _box(shape: ImageShape) -> Operator:
    _, height, width = shape
    rows = (50 * height // 256, 200 * height // 256)
    cols = (50 * width // 256, 200 * width // 256)
    return Inpainting(box_mask(shape, rows, cols))


def _gaussian_blur(shape: ImageShape) -> Operator:
    n = min(shape[1:])
    return GaussianBlur(shape, sigma=3 * n / 256, kernel_size=scaled_kernel_size(n))


def _motion_blur(shape: ImageShape, seed: int) -> MotionBlur:
    return MotionBlur(shape, scaled_kernel_size(min(shape[1:])), intensity=0.5, seed=seed)


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: ``build(image_shape, seed)`` returns its operator."""

    name: str
    summary: str
    build: Callable[[ImageShape, int], Operator]


_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "sr4", "super-resolution x4: mean over 4x4 blocks", lambda s, _: SuperResolution(s, 4)
    ),
    TaskSpec(
        "sr16", "super-resolution x16: mean over 16x16 blocks", lambda s, _: SuperResolution(s, 16)
    ),
    TaskSpec(
        "box_inpainting",
        "box inpainting: a square of 150/256 of the side removed, 50/256 from the top-left",
        lambda s, _: _box(s),
    ),
    TaskSpec(
        "half_mask",
        "half mask: the right half is missing",
        lambda s, _: Inpainting(left_half_mask(s)),
    ),
    TaskSpec(
        "gaussian_blur",
        "Gaussian deblurring: sigma 3n/256, reflection padding (no SVD)",
        lambda s, _: _gaussian_blur(s),
    ),
    TaskSpec(
        "motion_blur",
        "motion deblurring: seeded random-trajectory kernel, reflection padding (no SVD)",
        _motion_blur,
    ),
    TaskSpec(
        "jpeg",
        "JPEG dequantisation, QF 2, DiffJPEG tables, cubic rounding",
        lambda s, _: JPEG(s, 2),
    ),
    TaskSpec(
        "phase_retrieval",
        "phase retrieval: Fourier magnitude, oversampling 2",
        lambda s, _: PhaseRetrieval(s, 2.0),
    ),
    TaskSpec(
        "nonlinear_blur",
        "SURROGATE non-linear deblurring: tanh(2 k*x)/tanh(2), motion kernel (not the paper's)",
        lambda s, seed: SaturatedBlur(_motion_blur(s, seed), beta=2.0),
    ),
    TaskSpec("hdr", "high dynamic range: clip(2x, -1, 1)", lambda s, _: HighDynamicRange(s, 2.0)),
    TaskSpec("denoising", "denoising: identity", lambda s, _: Identity(s)),
    TaskSpec(
        "colorization",
        "colourisation: grey level = channel mean (RGB only)",
        lambda s, _: Colorization(s),
    ),
)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _SPECS}
"""The registered tasks by name; the first ten are the paper's, in its order."""


@dataclass(frozen=True)
class Task:
    """A task built for one image shape and seed.

    Attributes:
        name: the registry name.
        description: one line on what is observed.
        operator: the forward map ``A: [B, *image_shape] -> [B, *observation_shape]``.
        image_shape: ``(C, H, W)``.
        seed: the seed of the operator's random parts (the motion kernels; others ignore it).
    """

    name: str
    description: str
    operator: Operator
    image_shape: ImageShape
    seed: int

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.operator.output_shape)

    @property
    def is_linear(self) -> bool:
        """Whether ``A`` is linear, hence has an ``adjoint``."""
        return self.operator.is_linear

    @property
    def has_svd(self) -> bool:
        """Whether ``A`` has an SVD, hence a ``pseudo_inverse``."""
        return self.operator.svd is not None


def make_task(name: str, image_shape: ImageShape, seed: int = 0) -> Task:
    """Build the task ``name`` for images ``(C, H, W)``; its random parts come from ``seed``.

    Raises ``ValueError`` for an unknown name (listing the known ones) and for an image shape the
    task cannot handle (too small for its blocks or kernel, wrong channel count).
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}.")
    shape = image_shape_of(image_shape)
    if not isinstance(seed, int):
        raise TypeError(f"the task seed must be an integer; got {seed!r}.")
    spec = TASKS[name]
    return Task(name, spec.summary, spec.build(shape, seed), shape, seed)
