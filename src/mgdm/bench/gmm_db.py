"""The SQLite store of the Gaussian-mixture benchmark (``mgdm bench gmm --db``): one row per
(sampler, problem) cell.

Schema :data:`SCHEMA_VERSION`; the mechanics (WAL journal, one transaction per row, the checks
of the file and its settings) are :data:`STORE`'s (:mod:`mgdm.bench.store`), as for the image
and audio benchmarks. Table ``meta`` (``key``, ``value``): ``kind`` (:data:`DB_KIND`),
``schema_version``, and the run settings every run into the file must share, ``samples`` and
``directions`` (a resume with other values is refused). Table ``cells``, one row per
``(sampler, dim, obs_dim, seed)``: the fields of :class:`~mgdm.bench.gmm.GMMRow`, the sampler's
configuration (``config``, JSON) and ``finished_at`` (Unix time). A rerun skips the finished
cells of every problem; a label stored with another configuration is refused (rename it, e.g.
``--mgdm-label``, or use another ``--db``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from dataclasses import astuple, fields
from pathlib import Path

from mgdm.bench.gmm import GMMRow
from mgdm.bench.store import CellStore, config_matches

SCHEMA_VERSION = 1
"""Version of the tables; a database of another version is refused."""

DB_KIND = "mgdm-bench-gmm"
"""The ``kind`` entry of ``meta``: what tells a Gaussian-mixture benchmark database apart."""

RUN_OPTIONS: dict[str, str] = {"samples": "--samples", "directions": "--directions"}
"""The option that sets each ``meta`` setting."""

_ROW_COLUMNS = tuple(f.name for f in fields(GMMRow))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    sampler TEXT NOT NULL, dim INTEGER NOT NULL, obs_dim INTEGER NOT NULL, seed INTEGER NOT NULL,
    sw REAL NOT NULL, sw_floor REAL NOT NULL, sw_prior REAL NOT NULL,
    nfe_forward REAL NOT NULL, nfe_backward REAL NOT NULL, seconds REAL NOT NULL,
    n_samples INTEGER NOT NULL, config TEXT NOT NULL, finished_at REAL NOT NULL,
    PRIMARY KEY (sampler, dim, obs_dim, seed)
);
"""

STORE = CellStore(
    DB_KIND,
    "mgdm bench gmm",
    SCHEMA_VERSION,
    _SCHEMA,
    ("cells",),
    "cells",
    "Gaussian-mixture benchmark database",
    RUN_OPTIONS,
)
"""The database of this benchmark."""


def run_settings(n_samples: int, n_directions: int) -> dict[str, str]:
    """The ``meta`` settings of a run (:data:`RUN_OPTIONS`)."""
    return {"samples": str(n_samples), "directions": str(n_directions)}


def insert_row(
    connection: sqlite3.Connection, row: GMMRow, config: str, finished_at: float
) -> None:
    """Write one cell in its own transaction."""
    STORE.insert(
        connection,
        "cells",
        (*_ROW_COLUMNS, "config", "finished_at"),
        (*astuple(row), config, finished_at),
    )


def stored_cells(connection: sqlite3.Connection) -> dict[tuple[str, int, int, int], GMMRow]:
    """Every finished cell by ``(sampler, dim, obs_dim, seed)``."""
    rows = [GMMRow(*values) for values in STORE.select(connection, _ROW_COLUMNS)]
    return {(r.sampler, r.dim, r.obs_dim, r.seed): r for r in rows}


def check_configs(
    connection: sqlite3.Connection,
    configs: Mapping[str, str],
    path: Path,
    objects: Mapping[str, object] | None = None,
) -> None:
    """``ValueError`` when a sampler label is stored with another configuration than this run's
    (``configs``: label -> config JSON; ``objects``: label -> the configuration itself, so that a
    field added since the cells were stored is accepted at its default, :func:`config_matches`)."""
    objects = objects or {}
    for label, config in configs.items():
        stored = {c for (c,) in STORE.select(connection, ("config",), {"sampler": label})}
        if not all(config_matches(c, objects.get(label), config) for c in stored):
            raise ValueError(
                f"{path} holds cells of {label!r} with another configuration than this run's; "
                "give the sampler another label (e.g. --mgdm-label) or use another --db."
            )


def read_gmm_db(path: Path | str) -> list[GMMRow]:
    """The rows of an existing database, in key order; ``ValueError`` when ``path`` is not one."""
    _, connection = STORE.existing(path)
    try:
        with closing(connection):
            ordered = STORE.select(
                connection, _ROW_COLUMNS, order_by=("dim", "obs_dim", "seed", "sampler")
            )
    except sqlite3.Error as error:
        raise ValueError(f"cannot read {path}: {error}.") from None
    return [GMMRow(*values) for values in ordered]
