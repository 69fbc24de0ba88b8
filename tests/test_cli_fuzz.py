"""Property-based fuzzing of every ``mgdm`` command with bad arguments and bad files.

Each example takes a command with a valid, cheap base invocation, replaces one or two of its
arguments by bad values (numbers that are not finite, negative, zero or not numbers; unknown
names; missing, empty, corrupt, pickled or random-byte files; folders where files are expected
and files where folders are; paths that cannot be written; devices this machine lacks), runs
``mgdm`` in-process and asserts the refusal contract: exit status 2, exactly one line on stderr,
no traceback, and no file or folder left behind.

Hypothesis runs with a fixed seed (``derandomize``) and :data:`EXAMPLES` examples (default 120,
about half a minute; ``MGDM_FUZZ_EXAMPLES`` overrides). With ``MGDM_FUZZ_REPORT=path.json`` the
outcome counts (per command, per kind of bad value, per exit status) are written there::

    MGDM_FUZZ_EXAMPLES=1000 MGDM_FUZZ_REPORT=fuzz.json .venv/bin/python -m pytest -p no:xdist \
        tests/test_cli_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mgdm.cli import main

EXAMPLES = int(os.environ.get("MGDM_FUZZ_EXAMPLES", "120"))
OUTCOMES: Counter[str] = Counter()

# ---------------------------------------------------------------------------- bad values
NOT_NUMBERS = ["abc", "", "1,5", "0x", "--"]
BAD_COUNTS = ["0", "-1", "-7", "1.5", "nan", "1e3", *NOT_NUMBERS]
BAD_INTEGERS = ["1.5", "nan", "inf", "1e3", *NOT_NUMBERS]
BAD_POSITIVE = ["0", "-1", "-0.5", "nan", "inf", "-inf", "1e400", *NOT_NUMBERS]
BAD_NON_NEGATIVE = ["-1", "-0.5", "nan", "inf", "-inf", "1e400", *NOT_NUMBERS]
BAD_FRACTIONS = ["0.9", "1", "-0.1", "nan", "inf", *NOT_NUMBERS]
BAD_DEVICES = ["cuda", "cuda:3", "bogus", "meta", "", "cpu:x", "cpu:0:1", "xla", "mps"]
if torch.cuda.is_available():  # a machine with CUDA accepts "cuda"
    BAD_DEVICES = [d for d in BAD_DEVICES if d not in ("cuda", "cuda:3")] + ["cuda:99"]
if torch.backends.mps.is_available():
    BAD_DEVICES.remove("mps")
BAD_SEED_LISTS = ["5-2", "abc", "", "1-", "-", "0,,1", "1.5", "0-99999999999"]
BAD_CHANNELS = ["", "abc", "0", "-8", "8,-1", "8,,16", "1.5", "0,0"]
BAD_SHAPES = ["", "abc", "1,32", "0,32,32", "1,-32,32", "1,32,32,32", "1.5,32,32"]

# Kinds of bad file (written into the example's own folder before the run).
FILE_CONTENTS: dict[str, bytes] = {
    "empty": b"",
    "text": b"hello, not the expected format\n",
    "json-list": b"[1, 2, 3]",
    "huge-header": b"\xff" * 8 + b"{}",
    "zip-garbage": b"PK\x03\x04" + b"\x00" * 40,
    "riff-garbage": b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\x00" * 8,
    "png-garbage": b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,
    "sqlite-garbage": b"SQLite format 3\x00" + b"\x01" * 84,
}


@dataclass(frozen=True)
class Option:
    """One argument of a command: ``name`` (``"#k"`` for the k-th positional) and its kind."""

    name: str
    kind: str
    suffix: str = ""  # the suffix a bad file of this argument carries


@dataclass(frozen=True)
class Command:
    """A valid, cheap invocation (``{a}`` is the shared assets folder; no argument holds a
    space) and the fuzzed options."""

    base: str
    options: list[Option] = field(default_factory=list)

    def argv(self, assets: Path) -> list[str]:
        """The base invocation's arguments, ``{a}`` replaced by ``assets``."""
        return [part.format(a=assets) for part in self.base.split()]


