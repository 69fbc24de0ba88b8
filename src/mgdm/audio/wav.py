"""Reading and writing audio files with ``soundfile`` (libsndfile: WAV, FLAC, OGG, AIFF, …,
and MP3 from libsndfile 1.1.0 on: :data:`READABLE` lists what this machine's build reads).

Audio tensors are ``[channels, samples]`` float32 in full-scale units (``[-1, 1]``); files are
written as 32-bit float WAV, so a tensor read back is bit-identical to the one written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile
import torch
from torch import Tensor

T = TypeVar("T")

READABLE = ", ".join(
    name for name in ("WAV", "FLAC", "OGG", "MP3", "AIFF") if name in soundfile.available_formats()
)
"""The common formats this machine's libsndfile reads, for messages (``"WAV, FLAC, OGG, MP3,
AIFF"`` with libsndfile 1.1.0 or later; without ``MP3`` before)."""


def _decode(path: Path, read: Callable[[str], T]) -> T:
    """``read(path)``; a missing path, a folder and libsndfile's errors become a one-line
    ``ValueError`` that says what is accepted."""
    if not path.exists():
        raise ValueError(f"the audio file {path} does not exist.")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; give an audio file ({READABLE}).")
    try:
        return read(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(
            f"cannot read {path} as audio ({str(error).rstrip('.')}); give a file in one of: "
            f"{READABLE}."
        ) from None


def audio_info(path: Path | str) -> tuple[int, int]:
    """``(samples per channel, sample_rate)`` of the audio file at ``path``, from its header
    (nothing is decoded); ``ValueError`` as :func:`read_audio`."""
    info = _decode(Path(path), soundfile.info)
    return int(info.frames), int(info.samplerate)


def read_audio(path: Path | str) -> tuple[Tensor, int]:
    """``(audio [channels, samples] float32, sample_rate)`` of the file at ``path``.

    Raises ``ValueError`` saying what is wrong: a missing path, a folder, or a file libsndfile
    cannot decode.
    """
    data, rate = _decode(
        Path(path), lambda name: soundfile.read(name, dtype="float32", always_2d=True)
    )
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)


def write_wav(path: Path | str, audio: Tensor, sample_rate: int) -> None:
    """Write ``audio`` (``[samples]`` or ``[channels, samples]``) as a 32-bit float WAV file."""
    data = audio.detach().to("cpu", torch.float32)
    if data.dim() == 1:
        data = data[None]
    if data.dim() != 2:
        raise ValueError(
            f"audio to write is [samples] or [channels, samples]; got {list(audio.shape)}."
        )
    soundfile.write(str(path), data.T.numpy(), int(sample_rate), subtype="FLOAT", format="WAV")
