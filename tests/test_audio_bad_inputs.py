"""Bad input to the audio commands: one line on stderr, exit status 2, nothing left behind.

Each case runs ``mgdm`` in-process (:func:`mgdm.cli.main`) on inputs made in ``tmp_path`` and
checks the refusal contract: status 2, exactly one non-empty line on stderr saying what was
wrong, no traceback, and no file or folder in ``tmp_path`` besides the inputs.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from mgdm.audio import dataset, separate
from mgdm.audio.constants import STEMS
from mgdm.audio.dataset import StemData, save_stem_tensor
from mgdm.audio.prior import AudioPrior, save_audio_prior
from mgdm.audio.resample import resample
from mgdm.audio.separate import separate_file, separate_tensor
from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
from mgdm.audio.wav import READABLE
from mgdm.cli import main
from mgdm.commands.separate import SEPARATE_HELP
from mgdm.samplers.msdm import MSDM

LENGTH = 64
FAST = MSDM(num_steps=3, num_resamples=1)
TINY = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)


@pytest.fixture(scope="module")
def prior() -> AudioPrior:
    return AudioPrior(build_unet1d(TINY, seed=2), STEMS, 8000, LENGTH)


@pytest.fixture(scope="module")
def prior_dir(prior, tmp_path_factory) -> Path:
    """A valid tiny prior folder, outside the tests' ``tmp_path``."""
    folder = tmp_path_factory.mktemp("prior")
    save_audio_prior(folder, prior.network, STEMS, 8000, LENGTH)
    return folder


def _tone(rate: int = 8000, samples: int = 96, amplitude: float = 0.3) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)