def _names(kind: str) -> st.SearchStrategy[str]:
    """Bad names: random text that is none of the names the command accepts."""
    from mgdm.samplers.mgdm import PRESETS
    from mgdm.samplers.registry import sampler_names
    from mgdm.tasks.registry import TASKS

    valid = {"task": set(TASKS), "sampler": set(sampler_names()), "preset": set(PRESETS)}.get(
        kind, set()
    )
    return st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=12
    ).filter(lambda text: text not in valid and not text.startswith("-"))


def bad_value(option: Option) -> st.SearchStrategy[tuple[str, str]]:
    """``(label, value)`` pairs: the kind of bad value (for the report) and the value; file
    values are ``@kind`` markers, turned into real files by :func:`_materialise`."""
    kind = option.kind
    pools = {
        "count": BAD_COUNTS,
        "integer": BAD_INTEGERS,
        "positive": BAD_POSITIVE,
        "non-negative": BAD_NON_NEGATIVE,
        "fraction": BAD_FRACTIONS,
        "device": BAD_DEVICES,
        "seeds": BAD_SEED_LISTS,
        "channels": BAD_CHANNELS,
        "shape": BAD_SHAPES,
    }
    if kind in pools:
        return st.sampled_from(pools[kind]).map(lambda value: (kind, value))
    if kind in ("task", "sampler", "preset", "prior", "name"):
        return _names(kind).map(lambda value: ("name", value))
    files = [f"@{name}" for name in FILE_CONTENTS] + ["@missing", "@folder", "@pickle"]
    if kind == "new-db":  # a missing or empty file is a new database: both valid
        bad_dbs = [f"@{name}" for name in FILE_CONTENTS if name != "empty"] + ["@folder"]
        return st.sampled_from(bad_dbs).map(lambda v: ("db" + v, v))
    if kind == "input":
        random_bytes = st.binary(min_size=1, max_size=48).map(lambda b: ("file-random", b.hex()))
        return st.one_of(st.sampled_from(files).map(lambda v: ("file" + v, v)), random_bytes)
    if kind == "folder-in":
        return st.sampled_from(["@missing", "@file", "@empty-folder", "@folder-of-junk"]).map(
            lambda v: ("folder" + v, v)
        )
    if kind == "out-file":
        choices = ["@folder", "@below-file", "@sys", "@wrong-suffix"]
        return st.sampled_from(choices).map(lambda v: ("out-file" + v, v))
    if kind == "out-dir":
        return st.sampled_from(["@file", "@below-file", "@sys"]).map(lambda v: ("out-dir" + v, v))
    raise AssertionError(f"unknown option kind {kind}")


def _materialise(value: str, option: Option, folder: Path, index: int) -> str:
    """A bad value as an argument: ``@kind`` markers become paths prepared in ``folder``."""
    if not value.startswith("@"):
        if option.kind == "input":  # hex of random bytes
            path = folder / f"random{index}{option.suffix}"
            path.write_bytes(bytes.fromhex(value))
            return str(path)
        return value
    marker = value[1:]
    path = folder / f"bad{index}{option.suffix}"
    if marker in FILE_CONTENTS:
        path.write_bytes(FILE_CONTENTS[marker])
    elif marker == "pickle":
        path.write_bytes(pickle.dumps({"weights": Counter("a")}))
    elif marker in ("folder", "empty-folder"):
        path.mkdir()
    elif marker == "folder-of-junk":
        path.mkdir()
        (path / "config.json").write_text("{")
        (path / "prior.json").write_text("[]")
    elif marker == "file":
        path.write_text("a file")
    elif marker == "below-file":
        (folder / f"blocker{index}").write_text("a file")
        return str(folder / f"blocker{index}" / f"x{option.suffix}")
    elif marker == "sys":
        return f"/sys/mgdm-fuzz{option.suffix}"
    elif marker == "wrong-suffix":
        return str(folder / f"out{index}.txt")
    elif marker != "missing":
        raise AssertionError(marker)
    return str(path)


