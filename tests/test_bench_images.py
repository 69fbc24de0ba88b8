"""The image benchmark and its report, on tiny exact priors (kernel densities) and few steps."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest
import torch

from mgdm.bench.images import (
    SamplerVariant,
    observe,
    run_image_benchmark,
    sampler_variants,
)
from mgdm.bench.images_db import (
    METRICS,
    insert_cell,
    merge_rank_files,
    open_db,
    read_cells,
)
from mgdm.bench.store import decode_array, rank_path
from mgdm.cli import main
from mgdm.commands.mgdm_options import parse_assignments
from mgdm.metrics.fashion_classifier import FashionClassifier
from mgdm.metrics.lpips import LPIPS
from mgdm.priors import KernelDensityPrior
from mgdm.samplers.step_schedule import StepSchedule
from mgdm.tasks.registry import make_task

torch.set_num_threads(1)

COMPARED = (
    "task", "sampler", "image", "seed", "status", "reason", "algorithm", "config", *METRICS,
    "nfe_forward", "nfe_backward", "batch_samples", "sample", "sample_shape",
)  # fmt: skip
"""Columns that must not depend on interruptions or on the number of processes."""

CLI_RUN = [
    "bench", "images", "--prior", "fashion-mnist-kde", "--tasks", "sr4,gaussian_blur",
    "--samplers", "mgdm,dps,ddnm", "--mgdm-sweeps", "2", "--budget", "25", "--images", "6",
    "--batch", "1", "--samples-per-cell", "2", "--classifier-weights", "none", "--quiet",
]  # fmt: skip
"""A tiny CLI run: 48 cells, of which 6 are skipped (DDNM without an SVD on the blur); MGDM with
R = 2 fits in 25 network calls (two Adam steps per outer step below half its own cost)."""


def _rows(path):
    return sorted(tuple(getattr(c, k) for k in COMPARED) for c in read_cells(path))


def _assert_same_rows(path, reference):
    rows, expected = _rows(path), _rows(reference)
    assert len(rows) == len(expected), (len(rows), len(expected))
    for row, want in zip(rows, expected):
        differing = [k for k, a, b in zip(COMPARED, row, want) if a != b]
        assert not differing, (row[:4], differing)


# ----------------------------------------------------------------------------- Python API
@pytest.fixture(scope="module")
def tiny():
    generator = torch.Generator().manual_seed(0)
    prior = KernelDensityPrior(torch.rand(12, 1, 32, 32, generator=generator) * 2 - 1, 0.3)
    images = torch.rand(3, 1, 32, 32, generator=generator) * 2 - 1
    torch.manual_seed(0)
    return prior, images, FashionClassifier().eval()


def _variants(mgdm_steps=5):
    return [
        SamplerVariant("mgdm", "mgdm", "default", {"num_steps": mgdm_steps}),
        SamplerVariant("mgdm-R2", "mgdm", "default", {"num_steps": mgdm_steps, "gibbs_sweeps": 2}),
        SamplerVariant("dps", "dps", None, {"num_steps": 5}),
        SamplerVariant("ddnm", "ddnm", None, {"num_steps": 5}),
    ]


def _api_run(tiny, db, variants=None):
    prior, images, classifier = tiny
    return run_image_benchmark(
        prior, "sr4,gaussian_blur", variants or _variants(), images, "0", 0.05, db,
        prior_name="kde-12", batch_size=2, samples_per_cell=2, classifier=classifier,
        lpips_model=LPIPS().eval(), progress=False,
    )  # fmt: skip


def test_api_cells_metrics_skips_and_resume(tiny, tmp_path):
    db = tmp_path / "bench.sqlite"
    summary = _api_run(tiny, db)
    assert (summary.done, summary.skipped, summary.already) == (21, 3, 0)
    cells = {(c.task, c.sampler, c.image): c for c in read_cells(db)}
    assert len(cells) == 24
    skipped = cells[("gaussian_blur", "ddnm", 0)]
    assert skipped.status == "skipped" and "singular value decomposition" in skipped.reason
    assert skipped.psnr is None and skipped.sample is None
    exact = cells[("sr4", "mgdm-R2", 2)]  # the KDE posterior is exact for an operator with an SVD
    assert exact.status == "done" and exact.sw > exact.sw_floor > 0 and exact.mean_rmse > 0
    assert exact.feature_dist > 0 and exact.lpips is not None and exact.batch_samples == 2
    assert exact.nfe_backward == 2 * cells[("sr4", "mgdm", 2)].nfe_backward  # R = 2
    assert cells[("gaussian_blur", "dps", 1)].sw is None  # no SVD: no exact posterior
    assert decode_array(exact.sample, exact.sample_shape).shape == (1, 32, 32)
    assert exact.peak_memory_kind == "cpu_max_rss" and exact.peak_memory_bytes > 0
    before = _rows(db)
    again = _api_run(tiny, db)
    assert (again.done, again.skipped, again.already) == (0, 0, 24) and _rows(db) == before
    with pytest.raises(ValueError, match="another configuration"):
        _api_run(tiny, db, _variants(mgdm_steps=6))


def test_observations_do_not_depend_on_batching():
    task = make_task("sr4", (1, 32, 32))
    images = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    together = observe(task, images, [5, 6, 7], seed=1, sigma_y=0.05)
    alone = observe(task, images[2:], [7], seed=1, sigma_y=0.05)
    assert torch.equal(together[2:], alone)
    assert not torch.equal(together[2:], observe(task, images[2:], [7], seed=2, sigma_y=0.05))


def test_leftover_rank_files_are_merged(tmp_path):
    db = tmp_path / "bench.sqlite"
    source = tmp_path / "source.sqlite"
    generator = torch.Generator().manual_seed(0)
    prior = KernelDensityPrior(torch.rand(4, 1, 8, 8, generator=generator) * 2 - 1, 0.3)
    images = torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1
    run_image_benchmark(
        prior, "half_mask", [SamplerVariant("dps", "dps", None, {"num_steps": 3})], images, "0",
        0.1, source, prior_name="kde-4", classifier=None, progress=False,
    )  # fmt: skip
    with closing(open_db(rank_path(db, 1))) as connection:  # a rank killed before the merge
        for cell in read_cells(source):
            insert_cell(connection, cell)
    assert merge_rank_files(db) == 1 and not rank_path(db, 1).exists()
    assert _rows(db) == _rows(source)


def test_mgdm_sweeps_add_labelled_variants():
    labels = [v.label for v in sampler_variants("mgdm,dps", "reference", [1, 4])]
    assert labels == ["mgdm-reference", "dps", "mgdm-reference-R1", "mgdm-reference-R4"]
    with pytest.raises(ValueError, match="distinct"):
        sampler_variants("dps,dps")
    corrected = sampler_variants("mgdm", "default", [4], "image", "covariance-corrected")
    assert [(v.label, v.overrides) for v in corrected] == [
        ("mgdm-cc", {"likelihood": "covariance-corrected"}),
        ("mgdm-cc-R4", {"gibbs_sweeps": 4, "likelihood": "covariance-corrected"}),
    ]
    with pytest.raises(ValueError, match="unknown MGDM likelihood 'exact'"):
        sampler_variants("mgdm", mgdm_likelihood="exact")
    rto = sampler_variants("mgdm,dps", "default", [2], "image", mgdm_fit="rto")
    assert [(v.label, v.overrides) for v in rto] == [
        ("mgdm-rto", {"fit": "rto"}),
        ("dps", {}),
        ("mgdm-rto-R2", {"gibbs_sweeps": 2, "fit": "rto"}),
    ]
    with pytest.raises(ValueError, match="unknown MGDM fit 'exact'; accepted: variational, rto"):
        sampler_variants("mgdm", mgdm_fit="exact")
    pinned = sampler_variants("mgdm", "variational", [4], mgdm_label="mgdm")
    assert [(v.label, v.preset) for v in pinned] == [
        ("mgdm", "variational"),
        ("mgdm-R4", "variational"),
    ]
    assert sampler_variants("mgdm", "variational")[0].label == "mgdm-variational"
    with pytest.raises(ValueError, match="the MGDM label must be a non-empty name"):
        sampler_variants("mgdm", mgdm_label=" ")
    overridden = sampler_variants(
        "mgdm", mgdm_fit="rto", mgdm_label="corrected", mgdm_overrides={"eta": 0.5}
    )
    assert [(v.label, v.overrides) for v in overridden] == [
        ("corrected-rto", {"fit": "rto", "eta": 0.5})
    ]


def test_mgdm_set_reads_each_field_as_its_type():
    """``--mgdm-set FIELD=VALUE``: flags, integers, floats, schedules and names, as the
    configuration's fields; the built configuration holds them."""
    overrides = parse_assignments(
        [
            "last_step_correction=yes",
            "num-steps=55",
            "eta=0.5",
            "gradient_steps=2,-5:=10",
            "index_rule=mix-det",
        ]
    )
    assert overrides == {
        "last_step_correction": True,
        "num_steps": 55,
        "eta": 0.5,
        "gradient_steps": StepSchedule.parse("2,-5:=10"),
        "index_rule": "mix-det",
    }
    built = SamplerVariant("x", "mgdm", "default", overrides).build("sr4").config
    assert (built.num_steps, built.eta, built.index_rule) == (55, 0.5, "mix-det")
    assert built.last_step_correction and built.gradient_steps(54 - 3, 55) == 10


