"""Delivery against a relay in trouble (tests/faultsmtp.py), on SQLite and PostgreSQL.

Each test counts the copies the server stored per Message-ID and checks the outbox:
at most one copy per message, never a retry after the data went out, no attempt charged
to a message that was not offered to the server.
"""

from __future__ import annotations

import datetime as dt
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from faultsmtp import FaultServer, Plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.store.tables import metadata
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.delivery.settings import SmtpSettings
from regiesignaal.notifications.delivery.smtp import deliver_pending

AS_OF = dt.date(2026, 11, 28)
T0 = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(hours=3)

pytestmark = pytest.mark.slow


def enqueue(engine: sa.Engine, recipients: list[str], kind: str = "regievoerder") -> None:
    with engine.begin() as conn:
        for n, rid in enumerate(recipients):
            assert ob.enqueue(
                conn,
                run_id=1,
                as_of=AS_OF,
                kind=kind,
                recipient_id=rid,
                recipient_email=f"{rid}@dtv.example",
                message=ComposedMessage(f"Onderwerp {n}", f"tekst {n}\n", f"<p>{n}</p>"),
                sender_domain="dtv.example",
                now=T0,
            )


def state(engine: sa.Engine) -> dict[str, ob.OutboxRow]:
    with engine.connect() as conn:
        ids = conn.execute(sa.select(ob.outbox.c.id)).scalars().all()
        found = [ob.get(conn, i) for i in ids]
    return {r.recipient_id: r for r in found if r is not None}


STALL_TIMEOUT = 2.0
"""The client's timeout in tests where the server holds a reply back on purpose."""


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


def test_slow_confirmation_after_data_is_uncertain_and_sent_once(store: sa.Engine) -> None:
    """The relay stores the message but confirms late: one copy, 'uncertain', no retry,
    and the others after it still go out."""
    enqueue(store, ["rv-1", "rv-2", "rv-3"])
    slow = state(store)["rv-1"].message_id
    with FaultServer(Plan(slow_after_data={slow})) as server:
        smtp = smtp_for(server.port, timeout_seconds=STALL_TIMEOUT)
        report = deliver_pending(store, smtp, now=T0)
        assert (report.sent, report.uncertain, report.failed, report.deferred) == (2, 1, 0, 0)
        for _ in range(3):  # later deliveries never resend it
            assert deliver_pending(store, smtp, now=LATER).sent == 0
        server.release()
    assert server.received[slow] == 1
    assert set(server.received.values()) == {1} and len(server.received) == 3
    rows = state(store)
    assert rows["rv-1"].status == "uncertain" and "mogelijk aangekomen" in (
        rows["rv-1"].last_error or ""
    )
    assert [rows[r].status for r in ("rv-2", "rv-3")] == ["sent", "sent"]


def test_drop_after_storing_is_uncertain_not_resent(store: sa.Engine) -> None:
    enqueue(store, ["rv-1", "rv-2"])
    dropped = state(store)["rv-1"].message_id
    with FaultServer(Plan(drop_after_data={dropped})) as server:
        smtp = smtp_for(server.port)
        report = deliver_pending(store, smtp, now=T0)
        assert (report.sent, report.uncertain) == (1, 1)
        assert deliver_pending(store, smtp, now=LATER).sent == 0
    assert server.received[dropped] == 1
    assert state(store)["rv-1"].status == "uncertain"


@pytest.mark.parametrize(("code", "sent_first"), [(451, 3), (421, 4)])
def test_temporary_failures_for_the_first_messages_are_retried_once_each(
    store: sa.Engine, code: int, sent_first: int
) -> None:
    """451: each of the first two is retried later. 421 (the server closes): the first
    message gets a new connection and a second 421 (charged, retried later); the second
    message's new connection works, so only the first waits (issue 17)."""
    enqueue(store, [f"rv-{i}" for i in range(5)])
    with FaultServer(Plan(temp_fail_first=2, temp_code=code)) as server:
        smtp = smtp_for(server.port)
        first = deliver_pending(store, smtp, now=T0)
        deferred = 5 - sent_first
        assert (first.sent, first.deferred, first.failed, first.untried) == (
            sent_first,
            deferred,
            0,
            0,
        )
        second = deliver_pending(store, smtp, now=LATER)
        assert second.sent == deferred
    assert len(server.received) == 5 and set(server.received.values()) == {1}
    assert {r.status for r in state(store).values()} == {"sent"}


