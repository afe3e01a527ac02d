"""What the message kinds share: the rule metadata mail may show, which day counts as new,
and reading the open signals from the store.

"New" means new since the reader's previous working day: a signal is new for the case
manager when it was opened after the previous working day (on a Monday: Saturday, Sunday
and Monday), and a daily digest's period runs from the day after the previous working day
up to the as-of date (a weekly digest's: the seven days up to the as-of date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import Duration, add_working_days
from regiesignaal.engine.store.tables import signals

STREAM_ROWS = 5000
"""Rows fetched at a time when the open signals are read in one pass."""


@dataclass(frozen=True)
class RuleMeta:
    """What mail may show of a rule, and what ranks its signals."""

    mail_title: str
    expected_action: str
    escalate_after: Duration | None
    mail_code: str = ""
    kind: str = "actie"  # actie | vastlegging
    since_label: str = "sinds"

    @classmethod
    def of(cls, rule: Any) -> RuleMeta:
        """From an ``engine.language.rulefile.model.Rule``."""
        return cls(
            rule.mail_title,
            rule.expected_action,
            rule.escalate_after,
            rule.mail_code,
            rule.kind,
            rule.since.label if rule.since is not None else "sinds",
        )


def previous_working_day(as_of: dt.date) -> dt.date:
    """The last working day before ``as_of`` (Dutch public holidays excluded)."""
    return add_working_days(as_of, -1)


def is_new(opened_on: dt.date, as_of: dt.date) -> bool:
    """Opened after the previous working day: on a Monday the weekend's signals are new."""
    return opened_on > previous_working_day(as_of)


def period_start(as_of: dt.date, period: str) -> dt.date:
    """First day of a digest's period: six days back for a weekly digest; for a daily
    one the day after the previous working day."""
    if period == "weekly":
        return as_of - dt.timedelta(days=6)
    return previous_working_day(as_of) + dt.timedelta(days=1)


def explained_on(explained_until: dt.date | None, day: dt.date) -> bool:
    """An explanation is in force up to and including its end date."""
    return explained_until is not None and explained_until >= day


def open_signals(conn: sa.Connection) -> Iterator[Any]:
    """Every open signal episode not in a gap, explained or not, one row at a time (the
    caller must not write on ``conn`` meanwhile), as a tuple (team, regievoerder,
    rule_id, severity, opened_on, escalated_on, explained_until, baseline, case_ref,
    began_on, location):
    only what a digest counts, read by position (issue 11).

    A signal in a gap (``gap_since`` set: it did not fire today but is inside the grace
    period) keeps its history but is not shown; nor is a signal of a rule in shadow mode."""
    c = signals.c
    stmt = sa.select(
        c.team,
        c.regievoerder,
        c.rule_id,
        c.severity,
        c.opened_on,
        c.escalated_on,
        c.explained_until,
        c.baseline,
        c.case_ref,
        c.began_on,
        c.location,
    ).where(
        c.closed_on.is_(None),
        c.gap_since.is_(None),
        c.covered_by.is_(None),
        c.shadow.is_(False),  # a shadow rule's signal is shown nowhere (issue 18)
    )
    # a server-side cursor on PostgreSQL: the driver would otherwise fetch every row at once
    yield from conn.execute(stmt.execution_options(yield_per=STREAM_ROWS))


def is_baseline(row: Any) -> bool:
    """Whether a signal row is a baseline finding (first night of the product or of its
    rule)."""
    return bool(row._mapping.get("baseline", False))
