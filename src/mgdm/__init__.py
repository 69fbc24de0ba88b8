"""mgdm: posterior sampling for inverse problems with pretrained diffusion priors.

Conventions (one place, used everywhere):

* images live in ``[-1, 1]``; the observation noise ``sigma_y`` is a standard deviation in the
  units of ``A(x)`` for ``x`` in that range;
* variance-preserving diffusion ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` on integer
  times 0…1000;
* a prior is a Tweedie denoiser ``x0_hat(x_t, t)``;
* one seed per sample.
"""

from mgdm.operators import DenseOperator, GaussianNoise, LinearOperator, Operator
from mgdm.priors import Denoiser, GaussianMixture
from mgdm.problem import Problem
from mgdm.samplers import MGDM, MGDMConfig, sampler_class

__version__ = "0.1.0"

__all__ = [
    "MGDM",
    "Denoiser",
    "DenseOperator",
    "GaussianMixture",
    "GaussianNoise",
    "LinearOperator",
    "MGDMConfig",
    "Operator",
    "Problem",
    "sampler_class",
]
