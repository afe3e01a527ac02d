"""A database failure names its real cause (issue 17, item 15), tested against real SQLite
(``max_page_count``, ``mode=ro``, a busy file) and real PostgreSQL (refused connection,
unknown host, database and user, a read-only transaction, a backend terminated mid-run).
The old tip was "controleer de database-URL" for all of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from regiesignaal.engine.store import migrate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.cli.failure import describe


def _error(url: str, *statements: str, **options: object) -> sa.exc.SQLAlchemyError:
    engine = sa.create_engine(url, **options)  # type: ignore[arg-type]
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    except sa.exc.SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("no database error")


def _line(exc: BaseException) -> str:
    line, code = describe(exc)
    assert code == 2 and "\n" not in line and line.startswith("Databasefout: ")
    return line


def test_a_full_sqlite_database_says_the_disk_is_full(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'full.sqlite'}"
    exc = _error(
        url,
        "CREATE TABLE t (x TEXT)",
        "PRAGMA max_page_count = 3",
        "INSERT INTO t SELECT hex(randomblob(2000)) FROM (WITH RECURSIVE c(n) AS (SELECT 1 "
        "UNION ALL SELECT n + 1 FROM c WHERE n < 200) SELECT n FROM c)",
    )
    line = _line(exc)
    assert "vol" in line and "ruimte" in line and "database-URL" not in line


def test_a_read_only_sqlite_store_says_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", f"sqlite:///file:{path}?mode=ro&uri=true")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main,
        ["purge"],  # a write to the store (explanations add reads the source first now)
    )
    assert result.exit_code == 2, result.output
    assert "alleen-lezen" in result.output and "database-URL" not in result.output
    assert "Traceback" not in result.output


def test_a_busy_sqlite_file_says_busy(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        exc = _error(f"sqlite:///{path}", "INSERT INTO t VALUES (1)", connect_args={"timeout": 0})
    finally:
        holder.rollback()
        holder.close()
    assert "bezet" in _line(exc)


def test_an_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    exc = _error(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}", "SELECT 1")
    assert "kan niet geopend worden" in _line(exc)


def test_missing_tables_say_db_upgrade(tmp_path: Path) -> None:
    exc = _error(f"sqlite:///{tmp_path / 'empty.sqlite'}", "SELECT * FROM runs")
    assert "db upgrade" in _line(exc)


PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("url", "gist"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/test", "weigert de verbinding"),
        ("postgresql+psycopg://postgres@no-such-host.invalid/test", "hostnaam"),
        (f"{PG}/regiesignaal_no_such_database_17", "bestaat niet op de server"),
        ("postgresql+psycopg://no_such_user_17@127.0.0.1:5432/test", "inloggen"),
    ],
    ids=["refused", "unknown-host", "unknown-database", "unknown-user"],
)
def test_postgres_connection_failures_name_their_cause(
    url: str, gist: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", url)
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["runs"])
    assert result.exit_code == 2, result.output
    assert gist in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0, "one line"


@pytest.mark.postgres
def test_a_read_only_postgres_transaction_says_read_only(pg_url: str) -> None:
    exc = _error(pg_url, "SET TRANSACTION READ ONLY", "CREATE TABLE t (x int)")
    assert "alleen-lezen" in _line(exc)


@pytest.mark.postgres
def test_a_server_gone_mid_run_says_so(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with pytest.raises(sa.exc.SQLAlchemyError) as caught:
                conn.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()
        admin.dispose()
    line = _line(caught.value)
    assert "viel weg" in line and "database-URL" not in line
