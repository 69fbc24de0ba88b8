"""The SQLite store of the audio benchmark (``mgdm bench audio``): one row per cell.

Schema :data:`SCHEMA_VERSION`; the mechanics (WAL journal, one transaction per row, the checks
of the file and its settings) are :data:`STORE`'s (:mod:`mgdm.bench.store`). Table ``meta``
(``key``, ``value``): ``kind`` (:data:`DB_KIND`, what tells this database from another file),
``schema_version``, ``data`` (the data file's SHA-256 and fingerprint, JSON), ``prior`` and
``independent_prior`` (SHA-256 over the prior folder's ``prior.json`` and ``model.safetensors``
files), ``sigma_y`` and ``batch`` (mixtures per sampler call); a run whose setting differs from
the stored one is refused (the file and ``batch`` are checked before anything is loaded, the
rest once the inputs are). Table ``cells``, one row per ``(sampler, mixture, seed, budget)``
(``budget = 0``: the samplers' own configurations), written in its own transaction (WAL
journal): ``status`` (``done``; ``diverged``: the sampler returned non-finite stems, metrics
NULL; ``skipped``: see ``reason``),
``algorithm`` (registry name), ``prior`` (``joint`` or ``independent``), ``config`` (JSON),
``si_sdri_{stem}`` per stem and ``si_sdri_mean`` (dB), ``windows_kept``, ``windows_total`` and
``window_samples`` of the metric, per mixture ``nfe_forward`` and ``nfe_backward`` (network calls
without / with a backward pass, summed over the mixture's windows) and ``seconds`` (the sampler
call's time divided by its mixtures), ``batch_mixtures``, ``peak_memory_bytes`` and
``peak_memory_kind`` (as in :mod:`mgdm.bench.images_db`), ``device``, ``finished_at`` (Unix
time). A rerun skips the finished (``done``, ``diverged``) rows; a batch of ``batch_size``
consecutive mixtures with a missing row is sampled again whole (same samples as an uninterrupted
run) and only its missing rows are written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from mgdm.audio.constants import STEMS
from mgdm.bench.store import CellStore

SCHEMA_VERSION = 1
"""Version of the tables; a database of another version is refused."""

DB_KIND = "mgdm-audio-bench"
"""The ``kind`` entry of ``meta``: what tells an audio-benchmark database from another file."""

COMMAND = "mgdm bench audio"

RUN_OPTIONS: dict[str, str] = {"batch": "--batch"}
"""The option that sets each ``meta`` setting a user can repeat (the others are digests)."""

STEM_COLUMNS: tuple[str, ...] = tuple(f"si_sdri_{stem}" for stem in STEMS)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    sampler TEXT NOT NULL, mixture INTEGER NOT NULL, seed INTEGER NOT NULL, budget REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'diverged', 'skipped')), reason TEXT,
    algorithm TEXT NOT NULL, prior TEXT NOT NULL, config TEXT NOT NULL, finished_at REAL NOT NULL,
    {", ".join(f"{c} REAL" for c in STEM_COLUMNS)}, si_sdri_mean REAL,
    windows_kept INTEGER, windows_total INTEGER, window_samples INTEGER,
    nfe_forward REAL, nfe_backward REAL, seconds REAL, batch_mixtures INTEGER,
    peak_memory_bytes INTEGER, peak_memory_kind TEXT, device TEXT,
    PRIMARY KEY (sampler, mixture, seed, budget)
);
"""


@dataclass(frozen=True)
class AudioRow:
    """One row of ``cells`` (module docstring); ``si_sdri`` holds the per-stem values in
    :data:`STEMS` order (columns ``si_sdri_{stem}``). The measured fields are ``None`` in a
    skipped row."""

    sampler: str
    mixture: int
    seed: int
    budget: float
    status: str
    reason: str | None
    algorithm: str
    prior: str
    config: str
    finished_at: float
    si_sdri: tuple[float | None, ...] = (None,) * len(STEMS)
    si_sdri_mean: float | None = None
    windows_kept: int | None = None
    windows_total: int | None = None
    window_samples: int | None = None
    nfe_forward: float | None = None
    nfe_backward: float | None = None
    seconds: float | None = None
    batch_mixtures: int | None = None
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    device: str | None = None

    @property
    def key(self) -> tuple[str, int, int, float]:
        return self.sampler, self.mixture, self.seed, self.budget

    def values(self) -> tuple[object, ...]:
        """The values in :data:`_COLUMNS` order."""
        flat = astuple(self)
        split = _FIELDS.index("si_sdri")
        return (*flat[:split], *self.si_sdri, *flat[split + 1 :])

    @classmethod
    def from_values(cls, values: Sequence[object]) -> AudioRow:
        """The inverse of :meth:`values`."""
        split, count = _FIELDS.index("si_sdri"), len(STEM_COLUMNS)
        stems = tuple(values[split : split + count])
        return cls(*values[:split], stems, *values[split + count :])  # type: ignore[arg-type]


_FIELDS = tuple(f.name for f in fields(AudioRow))
_COLUMNS = tuple(c for f in _FIELDS for c in (STEM_COLUMNS if f == "si_sdri" else (f,)))

STORE = CellStore(
    DB_KIND,
    COMMAND,
    SCHEMA_VERSION,
    _SCHEMA,
    ("cells",),
    "separations",
    "audio-benchmark database",
    RUN_OPTIONS,
)
"""The database of this benchmark."""

check_audio_db = STORE.check
open_audio_db = STORE.open
check_setting = STORE.store_settings


def insert_row(connection: sqlite3.Connection, row: AudioRow) -> None:
    """Write one row in its own transaction (replacing a ``skipped`` row of the same key)."""
    STORE.insert(connection, "cells", _COLUMNS, row.values(), replace=True)


def stored_rows(connection: sqlite3.Connection) -> list[AudioRow]:
    """Every row of ``cells``, in key order."""
    rows = STORE.select(connection, _COLUMNS, order_by=("sampler", "budget", "mixture", "seed"))
    return [AudioRow.from_values(values) for values in rows]


def read_audio_db(path: Path | str) -> tuple[dict[str, str], list[AudioRow]]:
    """``(meta, rows)`` of an existing database (read only); ``ValueError`` when ``path`` is not
    one."""
    meta, connection = STORE.existing(path)
    try:
        with closing(connection):
            return meta, stored_rows(connection)
    except sqlite3.Error as error:
        raise ValueError(f"cannot read {path}: {error}.") from None
