"""The case manager's list: who gets one and what it holds.

Reads only the store plus what the run already knows (rule metadata, the case factors'
bonus per case, the last list that reached each person):

- every open, unexplained signal of an active rule that is not covered becomes a line for
  the case's case manager; a covered signal (another rule flags the same gap on the case,
  ``covers``) is named on the line of the signal that covers it, not on a line of its own;
- every open warning (``warn_before``) of the case manager's cases, for "Binnenkort";
- the signals that stopped since their last list (the rule no longer fires: resolved, or
  waiting out its grace gap), for "Opgelost sinds je vorige lijst".

Nothing from a case plan reaches a line but the pseudonymous case reference. A case
manager with lines or warnings gets a list; it is rendered by
``notifications.compose.case_manager``.
"""

from __future__ import annotations

import datetime as dt
import functools
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import Duration, shift, working_days_between
from regiesignaal.engine.prioritise import score
from regiesignaal.engine.store.silences import silenced_clause
from regiesignaal.engine.store.tables import signals, warnings
from regiesignaal.notifications.compose.case_manager import (
    Figures,
    OwnFigures,
    compose_case_manager,
)
from regiesignaal.notifications.compose.model import Recipient, SignalLine, UpcomingLine
from regiesignaal.notifications.compose.render import MailOptions, count_nl
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.shared import (
    RuleMeta,
    explained_on,
    previous_working_day,
)

_ESCALATION_DAYS: dict[tuple[dt.date, Duration], dt.date] = {}
"""The escalation day per (clock start, escalate_after), kept between the lists a worker
makes: a pure function of the two (working days and Dutch holidays)."""


@dataclass
class LineRows:
    """A case manager's signal rows, made into lines where the list is rendered (a
    worker of the run: building 200,000 lines a night is as much work as reading them,
    issue 19). ``rows``: (:data:`LineRow`, what the signal covers) of the signals that
    are shown; ``new_after``: the date after which a signal is new for this reader;
    ``bonus``: the case factors' bonus of these rows' cases."""

    rows: list[tuple[LineRow, tuple[tuple[str, str], ...]]]
    new_after: dt.date
    as_of: dt.date
    rules: Mapping[str, RuleMeta]
    link: Callable[[str], str]
    bonus: dict[str, int]

    stored: bool = False
    """The rows hold their dates as the store keeps them (SQLite's text, read straight
    from the driver: :func:`_stored_rows`); they are read as dates here."""

    def lines(self) -> list[SignalLine]:
        """The lines, in the order of ``rows``."""
        if len(_ESCALATION_DAYS) > 50_000:  # (start, duration) pairs: bounded, kept small
            _ESCALATION_DAYS.clear()
        make = _line_builder(self.as_of, self.rules, self.link, self.bonus, _ESCALATION_DAYS)
        rows = ((_dated(row), covers) for row, covers in self.rows) if self.stored else self.rows
        made = (make(row, self.new_after, covers) for row, covers in rows)
        return [line for line in made if line is not None]


@dataclass
class CaseManagerList:
    """What one case manager's list holds. With ``deferred`` (the night's lists), the
    signal lines are still rows: :meth:`signal_lines` makes them."""

    lines: list[SignalLine] = field(default_factory=list)
    upcoming: list[UpcomingLine] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)  # case refs, sorted
    resolved_signals: int = 0
    own: OwnFigures | None = None  # "Jouw cijfers" (weekly, see own_figures)
    deferred: LineRows | None = None

    def signal_lines(self) -> list[SignalLine]:
        """``lines``, or the lines of the ``deferred`` rows."""
        return self.deferred.lines() if self.deferred is not None else self.lines

    @property
    def line_count(self) -> int:
        """How many signal lines the list has (without making deferred ones)."""
        return len(self.deferred.rows) if self.deferred is not None else len(self.lines)


@dataclass
class Recipients:
    """Per case manager the lines of their message; problems found on the way."""

    lines: dict[str, list[SignalLine]] = field(default_factory=dict)
    lists: dict[str, CaseManagerList] = field(default_factory=dict)
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
    """The lists of every case manager (see :func:`iter_case_manager_lists`), all in memory
    at once; ``lines`` holds just the signal lines per case manager."""
    out = Recipients()
    for staff_id, found in iter_case_manager_lists(
        conn, as_of, rules, link, case_bonus, last_reached, out.problems
    ):
        out.lists[staff_id] = found
        if found.lines:
            out.lines[staff_id] = found.lines
    return out


