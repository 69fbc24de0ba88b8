"""``mgdm train``: the trainers of the priors the project ships, one sub-command each.

``prior`` (a DDPM on Fashion-MNIST), ``classifier`` (the Fashion-MNIST classifier of the FID),
``audio-prior`` (a diffusion prior on audio stems), and the two stages of a latent prior,
``autoencoder`` and ``latent-prior``. ``add_parser(subparsers)`` adds ``train`` with all of them;
``add_audio_prior_command`` and ``add_latent_commands`` add some to any sub-parsers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mgdm.audio.constants import STEMS
from mgdm.commands.arguments import (
    add_device_option,
    finite_float,
    non_negative_int,
    positive_float,
    positive_int,
    show_progress,
)
from mgdm.files import write_atomically
from mgdm.train.prior import TrainConfig, parse_channels, train_prior

PRIOR_HELP = """Train an epsilon-prediction DDPM prior on Fashion-MNIST 32 x 32.

Images in [-1, 1]; DDPM linear schedule (betas 1e-4 ... 0.02, 1000 steps); the UNet is called
with the integer time k of x_k = sqrt(abar[k]) x_0 + sqrt(1 - abar[k]) eps and trained on
MSE(eps_hat, eps). Rerunning the same command in the same --out resumes from the last
checkpoint (the options other than --steps, --checkpoint-every and --device must match). Every
option is checked before --out is created, and a run that fails before its first checkpoint
leaves no --out behind. The result, OUT/unet and OUT/scheduler, loads with
mgdm.priors.load_diffusers_prior(OUT).
"""

AUTOENCODER_HELP = """Train a KL autoencoder (diffusers AutoencoderKL) on Fashion-MNIST 32x32.

Images in [-1, 1]; loss = per-pixel MSE of the reconstruction from a reparameterised latent +
kl_weight x KL per latent entry. Rerunning the same command in the same --out resumes from the
last checkpoint (the options other than --steps, --checkpoint-every, --device and --eval-limit
must match). Every option, --eval-limit included, is checked before --out is created. Writes
OUT/vae and OUT/metrics.json (reconstruction PSNR on the test split); then train the diffusion
model with `mgdm train latent-prior --autoencoder OUT`.
"""

LATENT_PRIOR_HELP = """Train an epsilon-prediction DDPM on the latents of a trained autoencoder.

