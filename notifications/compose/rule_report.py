"""The rule report as a message or a static page: per rule and window, the table's views.

Renders a ``RuleReport`` (computed from the store by ``notifications.rule_report``) with
the ``rule_report`` templates; mail names a rule by its neutral code and title, the page
for the policy owners' folder also by its id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regiesignaal.engine.language.casefile import EXPLANATION_REASONS
from regiesignaal.notifications.compose.render import format_date, render_template
from regiesignaal.notifications.delivery.message import ComposedMessage


@dataclass(frozen=True)
class RuleInfo:
    rule_id: str
    mail_title: str
    mail_code: str = ""


@dataclass(frozen=True)
class WindowStats:
    fired: int
    new: int
    resolved: int
    median_days_to_resolution: float | None
    share_explained: float | None
    share_escalated: float | None
    # closed in the window by outcome (issue 18): resolved by a change in the case, and
    # ended explained per reason code (most first)
    resolved_by_change: int = 0
    explained_reasons: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class RuleStats:
    rule: RuleInfo
    windows: dict[int, WindowStats]
    open_now: int = 0  # cases on which the rule's signal is open on the as-of date
    share_open: float | None = None  # of the open cases (None: not known)
    flags: tuple[str, ...] = ()  # health flags, in Dutch (e.g. a rule firing on many cases)


@dataclass(frozen=True)
class RuleReport:
    as_of: dt.date
    rules: list[RuleStats]


@dataclass(frozen=True)
class ShadowDay:
    day: dt.date
    fired: int  # cases the rule fired on that day
    opened: int  # of which new that day (it would have been new in the mail)


@dataclass(frozen=True)
class ShadowStats:
    """What a rule in shadow mode would have done (issue 18)."""

    rule: RuleInfo
    since: dt.date | None  # first night the store saw the rule (None: not yet)
    open_now: int  # cases it fires on now
    new_in_window: int  # episodes opened in the window, baseline excepted
    escalated_now: int  # open episodes whose escalation clock has run out
    per_team: tuple[tuple[str, int], ...]  # open now per team, most first
    per_day: tuple[ShadowDay, ...]  # the last days, oldest first
    overlap_cases: int  # of open_now, cases with a live rule's signal open too
    overlap: tuple[tuple[RuleInfo, int], ...]  # those live rules, most cases first


@dataclass(frozen=True)
class ShadowReport:
    as_of: dt.date
    days: int
    rules: list[ShadowStats]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{round(100 * value)}%"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}".replace(".", ",").removesuffix(",0")


def _label(rule: RuleInfo, show_rule_ids: bool) -> str:
    label = rule.mail_title
    if rule.mail_code:
        label += f" ({rule.mail_code})"
    return f"{rule.rule_id}: {label}" if show_rule_ids else label


def shadow_context(shadow: ShadowReport | None, show_rule_ids: bool) -> list[dict[str, Any]]:
    """The template values of the shadow rules' section (empty: no rule in shadow mode)."""
    if shadow is None:
        return []
    return [
        {
            "label": _label(s.rule, show_rule_ids),
            "since": format_date(s.since) if s.since is not None else "",
            "open_now": s.open_now,
            "new": s.new_in_window,
            "escalated": s.escalated_now,
            "days": shadow.days,
            "per_team": [f"{team} {n}" for team, n in s.per_team],
            "per_day": [
                {"day": format_date(d.day), "fired": d.fired, "opened": d.opened} for d in s.per_day
            ],
            "overlap_cases": s.overlap_cases,
            "overlap": [f"{_label(r, show_rule_ids)} {n}" for r, n in s.overlap],
        }
        for s in shadow.rules
    ]


def compose_rule_report(
    report: RuleReport,
    *,
    show_rule_ids: bool,
    templates_dir: Path | None = None,
    shadow: ShadowReport | None = None,
) -> ComposedMessage:
    """The report as a message (``show_rule_ids=False``: for mail) or a page; with
    ``shadow`` a section on what the rules in shadow mode would have done."""
    rows: list[dict[str, Any]] = []
    for stats in report.rules:
        label = stats.rule.mail_title
        if stats.rule.mail_code:
            label += f" ({stats.rule.mail_code})"
        if show_rule_ids:
            label = f"{stats.rule.rule_id}: {label}"
        rows.append(
            {
                "label": label,
                "share_open": _pct(stats.share_open),
                "open_now": stats.open_now,
                "flags": list(stats.flags),
                "windows": [
                    {
                        "weeks": days // 7,
                        "fired": w.fired,
                        "new": w.new,
                        "resolved": w.resolved,
                        "median": _days(w.median_days_to_resolution),
                        "explained": _pct(w.share_explained),
                        "escalated": _pct(w.share_escalated),
                        "by_change": w.resolved_by_change,
                        "explained_reasons": [
                            f"{EXPLANATION_REASONS.get(code, code)} {n}"
                            for code, n in w.explained_reasons
                        ],
                    }
                    for days, w in sorted(stats.windows.items())
                ],
            }
        )
    subject = f"Regiesignaal regelrapport {format_date(report.as_of)}"
    context = {
        "subject": subject,
        "as_of": format_date(report.as_of),
        "rows": rows,
        "shadow_rows": shadow_context(shadow, show_rule_ids),
    }
    return ComposedMessage(
        subject=subject,
        text=render_template("rule_report.txt", context, templates_dir),
        html=render_template("rule_report.html", context, templates_dir),
    )


def write_rule_report_page(
    report: RuleReport, directory: Path, shadow: ShadowReport | None = None
) -> Path:
    """Write ``regelrapport.html`` (with rule ids) into ``directory``; returns its path.
    Written to a temporary file first and renamed, so a reader never sees half a page."""
    directory.mkdir(parents=True, exist_ok=True)
    page = compose_rule_report(report, show_rule_ids=True, shadow=shadow).html
    target = directory / "regelrapport.html"
    tmp = directory / ".regelrapport.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
