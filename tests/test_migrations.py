"""Alembic migrations produce exactly engine.store's schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from regiesignaal.engine.store import migrate
from regiesignaal.engine.store import tables as store

TABLES = {
    "runs",
    "scheduler_state",
    "signals",
    "outbox",
    "signal_events",
    "known_rules",
    "signal_explanations",
    "silences",
    "silence_events",
    "rule_events",
    "apscheduler_jobs",
    "run_lock",
    "warnings",
    "agenda_items",
    "scheduler_heartbeat",
    "rule_sets",
}


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _differences(url: str) -> list[object]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, store.metadata))
    finally:
        engine.dispose()


def test_config_points_at_the_package() -> None:
    config = migrate.alembic_config("postgresql+psycopg://u:p%40ss@h/db")
    assert config.get_main_option("script_location") == str(migrate.MIGRATIONS_DIR)
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    # '%' in an encoded password survives ConfigParser interpolation
    assert config.get_main_option("sqlalchemy.url") == "postgresql+psycopg://u:p%40ss@h/db"
    assert migrate.head_revision() == "0012"


def test_upgrade_from_empty_matches_metadata(db_url: str) -> None:
    assert migrate.current_revision(db_url) is None
    assert not migrate.is_up_to_date(db_url)

    migrate.upgrade(db_url)

    assert migrate.current_revision(db_url) == migrate.head_revision()
    assert migrate.is_up_to_date(db_url)
    engine = _engine(db_url)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names()) == TABLES | {"alembic_version"}
        for table in store.metadata.sorted_tables:
            assert {c["name"] for c in inspector.get_columns(table.name)} == set(
                table.columns.keys()
            )
            # (PostgreSQL also lists the index behind a unique constraint: leave it out)
            indexes = inspector.get_indexes(table.name)
            assert {i["name"] for i in indexes if "duplicates_constraint" not in i} == {
                i.name for i in table.indexes
            }
        # the partial index keeps its WHERE clause (compare_metadata does not check that)
        (partial,) = [i for i in inspector.get_indexes("signals") if i["unique"]]
        assert partial["name"] == "uq_signals_one_open"
        where = next(iter(partial["dialect_options"].values()))
        assert "closed_on IS NULL" in str(where)
    finally:
        engine.dispose()

    assert _differences(db_url) == []


def test_compare_detects_a_missing_index(sqlite_url: str) -> None:
    """Negative control: the schema comparison above can fail."""
    migrate.upgrade(sqlite_url)
    engine = _engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_runs_as_of"))
    finally:
        engine.dispose()
    diffs = _differences(sqlite_url)
    assert any("ix_runs_as_of" in repr(d) for d in diffs)


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                store.runs.insert().values(
                    as_of=dt.date(2026, 3, 2),
                    trigger="manual",
                    status="succeeded",
                    started_at=dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC),
                )
            )
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(store.runs)).scalar() == 1
    finally:
        engine.dispose()
    assert migrate.current_revision(db_url) == migrate.head_revision()
    assert _differences(db_url) == []


def test_downgrade_to_base_drops_everything(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.downgrade(db_url, "base")
    engine = _engine(db_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert migrate.current_revision(db_url) is None
    migrate.upgrade(db_url)  # and back up again
    assert migrate.is_up_to_date(db_url)


def _signal(case_ref: str, closed_on: dt.date | None) -> dict[str, object]:
    return {
        "case_ref": case_ref,
        "rule_id": "MED-CHECK",
        "severity": "high",
        "opened_on": dt.date(2026, 3, 2),
        "last_seen_on": dt.date(2026, 3, 2),
        "closed_on": closed_on,
    }


def test_partial_unique_index_allows_one_open_episode(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:
            # closed episodes may repeat; one open episode next to them is fine
            conn.execute(store.signals.insert(), _signal("Z-1", dt.date(2026, 3, 3)))
            conn.execute(store.signals.insert(), _signal("Z-1", dt.date(2026, 3, 5)))
            conn.execute(store.signals.insert(), _signal("Z-1", None))
            conn.execute(store.signals.insert(), _signal("Z-2", None))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(store.signals.insert(), _signal("Z-1", None))
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(store.signals.c.case_ref, store.signals.c.closed_on).order_by(
                    store.signals.c.id
                )
            ).all()
            reopened = conn.execute(sa.select(store.signals.c.reopened)).scalars().all()
        assert [r.case_ref for r in rows] == ["Z-1", "Z-1", "Z-1", "Z-2"]
        assert reopened == [False] * 4  # server default
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_signals_table_leaves_room_for_hot_updates(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    engine = _engine(pg_url)
    try:
        with engine.connect() as conn:
            options = conn.execute(
                sa.text("SELECT reloptions FROM pg_class WHERE relname = 'signals'")
            ).scalar()
        assert options == ["fillfactor=70"]
    finally:
        engine.dispose()


def test_the_stored_scheduler_job_follows_the_package_move(db_url: str) -> None:
    """A job stored by the scheduler before the restructuring (``jobs.scheduler:...``) keeps
    its trigger and next run time and names the function in the one installed package;
    APScheduler would otherwise delete it on load, silently dropping a missed night."""
    import pickle

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from regiesignaal.jobs.ops.scheduler import JOB_ID

    migrate.upgrade(db_url, "0005")
    engine = _engine(db_url)
    try:
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)}, timezone="Europe/Amsterdam"
        )
        scheduler.start(paused=True)
        job = scheduler.add_job(
            "regiesignaal.jobs.ops.scheduler:nightly_job",
            "cron",
            hour=6,
            args=[None],
            id=JOB_ID,
            misfire_grace_time=3600,
        )
        due = job.next_run_time
        scheduler.shutdown(wait=False)
        with engine.begin() as conn:  # as the old wheel stored it
            state = pickle.loads(
                conn.execute(sa.select(store.apscheduler_jobs.c.job_state)).scalar_one()
            )
            state["func"] = "jobs.scheduler:nightly_job"
            conn.execute(store.apscheduler_jobs.update().values(job_state=pickle.dumps(state)))

        migrate.upgrade(db_url)

        loaded = SQLAlchemyJobStore(engine=engine)
        loaded.start(BackgroundScheduler(timezone="Europe/Amsterdam"), "default")
        (kept,) = loaded.get_all_jobs()
        assert kept.func_ref == "regiesignaal.jobs.ops.scheduler:nightly_job"
        assert kept.next_run_time == due and kept.misfire_grace_time == 3600
        migrate.downgrade(db_url, "0005")
        with engine.connect() as conn:
            state = pickle.loads(
                conn.execute(sa.select(store.apscheduler_jobs.c.job_state)).scalar_one()
            )
        assert state["func"] == "jobs.scheduler:nightly_job"
    finally:
        engine.dispose()
