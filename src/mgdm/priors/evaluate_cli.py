"""``mgdm evaluate prior``: measure a trained prior and write its model card.

Draws --samples unconditional samples (DDIM, --steps grid points, eta 1), computes the FID in the
features of mgdm's Fashion-MNIST classifier against the test split, beside the train-vs-test floor,
and writes into --prior: evaluation.json, samples.png and MODEL_CARD.md (from --run's config and
training log).
"""

from __future__ import annotations

import argparse
from pathlib import Path

AUDIO_PRIOR_HELP = """\
Measure an audio prior (`mgdm train audio-prior`) on test clips and write its model card.

Held-out loss: the training objective on every clip of --data, one seeded time and
noise per clip. Samples: --samples unconditional samples (DDIM, --steps grid points, eta 1).
Per stem: the mean RMS of samples and test clips, and the spectral distance (mean absolute dB
difference of average Hann-windowed power spectra in 64 log-spaced bands from 20 Hz) between
the samples and the second half of the test clips, beside its floor (the first half vs the
second). Writes into --prior: evaluation.json, samples.png (spectrograms), samples/*.wav and
MODEL_CARD.md.

--run is the `mgdm train audio-prior --out` folder the prior came from (default: --prior, where
training writes the prior); for an independent-stems prior, the folder holding the four runs
bass/ drums/ guitar/ piano/ (the layout `load_audio_prior` reads).
"""


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
    add_card_options(parser)
    parser.add_argument(
        "--autoencoder-run", help="for a latent prior: the `mgdm train autoencoder` run folder"
    )
    parser.set_defaults(func=run)
    add_audio_parser(commands)


def add_card_options(parser: argparse.ArgumentParser) -> None:
    """The options of both evaluations: --steps of the DDIM sampler, and the training command and
    hardware quoted in the model card."""
    parser.add_argument(
        "--steps", type=int, default=100, help="DDIM grid points (default: %(default)s)"
    )
    parser.add_argument("--command", required=True, help="the training command, quoted in the card")
    parser.add_argument("--training-hardware", required=True, help="where it was trained, in words")


def add_audio_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``audio-prior`` to the sub-commands of ``mgdm evaluate``."""
    parser = commands.add_parser(
        "audio-prior",
        help="held-out loss, RMS and spectra of audio prior samples, and model card",
        description=AUDIO_PRIOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--prior", required=True, help="the audio prior folder (`load_audio_prior` reads it)"
    )
    parser.add_argument(
        "--data", required=True, help="test stem file (`mgdm audio-data --split test`)"
    )
    parser.add_argument(
        "--run", help="the training run folder, or the folder of the four stem runs (see above)"
    )
    parser.add_argument(
        "--samples", type=int, default=64, help="prior samples (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, help="clips per network call (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of samples and noise (default: %(default)s)"
    )
    add_card_options(parser)
    parser.set_defaults(func=run_audio)


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


def run_audio(args: argparse.Namespace) -> int:
    from mgdm.audio.dataset import load_stem_tensor
    from mgdm.audio.evaluate import (
        evaluate_audio_prior,
        save_audio_evaluation,
        stem_clips_for,
        write_sample_audio,
    )
    from mgdm.audio.model_card import render_audio_model_card, training_runs
    from mgdm.audio.prior import IndependentStemsPrior, load_audio_prior

    folder = Path(args.prior)
    run_dir = Path(args.run) if args.run else folder
    prior = load_audio_prior(folder)
    training_runs(run_dir, prior.stems, isinstance(prior, IndependentStemsPrior))  # fail early
    data = load_stem_tensor(args.data)
    reference = stem_clips_for(prior, data, args.data)[0]  # also checks the file fits the prior
    evaluation, samples = evaluate_audio_prior(
        prior,
        data,
        args.samples,
        args.steps,
        args.seed,
        batch_size=args.batch_size,
        progress=True,
    )
    save_audio_evaluation(evaluation, folder / "evaluation.json")
    write_sample_audio(samples, prior.stems, prior.sample_rate, folder, reference)
    card = render_audio_model_card(run_dir, evaluation, args.command, args.training_hardware)
    (folder / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    stems = evaluation.per_stem
    distance = sum(s.spectral_distance_db for s in stems) / len(stems)
    floor = sum(s.spectral_floor_db for s in stems) / len(stems)
    print(
        f"held-out loss {evaluation.heldout_loss:.4f}; spectral distance {distance:.2f} dB "
        f"(floor {floor:.2f} dB, mean over stems); wrote {folder}/MODEL_CARD.md, evaluation.json, "
        "samples.png, samples/"
    )
    return 0
