"""The outbox: composed messages waiting for delivery (table ``engine.store.tables.outbox``).

At most one row exists per (as_of, kind, recipient_id): rerunning a date never queues,
and so never sends, a message twice. The Message-ID is derived from the same key, so
even a message that is somehow sent twice is recognisable as the same message.

Statuses and their transitions::

    pending --claim--> sending --MAIL/RCPT 4xx, no connection--> pending (backoff) or failed
                               --relay defers (4xx to MAIL)--> pending (no attempt counted)
                               --MAIL/RCPT 5xx---------------------> failed
                               --message data handed over--> transmitting
    transmitting --accepted (250)--> sent
                 --4xx / 5xx reply to the data--> pending (backoff) or failed
                 --timeout or dropped connection--> uncertain (may have arrived; not retried)
    pending --a newer message for the same kind and recipient--> superseded
    failed, uncertain --operator: requeue_failed / requeue_uncertain--> pending
    sending (stale: a process died before the data went out) --> pending, or superseded
    transmitting (stale: died while the data went out) --> uncertain

Claiming: a deliverer sends a row only after it has moved the row from ``pending`` to
``sending`` with a conditional UPDATE (``... WHERE id IN (...) AND status = 'pending'``,
a batch of rows at once, ``claim_batch``; ``claim`` for one) in a transaction of its own,
committed before anything goes to the SMTP server; a deliverer sends only the rows its
UPDATE changed (``RETURNING``). This works the same on SQLite (one writer at a time) and
PostgreSQL (where the rows are locked ``FOR UPDATE SKIP LOCKED`` first, so two deliverers
never wait on each other), so any number of deliverers may run at once without sending
a message twice. While a row is ``sending``,
``next_attempt_at`` holds the claim time (there is no column of its own for it), and
``attempts`` (counted at the claim) is the claim's token: the outcome is recorded only
if the row is still in ``sending`` (or ``transmitting``) with that attempt count.

Unknown outcomes: right before the message data goes to the server the row moves from
``sending`` to ``transmitting`` (committed; each message on its own, right before its
own data, so a crash leaves at most one message per connection ``transmitting``). A
timeout or a dropped connection after that point, or a process that dies there, leaves
the outcome unknown: the server may have stored the message. Such a row becomes
``uncertain`` ("mogelijk aangekomen") and is not sent again unless an operator requeues
it after checking the relay's log for its Message-ID. A claim still in ``sending`` never
handed its data over, so a stale one (older than ``CLAIM_TIMEOUT``, 10 minutes: its
process died) is safely released to ``pending``, or marked ``superseded`` when a newer
message for the same kind and recipient exists. A process that dies (or loses its
database) after the server accepted the data but before ``sent`` was recorded leaves
``transmitting``, which becomes ``uncertain``: never resent automatically. A message can
reach its recipient twice only when an operator requeues an uncertain row that had in
fact arrived (same Message-ID, so a mail client can recognise the duplicate), or when a
relay reports a failure after it stored the data (against RFC 5321; at most
``max_attempts`` copies).

Stale mail: a message still pending when a newer one for the same kind and recipient is
queued (an SMTP outage, a run with ``--no-mail``) is marked ``superseded``: kept for the
record, never sent, so nobody gets last week's list next to today's.

Times are stored in UTC. SQLite keeps no time zone, so naive values read back from the
table are UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from regiesignaal.engine.store.tables import outbox
from regiesignaal.notifications.delivery.message import ComposedMessage

STATUSES = ("pending", "sending", "transmitting", "sent", "failed", "uncertain", "superseded")
IN_FLIGHT = ("sending", "transmitting")
"""Statuses of a claimed row whose outcome is not recorded yet."""
CLAIM_TIMEOUT = dt.timedelta(minutes=10)
"""A claim (status ``sending``) older than this is taken to be from a process that died."""
KINDS = ("regievoerder", "teamleider", "beleid", "lko", "operator")
"""Message kinds: case manager list, team digest, rule report (``beleid``), the chain
meeting's agenda (``lko``), operator alerts (``operator``, notifications/operator_alert.py)."""
_KIND_TAG = {"regievoerder": "rv", "teamleider": "tl", "beleid": "bl", "operator": "op"}


