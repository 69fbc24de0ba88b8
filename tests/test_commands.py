"""The command layer: common options before or after the command, --version, registries in the
help texts, one module per top-level command, and the API's thread default."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import mgdm
from mgdm.audio.separate import SHIPPED_AUDIO_PRIORS, separate_tensor
from mgdm.cli import COMMANDS, build_parser, main
from mgdm.commands.arguments import show_progress
from mgdm.priors.catalog import SHIPPED_PRIORS
from mgdm.restore import restore
from mgdm.samplers.mgdm import PRESETS
from mgdm.samplers.registry import sampler_names
from mgdm.tasks.registry import TASKS, make_task


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _subparser(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def test_debug_after_the_command_lets_the_exception_through(capsys) -> None:
    assert main(["restore", "--task", "sr4"]) == 2
    assert "nothing to restore" in capsys.readouterr().err
    with pytest.raises(ValueError, match="nothing to restore"):
        main(["restore", "--task", "sr4", "--debug"])
    with pytest.raises(ValueError, match="nothing to restore"):
        main(["--debug", "restore", "--task", "sr4"])


@pytest.mark.parametrize(
    ("argv", "threads"),
    [
        (["tasks", "--threads", "2"], 2),
        (["--threads", "2", "tasks"], 2),
        (["--threads", "3", "tasks", "--threads", "2"], 2),  # the later wins
        (["--threads", "2", "tasks", "--seed", "1"], 2),  # no default after it overrides
        (["tasks"], 1),
    ],
)
def test_threads_before_or_after_the_command(argv, threads, capsys) -> None:
    torch.set_num_threads(3)
    assert main(argv) == 0
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize(
    ("argv", "quiet"),
    [
        (["tasks"], False),
        (["--quiet", "tasks"], True),
        (["tasks", "--quiet"], True),
        (["--quiet", "train", "prior", "--out", "x"], True),
        (["train", "prior", "--out", "x", "--quiet"], True),
        (["bench", "gmm", "--quiet"], True),
    ],
)
def test_quiet_anywhere(argv, quiet) -> None:
    args = build_parser().parse_args(argv)
    assert args.quiet is quiet and show_progress(args) is not quiet


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"mgdm {mgdm.__version__}" == "mgdm 0.1.0"


def test_python_m_mgdm_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mgdm", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == f"mgdm {mgdm.__version__}"


@pytest.mark.parametrize(
    ("command", "names"),
    [
        (("restore",), [*TASKS, *sampler_names(), *PRESETS, *SHIPPED_PRIORS]),
        (("separate",), [*sampler_names(), *SHIPPED_AUDIO_PRIORS]),
        (("demo",), [*PRESETS, *SHIPPED_PRIORS]),
        (("bench", "gmm"), [*sampler_names(), *PRESETS]),
        (("bench", "images"), [*TASKS, *sampler_names(), *PRESETS, *SHIPPED_PRIORS]),
        (("bench", "audio"), sampler_names()),
        (("tasks", "figures"), TASKS),
    ],
)
def test_help_lists_the_registries(command, names) -> None:
    text = " ".join(_subparser(build_parser(), *command).format_help().split())
    missing = [name for name in names if name not in text]
    assert not missing, f"mgdm {' '.join(command)} --help lacks {missing}"


def test_every_top_level_command_has_its_own_module() -> None:
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    modules = {module.__name__ for module in COMMANDS}
    for name in subparsers.choices:
        module = importlib.import_module(f"mgdm.commands.{name.replace('-', '_')}")
        assert module.__name__ in modules
    assert len(modules) == len(subparsers.choices)


class _Prior:
    """The least a prior needs for :func:`mgdm.restore.restore_batch`."""

    data_shape = (1, 4, 4)

    def problem_in_sample_space(self, problem):
        return problem

    def samples_to_data(self, samples):
        return samples


class _Sampler:
    """Records torch's thread count while it samples; returns zeros."""

    name = "recorder"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape, self.threads = shape, []

    def sample(self, prior, problem, seeds, progress=False, device=None):
        self.threads.append(torch.get_num_threads())
        return SimpleNamespace(samples=torch.zeros(len(seeds), *self.shape), cost=None)


@pytest.mark.parametrize(("threads", "during"), [(1, 1), (2, 2), (None, 3)])
def test_restore_sets_threads_for_the_call_only(threads, during) -> None:
    torch.set_num_threads(3)
    sampler = _Sampler((1, 4, 4))
    task = make_task("denoising", (1, 4, 4))
    restore(torch.zeros(1, 4, 4), task, _Prior(), sampler, samples=2, threads=threads)
    assert sampler.threads == [during] and torch.get_num_threads() == 3


def test_separate_sets_threads_for_the_call_only(monkeypatch) -> None:
    from mgdm.audio import separate

    prior = SimpleNamespace(sample_shape=(2, 64), sample_rate=8000, stems=("a", "b"))
    monkeypatch.setattr(separate, "resolve_prior", lambda name, device: prior)
    torch.set_num_threads(3)
    sampler = _Sampler((2, 64))
    mix = 0.1 * torch.ones(100)
    separate_tensor(mix, 8000, "fake", sampler, threads=2)
    assert set(sampler.threads) == {2} and torch.get_num_threads() == 3
