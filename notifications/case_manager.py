"""The case manager's list: who gets one and which lines it holds.

Reads only the store (open signals) plus what the run already knows (rule metadata, the
case factors' bonus per case, the last list that reached each person). Every open,
unexplained signal of an active rule becomes a line for the case's case manager; nothing
from a case plan reaches a line but the pseudonymous case reference. The lines are
rendered by ``notifications.compose.case_manager``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import Duration, shift
from regiesignaal.engine.prioritise import score
from regiesignaal.engine.store.tables import signals
from regiesignaal.notifications.compose.case_manager import compose_case_manager
from regiesignaal.notifications.compose.model import Recipient, SignalLine
from regiesignaal.notifications.compose.render import MailOptions, count_nl
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.shared import (
    RuleMeta,
    explained_on,
    previous_working_day,
)


@dataclass
class Recipients:
    """Per case manager the lines of their message; problems found on the way."""

    lines: dict[str, list[SignalLine]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def new_since(last_reached: dt.date | None, as_of: dt.date) -> dt.date | None:
    """The date a case manager's "nieuw" counts from when it is not the usual one: the
    as-of date of the last list that reached them, unless that was the previous working
    day (the usual case) or they never got one (None)."""
    if last_reached is None or last_reached == previous_working_day(as_of):
        return None
    return last_reached


def case_manager_lines(
    conn: sa.Connection,
    as_of: dt.date,
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
    case_bonus: Mapping[str, int],
    last_reached: Mapping[str, dt.date] | None = None,
) -> Recipients:
    """The open, unexplained signals of every case manager, as message lines.

    A signal is new for a case manager when it was opened after the as-of date of the
    last list that reached them (``last_reached``, from the outbox's sent rows), or,
    without such a list, after the previous working day. A baseline signal is never new.
    All of them in memory at once; :func:`iter_case_manager_lines` gives them one case
    manager at a time.
    """
    out = Recipients()
    for staff_id, lines in iter_case_manager_lines(
        conn, as_of, rules, link, case_bonus, last_reached, out.problems
    ):
        out.lines[staff_id] = lines
    return out


MANAGERS_PER_READ = 64
"""Case managers whose open signals are read from the store with one query."""


def iter_case_manager_lines(
    conn: sa.Connection,
    as_of: dt.date,
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
    case_bonus: Mapping[str, int],
    last_reached: Mapping[str, dt.date] | None = None,
    problems: list[str] | None = None,
) -> Iterator[tuple[str, list[SignalLine]]]:
    """(case manager, their lines) one case manager at a time, ordered by staff id; lines
    as :func:`case_manager_lines` gives them. Memory holds the signals of
    :data:`MANAGERS_PER_READ` case managers (issue 11); every read is complete before the
    caller gets a line, so the caller may write on ``conn`` meanwhile (no open cursor on
    SQLite). Problems (signals without a case manager) go to ``problems`` at the end."""
    last_working_day = previous_working_day(as_of)
    reached = last_reached or {}
    # the escalation date of every line: one working-day shift per (start, duration)
    due_cache: dict[tuple[dt.date, Duration], dt.date] = {}
    c = signals.c
    shown = sa.select(signals).where(c.closed_on.is_(None), c.gap_since.is_(None))
    has_manager = sa.and_(c.regievoerder.is_not(None), c.regievoerder != "")
    # only the columns a line needs, read as plain tuples (issue 11: a line is built
    # 200,000 times a night; access by column name costs more than the rest of it)
    columns = (
        c.regievoerder,
        c.case_ref,
        c.rule_id,
        c.severity,
        c.opened_on,
        c.clock_start,
        c.escalated_on,
        c.explained_until,
        c.reopened,
        c.baseline,
    )
    read = sa.select(*columns).where(c.closed_on.is_(None), c.gap_since.is_(None)).order_by(c.id)
    lines_of = _line_builder(as_of, rules, link, case_bonus, due_cache)

    managers = sorted(
        str(m)
        for m in conn.execute(
            sa.select(c.regievoerder)
            .where(c.closed_on.is_(None), c.gap_since.is_(None), has_manager)
            .distinct()
        ).scalars()
    )
    for start in range(0, len(managers), MANAGERS_PER_READ):
        group = managers[start : start + MANAGERS_PER_READ]
        per_manager: dict[str, list[SignalLine]] = {m: [] for m in group}
        rows = conn.execute(read.where(c.regievoerder.in_(group))).all()
        for row in rows:
            since = reached.get(row[0], last_working_day)
            made = lines_of(row, since)
            if made is not None:
                per_manager[row[0]].append(made)
        del rows
        for manager in group:
            if per_manager[manager]:
                yield manager, per_manager.pop(manager)
    no_manager = sum(
        1
        for row in conn.execute(shown.where(~has_manager)).all()
        if row.rule_id in rules and not explained_on(row.explained_until, as_of)
    )
    if no_manager and problems is not None:
        problems.append(
            f"{count_nl(no_manager, 'signaal', 'signalen')} op zaken zonder regievoerder: "
            "geen ontvanger; wijs de zaken toe in het zaaksysteem"
        )


LineRow = tuple[Any, ...]
"""(regievoerder, case_ref, rule_id, severity, opened_on, clock_start, escalated_on,
explained_until, reopened, baseline) of an open signal."""


def _line_builder(
    as_of: dt.date,
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
    case_bonus: Mapping[str, int],
    due_cache: dict[tuple[dt.date, Duration], dt.date],
) -> Callable[[LineRow, dt.date], SignalLine | None]:
    """A function from a :data:`LineRow` and the date after which a signal is new for its
    case manager to the message line; None for a signal not shown (rule no longer
    active, or explained on ``as_of``)."""

    def line(row: LineRow, new_after: dt.date) -> SignalLine | None:
        (_, case_ref, rule_id, severity, opened_on, clock_start, escalated_on, until, reopened,
         baseline) = row  # fmt: skip
        meta = rules.get(rule_id)
        if meta is None or (until is not None and until >= as_of):
            return None  # no longer active (reconcile closes it), or explained
        days_open = (as_of - opened_on).days
        escalated = escalated_on is not None
        escalates_on = None
        if not escalated and meta.escalate_after is not None:
            start = clock_start or opened_on
            key = (start, meta.escalate_after)
            escalates_on = due_cache.get(key)
            if escalates_on is None:
                escalates_on = due_cache[key] = shift(start, meta.escalate_after, +1)
        baseline = bool(baseline)
        return SignalLine(
            case_ref=case_ref,
            rule_id=rule_id,
            mail_title=meta.mail_title,
            severity=severity,
            opened_on=opened_on,
            days_open=days_open,
            is_new=opened_on > new_after and not baseline,
            reopened=bool(reopened),
            escalated=escalated,
            escalates_on=escalates_on,
            expected_action=meta.expected_action,
            link=link(case_ref),
            score=score(severity, days_open, escalated, case_bonus.get(case_ref, 0)),
            explanation_expired=until is not None and until < as_of,
            mail_code=meta.mail_code,
            baseline=baseline,
        )

    return line


RenderTask = tuple[str, str, dt.date, list[SignalLine], MailOptions, dt.date | None]
"""(staff id, address, as-of date, lines, mail options, "new" counted from): one list."""


def render_list(task: RenderTask) -> ComposedMessage:
    """Render one case manager's list (in a worker process of the run, or in this one)."""
    staff_id, email, as_of, lines, mail_options, since = task
    return compose_case_manager(
        Recipient(staff_id, email), as_of, lines, mail_options, new_since=since
    )
