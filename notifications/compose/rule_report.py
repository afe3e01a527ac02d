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


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{round(100 * value)}%"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}".replace(".", ",").removesuffix(",0")


def compose_rule_report(
    report: RuleReport, *, show_rule_ids: bool, templates_dir: Path | None = None
) -> ComposedMessage:
    """The report as a message (``show_rule_ids=False``: for mail) or a page."""
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
    context = {"subject": subject, "as_of": format_date(report.as_of), "rows": rows}
    return ComposedMessage(
        subject=subject,
        text=render_template("rule_report.txt", context, templates_dir),
        html=render_template("rule_report.html", context, templates_dir),
    )


def write_rule_report_page(report: RuleReport, directory: Path) -> Path:
    """Write ``regelrapport.html`` (with rule ids) into ``directory``; returns its path.
    Written to a temporary file first and renamed, so a reader never sees half a page."""
    directory.mkdir(parents=True, exist_ok=True)
    page = compose_rule_report(report, show_rule_ids=True).html
    target = directory / "regelrapport.html"
    tmp = directory / ".regelrapport.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