@dataclass(frozen=True)
class OutboxRow:
    id: int
    run_id: int
    as_of: dt.date
    kind: str
    recipient_id: str
    recipient_email: str
    subject: str
    body_text: str
    body_html: str
    message_id: str
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    attachment_html: str | None = None


def utc(value: dt.datetime) -> dt.datetime:
    """The same instant in UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_message_id(as_of: dt.date, kind: str, recipient_id: str, sender_domain: str) -> str:
    """A deterministic RFC 5322 Message-ID for (as_of, kind, recipient_id).

    The staff id is hashed, so any characters in it are safe in a header; the id is
    kept short so the header is not folded.
    """
    digest = hashlib.sha256(f"{as_of.isoformat()}|{kind}|{recipient_id}".encode()).hexdigest()
    domain = sender_domain.strip().strip("<>@ ") or "regiesignaal.invalid"
    return f"<rs.{as_of:%Y%m%d}.{_KIND_TAG.get(kind, kind)}.{digest[:20]}@{domain}>"


def _insert_ignoring_duplicate(conn: sa.Connection, values: dict[str, Any]) -> bool:
    key = ("as_of", "kind", "recipient_id")
    dialect = conn.dialect.name
    # the statements take the values as parameters (not .values()): built and compiled
    # once, not once per message (issue 11)
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(outbox).on_conflict_do_nothing(
            constraint="uq_outbox_once_per_day"
        )
    elif dialect == "sqlite":
        stmt = sqlite.insert(outbox).on_conflict_do_nothing(index_elements=key)
    else:  # check-then-insert; the unique constraint still guards against a race
        exists = conn.execute(
            sa.select(outbox.c.id).where(*(outbox.c[k] == values[k] for k in key))
        ).first()
        if exists is not None:
            return False
        stmt = outbox.insert()
    # RETURNING tells reliably whether a row was inserted (rowcount does not, on
    # every driver, for an INSERT .. ON CONFLICT DO NOTHING).
    inserted = conn.execute(stmt.returning(outbox.c.id), values).first()
    return inserted is not None


def enqueue(
    conn: sa.Connection,
    *,
    run_id: int,
    as_of: dt.date,
    kind: str,
    recipient_id: str,
    recipient_email: str,
    message: ComposedMessage,
    sender_domain: str,
    now: dt.datetime | None = None,
    settle: bool = True,
) -> bool:
    """Queue ``message`` for delivery; False (and nothing changed) when already queued.

    Runs in the caller's transaction: commit it to make the row visible to delivery.
    ``settle``: supersede the recipient's older pending message of ``kind`` now, or this
    one if a newer exists; False leaves that to one :func:`settle_queued` for the whole
    run (the night queues thousands: two statements each cost more than the insert).
    """
    if kind not in KINDS:
        raise ValueError(f"onbekend soort bericht {kind!r}; kies uit {', '.join(KINDS)}")
    if not recipient_email.strip():
        raise ValueError(f"geen e-mailadres voor medewerker {recipient_id!r}")
    values: dict[str, Any] = {
        "run_id": run_id,
        "as_of": as_of,
        "kind": kind,
        "recipient_id": recipient_id,
        "recipient_email": recipient_email.strip(),
        "subject": message.subject,
        "body_text": message.text,
        "body_html": message.html,
        "attachment_html": message.attachment_html,
        "message_id": make_message_id(as_of, kind, recipient_id, sender_domain),
        "status": "pending",
        "attempts": 0,
        "created_at": utc(now or utcnow()),
        "next_attempt_at": None,
    }
    if not _insert_ignoring_duplicate(conn, values):
        return False
    if not settle:
        return True
    supersede_older(conn, kind=kind, recipient_id=recipient_id, as_of=as_of)
    if _newer_exists(conn, kind=kind, recipient_id=recipient_id, as_of=as_of):
        # A date before the newest one was (re)run: its message is stale from the start.
        conn.execute(
            outbox.update()
            .where(
                outbox.c.as_of == as_of,
                outbox.c.kind == kind,
                outbox.c.recipient_id == recipient_id,
                outbox.c.status == "pending",
            )
            .values(status="superseded", next_attempt_at=None)
        )
    return True


def settle_queued(conn: sa.Connection, *, run_id: int, as_of: dt.date) -> None:
    """What :func:`enqueue` does per message, for every message run ``run_id`` queued for
    ``as_of`` with ``settle=False``, in two statements: the pending messages of the same
    kind and recipient for an earlier date become ``superseded``, and so do the run's
    own messages where one for a later date exists (a rerun of an older date). Rows the
    run found already queued (another run's) are left as they are, as enqueue leaves
    them. Runs in the caller's transaction."""
    mine = outbox.alias("mine")
    other = outbox.alias("other")
    o = outbox.c
    queued_now = (
        sa.select(mine.c.id)
        .where(
            mine.c.as_of == as_of,
            mine.c.run_id == run_id,
            mine.c.kind == o.kind,
            mine.c.recipient_id == o.recipient_id,
        )
        .exists()
    )
    conn.execute(
        outbox.update()
        .where(o.status == "pending", o.as_of < as_of, queued_now)
        .values(status="superseded", next_attempt_at=None)
    )
    newer = (
        sa.select(other.c.id)
        .where(
            other.c.kind == o.kind,
            other.c.recipient_id == o.recipient_id,
            other.c.as_of > as_of,
        )
        .exists()
    )
    conn.execute(
        outbox.update()
        .where(o.as_of == as_of, o.run_id == run_id, o.status == "pending", newer)
        .values(status="superseded", next_attempt_at=None)
    )


def supersede_older(conn: sa.Connection, *, kind: str, recipient_id: str, as_of: dt.date) -> int:
    """Mark pending messages of ``kind`` to ``recipient_id`` for a date before ``as_of``
    as ``superseded``: kept for the record, never sent. Returns the number of rows marked.

    Rows being sent, sent or failed are left alone (see ``requeue_failed`` for failed ones).
    """
    stmt = (
        outbox.update()
        .where(
            outbox.c.kind == kind,
            outbox.c.recipient_id == recipient_id,
            outbox.c.as_of < as_of,
            outbox.c.status == "pending",
        )
        .values(status="superseded", next_attempt_at=None)
    )
    return int(conn.execute(stmt).rowcount)


def _newer_exists(conn: sa.Connection, *, kind: str, recipient_id: str, as_of: dt.date) -> bool:
    stmt = sa.select(outbox.c.id).where(
        outbox.c.kind == kind, outbox.c.recipient_id == recipient_id, outbox.c.as_of > as_of
    )
    return conn.execute(stmt.limit(1)).first() is not None


def row_from_mapping(mapping: sa.RowMapping) -> OutboxRow:
    def opt(value: dt.datetime | None) -> dt.datetime | None:
        return utc(value) if value is not None else None

    return OutboxRow(
        id=mapping["id"],
        run_id=mapping["run_id"],
        as_of=mapping["as_of"],
        kind=mapping["kind"],
        recipient_id=mapping["recipient_id"],
        recipient_email=mapping["recipient_email"],
        subject=mapping["subject"],
        body_text=mapping["body_text"],
        body_html=mapping["body_html"],
        message_id=mapping["message_id"],
        status=mapping["status"],
        attempts=mapping["attempts"],
        last_error=mapping["last_error"],
        created_at=utc(mapping["created_at"]),
        next_attempt_at=opt(mapping["next_attempt_at"]),
        sent_at=opt(mapping["sent_at"]),
        attachment_html=mapping.get("attachment_html"),
    )


def due_clause(now: dt.datetime) -> sa.ColumnElement[bool]:
    """Pending rows whose next attempt is not in the future."""
    return sa.and_(
        outbox.c.status == "pending",
        sa.or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= utc(now)),
    )