# ---------------------------------------------------------------------------- the commands
# `serve` is left out on purpose: its base invocation starts a web server that runs until it is
# stopped. Its refusals (port, workers, host, device, priors) are tested in tests/test_serve.py.
def commands() -> dict[str, Command]:
    count, positive = "count", "positive"
    return {
        "restore": Command(
            (
                "restore {a}/clean.png --task sr4 --prior {a}/prior --samples 1 --nfe 30 "
                "--out grid.png"
            ),
            [
                Option("#1", "input", ".png"),
                Option("--task", "task"),
                Option("--sampler", "sampler"),
                Option("--preset", "preset"),
                Option("--prior", "prior"),
                Option("--samples", count),
                Option("--seed", "integer"),
                Option("--sigma-y", positive),
                Option("--nfe", positive),
                Option("--out", "out-file", ".png"),
                Option("--save-observation", "out-file", ".npy"),
                Option("--observation", "input", ".npy"),
                Option("--test-image", count),
                Option("--device", "device"),
            ],
        ),
        "separate": Command(
            "separate {a}/mix.wav --out-dir stems --prior {a}/audio-prior --sampler msdm",
            [
                Option("#1", "input", ".wav"),
                Option("--out-dir", "out-dir"),
                Option("--prior", "folder-in"),
                Option("--sampler", "sampler"),
                Option("--seed", "integer"),
                Option("--overlap", "fraction"),
                Option("--sigma-y", positive),
                Option("--batch-size", count),
                Option("--device", "device"),
            ],
        ),
        "audio-data": Command(
            "audio-data --out data --count 1 --no-wav --split test",
            [
                Option("--out", "out-dir"),
                Option("--count", count),
                Option("--first", "integer"),
                Option("--soundfont", "input", ".sf2"),
            ],
        ),
        "bench gmm": Command(
            (
                "bench gmm --dim 2 --obs-dim 1 --seeds 0 --samples 8 --directions 8 --samplers "
                "dps --budget 10 --quiet"
            ),
            [
                Option("--dim", count),
                Option("--obs-dim", count),
                Option("--seeds", "seeds"),
                Option("--samples", count),
                Option("--directions", count),
                Option("--budget", positive),
                Option("--json", "out-file", ".json"),
                Option("--db", "new-db", ".sqlite"),
                Option("--samplers", "name"),
                Option("--device", "device"),
                Option("--gibbs-sweeps", count),
                Option("--num-steps", count),
            ],
        ),
        "bench gmm-table": Command(
            "bench gmm-table {a}/rows.json", [Option("#2", "input", ".json")]
        ),
        "bench images": Command(
            (
                "bench images --db bench.sqlite --prior {a}/prior --tasks sr4 --samplers dps "
                "--images 1 --budget 8 --quiet"
            ),
            [
                Option("--db", "new-db", ".sqlite"),
                Option("--tasks", "name"),
                Option("--samplers", "name"),
                Option("--images", count),
                Option("--seeds", "seeds"),
                Option("--sigma-y", positive),
                Option("--budget", positive),
                Option("--samples-per-cell", count),
                Option("--batch", count),
                Option("--device", "device"),
                Option("--prior", "prior"),
            ],
        ),
        "bench audio": Command(
            (
                "bench audio --prior {a}/audio-prior --data {a}/stems.safetensors --db "
                "audio.sqlite --mixtures 1 --samplers msdm --quiet"
            ),
            [
                Option("--prior", "folder-in"),
                Option("--data", "input", ".safetensors"),
                Option("--db", "new-db", ".sqlite"),
                Option("--mixtures", count),
                Option("--seeds", "seeds"),
                Option("--batch", count),
                Option("--budget", positive),
                Option("--device", "device"),
                Option("--samplers", "name"),
            ],
        ),
        "bench audio-table": Command(
            "bench audio-table --db {a}/audio.sqlite",
            [Option("--db", "input", ".sqlite"), Option("--out", "out-dir")],
        ),
        "report": Command(
            "report --db {a}/images.sqlite",
            [
                Option("--db", "input", ".sqlite"),
                Option("--out", "out-dir"),
                Option("--grid-images", count),
                Option("--sigma-y", positive),
            ],
        ),
        "train prior": Command(
            "train prior --out run --steps 1 --batch-size 2 --channels 4 --limit 4",
            [
                Option("--out", "out-dir"),
                Option("--steps", count),
                Option("--batch-size", count),
                Option("--lr", positive),
                Option("--channels", "channels"),
                Option("--checkpoint-every", count),
                Option("--limit", count),
                Option("--seed", "integer"),
                Option("--device", "device"),
            ],
        ),
        "train autoencoder": Command(
            (
                "train autoencoder --out run --steps 1 --batch-size 2 --channels 4,8 --limit 4 "
                "--eval-limit 4"
            ),
            [
                Option("--out", "out-dir"),
                Option("--steps", count),
                Option("--lr", positive),
                Option("--channels", "channels"),
                Option("--latent-channels", count),
                Option("--kl-weight", "non-negative"),
                Option("--eval-limit", count),
                Option("--device", "device"),
            ],
        ),
        "train latent-prior": Command(
            (
                "train latent-prior --autoencoder {a}/autoencoder --out run --steps 1 "
                "--batch-size 2 --channels 4 --limit 4"
            ),
            [
                Option("--autoencoder", "folder-in"),
                Option("--out", "out-dir"),
                Option("--steps", count),
                Option("--lr", positive),
                Option("--device", "device"),
            ],
        ),
        "train audio-prior": Command(
            (
                "train audio-prior --data {a}/stems.safetensors --out run --steps 1 --batch-size "
                "1 --channels 4,8 --factors 4"
            ),
            [
                Option("--data", "input", ".safetensors"),
                Option("--out", "out-dir"),
                Option("--steps", count),
                Option("--lr", positive),
                Option("--channels", "channels"),
                Option("--factors", "channels"),
                Option("--device", "device"),
            ],
        ),
        "evaluate prior": Command(
            (
                "evaluate prior --prior {a}/prior-run --run {a}/prior-run --command x "
                "--training-hardware x --samples 4 --steps 2"
            ),
            [
                Option("--prior", "folder-in"),
                Option("--run", "folder-in"),
                Option("--samples", count),
                Option("--steps", count),
            ],
        ),
        "convert-checkpoint": Command(
            "convert-checkpoint {a}/prior/unet/diffusion_pytorch_model.safetensors out.safetensors",
            [Option("#1", "input", ".ckpt"), Option("#2", "out-file", ".safetensors")],
        ),
        "tasks figures": Command(
            "tasks figures --out figures --tasks sr4",
            [
                Option("--out", "out-dir"),
                Option("--image-shape", "shape"),
                Option("--seed", "integer"),
                Option("--sigma-y", positive),
                Option("--tasks", "name"),
            ],
        ),
        "demo": Command(
            "demo --out demo --images 1 --samples 1",
            [
                Option("--out", "out-dir"),
                Option("--images", count),
                Option("--samples", count),
                Option("--preset", "preset"),
                Option("--prior", "prior"),
            ],
        ),
    }


