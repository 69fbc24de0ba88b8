"""``mgdm evaluate prior``: measure a trained prior and write its model card.

Draws --samples unconditional samples (DDIM, --steps grid points, eta 1), computes the FID in the
features of mgdm's Fashion-MNIST classifier against the test split, beside the train-vs-test floor,
and writes into --prior: evaluation.json, samples.png and MODEL_CARD.md (from --run's config and
training log). The options, --run and --autoencoder-run are checked and --prior is probed for
writing before the prior is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdm.checkpoints import read_json_object
from mgdm.commands.arguments import (
    add_device_option,
    non_negative_int,
    positive_int,
    show_progress,
)
from mgdm.files import check_output_dir, write_atomically

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
        "--samples",
        type=positive_int,
        default=1000,
        help="samples for the FID, >= 2 (default: %(default)s)",
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
        "--steps",
        type=positive_int,
        default=100,
        help="DDIM grid points, 2 to 1000 (default: %(default)s)",
    )
    parser.add_argument(
        "--command",
        dest="training_command",  # not "command": mgdm's own sub-command name lives there
        required=True,
        help="the training command, quoted in the card",
    )
    parser.add_argument("--training-hardware", required=True, help="where it was trained, in words")
    add_device_option(parser)


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
        "--samples", type=positive_int, default=64, help="prior samples (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=16,
        help="clips per network call (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of samples and noise (default: %(default)s)",
    )
    add_card_options(parser)
    parser.set_defaults(func=run_audio)


def _check_training_run(run_dir: Path, option: str, kinds: tuple[str, ...]) -> None:
    """``ValueError`` unless ``run_dir`` is a training run of one of ``kinds`` (the ``kind`` of its
    ``config.json``) with a readable, non-empty ``train_log.csv``: what its model card reads."""
    from mgdm.evaluate.model_card import training_summary

    config = read_json_object(run_dir / "config.json", f"{option} configuration")
    if config.get("kind") not in kinds:
        raise ValueError(
            f"{option} {run_dir} holds a run of kind {config.get('kind')!r}; expected the "
            f"folder of a {' or '.join(kinds)} run."
        )
    try:
        training_summary(run_dir)
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{option} {run_dir}: no readable train_log.csv ({error}).") from None


def run(args: argparse.Namespace) -> int:
    from mgdm.evaluate.model_card import render_model_card
    from mgdm.evaluate.prior import (
        check_grid_points,
        evaluate_prior,
        save_evaluation,
        write_sample_grid,
    )
    from mgdm.priors.catalog import load_prior
    from mgdm.train.latent import AUTOENCODER_RUN_KIND, LATENT_PRIOR_RUN_KIND
    from mgdm.train.prior import RUN_KIND

    folder, run_dir = Path(args.prior), Path(args.run)
    autoencoder_run = Path(args.autoencoder_run) if args.autoencoder_run else None
    if args.samples < 2:
        raise ValueError(f"--samples must be >= 2 for the FID; got {args.samples}.")
    check_grid_points(args.steps)
    check_output_dir(folder, "--prior")
    _check_training_run(run_dir, "--run", (RUN_KIND, LATENT_PRIOR_RUN_KIND))
    if autoencoder_run is not None:
        _check_training_run(autoencoder_run, "--autoencoder-run", (AUTOENCODER_RUN_KIND,))
        read_json_object(autoencoder_run / "metrics.json", "--autoencoder-run metrics")
    prior = load_prior(folder, device=args.device)
    evaluation, samples = evaluate_prior(prior, args.samples, args.steps, device=args.device)
    card = render_model_card(
        run_dir, evaluation, args.training_command, args.training_hardware, autoencoder_run
    )
    save_evaluation(evaluation, folder / "evaluation.json")
    write_sample_grid(samples, folder / "samples.png")
    write_atomically(folder / "MODEL_CARD.md", lambda path: path.write_text(card, "utf-8"))
    print(
        f"FID {evaluation.fid_prior_vs_test:.2f} (floor {evaluation.fid_train_vs_test:.2f}); "
        f"wrote {folder}/MODEL_CARD.md, evaluation.json, samples.png"
    )
    return 0


def run_audio(args: argparse.Namespace) -> int:
    from mgdm.audio.dataset import load_stem_tensor
    from mgdm.audio.prior import IndependentStemsPrior, load_audio_prior
    from mgdm.evaluate.audio import (
        evaluate_audio_prior,
        save_audio_evaluation,
        stem_clips_for,
        write_sample_audio,
    )
    from mgdm.evaluate.audio_model_card import render_audio_model_card, training_runs
    from mgdm.evaluate.prior import check_grid_points

    folder = Path(args.prior)
    run_dir = Path(args.run) if args.run else folder
    check_grid_points(args.steps)
    check_output_dir(folder, "--prior")
    prior = load_audio_prior(folder, device=args.device)
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
        progress=show_progress(args),
        device=args.device,
    )
    save_audio_evaluation(evaluation, folder / "evaluation.json")
    write_sample_audio(samples, prior.stems, prior.sample_rate, folder, reference)
    card = render_audio_model_card(
        run_dir, evaluation, args.training_command, args.training_hardware
    )
    write_atomically(folder / "MODEL_CARD.md", lambda path: path.write_text(card, "utf-8"))
    stems = evaluation.per_stem
    distance = sum(s.spectral_distance_db for s in stems) / len(stems)
    floor = sum(s.spectral_floor_db for s in stems) / len(stems)
    print(
        f"held-out loss {evaluation.heldout_loss:.4f}; spectral distance {distance:.2f} dB "
        f"(floor {floor:.2f} dB, mean over stems); wrote {folder}/MODEL_CARD.md, evaluation.json, "
        "samples.png, samples/"
    )
    return 0