def _wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    soundfile.write(path, samples.astype(np.float32), rate, subtype="FLOAT")
    return path


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def _refused(argv: list[str], tmp_path: Path, capsys, message: str) -> str:
    """Run ``mgdm argv``; assert the refusal contract and that the line contains ``message``."""
    before = _files(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's refusals
        status = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    assert _files(tmp_path) == before
    return lines[0]


def _failed(argv: list[str], tmp_path: Path, capsys, message: str) -> str:
    """Run ``mgdm argv`` that fails once running (after its progress bars): status 2, the last
    line of stderr is the error and contains ``message``, no traceback, nothing left behind."""
    before = _files(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(f"mgdm {argv[0]}: error: ") and message in last, err
    assert "Traceback" not in err and _files(tmp_path) == before
    return last


def _separate(tmp_path: Path, prior_dir: Path, *extra: str, mix: str = "mix.wav") -> list[str]:
    return [
        "separate",
        str(tmp_path / mix),
        "--out-dir",
        str(tmp_path / "stems"),
        "--prior",
        str(prior_dir),
        "--sampler",
        "msdm",
        *extra,
    ]


# --- separate: devices, output folders, priors -------------------------------------------


@pytest.mark.parametrize(
    ("device", "message"),
    [
        pytest.param(
            "cuda",
            "argument --device: device 'cuda' is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present"),
        ),
        ("bogus", "argument --device: unknown device 'bogus'"),
        ("meta", "argument --device: device type 'meta' cannot run a sampler"),
    ],
)
def test_separate_refuses_devices(tmp_path, prior_dir, capsys, device, message) -> None:
    _wav(tmp_path / "mix.wav", _tone())
    _refused(_separate(tmp_path, prior_dir, "--device", device), tmp_path, capsys, message)


def test_separate_refuses_unwritable_out_dirs(tmp_path, prior_dir, capsys) -> None:
    _wav(tmp_path / "mix.wav", _tone())
    (tmp_path / "file.txt").write_text("a file")
    argv = _separate(tmp_path, prior_dir)
    out = argv.index("--out-dir") + 1
    for target, message in [
        (tmp_path / "file.txt" / "stems", "file.txt is a file, not a folder"),
        (tmp_path / "file.txt", "file.txt is a file, not a folder"),
        (Path("/sys/mgdm-test"), "cannot create files in /sys"),
    ]:
        if target.parts[1] == "sys" and not Path("/sys").is_dir():
            continue
        argv[out] = str(target)
        assert message in _refused(argv, tmp_path, capsys, f"--out-dir {target}")


@pytest.mark.parametrize(
    ("model", "description", "message"),
    [
        (b"\x8f" * 3000, None, "is not a readable .safetensors file"),
        (b"", None, "is not a readable .safetensors file"),
        (None, "[1, 2]", "holds a JSON list; a description of an audio prior is a JSON object"),
        (None, '{"kind": "mgdm-audio-prior"}', "lacks the entry 'schedule'"),
    ],
)
def test_separate_refuses_broken_priors(
    tmp_path, prior_dir, capsys, model, description, message
) -> None:
    _wav(tmp_path / "mix.wav", _tone())
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("prior.json", "model.safetensors"):
        (broken / name).write_bytes((prior_dir / name).read_bytes())
    if model is not None:
        (broken / "model.safetensors").write_bytes(model)
    if description is not None:
        (broken / "prior.json").write_text(description)
    _refused(_separate(tmp_path, broken), tmp_path, capsys, message)


def test_separate_refuses_non_finite_prior_weights(tmp_path, prior, capsys) -> None:
    _wav(tmp_path / "mix.wav", _tone())
    network = build_unet1d(TINY, seed=2)
    with torch.no_grad():
        next(network.parameters()).fill_(float("nan"))
    save_audio_prior(tmp_path / "nan-prior", network, STEMS, 8000, LENGTH)
    argv = _separate(tmp_path, tmp_path / "nan-prior")
    _refused(argv, tmp_path, capsys, "holds non-finite weights (NaN or inf) in 1 tensors")


# --- separate: the mix ------------------------------------------------------------------


def test_separate_refuses_bad_sample_rates_before_decoding(
    tmp_path, prior_dir, capsys, monkeypatch
) -> None:
    def no_decoding(path):
        raise AssertionError(f"{path} was decoded")

    monkeypatch.setattr(separate, "read_audio", no_decoding)
    for rate in (1, 999, 384_001):
        _wav(tmp_path / "mix.wav", _tone(rate, 10), rate)
        message = (
            f"the mix's sample rate is {rate} Hz; accepted: whole numbers from 1,000 to 384,000"
        )
        _refused(_separate(tmp_path, prior_dir), tmp_path, capsys, message)
    monkeypatch.setattr(separate, "MAX_MIX_SECONDS", 1)
    _wav(tmp_path / "mix.wav", _tone(1000, 1500), 1000)
    _refused(_separate(tmp_path, prior_dir), tmp_path, capsys, "the mix lasts 1.5 s; at most 1 s")
    with pytest.raises(ValueError, match="sample rate is 500 Hz"):
        separate_tensor(torch.ones(100), 500, prior_dir, FAST)


def test_accepted_input_is_documented() -> None:
    assert (separate.MIN_SAMPLE_RATE, separate.MAX_SAMPLE_RATE) == (1_000, 384_000)
    assert separate.MAX_MIX_SECONDS == 20 * 60 and separate.MAX_PEAK == 1e3
    assert "1,000 to 384,000 Hz, at most 20 minutes long" in SEPARATE_HELP
    assert "between 1e-6 and 1e3" in SEPARATE_HELP and "--sigma-y up to 1e3" in SEPARATE_HELP
    assert "(1 kHz to 384 kHz)" in separate.__doc__ and "(20 minutes)" in separate.__doc__


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (_tone(amplitude=1e30), "the mix's peak amplitude is 1e+30, over 1000 times full scale"),
        (_tone(amplitude=3e4), "(16-bit samples: divide by 32768)"),
        (np.where(np.arange(96) == 5, np.nan, _tone()), "the mix has non-finite samples"),
        (np.where(np.arange(96) == 5, np.inf, _tone()), "the mix has non-finite samples"),
        (np.zeros(0), "the mix is empty (0 samples)"),
        (np.zeros(96), "the mix is silent"),
    ],
)
def test_separate_refuses_bad_mixes(tmp_path, prior_dir, capsys, samples, message) -> None:
    _wav(tmp_path / "mix.wav", samples)
    _refused(_separate(tmp_path, prior_dir), tmp_path, capsys, message)


def test_separate_refuses_files_that_are_not_audio(tmp_path, prior_dir, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    for mix, message in [
        ("notes.txt", "as audio (Error opening"),
        ("empty.wav", "as audio (Error opening"),
        ("folder", f"is not a file; give an audio file ({READABLE})"),
        ("missing.wav", "does not exist"),
    ]:
        _refused(_separate(tmp_path, prior_dir, mix=mix), tmp_path, capsys, message)


# --- separate: numeric options -------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--overlap", "nan", "argument --overlap: expected a finite number; got 'nan'"),
        ("--overlap", "0.7", "the window overlap is a fraction in [0, 0.5]; got 0.7"),
        ("--sigma-y", "inf", "argument --sigma-y: expected a finite number; got 'inf'"),
        ("--sigma-y", "0", "argument --sigma-y: expected a finite number > 0; got '0'"),
        ("--sigma-y", "-1", "argument --sigma-y: expected a finite number > 0; got '-1'"),
        ("--sigma-y", "1e300", "1e+300"),
        ("--batch-size", "0", "argument --batch-size: expected a whole number >= 1; got '0'"),
        ("--seed", "1.5", "argument --seed: invalid int value: '1.5'"),
        ("--sampler", "bogus", "unknown sampler 'bogus'; accepted: mgdm"),
    ],
)
def test_separate_refuses_bad_options(tmp_path, prior_dir, capsys, option, value, message) -> None:
    _wav(tmp_path / "mix.wav", _tone())
    argv = _separate(tmp_path, prior_dir, option, value)
    _refused(argv, tmp_path, capsys, message)