COMMANDS = commands()


def _apply(argv: list[str], option: Option, value: str) -> list[str]:
    """``argv`` with ``option`` set to ``value`` (replaced, or appended when absent)."""
    argv = list(argv)
    if option.name.startswith("#"):
        argv[int(option.name[1:])] = value
    elif option.name in argv:
        argv[argv.index(option.name) + 1] = value
    else:
        argv += [option.name, value]
    return argv


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """Valid inputs shared by the base invocations (read-only during the fuzzing)."""
    return make_assets(tmp_path_factory.mktemp("fuzz-assets"))


def make_assets(folder: Path) -> Path:
    """Write the inputs of the base invocations into ``folder``."""
    import soundfile
    from PIL import Image

    from mgdm.audio.constants import STEMS
    from mgdm.audio.dataset import StemData, save_stem_tensor
    from mgdm.audio.prior import save_audio_prior
    from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
    from mgdm.train.prior import TrainConfig, build_unet, export_pipeline

    export_pipeline(build_unet(TrainConfig(channels=(4,))).eval(), folder / "prior")
    Image.new("L", (32, 32), 100).save(folder / "clean.png")
    config = UNet1DConfig(in_channels=4, channels=(4, 8), factors=(4,), head_channels=4)
    save_audio_prior(folder / "audio-prior", build_unet1d(config, seed=0), STEMS, 8000, 256)
    tone = 0.1 * np.sin(np.arange(400) * 2 * np.pi * 440 / 8000).astype(np.float32)
    soundfile.write(folder / "mix.wav", tone, 8000, subtype="FLOAT")
    stems = torch.randn(2, 4, 256, generator=torch.Generator().manual_seed(0)) * 0.05
    save_stem_tensor(folder / "stems.safetensors", StemData(stems, STEMS, 8000, "test", 0, 1, "x"))
    made = {  # command: its output argument, pointed into the assets
        "bench gmm": ("--json", "rows.json"),
        "bench images": ("--db", "images.sqlite"),
        "bench audio": ("--db", "audio.sqlite"),
        "train autoencoder": ("--out", "autoencoder"),
        "train prior": ("--out", "prior-run"),
    }
    for name, (option, output) in made.items():
        argv = COMMANDS[name].argv(folder)
        argv = _apply(argv, Option(option, "out-file"), str(folder / output))
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == 0, argv
    return folder