def pending(conn: sa.Connection, now: dt.datetime, limit: int | None = None) -> list[OutboxRow]:
    """Pending rows due for an attempt at ``now``, oldest first."""
    stmt = sa.select(outbox).where(due_clause(now)).order_by(outbox.c.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [row_from_mapping(m) for m in conn.execute(stmt).mappings()]


def due_ids(conn: sa.Connection, now: dt.datetime, limit: int | None = None) -> list[int]:
    """Ids of the pending rows due at ``now``, oldest first (no bodies read)."""
    stmt = sa.select(outbox.c.id).where(due_clause(now)).order_by(outbox.c.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [int(i) for i in conn.execute(stmt).scalars()]


def get(conn: sa.Connection, row_id: int) -> OutboxRow | None:
    mapping = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).mappings().first()
    return row_from_mapping(mapping) if mapping is not None else None


def counts(conn: sa.Connection, as_of: dt.date | None = None) -> dict[str, int]:
    """Rows per status (every status in ``STATUSES``, zeros included) for one as-of date,
    or for all dates when None."""
    stmt = sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
    if as_of is not None:
        stmt = stmt.where(outbox.c.as_of == as_of)
    result = {status: 0 for status in STATUSES}
    for status, count in conn.execute(stmt):
        result[str(status)] = int(count)
    return result


def queued_recipients(conn: sa.Connection, as_of: dt.date) -> set[tuple[str, str]]:
    """(kind, recipient_id) of every message already in the outbox for ``as_of``.

    A re-run of a date skips composing these; ``enqueue`` would refuse them anyway.
    """
    stmt = sa.select(outbox.c.kind, outbox.c.recipient_id).where(outbox.c.as_of == as_of)
    return {(str(kind), str(rid)) for kind, rid in conn.execute(stmt)}


def has_body() -> sa.ColumnElement[bool]:
    """Rows whose message body is still there (retention empties the bodies of old
    ``sent``, ``failed``, ``uncertain`` and ``superseded`` rows): only these can ever be
    sent again; an emptied row stays as it is, never requeued, never sent."""
    return sa.or_(outbox.c.body_text != "", outbox.c.body_html != "")


def emptied(conn: sa.Connection, status: str, *, as_of: dt.date | None = None) -> int:
    """Rows of ``status`` whose body retention emptied (they cannot be requeued)."""
    stmt = (
        sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == status, ~has_body())
    )
    if as_of is not None:
        stmt = stmt.where(outbox.c.as_of == as_of)
    return int(conn.execute(stmt).scalar_one())