# ----------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def reference_db(tmp_path_factory):
    """An uninterrupted single-process run of :data:`CLI_RUN`."""
    path = tmp_path_factory.mktemp("reference") / "bench.sqlite"
    assert main([*CLI_RUN, "--db", str(path)]) == 0
    return path


def _count_done(path):
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as connection:
            return connection.execute(
                "SELECT COUNT(*) FROM cells WHERE status = 'done'"
            ).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_resume_after_sigkill_equals_an_uninterrupted_run(reference_db, tmp_path):
    db = tmp_path / "bench.sqlite"
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mgdm.cli", *CLI_RUN, "--db", str(db)], stderr=stderr
        )
    deadline = time.monotonic() + 900  # generous: a loaded machine may take minutes
    while _count_done(db) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert _count_done(db) >= 1, "no cell finished before the deadline: the kill tested nothing"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        partial = connection.execute(
            "SELECT COUNT(*) FROM cells WHERE status = 'done' AND (psnr IS NULL OR ssim IS NULL "
            "OR sample IS NULL OR nfe_forward IS NULL OR config IS NULL)"
        ).fetchone()[0]
    killed = read_cells(db)
    assert partial == 0 and 1 <= len(killed) < 48, (process.returncode, log.read_text())
    assert main([*CLI_RUN, "--db", str(db)]) == 0
    _assert_same_rows(db, reference_db)


