"""The rule report as a message or a static page: one table row per rule.

Renders a ``RuleReport`` (computed from the store by ``notifications.rule_report``) with
the ``rule_report`` templates; mail names a rule by its neutral code and title, the page
for the policy owners' folder also by its id. The trend per rule is drawn without images:
in the mail as bars of table cells (HTML) and block characters (text), on the page as an
inline SVG.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regiesignaal.engine.language.casefile import EXPLANATION_REASONS
from regiesignaal.engine.language.dates import is_working_day
from regiesignaal.notifications.compose.render import count_nl, format_date, render_template
from regiesignaal.notifications.delivery.message import ComposedMessage


@dataclass(frozen=True)
class RuleInfo:
    rule_id: str
    mail_title: str
    mail_code: str = ""


@dataclass(frozen=True)
class WindowStats:
    """A rule's figures over the report's window (``RuleReport.window_days``)."""

    fired: int  # episodes open on at least one day of the window
    new: int  # opened in the window, baseline ("bestaand") findings not counted
    share_escalated: float | None  # of the fired episodes
    # closed in the window, by outcome (engine.reconcile.OUTCOMES, issue 18): resolved by a
    # change in the case; ended explained, per reason code (most first); the case closed;
    # the rule changed or retired; covered by another rule's signal on the case
    resolved_by_change: int = 0
    explained_reasons: tuple[tuple[str, int], ...] = ()
    case_closed: int = 0
    rule_changed: int = 0
    covered: int = 0
    # median working days from opened to closed of the episodes resolved by a change
    median_working_days: float | None = None

    @property
    def explained(self) -> int:
        return sum(n for _, n in self.explained_reasons)


@dataclass(frozen=True)
class RuleStats:
    rule: RuleInfo
    windows: dict[int, WindowStats]  # one entry: the report's window in days
    open_now: int = 0  # cases on which the rule's signal is open on the as-of date
    share_open: float | None = None  # of the open cases (None: not known)
    flags: tuple[str, ...] = ()  # health flags, in Dutch: what to consider
    trend: tuple[int | None, ...] = ()  # open signals at each of RuleReport.trend_ends

    @property
    def window(self) -> WindowStats:
        return next(iter(self.windows.values()))


@dataclass(frozen=True)
class RuleReport:
    as_of: dt.date
    rules: list[RuleStats]
    window_days: int = 56
    first_night: dt.date | None = None  # the store's first night (None: no run recorded)
    trend_ends: tuple[dt.date, ...] = ()  # the week ends of every rule's trend
    notes: tuple[str, ...] = field(default=())  # how the flags are set, in Dutch


BLOCKS = "▁▂▃▄▅▆▇█"
"""The text trend: one block per week, scaled from 0 to the rule's highest week."""
BAR_PX = 24
"""The height of the highest bar of a trend in the mail (px)."""
SVG_WIDTH, SVG_HEIGHT = 120, 28


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


def trend_view(points: Sequence[int | None], ends: Sequence[dt.date]) -> dict[str, Any]:
    """A rule's weekly trend drawn three ways: ``blocks`` (text), ``bars`` (table cells
    with a height in px, for mail) and ``svg`` (a polyline's points, for the page), with a
    text alternative. Weeks before the store's first night (None) are left out."""
    known = [(end, n) for end, n in zip(ends, points, strict=False) if n is not None]
    high = max((n for _, n in known), default=0)

    def level(n: int, steps: int) -> int:
        return 0 if not high else round(steps * n / high)

    # the lowest block only for 0: any signal at all shows
    blocks = "".join(BLOCKS[max(1, level(n, len(BLOCKS) - 1)) if n else 0] for _, n in known)
    bars = [{"count": n, "px": max(1, level(n, BAR_PX)) if n else 0} for _, n in known]
    step = SVG_WIDTH / max(1, len(known) - 1)
    svg = " ".join(
        f"{round(i * step, 1):g},{round(SVG_HEIGHT - 2 - level(n, SVG_HEIGHT - 4), 1):g}"
        for i, (_, n) in enumerate(known)
    )
    text = ", ".join(f"{end.strftime('%d-%m')}: {n}" for end, n in known)
    dot = svg.split(",") if len(known) == 1 else ["0", "0"]
    return {
        "blocks": blocks,
        "bars": bars,
        "svg": svg,
        "svg_single": len(known) == 1,
        "dot": {"x": dot[0], "y": dot[1]},
        "width": SVG_WIDTH,
        "height": SVG_HEIGHT,
        "text": text,
        "first": known[0][1] if known else 0,
        "last": known[-1][1] if known else 0,
        "high": high,
        "weeks": len(known),
    }


def _closed_text(w: WindowStats) -> str:
    """How the episodes closed in the window ended, compact; "" when none closed."""
    parts = []
    if w.resolved_by_change:
        parts.append(f"{w.resolved_by_change} door een wijziging in de zaak")
    if w.explained_reasons:
        reasons = ", ".join(f"{EXPLANATION_REASONS.get(c, c)} {n}" for c, n in w.explained_reasons)
        parts.append(f"met toelichting: {reasons}")
    for n, what in (
        (w.case_closed, "zaak gesloten"),
        (w.covered, "omvat door een andere regel"),
        (w.rule_changed, "regel gewijzigd"),
    ):
        if n:
            parts.append(f"{what} {n}")
    return "; ".join(parts)


