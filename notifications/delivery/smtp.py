"""Deliver pending outbox rows over SMTP with aiosmtplib, in batches.

Messages go in batches of ``[smtp] batch_size``: the batch is claimed (status
``sending``, in one transaction committed before anything is sent; see
``notifications.delivery.outbox`` for how claims keep concurrent deliverers from sending
a message twice, on SQLite as on PostgreSQL), then its messages are sent one after the
other over one connection outside any database transaction. Sending a message is MAIL,
RCPT, the DATA command, then (after the server's 354) the data; right before the data,
one transaction records the outcomes decided so far and marks this one message
``transmitting`` (issue 17: each message on its own), so that a lost outcome from then
on is known to be ambiguous for that message alone. The batch's last outcomes are
committed at its end. ``[smtp] connections`` such loops run at once (asyncio tasks, one
connection each), all drawing batches from the same list of due rows.

A crash (SIGKILL) in the middle of a batch leaves its rows ``sending`` (no data out yet:
released and sent again later, nothing arrived) and at most one ``transmitting`` per
connection (settled to ``uncertain`` later: it may have arrived, it is not resent
automatically): at most one message per connection needs an operator.
A batch starts no further message once half of ``outbox.CLAIM_TIMEOUT`` has passed since
its claim; its rest goes back to the list and is claimed afresh.

Outcomes per message:

- accepted: status ``sent``, ``sent_at`` set;
- a 421 reply or a connection closed before the message's data went out (at MAIL, RCPT
  or the DATA command: a relay that limits messages per connection, a restart): a new
  connection and the same message again in the same delivery, no attempt charged; when
  that happens a second time to the same message, it is a temporary failure (below);
- a 4xx reply to MAIL (a rate limit, greylisting, a busy relay): the relay defers the
  delivery: this message and every one not yet offered stay ``pending`` with no attempt
  charged, the reason in ``last_error`` and a next attempt after :func:`defer_wait` (1
  to 15 minutes); the delivery stops and the scheduler's mail retry
  (jobs/ops/mail_retry.py) comes back for them;
- a 5xx reply to MAIL: the sender is refused, a configuration problem, not the
  message's: the delivery stops, nothing charged, the rows stay ``pending`` untried;
- another 4xx reply, a timeout before the data went out: back to ``pending`` with
  ``next_attempt_at`` after 1, 2, 4 ... minutes (at most 60); once ``max_attempts``
  attempts were made the row becomes ``failed``;
- another 5xx reply: ``failed`` at once;
- a row without a body (emptied by retention): ``failed`` at once, never sent empty;
- a timeout or a dropped connection after the data went out: ``uncertain`` ("mogelijk
  aangekomen"): the server may have stored the message, so it is not sent again
  automatically (an operator checks the relay's log for the Message-ID and may requeue
  it with ``deliver --retry-uncertain``).

Time limits: ``timeout_seconds`` applies to each SMTP step (connect, each command and its
reply, the reply to the end of the data); ``deadline_seconds`` to the whole delivery:
after it no further message is started and the rest stay ``pending`` untried (no
attempt counted) for the next delivery.

One message in trouble does not hold up the others: after a timeout or a dropped
connection the next message (of the same batch) gets a new connection. When the server
cannot be reached (connect or login fails), or three messages in a row lose their
connection (or have their session ended twice), the delivery stops; the rows not yet
tried (the rest of the batch included: its claim's attempt is taken back) stay
``pending`` without an attempt counted: a message never offered to the server never
becomes ``failed``.

Certificate and TLS problems (an unknown certificate authority, a wrong host name, a
server without STARTTLS) need an operator, not patience: the delivery stops at once, the
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
import collections
import concurrent.futures
import contextlib
import datetime as dt
import email.utils
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
import sqlalchemy as sa
from aiosmtplib.email import flatten_message
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from regiesignaal.engine.checkpoint import checkpoint
from regiesignaal.engine.language.addresses import AddressError, check_address, domain_allowed
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.settings import SmtpSettings

log = logging.getLogger("regiesignaal.delivery")

BACKOFF_CAP_MINUTES = 60
DEFER_MIN = dt.timedelta(minutes=1)
DEFER_MAX = dt.timedelta(minutes=15)
EMPTIED_BODY = (
    "bericht zonder inhoud (geleegd door de bewaartermijn, [retention] message_body_days); "
    "niet verstuurd"
)
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
class _Delivery:
    """One delivery (all batches of a run or a ``deliver``): where it stores, how it
    sends, its clock, its tally, and why it stopped early (if it did)."""

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
    lost_in_a_row: int = 0
    encoder: concurrent.futures.ThreadPoolExecutor | None = None
    """One thread that encodes the next message while this one is with the server."""
    stop_reason: Callable[[int], str] | None = None
    """Set once the delivery must stop: no batch is claimed and no message started after
    it. Called with the number of untried rows for the report's line."""
    deferral: tuple[dt.datetime, str] | None = None
    """Set when the relay defers (a 4xx to MAIL: a rate limit, greylisting):
    the next attempt time and the reason given to every row not yet offered."""
    deferred_by_server: int = 0
    _started: float = field(default_factory=time.monotonic)

    def claim_time(self) -> dt.datetime:
        """``now`` (the delivery's start) plus the time elapsed since: a claim made late
        in a long delivery must not look stale to another deliverer starting meanwhile."""
        return self.now + dt.timedelta(seconds=time.monotonic() - self._started)

    def past_deadline(self) -> bool:
        return time.monotonic() - self._started >= self.smtp.deadline_seconds

    def stop(self, reason: Callable[[int], str]) -> None:
        """Stop the delivery (the first reason counts)."""
        if self.stop_reason is None:
            self.stop_reason = reason

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


