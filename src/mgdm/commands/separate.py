"""``mgdm separate``: separate a music mix into stems with a diffusion prior.

``add_parser(subparsers)`` adds ``separate`` to the top-level sub-commands; errors in the input
are ``ValueError``s (one line, exit status 2 in :func:`mgdm.cli.run_command`).
"""

from __future__ import annotations

import argparse

from mgdm.audio.separate import SHIPPED_AUDIO_PRIORS
from mgdm.commands import arguments
from mgdm.samplers.registry import sampler_names

SEPARATE_HELP = """\
Separate a music mix into bass, drums, guitar and piano with a diffusion prior.

The mix (any file libsndfile reads: WAV, FLAC, OGG, MP3, AIFF) is resampled to the prior's
rate, each channel on its own (--mono: averaged to one first), cut into windows of the prior's
length with --overlap and cross-faded back together; every window is a posterior sample of the
stems given y = sum of stems, with a Gaussian likelihood of std --sigma-y (in full-scale units).
The stems are resampled back and written as OUT_DIR/<stem>.wav (32-bit float) at the mix's
sample rate with its channels (one with --mono), all at once at the end; one line says what was
done. Stereo channels are separated one by one with the same seeds: the stems keep the mix's
stereo image and sum to each channel. The stems hold the prior's band only (below 4 kHz for the
shipped 8 kHz priors); the mix above it is in no stem.

Accepted: a mix at 1,000 to 384,000 Hz, at most 20 minutes long, with finite samples whose
peak amplitude is between 1e-6 and 1e3 (full scale is 1); --sigma-y up to 1e3. Anything else
is refused with one line (exit status 2) before the prior is loaded; stems that come out
non-finite are refused too, and nothing is written.

Samplers: mgdm (MGDM's audio preset: K = 20, R = 2, M = 15, ...), msdm (the MSDM Dirac
separator: the stems sum to the mix exactly), or any registered baseline with its audio
settings.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``separate`` to the top-level sub-commands."""
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
        help=f"a shipped prior ({', '.join(SHIPPED_AUDIO_PRIORS)}; default independent: four "
        "single-stem priors; 4stem: one network, the stems jointly), or a folder (from `mgdm train "
        "audio-prior`, or four single-stem priors in bass/ drums/ guitar/ piano/)",
    )
    parser.add_argument(
        "--sampler",
        default="mgdm",
        help=f"{', '.join(sampler_names())} (default: %(default)s)",
    )
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
        "--mono",
        action="store_true",
        help="average the channels to one before separating (half the work for stereo; mono stems)",
    )
    arguments.add_device_option(parser)
    parser.set_defaults(func=run_separate)


def run_separate(args: argparse.Namespace) -> int:
    """Separate the mix, write the stems and print what was written."""
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
        mono=args.mono,
        progress=arguments.show_progress(args),
        threads=None,  # mgdm.cli.main set --threads
        device=args.device,
    )
    for note in separation.notes:
        print(f"note: {note}")
    print(f"{args.mix}: {separation.summary()}")
    seconds = separation.stems.shape[-1] / separation.sample_rate
    print(f"wrote {len(written)} stems of {seconds:.2f} s at {separation.sample_rate} Hz:")
    for path in written.values():
        print(f"  {path}")
    return 0