def test_base_invocations_succeed(tmp_path, monkeypatch):
    """Every base invocation is valid (exit 0): a refusal in the fuzzing below is the bad
    value's doing. Runs on assets of its own, since some commands write beside their inputs.
    ``evaluate prior`` is left out: its FID over the 10,000 test images takes about 25 s."""
    folder = make_assets(tmp_path / "assets")
    for name, command in COMMANDS.items():
        if name == "evaluate prior":
            continue
        work = tmp_path.joinpath("work", *name.split())
        work.mkdir(parents=True)
        monkeypatch.chdir(work)
        argv = command.argv(folder)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(argv)
        assert status == 0, f"mgdm {' '.join(argv)}: {err.getvalue()[-300:]}"


def _files(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*")}


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_bad_arguments_are_refused_with_one_line(data, assets):
    name = data.draw(st.sampled_from(sorted(COMMANDS)), label="command")
    command = COMMANDS[name]
    chosen = data.draw(
        st.lists(st.sampled_from(command.options), min_size=1, max_size=2, unique=True),
        label="options",
    )
    drawn = [data.draw(bad_value(option), label=option.name) for option in chosen]
    assets_before = _files(assets)
    start = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="mgdm-fuzz-") as work:
        folder = Path(work)
        argv = command.argv(assets)
        for index, (option, (_, value)) in enumerate(zip(chosen, drawn)):
            argv = _apply(argv, option, _materialise(value, option, folder, index))
        before = _files(folder)
        stderr = io.StringIO()
        os.chdir(folder)
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                try:
                    status = main(argv)
                except SystemExit as stop:  # argparse's refusals
                    status = stop.code
        finally:
            os.chdir(start)
            torch.set_num_threads(1)
        err = stderr.getvalue()
        left = _files(folder) - before
    lines = [line for line in err.splitlines() if line.strip()]
    _record(name, [label for label, _ in drawn], status)
    assert status == 2, f"mgdm {' '.join(argv)}: exit status {status}; stderr {err!r}"
    assert len(lines) == 1 and "Traceback" not in err, f"mgdm {' '.join(argv)}: {err!r}"
    assert lines[0].startswith("mgdm") and "error:" in lines[0], lines[0]
    assert not left, f"mgdm {' '.join(argv)} left {sorted(map(str, left))}"
    assert _files(assets) == assets_before, f"mgdm {' '.join(argv)} wrote into the assets"


def _record(name: str, labels: list[str], status: object) -> None:
    """Count the example's outcome; with ``MGDM_FUZZ_REPORT`` set, rewrite the report."""
    OUTCOMES[f"command {name}"] += 1
    for label in labels:
        OUTCOMES[f"bad {label}"] += 1
    OUTCOMES[f"exit {status}"] += 1
    OUTCOMES["examples"] += 1
    _save_report()