MANAGERS_PER_READ = 64
"""Case managers whose open signals are read from the store with one query."""


def bonuses_of(case_bonus: Mapping[str, int], case_refs: Collection[str]) -> dict[str, int]:
    """The bonus of each of ``case_refs`` that has one in ``case_bonus``: read all at once
    where the mapping can (``many``, as ``engine.spool.CaseBonus`` does: the night's
    bonuses are in a file, not in memory), else one by one."""
    many = getattr(case_bonus, "many", None)
    if many is not None:
        return dict(many(case_refs))
    return {ref: case_bonus[ref] for ref in case_refs if ref in case_bonus}


def iter_case_manager_lists(
    conn: sa.Connection,
    as_of: dt.date,
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
    case_bonus: Mapping[str, int],
    last_reached: Mapping[str, dt.date] | None = None,
    problems: list[str] | None = None,
    *,
    defer: bool = False,
) -> Iterator[tuple[str, CaseManagerList]]:
    """(case manager, their list) one case manager at a time, ordered by staff id, for
    every case manager with signal lines or warnings.

    A signal is new for a case manager when it was opened after the as-of date of the last
    list that reached them (``last_reached``, from the outbox's sent rows), or, without
    such a list, after the previous working day; a baseline signal is never new. Memory
    holds the signals of :data:`MANAGERS_PER_READ` case managers (issue 11); every read is
    complete before the caller gets a list, so the caller may write on ``conn`` meanwhile
    (no open cursor on SQLite). Problems (signals without a case manager) go to
    ``problems`` at the end. ``defer``: the lists hold their signal rows
    (``CaseManagerList.deferred``) instead of lines, for a worker to make (``link`` must
    then pickle)."""
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
        c.began_on,
        c.covered_by,
        c.explanation_lapsed_on,
    )
    # silenced signals and those of a rule in shadow mode are in no mail (issue 18)
    quiet = sa.or_(silenced_clause(signals, as_of), c.shadow.is_(True))
    read = (
        sa.select(*columns)
        .where(c.closed_on.is_(None), c.gap_since.is_(None), ~quiet)
        .order_by(c.id)
    )
    w = warnings.c
    warned = sa.select(w.regievoerder, w.case_ref, w.rule_id, w.due_on).where(
        w.closed_on.is_(None), ~silenced_clause(warnings, as_of)
    )
    # signals that stopped firing since the reader's last list: closed as resolved, or in
    # their grace gap because the rule no longer fires
    stopped = sa.select(c.regievoerder, c.case_ref, c.last_seen_on).where(
        c.last_seen_on < as_of,
        c.last_seen_on >= sa.bindparam("earliest"),
        c.shadow.is_(False),
        sa.or_(
            sa.and_(c.closed_on.is_not(None), c.close_reason == "resolved"),
            sa.and_(c.closed_on.is_(None), c.gap_reason == "resolved"),
        ),
    )

    managers = sorted(
        {
            str(m)
            for m in conn.execute(
                sa.select(c.regievoerder)
                .where(c.closed_on.is_(None), c.gap_since.is_(None), has_manager, ~quiet)
                .distinct()
            ).scalars()
        }
        | {
            str(m)
            for m in conn.execute(
                sa.select(w.regievoerder)
                .where(w.closed_on.is_(None), w.regievoerder.is_not(None), w.regievoerder != "")
                .distinct()
            ).scalars()
        }
    )
    stored = defer and conn.dialect.name == "sqlite"  # rows straight from the driver
    for start in range(0, len(managers), MANAGERS_PER_READ):
        group = managers[start : start + MANAGERS_PER_READ]
        lists: dict[str, CaseManagerList] = {m: CaseManagerList() for m in group}
        group_read = read.where(c.regievoerder.in_(group))
        rows: Sequence[LineRow] = (
            _stored_rows(conn, group_read) if stored else conn.execute(group_read).all()
        )
        covered: dict[tuple[str, str], list[str]] = {}  # (case, coverer) -> covered rules
        for row in rows:
            if row[11] is not None and row[2] in rules:
                covered.setdefault((row[1], row[11]), []).append(row[2])
        group_bonus = bonuses_of(case_bonus, {row[1] for row in rows})
        lines_of = _line_builder(as_of, rules, link, group_bonus, due_cache)
        if defer:
            for manager in group:
                lists[manager].deferred = LineRows(
                    [], reached.get(manager, last_working_day), as_of, rules, link, {}, stored
                )
        for row in rows:
            if row[11] is not None:
                continue
            covers = _covered_titles(row[1], row[2], covered, rules)
            if defer:
                if shown_on(row, rules, as_of):
                    deferred = lists[row[0]].deferred
                    assert deferred is not None
                    deferred.rows.append((tuple(row), covers))
                    if row[1] in group_bonus:
                        deferred.bonus[row[1]] = group_bonus[row[1]]
                continue
            since = reached.get(row[0], last_working_day)
            made = lines_of(row, since, covers)
            if made is not None:
                lists[row[0]].lines.append(made)
        del rows
        for manager, case_ref, rule_id, due_on in conn.execute(
            warned.where(w.regievoerder.in_(group)).order_by(w.due_on, w.case_ref, w.rule_id)
        ):
            meta = rules.get(rule_id)
            if meta is not None:
                lists[manager].upcoming.append(
                    UpcomingLine(case_ref, meta.mail_title, meta.mail_code, due_on, link(case_ref))
                )
        earliest = min(reached.get(m, last_working_day) for m in group)
        done: dict[str, set[str]] = {}
        for manager, case_ref, last_seen in conn.execute(
            stopped.where(c.regievoerder.in_(group)), {"earliest": earliest}
        ):
            if last_seen >= reached.get(manager, last_working_day):
                done.setdefault(manager, set()).add(case_ref)
                lists[manager].resolved_signals += 1
        for manager in group:
            found = lists.pop(manager)
            found.resolved = sorted(done.get(manager, ()))
            if found.line_count or found.upcoming:
                yield manager, found
    no_manager = sum(
        1
        for row in conn.execute(shown.where(~has_manager, c.covered_by.is_(None), ~quiet)).all()
        if row.rule_id in rules and not explained_on(row.explained_until, as_of)
    )
    if no_manager and problems is not None:
        problems.append(
            f"{count_nl(no_manager, 'signaal', 'signalen')} op zaken zonder regievoerder: "
            "geen ontvanger; wijs de zaken toe in het zaaksysteem"
        )


