"""``mgdm restore``: posterior samples for one degraded image, or for a folder of images.

One image: give a clean image (IMAGE, or --test-image K for the K-th Fashion-MNIST test image):
the observation y = A(x) + sigma_y eps of --task is simulated with --sigma-y and --seed, and
PSNR/SSIM against the clean image are printed. Or give an observation (--observation y.npy, or an
image for tasks that observe an image; IMAGE then optional, as a reference for PSNR/SSIM). Writes
a PNG grid (--out): clean, observation, the do-nothing baseline, each sample, the posterior mean
and the per-pixel std; --save-samples DIR also writes each sample, the mean and the std as PNG
and .npy.

Many images: give a folder or a glob pattern (quoted: 'photos/*.jpg') and --out-dir OUT. The
prior is loaded once and --batch-size images run per sampler call; each image NAME gets
OUT/NAME/ with grid.png, sample_NN.png/.npy, mean, std, baseline (.png/.npy), observation.npy and
result.json (settings and scores). A folder appears only complete, so a rerun skips the finished
images (and refuses a folder made with other settings).

Every result is printed beside the do-nothing baseline (the observation brought back to the
image grid: bicubic upsampling for super-resolution, zero filling for inpainting, y itself for
blur and JPEG) with its PSNR/SSIM. Images of another size or with colour are converted to what
the prior expects, with a note, and one warning line when the input is far from the prior's
data (colour reduced to grey, resized more than 2x, or any image given to a shipped prior: those
model 32x32 Fashion-MNIST only; for photos pass your own model with --prior).

The sampler runs with its defaults for the task; --nfe N rescales any sampler to about N network
calls per sample, and MGDM's fields can be set one by one (the MGDM options below).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdm.commands import arguments
from mgdm.commands.mgdm_options import add_mgdm_options, mgdm_config_from_args, mgdm_overrides
from mgdm.priors.catalog import SHIPPED_PRIORS
from mgdm.samplers.base import Sampler
from mgdm.samplers.mgdm import MGDM
from mgdm.samplers.registry import build_sampler, sampler_names
from mgdm.tasks.registry import TASKS, make_task

MAX_SAMPLES = 64
"""``--samples`` at most: one grid column per sample (the API's ``restore`` has no such limit)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore an image or a folder of images: posterior samples, mean and std, beside "
        "the do-nothing baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "image",
        nargs="?",
        help="a clean image (PNG, JPEG, ...); with --out-dir also a folder or a glob pattern",
    )
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
        help="a budget: rescale the sampler (any) to about this many network calls per sample",
    )
    parser.add_argument("--out", help="one image: the PNG grid to write (default: restoration.png)")
    parser.add_argument(
        "--save-samples",
        metavar="DIR",
        help="one image: also write each sample, the mean and the std to DIR as PNG and .npy",
    )
    parser.add_argument("--save-observation", help="also write the observation y as a .npy file")
    parser.add_argument(
        "--out-dir",
        help="restore every image of IMAGE (a file, a folder or a glob) to OUT_DIR/NAME/ "
        "(resumable)",
    )
    parser.add_argument(
        "--batch-size",
        type=arguments.positive_int,
        default=8,
        help="with --out-dir: images per sampler call (default: %(default)s)",
    )
    arguments.add_device_option(parser)
    add_mgdm_options(parser)
    parser.set_defaults(func=run)


def build_restore_sampler(args: argparse.Namespace, task_name: str) -> Sampler:
    """``--sampler`` with its defaults for the task; for MGDM ``--preset`` and the MGDM
    options (:mod:`mgdm.commands.mgdm_options`); then ``--nfe``. MGDM options with another
    sampler are an error."""
    if args.sampler == "mgdm":
        sampler: Sampler = MGDM(mgdm_config_from_args(args, "image", task_name))
    else:
        given = sorted(mgdm_overrides(args)) + (["preset"] if args.preset else [])
        if given:
            raise ValueError(
                f"MGDM's options ({', '.join(given)}) apply to --sampler mgdm only; "
                f"--sampler {args.sampler} runs with its own settings (and --nfe)."
            )
        sampler = build_sampler(args.sampler, task=task_name)
    return sampler if args.nfe is None else sampler.with_budget(args.nfe)


