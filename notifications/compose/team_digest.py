"""The team lead's digest as a message: headline counts, escalations, trend, per case manager.

Renders a ``model.TeamDigest`` (built by ``notifications.team_digest``) with the
``team_digest`` templates.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from typing import Any

from regiesignaal.notifications.compose.model import (
    SEVERITIES,
    SEVERITY_RANK,
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


OUTLIER_FACTOR = 1.5
"""A case manager is marked as differing from the team when their signals per 10 open
cases lie below Q1 - 1.5 x IQR or above Q3 + 1.5 x IQR of the team (Tukey's fences;
quartiles over the case managers with open cases, at least ``OUTLIER_MIN_MANAGERS``)."""


OUTLIER_MIN_MANAGERS = 4


def outlier_marks(values: Sequence[float | None]) -> list[str]:
    """Per value ``"hoog"``, ``"laag"`` or ``""``: outside the team's fences (see
    ``OUTLIER_FACTOR``); all ``""`` with fewer than ``OUTLIER_MIN_MANAGERS`` values."""
    known = sorted(v for v in values if v is not None)
    if len(known) < OUTLIER_MIN_MANAGERS:
        return ["" for _ in values]
    q1, _, q3 = statistics.quantiles(known, n=4, method="inclusive")
    low = q1 - OUTLIER_FACTOR * (q3 - q1)
    high = q3 + OUTLIER_FACTOR * (q3 - q1)
    marks = []
    for v in values:
        if v is None:
            marks.append("")
        elif v > high + 1e-9:
            marks.append("hoog")
        elif v < low - 1e-9:
            marks.append("laag")
        else:
            marks.append("")
    return marks


BAR_MAX_PX = 28


def _trend_view(points: Sequence[tuple[dt.date, int]]) -> dict[str, Any]:
    """Bars for a trend: per point a label, the count, a width in percent (horizontal
    bars) and a height in px (small vertical bars), plus a text alternative."""
    top = max((n for _, n in points), default=0)
    bars = [
        {
            "label": day.strftime("%d-%m"),
            "count": n,
            "pct": max(1, round(100 * n / top)) if top and n else 0,
            "px": max(1, round(BAR_MAX_PX * n / top)) if top and n else 0,
        }
        for day, n in points
    ]
    text = ", ".join(f"{b['label']}: {b['count']}" for b in bars)
    return {"bars": bars, "text": text, "max_px": BAR_MAX_PX}


def _manager_label(staff_id: str, name: str | None) -> str:
    return f"{name} ({staff_id})" if name else staff_id


def compose_team_digest(
    recipient: Recipient, digest: TeamDigest, options: MailOptions = DEFAULT_OPTIONS
) -> ComposedMessage:
    """The digest for a team lead (``recipient``).

    Case managers appear by staff id, with their display name when
    ``options.staff_names``; escalations most severe first, then oldest, grouped per
    case manager; a trend of the last periods as bars with a text alternative.
    """
    del recipient  # nothing about the recipient appears in the message
    totals = digest.totals
    managers = sorted(digest.managers, key=lambda m: m.staff_id)
    marks = outlier_marks([m.signals_per_10_cases for m in managers])
    names = {
        m.staff_id: _manager_label(m.staff_id, m.name if options.staff_names else None)
        for m in managers
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
    escalations = sorted(
        digest.escalations,
        key=lambda e: (-SEVERITY_RANK.get(e.severity, -1), -e.days_open, e.case_ref, e.rule_id),
    )
    esc_total = {m.staff_id: m.escalated for m in managers}
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in escalations:
        groups.setdefault(e.regievoerder, []).append(
            {
                "case_ref": e.case_ref,
                "link": safe_link(e.link),
                # minimal detail: an escalation names only the case, not what it is about
                "mail_title": e.mail_title if options.detail == "full" else "",
                "mail_code": e.mail_code if options.detail == "full" else "",
                "severity": SEVERITY_NL.get(e.severity, e.severity),
                "severity_key": e.severity if e.severity in SEVERITY_NL else "low",
                "days_open": format_days(e.days_open),
            }
        )
    escalation_groups = [
        {
            "manager": names.get(rv, rv),
            "shown": len(items),
            "total": max(esc_total.get(rv, 0), len(items)),
            "hidden": max(0, esc_total.get(rv, 0) - len(items)),
            "escalations": items,
        }
        for rv, items in groups.items()
    ]
    period_days = [p.day for p in digest.trend]
    context: dict[str, Any] = {
        "team": team_label(digest.team),
        "as_of": format_date(digest.as_of),
        "period_title": PERIOD_NL.get(digest.period, "overzicht"),
        "period_label": period_label(digest),
        "missed_since": format_date(digest.missed_since) if digest.missed_since else "",
        "severities": [{"key": n, "label": SEVERITY_NL[n]} for n in reversed(SEVERITIES)],
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
                "outlier": mark,
                "trend": _trend_view(list(zip(period_days, m.trend, strict=False)))
                if m.trend and period_days
                else None,
            }
            for m, mark in zip(managers, marks, strict=True)
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
        },
        "trend": trend,
        "team_trend": _trend_view([(p.day, p.open_signals) for p in digest.trend])
        if digest.trend
        else None,
        "trend_unit": "week" if digest.period == "weekly" else "werkdag",
        "outlier_rule": (
            "Afwijkend: signalen per 10 zaken buiten de spreiding van het team "
            "(meer dan 1,5 keer de interkwartielafstand onder het eerste of boven het derde "
            f"kwartiel; vanaf {OUTLIER_MIN_MANAGERS} regievoerders)."
        ),
        "rules": [
            {"mail_title": r.mail_title, "mail_code": r.mail_code, "open": r.open, "new": r.new}
            for r in rules
        ],
        "escalation_groups": escalation_groups,
        "escalations_total": len(escalations) + digest.escalations_not_listed,
        "escalations_shown": len(escalations),
        "escalations_more": digest.escalations_not_listed,
    }
    subject = team_digest_subject(digest)
    context["subject"] = subject
    return ComposedMessage(
        subject=subject,
        text=render_template("team_digest.txt", context, options.templates_dir),
        html=render_template("team_digest.html", context, options.templates_dir),
    )
