"""Due nights as the product's own bookkeeping (issue 17, items 1-5)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops_support import RULES, make_source, run_rows

from regiesignaal.engine.store.tables import apscheduler_jobs, run_lock, runs, scheduler_state
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.ops import nights
from regiesignaal.jobs.ops.scheduler import fire_times
from regiesignaal.jobs.pipeline import upgrade_store

AMS = ZoneInfo("Europe/Amsterdam")
ROOT = Path(__file__).resolve().parents[1]
GRACE = dt.timedelta(minutes=240)


def _t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=AMS)  # type: ignore[misc]


# ------------------------------------------------------------------ pure: which nights


def test_a_schedule_at_midnight_runs_every_day_across_the_spring_change() -> None:
    """Item 4: 00:00 daily over 27-30 March 2027 (clocks go forward on Sunday the 28th);
    APScheduler's own cron trigger skipped Monday the 29th."""
    due = nights.scheduled_nights(dt.time(0), "mon-sun", AMS, _t(2027, 3, 26, 12), _t(2027, 3, 31))
    assert [n.as_of.day for n in due] == [27, 28, 29, 30, 31]
    assert all(n.due.astimezone(AMS).time() == dt.time(0) for n in due)
    s = load_settings(env={})
    import dataclasses

    daily = dataclasses.replace(s, schedule="00:00", schedule_days="mon-sun")
    fired = fire_times(daily, _t(2027, 3, 26, 12), 5)
    assert [t.astimezone(AMS).date().day for t in fired] == [27, 28, 29, 30, 31]
    assert [t for t in fired] == [n.due for n in due], "the trigger and the bookkeeping agree"


@pytest.mark.parametrize("hhmm", ["00:00", "00:30", "00:59:59", "01:00", "02:00", "02:30",
                                  "03:00", "06:00", "23:30"])  # fmt: skip
def test_every_schedule_time_gives_one_night_per_day_across_both_changes(hhmm: str) -> None:
    at = dt.time(*(int(p) for p in hhmm.split(":")))
    for start in (_t(2027, 3, 20), _t(2027, 10, 24)):  # spring 28 March, autumn 31 October
        due = nights.scheduled_nights(at, "mon-sun", AMS, start, start + dt.timedelta(days=14))
        days = [n.as_of for n in due]
        assert (
            days == [start.date() + dt.timedelta(days=i) for i in range(1, 15)]
            or days == [start.date() + dt.timedelta(days=i) for i in range(0, 15)][: len(days)]
        )
        assert len(set(days)) == len(days)
        for n in due:  # due on its own date, at the wall time (or an hour later in spring)
            local = n.due.astimezone(AMS)
            assert local.date() == n.as_of
            assert local.time() in (
                at,
                (dt.datetime.combine(n.as_of, at) + dt.timedelta(hours=1)).time(),
            )


def test_weekday_sets() -> None:
    assert nights.weekday_set("mon-fri") == {0, 1, 2, 3, 4}
    assert nights.weekday_set("sat-mon") == {5, 6, 0}
    assert nights.weekday_set("mon,wed,fri") == {0, 2, 4}


def test_decide_runs_inside_the_grace_and_alerts_beyond_it() -> None:
    now = _t(2027, 3, 3, 7)
    a = nights.Night(_t(2027, 3, 1, 6), dt.date(2027, 3, 1))
    b = nights.Night(_t(2027, 3, 2, 6), dt.date(2027, 3, 2))
    c = nights.Night(_t(2027, 3, 3, 6), dt.date(2027, 3, 3))
    states = {b.as_of: nights.DateState(settled=True)}
    d = nights.decide([c, a, b], states, now, GRACE)
    assert (d.run, d.missed, d.pending) == ([c], [a], [])
    busy = {c.as_of: nights.DateState(running_alive=True)}
    assert nights.decide([c], busy, now, GRACE).pending == [c]
    tried = {c.as_of: nights.DateState(attempts=nights.MAX_ATTEMPTS)}
    assert nights.decide([c], tried, now, GRACE).missed == [c], "no endless retries"


# ------------------------------------------------------------------ the store's side


