"""Outbox and SMTP delivery against a real aiosmtpd server, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from engine.store import metadata, outbox
from notifications import outbox as ob
from notifications.delivery import backoff, build_message, deliver_pending, short_error
from notifications.mailserver import MailCatcher
from notifications.model import ComposedMessage
from notifications.settings import SmtpSettings

AS_OF = dt.date(2026, 11, 28)
T0 = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
SECRET_BODY = "geheime-inhoud-7Q3"


@pytest.fixture
def store(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


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
        assert ob.counts(conn, AS_OF) == {"pending": 2, "sent": 0, "failed": 0}
        assert ob.counts(conn, AS_OF + dt.timedelta(days=1)) == {
            "pending": 0,
            "sent": 0,
            "failed": 0,
        }
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
                kind="beleid",
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
        assert msg["Date"]
        assert row.status == "sent" and row.attempts == 1 and row.sent_at == T0
    with store.connect() as conn:
        assert ob.counts(conn, AS_OF) == {"pending": 0, "sent": 3, "failed": 0}
    # Our side (the test server's own "mail.log" debug output is not ours to judge).
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name == "notifications.delivery" for r in ours)
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
    refuse = {"rv-1@dtv.example": "550 5.1.1 Onbekende ontvanger rv-1@dtv.example"}
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
    assert failed.last_error is not None and failed.last_error.startswith("550 ")


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
    assert (report.sent, report.deferred, report.failed) == (0, 3, 0)
    assert len(report.errors) == 1 and "onbereikbaar" in report.errors[0]
    state = rows(store)
    assert all(r.status == "pending" and r.attempts == 1 for r in state.values())
    assert all(r.next_attempt_at == T0 + dt.timedelta(minutes=1) for r in state.values())

    second = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=1))
    assert second.deferred == 3
    assert all(r.next_attempt_at == T0 + dt.timedelta(minutes=3) for r in rows(store).values())

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
    assert all(r.status == "sent" and r.attempts == 3 for r in rows(store).values())


def test_server_closing_the_connection_stops_the_batch(store: sa.Engine, tmp_path: Path) -> None:
    enqueue_many(store, ["rv-1", "rv-2", "rv-3"])
    refuse = {"rv-1@dtv.example": "421 4.3.2 Dienst niet beschikbaar, verbinding sluit"}
    with MailCatcher(tmp_path / "mail", rcpt_policy=refuse.get) as catcher:
        smtp = settings_for(catcher.port)
        report = deliver_pending(store, smtp, now=T0)
        assert (report.sent, report.deferred, report.failed) == (0, 3, 0)
        assert any("gesloten" in e for e in report.errors)
        assert catcher.messages == 0
        refuse.clear()
        later = deliver_pending(store, smtp, now=T0 + dt.timedelta(minutes=1))
        assert later.sent == 3
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


def test_short_error_is_one_redacted_line() -> None:
    text = "Mailbox <rv-1@dtv.example> vol\nprobeer later " + "x" * 500
    error = short_error(452, text)
    assert error.startswith("452 Mailbox <adres> vol probeer later")
    assert "\n" not in error and "@" not in error
    assert len(error) <= 200


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