Each training image is encoded to its posterior mean; the latents are scaled by 1/std (the
scaling_factor, as Stable Diffusion) and a UNet2DModel learns them on the DDPM linear schedule.
Rerunning the same command in the same --out resumes. Writes OUT/vae (with scaling_factor in its
config.json), OUT/unet and OUT/scheduler (Stable Diffusion's layout), loaded by
mgdm.priors.latent.load_latent_prior(OUT).
"""


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
    add_device_option(parser)


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
        description=PRIOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser, "32,64,64", 2e-4)
    parser.set_defaults(func=run_prior)
    _add_classifier_parser(commands)
    add_audio_prior_command(commands)
    add_latent_commands(commands)


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


def add_audio_prior_command(commands: argparse._SubParsersAction) -> None:
    """Add ``audio-prior`` to the sub-commands of ``mgdm train`` (its defaults are the recipe of
    the shipped four-stem prior, bar the step count)."""
    from mgdm.train import audio as train

    parser = commands.add_parser(
        "audio-prior",
        help="an epsilon-prediction diffusion prior on audio stems (resumable)",
        description=train.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="stem tensor file from `mgdm audio-data`")
    add_run_options(parser, "8,32,64,128", 4e-4, batch_size=16, item="clips", limit=False)
    parser.add_argument(
        "--stems",
        choices=("all", *STEMS),
        default="all",
        help="all four stems jointly, or one stem (default: %(default)s)",
    )
    parser.add_argument(
        "--factors", default="8,4,4", help="UNet downsampling between levels (default: %(default)s)"
    )
    parser.add_argument(
        "--no-attention", action="store_true", help="no self-attention in the UNet's middle block"
    )
    parser.set_defaults(func=run_audio_prior)


def add_latent_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``autoencoder`` and ``latent-prior`` to the sub-commands of ``mgdm train``."""
    autoencoder = commands.add_parser(
        "autoencoder",
        help="a KL autoencoder on Fashion-MNIST 32x32 for a latent prior (resumable)",
        description=AUTOENCODER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(autoencoder, "32,64,64", 5e-4)
    autoencoder.add_argument(
        "--latent-channels",
        type=positive_int,
        default=4,
        help="channels of the latents (default: %(default)s)",
    )
    autoencoder.add_argument(
        "--kl-weight",
        type=finite_float,
        default=1e-4,
        help="weight of the KL per latent entry against the per-pixel MSE, >= 0 "
        "(default: %(default)s)",
    )
    autoencoder.add_argument(
        "--eval-limit",
        type=positive_int,
        default=None,
        help="test images for the reconstruction PSNR (default: all 10,000)",
    )
    autoencoder.set_defaults(func=run_autoencoder)

    prior = commands.add_parser(
        "latent-prior",
        help="an epsilon-prediction DDPM on an autoencoder's latents (resumable)",
        description=LATENT_PRIOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prior.add_argument(
        "--autoencoder",
        required=True,
        help="the folder of `mgdm train autoencoder` (or an AutoencoderKL folder)",
    )
    add_run_options(prior, "64,128", 2e-4)
    prior.set_defaults(func=run_latent_prior)


def run_classifier(args: argparse.Namespace) -> int:
    from mgdm.train.classifier import train_classifier

    metrics = train_classifier(
        args.out, args.steps, args.batch_size, args.lr, args.seed, progress=show_progress(args)
    )
    print(f"test accuracy {metrics['test_accuracy']:.4f}; wrote {args.out}/model.safetensors")
    return 0


def _optimiser_options(args: argparse.Namespace) -> dict[str, object]:
    """The fields every trainer's config takes from the shared options (``add_run_options``):
    batch size, learning rate, seed."""
    return {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}


def _run_options(args: argparse.Namespace) -> dict[str, object]:
    """How every trainer runs: steps, checkpoint interval, device, progress bar."""
    return {
        "steps": args.steps,
        "checkpoint_every": args.checkpoint_every,
        "device": args.device,
        "progress": show_progress(args),
    }


def run_prior(args: argparse.Namespace) -> int:
    config = TrainConfig(
        channels=parse_channels(args.channels),
        limit=args.limit,
        **_optimiser_options(args),
    )
    train_prior(
        args.out,
        config,
        **_run_options(args),
    )
    print(f"wrote {args.out}/unet and {args.out}/scheduler (load with mgdm.priors.load_prior(OUT))")
    return 0


def run_audio_prior(args: argparse.Namespace) -> int:
    from mgdm.train.audio import AudioTrainConfig, parse_integers, train_audio_prior

    config = AudioTrainConfig(
        stems=args.stems,
        channels=parse_integers(args.channels, "--channels"),
        factors=parse_integers(args.factors, "--factors") if args.factors else (),
        attention=not args.no_attention,
        **_optimiser_options(args),
    )
    train_audio_prior(
        args.data,
        args.out,
        config,
        **_run_options(args),
    )
    print(
        f"wrote {args.out}/prior.json and model.safetensors (load with mgdm.audio.load_audio_prior)"
    )
    return 0


def run_autoencoder(args: argparse.Namespace) -> int:
    from mgdm.priors.latent.autoencoder import evaluate_autoencoder
    from mgdm.train.latent import AutoencoderTrainConfig, train_autoencoder
    from mgdm.train.prior import parse_channels

    config = AutoencoderTrainConfig(
        channels=parse_channels(args.channels),
        latent_channels=args.latent_channels,
        kl_weight=args.kl_weight,
        limit=args.limit,
        **_optimiser_options(args),
    )
    train_autoencoder(
        args.out,
        config,
        **_run_options(args),
    )
    metrics = evaluate_autoencoder(Path(args.out) / "vae", args.eval_limit, args.device)
    text = json.dumps(metrics, indent=2) + "\n"
    write_atomically(Path(args.out) / "metrics.json", lambda path: path.write_text(text))
    print(
        f"wrote {args.out}/vae; test reconstruction PSNR {metrics['psnr_mean']:.2f} dB on "
        f"{metrics['images']} images"
    )
    return 0


def run_latent_prior(args: argparse.Namespace) -> int:
    from mgdm.train.latent import train_latent_prior
    from mgdm.train.prior import TrainConfig, parse_channels

    config = TrainConfig(
        channels=parse_channels(args.channels),
        limit=args.limit,
        **_optimiser_options(args),
    )
    train_latent_prior(
        args.autoencoder,
        args.out,
        config,
        **_run_options(args),
    )
    print(
        f"wrote {args.out}/vae, unet and scheduler (load with mgdm.priors.latent.load_latent_prior)"
    )
    return 0
