"""`mgdm restore` on folders and globs (batches, resumable), --save-samples, the do-nothing
baseline, the far-from-the-prior warning, MGDM's options and --nfe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mgdm.cli import main
from mgdm.image_io import ConvertedImage, convert_image
from mgdm.priors.kernel_density import KernelDensityPrior
from mgdm.restore import (
    RESULT_FILE,
    do_nothing_baseline,
    input_warning,
    restore,
    restore_files,
    save_samples,
    simulate_observation,
)
from mgdm.samplers.mgdm import MGDM, preset
from mgdm.tasks.registry import make_task
from mgdm.train.prior import TrainConfig, build_unet, export_pipeline

SHAPE = (1, 32, 32)
GRID_FILES = {"grid.png", "observation.npy", "baseline.png", "baseline.npy", RESULT_FILE}


def _images(count: int, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, *shape, generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def kde_prior() -> KernelDensityPrior:
    return KernelDensityPrior(_images(6), 0.2)


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-prior")
    export_pipeline(build_unet(TrainConfig(channels=(8,))).eval(), out)
    return out


def _small_mgdm() -> MGDM:
    return MGDM(preset("fast", num_steps=6))


def _write_pngs(folder: Path, count: int, size: int = 32, mode: str = "L") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    paths = []
    for k in range(count):
        shape = (size, size) if mode == "L" else (size, size, 3)
        pixels = (rng.random(shape) * 255).astype(np.uint8)
        paths.append(folder / f"img{k}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def _outputs(samples: int) -> set[str]:
    names = [f"sample_{n:02d}" for n in range(samples)] + ["mean", "std"]
    return GRID_FILES | {f"{name}{suffix}" for name in names for suffix in (".png", ".npy")}


# --- the do-nothing baseline ---------------------------------------------------------------


def test_baseline_per_operator_family():
    x = _images(2, seed=1)
    sr = make_task("sr4", SHAPE).operator
    estimate, method = do_nothing_baseline(sr, sr(x))
    expected = F.interpolate(sr(x), scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(estimate, expected.clamp(-1, 1))
    assert method.startswith("bicubic")
    box = make_task("box_inpainting", SHAPE).operator
    filled, method = do_nothing_baseline(box, box(x))
    assert method == "zero filling of y" and filled.shape == x.shape
    torch.testing.assert_close(box(filled), box(x))  # the kept pixels as observed
    assert int((filled == 0).sum()) >= 2 * 18 * 18  # the box, 150/256 of each side, at 0
    for name in ("gaussian_blur", "jpeg", "denoising"):
        operator = make_task(name, SHAPE).operator
        y = operator(x)
        same, method = do_nothing_baseline(operator, y)
        assert method == "y itself"
        torch.testing.assert_close(same, y.clamp(-1, 1))
    hdr = make_task("hdr", SHAPE).operator
    halved, _ = do_nothing_baseline(hdr, hdr(x))
    unsaturated = x.abs() < 0.5
    torch.testing.assert_close(halved[unsaturated], x[unsaturated])
    saturated = make_task("nonlinear_blur", SHAPE).operator
    undone, _ = do_nothing_baseline(saturated, saturated(x))
    torch.testing.assert_close(undone, saturated.blur(x).clamp(-1, 1), rtol=0, atol=1e-4)
    grey = make_task("colorization", (3, 32, 32)).operator
    colour = _images(1, shape=(3, 32, 32))
    repeated, method = do_nothing_baseline(grey, grey(colour))
    assert method == "pseudo-inverse A^+ y"
    torch.testing.assert_close(repeated, colour.mean(1, keepdim=True).expand_as(colour))
    phase = make_task("phase_retrieval", SHAPE).operator
    assert do_nothing_baseline(phase, phase(x)) is None


def test_restore_reports_the_baseline_and_applies_the_budget(kde_prior):
    task = make_task("sr4", SHAPE)
    clean = _images(1, seed=2)[0]
    y = simulate_observation(task, clean, 0.05)
    sampler = MGDM(preset("default"))
    result = restore(y, task, kde_prior, sampler, samples=2, seed=1, clean=clean, nfe=30)
    assert abs(result.cost.nfe_forward + result.cost.nfe_backward - 30) <= 2  # K's nearest cost
    budgeted = restore(y, task, kde_prior, sampler.with_budget(30), samples=2, seed=1)
    torch.testing.assert_close(result.samples, budgeted.samples)
    estimate, method = do_nothing_baseline(task.operator, y[None])
    torch.testing.assert_close(result.baseline, estimate[0])
    assert result.baseline_method == method
    mse = float(((estimate[0] - clean) ** 2).mean())
    assert result.baseline_psnr == pytest.approx(10 * np.log10(4 / mse), rel=1e-5)
    assert 0 < result.baseline_ssim < 1
    assert budgeted.baseline_psnr is None and budgeted.baseline is not None  # no clean image
    with pytest.raises(ValueError, match="below MGDM.s minimum"):
        restore(y, task, kde_prior, sampler, samples=1, nfe=1)


# --- the warning ---------------------------------------------------------------------------


def test_warning_names_grey_conversion_large_resizes_and_shipped_priors(tmp_path):
    colour = np.zeros((128, 128, 3), dtype=np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "red.png")
    converted = convert_image(tmp_path / "red.png", SHAPE)
    assert converted.colour_to_grey and converted.resize_factor == 4.0
    line = input_warning(converted, tmp_path)
    assert line is not None and "\n" not in line
    assert "colour was reduced to grey" in line and "resized 4.0x" in line
    # a grey picture stored as RGB loses nothing in the conversion
    Image.fromarray(np.full((40, 40, 3), 90, dtype=np.uint8)).save(tmp_path / "grey.png")
    grey = convert_image(tmp_path / "grey.png", SHAPE)
    assert not grey.colour_to_grey and grey.resize_factor == pytest.approx(1.25)
    assert input_warning(grey, tmp_path) is None  # an own prior, a small resize: nothing
    (tmp_path / "MODEL_CARD.md").write_text("# Faces DDPM (256 x 256)\n\nText.\n")
    assert "the prior of" in input_warning(converted, tmp_path)
    assert "(Faces DDPM (256 x 256))" in input_warning(converted, tmp_path)
    shipped = input_warning(grey, "fashion-mnist")
    assert shipped is not None and "Fashion-MNIST" in shipped and "--prior DIR" in shipped
    small = ConvertedImage(torch.zeros(SHAPE), ("resized 8x8 to 32x32",), False, 4.0)
    assert "resized 4.0x" in input_warning(small, tmp_path)


# --- --save-samples ------------------------------------------------------------------------


def test_save_samples_writes_pngs_and_arrays(kde_prior, tmp_path):
    task = make_task("box_inpainting", SHAPE)
    clean = _images(1, seed=3)[0]
    result = restore(simulate_observation(task, clean, 0.05), task, kde_prior, _small_mgdm(), 3)
    written = save_samples(result, tmp_path / "samples")
    names = {p.name for p in written}
    assert names == _outputs(3) - GRID_FILES
    for n, sample in enumerate(result.samples):
        array = np.load(tmp_path / "samples" / f"sample_{n:02d}.npy")
        np.testing.assert_array_equal(array, sample.numpy())
        pixels = np.asarray(Image.open(tmp_path / "samples" / f"sample_{n:02d}.png"), np.float32)
        np.testing.assert_allclose(
            pixels / 127.5 - 1, sample[0].clamp(-1, 1).numpy(), atol=0.5 / 127.5 + 1e-6
        )
    std_pixels = np.asarray(Image.open(tmp_path / "samples" / "std.png"), np.float32)
    expected = np.clip(np.round(result.std[0].numpy() * 127.5), 0, 255)
    np.testing.assert_allclose(std_pixels, expected, atol=1)


def test_cli_single_image_saves_samples_and_prints_the_baseline(prior_dir, tmp_path, capsys):
    argv = ["restore", "--test-image", "0", "--task", "sr4", "--prior", str(prior_dir)]
    argv += ["--samples", "2", "-K", "5", "--out", str(tmp_path / "g.png")]
    try:
        assert main([*argv, "--save-samples", str(tmp_path / "s"), "--quiet"]) == 0
    except FileNotFoundError:
        pytest.skip("the Fashion-MNIST test images are not installed")
    printed = capsys.readouterr().out
    assert "do-nothing baseline (bicubic upsampling of y (x4)): PSNR" in printed
    assert {p.name for p in (tmp_path / "s").iterdir()} == _outputs(2) - GRID_FILES


# --- folders -------------------------------------------------------------------------------


def test_folder_is_restored_in_batches_and_resumed(kde_prior, tmp_path):
    inputs = _write_pngs(tmp_path / "in", 3)
    out = tmp_path / "out"
    done = restore_files(
        inputs, out, "sr4", kde_prior, _small_mgdm(), samples=2, seed=4, batch_size=2
    )
    assert [p.name for p in done.restored] == ["img0", "img1", "img2"] and not done.skipped
    for folder in done.restored:
        assert {p.name for p in folder.iterdir()} == _outputs(2)
        record = json.loads((folder / RESULT_FILE).read_text())
        assert record["settings"]["task"] == "sr4" and len(record["psnr"]) == 2
        assert record["baseline"]["method"].startswith("bicubic")
    assert sorted(p.name for p in out.iterdir()) == ["img0", "img1", "img2"]  # no temporaries
    # one at a time: the same draws (seeds from the file name, not the batch)
    alone = restore_files(
        inputs[1:2], tmp_path / "alone", "sr4", kde_prior, _small_mgdm(), 2, 4, batch_size=1
    )
    np.testing.assert_allclose(
        np.load(alone.restored[0] / "sample_01.npy"),
        np.load(out / "img1" / "sample_01.npy"),
        atol=1e-4,
    )
    # a rerun skips the finished images and writes the new one only
    stamp = (out / "img0" / RESULT_FILE).stat().st_mtime_ns
    inputs += _write_pngs(tmp_path / "more", 4)[3:]
    again = restore_files(inputs, out, "sr4", kde_prior, _small_mgdm(), 2, 4, batch_size=2)
    assert [p.name for p in again.skipped] == ["img0.png", "img1.png", "img2.png"]
    assert [p.name for p in again.restored] == ["img3"]
    assert (out / "img0" / RESULT_FILE).stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="restored with another samples"):
        restore_files(inputs, out, "sr4", kde_prior, _small_mgdm(), 3, 4)
    (out / "img9").mkdir()
    (tmp_path / "in" / "img9.png").write_bytes((tmp_path / "in" / "img0.png").read_bytes())
    with pytest.raises(ValueError, match="not a finished restoration"):
        restore_files([tmp_path / "in" / "img9.png"], out, "sr4", kde_prior, _small_mgdm(), 2, 4)


def test_failed_image_leaves_no_folder(kde_prior, tmp_path, monkeypatch):
    import mgdm.restore as api

    inputs = _write_pngs(tmp_path / "in", 1)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(api, "save_samples", broken)
    with pytest.raises(OSError, match="disk full"):
        restore_files(inputs, tmp_path / "out", "sr4", kde_prior, _small_mgdm(), 1)
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_folder_glob_and_refusals(prior_dir, tmp_path, capsys):
    _write_pngs(tmp_path / "in", 2, size=128, mode="RGB")
    out = tmp_path / "out"
    base = ["restore", "--task", "box_inpainting", "--prior", str(prior_dir), "--samples", "1"]
    base += ["--preset", "fast", "--quiet"]
    assert main([*base, str(tmp_path / "in" / "*.png"), "--out-dir", str(out), "-K", "5"]) == 0
    printed = capsys.readouterr().out
    assert "restored 2 images" in printed and "do-nothing baseline (zero filling" in printed
    warnings = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "2 of 2 images" in warnings[0] and "grey" in warnings[0]
    assert sorted(p.name for p in out.iterdir()) == ["img0", "img1"]
    assert main([*base, str(tmp_path / "in"), "--out-dir", str(out), "-K", "5"]) == 0
    assert "restored 0 images" in capsys.readouterr().out
    inner = tmp_path / "in" / "restored"  # a glob reaching into the outputs leaves them out
    assert main([*base, str(tmp_path / "in" / "**" / "*.png"), "--out-dir", str(inner)]) == 0
    assert main([*base, str(tmp_path / "in" / "**" / "*.png"), "--out-dir", str(inner)]) == 0
    assert "left out 10 files inside" in capsys.readouterr().out  # 5 PNGs per image
    refusals = {
        "names a folder or a pattern": [str(tmp_path / "in")],
        "restore one image": [str(tmp_path / "in"), "--out-dir", str(out), "--out", "g.png"],
        "matches no file": [str(tmp_path / "in" / "*.tif"), "--out-dir", str(out)],
        "holds no image": [str(tmp_path / "out"), "--out-dir", str(tmp_path / "o2")],
        "apply to --sampler mgdm only": [
            str(tmp_path / "in"),
            "--out-dir",
            str(tmp_path / "o3"),
            "--sampler",
            "dps",
            "-R",
            "2",
        ],
    }
    for message, extra in refusals.items():
        assert main([*base, *extra]) == 2, message
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    (tmp_path / "in" / "img0.jpg").write_bytes(b"")
    assert main([*base, str(tmp_path / "in"), "--out-dir", str(tmp_path / "o4")]) == 2
    assert "would both be restored to" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
    assert not (tmp_path / "o4").exists()


def test_mgdm_options_reach_the_sampler(prior_dir, tmp_path):
    _write_pngs(tmp_path / "in", 1)
    argv = ["restore", str(tmp_path / "in"), "--out-dir", str(tmp_path / "out"), "--task", "sr4"]
    argv += ["--prior", str(prior_dir), "--samples", "1", "--quiet", "--preset", "fast"]
    argv += ["-K", "6", "-G", "2", "--lr", "0.5", "--index-rule", "midpoint"]
    argv += ["--last-step-correction", "yes"]
    assert main(argv) == 0
    record = json.loads((tmp_path / "out" / "img0" / RESULT_FILE).read_text())
    config = record["settings"]["sampler_config"]
    assert "num_steps=6" in config and "index_rule='midpoint'" in config
    assert "last_step_correction=True" in config
    assert "StepSchedule(default=2.0, rules=())" in config
    assert "StepSchedule(default=0.5, rules=())" in config
    assert record["cost"]["nfe_backward"] == 2 * 3  # K - 3 outer steps, G = 2


def test_observation_noise_of_a_folder_image_is_seeded_by_its_name(kde_prior, tmp_path):
    """A folder image's observation is ``simulate_observation`` with the seed of its name."""
    from mgdm.random import derive_seed
    from mgdm.restore import image_key

    inputs = _write_pngs(tmp_path / "in", 1)
    done = restore_files(inputs, tmp_path / "out", "sr4", kde_prior, _small_mgdm(), 1, seed=9)
    task = make_task("sr4", SHAPE)
    clean = convert_image(inputs[0], SHAPE).image
    expected = simulate_observation(task, clean, 0.05, derive_seed(9, image_key(inputs[0])))
    np.testing.assert_allclose(np.load(done.restored[0] / "observation.npy"), expected.numpy())
