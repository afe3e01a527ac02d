"""The scheduler: trigger times across clock changes, and real scheduler processes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from ops_support import RULES, make_source, run_rows

from regiesignaal.engine.store.tables import apscheduler_jobs, signals
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.ops.scheduler import JOB_ID, fire_times, last_fire_time, make_trigger
from regiesignaal.jobs.pipeline import upgrade_store

AMS = ZoneInfo("Europe/Amsterdam")
ROOT = Path(__file__).resolve().parents[1]


def test_default_schedule_is_working_days_early_morning_amsterdam() -> None:
    s = load_settings(env={})
    times = fire_times(s, dt.datetime(2026, 3, 5, 12, tzinfo=AMS), 5)  # a Thursday
    assert [t.strftime("%a %H:%M") for t in times] == [
        "Fri 06:00", "Mon 06:00", "Tue 06:00", "Wed 06:00", "Thu 06:00",
    ]  # fmt: skip
    assert all(t.tzinfo is not None and t.astimezone(AMS).hour == 6 for t in times)


def test_trigger_across_the_spring_clock_change() -> None:
    """Last Sunday of March 2026 (29th): 02:00 -> 03:00."""
    s = load_settings(env={})
    fri, mon = fire_times(s, dt.datetime(2026, 3, 26, 12, tzinfo=AMS), 2)
    assert (fri.date(), mon.date()) == (dt.date(2026, 3, 27), dt.date(2026, 3, 30))
    assert fri.astimezone(dt.UTC).hour == 5 and mon.astimezone(dt.UTC).hour == 4
    assert fri.astimezone(AMS).hour == mon.astimezone(AMS).hour == 6, "06:00 local both"
    daily = dataclasses.replace(s, schedule="02:30", schedule_days="mon-sun")
    sat, sun, nxt = fire_times(daily, dt.datetime(2026, 3, 28, 0, tzinfo=AMS), 3)
    assert sun.astimezone(AMS).date() == dt.date(2026, 3, 29), "the missing hour still runs"
    assert sun.astimezone(dt.UTC) == dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
    assert [t.astimezone(AMS).date().day for t in (sat, sun, nxt)] == [28, 29, 30]


def test_trigger_across_the_autumn_clock_change() -> None:
    """Last Sunday of October 2026 (25th): 03:00 -> 02:00; 02:30 happens twice."""
    s = load_settings(env={})
    fri, mon = fire_times(s, dt.datetime(2026, 10, 22, 12, tzinfo=AMS), 2)
    assert fri.astimezone(dt.UTC).hour == 4 and mon.astimezone(dt.UTC).hour == 5
    assert fri.astimezone(AMS).hour == mon.astimezone(AMS).hour == 6
    daily = dataclasses.replace(s, schedule="02:30", schedule_days="mon-sun")
    times = fire_times(daily, dt.datetime(2026, 10, 24, 12, tzinfo=AMS), 3)
    days = [t.astimezone(AMS).date() for t in times]
    assert days == [dt.date(2026, 10, 25), dt.date(2026, 10, 26), dt.date(2026, 10, 27)]
    assert len(set(days)) == 3, "the repeated hour runs once"
    assert last_fire_time(daily, times[0] + dt.timedelta(hours=2)) == times[0]


# ------------------------------------------------------------------ real processes


def _wait_for(what: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def _config(tmp_path: Path, at: dt.datetime, cases: int = 120) -> Path:
    source_url, _, _ = make_source(tmp_path, cases=cases)
    path = tmp_path / "regiesignaal.toml"
    path.write_text(
        f'[database]\nsource_url = "{source_url}"\n'
        f'store_url = "sqlite:///{tmp_path / "store.sqlite"}"\n'
        f'[rules]\ndir = "{RULES}"\n'
        f'[run]\nschedule = "{at.astimezone(AMS):%H:%M:%S}"\nworkers = 1\n'
        '[scheduler]\ndays = "mon-sun"\n[mail]\nenabled = false\n'
    )
    return path


class Scheduler:
    def __init__(self, config: Path, log: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "regiesignaal", "--config", str(config), "scheduler"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def started(self) -> bool:
        return b"scheduler gestart" in self.log.read_bytes()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=120)


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    started: list[Scheduler] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def _scheduled(store_url: str) -> list[sa.Row[tuple[object, ...]]]:
    return [r for r in run_rows(store_url) if r.trigger == "scheduler"]


def _next_run_time(store_url: str) -> float:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            return float(conn.execute(sa.select(apscheduler_jobs.c.next_run_time)).scalar_one())
    finally:
        engine.dispose()


def _seed(config: Path, next_run: dt.datetime) -> None:
    """The scheduler's job in the store, due at ``next_run``, as a scheduler that ran
    earlier (and went down) leaves it; written straight into APScheduler's job store."""
    settings = load_settings(config, env={})
    upgrade_store(settings)
    engine = sa.create_engine(settings.store_url)
    never_started = BackgroundScheduler(timezone=settings.tz)
    jobstore = SQLAlchemyJobStore(engine=engine)
    jobstore.start(never_started, "default")
    job = Job(
        never_started, id=JOB_ID, func="regiesignaal.jobs.ops.scheduler:nightly_job",
        trigger=make_trigger(settings), args=[str(config)], kwargs={},
        name="regiesignaal nightly", misfire_grace_time=settings.misfire_grace_minutes * 60,
        coalesce=True, max_instances=1, next_run_time=next_run, executor="default",
    )  # fmt: skip
    jobstore.remove_all_jobs()
    jobstore.add_job(job)
    engine.dispose()