def _covered_titles(
    case_ref: str,
    rule_id: str,
    covered: Mapping[tuple[str, str], list[str]],
    rules: Mapping[str, RuleMeta],
) -> tuple[tuple[str, str], ...]:
    """(mail title, mail code) of every signal ``rule_id`` covers on the case, directly
    or through a signal it covers (A covers B covers C: A's line names B and C)."""
    out: list[tuple[str, str]] = []
    todo = list(covered.get((case_ref, rule_id), ()))
    seen: set[str] = set()
    while todo:
        other = todo.pop(0)
        if other in seen:
            continue
        seen.add(other)
        meta = rules[other]
        out.append((meta.mail_title, meta.mail_code))
        todo.extend(covered.get((case_ref, other), ()))
    return tuple(sorted(out))


LineRow = tuple[Any, ...]
"""(regievoerder, case_ref, rule_id, severity, opened_on, clock_start, escalated_on,
explained_until, reopened, baseline, began_on, covered_by, explanation_lapsed_on) of an
open signal."""


def shown_on(row: LineRow, rules: Mapping[str, RuleMeta], as_of: dt.date) -> bool:
    """Whether the signal of ``row`` is a line on ``as_of``: its rule is active and it is
    not explained on that day (what :func:`_line_builder`'s lines leave out)."""
    until = row[7]
    if isinstance(until, str):
        until = _stored_date(until)
    return row[2] in rules and (until is None or until < as_of)


