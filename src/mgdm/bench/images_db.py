"""The SQLite store of the image benchmark: one row per cell, written one transaction at a time.

A **cell** is one (task, sampler, image, seed) of a **setting** (prior, image set, ``sigma_y``,
budget, samples per cell). Tables (schema :data:`SCHEMA_VERSION`):

* ``meta`` (``key``, ``value``): ``kind`` (:data:`DB_KIND`: what tells this database from another
  file, :mod:`mgdm.bench.store`), ``schema_version``, and the run settings every run into the
  file must share (:data:`RUN_OPTIONS`: ``batch``, the images per sampler call, and
  ``sw_directions``); a run with other settings is refused before it starts.
* ``cells``: primary key = the setting and the cell (:data:`KEY_COLUMNS`); ``status`` is
  ``done`` or ``skipped`` (then ``reason`` says why and the metrics are NULL); the metrics
  (``psnr``, ``ssim``, ``feature_dist``, ``lpips``, ``sw``, ``sw_floor``, ``mean_rmse``; NULL
  where not computed); the cost per sample (``nfe_forward``, ``nfe_backward``,
  ``seconds_per_sample``); ``batch_samples`` (samples in the sampler call); ``peak_memory_bytes``
  with ``peak_memory_kind`` (``cuda_max_allocated``: peak of ``torch.cuda.max_memory_allocated``
  over the batch; ``cpu_max_rss``: the process's peak resident set so far); the sampler's
  ``algorithm`` and ``config`` (JSON); ``device``; the cell's first sample as float16 bytes
  (``sample``, C order, shape in ``sample_shape`` as ``"C,H,W"``); ``schema_version`` and
  ``finished_at`` (Unix time).
* ``images``: the clean image of each (image set, index), float16 bytes.
* ``observations``: per (image set, task, image, seed, ``sigma_y``) a picture of ``y`` in image
  space (``A^+ y``, ``A^T y``, or ``y`` itself; NULL when there is none), float16 bytes.

Crash safety: each row is its own transaction (WAL journal), so a process killed at any point
leaves whole rows only. Under ``torchrun`` every rank writes ``DB.rank{r}``; rank 0 merges those
files into ``DB`` (:func:`merge_rank_files`) at the end of a run and at the start of the next.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mgdm.bench.store import check_database, read_meta

SCHEMA_VERSION = 1
"""Version of the tables below; a database of another version is refused."""

DB_KIND = "mgdm-bench-images"
"""The ``kind`` entry of ``meta``."""

COMMAND = "mgdm bench images"

RUN_OPTIONS: dict[str, str] = {"batch": "--batch", "sw_directions": "sw_directions"}
"""The settings stored in ``meta`` (results depend on them, the cells' key does not hold them),
and the option that sets each."""

SETTING_COLUMNS: tuple[str, ...] = ("prior", "image_set", "sigma_y", "budget", "samples_per_cell")
CELL_COLUMNS: tuple[str, ...] = ("task", "sampler", "image", "seed")
KEY_COLUMNS: tuple[str, ...] = SETTING_COLUMNS + CELL_COLUMNS
"""Everything that defines a cell (``budget = 0``: the samplers' own step counts)."""

METRICS: tuple[str, ...] = ("psnr", "ssim", "feature_dist", "lpips", "sw", "sw_floor", "mean_rmse")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    prior TEXT NOT NULL, image_set TEXT NOT NULL, sigma_y REAL NOT NULL, budget REAL NOT NULL,
    samples_per_cell INTEGER NOT NULL,
    task TEXT NOT NULL, sampler TEXT NOT NULL, image INTEGER NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'skipped')), reason TEXT,
    algorithm TEXT NOT NULL, config TEXT NOT NULL,
    {", ".join(f"{m} REAL" for m in METRICS)},
    nfe_forward REAL, nfe_backward REAL, seconds_per_sample REAL, batch_samples INTEGER,
    peak_memory_bytes INTEGER, peak_memory_kind TEXT, device TEXT,
    sample BLOB, sample_shape TEXT,
    schema_version INTEGER NOT NULL, finished_at REAL NOT NULL,
    PRIMARY KEY ({", ".join(KEY_COLUMNS)})
);
CREATE TABLE IF NOT EXISTS images (
    image_set TEXT NOT NULL, image INTEGER NOT NULL, pixels BLOB NOT NULL, shape TEXT NOT NULL,
    PRIMARY KEY (image_set, image)
);
CREATE TABLE IF NOT EXISTS observations (
    image_set TEXT NOT NULL, task TEXT NOT NULL, image INTEGER NOT NULL, seed INTEGER NOT NULL,
    sigma_y REAL NOT NULL, view BLOB, shape TEXT,
    PRIMARY KEY (image_set, task, image, seed, sigma_y)
);
"""

_TABLES = ("cells", "images", "observations")
_ALL_TABLES = ("meta", *_TABLES)


@dataclass(frozen=True)
class Setting:
    """What a whole run shares. ``budget = 0`` means each sampler's own configuration;
    ``sigma_y`` is in the ``[-1, 1]`` units of ``A(x)``."""

    prior: str
    image_set: str
    sigma_y: float
    budget: float
    samples_per_cell: int


@dataclass(frozen=True)
class CellRecord:
    """One row of ``cells`` (see the module docstring for the columns)."""

    prior: str
    image_set: str
    sigma_y: float
    budget: float
    samples_per_cell: int
    task: str
    sampler: str
    image: int
    seed: int
    status: str
    reason: str | None
    algorithm: str
    config: str
    psnr: float | None
    ssim: float | None
    feature_dist: float | None
    lpips: float | None
    sw: float | None
    sw_floor: float | None
    mean_rmse: float | None
    nfe_forward: float | None
    nfe_backward: float | None
    seconds_per_sample: float | None
    batch_samples: int | None
    peak_memory_bytes: int | None
    peak_memory_kind: str | None
    device: str | None
    sample: bytes | None
    sample_shape: str | None
    schema_version: int
    finished_at: float

    @property
    def setting(self) -> Setting:
        return Setting(*(getattr(self, c) for c in SETTING_COLUMNS))


_RECORD_COLUMNS = tuple(f.name for f in fields(CellRecord))


def encode_array(array: Tensor) -> tuple[bytes, str]:
    """``(float16 bytes in C order, "d0,d1,…")`` of a tensor."""
    values = array.detach().to("cpu", torch.float16).contiguous().numpy()
    return values.tobytes(), ",".join(str(d) for d in values.shape)


def decode_array(blob: bytes, shape: str) -> Tensor:
    """The float32 tensor stored by :func:`encode_array`."""
    dims = tuple(int(d) for d in shape.split(","))
    return torch.from_numpy(np.frombuffer(blob, dtype=np.float16).reshape(dims).astype(np.float32))


def rank_path(path: Path | str, rank: int) -> Path:
    """``DB.rank{r}``: the file rank ``r`` writes under ``torchrun``."""
    path = Path(path)
    return path.with_name(f"{path.name}.rank{rank}")


def check_db(path: Path | str, settings: Mapping[str, str]) -> None:
    """Before a run: ``path`` is a new file that can be created, or a database of this benchmark
    whose stored run settings are ``settings`` (:data:`RUN_OPTIONS`). Creates nothing;
    ``ValueError`` naming what is wrong and what is accepted."""
    check_database(
        path, DB_KIND, _ALL_TABLES, SCHEMA_VERSION, COMMAND, settings, "cells", RUN_OPTIONS
    )


def open_db(path: Path | str, settings: Mapping[str, str] | None = None) -> sqlite3.Connection:
    """Open (creating if needed) a benchmark database in autocommit mode with a WAL journal, and
    store ``kind``, ``schema_version`` and the run ``settings`` in ``meta`` (entries already
    stored are kept: :func:`check_db` compares them first).

    The tables and ``meta`` are created in one transaction, so a reader sees no table or all of
    them. ``ValueError`` when the file cannot be created or written, or is not a database of this
    benchmark (:func:`mgdm.bench.store.read_meta`).
    """
    path = Path(path)
    read_meta(path, DB_KIND, _ALL_TABLES, SCHEMA_VERSION, COMMAND, for_run=True)
    entries = [
        ("kind", DB_KIND),
        ("schema_version", str(SCHEMA_VERSION)),
        *(settings or {}).items(),
    ]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, timeout=60.0)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # WAL: safe against a killed process
        with _transaction(connection):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", entries)
    except (OSError, sqlite3.Error) as error:
        raise ValueError(f"cannot use {path} as the benchmark database: {error}.") from None
    return connection


def _existing(path: Path | str) -> sqlite3.Connection:
    """A connection to an existing database of this benchmark, for reading; ``ValueError`` when
    there is none."""
    if read_meta(path, DB_KIND, _ALL_TABLES, SCHEMA_VERSION, COMMAND) is None:
        raise ValueError(f"no benchmark database at {path}.")
    try:
        return sqlite3.connect(path, timeout=60.0)
    except sqlite3.Error as error:
        raise ValueError(f"cannot read {path}: {error}.") from None


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE … COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def insert_cell(connection: sqlite3.Connection, record: CellRecord) -> None:
    """Write one cell in its own transaction (a cell already present is kept)."""
    placeholders = ", ".join("?" for _ in _RECORD_COLUMNS)
    with _transaction(connection):
        connection.execute(
            f"INSERT OR IGNORE INTO cells ({', '.join(_RECORD_COLUMNS)}) VALUES ({placeholders})",
            tuple(asdict(record).values()),
        )


def insert_image(
    connection: sqlite3.Connection, image_set: str, image: int, pixels: Tensor
) -> None:
    """Store a clean image ``[C, H, W]`` (kept if present)."""
    blob, shape = encode_array(pixels)
    with _transaction(connection):
        connection.execute(
            "INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?)", (image_set, image, blob, shape)
        )


def insert_observation(
    connection: sqlite3.Connection,
    image_set: str,
    task: str,
    image: int,
    seed: int,
    sigma_y: float,
    view: Tensor | None,
) -> None:
    """Store the image-space picture of an observation (``None``: no picture)."""
    blob, shape = encode_array(view) if view is not None else (None, None)
    with _transaction(connection):
        connection.execute(
            "INSERT OR IGNORE INTO observations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (image_set, task, image, seed, sigma_y, blob, shape),
        )


def _setting_filter(setting: Setting) -> tuple[str, tuple[object, ...]]:
    clause = " AND ".join(f"{c} = ?" for c in SETTING_COLUMNS)
    return clause, tuple(getattr(setting, c) for c in SETTING_COLUMNS)


def finished_cells(path: Path | str, setting: Setting) -> set[tuple[str, str, int, int]]:
    """``(task, sampler, image, seed)`` of every row of ``setting`` in the database ``path``
    (done or skipped); empty when the file does not exist."""
    if not Path(path).is_file():
        return set()
    clause, values = _setting_filter(setting)
    with closing(_existing(path)) as connection:
        rows = connection.execute(
            f"SELECT {', '.join(CELL_COLUMNS)} FROM cells WHERE {clause}", values
        )
        return {(task, sampler, int(image), int(seed)) for task, sampler, image, seed in rows}


def stored_configs(path: Path | str, setting: Setting) -> dict[tuple[str, str], set[str]]:
    """The sampler configurations (JSON) already stored per ``(task, sampler)`` of ``setting``."""
    if not Path(path).is_file():
        return {}
    clause, values = _setting_filter(setting)
    configs: dict[tuple[str, str], set[str]] = {}
    with closing(_existing(path)) as connection:
        query = f"SELECT DISTINCT task, sampler, config FROM cells WHERE {clause}"
        for task, sampler, config in connection.execute(query, values):
            configs.setdefault((task, sampler), set()).add(config)
    return configs


def merge_rank_files(path: Path | str) -> int:
    """Copy the rows of every ``DB.rank*`` file beside ``path`` into ``path`` (rows present are
    kept), then delete those files; returns the number of files merged."""
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.rank\d+")
    sources = sorted(p for p in path.parent.glob("*") if pattern.fullmatch(p.name))
    if not sources:
        return 0
    with closing(open_db(path)) as connection:
        for source in sources:
            # Checks the schema version (same version: same column order for SELECT *) and
            # recovers the WAL a killed writer left.
            open_db(source).close()
            connection.execute("ATTACH DATABASE ? AS source", (str(source),))
            with _transaction(connection):
                for table in _TABLES:
                    connection.execute(
                        f"INSERT OR IGNORE INTO main.{table} SELECT * FROM source.{table}"
                    )
            connection.execute("DETACH DATABASE source")
            for leftover in (source, *(Path(f"{source}{s}") for s in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
    return len(sources)


def read_cells(path: Path | str) -> list[CellRecord]:
    """Every row of ``cells``, in key order."""
    query = f"SELECT {', '.join(_RECORD_COLUMNS)} FROM cells ORDER BY {', '.join(KEY_COLUMNS)}"
    with closing(_existing(path)) as connection:
        try:
            return [CellRecord(*row) for row in connection.execute(query)]
        except sqlite3.Error as error:
            raise ValueError(f"{path} is not a benchmark database ({error}).") from None


def read_images(path: Path | str, image_set: str, indices: Iterable[int]) -> dict[int, Tensor]:
    """The stored clean images ``{index: [C, H, W]}`` of ``image_set`` among ``indices``."""
    wanted = set(indices)
    with closing(_existing(path)) as connection:
        rows = connection.execute(
            "SELECT image, pixels, shape FROM images WHERE image_set = ?", (image_set,)
        )
        return {i: decode_array(blob, shape) for i, blob, shape in rows if i in wanted}


def read_observations(
    path: Path | str, image_set: str, task: str, seed: int, sigma_y: float, indices: Sequence[int]
) -> dict[int, Tensor | None]:
    """The stored observation pictures ``{index: [C, H, W] or None}`` of one task and seed."""
    wanted = set(indices)
    with closing(_existing(path)) as connection:
        rows = connection.execute(
            "SELECT image, view, shape FROM observations WHERE image_set = ? AND task = ? "
            "AND seed = ? AND sigma_y = ?",
            (image_set, task, seed, sigma_y),
        )
        return {
            i: (decode_array(blob, shape) if blob is not None else None)
            for i, blob, shape in rows
            if i in wanted
        }


def config_json(config: object) -> str:
    """A sampler configuration (a dataclass) as canonical JSON."""
    return json.dumps(asdict(config), sort_keys=True, default=str)
