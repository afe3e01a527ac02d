"""From the signal store to what each recipient gets: signal lines and team digests.

Reads only the store (signals) plus what the run already knows (rule metadata, staff
directory, open cases per case manager). Nothing from a case plan reaches a message except
the pseudonymous case reference.

"New" means new since the reader's previous working day: a signal is new for the case
manager when it was opened after the previous working day (on a Monday: Saturday, Sunday
and Monday), and a daily digest's period runs from the day after the previous working
day up to the as-of date (a weekly digest's: the seven days up to the as-of date).

The digest's figures are all counted alike: signals of an active rule that fired on the
day counted (opened on or before it and last seen on or after it; a signal in its grace
gap, "tijdelijk afwezig", did not fire and is not counted), on a case with a case
manager, in a team with a team lead, without an explanation valid on the day counted.
The headline, the trend bars and the comparison with the day before the period all use
this one count, so they agree. The store keeps only a signal's latest explanation end
date, so for an earlier day a signal counts as explained when that end date had not yet
passed then.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.dates import Duration, add_working_days, is_working_day, shift
from engine.prioritise import score
from engine.store import signals
from notifications.compose import count_nl, team_label
from notifications.model import (
    SEVERITIES,
    SEVERITY_RANK,
    EscalationLine,
    ManagerSummary,
    RuleCount,
    SignalLine,
    TeamDigest,
    TrendPoint,
)

MAX_ESCALATIONS_IN_DIGEST = 50


@dataclass(frozen=True)
class RuleMeta:
    mail_title: str
    expected_action: str
    escalate_after: Duration | None
    mail_code: str = ""


@dataclass
class Recipients:
    """Per case manager the lines of their message; problems found on the way."""

    lines: dict[str, list[SignalLine]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class TeamDigests:
    """The digest of every team with a team lead, keyed by team id; problems found."""

    digests: dict[str, TeamDigest] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


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


def new_since(last_reached: dt.date | None, as_of: dt.date) -> dt.date | None:
    """The date a case manager's "nieuw" counts from when it is not the usual one: the
    as-of date of the last list that reached them, unless that was the previous working
    day (the usual case) or they never got one (None)."""
    if last_reached is None or last_reached == previous_working_day(as_of):
        return None
    return last_reached


def missed_digest_starts(
    as_of: dt.date,
    period: str,
    is_digest_day: Callable[[dt.date], bool],
    staff: Mapping[str, Mapping[str, Any]],
    last_sent: Mapping[str, dt.date],
) -> dict[str, dt.date]:
    """Catch-up for team digests: per team whose lead missed a digest, the first day the
    next digest must cover (the day after the last digest that reached the lead).

    A digest is missed when a digest day (for a daily digest: a working day) lies after
    the last sent digest and before ``as_of``, with no digest sent for it (a failed run, no
    run, or mail that never went out). A lead who never got a digest has nothing to
    catch up. The returned teams get a digest with the next run even on a day that is not
    a digest day.
    """
    out: dict[str, dt.date] = {}
    for lead, member in staff.items():
        team = member.get("team")
        if member.get("role") != "teamleider" or not team or lead not in last_sent:
            continue
        after = last_sent[lead]
        day = after + dt.timedelta(days=1)
        missed = False
        while day < as_of:
            due = is_digest_day(day) and (period == "weekly" or is_working_day(day))
            if due:
                missed = True
                break
            day += dt.timedelta(days=1)
        if missed:
            start = after + dt.timedelta(days=1)
            out[team] = min(start, out.get(team, start))
    return out


def explained_on(explained_until: dt.date | None, day: dt.date) -> bool:
    """An explanation is in force up to and including its end date."""
    return explained_until is not None and explained_until >= day


def _open_signals(conn: sa.Connection) -> Iterator[Any]:
    """Every open signal episode not in a gap, explained or not, one row at a time (the
    caller must not write on ``conn`` meanwhile), as a tuple (team, regievoerder,
    rule_id, severity, opened_on, escalated_on, explained_until, baseline, case_ref):
    only what a digest counts, read by position (issue 11).

    A signal in a gap (``gap_since`` set: it did not fire today but is inside the grace
    period) keeps its history but is not shown."""
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
    ).where(c.closed_on.is_(None), c.gap_since.is_(None))
    # a server-side cursor on PostgreSQL: the driver would otherwise fetch every row at once
    yield from conn.execute(stmt.execution_options(yield_per=STREAM_ROWS))


def is_baseline(row: Any) -> bool:
    """Whether a signal row is a baseline finding (first night of the product or of its
    rule)."""
    return bool(row._mapping.get("baseline", False))


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


STREAM_ROWS = 5000
"""Rows fetched at a time when the open signals are read in one pass."""

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


TREND_PERIODS = 8
"""How many periods the digest's trend shows (the current one included)."""


