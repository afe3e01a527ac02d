"""Compose the Dutch emails (plain text and HTML) from the notification model.

Templates live in ``notifications/templates`` and are rendered in a Jinja2
``SandboxedEnvironment`` (templates cannot run code), with autoescaping for HTML and
``StrictUndefined`` (a typo in a template is an error, not an empty string).

Templates never see the model objects: this module turns them into small view
dictionaries of ready-formatted strings (Dutch dates, Dutch severity names), so a
template can show only what is passed here, and nothing else from a case.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from notifications.model import (
    SEVERITIES,
    SEVERITY_RANK,
    ComposedMessage,
    Recipient,
    SignalLine,
    TeamDigest,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"

ESCALATION_WINDOW_DAYS = 5
"""A signal whose escalation date lies within this many days is 'escalating soon'."""

SEVERITY_NL: dict[str, str] = {
    "low": "laag",
    "medium": "middel",
    "high": "hoog",
    "critical": "kritiek",
}

PERIOD_NL: dict[str, str] = {"daily": "dagoverzicht", "weekly": "weekoverzicht"}


def format_date(value: dt.date) -> str:
    """Dutch date format dd-mm-jjjj."""
    return value.strftime("%d-%m-%Y")


def count_nl(n: int, singular: str, plural: str) -> str:
    """``1 zaak``, ``2 zaken``, ``0 zaken``: a count with the Dutch singular or plural."""
    return f"{n} {singular if n == 1 else plural}"


def format_days(days: int) -> str:
    return count_nl(days, "dag", "dagen")


_STARTS_WITH_TEAM = re.compile(r"team(?![a-z])", re.IGNORECASE)


def team_label(team: str) -> str:
    """``team T-ZUID``; a team id that already says team (``team-001``) stays as it is."""
    return team if _STARTS_WITH_TEAM.match(team) else f"team {team}"


def format_ratio(value: float | None) -> str:
    """One decimal with a Dutch decimal comma; an en dash when there is no value."""
    if value is None:
        return "–"
    return f"{value:.1f}".replace(".", ",")


def safe_link(link: str) -> str | None:
    """Return the link when it is an absolute http(s) URL, else None (shown as plain text)."""
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        return None
    if parts.scheme.lower() in {"http", "https"} and parts.netloc:
        return link.strip()
    return None


def _autoescape(template_name: str | None) -> bool:
    return template_name is not None and template_name.endswith(".html")


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _render(name: str, context: dict[str, Any]) -> str:
    return _environment().get_template(name).render(context)


def rank_lines(lines: Iterable[SignalLine]) -> list[SignalLine]:
    """Rank by score (desc), then severity (desc), then days open (desc).

    Case reference and rule id break remaining ties, so the order is deterministic.
    """
    return sorted(
        lines,
        key=lambda ln: (
            -ln.score,
            -SEVERITY_RANK.get(ln.severity, -1),
            -ln.days_open,
            ln.case_ref,
            ln.rule_id,
        ),
    )


def escalates_soon(line: SignalLine, as_of: dt.date) -> bool:
    """Not yet escalated, and the escalation date is within the window from as_of."""
    if line.escalated or line.escalates_on is None:
        return False
    return (line.escalates_on - as_of).days <= ESCALATION_WINDOW_DAYS


def _line_view(line: SignalLine, as_of: dt.date) -> dict[str, Any]:
    if line.escalated:
        escalation = "geëscaleerd"
    elif line.escalates_on is not None and escalates_soon(line, as_of):
        days_left = (line.escalates_on - as_of).days
        when = "vandaag" if days_left <= 0 else f"over {format_days(days_left)}"
        escalation = f"escaleert op {format_date(line.escalates_on)} ({when})"
    else:
        escalation = ""
    return {
        "case_ref": line.case_ref,
        "link": safe_link(line.link),
        "rule_id": line.rule_id,
        "mail_title": line.mail_title.strip(),
        "severity": SEVERITY_NL.get(line.severity, line.severity),
        "severity_key": line.severity if line.severity in SEVERITY_NL else "low",
        "open_since": f"open sinds {format_date(line.opened_on)} ({format_days(line.days_open)})",
        "reopened": line.reopened,
        "explanation_expired": line.explanation_expired,
        "escalation": escalation,
        # rule texts may end in a newline (YAML block scalars): it would show as a blank line
        "expected_action": line.expected_action.strip(),
    }


def split_sections(
    lines: Sequence[SignalLine], as_of: dt.date
) -> tuple[list[SignalLine], list[SignalLine], list[SignalLine]]:
    """Ranked lines in three sections: new; escalated or escalating soon; still open.

    Every line lands in exactly one section, the first that applies.
    """
    new: list[SignalLine] = []
    escalating: list[SignalLine] = []
    still_open: list[SignalLine] = []
    for line in rank_lines(lines):
        if line.is_new:
            new.append(line)
        elif line.escalated or escalates_soon(line, as_of):
            escalating.append(line)
        else:
            still_open.append(line)
    return new, escalating, still_open


def case_manager_subject(as_of: dt.date, lines: Sequence[SignalLine]) -> str:
    new = sum(1 for ln in lines if ln.is_new)
    escalated = sum(1 for ln in lines if ln.escalated)
    subject = f"Regiesignaal {format_date(as_of)}: {new} nieuw, {len(lines)} open"
    if escalated:
        subject += f", {escalated} geëscaleerd"
    return subject


def compose_case_manager(
    recipient: Recipient, as_of: dt.date, lines: Sequence[SignalLine]
) -> ComposedMessage:
    """The daily follow-up list for one case manager (``recipient``), ranked.

    The recipient is accepted for symmetry and future use (e.g. per-recipient
    settings); nothing of it is shown in the message.
    """
    del recipient  # nothing about the recipient appears in the message
    new, escalating, still_open = split_sections(lines, as_of)
    sections = [
        {
            "key": "new",
            "title": "Nieuwe signalen",
            "lines": [_line_view(ln, as_of) for ln in new],
        },
        {
            "key": "escalation",
            "title": "Geëscaleerd of escaleert binnenkort",
            "lines": [_line_view(ln, as_of) for ln in escalating],
        },
        {
            "key": "open",
            "title": "Nog open",
            "lines": [_line_view(ln, as_of) for ln in still_open],
        },
    ]
    context: dict[str, Any] = {
        "as_of": format_date(as_of),
        "total": len(lines),
        "new_count": len(new),
        "escalated_count": sum(1 for ln in lines if ln.escalated),
        "soon_count": sum(1 for ln in lines if escalates_soon(ln, as_of)),
        "window_days": ESCALATION_WINDOW_DAYS,
        "sections": sections,
    }
    subject = case_manager_subject(as_of, lines)
    context["subject"] = subject
    return ComposedMessage(
        subject=subject,
        text=_render("case_manager.txt", context),
        html=_render("case_manager.html", context),
    )


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


def compose_team_digest(recipient: Recipient, digest: TeamDigest) -> ComposedMessage:
    """The digest for a team lead (``recipient``); staff are shown by staff id only."""
    del recipient  # nothing about the recipient appears in the message
    totals = digest.totals
    managers = sorted(digest.managers, key=lambda m: m.staff_id)
    trend: str | None = None
    if digest.previous_open_signals is not None:
        previous = digest.previous_open_signals
        diff = totals.open_signals - previous
        if diff == 0:
            trend = f"gelijk aan de vorige periode ({previous})"
        else:
            trend = f"{diff:+d} ten opzichte van de vorige periode ({previous})"
    rules = sorted(digest.rules, key=lambda r: (-r.open, -r.new, r.rule_id))
    escalations = sorted(digest.escalations, key=lambda e: (-e.days_open, e.case_ref, e.rule_id))
    context: dict[str, Any] = {
        "team": team_label(digest.team),
        "as_of": format_date(digest.as_of),
        "period_title": PERIOD_NL.get(digest.period, "overzicht"),
        "period_label": period_label(digest),
        "severities": [{"key": n, "label": SEVERITY_NL[n]} for n in reversed(SEVERITIES)],
        "managers": [
            {
                "staff_id": m.staff_id,
                **_counts_view(
                    m.open_signals, m.open_cases, m.signals_per_10_cases, m.open_by_severity
                ),
                "new": m.new,
                "resolved": m.resolved,
                "escalated": m.escalated,
                "explained": m.explained,
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
        },
        "trend": trend,
        "rules": [
            {"rule_id": r.rule_id, "mail_title": r.mail_title, "open": r.open, "new": r.new}
            for r in rules
        ],
        "escalations": [
            {
                "case_ref": e.case_ref,
                "link": safe_link(e.link),
                "rule_id": e.rule_id,
                "mail_title": e.mail_title,
                "days_open": format_days(e.days_open),
                "regievoerder": e.regievoerder,
            }
            for e in escalations
        ],
        "escalations_total": len(escalations) + digest.escalations_not_listed,
        "escalations_more": digest.escalations_not_listed,
    }
    subject = team_digest_subject(digest)
    context["subject"] = subject
    return ComposedMessage(
        subject=subject,
        text=_render("team_digest.txt", context),
        html=_render("team_digest.html", context),
    )