def test_any_integer_seed_is_accepted(prior) -> None:
    mix = torch.from_numpy(_tone()).float()
    negative = separate_tensor(mix, 8000, prior, FAST, seed=-1)
    wrapped = separate_tensor(mix, 8000, prior, FAST, seed=2**64 - 1)  # the same modulo 2^64
    assert torch.equal(negative.stems, wrapped.stems)


def test_non_finite_stems_are_refused_before_writing(tmp_path, prior, capsys, monkeypatch) -> None:
    broken = AudioPrior(build_unet1d(TINY, seed=2), STEMS, 8000, LENGTH)
    with torch.no_grad():
        next(broken.network.parameters()).fill_(float("nan"))
    mix = _wav(tmp_path / "mix.wav", _tone())
    with pytest.raises(ValueError, match="returned non-finite stems .* likely causes: a mix far"):
        separate_file(mix, tmp_path / "stems", prior=broken, sampler=FAST)
    assert _files(tmp_path) == {mix}
    monkeypatch.setattr(separate, "resolve_prior", lambda name, device: broken)
    argv = ["separate", str(mix), "--out-dir", str(tmp_path / "stems"), "--sampler", "msdm"]
    last = _failed(argv, tmp_path, capsys, "sampler msdm returned non-finite stems")
    assert "extreme sigma_y (0.0001" in last and last.endswith("Nothing was written.")


# --- the resampler's cost --------------------------------------------------------------------


def test_resampling_extreme_ratios_is_bounded_and_exact(monkeypatch) -> None:
    """The resampler's filter bank is bounded by the signal lengths, not by the rates' ratio
    (1 Hz hung; 44,101 -> 8,000 Hz built a kernel of up x (2W + down) taps, about 2.8 GB)."""
    # the module itself: mgdm.audio exports a function of the same name
    resample_module = importlib.import_module("mgdm.audio.resample")
    sizes: list[tuple[int, int]] = []
    build = resample_module._phase_filters

    def recording(phases, up, width, cutoff, beta):
        filters = build(phases, up, width, cutoff, beta)
        sizes.append(tuple(filters.shape))
        return filters

    monkeypatch.setattr(resample_module, "_phase_filters", recording)
    start = time.perf_counter()
    up = resample(torch.ones(10, dtype=torch.float64), 1, 8000)  # 1 Hz: 8,000 phases
    assert up.shape == (80_000,) and bool(torch.isfinite(up).all())
    # coprime rates: a polyphase kernel of all up * down taps would hold 8,000 x 44,101 taps
    t = torch.arange(44_101, dtype=torch.float64) / 44_101
    tone = torch.sin(2 * torch.pi * 440 * t)
    down = resample(tone, 44_101, 8000)
    expected = torch.sin(2 * torch.pi * 440 * torch.arange(8000, dtype=torch.float64) / 8000)
    torch.testing.assert_close(down[200:-200], expected[200:-200], rtol=0, atol=1e-4)
    assert resample(torch.randn(383_999), 383_999, 8000).shape == (8000,)
    lengths = [(10, 80_000), (44_101, 8000), (383_999, 8000)]
    for (rows, taps), (length, out_length) in zip(sizes, lengths):
        # one filter row per output phase (at most one per output), 2W + 1 taps with
        # W = ceil(16 / (0.94 min(1, up / down))): the work is ~35 x the longer signal
        assert rows <= out_length and rows * taps <= 36 * max(length, out_length)
    assert time.perf_counter() - start < 120  # a hang guard only (about 2 s when idle)


# --- audio-data ------------------------------------------------------------------------------


