"""``mgdm train prior``: outputs, loading as a prior, exact resume (also after SIGKILL), errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mgdm.cli import main
from mgdm.data import FASHION_MNIST_DIR

installed = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason="dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)

TINY = ["--channels", "8,8", "--limit", "64", "--batch-size", "8", "--seed", "3"]


def _train(out: Path, steps: int, *extra: str) -> int:
    return main(["train", "prior", "--out", str(out), "--steps", str(steps), *TINY, *extra])


def _log(out: Path) -> list[list[str]]:
    with open(out / "train_log.csv", newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    """An uninterrupted 4-step run (checkpoint every 2 steps)."""
    out = tmp_path_factory.mktemp("straight")
    assert _train(out, 4, "--checkpoint-every", "2") == 0
    return out


@installed
def test_outputs_and_loading_as_a_prior(straight_run):
    from mgdm.priors import load_diffusers_prior
    from mgdm.train import TrainConfig, build_unet

    out = straight_run
    for name in (
        "config.json",
        "train_log.csv",
        "checkpoint.safetensors",
        "checkpoint_state.pt",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp"))
    log = _log(out)
    assert log[0] == ["step", "loss", "seconds"] and [int(r[0]) for r in log[1:]] == [1, 2, 3, 4]
    assert all(float(r[1]) > 0 for r in log[1:])
    assert json.loads((out / "config.json").read_text())["channels"] == [8, 8]
    state = torch.load(out / "checkpoint_state.pt", weights_only=True)
    assert state["step"] == 4 and "optimizer" in state
    _assert_same_weights(load_file(str(out / "checkpoint.safetensors")), _final_weights(out))

    prior = load_diffusers_prior(out)
    assert prior.sample_shape == (1, 32, 32) and prior.prediction == "epsilon"
    network = build_unet(TrainConfig(channels=(8, 8), batch_size=8, seed=3, limit=64))
    network.load_state_dict(_final_weights(out))
    network.eval()
    x, t = (
        torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)),
        torch.tensor([1, 1000]),
    )
    with torch.no_grad():
        trainable = network(x, t).sample
        # The prior freezes its network (requires_grad_(False)), which lets torch pick another
        # attention kernel on the CPU: equal to rounding; bit-equal once frozen alike.
        assert torch.allclose(prior.epsilon(x, t), trainable, atol=1e-5)
        network.requires_grad_(False)
        assert torch.equal(prior.epsilon(x, t), network(x, t).sample)


@installed
def test_resume_continues_the_log_and_matches_an_uninterrupted_run(straight_run, tmp_path):
    assert _train(tmp_path, 2) == 0
    assert [int(r[0]) for r in _log(tmp_path)[1:]] == [1, 2]
    assert _train(tmp_path, 4) == 0
    log = _log(tmp_path)
    assert [int(r[0]) for r in log[1:]] == [1, 2, 3, 4]
    assert [r[1] for r in log[1:]] == [r[1] for r in _log(straight_run)[1:]]  # same losses
    _assert_same_weights(_final_weights(tmp_path), _final_weights(straight_run))
    assert _train(tmp_path, 4) == 0  # already done: nothing to train, exported again
    assert len(_log(tmp_path)) == 5


@installed
def test_sigkill_then_resume(tmp_path):
    """A run killed at an arbitrary moment resumes from its last checkpoint, bit-exactly."""
    command = [
        sys.executable,
        "-m",
        "mgdm.cli",
        "train",
        "prior",
        "--out",
        str(tmp_path),
        "--steps",
        "100000",
        "--checkpoint-every",
        "3",
        *TINY,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "checkpoint_state.pt").is_file():
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        time.sleep(0.3)  # kill somewhere later: mid-step, mid-checkpoint or mid-log
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    steps = torch.load(tmp_path / "checkpoint_state.pt", weights_only=True)["step"] + 2
    assert _train(tmp_path, steps, "--checkpoint-every", "3") == 0
    assert [int(r[0]) for r in _log(tmp_path)[1:]] == list(range(1, steps + 1))
    assert not list(tmp_path.glob("*.tmp"))
    reference = tmp_path.parent / "reference"
    assert _train(reference, steps, "--checkpoint-every", "1000") == 0
    _assert_same_weights(_final_weights(tmp_path), _final_weights(reference))


@installed
def test_config_mismatch_is_refused(straight_run, capsys):
    with pytest.raises(ValueError, match=r"--lr \(saved 0.0002, requested 0.001\).*--seed"):
        from mgdm.train import TrainConfig, train_prior

        train_prior(straight_run, TrainConfig((8, 8), batch_size=8, lr=1e-3, seed=4, limit=64), 4)
    assert (
        main(["train", "prior", "--out", str(straight_run), "--steps", "4", "--channels", "8,16"])
        == 2
    )
    error = capsys.readouterr().err
    assert "different configuration" in error and "--channels" in error and "--batch-size" in error
    assert main(["train", "prior", "--out", str(straight_run), "--steps", "3", *TINY]) == 2
    assert "already at step 4" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--steps", "0"], "steps must be >= 1"),
        (["--batch-size", "0"], "batch size must be >= 1"),
        (["--channels", "8,x"], "--channels must be comma-separated"),
        (["--channels", "8,-8"], "channels must be 1 to 4 positive integers"),
        (["--channels", "8,8,8,8,8"], "channels must be 1 to 4"),
        (["--checkpoint-every", "0"], "checkpoint interval"),
    ],
)
def test_bad_options(tmp_path, capsys, options, message):
    argv = [
        "train",
        "prior",
        "--out",
        str(tmp_path / "run"),
        "--limit",
        "64",
        "--channels",
        "8,8",
        *options,
    ]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@installed
def test_foreign_folder_and_too_few_images(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["train", "prior", "--out", str(tmp_path), "--steps", "1", *TINY]) == 2
    assert "not empty and holds no config.json" in capsys.readouterr().err
    assert (
        main(["train", "prior", "--out", str(tmp_path / "notes.txt"), "--steps", "1", *TINY]) == 2
    )
    assert "not a folder" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "prior",
                "--out",
                str(tmp_path / "r"),
                "--steps",
                "1",
                "--limit",
                "4",
                "--batch-size",
                "8",
            ]
        )
        == 2
    )
    assert "exceeds the 4 training images" in capsys.readouterr().err


@installed
def test_kill_between_the_two_checkpoint_moves_rolls_forward(tmp_path):
    """New weights moved into place, new state still in ``checkpoint_state.pt.tmp``."""
    import shutil

    assert _train(tmp_path, 2) == 0
    old_state = tmp_path.parent / "state_step2.pt"
    shutil.copy(tmp_path / "checkpoint_state.pt", old_state)
    assert _train(tmp_path, 4) == 0
    os.replace(tmp_path / "checkpoint_state.pt", tmp_path / "checkpoint_state.pt.tmp")
    shutil.copy(old_state, tmp_path / "checkpoint_state.pt")
    assert _train(tmp_path, 5) == 0
    assert [int(r[0]) for r in _log(tmp_path)[1:]] == [1, 2, 3, 4, 5]
    assert not (tmp_path / "checkpoint_state.pt.tmp").exists()
    shutil.copy(old_state, tmp_path / "checkpoint_state.pt")  # mismatched, nothing to roll forward
    with pytest.raises(ValueError, match=r"weights \(step 5\) and state \(step 2\) do not match"):
        _train_api(tmp_path, 6)


def _train_api(out: Path, steps: int) -> None:
    from mgdm.train import TrainConfig, train_prior

    train_prior(out, TrainConfig((8, 8), batch_size=8, seed=3, limit=64), steps, progress=False)