@dataclass
class _Batch:
    """One claimed batch: its rows (claimed in one commit), the outcomes decided so far
    (recorded in one commit at its end), and whether its data has started to go out."""

    rows: list[ob.OutboxRow]
    claimed_at: float = field(default_factory=time.monotonic)
    outcomes: list[tuple[ob.OutboxRow, str, str | None]] = field(default_factory=list)
    """(row, outcome, error): outcome ``sent``, ``retry`` (error; backoff from the
    attempts), ``failed``, ``uncertain`` or ``untried`` (never offered: released)."""
    marked: set[int] = field(default_factory=set)
    """Ids of the rows marked ``transmitting`` (each right before its own data)."""
    encoded: dict[int, asyncio.Future[bytes | Exception]] = field(default_factory=dict)
    """Row index -> its message being encoded (at most this row and the next)."""

    def claim_getting_old(self) -> bool:
        """Half of ``CLAIM_TIMEOUT`` since the claim: start no further message of this
        batch, so no other deliverer ever takes its claims for those of a dead process."""
        age = time.monotonic() - self.claimed_at
        return age >= ob.CLAIM_TIMEOUT.total_seconds() / 2


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed attempt: 1, 2, 4 ... minutes, capped at 60."""
    exponent = max(attempts, 1) - 1
    minutes = BACKOFF_CAP_MINUTES if exponent >= 6 else min(2**exponent, BACKOFF_CAP_MINUTES)
    return dt.timedelta(minutes=minutes)


def defer_wait(now: dt.datetime, created_at: dt.datetime) -> dt.timedelta:
    """How long mail the relay deferred waits before the next try: a quarter of the time
    the message has waited since it was queued, at least 1 and at most 15 minutes (a
    per-minute rate limit or greylisting passes within minutes; a relay down for an hour
    is tried every quarter of an hour)."""
    return min(max((now - created_at) / 4, DEFER_MIN), DEFER_MAX)


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


def attachment_name(as_of: dt.date) -> str:
    """The file name of the whole list attached to a case manager's daily mail."""
    return f"regiesignaal-volledige-lijst-{as_of.isoformat()}.html"


def build_message(row: ob.OutboxRow, sender: str, now: dt.datetime) -> EmailMessage:
    """The outbox row as a message (see :func:`mime_message`)."""
    return mime_message(
        sender,
        row.recipient_email,
        row.subject,
        row.body_text,
        row.body_html,
        now,
        message_id=row.message_id,
        attachment_html=row.attachment_html,
        as_of=row.as_of,
    )