def test_550_for_one_recipient_fails_that_one_only(store: sa.Engine) -> None:
    enqueue(store, ["rv-1", "rv-2", "rv-3"])
    with FaultServer(Plan(refuse={"rv-2@dtv.example"})) as server:
        report = deliver_pending(store, smtp_for(server.port), now=T0)
    assert (report.sent, report.failed) == (2, 1)
    rows = state(store)
    assert rows["rv-2"].status == "failed" and (rows["rv-2"].last_error or "").startswith("550")
    assert "Onbekende" not in (rows["rv-2"].last_error or "")  # never the server's text
    assert len(server.received) == 2


def test_a_stalled_reply_before_data_blocks_nobody_and_charges_nobody_else(
    store: sa.Engine,
) -> None:
    """One recipient's RCPT is never answered: that message waits (retry), the rest go;
    the team lead's message after it is sent, not failed."""
    enqueue(store, ["rv-1", "rv-2"])
    enqueue(store, ["tl-1"], kind="teamleider")
    with FaultServer(Plan(stall_rcpt={"rv-1@dtv.example"})) as server:
        report = deliver_pending(
            store, smtp_for(server.port, timeout_seconds=STALL_TIMEOUT), now=T0
        )
        server.release()
    assert (report.sent, report.deferred, report.failed, report.uncertain) == (2, 1, 0, 0)
    rows = state(store)
    assert rows["rv-1"].status == "pending" and rows["rv-1"].attempts == 1
    assert rows["rv-2"].attempts == 1 and rows["tl-1"].status == "sent"


def test_every_message_stalling_stops_after_three_and_leaves_the_rest_untried(
    sqlite_url: str,
) -> None:
    store = sa.create_engine(sqlite_url)
    metadata.create_all(store)
    recipients = [f"rv-{i}" for i in range(6)]
    enqueue(store, recipients)
    with FaultServer(Plan(stall_rcpt={f"{r}@dtv.example" for r in recipients})) as server:
        report = deliver_pending(
            store, smtp_for(server.port, timeout_seconds=STALL_TIMEOUT), now=T0
        )
        server.release()
    assert (report.deferred, report.untried, report.failed) == (3, 3, 0)
    rows = state(store)
    store.dispose()
    assert sorted(r.attempts for r in rows.values()) == [0, 0, 0, 1, 1, 1]
    assert {r.status for r in rows.values()} == {"pending"}


def test_the_delivery_deadline_leaves_the_rest_pending_untried(store: sa.Engine) -> None:
    enqueue(store, ["rv-1", "rv-2", "rv-3"])
    with FaultServer() as server:
        report = deliver_pending(store, smtp_for(server.port, deadline_seconds=1e-9), now=T0)
    assert (report.sent, report.untried, report.failed) == (0, 3, 0)
    assert "bezorgtermijn" in report.errors[0]
    assert all(r.status == "pending" and r.attempts == 0 for r in state(store).values())


def test_domain_allow_list_refuses_other_domains(store: sa.Engine) -> None:
    enqueue(store, ["rv-1"])
    with FaultServer() as server:
        report = deliver_pending(
            store, smtp_for(server.port, allowed_domains=("elders.example",)), now=T0
        )
    assert (report.sent, report.failed) == (0, 1)
    assert "toegestane domeinen" in (state(store)["rv-1"].last_error or "")
    assert not server.received


# --- TLS: certificates -----------------------------------------------------------


