"""``mgdm serve``: a local web app on top of the library (restore images, separate music).

:func:`serve` loads the priors, builds the page (:mod:`mgdm.serve.app`) and serves it until
interrupted, then removes its temporary folder. The page's work is in :mod:`mgdm.serve.work`
(checks, runs, outputs) and :mod:`mgdm.serve.jobs` (worker threads, progress, cancelling);
docs/serve.md describes the app.
"""

from __future__ import annotations

import signal
from pathlib import Path

import torch

from mgdm.serve.app import Server, build_app, launch

DEFAULT_HOST = "127.0.0.1"
"""Loopback: the app is reachable from this machine only unless ``--host`` says otherwise."""


def start_server(
    prior: str | Path = "fashion-mnist",
    audio_prior: str | Path | None = None,
    device: torch.device | str = "auto",
    workers: int = 1,
    precision: str | None = None,
) -> Server:
    """Load the image prior (:func:`mgdm.priors.catalog.load_prior`) and the audio prior
    (:func:`mgdm.audio.separate.resolve_prior`; ``None``: the shipped default, the independent-stems priors) on
    ``device``; ``ValueError`` for a bad name, path or device, before anything is served.
    ``precision``: of the network calls (:func:`mgdm.devices.use_precision`)."""
    from mgdm.audio.separate import resolve_prior
    from mgdm.devices import resolve_device
    from mgdm.priors.catalog import load_prior

    device = resolve_device(device)
    sound_prior = resolve_prior(audio_prior, device)
    image_prior = load_prior(prior, device=device)
    return Server(image_prior, sound_prior, device, workers, precision, prior_name=str(prior))


def serve(server: Server, host: str = DEFAULT_HOST, port: int = 7860) -> None:
    """Serve the page of ``server`` on ``host:port`` until interrupted (Ctrl-C, or SIGTERM,
    which is turned into the same interruption), then remove the server's temporary folder."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        app = build_app(server)
        print(f"mgdm serve: http://{host}:{port} (Ctrl-C stops it)", flush=True)
        launch(app, host, port, block=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.cleanup()


__all__ = ["DEFAULT_HOST", "Server", "build_app", "launch", "serve", "start_server"]
