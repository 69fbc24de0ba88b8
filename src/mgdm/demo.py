"""``mgdm demo``: MGDM on a 2-D Gaussian-mixture posterior, against the exact posterior.

A 25-component mixture on a grid (the benchmark prior in dimension 2) is observed through a
random 1 x 2 operator. The demo draws prior samples, exact posterior samples and MGDM samples
(default and reference presets), prints their sliced Wasserstein distances to the exact
posterior (with the exact-vs-exact floor) and writes a PNG with the three clouds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdm.bench.gmm import seed_block
from mgdm.bench.gmm_problem import make_gmm_problem
from mgdm.metrics.sliced_wasserstein import sliced_wasserstein
from mgdm.random import SampleNoise
from mgdm.samplers.mgdm import MGDM, preset


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="MGDM on a 2-D Gaussian-mixture posterior (writes a PNG)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="demo-output", help="output folder (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=2000, help="samples per cloud (default: %(default)s)")
    parser.add_argument("--problem-seed", type=int, default=3, help="which benchmark problem (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.samples < 10:
        raise ValueError(f"--samples must be >= 10; got {args.samples}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = make_gmm_problem(2, 1, args.problem_seed)
    n = args.samples
    exact = case.posterior.sample(SampleNoise(seed_block(2, 1, args.problem_seed, 1, count=n)))
    floor = sliced_wasserstein(exact, case.posterior.sample(SampleNoise(seed_block(2, 1, args.problem_seed, 2, count=n))))
    prior_draws = case.prior.sample(SampleNoise(seed_block(2, 1, args.problem_seed, 4, count=n)))
    clouds = {"prior": prior_draws, "exact posterior": exact}
    print(f"problem: 25-component mixture in 2-D, y = A x + noise, A 1x2, sigma_y = {case.sigma_y:.3f}")
    print(f"{'samples':<22} {'SW to exact':>12} {'NFE fwd':>8} {'NFE fwd+bwd':>12} {'seconds':>8}")
    print(f"{'exact (floor)':<22} {floor:>12.3f}")
    print(f"{'prior (no guidance)':<22} {sliced_wasserstein(exact, prior_draws):>12.3f}")
    for name in ("default", "reference"):
        result = MGDM(preset(name)).sample(case.prior, case.problem, seed_block(2, 1, args.problem_seed, 5, count=n), progress=True)
        sw = sliced_wasserstein(exact, result.samples)
        cost = result.cost
        print(f"{'MGDM ' + name:<22} {sw:>12.3f} {cost.nfe_forward:>8.0f} {cost.nfe_backward:>12.0f} {cost.seconds:>8.1f}")
        clouds[f"MGDM {name} (SW {sw:.2f})"] = result.samples
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, len(clouds), figsize=(4 * len(clouds), 4), sharex=True, sharey=True)
    for axis, (title, cloud) in zip(axes, clouds.items()):
        axis.scatter(case.prior.means[:, 0], case.prior.means[:, 1], s=25, c="lightgray", marker="x")
        axis.scatter(cloud[:, 0].double(), cloud[:, 1].double(), s=2, alpha=0.4)
        axis.set_title(title)
        axis.set_aspect("equal")
    figure.tight_layout()
    path = out / "gmm_posterior.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"wrote {path}")
    return 0
