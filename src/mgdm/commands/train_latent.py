"""``mgdm train autoencoder`` and ``mgdm train latent-prior``: the two stages of a latent prior.

``add_train_commands(commands)`` adds both to the sub-commands of ``mgdm train``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mgdm.commands.arguments import finite_float, positive_int
from mgdm.commands.train import add_run_options
from mgdm.files import write_atomically

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


def add_train_commands(commands: argparse._SubParsersAction) -> None:
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


def run_autoencoder(args: argparse.Namespace) -> int:
    from mgdm.priors.latent.autoencoder import evaluate_autoencoder
    from mgdm.train.latent import AutoencoderTrainConfig, train_autoencoder
    from mgdm.train.prior import parse_channels

    config = AutoencoderTrainConfig(
        channels=parse_channels(args.channels),
        latent_channels=args.latent_channels,
        kl_weight=args.kl_weight,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        limit=args.limit,
    )
    train_autoencoder(args.out, config, args.steps, args.checkpoint_every, args.device)
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
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        limit=args.limit,
    )
    train_latent_prior(
        args.autoencoder, args.out, config, args.steps, args.checkpoint_every, args.device
    )
    print(f"wrote {args.out}/vae, unet and scheduler (load with mgdm.priors.latent.load_latent_prior)")
    return 0
