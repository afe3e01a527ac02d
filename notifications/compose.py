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
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from notifications.model import (
    SEVERITIES,
    SEVERITY_RANK,
    ComposedMessage,
    EscalationLine,
    ManagerSummary,
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


TEMPLATE_NAMES = (
    "_macros.html",
    "case_manager.html",
    "case_manager.txt",
    "team_digest.html",
    "team_digest.txt",
    "rule_report.html",
    "rule_report.txt",
)
"""The templates an operator may override (same names in ``[mail] templates_dir``)."""


@lru_cache(maxsize=8)
def _environment(override_dir: str | None = None) -> SandboxedEnvironment:
    """The sandbox; templates in ``override_dir`` take precedence over the product's.

    Overrides run in the same ``SandboxedEnvironment`` with the same autoescaping and
    ``StrictUndefined``: an override can change the layout and the words, never reach
    anything beyond the view dictionaries this module passes.
    """
    loaders = [FileSystemLoader(TEMPLATE_DIR)]
    if override_dir:
        loaders.insert(0, FileSystemLoader(override_dir))
    return SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _render(name: str, context: dict[str, Any], override_dir: Path | None = None) -> str:
    env = _environment(str(override_dir) if override_dir else None)
    return env.get_template(name).render(context)


DetailLevel = Literal["full", "minimal"]


@dataclass(frozen=True)
class MailOptions:
    """How much a message shows (``[mail]`` settings).

    ``detail``: ``full`` shows every signal of the first ``full_cases`` cases; ``minimal``
    shows per case only the reference, the number of signals and the link.
    ``first_cases``: at most this many cases in "Eerst doen". ``full_cases``: this many
    cases (counting "Eerst doen") in full; the rest as compact one-line entries.
    ``staff_names``: the team lead's digest shows the display names of the team's case
    managers next to their staff ids.
    """

    detail: DetailLevel = "full"
    first_cases: int = 5
    full_cases: int = 25
    staff_names: bool = True
    templates_dir: Path | None = None
    """Operator's template overrides (``[mail] templates_dir``); checked before a run
    queues mail (``check_template_overrides``)."""


DEFAULT_OPTIONS = MailOptions()

RANKING_NL = (
    "Volgorde: eerst geëscaleerd, dan kritiek, dan binnenkort te escaleren, dan nieuw, "
    "dan de rest; daarbinnen de hoogste ernst, de hoogste prioriteit en het oudste signaal "
    "eerst. Een zaak staat op de plaats van haar dringendste signaal."
)

TIER_ESCALATED, TIER_CRITICAL, TIER_SOON, TIER_NEW, TIER_REST = range(5)


def counts_as_new(line: SignalLine) -> bool:
    """New for the reader, and not a baseline finding of a first night."""
    return line.is_new and not line.baseline


def tier(line: SignalLine, as_of: dt.date) -> int:
    """The ranking class of a signal: 0 escalated, 1 critical, 2 escalates within
    ``ESCALATION_WINDOW_DAYS``, 3 new, 4 the rest."""
    if line.escalated:
        return TIER_ESCALATED
    if line.severity == "critical":
        return TIER_CRITICAL
    if escalates_soon(line, as_of):
        return TIER_SOON
    if counts_as_new(line):
        return TIER_NEW
    return TIER_REST


def signal_key(line: SignalLine, as_of: dt.date) -> tuple[Any, ...]:
    """The one ranking (ascending = more urgent): tier, then severity, score and days
    open (all descending); case reference and rule id make it deterministic."""
    return (
        tier(line, as_of),
        -SEVERITY_RANK.get(line.severity, -1),
        -line.score,
        -line.days_open,
        line.case_ref,
        line.rule_id,
    )


def rank_lines(lines: Iterable[SignalLine], as_of: dt.date) -> list[SignalLine]:
    """Signals in the documented order (see ``signal_key``)."""
    return sorted(lines, key=lambda ln: signal_key(ln, as_of))


def escalates_soon(line: SignalLine, as_of: dt.date) -> bool:
    """Not yet escalated, and the escalation date is within the window from as_of."""
    if line.escalated or line.escalates_on is None:
        return False
    return (line.escalates_on - as_of).days <= ESCALATION_WINDOW_DAYS


@dataclass(frozen=True)
class CaseGroup:
    """The open signals of one case, most urgent first."""

    case_ref: str
    lines: tuple[SignalLine, ...]

    def key(self, as_of: dt.date) -> tuple[Any, ...]:
        return signal_key(self.lines[0], as_of)

    def is_first(self, as_of: dt.date) -> bool:
        """Has escalated or critical work: a candidate for "Eerst doen"."""
        return tier(self.lines[0], as_of) <= TIER_CRITICAL


@dataclass(frozen=True)
class CaseSections:
    """A case manager's cases split into the message's parts; every case exactly once."""

    first: list[CaseGroup]
    full: list[CaseGroup]
    compact: list[CaseGroup]

    @property
    def all(self) -> list[CaseGroup]:
        return [*self.first, *self.full, *self.compact]


def group_cases(lines: Iterable[SignalLine], as_of: dt.date) -> list[CaseGroup]:
    """One group per case, cases ordered by their most urgent signal."""
    by_case: dict[str, list[SignalLine]] = {}
    for ln in rank_lines(lines, as_of):
        by_case.setdefault(ln.case_ref, []).append(ln)
    groups = [CaseGroup(ref, tuple(lns)) for ref, lns in by_case.items()]
    return sorted(groups, key=lambda g: g.key(as_of))


def split_cases(
    lines: Sequence[SignalLine], as_of: dt.date, options: MailOptions = DEFAULT_OPTIONS
) -> CaseSections:
    """ "Eerst doen" (at most ``first_cases`` cases with escalated or critical work), then
    the other cases: in full up to ``full_cases`` cases in all, the rest compact."""
    groups = group_cases(lines, as_of)
    first: list[CaseGroup] = []
    for g in groups:
        if len(first) >= options.first_cases or not g.is_first(as_of):
            break
        first.append(g)
    rest = groups[len(first) :]
    room = max(0, options.full_cases - len(first))
    if options.detail == "minimal":
        room = 0
    return CaseSections(first, rest[:room], rest[room:])


def _escalation_text(line: SignalLine, as_of: dt.date) -> str:
    if line.escalated:
        return "geëscaleerd"
    if line.escalates_on is not None and escalates_soon(line, as_of):
        days_left = (line.escalates_on - as_of).days
        when = "vandaag" if days_left <= 0 else f"over {format_days(days_left)}"
        return f"escaleert {format_date(line.escalates_on)} ({when})"
    return ""


def _line_view(line: SignalLine, as_of: dt.date) -> dict[str, Any]:
    marks = []
    if counts_as_new(line):
        marks.append("nieuw")
    if line.baseline:
        marks.append("bestaand")
    if line.reopened:
        marks.append("opnieuw open")
    if line.explanation_expired:
        marks.append("toelichting verlopen")
    return {
        "mail_title": line.mail_title.strip(),
        "mail_code": line.mail_code.strip(),
        "severity": SEVERITY_NL.get(line.severity, line.severity),
        "severity_key": line.severity if line.severity in SEVERITY_NL else "low",
        "since": (
            f"sinds {format_date(line.opened_on)} "
            f"({'vandaag' if line.days_open <= 0 else format_days(line.days_open)})"
        ),
        "escalation": _escalation_text(line, as_of),
        "marks": marks,
    }


def _summary_parts(lines: Sequence[SignalLine], as_of: dt.date) -> list[str]:
    parts = []
    new = sum(1 for ln in lines if counts_as_new(ln))
    esc = sum(1 for ln in lines if ln.escalated)
    soon = sum(1 for ln in lines if escalates_soon(ln, as_of))
    if new:
        parts.append(f"{new} nieuw")
    if esc:
        parts.append(f"{esc} geëscaleerd")
    if soon:
        verb = "escaleert" if soon == 1 else "escaleren"
        parts.append(f"{soon} {verb} binnenkort")
    return parts


def _case_view(group: CaseGroup, as_of: dt.date, link: str | None, full: bool) -> dict[str, Any]:
    top = group.lines[0]
    actions: list[str] = []
    for ln in group.lines:
        action = ln.expected_action.strip()
        if action and action not in actions:
            actions.append(action)
    return {
        "case_ref": group.case_ref,
        "link": link,
        "count_text": count_nl(len(group.lines), "signaal", "signalen"),
        "summary": ", ".join(_summary_parts(group.lines, as_of)),
        "top_severity": SEVERITY_NL.get(top.severity, top.severity),
        "top_severity_key": top.severity if top.severity in SEVERITY_NL else "low",
        "lines": [_line_view(ln, as_of) for ln in group.lines] if full else [],
        "actions": actions if full else [],
    }


def case_manager_counts(lines: Sequence[SignalLine], as_of: dt.date) -> dict[str, int]:
    """The counts the subject and intro state, from the same lines the sections show."""
    return {
        "total": len(lines),
        "cases": len({ln.case_ref for ln in lines}),
        "new": sum(1 for ln in lines if counts_as_new(ln)),
        "escalated": sum(1 for ln in lines if ln.escalated),
        "soon": sum(1 for ln in lines if escalates_soon(ln, as_of)),
        "baseline": sum(1 for ln in lines if ln.baseline),
    }


def case_manager_subject(as_of: dt.date, lines: Sequence[SignalLine]) -> str:
    counts = case_manager_counts(lines, as_of)
    subject = f"Regiesignaal {format_date(as_of)}: {counts['new']} nieuw, {counts['total']} open"
    if counts["escalated"]:
        subject += f", {counts['escalated']} geëscaleerd"
    return subject


def compose_case_manager(
    recipient: Recipient,
    as_of: dt.date,
    lines: Sequence[SignalLine],
    options: MailOptions = DEFAULT_OPTIONS,
    *,
    new_since: dt.date | None = None,
) -> ComposedMessage:
    """The daily follow-up list for one case manager (``recipient``).

    One block per case, cases in the order of ``signal_key``; "Eerst doen" first. With
    ``new_since`` (the as-of date of the last list that reached the reader, when it was
    not the previous working day) the intro says since when "nieuw" counts. Nothing of
    the recipient is shown in the message.
    """
    del recipient  # nothing about the recipient appears in the message
    sections = split_cases(lines, as_of, options)
    full = options.detail == "full"

    def view(g: CaseGroup, in_full: bool) -> dict[str, Any]:
        out = _case_view(g, as_of, safe_link(g.lines[0].link), in_full and full)
        if not full:  # minimal: per case only the reference, the count and the link
            out["summary"] = ""
        return out

    counts = case_manager_counts(lines, as_of)
    context: dict[str, Any] = {
        "as_of": format_date(as_of),
        "counts": counts,
        "total_text": count_nl(counts["total"], "open signaal", "open signalen"),
        "cases_text": count_nl(counts["cases"], "zaak", "zaken"),
        "window_days": ESCALATION_WINDOW_DAYS,
        "ranking": RANKING_NL,
        "new_since": format_date(new_since) if new_since else "",
        "detail": options.detail,
        "first": [view(g, True) for g in sections.first],
        "full": [view(g, True) for g in sections.full],
        "compact": [view(g, False) for g in sections.compact],
        "first_title": "Eerst doen",
        "count_first": count_nl(len(sections.first), "zaak", "zaken"),
        "count_rest": count_nl(len(sections.full) + len(sections.compact), "zaak", "zaken"),
        "rest_title": "Overige zaken" if sections.first else "Je zaken",
    }
    subject = case_manager_subject(as_of, lines)
    context["subject"] = subject
    return ComposedMessage(
        subject=subject,
        text=_render("case_manager.txt", context, options.templates_dir),
        html=_render("case_manager.html", context, options.templates_dir),
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
        text=_render("team_digest.txt", context, options.templates_dir),
        html=_render("team_digest.html", context, options.templates_dir),
    )


def check_template_overrides(directory: Path) -> list[str]:
    """Problems of the override templates in ``directory`` as ``file:line: message``
    (Dutch); [] when all are usable. Each override must carry a known template name,
    parse, and render a sample list and digest in the sandbox."""
    import traceback

    from jinja2 import TemplateError, TemplateSyntaxError

    problems: list[str] = []
    if not directory.is_dir():
        return [f"{directory}: de map met sjablonen bestaat niet; controleer [mail] templates_dir"]
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.name not in TEMPLATE_NAMES:
            problems.append(f"{path}:1: onbekend sjabloon; kies uit {', '.join(TEMPLATE_NAMES)}")
    env = _environment(str(directory))
    for name in TEMPLATE_NAMES:
        if not (directory / name).is_file():
            continue
        try:
            env.get_template(name)
        except TemplateSyntaxError as exc:
            problems.append(f"{directory / name}:{exc.lineno}: {exc.message}")
    if problems:
        return problems
    options = MailOptions(templates_dir=directory)
    as_of = dt.date(2026, 1, 5)
    sample = SignalLine(
        "Z-000001", "VOORBEELD", "Voorbeeldtitel", "high", as_of, 3, True, False, True,
        None, "Voorbeeldactie.", "https://zaaksysteem.example/zaken/Z-000001", 1.0,
    )  # fmt: skip
    digest = TeamDigest(
        "T-VOORBEELD", as_of, "daily",
        [ManagerSummary("rv-1", 10, {"high": 1}, 1, 0, 1, 0, "Voorbeeld")],
        escalations=[EscalationLine("Z-000001", "VOORBEELD", "Voorbeeldtitel", 3, "rv-1")],
    )  # fmt: skip
    recipient = Recipient("rv-1", "rv-1@voorbeeld.invalid")
    for render in (
        lambda: compose_case_manager(recipient, as_of, [sample], options),
        lambda: compose_team_digest(recipient, digest, options),
    ):
        try:
            render()
        except TemplateError as exc:
            frames = [
                f
                for f in traceback.extract_tb(exc.__traceback__)
                if f.filename and Path(f.filename).parent == directory
            ]
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(directory)
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
    return sorted(set(problems))