@pytest.mark.slow
def test_a_night_missed_while_down_runs_once_on_return(
    tmp_path: Path, schedulers: list[Scheduler]
) -> None:
    scheduled = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)  # the configured time
    config = _config(tmp_path, scheduled)
    night = dt.datetime.now(AMS).replace(microsecond=0) - dt.timedelta(seconds=30)
    _seed(config, night)  # the scheduler was down when this night was due
    store_url = _store(tmp_path)
    back = Scheduler(config, tmp_path / "back.log")  # back within the grace time
    schedulers.append(back)
    _wait_for(lambda: any(r.status == "succeeded" for r in _scheduled(store_url)))
    assert back.stop() == 0
    rows = _scheduled(store_url)
    assert [r.status for r in rows] == ["succeeded"], "exactly once"
    # the night is the configured time's date (near midnight not the seeded job's)
    assert rows[0].as_of == scheduled.astimezone(AMS).date()
    assert _next_run_time(store_url) > time.time() + 3600, "moved on to the next night"
    again = Scheduler(config, tmp_path / "again.log")  # a restart does not run it again
    schedulers.append(again)
    _wait_for(again.started)
    assert again.stop() == 0
    assert len(_scheduled(store_url)) == 1


@pytest.mark.slow
def test_a_schedule_a_few_seconds_ahead_runs_and_two_schedulers_run_it_once(
    tmp_path: Path, schedulers: list[Scheduler]
) -> None:
    config = _config(tmp_path, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    store_url = _store(tmp_path)
    _seed(config, dt.datetime.now(AMS) + dt.timedelta(days=1))
    for name in ("a", "b"):
        schedulers.append(Scheduler(config, tmp_path / f"{name}.log"))
    _wait_for(lambda: all(s.started() for s in schedulers))
    _seed(config, dt.datetime.now(AMS) + dt.timedelta(seconds=3))  # both are watching
    _wait_for(lambda: any(r.status == "succeeded" for r in _scheduled(store_url)))
    _wait_for(lambda: all(r.status != "running" for r in _scheduled(store_url)))
    for s in schedulers:
        assert s.stop() == 0
    statuses = sorted(r.status for r in _scheduled(store_url))
    assert statuses.count("succeeded") == 1, statuses
    assert set(statuses) <= {"succeeded", "locked", "skipped"}, statuses


@pytest.mark.slow
def test_two_nightly_processes_at_once_process_the_night_once(tmp_path: Path) -> None:
    config = _config(tmp_path, dt.datetime.now(dt.UTC))
    upgrade_store(load_settings(config, env={}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
    command = [sys.executable, "-m", "regiesignaal", "--config", str(config), "nightly",
               "--trigger", "scheduler"]  # fmt: skip
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]  # fmt: skip
    codes = sorted(p.wait(timeout=180) for p in procs)
    statuses = sorted(r.status for r in _scheduled(_store(tmp_path)))
    assert statuses.count("succeeded") == 1 and len(statuses) == 2, statuses
    other = next(s for s in statuses if s != "succeeded")
    assert (other, codes) in [("locked", [0, 4]), ("skipped", [0, 0])]


@pytest.mark.slow
def test_sigterm_during_a_run_leaves_a_consistent_store(
    tmp_path: Path, schedulers: list[Scheduler]
) -> None:
    config = _config(tmp_path, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), cases=1500)
    _seed(config, dt.datetime.now(AMS))
    sched = Scheduler(config, tmp_path / "s.log")
    schedulers.append(sched)
    store_url = _store(tmp_path)
    _wait_for(lambda: any(r.status == "running" for r in _scheduled(store_url)))
    assert sched.stop(signal.SIGTERM) == 0, "a clean stop"
    (row,) = _scheduled(store_url)
    assert row.status in ("aborted", "succeeded"), row.status
    assert row.finished_at is not None
    if row.status == "aborted":
        assert "SIGTERM" in row.errors[-1]
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:  # at most one open episode per case and rule
        dupes = conn.execute(
            sa.select(signals.c.case_ref, signals.c.rule_id)
            .where(signals.c.closed_on.is_(None))
            .group_by(signals.c.case_ref, signals.c.rule_id)
            .having(sa.func.count() > 1)
        ).all()
    engine.dispose()
    assert dupes == []
    # resumable: the same night by hand completes
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
    rerun = subprocess.run(
        [sys.executable, "-m", "regiesignaal", "--config", str(config), "nightly",
         "--as-of", row.as_of.isoformat()],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # a night the signal cut short completes now; one that had finished is not run twice
    expected = "succeeded" if row.status == "aborted" else "skipped"
    assert run_rows(store_url)[-1].status == expected


@pytest.mark.slow
def test_ctrl_c_during_a_hand_started_run_records_it_aborted(tmp_path: Path) -> None:
    config = _config(tmp_path, dt.datetime.now(dt.UTC), cases=1500)
    upgrade_store(load_settings(config, env={}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "regiesignaal", "--config", str(config), "run", "--no-mail"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store_url = _store(tmp_path)
    _wait_for(lambda: bool(run_rows(store_url)) or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    (row,) = run_rows(store_url)
    if row.status == "succeeded":  # finished before the signal arrived: nothing to stop
        assert proc.returncode == 0
        return
    assert proc.returncode == 1 and "afgebroken" in stderr, stderr
    assert row.status == "aborted" and row.finished_at is not None


@pytest.mark.slow
@pytest.mark.postgres
def test_two_nightly_processes_on_postgres_process_the_night_once(
    tmp_path: Path, pg_url: str
) -> None:
    config = _config(tmp_path, dt.datetime.now(dt.UTC))
    config.write_text(
        config.read_text().replace(
            f'store_url = "sqlite:///{tmp_path / "store.sqlite"}"', f'store_url = "{pg_url}"'
        )
    )
    upgrade_store(load_settings(config, env={}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
    command = [sys.executable, "-m", "regiesignaal", "--config", str(config), "nightly",
               "--trigger", "scheduler"]  # fmt: skip
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]  # fmt: skip
    codes = sorted(p.wait(timeout=180) for p in procs)
    statuses = sorted(r.status for r in _scheduled(pg_url))
    assert statuses.count("succeeded") == 1 and len(statuses) == 2, statuses
    other = next(s for s in statuses if s != "succeeded")
    assert (other, codes) in [("locked", [0, 4]), ("skipped", [0, 0])]