class Sim:
    """The bookkeeping over a real SQLite store, with a night that just succeeds."""

    def __init__(self, store: sa.Engine):
        self.store = store
        self.launched: Counter[dt.date] = Counter()
        self.alerted: Counter[dt.date] = Counter()
        self.now = _t(2027, 1, 1)

    def launch(self, day: dt.date) -> int:
        self.launched[day] += 1
        with self.store.begin() as conn:
            conn.execute(runs.insert().values(
                as_of=day, trigger="scheduler", status="succeeded", started_at=self.now,
                finished_at=self.now, host="sim", pid=1,
            ))  # fmt: skip
        return 0

    def alert(self, missed: list[nights.Night], states: object) -> None:
        for n in missed:
            self.alerted[n.as_of] += 1

    def check(
        self, at: str, days: str = "mon-fri", extra: list[nights.Night] | None = None
    ) -> nights.CatchUp:
        hh = [int(p) for p in at.split(":")]
        return nights.catch_up(
            self.store, at=dt.time(*hh), days=days, tz=AMS, grace=GRACE,
            launch=self.launch, alert=self.alert, now=lambda: self.now, extra=extra or [],
        )  # fmt: skip


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    s = load_settings(env={"REGIESIGNAAL_STORE_URL": url})
    upgrade_store(s)
    engine = sa.create_engine(url)
    yield Sim(engine)
    engine.dispose()


def test_first_start_runs_nothing_of_the_past(sim: Sim) -> None:
    sim.now = _t(2027, 3, 3, 9)
    assert sim.check("06:00").ran == []
    sim.now = _t(2027, 3, 4, 6, 0, 1)
    assert sim.check("06:00").ran == [dt.date(2027, 3, 4)]


def test_two_nights_missed_the_first_is_alerted_the_second_runs(sim: Sim) -> None:
    """Item 3: down for two nights, back within the grace of the second."""
    sim.now = _t(2027, 3, 1, 12)  # a Monday
    sim.check("06:00")
    sim.now = _t(2027, 3, 3, 7)  # Tuesday's and Wednesday's nights passed while down
    result = sim.check("06:00")
    assert result.ran == [dt.date(2027, 3, 3)] and result.missed == [dt.date(2027, 3, 2)]
    sim.now += dt.timedelta(minutes=5)
    again = sim.check("06:00")
    assert again.ran == [] and again.missed == [], "never twice"
    assert sum(sim.alerted.values()) == 1 and sum(sim.launched.values()) == 1
    statuses = {r.as_of: r.status for r in run_rows(str(sim.store.url))}
    assert statuses == {dt.date(2027, 3, 2): "missed", dt.date(2027, 3, 3): "succeeded"}


def test_a_setting_changed_while_down_does_not_drop_the_night(sim: Sim) -> None:
    """Item 2: schedule 06:00 -> 05:00 and days changed while down; back at 06:30."""
    sim.now = _t(2027, 3, 1, 12)
    sim.check("06:00", "mon-fri")
    sim.now = _t(2027, 3, 2, 6, 30)
    assert sim.check("05:00", "mon-sat").ran == [dt.date(2027, 3, 2)]


def test_a_night_left_running_by_a_dead_process_is_run_again(sim: Sim) -> None:
    """Item 1 (the store's side): a running row of a pid that no longer exists."""
    sim.now = _t(2027, 3, 1, 12)
    sim.check("06:00")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with sim.store.begin() as conn:
        conn.execute(runs.insert().values(
            as_of=dt.date(2027, 3, 2), trigger="scheduler", status="running",
            started_at=_t(2027, 3, 2, 6), host=os.uname().nodename, pid=gone.pid,
            heartbeat_at=dt.datetime.now(dt.UTC),
        ))  # fmt: skip
    sim.now = _t(2027, 3, 2, 6, 40)
    assert sim.check("06:00").ran == [dt.date(2027, 3, 2)]


def test_the_fired_night_runs_even_before_the_first_mark(sim: Sim) -> None:
    sim.now = _t(2027, 3, 2, 7)
    fired = nights.Night(_t(2027, 3, 2, 6), dt.date(2027, 3, 2))
    assert sim.check("06:00", extra=[fired]).ran == [dt.date(2027, 3, 2)]


