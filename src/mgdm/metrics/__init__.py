"""Metrics between sample sets."""

from mgdm.metrics.sliced_wasserstein import sliced_wasserstein, wasserstein_1d

__all__ = ["sliced_wasserstein", "wasserstein_1d"]
