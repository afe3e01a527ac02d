"""Deliver pending outbox rows over SMTP with aiosmtplib.

Each message goes through three separable steps: it is claimed (status ``sending``, in a
transaction committed before anything is sent; see ``notifications.outbox`` for how
claims keep concurrent deliverers from sending a message twice, on SQLite as on
PostgreSQL), then sent outside any database transaction, then its outcome is committed
in a transaction of its own. Sending is MAIL, RCPT, then DATA; right before DATA the row
is marked ``transmitting`` (committed), so that a lost outcome from then on is known to
be ambiguous:

- accepted: status ``sent``, ``sent_at`` set;
- a 4xx reply, or no connection before the data went out: back to ``pending`` with
  ``next_attempt_at`` after 1, 2, 4 ... minutes (at most 60); once ``max_attempts``
  attempts were made the row becomes ``failed``;
- a 5xx reply: ``failed`` at once;
- a timeout or a dropped connection after the data went out: ``uncertain`` ("mogelijk
  aangekomen"): the server may have stored the message, so it is not sent again
  automatically (an operator checks the relay's log for the Message-ID and may requeue
  it with ``deliver --retry-uncertain``).

Time limits: ``timeout_seconds`` applies to each SMTP step (connect, each command and its
reply, the reply to the end of the data); ``deadline_seconds`` to the whole delivery:
after it no further message is started and the rest stay ``pending`` untried (no
attempt counted) for the next delivery.

One message in trouble does not hold up the others: after a timeout or a dropped
connection the next message gets a new connection. When the server cannot be reached
(connect or login fails), or three messages in a row lose their connection, the batch
stops; the rows not yet tried stay ``pending`` without an attempt counted: a message
never offered to the server never becomes ``failed``.

Certificate and TLS problems (an unknown certificate authority, a wrong host name, a
server without STARTTLS) need an operator, not patience: the batch stops at once, the
report says "certificaat-/TLS-probleem", and the rows stay ``pending`` without an attempt
counted, so they go out by the first delivery after the operator fixed it (``[smtp]
ca_file`` for an internal certificate authority). They never end ``failed`` by this.

At the start of every delivery, claims older than ``outbox.CLAIM_TIMEOUT`` (their
process died) are settled: ``sending`` back to ``pending`` (or ``superseded`` when a
newer message for the recipient exists), ``transmitting`` to ``uncertain``.

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
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
import sqlalchemy as sa
from aiosmtplib.email import flatten_message

from engine.checkpoint import checkpoint
from notifications import outbox as ob
from notifications.addresses import AddressError, check_address, domain_allowed
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
    """The outcome of one delivery. ``uncertain``: data handed over, no reply (may have
    arrived); ``untried``: due but not offered to the server this time (still pending,
    no attempt counted); ``tls_problem``: a certificate or TLS failure stopped it."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    server_unreachable: bool = False
    uncertain: int = 0
    untried: int = 0
    tls_problem: bool = False

    @property
    def troubled(self) -> bool:
        """Anything an operator should look at (exit code 3 of ``run`` and ``deliver``)."""
        return bool(
            self.deferred or self.failed or self.uncertain or self.untried or self.tls_problem
        )

    def line(self) -> str:
        """One Dutch summary line, for ``run`` and ``deliver``."""
        text = f"Verstuurd: {self.sent}, uitgesteld: {self.deferred}, mislukt: {self.failed}"
        if self.uncertain:
            text += f", mogelijk aangekomen (uitkomst onbekend): {self.uncertain}"
        if self.untried:
            text += f", niet geprobeerd (blijven in de wachtrij): {self.untried}"
        return text


