"""Bad input to the benchmark, training, evaluation, tasks and demo commands: refused with one
line on stderr and exit status 2, before anything is loaded, and nothing left behind (the
``refused`` fixture of ``conftest.py`` checks all three)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from mgdm.bench.audio_db import check_setting, open_audio_db
from mgdm.bench.gmm import GMMRow, write_json
from mgdm.bench.images import SamplerVariant, run_image_benchmark
from mgdm.bench.images_db import read_cells
from mgdm.priors import KernelDensityPrior

torch.set_num_threads(1)

IMAGES = [
    "bench", "images", "--prior", "fashion-mnist-kde", "--tasks", "sr4", "--samplers", "dps",
    "--images", "1", "--budget", "8", "--classifier-weights", "none", "--quiet",
]  # fmt: skip
"""A valid, cheap `bench images` run, less its --db."""

GMM = [
    "bench", "gmm", "--dim", "2", "--obs-dim", "1", "--seeds", "0", "--samples", "8",
    "--directions", "8", "--samplers", "dps", "--budget", "10", "--quiet",
]  # fmt: skip

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
linux_memory = pytest.mark.skipif(
    not Path("/proc/meminfo").is_file(), reason="no /proc/meminfo: the memory is not estimated"
)


def _audio(tmp_path: Path, db: Path | str, *extra: str) -> list[str]:
    """`bench audio` with inputs that do not exist: the database and the options are checked
    before the prior and the data are read."""
    return [
        "bench", "audio", "--prior", str(tmp_path / "no-prior"), "--data",
        str(tmp_path / "no-data.safetensors"), "--db", str(db), "--quiet", *extra,
    ]  # fmt: skip


def _tiny_run(db: Path, batch_size: int) -> None:
    """A run of the image benchmark on a kernel-density prior of 8 x 8 images (a second)."""
    generator = torch.Generator().manual_seed(0)
    prior = KernelDensityPrior(torch.rand(4, 1, 8, 8, generator=generator) * 2 - 1, 0.3)
    images = torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1
    variant = SamplerVariant("dps", "dps", None, {"num_steps": 3})
    run_image_benchmark(
        prior, "half_mask", [variant], images, "0", 0.1, db, prior_name="kde-4",
        batch_size=batch_size, classifier=None, progress=False,
    )  # fmt: skip


def _not_a_database(folder: Path, kind: str) -> Path:
    """A file where a database is expected: another program's SQLite file, text, a folder."""
    path = folder / f"{kind}.sqlite"
    if kind == "foreign":
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("CREATE TABLE people (name TEXT)")
    elif kind == "text":
        path.write_text("not a database\n")
    else:
        path.mkdir()
    return path


# ----------------------------------------------------------------------------- bench images
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--classifier-weights", "TMP/missing.safetensors"], "no classifier weights at"),
        (["--lpips-weights", "TMP/missing.safetensors"], "no LPIPS weights at"),
        (["--prior", "no-such-prior"], "unknown prior 'no-such-prior'"),
        (["--images", "1000000"], "the Fashion-MNIST test split holds 10,000 images"),
        (["--images", "0"], "the number of images must be an integer >= 1"),
        (["--batch", "0"], "argument --batch: expected a whole number >= 1"),
        (["--samples-per-cell", "-1"], "argument --samples-per-cell"),
        (["--sigma-y", "nan"], "argument --sigma-y: expected a finite number"),
        (["--budget", "nan"], "the budget must be a number of network calls > 0; got nan"),
        (["--seeds", "5-2"], "cannot read the seeds '5-2'"),
        (["--seeds", "abc"], "cannot read the seeds 'abc'"),
        (["--mgdm-sweeps", "0"], "Gibbs sweep counts must be integers >= 1"),
        (["--device", "bogus"], "argument --device: unknown device 'bogus'"),
        (["--device", "meta"], "device type 'meta' cannot run a sampler"),
    ],
)
def test_bench_images_checks_everything_before_it_creates_the_database(
    change, message, tmp_path, refused
):
    change = [c.replace("TMP", str(tmp_path)) for c in change]
    line = refused([*IMAGES, "--db", str(tmp_path / "bench.sqlite"), *change], tmp_path)
    assert message in line


@no_cuda
def test_bench_images_refuses_cuda_without_a_gpu(tmp_path, refused):
    line = refused([*IMAGES, "--db", str(tmp_path / "bench.sqlite"), "--device", "cuda"], tmp_path)
    assert "argument --device: device 'cuda' is not available" in line


