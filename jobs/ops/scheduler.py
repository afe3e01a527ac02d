"""``regiesignaal scheduler``: the long-running process that starts the nightly job.

APScheduler 3 with:

- a cron trigger from the configuration: ``[scheduler] days`` (default ``mon-fri``) at
  ``[run] schedule`` (default 06:00, ``HH:MM`` or ``HH:MM:SS``) in ``[run] timezone``
  (default Europe/Amsterdam). Cron fields are wall-clock times in that zone, so the run
  stays at 06:00 local time on both sides of a clock change; a time that does not exist
  on the spring-forward night (02:00-03:00) runs at the first valid moment after it, and
  a time that occurs twice in autumn (02:00-03:00) runs once;
- its job in the store database (APScheduler's SQLAlchemyJobStore, table
  ``apscheduler_jobs``, created by migration 0004) so the next run time survives a
  restart;
- ``coalesce=True``, ``max_instances=1`` and ``misfire_grace_time`` from
  ``[scheduler] misfire_grace_minutes`` (default 240);
- beside it, the due-night bookkeeping (jobs/ops/nights.py, issue 17): at start (so after
  any job change), at every run time and every ``CHECK_MINUTES``, every scheduled night
  since the last one accounted for is run once while inside the grace time, and recorded
  ``missed`` and alerted once beyond it; a night left ``running`` by a dead process is
  run again. APScheduler's next run time alone lost nights (a replaced job, coalesced
  misses, a process group killed with its night, a SIGTERM at the due second).

Beside it, in memory and its own thread, the mail retry (jobs/ops/mail_retry.py) runs
every minute: mail the relay deferred goes out the same day, and mail still not out at
``[smtp] retry_until`` is alerted.

Each night runs ``regiesignaal nightly --as-of <scheduled date>`` as a child process, so
its memory and the rule engine's global state end with it and a crash cannot take the
scheduler down (a crash is alerted). SIGTERM/SIGINT: the scheduler stops taking new
work (a night due that second stays due), passes the signal on to a running child (which
records its run ``aborted``; the next start runs the date again) and waits for it, then
exits 0.

Several schedulers may point at one store (two hosts for availability): each fires, and
the run lock lets exactly one process the night; the other records ``locked`` or
``skipped``.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.db import store_engine
from regiesignaal.engine.store.heartbeat import BEAT_INTERVAL, beat
from regiesignaal.jobs.config import Settings, load_settings
from regiesignaal.jobs.ops import nights
from regiesignaal.jobs.ops.mail_retry import add_retry_job

log = logging.getLogger("regiesignaal.scheduler")

JOB_ID = "regiesignaal-nightly"
CHECK_ID = "regiesignaal-due-nights"  # the look for due nights (in memory, not stored)
CHILD_STOP_WAIT = 300.0  # seconds a stopping scheduler waits for a running child
WAKE_INTERVAL = 2.0  # seconds between looks at the job store

_children: set[subprocess.Popen[bytes]] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set by SIGTERM/SIGINT: no new night starts


class NightlyTrigger(CronTrigger):
    """A cron trigger that fires once per scheduled local calendar day, at the instant
    :func:`regiesignaal.jobs.ops.nights.due_at` names (so APScheduler and the due-night
    bookkeeping agree on every night).

    APScheduler's CronTrigger fires twice for a wall-clock time inside the hour that
    occurs twice when the clocks go back, and skipped the day after the 23-hour day for
    a schedule before 01:00; this one fires a time inside the hour that does not exist in
    spring once, an hour later on the wall clock, and a repeated time once, at its first
    occurrence. The cron fields stay the stored state (so a stored job compares equal).
    """

    def _night(self) -> tuple[dt.time, str]:
        fields = {f.name: str(f) for f in self.fields}
        at = dt.time(int(fields["hour"]), int(fields["minute"]), int(fields["second"]))
        return at, fields["day_of_week"]

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        tz = self.timezone
        at, days = self._night()
        start = (
            now
            if previous_fire_time is None
            else min(now, previous_fire_time + dt.timedelta(microseconds=1))
        )
        done = previous_fire_time.astimezone(tz).date() if previous_fire_time else None
        after = start - dt.timedelta(microseconds=1)
        for night in nights.scheduled_nights(at, days, tz, after, start + dt.timedelta(days=9)):
            if done is None or night.as_of > done:
                return night.due
        return None


def make_trigger(settings: Settings) -> CronTrigger:
    """The cron trigger of the nightly job (see the module docstring)."""
    at = settings.schedule_time
    return NightlyTrigger(
        day_of_week=settings.schedule_days,
        hour=at.hour,
        minute=at.minute,
        second=at.second,
        timezone=settings.tz,
    )


def fire_times(settings: Settings, start: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` run times after ``start`` (aware), in the configured zone."""
    trigger = make_trigger(settings)
    out: list[dt.datetime] = []
    previous = None
    now = start
    while len(out) < count:
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None:
            break
        out.append(nxt)
        previous, now = nxt, nxt + dt.timedelta(microseconds=1)
    return out


