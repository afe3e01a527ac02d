"""Deliver pending outbox rows over SMTP with aiosmtplib.

One SMTP connection serves the whole batch. Every message gets its own database
transaction, committed right after the server's answer, so a crash later in the batch
never sends a message twice.

Outcomes per message:
- accepted: status ``sent``, ``sent_at`` set;
- a 4xx reply, or a connection problem: ``attempts`` + 1, ``last_error`` (code and a short
  text, never the body), ``next_attempt_at`` after 1, 2, 4 ... minutes (at most 60); after
  ``max_attempts`` the row becomes ``failed``;
- a 5xx reply: ``failed`` at once.

When the server cannot be reached (connect, TLS or login fails), or the connection
breaks mid-batch, the batch stops (no hammering on a server in trouble): every row not
yet handled is deferred as above, and the report says so.

Logs hold row ids, staff ids, SMTP codes and counts; never addresses, bodies or
passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import logging
import re
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
import sqlalchemy as sa

from engine.store import outbox
from notifications import outbox as ob
from notifications.settings import SmtpSettings

log = logging.getLogger(__name__)

BACKOFF_CAP_MINUTES = 60
_ERROR_TEXT_LIMIT = 200
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    server_unreachable: bool = False


@dataclass
class _Tally:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    server_unreachable: bool = False

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            self.sent, self.deferred, self.failed, list(self.errors), self.server_unreachable
        )


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed attempt: 1, 2, 4 ... minutes, capped at 60."""
    exponent = max(attempts, 1) - 1
    minutes = BACKOFF_CAP_MINUTES if exponent >= 6 else min(2**exponent, BACKOFF_CAP_MINUTES)
    return dt.timedelta(minutes=minutes)


