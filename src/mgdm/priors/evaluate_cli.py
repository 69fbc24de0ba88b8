"""``mgdm evaluate prior``: measure a trained prior and write its model card.

Draws --samples unconditional samples (DDIM, --steps grid points, eta 1), computes the FID in the
features of mgdm's Fashion-MNIST classifier against the test split, beside the train-vs-test floor,
and writes into --prior: evaluation.json, samples.png and MODEL_CARD.md (from --run's config and
training log).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("evaluate", help="measure a trained prior (FID, model card)")
    commands = evaluate.add_subparsers(dest="evaluate_command", metavar="WHAT", required=True)
    parser = commands.add_parser(
        "prior",
        help="FID of prior samples, sample grid and model card",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prior", required=True, help="the prior folder (diffusers layout)")
    parser.add_argument(
        "--run", required=True, help="the `mgdm train prior` run folder it came from"
    )
    parser.add_argument(
        "--samples", type=int, default=1000, help="samples for the FID (default: %(default)s)"
    )
    parser.add_argument(
        "--steps", type=int, default=100, help="DDIM grid points (default: %(default)s)"
    )
    parser.add_argument("--command", required=True, help="the training command, quoted in the card")
    parser.add_argument("--training-hardware", required=True, help="where it was trained, in words")
    parser.add_argument(
        "--autoencoder-run", help="for a latent prior: the `mgdm train autoencoder` run folder"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mgdm.priors.catalog import load_prior
    from mgdm.priors.evaluate import evaluate_prior, save_evaluation, write_sample_grid
    from mgdm.priors.model_card import render_model_card

    folder, run_dir = Path(args.prior), Path(args.run)
    evaluation, samples = evaluate_prior(load_prior(folder), args.samples, args.steps)
    save_evaluation(evaluation, folder / "evaluation.json")
    write_sample_grid(samples, folder / "samples.png")
    autoencoder_run = Path(args.autoencoder_run) if args.autoencoder_run else None
    card = render_model_card(
        run_dir, evaluation, args.command, args.training_hardware, autoencoder_run
    )
    (folder / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    print(
        f"FID {evaluation.fid_prior_vs_test:.2f} (floor {evaluation.fid_train_vs_test:.2f}); "
        f"wrote {folder}/MODEL_CARD.md, evaluation.json, samples.png"
    )
    return 0