def last_fire_time(settings: Settings, now: dt.datetime) -> dt.datetime | None:
    """The latest run time at or before ``now`` (within the past 8 days)."""
    last = None
    for t in fire_times(settings, now - dt.timedelta(days=8), 16):
        if t > now:
            break
        last = t
    return last


def _child_command(config_path: str | None, as_of: dt.date) -> list[str]:
    command = [sys.executable, "-m", "regiesignaal"]
    if config_path:
        command += ["--config", config_path]
    return [*command, "nightly", "--as-of", as_of.isoformat(), "--trigger", "scheduler"]


def run_child(settings: Settings, config_path: str | None, as_of: dt.date) -> int:
    """The night of ``as_of`` in a child process; returns its exit code (-1: not started
    because the scheduler is stopping; the night stays due). A crash is alerted here."""
    if _stopping.is_set():
        return -1
    command = _child_command(config_path, as_of)
    log.info("nightly job for %s: child started", as_of)
    child = subprocess.Popen(command)
    with _children_lock:
        _children.add(child)
    try:
        code = child.wait()
    finally:
        with _children_lock:
            _children.discard(child)
    log.info("nightly job for %s: child exit %d", as_of, code)
    if code not in (0, 1, 3, 4) and not _stopping.is_set():
        from regiesignaal.notifications import operator_alert as alerts

        store = store_engine(settings.store_url)
        try:
            alerts.raise_alert(
                store,
                settings,
                "run_failed",
                [
                    f"Het proces van de nachtelijke run (peildatum {as_of}) is onverwacht "
                    f"gestopt (code {code}). Zie 'regiesignaal runs'; de scheduler draait de "
                    "nacht opnieuw zolang de marge loopt."
                ],
            )
            alerts.deliver_alerts(store, settings)
        finally:
            store.dispose()
    return code


def _alert_missed(settings: Settings) -> nights.Alert:
    def alert(missed: list[nights.Night], states: dict[dt.date, nights.DateState]) -> None:
        from regiesignaal.notifications import operator_alert as alerts

        store = store_engine(settings.store_url)
        try:
            lines = nights.missed_lines(missed, settings.misfire_grace_minutes)
            alerts.raise_alert(store, settings, "missed", lines)
            alerts.deliver_alerts(store, settings)
        finally:
            store.dispose()

    return alert


def catch_up(
    settings: Settings,
    config_path: str | None,
    *,
    extra: list[nights.Night] | None = None,
    launch: nights.Launch | None = None,
    now: Any = None,
) -> nights.CatchUp:
    """Run or alert every due night (jobs/ops/nights.py) with the configured schedule."""
    store = store_engine(settings.store_url)
    try:
        return nights.catch_up(
            store,
            at=settings.schedule_time,
            days=settings.schedule_days,
            tz=settings.tz,
            grace=dt.timedelta(minutes=settings.misfire_grace_minutes),
            launch=launch or (lambda day: run_child(settings, config_path, day)),
            alert=_alert_missed(settings),
            now=now,
            extra=extra or [],
        )
    finally:
        store.dispose()


def nightly_job(config_path: str | None) -> int:
    """The scheduled job (runs in the scheduler process): the night APScheduler fired, and
    every other due night (see jobs/ops/nights.py), each in a child process."""
    settings = load_settings(Path(config_path) if config_path else None)
    now = dt.datetime.now(settings.tz)
    fired = last_fire_time(settings, now + dt.timedelta(seconds=1))
    extra = [nights.Night(fired, fired.date())] if fired is not None else []
    result = catch_up(settings, config_path, extra=extra)
    return 0 if not result.missed else 1


def missed_job(config_path: str | None, when: str) -> int:
    """A run time APScheduler reported missed: accounted for with the due nights."""
    settings = load_settings(Path(config_path) if config_path else None)
    due = dt.datetime.fromisoformat(when).astimezone(settings.tz)
    result = catch_up(settings, config_path, extra=[nights.Night(due, due.date())])
    return 0 if not result.missed else 1


def check_job(config_path: str | None) -> int:
    """Every ``CHECK_MINUTES`` (and at start): run or alert the due nights."""
    settings = load_settings(Path(config_path) if config_path else None)
    result = catch_up(settings, config_path)
    return 0 if not result.missed else 1


