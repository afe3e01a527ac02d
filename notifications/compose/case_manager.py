"""The case manager's list as a message: ranking, grouping per case, the views and the text.

Renders the lines ``notifications.case_manager`` chose for one case manager with the
``case_manager`` templates: most urgent case first (see ``RANKING_NL``), one block per case,
the first cases in full and the rest compact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from regiesignaal.notifications.compose.model import (
    SEVERITY_RANK,
    Recipient,
    SignalLine,
)
from regiesignaal.notifications.compose.render import (
    DEFAULT_OPTIONS,
    SEVERITY_NL,
    MailOptions,
    count_nl,
    format_date,
    format_days,
    render_template,
    safe_link,
)
from regiesignaal.notifications.delivery.message import ComposedMessage

ESCALATION_WINDOW_DAYS = 5
"""A signal whose escalation date lies within this many days is 'escalating soon'."""


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
        text=render_template("case_manager.txt", context, options.templates_dir),
        html=render_template("case_manager.html", context, options.templates_dir),
    )