def mime_message(
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    now: dt.datetime,
    *,
    message_id: str | None = None,
    attachment_html: str | None = None,
    as_of: dt.date | None = None,
) -> EmailMessage:
    """multipart/alternative: text/plain then text/html, both utf-8; with an attachment
    (a case manager's whole list, named after ``as_of``) multipart/mixed around it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(ob.utc(now))
    if message_id is not None:
        msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"  # no out-of-office replies (Exchange)
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if attachment_html:
        msg.add_attachment(
            attachment_html.encode("utf-8"),
            maintype="text",
            subtype="html",
            filename=attachment_name(as_of or now.date()),
        )
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


def _warn_if_lost(row: ob.OutboxRow, held: bool, outcome: str) -> None:
    if not held:
        log.warning("delivery: row %d: claim lost before %s was recorded", row.id, outcome)


def _write_outcomes(conn: sa.Connection, d: _Delivery, b: _Batch) -> int:
    """Write the batch's decided outcomes in the caller's transaction; returns how many
    were ``sent`` (for the crash-test checkpoint after the commit)."""
    sent_rows = [row for row, outcome, _ in b.outcomes if outcome == "sent"]
    done = ob.finish_sent_many(conn, sent_rows, d.now)  # the common case: one statement
    for row in sent_rows:
        _warn_if_lost(row, row.id in done, "sent")
    for row, outcome, error in b.outcomes:
        if outcome == "sent":
            continue
        if outcome == "retry":
            held = ob.finish_retry(conn, row, error or "", d.now + backoff(row.attempts))
        elif outcome == "failed":
            held = ob.finish_failed(conn, row, error or "")
        elif outcome == "uncertain":
            held = ob.finish_uncertain(conn, row, error or "")
        elif outcome == "defer" and d.deferral is not None:
            until, reason = d.deferral
            held = ob.finish_deferred(conn, row, reason, until)
        else:
            held = ob.release_untried(conn, row)
        _warn_if_lost(row, held, outcome)
    b.outcomes.clear()
    return len(sent_rows)


def _after_commit(sent: int) -> None:
    for _ in range(sent):
        checkpoint("deliver.sent")


def _record(d: _Delivery, b: _Batch) -> None:
    """Record the batch's outcomes in one transaction."""
    if not b.outcomes:
        return
    with d.store.begin() as conn:
        sent = _write_outcomes(conn, d, b)
    _after_commit(sent)


def _mark_transmitting(d: _Delivery, b: _Batch, row: ob.OutboxRow) -> bool:
    """Right before ``row``'s data goes out, in one transaction: the batch's outcomes
    decided so far, and ``row`` to ``transmitting``. False when its claim no longer holds
    (a claim can only be lost to another deliverer's stale-claim settlement, after
    ``CLAIM_TIMEOUT``)."""
    with d.store.begin() as conn:
        sent = _write_outcomes(conn, d, b)
        held = row.id in ob.mark_transmitting_many(conn, [row])
    _after_commit(sent)
    if held:
        b.marked.add(row.id)
    else:
        log.warning("delivery: row %d: claim lost before sending", row.id)
    return held


def _sent(d: _Delivery, b: _Batch, row: ob.OutboxRow) -> None:
    b.outcomes.append((row, "sent", None))
    d.sent += 1
    log.debug("delivery: row %d sent", row.id)


def _failed(d: _Delivery, b: _Batch, row: ob.OutboxRow, error: str) -> None:
    b.outcomes.append((row, "failed", error))
    d.failed += 1
    d.errors.append(f"outbox {row.id} ({row.recipient_id}): {error}")
    log.warning("delivery: row %d failed", row.id)


