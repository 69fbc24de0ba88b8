"""The SQLite store of the image benchmark: one row per cell, written one transaction at a time.

A **cell** is one (task, sampler, image, seed) of a **setting** (prior, image set, ``sigma_y``,
budget, samples per cell). Tables (schema :data:`SCHEMA_VERSION`):

* ``meta`` (``key``, ``value``): ``kind`` (:data:`DB_KIND`: what tells this database from another
  file), ``schema_version``, and the run settings every run into the
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

The mechanics (WAL journal, one transaction per row, ``DB.rank{r}`` files under ``torchrun``
merged by rank 0 at the end of a run and at the start of the next) are :data:`STORE`'s
(:mod:`mgdm.bench.store`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from torch import Tensor

from mgdm.bench.store import CellStore, decode_array, encode_array

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

STORE = CellStore(
    DB_KIND,
    COMMAND,
    SCHEMA_VERSION,
    _SCHEMA,
    ("cells", "images", "observations"),
    "cells",
    "benchmark database",
    RUN_OPTIONS,
)
"""The database of this benchmark; its run settings are :data:`RUN_OPTIONS`."""

check_db = STORE.check
open_db = STORE.open
merge_rank_files = STORE.merge_rank_files


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
_IMAGE_COLUMNS = ("image_set", "image", "pixels", "shape")
_OBSERVATION_COLUMNS = ("image_set", "task", "image", "seed", "sigma_y", "view", "shape")


def insert_cell(connection: sqlite3.Connection, record: CellRecord) -> None:
    """Write one cell in its own transaction (a cell already present is kept)."""
    STORE.insert(connection, "cells", _RECORD_COLUMNS, tuple(asdict(record).values()))


def insert_image(
    connection: sqlite3.Connection, image_set: str, image: int, pixels: Tensor
) -> None:
    """Store a clean image ``[C, H, W]`` (kept if present)."""
    blob, shape = encode_array(pixels)
    STORE.insert(connection, "images", _IMAGE_COLUMNS, (image_set, image, blob, shape))


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
    values = (image_set, task, image, seed, sigma_y, blob, shape)
    STORE.insert(connection, "observations", _OBSERVATION_COLUMNS, values)


def _setting_filter(setting: Setting) -> dict[str, object]:
    """The columns and values that select the cells of ``setting``."""
    return {c: getattr(setting, c) for c in SETTING_COLUMNS}


def _existing(path: Path | str) -> sqlite3.Connection:
    """A connection to the existing database ``path``, for reading (:meth:`CellStore.existing`)."""
    return STORE.existing(path)[1]


def finished_cells(path: Path | str, setting: Setting) -> set[tuple[str, str, int, int]]:
    """``(task, sampler, image, seed)`` of every row of ``setting`` in the database ``path``
    (done or skipped); empty when the file does not exist."""
    if not Path(path).is_file():
        return set()
    with closing(_existing(path)) as connection:
        rows = STORE.select(connection, CELL_COLUMNS, _setting_filter(setting))
    return {(task, sampler, int(image), int(seed)) for task, sampler, image, seed in rows}


def stored_configs(path: Path | str, setting: Setting) -> dict[tuple[str, str], set[str]]:
    """The sampler configurations (JSON) already stored per ``(task, sampler)`` of ``setting``."""
    if not Path(path).is_file():
        return {}
    with closing(_existing(path)) as connection:
        rows = STORE.select(
            connection, ("task", "sampler", "config"), _setting_filter(setting), distinct=True
        )
    configs: dict[tuple[str, str], set[str]] = {}
    for task, sampler, config in rows:
        configs.setdefault((task, sampler), set()).add(config)
    return configs


def read_cells(path: Path | str) -> list[CellRecord]:
    """Every row of ``cells``, in key order."""
    with closing(_existing(path)) as connection:
        try:
            rows = STORE.select(connection, _RECORD_COLUMNS, order_by=KEY_COLUMNS)
        except sqlite3.Error as error:
            raise ValueError(f"{path} is not a benchmark database ({error}).") from None
    return [CellRecord(*row) for row in rows]


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