@pytest.mark.parametrize("kind", ["foreign", "text", "folder"])
def test_a_file_that_is_not_the_benchmarks_database_is_refused(kind, tmp_path, refused):
    db = _not_a_database(tmp_path, kind)
    expected = {
        "foreign": "is not a database of `mgdm bench {}` (its tables: people)",
        "text": "is not a readable SQLite database (file is not a database)",
        "folder": "is a folder",
    }[kind]
    assert expected.format("images") in refused([*IMAGES, "--db", str(db)], tmp_path)
    assert expected.format("images") in refused(["report", "--db", str(db)], tmp_path)
    assert expected.format("audio") in refused(_audio(tmp_path, db), tmp_path)
    audio_table = refused(["bench", "audio-table", "--db", str(db)], tmp_path)
    assert expected.format("audio") in audio_table
    if kind == "foreign":  # left as it was: no table of mgdm's added
        with closing(sqlite3.connect(db)) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == [("people",)]


def test_a_resume_with_another_batch_is_refused(tmp_path, refused):
    db = tmp_path / "bench.sqlite"
    _tiny_run(db, batch_size=1)
    cells = read_cells(db)
    with pytest.raises(ValueError, match=r"another batch than this run's \(1 stored, 2 now\)"):
        _tiny_run(db, batch_size=2)
    line = refused([*IMAGES, "--db", str(db), "--batch", "2"], tmp_path)
    assert "holds cells of another batch than this run's (1 stored, 2 now)" in line
    assert line.endswith("; rerun with --batch 1, or use another --db.")
    _tiny_run(db, batch_size=1)  # the same batch resumes
    assert read_cells(db) == cells


def test_bench_audio_stores_its_batch_and_refuses_another(tmp_path, refused):
    db = tmp_path / "audio.sqlite"
    with closing(open_audio_db(db)) as connection:
        check_setting(connection, {"batch": "1"}, db)
    line = refused(_audio(tmp_path, db, "--batch", "2"), tmp_path)
    assert "holds separations of another batch than this run's (1 stored, 2 now)" in line
    assert "rerun with --batch 1, or use another --db." in line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--batch", "0"], "argument --batch: expected a whole number >= 1"),
        (["--mixtures", "0"], "--mixtures must be an integer >= 1"),
        (["--budget", "nan"], "the budget must be a number of network calls > 0"),
        (["--seeds", "abc"], "cannot read the seeds"),
        (["--device", "bogus"], "argument --device: unknown device 'bogus'"),
        (["--device", "meta"], "device type 'meta' cannot run a sampler"),
        (["--db", "/proc/no/such/audio.sqlite"], "cannot use /proc/no/such/audio.sqlite"),
    ],
)
def test_bench_audio_checks_its_options_and_database_before_loading(
    change, message, tmp_path, refused
):
    assert message in refused(_audio(tmp_path, tmp_path / "audio.sqlite", *change), tmp_path)


