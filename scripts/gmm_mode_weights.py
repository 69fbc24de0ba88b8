"""How MGDM and DPS share their samples between the posterior's components on the Gaussian-mixture
benchmark: the figures of docs/benchmarks.md §1.6 ("mode weights").

Usage (from the repository root; about 5 minutes on a 2-core x86 VM)::

    .venv/bin/python scripts/gmm_mode_weights.py --dim 8 80 --obs-dim 2 --seeds 0-9

For each problem of ``mgdm bench gmm`` (same prior, operator, observation and sample seeds), each
sample is assigned to the posterior component whose mean is nearest, and the share of samples per
component is compared with the exact posterior's weights ``w~_i``: the total-variation distance
``TV = 1/2 sum_i |share_i - w~_i|`` (0: every component gets its exact share). The samplers run
at 1000 network calls per sample (MGDM's ``--preset``, by default ``variational``, the default
until 2026-12-05, rescaled; DPS at its own 998), as in table 1.2. The nearest-mean assignment is checked on exact posterior draws (the ``exact`` column:
what it reports for a perfect sampler, about the sampling noise of 1000 draws).
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor

from mgdm.bench.ladder import RUNGS, rung_config
from mgdm.bench.seeds import parse_seeds, seed_block
from mgdm.gmm_problem import make_gmm_problem
from mgdm.random import SampleNoise
from mgdm.samplers.mgdm import MGDM
from mgdm.samplers.registry import build_sampler

SAMPLES = 1000
BUDGET = 1000
LADDER = ("default", "exact potential", "exact potential, R = 4")
"""The rungs of ``--ladder`` (labels of :data:`mgdm.bench.ladder.RUNGS`)."""


def shares(samples: Tensor, component_means: Tensor) -> Tensor:
    """Share of ``samples`` ``[N, d]`` nearest to each of ``component_means`` ``[K, d]``: ``[K]``."""
    nearest = torch.cdist(samples.double(), component_means.double()).argmin(dim=1)
    return torch.bincount(nearest, minlength=component_means.shape[0]).double() / len(samples)


def total_variation(share: Tensor, weights: Tensor) -> float:
    return 0.5 * float((share - weights).abs().sum())


def problem_row(dim: int, obs_dim: int, seed: int, ladder: bool, preset: str) -> list[float]:
    """TV of the exact draws, MGDM and DPS on one problem, then of the :data:`LADDER` rungs."""
    case = make_gmm_problem(dim, obs_dim, seed)
    posterior = case.posterior
    means, weights = posterior.component_means, posterior.weights
    exact = posterior.sample(SampleNoise(seed_block(dim, obs_dim, seed, 1, count=SAMPLES)))
    mgdm = build_sampler("mgdm", "gmm", preset=preset).with_budget(BUDGET)
    samplers = [mgdm, build_sampler("dps", "gmm")]
    if ladder:
        rungs = {rung.label: rung for rung in RUNGS}
        samplers += [MGDM(rung_config(rungs[label], particles=16)) for label in LADDER]
    row = [total_variation(shares(exact, means), weights)]
    for sampler in samplers:
        seeds = seed_block(dim, obs_dim, seed, 5, count=SAMPLES)
        result = sampler.sample(case.prior, case.problem, seeds)
        row.append(total_variation(shares(result.samples, means), weights))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, nargs="+", default=[8, 80])
    parser.add_argument("--obs-dim", type=int, nargs="+", default=[2])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--ladder", action="store_true", help="add the rungs of LADDER")
    parser.add_argument(
        "--preset",
        default="variational",
        help="MGDM's preset (default: variational, as in docs/results/gmm/mode-weights.md)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    columns = ["TV exact draws", "TV MGDM", "TV DPS"]
    columns += [f"TV rung: {label}" for label in LADDER] if args.ladder else []
    print("| d | d_y | seed | " + " | ".join(columns) + " |")
    print("|---:|---:|---:|" + "---:|" * len(columns))
    for dim in args.dim:
        for obs_dim in args.obs_dim:
            rows = []
            for seed in parse_seeds(args.seeds):
                row = problem_row(dim, obs_dim, seed, args.ladder, args.preset)
                rows.append(row)
                print(
                    f"| {dim} | {obs_dim} | {seed} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
                )
            means = [sum(column) / len(rows) for column in zip(*rows, strict=True)]
            print(
                f"| {dim} | {obs_dim} | mean | " + " | ".join(f"**{v:.3f}**" for v in means) + " |"
            )


if __name__ == "__main__":
    main()
