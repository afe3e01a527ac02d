"""The scheduler's mail retry (issue 17): deferred mail still goes out the same day.

A relay may defer the night's mail (a per-client rate limit, greylisting, a relay down
for an hour): the night's own delivery then leaves messages ``pending`` with a next
attempt time (notifications/delivery/smtp.py). The scheduler calls :func:`retry_job`
every minute (``RETRY_INTERVAL``), in its own executor so it never delays a night. From
the night's scheduled time (``[run] schedule``) until midnight, each call delivers what
is due; the backoff lives in each message's next attempt time, so a minute with nothing
due costs one query. A call is skipped while a run is ``running`` (its own delivery is
at work; a ``running`` row older than ``RUN_BUSY_HOURS`` is taken to be a dead one),
and it does nothing with ``[mail] enabled = false``.

Once ``[smtp] retry_until`` (default 12:00) has passed, messages of the day to staff
that are still not delivered (waiting, in flight, failed or with an unknown outcome)
are alerted to the operators, once a day (subject ``late_mail``, counts only); the
retries go on after it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from regiesignaal.engine.store.db import store_engine
from regiesignaal.engine.store.tables import outbox, runs
from regiesignaal.jobs.config import Settings
from regiesignaal.notifications import operator_alert as alerts
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.smtp import DeliveryReport, deliver_pending

log = logging.getLogger("regiesignaal.mailretry")

RETRY_INTERVAL = dt.timedelta(minutes=1)
RETRY_JOB_ID = "regiesignaal-mail-retry"
RETRY_ALIAS = "mail-retry"
"""The retry job's own job store (in memory: nothing to keep over a restart) and
executor (one thread: a slow delivery never delays the nightly job)."""
RUN_BUSY_HOURS = 6
NOT_OUT = ("pending", "sending", "transmitting", "failed", "uncertain")


@dataclass(frozen=True)
class RetryResult:
    """What one call did: the delivery (None: nothing due, outside the window, or a run
    busy), the messages of the day not out after the cut-off, and whether that was
    alerted now (once a day)."""

    delivery: DeliveryReport | None = None
    late: int = 0
    alerted: bool = False
    skipped: str | None = None


def _at(day: dt.date, hhmm: str, tz: dt.tzinfo) -> dt.datetime:
    parts = [int(p) for p in hhmm.split(":")] + [0]
    return dt.datetime.combine(day, dt.time(parts[0], parts[1], parts[2]), tz)


def _run_busy(conn: sa.Connection, now: dt.datetime) -> bool:
    since = now - dt.timedelta(hours=RUN_BUSY_HOURS)
    stmt = sa.select(runs.c.id).where(runs.c.status == "running", runs.c.started_at >= since)
    return conn.execute(stmt.limit(1)).first() is not None


def not_out_since(conn: sa.Connection, since: dt.datetime) -> dict[str, int]:
    """Messages to staff (not operator alerts) queued since ``since`` and not delivered,
    per status."""
    stmt = (
        sa.select(outbox.c.status, sa.func.count())
        .where(
            outbox.c.kind != "operator",
            outbox.c.status.in_(NOT_OUT),
            outbox.c.created_at >= ob.utc(since),
        )
        .group_by(outbox.c.status)
    )
    return {str(status): int(n) for status, n in conn.execute(stmt)}


def retry_mail(settings: Settings, store: sa.Engine, now: dt.datetime | None = None) -> RetryResult:
    """One retry (see the module docstring); ``now`` for tests (default: the clock)."""
    now = ob.utc(now or ob.utcnow())
    local = now.astimezone(settings.tz)
    day = local.date()
    if not settings.mail_enabled:
        return RetryResult(skipped="versturen staat uit ([mail] enabled = false)")
    if local < _at(day, settings.schedule, settings.tz):
        return RetryResult(skipped="voor de geplande tijd van de nacht")
    with store.connect() as conn:
        if _run_busy(conn, now):
            return RetryResult(skipped="een run is bezig")
        due = bool(ob.due_ids(conn, now, limit=1))
    report = None
    if due:
        report = deliver_pending(store, settings.smtp, now=now)
        log.info("mail retry: %s", report.line())
    if local < _at(day, settings.smtp.retry_until, settings.tz):
        return RetryResult(report)
    midnight = dt.datetime.combine(day, dt.time(0), settings.tz)
    with store.connect() as conn:
        late = not_out_since(conn, midnight)
    total = sum(late.values())
    if not total:
        return RetryResult(report)
    waiting = sum(late.get(s, 0) for s in ("pending", "sending", "transmitting"))
    queued = alerts.raise_alert(
        store,
        settings,
        "late_mail",
        [
            f"Om {settings.smtp.retry_until} zijn {total} bericht(en) van vandaag aan "
            f"medewerkers nog niet afgeleverd: {waiting} wachtend, "
            f"{late.get('failed', 0)} mislukt, {late.get('uncertain', 0)} mogelijk "
            "aangekomen (uitkomst onbekend).",
            "De scheduler blijft wachtende berichten elke minuut opnieuw proberen. "
            "Controleer de mailserver; 'regiesignaal deliver' toont de reden per bericht "
            "en 'regiesignaal deliver --now' probeert alles meteen.",
        ],
        now=now,
    )
    if queued:
        report = deliver_pending(store, settings.smtp, now=now)
    return RetryResult(report, total, bool(queued))


def retry_job(settings: Settings) -> None:
    """The scheduler's job: :func:`retry_mail` with its own store engine; trouble is
    logged in one line (the next minute tries again), never raised."""
    store = store_engine(settings.store_url)
    try:
        retry_mail(settings, store)
    except sa.exc.SQLAlchemyError as exc:
        log.error("mail retry: database error (%s); next try in a minute", type(exc).__name__)
    except OSError as exc:
        log.error("mail retry: %s; next try in a minute", type(exc).__name__)
    finally:
        store.dispose()


def add_retry_job(scheduler: BaseScheduler, settings: Settings) -> None:
    """Add the retry job (every ``RETRY_INTERVAL``) with its own job store and executor."""
    scheduler.add_jobstore(MemoryJobStore(), alias=RETRY_ALIAS)
    scheduler.add_executor(ThreadPoolExecutor(max_workers=1), alias=RETRY_ALIAS)
    scheduler.add_job(
        retry_job,
        IntervalTrigger(seconds=RETRY_INTERVAL.total_seconds(), timezone=settings.tz),
        args=[settings],
        id=RETRY_JOB_ID,
        name="regiesignaal mail retry",
        jobstore=RETRY_ALIAS,
        executor=RETRY_ALIAS,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=int(RETRY_INTERVAL.total_seconds()),
        replace_existing=True,
    )