def _save_report() -> None:
    """With ``MGDM_FUZZ_REPORT`` set, rewrite the report of the outcomes so far."""
    report = os.environ.get("MGDM_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(dict(sorted(OUTCOMES.items())), indent=2) + "\n")


# ---------------------------------------------------------------------------- the Python API
API_ERRORS = (ValueError, FileNotFoundError)
"""What the public functions raise for bad input (one line each)."""

odd_numbers = st.one_of(
    st.sampled_from([0, -1, -3, float("nan"), float("inf"), -float("inf"), 1e-300, 0.5]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)
odd_shapes = st.lists(st.integers(-3, 40), min_size=0, max_size=4).map(tuple)


def _odd_tensor(draw, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of the right shape with bad values, or of a bad shape or dtype."""
    kind = draw(st.sampled_from(["nan", "inf", "shape", "empty", "complex", "bool"]))
    if kind == "shape":
        return torch.zeros(tuple(max(n, 0) for n in draw(odd_shapes)))
    if kind == "empty":
        return torch.zeros(0)
    if kind == "complex":
        return torch.zeros(shape, dtype=torch.complex64)
    if kind == "bool":
        return torch.zeros(shape, dtype=torch.bool)
    value = {"nan": float("nan"), "inf": float("inf")}[kind]
    tensor = torch.zeros(shape)
    tensor.view(-1)[draw(st.integers(0, tensor.numel() - 1))] = value
    return tensor


@settings(max_examples=max(EXAMPLES // 2, 10), derandomize=True, database=None, deadline=None)
@given(data=st.data())
def test_public_functions_raise_value_or_file_errors(data):
    from mgdm.devices import resolve_device
    from mgdm.priors.catalog import load_prior
    from mgdm.priors.kernel_density import KernelDensityPrior
    from mgdm.restore import restore
    from mgdm.samplers.registry import build_sampler
    from mgdm.tasks.registry import make_task

    shape = (1, 8, 8)
    which = data.draw(
        st.sampled_from(
            [
                "make_task",
                "load_prior",
                "build_sampler",
                "resolve_device",
                "restore-observation",
                "restore-options",
                "gaussian-noise",
            ]
        ),
        label="function",
    )
    OUTCOMES[f"api {which}"] += 1
    try:
        if which == "make_task":
            make_task(data.draw(_names("task")), data.draw(odd_shapes))
        elif which == "load_prior":
            load_prior(data.draw(_names("prior")))
        elif which == "build_sampler":
            build_sampler(data.draw(_names("sampler")), preset=data.draw(_names("preset")))
        elif which == "resolve_device":
            resolve_device(data.draw(st.sampled_from(BAD_DEVICES)))
        elif which == "gaussian-noise":
            from mgdm.operators.noise import GaussianNoise

            GaussianNoise(data.draw(odd_numbers))
        else:
            prior = KernelDensityPrior(torch.linspace(-1, 1, 3 * 64).reshape(3, *shape), 0.3)
            task = make_task("denoising", shape)
            observation = torch.zeros(task.observation_shape)
            options = {"samples": 1, "sigma_y": 0.1}
            if which == "restore-observation":
                observation = _odd_tensor(data.draw, tuple(task.observation_shape))
            else:
                key = data.draw(st.sampled_from(["samples", "sigma_y", "sampler"]))
                options[key] = (
                    data.draw(_names("sampler")) if key == "sampler" else data.draw(odd_numbers)
                )
            restore(observation, task, prior, options.pop("sampler", "dps"), **options)
    except API_ERRORS as error:
        assert "\n" not in str(error).strip(), f"{which}: a multi-line message {error!s:.300}"
        OUTCOMES["api refused"] += 1
        _save_report()
    else:  # only the numbers can be valid by chance (e.g. samples=1, sigma_y=0.5)
        assert which in ("restore-options", "gaussian-noise"), f"{which} accepted a bad value"
        OUTCOMES["api accepted"] += 1
        _save_report()