def _retry(d: _Delivery, b: _Batch, row: ob.OutboxRow, error: str) -> None:
    """A temporary failure: back to pending with backoff, or failed after max_attempts.

    ``row.attempts`` already counts this attempt (it is counted at the claim).
    """
    if row.attempts >= d.smtp.max_attempts:
        log.warning("delivery: row %d gave up after %d attempts", row.id, row.attempts)
        _failed(d, b, row, f"{error} (na {row.attempts} pogingen); opgegeven")
        return
    b.outcomes.append((row, "retry", error))
    d.deferred += 1
    log.info("delivery: row %d deferred", row.id)


def _refused(d: _Delivery, b: _Batch, row: ob.OutboxRow, code: int | None, reply: str) -> None:
    """A refusal by the server: 5xx is permanent, anything else is retried."""
    error = smtp_error(code, reply)
    if code is not None and 500 <= code < 600:
        log.warning("delivery: row %d refused permanently (%s)", row.id, code)
        _failed(d, b, row, error)
    else:
        _retry(d, b, row, error)


def _connection_lost(d: _Delivery, b: _Batch, row: ob.OutboxRow, exc: BaseException) -> None:
    """No reply before the data went out: a temporary failure of this message."""
    _retry(d, b, row, f"verbinding verbroken of geen antwoord ({type(exc).__name__})")


def _outcome_unknown(d: _Delivery, b: _Batch, row: ob.OutboxRow, exc: BaseException) -> None:
    """The data went out and no reply came: the message may have arrived."""
    error = (
        f"uitkomst onbekend: geen bevestiging na het versturen ({type(exc).__name__}); "
        "mogelijk aangekomen, niet opnieuw verstuurd"
    )
    b.outcomes.append((row, "uncertain", error))
    d.uncertain += 1
    d.errors.append(f"outbox {row.id} ({row.recipient_id}): {error}")
    log.warning("delivery: row %d outcome unknown", row.id)


def _not_allowed(d: _Delivery, b: _Batch, row: ob.OutboxRow) -> bool:
    """Refuse a recipient outside the domain allow-list or with an unusable address."""
    try:
        address = check_address(row.recipient_email)
    except AddressError as exc:
        _failed(d, b, row, f"ongeldig adres van de ontvanger: {exc}")
        return True
    if not domain_allowed(address, d.smtp.allowed_domains):
        _failed(
            d,
            b,
            row,
            "adres buiten de toegestane domeinen ([mail] allowed_domains); niet verstuurd",
        )
        return True
    return False


class _Stop(Exception):
    """The delivery must stop (server unreachable, TLS problem); the message says why."""


MAX_CONSECUTIVE_LOST = 3


