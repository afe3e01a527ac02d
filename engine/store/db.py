"""How the product opens its databases (the source and the store): one set of engine
options, and one answer to "is this URL a SQLite file, and where".

No module creates an engine with options of its own, so every command gets the same
behaviour under faults: a pooled connection is pinged before use (a PostgreSQL connection
dropped while idle is replaced, not fatal), SQLite waits ``SQLITE_BUSY_TIMEOUT`` seconds
for another process's write, and bound parameters never appear in error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

SQLITE_BUSY_TIMEOUT = 300.0
"""Seconds a SQLite connection waits for another process's write (a run composing its
messages holds the store for a while; a ``deliver`` meanwhile waits instead of failing)."""


def engine_options(url: str) -> dict[str, Any]:
    """Keyword arguments for ``sqlalchemy.create_engine`` (see the module docstring)."""
    options: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": True}
    if sa.make_url(url).get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    return options


def sqlite_file(url: str) -> Path | None:
    """The file of a file-based SQLite URL; None for other databases, in-memory SQLite and
    ``file:`` URIs."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_dir(url: str) -> Path | None:
    """Create the parent folder of a file-based SQLite database; return the file's path.

    Does nothing (returns None) for other databases, in-memory SQLite and ``file:`` URIs.
    """
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def store_engine(url: str) -> sa.Engine:
    """An engine for the signal store; a SQLite file's folder is created when missing (the
    file itself by ``regiesignaal db upgrade``)."""
    ensure_sqlite_dir(url)
    return sa.create_engine(url, **engine_options(url))
