"""The task registry and the ``mgdm tasks`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mgdm.cli import main
from mgdm.operators import Inpainting
from mgdm.samplers.settings import TASK_NAMES
from mgdm.tasks import TASKS, make_task, scaled_kernel_size
from mgdm.tasks.figures import synthetic_image

PAPER_TASKS = list(TASK_NAMES)  # the keys of every sampler's per-task presets

OBSERVATION_SHAPES = {
    (1, 32, 32): {
        "sr4": (1, 8, 8),
        "sr16": (1, 2, 2),
        "box_inpainting": (1024 - 19 * 19,),
        "half_mask": (512,),
        "gaussian_blur": (1, 32, 32),
        "motion_blur": (1, 32, 32),
        "jpeg": (1, 32, 32),
        "phase_retrieval": (1, 48, 48),
        "nonlinear_blur": (1, 32, 32),
        "hdr": (1, 32, 32),
        "denoising": (1, 32, 32),
    },
    (3, 64, 64): {
        "sr4": (3, 16, 16),
        "sr16": (3, 4, 4),
        "box_inpainting": (3 * (64 * 64 - 38 * 38),),
        "half_mask": (3 * 64 * 32,),
        "gaussian_blur": (3, 64, 64),
        "motion_blur": (3, 64, 64),
        "jpeg": (3, 64, 64),
        "phase_retrieval": (3, 96, 96),
        "nonlinear_blur": (3, 64, 64),
        "hdr": (3, 64, 64),
        "denoising": (3, 64, 64),
        "colorization": (1, 64, 64),
    },
}


def test_registry_names_and_order() -> None:
    assert list(TASKS)[:10] == PAPER_TASKS
    assert list(TASKS)[10:] == ["denoising", "colorization"]


def test_unknown_task_lists_the_names() -> None:
    with pytest.raises(ValueError, match="known tasks: sr4, sr16, box_inpainting"):
        make_task("deblur", (1, 32, 32))


@pytest.mark.parametrize("shape", list(OBSERVATION_SHAPES))
def test_observation_shapes(shape: tuple[int, int, int]) -> None:
    for name, expected in OBSERVATION_SHAPES[shape].items():
        task = make_task(name, shape)
        assert task.observation_shape == expected, name
        assert task.operator(torch.zeros(1, *shape)).shape == (1, *expected), name
    flags = {
        name: (make_task(name, (3, 64, 64)).is_linear, make_task(name, (3, 64, 64)).has_svd)
        for name in TASKS
    }
    assert flags["sr4"] == flags["box_inpainting"] == flags["colorization"] == (True, True)
    assert flags["gaussian_blur"] == flags["motion_blur"] == (True, False)
    assert (
        flags["jpeg"]
        == flags["phase_retrieval"]
        == flags["nonlinear_blur"]
        == flags["hdr"]
        == (False, False)
    )


def test_scaling_rules_at_256_are_the_references() -> None:
    assert [scaled_kernel_size(n) for n in (32, 64, 256)] == [9, 17, 61]
    box = make_task("box_inpainting", (3, 256, 256)).operator
    assert isinstance(box, Inpainting) and box.output_shape == (129108,)
    assert not bool(box.mask[:, 50:200, 50:200].any()) and bool(box.mask[:, 49, :].all())
    assert bool(box.mask[:, 200, :].all())
    blur = make_task("gaussian_blur", (1, 256, 256)).operator
    assert blur.kernel.shape == (61, 61) and blur.sigma == 3.0
    small = make_task("box_inpainting", (1, 32, 32)).operator
    assert not bool(small.mask[0, 6:25, 6:25].any()) and int((~small.mask).sum()) == 19 * 19


def test_seed_draws_the_motion_kernel() -> None:
    zero, one = make_task("motion_blur", (1, 32, 32), 0), make_task("motion_blur", (1, 32, 32), 1)
    assert not torch.equal(zero.operator.kernel, one.operator.kernel)
    surrogate = make_task("nonlinear_blur", (1, 32, 32), 0).operator
    assert torch.equal(surrogate.blur.kernel, zero.operator.kernel)


def test_synthetic_image_range_and_shapes() -> None:
    for shape in [(1, 16, 16), (3, 20, 12)]:
        image = synthetic_image(shape)
        assert image.shape == shape and float(image.min()) >= -1 and float(image.max()) <= 1
        assert float(image.std()) > 0.2  # edges and texture, not a flat field
    with pytest.raises(ValueError, match="1 or 3 channels"):
        synthetic_image((2, 8, 8))


def test_cli_lists_the_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    body = {line.split()[0]: line for line in lines[2:]}
    assert list(body) == list(TASKS)
    assert body["sr4"].split()[1:4] == ["1x8x8", "yes", "yes"]
    assert body["phase_retrieval"].split()[1:4] == ["1x48x48", "no", "no"]
    assert "unavailable" in body["colorization"]
    assert main(["tasks", "--image-shape", "3,64,64"]) == 0
    assert "3x96x96" in capsys.readouterr().out


def test_cli_rejects_bad_shapes_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as error:
        main(["tasks", "--image-shape", "1,32"])
    assert error.value.code == 2
    assert main(["tasks", "figures", "--tasks", "sr4,nope", "--out", "unused"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


def test_cli_draws_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def figures(out: Path, tasks: str) -> int:
        shape = ["--image-shape", "1,16,16"]
        return main(["tasks", "figures", "--out", str(out), *shape, "--tasks", tasks])

    out = tmp_path / "img"
    assert figures(out, "sr4,motion_blur,hdr") == 0
    assert sorted(p.name for p in out.iterdir()) == ["hdr.png", "motion_blur.png", "sr4.png"]
    # a named task that cannot be built for the shape is refused before anything is drawn ...
    assert figures(tmp_path / "refused", "sr4,colorization") == 2
    assert "colorization needs 3 (RGB) channels" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    # ... and skipped by "all"
    assert figures(tmp_path / "all", "all") == 0
    assert "skipped colorization" in capsys.readouterr().out
    assert (tmp_path / "all" / "sr4.png").exists()
    assert not (tmp_path / "all" / "colorization.png").exists()