@dataclass
class _Batch:
    """One delivery batch: where it stores, how it sends, its clock and its tally."""

    store: sa.Engine
    smtp: SmtpSettings
    now: dt.datetime
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    uncertain: int = 0
    untried: int = 0
    errors: list[str] = field(default_factory=list)
    server_unreachable: bool = False
    tls_problem: bool = False
    _started: float = field(default_factory=time.monotonic)

    def claim_time(self) -> dt.datetime:
        """``now`` (the batch's start) plus the time elapsed since: a claim made late in
        a long batch must not look stale to another deliverer starting meanwhile."""
        return self.now + dt.timedelta(seconds=time.monotonic() - self._started)

    def past_deadline(self) -> bool:
        return time.monotonic() - self._started >= self.smtp.deadline_seconds

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            self.sent,
            self.deferred,
            self.failed,
            list(self.errors),
            self.server_unreachable,
            self.uncertain,
            self.untried,
            self.tls_problem,
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


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    """The TLS context for the relay: certificate and host name verified, against
    ``ca_file`` when set (an internal certificate authority), else the system's CAs.
    Raises OSError (``ssl.SSLError``, ``FileNotFoundError``) for an unusable ``ca_file``."""
    return ssl.create_default_context(cafile=smtp.ca_file or None)


def _client(smtp: SmtpSettings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.port,
        use_tls=smtp.tls == "tls",
        start_tls=smtp.tls == "starttls",
        username=smtp.user or None,
        password=smtp.password if smtp.user else None,
        timeout=smtp.timeout_seconds,
        tls_context=tls_context(smtp) if smtp.tls != "none" else None,
    )


