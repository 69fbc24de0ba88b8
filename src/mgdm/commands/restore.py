"""``mgdm restore``: posterior samples for one degraded image.

Give a clean image (IMAGE, or --test-image K for the K-th Fashion-MNIST test image): the
observation y = A(x) + sigma_y eps of --task is simulated with --sigma-y and --seed, and PSNR/SSIM
against the clean image are printed. Or give an observation (--observation y.npy, or an image for
tasks that observe an image; IMAGE then optional, as a reference for PSNR/SSIM). Writes a PNG grid
(--out): clean, observation, each sample, the posterior mean and the per-pixel std. Images of
another size or with colour are converted to what the prior expects, with a note.
"""

from __future__ import annotations

import argparse

from mgdm.commands import arguments
from mgdm.priors.catalog import SHIPPED_PRIORS
from mgdm.samplers.mgdm import PRESETS
from mgdm.samplers.registry import sampler_names
from mgdm.tasks.registry import TASKS

MAX_SAMPLES = 64
"""``--samples`` at most: one grid column per sample (the API's ``restore`` has no such limit)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore one image: posterior samples, mean and std as a PNG grid",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", nargs="?", help="a clean image (PNG, JPEG, …)")
    parser.add_argument(
        "--test-image",
        type=arguments.non_negative_int,
        help="use Fashion-MNIST test image K (0 to 9999) as the clean image",
    )
    parser.add_argument(
        "--observation", help="an observation: .npy, or an image for image-valued tasks"
    )
    parser.add_argument(
        "--task", required=True, help=f"the degradation: {', '.join(TASKS)} (see `mgdm tasks`)"
    )
    parser.add_argument(
        "--sampler",
        default="mgdm",
        help=f"{', '.join(sampler_names())} (default: %(default)s)",
    )
    parser.add_argument("--preset", help=f"MGDM preset: {', '.join(PRESETS)} (default: default)")
    parser.add_argument(
        "--prior",
        default="fashion-mnist",
        help=f"a shipped prior ({', '.join(SHIPPED_PRIORS)}) or a path (default: %(default)s)",
    )
    parser.add_argument(
        "--samples",
        type=arguments.positive_int,
        default=4,
        help=f"posterior samples, 1 to {MAX_SAMPLES} (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the simulated noise and the samples (default: %(default)s)",
    )
    parser.add_argument(
        "--sigma-y",
        type=arguments.positive_float,
        default=0.05,
        help="observation noise std in [-1, 1] units (default: %(default)s)",
    )
    parser.add_argument(
        "--nfe",
        type=arguments.positive_float,
        help="rescale the sampler to about this many network calls per sample",
    )
    parser.add_argument(
        "--out", default="restoration.png", help="PNG grid to write (default: %(default)s)"
    )
    parser.add_argument("--save-observation", help="also write the observation y as a .npy file")
    arguments.add_device_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mgdm.data.fashion_mnist import load_fashion_mnist
    from mgdm.files import check_output_file
    from mgdm.image_io import read_image, read_observation, save_observation
    from mgdm.priors.catalog import load_prior
    from mgdm.restore import (
        prior_image_shape,
        restore,
        simulate_observation,
        summary_line,
        write_grid,
    )
    from mgdm.samplers.registry import build_sampler
    from mgdm.tasks.registry import make_task

    if args.image is not None and args.test_image is not None:
        raise ValueError("give either IMAGE or --test-image, not both.")
    if args.image is None and args.test_image is None and args.observation is None:
        raise ValueError(
            "nothing to restore: give a clean IMAGE, --test-image K or --observation FILE."
        )
    if args.samples > MAX_SAMPLES:
        raise ValueError(
            f"--samples {args.samples}: the grid holds at most {MAX_SAMPLES} samples (one column "
            "each); for more, call mgdm.restore.restore from Python."
        )
    out = check_output_file(args.out, "--out", (".png",))
    if args.save_observation:
        check_output_file(args.save_observation, "--save-observation", (".npy",))
    prior = load_prior(args.prior, device=args.device)
    task = make_task(args.task, prior_image_shape(prior))
    sampler = build_sampler(args.sampler, task=task.name, preset=args.preset)
    if args.nfe is not None:
        sampler = sampler.with_budget(args.nfe)
    clean = None
    if args.test_image is not None:
        clean = load_fashion_mnist("test", indices=[args.test_image]).images[0]
        if tuple(clean.shape) != tuple(task.image_shape):
            raise ValueError(
                f"Fashion-MNIST images are {list(clean.shape)}; the prior expects {list(task.image_shape)}."
            )
    elif args.image is not None:
        clean, notes = read_image(args.image, task.image_shape)
        for note in notes:
            print(f"note: {note}")
    if args.observation is not None:
        observation = read_observation(args.observation, task)
    else:
        observation = simulate_observation(task, clean, args.sigma_y, args.seed)
    clean = clean.to(args.device) if clean is not None else None
    result = restore(
        observation.to(args.device),
        task,
        prior,
        sampler,
        samples=args.samples,
        seed=args.seed,
        sigma_y=args.sigma_y,
        clean=clean,
        progress=arguments.show_progress(args),
        threads=None,  # mgdm.cli.main set --threads
    )
    if args.save_observation:
        print(f"wrote {save_observation(args.save_observation, result.observation)}")
    print(summary_line(result))
    print(f"wrote {write_grid([result], out)}")
    return 0
