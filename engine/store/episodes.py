"""Signal episodes as the state machine reads and writes them: loaders and bulk statements.

The state machine itself (``engine.reconcile``) decides every transition and is the only
writer of signal events; this module only moves rows: the open episodes, closed keys,
command-line explanations and known rules of a case_ref range (``load_*``), rules whose
signals would be orphaned (``missing_rules``), an ``UPDATE ... WHERE id IN`` in few
statements (``update_by_ids``) and a bulk ``INSERT`` straight through the driver
(``insert_rows``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from regiesignaal.engine.language.casefile import parse_reason
from regiesignaal.engine.store.tables import explanations, known_rules, signals, warnings

Key = tuple[str, str]  # (case_ref, rule_id)


# Ids per "WHERE id IN (...)" statement: well below SQLite's and PostgreSQL's parameter limits.
ID_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class StoredExplanation:
    """An explanation added on the command line (``explanations`` table), not revoked."""

    id: int
    until: dt.date
    created_by: str
    reason: str = "anders"  # its reason code (``casefile.EXPLANATION_REASONS``)


class OpenEpisode(NamedTuple):
    """An open signal episode as loaded from the store (a tuple: cheap to load by the 100,000)."""

    id: int
    case_ref: str
    rule_id: str
    severity: str
    regievoerder: str | None
    team: str | None
    opened_on: dt.date
    last_seen_on: dt.date
    escalated_on: dt.date | None
    explained_until: dt.date | None
    clock_start: dt.date | None = None
    gap_since: dt.date | None = None
    gap_reason: str | None = None
    explained_since: dt.date | None = None
    explained_given_until: dt.date | None = None
    explanation_expired_on: dt.date | None = None
    covered_by: str | None = None
    began_on: dt.date | None = None
    location: str | None = None
    explained_inputs: str | None = None
    explanation_lapsed_on: dt.date | None = None
    explanation_lapsed_given: dt.date | None = None
    explained_reason: str | None = None

    @property
    def key(self) -> Key:
        return (self.case_ref, self.rule_id)


def update_by_ids(
    conn: Connection, ids: Sequence[int], values: dict[str, Any], only_open: bool = False
) -> None:
    """``UPDATE signals SET values WHERE id IN ids`` in as few statements as possible.

    PostgreSQL gets one statement with an array parameter (``id = ANY(:ids)``); other
    databases get ``id IN (...)`` in chunks of :data:`ID_CHUNK` ids.
    """
    if not ids:
        return
    condition: sa.ColumnElement[bool]
    if conn.dialect.name == "postgresql":
        param = sa.bindparam("ids", type_=postgresql.ARRAY(sa.Integer))
        condition, size = signals.c.id == sa.any_(param), len(ids)
    else:
        condition, size = signals.c.id.in_(sa.bindparam("ids", expanding=True)), ID_CHUNK
    stmt = sa.update(signals).where(condition).values(**values)
    if only_open:
        stmt = stmt.where(signals.c.closed_on.is_(None))
    for start in range(0, len(ids), size):
        conn.execute(stmt, {"ids": list(ids[start : start + size])})


SIGNAL_COLUMNS = (
    "case_ref",
    "rule_id",
    "severity",
    "regievoerder",
    "team",
    "opened_on",
    "last_seen_on",
    "closed_on",
    "close_reason",
    "reopened",
    "escalated_on",
    "explained_until",
    "opened_run_id",
    "closed_run_id",
    "baseline",
    "clock_start",
    "gap_since",
    "gap_reason",
    "explained_since",
    "explained_given_until",
    "explanation_expired_on",
    "covered_by",
    "began_on",
    "location",
    "explained_inputs",
    "explanation_lapsed_on",
    "explanation_lapsed_given",
    "explained_reason",
    "outcome",
    "outcome_reason",
    "shadow",
)


EVENT_COLUMNS = (
    "signal_id",
    "warning_id",
    "case_ref",
    "rule_id",
    "kind",
    "as_of",
    "run_id",
    "ruleset_version",
    "details",
    "created_at",
)


FAST_INSERT = True
"""Write inserted rows straight through the driver (see :func:`insert_rows`); False: one
SQLAlchemy ``executemany`` (the straightforward path, kept to test the fast one against)."""


def _remembered(column: sa.Column[Any], process: Any) -> Any:
    """A date or time column's bind processor remembering its results for one insert: a
    range's thousands of rows hold a few distinct dates (and one ``created_at``), and
    SQLAlchemy formats each in Python (issue 19: a fifth of reconcile at a million cases).
    Other columns' processors as they are."""
    if process is None or not isinstance(column.type, sa.Date | sa.DateTime):
        return process
    seen: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        # with its time zone: equal instants in two zones are equal but read differently
        key = (value, getattr(value, "tzinfo", None))
        try:
            return seen[key]
        except KeyError:
            result = seen[key] = process(value)
            return result

    return convert