def is_tls_problem(exc: BaseException) -> bool:
    """A certificate or TLS failure anywhere in the exception's chain (or a server that
    does not offer STARTTLS)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        if "STARTTLS" in str(current) and isinstance(current, aiosmtplib.SMTPException):
            return True
        current = current.__cause__ or current.__context__
    return False


def tls_message(smtp: SmtpSettings, exc: BaseException) -> str:
    """The Dutch report of a certificate/TLS failure (no server text, no address)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            what = "het certificaat van de server is niet te vertrouwen (onbekende uitgever, "
            what += "verlopen of verkeerde hostnaam)"
            break
        if isinstance(current, ssl.SSLError):
            what = "de beveiligde verbinding (TLS) kwam niet tot stand"
            break
        current = current.__cause__ or current.__context__
    else:
        what = "de server biedt geen beveiligde verbinding (STARTTLS) aan"
    return (
        f"certificaat-/TLS-probleem bij SMTP-server {smtp.host}:{smtp.port}: {what}. "
        "Berichten blijven in de wachtrij (geen poging geteld) tot dit is opgelost; "
        "controleer [smtp] tls, host en ca_file (interne certificaatautoriteit)"
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
    checkpoint("deliver.sent")


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


def _connection_lost(batch: _Batch, row: ob.OutboxRow, exc: BaseException) -> str:
    """No reply before the data went out: a temporary failure of this message."""
    error = f"verbinding verbroken of geen antwoord ({type(exc).__name__})"
    _retry(batch, row, error)
    return error


def _outcome_unknown(batch: _Batch, row: ob.OutboxRow, exc: BaseException) -> None:
    """The data went out and no reply came: the message may have arrived."""
    error = (
        f"uitkomst onbekend: geen bevestiging na het versturen ({type(exc).__name__}); "
        "mogelijk aangekomen, niet opnieuw verstuurd"
    )
    with batch.store.begin() as conn:
        _warn_if_lost(row, ob.finish_uncertain(conn, row, error), "uncertain")
    batch.uncertain += 1
    batch.errors.append(f"outbox {row.id} ({row.recipient_id}): {error}")
    log.warning("delivery: row %d outcome unknown", row.id)


def _not_allowed(batch: _Batch, row: ob.OutboxRow) -> bool:
    """Refuse a recipient outside the domain allow-list or with an unusable address."""
    try:
        address = check_address(row.recipient_email)
    except AddressError as exc:
        _failed(batch, row, f"ongeldig adres van de ontvanger: {exc}")
        return True
    if not domain_allowed(address, batch.smtp.allowed_domains):
        _failed(
            batch,
            row,
            "adres buiten de toegestane domeinen ([mail] allowed_domains); niet verstuurd",
        )
        return True
    return False


class _Stop(Exception):
    """The batch must stop (server unreachable, TLS problem); the message says why."""


MAX_CONSECUTIVE_LOST = 3


async def deliver_pending_async(
    store_engine: sa.Engine,
    smtp: SmtpSettings,
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Send the outbox rows due at ``now`` (default: the current time). Safe to run
    concurrently with other deliverers on the same store. Never raises for SMTP trouble:
    the report says what happened."""
    batch = _Batch(store_engine, smtp, ob.utc(now or ob.utcnow()))
    with store_engine.begin() as conn:
        stale = ob.release_stale_claims(conn, batch.now)
    if stale.released:
        log.warning("delivery: %d interrupted claims released", stale.released)
    if stale.uncertain:
        batch.uncertain += stale.uncertain
        batch.errors.append(
            f"{stale.uncertain} {'bericht' if stale.uncertain == 1 else 'berichten'} "
            "onderbroken tijdens het versturen: mogelijk aangekomen, niet opnieuw verstuurd "
            "(controleer de mailserver; 'regiesignaal deliver --retry-uncertain')"
        )
        log.warning("delivery: %d interrupted transmissions marked uncertain", stale.uncertain)
    if stale.superseded:
        batch.errors.append(
            f"{stale.superseded} onderbroken {'bericht' if stale.superseded == 1 else 'berichten'}"
            " vervangen door een nieuwer bericht voor dezelfde ontvanger (niet verstuurd)"
        )
        log.warning("delivery: %d interrupted claims superseded", stale.superseded)
    with store_engine.connect() as conn:
        row_ids = ob.due_ids(conn, batch.now, limit)
    if not row_ids:
        log.info("delivery: nothing due")
        return _finish(batch)

    try:
        check_address(smtp.sender)
    except AddressError as exc:
        # a configuration problem, not the messages': none is tried or charged
        batch.untried += len(row_ids)
        batch.errors.append(
            f"afzenderadres ([smtp] sender) onbruikbaar ({exc}); {len(row_ids)} niet "
            "geprobeerd, blijven in de wachtrij"
        )
        log.warning("delivery: unusable sender, %d rows untried", len(row_ids))
        return _finish(batch)
    client: aiosmtplib.SMTP | None = None
    lost_in_a_row = 0
    try:
        for index, row_id in enumerate(row_ids):
            if batch.past_deadline():
                rest = len(row_ids) - index
                batch.untried += rest
                batch.errors.append(
                    f"bezorgtermijn van {smtp.deadline_seconds:g} s verstreken: {rest} "
                    f"{'bericht' if rest == 1 else 'berichten'} niet geprobeerd; ze blijven in "
                    "de wachtrij voor de volgende bezorging"
                )
                log.warning("delivery: deadline passed, %d rows untried", rest)
                break
            if client is None or not client.is_connected:
                if client is not None:
                    client.close()
                try:
                    client = await _connect(batch)
                except _Stop as stop:
                    rest = len(row_ids) - index
                    batch.untried += rest
                    batch.errors.append(f"{stop}; {rest} niet geprobeerd, blijven in de wachtrij")
                    log.warning("delivery: batch stopped, %d rows untried", rest)
                    break
            lost = await _deliver_one(batch, client, row_id)
            lost_in_a_row = lost_in_a_row + 1 if lost else 0
            if lost_in_a_row >= MAX_CONSECUTIVE_LOST and index + 1 < len(row_ids):
                rest = len(row_ids) - index - 1
                batch.untried += rest
                batch.server_unreachable = True
                batch.errors.append(
                    f"SMTP-server {smtp.host}:{smtp.port}: {MAX_CONSECUTIVE_LOST} berichten "
                    f"achter elkaar zonder antwoord; gestopt, {rest} niet geprobeerd, "
                    "blijven in de wachtrij"
                )
                log.warning("delivery: %d lost in a row, %d rows untried", lost_in_a_row, rest)
                break
    finally:
        if client is not None:
            if client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()
            client.close()
    return _finish(batch)


async def _connect(batch: _Batch) -> aiosmtplib.SMTP:
    """A connected (and, as configured, TLS-secured and logged-in) client; raises _Stop."""
    smtp = batch.smtp
    try:
        client = _client(smtp)
    except OSError as exc:  # an unreadable ca_file
        batch.tls_problem = True
        raise _Stop(
            f"certificaat-/TLS-probleem: [smtp] ca_file is niet te gebruiken "
            f"({type(exc).__name__}); controleer het pad en dat het een PEM-bestand is"
        ) from None
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        if is_tls_problem(exc):
            batch.tls_problem = True
            log.warning("delivery: TLS/certificate problem (%s)", type(exc).__name__)
            raise _Stop(tls_message(smtp, exc)) from None
        code = getattr(exc, "code", None)
        error = f"SMTP-server {smtp.host}:{smtp.port} onbereikbaar ({type(exc).__name__})"
        if isinstance(code, int):
            error = f"{error}: {smtp_error(code)}"
        log.warning("delivery: server unreachable")
        batch.server_unreachable = True
        raise _Stop(error) from None
    return client


def _finish(batch: _Batch) -> DeliveryReport:
    report = batch.report()
    log.info(
        "delivery: sent=%d deferred=%d failed=%d uncertain=%d untried=%d errors=%d",
        report.sent,
        report.deferred,
        report.failed,
        report.uncertain,
        report.untried,
        len(report.errors),
    )
    return report


async def _deliver_one(batch: _Batch, client: aiosmtplib.SMTP, row_id: int) -> bool:
    """Claim, send and record one row; True when the connection was lost on it."""
    row = _claim(batch, row_id)
    if row is None:
        return False  # another deliverer has it, or it is no longer due
    if _not_allowed(batch, row):
        return False
    sender = batch.smtp.sender
    try:
        message = build_message(row, sender, batch.now)
        data = flatten_message(message, cte_type="7bit")
    except (ValueError, TypeError) as exc:
        _failed(batch, row, f"bericht niet op te bouwen ({type(exc).__name__})")
        return False
    # MAIL and RCPT: nothing has been handed over yet, any failure is safe to retry.
    try:
        await client.mail(sender)
        await client.rcpt(row.recipient_email)
    except aiosmtplib.SMTPSenderRefused as exc:
        # The sender address is refused: a configuration problem, not this message's.
        _retry(batch, row, f"afzender geweigerd: {smtp_error(exc.code, exc.message)}")
        await _reset(client)
        return False
    except aiosmtplib.SMTPResponseException as exc:
        _refused(batch, row, exc.code, exc.message)
        await _reset(client)
        return False
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        _connection_lost(batch, row, exc)
        client.close()
        return True
    except aiosmtplib.SMTPException as exc:
        _failed(batch, row, f"bericht niet te versturen ({type(exc).__name__})")
        await _reset(client)
        return False
    # DATA: from here a lost reply is an unknown outcome, recorded before the data goes.
    with batch.store.begin() as conn:
        if not ob.mark_transmitting(conn, row):
            log.warning("delivery: row %d: claim lost before sending", row.id)
            await _reset(client)
            return False
    checkpoint("deliver.transmitting")
    try:
        await client.data(data)
    except aiosmtplib.SMTPResponseException as exc:
        # The server answered, so it did not take the message: an ordinary refusal.
        _refused(batch, row, exc.code, exc.message)
        await _reset(client)
        return False
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        _outcome_unknown(batch, row, exc)
        client.close()
        return True
    _sent(batch, row)
    return False


async def _reset(client: aiosmtplib.SMTP) -> None:
    """End a half-done transaction (RSET) so the connection can serve the next message."""
    if client.is_connected:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


def deliver_pending(
    store_engine: sa.Engine,
    smtp: SmtpSettings,
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Synchronous wrapper of :func:`deliver_pending_async` (not for use inside a loop)."""
    return asyncio.run(deliver_pending_async(store_engine, smtp, now=now, limit=limit))
