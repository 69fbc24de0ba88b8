"""What one posterior sample costs at the paper's scale: 256 x 256 RGB, the FFHQ-256 ADM network.

A full run of MGDM's ``reference`` preset (K = 100, M = 20, about 1,000 forward and 800
forward+backward network calls per sample) takes hours on a CPU, so :func:`measure_cost` times a
*few outer steps* and extrapolates:

1. **The full run without a network.** The full configuration runs at batch 1 on a stand-in
   prior of the same shape and schedule whose denoiser is ``0.5 x_t``: it makes exactly the
   network calls of the real run (MGDM's mixture indices do not depend on the prior), ``F``
   forward-only and ``B`` forward+backward per sample, and its time ``A_1`` is the sampler's
   own work (noise draws, bridge algebra, Adam, the operator and its VJPs) without the network.
   On a CPU this run may use smaller images (``stand_in_size``; ``A_1`` scaled by the ratio of
   pixel counts).
2. **Time per call.** The same method, truncated to ``steps`` outer steps (MGDM: ``K = steps +
   3``; DPS: ``K = steps + 2``; optionally fewer Adam steps and chain points per outer step,
   which changes how many calls are timed, not what one costs), runs on a random-weights ADM
   with the FFHQ-256 options (:data:`mgdm.priors.adm.FFHQ_256`; its zero-initialised output
   layer is drawn at random too, so no call is trivial) at batch ``b``, and again on the
   stand-in (``a_b`` seconds; ``a_1`` at batch 1). Each forward-only network call is timed
   (with a device synchronisation around it, in this benchmark only; one untimed forward and
   one untimed VJP at each batch size come first): ``t_f`` seconds per row.
   The rest of the run less ``a_b``, divided by its forward+backward rows, is ``t_b`` seconds
   per row: the network's VJP with its forward pass.
3. **Extrapolation.** Seconds per sample of the full run at batch ``b``:
   ``A_1 (a_b / b) / a_1 + F t_f + B t_b`` (the sampler's own work scaled from batch 1 to
   batch ``b`` as the truncated runs scale, then the network calls).

Seconds are the process's CPU time (all its threads) on a CPU, so that other processes' load
does not inflate them (with one thread, CPU seconds are the wall seconds of an idle core), and
wall time on an accelerator. Peak memory is that of the truncated run at batch ``b`` (it does not grow with the number of
steps): ``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the process's peak resident set
(``VmHWM``, reset before each run where Linux allows it, else the peak since the process
started), which includes the model's weights and the Python process itself. Per sample is the
peak divided by ``b``.

The observation is ``y = A(x) + 0.05 eps`` for a random image ``x`` in ``[-1, 1]`` and the image
task ``task`` (default ``sr4``); the operator's cost is part of ``t_b``.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from mgdm.bench.runtime import measure_peak_memory, reset_peak_memory
from mgdm.devices import current_precision, resolve_device
from mgdm.evaluate.prior import machine_description
from mgdm.operators.noise import GaussianNoise
from mgdm.priors.adm import FFHQ_256, ADMUNet
from mgdm.priors.base import Denoiser, WrappedDenoiser
from mgdm.priors.neural import EpsilonNetworkPrior
from mgdm.problem import Problem
from mgdm.samplers.base import Cost, Sampler
from mgdm.samplers.dps import DPS
from mgdm.samplers.mgdm import MGDM, MGDMConfig
from mgdm.samplers.registry import build_sampler
from mgdm.samplers.step_schedule import StepSchedule
from mgdm.tasks.registry import make_task

METHODS = ("mgdm-reference", "mgdm-default", "dps")
"""The measured methods: MGDM's ``reference`` and ``default`` presets, and DPS (K = 1000)."""

IMAGE_SHAPE = (FFHQ_256.in_channels, FFHQ_256.image_size, FFHQ_256.image_size)
SIGMA_Y = 0.05


