"""The team lead's digest: which teams get one, when, and what it counts.

The digest's figures are all counted alike: signals of an active rule that fired on the
day counted (opened on or before it and last seen on or after it; a signal in its grace
gap, "tijdelijk afwezig", did not fire and is not counted), on a case with a case
manager, in a team with a team lead, without an explanation valid on the day counted.
The headline, the trend bars and the comparison with the day before the period all use
this one count, so they agree. The store keeps only a signal's latest explanation end
date, so for an earlier day a signal counts as explained when that end date had not yet
passed then. Rendered by ``notifications.compose.team_digest``.
"""

from __future__ import annotations

import datetime as dt
import statistics
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import is_working_day
from regiesignaal.engine.store.silences import active_silences, silencing
from regiesignaal.engine.store.tables import runs, signals
from regiesignaal.notifications.compose.model import (
    SEVERITIES,
    SEVERITY_RANK,
    EscalationCounts,
    EscalationLine,
    ManagerSummary,
    Recipient,
    RuleCount,
    TeamDigest,
    TrendPoint,
)
from regiesignaal.notifications.compose.render import MailOptions, count_nl, team_label
from regiesignaal.notifications.compose.team_digest import compose_team_digest
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.shared import (
    RuleMeta,
    explained_on,
    open_signals,
    period_start,
    previous_working_day,
)


