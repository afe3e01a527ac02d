"""Outbox and SMTP delivery against a real aiosmtpd server, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import re
import threading
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.store.tables import metadata, outbox
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.delivery.settings import SmtpSettings
from regiesignaal.notifications.delivery.smtp import (
    backoff,
    build_message,
    deliver_pending,
    smtp_error,
)

AS_OF = dt.date(2026, 11, 28)
T0 = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
SECRET_BODY = "geheime-inhoud-7Q3"
NONE = {status: 0 for status in ob.STATUSES}


def message(n: int) -> ComposedMessage:
    return ComposedMessage(
        subject=f"Regiesignaal 28-11-2026: {n} nieuw, {n} open",
        text=f"Tekst {n} met ë en {SECRET_BODY}\n",
        html=f"<p>HTML {n} met &euml; en {SECRET_BODY}</p>",
    )


def enqueue_many(engine: sa.Engine, recipients: list[str], *, as_of: dt.date = AS_OF) -> None:
    with engine.begin() as conn:
        for n, rid in enumerate(recipients):
            assert ob.enqueue(
                conn,
                run_id=1,
                as_of=as_of,
                kind="regievoerder",
                recipient_id=rid,
                recipient_email=f"{rid}@dtv.example",
                message=message(n),
                sender_domain="dtv.example",
                now=T0,
            )


def rows(engine: sa.Engine) -> dict[str, ob.OutboxRow]:
    with engine.connect() as conn:
        ids = conn.execute(sa.select(outbox.c.id)).scalars().all()
        found = [ob.get(conn, i) for i in ids]
    return {r.recipient_id: r for r in found if r is not None}


def settings_for(catcher_port: int, **overrides: object) -> SmtpSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": catcher_port,
        "tls": "none",
        "sender": "regiesignaal@dtv.example",
        "timeout_seconds": 10.0,
    }
    base.update(overrides)
    return SmtpSettings(**base)  # type: ignore[arg-type]


def received(directory: Path) -> list[EmailMessage]:
    out = []
    for path in sorted(directory.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def free_port_nobody_listens_on(tmp_path: Path) -> int:
    with MailCatcher(tmp_path / "probe") as probe:
        return probe.port


# --- outbox ------------------------------------------------------------------------


def test_enqueue_is_once_per_date_kind_and_recipient(store: sa.Engine) -> None:
    with store.begin() as conn:
        first = ob.enqueue(
            conn,
            run_id=1,
            as_of=AS_OF,
            kind="regievoerder",
            recipient_id="rv-001",
            recipient_email="rv-001@dtv.example",
            message=message(1),
            sender_domain="dtv.example",
        )
    with store.begin() as conn:  # a rerun of the same date, with a changed message
        again = ob.enqueue(
            conn,
            run_id=2,
            as_of=AS_OF,
            kind="regievoerder",
            recipient_id="rv-001",
            recipient_email="rv-001@dtv.example",
            message=message(2),
            sender_domain="dtv.example",
        )
        other_kind = ob.enqueue(
            conn,
            run_id=2,
            as_of=AS_OF,
            kind="teamleider",
            recipient_id="rv-001",
            recipient_email="rv-001@dtv.example",
            message=message(3),
            sender_domain="dtv.example",
        )
    assert (first, again, other_kind) == (True, False, True)
    with store.connect() as conn:
        stored = conn.execute(
            sa.select(
                outbox.c.kind, outbox.c.run_id, outbox.c.subject, outbox.c.message_id
            ).order_by(outbox.c.id)
        ).all()
        assert ob.counts(conn, AS_OF) == {**NONE, "pending": 2}
        assert ob.counts(conn, AS_OF + dt.timedelta(days=1)) == NONE
    assert [(k, r) for k, r, _, _ in stored] == [("regievoerder", 1), ("teamleider", 2)]
    assert stored[0][2] == message(1).subject  # the first message is kept
    assert stored[0][3] == ob.make_message_id(AS_OF, "regievoerder", "rv-001", "dtv.example")
    assert stored[0][3] != stored[1][3]


def test_enqueue_rejects_unknown_kind_and_missing_address(store: sa.Engine) -> None:
    with store.begin() as conn:
        with pytest.raises(ValueError, match="onbekend soort"):
            ob.enqueue(
                conn,
                run_id=1,
                as_of=AS_OF,
                kind="nieuwsbrief",
                recipient_id="x",
                recipient_email="x@dtv.example",
                message=message(1),
                sender_domain="dtv.example",
            )
        with pytest.raises(ValueError, match="geen e-mailadres voor medewerker 'rv-9'"):
            ob.enqueue(
                conn,
                run_id=1,
                as_of=AS_OF,
                kind="regievoerder",
                recipient_id="rv-9",
                recipient_email=" ",
                message=message(1),
                sender_domain="dtv.example",
            )


@given(
    as_of=st.dates(dt.date(2020, 1, 1), dt.date(2040, 12, 31)),
    kind=st.sampled_from(["regievoerder", "teamleider"]),
    rid=st.text(min_size=1, max_size=64),
)
def test_message_id_is_deterministic_and_header_safe(as_of: dt.date, kind: str, rid: str) -> None:
    mid = ob.make_message_id(as_of, kind, rid, "dtv.example")
    assert mid == ob.make_message_id(as_of, kind, rid, "dtv.example")
    assert mid.startswith("<") and mid.endswith("@dtv.example>")
    assert mid.isascii() and " " not in mid and "\n" not in mid
    other = ob.make_message_id(as_of + dt.timedelta(days=1), kind, rid, "dtv.example")
    assert mid != other


def test_pending_skips_rows_not_yet_due(store: sa.Engine) -> None:
    enqueue_many(store, ["rv-1", "rv-2"])
    with store.begin() as conn:
        conn.execute(
            outbox.update()
            .where(outbox.c.recipient_id == "rv-2")
            .values(next_attempt_at=T0 + dt.timedelta(minutes=5))
        )
    with store.connect() as conn:
        assert [r.recipient_id for r in ob.pending(conn, T0)] == ["rv-1"]
        later = ob.pending(conn, T0 + dt.timedelta(minutes=5))
        assert [r.recipient_id for r in later] == ["rv-1", "rv-2"]
        assert later[1].next_attempt_at == T0 + dt.timedelta(minutes=5)
        assert [r.recipient_id for r in ob.pending(conn, T0, limit=1)] == ["rv-1"]


# --- delivery ----------------------------------------------------------------------


def test_delivers_each_message_once_with_the_right_structure(
    store: sa.Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue_many(store, ["rv-001", "rv-002", "tl-003"])
    mail = tmp_path / "mail"
    caplog.set_level(logging.DEBUG)
    with MailCatcher(mail) as catcher:
        smtp = settings_for(catcher.port, password="wachtwoord-XYZ")
        report = deliver_pending(store, smtp, now=T0)
        assert (report.sent, report.deferred, report.failed, report.errors) == (3, 0, 0, [])
        again = deliver_pending(store, smtp, now=T0 + dt.timedelta(hours=1))
        assert (again.sent, again.deferred, again.failed) == (0, 0, 0)
        assert catcher.messages == 3

    msgs = received(mail)
    assert [m["X-Envelope-To"] for m in msgs] == [
        "<rv-001@dtv.example>",
        "<rv-002@dtv.example>",
        "<tl-003@dtv.example>",
    ]
    state = rows(store)
    for n, msg in enumerate(msgs):
        row = state[msg["To"].split("@")[0]]
        assert msg.get_content_type() == "multipart/alternative"
        parts = list(msg.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        plain = parts[0].get_content().replace("\r\n", "\n")
        html = parts[1].get_content().replace("\r\n", "\n")
        assert plain == message(n).text
        assert html.strip() == message(n).html
        assert msg["From"] == "regiesignaal@dtv.example"
        assert msg["Subject"] == message(n).subject
        assert msg["Message-ID"] == row.message_id
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["Content-Language"] == "nl"
        assert msg["Date"]
        assert row.status == "sent" and row.attempts == 1 and row.sent_at == T0
    with store.connect() as conn:
        assert ob.counts(conn, AS_OF) == {**NONE, "sent": 3}
    # Our side (the test server's own "mail.log" debug output is not ours to judge).
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name == "regiesignaal.delivery" for r in ours)
    logged = "\n".join(r.getMessage() for r in ours)
    assert SECRET_BODY not in logged
    assert "wachtwoord-XYZ" not in logged
    assert "@dtv.example" not in logged  # ids and counts only, no addresses


def test_451_defers_just_that_recipient_until_a_later_call(
    store: sa.Engine, tmp_path: Path
) -> None:
    enqueue_many(store, ["rv-1", "rv-2", "rv-3"])
    refuse = {"rv-2@dtv.example": "451 4.3.0 Mailbox tijdelijk niet beschikbaar"}
    mail = tmp_path / "mail"
    with MailCatcher(mail, rcpt_policy=refuse.get) as catcher:
        smtp = settings_for(catcher.port)
        report = deliver_pending(store, smtp, now=T0)
        assert (report.sent, report.deferred, report.failed) == (2, 1, 0)
        deferred = rows(store)["rv-2"]
        assert deferred.status == "pending" and deferred.attempts == 1
        assert deferred.last_error is not None and deferred.last_error.startswith("451 ")
        assert SECRET_BODY not in deferred.last_error
        assert deferred.next_attempt_at == T0 + dt.timedelta(minutes=1)

        refuse.clear()
        too_soon = deliver_pending(store, smtp, now=T0 + dt.timedelta(seconds=30))
        assert (too_soon.sent, too_soon.deferred) == (0, 0)  # not due yet: skipped
        later = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=1))
        assert (later.sent, later.deferred, later.failed) == (1, 0, 0)
        assert catcher.messages == 3
    assert sorted(m["To"] for m in received(mail)) == [
        "rv-1@dtv.example",
        "rv-2@dtv.example",
        "rv-3@dtv.example",
    ]
    done = rows(store)["rv-2"]
    assert done.status == "sent" and done.attempts == 2 and done.last_error is None


def test_550_fails_permanently(store: sa.Engine, tmp_path: Path) -> None:
    enqueue_many(store, ["rv-1", "rv-2"])
    refuse = {"rv-1@dtv.example": "550 5.1.1 Onbekende ontvanger Jan de Vries <rv-1@dtv.example>"}
    with MailCatcher(tmp_path / "mail", rcpt_policy=refuse.get) as catcher:
        smtp = settings_for(catcher.port)
        report = deliver_pending(store, smtp, now=T0)
        assert (report.sent, report.deferred, report.failed) == (1, 0, 1)
        assert len(report.errors) == 1 and "550" in report.errors[0]
        assert "rv-1@dtv.example" not in report.errors[0]  # addresses are redacted
        later = deliver_pending(store, smtp, now=T0 + dt.timedelta(days=1))
        assert (later.sent, later.deferred, later.failed) == (0, 0, 0)
        assert catcher.messages == 1
    failed = rows(store)["rv-1"]
    assert failed.status == "failed" and failed.attempts == 1
    # the code and a fixed description; nothing of the reply text (a name, an address)
    assert failed.last_error == "550 5.1.1 mailbox niet beschikbaar of bericht geweigerd"


def test_gives_up_after_max_attempts_and_operator_can_requeue(
    store: sa.Engine, tmp_path: Path
) -> None:
    enqueue_many(store, ["rv-1"])
    refuse = {"rv-1@dtv.example": "452 4.2.2 Mailbox vol"}
    with MailCatcher(tmp_path / "mail", rcpt_policy=refuse.get) as catcher:
        smtp = settings_for(catcher.port, max_attempts=3)
        now = T0
        outcomes = []
        for _ in range(3):
            report = deliver_pending(store, smtp, now=now)
            outcomes.append((report.deferred, report.failed))
            now += dt.timedelta(hours=2)
        assert outcomes == [(1, 0), (1, 0), (0, 1)]
        row = rows(store)["rv-1"]
        assert row.status == "failed" and row.attempts == 3
        assert row.last_error is not None and "na 3 pogingen" in row.last_error

        with store.begin() as conn:
            assert ob.requeue_failed(conn, as_of=AS_OF) == 1
        refuse.clear()
        report = deliver_pending(store, smtp, now=now)
        assert report.sent == 1
        assert catcher.messages == 1


def test_server_down_defers_everything_and_delivers_once_it_is_up(
    store: sa.Engine, tmp_path: Path
) -> None:
    enqueue_many(store, ["rv-1", "rv-2", "rv-3"])
    port = free_port_nobody_listens_on(tmp_path)
    smtp = settings_for(port)

    report = deliver_pending(store, smtp, now=T0)
    assert report.server_unreachable
    assert (report.sent, report.deferred, report.failed, report.untried) == (0, 0, 0, 3)
    assert len(report.errors) == 1 and "onbereikbaar" in report.errors[0]
    state = rows(store)
    # never offered to the server: no attempt counted, so never 'failed' by an outage
    assert all(r.status == "pending" and r.attempts == 0 for r in state.values())

    second = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=1))
    assert second.untried == 3
    assert all(r.attempts == 0 for r in rows(store).values())

    mail = tmp_path / "mail"
    with MailCatcher(mail, port=port) as catcher:
        assert catcher.port == port
        up = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=3))
        assert (up.sent, up.deferred, up.failed, up.server_unreachable) == (3, 0, 0, False)
        again = deliver_pending(store, smtp, now=T0 + dt.timedelta(hours=3))
        assert again.sent == 0
    assert sorted(m["To"] for m in received(mail)) == [
        "rv-1@dtv.example",
        "rv-2@dtv.example",
        "rv-3@dtv.example",
    ]
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(store).values())


def test_server_closing_the_connection_does_not_stop_the_batch(
    store: sa.Engine, tmp_path: Path
) -> None:
    enqueue_many(store, ["rv-1", "rv-2", "rv-3"])
    refuse = {"rv-1@dtv.example": "421 4.3.2 Dienst niet beschikbaar, verbinding sluit"}
    with MailCatcher(tmp_path / "mail", rcpt_policy=refuse.get) as catcher:
        smtp = settings_for(catcher.port)
        report = deliver_pending(store, smtp, now=T0)
        # rv-1 waits (421); the next messages get a new connection and go out
        assert (report.sent, report.deferred, report.failed) == (2, 1, 0)
        assert catcher.messages == 2
        refuse.clear()
        later = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=1))
        assert later.sent == 1
        assert catcher.messages == 3


def test_limit_bounds_the_batch(store: sa.Engine, tmp_path: Path) -> None:
    enqueue_many(store, [f"rv-{i}" for i in range(5)])
    with MailCatcher(tmp_path / "mail") as catcher:
        smtp = settings_for(catcher.port)
        assert deliver_pending(store, smtp, now=T0, limit=2).sent == 2
        assert deliver_pending(store, smtp, now=T0).sent == 3
        assert catcher.messages == 5


def test_nothing_due_needs_no_server(store: sa.Engine, tmp_path: Path) -> None:
    port = free_port_nobody_listens_on(tmp_path)
    report = deliver_pending(store, settings_for(port), now=T0)
    assert (report.sent, report.deferred, report.server_unreachable) == (0, 0, False)


# --- claims: never twice, even with deliverers running at once ---------------------


def test_two_concurrent_deliverers_send_every_message_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    """Two deliverers (threads, each with its own engine, like two processes) at once."""
    setup = sa.create_engine(db_url)
    metadata.create_all(setup)
    recipients = [f"rv-{i:03d}" for i in range(56)]
    enqueue_many(setup, recipients)
    setup.dispose()
    mail = tmp_path / "mail"
    start = threading.Barrier(2)
    reports: list[object] = []

    def deliverer(smtp: SmtpSettings) -> None:
        engine = sa.create_engine(db_url)
        try:
            start.wait()
            reports.append(deliver_pending(engine, smtp, now=T0))
        except BaseException as exc:  # reported below, not lost in the thread
            reports.append(exc)
        finally:
            engine.dispose()

    with MailCatcher(mail) as catcher:
        smtp = settings_for(catcher.port)
        threads = [threading.Thread(target=deliverer, args=(smtp,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not [r for r in reports if isinstance(r, BaseException)], reports
        assert sum(r.sent for r in reports) == 56  # type: ignore[attr-defined]
        assert catcher.messages == 56

    per_recipient = Counter(m["To"] for m in received(mail))
    assert per_recipient == Counter(f"{rid}@dtv.example" for rid in recipients)
    engine = sa.create_engine(db_url)
    try:
        state = rows(engine)
        assert all(r.status == "sent" and r.attempts == 1 for r in state.values())
        with engine.connect() as conn:
            assert ob.counts(conn) == {**NONE, "sent": 56}
    finally:
        engine.dispose()


def test_a_claim_goes_to_one_caller_only(store: sa.Engine) -> None:
    enqueue_many(store, ["rv-1"])
    row_id = rows(store)["rv-1"].id
    with store.begin() as conn:
        first = ob.claim(conn, row_id, T0)
    with store.begin() as conn:
        second = ob.claim(conn, row_id, T0)
    assert first is not None and second is None
    assert first.status == "sending" and first.attempts == 1
    assert first.next_attempt_at == T0  # the claim time, while sending
    with store.connect() as conn:
        assert ob.due_ids(conn, T0 + dt.timedelta(hours=1)) == []
        assert ob.counts(conn) == {**NONE, "sending": 1}


def test_an_interrupted_claim_is_sent_again_after_ten_minutes(
    store: sa.Engine, tmp_path: Path
) -> None:
    """A deliverer died after claiming, before the data went out: safe to send again."""
    enqueue_many(store, ["rv-1", "rv-2"])
    with store.begin() as conn:
        claimed = ob.claim(conn, rows(store)["rv-1"].id, T0)
    assert claimed is not None
    with MailCatcher(tmp_path / "mail") as catcher:
        smtp = settings_for(catcher.port)
        soon = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=10))
        assert (soon.sent, soon.errors) == (1, [])  # rv-2 only; rv-1 may still be underway
        assert rows(store)["rv-1"].status == "sending"
        later = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=10, seconds=1))
        assert (later.sent, later.uncertain) == (1, 0)
        assert catcher.messages == 2
    again = rows(store)["rv-1"]
    assert again.status == "sent" and again.attempts == 2
    assert [m["Message-ID"] for m in received(tmp_path / "mail")][1] == claimed.message_id
    with store.begin() as conn:  # the dead deliverer's late outcome changes nothing now
        assert not ob.finish_retry(conn, claimed, "451 x", T0)
    assert rows(store)["rv-1"].status == "sent"


def test_a_claim_interrupted_while_transmitting_becomes_uncertain_not_resent(
    store: sa.Engine, tmp_path: Path
) -> None:
    """A deliverer died while the data went out: maybe arrived; never resent blindly."""
    enqueue_many(store, ["rv-1"])
    with store.begin() as conn:
        claimed = ob.claim(conn, rows(store)["rv-1"].id, T0)
        assert claimed is not None and ob.mark_transmitting(conn, claimed)
    with MailCatcher(tmp_path / "mail") as catcher:
        report = deliver_pending(
            store, settings_for(catcher.port), now=T0 + dt.timedelta(minutes=11)
        )
        assert (report.sent, report.uncertain, catcher.messages) == (0, 1, 0)
        assert "mogelijk aangekomen" in report.errors[0]
    assert rows(store)["rv-1"].status == "uncertain"
    with store.begin() as conn:
        assert ob.requeue_uncertain(conn) == 1
    assert rows(store)["rv-1"].status == "pending"


def test_a_stale_claim_is_superseded_by_a_newer_message(store: sa.Engine, tmp_path: Path) -> None:
    """Yesterday's list, stuck in 'sending' by a killed run, never goes out next to today's."""
    enqueue_many(store, ["rv-1"])
    with store.begin() as conn:
        assert ob.claim(conn, rows(store)["rv-1"].id, T0) is not None
        ob.enqueue(
            conn,
            run_id=2,
            as_of=AS_OF + dt.timedelta(days=1),
            kind="regievoerder",
            recipient_id="rv-1",
            recipient_email="rv-1@dtv.example",
            message=message(2),
            sender_domain="dtv.example",
        )
    with MailCatcher(tmp_path / "mail") as catcher:
        report = deliver_pending(store, settings_for(catcher.port), now=T0 + dt.timedelta(hours=20))
        assert (report.sent, catcher.messages) == (1, 1)
        assert any("vervangen" in e for e in report.errors)
    with store.connect() as conn:
        statuses = [
            r.status for r in conn.execute(sa.select(outbox.c.status).order_by(outbox.c.as_of))
        ]
    assert statuses == ["superseded", "sent"]


# --- stale mail and operator actions -------------------------------------------------


def enqueue_one(
    engine: sa.Engine, rid: str, as_of: dt.date, kind: str = "regievoerder", n: int = 0
) -> bool:
    with engine.begin() as conn:
        return ob.enqueue(
            conn,
            run_id=1,
            as_of=as_of,
            kind=kind,
            recipient_id=rid,
            recipient_email=f"{rid}@dtv.example",
            message=message(n),
            sender_domain="dtv.example",
            now=T0,
        )


def statuses(engine: sa.Engine) -> dict[tuple[str, str, dt.date], str]:
    with engine.connect() as conn:
        return {
            (r.kind, r.recipient_id, r.as_of): r.status
            for r in conn.execute(
                sa.select(outbox.c.kind, outbox.c.recipient_id, outbox.c.as_of, outbox.c.status)
            )
        }


def test_a_newer_message_supersedes_an_older_pending_one(store: sa.Engine, tmp_path: Path) -> None:
    mon, tue, wed = (AS_OF + dt.timedelta(days=d) for d in (2, 3, 4))
    enqueue_one(store, "rv-1", mon)
    enqueue_one(store, "rv-2", mon)
    enqueue_one(store, "rv-1", mon, kind="teamleider")
    assert enqueue_one(store, "rv-1", tue, n=1)
    assert statuses(store) == {
        ("regievoerder", "rv-1", mon): "superseded",  # never sent, kept for the record
        ("regievoerder", "rv-2", mon): "pending",  # another recipient
        ("teamleider", "rv-1", mon): "pending",  # another kind
        ("regievoerder", "rv-1", tue): "pending",
    }
    with store.begin() as conn:  # direct use: only pending rows of an earlier date
        assert ob.supersede_older(conn, kind="regievoerder", recipient_id="rv-1", as_of=tue) == 0
        assert ob.supersede_older(conn, kind="teamleider", recipient_id="rv-1", as_of=wed) == 1
    with MailCatcher(tmp_path / "mail") as catcher:
        report = deliver_pending(store, settings_for(catcher.port), now=T0)
        assert report.sent == 2
    assert sorted((m["To"], m["Subject"]) for m in received(tmp_path / "mail")) == [
        ("rv-1@dtv.example", message(1).subject),
        ("rv-2@dtv.example", message(0).subject),
    ]
    with store.connect() as conn:
        assert ob.counts(conn) == {**NONE, "sent": 2, "superseded": 2}


def test_a_rerun_of_an_older_date_queues_a_superseded_message(store: sa.Engine) -> None:
    tue, mon = AS_OF + dt.timedelta(days=3), AS_OF + dt.timedelta(days=2)
    enqueue_one(store, "rv-1", tue)
    assert enqueue_one(store, "rv-1", mon)
    assert statuses(store) == {
        ("regievoerder", "rv-1", tue): "pending",
        ("regievoerder", "rv-1", mon): "superseded",
    }


def test_sent_and_failed_rows_are_not_superseded_and_stale_failures_not_requeued(
    store: sa.Engine,
) -> None:
    mon, tue = AS_OF + dt.timedelta(days=2), AS_OF + dt.timedelta(days=3)
    enqueue_many(store, ["rv-1", "rv-2", "rv-3"], as_of=mon)
    with store.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.recipient_id == "rv-1").values(status="sent"))
        conn.execute(outbox.update().where(outbox.c.recipient_id != "rv-1").values(status="failed"))
    enqueue_one(store, "rv-1", tue)
    enqueue_one(store, "rv-2", tue)
    with store.begin() as conn:
        assert ob.requeue_failed(conn) == 1  # rv-3; rv-2's failure is stale now
    assert statuses(store) == {
        ("regievoerder", "rv-1", mon): "sent",
        ("regievoerder", "rv-2", mon): "superseded",
        ("regievoerder", "rv-3", mon): "pending",
        ("regievoerder", "rv-1", tue): "pending",
        ("regievoerder", "rv-2", tue): "pending",
    }


def test_release_due_makes_every_waiting_row_due_now(store: sa.Engine) -> None:
    enqueue_many(store, ["rv-1", "rv-2", "rv-3"])
    with store.begin() as conn:
        conn.execute(
            outbox.update()
            .where(outbox.c.recipient_id != "rv-1")
            .values(next_attempt_at=T0 + dt.timedelta(minutes=30))
        )
        conn.execute(outbox.update().where(outbox.c.recipient_id == "rv-3").values(status="failed"))
    with store.begin() as conn:
        assert [r.recipient_id for r in ob.pending(conn, T0)] == ["rv-1"]
        assert ob.release_due(conn, T0) == 1  # rv-2; a failed row is not pending
        assert [r.recipient_id for r in ob.pending(conn, T0)] == ["rv-1", "rv-2"]
        assert ob.release_due(conn, T0) == 0
    assert rows(store)["rv-3"].status == "failed"


# --- helpers -----------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10_000))
def test_backoff_doubles_from_one_minute_up_to_an_hour(attempts: int) -> None:
    delay = backoff(attempts)
    expected = min(2 ** min(attempts - 1, 10), 60)
    assert delay == dt.timedelta(minutes=expected)


def test_backoff_sequence() -> None:
    assert [int(backoff(n).total_seconds() // 60) for n in range(1, 9)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]


def test_smtp_error_keeps_the_codes_and_a_fixed_dutch_description() -> None:
    reply = "5.1.1 <jan.de.vries@dtv.example>: Jan de Vries is onbekend\nprobeer later"
    assert smtp_error(550, reply) == "550 5.1.1 mailbox niet beschikbaar of bericht geweigerd"
    assert smtp_error(452, "4.2.2 Mailbox vol") == (
        "452 4.2.2 tijdelijk onvoldoende opslagruimte bij de ontvangende server"
    )
    assert (
        smtp_error(451, "Probeer later, Piet Jansen")
        == "451 tijdelijke fout bij de ontvangende server"
    )
    assert smtp_error(499, "") == "499 tijdelijke fout"
    assert smtp_error(599, "x") == "599 blijvende fout"
    assert smtp_error(None, "x@y.z") == "--- onverwacht antwoord van de server"


@given(code=st.integers(min_value=200, max_value=599), reply=st.text(max_size=300))
def test_smtp_error_never_carries_the_reply_text(code: int, reply: str) -> None:
    error = smtp_error(code, reply)
    assert re.fullmatch(r"\d{3}( [245]\.\d{1,3}\.\d{1,3})? [a-z ,]+", error), error
    assert "@" not in error and "\n" not in error


def test_build_message_rejects_header_injection() -> None:
    row = ob.OutboxRow(
        id=1,
        run_id=1,
        as_of=AS_OF,
        kind="regievoerder",
        recipient_id="rv-1",
        recipient_email="rv-1@dtv.example",
        subject="Onderwerp\r\nBcc: iemand@elders.example",
        body_text="t",
        body_html="<p>h</p>",
        message_id="<x@dtv.example>",
        status="pending",
        attempts=0,
        last_error=None,
        created_at=T0,
        next_attempt_at=None,
        sent_at=None,
    )
    with pytest.raises(ValueError):
        build_message(row, "regiesignaal@dtv.example", T0)


NIGHT_STEP = st.tuples(
    st.integers(0, 4),  # the night's as-of date, days after AS_OF (reruns go back)
    st.lists(
        st.tuples(st.sampled_from(["regievoerder", "teamleider"]), st.sampled_from("abc")),
        max_size=6,
    ),
    st.lists(st.sampled_from(["sent", "failed", "sending"]), max_size=3),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(nights=st.lists(NIGHT_STEP, min_size=1, max_size=6))
def test_settling_the_night_at_once_gives_what_settling_each_message_gives(
    db_url: str, nights: list[tuple[int, list[tuple[str, str]], list[str]]]
) -> None:
    """The night queues with ``settle=False`` and settles once (``settle_queued``, issue
    19): every sequence of nights, reruns of older dates and rows delivered between them
    leaves each row in the status that settling every message on its own leaves."""
    o = outbox.c
    states = []
    for settle in (True, False):
        engine = sa.create_engine(db_url)
        metadata.drop_all(engine)
        metadata.create_all(engine)
        for run_id, (day, queued, delivered) in enumerate(nights, start=1):
            as_of = AS_OF + dt.timedelta(days=day)
            with engine.begin() as conn:
                for kind, rid in queued:
                    ob.enqueue(
                        conn,
                        run_id=run_id,
                        as_of=as_of,
                        kind=kind,
                        recipient_id=rid,
                        recipient_email=f"{rid}@dtv.example",
                        message=message(run_id),
                        sender_domain="dtv.example",
                        settle=settle,
                    )
                if not settle:
                    ob.settle_queued(conn, run_id=run_id, as_of=as_of)
                pending = conn.execute(
                    sa.select(o.id).where(o.status == "pending").order_by(o.id)
                ).scalars()
                for row_id, status in zip(list(pending), delivered, strict=False):
                    conn.execute(outbox.update().where(o.id == row_id).values(status=status))
        with engine.connect() as conn:
            found = conn.execute(sa.select(o.as_of, o.kind, o.recipient_id, o.status)).all()
            states.append(sorted(tuple(r) for r in found))
        metadata.drop_all(engine)
        engine.dispose()
    assert states[0] == states[1]
