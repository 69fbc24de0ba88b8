"""The one cell store of the benchmarks: SQLite files of rows written one transaction at a time,
resumed, sharded over ``torchrun`` ranks and merged back, and checked before a run.

``mgdm bench images`` (:mod:`mgdm.bench.images_db`) and ``mgdm bench audio``
(:mod:`mgdm.bench.audio_db`) each describe their database as a :class:`CellStore`: a ``meta``
table (``key``, ``value``) whose ``kind`` entry names the benchmark, ``schema_version`` the
version of its tables, and whose other entries are the settings every run into the file must
share (e.g. ``batch``); a ``cells`` table, one row per cell; and any tables beside it. A run
checks its ``--db`` with :meth:`CellStore.check` before it loads anything; the check reads the
file without writing to it and creates nothing, so a refused run leaves no database behind.
``mgdm report`` and ``mgdm bench audio-table`` read only files that pass :func:`read_meta`.

Crash safety: :meth:`CellStore.open` sets a WAL journal and autocommit, and every write is its own
transaction (:func:`transaction`), so a process killed at any point (SIGKILL included) leaves
whole rows only. Under ``torchrun`` rank ``r`` writes ``DB.rank{r}`` (:func:`rank_path`) and rank
0 merges those files into ``DB`` (:meth:`CellStore.merge_rank_files`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mgdm.files import check_output_file

_SHOWN_LENGTH = 24
"""Setting values up to this length are quoted in messages (longer ones are digests or JSON)."""


def read_meta(
    path: Path | str,
    kind: str,
    tables: Collection[str],
    schema_version: int,
    command: str,
    *,
    for_run: bool = False,
) -> dict[str, str] | None:
    """The ``meta`` entries of the ``kind`` database at ``path``: ``None`` when there is no such
    file, ``{}`` for an SQLite file without tables (a new one). Only read, through a read-write
    connection all the same: a read-only one leaves ``-wal`` and ``-shm`` files behind.

    A file is a database of ``kind`` when its ``meta`` says so, or when it has no ``kind`` entry
    and exactly the ``tables`` of ``kind`` (written before mgdm recorded the kind). ``ValueError``
    for a folder, a file that is not SQLite, the database of something else, or another
    ``schema_version``; the message says what is accepted: a database that ``command`` wrote, or
    also a new file ``for_run`` (a run of ``command`` creates it).
    """
    path = Path(path)
    if not path.exists():
        return None
    accepted = f"name {'a new file or ' if for_run else ''}a database that `{command}` wrote"
    if path.is_dir():
        raise ValueError(f"{path} is a folder; {accepted}.")
    try:
        with closing(sqlite3.connect(path, timeout=60.0)) as db:
            names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            meta = dict(db.execute("SELECT key, value FROM meta")) if "meta" in names else {}
    except sqlite3.Error as error:
        raise ValueError(
            f"{path} is not a readable SQLite database ({error}); {accepted}."
        ) from None
    if not names:
        return {}
    if meta.get("kind", kind if names == set(tables) else None) != kind:
        raise ValueError(
            f"{path} is not a database of `{command}` (its tables: {', '.join(sorted(names))}); "
            f"{accepted}."
        )
    if meta.get("schema_version") != str(schema_version):
        raise ValueError(
            f"{path} holds schema version {meta.get('schema_version')}; this mgdm reads and "
            f"writes version {schema_version}."
        )
    return meta


def check_settings(
    path: Path | str,
    stored: Mapping[str, str],
    wanted: Mapping[str, str],
    rows: str,
    options: Mapping[str, str],
) -> None:
    """``ValueError`` when a setting of ``wanted`` differs from the one ``stored`` with the
    ``rows`` (e.g. ``"cells"``) of the database ``path``; a setting not stored yet matches (the run
    stores it). ``options[key]`` names the option that sets ``key`` (e.g. ``"--batch"``): the
    message then tells to rerun with the stored value; always, to use another ``--db``."""
    for key, value in wanted.items():
        old = stored.get(key, value)
        if old == value:
            continue
        name = key.replace("_", " ")
        shown = max(len(old), len(value)) <= _SHOWN_LENGTH
        values = f" ({old} stored, {value} now)" if shown else ""
        option = options.get(key)
        advice = f"rerun with {option} {old}" if option and shown else f"rerun with the same {name}"
        raise ValueError(
            f"{path} holds {rows} of another {name} than this run's{values}; {advice}, or use "
            "another --db."
        )


def check_database(
    path: Path | str,
    kind: str,
    tables: Collection[str],
    schema_version: int,
    command: str,
    wanted: Mapping[str, str],
    rows: str,
    options: Mapping[str, str],
) -> None:
    """Before a run of ``command``: ``path`` is a new file that can be created, or a database of
    ``kind`` (:func:`read_meta`) whose stored settings are ``wanted`` (:func:`check_settings`).
    Creates nothing; ``ValueError`` naming what is wrong."""
    meta = read_meta(path, kind, tables, schema_version, command, for_run=True)
    try:
        check_output_file(path, "--db")
    except ValueError as error:
        raise ValueError(f"cannot use {path} as the database of `{command}`: {error}") from None
    if meta:
        check_settings(path, meta, wanted, rows, options)


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE … COMMIT`` (``ROLLBACK`` on error) on an autocommit connection: the
    statements inside land whole or not at all, even when the process is killed."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def encode_array(array: Tensor) -> tuple[bytes, str]:
    """``(float16 bytes in C order, "d0,d1,…")`` of a tensor."""
    values = array.detach().to("cpu", torch.float16).contiguous().numpy()
    return values.tobytes(), ",".join(str(d) for d in values.shape)


def decode_array(blob: bytes, shape: str) -> Tensor:
    """The float32 tensor stored by :func:`encode_array`."""
    dims = tuple(int(d) for d in shape.split(","))
    return torch.from_numpy(np.frombuffer(blob, dtype=np.float16).reshape(dims).astype(np.float32))


def config_json(config: object) -> str:
    """A sampler configuration (a dataclass) as canonical JSON."""
    return json.dumps(asdict(config), sort_keys=True, default=str)


def config_matches(stored: str, config: object | None, current: str) -> bool:
    """Whether a configuration stored by :func:`config_json` is this run's (``config``, whose
    JSON is ``current``): equal field by field, where a field the stored JSON lacks (a field added
    to the configuration since the row was stored) must hold its default. Without ``config`` (a
    sampler that cannot run), the JSON texts must be equal."""
    if stored == current:
        return True
    if config is None or not is_dataclass(config):
        return False
    old, new = json.loads(stored), json.loads(current)
    if set(old) - set(new):
        return False
    defaults = json.loads(config_json(type(config)())) if _has_defaults(type(config)) else {}
    return all(
        old[key] == value if key in old else defaults.get(key, _MISSING) == value
        for key, value in new.items()
    )


_MISSING = object()


def _has_defaults(cls: type) -> bool:
    """Whether every field of the dataclass ``cls`` has a default (it can be built bare)."""
    return all(f.default is not MISSING or f.default_factory is not MISSING for f in fields(cls))


def rank_path(path: Path | str, rank: int) -> Path:
    """``DB.rank{r}``: the file rank ``r`` writes under ``torchrun``."""
    path = Path(path)
    return path.with_name(f"{path.name}.rank{rank}")


@dataclass(frozen=True)
class CellStore:
    """One kind of benchmark database: its tables and how runs open, extend and merge it.

    Attributes:
        kind: the ``kind`` entry of ``meta``.
        command: the command that writes it (named in messages).
        schema_version: the version of ``schema``; another version is refused.
        schema: ``CREATE TABLE IF NOT EXISTS`` statements of ``meta`` and the row tables.
        tables: the row tables (``cells`` first), without ``meta``.
        rows: what a row of ``cells`` is, in messages (``"cells"``, ``"separations"``).
        title: what the file is, in messages (``"benchmark database"``).
        options: the option that sets each run setting of ``meta`` (``{"batch": "--batch"}``).
    """

    kind: str
    command: str
    schema_version: int
    schema: str
    tables: tuple[str, ...]
    rows: str
    title: str
    options: Mapping[str, str]

    @property
    def all_tables(self) -> tuple[str, ...]:
        return ("meta", *self.tables)

    def read_meta(self, path: Path | str, *, for_run: bool = False) -> dict[str, str] | None:
        """:func:`read_meta` for this kind of database."""
        return read_meta(
            path, self.kind, self.all_tables, self.schema_version, self.command, for_run=for_run
        )

    def check(self, path: Path | str, settings: Mapping[str, str]) -> None:
        """Before a run: :func:`check_database` of ``path`` with the run ``settings``."""
        check_database(
            path,
            self.kind,
            self.all_tables,
            self.schema_version,
            self.command,
            settings,
            self.rows,
            self.options,
        )

    def open(
        self, path: Path | str, settings: Mapping[str, str] | None = None
    ) -> sqlite3.Connection:
        """Open (creating if needed) a database of this kind in autocommit mode with a WAL
        journal (:func:`transaction` groups writes), and store ``kind``, ``schema_version`` and
        the run ``settings`` in ``meta`` (entries already stored are kept: :meth:`check` or
        :meth:`store_settings` compares them).

        The tables and ``meta`` are created in one transaction, so a reader sees no table or all
        of them. ``ValueError`` when the file cannot be created or written, or is not a database
        of this kind (:func:`read_meta`).
        """
        path = Path(path)
        self.read_meta(path, for_run=True)
        entries = [
            ("kind", self.kind),
            ("schema_version", str(self.schema_version)),
            *(settings or {}).items(),
        ]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None, timeout=60.0)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # WAL: safe against a killed process
            with transaction(connection):
                for statement in self.schema.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", entries)
        except (OSError, sqlite3.Error) as error:
            raise ValueError(f"cannot use {path} as the {self.title}: {error}.") from None
        return connection

    def existing(self, path: Path | str) -> tuple[dict[str, str], sqlite3.Connection]:
        """``(meta, connection)`` of an existing database of this kind, for reading;
        ``ValueError`` when there is none."""
        meta = self.read_meta(path)
        if not meta:
            raise ValueError(f"no {self.title} at {path}.")
        try:
            return meta, sqlite3.connect(path, timeout=60.0)
        except sqlite3.Error as error:
            raise ValueError(f"cannot read {path}: {error}.") from None

    def store_settings(
        self, connection: sqlite3.Connection, settings: Mapping[str, str], path: Path | str
    ) -> None:
        """Add ``settings`` to the ``meta`` of the open database ``path``; ``ValueError``
        (:func:`check_settings`) when one differs from the stored entry."""
        stored = dict(connection.execute("SELECT key, value FROM meta"))
        check_settings(path, stored, settings, self.rows, self.options)
        with transaction(connection):
            connection.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", settings.items())

    def select(
        self,
        connection: sqlite3.Connection,
        columns: Sequence[str],
        where: Mapping[str, object] | None = None,
        order_by: Sequence[str] = (),
        *,
        distinct: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The ``columns`` of the rows of ``cells`` whose columns equal ``where``'s values, in
        ``order_by`` order (what a resumed run skips, what a report reads)."""
        where = where or {}
        query = f"SELECT {'DISTINCT ' if distinct else ''}{', '.join(columns)} FROM cells"
        if where:
            query += " WHERE " + " AND ".join(f"{c} = ?" for c in where)
        if order_by:
            query += f" ORDER BY {', '.join(order_by)}"
        return list(connection.execute(query, tuple(where.values())))

    def insert(
        self,
        connection: sqlite3.Connection,
        table: str,
        columns: Sequence[str],
        values: Sequence[object],
        *,
        replace: bool = False,
    ) -> None:
        """Write one row of ``table`` in its own transaction: a row already present under the
        same key is kept, or replaced with ``replace``."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        placeholders = ", ".join("?" for _ in columns)
        with transaction(connection):
            connection.execute(
                f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
                tuple(values),
            )

    def merge_rank_files(self, path: Path | str) -> int:
        """Copy the rows of every ``DB.rank*`` file beside ``path`` (:func:`rank_path`) into
        ``path`` (rows present are kept), then delete those files; returns the number of files
        merged."""
        path = Path(path)
        pattern = re.compile(re.escape(path.name) + r"\.rank\d+")
        sources = sorted(p for p in path.parent.glob("*") if pattern.fullmatch(p.name))
        if not sources:
            return 0
        with closing(self.open(path)) as connection:
            for source in sources:
                # Checks the schema version (same version: same column order for SELECT *) and
                # recovers the WAL a killed writer left.
                self.open(source).close()
                connection.execute("ATTACH DATABASE ? AS source", (str(source),))
                with transaction(connection):
                    for table in self.tables:
                        connection.execute(
                            f"INSERT OR IGNORE INTO main.{table} SELECT * FROM source.{table}"
                        )
                connection.execute("DETACH DATABASE source")
                for leftover in (source, *(Path(f"{source}{s}") for s in ("-wal", "-shm"))):
                    leftover.unlink(missing_ok=True)
        return len(sources)
