"""Priors: the denoiser interface and exact priors."""

from mgdm.priors.base import Denoiser, as_time_vector
from mgdm.priors.gaussian_mixture import GaussianMixture, GaussianMixturePosterior

__all__ = ["Denoiser", "GaussianMixture", "GaussianMixturePosterior", "as_time_vector"]
