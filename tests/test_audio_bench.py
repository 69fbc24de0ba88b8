"""`mgdm bench audio` and `audio-table` on tiny random priors and random stems of 64 samples."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import torch

from mgdm.audio.constants import STEMS
from mgdm.audio.dataset import StemData, save_stem_tensor
from mgdm.audio.prior import AudioPrior, save_audio_prior
from mgdm.audio.unet1d import UNet1DConfig, build_unet1d
from mgdm.bench.audio import AudioVariant, audio_variants, plan_variant
from mgdm.bench.audio_db import open_audio_db, read_audio_db
from mgdm.cli import main

torch.set_num_threads(1)

LENGTH = 64
TINY = {"channels": (4, 8), "factors": (4,), "head_channels": 4}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A four-stem prior, four single-stem priors and four examples, of which example 1 has one
    active stem (not scoreable)."""
    root = tmp_path_factory.mktemp("audio-bench")
    joint = build_unet1d(UNet1DConfig(in_channels=4, **TINY), seed=0)
    save_audio_prior(root / "joint", joint, STEMS, 8000, LENGTH)
    for index, stem in enumerate(STEMS):
        single = build_unet1d(UNet1DConfig(in_channels=1, **TINY), seed=index + 1)
        save_audio_prior(root / "independent" / stem, single, (stem,), 8000, LENGTH)
    stems = 0.1 * torch.randn(4, 4, LENGTH, generator=torch.Generator().manual_seed(0))
    stems[1, 1:] = 0.0
    data = StemData(stems, STEMS, 8000, "test", 2_000_000, 1, "TimGM6mb.sf2")
    save_stem_tensor(root / "test.safetensors", data)
    return {
        "root": root,
        "prior": root / "joint",
        "independent": root / "independent",
        "data": root / "test.safetensors",
    }


def _bench(files, db: Path, *extra: str) -> list[str]:
    return [
        "bench", "audio", "--prior", str(files["prior"]), "--data", str(files["data"]),
        "--db", str(db), "--mixtures", "3", "--budget", "70", "--quiet", *extra,
    ]  # fmt: skip


