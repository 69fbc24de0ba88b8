"""``mgdm demo``: MGDM restores Fashion-MNIST test images with the shipped prior.

For each of three tasks (super-resolution x4, box inpainting, JPEG QF 2) the first --images test
images are degraded (sigma_y 0.05) and restored with MGDM's --preset (default ``fast``), --samples
posterior samples each; the demo prints PSNR/SSIM per task and writes ``OUT/restorations.png``
(clean, observation, samples, posterior mean, per-pixel std for every image).

``mgdm demo --gmm``: MGDM on a 2-D Gaussian-mixture posterior, against the exact posterior. A
25-component mixture on a grid (the benchmark prior in dimension 2) is observed through a
random 1 x 2 operator. The demo draws prior samples, exact posterior samples and MGDM samples
(default and reference presets), prints their sliced Wasserstein distances to the exact
posterior (with the exact-vs-exact floor) and writes a PNG with the three clouds.

Every option and --out are checked before the prior or the data are loaded.
"""

from __future__ import annotations

import argparse

import torch

from mgdm.bench.seeds import seed_block
from mgdm.commands.arguments import (
    add_device_option,
    non_negative_int,
    positive_int,
    show_progress,
)
from mgdm.commands.restore import MAX_SAMPLES
from mgdm.files import check_output_dir, write_atomically
from mgdm.gmm_problem import make_gmm_problem
from mgdm.metrics.sliced_wasserstein import sliced_wasserstein
from mgdm.priors.catalog import SHIPPED_PRIORS
from mgdm.random import SampleNoise
from mgdm.samplers.mgdm import MGDM, PRESETS, preset

MAX_IMAGES = 16
"""Test images per task at most (the grid has a row per image and task; a column per sample,
at most ``restore``'s :data:`~mgdm.commands.restore.MAX_SAMPLES`)."""

GMM_SAMPLES = (10, 100_000)
"""The range of --samples with --gmm (points per cloud of the figure)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="MGDM restores Fashion-MNIST images with the shipped prior (writes a PNG grid)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="demo-output", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--images",
        type=positive_int,
        default=3,
        help=f"test images per task, 1 to {MAX_IMAGES} (default: %(default)s)",
    )
    parser.add_argument(
        "--preset",
        default="fast",
        choices=sorted(PRESETS),
        help="MGDM preset (default: %(default)s)",
    )
    parser.add_argument(
        "--prior",
        default="fashion-mnist",
        help=f"a shipped prior ({', '.join(SHIPPED_PRIORS)}) or a path (default: %(default)s)",
    )
    parser.add_argument(
        "--samples",
        type=positive_int,
        help=f"samples per image, 1 to {MAX_SAMPLES} (default: 2), or per cloud with --gmm, "
        f"{GMM_SAMPLES[0]} to {GMM_SAMPLES[1]:,} (default: 2000)",
    )
    parser.add_argument(
        "--gmm", action="store_true", help="run the 2-D Gaussian-mixture demo instead"
    )
    parser.add_argument(
        "--problem-seed",
        type=non_negative_int,
        default=3,
        help="--gmm: which benchmark problem (default: %(default)s)",
    )
    add_device_option(parser)  # the image demo's network; --gmm has none (an exact 2-D mixture)
    parser.set_defaults(func=run)


DEMO_TASKS: tuple[str, ...] = ("sr4", "box_inpainting", "jpeg")


def run(args: argparse.Namespace) -> int:
    return run_gmm(args) if args.gmm else run_images(args)


def run_images(args: argparse.Namespace) -> int:
    from mgdm.data.fashion_mnist import load_fashion_mnist
    from mgdm.priors.catalog import load_prior
    from mgdm.restore import prior_image_shape, restore_batch, simulate_observation, write_grid
    from mgdm.samplers.registry import build_sampler
    from mgdm.tasks.registry import make_task

    samples = 2 if args.samples is None else args.samples
    if args.images > MAX_IMAGES or samples > MAX_SAMPLES:
        raise ValueError(
            f"--images {args.images}, --samples {samples}: the grid holds 1 to {MAX_IMAGES} "
            f"images per task and 1 to {MAX_SAMPLES} samples per image."
        )
    out = check_output_dir(args.out, "--out")
    prior = load_prior(args.prior, device=args.device)
    cleans = load_fashion_mnist("test", limit=args.images).images.to(args.device)
    results = []
    for name in DEMO_TASKS:
        task = make_task(name, prior_image_shape(prior))
        observations = torch.stack(
            [simulate_observation(task, clean, 0.05, seed=k) for k, clean in enumerate(cleans)]
        )
        sampler = build_sampler("mgdm", task=name, preset=args.preset)
        batch = restore_batch(
            observations,
            task,
            prior,
            sampler,
            samples,
            cleans=cleans,
            progress=show_progress(args),
            threads=None,  # mgdm.cli.main set --threads
        )
        print(summary_line_for_task(batch))
        results.extend(batch)
    print(f"wrote {write_grid(results, out / 'restorations.png')}")
    return 0


def summary_line_for_task(batch: list) -> str:
    """The task's mean PSNR/SSIM over every sample of every image, and its cost."""
    psnr = torch.cat([r.psnr for r in batch]).mean()
    ssim = torch.cat([r.ssim for r in batch]).mean()
    psnr_mean = sum(r.psnr_mean for r in batch) / len(batch)
    cost = batch[0].cost
    return (
        f"{batch[0].task.name:<15} {len(batch)} images x {batch[0].samples.shape[0]} samples: "
        f"PSNR {float(psnr):.2f} dB, SSIM {float(ssim):.3f} (samples); posterior mean PSNR "
        f"{psnr_mean:.2f} dB; {cost.nfe_forward:.0f} + {cost.nfe_backward:.0f} network calls and "
        f"{cost.seconds_per_sample:.2f} s per sample"
    )


