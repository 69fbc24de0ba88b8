"""``mgdm serve``: a local web app to restore images and separate music in a browser.

The page has two tabs. Restore: a Fashion-MNIST test image or an uploaded image, a task, a
sampler (MGDM by default), the network calls per sample, the number of samples, sigma_y and the
seed; the current estimate of x_0 is shown while it runs, then the observation, each sample, the
posterior mean and the per-pixel std, PSNR/SSIM, and downloads (PNG grid, samples as .npy); a
second sampler can be compared at equal network calls. Separate: a generated or uploaded mix,
split into four stems that play in the page and download as WAV.

One job runs per worker (--workers) and the others wait in a visible queue; each has a cancel
button. The server listens on loopback (127.0.0.1) unless --host says otherwise, and writes only
into a temporary folder that it removes when it stops. See docs/serve.md.
"""

from __future__ import annotations

import argparse

from mgdm.commands import arguments
from mgdm.priors.catalog import SHIPPED_PRIORS

MAX_WORKERS = 16
"""--workers at most (each runs one sampling job at a time on the shared cores)."""


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = arguments.positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535; got {text!r}")
    return value


def worker_count(text: str) -> int:
    """A whole number of workers from 1 to :data:`MAX_WORKERS`."""
    value = arguments.positive_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS} workers; got {text!r}")
    return value


def host_name(text: str) -> str:
    """A host name or address to listen on (not empty, no spaces)."""
    if not text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(
            f"expected a host name or address such as 127.0.0.1 or 0.0.0.0; got {text!r}"
        )
    return text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="a local web app: restore images and separate music in a browser",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        type=host_name,
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 opens it "
        "to the network)",
    )
    parser.add_argument(
        "--port", type=port_number, default=7860, help="TCP port (default: %(default)s)"
    )
    parser.add_argument(
        "--prior",
        default="fashion-mnist",
        help=f"image prior: a shipped prior ({', '.join(SHIPPED_PRIORS)}) or a path "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--audio-prior",
        default=None,
        help="audio prior of the separate tab: independent (default), 4stem, or a folder",
    )
    parser.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        help=f"sampling jobs run at once, 1 to {MAX_WORKERS} (default: %(default)s)",
    )
    arguments.add_device_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the priors (refusing bad ones before anything is served), then serve."""
    from mgdm.serve import serve, start_server

    server = start_server(
        args.prior, args.audio_prior, args.device, args.workers, getattr(args, "precision", None)
    )
    serve(server, args.host, args.port)
    return 0
