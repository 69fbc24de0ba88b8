"""Render a composed song to four exact stems through fluidsynth and a General MIDI soundfont.

**Rendering.** One fresh fluidsynth synthesiser per example (so an example never depends on
the ones rendered before it), at ``render_rate`` (32 kHz), reverb and chorus off, fixed master
gain :data:`SYNTH_GAIN`. The four parts play on MIDI channels 0 (bass), 9 (drums, bank 128),
2 (guitar) and 3 (piano), and the synthesiser runs with four *audio groups*: channel ``c``
sounds in group ``c mod 4`` only, so one pass renders each stem into its own stereo buffer
(``fluid_synth_nwrite_float``, 32-bit float, no dither). Events are applied between buffer
writes at ``round(time * render_rate)`` samples (fluidsynth quantises them to its 64-sample
blocks, deterministically).

**Stems.** Each stem is the mean of its two channels, resampled to ``sample_rate`` by the
windowed-sinc resampler (:mod:`mgdm.audio.resample`: it removes what lies above the new
Nyquist frequency, which fluidsynth's interpolation leaves in), cut to the clip
``[offset, offset + length)`` and multiplied by the fixed gain of its instrument,
:data:`STEM_GAINS`. Nothing is normalised per example: a stem's level is the level the
soundfont gives its notes and velocities, times one constant per instrument for the whole
data set. The mix is the sum of the four stems.

**Dependencies.** The Debian packages ``libfluidsynth3`` (the library) and
``timgm6mb-soundfont`` (``/usr/share/sounds/sf2/TimGM6mb.sf2``, 6 MB) and the PyPI package
``pyfluidsynth`` (its ``ctypes`` binding). :func:`fluidsynth_problem` says what is missing.
"""

from __future__ import annotations

import ctypes
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mgdm.audio.constants import CLIP_LENGTH, SAMPLE_RATE, STEMS
from mgdm.audio.midi import Song, compose
from mgdm.audio.resample import resample

DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
"""The General MIDI soundfont of Debian's ``timgm6mb-soundfont`` package."""

STEM_CHANNELS: dict[str, int] = {"bass": 0, "drums": 9, "guitar": 2, "piano": 3}
"""MIDI channel of each stem; ``channel mod 4`` is the stem's index in :data:`STEMS`."""

SYNTH_GAIN = 0.2
"""fluidsynth's master gain (its default)."""

STEM_GAINS: dict[str, float] = {"bass": 3.8, "drums": 4.9, "guitar": 3.0, "piano": 3.9}
"""Fixed gain per instrument, the same for every example: ``0.04 / mean RMS`` of the unscaled
stem over the examples of seeds 1000…1199 where it plays (TimGM6mb, version 1), rounded to two
digits. With them every stem averages an RMS of about 0.04 and the mix peaks below 0.66 on
those 200 examples (below 0.62 on 99 % of them): no clipping in 16-bit exports."""

GENERATOR_VERSION = 1
"""Bumped whenever a change to the composer or the renderer changes the data."""

_AUDIO_GROUPS = 4
_INSTALL_LIBRARY = "install the FluidSynth library with `apt-get install libfluidsynth3`"