CONFIGS = [("06:00", "mon-fri"), ("00:00", "mon-sun"), ("02:30", "mon-sun"),
           ("00:30", "sat-mon"), ("23:59:59", "mon,wed,fri"), ("05:00", "mon-sat")]  # fmt: skip


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from([_t(2027, 3, 1), _t(2027, 3, 20), _t(2027, 9, 20), _t(2027, 10, 15)]),
    downs=st.lists(
        st.tuples(st.integers(1, 60 * 24), st.integers(1, 80), st.sampled_from(CONFIGS)),
        min_size=1,
        max_size=8,
    ),
    first=st.sampled_from(CONFIGS),
)
def test_every_due_night_runs_once_or_is_alerted_once(
    start: dt.datetime,
    downs: list[tuple[int, int, tuple[str, str]]],
    first: tuple[str, str],
) -> None:
    """Random down intervals over 60 days, across a clock change, with the schedule or
    days changed while down: every night that fell due while the scheduler was up or
    down (under the settings it came back with) runs exactly once or is alerted exactly
    once; never twice."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.sqlite"
        upgrade_store(load_settings(env={"REGIESIGNAAL_STORE_URL": url}))
        engine = sa.create_engine(url)
        try:
            _simulate(Sim(engine), start, downs, first)
        finally:
            engine.dispose()


def _simulate(
    sim: Sim,
    start: dt.datetime,
    downs: list[tuple[int, int, tuple[str, str]]],
    first: tuple[str, str],
) -> None:
    end = start + dt.timedelta(days=60)
    down_at = sorted({start + dt.timedelta(hours=h) for h, _, _ in downs})
    plan = {
        d: (dt.timedelta(hours=length), cfg)
        for d, (_, length, cfg) in zip(down_at, downs, strict=False)
    }
    expected: set[dt.date] = set()
    cfg = first
    last_check: dt.datetime | None = None

    def check(at: dt.datetime) -> None:
        nonlocal last_check
        sim.now = at
        hh = dt.time(*(int(p) for p in cfg[0].split(":")))
        if last_check is not None:
            for n in nights.scheduled_nights(hh, cfg[1], AMS, last_check, at):
                expected.add(n.as_of)
        sim.check(*cfg)
        last_check = at

    t = start
    check(t)
    for d in down_at:
        # up until d: a look at every due time and every 3 hours
        hh = dt.time(*(int(p) for p in cfg[0].split(":")))
        looks = {n.due for n in nights.scheduled_nights(hh, cfg[1], AMS, t, min(d, end))}
        looks |= {
            t + dt.timedelta(hours=3 * i)
            for i in range(1, int((min(d, end) - t) / dt.timedelta(hours=3)) + 1)
        }
        for at in sorted(x for x in looks if x <= min(d, end)):
            check(at)
        if d >= end:
            break
        length, cfg = plan[d]
        t = d + length  # down; back with (maybe) other settings
        check(t)
    check(max(end, t) + dt.timedelta(hours=1))
    counted = sim.launched + sim.alerted
    assert all(v == 1 for v in counted.values()), counted
    assert not set(sim.launched) & set(sim.alerted)
    assert expected <= set(counted), sorted(expected - set(counted))
    statuses = Counter((r.as_of, r.status) for r in run_rows(str(sim.store.url)))
    assert all(v == 1 for v in statuses.values()), "one row per night"


# ------------------------------------------------------------------ real processes


def _wait_for(what: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def _config(tmp_path: Path, at: dt.datetime, extra: str = "") -> Path:
    source_url, _, _ = make_source(tmp_path, cases=120)
    path = tmp_path / "regiesignaal.toml"
    path.write_text(
        f'[database]\nsource_url = "{source_url}"\n'
        f'store_url = "sqlite:///{tmp_path / "store.sqlite"}"\n'
        f'[rules]\ndir = "{RULES}"\n'
        f'[run]\nschedule = "{at.astimezone(AMS):%H:%M:%S}"\nworkers = 1\n{extra}'
        '[scheduler]\ndays = "mon-sun"\n[mail]\nenabled = false\n'
    )
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
    env.update(extra)
    return env


def _start(config: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "regiesignaal", "--config", str(config), "scheduler"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


@pytest.mark.slow
def test_scheduler_killed_with_its_night_runs_the_night_again_on_restart(tmp_path: Path) -> None:
    """Item 1: kill -9 of the process group (power loss) while the night runs; the
    restarted scheduler aborts the dead run and runs the night again, once."""
    due = dt.datetime.now(AMS).replace(microsecond=0) + dt.timedelta(seconds=8)
    if due.date() != (due + dt.timedelta(minutes=3)).date():
        pytest.skip("too close to midnight")
    config = _config(tmp_path, due)
    upgrade_store(load_settings(config, env={}))
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    marker = tmp_path / "hang.pid"
    first = _start(
        config, tmp_path / "a.log", _env(REGIESIGNAAL_TEST_STOP_AT=f"evaluated={marker}")
    )
    try:
        _wait_for(marker.exists)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=30)
    child = int(marker.read_text())
    _wait_for(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), 30)
    (row,) = run_rows(store_url)
    assert row.status == "running", "left behind by the power loss"
    again = _start(config, tmp_path / "b.log", _env())
    try:
        _wait_for(lambda: any(r.status == "succeeded" for r in run_rows(store_url)))
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=120) == 0
    rows = run_rows(store_url)
    assert [r.status for r in rows] == ["aborted", "succeeded"], [r.status for r in rows]
    assert {r.as_of for r in rows} == {due.date()}
    assert b"Traceback" not in (tmp_path / "b.log").read_bytes()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_sigterm_at_the_due_second_loses_no_night(tmp_path: Path) -> None:
    """Item 5: SIGTERM just as the night falls due: no traceback, and the night runs at
    the next start."""
    due = dt.datetime.now(AMS).replace(microsecond=0) + dt.timedelta(seconds=6)
    if due.date() != (due + dt.timedelta(minutes=3)).date():
        pytest.skip("too close to midnight")
    config = _config(tmp_path, due)
    upgrade_store(load_settings(config, env={}))
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    log = tmp_path / "a.log"
    first = _start(config, log, _env())
    _wait_for(lambda: b"scheduler gestart" in log.read_bytes())
    time.sleep(max(0.0, (due - dt.datetime.now(AMS)).total_seconds()) - 0.05)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 0
    assert b"Traceback" not in log.read_bytes(), log.read_text()
    again = _start(config, tmp_path / "b.log", _env())
    try:
        _wait_for(lambda: any(r.status == "succeeded" for r in run_rows(store_url)))
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=120) == 0
    assert [r.status for r in run_rows(store_url)].count("succeeded") == 1


def test_tables_exist(sim: Sim) -> None:
    with sim.store.connect() as conn:
        for table in (scheduler_state, apscheduler_jobs, run_lock):
            conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


# ------------------------------------------------------------------ time limit, lost lock


def test_a_night_past_its_time_limit_is_stopped_recorded_failed_and_alerted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 6: a night that hangs (here: paused after evaluation) holds the lock for ever;
    with [run] max_minutes it is stopped, recorded failed with its stage, alerted, and
    the lock is free again."""
    import dataclasses

    from ops_support import make_settings

    from regiesignaal.engine.store.tables import outbox
    from regiesignaal.jobs.ops.nightly import nightly

    source_url, _, _ = make_source(tmp_path)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    s = make_settings(source_url, store_url, max_minutes=0.25, operators=("beheer@dtv.example",))
    monkeypatch.setenv("REGIESIGNAAL_TEST_STOP_AT", f"evaluated={tmp_path / 'hang.pid'}")
    day = dt.datetime.now(s.tz).date()
    started = time.monotonic()
    result = nightly(s, as_of=day)
    assert time.monotonic() - started < 60
    assert (result.status, result.exit_code) == ("failed", 1)
    (row,) = run_rows(store_url)
    assert row.status == "failed" and row.stage == "extract_evaluate"
    assert "tijdslimiet" in row.errors[-1] and "extract_evaluate" in row.errors[-1]
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        alert = conn.execute(sa.select(outbox).where(outbox.c.kind == "operator")).one()
        assert conn.execute(sa.select(sa.func.count()).select_from(run_lock)).scalar() == 0
    engine.dispose()
    assert "max_minutes" in alert.body_text and "extract_evaluate" in alert.body_text
    monkeypatch.delenv("REGIESIGNAAL_TEST_STOP_AT")
    again = nightly(dataclasses.replace(s, max_minutes=180), as_of=day)
    assert again.status == "succeeded", "the lock was released"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_run_that_lost_its_lock_stops_and_is_never_marked_aborted(
    tmp_path: Path, pg_url: str
) -> None:
    """Item 7: the lock's backend is terminated while the run goes on; a second run is
    not admitted to the same night and does not mark the live run aborted; the first
    stops before its next write."""
    from regiesignaal.engine.store.lock import LOCK_KEY
    from regiesignaal.engine.store.tables import signals

    config = _config(tmp_path, dt.datetime.now(dt.UTC))
    config.write_text(
        config.read_text().replace(
            f'store_url = "sqlite:///{tmp_path / "store.sqlite"}"', f'store_url = "{pg_url}"'
        )
    )
    upgrade_store(load_settings(config, env={}))
    marker = tmp_path / "pause.pid"
    day = dt.datetime.now(AMS).date().isoformat()
    command = [sys.executable, "-m", "regiesignaal", "--config", str(config), "nightly",
               "--as-of", day]  # fmt: skip
    first = subprocess.Popen(
        command, cwd=ROOT, env=_env(REGIESIGNAAL_TEST_STOP_AT=f"evaluated={marker}"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for(marker.exists)
        engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = :k AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                {"k": LOCK_KEY},
            ).all()
        assert killed == [(True,)]
        second = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, timeout=180)
        statuses = [r.status for r in run_rows(pg_url)]
        assert statuses == ["running", "locked"], (statuses, second.stdout, second.stderr)
        Path(f"{marker}.go").touch()
        out, _ = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 1, out
    rows = run_rows(pg_url)
    assert [r.status for r in rows] == ["failed", "locked"]
    assert "vergrendeling verloren" in str(rows[0].errors)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(signals)).scalar() == 0
    engine.dispose()


