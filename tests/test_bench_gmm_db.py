"""`mgdm bench gmm --db`: the Gaussian-mixture benchmark on the benchmarks' one cell store."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from mgdm.bench.gmm_db import read_gmm_db
from mgdm.cli import main

RUN = ["bench", "gmm", "--dim", "4", "--obs-dim", "1", "2", "--samples", "48"]
RUN += ["--directions", "32", "--quiet"]


def _rows(path) -> list[dict]:
    rows = json.loads(path.read_text())
    for row in rows:
        row.pop("seconds")  # wall time: the one field a rerun changes
    return rows


def _count(db) -> int:
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute("SELECT COUNT(*) FROM cells").fetchone()[0]


def test_a_resumed_run_gives_the_rows_of_a_fresh_one(tmp_path, capsys):
    db = str(tmp_path / "gmm.sqlite")
    assert main([*RUN, "--seeds", "0", "--samplers", "mgdm", "--db", db]) == 0
    first = read_gmm_db(db)
    assert [(r.sampler, r.dim, r.obs_dim, r.seed) for r in first] == [
        ("mgdm", 4, 1, 0),
        ("mgdm", 4, 2, 0),
    ]
    # a larger run into the same file computes only the cells it lacks
    resumed, fresh = tmp_path / "resumed.json", tmp_path / "fresh.json"
    assert (
        main([*RUN, "--seeds", "0-1", "--samplers", "mgdm,dps", "--db", db, "--json", str(resumed)])
        == 0
    )
    assert main([*RUN, "--seeds", "0-1", "--samplers", "mgdm,dps", "--json", str(fresh)]) == 0
    assert _rows(resumed) == _rows(fresh) and len(_rows(fresh)) == 8
    stored = read_gmm_db(db)
    assert len(stored) == 8 and [r for r in stored if r.seed == 0 and r.sampler == "mgdm"] == first
    capsys.readouterr()
    assert main(["bench", "gmm-table", db]) == 0
    assert "| mgdm |" in capsys.readouterr().out.replace("  ", " ")


def test_other_settings_or_configurations_are_refused(tmp_path, refused):
    db = tmp_path / "gmm.sqlite"
    assert main([*RUN, "--seeds", "0", "--samplers", "mgdm", "--db", str(db)]) == 0
    before = _count(db)
    other_samples = [*RUN, "--seeds", "0", "--samples", "64", "--db", str(db)]
    assert "rerun with --samples 48" in refused(other_samples, tmp_path)
    other_config = [*RUN, "--seeds", "0", "--samplers", "mgdm", "-R", "2", "--db", str(db)]
    assert "another configuration" in refused(other_config, tmp_path)
    (tmp_path / "notes.sqlite").write_text("not a database")
    not_ours = [*RUN, "--seeds", "0", "--db", str(tmp_path / "notes.sqlite")]
    assert "not a readable SQLite database" in refused(not_ours, tmp_path)
    assert _count(db) == before