def needs_look(conn: sa.Connection) -> dict[str, int]:
    """``failed`` and ``uncertain`` rows whose recipient has had no newer message of the
    same kind since (a newer list settles an older one) and whose body is still there
    (an emptied row can no longer be sent: nothing left to act on): an operator should
    look. ``deliver`` exits 3 while any remain."""
    stmt = (
        sa.select(outbox.c.status, sa.func.count())
        .where(outbox.c.status.in_(("failed", "uncertain")), ~_has_newer(), has_body())
        .group_by(outbox.c.status)
    )
    found = {"failed": 0, "uncertain": 0}
    for status, n in conn.execute(stmt):
        found[str(status)] = int(n)
    return found


def requeue_failed(conn: sa.Connection, *, as_of: dt.date | None = None) -> int:
    """Operator action: put failed rows back to pending with a fresh attempt count.

    Returns the number of rows requeued. Sent rows are never touched, and a failed row
    for which a newer message (same kind and recipient, later date) exists is stale: it
    is marked ``superseded`` instead of being requeued. A row whose body retention
    emptied is left ``failed`` (see :func:`emptied`): it is never sent without its body.
    """
    newer = outbox.alias("newer")
    has_newer = (
        sa.select(newer.c.id)
        .where(
            newer.c.kind == outbox.c.kind,
            newer.c.recipient_id == outbox.c.recipient_id,
            newer.c.as_of > outbox.c.as_of,
        )
        .exists()
    )
    stale = outbox.update().where(outbox.c.status == "failed", has_newer)
    fresh = outbox.update().where(outbox.c.status == "failed", ~has_newer, has_body())
    if as_of is not None:
        stale = stale.where(outbox.c.as_of == as_of)
        fresh = fresh.where(outbox.c.as_of == as_of)
    conn.execute(stale.values(status="superseded", next_attempt_at=None))
    return int(
        conn.execute(fresh.values(status="pending", attempts=0, next_attempt_at=None)).rowcount
    )


