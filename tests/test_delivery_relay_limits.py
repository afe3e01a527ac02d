"""Relays that limit or defer (issue 17, item 8), on SQLite and PostgreSQL.

A relay that takes N messages per connection and then answers 421 or closes (at MAIL,
RCPT or the DATA command) gets the same message again over a new connection in the same
delivery, no attempt charged; a 4xx to MAIL (a rate limit, greylisting) defers that
message and every one not yet offered, uncharged, with a reason and a next attempt
time; a 5xx to MAIL is a configuration problem: the delivery stops, nothing charged.
"""

from __future__ import annotations

import datetime as dt
import tempfile

import pytest
import sqlalchemy as sa
from faultsmtp import FaultServer, Plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops_support import enqueue_lists, outbox_rows

from regiesignaal.engine.store.tables import metadata
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.settings import SmtpSettings
from regiesignaal.notifications.delivery.smtp import DEFER_MIN, deliver_pending

AS_OF = dt.date(2026, 11, 28)
T0 = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)

pytestmark = pytest.mark.slow


def enqueue(engine: sa.Engine, n: int) -> None:
    enqueue_lists(engine, n, AS_OF, T0)


def rows(engine: sa.Engine) -> list[ob.OutboxRow]:
    return outbox_rows(engine)


def smtp_for(port: int, **kw: object) -> SmtpSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": "none",
        "timeout_seconds": 10.0,
        "sender": "regiesignaal@dtv.example",
    }
    base.update(kw)
    return SmtpSettings(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit_at", ["MAIL", "RCPT", "DATA"])
@pytest.mark.parametrize("reply", ["421", "close"])
def test_a_relay_limiting_messages_per_connection_gets_every_message_in_one_delivery(
    store: sa.Engine, limit_at: str, reply: str
) -> None:
    """Three messages per connection, then 421 (or a silent close) at MAIL, RCPT or
    the DATA command: every fourth message gets a new connection and goes out in the
    same delivery, one attempt each, none twice, no reason left behind."""
    enqueue(store, 8)
    plan = Plan(per_connection=3, limit_at=limit_at, limit_reply=reply)
    with FaultServer(plan) as server:
        before = server.connections  # aiosmtpd's own readiness check
        report = deliver_pending(store, smtp_for(server.port, batch_size=5), now=T0)
        assert (report.sent, report.deferred, report.failed, report.untried) == (8, 0, 0, 0)
        assert report.uncertain == 0 and report.errors == []
        assert server.ended == 2  # the session was ended twice, after 3 and 6 messages
        assert server.connections - before == 3
    assert len(server.received) == 8 and set(server.received.values()) == {1}
    for row in rows(store):
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)


def test_a_relay_that_ends_every_session_before_the_data_charges_one_attempt_each(
    store: sa.Engine,
) -> None:
    """At most one new connection per message: a relay that answers 421 to every MAIL
    costs each message one attempt (a temporary failure with the right reason, not
    "afzender geweigerd"), and after three such messages the delivery stops with the
    rest untried."""
    enqueue(store, 5)
    with FaultServer(Plan(end_every_session=True, limit_at="MAIL")) as server:
        report = deliver_pending(store, smtp_for(server.port), now=T0)
    assert (report.sent, report.deferred, report.untried) == (0, 3, 2)
    assert report.server_unreachable
    assert not server.received
    found = rows(store)
    assert [r.attempts for r in found] == [1, 1, 1, 0, 0]
    for row in found[:3]:
        assert row.status == "pending"
        assert "twee keer" in (row.last_error or "") and "421" in (row.last_error or "")
        assert "afzender" not in (row.last_error or "")


def test_a_rate_limit_at_mail_defers_the_rest_uncharged_with_a_reason_and_a_time(
    store: sa.Engine,
) -> None:
    """Three MAILs per window, then 450 (Postfix's per-client rate limit): three go, the
    other five (the rest of the batch and those never claimed) wait one minute with the
    reason, no attempt charged; before that time nothing is tried; in the next window
    three more go."""
    enqueue(store, 8)
    with FaultServer(Plan(mail_window=3, mail_code=450)) as server:
        smtp = smtp_for(server.port, batch_size=2)
        first = deliver_pending(store, smtp, now=T0)
        assert (first.sent, first.deferred, first.failed, first.untried) == (3, 5, 0, 0)
        assert any("stelt de bezorging uit" in e for e in first.errors)
        assert not any("@" in e for e in first.errors)  # no address in the report
        waiting = [r for r in rows(store) if r.status == "pending"]
        assert len(waiting) == 5
        for row in waiting:
            assert row.attempts == 0
            assert "450" in (row.last_error or "") and "uit" in (row.last_error or "")
            assert row.next_attempt_at is not None
            assert (
                T0 + DEFER_MIN <= row.next_attempt_at <= T0 + DEFER_MIN + dt.timedelta(seconds=30)
            )
        seen = server.mail_seen
        early = deliver_pending(store, smtp, now=T0 + dt.timedelta(seconds=30))
        assert (early.sent, early.deferred) == (0, 0) and server.mail_seen == seen
        server.next_window()
        second = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=2))
        assert (second.sent, second.deferred) == (3, 2)
        server.next_window()
        third = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=4))
        assert (third.sent, third.deferred) == (2, 0)
    assert len(server.received) == 8 and set(server.received.values()) == {1}
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(store))


def test_a_5xx_to_mail_is_a_configuration_problem_and_charges_nothing(
    store: sa.Engine,
) -> None:
    enqueue(store, 4)
    with FaultServer(Plan(refuse_mail=550)) as server:
        report = deliver_pending(store, smtp_for(server.port, batch_size=2), now=T0)
        assert server.mail_seen == 1  # stopped at the first refusal
    assert (report.sent, report.deferred, report.failed, report.untried) == (0, 0, 0, 4)
    assert report.troubled
    assert len(report.errors) == 1
    assert "afzender geweigerd" in report.errors[0] and "[smtp] sender" in report.errors[0]
    assert "niet toegestaan" not in report.errors[0]  # never the server's own text
    assert all(r.status == "pending" and r.attempts == 0 for r in rows(store))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    n=st.integers(1, 12),
    per_connection=st.integers(1, 5),
    limit_at=st.sampled_from(["MAIL", "RCPT", "DATA"]),
    reply=st.sampled_from(["421", "close"]),
    batch_size=st.integers(1, 6),
    connections=st.integers(1, 3),
)
def test_any_per_connection_limit_delivers_everything_once_uncharged(
    n: int, per_connection: int, limit_at: str, reply: str, batch_size: int, connections: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/store.sqlite")
        metadata.create_all(engine)
        try:
            enqueue(engine, n)
            plan = Plan(per_connection=per_connection, limit_at=limit_at, limit_reply=reply)
            with FaultServer(plan) as server:
                smtp = smtp_for(server.port, batch_size=batch_size, connections=connections)
                report = deliver_pending(engine, smtp, now=T0)
            assert (report.sent, report.deferred, report.failed, report.untried) == (n, 0, 0, 0)
            assert len(server.received) == n and set(server.received.values()) == {1}
            assert all(r.status == "sent" and r.attempts == 1 for r in rows(engine))
        finally:
            engine.dispose()