@dataclass(frozen=True)
class CostRow:
    """One method at one batch size (seconds and bytes; calls per sample).

    Attributes:
        method: one of :data:`METHODS` (or the label of a configuration given to
            :func:`measure_cost`).
        batch: samples per run.
        timed_steps: outer steps of the timed run.
        full_steps: outer steps of the full run.
        timed_seconds: wall time of the timed run.
        forward_seconds: ``t_f``, seconds per row of a forward-only network call.
        gradient_seconds: ``t_b``, seconds per row of a forward+backward call with the sampler's
            algebra.
        timed_calls: ``(forward, forward+backward)`` per sample in the timed run.
        full_calls: the same for the full run.
        sampler_seconds: the sampler's own work per sample in the full run,
            ``A_1 (a_b / b) / a_1``.
        seconds_per_sample: the extrapolated full run, ``sampler_seconds + F t_f + B t_b``.
        peak_memory: peak bytes of the timed run (see the module docstring).
        memory_kind: ``cuda_max_allocated`` or ``cpu_peak_rss``/``cpu_max_rss``.
    """

    method: str
    batch: int
    timed_steps: int
    full_steps: int
    timed_seconds: float
    forward_seconds: float
    gradient_seconds: float
    timed_calls: tuple[float, float]
    full_calls: tuple[float, float]
    sampler_seconds: float
    seconds_per_sample: float
    peak_memory: int
    memory_kind: str

    @property
    def peak_memory_per_sample(self) -> float:
        return self.peak_memory / self.batch


@dataclass(frozen=True)
class CostReport:
    """The rows and the setting they were measured in."""

    rows: list[CostRow]
    machine: str
    device: str
    precision: str
    threads: int
    torch_version: str
    python_version: str
    task: str
    network: str
    load_average: tuple[float, float]
    clock: str
    """``cpu`` (the process's CPU seconds, all threads: CPU runs) or ``wall`` (accelerators)."""
    stand_in_size: int | None
    """The 1-minute load average at the start and at the end (other processes' work slows the
    runs; on a machine shared with others, read the figures as upper bounds)."""

    def to_json(self) -> dict:
        rows = [
            asdict(row) | {"peak_memory_per_sample": row.peak_memory_per_sample}
            for row in self.rows
        ]
        return asdict(self) | {"rows": rows}