def release_due(conn: sa.Connection, now: dt.datetime) -> int:
    """Operator action (``deliver --now``): make every pending row due at ``now``.

    Clears the backoff (``next_attempt_at``) of pending rows still waiting for a later
    attempt; returns how many there were. Rows already due are due anyway.
    """
    stmt = (
        outbox.update()
        .where(outbox.c.status == "pending", outbox.c.next_attempt_at > utc(now))
        .values(next_attempt_at=None)
    )
    return int(conn.execute(stmt).rowcount)


# ---------------------------------------------------------------- claims and outcomes


def claim(conn: sa.Connection, row_id: int, now: dt.datetime) -> OutboxRow | None:
    """Claim a due pending row for sending; None when it is not (or no longer) due.

    A conditional UPDATE: of any number of concurrent callers exactly one gets the row.
    It counts the attempt and stores the claim time in ``next_attempt_at``. The caller
    must commit before sending, and send only when a row is returned.
    """
    stmt = (
        outbox.update()
        .where(outbox.c.id == row_id, due_clause(now))
        .values(status="sending", attempts=outbox.c.attempts + 1, next_attempt_at=utc(now))
    )
    if conn.execute(stmt).rowcount != 1:
        return None
    return get(conn, row_id)


def claim_batch(conn: sa.Connection, row_ids: list[int], now: dt.datetime) -> list[OutboxRow]:
    """Claim those of ``row_ids`` that are still due at ``now``, in one statement; the
    claimed rows, oldest first (none when another deliverer has them all).

    The batch form of :func:`claim`: one conditional UPDATE (``... WHERE id IN (...) AND
    status = 'pending'``), so of concurrent callers exactly one gets each row. On
    PostgreSQL the rows are first locked with ``FOR UPDATE SKIP LOCKED``: a row another
    deliverer is claiming at this moment is skipped instead of waited for, and two
    deliverers never wait on each other's rows (no deadlock). The caller must commit
    before sending, and send only the rows returned.
    """
    if not row_ids:
        return []
    lockable = (
        sa.select(outbox.c.id)
        .where(outbox.c.id.in_(row_ids), due_clause(now))
        .with_for_update(skip_locked=True)
    )
    stmt = (
        outbox.update()
        .where(outbox.c.id.in_(lockable.scalar_subquery()), due_clause(now))
        .values(status="sending", attempts=outbox.c.attempts + 1, next_attempt_at=utc(now))
        .returning(*outbox.c)
    )
    rows = [row_from_mapping(m) for m in conn.execute(stmt).mappings()]
    return sorted(rows, key=lambda r: r.id)


@dataclass(frozen=True)
class StaleClaims:
    """What ``release_stale_claims`` did: rows released to pending, marked uncertain, and
    marked superseded (a newer message for the same kind and recipient exists)."""

    released: int = 0
    uncertain: int = 0
    superseded: int = 0


def _has_newer() -> sa.Exists:
    newer = outbox.alias("newer")
    return (
        sa.select(newer.c.id)
        .where(
            newer.c.kind == outbox.c.kind,
            newer.c.recipient_id == outbox.c.recipient_id,
            newer.c.as_of > outbox.c.as_of,
        )
        .exists()
    )