def insert_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """``INSERT INTO table (columns)`` the ``rows`` (tuples in the order of ``columns``), in
    order (ids follow the order of ``rows``), inside the caller's transaction.

    Each value goes through the column type's own bind processor (as SQLAlchemy would
    convert it: dates, booleans, JSON), then straight to the driver: PostgreSQL gets one
    ``COPY ... FROM STDIN``, SQLite one ``executemany`` of plain tuples. This skips
    SQLAlchemy's per-row parameter handling, which cost more than the database's own
    work at 100,000 cases (issue 11); the rows stored are the same.
    """
    if not rows:
        return
    dialect = conn.dialect
    if not FAST_INSERT or dialect.name not in ("sqlite", "postgresql"):
        conn.execute(sa.insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    processors = [
        _remembered(table.c[name], table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name in columns
    ]
    if any(p is not None for p in processors):
        steps = [(i, p) for i, p in enumerate(processors) if p is not None]
        converted: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for i, process in steps:
                values[i] = process(values[i])
            converted.append(values)
        rows = converted
    names = ", ".join(dialect.identifier_preparer.quote(name) for name in columns)
    target = dialect.identifier_preparer.format_table(table)
    if dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(
            f"INSERT INTO {target} ({names}) VALUES ({marks})", [tuple(r) for r in rows]
        )


KeyRange = tuple[str | None, str | None]
"""A case_ref range ``(above, up_to)``: ``above < case_ref <= up_to``; None is unbounded."""


def in_range(column: Any, bounds: KeyRange | None) -> list[sa.ColumnElement[bool]]:
    if bounds is None:
        return []
    above, up_to = bounds
    out = []
    if above is not None:
        out.append(column > above)
    if up_to is not None:
        out.append(column <= up_to)
    return out


def load_open_episodes(conn: Connection, bounds: KeyRange | None = None) -> list[OpenEpisode]:
    """The open episodes (of the case_ref range ``bounds``, all when None)."""
    c = signals.c
    result = conn.execute(
        sa.select(
            c.id,
            c.case_ref,
            c.rule_id,
            c.severity,
            c.regievoerder,
            c.team,
            c.opened_on,
            c.last_seen_on,
            c.escalated_on,
            c.explained_until,
            c.clock_start,
            c.gap_since,
            c.gap_reason,
            c.explained_since,
            c.explained_given_until,
            c.explanation_expired_on,
            c.covered_by,
            c.began_on,
            c.location,
            c.explained_inputs,
            c.explanation_lapsed_on,
            c.explanation_lapsed_given,
            c.explained_reason,
        ).where(c.closed_on.is_(None), *in_range(c.case_ref, bounds))
    )
    return list(map(OpenEpisode._make, result.all()))


class OpenWarning(NamedTuple):
    """An open warning as loaded from the store."""

    id: int
    case_ref: str
    rule_id: str
    regievoerder: str | None
    team: str | None
    due_on: dt.date
    last_seen_on: dt.date


WARNING_COLUMNS = (
    "case_ref",
    "rule_id",
    "regievoerder",
    "team",
    "due_on",
    "opened_on",
    "last_seen_on",
    "closed_on",
    "close_reason",
    "opened_run_id",
    "closed_run_id",
)


def load_open_warnings(conn: Connection, bounds: KeyRange | None = None) -> list[OpenWarning]:
    """The open warnings (of the case_ref range ``bounds``, all when None)."""
    c = warnings.c
    result = conn.execute(
        sa.select(
            c.id, c.case_ref, c.rule_id, c.regievoerder, c.team, c.due_on, c.last_seen_on
        ).where(c.closed_on.is_(None), *in_range(c.case_ref, bounds))
    )
    return list(map(OpenWarning._make, result.all()))


def load_closed_keys(conn: Connection, bounds: KeyRange | None = None) -> set[Key]:
    c = signals.c
    result = conn.execute(
        sa.select(c.case_ref, c.rule_id)
        .where(c.closed_on.is_not(None), *in_range(c.case_ref, bounds))
        .distinct()
    )
    return {(case_ref, rule_id) for case_ref, rule_id in result.all()}


def load_stored_explanations(
    conn: Connection, as_of: dt.date, bounds: KeyRange | None = None
) -> dict[Key, StoredExplanation]:
    """Command-line explanations in force on ``as_of`` (not revoked); the latest end per key
    (of the case_ref range ``bounds``, all when None)."""
    c = explanations.c
    out: dict[Key, StoredExplanation] = {}
    rows = conn.execute(
        sa.select(c.id, c.case_ref, c.rule_id, c.until, c.created_by, c.reason)
        .where(c.revoked_at.is_(None), c.until >= as_of, *in_range(c.case_ref, bounds))
        .order_by(c.until, c.id)
    )
    for row in rows:
        out[(row.case_ref, row.rule_id)] = StoredExplanation(
            row.id, row.until, row.created_by, parse_reason(row.reason)[0]
        )
    return out


def load_known_rules(conn: Connection) -> tuple[set[str], set[str]]:
    """(rules in use: introduced and not retired, rules retired by an operator)."""
    c = known_rules.c
    known: set[str] = set()
    retired: set[str] = set()
    for rule_id, retired_at in conn.execute(sa.select(c.rule_id, c.retired_at)):
        (known if retired_at is None else retired).add(rule_id)
    return known, retired


class RuleMode(NamedTuple):
    """A rule's mode as last reconciled, and who asked to change it and why (a note of
    ``rules promote`` that the next run applies; None: none waiting)."""

    mode: str
    by: str | None = None
    reason: str | None = None


def load_rule_modes(conn: Connection) -> dict[str, RuleMode]:
    """The mode (``live`` | ``shadow``) each rule in use was last reconciled in, with the
    note waiting for the next run; a rule known before modes were kept counts as live."""
    c = known_rules.c
    rows = conn.execute(
        sa.select(c.rule_id, c.mode, c.mode_by, c.mode_reason).where(c.retired_at.is_(None))
    )
    return {rule_id: RuleMode(mode or "live", by, reason) for rule_id, mode, by, reason in rows}


def missing_rules(conn: Connection, rule_ids: Collection[str]) -> list[str]:
    """Rules holding open signals that are not in ``rule_ids`` and not retired; sorted."""
    c = signals.c
    holding = set(
        conn.execute(sa.select(c.rule_id).where(c.closed_on.is_(None)).distinct()).scalars()
    )
    _, retired = load_known_rules(conn)
    return sorted(holding - set(rule_ids) - retired)
