"""The drop folder, touched without following links (issue 17).

Whoever can write the drop folder must not be able to make the product read, write, move or
delete anything outside it. So, below the configured folder itself:

- every name is opened relative to its folder's descriptor with ``O_NOFOLLOW`` (a symbolic
  link is refused, never followed) and ``O_NONBLOCK`` (a named pipe cannot block the open);
  what is read must then be a regular file (``fstat``), and at most a given size;
- the product's own names (``archive``, ``refused``, the marker
  ``.regiesignaal-accepted.json``) must be a real folder or a regular file; anything else
  there is reported, never used;
- files the product writes go through a temporary file and a rename;
- removing an entry removes the link, never its target (``shutil.rmtree`` with ``dir_fd``
  does not follow links inside the tree either).

Messages name paths, never file contents.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:=-]{0,99}\Z")
"""Names of export folders the product takes (a sortable timestamp such as 2026-03-02T0300)."""


class DropFolderError(Exception):
    """Something in the drop folder is not what the product may use; the message names the
    path and what to do, never a file's contents."""


@contextmanager
def opened_dir(path: Path) -> Iterator[int]:
    """A descriptor of the configured drop folder itself (the operator chose it, so a link
    to it is followed; nothing below it is)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise DropFolderError(
            f"{path}: de dropmap is niet te openen ({exc.strerror}); controleer [intake] drop_dir"
        ) from None
    try:
        yield fd
    finally:
        os.close(fd)


def kind(parent: int, name: str) -> str | None:
    """``dir``, ``file``, ``link`` or ``other`` for an entry (None: it does not exist)."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "other"


def _not_own(shown: Path, what: str) -> DropFolderError:
    return DropFolderError(
        f"{shown}: is geen {what} (een koppeling, een ander soort bestand of iets dat de "
        "dropmap niet zelf heeft gemaakt); regiesignaal gebruikt deze naam zelf. Verwijder het "
        "(de dropmap maakt het opnieuw aan) en draai de nacht opnieuw"
    )


@contextmanager
def subdir(parent: int, name: str, shown: Path, *, create: bool = False) -> Iterator[int]:
    """A descriptor of a real sub-folder (a link or anything else is refused)."""
    if create and kind(parent, name) is None:
        with suppress(FileExistsError):
            os.mkdir(name, 0o750, dir_fd=parent)
    try:
        fd = os.open(name, _DIR, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise DropFolderError(f"{shown}: map ontbreekt") from None
        raise _not_own(shown, "gewone map") from None
    try:
        yield fd
    finally:
        os.close(fd)


def check_own_dir(parent: int, name: str, shown: Path) -> None:
    """Refuse when ``name`` exists but is not a real folder."""
    if kind(parent, name) not in (None, "dir"):
        raise _not_own(shown, "gewone map")


def check_own_file(parent: int, name: str, shown: Path) -> None:
    """Refuse when ``name`` exists but is not a regular file."""
    if kind(parent, name) not in (None, "file"):
        raise _not_own(shown, "gewoon bestand")


@contextmanager
def _regular(parent: int, name: str, shown: Path) -> Iterator[int]:
    try:
        fd = os.open(name, _READ, dir_fd=parent)
    except FileNotFoundError:
        raise DropFolderError(f"{shown}: bestand ontbreekt") from None
    except OSError:
        raise DropFolderError(
            f"{shown}: is geen gewoon bestand (een koppeling?); lever het bestand zelf in de map"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DropFolderError(
                f"{shown}: is geen gewoon bestand (een map, pijp of apparaat); lever het "
                "bestand zelf in de map"
            )
        os.set_blocking(fd, True)
        yield fd
    finally:
        os.close(fd)


def read_regular(parent: int, name: str, shown: Path, limit: int) -> bytes:
    """The contents of a regular file of at most ``limit`` bytes (checked before reading)."""
    with _regular(parent, name, shown) as fd:
        if os.fstat(fd).st_size > limit:
            raise DropFolderError(f"{shown}: groter dan {limit // 1024} KB; het is niet gelezen")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise DropFolderError(f"{shown}: groter dan {limit // 1024} KB; het is niet gelezen")
        return data


def copy_regular(
    parent: int, name: str, shown: Path, target: Path | None = None
) -> tuple[str, int]:
    """A regular file's SHA-256 and line count, copied to ``target`` (a private path) on the
    way when given."""
    digest = hashlib.sha256()
    lines = 0
    with (
        _regular(parent, name, shown) as fd,
        os.fdopen(os.dup(fd), "rb") as src,
        target.open("xb") if target is not None else open(os.devnull, "wb") as dst,
    ):
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            dst.write(chunk)
    return digest.hexdigest(), lines


def remove(parent: int, name: str) -> None:
    """Remove an entry: a folder with everything in it, or a file or link (never a link's
    target)."""
    if kind(parent, name) == "dir":
        shutil.rmtree(name, dir_fd=parent)
    else:
        with suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)


def move(src: int, name: str, dst: int) -> None:
    """Move entry ``name`` from folder ``src`` into folder ``dst`` (replacing one of the same
    name there). A rename moves the entry itself, never what a link points at."""
    remove(dst, name)
    os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)


def write_atomic(parent: int, name: str, data: bytes) -> None:
    """Write ``name`` through a temporary file and a rename (an existing link of that name is
    replaced, its target untouched)."""
    tmp = f".{name}.{os.getpid()}.tmp"
    remove(parent, tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o640, dir_fd=parent)  # fmt: skip
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        remove(parent, tmp)
        raise
    os.fsync(parent)