def release_stale_claims(
    conn: sa.Connection, now: dt.datetime, timeout: dt.timedelta = CLAIM_TIMEOUT
) -> StaleClaims:
    """Settle rows claimed longer than ``timeout`` ago (their process died).

    ``sending`` (the data never went out): back to ``pending``, due at once, or
    ``superseded`` when a newer message for the same kind and recipient exists (nobody
    gets yesterday's list next to today's). ``transmitting`` (the data may have arrived):
    ``uncertain``, never resent automatically.
    """
    stale = sa.and_(outbox.c.next_attempt_at < utc(now) - timeout)
    superseded = conn.execute(
        outbox.update()
        .where(outbox.c.status == "sending", stale, _has_newer())
        .values(
            status="superseded",
            next_attempt_at=None,
            last_error="verzending onderbroken; vervangen door een nieuwer bericht",
        )
    ).rowcount
    released = conn.execute(
        outbox.update()
        .where(outbox.c.status == "sending", stale)
        .values(
            status="pending",
            next_attempt_at=None,
            last_error="verzending onderbroken voordat het bericht verstuurd werd; opnieuw "
            "aangeboden",
        )
    ).rowcount
    uncertain = conn.execute(
        outbox.update()
        .where(outbox.c.status == "transmitting", stale)
        .values(
            status="uncertain",
            next_attempt_at=None,
            last_error="uitkomst onbekend: verzending onderbroken tijdens het versturen; "
            "mogelijk aangekomen",
        )
    ).rowcount
    return StaleClaims(int(released), int(uncertain), int(superseded))


def requeue_uncertain(conn: sa.Connection, *, as_of: dt.date | None = None) -> int:
    """Operator action, after checking the relay's log: put ``uncertain`` rows back to
    pending (superseded instead when a newer message exists). Returns the number requeued.
    A message that had arrived after all then reaches its recipient twice."""
    stale = outbox.update().where(outbox.c.status == "uncertain", _has_newer())
    fresh = outbox.update().where(outbox.c.status == "uncertain", ~_has_newer(), has_body())
    if as_of is not None:
        stale = stale.where(outbox.c.as_of == as_of)
        fresh = fresh.where(outbox.c.as_of == as_of)
    conn.execute(stale.values(status="superseded", next_attempt_at=None))
    return int(
        conn.execute(fresh.values(status="pending", attempts=0, next_attempt_at=None)).rowcount
    )


def unsettled(conn: sa.Connection, as_of: dt.date | None = None) -> dict[str, int]:
    """Rows that need attention. ``uncertain``: rows with an unknown outcome (for one
    as-of date, or all when None); ``stuck``: claims (``sending``/``transmitting``) of
    any date. Called after a delivery has settled its own claims, a claim left is one
    of a killed run (settled by the first delivery after ``CLAIM_TIMEOUT``) or of another
    deliverer still at work."""
    uncertain = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == "uncertain")
    if as_of is not None:
        uncertain = uncertain.where(outbox.c.as_of == as_of)
    stuck = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status.in_(IN_FLIGHT))
    return {
        "uncertain": int(conn.execute(uncertain).scalar_one()),
        "stuck": int(conn.execute(stuck).scalar_one()),
    }


def _finish(conn: sa.Connection, row: OutboxRow, values: dict[str, Any]) -> bool:
    """Record an outcome for ``row`` if this claim still holds; False when it does not."""
    stmt = (
        outbox.update()
        .where(
            outbox.c.id == row.id,
            outbox.c.status.in_(IN_FLIGHT),
            outbox.c.attempts == row.attempts,
        )
        .values(**values)
    )
    return int(conn.execute(stmt).rowcount) == 1


def finish_sent(conn: sa.Connection, row: OutboxRow, now: dt.datetime) -> bool:
    """The server accepted the claimed ``row`` (:func:`finish_sent_many` for one row)."""
    return row.id in finish_sent_many(conn, [row], now)


def finish_retry(
    conn: sa.Connection, row: OutboxRow, error: str, next_attempt_at: dt.datetime
) -> bool:
    """The claimed ``row`` was not sent; try again from ``next_attempt_at``."""
    return _finish(
        conn,
        row,
        {"status": "pending", "last_error": error, "next_attempt_at": utc(next_attempt_at)},
    )


def finish_failed(conn: sa.Connection, row: OutboxRow, error: str) -> bool:
    """The claimed ``row`` cannot be sent; it stays ``failed`` until an operator acts."""
    return _finish(conn, row, {"status": "failed", "last_error": error, "next_attempt_at": None})


def mark_transmitting(conn: sa.Connection, row: OutboxRow) -> bool:
    """The claimed ``row``'s data is about to go to the server; from here on a lost
    outcome is ``uncertain``, not a failure. False when the claim no longer holds
    (:func:`mark_transmitting_many` for one row)."""
    return row.id in mark_transmitting_many(conn, [row])


