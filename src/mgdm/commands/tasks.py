"""``mgdm tasks``: list the image tasks, and ``mgdm tasks figures``: draw them (docs/tasks.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdm.commands.arguments import non_negative_int, positive_float
from mgdm.files import check_output_dir
from mgdm.tasks.registry import TASKS, make_task

MAX_CHANNELS = 4
MAX_SIDE = 2048
"""The largest images the commands build tasks for (the operators of larger ones take minutes
and gigabytes to build)."""


def _image_shape(text: str) -> tuple[int, int, int]:
    """``C,H,W`` with ``1 <= C <= MAX_CHANNELS`` and ``1 <= H, W <= MAX_SIDE``."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or shape[0] > MAX_CHANNELS or max(shape[1:]) > MAX_SIDE:
        raise argparse.ArgumentTypeError(
            f"expected C,H,W with 1 <= C <= {MAX_CHANNELS} and 1 <= H, W <= {MAX_SIDE} (e.g. "
            f"1,32,32); got {text!r}"
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
    """Write one PNG per task under ``--out``; named tasks that cannot be built for the image
    shape are refused before anything is drawn (with ``all``, they are skipped)."""
    from mgdm.tasks.figures import write_task_figures

    names = None
    if args.tasks.strip() != "all":
        names = [n.strip() for n in args.tasks.split(",") if n.strip()]
        if not names:
            raise ValueError(
                f"--tasks takes 'all' or a comma list of task names; got {args.tasks!r}."
            )
        for name in names:
            try:
                make_task(name, args.image_shape, args.seed)
            except ValueError as error:
                raise ValueError(f"--tasks {name}: {error}") from None
    check_output_dir(args.out, "--out")
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
    from mgdm.tasks.jpeg_vs_pillow import agreement_table

    print(agreement_table())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tasks",
        help="list the image restoration tasks (or draw them: 'mgdm tasks figures')",
        description="List the image restoration tasks: observation shape, linear, SVD, operator.",
    )
    shape_help = (
        f"image shape C,H,W (images in [-1, 1]), C up to {MAX_CHANNELS}, H and W up to {MAX_SIDE}"
    )
    parser.add_argument(
        "--image-shape",
        type=_image_shape,
        default=(1, 32, 32),
        help=f"{shape_help}; default 1,32,32",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the random operator parts (motion kernels)",
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
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the operators and of the observation noise",
    )
    figures.add_argument(
        "--sigma-y",
        type=positive_float,
        default=0.05,
        help="Gaussian noise std in the [-1, 1] units of A(x) (default 0.05)",
    )
    figures.add_argument(
        "--tasks", default="all", help=f"'all' or a comma list of {', '.join(TASKS)}"
    )
    figures.set_defaults(func=draw_figures)
    check = commands.add_parser(
        "jpeg-vs-pillow",
        help="PSNR between our JPEG operator and Pillow's codec (the table of docs/tasks.md)",
    )
    check.set_defaults(func=jpeg_vs_pillow)