class TimedDenoiser(WrappedDenoiser):
    """``prior`` with every forward-only network call (:meth:`denoise` or :meth:`epsilon`) timed,
    the device synchronised around it: ``forward_seconds`` over ``forward_rows`` rows. For this
    benchmark only."""

    def __init__(self, prior: Denoiser):
        super().__init__(prior)
        self.forward_seconds = 0.0
        self.forward_rows = 0

    def _timed(self, method: Callable[[Tensor, Tensor], Tensor], x_t: Tensor, t: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x_t.requires_grad:
            return method(x_t, t)
        clock = _clock(x_t.device)
        _synchronize(x_t.device)
        start = clock()
        out = method(x_t, t)
        _synchronize(x_t.device)
        self.forward_seconds += clock() - start
        self.forward_rows += x_t.shape[0]
        return out

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self._timed(self.prior.denoise, x_t, t)

    def epsilon(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self._timed(self.prior.epsilon, x_t, t)


class StandIn(Denoiser):
    """No network: ``D_t(x_t) = 0.5 x_t`` with ``prior``'s schedule, on ``prior``'s sample shape or
    ``shape``."""

    def __init__(self, prior: Denoiser, shape: tuple[int, ...] | None = None):
        self.schedule = prior.schedule
        self.sample_shape = tuple(prior.sample_shape) if shape is None else tuple(shape)
        self.data_range = prior.data_range

    def denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        return 0.5 * x_t


def random_adm_prior(device: torch.device, seed: int = 0) -> EpsilonNetworkPrior:
    """The FFHQ-256 ADM with random weights (output layer included), on ``device``."""
    torch.manual_seed(seed)
    network = ADMUNet(FFHQ_256)
    nn.init.normal_(network.out[2].weight, std=1e-3)
    network = network.to(device).eval().requires_grad_(False)
    return EpsilonNetworkPrior(
        network,
        IMAGE_SHAPE,
        schedule=FFHQ_256.schedule(),
        prediction="epsilon",
        learn_sigma=FFHQ_256.learn_sigma,
    )


def full_sampler(method: str, task: str) -> Sampler:
    """The full configuration of ``method`` for image ``task``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}.")
    if method == "dps":
        return build_sampler("dps", "image", task=task)
    return build_sampler("mgdm", "image", task=task, preset=method.removeprefix("mgdm-"))


def outer_steps(sampler: Sampler) -> int:
    """Outer steps of a run: MGDM ``K - 3``, DPS ``K - 2``."""
    if isinstance(sampler, MGDM):
        return sampler.config.outer_steps
    return sampler.config.num_steps - 2


def truncated(
    sampler: Sampler, steps: int, gradient_steps: int | None, chain_points: int | None
) -> Sampler:
    """``sampler`` cut to ``steps`` outer steps (MGDM: optionally ``gradient_steps`` Adam steps
    and at most ``chain_points`` chain points per outer step); never longer than ``sampler``.
    ``TypeError`` for a method other than MGDM and DPS."""
    if not isinstance(sampler, (DPS, MGDM)):
        raise TypeError(f"the cost benchmark times MGDM and DPS; got {type(sampler).__name__}.")
    steps = min(steps, outer_steps(sampler))
    if isinstance(sampler, DPS):
        return DPS(replace(sampler.config, num_steps=steps + 2))
    config: MGDMConfig = replace(sampler.config, num_steps=steps + 3)
    if gradient_steps is not None:
        config = replace(config, gradient_steps=StepSchedule.constant(float(gradient_steps)))
    if chain_points is not None:
        config = replace(config, denoising_steps=min(config.denoising_steps, chain_points))
    return MGDM(config)


def observation(
    task: str, device: torch.device, seed: int, image_shape: tuple[int, ...] = IMAGE_SHAPE
) -> Problem:
    """``y = A(x) + 0.05 eps`` for a random image ``x`` in ``[-1, 1]`` of ``image_shape``."""
    operator = make_task(task, image_shape).operator
    generator = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(1, *image_shape, generator=generator) - 1
    y = operator(x)[0]
    y = y + SIGMA_Y * torch.randn(y.shape, generator=generator)
    return Problem(operator, y.to(device), GaussianNoise(SIGMA_Y))


def measure_cost(
    methods: Sequence[str] = METHODS,
    batches: Sequence[int] = (1, 4),
    steps: int = 2,
    *,
    task: str = "sr4",
    device: torch.device | str = "auto",
    gradient_steps: int | None = None,
    chain_points: int | None = None,
    seed: int = 0,
    prior: Denoiser | None = None,
    samplers: Mapping[str, Sampler] | None = None,
    stand_in_size: int | None = None,
    log: Callable[[str], object] | None = None,
) -> CostReport:
    """Time ``steps`` outer steps of each method at each batch size and extrapolate (module
    docstring) on ``device`` (default ``auto``: CUDA where present, else the CPU).
    ``gradient_steps``/``chain_points``: MGDM's Adam steps and chain points per timed
    outer step (``None``: the preset's). ``prior``: an image prior on ``device`` to measure
    instead of the random-weights FFHQ-256 ADM; ``samplers``: the full configurations by label
    (MGDM or DPS; default: :func:`full_sampler` of each of ``methods``); ``stand_in_size``: run
    the network-free full run on ``size x size`` images instead of the prior's (cheaper on a CPU;
    the sampler's own work is scaled by the ratio of pixel counts, and the call counts are those
    of that run: MGDM's mixture indices follow a hash of the observation, so they can differ by
    about 1 %). Runs under the current
    precision
    (:func:`mgdm.devices.use_precision`). ``log``: called with one line per measurement."""
    say = log or (lambda line: None)
    device = resolve_device(device)
    load_start = os.getloadavg()[0]
    for name, value in (
        ("steps", steps),
        ("gradient_steps", gradient_steps),
        ("chain_points", chain_points),
        ("stand_in_size", stand_in_size),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r}.")
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batch sizes must be whole numbers >= 1; got {list(batches)!r}.")
    if samplers is None:
        samplers = {method: full_sampler(method, task) for method in methods}
    network = "ADM, FFHQ-256 options, random weights" if prior is None else type(prior).__name__
    prior = random_adm_prior(device, seed) if prior is None else prior
    shape = tuple(prior.sample_shape)
    problem = observation(task, device, seed, shape)
    rows = []
    stand_in = StandIn(prior)
    small_shape, scale = shape, 1.0
    if stand_in_size is not None:
        small_shape = (*shape[:-2], stand_in_size, stand_in_size)
        scale = math.prod(shape) / math.prod(small_shape)
    small = StandIn(prior, small_shape)
    small_problem = observation(task, device, seed, small_shape)
    for batch in batches:  # the first calls at a shape set up kernels and memory: not timed
        _warm_up(prior, batch, device)
    for method, sampler in samplers.items():
        small_seconds, counted = _timed_run(sampler, small, small_problem, [seed], device)
        full_seconds = scale * small_seconds
        full_calls = (counted.nfe_forward, counted.nfe_backward)
        short = truncated(sampler, steps, gradient_steps, chain_points)
        short_seconds = {1: _timed_run(short, stand_in, problem, [seed], device)[0]}
        say(f"{method}: the full run without a network took {full_seconds:.1f} s")
        for batch in batches:
            seeds = list(range(seed, seed + batch))
            if batch not in short_seconds:
                short_seconds[batch] = _timed_run(short, stand_in, problem, seeds, device)[0]
            timed = TimedDenoiser(prior)
            memory_kind = _reset_peak(device)
            seconds, cost = _timed_run(short, timed, problem, seeds, device)
            peak, kind = _peak(device, memory_kind)
            forward = timed.forward_seconds / max(timed.forward_rows, 1)
            gradient_rows = cost.nfe_backward * batch
            network_rest = max(seconds - timed.forward_seconds - short_seconds[batch], 0.0)
            gradient = network_rest / gradient_rows if gradient_rows else 0.0
            own = full_seconds * (short_seconds[batch] / batch) / max(short_seconds[1], 1e-9)
            per_sample = own + full_calls[0] * forward + full_calls[1] * gradient
            row = CostRow(
                method,
                batch,
                outer_steps(short),
                outer_steps(sampler),
                seconds,
                forward,
                gradient,
                (cost.nfe_forward, cost.nfe_backward),
                full_calls,
                own,
                per_sample,
                peak,
                kind,
            )
            rows.append(row)
            say(
                f"{method} batch {batch}: {seconds:.1f} s for {row.timed_steps} outer steps; "
                f"t_f {forward:.2f} s, t_b {gradient:.2f} s per row; full run "
                f"{per_sample / 60:.1f} min per sample; peak {peak / 2**30:.2f} GiB"
            )
    return CostReport(
        rows,
        machine_description() if device.type == "cpu" else torch.cuda.get_device_name(device),
        str(device),
        current_precision(),
        torch.get_num_threads(),
        torch.__version__,
        platform.python_version(),
        task,
        network,
        (load_start, os.getloadavg()[0]),
        "cpu" if device.type == "cpu" else "wall",
        stand_in_size,
    )


def _timed_run(
    sampler: Sampler, prior: Denoiser, problem: Problem, seeds: list[int], device: torch.device
) -> tuple[float, Cost]:
    """Seconds (:func:`_clock`; device synchronised) and cost of one run."""
    clock = _clock(device)
    _synchronize(device)
    start = clock()
    cost = sampler.sample(prior, problem, seeds, device=device).cost
    _synchronize(device)
    return clock() - start, cost


def _warm_up(prior: Denoiser, batch: int, device: torch.device) -> None:
    """One forward-only and one forward+backward network call at ``batch``, untimed."""
    x = torch.zeros(batch, *prior.sample_shape, device=device)
    t = torch.full((batch,), 500, dtype=torch.int64, device=device)
    with torch.no_grad():
        prior.epsilon(x, t)
    x.requires_grad_(True)
    with torch.enable_grad():
        torch.autograd.grad(prior.epsilon(x, t).sum(), x)
    _synchronize(device)


def _clock(device: torch.device) -> Callable[[], float]:
    """CPU runs: the process's CPU time (all its threads), which other processes' load does not
    inflate; accelerators: wall time."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_HWM = Path("/proc/self/status")


def _reset_peak(device: torch.device) -> str:
    """Reset the peak before a run; returns the kind of peak :func:`_peak` will read."""
    if device.type != "cpu":
        reset_peak_memory(device)
        return "cuda_max_allocated"
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
    except OSError:
        return "cpu_max_rss"
    return "cpu_peak_rss"


def _peak(device: torch.device, kind: str) -> tuple[int, str]:
    if kind == "cpu_peak_rss":
        for line in _HWM.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, kind
    return measure_peak_memory(device)


def format_table(report: CostReport) -> str:
    """A Markdown table of the report, with its setting on the first line."""
    setting = (
        f"{report.network}, task {report.task}, {report.device} ({report.machine}), "
        f"{report.precision}, {report.threads} threads, torch {report.torch_version}, "
        f"Python {report.python_version}; load average {report.load_average[0]:.1f} at the "
        f"start, {report.load_average[1]:.1f} at the end; {report.clock} seconds"
        + ("" if report.stand_in_size is None else f"; stand-in run at {report.stand_in_size} px")
    )
    header = (
        "| method | batch | timed outer steps | t_f (s/row) | t_b (s/row) | full run: forward + "
        "fwd/bwd calls per sample | full run: sampler's own work (min/sample) | full run: "
        "minutes per sample | peak memory (GiB, per sample) |"
    )
    lines = [setting, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report.rows:
        lines.append(
            f"| {row.method} | {row.batch} | {row.timed_steps} of {row.full_steps} | "
            f"{row.forward_seconds:.2f} | {row.gradient_seconds:.2f} | "
            f"{row.full_calls[0]:.0f} + {row.full_calls[1]:.0f} | "
            f"{row.sampler_seconds / 60:.1f} | {row.seconds_per_sample / 60:.1f} | "
            f"{row.peak_memory / 2**30:.2f} ({row.peak_memory_per_sample / 2**30:.2f}) |"
        )
    return "\n".join(lines)