def release_untried(conn: sa.Connection, row: OutboxRow) -> bool:
    """The claimed ``row`` was never offered to the server (the batch stopped before it:
    deadline, server unreachable, TLS problem): back to ``pending``, due at once, with
    this claim's attempt not counted. Safe from ``transmitting`` too: the caller knows
    its data never went out."""
    return _finish(
        conn,
        row,
        {"status": "pending", "attempts": row.attempts - 1, "next_attempt_at": None},
    )


def finish_deferred(
    conn: sa.Connection, row: OutboxRow, error: str, next_attempt_at: dt.datetime
) -> bool:
    """The relay deferred the delivery (a 4xx to MAIL: a rate limit, greylisting) before
    the claimed ``row`` was offered: back to ``pending`` with this claim's attempt not
    counted, ``error`` as the reason, tried again from ``next_attempt_at``."""
    return _finish(
        conn,
        row,
        {
            "status": "pending",
            "attempts": row.attempts - 1,
            "last_error": error,
            "next_attempt_at": utc(next_attempt_at),
        },
    )


def defer_pending(
    conn: sa.Connection, row_ids: list[int], error: str, next_attempt_at: dt.datetime
) -> int:
    """Rows of ``row_ids`` still ``pending`` (not claimed) wait until ``next_attempt_at``
    with ``error`` as the reason (the relay deferred the delivery); no attempt counted.
    Returns how many."""
    if not row_ids:
        return 0
    stmt = (
        outbox.update()
        .where(outbox.c.id.in_(row_ids), outbox.c.status == "pending")
        .values(last_error=error, next_attempt_at=utc(next_attempt_at))
    )
    return int(conn.execute(stmt).rowcount)


def _claims_held(rows: list[OutboxRow]) -> sa.ColumnElement[bool]:
    """The rows whose claims (id and attempt count) are the given rows'."""
    return sa.tuple_(outbox.c.id, outbox.c.attempts).in_([(r.id, r.attempts) for r in rows])


def mark_transmitting_many(conn: sa.Connection, rows: list[OutboxRow]) -> set[int]:
    """:func:`mark_transmitting` for several claimed rows in one statement; the ids of
    the rows whose claims still held (and are now ``transmitting``)."""
    if not rows:
        return set()
    stmt = (
        outbox.update()
        .where(_claims_held(rows), outbox.c.status == "sending")
        .values(status="transmitting")
        .returning(outbox.c.id)
    )
    return {int(i) for i in conn.execute(stmt).scalars()}


def finish_sent_many(conn: sa.Connection, rows: list[OutboxRow], now: dt.datetime) -> set[int]:
    """:func:`finish_sent` for several claimed rows in one statement; the ids of the rows
    whose claims still held (and are now ``sent``)."""
    if not rows:
        return set()
    stmt = (
        outbox.update()
        .where(_claims_held(rows), outbox.c.status.in_(IN_FLIGHT))
        .values(status="sent", sent_at=utc(now), last_error=None, next_attempt_at=None)
        .returning(outbox.c.id)
    )
    return {int(i) for i in conn.execute(stmt).scalars()}


def finish_uncertain(conn: sa.Connection, row: OutboxRow, error: str) -> bool:
    """The data went out but no reply came (timeout, dropped connection): the message may
    have arrived. Not retried automatically (see ``requeue_uncertain``)."""
    return _finish(conn, row, {"status": "uncertain", "last_error": error, "next_attempt_at": None})


def last_reached(conn: sa.Connection, kind: str, before: dt.date) -> dict[str, dt.date]:
    """Per recipient the as-of date of the newest message of ``kind`` before ``before``
    that was actually sent (status ``sent``): what last reached that person. Used for
    catch-up: "new" since that list, and a digest covering a missed day."""
    stmt = (
        sa.select(outbox.c.recipient_id, sa.func.max(outbox.c.as_of))
        .where(outbox.c.kind == kind, outbox.c.status == "sent", outbox.c.as_of < before)
        .group_by(outbox.c.recipient_id)
    )
    return {str(rid): day for rid, day in conn.execute(stmt)}
