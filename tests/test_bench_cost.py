"""``mgdm bench cost`` on a tiny network and short "full" runs: counts of the full runs, the
timed runs' truncation, the extrapolation formula, the JSON report, the refusals."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from torch import Tensor, nn

from mgdm.bench import cost as cost_module
from mgdm.bench.cost import StandIn, format_table, measure_cost, truncated
from mgdm.cli import main
from mgdm.priors import EpsilonNetworkPrior
from mgdm.samplers import MGDM, preset
from mgdm.samplers.daps import DAPS
from mgdm.samplers.dps import DPS, DPSConfig

SHAPE = (3, 16, 16)


class TinyEpsilon(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return 0.5 * torch.tanh(self.conv(x))


def small_samplers() -> dict:
    return {
        "mgdm-reference": MGDM(preset("reference", num_steps=7)),
        "mgdm-default": MGDM(preset("default", num_steps=7)),
        "dps": DPS(DPSConfig(num_steps=8, gamma=1.0)),
    }


@pytest.fixture(scope="module")
def report():
    prior = EpsilonNetworkPrior(TinyEpsilon(), SHAPE)
    return measure_cost(
        batches=(1, 2),
        steps=2,
        gradient_steps=1,
        chain_points=2,
        prior=prior,
        samplers=small_samplers(),
        device="cpu",
    )


def test_rows_counts_and_extrapolation(report) -> None:
    rows = {(row.method, row.batch): row for row in report.rows}
    assert list(rows) == [(m, b) for m in small_samplers() for b in (1, 2)]
    dps = rows["dps", 2]
    assert dps.full_calls == DPSConfig(num_steps=8).network_calls() == (1, 6)
    assert (dps.timed_steps, dps.full_steps, dps.timed_calls) == (2, 6, (1.0, 2.0))
    reference = small_samplers()["mgdm-reference"].config
    assert rows["mgdm-reference", 1].full_calls[1] == reference.expected_vjp()
    timed = rows["mgdm-default", 1]
    assert (timed.timed_steps, timed.full_steps) == (2, 4)
    assert timed.timed_calls[1] == 2  # one Adam step per timed outer step
    for row in report.rows:
        assert row.forward_seconds > 0 and row.gradient_seconds >= 0 and row.sampler_seconds > 0
        expected = (
            row.sampler_seconds
            + row.full_calls[0] * row.forward_seconds
            + row.full_calls[1] * row.gradient_seconds
        )
        assert row.seconds_per_sample == pytest.approx(expected, rel=1e-12)
        assert row.peak_memory > 0 and row.peak_memory_per_sample == row.peak_memory / row.batch
    assert (report.device, report.precision, report.network) == (
        "cpu",
        "fp32",
        "EpsilonNetworkPrior",
    )
    table = format_table(report)
    assert table.count("\n| mgdm-") == 4 and "| dps | 2 | 2 of 6 |" in table
    json.dumps(report.to_json())


def test_a_smaller_stand_in_run() -> None:
    prior = EpsilonNetworkPrior(TinyEpsilon(), SHAPE)
    small = {"dps": DPS(DPSConfig(num_steps=5, gamma=1.0))}
    report = measure_cost(
        batches=(1,), steps=1, prior=prior, samplers=small, stand_in_size=8, device="cpu"
    )
    (row,) = report.rows
    assert row.full_calls == (1, 3) and row.sampler_seconds > 0
    assert (report.stand_in_size, report.clock) == (8, "cpu")
    assert "stand-in run at 8 px" in format_table(report)


def test_truncation_and_the_stand_in() -> None:
    reference = MGDM(preset("reference"))
    short = truncated(reference, 2, 3, 4)
    assert short.config.num_steps == 5 and short.config.denoising_steps == 4
    assert short.config.gradient_steps(0, 5) == 3
    assert truncated(DPS(), 1000, None, None).config.num_steps == 1000  # never longer
    with pytest.raises(TypeError, match="times MGDM and DPS; got DAPS"):
        truncated(DAPS(), 2, None, None)
    prior = EpsilonNetworkPrior(TinyEpsilon(), SHAPE)
    x = torch.randn(2, *SHAPE)
    assert torch.equal(StandIn(prior).denoise(x, torch.zeros(2, dtype=torch.int64)), 0.5 * x)


def test_command_writes_the_table_and_json(tmp_path, monkeypatch, capsys) -> None:
    prior = EpsilonNetworkPrior(TinyEpsilon(), SHAPE)
    small = {"dps": DPS(DPSConfig(num_steps=5, gamma=1.0))}
    monkeypatch.setattr(
        "mgdm.commands.bench_cost.measure_cost",
        functools.partial(cost_module.measure_cost, prior=prior, samplers=small),
    )
    out = tmp_path / "cost.json"
    argv = ["bench", "cost", "--batch", "1", "--steps", "1", "--device", "cpu"]
    assert main([*argv, "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| dps | 1 | 1 of 3 |" in printed and f"wrote {out}" in printed
    stored = json.loads(out.read_text())
    assert stored["rows"][0]["full_calls"] == [1.0, 3.0] and stored["device"] == "cpu"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--methods", "dps,ddnm"], "unknown method 'ddnm'; accepted: all, mgdm-reference"),
        (["--batch", "0"], "expected a whole number >= 1"),
        (["--json", "out.txt"], "--json must name a .json file"),
        (["--precision", "fp8"], "invalid choice: 'fp8'"),
    ],
)
def test_refusals(argv, message, refused, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = refused(["bench", "cost", "--device", "cpu", *argv], tmp_path)
    assert message in line
