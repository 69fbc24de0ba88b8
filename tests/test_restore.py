"""`mgdm restore` and its API: simulated and file observations, image conversion, the grid, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgdm.cli import main
from mgdm.image_io import read_image, read_observation, save_observation
from mgdm.priors.catalog import load_prior
from mgdm.priors.kernel_density import KernelDensityPrior
from mgdm.restore import restore, restore_batch, simulate_observation, write_grid
from mgdm.samplers.mgdm import MGDM, preset
from mgdm.tasks.registry import make_task
from mgdm.train.prior import TrainConfig, build_unet, export_pipeline

SHAPE = (1, 32, 32)


def _images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, *SHAPE, generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def kde_prior() -> KernelDensityPrior:
    return KernelDensityPrior(_images(6), 0.2)


@pytest.fixture(scope="module")
def tiny_prior_dir(tmp_path_factory) -> Path:
    """A randomly initialised 1-level UNet saved as a diffusers pipeline folder."""
    out = tmp_path_factory.mktemp("tiny-prior")
    export_pipeline(build_unet(TrainConfig(channels=(8,))).eval(), out)
    return out


def _small_mgdm() -> MGDM:
    return MGDM(preset("fast", num_steps=6))


def test_simulated_observation_is_seeded_and_shaped():
    task = make_task("sr4", SHAPE)
    clean = _images(1)[0]
    y0 = simulate_observation(task, clean, 0.05, seed=3)
    assert y0.shape == (1, 8, 8)
    assert torch.equal(y0, simulate_observation(task, clean, 0.05, seed=3))
    assert not torch.equal(y0, simulate_observation(task, clean, 0.05, seed=4))
    residual = y0 - task.operator(clean[None])[0]
    assert 0.02 < float(residual.std()) < 0.08
    with pytest.raises(ValueError, match="shape"):
        simulate_observation(task, torch.zeros(1, 16, 16), 0.05)


def test_restore_returns_summaries_and_scores(kde_prior):
    task = make_task("box_inpainting", SHAPE)
    clean = _images(1, seed=1)[0]
    y = simulate_observation(task, clean, 0.05, seed=0)
    result = restore(y, task, kde_prior, _small_mgdm(), samples=3, seed=5, clean=clean)
    assert result.samples.shape == (3, *SHAPE)
    torch.testing.assert_close(result.mean, result.samples.mean(0))
    torch.testing.assert_close(result.std, result.samples.std(0))
    assert result.psnr is not None and result.psnr.shape == (3,)
    mse = ((result.samples[0] - clean) ** 2).mean()
    assert float(result.psnr[0]) == pytest.approx(float(10 * torch.log10(4 / mse)), rel=1e-5)
    assert result.cost.nfe_forward > 0 and result.cost.nfe_backward > 0


def test_batch_restoration_equals_single_restorations(kde_prior):
    task = make_task("sr4", SHAPE)
    cleans = _images(2, seed=2)
    ys = torch.stack([simulate_observation(task, c, 0.05, seed=k) for k, c in enumerate(cleans)])
    batch = restore_batch(ys, task, kde_prior, _small_mgdm(), samples=2, seed=7)
    alone = restore(ys[0], task, kde_prior, _small_mgdm(), samples=2, seed=7)
    torch.testing.assert_close(batch[0].samples, alone.samples)
    assert not torch.equal(batch[0].samples, batch[1].samples)


def test_restore_rejects_bad_input(kde_prior):
    task = make_task("sr4", SHAPE)
    y = torch.zeros(1, 8, 8)
    with pytest.raises(ValueError, match="samples"):
        restore(y, task, kde_prior, _small_mgdm(), samples=0)
    with pytest.raises(ValueError, match="sigma_y"):
        restore(y, task, kde_prior, _small_mgdm(), sigma_y=0.0)
    with pytest.raises(ValueError, match="shape"):
        restore(y, make_task("sr4", (1, 16, 16)), kde_prior, _small_mgdm())


def test_read_image_converts_colour_size_and_aspect(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    path = tmp_path / "red.png"
    Image.fromarray(pixels).save(path)
    image, notes = read_image(path, SHAPE)
    assert image.shape == SHAPE
    assert any("grey" in n for n in notes)
    assert any("cropped" in n for n in notes)
    assert any("resized" in n for n in notes)
    luma = 0.299 * 255  # Pillow's L conversion of pure red
    assert float(image.mean()) == pytest.approx(luma / 127.5 - 1, abs=0.01)
    same, quiet = read_image(path, (3, 20, 40))
    assert quiet == []
    assert float(same[0].mean()) == pytest.approx(1.0)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(tmp_path / "bad.png", SHAPE)


def test_observation_files_round_trip_and_check_shapes(tmp_path):
    task = make_task("sr4", SHAPE)
    y = torch.rand(1, 8, 8)
    path = save_observation(tmp_path / "y.npy", y)
    torch.testing.assert_close(read_observation(path, task), y)
    np.save(tmp_path / "wrong.npy", np.zeros((1, 9, 9), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[1, 8, 8\]"):
        read_observation(tmp_path / "wrong.npy", task)
    inpainting = make_task("box_inpainting", SHAPE)
    clean = _images(1, seed=3)[0]
    Image.fromarray(((clean[0] + 1) * 127.5).round().byte().numpy()).save(tmp_path / "masked.png")
    y_masked = read_observation(tmp_path / "masked.png", inpainting)
    torch.testing.assert_close(
        y_masked, inpainting.operator(clean[None])[0], atol=1 / 127.5, rtol=0
    )
    with pytest.raises(ValueError, match="must be 48x48"):
        read_observation(tmp_path / "masked.png", make_task("phase_retrieval", SHAPE))


def test_grid_is_written_atomically(kde_prior, tmp_path):
    task = make_task("sr4", SHAPE)
    clean = _images(1)[0]
    result = restore(
        simulate_observation(task, clean, 0.05), task, kde_prior, _small_mgdm(), 2, clean=clean
    )
    path = write_grid([result, result], tmp_path / "grid.png")
    assert Image.open(path).size[0] > 200
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_cli_restore_smoke(tiny_prior_dir, tmp_path, capsys):
    pixels = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    out = tmp_path / "grid.png"
    argv = ["restore", str(tmp_path / "photo.png"), "--task", "sr4", "--prior", str(tiny_prior_dir)]
    argv += [
        "--samples",
        "2",
        "--nfe",
        "30",
        "--out",
        str(out),
        "--save-observation",
        str(tmp_path / "y.npy"),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "note: converted RGB colour to grey" in printed and "PSNR" in printed
    assert out.is_file() and (tmp_path / "y.npy").is_file()
    argv = ["restore", "--observation", str(tmp_path / "y.npy"), "--task", "sr4"]
    argv += ["--prior", str(tiny_prior_dir), "--samples", "1", "--nfe", "30", "--out", str(out)]
    assert main(argv) == 0
    assert "PSNR" not in capsys.readouterr().out


def test_cli_restore_errors(tiny_prior_dir, capsys):
    assert main(["restore", "--task", "sr4", "--prior", str(tiny_prior_dir)]) == 2
    assert "nothing to restore" in capsys.readouterr().err
    assert main(["restore", "x.png", "--task", "nope", "--prior", str(tiny_prior_dir)]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["restore", "x.png", "--task", "sr4", "--prior", "no-such-prior"]) == 2
    assert "unknown prior" in capsys.readouterr().err


def test_load_prior_names_and_errors(tiny_prior_dir, tmp_path):
    prior = load_prior(tiny_prior_dir)
    assert tuple(prior.sample_shape) == SHAPE
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="adm-ffhq256:"):
        load_prior(tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="fashion-mnist"):
        load_prior("imagenet")


@pytest.mark.parametrize(
    ("name", "sample_shape"), [("fashion-mnist", SHAPE), ("fashion-mnist-latent", (4, 8, 8))]
)
def test_shipped_priors_load(name, sample_shape):
    from mgdm.restore import prior_image_shape

    prior = load_prior(name)
    assert tuple(prior.sample_shape) == sample_shape
    assert prior_image_shape(prior) == SHAPE
    x = torch.zeros(2, *sample_shape)
    assert prior.denoise(x, torch.tensor([500, 500])).shape == x.shape
