"""Sampling jobs of the web app: run in a worker thread, watched, cancellable.

A :class:`Job` runs one function in a thread of its own and exposes what the page shows while it
runs: the network calls per sample so far, the sampler calls done (one per batch of windows for a
separation), and the latest estimate ``x0_hat = E[x_0 | x_t]`` of the whole batch. The sampler
itself is not changed: :meth:`Job.watch` wraps it so that every ``sample(prior, ...)`` call gets
the prior wrapped in a :class:`WatchedPrior`, which on each network evaluation

* raises :class:`JobCancelled` when the job's cancel flag is set (so a cancelled run stops
  within one network call),
* counts the rows evaluated (calls per sample = rows / batch size, as the sampler's own cost),
* keeps a copy of ``x0_hat`` ``[B, *sample_shape]`` when the call covers the whole batch (an
  ``epsilon`` call is converted by ``x0_hat = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)``).

Jobs share :class:`WorkerSlots`: at most ``workers`` run at a time, whatever the web server's
queue does, so two samplings never compete for the same cores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from mgdm.diffusion.conversions import eps_to_x0
from mgdm.priors.base import Denoiser, WrappedDenoiser
from mgdm.problem import Problem
from mgdm.samplers.base import Sampler, SampleResult

T = TypeVar("T")


class JobCancelled(Exception):
    """Raised inside a watched network call once the job's cancel flag is set."""


class WorkerSlots:
    """At most ``workers`` jobs sample at once (a counting semaphore)."""

    def __init__(self, workers: int):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"the number of workers must be a whole number >= 1; got {workers!r}.")
        self.workers = workers
        self._slots = threading.BoundedSemaphore(workers)

    def __enter__(self) -> None:
        self._slots.acquire()

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


class Job(Generic[T]):
    """One sampling run of a page: ``work()`` in a thread, with progress and a cancel flag.

    Attributes:
        cancel: set by the page's cancel button (or when the page is closed).
        rows: network-evaluation rows so far (``calls per sample = rows / batch``).
        batch: the samples per sampler call, set by the first watched call.
        sampler_calls: ``sample`` calls finished (batches of windows for a separation).
        estimate: the latest ``x0_hat`` of a whole batch ``[B, *sample_shape]``, or ``None``.
        estimate_version: increases with every new estimate (the page redraws on change).
        result, error: what ``work()`` returned or raised, once :attr:`done`.
    """

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.rows = 0
        self.batch = 0
        self.sampler_calls = 0
        self.estimate: Tensor | None = None
        self.estimate_prior: Denoiser | None = None
        self.estimate_version = 0
        self.started = 0.0
        self.result: T | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def calls_per_sample(self) -> float:
        """Network calls per sample so far (forward and forward+backward together)."""
        return self.rows / self.batch if self.batch else 0.0

    @property
    def seconds(self) -> float:
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self.started if self.started else 0.0

    def watch(self, sampler: Sampler) -> WatchedSampler:
        """``sampler`` reporting to this job (module docstring)."""
        return WatchedSampler(sampler, self)

    def start(self, work: Callable[[], T], slots: WorkerSlots) -> None:
        """Run ``work()`` in a new thread once a worker slot is free."""

        def target() -> None:
            with slots:
                self.started = time.perf_counter()
                try:
                    if self.cancel.is_set():
                        raise JobCancelled
                    self.result = work()
                except BaseException as error:  # noqa: BLE001 - handed to the page's thread
                    self.error = error

        self._thread = threading.Thread(target=target, name="mgdm-serve-job", daemon=True)
        self._thread.start()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the job; ``True`` when it has finished."""
        assert self._thread is not None, "the job was not started"
        self._thread.join(seconds)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def record(self, x_t: Tensor, x0_hat: Tensor, prior: Denoiser) -> None:
        """Count a network call of ``x_t.shape[0]`` rows; keep ``x0_hat`` if it is a whole batch."""
        self.rows += x_t.shape[0]
        if x_t.shape[0] == self.batch:
            self.estimate = x0_hat.detach().clone()
            self.estimate_prior = prior
            self.estimate_version += 1


class WatchedPrior(WrappedDenoiser):
    """``prior`` reporting each network evaluation to ``job`` (module docstring); everything else
    is the prior's own (attributes the samplers read are forwarded)."""

    def __init__(self, prior: Denoiser, job: Job[Any]):
        super().__init__(prior)
        self.job = job

    def __getattr__(self, name: str) -> Any:  # e.g. sample_denoising_posterior of exact priors
        if name in ("prior", "job"):
            raise AttributeError(name)
        return getattr(self.prior, name)

    def _check(self) -> None:
        if self.job.cancel.is_set():
            raise JobCancelled

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        self._check()
        x0_hat = self.prior.denoise(x_t, t)
        self.job.record(x_t, x0_hat, self.prior)
        return x0_hat

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        self._check()
        eps = self.prior.epsilon(x_t, t)
        with torch.no_grad():
            x0_hat = eps_to_x0(x_t.detach(), eps.detach(), self.schedule.alpha_bar(t))
        self.job.record(x_t, x0_hat, self.prior)
        return eps

    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.prior.data_shape

    def problem_in_sample_space(self, problem: Problem) -> Problem:
        return self.prior.problem_in_sample_space(problem)

    def samples_to_data(self, samples: Tensor) -> Tensor:
        return self.prior.samples_to_data(samples)


class WatchedSampler:
    """A sampler whose ``sample`` runs on the prior wrapped in a :class:`WatchedPrior` of
    ``job``; its name, config and cost accounting are the sampler's own."""

    def __init__(self, sampler: Sampler, job: Job[Any]):
        self.sampler = sampler
        self.job = job
        self.name = sampler.name
        self.config = sampler.config

    def sample(
        self, prior: Denoiser, problem: Problem, seeds: Sequence[int] | Tensor, **options: Any
    ) -> SampleResult:
        """``sampler.sample`` on the watched prior (``options``: ``progress``, ``device``)."""
        self.job.batch = len(torch.as_tensor(seeds).reshape(-1))
        self.job.rows = 0
        result = self.sampler.sample(WatchedPrior(prior, self.job), problem, seeds, **options)
        self.job.sampler_calls += 1
        return result