def run_gmm(args: argparse.Namespace) -> int:
    args.samples = 2000 if args.samples is None else args.samples
    if not GMM_SAMPLES[0] <= args.samples <= GMM_SAMPLES[1]:
        raise ValueError(
            f"--samples with --gmm must be {GMM_SAMPLES[0]} to {GMM_SAMPLES[1]:,}; "
            f"got {args.samples:,}."
        )
    out = check_output_dir(args.out, "--out")
    from mgdm.plotting import pyplot

    plt = pyplot()

    case = make_gmm_problem(2, 1, args.problem_seed)
    n = args.samples
    exact = case.posterior.sample(SampleNoise(seed_block(2, 1, args.problem_seed, 1, count=n)))
    floor = sliced_wasserstein(
        exact, case.posterior.sample(SampleNoise(seed_block(2, 1, args.problem_seed, 2, count=n)))
    )
    prior_draws = case.prior.sample(SampleNoise(seed_block(2, 1, args.problem_seed, 4, count=n)))
    clouds = {"prior": prior_draws, "exact posterior": exact}
    print(
        f"problem: 25-component mixture in 2-D, y = A x + noise, A 1x2, sigma_y = {case.sigma_y:.3f}"
    )
    print(f"{'samples':<22} {'SW to exact':>12} {'NFE fwd':>8} {'NFE fwd+bwd':>12} {'seconds':>8}")
    print(f"{'exact (floor)':<22} {floor:>12.3f}")
    print(f"{'prior (no guidance)':<22} {sliced_wasserstein(exact, prior_draws):>12.3f}")
    for name in ("default", "reference"):
        result = MGDM(preset(name)).sample(
            case.prior,
            case.problem,
            seed_block(2, 1, args.problem_seed, 5, count=n),
            progress=show_progress(args),
        )
        sw = sliced_wasserstein(exact, result.samples)
        cost = result.cost
        print(
            f"{'MGDM ' + name:<22} {sw:>12.3f} {cost.nfe_forward:>8.0f} {cost.nfe_backward:>12.0f} {cost.seconds:>8.1f}"
        )
        clouds[f"MGDM {name} (SW {sw:.2f})"] = result.samples
    figure, axes = plt.subplots(
        1, len(clouds), figsize=(4 * len(clouds), 4), sharex=True, sharey=True
    )
    for axis, (title, cloud) in zip(axes, clouds.items()):
        axis.scatter(
            case.prior.means[:, 0], case.prior.means[:, 1], s=25, c="lightgray", marker="x"
        )
        axis.scatter(cloud[:, 0].double(), cloud[:, 1].double(), s=2, alpha=0.4)
        axis.set_title(title)
        axis.set_aspect("equal")
    figure.tight_layout()
    path = write_atomically(
        out / "gmm_posterior.png", lambda temporary: figure.savefig(temporary, dpi=100)
    )
    plt.close(figure)
    print(f"wrote {path}")
    return 0
