"""Forward operators and noise models.

Images are ``[B, C, H, W]`` in ``[-1, 1]``; every operator is batched and differentiable. Linear
operators add ``adjoint`` and, where one exists, a matrix-free ``svd`` (hence ``pseudo_inverse``).
"""

from mgdm.operators.base import (
    GroupMeanSVD,
    LinearOperator,
    Operator,
    SelectionSVD,
    SingularValueDecomposition,
    constant_first_basis,
    image_shape_of,
)
from mgdm.operators.blur import (
    Blur,
    GaussianBlur,
    MotionBlur,
    ZeroBoundarySeparableBlur,
    gaussian_kernel,
    gaussian_window,
    motion_kernel,
    resample_kernel,
)
from mgdm.operators.colorization import Colorization
from mgdm.operators.dense import DenseOperator, DenseSVD
from mgdm.operators.hdr import HighDynamicRange
from mgdm.operators.identity import Identity
from mgdm.operators.inpainting import Inpainting, box_mask, left_half_mask
from mgdm.operators.jpeg import JPEG, quantization_table
from mgdm.operators.network import NetworkOperator
from mgdm.operators.noise import GaussianNoise, NoiseModel, PoissonNoise
from mgdm.operators.nonlinear_blur import SaturatedBlur
from mgdm.operators.phase_retrieval import PhaseRetrieval
from mgdm.operators.super_resolution import SuperResolution

__all__ = [
    "JPEG",
    "Blur",
    "Colorization",
    "DenseOperator",
    "DenseSVD",
    "GaussianBlur",
    "GaussianNoise",
    "GroupMeanSVD",
    "HighDynamicRange",
    "Identity",
    "Inpainting",
    "LinearOperator",
    "MotionBlur",
    "NetworkOperator",
    "NoiseModel",
    "Operator",
    "PhaseRetrieval",
    "PoissonNoise",
    "SaturatedBlur",
    "SelectionSVD",
    "SingularValueDecomposition",
    "SuperResolution",
    "ZeroBoundarySeparableBlur",
    "box_mask",
    "constant_first_basis",
    "gaussian_kernel",
    "gaussian_window",
    "image_shape_of",
    "left_half_mask",
    "motion_kernel",
    "quantization_table",
    "resample_kernel",
]
