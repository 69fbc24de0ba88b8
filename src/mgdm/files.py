"""Output paths checked before work starts, and files written whole or not at all.

A command checks every path it will write (:func:`check_output_file`, :func:`check_output_dir`)
before it loads a model or runs a sampler, so a run does not fail at its end on a path it could
have refused at once; the checks create nothing. The writers then write to a temporary name in
the target folder and move it into place (:func:`write_atomically`), so an interrupted or failed
write leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def _check_creatable_below(path: Path, what: str, folder: bool = False) -> None:
    """The nearest existing ancestor of ``path`` (of ``path`` itself when ``folder``) must be a
    folder in which files can be created (probed by creating and removing a temporary file,
    which also catches read-only and virtual file systems such as ``/sys`` where permission bits
    say yes to root)."""
    ancestor = _nearest_existing(path if folder else path.parent)
    if not ancestor.is_dir():
        raise ValueError(f"{what} {path}: {ancestor} is a file, not a folder.")
    try:
        handle, probe = tempfile.mkstemp(prefix=".mgdm-probe-", dir=ancestor)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"{what} {path}: cannot create files in {ancestor} ({reason}).") from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(path: Path | str, what: str, suffixes: Sequence[str] = ()) -> Path:
    """``path`` as a file that can be written: not a folder, below folders that exist or can be
    created, with one of ``suffixes`` (lower case, e.g. ``(".png",)``) if given. ``what`` names
    the option in the message (e.g. ``"--out"``). Creates nothing."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{what} must name a {' or '.join(suffixes)} file; got {path}.")
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; name a file.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path} exists and is not writable.")
    _check_creatable_below(path, what)  # a write creates a temporary beside the file
    return path


def check_output_dir(path: Path | str, what: str) -> Path:
    """``path`` as a folder that exists and is writable, or can be created. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder.")
    _check_creatable_below(path, what, folder=True)
    return path


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write to; moved onto ``path`` when the
    block ends normally, removed when it raises. Creates the parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` and move the result onto ``path`` (see :func:`atomic_path`)."""
    with atomic_path(path) as temporary:
        write(temporary)
    return Path(path)
