"""The interface every posterior sampler implements, and its cost accounting.

A sampler is a typed configuration plus one call::

    result = sampler.sample(prior, problem, seeds=range(16))
    result.samples      # [N, *sample_shape], one sample per seed
    result.cost         # network calls per sample (forward-only, forward+backward), seconds

One seed per sample: every random draw of sample ``n`` comes from the stream of ``seeds[n]``
(:class:`mgdm.random.SampleNoise`), so a sample's draws do not depend on the batch it ran in
(its value does up to float32 rounding, which some samplers amplify: docs/determinism.md).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor

from mgdm.devices import autocast_dtype, current_precision
from mgdm.priors.base import Denoiser, WrappedDenoiser
from mgdm.problem import Problem
from mgdm.random import SampleNoise
from mgdm.samplers.settings import SamplerConfig


@dataclass(frozen=True)
class Cost:
    """What a sampling run cost.

    Attributes:
        nfe_forward: network evaluations without gradient, per sample.
        nfe_backward: network evaluations with a backward pass (VJPs), per sample.
        seconds: wall time of the whole run.
        n_samples: number of samples drawn.
    """

    nfe_forward: float
    nfe_backward: float
    seconds: float
    n_samples: int

    @property
    def nfe_total(self) -> float:
        """Forward passes per sample, counting a VJP as one forward pass."""
        return self.nfe_forward + self.nfe_backward

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds / max(self.n_samples, 1)


@dataclass
class SampleResult:
    samples: Tensor
    cost: Cost


class CountingDenoiser(WrappedDenoiser):
    """Wraps a prior and counts its network evaluations, row by row.

    A call made while autograd records (grad mode on and the input requiring grad) counts as
    forward+backward; any other call as forward-only. Counts are rows evaluated, so dividing by
    the number of samples gives calls per sample even when a sampler splits its batch.

    With ``autocast`` (``torch.bfloat16`` or ``torch.float16``, :func:`mgdm.devices.autocast_dtype`)
    each network call (:meth:`denoise`, :meth:`epsilon`) runs under ``torch.autocast`` on the
    input's device and its output is cast back to the input's dtype, so that the sampler's state
    and Gaussian algebra stay float32; ``None`` (fp32) calls the prior as is.
    """

    def __init__(self, prior: Denoiser, autocast: torch.dtype | None = None):
        super().__init__(prior)
        self.autocast = autocast
        self.rows_forward = 0
        self.rows_backward = 0

    def _count(self, x: Tensor) -> None:
        if torch.is_grad_enabled() and x.requires_grad:
            self.rows_backward += x.shape[0]
        else:
            self.rows_forward += x.shape[0]

    def _call(self, method: Callable[[Tensor, Tensor], Tensor], x_t: Tensor, t: Tensor) -> Tensor:
        self._count(x_t)
        if self.autocast is None:
            return method(x_t, t)
        with torch.autocast(x_t.device.type, dtype=self.autocast):
            output = method(x_t, t)
        return output.to(x_t.dtype)

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self._call(self.prior.denoise, x_t, t)

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self._call(self.prior.epsilon, x_t, t)

    def sample_denoising_posterior(self, x_t: Tensor, t: Tensor, noise: SampleNoise) -> Tensor:
        """Exact ``p_{0|t}`` draws of priors that offer them; counted as one forward call."""
        method = getattr(self.prior, "sample_denoising_posterior", None)
        if method is None:
            raise ValueError(
                f"{type(self.prior).__name__} cannot sample p(x_0 | x_t) exactly; "
                "use the DDIM denoising chain instead."
            )
        self.rows_forward += x_t.shape[0]
        return method(x_t, t, noise)


ConfigT = TypeVar("ConfigT", bound=SamplerConfig)


class Sampler(ABC, Generic[ConfigT]):
    """Base class: validation, seeding, cost accounting and the final clamp.

    Subclasses set ``name`` and ``config_class`` (a :class:`~mgdm.samplers.settings.SamplerConfig`,
    which holds the method's presets and per-domain and per-task settings) and implement
    :meth:`run`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[SamplerConfig]]
    domains: ClassVar[tuple[str, ...]] = ("image", "latent", "audio", "vector")
    """The problem domains the method is meant for; ``"all"`` in a domain's sampler list means
    the registered samplers of that domain."""

    def __init__(self, config: ConfigT | None = None, **overrides: Any):
        if config is None:
            config = self.config_class(**overrides)
        elif overrides:
            raise ValueError("pass either a config object or keyword overrides, not both.")
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}.")
        self.config: ConfigT = config

    @abstractmethod
    def run(
        self, prior: CountingDenoiser, problem: Problem, noise: SampleNoise, progress: bool
    ) -> Tensor:
        """Draw one sample per stream of ``noise``; returns ``[B, *sample_shape]`` (unclamped)."""

    def check_compatible(self, prior: Denoiser, problem: Problem) -> None:
        """Raise ``ValueError`` when the problem cannot be sampled by this method."""

    def with_budget(self, nfe: float) -> Sampler[ConfigT]:
        """The same method rescaled (its step counts) so that its network calls per sample,
        forward-only plus forward+backward, come as close to ``nfe`` as its structure allows.

        Every sampler overrides this; ``ValueError`` when ``nfe`` is below the method's minimum.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support an equal-budget mode.")

    def sample(
        self,
        prior: Denoiser,
        problem: Problem,
        seeds: Sequence[int] | Tensor,
        *,
        progress: bool = False,
        device: torch.device | str | None = None,
        precision: str | None = None,
    ) -> SampleResult:
        """Draw ``len(seeds)`` posterior samples, one per seed, in one batch.

        ``device``: where the noise is drawn (default: the observation's device). ``precision``:
        ``fp32``, ``bf16`` or ``fp16`` for the network calls (:mod:`mgdm.devices`; default: the
        current :func:`mgdm.devices.use_precision` setting, ``fp32`` outside one); checked
        against the device before any work (one-line ``ValueError``).
        """
        seed_list = [int(s) for s in torch.as_tensor(seeds).reshape(-1).tolist()]
        if not seed_list:
            raise ValueError("seeds must hold at least one seed (one sample per seed).")
        if tuple(problem.operator.input_shape) != tuple(prior.sample_shape):
            raise ValueError(
                f"the operator takes inputs of shape {list(problem.operator.input_shape)} but the prior "
                f"draws samples of shape {list(prior.sample_shape)}."
            )
        self.check_compatible(prior, problem)
        device = torch.device(device) if device is not None else problem.observation.device
        dtype = autocast_dtype(current_precision() if precision is None else precision, device)
        counted = CountingDenoiser(prior, dtype)
        noise = SampleNoise(seed_list, device=device)
        start = time.perf_counter()
        samples = self.run(counted, problem, noise, progress)
        seconds = time.perf_counter() - start
        if prior.data_range is not None:
            samples = samples.clamp(*prior.data_range)
        n = len(seed_list)
        cost = Cost(counted.rows_forward / n, counted.rows_backward / n, seconds, n)
        return SampleResult(samples.detach(), cost)
