"""Rows that need an operator stay visible, and no row is ever sent without its body
(issue 17, items 9 and 10).

- ``deliver`` exits 3 while ``failed`` or ``uncertain`` rows remain whose recipient has
  had no newer message since, also when this delivery had nothing to do with them;
- retention empties the bodies of old ``failed`` and ``uncertain`` rows: requeueing
  refuses those rows with a message saying why, and the sender refuses any row without
  a body, so nobody gets an empty list 70 days late.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from faultsmtp import FaultServer, Plan

from regiesignaal.engine.store import migrate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.ops.retention import purge_store
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.delivery.settings import SmtpSettings
from regiesignaal.notifications.delivery.smtp import EMPTIED_BODY, deliver_pending

AS_OF = dt.date(2026, 9, 1)
T0 = dt.datetime(2026, 9, 1, 4, 0, tzinfo=dt.UTC)

pytestmark = pytest.mark.slow


def enqueue(engine: sa.Engine, recipients: list[str], as_of: dt.date = AS_OF) -> None:
    with engine.begin() as conn:
        for rid in recipients:
            assert ob.enqueue(
                conn,
                run_id=1,
                as_of=as_of,
                kind="regievoerder",
                recipient_id=rid,
                recipient_email=f"{rid}@dtv.example",
                message=ComposedMessage("Onderwerp", f"lijst van {rid}\n", "<p>lijst</p>"),
                sender_domain="dtv.example",
                now=T0 if as_of == AS_OF else T0 + (as_of - AS_OF),
            )


def by_recipient(engine: sa.Engine, as_of: dt.date = AS_OF) -> dict[str, ob.OutboxRow]:
    with engine.connect() as conn:
        ids = (
            conn.execute(sa.select(ob.outbox.c.id).where(ob.outbox.c.as_of == as_of))
            .scalars()
            .all()
        )
        found = [ob.get(conn, i) for i in ids]
    return {r.recipient_id: r for r in found if r is not None}


@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    migrate.upgrade(url)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", url)
    monkeypatch.setenv("REGIESIGNAAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_TLS", "none")
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return sa.create_engine(url)


def test_a_second_deliver_exits_3_while_failed_or_uncertain_rows_remain(
    cli_store: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    enqueue(cli_store, ["rv-1", "rv-2", "rv-3"])
    dropped = by_recipient(cli_store)["rv-2"].message_id
    plan = Plan(refuse={"rv-1@dtv.example"}, drop_after_data={dropped})
    with FaultServer(plan) as server:
        monkeypatch.setenv("REGIESIGNAAL_SMTP_PORT", str(server.port))
        first = CliRunner().invoke(main, ["deliver"])
        assert first.exit_code == 3, first.output
        again = CliRunner().invoke(main, ["deliver"])
        assert "Verstuurd: 0," in again.output
        assert again.exit_code == 3, again.output  # was 0: nothing new went wrong
        assert "Nog te bekijken: 1 mislukt, 1 mogelijk aangekomen" in again.output
        # the next day's lists reach both: the old rows are settled by them
        server.plan = Plan()
        enqueue(cli_store, ["rv-1", "rv-2"], as_of=AS_OF + dt.timedelta(days=1))
        monkeypatch.setenv("REGIESIGNAAL_SMTP_PORT", str(server.port))
        settled = CliRunner().invoke(main, ["deliver"])
        assert settled.exit_code == 0, settled.output
        assert "Nog te bekijken" not in settled.output
    cli_store.dispose()


def test_retry_failed_refuses_a_row_whose_body_retention_emptied(
    cli_store: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed list, 70 days later: retention emptied its body; ``--retry-failed`` says
    it cannot be sent and sends nothing; the row stays failed, and no longer keeps
    ``deliver`` at exit 3 (nothing is left to act on)."""
    enqueue(cli_store, ["rv-1", "rv-2"])
    with FaultServer(Plan(refuse={"rv-1@dtv.example", "rv-2@dtv.example"})) as server:
        monkeypatch.setenv("REGIESIGNAAL_SMTP_PORT", str(server.port))
        assert CliRunner().invoke(main, ["deliver"]).exit_code == 3
        assert {r.status for r in by_recipient(cli_store).values()} == {"failed"}
        settings = dataclasses.replace(Settings(), retention_body_days=60)
        purged = purge_store(cli_store, settings, now=T0 + dt.timedelta(days=70))
        assert purged.message_bodies == 2
        server.plan = Plan()
        retried = CliRunner().invoke(main, ["deliver", "--retry-failed"])
        assert retried.exit_code == 0, retried.output
        assert "Nog te bekijken" not in retried.output
        assert "Terug in de wachtrij: 0" in retried.output
        assert "2 mislukte berichten niet teruggezet" in retried.output
        assert "bewaartermijn" in retried.output
        assert not server.received
    rows = by_recipient(cli_store)
    assert {r.status for r in rows.values()} == {"failed"}
    cli_store.dispose()


def test_retry_uncertain_refuses_an_emptied_row_too(cli_store: sa.Engine) -> None:
    enqueue(cli_store, ["rv-1"])
    with cli_store.begin() as conn:
        conn.execute(ob.outbox.update().values(status="uncertain", body_text="", body_html=""))
        assert ob.requeue_uncertain(conn) == 0
        assert ob.emptied(conn, "uncertain") == 1
    assert by_recipient(cli_store)["rv-1"].status == "uncertain"
    cli_store.dispose()


def test_the_sender_refuses_a_row_without_a_body(cli_store: sa.Engine) -> None:
    """Whatever put it back to pending: a row without a body is failed, never sent."""
    enqueue(cli_store, ["rv-1", "rv-2"])
    with cli_store.begin() as conn:
        conn.execute(
            ob.outbox.update()
            .where(ob.outbox.c.recipient_id == "rv-1")
            .values(body_text="", body_html="")
        )
    with FaultServer() as server:
        smtp = SmtpSettings(host="127.0.0.1", port=server.port, tls="none")
        report = deliver_pending(cli_store, smtp, now=T0)
    assert (report.sent, report.failed) == (1, 1)
    rows = by_recipient(cli_store)
    assert rows["rv-1"].status == "failed" and rows["rv-1"].last_error == EMPTIED_BODY
    assert list(server.received) == [rows["rv-2"].message_id]
    cli_store.dispose()
