"""The synthetic four-stem data: composer, fluidsynth rendering, stem scaling, splits, files."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch

from mgdm.audio.constants import STEMS
from mgdm.audio.dataset import (
    SPLIT_FIRST_SEED,
    SPLIT_SIZE,
    load_stem_tensor,
    split_seed,
    write_dataset,
)
from mgdm.audio.midi import BASS_PROGRAMS, GUITAR_PROGRAMS, PIANO_PROGRAMS, compose
from mgdm.audio.synth import (
    STEM_GAINS,
    SynthConfig,
    clip_stems,
    fluidsynth_problem,
    generate_example,
)
from mgdm.audio.wav import read_audio

needs_fluidsynth = pytest.mark.skipif(
    fluidsynth_problem() is not None,
    reason=f"cannot render audio: {fluidsynth_problem()}",
)

SHORT = SynthConfig(length=2048)
"""Quarter-second clips keep the rendering tests fast."""


def test_compose_is_deterministic_and_musical() -> None:
    song = compose(7, 2.0)
    assert song == compose(7, 2.0)
    assert song != compose(8, 2.0)
    assert 90 <= song.tempo <= 150 and 0 <= song.key <= 11
    assert 0 <= song.offset < 4 * song.beat
    assert [part.stem for part in song.parts] == list(STEMS)
    programs = dict(zip(STEMS, (BASS_PROGRAMS, None, GUITAR_PROGRAMS, PIANO_PROGRAMS)))
    for part in song.parts:
        assert part.is_drum == (part.stem == "drums")
        if not part.is_drum:
            assert part.program in programs[part.stem]
        for note in part.notes:
            assert 0 <= note.pitch <= 127 and 1 <= note.velocity <= 127
            assert 0 <= note.start < note.end
    playing = [bool(part.notes) for seed in range(30) for part in compose(seed, 2.0).parts]
    assert 2 * 30 <= sum(playing) < 4 * 30  # parts are sometimes absent, two always play


def test_at_least_two_parts_play() -> None:
    for seed in range(20):
        song = compose(seed, 2.0, presence=0.0)
        assert sum(bool(part.notes) for part in song.parts) == 2


def test_split_seeds_are_disjoint() -> None:
    assert split_seed("train", 0) == SPLIT_FIRST_SEED["train"]
    assert split_seed("validation", 5) == SPLIT_SIZE + 5
    assert split_seed("train", SPLIT_SIZE - 1) < split_seed("validation", 0)
    assert split_seed("validation", SPLIT_SIZE - 1) < split_seed("test", 0)
    with pytest.raises(ValueError, match="a split holds examples 0"):
        split_seed("train", SPLIT_SIZE)
    with pytest.raises(ValueError, match="unknown split 'dev'; accepted: train, validation, test"):
        split_seed("dev", 0)


def test_missing_soundfont_names_the_debian_package(tmp_path, monkeypatch) -> None:
    from mgdm.audio import synth

    monkeypatch.setattr(synth, "DEFAULT_SOUNDFONT", tmp_path / "TimGM6mb.sf2")
    assert "`apt-get install timgm6mb-soundfont`" in fluidsynth_problem(tmp_path / "TimGM6mb.sf2")
    message = fluidsynth_problem(tmp_path / "missing.sf2")
    assert "does not exist" in message and "General MIDI .sf2" in message
    config = SynthConfig(soundfont=tmp_path / "missing.sf2")
    with pytest.raises(ValueError, match="cannot render audio: the soundfont"):
        write_dataset(tmp_path / "out", "train", 1, config=config)
    assert not (tmp_path / "out").exists()


@needs_fluidsynth
def test_examples_are_deterministic_and_differ_between_seeds() -> None:
    a = generate_example(3, SHORT)
    assert a.shape == (4, 2048) and a.dtype == torch.float32
    assert torch.equal(a, generate_example(3, SHORT))
    assert not torch.equal(a, generate_example(4, SHORT))


@needs_fluidsynth
def test_stems_keep_their_level_and_do_not_leak() -> None:
    song = compose(11, SHORT.duration, presence=1.0)
    stems = clip_stems(song, SHORT)
    assert all(bool(stem.abs().max() > 1e-3) for stem in stems)
    # each stem renders alone exactly as in the full song: no cross-talk, no normalisation by
    # what else plays
    for index, stem in enumerate(STEMS):
        parts = tuple(
            part if part.stem == stem else dataclasses.replace(part, notes=())
            for part in song.parts
        )
        alone = clip_stems(dataclasses.replace(song, parts=parts), SHORT)
        torch.testing.assert_close(alone[index], stems[index], rtol=0, atol=1e-6)
        others = [i for i in range(4) if i != index]
        assert bool((alone[others] == 0).all())
    # the level follows the velocities (not renormalised to a fixed peak)
    quiet = tuple(
        dataclasses.replace(
            part,
            notes=tuple(
                dataclasses.replace(n, velocity=max(1, n.velocity // 3)) for n in part.notes
            ),
        )
        for part in song.parts
    )
    softer = clip_stems(dataclasses.replace(song, parts=quiet), SHORT)
    assert bool((softer.abs().amax(-1) < 0.8 * stems.abs().amax(-1)).all())


@needs_fluidsynth
def test_peaks_vary_between_examples_and_gains_are_fixed() -> None:
    peaks = torch.stack([generate_example(seed, SHORT).abs().amax(-1) for seed in range(3)])
    active = peaks > 0
    assert (peaks[active] < 0.9).all()  # never normalised to full scale
    assert len({round(float(p), 6) for p in peaks[active]}) == int(active.sum())
    assert set(STEM_GAINS) == set(STEMS)


@needs_fluidsynth
def test_audio_data_command_writes_wavs_and_the_tensor(tmp_path) -> None:
    from mgdm.commands.audio_data import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "data"
    args = parser.parse_args(
        ["audio-data", "--out", str(out), "--split", "validation", "--count", "2", "--first", "5"]
    )
    config = SynthConfig(length=1024)
    path = write_dataset(args.out, args.split, args.count, args.first, config, progress=False)
    assert path == out / "validation.safetensors"
    data = load_stem_tensor(path)
    assert data.stems.shape == (2, 4, 1024) and data.names == STEMS
    assert data.first_seed == split_seed("validation", 5) and data.sample_rate == 8000
    assert torch.equal(data.stems[1], generate_example(split_seed("validation", 6), config))
    folder = out / "validation" / "000006"
    mix, rate = read_audio(folder / "mix.wav")
    assert rate == 8000 and torch.equal(mix[0], data.stems[1].sum(0))  # the mix is the exact sum
    for index, stem in enumerate(STEMS):
        audio, _ = read_audio(folder / f"{stem}.wav")
        assert torch.equal(audio[0], data.stems[1, index])
    assert not list(out.rglob("*.tmp"))
    assert args.func.__name__ == "run_audio_data"


def test_bad_counts_and_stem_files(tmp_path) -> None:
    with pytest.raises(ValueError, match="--count must be a positive integer"):
        write_dataset(tmp_path, "train", 0)
    with pytest.raises(ValueError, match="a split holds examples"):
        write_dataset(tmp_path, "test", 2, first=SPLIT_SIZE - 1)
    with pytest.raises(ValueError, match="does not exist; write one with `mgdm audio-data"):
        load_stem_tensor(tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="not a readable stem file"):
        load_stem_tensor(tmp_path / "bad.safetensors")
