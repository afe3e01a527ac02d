"""The team lead's digest as a message: headline counts, escalations, trend, per case manager.

Renders a ``model.TeamDigest`` (built by ``notifications.team_digest``) with the
``team_digest`` templates.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from regiesignaal.notifications.compose.model import (
    SEVERITIES,
    EscalationCounts,
    EscalationLine,
    Recipient,
    TeamDigest,
)
from regiesignaal.notifications.compose.render import (
    DEFAULT_OPTIONS,
    PERIOD_NL,
    SEVERITY_NL,
    MailOptions,
    count_nl,
    format_date,
    format_days,
    format_ratio,
    render_template,
    safe_link,
    team_label,
)
from regiesignaal.notifications.delivery.message import ComposedMessage


def _severity_cells(by_severity: dict[str, int]) -> list[dict[str, Any]]:
    """Counts per severity, most severe first."""
    return [
        {"key": name, "label": SEVERITY_NL[name], "count": by_severity.get(name, 0)}
        for name in reversed(SEVERITIES)
    ]


def _severity_text(by_severity: dict[str, int]) -> str:
    """E.g. ``kritiek 0, hoog 2, middel 0, laag 3``."""
    return ", ".join(f"{c['label']} {c['count']}" for c in _severity_cells(by_severity))


def team_digest_subject(digest: TeamDigest) -> str:
    totals = digest.totals
    return (
        f"Regiesignaal {PERIOD_NL.get(digest.period, 'overzicht')} {team_label(digest.team)} "
        f"{format_date(digest.as_of)}: {totals.open_signals} open, {totals.new} nieuw, "
        f"{totals.escalated} nu geëscaleerd"
    )


def period_label(digest: TeamDigest) -> str:
    """Which days 'new' and 'resolved' cover: ``vandaag``, ``sinds 28-11-2026`` (a
    daily digest after a weekend or holiday) or ``afgelopen week``."""
    if digest.period == "weekly":
        return "afgelopen week"
    if digest.period_start is None or digest.period_start >= digest.as_of:
        return "vandaag"
    return f"sinds {format_date(digest.period_start)}"


def _counts_view(
    open_signals: int, open_cases: int, ratio: float | None, by_severity: dict[str, int]
) -> dict[str, Any]:
    return {
        "open_cases": open_cases,
        "open_signals": open_signals,
        "signals_text": count_nl(open_signals, "open signaal", "open signalen"),
        "cases_text": count_nl(open_cases, "zaak", "zaken"),
        "by_severity": _severity_cells(by_severity),
        "severity_text": _severity_text(by_severity),
        "per_10": format_ratio(ratio),
    }


BAR_MAX_PX = 28


AGE_BUCKETS: tuple[tuple[int, str], ...] = (
    (14, "tot 2 weken"),
    (28, "2 tot 4 weken"),
    (91, "1 tot 3 maanden"),
    (10**9, "langer dan 3 maanden"),
)
"""How old the gap of an escalation is (days), for the counts of the ones not shown."""


def _trend_view(points: Sequence[tuple[dt.date, int]]) -> dict[str, Any]:
    """Bars for a trend, scaled to the range of the counts (the lowest gets a short bar,
    the highest the full width, so a change shows), with the counts beside them and a text
    alternative; per point a label, the count, a width in percent and a height in px."""
    counts = [n for _, n in points]
    low, high = min(counts, default=0), max(counts, default=0)
    span = high - low

    def scaled(n: int, full: int) -> int:
        if not high:
            return 0
        if not span:
            return full
        return max(1, round(full * (0.1 + 0.9 * (n - low) / span)))

    bars = [
        {
            "label": day.strftime("%d-%m"),
            "count": n,
            "pct": scaled(n, 100),
            "px": scaled(n, BAR_MAX_PX),
        }
        for day, n in points
    ]
    text = ", ".join(f"{b['label']}: {b['count']}" for b in bars)
    return {"bars": bars, "text": text, "max_px": BAR_MAX_PX, "low": low, "high": high}


def _manager_label(staff_id: str, name: str | None) -> str:
    return f"{name} ({staff_id})" if name else staff_id


def _escalation_view(
    e: EscalationLine, options: MailOptions, names: dict[str, str]
) -> dict[str, Any]:
    return {
        "case_ref": e.case_ref,
        "link": safe_link(e.link),
        # minimal detail: an escalation names only the case, not what it is about
        "mail_title": e.mail_title if options.detail == "full" else "",
        "mail_code": e.mail_code if options.detail == "full" else "",
        "severity": SEVERITY_NL.get(e.severity, e.severity),
        "severity_key": e.severity if e.severity in SEVERITY_NL else "low",
        "days_open": format_days(e.days_open),
        "manager": names.get(e.regievoerder, "") if options.compare_case_managers else "",
    }


def rest_counts(rest: EscalationCounts) -> dict[str, list[tuple[str, int]]]:
    """The escalations not shown in full, counted per age of the gap and per location (most
    first); never per case manager. (Per signal they are counted in "Per signaal".)"""
    by_age: Counter[str] = Counter()
    by_location: Counter[str] = Counter()
    for days, n in rest.by_days.items():
        by_age[next(label for limit, label in AGE_BUCKETS if days < limit)] += n
    for location, n in rest.by_location.items():
        by_location[location or "(geen locatie)"] += n
    ages = [(label, by_age[label]) for _, label in AGE_BUCKETS if by_age[label]]
    return {
        "age": ages,
        "location": sorted(by_location.items(), key=lambda kv: (-kv[1], kv[0])),
    }


def compose_team_digest(
    recipient: Recipient, digest: TeamDigest, options: MailOptions = DEFAULT_OPTIONS
) -> ComposedMessage:
    """The digest for a team lead (``recipient``).

    The team's patterns: open signals by severity, new and resolved, the trend; per
    signal; the ``escalations_shown`` most urgent escalations in full (those escalated
    since the last digest first, then the most severe, then the oldest) and the rest as
    counts per signal, age and location. Case managers appear only when
    ``compare_case_managers`` is on (a personnel monitoring system under WOR art.
    27(1)(l): never the default), by staff id and, with ``staff_names``, display name;
    even then nobody is ranked or marked.
    """
    del recipient  # nothing about the recipient appears in the message
    totals = digest.totals
    compare = options.compare_case_managers
    managers = sorted(digest.managers, key=lambda m: m.staff_id) if compare else []
    names = {
        m.staff_id: _manager_label(m.staff_id, m.name if options.staff_names else None)
        for m in digest.managers
    }
    trend: str | None = None
    if digest.previous_open_signals is not None:
        previous = digest.previous_open_signals
        diff = totals.open_signals - previous
        if diff == 0:
            trend = f"gelijk aan de vorige periode ({previous})"
        else:
            trend = f"{diff:+d} ten opzichte van de vorige periode ({previous})"
    rules = sorted(digest.rules, key=lambda r: (-r.open, -r.new, r.mail_title, r.mail_code))
    shown = digest.escalations[: options.escalations_shown]
    # the rest: the listed ones past those shown, and those the digest only counted
    rest = EscalationCounts().add(digest.escalations[options.escalations_shown :])
    if digest.escalations_rest is not None:
        rest.update(digest.escalations_rest)
    rest_by_rule = rest.by_rule
    period_days = [p.day for p in digest.trend]
    context: dict[str, Any] = {
        "team": team_label(digest.team),
        "as_of": format_date(digest.as_of),
        "period_title": PERIOD_NL.get(digest.period, "overzicht"),
        "period_label": period_label(digest),
        "missed_since": format_date(digest.missed_since) if digest.missed_since else "",
        "severities": [{"key": n, "label": SEVERITY_NL[n]} for n in reversed(SEVERITIES)],
        "compare": compare,
        "managers": [
            {
                "label": names[m.staff_id],
                **_counts_view(
                    m.open_signals, m.open_cases, m.signals_per_10_cases, m.open_by_severity
                ),
                "new": m.new,
                "resolved": m.resolved,
                "escalated": m.escalated,
                "explained": m.explained,
                "median_age": (
                    "–" if m.median_age_days is None else format_days(round(m.median_age_days))
                ),
                "trend": _trend_view(list(zip(period_days, m.trend, strict=False)))
                if m.trend and period_days
                else None,
            }
            for m in managers
        ],
        "totals": {
            **_counts_view(
                totals.open_signals,
                totals.open_cases,
                totals.signals_per_10_cases,
                totals.open_by_severity,
            ),
            "new": totals.new,
            "resolved": totals.resolved,
            "escalated": totals.escalated,
            "explained": totals.explained,
            "silenced": digest.silenced,
        },
        "trend": trend,
        "team_trend": _trend_view([(p.day, p.open_signals) for p in digest.trend])
        if digest.trend
        else None,
        "trend_unit": "week" if digest.period == "weekly" else "werkdag",
        "rules": [
            {
                "mail_title": r.mail_title,
                "mail_code": r.mail_code,
                "open": r.open,
                "new": r.new,
                "escalated": rest_by_rule[r.rule_id],
            }
            for r in rules
        ],
        "escalations": [_escalation_view(e, options, names) for e in shown],
        "escalations_total": len(shown) + rest.total,
        "escalations_shown": len(shown),
        "escalations_more": rest.total,
        "rest": rest_counts(rest) if rest.total else None,
    }
    subject = team_digest_subject(digest)
    context["subject"] = subject
    return ComposedMessage(
        subject=subject,
        text=render_template("team_digest.txt", context, options.templates_dir),
        html=render_template("team_digest.html", context, options.templates_dir),
    )
