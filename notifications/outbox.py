"""The outbox: composed messages waiting for delivery (table ``engine.store.outbox``).

At most one row exists per (as_of, kind, recipient_id): rerunning a date never queues,
and so never sends, a message twice. The Message-ID is derived from the same key, so
even a message that is somehow sent twice is recognisable as the same message.

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

from engine.store import outbox
from notifications.model import ComposedMessage

STATUSES = ("pending", "sent", "failed")
KINDS = ("regievoerder", "teamleider")
_KIND_TAG = {"regievoerder": "rv", "teamleider": "tl"}


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
    if dialect == "postgresql":
        stmt: Any = (
            postgresql.insert(outbox)
            .values(**values)
            .on_conflict_do_nothing(constraint="uq_outbox_once_per_day")
        )
    elif dialect == "sqlite":
        stmt = sqlite.insert(outbox).values(**values).on_conflict_do_nothing(index_elements=key)
    else:  # check-then-insert; the unique constraint still guards against a race
        exists = conn.execute(
            sa.select(outbox.c.id).where(*(outbox.c[k] == values[k] for k in key))
        ).first()
        if exists is not None:
            return False
        stmt = outbox.insert().values(**values)
    # RETURNING tells reliably whether a row was inserted (rowcount does not, on
    # every driver, for an INSERT .. ON CONFLICT DO NOTHING).
    inserted = conn.execute(stmt.returning(outbox.c.id)).first()
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
) -> bool:
    """Queue ``message`` for delivery; False (and nothing changed) when already queued.

    Runs in the caller's transaction: commit it to make the row visible to delivery.
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
        "message_id": make_message_id(as_of, kind, recipient_id, sender_domain),
        "status": "pending",
        "attempts": 0,
        "created_at": utc(now or utcnow()),
        "next_attempt_at": None,
    }
    return _insert_ignoring_duplicate(conn, values)


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


def get(conn: sa.Connection, row_id: int) -> OutboxRow | None:
    mapping = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).mappings().first()
    return row_from_mapping(mapping) if mapping is not None else None


def counts(conn: sa.Connection, as_of: dt.date | None = None) -> dict[str, int]:
    """Rows per status (pending, sent, failed) for one as-of date, or all when None."""
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


def requeue_failed(conn: sa.Connection, *, as_of: dt.date | None = None) -> int:
    """Operator action: put failed rows back to pending with a fresh attempt count.

    Returns the number of rows requeued. Sent rows are never touched.
    """
    stmt = (
        outbox.update()
        .where(outbox.c.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=None)
    )
    if as_of is not None:
        stmt = stmt.where(outbox.c.as_of == as_of)
    return int(conn.execute(stmt).rowcount)