def short_error(code: int | None, text: str) -> str:
    """``<code> <text>``: one line, addresses redacted, at most 200 characters."""
    clean = " ".join(str(text).split())
    clean = _ADDRESS.sub("<adres>", clean)
    result = f"{code} {clean}" if code is not None else clean
    return result[:_ERROR_TEXT_LIMIT]


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
    msg["Content-Language"] = "nl"
    msg.set_content(row.body_text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(row.body_html, subtype="html", charset="utf-8", cte="quoted-printable")
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


def _mark_sent(conn: sa.Connection, row_id: int, now: dt.datetime) -> None:
    conn.execute(
        outbox.update()
        .where(outbox.c.id == row_id)
        .values(
            status="sent",
            sent_at=ob.utc(now),
            attempts=outbox.c.attempts + 1,
            last_error=None,
            next_attempt_at=None,
        )
    )


def _mark_failed(conn: sa.Connection, row: ob.OutboxRow, error: str) -> None:
    conn.execute(
        outbox.update()
        .where(outbox.c.id == row.id)
        .values(status="failed", attempts=row.attempts + 1, last_error=error, next_attempt_at=None)
    )


def _mark_deferred(
    conn: sa.Connection, row: ob.OutboxRow, error: str, now: dt.datetime, max_attempts: int
) -> bool:
    """Record a temporary failure; returns True when the row gave up (now ``failed``)."""
    attempts = row.attempts + 1
    if attempts >= max_attempts:
        _mark_failed(conn, row, f"{error} (na {attempts} pogingen)")
        return True
    conn.execute(
        outbox.update()
        .where(outbox.c.id == row.id)
        .values(
            attempts=attempts,
            last_error=error,
            next_attempt_at=ob.utc(now) + backoff(attempts),
        )
    )
    return False


def _claim(conn: sa.Connection, row_id: int, now: dt.datetime) -> ob.OutboxRow | None:
    """Re-read the row inside this message's transaction; None when no longer due.

    On PostgreSQL the row stays locked until commit, and a row locked by another
    deliverer is skipped.
    """
    stmt = (
        sa.select(outbox)
        .where(outbox.c.id == row_id, ob.due_clause(now))
        .with_for_update(skip_locked=True)
    )
    mapping = conn.execute(stmt).mappings().first()
    return ob.row_from_mapping(mapping) if mapping is not None else None


def _defer_rest(
    store_engine: sa.Engine,
    row_ids: list[int],
    error: str,
    now: dt.datetime,
    smtp: SmtpSettings,
    tally: _Tally,
) -> None:
    for row_id in row_ids:
        with store_engine.begin() as conn:
            row = _claim(conn, row_id, now)
            if row is None:
                continue
            if _mark_deferred(conn, row, error, now, smtp.max_attempts):
                tally.failed += 1
            else:
                tally.deferred += 1


async def deliver_pending_async(
    store_engine: sa.Engine,
    smtp: SmtpSettings,
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Send the due pending outbox rows over one SMTP connection."""
    now = ob.utc(now or ob.utcnow())
    tally = _Tally()
    with store_engine.connect() as conn:
        row_ids = [row.id for row in ob.pending(conn, now, limit)]
    if not row_ids:
        log.info("delivery: nothing due")
        return tally.report()

    client = _client(smtp)
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        code = getattr(exc, "code", None)
        error = short_error(
            code, f"SMTP-server {smtp.host}:{smtp.port} onbereikbaar ({type(exc).__name__})"
        )
        log.warning("delivery: server unreachable (%s), deferring %d rows", error, len(row_ids))
        tally.server_unreachable = True
        tally.errors.append(error)
        _defer_rest(store_engine, row_ids, error, now, smtp, tally)
        client.close()
        return _finish(tally)

    try:
        for index, row_id in enumerate(row_ids):
            stop_error = await _deliver_one(store_engine, client, smtp, row_id, now, tally)
            if stop_error is not None:
                tally.errors.append(stop_error)
                log.warning("delivery: batch stopped at row %d: %s", row_id, stop_error)
                _defer_rest(store_engine, row_ids[index + 1 :], stop_error, now, smtp, tally)
                break
    finally:
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        client.close()
    return _finish(tally)


def _finish(tally: _Tally) -> DeliveryReport:
    report = tally.report()
    log.info(
        "delivery: sent=%d deferred=%d failed=%d errors=%d",
        report.sent,
        report.deferred,
        report.failed,
        len(report.errors),
    )
    return report


async def _deliver_one(
    store_engine: sa.Engine,
    client: aiosmtplib.SMTP,
    smtp: SmtpSettings,
    row_id: int,
    now: dt.datetime,
    tally: _Tally,
) -> str | None:
    """Send one row in its own transaction; returns an error when the batch must stop."""
    with store_engine.begin() as conn:
        row = _claim(conn, row_id, now)
        if row is None:
            return None
        try:
            message = build_message(row, smtp.sender, now)
            await client.send_message(message, sender=smtp.sender, recipients=[row.recipient_email])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else None
            text = refused.message if refused is not None else "ontvanger geweigerd"
            _record_reply(conn, row, code, text, now, smtp, tally)
            return _closed_by_server(client, code)
        except aiosmtplib.SMTPSenderRefused as exc:
            # The sender address is refused: a configuration problem, not this message's.
            error = short_error(exc.code, f"afzender geweigerd: {exc.message}")
            _defer(conn, row, error, now, smtp, tally)
            return error
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            error = short_error(None, f"verbinding verbroken ({type(exc).__name__})")
            _defer(conn, row, error, now, smtp, tally)
            return error
        except aiosmtplib.SMTPResponseException as exc:
            _record_reply(conn, row, exc.code, exc.message, now, smtp, tally)
            return _closed_by_server(client, exc.code)
        except (aiosmtplib.SMTPException, ValueError) as exc:
            # e.g. an address the client cannot use: retrying will not help.
            error = short_error(None, f"bericht niet te versturen ({type(exc).__name__})")
            _mark_failed(conn, row, error)
            tally.failed += 1
            tally.errors.append(f"outbox {row.id} ({row.recipient_id}): {error}")
            log.warning("delivery: row %d failed: %s", row.id, error)
            return None
        _mark_sent(conn, row.id, now)
        tally.sent += 1
        log.debug("delivery: row %d sent", row.id)
        return None


def _closed_by_server(client: aiosmtplib.SMTP, code: int | None) -> str | None:
    """After a refusal: an error that stops the batch when the server hung up (e.g. 421)."""
    if client.is_connected:
        return None
    return short_error(code, "verbinding door de server gesloten")


def _defer(
    conn: sa.Connection,
    row: ob.OutboxRow,
    error: str,
    now: dt.datetime,
    smtp: SmtpSettings,
    tally: _Tally,
) -> None:
    if _mark_deferred(conn, row, error, now, smtp.max_attempts):
        tally.failed += 1
        tally.errors.append(f"outbox {row.id} ({row.recipient_id}): {error}; opgegeven")
        log.warning("delivery: row %d gave up after %d attempts", row.id, row.attempts + 1)
    else:
        tally.deferred += 1
        log.info("delivery: row %d deferred", row.id)


def _record_reply(
    conn: sa.Connection,
    row: ob.OutboxRow,
    code: int | None,
    text: str,
    now: dt.datetime,
    smtp: SmtpSettings,
    tally: _Tally,
) -> None:
    """A refusal by the server: 5xx is permanent, anything else is retried."""
    error = short_error(code, text)
    if code is not None and 500 <= code < 600:
        _mark_failed(conn, row, error)
        tally.failed += 1
        tally.errors.append(f"outbox {row.id} ({row.recipient_id}): {error}")
        log.warning("delivery: row %d refused permanently (%s)", row.id, code)
    else:
        _defer(conn, row, error, now, smtp, tally)


def deliver_pending(
    store_engine: sa.Engine,
    smtp: SmtpSettings,
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Synchronous wrapper of :func:`deliver_pending_async` (not for use inside a loop)."""
    return asyncio.run(deliver_pending_async(store_engine, smtp, now=now, limit=limit))
