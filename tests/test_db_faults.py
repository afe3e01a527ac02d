"""Database trouble during operations: a dropped idle PostgreSQL connection, a SQLite store
held by a long compose."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from regiesignaal.engine.store import db, migrate
from regiesignaal.engine.store.db import store_engine
from regiesignaal.jobs.cli import run_cli


@pytest.mark.postgres
def test_a_dropped_idle_postgres_connection_is_replaced(pg_url: str) -> None:
    engine = store_engine(pg_url)
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with admin.connect() as conn:  # the server (or a firewall) drops the idle one
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with engine.connect() as conn:
            again = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        assert again != pid
    finally:
        engine.dispose()
        admin.dispose()


@pytest.fixture
def locked_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sqlite3.Connection:
    """An upgraded SQLite store with a write transaction held open (a run composing)."""
    path = tmp_path / "store.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_TLS", "none")
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE runs SET status = status")
    return holder


def _deliver(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["regiesignaal", "deliver"])
    try:
        run_cli()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_deliver_on_a_busy_sqlite_store_gives_the_right_hint(
    locked_store: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT", 0.05)
    try:
        code = _deliver(monkeypatch)
    finally:
        locked_store.rollback()
        locked_store.close()
    err = capsys.readouterr().err
    assert code == 2
    assert "bezet" in err and "database-URL" not in err


def test_deliver_waits_for_a_busy_sqlite_store(
    locked_store: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    result: list[int] = []
    started = threading.Event()

    def deliver() -> None:
        started.set()
        result.append(_deliver(monkeypatch))

    thread = threading.Thread(target=deliver)
    thread.start()
    started.wait()
    threading.Event().wait(0.3)  # let it meet the lock (passes either way)
    locked_store.commit()
    locked_store.close()
    thread.join()
    assert result == [0]  # nothing due: no error, no "database is locked"
