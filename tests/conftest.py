"""Shared fixtures: small exact-posterior problems built from the library itself."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def gmm_2d():
    """A 2-D Gaussian mixture with three components and mixed covariances (diagonal)."""
    from mgdm.diffusion import gmm_benchmark
    from mgdm.priors import GaussianMixture

    means = torch.tensor([[-4.0, 0.0], [3.0, 3.0], [2.0, -4.0]])
    weights = torch.tensor([0.5, 0.3, 0.2])
    covariances = torch.tensor([[1.0, 0.5], [0.3, 2.0], [1.0, 1.0]])
    return GaussianMixture(means, weights, covariances, gmm_benchmark())


def files_below(folder) -> set:
    """Every path below ``folder`` (files and folders), relative to it."""
    from pathlib import Path

    return {path.relative_to(folder) for path in Path(folder).rglob("*")}


@pytest.fixture
def refused(capsys):
    """``refused(argv, folder)``: run ``mgdm argv`` in-process and assert the refusal contract:
    exit status 2, exactly one line on stderr (``mgdm …: error: …``), no traceback, and nothing
    new below ``folder``. Returns the line."""
    from mgdm.cli import main

    def check(argv: list[str], folder) -> str:
        before = files_below(folder)
        capsys.readouterr()
        try:
            status = main(argv)
        except SystemExit as stop:  # argparse refuses at parse time
            status = stop.code
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert status == 2, f"{argv}: exit status {status}, stderr {err!r}"
        assert len(lines) == 1 and "Traceback" not in err, f"{argv}: stderr {err!r}"
        assert lines[0].startswith("mgdm") and "error:" in lines[0], lines[0]
        assert files_below(folder) == before, f"{argv} left {files_below(folder) - before}"
        return lines[0]

    return check