# ----------------------------------------------------------------------------- the tables
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--db", "TMP/missing.sqlite"], "no benchmark database at"),
        (["report", "--db", "TMP/missing.sqlite", "--out", "TMP/file.txt"], "is a file"),
        (["report", "--db", "TMP/missing.sqlite", "--out", "/sys/mgdm"], "cannot create files"),
        (["report", "--db", "TMP/missing.sqlite", "--grid-images", "0"], "--grid-images"),
        (["report", "--db", "TMP/missing.sqlite", "--sigma-y", "nan"], "--sigma-y"),
        (["report", "--db", "TMP/missing.sqlite", "--budget", "nan"], "expected 'default' or"),
        (["report", "--db", "TMP/missing.sqlite", "--samples-per-cell", "0"], "--samples-per"),
        (["bench", "audio-table", "--db", "TMP/missing.sqlite"], "no audio-benchmark database"),
        (["bench", "audio-table", "--db", "TMP/m.sqlite", "--out", "TMP/file.txt"], "is a file"),
        (["bench", "audio-table", "--db", "TMP/m.sqlite", "--budget", "inf"], "--budget"),
        (["bench", "gmm-table", "TMP/missing.json"], "no such file"),
        (["bench", "gmm-table", "TMP"], "is a folder"),
        (["bench", "gmm-table", "TMP/file.txt"], "is not a gmm benchmark JSON file"),
        (["bench", "gmm-table", "TMP/list.json"], "is not a gmm benchmark JSON file"),
        (["bench", "gmm-table", "TMP/typed.json"], "a row's sw is 'x'"),
        (["bench", "gmm-table", "TMP/empty.json", "--only-seeds", "5-2"], "cannot read the seeds"),
        (["bench", "gmm-table", "TMP/empty.json", "--only-dims", "x"], "--only-dims"),
    ],
)
def test_the_table_commands_refuse_bad_input(argv, message, tmp_path, refused):
    (tmp_path / "file.txt").write_text("a file\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "empty.json").write_text("[]")
    row = asdict(GMMRow("dps", 2, 1, 0, 1.0, 0.5, 2.0, 10.0, 10.0, 0.1, 8))
    (tmp_path / "typed.json").write_text(json.dumps([{**row, "sw": "x"}]))
    argv = [a.replace("TMP", str(tmp_path)) for a in argv]
    assert message in refused(argv, tmp_path)


# ----------------------------------------------------------------------------- bench gmm
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--dim", "7"], "--dim values must be even integers >= 2; got 7"),
        (["--dim", "0"], "argument --dim: expected a whole number >= 1"),
        (["--obs-dim", "3"], "obs_dim 3 exceeds dim 2"),
        (["--samples", "0"], "--samples must be >= 2; got 0"),
        (["--directions", "0"], "argument --directions: expected a whole number >= 1"),
        (["--budget", "nan"], "argument --budget: expected a finite number"),
        (["--seeds", "5-2"], "cannot read the seeds '5-2'"),
        (["--seeds", "abc"], "cannot read the seeds 'abc'"),
        (["--json", "TMP/taken.json"], "--json TMP/taken.json is a folder; name a file"),
        (["--json", "TMP/file.txt/rows.json"], "is a file, not a folder"),
        (["--json", "/sys/mgdm-rows.json"], "cannot create files in /sys"),
        (["--device", "bogus"], "argument --device: unknown device 'bogus'"),
        (["--device", "meta"], "device type 'meta' cannot run a sampler"),
        (["--samplers", "mgdm", "-R", "0"], "MGDM gibbs_sweeps = 0 is out of range"),
        (["--num-steps", "2"], "MGDM num_steps = 2 is out of range"),  # checked without MGDM
        (["--seeds", "0-99999999999"], "name more than 10,000 seeds"),
        (["--json", "TMP/rows.txt"], "--json must name a .json file"),
    ],
)
def test_bench_gmm_refuses_bad_options_before_it_runs(change, message, tmp_path, refused):
    (tmp_path / "file.txt").write_text("a file\n")
    (tmp_path / "taken.json").mkdir()
    change = [c.replace("TMP", str(tmp_path)) for c in change]
    assert message.replace("TMP", str(tmp_path)) in refused([*GMM, *change], tmp_path)


@linux_memory
def test_bench_gmm_estimates_its_memory_before_allocating(tmp_path, refused):
    line = refused([*GMM, "--dim", "1000000"], tmp_path)
    assert "the 1000000 x 1000000 SVD of the operator needs 7,450.6 GiB" in line
    assert line.endswith("; reduce --dim.")
    line = refused([*GMM, "--dim", "8", "--obs-dim", "8", "--samples", "10000000000"], tmp_path)
    assert "the exact posterior draws (10000000000 x 8 x 8)" in line
    assert line.endswith("; reduce --samples, --dim or --obs-dim.")


def test_the_gmm_rows_are_written_whole_or_not_at_all(tmp_path):
    rows = [GMMRow("dps", 2, 1, 0, 1.0, 0.5, 2.0, 10.0, 10.0, 0.1, 8)]
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        write_json(rows, tmp_path / "taken")
    assert {p.name for p in tmp_path.iterdir()} == {"taken"}
    write_json(rows, tmp_path / "rows.json")
    assert json.loads((tmp_path / "rows.json").read_text())[0]["sampler"] == "dps"