def ensure_job(scheduler: BackgroundScheduler, settings: Settings, config_path: str | None) -> str:
    """Add the nightly job, or keep the stored one when nothing changed (so a run missed
    while the scheduler was down still fires). Returns 'kept', 'added' or 'replaced'."""
    trigger = make_trigger(settings)
    grace = settings.misfire_grace_minutes * 60
    args = [config_path]
    job = scheduler.get_job(JOB_ID)
    if job is not None:
        same = (
            repr(job.trigger) == repr(trigger)
            and list(job.args) == args
            and job.misfire_grace_time == grace
            and job.func_ref == f"{__name__}:nightly_job"
        )
        if same:
            return "kept"
        scheduler.remove_job(JOB_ID)
    scheduler.add_job(
        f"{__name__}:nightly_job",
        trigger,
        args=args,
        id=JOB_ID,
        name="regiesignaal nightly",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=grace,
        replace_existing=True,
    )
    return "replaced" if job is not None else "added"


class StoppingExecutor(ThreadPoolExecutor):
    """A thread pool that, once the scheduler is stopping, quietly takes no new job (a
    SIGTERM at the due second used to log "cannot schedule new futures after shutdown";
    the night it would have run stays due and runs at the next start)."""

    def _do_submit_job(self, job: Any, run_times: list[dt.datetime]) -> None:
        if _stopping.is_set():
            log.info("scheduler stopping: the night stays due for the next start")
            return
        try:
            super()._do_submit_job(job, run_times)
        except RuntimeError:  # the pool shut down between the check and the submit
            log.info("scheduler stopping: the night stays due for the next start")


def build_scheduler(settings: Settings) -> BackgroundScheduler:
    engine = store_engine(settings.store_url)
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine), "memory": MemoryJobStore()},
        executors={"default": StoppingExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=settings.tz,
    )


def serve(settings: Settings, config_path: str | None, stop: threading.Event | None = None) -> int:
    """Run the scheduler until SIGTERM/SIGINT (or ``stop``); returns the exit code: 0, or
    1 when the store is not at the current schema (run ``regiesignaal db upgrade``)."""
    if not migrate.is_up_to_date(settings.store_url):
        print(
            "Scheduler niet gestart: de opslag (store) heeft niet het juiste schema; voer "
            "eerst 'regiesignaal db upgrade' uit.",
            file=sys.stderr,
        )
        return 1
    stop = stop or threading.Event()
    scheduler = build_scheduler(settings)

    def on_missed(event: JobExecutionEvent) -> None:
        # a run time APScheduler passed while down and beyond its grace: the due-night
        # bookkeeping records and alerts it once (in the executor, after other nights)
        if event.job_id != JOB_ID or _stopping.is_set():
            return
        scheduler.add_job(
            f"{__name__}:missed_job",
            args=[config_path, event.scheduled_run_time.isoformat()],
            jobstore="memory",
            next_run_time=dt.datetime.now(settings.tz),
            misfire_grace_time=None,
        )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        _stopping.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    _stopping.clear()
    what = ensure_job(scheduler, settings, config_path)
    add_retry_job(scheduler, settings)  # deferred mail, every minute (issue 17)
    scheduler.add_job(  # at start (so after any job change) and every few minutes
        f"{__name__}:check_job",
        IntervalTrigger(minutes=nights.CHECK_MINUTES, timezone=settings.tz),
        args=[config_path],
        id=CHECK_ID,
        name="regiesignaal due nights",
        jobstore="memory",
        next_run_time=dt.datetime.now(settings.tz),
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
        replace_existing=True,
    )
    job = scheduler.get_job(JOB_ID)
    next_run: Any = job.next_run_time if job is not None else None
    log.info("scheduler started: job %s, next run %s", what, next_run)
    print(f"scheduler gestart; volgende run: {next_run}", flush=True)
    scheduler.resume()
    heart = Heartbeat(settings)  # for 'regiesignaal status' (issue 17)
    try:
        heart.maybe_beat(time.monotonic())
        # Look at the job store again every few seconds: another scheduler on the same
        # store (or an operator) may have moved the next run time.
        while not stop.wait(WAKE_INTERVAL):
            scheduler.wakeup()
            heart.maybe_beat(time.monotonic())
    finally:
        heart.close()
        _stopping.set()
        scheduler.pause()
        _stop_children()
        scheduler.shutdown(wait=True)
    log.info("scheduler stopped")
    return 0


class Heartbeat:
    """Writes the scheduler's heartbeat (engine/store/heartbeat.py) at most every
    ``BEAT_INTERVAL`` seconds; a store that cannot be written is logged, never fatal."""

    def __init__(self, settings: Settings) -> None:
        self.store = store_engine(settings.store_url)
        self.started_at = dt.datetime.now(dt.UTC)
        self.last = 0.0

    def maybe_beat(self, monotonic: float) -> None:
        if self.last and monotonic - self.last < BEAT_INTERVAL:
            return
        self.last = monotonic
        try:
            beat(self.store, started_at=self.started_at)
        except Exception as exc:  # a database blip must not stop the scheduler
            log.error("scheduler heartbeat not written: %s", type(exc).__name__)

    def close(self) -> None:
        self.store.dispose()


def _stop_children() -> None:
    with _children_lock:
        children = list(_children)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=CHILD_STOP_WAIT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
