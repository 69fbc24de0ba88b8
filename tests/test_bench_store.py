"""The benchmarks' one cell store (mgdm.bench.store.CellStore): identity, settings, rows kept or
replaced, a killed transaction, torchrun rank files merged, arrays round-tripped."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
import torch

from mgdm.bench.store import CellStore, decode_array, encode_array, rank_path, transaction

STORE = CellStore(
    kind="test-bench",
    command="mgdm bench test",
    schema_version=1,
    schema="""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (name TEXT PRIMARY KEY, value REAL NOT NULL);
""",
    tables=("cells",),
    rows="cells",
    title="test database",
    options={"batch": "--batch"},
)


def _values(connection: sqlite3.Connection) -> list[tuple]:
    return STORE.select(connection, ("name", "value"), order_by=("name",))


def test_rows_are_kept_or_replaced_and_settings_checked(tmp_path):
    path = tmp_path / "db.sqlite"
    STORE.check(path, {"batch": "4"})  # a new file: accepted, nothing created
    assert not path.exists()
    with closing(STORE.open(path, {"batch": "4"})) as connection:
        STORE.insert(connection, "cells", ("name", "value"), ("a", 1.0))
        STORE.insert(connection, "cells", ("name", "value"), ("a", 2.0))  # kept: 1.0
        STORE.insert(connection, "cells", ("name", "value"), ("b", 3.0))
        STORE.insert(connection, "cells", ("name", "value"), ("b", 4.0), replace=True)
        assert _values(connection) == [("a", 1.0), ("b", 4.0)]
        assert STORE.select(connection, ("value",), {"name": "b"}) == [(4.0,)]
    STORE.check(path, {"batch": "4"})
    with pytest.raises(ValueError, match=r"another batch than this run's \(4 stored, 8 now\); "):
        STORE.check(path, {"batch": "8"})
    meta, connection = STORE.existing(path)
    with closing(connection):
        assert meta["kind"] == "test-bench" and meta["batch"] == "4"
        with pytest.raises(ValueError, match="rerun with --batch 4"):
            STORE.store_settings(connection, {"batch": "2"}, path)


def test_foreign_files_are_refused_and_left_alone(tmp_path):
    foreign = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(foreign)) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(
        ValueError, match=r"not a database of `mgdm bench test` \(its tables: people\)"
    ):
        STORE.open(foreign)
    with closing(sqlite3.connect(foreign)) as connection:
        tables = {n for (n,) in connection.execute("SELECT name FROM sqlite_master")}
    assert tables == {"people"}
    (tmp_path / "text.sqlite").write_text("not SQLite")
    with pytest.raises(ValueError, match="not a readable SQLite database"):
        STORE.check(tmp_path / "text.sqlite", {})
    with pytest.raises(ValueError, match="no test database"):
        STORE.existing(tmp_path / "missing.sqlite")


def test_a_failed_transaction_writes_nothing(tmp_path):
    with closing(STORE.open(tmp_path / "db.sqlite")) as connection:
        with pytest.raises(RuntimeError), transaction(connection):
            connection.execute("INSERT INTO cells VALUES ('a', 1.0)")
            raise RuntimeError("killed in the middle")
        assert _values(connection) == []


def test_rank_files_are_merged_and_removed(tmp_path):
    path = tmp_path / "db.sqlite"
    for rank, rows in enumerate([[("a", 1.0), ("c", 3.0)], [("b", 2.0)]]):
        with closing(STORE.open(rank_path(path, rank))) as connection:
            for row in rows:
                STORE.insert(connection, "cells", ("name", "value"), row)
    assert STORE.merge_rank_files(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]
    with closing(STORE.open(path)) as connection:
        assert _values(connection) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert STORE.merge_rank_files(path) == 0


def test_arrays_round_trip_in_float16():
    array = torch.linspace(-1, 1, 24).reshape(2, 3, 4)
    blob, shape = encode_array(array)
    assert shape == "2,3,4" and len(blob) == 2 * 24
    torch.testing.assert_close(decode_array(blob, shape), array.half().float(), rtol=0, atol=0)


def test_a_configuration_stored_before_a_field_was_added_still_matches():
    """Rows stored before a configuration gained a field (MGDM's ``fit``) resume as long as the
    run keeps the new field at its default; any other difference is refused."""
    import json
    from dataclasses import asdict, replace

    from mgdm.bench.store import config_json, config_matches
    from mgdm.samplers.mgdm import preset

    config = preset("variational")  # fit at its field default, as before the field existed
    old = asdict(config)
    del old["fit"], old["fit_particles"]
    stored = json.dumps(old, sort_keys=True, default=str)
    assert config_matches(stored, config, config_json(config))
    changed = replace(config, fit="exact")
    assert not config_matches(stored, changed, config_json(changed))
    other = replace(config, num_steps=50)
    assert not config_matches(stored, other, config_json(other))
    assert not config_matches(stored, None, config_json(config))  # no object: texts must match
    removed = json.dumps({**old, "gone": 1}, sort_keys=True)
    assert not config_matches(removed, config, config_json(config))