@dataclass
class TeamDigests:
    """The digest of every team with a team lead, keyed by team id; problems found."""

    digests: dict[str, TeamDigest] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


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
    escalations_kept: int | None = None,
) -> TeamDigests:
    """One digest per team that has a team lead; open signals of a team without a team
    lead (or without a team) are reported as problems, since no digest shows them.

    ``period_starts`` moves a team's period start back (catch-up: the first day after
    the last digest that was sent, when a digest day was missed); such a digest has
    ``missed_since`` set. ``staff_names``: case managers carry their display name.
    ``escalations_kept``: list only this many of a team's escalations, the most urgent
    (``escalation_key``), and count the rest (``TeamDigest.escalations_rest``); None:
    list all. Memory then holds at most a few times that many lines per team, however
    many signals are escalated.
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

    # open signals per severity (in the order of SEVERITIES) per (team, case manager): a
    # list of four ints, a quarter of a Counter's memory (16,667 of them at a million cases)
    open_sev: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(SEVERITIES))
    # the age in days of every open signal per (team, case manager), four bytes each: as
    # lists of ints or counts per number of days they were 30 MB at a million cases (issue 19)
    ages: dict[tuple[str, str], array[int]] = defaultdict(lambda: array("i"))
    new: Counter[tuple[str, str]] = Counter()
    escalated: Counter[tuple[str, str]] = Counter()
    explained: Counter[tuple[str, str]] = Counter()
    rule_open: dict[str, Counter[str]] = defaultdict(Counter)
    rule_new: dict[str, Counter[str]] = defaultdict(Counter)
    escalations: dict[str, list[EscalationLine]] = defaultdict(list)
    cut: dict[str, EscalationCounts] = {}  # per team the escalations cut from the list

    def most_urgent(team: str) -> list[EscalationLine]:
        """The team's listed escalations in order, cut to ``escalations_kept``; what is cut
        is counted in ``cut``."""
        team_start = starts.get(team, default_start)
        kept = sorted(escalations[team], key=lambda e: escalation_key(e, team_start))
        if escalations_kept is not None and len(kept) > escalations_kept:
            cut.setdefault(team, EscalationCounts()).add(kept[escalations_kept:])
            del kept[escalations_kept:]
        return kept

    without_lead: Counter[str] = Counter()
    silenced: Counter[str] = Counter()
    in_force = active_silences(conn, as_of)
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
        began_on,
        location,
    ) in open_signals(conn):
        if not rv or rule_id not in rules:
            continue  # no case manager: reported by case_manager_lines
        is_explained = until is not None and until >= as_of  # explained_on(until, as_of)
        if team not in teams_with_lead:
            if not is_explained:
                without_lead[team or ""] += 1
            continue
        members[team].add(rv)
        if in_force and silencing(in_force, rule_id, team, location) is not None:
            silenced[team] += 1  # kept out of the lists and escalations (issue 18)
            continue
        if is_explained:
            explained[(team, rv)] += 1
            continue
        if severity in SEVERITY_RANK:  # the rank is the index in SEVERITIES
            open_sev[(team, rv)][SEVERITY_RANK[severity]] += 1
        age_from = began_on if began_on is not None and began_on <= as_of else opened_on
        ages[(team, rv)].append((as_of - age_from).days)
        rule_open[team][rule_id] += 1
        if opened_on >= starts.get(team, default_start) and not baseline:
            new[(team, rv)] += 1
            rule_new[team][rule_id] += 1
        if escalated_on is not None:
            escalated[(team, rv)] += 1
            meta = rules[rule_id]
            line = EscalationLine(
                case_ref,
                rule_id,
                meta.mail_title,
                (as_of - age_from).days,
                rv,
                link(case_ref),
                severity=severity,
                mail_code=meta.mail_code,
                escalated_on=escalated_on,
                location=location,
            )
            listed = escalations[team]
            listed.append(line)
            if escalations_kept is not None and len(listed) >= 4 * escalations_kept + 256:
                escalations[team] = most_urgent(team)  # cut back now and then
    earliest = min([default_start, *starts.values()])
    resolved: Counter[tuple[str, str]] = Counter()
    for team, rv, closed_on, n in conn.execute(
        sa.select(c.team, c.regievoerder, c.closed_on, sa.func.count())
        .where(
            c.closed_on >= earliest,
            c.closed_on <= as_of,
            c.close_reason == "resolved",
            c.rule_id.in_(sorted(rules)),
            c.shadow.is_(False),  # a shadow rule's signals are in no digest (issue 18)
        )
        .group_by(c.team, c.regievoerder, c.closed_on)
    ):
        if team in teams_with_lead and rv and closed_on >= starts.get(team, default_start):
            members[team].add(rv)
            resolved[(team, rv)] += n
    previous = _previous_open(conn, default_start, teams_with_lead, rules)
    first = conn.execute(
        sa.select(sa.func.min(runs.c.as_of)).where(runs.c.status.in_(("succeeded", "running")))
    ).scalar()
    # no bars for days before the product's first night: nothing was counted then
    days = [d for d in trend_days(as_of, period) if first is None or d >= first]
    trend = _open_at(conn, days, teams_with_lead, rules)

    team_trends: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for (t, _), per_day in trend.items():
        team_trends[t] = [a + b for a, b in zip(team_trends[t], per_day, strict=True)]

    out = TeamDigests()
    for team in sorted(teams_with_lead):
        managers = [
            ManagerSummary(
                staff_id=rv,
                open_cases=open_cases.get(rv, 0),
                open_by_severity=dict(zip(SEVERITIES, open_sev[(team, rv)], strict=True)),
                new=new[(team, rv)],
                resolved=resolved[(team, rv)],
                escalated=escalated[(team, rv)],
                explained=explained[(team, rv)],
                name=_own_name(staff, rv, team) if staff_names else None,
                median_age_days=(
                    float(statistics.median(ages[(team, rv)])) if ages[(team, rv)] else None
                ),
                trend=tuple(trend[(team, rv)]) if (team, rv) in trend else (0,) * len(days),
            )
            for rv in sorted(members[team])
        ]
        rule_counts = [
            RuleCount(rid, rules[rid].mail_title, n, rule_new[team][rid], rules[rid].mail_code)
            for rid, n in sorted(rule_open[team].items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        esc = most_urgent(team)
        rest = cut.get(team)
        team_trend = team_trends[team]
        out.digests[team] = TeamDigest(
            team=team,
            as_of=as_of,
            period="weekly" if period == "weekly" else "daily",
            managers=managers,
            rules=rule_counts,
            escalations=esc,
            previous_open_signals=None if previous is None else previous.get(team, 0),
            escalations_total=len(esc) + (rest.total if rest is not None else 0),
            period_start=starts.get(team, default_start),
            trend=tuple(TrendPoint(d, n) for d, n in zip(days, team_trend, strict=True)),
            missed_since=starts[team] if starts.get(team, default_start) < default_start else None,
            silenced=silenced[team],
            escalations_rest=rest,
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


def escalation_key(e: EscalationLine, period_start: dt.date | None = None) -> tuple[Any, ...]:
    """Escalations in the digest: the ones escalated since the last digest (on or after
    ``period_start``) first, then the most severe, then the oldest gap, by case reference."""
    fresh = (
        period_start is not None and e.escalated_on is not None and (e.escalated_on >= period_start)
    )
    return (not fresh, -SEVERITY_RANK.get(e.severity, -1), -e.days_open, e.case_ref, e.rule_id)


def _open_at(
    conn: sa.Connection, days: list[dt.date], teams: set[str], rules: Mapping[str, RuleMeta]
) -> dict[tuple[str, str], list[int]]:
    """Per (team, case manager) the signals that fired on each of ``days`` (a count per
    day, in the order of ``days``), counted like
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
        c.covered_by.is_(None),  # a covered signal counts with the one covering it
        c.shadow.is_(False),
    )
    out: dict[tuple[str, str], list[int]] = {}
    for team, rv, opened_on, last_seen_on, until in conn.execute(stmt):
        for i, day in enumerate(days):
            fired = opened_on <= day <= last_seen_on
            if fired and not explained_on(until, day):
                per_day = out.get((team, rv))
                if per_day is None:
                    per_day = out[(team, rv)] = [0] * len(days)
                per_day[i] += 1
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
            c.covered_by.is_(None),
            c.shadow.is_(False),
        )
        .group_by(c.team)
    )
    return Counter({str(team): int(n) for team, n in conn.execute(stmt)})


RenderTask = tuple[str, str, TeamDigest, MailOptions]
"""(team lead's staff id, address, digest, mail options): one digest."""


def render_digest(task: RenderTask) -> ComposedMessage:
    """Render one team lead's digest (in a worker process of the run, or in this one)."""
    lead, email, digest, mail_options = task
    return compose_team_digest(Recipient(lead, email), digest, mail_options)
