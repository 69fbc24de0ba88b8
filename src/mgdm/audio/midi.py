"""Procedural four-part music as note lists (General MIDI programs), from one integer seed.

:func:`compose` writes a short song in 4/4 for bass, drums, guitar and piano:

* **tempo** uniform in 90…150 BPM; **key** one of 12 roots, major or minor;
* a **chord progression** of four diatonic triads (a common pop/rock/jazz pattern of the mode),
  each held 2 or 4 beats, repeated;
* **bass** (GM programs 32–39): a one-bar rhythm pattern (whole notes, quarters, eighths,
  root-fifth-octave, syncopated) on the chord roots, E1–D#2 plus fifths and octaves;
* **drums** (channel 10, the GM standard kit): one of five sixteenth-note grooves (rock,
  four-on-the-floor, half-time, sixteenth hats, ride), a crash on the first downbeat sometimes;
* **guitar** (GM 24–30): strummed five-note voicings with a 12 ms strum spread, or arpeggios;
* **piano** (GM 0–7): left-hand triads with a right-hand melody (a random walk on the scale,
  chord tones on the beats), or block chords on every beat.

Notes get small timing (±8 ms, drums ±4 ms) and velocity (±8) variations. Each part is
present with probability ``presence`` (at least two parts always play; an absent part has no
notes, so its stem is silent, as a stem missing from a Slakh track). The song starts before
the clip: ``Song.offset`` (uniform within the first bar) is where the clip begins, so clips do
not all start on a downbeat.

Randomness comes only from ``random.Random(seed).random()``, whose stream Python keeps stable
across versions and platforms; every other draw is derived from it here. Times are seconds
from the start of the song.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from mgdm.audio.constants import STEMS

T = TypeVar("T")

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5), (0, 5, 3, 4))
"""Scale degrees (0-based): I-V-vi-IV, vi-IV-I-V, I-IV-V-IV, ii-V-I-vi, I-vi-IV-V."""
MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4))
"""i-VI-III-VII, i-iv-v-i, i-VII-VI-VII, i-iv-VII-III, i-VI-iv-v."""

BASS_PROGRAMS = tuple(range(32, 40))
GUITAR_PROGRAMS = tuple(range(24, 31))
PIANO_PROGRAMS = tuple(range(8))
DRUM_KIT = 0
"""GM standard drum kit (bank 128, program 0)."""

KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51
DRUM_GROOVES: dict[str, dict[int, tuple[int, ...]]] = {
    "rock": {KICK: (0, 8, 10), SNARE: (4, 12), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "four-on-the-floor": {KICK: (0, 4, 8, 12), SNARE: (4, 12), OPEN_HAT: (2, 6, 10, 14)},
    "half-time": {KICK: (0, 6), SNARE: (8,), CLOSED_HAT: (0, 2, 4, 6, 8, 10, 12, 14)},
    "sixteenths": {KICK: (0, 7, 8), SNARE: (4, 12), CLOSED_HAT: tuple(range(16))},
    "ride": {KICK: (0, 10), SNARE: (12,), RIDE: (0, 4, 6, 8, 12, 14)},
}
"""Drum hits per bar on a sixteenth-note grid (step 0…15), by GM drum key."""

BASS_PATTERNS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "whole": ((0, 8, 0),),
    "quarters": ((0, 2, 0), (2, 2, 0), (4, 2, 0), (6, 2, 0)),
    "eighths": tuple((step, 1, 0) for step in range(8)),
    "root-fifth": ((0, 2, 0), (2, 2, 7), (4, 2, 0), (6, 2, 12)),
    "syncopated": ((0, 3, 0), (3, 1, 0), (4, 2, 7), (6, 1, 12), (7, 1, 0)),
}
"""Bass notes per bar on an eighth-note grid: ``(step, length in eighths, interval above root)``."""

STRUM_PATTERNS = ((0, 2, 3, 5, 6), (0, 4), (0, 2, 4, 6), (0, 3, 6))
"""Guitar strums per bar on an eighth-note grid."""

STRUM_SPREAD = 0.012
"""Seconds between successive strings of a strum."""


@dataclass(frozen=True)
class Note:
    """One note: MIDI key ``pitch``, ``velocity`` 1…127, ``start`` < ``end`` in seconds."""

    pitch: int
    velocity: int
    start: float
    end: float


@dataclass(frozen=True)
class Part:
    """The notes of one stem, played by GM ``program`` (a drum kit when ``is_drum``)."""

    stem: str
    program: int
    is_drum: bool
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Song:
    """A composed song: its parts in :data:`~mgdm.audio.constants.STEMS` order.

    Attributes:
        tempo: beats per minute.
        key: pitch class of the tonic (0 = C).
        minor: natural minor (else major).
        progression: the four chords as scale degrees (0-based).
        beats_per_chord: 2 or 4.
        offset: seconds from the song start to the start of the clip.
        parts: one :class:`Part` per stem.
    """

    tempo: float
    key: int
    minor: bool
    progression: tuple[int, ...]
    beats_per_chord: int
    offset: float
    parts: tuple[Part, ...]

    @property
    def beat(self) -> float:
        """Seconds per beat."""
        return 60.0 / self.tempo


class Dice:
    """Draws derived from ``random.Random(seed).random()`` only (stable across Pythons)."""

    def __init__(self, seed: int):
        self._random = random.Random(seed)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random.random()

    def integer(self, low: int, high: int) -> int:
        """Uniform on ``{low, …, high}``."""
        return min(high, low + int(self._random.random() * (high - low + 1)))

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability


class _Harmony:
    """Scale and chords of a song: ``chord_at(time)`` gives the pitch classes of the chord."""

    def __init__(self, key: int, minor: bool, progression: tuple[int, ...], chord_seconds: float):
        self.key = key
        self.scale = MINOR_SCALE if minor else MAJOR_SCALE
        self.progression = progression
        self.chord_seconds = chord_seconds

    def degree_pitch(self, degree: int) -> int:
        """Semitones above the tonic's pitch class of scale degree ``degree`` (any integer)."""
        octave, step = divmod(degree, len(self.scale))
        return self.key + self.scale[step] + 12 * octave

    def chord(self, index: int) -> tuple[int, int, int]:
        """Root, third and fifth (semitones from C0, unwrapped) of chord ``index`` (cyclic)."""
        degree = self.progression[index % len(self.progression)]
        return tuple(self.degree_pitch(degree + 2 * k) for k in range(3))  # type: ignore[return-value]

    def chord_index(self, time: float) -> int:
        return int(time // self.chord_seconds)


def compose(seed: int, duration: float, presence: float = 0.9) -> Song:
    """The song of ``seed``, long enough to hold a clip of ``duration`` seconds after its offset.

    Args:
        seed: any integer; equal seeds give equal songs.
        duration: seconds the clip lasts (the song covers ``offset + duration`` and one more bar).
        presence: probability that each part plays (at least two always do).
    """
    if not duration > 0:
        raise ValueError(f"the clip duration must be > 0 seconds; got {duration!r}.")
    if not 0.0 <= presence <= 1.0:
        raise ValueError(f"presence must be a probability in [0, 1]; got {presence!r}.")
    dice = Dice(seed)
    tempo = dice.uniform(90.0, 150.0)
    key = dice.integer(0, 11)
    minor = dice.chance(0.4)
    progression = dice.choice(MINOR_PROGRESSIONS if minor else MAJOR_PROGRESSIONS)
    beats_per_chord = dice.choice((2, 4))
    beat = 60.0 / tempo
    bar = 4 * beat
    offset = dice.uniform(0.0, bar)
    bars = math.ceil((offset + duration) / bar) + 1
    harmony = _Harmony(key, minor, progression, beats_per_chord * beat)
    draws = [dice.uniform(0.0, 1.0) for _ in STEMS]
    playing = {stem for stem, u in zip(STEMS, draws) if u < presence}
    if len(playing) < 2:
        playing = {stem for _, stem in sorted(zip(draws, STEMS))[:2]}
    writers = {"bass": _bass, "drums": _drums, "guitar": _guitar, "piano": _piano}
    parts = []
    for stem in STEMS:
        part = writers[stem](dice, harmony, beat, bars)  # drawn even when muted: stable streams
        parts.append(part if stem in playing else Part(part.stem, part.program, part.is_drum, ()))
    return Song(tempo, key, minor, progression, beats_per_chord, offset, tuple(parts))


def _note(dice: Dice, pitch: int, velocity: float, start: float, end: float, jitter: float) -> Note:
    """A note with timing jitter ``±jitter`` s and velocity jitter ``±8``, kept in range."""
    shift = dice.uniform(-jitter, jitter)
    level = round(velocity + dice.uniform(-8.0, 8.0))
    start = max(0.0, start + shift)
    return Note(pitch, max(1, min(127, level)), start, max(start + 0.02, end + shift))


def _bass(dice: Dice, harmony: _Harmony, beat: float, bars: int) -> Part:
    program = dice.choice(BASS_PROGRAMS)
    pattern = BASS_PATTERNS[dice.choice(tuple(BASS_PATTERNS))]
    eighth = beat / 2
    notes = []
    for bar in range(bars):
        for step, length, interval in pattern:
            start = (8 * bar + step) * eighth
            root = 28 + (harmony.chord(harmony.chord_index(start))[0] - 4) % 12  # E1 … D#2
            end = start + 0.9 * length * eighth
            notes.append(_note(dice, root + interval, 92 if step == 0 else 84, start, end, 0.008))
    return Part("bass", program, False, tuple(notes))


def _drums(dice: Dice, harmony: _Harmony, beat: float, bars: int) -> Part:
    groove = DRUM_GROOVES[dice.choice(tuple(DRUM_GROOVES))]
    crash = dice.chance(0.4)
    sixteenth = beat / 4
    notes = []
    for bar in range(bars):
        for key, steps in groove.items():
            for step in steps:
                accent = 100 if step % 4 == 0 else 80
                start = (16 * bar + step) * sixteenth
                notes.append(_note(dice, key, accent, start, start + 0.1, 0.004))
    if crash:
        notes.append(_note(dice, CRASH, 100, 0.0, 0.5, 0.0))
    return Part("drums", DRUM_KIT, True, tuple(sorted(notes, key=lambda n: n.start)))


def _voicing(chord: tuple[int, int, int], low: int, size: int) -> list[int]:
    """``size`` ascending chord tones, the first the lowest chord root at or above ``low``."""
    root = low + (chord[0] - low) % 12
    classes = [c % 12 for c in chord]
    pitches = [root]
    while len(pitches) < size:
        candidate = pitches[-1] + 1
        while candidate % 12 not in classes:
            candidate += 1
        pitches.append(candidate)
    return pitches


def _guitar(dice: Dice, harmony: _Harmony, beat: float, bars: int) -> Part:
    program = dice.choice(GUITAR_PROGRAMS)
    strum = dice.chance(0.6)
    pattern = dice.choice(STRUM_PATTERNS)
    eighth = beat / 2
    notes = []
    for bar in range(bars):
        if strum:
            times = [(8 * bar + step) * eighth for step in pattern]
            ends = [*times[1:], (8 * bar + 8) * eighth]
            for start, end in zip(times, ends):
                pitches = _voicing(harmony.chord(harmony.chord_index(start)), 40, 5)
                for string, pitch in enumerate(pitches):
                    onset = start + string * STRUM_SPREAD
                    notes.append(_note(dice, pitch, 78, onset, end - 0.02, 0.004))
        else:
            for step in range(8):
                start = (8 * bar + step) * eighth
                pitches = _voicing(harmony.chord(harmony.chord_index(start)), 48, 4)
                notes.append(_note(dice, pitches[step % 4], 80, start, start + 1.5 * eighth, 0.008))
    return Part("guitar", program, False, tuple(sorted(notes, key=lambda n: n.start)))


def _piano(dice: Dice, harmony: _Harmony, beat: float, bars: int) -> Part:
    program = dice.choice(PIANO_PROGRAMS)
    melodic = dice.chance(0.6)
    notes = []
    degree = dice.integer(7, 11)  # the melody's scale degree, above the tonic's 4th octave
    for position in range(4 * bars):
        start = position * beat
        chord = harmony.chord(harmony.chord_index(start))
        if melodic:
            if position % 2 == 0:
                for pitch in _voicing(chord, 48, 3):
                    notes.append(_note(dice, pitch, 70, start, start + 1.9 * beat, 0.008))
            halves = 2 if dice.chance(0.4) else 1
            for half in range(halves):
                onset = start + half * beat / halves
                if half == 0:  # a chord tone on the beat: the nearest one to the walk
                    pitch = min(
                        (48 + 12 + c % 12 + 12 * o for c in chord for o in range(3)),
                        key=lambda p: abs(p - (48 + harmony.degree_pitch(degree))),
                    )
                else:
                    degree = max(5, min(14, degree + dice.choice((-2, -1, 1, 2))))
                    pitch = 48 + harmony.degree_pitch(degree)
                notes.append(_note(dice, pitch, 88, onset, onset + 0.95 * beat / halves, 0.008))
            degree = max(5, min(14, degree + dice.choice((-1, 0, 1))))
        else:
            for pitch in _voicing(chord, 52, 4):
                notes.append(_note(dice, pitch, 76, start, start + 0.8 * beat, 0.008))
    return Part("piano", program, False, tuple(sorted(notes, key=lambda n: n.start)))