# ----------------------------------------------------------------------------- trainers
TINY_PRIOR = ["--channels", "8,8", "--limit", "64", "--batch-size", "8", "--steps", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prior", "--lr", "nan"], "argument --lr: expected a finite number"),
        (["prior", "--lr", "0"], "argument --lr: expected a finite number > 0"),
        (["prior", "--limit", "0"], "argument --limit: expected a whole number >= 1"),
        (["prior", "--seed", "-1"], "argument --seed: expected a whole number >= 0"),
        (["prior", "--seed", "99999999999999999999"], "the seed must be an integer in 0"),
        (["prior", "--channels", ""], "--channels must be comma-separated positive integers"),
        (["prior", "--batch-size", "65"], "batch size 65 exceeds the 64 training images"),
        (["prior", "--device", "bogus"], "argument --device: unknown device 'bogus'"),
        (["prior", "--out", "TMP/file.txt"], "exists and is not a folder"),
        (["prior", "--out", "/sys/mgdm-run"], "cannot create files in /sys"),
        (["autoencoder", "--eval-limit", "0"], "argument --eval-limit: expected a whole number"),
        (["autoencoder", "--kl-weight", "nan"], "argument --kl-weight: expected a finite number"),
        (["autoencoder", "--kl-weight", "-1"], "the KL weight must be a number >= 0"),
        (["autoencoder", "--latent-channels", "0"], "argument --latent-channels"),
        (["autoencoder", "--channels", "8"], "an autoencoder needs 2 to 4 levels"),
        (["latent-prior", "--autoencoder", "TMP/missing"], "no autoencoder in"),
        (["classifier", "--lr", "inf"], "argument --lr: expected a finite number"),
        (["classifier", "--out", "TMP/file.txt"], "is a file, not a folder"),
        (["classifier", "--batch-size", "60001"], "batch size 60001 exceeds the 60000 training"),
    ],
)
def test_trainers_check_every_option_before_creating_their_folder(argv, message, tmp_path, refused):
    (tmp_path / "file.txt").write_text("a file\n")
    what, *options = (a.replace("TMP", str(tmp_path)) for a in argv)
    base = {
        "prior": TINY_PRIOR,
        "autoencoder": [*TINY_PRIOR, "--eval-limit", "8"],
        "latent-prior": ["--steps", "1"],
        "classifier": ["--steps", "1"],
    }[what]
    out = [] if "--out" in options else ["--out", str(tmp_path / "run")]
    assert message in refused(["train", what, *out, *base, *options], tmp_path)


def test_a_failed_start_leaves_no_run_folder_and_a_corrected_rerun_works(
    tmp_path, refused, capsys, monkeypatch
):
    import mgdm.train.prior as trainer
    from mgdm.cli import main

    out = tmp_path / "a" / "b" / "run"
    argv = ["train", "prior", "--out", str(out), *TINY_PRIOR]

    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 10^12 bytes")

    def fails_in_training(argv: list[str]) -> None:
        """Exit status 2 with the error as the last line (the progress bar came before)."""
        assert main(argv) == 2
        err = capsys.readouterr().err
        last = err.splitlines()[-1]
        assert last.startswith("mgdm train") and ": error: out of memory" in last

    with monkeypatch.context() as patch:  # a model too large for the machine: refused
        patch.setattr(trainer, "build_unet", no_memory)
        assert "out of memory" in refused(argv, tmp_path)
    with monkeypatch.context() as patch:  # a batch too large, at step 1: the folder goes
        patch.setattr(trainer, "diffusion_batch", no_memory)
        fails_in_training(argv)
    assert {p.name for p in tmp_path.iterdir()} == set()
    assert main(argv) == 0  # nothing blocks the corrected rerun
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "train_log.csv", "checkpoint.safetensors", "unet"} <= files
    with monkeypatch.context() as patch:  # a resumed run that fails keeps its checkpoint
        patch.setattr(trainer, "diffusion_batch", no_memory)
        fails_in_training([*argv, "--steps", "2"])
    assert {p.name for p in out.iterdir()} == files


def test_latent_prior_channels_that_do_not_fit_the_latents_create_nothing(tmp_path, refused):
    from mgdm.priors.latent.autoencoder import build_autoencoder

    build_autoencoder((8, 8, 8, 8), 4, seed=0).save_pretrained(tmp_path / "ae" / "vae")
    argv = [
        "train", "latent-prior", "--autoencoder", str(tmp_path / "ae"), "--out",
        str(tmp_path / "run"), "--channels", "8,8,8,8", "--limit", "8", "--batch-size", "4",
    ]  # fmt: skip
    assert "side is a multiple of 8; got 4 x 4" in refused(argv, tmp_path)


