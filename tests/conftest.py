"""Shared fixtures: small exact-posterior problems built from the library itself."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def gmm_2d():
    """A 2-D Gaussian mixture with three components and mixed covariances (diagonal)."""
    from mgdm.diffusion import gmm_benchmark
    from mgdm.priors import GaussianMixture

    means = torch.tensor([[-4.0, 0.0], [3.0, 3.0], [2.0, -4.0]])
    weights = torch.tensor([0.5, 0.3, 0.2])
    covariances = torch.tensor([[1.0, 0.5], [0.3, 2.0], [1.0, 1.0]])
    return GaussianMixture(means, weights, covariances, gmm_benchmark())
