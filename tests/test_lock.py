"""One run at a time per store, across hosts (issue 8; issue 9 failure 10)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from ops_support import AS_OF, make_settings, make_source, run_rows

from regiesignaal.engine.store import lock
from regiesignaal.engine.store.tables import run_lock, runs
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.pipeline import RunLocked, RunOptions, run


def _insert_running(store_url: str, *, host: str, pid: int, beat_ago: dt.timedelta) -> int:
    now = dt.datetime.now(dt.UTC)
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    runs.insert().values(
                        as_of=AS_OF, trigger="scheduler", status="running",
                        started_at=now - dt.timedelta(hours=1), host=host, pid=pid,
                        heartbeat_at=now - beat_ago,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )  # fmt: skip
    finally:
        engine.dispose()


def test_a_run_that_died_on_another_host_does_not_block(tmp_path: Path, db_url: str) -> None:
    """Issue 9 failure 10: a container that died left 'running' behind under another host
    name; the next run goes ahead without --force and marks it aborted."""
    source_url, _, _ = make_source(tmp_path)
    settings = make_settings(source_url, db_url)
    dead = _insert_running(db_url, host="container-0ld", pid=1, beat_ago=dt.timedelta(minutes=6))
    summary = run(settings, RunOptions(AS_OF))
    assert summary.status == "succeeded"
    rows = {r.id: r for r in run_rows(db_url)}
    assert rows[dead].status == "aborted"
    assert "afgebroken" in rows[dead].errors[-1]


@pytest.mark.postgres
def test_postgres_lock_dies_with_its_holder(tmp_path: Path, pg_url: str) -> None:
    """On PostgreSQL even a fresh heartbeat does not block: the holder's lock is gone."""
    source_url, _, _ = make_source(tmp_path)
    settings = make_settings(source_url, pg_url)
    dead = _insert_running(pg_url, host="elders", pid=77, beat_ago=dt.timedelta(seconds=5))
    assert run(settings, RunOptions(AS_OF)).status == "succeeded"
    assert {r.id: r.status for r in run_rows(pg_url)}[dead] == "aborted"


@pytest.mark.postgres
def test_a_held_postgres_lock_refuses_and_names_the_holder(tmp_path: Path, pg_url: str) -> None:
    source_url, _, _ = make_source(tmp_path)
    settings = make_settings(source_url, pg_url)
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with other.connect() as conn:
        conn.execute(sa.text("SET application_name = 'regiesignaal host-b pid 4242'"))
        assert conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": lock.LOCK_KEY})
        with pytest.raises(RunLocked, match="host-b pid 4242"):
            run(settings, RunOptions(AS_OF))
    other.dispose()
    rows = run_rows(pg_url)
    assert [r.status for r in rows] == ["locked"]
    assert run(settings, RunOptions(AS_OF)).status == "succeeded", "free again: runs"


def test_a_live_run_refuses_with_exit_4_and_is_recorded(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: the lock row of a live run (fresh heartbeat) on another host."""
    db_url = sqlite_url
    source_url, _, _ = make_source(tmp_path)
    make_settings(source_url, db_url)
    live = _insert_running(db_url, host="host-b", pid=4242, beat_ago=dt.timedelta(seconds=5))
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # what the live run on host-b holds
        now = dt.datetime.now(dt.UTC)
        conn.execute(
            run_lock.insert().values(
                id=1, token="b", host="host-b", pid=4242, acquired_at=now, heartbeat_at=now
            )
        )
    engine.dispose()
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source_url)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", db_url)
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["run", "--as-of", AS_OF.isoformat(), "--no-mail"])
    assert result.exit_code == lock.EXIT_LOCKED, result.output
    assert "host-b pid 4242" in result.output
    assert [r.status for r in run_rows(db_url)] == ["running", "locked"]
    # the operator clears it: refused while it looks alive, done with --force
    refused = CliRunner().invoke(main, ["runs", "abort", str(live)])
    assert refused.exit_code == 1 and "lijkt nog te lopen" in refused.output
    done = CliRunner().invoke(main, ["runs", "abort", str(live), "--force"])
    assert done.exit_code == 0, done.output
    assert [r.status for r in run_rows(db_url)] == ["aborted", "locked"]
    again = CliRunner().invoke(main, ["run", "--as-of", AS_OF.isoformat(), "--no-mail"])
    assert again.exit_code == 0, again.output


def test_the_heartbeat_keeps_a_long_run_alive(tmp_path: Path, sqlite_url: str) -> None:
    source_url, _, _ = make_source(tmp_path)
    make_settings(source_url, sqlite_url)
    me = lock.Identity.here()
    row_id = _insert_running(sqlite_url, host=me.host, pid=me.pid, beat_ago=dt.timedelta(hours=1))
    engine = sa.create_engine(sqlite_url)
    try:
        assert lock.beat(engine, me) == 1
        with engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == row_id)).one()
            assert not lock.is_dead(row, lock.utcnow())
            later = lock.utcnow() + lock.HEARTBEAT_STALE + dt.timedelta(seconds=1)
            other = {**row._mapping, "host": "elders"}
            assert lock.is_dead(other, later), "without heartbeats it counts as dead"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_runs_abort_on_postgres_follows_the_lock(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_url, _, _ = make_source(tmp_path)
    make_settings(source_url, pg_url)
    stuck = _insert_running(pg_url, host="elders", pid=9, beat_ago=dt.timedelta(seconds=1))
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", pg_url)
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with other.connect() as conn:  # its holder is alive: the lock is taken
        conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": lock.LOCK_KEY})
        refused = CliRunner().invoke(main, ["runs", "abort", str(stuck)])
        assert refused.exit_code == 1 and "lijkt nog te lopen" in refused.output
    other.dispose()
    done = CliRunner().invoke(main, ["runs", "abort", str(stuck)])  # the holder is gone
    assert done.exit_code == 0, done.output
    assert [r.status for r in run_rows(pg_url)] == ["aborted"]
    missing = CliRunner().invoke(main, ["runs", "abort", "999"])
    assert missing.exit_code == 1 and "bestaat niet" in missing.output
