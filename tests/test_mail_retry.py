"""The scheduler's mail retry (issue 17, item 8 and the delivery bullet): mail a relay
defers still goes out the same day, with backoff, and what is not out by
``[smtp] retry_until`` is alerted once. The retry is called directly with a clock, one
call per minute as the scheduler does, against fault-injecting relays
(tests/faultsmtp.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from faultsmtp import FaultServer, Plan
from ops_support import enqueue_lists, outbox_rows

from regiesignaal.engine.store.tables import runs
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.ops.mail_retry import RETRY_JOB_ID, add_retry_job, retry_mail
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.settings import SmtpSettings

AS_OF = dt.date(2026, 11, 27)  # a Friday; 06:00 in Amsterdam is 05:00 UTC
NIGHT = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)
OPERATOR = "beheer@dtv.example"

pytestmark = pytest.mark.slow


def settings_for(port: int, **smtp: object) -> Settings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "timeout_seconds": 10.0,
        "sender": "regiesignaal@dtv.example",
        "retry_until": "12:00",
    }
    base.update(smtp)
    return dataclasses.replace(
        Settings(),
        smtp=SmtpSettings(**base),  # type: ignore[arg-type]
        schedule="06:00",
        operators=(OPERATOR,),
    )


def enqueue(engine: sa.Engine, n: int, at: dt.datetime = NIGHT) -> None:
    enqueue_lists(engine, n, AS_OF, at)


def staff_rows(engine: sa.Engine) -> list[ob.OutboxRow]:
    return [r for r in outbox_rows(engine) if r.kind != "operator"]


def alert_rows(engine: sa.Engine) -> list[ob.OutboxRow]:
    with engine.connect() as conn:
        ids = (
            conn.execute(sa.select(ob.outbox.c.id).where(ob.outbox.c.kind == "operator"))
            .scalars()
            .all()
        )
        found = [ob.get(conn, i) for i in ids]
    return [r for r in found if r is not None]


def test_a_per_minute_rate_limit_gets_all_37_lists_out_within_minutes(store: sa.Engine) -> None:
    """The issue's Postfix case: ten messages a minute. The night's delivery sends ten
    and the relay defers the rest; the minute-by-minute retry sends ten more each
    minute; all 37 are out by 06:05, once each, one attempt each, and nobody is alerted
    at noon."""
    enqueue(store, 37)
    with FaultServer(Plan(mail_window=10, mail_code=450)) as server:
        settings = settings_for(server.port)
        for minute in range(0, 10):
            server.next_window()
            retry_mail(settings, store, NIGHT + dt.timedelta(minutes=minute, seconds=5))
        assert all(r.status == "sent" for r in staff_rows(store))
        noon = retry_mail(settings, store, NIGHT + dt.timedelta(hours=6))
    assert (noon.late, noon.alerted) == (0, False)
    assert len(server.received) == 37 and set(server.received.values()) == {1}
    assert all(r.attempts == 1 for r in staff_rows(store))
    assert alert_rows(store) == []


def test_mail_a_relay_keeps_deferring_is_retried_with_backoff_and_alerted_once_at_the_cutoff(
    store: sa.Engine,
) -> None:
    """One message a day gets through; the other two are deferred all morning: they are
    retried with growing waits (not every minute), never charged an attempt, and the
    operators are alerted once when 12:00 has passed, with counts only."""
    enqueue(store, 3)
    with FaultServer(Plan(mail_window=1, mail_code=451)) as server:
        settings = settings_for(server.port)
        before = retry_mail(settings, store, NIGHT - dt.timedelta(minutes=1))
        assert before.skipped and server.mail_seen == 0  # before the night's time
        results = [
            retry_mail(settings, store, NIGHT + dt.timedelta(minutes=m, seconds=5))
            for m in range(0, 7 * 60)  # 06:00 .. 12:59, one call a minute
        ]
    cutoff = 6 * 60  # the call at 12:00:05
    assert not any(r.alerted or r.late for r in results[:cutoff])
    assert results[cutoff].alerted and results[cutoff].late == 2
    assert not any(r.alerted for r in results[cutoff + 1 :])  # once a day
    assert all(r.late == 2 for r in results[cutoff:])
    # backoff: far fewer MAIL commands than the 420 minutes
    assert 10 < server.mail_seen < 80
    rows = staff_rows(store)
    assert [r.status for r in rows] == ["sent", "pending", "pending"]
    assert [r.attempts for r in rows] == [1, 0, 0]
    (alert,) = alert_rows(store)
    assert alert.recipient_email == OPERATOR
    assert "nog niet afgeleverd" in alert.subject
    assert "2 bericht(en)" in alert.body_text and "2 wachtend" in alert.body_text
    for row in rows:  # no recipient of a list is named in the alert
        assert row.recipient_id not in alert.body_text
        assert row.recipient_email not in alert.body_text


def test_no_retry_while_a_run_is_busy(store: sa.Engine) -> None:
    """The night's own delivery is at work: the retry leaves it alone that minute."""
    enqueue(store, 2)
    with store.begin() as conn:
        conn.execute(
            runs.insert().values(
                as_of=AS_OF, trigger="scheduler", status="running", started_at=NIGHT, errors=[]
            )
        )
    with FaultServer() as server:
        result = retry_mail(settings_for(server.port), store, NIGHT + dt.timedelta(minutes=1))
        assert result.skipped and result.delivery is None
        assert server.mail_seen == 0
    assert all(r.status == "pending" for r in staff_rows(store))


def test_no_retry_and_no_alert_with_mail_switched_off(store: sa.Engine) -> None:
    enqueue(store, 1)
    with FaultServer() as server:
        settings = dataclasses.replace(settings_for(server.port), mail_enabled=False)
        result = retry_mail(settings, store, NIGHT + dt.timedelta(hours=7))
        assert result.skipped and not result.alerted and server.mail_seen == 0
    assert alert_rows(store) == []


def test_the_scheduler_gets_a_retry_job_every_minute_in_its_own_executor() -> None:
    scheduler = BackgroundScheduler(timezone="Europe/Amsterdam")
    add_retry_job(scheduler, settings_for(25))
    job = scheduler.get_job(RETRY_JOB_ID)
    assert job is not None
    assert job.trigger.interval == dt.timedelta(minutes=1)
    assert job.executor == "mail-retry"
