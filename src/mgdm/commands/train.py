"""``mgdm train prior``: train an epsilon-prediction DDPM prior on Fashion-MNIST 32 x 32.

Images in [-1, 1]; DDPM linear schedule (betas 1e-4 ... 0.02, 1000 steps); the UNet is called
with the integer time k of x_k = sqrt(abar[k]) x_0 + sqrt(1 - abar[k]) eps and trained on
MSE(eps_hat, eps). Rerunning the same command in the same --out resumes from the last
checkpoint (the options other than --steps, --checkpoint-every and --device must match). Every
option is checked before --out is created, and a run that fails before its first checkpoint
leaves no --out behind. The result, OUT/unet and OUT/scheduler, loads with
mgdm.priors.load_diffusers_prior(OUT).
"""

from __future__ import annotations

import argparse

from mgdm.commands.arguments import device, non_negative_int, positive_float, positive_int
from mgdm.train.prior import TrainConfig, parse_channels, train_prior


def add_run_options(
    parser: argparse.ArgumentParser,
    channels: str,
    lr: float,
    *,
    batch_size: int = 64,
    item: str = "images",
    limit: bool = True,
) -> None:
    """The options every resumable trainer takes: --out, --steps, --batch-size, --lr, --channels,
    --seed, --checkpoint-every, --device, and --limit where ``limit`` (Fashion-MNIST trainers);
    ``item`` names what a batch holds in the help."""
    parser.add_argument(
        "--out", required=True, help="run folder (created; an existing run resumes)"
    )
    parser.add_argument(
        "--steps", type=int, default=10_000, help="total optimisation steps (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help=f"{item} per step (default: %(default)s)",
    )
    parser.add_argument(
        "--lr", type=positive_float, default=lr, help="Adam learning rate (default: %(default)s)"
    )
    parser.add_argument(
        "--channels",
        default=channels,
        help="UNet channels, one per resolution, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of weights, data order and noise (default: %(default)s)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=200,
        help="steps between checkpoints (default: %(default)s)",
    )
    if limit:
        parser.add_argument(
            "--limit",
            type=positive_int,
            default=None,
            help="train on the first N training images (default: all 60,000)",
        )
    parser.add_argument(
        "--device", type=device, default="cpu", help="cpu, cuda or cuda:N (default: cpu)"
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train the small priors the project ships",
        description="Train the small priors the project ships.",
    )
    commands = train.add_subparsers(dest="train_command", metavar="WHAT", required=True)
    parser = commands.add_parser(
        "prior",
        help="an epsilon-prediction DDPM on Fashion-MNIST 32x32 (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser, "32,64,64", 2e-4)
    parser.set_defaults(func=run)
    _add_classifier_parser(commands)
    from mgdm.commands.audio import add_train_command
    from mgdm.commands.train_latent import add_train_commands as add_latent_train_commands

    add_train_command(commands)
    add_latent_train_commands(commands)


def _add_classifier_parser(commands: argparse._SubParsersAction) -> None:
    from mgdm.train import classifier

    parser = commands.add_parser(
        "classifier",
        help="the Fashion-MNIST classifier whose features measure image quality (FID)",
        description=classifier.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", required=True, help="output folder (model.safetensors, metrics.json)"
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=2000,
        help="optimisation steps (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=128,
        help="images per step, at most 60,000 (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        help="initial Adam learning rate, cosine decay (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of weights and data order (default: %(default)s)",
    )
    parser.set_defaults(func=run_classifier)


def run_classifier(args: argparse.Namespace) -> int:
    from mgdm.train.classifier import train_classifier

    metrics = train_classifier(args.out, args.steps, args.batch_size, args.lr, args.seed)
    print(f"test accuracy {metrics['test_accuracy']:.4f}; wrote {args.out}/model.safetensors")
    return 0


def run(args: argparse.Namespace) -> int:
    config = TrainConfig(
        channels=parse_channels(args.channels),
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        limit=args.limit,
    )
    train_prior(args.out, config, args.steps, args.checkpoint_every, args.device)
    print(f"wrote {args.out}/unet and {args.out}/scheduler (load with mgdm.priors.load_prior(OUT))")
    return 0