@functools.lru_cache(maxsize=65_536)  # a store's dates: a few thousand distinct values
def _stored_date(text: str) -> dt.date:
    """A date as SQLite's store keeps it, read as SQLAlchemy reads it."""
    from sqlalchemy.dialects import sqlite

    read = sqlite.DATE().result_processor(sqlite.dialect(), None)
    assert read is not None
    value = read(text)
    assert isinstance(value, dt.date)
    return value


_DATE_COLUMNS = frozenset({4, 5, 6, 7, 10, 12})
"""The positions of :data:`LineRow`'s dates."""


def _dated(row: LineRow) -> LineRow:
    """A row of :func:`_stored_rows` with its dates read as dates."""
    return tuple(
        _stored_date(v) if i in _DATE_COLUMNS and v is not None else v for i, v in enumerate(row)
    )


def _stored_rows(conn: sa.Connection, stmt: sa.Select[Any]) -> list[LineRow]:
    """The rows of ``stmt`` on SQLite straight from the driver, as the store keeps them:
    SQLAlchemy's own row handling read the night's 200,000 lines slower than SQLite
    (issue 19); :func:`_dated` makes the dates, in the worker that makes the lines. The
    statement is compiled with its values in it (SQLAlchemy's own quoting)."""
    sql = str(
        stmt.compile(
            dialect=conn.dialect,
            compile_kwargs={"literal_binds": True, "render_postcompile": True},
        )
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        return list(cursor.execute(sql).fetchall())
    finally:
        cursor.close()


def _line_builder(
    as_of: dt.date,
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
    case_bonus: Mapping[str, int],
    due_cache: dict[tuple[dt.date, Duration], dt.date],
) -> Callable[[LineRow, dt.date, tuple[tuple[str, str], ...]], SignalLine | None]:
    """A function from a :data:`LineRow`, the date after which a signal is new for its case
    manager and what it covers to the message line; None for a signal not shown (rule no
    longer active, or explained on ``as_of``)."""

    def line(
        row: LineRow, new_after: dt.date, covers: tuple[tuple[str, str], ...] = ()
    ) -> SignalLine | None:
        (_, case_ref, rule_id, severity, opened_on, clock_start, escalated_on, until, reopened,
         baseline, began_on, _covered_by, lapsed_on) = row  # fmt: skip
        if not shown_on(row, rules, as_of):
            return None  # no longer active (reconcile closes it), or explained
        meta = rules[rule_id]
        age_from = began_on if began_on is not None and began_on <= as_of else opened_on
        days_open = (as_of - age_from).days
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
            # an explanation that lapsed because the facts changed: the signal comes back,
            # like a re-opened one (issue 18)
            is_new=(opened_on > new_after and not baseline)
            or (lapsed_on is not None and lapsed_on > new_after),
            reopened=bool(reopened) or lapsed_on is not None,
            escalated=escalated,
            escalates_on=escalates_on,
            expected_action=meta.expected_action,
            link=link(case_ref),
            score=score(severity, days_open, escalated, case_bonus.get(case_ref, 0)),
            explanation_expired=until is not None and until < as_of,
            explanation_lapsed=lapsed_on is not None,
            mail_code=meta.mail_code,
            baseline=baseline,
            kind=meta.kind,
            began_on=age_from if age_from != opened_on else None,
            since_label=meta.since_label if age_from != opened_on else "sinds",
            newly_escalated=escalated and escalated_on > new_after,
            covers=covers,
        )

    return line


OWN_MIN_CASES = 5
"""A case manager counts towards the team median with at least this many open cases."""
OWN_MIN_COLLEAGUES = 3
"""No team median over fewer case managers: a median of two would give away the other
one's figure, a team of one has none."""
OWN_WEEKS = 8
"""The period of the resolution figure of "Jouw cijfers"."""


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if len(values) >= OWN_MIN_COLLEAGUES else None


