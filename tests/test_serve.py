"""``mgdm serve`` without a browser: the command's refusals, the tabs' checks and outputs, the
jobs (progress, the x0 estimate, cancelling, one at a time per worker), the session folders.

The page itself, in a real browser, is tested in tests/test_serve_browser.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from test_restore_bad_inputs import _png_header

from mgdm.image_io import MAX_IMAGE_PIXELS
from mgdm.priors.catalog import load_prior
from mgdm.samplers.registry import build_sampler
from mgdm.serve import work
from mgdm.serve.app import Server
from mgdm.serve.jobs import Job, JobCancelled, WorkerSlots


@pytest.fixture(scope="module")
def prior():
    return load_prior("fashion-mnist")


def _prepare(prior, **changes):
    values = {
        "source": work.TEST_IMAGE,
        "test_index": 0,
        "upload": None,
        "task_name": "sr4",
        "sampler_name": "mgdm",
        "compare": "none",
        "nfe": 0,  # the sampler's default (with_budget takes a while: it searches MGDM's grids)
        "samples": 2,
        "sigma_y": 0.05,
        "seed": 0,
    }
    values.update(changes)
    return work.prepare_restore(prior, *values.values())


# ---------------------------------------------------------------------------- the command
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--port", "0"], "port"),
        (["serve", "--port", "70000"], "port"),
        (["serve", "--port", "http"], "whole number"),
        (["serve", "--workers", "0"], "whole number >= 1"),
        (["serve", "--workers", "99"], "workers"),
        (["serve", "--host", ""], "host"),
        (["serve", "--device", "cuda:99"], "device"),
        (["serve", "--prior", "no-such-prior"], "no-such-prior"),
        (["serve", "--audio-prior", "no-such-prior"], "no-such-prior"),
    ],
)
def test_bad_options_are_refused_before_serving(refused, tmp_path, argv, expected):
    line = refused(argv, tmp_path)
    assert expected in line


def test_help_says_loopback_by_default():
    from mgdm.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 7860 and args.workers == 1


# ---------------------------------------------------------------------------- restore tab
def test_prepare_restore_reads_and_converts_an_upload(prior, tmp_path):
    path = tmp_path / "colour.png"
    Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(path)
    request = _prepare(prior, source=work.UPLOAD, upload=str(path))
    assert tuple(request.clean.shape) == (1, 32, 32)
    assert tuple(request.observation.shape) == (1, 8, 8)
    assert any("grey" in note for note in request.notes)
    assert any("cropped 60x40" in note for note in request.notes)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"source": work.UPLOAD}, "no image uploaded"),
        ({"samples": 0}, "number of samples"),
        ({"samples": 2.5}, "number of samples"),
        ({"samples": work.MAX_SAMPLES + 1}, "number of samples"),
        ({"sigma_y": 0}, "sigma_y"),
        ({"test_index": 10_000}, "test image"),
        ({"nfe": -1}, "network calls"),
        ({"nfe": 3}, "minimum"),
        ({"task_name": "colorization"}, "colorization"),
        ({"sampler_name": "nope"}, "unknown sampler"),
        ({"compare": "mgdm"}, "not with itself"),
        ({"compare": "nope"}, "unknown sampler"),
        ({"source": "camera"}, "unknown image source"),
    ],
)
def test_prepare_restore_refuses_bad_values(prior, changes, expected):
    with pytest.raises(ValueError, match=expected):
        _prepare(prior, **changes)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a readable image"),
        (b"hello, not an image\n", "not a readable image"),
        (_png_header(30000, 30000), f"{MAX_IMAGE_PIXELS:,}"),
    ],
    ids=["empty", "corrupt", "text", "too-large"],
)
def test_a_bad_upload_is_one_line_naming_the_file_not_the_server_path(
    prior, tmp_path, content, expected
):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as caught:
        _prepare(prior, source=work.UPLOAD, upload=str(path))
    message = str(caught.value)
    assert "upload.png" in message and str(tmp_path) not in message and "\n" not in message


def test_restore_job_reports_progress_and_writes_its_outputs(prior, tmp_path):
    request = _prepare(prior, compare="dps", nfe=30)
    job: Job = Job()
    job.start(lambda: work.run_restore(request, prior, job, torch.device("cpu")), WorkerSlots(1))
    assert job.wait(60) and job.error is None, job.error
    first, second = job.result
    # the watched prior counts what the sampler's own accounting counts (the last run: dps)
    assert job.calls_per_sample == pytest.approx(second.cost.nfe_total)
    assert second.cost.nfe_total == first.cost.nfe_total  # dps rescaled to MGDM's calls
    assert job.estimate is not None and tuple(job.estimate.shape) == (2, 1, 32, 32)
    grid = work.estimate_grid(job.estimate, prior, zoom=4)
    assert grid.shape == (128, 2 * 128 + 4) and grid.dtype == np.uint8
    tiles, downloads = work.write_restoration(first, tmp_path, "mgdm")
    captions = [caption for _, caption in tiles]
    assert captions[:2] == ["clean", "y"] and captions[4].startswith("mean")
    assert captions[5].startswith("std") and captions[6].startswith("no prior: bicubic")
    assert [c.split(",")[0] for c in captions[2:4]] == ["sample 0", "sample 1"]
    sizes = {caption: Image.open(path).size for path, caption in tiles}
    assert sizes["clean"] == (32, 32) and sizes["y"] == (8, 8)
    assert all(size == (32, 32) for caption, size in sizes.items() if caption != "y")
    assert [p.name for p in downloads] == ["mgdm-grid.png", "mgdm-samples.npy"]
    samples = np.load(downloads[1])
    assert samples.shape == (2, 1, 32, 32) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, first.samples.numpy())
    assert "PSNR" in work.scores_text(first)


def test_a_cancelled_job_stops_within_a_network_call(prior):
    request = _prepare(prior, samples=1)  # MGDM's default: about 500 calls
    job: Job = Job()
    job.start(lambda: work.run_restore(request, prior, job, torch.device("cpu")), WorkerSlots(1))
    deadline = time.monotonic() + 30
    while job.calls_per_sample < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel.set()
    calls = job.calls_per_sample
    assert job.wait(10), "the job did not stop"
    assert isinstance(job.error, JobCancelled)
    assert job.calls_per_sample <= calls + 1


def test_one_job_per_worker():
    slots = WorkerSlots(1)
    running, most = [0], [0]
    lock = threading.Lock()

    def work_fn() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    jobs = [Job() for _ in range(3)]
    for job in jobs:
        job.start(work_fn, slots)
    assert all(job.wait(5) for job in jobs)
    assert most[0] == 1


# ---------------------------------------------------------------------------- sessions
def test_sessions_queue_cancel_and_clean_up(prior, tmp_path):
    server = Server(prior, prior, torch.device("cpu"), workers=1, root=tmp_path / "root")
    ahead = server.enqueue("a", "restore", "request a")
    assert ahead == 0
    assert server.enqueue("b", "restore", "request b") == 1
    folder = server.session("a").folder
    (folder / "result.png").write_bytes(b"x")
    assert server.cancel("a") == 1  # the prepared job of session a
    started = server.run("a", "restore", lambda request, job: request)
    assert started is not None
    job, request = started
    assert request == "request a" and job.wait(5) and isinstance(job.error, JobCancelled)
    assert server.run("a", "restore", lambda request, job: request) is None  # taken
    server.close_session("a")
    assert not folder.exists() and "a" not in server.sessions
    server.cleanup()
    assert not (tmp_path / "root").exists()


# ---------------------------------------------------------------------------- separate tab
def test_prepare_separation_reads_an_upload_and_refuses_bad_ones(tmp_path):
    import soundfile

    tone = 0.1 * np.sin(np.arange(4000) * 2 * np.pi * 440 / 16000)
    soundfile.write(tmp_path / "mix.wav", np.stack([tone, tone], 1), 16000)
    request = work.prepare_separation(work.UPLOAD, 0, str(tmp_path / "mix.wav"), "msdm", 20, 0)
    assert tuple(request.mix.shape) == (2, 4000) and request.sample_rate == 16000
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\x00" * 8)
    with pytest.raises(ValueError, match="bad.wav") as caught:
        work.prepare_separation(work.UPLOAD, 0, str(tmp_path / "bad.wav"), "msdm", 20, 0)
    assert str(tmp_path) not in str(caught.value)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        work.prepare_separation(work.UPLOAD, 0, str(tmp_path / "empty.wav"), "msdm", 20, 0)
    with pytest.raises(ValueError, match="no mix uploaded"):
        work.prepare_separation(work.UPLOAD, 0, None, "msdm", 20, 0)


def test_sampler_lists_follow_the_registry():
    assert work.samplers_for("image")[0] == "mgdm"
    assert "msdm" in work.samplers_for("audio") and "msdm" not in work.samplers_for("image")
    assert build_sampler("mgdm").name == "mgdm"
