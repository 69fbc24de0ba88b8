"""Helpers shared by the grid baselines DPS, PGDM, DDNM+ and DiffPIR (docs/algorithms/dps.md, pgdm.md, ddnm.md, diffpir.md).

* the time grid: every one of them walks ``T_j = timestep_grid(K)[j]`` (``int(linspace(0, 999,
  K))``; ``K = 1000`` is the Reference's full grid ``T_j = j``) backwards, one network call per
  transition ``T_j -> T_{j-1}``;
* the equal-budget rule: the grid size ``K`` that gives a requested number of network calls;
* capability checks that name the operator (SVD, Gaussian noise);
* spectral coordinates ``x̄ = V^T x`` of an operator ``A = U diag(s) V^T``;
* :func:`task_config`, one task's Reference values from a module's ``TASK_DEFAULTS`` (keyed by
  :data:`mgdm.samplers.settings.TASK_NAMES`), strictly: an unknown task is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor

from mgdm.diffusion.schedules import NUM_TIMESTEPS, timestep_grid
from mgdm.operators.base import Operator, SingularValueDecomposition
from mgdm.problem import Problem

SVD_FREE_SAMPLERS = (
    "dps, mgdm, reddiff, daps, pnpdm (Langevin likelihood step) and, for linear operators with "
    "an adjoint, diffpir (conjugate-gradient proximal step)"
)
"""The samplers that run on an operator without an SVD, for error messages."""

MAX_GRID_POINTS = NUM_TIMESTEPS
"""The largest grid: ``K = 1000`` points, every integer time ``0 … 999``."""

ConfigT = TypeVar("ConfigT")


def check_integer(method: str, name: str, value: int, low: int, high: int | None = None) -> None:
    """``ValueError`` unless ``value`` is an integer (not a bool) in ``[low, high]``."""
    in_range = low <= value and (high is None or value <= high) if isinstance(value, int) else False
    if isinstance(value, bool) or not in_range:
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(
            f"{method} {name} = {value!r} is out of range; accepted: an integer {bounds}."
        )


def check_num_steps(method: str, num_steps: int, minimum: int) -> None:
    """``ValueError`` unless ``num_steps`` is an integer ``K`` with ``minimum <= K <= 1000``."""
    check_integer(
        method,
        "num_steps (K, points of the grid int(linspace(0, 999, K)))",
        num_steps,
        minimum,
        MAX_GRID_POINTS,
    )


def check_real(method: str, name: str, value: float, low: float, high: float = math.inf) -> None:
    """``ValueError`` unless ``value`` is a finite real number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{method} {name} must be a finite number; got {value!r}.")
    if not low <= value <= high:
        bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{method} {name} = {value!r} is out of range; accepted: {bounds}.")


def reverse_transitions(num_steps: int, last_index: int) -> list[tuple[int, int]]:
    """The transitions ``(T_j, T_{j-1})`` for ``j = K-1`` down to ``last_index + 1``.

    ``last_index = 0`` ends at time 0 (``K - 1`` transitions); ``last_index = 1`` ends at ``T_1``
    (``K - 2`` transitions; with ``K = 1000`` that is ``999 -> 998, …, 2 -> 1``).
    """
    grid = timestep_grid(num_steps).tolist()
    return [(grid[j], grid[j - 1]) for j in range(num_steps - 1, last_index, -1)]


def num_steps_for_budget(method: str, nfe: float, offset: int, minimum: int) -> int:
    """The grid size ``K`` of a sampler making ``K - offset`` network calls per sample.

    ``K = round(nfe) + offset``, capped at 1000 points (the finest grid: a larger budget cannot
    be spent); ``ValueError`` when ``K`` would fall below ``minimum``.
    """
    if isinstance(nfe, bool) or not isinstance(nfe, (int, float)) or not math.isfinite(nfe):
        raise ValueError(f"{method} budget must be a finite number of network calls; got {nfe!r}.")
    num_steps = round(nfe) + offset
    if num_steps < minimum:
        raise ValueError(
            f"{method} needs at least {minimum - offset} network calls per sample "
            f"(a grid of {minimum} points); got a budget of {nfe!r}."
        )
    return min(num_steps, MAX_GRID_POINTS)


def require_svd(method: str, operator: Operator) -> SingularValueDecomposition:
    """The operator's SVD; ``ValueError`` naming the operator and the SVD-free samplers."""
    svd = operator.svd
    if svd is None:
        raise ValueError(
            f"{method} needs the singular value decomposition of the operator, and "
            f"{type(operator).__name__} has none. Samplers that work without an SVD: "
            f"{SVD_FREE_SAMPLERS}."
        )
    return svd


def require_gaussian_noise(method: str, problem: Problem) -> float:
    """``sigma_y`` of a Gaussian noise model; ``ValueError`` for any other noise model."""
    try:
        return problem.sigma_y
    except TypeError:
        raise ValueError(
            f"{method} needs Gaussian observation noise (its update uses sigma_y); the problem has "
            f"{problem.noise!r}."
        ) from None


@dataclass(frozen=True)
class Spectral:
    """An observation in the spectral coordinates of ``A = U diag(s) V^T``.

    ``x̄ = V^T x`` flattens an input ``[B, *input_shape]`` to ``[B, n]``. The first ``r``
    coordinates carry the singular values, the rest span the null space; both vectors below are
    padded with zeros to length ``n``, so formulas can run over all ``n`` coordinates (``s_i = 0``
    exactly on the null space).

    Attributes:
        svd: the operator's SVD.
        singular_values: ``s`` padded to ``[n]``, in the dtype of the state.
        observation: ``ȳ = (U^T y)_{:r}`` padded to ``[B, n]``.
    """

    svd: SingularValueDecomposition
    singular_values: Tensor
    observation: Tensor

    @classmethod
    def of(cls, svd: SingularValueDecomposition, problem: Problem, like: Tensor) -> Spectral:
        """Spectral view of ``problem``'s observation for a batch shaped and typed like ``like``."""
        batch = like.shape[0]
        n = like[0].numel()
        rank = svd.rank_size
        s = like.new_zeros(n)
        s[:rank] = svd.singular_values.to(like)
        y_bar = like.new_zeros(batch, n)
        y_bar[:, :rank] = svd.Ut(problem.observation_for(batch, like))[:, :rank]
        return cls(svd, s, y_bar)

    def to_spectral(self, x: Tensor) -> Tensor:
        """``V^T x``: ``[B, *input_shape] -> [B, n]``."""
        return self.svd.Vt(x)

    def from_spectral(self, z: Tensor) -> Tensor:
        """``V z``: ``[B, n] -> [B, *input_shape]``."""
        return self.svd.V(z)


def task_config(
    config_class: type[ConfigT],
    task_defaults: dict[str, dict[str, float]],
    task: str,
    **overrides: Any,
) -> ConfigT:
    """A validated ``config_class`` with the Reference values of ``task``, then ``overrides``.

    Example: ``task_config(DPSConfig, dps.TASK_DEFAULTS, "sr4", num_steps=200)``.
    ``ValueError`` for a task outside ``task_defaults``; :meth:`~mgdm.samplers.settings.
    SamplerConfig.settings` is the lenient entry point that applications use.
    """
    if task not in task_defaults:
        raise ValueError(
            f"{config_class.__name__} has no preset for task {task!r}; accepted: "
            f"{', '.join(task_defaults)}."
        )
    return config_class(**{**task_defaults[task], **overrides})
