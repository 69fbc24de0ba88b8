"""Forward operators and noise models."""

from mgdm.operators.base import LinearOperator, Operator, SingularValueDecomposition
from mgdm.operators.dense import DenseOperator, DenseSVD
from mgdm.operators.noise import GaussianNoise, NoiseModel

__all__ = [
    "DenseOperator",
    "DenseSVD",
    "GaussianNoise",
    "LinearOperator",
    "NoiseModel",
    "Operator",
    "SingularValueDecomposition",
]
