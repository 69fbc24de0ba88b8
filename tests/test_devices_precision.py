"""``--device auto`` and ``--precision``: the device chosen, the option's parsing, the precision
context of the ``mgdm`` command, autocast around the network calls only (the sampler's state stays
float32), refusals in one line, and the ImageNet-256 preset running float32."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from mgdm import devices
from mgdm.cli import run_command
from mgdm.commands.arguments import add_device_option
from mgdm.operators.identity import Identity
from mgdm.operators.noise import GaussianNoise
from mgdm.priors import EpsilonNetworkPrior
from mgdm.priors.adm import FFHQ_256, IMAGENET_256_UNCOND
from mgdm.problem import Problem
from mgdm.samplers.dps import DPS, DPSConfig

CUDA = torch.cuda.is_available()


def test_auto_is_cuda_where_present_else_cpu(monkeypatch) -> None:
    expected = "cuda" if CUDA else "cpu"
    assert devices.resolve_device("auto") == torch.device(expected)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.resolve_device(" AUTO ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")  # never mps


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="mgdm test")
    add_device_option(result)
    return result


def test_device_option_defaults_to_auto_and_fp32() -> None:
    args = parser().parse_args([])
    assert args.device == devices.resolve_device("auto")
    assert args.precision == "fp32"
    args = parser().parse_args(["--device", "cpu", "--precision", "bf16"])
    assert (args.device, args.precision) == (torch.device("cpu"), "bf16")


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every (sub-)command parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from parsers(child)


def test_every_command_with_a_device_defaults_to_auto_and_fp32() -> None:
    from mgdm.cli import build_parser

    with_device = []
    for command in parsers(build_parser()):
        options = {o: a for a in command._actions for o in a.option_strings}
        if "--device" in options:
            with_device.append(command.prog)
            assert options["--device"].default == "auto", command.prog
            assert options["--precision"].default == "fp32", command.prog
    for name in ("mgdm restore", "mgdm separate", "mgdm bench cost", "mgdm bench images"):
        assert name in with_device
    # The commands without one run no diffusion network: tables read from databases, data and
    # checkpoint conversion, task figures; the classifier (0.55M parameters) trains on the CPU.
    without = {
        command.prog
        for command in parsers(build_parser())
        if not any(isinstance(a, argparse._SubParsersAction) for a in command._actions)
    } - set(with_device)
    assert without == {
        "mgdm audio-data",
        "mgdm bench gmm-table",
        "mgdm bench ladder-table",
        "mgdm bench nfe-curve-table",
        "mgdm bench audio-table",
        "mgdm convert-checkpoint",
        "mgdm report",
        "mgdm tasks figures",
        "mgdm tasks jpeg-vs-pillow",
        "mgdm train classifier",
    }


@pytest.mark.parametrize("argv", [["--precision", "fp8"], ["--device", "tpu"]])
def test_device_option_refuses_at_parse_time(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_precision_context_and_the_command_layer() -> None:
    assert devices.current_precision() == "fp32"
    with devices.use_precision("bf16"):
        assert devices.current_precision() == "bf16"
        with devices.use_precision(None):
            assert devices.current_precision() == "bf16"
    assert devices.current_precision() == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'half'; accepted: fp32, bf16, fp16"):
        devices.check_precision("half")
    seen = []
    args = argparse.Namespace(
        command_prog="mgdm test",
        precision="fp16",
        func=lambda _: seen.append(devices.current_precision()),
    )
    assert run_command(args) == 0 and seen == ["fp16"]
    assert devices.current_precision() == "fp32"


def test_autocast_dtypes_and_refusals(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert devices.autocast_dtype("fp32", cpu) is None
    assert devices.autocast_dtype("bf16", cpu) == torch.bfloat16
    assert devices.autocast_dtype("fp16", cpu) == torch.float16
    with pytest.raises(ValueError, match="precision bf16 is not supported on mps; accepted"):
        devices.autocast_dtype("bf16", torch.device("mps"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="bf16 needs a GPU with bfloat16 support"):
        devices.autocast_dtype("bf16", torch.device("cuda"))
    assert devices.autocast_dtype("fp16", torch.device("cuda")) == torch.float16


class Recording(nn.Module):
    """A linear epsilon network that records the dtype of its matmul's output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 4)
        self.dtypes: list[torch.dtype] = []

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        hidden = self.linear(x)
        self.dtypes.append(hidden.dtype)
        return 0.1 * hidden + 1e-5 * t.float().view(-1, 1)


def tiny_case(device: torch.device) -> tuple[EpsilonNetworkPrior, Problem, Recording]:
    network = Recording().to(device)
    prior = EpsilonNetworkPrior(network, (4,))
    prior.data_range = None  # compare samples unclamped
    y = torch.linspace(-0.5, 0.5, 4, device=device)
    return prior, Problem(Identity((4,)), y, GaussianNoise(0.1)), network


def test_autocast_around_the_network_calls_only() -> None:
    prior, problem, network = tiny_case(torch.device("cpu"))
    sampler = DPS(DPSConfig(num_steps=6, gamma=0.5))
    reference = sampler.sample(prior, problem, [0, 1]).samples
    assert set(network.dtypes) == {torch.float32}
    network.dtypes.clear()
    with devices.use_precision("bf16"):  # the context reaches Sampler.sample
        low = sampler.sample(prior, problem, [0, 1]).samples
    assert set(network.dtypes) == {torch.bfloat16}
    assert low.dtype == torch.float32 and bool(torch.isfinite(low).all())
    assert not torch.equal(low, reference)
    # bf16 keeps 8 bits of mantissa: a relative error of a few 1e-3 per call (measured 1.5e-3)
    torch.testing.assert_close(low, reference, rtol=0.02, atol=0.05)
    network.dtypes.clear()
    explicit = sampler.sample(prior, problem, [0, 1], precision="fp16").samples
    assert set(network.dtypes) == {torch.float16} and explicit.dtype == torch.float32
    with pytest.raises(ValueError, match="unknown precision 'fp64'"):
        sampler.sample(prior, problem, [0], precision="fp64")


def test_imagenet_preset_runs_float32() -> None:
    assert not IMAGENET_256_UNCOND.use_fp16 and not FFHQ_256.use_fp16


@pytest.mark.device
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (scripts/gpu_check.sh runs it)")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_precisions_on_cuda(precision) -> None:
    cuda = torch.device("cuda")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    prior, problem, network = tiny_case(cuda)
    sampler = DPS(DPSConfig(num_steps=6, gamma=0.5))
    result = sampler.sample(prior, problem, [0, 1], precision=precision).samples
    assert result.device.type == "cuda" and result.dtype == torch.float32
    expected = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    assert set(network.dtypes) == {expected[precision]}
    cpu_prior, cpu_problem, _ = tiny_case(torch.device("cpu"))
    on_cpu = sampler.sample(cpu_prior, cpu_problem, [0, 1]).samples
    torch.testing.assert_close(result.cpu(), on_cpu, rtol=0.02, atol=0.05)


def test_device_copies_are_made_once_and_match_to() -> None:
    """A constant table is copied to a (device, dtype) once, with the values of ``tensor.to``."""
    table = torch.linspace(0, 1, 7, dtype=torch.float64)
    copies = devices.DeviceCopies(table)
    cpu = torch.device("cpu")
    assert copies.on(cpu) is table  # its own device and dtype: no copy at all
    x = torch.zeros(3, dtype=torch.float32)
    first = copies.like(x)
    assert first is copies.like(x) and first is copies.on(cpu, torch.float32)
    assert first.dtype == torch.float32 and torch.equal(first, table.to(x))
