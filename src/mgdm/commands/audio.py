"""The audio commands: ``mgdm separate``, ``mgdm audio-data`` and ``mgdm train audio-prior``.

``add_parser(subparsers)`` adds ``separate`` and ``audio-data`` to the top-level parser;
``add_train_command(commands)`` adds ``audio-prior`` to the sub-commands of ``mgdm train``.
Each sets ``func`` to a callable taking the parsed arguments and returning an exit status;
errors in the input are ``ValueError``s (one line, exit status 2 in :func:`mgdm.cli.main`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdm.audio.constants import STEMS
from mgdm.commands import arguments

SEPARATE_HELP = """\
Separate a music mix into bass, drums, guitar and piano with a diffusion prior.

The mix (any file libsndfile reads: WAV, FLAC, OGG, AIFF) is averaged to mono, resampled to
the prior's rate, cut into windows of the prior's length with --overlap and cross-faded back
together; every window is a posterior sample of the stems given y = sum of stems, with a
Gaussian likelihood of std --sigma-y (in full-scale units). The stems are written as
OUT_DIR/<stem>.wav (32-bit float, at the prior's sample rate), all at once at the end.

Accepted: a mix at 1,000 to 384,000 Hz, at most 20 minutes long, with finite samples whose
peak amplitude is between 1e-6 and 1e3 (full scale is 1); --sigma-y up to 1e3. Anything else
is refused with one line (exit status 2) before the prior is loaded; stems that come out
non-finite are refused too, and nothing is written.

Samplers: mgdm (MGDM's audio preset: K = 20, R = 6, M = 15, ...), msdm (the MSDM Dirac
separator: the stems sum to the mix exactly), or any registered baseline with its audio
settings.
"""

DATA_HELP = """\
Write synthetic multi-track music: procedural MIDI (tempo, key, chords, bass line, drum groove,
guitar and piano parts) rendered per stem through fluidsynth with a General MIDI soundfont,
mono at 8 kHz, clips of 16,384 samples. Example i of a split is the song of seed
FIRST_SEED[split] + i (train 0, validation 1,000,000, test 2,000,000): splits never overlap.

Writes OUT/SPLIT/<index>/{bass,drums,guitar,piano,mix}.wav and OUT/SPLIT.safetensors (the
tensor [N, 4, 16384] that `mgdm train audio-prior --data` reads). Needs the Debian packages
libfluidsynth3 and timgm6mb-soundfont and the PyPI package pyfluidsynth.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``separate`` and ``audio-data`` to the top-level sub-commands."""
    parser = subparsers.add_parser(
        "separate",
        help="separate a music mix into bass, drums, guitar and piano stems",
        description=SEPARATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mix", help="the mix: an audio file")
    parser.add_argument("--out-dir", required=True, help="folder for <stem>.wav (created)")
    parser.add_argument(
        "--prior",
        default=None,
        help="a shipped prior, 4stem (the default: one network, the stems jointly) or "
        "independent (four single-stem priors), or a folder (from `mgdm train audio-prior`, or "
        "four single-stem priors in bass/ drums/ guitar/ piano/)",
    )
    parser.add_argument("--sampler", default="mgdm", help="sampler name (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the windows' samples, any integer (default: %(default)s)",
    )
    parser.add_argument(
        "--overlap",
        type=arguments.finite_float,
        default=0.5,
        help="overlap of consecutive windows, a fraction of the window in [0, 0.5] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--sigma-y",
        type=arguments.positive_float,
        default=1e-4,
        help="std of the likelihood's noise on the mix, full-scale units, at most 1e3 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=arguments.positive_int,
        default=4,
        help="windows per sampler call (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        type=arguments.device,
        default="cpu",
        help="cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    parser.set_defaults(func=run_separate)

    data = subparsers.add_parser(
        "audio-data",
        help="write synthetic four-stem music (fluidsynth) for training and testing",
        description=DATA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data.add_argument("--out", required=True, help="output folder")
    data.add_argument(
        "--split",
        choices=("train", "validation", "test"),
        default="train",
        help="(default: %(default)s)",
    )
    data.add_argument(
        "--count", type=arguments.positive_int, required=True, help="examples to write (>= 1)"
    )
    data.add_argument(
        "--first",
        type=arguments.non_negative_int,
        default=0,
        help="index of the first example, 0 to 999,999 (default: %(default)s)",
    )
    data.add_argument(
        "--soundfont",
        default=None,
        help="General MIDI .sf2 file (default: /usr/share/sounds/sf2/TimGM6mb.sf2)",
    )
    data.add_argument(
        "--no-wav", action="store_true", help="write only the tensor file, no WAV folders"
    )
    data.set_defaults(func=run_audio_data)


def add_train_command(commands: argparse._SubParsersAction) -> None:
    """Add ``audio-prior`` to the sub-commands of ``mgdm train`` (its defaults are the recipe of
    the shipped four-stem prior, bar the step count)."""
    from mgdm.commands.train import add_run_options
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
    parser.set_defaults(func=run_train)


def run_separate(args: argparse.Namespace) -> int:
    from mgdm.audio.separate import separate_file

    written, separation = separate_file(
        args.mix,
        args.out_dir,
        prior=args.prior,
        sampler=args.sampler,
        seed=args.seed,
        sigma_y=args.sigma_y,
        overlap=args.overlap,
        batch_size=args.batch_size,
        progress=True,
        device=args.device,
    )
    for note in separation.notes:
        print(f"note: {note}")
    seconds = separation.stems.shape[-1] / separation.sample_rate
    print(f"wrote {len(written)} stems of {seconds:.2f} s at {separation.sample_rate} Hz:")
    for path in written.values():
        print(f"  {path}")
    return 0


def run_audio_data(args: argparse.Namespace) -> int:
    from mgdm.audio.dataset import write_dataset
    from mgdm.audio.synth import SynthConfig

    config = (
        SynthConfig() if args.soundfont is None else SynthConfig(soundfont=Path(args.soundfont))
    )
    path = write_dataset(args.out, args.split, args.count, args.first, config, wav=not args.no_wav)
    print(f"wrote {args.count} examples of {args.split} to {path}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from mgdm.train.audio import AudioTrainConfig, parse_integers, train_audio_prior

    config = AudioTrainConfig(
        stems=args.stems,
        channels=parse_integers(args.channels, "--channels"),
        factors=parse_integers(args.factors, "--factors") if args.factors else (),
        attention=not args.no_attention,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
    )
    train_audio_prior(args.data, args.out, config, args.steps, args.checkpoint_every, args.device)
    print(
        f"wrote {args.out}/prior.json and model.safetensors (load with mgdm.audio.load_audio_prior)"
    )
    return 0