def test_audio_data_refuses_bad_options(tmp_path, capsys, monkeypatch) -> None:
    out = str(tmp_path / "data")
    (tmp_path / "file.txt").write_text("a file")
    (tmp_path / "fake.sf2").write_bytes(b"RIFF\x00\x00\x00\x00sfbk")
    for argv, message in [
        (["--count", "0"], "argument --count: expected a whole number >= 1; got '0'"),
        (["--count", "-1"], "argument --count: expected a whole number >= 1; got '-1'"),
        (["--count", "1", "--first", "-1"], "argument --first: expected a whole number >= 0"),
        (["--count", "2", "--first", "999999"], "a split holds examples 0 … 999999"),
        (["--count", "1", "--soundfont", str(tmp_path / "no.sf2")], "no.sf2 does not exist"),
        (["--count", "1", "--soundfont", str(tmp_path / "file.txt")], "is not a SoundFont 2 file"),
    ]:
        _refused(["audio-data", "--out", out, *argv], tmp_path, capsys, message)
    monkeypatch.setattr(dataset, "fluidsynth_problem", lambda soundfont: None)
    fake = ["--count", "1", "--soundfont", str(tmp_path / "fake.sf2")]
    for target, message in [
        (tmp_path / "file.txt", "is a file, not a folder"),
        (tmp_path / "file.txt" / "data", "file.txt is a file, not a folder"),
    ]:
        _refused(["audio-data", "--out", str(target), *fake], tmp_path, capsys, message)
    if Path("/sys").is_dir():
        argv = ["audio-data", "--out", "/sys/mgdm-test", *fake]
        _refused(argv, tmp_path, capsys, "cannot create files in /sys")


@pytest.mark.parametrize("no_wav", [[], ["--no-wav"]])
def test_a_failed_audio_data_run_leaves_no_folder(tmp_path, capsys, monkeypatch, no_wav) -> None:
    (tmp_path / "fake.sf2").write_bytes(b"RIFF\x00\x00\x00\x00sfbk")
    monkeypatch.setattr(dataset, "fluidsynth_problem", lambda soundfont: None)

    def cannot_render(seed, config):
        raise ValueError(f"fluidsynth cannot load the soundfont {config.soundfont}.")

    monkeypatch.setattr(dataset, "generate_example", cannot_render)
    argv = ["audio-data", "--out", str(tmp_path / "data" / "deep"), "--count", "2", *no_wav]
    argv += ["--soundfont", str(tmp_path / "fake.sf2")]
    _failed(argv, tmp_path, capsys, "fluidsynth cannot load the soundfont")


# --- train audio-prior ----------------------------------------------------------------------


def _stem_file(path: Path, stems: torch.Tensor, **fields) -> Path:
    data = StemData(stems, STEMS, 8000, "train", 0, 1, "TimGM6mb.sf2")
    save_stem_tensor(path, dataclasses.replace(data, **fields))
    return path


def _train(data: Path, out: Path, *extra: str) -> list[str]:
    tiny = ["--channels", "4,8", "--factors", "4", "--batch-size", "2", "--steps", "1"]
    return ["train", "audio-prior", "--data", str(data), "--out", str(out), *tiny, *extra]


def test_train_audio_prior_refuses_bad_data_before_writing(tmp_path, capsys) -> None:
    clips = 0.05 * torch.randn(4, 4, LENGTH, generator=torch.Generator().manual_seed(0))
    nan = clips.clone()
    nan[0, 0, 0] = float("nan")
    (tmp_path / "notes.txt").write_text("not a tensor file")
    out = tmp_path / "run"
    for data, message in [
        (tmp_path / "missing.safetensors", "does not exist; write one with `mgdm audio-data"),
        (tmp_path / "notes.txt", "is not a readable stem file of `mgdm audio-data`"),
        (_stem_file(tmp_path / "nan.safetensors", nan), "non-finite samples (NaN or inf)"),
        (_stem_file(tmp_path / "flat.safetensors", clips[:, :, :0]), "shape [4, 4, 0]"),
        (_stem_file(tmp_path / "int.safetensors", clips.to(torch.int32)), "holds torch.int32"),
        (_stem_file(tmp_path / "rate.safetensors", clips, sample_rate=0), "'sample_rate' must"),
        (_stem_file(tmp_path / "zero.safetensors", 0 * clips), "are silent (RMS 0)"),
    ]:
        _refused(_train(data, out), tmp_path, capsys, message)
    good = _stem_file(tmp_path / "good.safetensors", clips)
    for option, value, message in [
        ("--channels", "4;8", "--channels must be comma-separated integers"),
        ("--channels", "0,4", "channels must be 1 to 6 positive integers"),
        ("--factors", "1", "factors must hold 1 integers >= 2"),
        ("--factors", "4,4", "factors must hold 1 integers >= 2"),
    ]:
        _refused([*_train(good, out), option, value], tmp_path, capsys, message)
    # nothing was written, so the corrected run starts afresh instead of "cannot resume"
    assert main(_train(good, out)) == 0
    assert (out / "prior.json").is_file()
