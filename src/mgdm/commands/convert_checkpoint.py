"""``mgdm convert-checkpoint``: a training checkpoint's weights as a ``.safetensors`` file.

``add_parser(subparsers)`` adds ``convert-checkpoint`` to the top-level sub-commands; errors in
the input are ``ValueError``s (one line, exit status 2 in :func:`mgdm.cli.run_command`).
"""

from __future__ import annotations

import argparse

from mgdm.checkpoints import LIGHTNING_GLOBAL_MODULES

CONVERT_HELP = f"""\
Write the weights of a checkpoint (a PyTorch Lightning .ckpt such as CompVis latent diffusion's
model.ckpt or MSDM's, or a torch state dict) to a .safetensors file that every --prior accepts.

Without --trust-pickle the file is read as mgdm always reads weights: torch.load(weights_only=True),
with the metadata Lightning pickles besides them ({", ".join(LIGHTNING_GLOBAL_MODULES)} classes,
typing.Any, paths, numpy scalars) replaced by inert stand-ins; a file that pickles anything else
is refused. --trust-pickle unpickles the file with weights_only=False, which runs code the file
names: use it only on files from a source you trust, in an environment that has the packages
the file's classes come from. The output is written to a temporary file and moved into place.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert-checkpoint`` to the top-level sub-commands."""
    parser = subparsers.add_parser(
        "convert-checkpoint",
        help="write a checkpoint's weights as .safetensors (optionally trusting its pickle)",
        description=CONVERT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="the checkpoint to read (.ckpt, .pt, .pth, .bin)")
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="unpickle the checkpoint with weights_only=False (runs code from the file)",
    )
    parser.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    """Check the output path, convert, and print what was written."""
    from mgdm.checkpoints import convert_checkpoint
    from mgdm.files import check_output_file

    out = check_output_file(args.out, "OUT", suffixes=(".safetensors",))
    count = convert_checkpoint(args.checkpoint, out, trust_pickle=args.trust_pickle)
    print(f"wrote {count} tensors to {out}")
    return 0