def _make_cert(tmp: Path, cn: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp / f"{cn}.key", tmp / f"{cn}.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={cn}",
            "-addext", f"subjectAltName=IP:{cn}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An implicit-TLS SMTP server with a self-signed certificate (our 'internal CA')."""
    from aiosmtpd.controller import Controller
    from faultsmtp import _Handler

    cert, key = _make_cert(tmp_path, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = FaultServer()

    class TlsController(Controller):
        def _trigger_server(self) -> None:
            srv = getattr(self, "server", None)
            if self.port == 0 and srv is not None and srv.sockets:
                self.port = int(srv.sockets[0].getsockname()[1])
            super()._trigger_server()

    controller = TlsController(_Handler(server), hostname="127.0.0.1", port=0, ssl_context=context)
    controller.start()
    try:
        yield int(controller.port), cert
    finally:
        controller.stop()


def test_an_unknown_certificate_authority_is_a_tls_problem_not_an_outage(
    store: sa.Engine, tls_server: tuple[int, Path]
) -> None:
    port, cert = tls_server
    enqueue(store, ["rv-1", "rv-2"])
    report = deliver_pending(store, smtp_for(port, tls="tls"), now=T0)
    assert report.tls_problem and not report.server_unreachable
    assert report.untried == 2 and report.failed == 0 and report.deferred == 0
    assert "certificaat" in report.errors[0] and "onbereikbaar" not in report.errors[0]
    assert all(r.status == "pending" and r.attempts == 0 for r in state(store).values())
    # the operator configures the internal CA: everything goes out
    fixed = deliver_pending(store, smtp_for(port, tls="tls", ca_file=str(cert)), now=T0)
    assert (fixed.sent, fixed.tls_problem) == (2, False)


def test_an_unreadable_ca_file_is_reported(store: sa.Engine, tmp_path: Path) -> None:
    enqueue(store, ["rv-1"])
    with FaultServer() as server:
        report = deliver_pending(
            store,
            smtp_for(server.port, tls="starttls", ca_file=str(tmp_path / "missing.pem")),
            now=T0,
        )
    assert report.tls_problem and report.untried == 1
    assert "ca_file" in report.errors[0]


def test_a_server_without_starttls_is_a_tls_problem(store: sa.Engine) -> None:
    enqueue(store, ["rv-1"])
    with FaultServer() as server:
        report = deliver_pending(store, smtp_for(server.port, tls="starttls"), now=T0)
    assert report.tls_problem and report.untried == 1 and not server.received


def test_deliver_reports_may_have_arrived_and_requeues_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from regiesignaal.engine.store import migrate
    from regiesignaal.jobs.cli import main

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    enqueue(engine, ["rv-1"])
    dropped = state(engine)["rv-1"].message_id
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", url)
    monkeypatch.setenv("REGIESIGNAAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_TLS", "none")
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with FaultServer(Plan(drop_after_data={dropped})) as server:
        monkeypatch.setenv("REGIESIGNAAL_SMTP_PORT", str(server.port))
        first = CliRunner().invoke(main, ["deliver"])
        assert first.exit_code == 3
        assert "mogelijk aangekomen (uitkomst onbekend): 1" in first.output
        again = CliRunner().invoke(main, ["deliver"])
        assert "Verstuurd: 0," in again.output and server.received[dropped] == 1
        server.plan.drop_after_data.clear()
        requeued = CliRunner().invoke(main, ["deliver", "--retry-uncertain"])
        assert requeued.exit_code == 0, requeued.output
        assert server.received[dropped] == 2  # the operator chose the duplicate window
    assert state(engine)["rv-1"].status == "sent"
    engine.dispose()


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    faults=st.lists(st.sampled_from(["ok", "drop", "refuse"]), min_size=1, max_size=6),
    temp_first=st.integers(0, 3),
    temp_code=st.sampled_from([421, 451]),
    rounds=st.integers(1, 3),
)
def test_any_mix_of_faults_never_gives_two_copies(
    sqlite_url: str,
    faults: list[str],
    temp_first: int,
    temp_code: int,
    rounds: int,
) -> None:
    """Whatever the relay does (no stalls here, to stay fast): at most one copy per
    Message-ID, and each row's status matches what the server really has."""
    engine = sa.create_engine(sqlite_url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        recipients = [f"rv-{i}" for i in range(len(faults))]
        enqueue(engine, recipients)
        rows = state(engine)
        pairs = list(zip(recipients, faults, strict=True))
        plan = Plan(
            drop_after_data={rows[r].message_id for r, f in pairs if f == "drop"},
            refuse={f"{r}@dtv.example" for r, f in pairs if f == "refuse"},
            temp_fail_first=temp_first,
            temp_code=temp_code,
        )
        with FaultServer(plan) as server:
            for n in range(rounds):
                deliver_pending(engine, smtp_for(server.port), now=T0 + n * dt.timedelta(hours=2))
        assert all(count == 1 for count in server.received.values())
        for rid, row in state(engine).items():
            arrived = server.received[row.message_id]
            expected = {
                "sent": 1,
                "uncertain": 1,
                "failed": 0,
                "pending": 0,
            }[row.status]
            assert arrived == expected, (rid, row.status)
    finally:
        engine.dispose()


def test_an_unusable_sender_charges_no_message(store: sa.Engine) -> None:
    enqueue(store, ["rv-1", "rv-2"])
    with FaultServer() as server:
        report = deliver_pending(
            store, smtp_for(server.port, sender="regie@dtv.example\nBcc: x@evil.example"), now=T0
        )
    assert (report.sent, report.failed, report.untried) == (0, 0, 2)
    assert "afzenderadres" in report.errors[0] and "evil" not in report.errors[0]
    assert all(r.status == "pending" and r.attempts == 0 for r in state(store).values())
    assert not server.received
