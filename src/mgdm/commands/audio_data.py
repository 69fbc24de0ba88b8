"""``mgdm audio-data``: write synthetic four-stem music for training and testing.

``add_parser(subparsers)`` adds ``audio-data`` to the top-level sub-commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdm.commands import arguments

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
    """Add ``audio-data`` to the top-level sub-commands."""
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


def run_audio_data(args: argparse.Namespace) -> int:
    """Write the examples of one split."""
    from mgdm.audio.dataset import write_dataset
    from mgdm.audio.synth import SynthConfig

    config = (
        SynthConfig() if args.soundfont is None else SynthConfig(soundfont=Path(args.soundfont))
    )
    path = write_dataset(
        args.out,
        args.split,
        args.count,
        args.first,
        config,
        wav=not args.no_wav,
        progress=arguments.show_progress(args),
    )
    print(f"wrote {args.count} examples of {args.split} to {path}")
    return 0
