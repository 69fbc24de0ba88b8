"""`mgdm restore` refuses bad input with one line and exit status 2, and writes nothing.

The cases are those a tester found ending in a traceback, a multi-line message or a wrong
success; each is a regression test here.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mgdm.image_io import MAX_IMAGE_PIXELS, read_image
from mgdm.priors.kernel_density import KernelDensityPrior
from mgdm.restore import restore, simulate_observation
from mgdm.samplers.mgdm import MGDM, preset
from mgdm.tasks.registry import make_task
from mgdm.train.prior import TrainConfig, build_unet, export_pipeline

SHAPE = (1, 32, 32)


class Payload:
    """Any class: ``torch.save`` pickles an instance, ``weights_only=True`` refuses it."""


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` grey pixels (and holds no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-prior")
    export_pipeline(build_unet(TrainConfig(channels=(8,))).eval(), out)
    return out


@pytest.fixture
def inputs(tmp_path) -> Path:
    """A folder of bad inputs (the refusals must add nothing to it)."""
    from PIL import Image

    Image.new("L", (32, 32), 128).save(tmp_path / "clean.png")
    (tmp_path / "bomb.png").write_bytes(_png_header(30000, 30000))
    (tmp_path / "large.png").write_bytes(_png_header(9000, 9000))
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "arrays.npz", y=np.zeros((1, 8, 8)))
    np.save(tmp_path / "complex.npy", np.zeros((1, 8, 8), dtype=np.complex64))
    np.save(tmp_path / "bool.npy", np.zeros((1, 8, 8), dtype=bool))
    np.save(tmp_path / "huge.npy", np.full((1, 8, 8), 1e300))
    np.save(tmp_path / "nan.npy", np.full((1, 8, 8), np.nan, dtype=np.float32))
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\xff" * 8 + b"not a header")
    torch.save({"weight": Payload()}, tmp_path / "pickled.pt")
    config_list = tmp_path / "list-config" / "unet"
    config_list.mkdir(parents=True)
    (config_list / "config.json").write_text(json.dumps([1, 2]))
    (tmp_path / "list-config" / "scheduler").mkdir()
    (tmp_path / "list-config" / "scheduler" / "scheduler_config.json").write_text("{}")
    return tmp_path


CASES: dict[str, tuple[list[str], str]] = {
    # name: (arguments after `restore`, with {d} the inputs folder; expected part of the message)
    "bomb image": (["{d}/bomb.png", "--task", "sr4"], "pixels"),
    "image over the pixel limit": (["{d}/large.png", "--task", "sr4"], "at most"),
    "empty .npy": (["--observation", "{d}/empty.npy", "--task", "sr4"], "not a readable .npy"),
    ".npz archive": (["--observation", "{d}/arrays.npz", "--task", "sr4"], ".npz archive"),
    "complex .npy": (["--observation", "{d}/complex.npy", "--task", "sr4"], "complex64"),
    "bool .npy": (["--observation", "{d}/bool.npy", "--task", "sr4"], "bool"),
    "1e300 in float64": (["--observation", "{d}/huge.npy", "--task", "sr4"], "finite"),
    "NaN observation": (["--observation", "{d}/nan.npy", "--task", "sr4"], "finite"),
    "too many samples": (["{d}/clean.png", "--task", "sr4", "--samples", "100000"], "at most 64"),
    "zero samples": (["{d}/clean.png", "--task", "sr4", "--samples", "0"], "--samples"),
    "--nfe nan": (["{d}/clean.png", "--task", "sr4", "--nfe", "nan"], "finite"),
    "--nfe inf": (["{d}/clean.png", "--task", "sr4", "--nfe", "inf"], "finite"),
    "--sigma-y 0": (["{d}/clean.png", "--task", "sr4", "--sigma-y", "0"], "> 0"),
    "--sigma-y 1e-300": (["{d}/clean.png", "--task", "sr4", "--sigma-y", "1e-300"], "1e-15"),
    "--sigma-y 1e300": (["{d}/clean.png", "--task", "sr4", "--sigma-y", "1e300"], "1e+15"),
    "--device cuda": (["{d}/clean.png", "--task", "sr4", "--device", "cuda"], "cuda"),
    "--device bogus": (["{d}/clean.png", "--task", "sr4", "--device", "bogus"], "unknown device"),
    "--device meta": (["{d}/clean.png", "--task", "sr4", "--device", "meta"], "meta"),
    "--out a folder": (["{d}/clean.png", "--task", "sr4", "--out", "{d}/folder.png"], "folder"),
    "--out below a file": (
        ["{d}/clean.png", "--task", "sr4", "--out", "{d}/file.txt/g.png"],
        "file",
    ),
    "--out in /sys": (["{d}/clean.png", "--task", "sr4", "--out", "/sys/mgdm-test.png"], "/sys"),
    "--save-observation a folder": (
        ["{d}/clean.png", "--task", "sr4", "--save-observation", "{d}/folder.png"],
        ".npy",
    ),
    "corrupt safetensors": (
        ["{d}/clean.png", "--task", "sr4", "--prior", "adm-ffhq256:{d}/corrupt.safetensors"],
        "not a readable .safetensors",
    ),
    "pickled checkpoint": (
        ["{d}/clean.png", "--task", "sr4", "--prior", "adm-ffhq256:{d}/pickled.pt"],
        "never runs code",
    ),
    "adm preset without a path": (
        ["{d}/clean.png", "--task", "sr4", "--prior", "adm-ffhq256:"],
        "checkpoint path",
    ),
    "config.json holding a list": (
        ["{d}/clean.png", "--task", "sr4", "--prior", "{d}/list-config"],
        "JSON list",
    ),
    "a folder without --out-dir": (["{d}", "--task", "sr4"], "--out-dir"),
    "a glob without --out-dir": (["{d}/*.png", "--task", "sr4"], "--out-dir"),
    "--out-dir a file": (["{d}", "--task", "sr4", "--out-dir", "{d}/file.txt"], "not a folder"),
    "--out-dir in /sys": (["{d}", "--task", "sr4", "--out-dir", "/sys/mgdm-out"], "/sys"),
    "--out-dir with --test-image": (
        ["--test-image", "0", "--task", "sr4", "--out-dir", "{d}/out"],
        "restore one image",
    ),
    "--out-dir without images": (["--task", "sr4", "--out-dir", "{d}/out"], "needs IMAGE"),
    "--out-dir, unknown task": (["{d}", "--task", "nope", "--out-dir", "{d}/out"], "unknown task"),
    "--batch-size 0": (["{d}", "--task", "sr4", "--out-dir", "{d}/o", "--batch-size", "0"], ">= 1"),
    "--save-samples a file": (
        ["{d}/clean.png", "--task", "sr4", "--save-samples", "{d}/file.txt"],
        "not a folder",
    ),
    "-K 2": (["{d}/clean.png", "--task", "sr4", "-K", "2"], "num_steps"),
    "--gradient-steps x": (["{d}/clean.png", "--task", "sr4", "-G", "x"], "cannot read"),
    "--eta 2": (["{d}/clean.png", "--task", "sr4", "--eta", "2"], "eta"),
    "--preset nope": (["{d}/clean.png", "--task", "sr4", "--preset", "nope"], "invalid choice"),
    "MGDM option with dps": (
        ["{d}/clean.png", "--task", "sr4", "--sampler", "dps", "-M", "3"],
        "--sampler mgdm only",
    ),
    "--nfe below the minimum": (["{d}/clean.png", "--task", "sr4", "--nfe", "1"], "minimum"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_restore_refuses(name, inputs, prior_dir, refused, monkeypatch):
    argv, expected = CASES[name]
    monkeypatch.chdir(inputs)  # the default --out would land here
    argv = [part.format(d=inputs) for part in argv]
    if "--prior" not in argv:
        argv += ["--prior", str(prior_dir)]
    line = refused(["restore", *argv], inputs)
    assert expected in line


def test_diffusers_folder_with_pickled_weights_is_refused(prior_dir, tmp_path, refused):
    import shutil

    folder = tmp_path / "pickled-prior"
    shutil.copytree(prior_dir, folder)
    for weights in (folder / "unet").glob("diffusion_pytorch_model.*"):
        weights.unlink()
    torch.save({"w": Payload()}, folder / "unet" / "diffusion_pytorch_model.bin")
    argv = ["restore", "--test-image", "0", "--task", "sr4", "--prior", str(folder)]
    assert "cannot be loaded safely" in refused([*argv, "--out", str(tmp_path / "g.png")], tmp_path)


@pytest.fixture(scope="module")
def kde_prior() -> KernelDensityPrior:
    generator = torch.Generator().manual_seed(0)
    return KernelDensityPrior(torch.rand(4, *SHAPE, generator=generator) * 2 - 1, 0.2)


@pytest.mark.parametrize("sampler", ["mgdm", "dps", "pgdm", "ddnm"])
def test_sigma_y_below_float32_range_is_refused(kde_prior, sampler):
    """sigma_y = 1e-300 gave NaN samples (MGDM, PGDM) or an overflow error (DDNM+)."""
    task = make_task("sr4", SHAPE)
    y = simulate_observation(task, torch.zeros(SHAPE), 0.05)
    with pytest.raises(ValueError, match="sigma_y must be a number from 1e-15 to 1e"):
        restore(y, task, kde_prior, sampler, samples=1, sigma_y=1e-300)


def test_non_finite_samples_are_an_error_not_an_output(kde_prior, monkeypatch):
    """Whatever makes a sampler return NaN, the API raises instead of returning it."""
    sampler = MGDM(preset("fast"))
    real_sample = sampler.sample

    def nan_sample(*args, **kwargs):
        result = real_sample(*args, **kwargs)
        result.samples[0, 0, 0, 0] = float("nan")
        return result

    monkeypatch.setattr(sampler, "sample", nan_sample)
    task = make_task("sr4", SHAPE)
    y = simulate_observation(task, torch.zeros(SHAPE), 0.05)
    with pytest.raises(ValueError, match="non-finite samples"):
        restore(y, task, kde_prior, sampler, samples=1)


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    (tmp_path / "large.png").write_bytes(_png_header(8193, 8192))
    with pytest.raises(ValueError, match=f"{MAX_IMAGE_PIXELS:,}"):
        read_image(tmp_path / "large.png", SHAPE)
