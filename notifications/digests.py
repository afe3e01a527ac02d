"""From the signal store to what each recipient gets: signal lines and team digests.

Reads only the store (signals) plus what the run already knows (rule metadata, staff
directory, open cases per case manager). Nothing from a case plan reaches a message except
the pseudonymous case reference.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.dates import Duration, shift
from engine.prioritise import score
from engine.store import signals
from notifications.model import (
    SEVERITIES,
    EscalationLine,
    ManagerSummary,
    RuleCount,
    SignalLine,
    TeamDigest,
)

MAX_ESCALATIONS_IN_DIGEST = 50


@dataclass(frozen=True)
class RuleMeta:
    mail_title: str
    expected_action: str
    escalate_after: Duration | None


@dataclass
class Recipients:
    """Per case manager the lines of their message; problems found on the way."""

    lines: dict[str, list[SignalLine]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _open_signals(conn: sa.Connection, as_of: dt.date) -> list[Any]:
    c = signals.c
    return list(
        conn.execute(
            sa.select(
                c.case_ref,
                c.rule_id,
                c.severity,
                c.regievoerder,
                c.team,
                c.opened_on,
                c.reopened,
                c.escalated_on,
            )
            .where(c.closed_on.is_(None))
            .where(sa.or_(c.explained_until.is_(None), c.explained_until < as_of))
        )
    )


def case_manager_lines(
    conn: sa.Connection,
    as_of: dt.date,
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
    case_bonus: Mapping[str, int],
) -> Recipients:
    """The open, unexplained signals of every case manager, as message lines."""
    out = Recipients()
    no_manager = 0
    for row in _open_signals(conn, as_of):
        meta = rules.get(row.rule_id)
        if meta is None:
            continue  # the rule is no longer active; reconcile closed or will close it
        if not row.regievoerder:
            no_manager += 1
            continue
        days_open = (as_of - row.opened_on).days
        escalated = row.escalated_on is not None
        escalates_on = None
        if not escalated and meta.escalate_after is not None:
            escalates_on = shift(row.opened_on, meta.escalate_after, +1)
        out.lines.setdefault(row.regievoerder, []).append(
            SignalLine(
                case_ref=row.case_ref,
                rule_id=row.rule_id,
                mail_title=meta.mail_title,
                severity=row.severity,
                opened_on=row.opened_on,
                days_open=days_open,
                is_new=row.opened_on == as_of,
                reopened=bool(row.reopened),
                escalated=escalated,
                escalates_on=escalates_on,
                expected_action=meta.expected_action,
                link=link(row.case_ref),
                score=score(row.severity, days_open, escalated, case_bonus.get(row.case_ref, 0)),
            )
        )
    if no_manager:
        out.problems.append(f"{no_manager} signalen op zaken zonder regievoerder: geen ontvanger")
    return out


def period_start(as_of: dt.date, period: str) -> dt.date:
    return as_of - dt.timedelta(days=6) if period == "weekly" else as_of


def team_digests(
    conn: sa.Connection,
    as_of: dt.date,
    period: str,
    staff: Mapping[str, Mapping[str, Any]],
    open_cases: Mapping[str, int],
    rules: Mapping[str, RuleMeta],
    link: Callable[[str], str],
) -> dict[str, TeamDigest]:
    """One digest per team that has a team lead; keyed by team id."""
    start = period_start(as_of, period)
    c = signals.c
    teams_with_lead = {
        s["team"] for s in staff.values() if s.get("role") == "teamleider" and s.get("team")
    }
    members: dict[str, set[str]] = defaultdict(set)
    for sid, s in staff.items():
        if s.get("role") == "regievoerder" and s.get("team") in teams_with_lead:
            members[s["team"]].add(sid)

    open_sev: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    new: Counter[tuple[str, str]] = Counter()
    escalated: Counter[tuple[str, str]] = Counter()
    rule_open: dict[str, Counter[str]] = defaultdict(Counter)
    rule_new: dict[str, Counter[str]] = defaultdict(Counter)
    escalations: dict[str, list[EscalationLine]] = defaultdict(list)
    for row in _open_signals(conn, as_of):
        team, rv = row.team, row.regievoerder
        if team not in teams_with_lead or not rv or row.rule_id not in rules:
            continue
        members[team].add(rv)
        open_sev[(team, rv)][row.severity] += 1
        rule_open[team][row.rule_id] += 1
        if row.opened_on >= start:
            new[(team, rv)] += 1
            rule_new[team][row.rule_id] += 1
        if row.escalated_on is not None:
            escalated[(team, rv)] += 1
            escalations[team].append(
                EscalationLine(
                    row.case_ref,
                    row.rule_id,
                    rules[row.rule_id].mail_title,
                    (as_of - row.opened_on).days,
                    rv,
                    link(row.case_ref),
                )
            )
    resolved: Counter[tuple[str, str]] = Counter()
    for team, rv, n in conn.execute(
        sa.select(c.team, c.regievoerder, sa.func.count())
        .where(c.closed_on >= start, c.closed_on <= as_of, c.close_reason == "resolved")
        .group_by(c.team, c.regievoerder)
    ):
        if team in teams_with_lead and rv:
            members[team].add(rv)
            resolved[(team, rv)] += n
    previous: Counter[str] = Counter()
    for team, n in conn.execute(
        sa.select(c.team, sa.func.count())
        .where(c.opened_on < start, sa.or_(c.closed_on.is_(None), c.closed_on >= start))
        .group_by(c.team)
    ):
        previous[team] = n

    digests = {}
    for team in sorted(teams_with_lead):
        managers = [
            ManagerSummary(
                staff_id=rv,
                open_cases=open_cases.get(rv, 0),
                open_by_severity={s: open_sev[(team, rv)].get(s, 0) for s in SEVERITIES},
                new=new[(team, rv)],
                resolved=resolved[(team, rv)],
                escalated=escalated[(team, rv)],
            )
            for rv in sorted(members[team])
        ]
        rule_counts = [
            RuleCount(rid, rules[rid].mail_title, n, rule_new[team][rid])
            for rid, n in sorted(rule_open[team].items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        esc = sorted(escalations[team], key=lambda e: (-e.days_open, e.case_ref))
        digests[team] = TeamDigest(
            team=team,
            as_of=as_of,
            period="weekly" if period == "weekly" else "daily",
            managers=managers,
            rules=rule_counts,
            escalations=esc[:MAX_ESCALATIONS_IN_DIGEST],
            previous_open_signals=previous.get(team, 0),
        )
    return digests
