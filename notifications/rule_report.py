"""The rule report for policy owners: per rule, how it behaves over the last 4 and 13 weeks.

Per rule and window (the 28 or 91 days up to and including the as-of date):

- ``fired``: signal episodes that fired on at least one day of the window (last seen in
  it or later);
- ``new``: episodes opened in the window, except baseline episodes (findings that already
  existed on the first night of the product or of the rule: "bestaand", never new);
- ``resolved``: episodes closed as resolved in the window;
- ``median_days_to_resolution``: median of (closed_on - opened_on) in days over those
  resolved episodes (None without any);
- ``share_explained``: of the fired episodes, the share with an explanation recorded
  (the store keeps an episode's latest explanation end date);
- ``share_escalated``: of the fired episodes, the share that escalated.

Mailed weekly (on ``[mail] digest_weekday``) to staff with role ``beleid``, and written
after every run as ``regelrapport.html`` in ``[report] dir`` when that is set. The mail
names a rule by its ``mail_code`` and ``mail_title``; the page for the policy owners'
folder also shows the rule id.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.store import signals
from notifications.model import ComposedMessage

WINDOWS = (28, 91)
"""The report's windows in days: the last 4 and the last 13 weeks."""


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


@dataclass(frozen=True)
class RuleStats:
    rule: RuleInfo
    windows: dict[int, WindowStats]


@dataclass(frozen=True)
class RuleReport:
    as_of: dt.date
    rules: list[RuleStats]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rule_report(conn: sa.Connection, as_of: dt.date, rules: Mapping[str, RuleInfo]) -> RuleReport:
    """The figures of every rule in ``rules`` as of ``as_of`` (see the module docstring)."""
    c = signals.c
    first = as_of - dt.timedelta(days=max(WINDOWS) - 1)
    starts = {days: as_of - dt.timedelta(days=days - 1) for days in WINDOWS}
    # one pass over the rows, counting per (rule, window): memory holds counts and the
    # resolution times, not the rows (issue 11)
    fired: dict[tuple[str, int], int] = {}
    new: dict[tuple[str, int], int] = {}
    explained: dict[tuple[str, int], int] = {}
    escalated: dict[tuple[str, int], int] = {}
    durations: dict[tuple[str, int], list[int]] = {}
    result = conn.execute(
        sa.select(
            c.rule_id,
            c.opened_on,
            c.last_seen_on,
            c.closed_on,
            c.close_reason,
            c.escalated_on,
            c.explained_until,
            c.baseline,
        )
        .where(
            c.rule_id.in_(sorted(rules)),
            c.opened_on <= as_of,
            c.last_seen_on >= first,
        )
        # a server-side cursor on PostgreSQL: the driver would otherwise fetch every row
        .execution_options(yield_per=5000)
    )
    for r in result:
        for days, start in starts.items():
            if r.last_seen_on < start:
                continue  # did not fire in this window
            key = (r.rule_id, days)
            fired[key] = fired.get(key, 0) + 1
            if r.opened_on >= start and not r.baseline:
                new[key] = new.get(key, 0) + 1
            if r.explained_until is not None:
                explained[key] = explained.get(key, 0) + 1
            if r.escalated_on is not None:
                escalated[key] = escalated.get(key, 0) + 1
            if r.closed_on is not None and r.closed_on <= as_of and r.close_reason == "resolved":
                durations.setdefault(key, []).append((r.closed_on - r.opened_on).days)
    out = []
    for rid in sorted(rules, key=lambda r: (rules[r].mail_code or "~", r)):
        windows = {}
        for days in WINDOWS:
            key = (rid, days)
            n = fired.get(key, 0)
            spans = durations.get(key, [])
            windows[days] = WindowStats(
                fired=n,
                new=new.get(key, 0),
                resolved=len(spans),
                median_days_to_resolution=float(statistics.median(spans)) if spans else None,
                share_explained=_share(explained.get(key, 0), n),
                share_escalated=_share(escalated.get(key, 0), n),
            )
        out.append(RuleStats(rules[rid], windows))
    return RuleReport(as_of, out)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{round(100 * value)}%"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}".replace(".", ",").removesuffix(",0")


def compose_rule_report(
    report: RuleReport, *, show_rule_ids: bool, templates_dir: Path | None = None
) -> ComposedMessage:
    """The report as a message (``show_rule_ids=False``: for mail) or a page."""
    from notifications.compose import _render, format_date

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
                "windows": [
                    {
                        "weeks": days // 7,
                        "fired": w.fired,
                        "new": w.new,
                        "resolved": w.resolved,
                        "median": _days(w.median_days_to_resolution),
                        "explained": _pct(w.share_explained),
                        "escalated": _pct(w.share_escalated),
                    }
                    for days, w in sorted(stats.windows.items())
                ],
            }
        )
    subject = f"Regiesignaal regelrapport {format_date(report.as_of)}"
    context = {"subject": subject, "as_of": format_date(report.as_of), "rows": rows}
    return ComposedMessage(
        subject=subject,
        text=_render("rule_report.txt", context, templates_dir),
        html=_render("rule_report.html", context, templates_dir),
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