def run(args: argparse.Namespace) -> int:
    if args.samples > MAX_SAMPLES:
        raise ValueError(
            f"--samples {args.samples}: the grid holds at most {MAX_SAMPLES} samples (one column "
            "each); for more, call mgdm.restore.restore from Python."
        )
    if args.out_dir is not None:
        return run_folder(args)
    return run_single(args)


def run_folder(args: argparse.Namespace) -> int:
    """``--out-dir``: every image of IMAGE (file, folder or glob), resumable."""
    from mgdm.files import check_output_dir
    from mgdm.image_io import list_images
    from mgdm.restore import restore_files

    single = {
        "--test-image": args.test_image,
        "--observation": args.observation,
        "--out": args.out,
        "--save-samples": args.save_samples,
        "--save-observation": args.save_observation,
    }
    given = [name for name, value in single.items() if value is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} restore one image; with --out-dir every image of IMAGE gets "
            "OUT_DIR/NAME/ with its grid, samples and observation."
        )
    if args.image is None:
        raise ValueError("--out-dir needs IMAGE: an image file, a folder or a glob pattern.")
    if args.task not in TASKS:
        raise ValueError(f"unknown task {args.task!r}; known tasks: {', '.join(TASKS)}.")
    paths = list_images(args.image)
    out_dir = check_output_dir(args.out_dir, "--out-dir")
    done = restore_files(
        paths,
        out_dir,
        args.task,
        args.prior,
        build_restore_sampler(args, args.task),
        args.samples,
        args.seed,
        args.sigma_y,
        args.batch_size,
        device=args.device,
        progress=arguments.show_progress(args),
        threads=None,  # mgdm.cli.main set --threads
        log=print,
    )
    if done.warnings:
        first_path, first = done.warnings[0]
        print(
            f"warning: {len(done.warnings)} of {len(paths)} images ({first_path.name}, ...): "
            f"{first}"
        )
    print(f"restored {len(done.restored)} images to {out_dir} ({len(done.skipped)} already there)")
    return 0


def run_single(args: argparse.Namespace) -> int:
    """One image: the grid (--out), optionally its samples (--save-samples)."""
    from mgdm.data.fashion_mnist import load_fashion_mnist
    from mgdm.files import check_output_dir, check_output_file
    from mgdm.image_io import GLOB_CHARACTERS, convert_image, read_observation, save_observation
    from mgdm.priors.catalog import load_prior
    from mgdm.restore import (
        baseline_line,
        input_warning,
        prior_image_shape,
        restore,
        save_samples,
        simulate_observation,
        summary_line,
        write_grid,
    )

    if args.image is not None and args.test_image is not None:
        raise ValueError("give either IMAGE or --test-image, not both.")
    if args.image is None and args.test_image is None and args.observation is None:
        raise ValueError(
            "nothing to restore: give a clean IMAGE, --test-image K or --observation FILE."
        )
    if args.image is not None and not Path(args.image).is_file():
        pattern = any(character in args.image for character in GLOB_CHARACTERS)
        if Path(args.image).is_dir() or (pattern and not Path(args.image).exists()):
            raise ValueError(
                f"{args.image} names a folder or a pattern: give --out-dir OUT to restore each "
                "of its images to OUT/NAME/."
            )
    out = check_output_file(args.out or "restoration.png", "--out", (".png",))
    if args.save_observation:
        check_output_file(args.save_observation, "--save-observation", (".npy",))
    if args.save_samples:
        check_output_dir(args.save_samples, "--save-samples")
    prior = load_prior(args.prior, device=args.device)
    task = make_task(args.task, prior_image_shape(prior))
    sampler = build_restore_sampler(args, task.name)
    clean = None
    if args.test_image is not None:
        clean = load_fashion_mnist("test", indices=[args.test_image]).images[0]
        if tuple(clean.shape) != tuple(task.image_shape):
            raise ValueError(
                f"Fashion-MNIST images are {list(clean.shape)}; the prior expects {list(task.image_shape)}."
            )
    elif args.image is not None:
        converted = convert_image(args.image, task.image_shape)
        clean = converted.image
        for note in converted.notes:
            print(f"note: {note}")
        warning = input_warning(converted, args.prior)
        if warning is not None:
            print(f"warning: {warning}")
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
    print(baseline_line(result))
    print(f"wrote {write_grid([result], out)}")
    if args.save_samples:
        written = save_samples(result, args.save_samples)
        print(f"wrote {len(written)} files to {args.save_samples} (samples, mean, std: PNG, .npy)")
    return 0