# ----------------------------------------------------------------------------- evaluate
def _run_folder(folder: Path, config: str, log: str = "step,loss,seconds\n1,0.5,0.1\n") -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(config)
    (folder / "train_log.csv").write_text(log)
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--run", "TMP/missing"], "--run configuration not found"),
        (["--run", "TMP/junk"], "is not a readable JSON --run configuration"),
        (["--run", "TMP/autoencoder"], "holds a run of kind 'mgdm-train-autoencoder'"),
        (["--run", "TMP/empty-log"], "no readable train_log.csv"),
        (["--samples", "1"], "--samples must be >= 2 for the FID"),
        (["--steps", "1"], "the DDIM grid takes 2 to 1000 points; got 1"),
        (["--steps", "5000"], "the DDIM grid takes 2 to 1000 points; got 5000"),
        (["--prior", "/sys/mgdm-prior"], "cannot create files in /sys"),
        (["--autoencoder-run", "TMP/run"], "holds a run of kind 'mgdm-train-prior'"),
    ],
)
def test_evaluate_prior_checks_its_inputs_before_loading_the_prior(
    change, message, tmp_path, refused
):
    _run_folder(tmp_path / "run", '{"kind": "mgdm-train-prior"}')
    _run_folder(tmp_path / "junk", "{")
    _run_folder(tmp_path / "autoencoder", '{"kind": "mgdm-train-autoencoder"}')
    _run_folder(tmp_path / "empty-log", '{"kind": "mgdm-train-prior"}', "step,loss,seconds\n")
    argv = [
        "evaluate", "prior", "--prior", str(tmp_path / "prior"), "--run", str(tmp_path / "run"),
        "--command", "mgdm train prior", "--training-hardware", "a laptop", "--samples", "4",
        *(c.replace("TMP", str(tmp_path)) for c in change),
    ]  # fmt: skip
    line = refused(argv, tmp_path)
    assert line.startswith("mgdm evaluate") and message in line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--steps", "1"], "the DDIM grid takes 2 to 1000 points"),
        (["--samples", "0"], "argument --samples: expected a whole number >= 1"),
        (["--batch-size", "0"], "argument --batch-size: expected a whole number >= 1"),
        (["--seed", "-1"], "argument --seed: expected a whole number >= 0"),
        (["--prior", "/sys/mgdm-prior"], "cannot create files in /sys"),
    ],
)
def test_evaluate_audio_prior_checks_its_options_before_loading(change, message, tmp_path, refused):
    argv = [
        "evaluate", "audio-prior", "--prior", str(tmp_path / "prior"), "--data",
        str(tmp_path / "test.safetensors"), "--command", "x", "--training-hardware", "x", *change,
    ]  # fmt: skip
    assert message in refused(argv, tmp_path)


# ----------------------------------------------------------------------------- tasks, demo
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tasks", "--image-shape", "3,100000,100000"], "1 <= H, W <= 2048"),
        (["tasks", "--image-shape", "5,32,32"], "1 <= C <= 4"),
        (["tasks", "--seed", "-1"], "argument --seed: expected a whole number >= 0"),
        (["tasks", "figures", "--tasks", ","], "--tasks takes 'all' or a comma list"),
        (["tasks", "figures", "--tasks", "sr4,warp"], "unknown task 'warp'"),
        (["tasks", "figures", "--tasks", "sr16", "--image-shape", "1,8,8"], "--tasks sr16: super"),
        (["tasks", "figures", "--sigma-y", "inf"], "argument --sigma-y: expected a finite"),
        (["tasks", "figures", "--out", "TMP/file.txt"], "is a file, not a folder"),
        (["tasks", "figures", "--out", "/sys/mgdm-figures"], "cannot create files in /sys"),
        (["demo", "--images", "17"], "the grid holds 1 to 16 images per task"),
        (["demo", "--samples", "65"], "and 1 to 64 samples per image"),
        (["demo", "--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
        (["demo", "--prior", "no-such-prior"], "unknown prior 'no-such-prior'"),
        (["demo", "--out", "TMP/file.txt"], "is a file, not a folder"),
        (["demo", "--gmm", "--samples", "5"], "--samples with --gmm must be 10 to 100,000"),
        (["demo", "--gmm", "--out", "/sys/mgdm-demo"], "cannot create files in /sys"),
    ],
)
def test_tasks_and_demo_refuse_bad_input_before_work(argv, message, tmp_path, refused):
    (tmp_path / "file.txt").write_text("a file\n")
    argv = [a.replace("TMP", str(tmp_path)) for a in argv]
    if "--out" not in argv and argv[:2] in (["tasks", "figures"], ["demo"]):
        argv += ["--out", str(tmp_path / "out")]
    assert message in refused(argv, tmp_path)
