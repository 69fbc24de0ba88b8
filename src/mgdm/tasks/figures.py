"""Figures of the tasks: a clean synthetic image, its observation and a reconstruction from it.

For each task: the clean image ``x``; the observation ``y = A(x) + sigma_y eps`` (Gaussian noise,
``sigma_y`` in the ``[-1, 1]`` units of ``A(x)``); and the simplest reconstruction the operator
offers: the pseudo-inverse ``A^+ y`` when ``A`` has an SVD, the adjoint ``A^T y`` for a linear ``A``
without one, else a least-squares fit ``argmin_x ||A(x) - y||^2`` by Adam from ``x = 0`` (there is
no pseudo-inverse of a non-linear operator; the fit shows what the data term alone recovers).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from mgdm.operators import GaussianNoise, Inpainting, LinearOperator, Operator, PhaseRetrieval
from mgdm.operators.base import image_shape_of
from mgdm.random import SampleNoise
from mgdm.tasks.registry import TASKS, Task, make_task


def synthetic_image(image_shape: tuple[int, int, int]) -> Tensor:
    """A procedural test image ``[C, H, W]`` in ``[-1, 1]`` (C = 1 or 3), the same at any seed.

    Smooth colour gradients, a disc and a tilted bar with sharp edges, a patch of fine stripes and
    a checkerboard; the grey version is the JFIF luma of the colour one.
    """
    channels, height, width = image_shape_of(image_shape)
    if channels not in (1, 3):
        raise ValueError(f"the synthetic image has 1 or 3 channels; got {channels}.")
    rows = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    cols = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    r, c = torch.meshgrid(rows, cols, indexing="ij")
    rgb = torch.stack([0.25 + 0.5 * c, 0.2 + 0.6 * r, 0.75 - 0.4 * (r - 0.5) ** 2 - 0.3 * c])
    disc = (r - 0.32) ** 2 + (c - 0.30) ** 2 < 0.17**2
    rgb[:, disc] = torch.tensor([0.95, 0.8, 0.15], dtype=torch.float64)[:, None]
    along, across = (r - 0.7) * 0.8 + (c - 0.3) * 0.6, -(r - 0.7) * 0.6 + (c - 0.3) * 0.8
    bar = (along.abs() < 0.08) & (across.abs() < 0.25)
    rgb[:, bar] = torch.tensor([0.1, 0.15, 0.55], dtype=torch.float64)[:, None]
    stripes = (r > 0.12) & (r < 0.45) & (c > 0.62) & (c < 0.92)
    wave = 0.5 + 0.4 * torch.sin(2 * math.pi * (r * height / 4 + c * width / 9))
    rgb[:, stripes] = torch.stack([wave, 0.3 * wave, 1 - wave])[:, stripes]
    checker = (r > 0.6) & (r < 0.9) & (c > 0.62) & (c < 0.92)
    squares = ((r * height // 3 + c * width // 3) % 2).to(torch.float64)
    rgb[:, checker] = (0.15 + 0.7 * squares)[checker].expand(3, -1)
    image = (
        rgb
        if channels == 3
        else (
            torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64) @ rgb.reshape(3, -1)
        ).reshape(1, height, width)
    )
    return (2 * image - 1).to(torch.float32)


def least_squares_fit(operator: Operator, y: Tensor, steps: int = 300, lr: float = 0.05) -> Tensor:
    """``argmin_x ||A(x) - y||^2`` by ``steps`` Adam steps from ``x = 0``; ``[B, *input_shape]``."""
    x = torch.zeros(y.shape[0], *operator.input_shape, dtype=y.dtype, requires_grad=True)
    optimiser = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        ((operator(x) - y) ** 2).sum().backward()
        optimiser.step()
    return x.detach().clamp(-1, 1)


def reconstruction(operator: Operator, y: Tensor) -> tuple[Tensor, str]:
    """The figure's reconstruction of ``x`` from ``y`` and its label (see the module docstring)."""
    if operator.svd is not None:
        return operator.pseudo_inverse(y), "pseudo-inverse $A^+y$"
    if isinstance(operator, LinearOperator):
        return operator.adjoint(y), "adjoint $A^Ty$ (no SVD)"
    return least_squares_fit(operator, y), "least squares (Adam from 0)"


def display_image(image: Tensor) -> Tensor:
    """``[C, H, W]`` in ``[-1, 1]`` -> ``[H, W, 3]`` or ``[H, W]`` in ``[0, 1]`` for ``imshow``."""
    image = ((image.detach().float() + 1) / 2).clamp(0, 1)
    return image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)


def observation_display(operator: Operator, y: Tensor) -> tuple[Tensor, str]:
    """How ``y`` (one sample) is shown: zero-filled for masks, log-magnitude for phase retrieval."""
    if isinstance(operator, Inpainting):
        return display_image(operator.adjoint(y[None])[0]), "y, zero-filled"
    if isinstance(operator, PhaseRetrieval):
        log_magnitude = torch.log10(y.mean(0).clamp(min=0) + 1e-2)
        low, high = log_magnitude.min(), log_magnitude.max()
        return (log_magnitude - low) / (high - low), "log10(y + 0.01), channel mean"
    return display_image(y), "y"


def _psnr(estimate: Tensor, clean: Tensor) -> float:
    """PSNR in dB of ``[-1, 1]`` images (peak-to-peak 2), after clamping the estimate."""
    mse = float(((estimate.clamp(-1, 1) - clean) ** 2).mean())
    return 10 * math.log10(4 / mse) if mse > 0 else math.inf


def task_figure(task: Task, path: Path, sigma_y: float = 0.05, seed: int = 0) -> Path:
    """Write the three-panel figure (clean, observation, reconstruction) of ``task`` to ``path``."""
    from mgdm.plotting import pyplot

    plt = pyplot()

    clean = synthetic_image(task.image_shape)[None]
    y = GaussianNoise(sigma_y).observe(task.operator(clean), SampleNoise([seed]))
    estimate, label = reconstruction(task.operator, y)
    shown_y, y_label = observation_display(task.operator, y[0])
    figure, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
    panels = [
        (display_image(clean[0]), "clean x"),
        (shown_y, f"{y_label}, {tuple(task.observation_shape)}"),
        (display_image(estimate[0]), f"{label}\nPSNR {_psnr(estimate, clean):.1f} dB"),
    ]
    for axis, (image, title) in zip(axes, panels):
        axis.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    figure.suptitle(f"{task.name}: {task.description}", fontsize=8)
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_task_figures(
    out_dir: Path,
    image_shape: tuple[int, int, int],
    seed: int = 0,
    sigma_y: float = 0.05,
    names: list[str] | None = None,
) -> tuple[list[Path], list[str]]:
    """One ``<out_dir>/<task>.png`` per task; returns the paths and the skipped tasks with why."""
    written, skipped = [], []
    for name in names or list(TASKS):
        try:
            task = make_task(name, image_shape, seed)
        except ValueError as error:
            skipped.append(f"{name}: {error}")
            continue
        written.append(task_figure(task, out_dir / f"{name}.png", sigma_y, seed))
    return written, skipped