def test_rows_resume_and_table(files, tmp_path, capsys) -> None:
    db = tmp_path / "bench.sqlite"
    argv = _bench(
        files, db, "--independent-prior", str(files["independent"]),
        "--samplers", "mgdm,ddnm,msdm", "--mgdm-sweeps", "1,2", "--batch", "2",
    )  # fmt: skip
    assert main(argv) == 0
    assert "15 separations, 0 diverged, 0 skipped, 0 already" in capsys.readouterr().out
    meta, rows = read_audio_db(db)
    assert {r.sampler for r in rows} == {"mgdm-R1", "mgdm-R2", "mgdm-independent", "ddnm", "msdm"}
    assert {r.mixture for r in rows} == {0, 2, 3}  # example 1 has a single active stem
    for row in rows:
        assert row.status == "done" and row.budget == 70.0 and row.seed == 0
        assert all(math.isfinite(v) for v in row.si_sdri)
        assert math.isclose(row.si_sdri_mean, sum(row.si_sdri) / 4)
        assert (row.windows_kept, row.windows_total, row.window_samples) == (1, 1, LENGTH)
        assert row.nfe_forward + row.nfe_backward > 0 and row.seconds > 0
        assert row.peak_memory_bytes > 0 and row.batch_mixtures in (1, 2)
    independent = [r for r in rows if r.sampler == "mgdm-independent"]
    assert {r.prior for r in independent} == {"independent"} and '"gibbs_sweeps": 2' in (
        independent[0].config
    )
    assert set(meta) >= {"data", "prior", "independent_prior", "sigma_y"}

    # a rerun computes nothing
    assert main(argv) == 0
    assert "0 separations, 0 diverged, 0 skipped, 15 already" in capsys.readouterr().out
    assert read_audio_db(db)[1] == rows

    # a lost row: its batch is sampled again, only that row is written, with the same values
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("DELETE FROM cells WHERE sampler = 'msdm' AND mixture = 2")
    assert main(argv) == 0
    assert "1 separations, 0 diverged, 0 skipped, 14 already" in capsys.readouterr().out
    again = {r.key: r for r in read_audio_db(db)[1]}
    lost = next(r for r in rows if r.key == ("msdm", 2, 0, 70.0))
    assert again[lost.key].si_sdri == pytest.approx(lost.si_sdri, abs=1e-6)

    out = tmp_path / "report"
    assert main(["bench", "audio-table", "--db", str(db), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| sampler | bass | drums | guitar | piano | mean | NFE fwd | NFE fwd+bwd |" in text
    assert "one window covering each clip (64 samples" in text
    assert text.count("**") >= 2 * 5  # one best per SI-SDRi column
    assert "| mgdm-R1 |" in text and "| mgdm-independent |" in text
    assert (out / "table.md").read_text() in text
    assert (out / "compute_curve.png").stat().st_size > 0


def test_samples_do_not_depend_on_the_batch(files, tmp_path, capsys, monkeypatch) -> None:
    """--batch 1 and 3 separate the same stems up to float32 rounding: within docs/determinism.md's
    bound for DDNM+ (1e-4 of S = max(peak of the mixes, peak of the stems)). The stems are compared,
    not SI-SDRi: a log-ratio of a poor estimate magnifies rounding differences."""
    from mgdm.audio.dataset import load_stem_tensor
    from mgdm.bench import audio as bench

    separate_batch, stems = bench.separate_batch, {}

    def recorded(*args, **kwargs):
        separated = separate_batch(*args, **kwargs)
        stems[batch].append(separated.stems)
        return separated

    monkeypatch.setattr(bench, "separate_batch", recorded)
    runs = {}
    for batch in ("1", "3"):
        stems[batch] = []
        db = tmp_path / f"batch{batch}.sqlite"
        assert main(_bench(files, db, "--samplers", "ddnm", "--batch", batch)) == 0
        runs[batch] = {r.key: r.status for r in read_audio_db(db)[1]}
    assert "mgdm-independent left out" not in capsys.readouterr().out  # no mgdm requested
    assert runs["1"] == runs["3"] and set(runs["1"].values()) == {"done"} and len(runs["1"]) == 3
    assert [len(calls) for calls in stems.values()] == [3, 1]
    one, three = torch.cat(stems["1"]), torch.cat(stems["3"])  # mixtures 0, 2, 3 in order
    assert one.shape == three.shape == (3, 4, LENGTH) and bool(torch.isfinite(one).all())
    assert not torch.equal(one[0], one[1])  # distinct mixtures, distinct stems
    mixes = load_stem_tensor(files["data"]).stems[[0, 2, 3]].sum(1)
    scale = max(float(mixes.abs().max()), float(one.abs().max()))
    assert float((one - three).abs().max()) <= 1e-4 * scale


def test_only_runs_the_named_variants_with_the_same_rows(files, tmp_path) -> None:
    whole, part = tmp_path / "whole.sqlite", tmp_path / "part.sqlite"
    assert main(_bench(files, whole, "--samplers", "ddnm,msdm")) == 0
    assert main(_bench(files, part, "--samplers", "ddnm,msdm", "--only", "msdm")) == 0
    rows = {r.key: r.si_sdri for r in read_audio_db(part)[1]}
    assert {key[0] for key in rows} == {"msdm"} and len(rows) == 3
    for row in read_audio_db(whole)[1]:
        if row.sampler == "msdm":
            assert row.si_sdri == pytest.approx(rows[row.key], abs=1e-6)


def test_variants_and_skipped_samplers(files) -> None:
    variants, notes = audio_variants("all", [1, 2, 4, 6], independent=False)
    labels = [v.label for v in variants]
    assert labels[:4] == ["mgdm-R1", "mgdm-R2", "mgdm-R4", "mgdm-R6"] and "msdm" in labels
    assert not {"psld", "resample"} & set(labels)
    assert notes == ["mgdm-independent left out: no --independent-prior given."]
    preset, _ = audio_variants("mgdm", [], independent=True)
    assert [(v.label, v.overrides) for v in preset] == [("mgdm", {}), ("mgdm-independent", {})]
    corrected, _ = audio_variants("mgdm", [2], True, "covariance-corrected")
    assert [(v.label, v.build().config.likelihood) for v in corrected] == [
        ("mgdm-cc-R2", "covariance-corrected"),
        ("mgdm-independent-cc", "covariance-corrected"),
    ]
    with pytest.raises(ValueError, match="unknown MGDM likelihood 'exact'; accepted: plain"):
        audio_variants("mgdm", [2], False, "exact")
    default, _ = audio_variants("mgdm", [1], True, mgdm_preset="default")
    assert [v.label for v in default] == ["mgdm-default-R1", "mgdm-independent-default"]
    config = default[0].build().config
    assert (config.lr_mode, config.denoising_steps, config.index_rule) == (
        "bridge-std",
        1,
        "deterministic",
    )
    with pytest.raises(ValueError, match="unknown MGDM preset 'best'; accepted: audio, default"):
        audio_variants("mgdm", [1], False, mgdm_preset="best")
    rto, _ = audio_variants("mgdm", [2], True, mgdm_fit="rto")
    assert [(v.label, v.build().config.fit) for v in rto] == [
        ("mgdm-rto-R2", "rto"),
        ("mgdm-independent-rto", "rto"),
    ]
    with pytest.raises(ValueError, match="unknown MGDM fit 'adam'; accepted: variational, rto"):
        audio_variants("mgdm", [2], False, mgdm_fit="adam")
    network = build_unet1d(UNet1DConfig(in_channels=4, **TINY), seed=0)
    prior = AudioPrior(network, STEMS, 8000, LENGTH)
    plan = plan_variant(AudioVariant("mgdm-R6", "mgdm", {"gibbs_sweeps": 6}), prior, 70, 1e-4)
    assert plan.sampler is None and "below MGDM's minimum" in plan.reason


def test_skipped_rows_and_table_budgets(files, tmp_path, capsys) -> None:
    db = tmp_path / "skips.sqlite"
    argv = _bench(files, db, "--samplers", "mgdm", "--mgdm-sweeps", "6")
    assert main(argv) == 0
    assert "0 separations, 0 diverged, 3 skipped" in capsys.readouterr().out
    rows = read_audio_db(db)[1]
    assert {r.status for r in rows} == {"skipped"} and rows[0].si_sdri_mean is None
    assert main(["bench", "audio-table", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "| mgdm-R6 | skipped |" in text and "mgdm-R6 skipped: a budget of 70 calls" in text
    assert main(["bench", "audio-table", "--db", str(db), "--budget", "5"]) == 2
    assert "choose one --budget of the database: 70." in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--mixtures", "4"], "the data holds 3 scoreable mixtures"),
        (["--mixtures", "0"], "--mixtures must be an integer >= 1"),
        (["--samplers", "foo"], "unknown sampler 'foo'"),
        (["--seeds", "2-1"], "cannot read the seeds"),
        (["--budget", "-3"], "the budget must be a number of network calls > 0"),
        (["--independent-prior", "PRIOR"], "holds a prior of the stems"),
        (["--data", "PRIOR/prior.json"], "is not a readable stem file"),
        (["--only", "mgdm-R3"], "--only names mgdm-R3, not among this run's variants"),
    ],
)
def test_bad_inputs_give_one_line(files, tmp_path, capsys, change, message) -> None:
    change = [c.replace("PRIOR", str(files["prior"])) for c in change]
    assert main([*_bench(files, tmp_path / "db.sqlite"), *change]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mgdm bench audio: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_databases_are_checked(files, tmp_path, capsys) -> None:
    assert main(["bench", "audio-table", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no audio-benchmark database at" in capsys.readouterr().err
    foreign = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(foreign)) as connection:
        connection.execute("CREATE TABLE cells (x)")
    with pytest.raises(ValueError, match="is not a database of `mgdm bench audio`"):
        open_audio_db(foreign)
    db = tmp_path / "db.sqlite"
    with closing(open_audio_db(db)) as connection, connection:
        connection.execute("INSERT INTO meta VALUES ('prior', 'another')")
    assert main(_bench(files, db, "--samplers", "ddnm")) == 2
    assert "holds separations of another prior than this run's" in capsys.readouterr().err