def own_figures(
    conn: sa.Connection,
    as_of: dt.date,
    rules: Mapping[str, RuleMeta],
    staff: Mapping[str, Mapping[str, Any]],
    open_cases: Mapping[str, int],
) -> dict[str, OwnFigures]:
    """ "Jouw cijfers" for every case manager (role ``regievoerder``) in ``staff``: their
    open signals per 10 open cases (``open_cases``, the run's count per case manager), the
    share of those signals escalated, and the median working days from opened to closed of
    their signals resolved by a change in the case over the last :data:`OWN_WEEKS` weeks;
    beside each, the median of the same figure over the case managers of their team (the
    staff file's team) with at least :data:`OWN_MIN_CASES` open cases, when there are at
    least :data:`OWN_MIN_COLLEAGUES` of them (else no median).

    An open signal here is one the lists show: open, not in its grace gap, not covered,
    not explained, not silenced, of an active rule. Two grouped queries; memory holds
    counts per case manager."""
    c = signals.c
    active = sorted(rules)
    counts: dict[str, tuple[int, int]] = {}
    for manager, n, escalated in conn.execute(
        sa.select(c.regievoerder, sa.func.count(), sa.func.count(c.escalated_on))
        .where(
            c.closed_on.is_(None),
            c.gap_since.is_(None),
            c.covered_by.is_(None),
            c.rule_id.in_(active),
            sa.or_(c.explained_until.is_(None), c.explained_until < as_of),
            ~silenced_clause(signals, as_of),
        )
        .group_by(c.regievoerder)
    ):
        if manager:
            counts[str(manager)] = (int(n), int(escalated))
    start = as_of - dt.timedelta(days=7 * OWN_WEEKS - 1)
    spans: dict[str, Counter[int]] = {}
    for manager, opened_on, closed_on, n in conn.execute(
        sa.select(c.regievoerder, c.opened_on, c.closed_on, sa.func.count())
        .where(
            c.outcome == "resolved",
            c.closed_on >= start,
            c.closed_on <= as_of,
            c.rule_id.in_(active),
        )
        .group_by(c.regievoerder, c.opened_on, c.closed_on)
    ):
        if manager:
            days = working_days_between(opened_on, closed_on)
            spans.setdefault(str(manager), Counter())[days] += int(n)

    def figures_of(sid: str) -> Figures:
        n, escalated = counts.get(sid, (0, 0))
        cases = open_cases.get(sid, 0)
        days = sorted((spans.get(sid) or Counter()).elements())
        return Figures(
            per_10_cases=10 * n / cases if cases else None,
            share_escalated=escalated / n if n else None,
            median_working_days=float(statistics.median(days)) if days else None,
        )

    managers = {sid: m for sid, m in staff.items() if m.get("role") == "regievoerder"}
    own = {sid: figures_of(sid) for sid in managers}
    teams: dict[str, list[str]] = {}
    for sid, m in managers.items():
        if m.get("team") and open_cases.get(sid, 0) >= OWN_MIN_CASES:
            teams.setdefault(str(m["team"]), []).append(sid)
    medians: dict[str, Figures | None] = {}
    for team, members in teams.items():
        if len(members) < OWN_MIN_COLLEAGUES:
            medians[team] = None
            continue
        values = [own[sid] for sid in members]
        medians[team] = Figures(
            per_10_cases=_median([f.per_10_cases for f in values if f.per_10_cases is not None]),
            share_escalated=_median(
                [f.share_escalated for f in values if f.share_escalated is not None]
            ),
            median_working_days=_median(
                [f.median_working_days for f in values if f.median_working_days is not None]
            ),
        )
    out = {}
    for sid, m in managers.items():
        team = str(m.get("team") or "")
        median = medians.get(team)
        out[sid] = OwnFigures(
            own=own[sid],
            team=median,
            colleagues=len(teams.get(team, ())) if median is not None else 0,
            min_cases=OWN_MIN_CASES,
            weeks=OWN_WEEKS,
        )
    return out


RenderTask = tuple[str, str, dt.date, CaseManagerList, MailOptions, dt.date | None]
"""(staff id, address, as-of date, their list, mail options, "new" counted from)."""


def render_list(task: RenderTask) -> ComposedMessage:
    """Render one case manager's list (in a worker process of the run, or in this one)."""
    staff_id, email, as_of, found, mail_options, since = task
    return compose_case_manager(
        Recipient(staff_id, email),
        as_of,
        found.signal_lines(),
        mail_options,
        new_since=since,
        upcoming=found.upcoming,
        resolved=found.resolved,
        resolved_signals=found.resolved_signals,
        own=found.own,
    )