async def deliver_pending_async(
    store_engine: sa.Engine,
    smtp: SmtpSettings,
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
) -> DeliveryReport:
    """Send the outbox rows due at ``now`` (default: the current time), in batches of
    ``smtp.batch_size`` over at most ``smtp.connections`` connections at once. Safe to
    run concurrently with other deliverers on the same store. Never raises for SMTP
    trouble: the report says what happened."""
    d = _Delivery(store_engine, smtp, ob.utc(now or ob.utcnow()))
    with store_engine.begin() as conn:
        stale = ob.release_stale_claims(conn, d.now)
    if stale.released:
        log.warning("delivery: %d interrupted claims released", stale.released)
    if stale.uncertain:
        d.uncertain += stale.uncertain
        d.errors.append(
            f"{stale.uncertain} {'bericht' if stale.uncertain == 1 else 'berichten'} "
            "onderbroken tijdens het versturen: mogelijk aangekomen, niet opnieuw verstuurd "
            "(controleer de mailserver; 'regiesignaal deliver --retry-uncertain')"
        )
        log.warning("delivery: %d interrupted transmissions marked uncertain", stale.uncertain)
    if stale.superseded:
        d.errors.append(
            f"{stale.superseded} onderbroken {'bericht' if stale.superseded == 1 else 'berichten'}"
            " vervangen door een nieuwer bericht voor dezelfde ontvanger (niet verstuurd)"
        )
        log.warning("delivery: %d interrupted claims superseded", stale.superseded)
    with store_engine.connect() as conn:
        row_ids = ob.due_ids(conn, d.now, limit)
    if not row_ids:
        log.info("delivery: nothing due")
        return _finish(d)

    try:
        check_address(smtp.sender)
    except AddressError as exc:
        # a configuration problem, not the messages': none is tried or charged
        d.untried += len(row_ids)
        d.errors.append(
            f"afzenderadres ([smtp] sender) onbruikbaar ({exc}); {len(row_ids)} niet "
            "geprobeerd, blijven in de wachtrij"
        )
        log.warning("delivery: unusable sender, %d rows untried", len(row_ids))
        return _finish(d)
    queue = collections.deque(row_ids)
    batches = -(-len(row_ids) // smtp.batch_size)
    with concurrent.futures.ThreadPoolExecutor(1, "regiesignaal-encode") as d.encoder:
        await asyncio.gather(
            *(_connection(d, queue) for _ in range(min(smtp.connections, batches)))
        )
    if queue and d.deferral is not None:  # never claimed: deferred with the rest
        until, reason = d.deferral
        with store_engine.begin() as conn:
            n = ob.defer_pending(conn, list(queue), reason, until)
        d.deferred += n
        d.deferred_by_server += n
    elif queue:  # never claimed: the delivery stopped
        d.untried += len(queue)
    if d.deferral is not None:
        until, reason = d.deferral
        minutes = max(1, round((until - d.claim_time()).total_seconds() / 60))
        n = d.deferred_by_server
        d.errors.append(
            f"SMTP-server {smtp.host}:{smtp.port} stelt de bezorging uit ({reason}); {n} "
            f"{'bericht' if n == 1 else 'berichten'} uitgesteld, volgende poging over "
            f"{minutes} min (geen poging geteld; de scheduler probeert het opnieuw)"
        )
    elif d.stop_reason is not None and d.untried:
        d.errors.append(d.stop_reason(d.untried))
        log.warning("delivery: stopped, %d rows untried", d.untried)
    return _finish(d)


def _deadline_reason(smtp: SmtpSettings) -> Callable[[int], str]:
    def reason(rest: int) -> str:
        return (
            f"bezorgtermijn van {smtp.deadline_seconds:g} s verstreken: {rest} "
            f"{'bericht' if rest == 1 else 'berichten'} niet geprobeerd; ze blijven in "
            "de wachtrij voor de volgende bezorging"
        )

    return reason


def _lost_reason(smtp: SmtpSettings) -> Callable[[int], str]:
    def reason(rest: int) -> str:
        return (
            f"SMTP-server {smtp.host}:{smtp.port}: {MAX_CONSECUTIVE_LOST} berichten achter "
            f"elkaar zonder antwoord; gestopt, {rest} niet geprobeerd, blijven in de wachtrij"
        )

    return reason


async def _connected(d: _Delivery, client: aiosmtplib.SMTP | None) -> aiosmtplib.SMTP | None:
    """``client`` when still connected, else a new connection; None (and the delivery
    stopped) when the server cannot be reached or a TLS problem stands in the way."""
    if client is not None:
        if client.is_connected:
            return client
        client.close()
    try:
        return await _connect(d)
    except _Stop as stop:
        why = str(stop)
        d.stop(lambda rest: f"{why}; {rest} niet geprobeerd, blijven in de wachtrij")
        return None


async def _connection(d: _Delivery, queue: collections.deque[int]) -> None:
    """One connection: claim a batch of the queue's rows, send it, record it; again
    until the queue is empty or the delivery stops."""
    client: aiosmtplib.SMTP | None = None
    try:
        while queue and d.stop_reason is None:
            if d.past_deadline():
                d.stop(_deadline_reason(d.smtp))
                break
            # connect before claiming: an unreachable server charges no attempt
            client = await _connected(d, client)
            if client is None:
                break
            ids = [queue.popleft() for _ in range(min(d.smtp.batch_size, len(queue)))]
            with d.store.begin() as conn:
                rows = ob.claim_batch(conn, ids, d.claim_time())
            if rows:
                checkpoint("deliver.claimed")
                client = await _send_batch(d, _Batch(rows), client, queue)
    finally:
        if client is not None:
            if client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()
            client.close()


async def _send_batch(
    d: _Delivery, b: _Batch, client: aiosmtplib.SMTP | None, queue: collections.deque[int]
) -> aiosmtplib.SMTP | None:
    """Offer the batch's rows one by one over ``client`` (reconnecting after a lost
    connection), then record every outcome in one transaction. A 421 or a connection
    closed before a message's data went out gets that message one new connection and a
    second offer, no attempt charged. Rows not offered because the delivery stopped are
    released (no attempt counted) or, when the relay deferred the delivery, deferred
    (no attempt counted, a next attempt time); rows not offered because the claim grew
    old go back to the queue for a fresh claim."""
    offered = 0
    requeue = False
    for index, row in enumerate(b.rows):
        if d.stop_reason is not None:
            break
        if d.past_deadline():
            d.stop(_deadline_reason(d.smtp))
            break
        if b.claim_getting_old():
            requeue = True
            break
        _encode_ahead(d, b, index)
        client = await _connected(d, client)
        if client is None:
            break
        offered = index + 1
        data = await b.encoded.pop(index)
        result = await _deliver_one(d, b, client, row, data, may_reconnect=True)
        if result == "again":
            client.close()
            client = await _connected(d, client)
            if client is None:  # the server is gone: this message stays untried
                offered = index
                break
            result = await _deliver_one(d, b, client, row, data, may_reconnect=False)
        lost = result == "lost"
        d.lost_in_a_row = d.lost_in_a_row + 1 if lost else 0
        if d.lost_in_a_row >= MAX_CONSECUTIVE_LOST and (index + 1 < len(b.rows) or queue):
            d.server_unreachable = True
            d.stop(_lost_reason(d.smtp))
            log.warning("delivery: %d lost in a row", d.lost_in_a_row)
            break
    for pending in b.encoded.values():
        pending.cancel()  # the next message's encoding, not needed now
    rest = b.rows[offered:]
    if d.deferral is not None and not requeue:
        for row in rest:
            b.outcomes.append((row, "defer", None))
        d.deferred += len(rest)
        d.deferred_by_server += len(rest)
    else:
        for row in rest:
            b.outcomes.append((row, "untried", None))
        if requeue:
            queue.extendleft(reversed([row.id for row in rest]))
        else:
            d.untried += len(rest)
    _record(d, b)
    return client


async def _connect(d: _Delivery) -> aiosmtplib.SMTP:
    """A connected (and, as configured, TLS-secured and logged-in) client; raises _Stop."""
    smtp = d.smtp
    try:
        client = _client(smtp)
    except OSError as exc:  # an unreadable ca_file
        d.tls_problem = True
        raise _Stop(
            f"certificaat-/TLS-probleem: [smtp] ca_file is niet te gebruiken "
            f"({type(exc).__name__}); controleer het pad en dat het een PEM-bestand is"
        ) from None
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        if is_tls_problem(exc):
            d.tls_problem = True
            log.warning("delivery: TLS/certificate problem (%s)", type(exc).__name__)
            raise _Stop(tls_message(smtp, exc)) from None
        code = getattr(exc, "code", None)
        error = f"SMTP-server {smtp.host}:{smtp.port} onbereikbaar ({type(exc).__name__})"
        if isinstance(code, int):
            error = f"{error}: {smtp_error(code)}"
        log.warning("delivery: server unreachable")
        d.server_unreachable = True
        raise _Stop(error) from None
    return client


def _finish(d: _Delivery) -> DeliveryReport:
    report = d.report()
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


def encode_message(row: ob.OutboxRow, sender: str, now: dt.datetime) -> bytes:
    """The message as it goes over the wire (7-bit, CRLF line ends): :func:`build_message`
    flattened. Raises ValueError or TypeError for a message that cannot be built."""
    return flatten_message(build_message(row, sender, now), cte_type="7bit")


def _encode_or_error(row: ob.OutboxRow, sender: str, now: dt.datetime) -> bytes | Exception:
    try:
        return encode_message(row, sender, now)
    except (ValueError, TypeError) as exc:
        return exc


def _encode_ahead(d: _Delivery, b: _Batch, index: int) -> None:
    """Have the batch's message at ``index`` and the one after it encoding in the encoder
    thread: the next message is encoded (CPU work, some 66 KB of quoted-printable for a
    case manager's list) while the server takes in this one, instead of after it."""
    loop = asyncio.get_running_loop()
    for ahead in (index, index + 1):
        if ahead < len(b.rows) and ahead not in b.encoded:
            row = b.rows[ahead]
            b.encoded[ahead] = loop.run_in_executor(
                d.encoder, _encode_or_error, row, d.smtp.sender, d.now
            )


Result = str
"""What :func:`_deliver_one` leaves: ``done`` (an outcome decided, or the claim lost),
``lost`` (no reply: counts towards ``MAX_CONSECUTIVE_LOST``), ``again`` (a 421 or a
closed connection before the data went out: offer it again over a new connection)."""


async def _deliver_one(
    d: _Delivery,
    b: _Batch,
    client: aiosmtplib.SMTP,
    row: ob.OutboxRow,
    data: bytes | Exception,
    *,
    may_reconnect: bool,
) -> Result:
    """Offer one claimed row (``data``: its encoded message) and decide its outcome
    (recorded with the batch's). MAIL, RCPT and the DATA command come first; only after
    the server's 354 is this row marked ``transmitting`` (one commit, with the outcomes
    decided so far), so a crash leaves at most this one message with an unknown outcome.
    A 421 or a connection closed before the data went out is ``again`` when
    ``may_reconnect`` (nothing charged), else a temporary failure of this message."""
    if _not_allowed(d, b, row):
        return "done"
    if not row.body_text and not row.body_html:
        _failed(d, b, row, EMPTIED_BODY)
        return "done"
    if isinstance(data, Exception):
        _failed(d, b, row, f"bericht niet op te bouwen ({type(data).__name__})")
        return "done"
    # MAIL, RCPT and DATA: nothing has been handed over yet, any failure is safe to retry.
    try:
        await client.mail(d.smtp.sender)
    except aiosmtplib.SMTPSenderRefused as exc:
        if exc.code == 421:
            return _closed_before_data(d, b, client, row, "421", may_reconnect)
        await _reset(client)
        return _mail_refused(d, b, row, exc.code, exc.message)
    except aiosmtplib.SMTPTimeoutError as exc:
        return _no_reply(d, b, client, row, exc)
    except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        return _closed_before_data(d, b, client, row, type(exc).__name__, may_reconnect)
    except aiosmtplib.SMTPException as exc:
        _failed(d, b, row, f"bericht niet te versturen ({type(exc).__name__})")
        await _reset(client)
        return "done"
    try:
        await client.rcpt(row.recipient_email)
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code == 421:
            return _closed_before_data(d, b, client, row, "421", may_reconnect)
        _refused(d, b, row, exc.code, exc.message)
        await _reset(client)
        return "done"
    except aiosmtplib.SMTPTimeoutError as exc:
        return _no_reply(d, b, client, row, exc)
    except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        return _closed_before_data(d, b, client, row, type(exc).__name__, may_reconnect)
    except aiosmtplib.SMTPException as exc:
        _failed(d, b, row, f"bericht niet te versturen ({type(exc).__name__})")
        await _reset(client)
        return "done"
    try:
        start = await client.execute_command(b"DATA")
    except aiosmtplib.SMTPTimeoutError as exc:
        return _no_reply(d, b, client, row, exc)
    except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        return _closed_before_data(d, b, client, row, type(exc).__name__, may_reconnect)
    except aiosmtplib.SMTPException as exc:
        _failed(d, b, row, f"bericht niet te versturen ({type(exc).__name__})")
        await _reset(client)
        return "done"
    if start.code == 421:
        return _closed_before_data(d, b, client, row, "421", may_reconnect)
    if start.code != 354:
        _refused(d, b, row, start.code, start.message)
        await _reset(client)
        return "done"
    # The server waits for the data: from here a lost reply is an unknown outcome. This
    # row alone is marked (with the outcomes decided so far, one commit) before it goes.
    if row.id not in b.marked and not _mark_transmitting(d, b, row):
        client.close()  # claim lost; the server drops the unfinished message
        return "done"
    checkpoint("deliver.transmitting")
    protocol = client.protocol
    try:
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol.write(_data_bytes(data))
    except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:  # nothing went out
        return _closed_before_data(d, b, client, row, type(exc).__name__, may_reconnect)
    try:
        reply = await protocol.read_response(timeout=d.smtp.timeout_seconds)
    except (aiosmtplib.SMTPException, OSError) as exc:
        _outcome_unknown(d, b, row, exc)
        client.close()
        return "lost"
    if reply.code != 250:
        # The server answered, so it did not take the message: an ordinary refusal.
        _refused(d, b, row, reply.code, reply.message)
        await _reset(client)
        return "done"
    _sent(d, b, row)
    checkpoint("deliver.accepted")
    return "done"


def _data_bytes(data: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, the final dot
    (what aiosmtplib's ``data()`` does, split here so the DATA command's reply is known
    before any of the message goes out)."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


def _no_reply(
    d: _Delivery, b: _Batch, client: aiosmtplib.SMTP, row: ob.OutboxRow, exc: BaseException
) -> Result:
    """A timeout before the data went out: a temporary failure of this message."""
    _connection_lost(d, b, row, exc)
    client.close()
    return "lost"


def _closed_before_data(
    d: _Delivery,
    b: _Batch,
    client: aiosmtplib.SMTP,
    row: ob.OutboxRow,
    what: str,
    may_reconnect: bool,
) -> Result:
    """A 421 or a closed connection before the message's data went out: the relay ends
    the session (a limit of messages per connection, a restart). The first time, a new
    connection and the same message (no attempt charged); the second time it is a
    temporary failure of this message (backoff), and the next message gets a new
    connection (three such in a row stop the delivery, as for lost connections)."""
    client.close()
    if may_reconnect:
        log.info("delivery: row %d: session ended before the data (%s); reconnecting", row.id, what)
        return "again"
    why = f"421 {describe_code(421)}" if what == "421" else f"verbinding verbroken ({what})"
    _retry(d, b, row, f"de server beëindigde de sessie twee keer vóór het versturen: {why}")
    return "lost"


def _mail_refused(d: _Delivery, b: _Batch, row: ob.OutboxRow, code: int, reply: str) -> Result:
    """MAIL refused. 5xx: the sender (``[smtp] sender``) or the client is not allowed, a
    configuration problem, not this message's: the delivery stops, nothing charged. 4xx
    (a rate limit, greylisting, a relay that is busy): the relay defers the delivery."""
    if 500 <= code < 600:
        b.outcomes.append((row, "untried", None))
        d.untried += 1
        error = smtp_error(code, reply)
        log.warning("delivery: sender refused permanently (%s); delivery stopped", code)
        d.stop(
            lambda rest: (
                f"afzender geweigerd door SMTP-server {d.smtp.host}:{d.smtp.port} "
                f"({error}): een instellingsprobleem, geen fout van de berichten; controleer "
                f"[smtp] sender en of deze server voor regiesignaal mag versturen. {rest} niet "
                "geprobeerd, blijven in de wachtrij (geen poging geteld)"
            )
        )
        return "done"
    _defer_delivery(d, b, row, f"de server stelt uit bij MAIL: {smtp_error(code, reply)}")
    return "done"


def _defer_delivery(d: _Delivery, b: _Batch, row: ob.OutboxRow, error: str) -> None:
    """The relay defers: this row and every row not yet offered stay ``pending`` with no
    attempt charged, ``error`` as their reason and a next attempt after
    :func:`defer_wait`; the delivery stops (the scheduler's mail retry comes back)."""
    if d.deferral is None:
        at = d.claim_time()
        d.deferral = (at + defer_wait(at, row.created_at), error)
        d.stop(lambda rest: "")
        log.warning("delivery: the relay defers (row %d); delivery stopped", row.id)
    b.outcomes.append((row, "defer", None))
    d.deferred += 1
    d.deferred_by_server += 1


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
