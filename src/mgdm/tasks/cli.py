"""``mgdm tasks``: list the image tasks, and ``mgdm tasks figures``: draw them (docs/tasks.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdm.tasks.registry import TASKS, make_task


def _image_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected C,H,W with positive integers (e.g. 1,32,32); got {text!r}"
        )
    return shape  # type: ignore[return-value]


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def list_tasks(args: argparse.Namespace) -> int:
    """Print one line per task: name, observation shape, linear, SVD, operator."""
    print(
        f"tasks for images of shape {_shape_text(args.image_shape)} (C x H x W), seed {args.seed}:"
    )
    print(f"{'name':<16} {'observation':<12} {'linear':<7} {'SVD':<4} operator")
    for name in TASKS:
        try:
            task = make_task(name, args.image_shape, args.seed)
        except ValueError as error:
            print(f"{name:<16} unavailable: {error}")
            continue
        print(
            f"{name:<16} {_shape_text(task.observation_shape):<12} "
            f"{'yes' if task.is_linear else 'no':<7} {'yes' if task.has_svd else 'no':<4} "
            f"{task.operator!r}"
        )
    return 0


def draw_figures(args: argparse.Namespace) -> int:
    """Write one PNG per task under ``--out``."""
    from mgdm.tasks.figures import write_task_figures

    names = None if args.tasks == "all" else [n.strip() for n in args.tasks.split(",") if n.strip()]
    for name in names or []:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}.")
    if not args.sigma_y > 0:
        raise ValueError(f"--sigma-y must be > 0; got {args.sigma_y}.")
    written, skipped = write_task_figures(
        Path(args.out), args.image_shape, args.seed, args.sigma_y, names
    )
    for path in written:
        print(path)
    for line in skipped:
        print(f"skipped {line}")
    return 0


def jpeg_vs_pillow(args: argparse.Namespace) -> int:
    """Print the agreement table of our JPEG with Pillow's."""
    from mgdm.operators.jpeg_vs_pillow import agreement_table

    print(agreement_table())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tasks",
        help="list the image restoration tasks (or draw them: 'mgdm tasks figures')",
        description="List the image restoration tasks: observation shape, linear, SVD, operator.",
    )
    shape_help = "image shape C,H,W (images in [-1, 1])"
    parser.add_argument(
        "--image-shape",
        type=_image_shape,
        default=(1, 32, 32),
        help=f"{shape_help}; default 1,32,32",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random operator parts (motion kernels)"
    )
    parser.set_defaults(func=list_tasks)
    commands = parser.add_subparsers(dest="tasks_command", metavar="{figures,jpeg-vs-pillow}")
    figures = commands.add_parser(
        "figures",
        help="draw clean image, observation and reconstruction for each task",
        description="Write <out>/<task>.png for each task: the clean synthetic image, its noisy "
        "observation, and the pseudo-inverse (SVD), adjoint (linear) or least-squares "
        "reconstruction.",
    )
    figures.add_argument(
        "--out", default="docs/img/tasks", help="output folder (default docs/img/tasks)"
    )
    figures.add_argument(
        "--image-shape",
        type=_image_shape,
        default=(3, 64, 64),
        help=f"{shape_help}; default 3,64,64",
    )
    figures.add_argument(
        "--seed", type=int, default=0, help="seed of the operators and of the observation noise"
    )
    figures.add_argument(
        "--sigma-y",
        type=float,
        default=0.05,
        help="Gaussian noise std in the [-1, 1] units of A(x) (default 0.05)",
    )
    figures.add_argument("--tasks", default="all", help="'all' or a comma list of task names")
    figures.set_defaults(func=draw_figures)
    check = commands.add_parser(
        "jpeg-vs-pillow",
        help="PSNR between our JPEG operator and Pillow's codec (the table of docs/tasks.md)",
    )
    check.set_defaults(func=jpeg_vs_pillow)
