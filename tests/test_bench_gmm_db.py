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
    other_config = [*RUN, "--seeds", "0", "--samplers", "mgdm", "-R", "3", "--db", str(db)]
    assert "another configuration" in refused(other_config, tmp_path)
    (tmp_path / "notes.sqlite").write_text("not a database")
    not_ours = [*RUN, "--seeds", "0", "--db", str(tmp_path / "notes.sqlite")]
    assert "not a readable SQLite database" in refused(not_ours, tmp_path)
    assert _count(db) == before


def test_mgdm_runs_the_gmm_domain_preset_unless_another_is_named(tmp_path):
    """Without --preset `bench gmm` runs the gmm preset (R = 2, K = 87: 169 + 336 calls per
    sample), labelled mgdm; --preset default runs the image default (K = 172: 170 + 338),
    labelled mgdm-default."""
    plain, named = tmp_path / "plain.json", tmp_path / "named.json"
    base = ["bench", "gmm", "--dim", "4", "--obs-dim", "1", "--samples", "16", "--seeds", "0"]
    base += ["--directions", "8", "--quiet"]
    assert main([*base, "--samplers", "mgdm", "--json", str(plain)]) == 0
    assert main([*base, "--samplers", "mgdm", "--preset", "default", "--json", str(named)]) == 0
    calls = {
        row["sampler"]: (row["nfe_forward"], row["nfe_backward"])
        for path in (plain, named)
        for row in json.loads(path.read_text())
    }
    assert calls == {"mgdm": (169, 336), "mgdm-default": (170, 338)}