@dataclass(frozen=True)
class SynthConfig:
    """How examples are rendered (everything but the seed).

    Attributes:
        sample_rate: output rate of the stems (Hz).
        length: samples per clip.
        render_rate: fluidsynth's rate (Hz), resampled to ``sample_rate`` afterwards.
        soundfont: the General MIDI ``.sf2`` file.
        presence: probability that each part plays (:func:`mgdm.audio.midi.compose`).
    """

    sample_rate: int = SAMPLE_RATE
    length: int = CLIP_LENGTH
    render_rate: int = 32000
    soundfont: Path = DEFAULT_SOUNDFONT
    presence: float = 0.9

    def __post_init__(self) -> None:
        for name in ("sample_rate", "length", "render_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if not 8000 <= self.render_rate <= 96000:
            raise ValueError(
                f"fluidsynth renders at 8,000 to 96,000 Hz; got render_rate {self.render_rate}."
            )
        object.__setattr__(self, "soundfont", Path(self.soundfont))

    @property
    def duration(self) -> float:
        """Seconds per clip."""
        return self.length / self.sample_rate


def fluidsynth_problem(soundfont: Path | str = DEFAULT_SOUNDFONT) -> str | None:
    """``None`` when examples can be rendered with ``soundfont``; otherwise what to install, or
    why the file is not a soundfont (its header is checked: a SoundFont 2 file starts with a
    RIFF ``sfbk`` chunk)."""
    soundfont = Path(soundfont)
    if not soundfont.is_file():
        hint = (
            "install it with `apt-get install timgm6mb-soundfont`"
            if soundfont == DEFAULT_SOUNDFONT
            else "give the path of a General MIDI .sf2 file"
        )
        return f"the soundfont {soundfont} does not exist: {hint}."
    with open(soundfont, "rb") as handle:
        header = handle.read(12)
    if header[:4] != b"RIFF" or header[8:] != b"sfbk":
        return f"{soundfont} is not a SoundFont 2 file (RIFF sfbk): give a General MIDI .sf2 file."
    if importlib.util.find_spec("fluidsynth") is None:
        return "the Python package pyfluidsynth is missing: `pip install pyfluidsynth`."
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as error:
        return f"pyfluidsynth cannot load the FluidSynth library ({error}): {_INSTALL_LIBRARY}."
    return None


def generate_example(seed: int, config: SynthConfig | None = None) -> Tensor:
    """The stems of example ``seed``: float32 ``[4, length]`` in :data:`STEMS` order.

    The mix is ``stems.sum(0)``. Raises ``ValueError`` naming what to install when fluidsynth or
    the soundfont is missing.
    """
    config = config or SynthConfig()
    song = compose(seed, config.duration, config.presence)
    return clip_stems(song, config)


def clip_stems(song: Song, config: SynthConfig) -> Tensor:
    """Render ``song`` and return its clip: float32 ``[4, length]`` at ``config.sample_rate``.

    The clip starts at ``round(song.offset * sample_rate)`` output samples; each stem is
    multiplied by its :data:`STEM_GAINS` entry.
    """
    start = round(song.offset * config.sample_rate)
    margin = 64  # output samples rendered past the clip, so the resampler's edge stays outside
    render_length = -(-(start + config.length + margin) * config.render_rate // config.sample_rate)
    rendered = render_stems(song, config.soundfont, config.render_rate, render_length)
    stems = resample(rendered, config.render_rate, config.sample_rate)[
        :, start : start + config.length
    ]
    gains = torch.tensor([STEM_GAINS[stem] for stem in STEMS], dtype=torch.float64)
    return (stems * gains[:, None]).to(torch.float32).contiguous()


def render_stems(song: Song, soundfont: Path, rate: int, length: int) -> Tensor:
    """The first ``length`` samples of each stem at ``rate``, mono: float64 ``[4, length]``.

    Unscaled (fluidsynth's output with master gain :data:`SYNTH_GAIN`).
    """
    problem = fluidsynth_problem(soundfont)
    if problem is not None:
        raise ValueError(f"cannot render audio: {problem}")
    import fluidsynth

    events = _events(song, rate, length)
    synth = fluidsynth.Synth(
        gain=SYNTH_GAIN,
        samplerate=float(rate),
        **{
            "synth.audio-groups": _AUDIO_GROUPS,
            "synth.audio-channels": _AUDIO_GROUPS,
            "synth.reverb.active": 0,
            "synth.chorus.active": 0,
        },
    )
    try:
        font = synth.sfload(str(soundfont))
        if font < 0:
            raise ValueError(f"fluidsynth cannot load the soundfont {soundfont}.")
        for part in song.parts:
            channel = STEM_CHANNELS[part.stem]
            synth.program_select(channel, font, 128 if part.is_drum else 0, part.program)
        buffers = np.zeros((2, _AUDIO_GROUPS, length), dtype=np.float32)
        writer = _Writer(synth, buffers)
        for sample, action in events:
            writer.advance_to(sample)
            action(synth)
        writer.advance_to(length)
    finally:
        synth.delete()
    return torch.from_numpy(buffers.astype(np.float64).mean(axis=0))


def _events(song: Song, rate: int, length: int) -> list[tuple[int, Any]]:
    """Note-on/off actions ``(sample, synth -> None)`` before ``length``, in time order.

    At equal sample times note-offs come first, so a repeated key is released, then struck.
    """
    events: list[tuple[int, int, Any]] = []
    for part in song.parts:
        channel = STEM_CHANNELS[part.stem]
        for note in part.notes:
            on, off = round(note.start * rate), round(note.end * rate)
            if on >= length:
                continue
            events.append((on, 1, _note_on(channel, note.pitch, note.velocity)))
            if off < length:
                events.append((off, 0, _note_off(channel, note.pitch)))
    events.sort(key=lambda event: (event[0], event[1]))
    return [(sample, action) for sample, _, action in events]


def _note_on(channel: int, pitch: int, velocity: int) -> Any:
    return lambda synth: synth.noteon(channel, pitch, velocity)


def _note_off(channel: int, pitch: int) -> Any:
    return lambda synth: synth.noteoff(channel, pitch)


class _Writer:
    """Fills ``buffers`` ``[2 (left, right), groups, length]`` from a synthesiser, in order."""

    def __init__(self, synth: Any, buffers: np.ndarray):
        import fluidsynth

        self._function = fluidsynth.cfunc(
            "fluid_synth_nwrite_float",
            ctypes.c_int,
            ("synth", ctypes.c_void_p, 1),
            ("len", ctypes.c_int, 1),
            ("left", ctypes.c_void_p, 1),
            ("right", ctypes.c_void_p, 1),
            ("fx_left", ctypes.c_void_p, 1),
            ("fx_right", ctypes.c_void_p, 1),
        )
        if self._function is None:
            raise ValueError(
                f"this FluidSynth library lacks fluid_synth_nwrite_float: {_INSTALL_LIBRARY} (2.x)."
            )
        self._synth = synth
        self._buffers = buffers
        self._position = 0

    def advance_to(self, sample: int) -> None:
        """Render the samples ``[position, sample)`` into every group's buffers."""
        count = sample - self._position
        if count <= 0:
            return
        pointers = [
            (ctypes.c_void_p * _AUDIO_GROUPS)(
                *[
                    self._buffers[side, group, self._position :].ctypes.data
                    for group in range(_AUDIO_GROUPS)
                ]
            )
            for side in (0, 1)
        ]
        status = self._function(
            self._synth.synth,
            count,
            ctypes.cast(pointers[0], ctypes.c_void_p),
            ctypes.cast(pointers[1], ctypes.c_void_p),
            None,
            None,
        )
        if status != 0:
            raise ValueError("fluidsynth failed to render audio (fluid_synth_nwrite_float).")
        self._position = sample