def _window_text(report: RuleReport) -> str:
    """The table's period: the last 8 weeks, or since the first night while the store
    holds less history (so a young store does not pretend to cover 8 weeks)."""
    weeks = report.window_days // 7
    start = report.as_of - dt.timedelta(days=report.window_days - 1)
    if report.first_night is not None and report.first_night > start:
        return f"sinds {format_date(report.first_night)}, de eerste nacht (nog geen {weeks} weken)"
    return f"over de laatste {weeks} weken"


def _trend_text(report: RuleReport) -> str:
    weeks = len(report.trend_ends)
    if (
        report.first_night is not None
        and report.trend_ends
        and (report.first_night > report.trend_ends[0])
    ):
        return "aan het eind van elke week sinds de eerste nacht"
    return f"aan het eind van elk van de laatste {weeks} weken"


def _text_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


TEXT_COLUMNS = ("afg", "nieuw", "wijz", "toel", "wd", "esc", "open")
TEXT_WIDTHS = (8, 7, 6, 6, 6, 6, 7)


def _label(rule: RuleInfo, show_rule_ids: bool) -> str:
    """A rule as the report names it: its neutral code and title ("R01 Titel"); the page
    for the policy owners' folder puts the rule id in front (never in mail)."""
    label = f"{rule.mail_code} {rule.mail_title}" if rule.mail_code else rule.mail_title
    return f"{rule.rule_id}: {label}" if show_rule_ids else label


SHADOW_OVERLAP_SHOWN = 5
"""Live rules named in a shadow rule's overlap, most shared cases first; the rest counted."""

WEEKDAYS = ("ma", "di", "wo", "do", "vr", "za", "zo")


def shadow_context(shadow: ShadowReport | None, show_rule_ids: bool) -> list[dict[str, Any]]:
    """The template values of the shadow rules' section (empty: no rule in shadow mode).
    Per day only the working days since the rule's first night (no run, no figure: a
    weekend or a day before the rule existed is not a zero); the overlap names the
    ``SHADOW_OVERLAP_SHOWN`` live rules sharing most cases and counts the rest."""
    if shadow is None:
        return []
    rows = []
    for s in shadow.rules:
        days = [
            {
                "day": f"{WEEKDAYS[d.day.weekday()]} {d.day.strftime('%d-%m')}",
                "fired": d.fired,
                "opened": d.opened,
            }
            for d in s.per_day
            if is_working_day(d.day) and (s.since is None or d.day >= s.since)
        ]
        rows.append(
            {
                "label": _label(s.rule, show_rule_ids),
                "since": format_date(s.since) if s.since is not None else "",
                "open_now": s.open_now,
                "open_text": count_nl(s.open_now, "zaak", "zaken"),
                "new": s.new_in_window,
                "escalated": s.escalated_now,
                "days": shadow.days,
                "per_team": [f"{team} {n}" for team, n in s.per_team],
                "per_day": days,
                "per_day_text": "; ".join(f"{d['day']} {d['fired']} ({d['opened']})" for d in days),
                "overlap_cases": s.overlap_cases,
                "overlap": [
                    f"{_label(r, show_rule_ids)} ({n})" for r, n in s.overlap[:SHADOW_OVERLAP_SHOWN]
                ],
                "overlap_more": max(0, len(s.overlap) - SHADOW_OVERLAP_SHOWN),
                "overlap_more_text": count_nl(
                    max(0, len(s.overlap) - SHADOW_OVERLAP_SHOWN), "andere regel", "andere regels"
                ),
            }
        )
    return rows


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
        label = _label(stats.rule, show_rule_ids)
        w = stats.window
        cells = {
            "fired": str(w.fired),
            "new": str(w.new),
            "by_change": str(w.resolved_by_change),
            "explained": str(w.explained),
            "median": _days(w.median_working_days),
            "escalated": _pct(w.share_escalated),
            "share_open": _pct(stats.share_open),
        }
        rows.append(
            {
                "label": label,
                **cells,
                "open_now": stats.open_now,
                "text_cells": _text_row(list(cells.values()), TEXT_WIDTHS),
                "closed": _closed_text(w),
                "flags": list(stats.flags),
                "trend": trend_view(stats.trend, report.trend_ends),
            }
        )
    subject = f"Regiesignaal regelrapport {format_date(report.as_of)}"
    context = {
        "subject": subject,
        "as_of": format_date(report.as_of),
        "window": _window_text(report),
        "trend_weeks": len(report.trend_ends),
        "trend_text": _trend_text(report),
        "page": show_rule_ids,
        "rows": rows,
        "notes": list(report.notes),
        "text_header": _text_row(TEXT_COLUMNS, TEXT_WIDTHS),
        "flagged": sum(1 for r in rows if r["flags"]),
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
