"""What the benchmark databases share: is a file mgdm's own database, and were its rows made
with this run's settings.

``mgdm bench images`` and ``mgdm bench audio`` write SQLite files with a ``meta`` table
(``key``, ``value``) whose ``kind`` entry names the benchmark, ``schema_version`` the version of
its tables, and whose other entries are the settings every run into the file must share (e.g.
``batch``). A run checks its ``--db`` with :func:`check_database` before it loads anything; the
check reads the file without writing to it and creates nothing, so a refused run leaves no
database behind. ``mgdm report`` and ``mgdm bench audio-table`` read only files that pass
:func:`read_meta`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from contextlib import closing
from pathlib import Path

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