def test_two_processes_equal_one_process(reference_db, tmp_path):
    db = tmp_path / "bench.sqlite"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(port)]  # fmt: skip
    completed = subprocess.run(
        [*launcher, "-m", "mgdm.cli", *CLI_RUN, "--db", str(db)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "rank 0:" in completed.stdout and "rank 1:" in completed.stdout
    assert not list(tmp_path.glob("bench.sqlite.rank*"))
    _assert_same_rows(db, reference_db)


def test_report_tables_and_figures(reference_db, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--db", str(reference_db), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert "| task | mgdm | mgdm-R2 | dps | ddnm |" in lines
    sr4 = next(line for line in lines if line.startswith("| sr4 |"))
    blur = next(line for line in lines if line.startswith("| gaussian_blur |"))
    assert sr4.count("**") == 2 and "±" in sr4 and sr4.count("skipped") == 0
    assert blur.count("skipped") == 1 and blur.count("**") == 2  # DDNM: no SVD
    assert "| mgdm | " in text and "s / image" in text and "peak resident memory" in text
    names = {"table.md", "compute_curve.png", "grid_sr4.png", "grid_gaussian_blur.png"}
    assert {p.name for p in out.iterdir()} == names
    assert (out / "table.md").read_text() == text.split("wrote ")[0]
    assert all((out / n).stat().st_size > 1000 for n in names if n.endswith(".png"))
    assert main(["report", "--db", str(reference_db), "--metric", "sw"]) == 0
    sw_blur = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("| gauss"))
    assert "**" not in sw_blur and "–" in sw_blur  # no exact posterior without an SVD


@pytest.mark.parametrize(
    "change,message",
    [
        (["--tasks", "sr4,warp"], "unknown task 'warp'"),
        (["--samplers", "mgdm,foo"], "unknown sampler 'foo'"),
        (["--images", "0"], "the number of images must be an integer >= 1; got 0"),
        (["--db", "/proc/no/such/bench.sqlite"], "cannot use /proc/no/such/bench.sqlite"),
        (["--prior", "no-such-prior"], "unknown prior 'no-such-prior'"),
        (["--mgdm-set", "eta=2"], "MGDM eta = 2.0 is out of range; accepted: 0 <= eta <= 1"),
        (["--mgdm-set", "speed=2"], "--mgdm-set takes FIELD=VALUE with FIELD one of"),
        (["--mgdm-set", "last_step_correction=1"], "last_step_correction: '1' is not yes or no"),
    ],
)
def test_bad_input_is_one_line_with_status_2(change, message, tmp_path, capsys):
    argv = [*CLI_RUN, "--db", str(tmp_path / "bench.sqlite"), *change]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mgdm bench images: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_report_needs_one_setting(reference_db, tmp_path, capsys):
    assert main(["report", "--db", str(reference_db), "--budget", "default"]) == 2
    assert "no settings match" in capsys.readouterr().err
    assert main(["report", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no benchmark database" in capsys.readouterr().err


def test_report_paired_with_another_database(reference_db, tmp_path, capsys):
    """``--paired-with``: per task and sampler, the mean of first - second over shared cells."""
    shifted = tmp_path / "shifted.sqlite"
    shutil.copyfile(reference_db, shifted)
    with sqlite3.connect(shifted) as connection:
        connection.execute("UPDATE cells SET psnr = psnr + 1.5 WHERE sampler = 'dps'")
    argv = ["report", "--db", str(reference_db), "--paired-with", str(shifted)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {tuple(line.split(" | ")[:2]): line for line in lines if line.startswith("| sr4 |")}
    assert rows[("| sr4", "dps")].startswith("| sr4 | dps | 6 | ")
    assert rows[("| sr4", "dps")].endswith(" | -1.5 ± 0 * |")
    assert rows[("| sr4", "mgdm")].endswith(" | 0 ± 0 |")  # the same cells: no mark
    blur = [line for line in lines if line.startswith("| gaussian_blur | ddnm")]
    assert not blur  # skipped in both: no pairs
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "--paired-with prints a table" in capsys.readouterr().err


def test_report_pairs_two_samplers_on_the_same_cells(reference_db, capsys):
    """``--pair A/B``: sampler A of --db against sampler B of --paired-with (here the same
    database), per task over their shared cells; A against itself is 0 on every cell."""
    argv = ["report", "--db", str(reference_db), "--paired-with", str(reference_db)]
    assert main([*argv, "--pair", "mgdm-R2/mgdm", "--metric", "psnr"]) == 0
    lines = capsys.readouterr().out.splitlines()
    sr4 = next(line for line in lines if line.startswith("| sr4 |"))
    assert sr4.startswith("| sr4 | mgdm-R2 vs mgdm | 6 | ")
    mean_r2, mean_mgdm = (float(v) for v in sr4.split(" | ")[3:5])
    assert mean_r2 != mean_mgdm
    assert main([*argv, "--pair", "dps/dps"]) == 0
    assert all(
        line.endswith(" | 0 ± 0 |")
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| sr4 |")
    )
    assert main(["report", "--db", str(reference_db), "--pair", "dps/mgdm"]) == 2
    assert "--pair A/B needs --paired-with DB" in capsys.readouterr().err
    assert main([*argv, "--pair", "nope/mgdm"]) == 2
    err = capsys.readouterr().err
    assert "sampler 'nope' is not in the first database; it holds" in err and err.count("\n") == 1
    assert main([*argv, "--pair", "mgdm"]) == 2
    assert "--pair takes two sampler labels as A/B" in capsys.readouterr().err
