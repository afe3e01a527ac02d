"""Deliver pending outbox rows over SMTP with aiosmtplib.

One SMTP connection serves the whole batch. Each message is first claimed (status
``sending``, in a transaction committed before anything is sent; see
``notifications.outbox`` for how claims keep concurrent deliverers from sending a message
twice, on SQLite as on PostgreSQL), then sent outside any database transaction, then
its outcome is committed in a transaction of its own:

- accepted: status ``sent``, ``sent_at`` set;
- a 4xx reply, or a connection problem: back to ``pending`` with ``next_attempt_at``
  after 1, 2, 4 ... minutes (at most 60); once ``max_attempts`` attempts were made the
  row becomes ``failed``;
- a 5xx reply: ``failed`` at once.

At the start of every delivery, claims older than ``outbox.CLAIM_TIMEOUT`` (a process
died between the server's acceptance and our commit) go back to ``pending``: that
message may reach its recipient twice, with the same Message-ID (at-least-once for that
window, documented in ``notifications.outbox``).

When the server cannot be reached (connect, TLS or login fails), or the connection
breaks mid-batch, the batch stops (no hammering on a server in trouble): every row not
yet handled is deferred as above, and the report says so.

``last_error`` and the report's errors hold the SMTP code, the enhanced status code when
the server gave one, and a fixed Dutch description of that code: never the server's own
reply text, which may quote an address or a name. Logs hold row ids, staff ids, SMTP
codes and counts; never addresses, bodies or passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import logging
import re
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
import sqlalchemy as sa

from notifications import outbox as ob
from notifications.settings import SmtpSettings

log = logging.getLogger(__name__)

BACKOFF_CAP_MINUTES = 60
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?!\S)")

SMTP_CODE_NL: dict[int, str] = {
    421: "dienst niet beschikbaar, de server sluit de verbinding",
    450: "mailbox tijdelijk niet beschikbaar",
    451: "tijdelijke fout bij de ontvangende server",
    452: "tijdelijk onvoldoende opslagruimte bij de ontvangende server",
    454: "tijdelijk geen beveiligde verbinding of aanmelding mogelijk",
    455: "parameters tijdelijk niet te verwerken",
    500: "opdracht niet herkend",
    501: "ongeldige parameters",
    502: "opdracht niet ondersteund",
    503: "opdrachten in verkeerde volgorde",
    504: "parameter niet ondersteund",
    530: "aanmelding vereist",
    535: "aanmelding geweigerd",
    550: "mailbox niet beschikbaar of bericht geweigerd",
    551: "ontvanger niet bij deze server",
    552: "opslagruimte van de ontvanger overschreden",
    553: "adres niet toegestaan",
    554: "transactie mislukt",
    555: "parameters niet herkend",
}
"""A fixed Dutch description per SMTP reply code (RFC 5321)."""


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    server_unreachable: bool = False


@dataclass
class _Batch:
    """One delivery batch: where it stores, how it sends, its clock and its tally."""

    store: sa.Engine
    smtp: SmtpSettings
    now: dt.datetime
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    server_unreachable: bool = False
    _started: float = field(default_factory=time.monotonic)

    def claim_time(self) -> dt.datetime:
        """``now`` (the batch's start) plus the time elapsed since: a claim made late in
        a long batch must not look stale to another deliverer starting meanwhile."""
        return self.now + dt.timedelta(seconds=time.monotonic() - self._started)

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            self.sent, self.deferred, self.failed, list(self.errors), self.server_unreachable
        )


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed attempt: 1, 2, 4 ... minutes, capped at 60."""
    exponent = max(attempts, 1) - 1
    minutes = BACKOFF_CAP_MINUTES if exponent >= 6 else min(2**exponent, BACKOFF_CAP_MINUTES)
    return dt.timedelta(minutes=minutes)


def describe_code(code: int | None) -> str:
    """The fixed Dutch description of an SMTP reply code (by class when not listed)."""
    if code is None:
        return "onverwacht antwoord van de server"
    if code in SMTP_CODE_NL:
        return SMTP_CODE_NL[code]
    if 400 <= code < 500:
        return "tijdelijke fout"
    if 500 <= code < 600:
        return "blijvende fout"
    return "onverwacht antwoord van de server"


def smtp_error(code: int | None, reply: str = "") -> str:
    """What is stored of an SMTP reply: ``<code> [<enhanced code>] <Dutch description>``.

    Of the server's reply text only a leading enhanced status code (e.g. ``5.1.1``) is
    kept; the rest may quote an address or a name and is dropped.
    """
    parts = [str(code) if code is not None else "---"]
    match = _ENHANCED.match(str(reply))
    if match:
        parts.append(match.group(1))
    parts.append(describe_code(code))
    return " ".join(parts)


def build_message(row: ob.OutboxRow, sender: str, now: dt.datetime) -> EmailMessage:
    """multipart/alternative: text/plain then text/html, both utf-8."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.recipient_email
    msg["Subject"] = row.subject
    msg["Date"] = email.utils.format_datetime(ob.utc(now))
    msg["Message-ID"] = row.message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"  # no out-of-office replies (Exchange)
    msg.set_content(row.body_text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(row.body_html, subtype="html", charset="utf-8", cte="quoted-printable")
    # After the content: set_content() and add_alternative() drop or move Content-* headers.
    msg["Content-Language"] = "nl"
    return msg


def _client(smtp: SmtpSettings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.port,
        use_tls=smtp.tls == "tls",
        start_tls=smtp.tls == "starttls",
        username=smtp.user or None,
        password=smtp.password if smtp.user else None,
        timeout=smtp.timeout_seconds,
    )


def _claim(batch: _Batch, row_id: int) -> ob.OutboxRow | None:
    """Claim the row in a transaction of its own, committed before anything is sent."""
    with batch.store.begin() as conn:
        return ob.claim(conn, row_id, batch.claim_time())


def _warn_if_lost(row: ob.OutboxRow, held: bool, outcome: str) -> None:
    if not held:
        log.warning("delivery: row %d: claim lost before %s was recorded", row.id, outcome)


def _sent(batch: _Batch, row: ob.OutboxRow) -> None:
    with batch.store.begin() as conn:
        _warn_if_lost(row, ob.finish_sent(conn, row, batch.now), "sent")
    batch.sent += 1
    log.debug("delivery: row %d sent", row.id)


def _failed(batch: _Batch, row: ob.OutboxRow, error: str) -> None:
    with batch.store.begin() as conn:
        _warn_if_lost(row, ob.finish_failed(conn, row, error), "failed")
    batch.failed += 1
    batch.errors.append(f"outbox {row.id} ({row.recipient_id}): {error}")
    log.warning("delivery: row %d failed", row.id)


def _retry(batch: _Batch, row: ob.OutboxRow, error: str) -> None:
    """A temporary failure: back to pending with backoff, or failed after max_attempts.

    ``row.attempts`` already counts this attempt (it is counted at the claim).
    """
    if row.attempts >= batch.smtp.max_attempts:
        log.warning("delivery: row %d gave up after %d attempts", row.id, row.attempts)
        _failed(batch, row, f"{error} (na {row.attempts} pogingen); opgegeven")
        return
    with batch.store.begin() as conn:
        held = ob.finish_retry(conn, row, error, batch.now + backoff(row.attempts))
        _warn_if_lost(row, held, "a retry")
    batch.deferred += 1
    log.info("delivery: row %d deferred", row.id)


def _refused(batch: _Batch, row: ob.OutboxRow, code: int | None, reply: str) -> None:
    """A refusal by the server: 5xx is permanent, anything else is retried."""
    error = smtp_error(code, reply)
    if code is not None and 500 <= code < 600:
        log.warning("delivery: row %d refused permanently (%s)", row.id, code)
        _failed(batch, row, error)
    else:
        _retry(batch, row, error)


def _defer_rest(batch: _Batch, row_ids: list[int], error: str) -> None:
    """The server is unreachable: count an attempt for each row still due, send nothing."""
    for row_id in row_ids:
        row = _claim(batch, row_id)
        if row is not None:
            _retry(batch, row, error)


async def deliver_pending_async(
    store_engine: sa.Engine,
    smtp: SmtpSettings,
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Send the outbox rows due at ``now`` (default: the current time) over one SMTP
    connection. Safe to run concurrently with other deliverers on the same store."""
    batch = _Batch(store_engine, smtp, ob.utc(now or ob.utcnow()))
    with store_engine.begin() as conn:
        released = ob.release_stale_claims(conn, batch.now)
    if released:
        batch.errors.append(
            f"{released} {'bericht' if released == 1 else 'berichten'} met onbekende uitkomst "
            "(verzending onderbroken) opnieuw aangeboden; de ontvanger kan het dubbel krijgen"
        )
        log.warning("delivery: %d interrupted claims released", released)
    with store_engine.connect() as conn:
        row_ids = ob.due_ids(conn, batch.now, limit)
    if not row_ids:
        log.info("delivery: nothing due")
        return _finish(batch)

    client = _client(smtp)
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        code = getattr(exc, "code", None)
        error = f"SMTP-server {smtp.host}:{smtp.port} onbereikbaar ({type(exc).__name__})"
        if isinstance(code, int):
            error = f"{error}: {smtp_error(code)}"
        log.warning("delivery: server unreachable, deferring %d rows", len(row_ids))
        batch.server_unreachable = True
        batch.errors.append(error)
        _defer_rest(batch, row_ids, error)
        client.close()
        return _finish(batch)

    try:
        for index, row_id in enumerate(row_ids):
            stop_error = await _deliver_one(batch, client, row_id)
            if stop_error is not None:
                batch.errors.append(stop_error)
                log.warning("delivery: batch stopped at row %d", row_id)
                _defer_rest(batch, row_ids[index + 1 :], stop_error)
                break
    finally:
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        client.close()
    return _finish(batch)


def _finish(batch: _Batch) -> DeliveryReport:
    report = batch.report()
    log.info(
        "delivery: sent=%d deferred=%d failed=%d errors=%d",
        report.sent,
        report.deferred,
        report.failed,
        len(report.errors),
    )
    return report


async def _deliver_one(batch: _Batch, client: aiosmtplib.SMTP, row_id: int) -> str | None:
    """Claim, send and record one row; returns an error when the batch must stop."""
    row = _claim(batch, row_id)
    if row is None:
        return None  # another deliverer has it, or it is no longer due
    sender = batch.smtp.sender
    try:
        message = build_message(row, sender, batch.now)
        await client.send_message(message, sender=sender, recipients=[row.recipient_email])
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0] if exc.recipients else None
        code = refused.code if refused is not None else None
        _refused(batch, row, code, refused.message if refused is not None else "")
        return _closed_by_server(client, code)
    except aiosmtplib.SMTPSenderRefused as exc:
        # The sender address is refused: a configuration problem, not this message's.
        error = f"afzender geweigerd: {smtp_error(exc.code, exc.message)}"
        _retry(batch, row, error)
        return error
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        error = f"verbinding verbroken ({type(exc).__name__})"
        _retry(batch, row, error)
        return error
    except aiosmtplib.SMTPResponseException as exc:
        _refused(batch, row, exc.code, exc.message)
        return _closed_by_server(client, exc.code)
    except (aiosmtplib.SMTPException, ValueError) as exc:
        # e.g. an address the client cannot use: retrying will not help.
        _failed(batch, row, f"bericht niet te versturen ({type(exc).__name__})")
        return None
    _sent(batch, row)
    return None


def _closed_by_server(client: aiosmtplib.SMTP, code: int | None) -> str | None:
    """After a refusal: an error that stops the batch when the server hung up (e.g. 421)."""
    if client.is_connected:
        return None
    return f"{smtp_error(code)}; verbinding door de server gesloten"


def deliver_pending(
    store_engine: sa.Engine,
    smtp: SmtpSettings,
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Synchronous wrapper of :func:`deliver_pending_async` (not for use inside a loop)."""
    return asyncio.run(deliver_pending_async(store_engine, smtp, now=now, limit=limit))