def trend_days(as_of: dt.date, period: str, n: int = TREND_PERIODS) -> list[dt.date]:
    """The last day of each of the last ``n`` periods, oldest first: working days for a
    daily digest (the as-of date itself last), weeks for a weekly one."""
    if period == "weekly":
        return [as_of - dt.timedelta(days=7 * k) for k in range(n - 1, -1, -1)]
    days = [as_of]
    while len(days) < n:
        days.append(previous_working_day(days[-1]))
    return days[::-1]


def team_digests(
    conn: sa.Connection,
    as_of: dt.date,
    period: str,
    staff: Mapping[str, Mapping[str, Any]],
    open_cases: Mapping[str, int],
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
    *,
    period_starts: Mapping[str, dt.date] | None = None,
    staff_names: bool = True,
) -> TeamDigests:
    """One digest per team that has a team lead; open signals of a team without a team
    lead (or without a team) are reported as problems, since no digest shows them.

    ``period_starts`` moves a team's period start back (catch-up: the first day after
    the last digest that was sent, when a digest day was missed); such a digest has
    ``missed_since`` set. ``staff_names``: case managers carry their display name.
    """
    default_start = period_start(as_of, period)
    starts = {t: min(d, default_start) for t, d in (period_starts or {}).items()}
    c = signals.c
    teams_with_lead = {
        s["team"] for s in staff.values() if s.get("role") == "teamleider" and s.get("team")
    }
    members: dict[str, set[str]] = defaultdict(set)
    for sid, s in staff.items():
        if s.get("role") == "regievoerder" and s.get("team") in teams_with_lead:
            members[s["team"]].add(sid)

    open_sev: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    ages: dict[tuple[str, str], list[int]] = defaultdict(list)
    new: Counter[tuple[str, str]] = Counter()
    escalated: Counter[tuple[str, str]] = Counter()
    explained: Counter[tuple[str, str]] = Counter()
    rule_open: dict[str, Counter[str]] = defaultdict(Counter)
    rule_new: dict[str, Counter[str]] = defaultdict(Counter)
    escalations: dict[str, list[EscalationLine]] = defaultdict(list)
    without_lead: Counter[str] = Counter()
    for (
        team,
        rv,
        rule_id,
        severity,
        opened_on,
        escalated_on,
        until,
        baseline,
        case_ref,
    ) in _open_signals(conn):
        if not rv or rule_id not in rules:
            continue  # no case manager: reported by case_manager_lines
        is_explained = until is not None and until >= as_of  # explained_on(until, as_of)
        if team not in teams_with_lead:
            if not is_explained:
                without_lead[team or ""] += 1
            continue
        members[team].add(rv)
        if is_explained:
            explained[(team, rv)] += 1
            continue
        open_sev[(team, rv)][severity] += 1
        ages[(team, rv)].append((as_of - opened_on).days)
        rule_open[team][rule_id] += 1
        if opened_on >= starts.get(team, default_start) and not baseline:
            new[(team, rv)] += 1
            rule_new[team][rule_id] += 1
        if escalated_on is not None:
            escalated[(team, rv)] += 1
            meta = rules[rule_id]
            escalations[team].append(
                EscalationLine(
                    case_ref,
                    rule_id,
                    meta.mail_title,
                    (as_of - opened_on).days,
                    rv,
                    link(case_ref),
                    severity=severity,
                    mail_code=meta.mail_code,
                )
            )
    earliest = min([default_start, *starts.values()])
    resolved: Counter[tuple[str, str]] = Counter()
    for team, rv, closed_on, n in conn.execute(
        sa.select(c.team, c.regievoerder, c.closed_on, sa.func.count())
        .where(
            c.closed_on >= earliest,
            c.closed_on <= as_of,
            c.close_reason == "resolved",
            c.rule_id.in_(sorted(rules)),
        )
        .group_by(c.team, c.regievoerder, c.closed_on)
    ):
        if team in teams_with_lead and rv and closed_on >= starts.get(team, default_start):
            members[team].add(rv)
            resolved[(team, rv)] += n
    previous = _previous_open(conn, default_start, teams_with_lead, rules)
    days = trend_days(as_of, period)
    trend = _open_at(conn, days, teams_with_lead, rules)

    out = TeamDigests()
    for team in sorted(teams_with_lead):
        managers = [
            ManagerSummary(
                staff_id=rv,
                open_cases=open_cases.get(rv, 0),
                open_by_severity={s: open_sev[(team, rv)].get(s, 0) for s in SEVERITIES},
                new=new[(team, rv)],
                resolved=resolved[(team, rv)],
                escalated=escalated[(team, rv)],
                explained=explained[(team, rv)],
                name=_own_name(staff, rv, team) if staff_names else None,
                median_age_days=(
                    float(statistics.median(ages[(team, rv)])) if ages[(team, rv)] else None
                ),
                trend=tuple(trend[(team, rv)].get(d, 0) for d in days),
            )
            for rv in sorted(members[team])
        ]
        rule_counts = [
            RuleCount(rid, rules[rid].mail_title, n, rule_new[team][rid], rules[rid].mail_code)
            for rid, n in sorted(rule_open[team].items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        esc = sorted(escalations[team], key=escalation_key)
        team_trend = Counter[dt.date]()
        for (t, _), per_day in trend.items():
            if t == team:
                team_trend.update(per_day)
        out.digests[team] = TeamDigest(
            team=team,
            as_of=as_of,
            period="weekly" if period == "weekly" else "daily",
            managers=managers,
            rules=rule_counts,
            escalations=esc[:MAX_ESCALATIONS_IN_DIGEST],
            previous_open_signals=None if previous is None else previous.get(team, 0),
            escalations_total=len(esc),
            period_start=starts.get(team, default_start),
            trend=tuple(TrendPoint(d, team_trend.get(d, 0)) for d in days),
            missed_since=starts[team] if starts.get(team, default_start) < default_start else None,
        )
    for team, n in sorted(without_lead.items(), key=lambda kv: (not kv[0], kv[0])):
        stand = "staat" if n == 1 else "staan"
        signals_text = f"{count_nl(n, 'open signaal', 'open signalen')} {stand}"
        if team:
            out.problems.append(
                f"{team_label(team)} heeft geen teamleider in het medewerkersbestand: "
                f"{signals_text} in geen enkel teamoverzicht; "
                "leg een teamleider voor dit team vast"
            )
        else:
            out.problems.append(
                f"{count_nl(n, 'open signaal', 'open signalen')} op zaken zonder team {stand} "
                "in geen enkel teamoverzicht; vul het team van deze zaken aan in het zaaksysteem"
            )
    return out


def _own_name(staff: Mapping[str, Mapping[str, Any]], staff_id: str, team: str) -> str | None:
    """The display name of a case manager of ``team`` itself; None for anyone else (a
    case manager of another team whose case is in this team is shown by id only)."""
    member = staff.get(staff_id) or {}
    if member.get("role") != "regievoerder" or member.get("team") != team:
        return None
    return str(member.get("name") or "").strip() or None


def escalation_key(e: EscalationLine) -> tuple[Any, ...]:
    """Escalations in the digest: most severe first, then the oldest."""
    return (-SEVERITY_RANK.get(e.severity, -1), -e.days_open, e.case_ref, e.rule_id)


def _open_at(
    conn: sa.Connection, days: list[dt.date], teams: set[str], rules: Mapping[str, RuleMeta]
) -> dict[tuple[str, str], Counter[dt.date]]:
    """Per (team, case manager) the signals that fired on each of ``days``, counted like
    the digest's open figures (an explanation counts as in force on a day when its
    end date, the latest the store keeps, had not passed then)."""
    c = signals.c
    first = min(days)
    stmt = sa.select(c.team, c.regievoerder, c.opened_on, c.last_seen_on, c.explained_until).where(
        c.opened_on <= max(days),
        c.last_seen_on >= first,
        c.regievoerder.is_not(None),
        c.regievoerder != "",
        c.rule_id.in_(sorted(rules)),
        c.team.in_(sorted(teams)),
    )
    out: dict[tuple[str, str], Counter[dt.date]] = defaultdict(Counter)
    for team, rv, opened_on, last_seen_on, until in conn.execute(stmt):
        for day in days:
            fired = opened_on <= day <= last_seen_on
            if fired and not explained_on(until, day):
                out[(team, rv)][day] += 1
    return out


def _previous_open(
    conn: sa.Connection, start: dt.date, teams: set[str], rules: Mapping[str, RuleMeta]
) -> Counter[str] | None:
    """Per team the open signals at the end of the day before ``start``, counted like
    the open figures of the digest; None when no signal was opened before ``start``
    (the first run: there is nothing to compare with)."""
    c = signals.c
    if conn.execute(sa.select(c.id).where(c.opened_on < start).limit(1)).first() is None:
        return None
    day = start - dt.timedelta(days=1)
    stmt = (
        sa.select(c.team, sa.func.count())
        .where(
            c.opened_on <= day,
            c.last_seen_on >= day,  # fired that day (see the module docstring)
            sa.or_(c.explained_until.is_(None), c.explained_until < day),
            c.regievoerder.is_not(None),
            c.regievoerder != "",
            c.rule_id.in_(sorted(rules)),
            c.team.in_(sorted(teams)),
        )
        .group_by(c.team)
    )
    return Counter({str(team): int(n) for team, n in conn.execute(stmt)})