# ------------------------------------------------------------------ the runs list, stops, logs


def test_runs_list_counts_errors_apart_from_notes(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 16: a weekend note and a standby's locked run are notes, not errors."""
    from click.testing import CliRunner

    from regiesignaal.jobs.cli import main
    from regiesignaal.jobs.ops.nightly import errors_and_notes

    weekend = (
        "2027-03-06 is geen werkdag: geen berichten aan regievoerders (wel signalen bijgewerkt)"
    )
    rows = [
        ("succeeded", [weekend]),
        ("locked", ["er loopt al een run (host-b pid 4)"]),
        ("skipped", ["peildatum 2027-03-06 is al verwerkt door run 1; niets gedaan"]),
        ("failed", ["RuntimeError: kapot", weekend]),
    ]
    now = dt.datetime.now(dt.UTC)
    with sim.store.begin() as conn:
        for status, errors in rows:
            conn.execute(runs.insert().values(
                as_of=dt.date(2027, 3, 6), trigger="scheduler", status=status, started_at=now,
                finished_at=now, errors=errors,
            ))  # fmt: skip
    assert [tuple(map(len, errors_and_notes(s, e))) for s, e in rows] == [
        (0, 1), (0, 1), (0, 1), (1, 1),
    ]  # fmt: skip
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", str(sim.store.url))
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    out = CliRunner().invoke(main, ["runs"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "notities" in out.output
    cells = [[c.strip() for c in ln.strip("│ ").split("│")] for ln in out.output.splitlines()]
    lines = {c[0]: c for c in cells if c[0].isdigit()}
    assert [lines[str(i)][-2:] for i in (1, 2, 3, 4)] == [
        ["0", "1"], ["0", "1"], ["0", "1"], ["1", "1"],
    ]  # fmt: skip


def test_a_night_stopped_after_delivery_says_what_was_sent(sim: Sim) -> None:
    """Item 16: SIGTERM after the mail went out: the aborted run shows it as sent, in
    Dutch (no "Terminated: SIGTERM")."""
    from regiesignaal.engine.store.tables import outbox
    from regiesignaal.jobs.ops.nightly import Terminated, _mark_own_run_aborted

    now = dt.datetime.now(dt.UTC)
    with sim.store.begin() as conn:
        run_id = conn.execute(runs.insert().values(
            as_of=dt.date(2027, 3, 2), trigger="scheduler", status="running", started_at=now,
            host=os.uname().nodename, pid=os.getpid(),
        )).inserted_primary_key[0]  # fmt: skip
        for i in range(3):
            conn.execute(outbox.insert().values(
                run_id=run_id, as_of=dt.date(2027, 3, 2), kind="regievoerder",
                recipient_id=f"rv{i}", recipient_email=f"rv{i}@dtv.example", subject="s",
                body_text="b", body_html="b", message_id=f"<{i}@x>", status="sent",
                created_at=now, sent_at=now,
            ))  # fmt: skip
    assert _mark_own_run_aborted(sim.store, Terminated("SIGTERM").label) == run_id
    (row,) = run_rows(str(sim.store.url))
    assert row.status == "aborted"
    assert row.counts["delivery"]["sent"] == 3
    text = " ".join(row.errors)
    assert "afgebroken door SIGTERM" in text and "al verstuurd vóór de stop: 3" in text
    assert "Terminated" not in text


def test_log_time_stamps_carry_their_zone() -> None:
    import logging
    import re

    from regiesignaal.jobs.cli.logs import PLAIN_FORMAT, ZonedFormatter

    record = logging.LogRecord("regiesignaal.run", logging.INFO, "x", 1, "run 1", None, None)
    line = ZonedFormatter(PLAIN_FORMAT).format(record)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO ", line), line
