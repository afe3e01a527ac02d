"""The case manager's list as a message: the daily mail with a budget, and the whole list.

The daily mail (issue 16) holds what one person can act on in a morning:

1. **Vandaag**: at most ``[mail] daily_items`` cases (default 10), chosen by the one
   ranking below, plus the *protected tier*: every case with a critical signal that is new
   or escalated since the reader's last list is shown, whatever the budget;
2. **Binnenkort**: rules that will fire if nothing is done, with the last day to act
   (``warn_before``), soonest first, at most ``daily_items`` of them;
3. **Opgelost sinds je vorige lijst**: how many signals stopped, and on which cases;
4. **De rest** as counts per kind in a few lines, and how to reach the whole list (an
   attachment to every daily mail and/or the whole list in the mail on one weekday).

One item per case. Within a case the actions lead, each with what it covers (rules that
flag the same gap are one item: ``covers``); the recording gaps of the case collapse into
one line ("Vastlegging aanvullen: 3 punten"). The whole list (``compose_full_list``) shows
every case in the same order.
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
    UpcomingLine,
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

RANKING_SHORT_NL = (
    "Volgorde: kritiek en nieuw of net geëscaleerd eerst, dan de hoogste ernst, geëscaleerd, "
    "binnenkort te escaleren, nieuw, acties vóór vastleggingen, het oudste gat."
)
"""The ranking in one sentence, for the footer of the daily mail."""

RANKING_NL = (
    "Volgorde: eerst wat kritiek is en nieuw of net geëscaleerd; dan de hoogste ernst; "
    "bij gelijke ernst geëscaleerd, dan binnenkort te escaleren, dan nieuw, dan acties vóór "
    "vastleggingen, dan het oudste gat. Een zaak staat op de plaats van haar dringendste signaal."
)

KIND_ACTION = "actie"
KIND_RECORDING = "vastlegging"
WEEKDAYS_NL = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
RESOLVED_SHOWN = 20
"""Case references named under "Opgelost"; the rest is counted."""
ACTIONS_SHOWN = 2
"""Actions of one case shown in full under "Vandaag"; the others are named on one line
(the whole list shows them all)."""


@dataclass(frozen=True)
class Figures:
    """One case manager's figures, or a team's medians of them (None: no value)."""

    per_10_cases: float | None  # open signals per 10 open cases
    share_escalated: float | None  # of the open signals
    median_working_days: float | None  # to a resolution by a change, last ``weeks`` weeks


@dataclass(frozen=True)
class OwnFigures:
    """ "Jouw cijfers": the reader's own figures beside the team's median (issue 18). Never
    anybody else's figures or name; ``team`` is None for a team too small for a median."""

    own: Figures
    team: Figures | None
    colleagues: int  # case managers the team median is taken over
    min_cases: int  # ... each with at least this many open cases
    weeks: int  # the period of the resolution figure


def _own_view(figures: OwnFigures) -> dict[str, Any]:
    """The block's rows and its note, in neutral words ("ter vergelijking")."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{round(100 * v)}%"

    def num(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}".replace(".", ",").removesuffix(",0")

    own, team = figures.own, figures.team
    rows = [
        ("Open signalen per 10 zaken", num(own.per_10_cases), team and num(team.per_10_cases)),
        ("Geëscaleerd", pct(own.share_escalated), team and pct(team.share_escalated)),
        (
            f"Werkdagen tot oplossing (mediaan, {figures.weeks} weken)",
            num(own.median_working_days),
            team and num(team.median_working_days),
        ),
    ]
    if team is not None:
        note = (
            f"Ter vergelijking, geen beoordeling: de teammediaan is het middelste cijfer van de "
            f"{figures.colleagues} regievoerders van je team met minstens {figures.min_cases} "
            "open zaken. Alleen jij krijgt je eigen cijfers."
        )
    else:
        note = (
            "Ter vergelijking: je team heeft te weinig regievoerders met minstens "
            f"{figures.min_cases} open zaken voor een teammediaan. Alleen jij krijgt je eigen "
            "cijfers."
        )
    return {
        "rows": [{"label": lab, "own": o, "team": t or ""} for lab, o, t in rows],
        "note": note,
    }


def counts_as_new(line: SignalLine) -> bool:
    """New for the reader, and not a baseline finding of a first night."""
    return line.is_new and not line.baseline


def escalates_soon(line: SignalLine, as_of: dt.date) -> bool:
    """Not yet escalated, and the escalation date is within the window from as_of."""
    if line.escalated or line.escalates_on is None:
        return False
    return (line.escalates_on - as_of).days <= ESCALATION_WINDOW_DAYS


def signal_key(line: SignalLine, as_of: dt.date) -> tuple[Any, ...]:
    """The one ranking of signals (ascending = more urgent), see ``RANKING_NL``."""
    return (
        not line.protected,
        -SEVERITY_RANK.get(line.severity, -1),
        not line.escalated,
        not escalates_soon(line, as_of),
        not counts_as_new(line),
        line.kind != KIND_ACTION,
        -line.score,
        -line.days_open,
        line.case_ref,
        line.rule_id,
    )


def rank_lines(lines: Iterable[SignalLine], as_of: dt.date) -> list[SignalLine]:
    """Signals in the documented order (see ``signal_key``)."""
    return sorted(lines, key=lambda ln: signal_key(ln, as_of))


@dataclass(frozen=True)
class CaseGroup:
    """The open signals of one case, most urgent first."""

    case_ref: str
    lines: tuple[SignalLine, ...]

    def key(self, as_of: dt.date) -> tuple[Any, ...]:
        return signal_key(self.lines[0], as_of)

    @property
    def protected(self) -> bool:
        return any(ln.protected for ln in self.lines)

    @property
    def actions(self) -> tuple[SignalLine, ...]:
        return tuple(ln for ln in self.lines if ln.kind != KIND_RECORDING)

    @property
    def recordings(self) -> tuple[SignalLine, ...]:
        return tuple(ln for ln in self.lines if ln.kind == KIND_RECORDING)


def group_cases(lines: Iterable[SignalLine], as_of: dt.date) -> list[CaseGroup]:
    """One group per case, cases ordered by their most urgent signal."""
    by_case: dict[str, list[SignalLine]] = {}
    for ln in rank_lines(lines, as_of):
        by_case.setdefault(ln.case_ref, []).append(ln)
    groups = [CaseGroup(ref, tuple(lns)) for ref, lns in by_case.items()]
    return sorted(groups, key=lambda g: g.key(as_of))


@dataclass(frozen=True)
class DailySections:
    """A case manager's cases split over the daily mail; every case exactly once."""

    today: list[CaseGroup]
    rest: list[CaseGroup]

    @property
    def all(self) -> list[CaseGroup]:
        return [*self.today, *self.rest]


def split_daily(
    lines: Sequence[SignalLine], as_of: dt.date, options: MailOptions = DEFAULT_OPTIONS
) -> DailySections:
    """ "Vandaag": the protected cases (all of them) and then the next cases in the ranking
    up to ``daily_items`` cases in all; the rest is counted."""
    groups = group_cases(lines, as_of)
    protected = sum(1 for g in groups if g.protected)  # they rank first (signal_key)
    room = max(options.daily_items, protected)
    return DailySections(groups[:room], groups[room:])


def _since_text(line: SignalLine) -> str:
    began = line.began_on or line.opened_on
    age = "vandaag" if line.days_open <= 0 else format_days(line.days_open)
    return f"{line.since_label} {format_date(began)} ({age})"


def _escalation_text(line: SignalLine, as_of: dt.date) -> str:
    if line.escalated:
        return "geëscaleerd"
    if line.escalates_on is not None and escalates_soon(line, as_of):
        days_left = (line.escalates_on - as_of).days
        when = "vandaag" if days_left <= 0 else f"over {format_days(days_left)}"
        return f"escaleert {format_date(line.escalates_on)} ({when})"
    return ""


def _title(title: str, code: str) -> str:
    return f"{title.strip()} ({code.strip()})" if code.strip() else title.strip()


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
    if line.explanation_lapsed:
        marks.append("toelichting vervallen: gegevens gewijzigd")
    return {
        "mail_title": line.mail_title.strip(),
        "mail_code": line.mail_code.strip(),
        "severity": SEVERITY_NL.get(line.severity, line.severity),
        "severity_key": line.severity if line.severity in SEVERITY_NL else "low",
        "since": _since_text(line),
        "escalation": _escalation_text(line, as_of),
        "marks": marks,
        "covers": "; ".join(_title(t, c) for t, c in line.covers),
    }


def _case_view(
    group: CaseGroup,
    as_of: dt.date,
    rank: int | None,
    detail: str,
    in_full: bool = True,
    actions_shown: int | None = None,
) -> dict[str, Any]:
    """A case for the templates; ``in_full`` False: one line (the whole list's tail);
    ``actions_shown``: at most this many actions in full, the others by title."""
    top = group.lines[0]
    actions = group.actions
    others = actions[actions_shown:] if actions_shown is not None else ()
    full = detail == "full"
    shown = full and in_full
    todo: list[str] = []
    lines = []
    for ln in actions[: len(actions) - len(others)] if shown else ():
        view = _line_view(ln, as_of)
        action = ln.expected_action.strip()
        view["todo"] = action if action and action not in todo else ""
        if view["todo"]:
            todo.append(action)
        lines.append(view)
    recordings = group.recordings
    new = sum(1 for ln in group.lines if counts_as_new(ln))
    escalated = sum(1 for ln in group.lines if ln.escalated)
    summary = []
    if new:
        summary.append(f"{new} nieuw")
    if escalated:
        summary.append(f"{escalated} geëscaleerd")
    return {
        "rank": rank,
        "case_ref": group.case_ref,
        "link": safe_link(top.link),
        "protected": group.protected,
        "top_severity": SEVERITY_NL.get(top.severity, top.severity),
        "top_severity_key": top.severity if top.severity in SEVERITY_NL else "low",
        "count_text": count_nl(len(group.lines), "signaal", "signalen"),
        "summary": ", ".join(summary) if full else "",
        "lines": lines,
        "others_text": (
            "Ook: " + "; ".join(_title(ln.mail_title, ln.mail_code) for ln in others)
            if others and shown
            else ""
        ),
        "recording_text": (
            "Vastlegging aanvullen: " + count_nl(len(recordings), "punt", "punten")
            if recordings and shown
            else ""
        ),
        "recordings": [_title(ln.mail_title, ln.mail_code) for ln in recordings] if shown else [],
    }


def returned_lines(rest: Sequence[CaseGroup]) -> list[SignalLine]:
    """The signals of cases not shown today whose explanation lapsed since the reader's
    last list because the case changed (issue 18): the reader set them aside, so they are
    told, one line each, even when the case itself does not make "Vandaag"."""
    return [ln for g in rest for ln in g.lines if ln.explanation_lapsed and ln.is_new]


def _returned_view(line: SignalLine) -> dict[str, Any]:
    return {
        "case_ref": line.case_ref,
        "link": safe_link(line.link),
        "title": _title(line.mail_title, line.mail_code),
    }


def _upcoming_view(item: UpcomingLine, as_of: dt.date) -> dict[str, Any]:
    left = (item.due_on - as_of).days
    when = "vandaag" if left <= 0 else ("morgen" if left == 1 else f"over {format_days(left)}")
    return {
        "case_ref": item.case_ref,
        "link": safe_link(item.link),
        "title": _title(item.mail_title, item.mail_code),
        "due": f"uiterlijk {format_date(item.due_on)} ({when})",
    }


def rest_summary(groups: Sequence[CaseGroup]) -> list[str]:
    """The cases not shown today, as counts per kind in a few Dutch lines."""
    if not groups:
        return []
    with_action = [g for g in groups if g.actions]
    recording_only = [g for g in groups if not g.actions]
    out = []
    if with_action:
        by_severity: dict[str, int] = {}
        for g in with_action:
            top = g.actions[0].severity
            by_severity[top] = by_severity.get(top, 0) + 1
        parts = [
            f"{by_severity[s]} {SEVERITY_NL.get(s, s)}"
            for s in ("critical", "high", "medium", "low")
            if by_severity.get(s)
        ]
        escalated = sum(1 for g in with_action if any(ln.escalated for ln in g.actions))
        text = f"{count_nl(len(with_action), 'zaak', 'zaken')} met een actie ({', '.join(parts)})"
        if escalated:
            text += f"; bij {escalated} is een actie geëscaleerd"
        out.append(text)
    if recording_only:
        points = sum(len(g.recordings) for g in recording_only)
        out.append(
            f"{count_nl(len(recording_only), 'zaak', 'zaken')} met alleen iets vast te leggen "
            f"({count_nl(points, 'punt', 'punten')})"
        )
    return out


def daily_counts(
    lines: Sequence[SignalLine], sections: DailySections, upcoming: Sequence[UpcomingLine]
) -> dict[str, int]:
    """The counts the subject and intro state, from the same lines the sections show."""
    return {
        "signals": len(lines),
        "total": len(lines),  # the name before issue 16: existing overrides keep working
        "baseline": sum(1 for ln in lines if ln.baseline),
        "cases": len(sections.all),
        "today": len(sections.today),
        "rest": len(sections.rest),
        "protected": sum(1 for g in sections.all if g.protected),
        "new": sum(1 for ln in lines if counts_as_new(ln)),
        "escalated": sum(1 for ln in lines if ln.escalated),
        "upcoming": len(upcoming),
    }


def case_manager_subject(as_of: dt.date, counts: dict[str, int]) -> str:
    subject = f"Regiesignaal {format_date(as_of)}: {counts['today']} voor vandaag"
    if counts["new"]:
        subject += f", {counts['new']} nieuw"
    if counts["upcoming"]:
        subject += f", {counts['upcoming']} binnenkort"
    return subject


def _full_list_days(options: MailOptions, as_of: dt.date) -> tuple[bool, bool]:
    """(attach the whole list, put the whole list in today's mail)."""
    attach = options.full_list in ("attachment", "both")
    weekly = options.full_list in ("weekly", "both") and (
        as_of.weekday() == options.full_list_weekday
    )
    return attach, weekly


def compose_case_manager(
    recipient: Recipient,
    as_of: dt.date,
    lines: Sequence[SignalLine],
    options: MailOptions = DEFAULT_OPTIONS,
    *,
    new_since: dt.date | None = None,
    upcoming: Sequence[UpcomingLine] = (),
    resolved: Sequence[str] = (),
    resolved_signals: int = 0,
    own: OwnFigures | None = None,
) -> ComposedMessage:
    """The daily list for one case manager (``recipient``): see the module docstring.
    ``own``: "Jouw cijfers", the reader's figures beside the team median (weekly).

    ``new_since``: the as-of date of the last list that reached the reader, when it was not
    the previous working day (the intro then says since when "nieuw" counts);
    ``upcoming``: their warnings; ``resolved``: the cases whose signals stopped since their
    last list (``resolved_signals`` signals in all). Nothing of the recipient is shown."""
    del recipient  # nothing about the recipient appears in the message
    sections = split_daily(lines, as_of, options)
    counts = daily_counts(lines, sections, upcoming)
    returned = returned_lines(sections.rest)
    soon = sorted(upcoming, key=lambda u: (u.due_on, u.case_ref, u.mail_title))
    shown_soon = soon[: options.daily_items]
    attach, weekly = _full_list_days(options, as_of)
    reach = []
    if attach:
        reach.append("in de bijlage van elke dagelijkse lijst")
    if options.full_list in ("weekly", "both"):
        reach.append(f"elke {WEEKDAYS_NL[options.full_list_weekday]} in deze mail")
    context: dict[str, Any] = {
        "as_of": format_date(as_of),
        "counts": counts,
        "cases_text": count_nl(counts["cases"], "zaak", "zaken"),
        "signals_text": count_nl(counts["signals"], "open signaal", "open signalen"),
        "new_since": format_date(new_since) if new_since else "",
        "ranking": RANKING_SHORT_NL,
        "detail": options.detail,
        "today": [
            _case_view(g, as_of, n, options.detail, actions_shown=ACTIONS_SHOWN)
            for n, g in enumerate(sections.today, 1)
        ],
        "today_title": f"Vandaag ({count_nl(len(sections.today), 'zaak', 'zaken')})",
        "returned": [_returned_view(ln) for ln in returned[: options.daily_items]],
        "returned_more": max(0, len(returned) - options.daily_items),
        "soon": [_upcoming_view(u, as_of) for u in shown_soon],
        "soon_more": len(soon) - len(shown_soon),
        "resolved": list(resolved[:RESOLVED_SHOWN]),
        "resolved_more": max(0, len(resolved) - RESOLVED_SHOWN),
        "resolved_text": count_nl(resolved_signals, "signaal", "signalen")
        + " in "
        + count_nl(len(resolved), "zaak", "zaken"),
        "rest": rest_summary(sections.rest),
        "rest_title": f"De rest ({count_nl(len(sections.rest), 'zaak', 'zaken')})",
        "reach": " en ".join(reach),
        "full": None,
        "own": _own_view(own) if own is not None else None,
    }
    # the whole list as the message uses it: in today's mail all three parts (an override
    # may show any of them), as an attachment only the page (issue 19: no render for
    # nothing)
    parts = ("text", "html", "fragment") if weekly else ("html",)
    full = (
        compose_full_list(as_of, lines, options, upcoming=soon, parts=parts, groups=sections.all)
        if attach or weekly
        else None
    )
    if weekly and full is not None:
        context["full"] = full
    subject = case_manager_subject(as_of, counts)
    context["subject"] = subject
    return ComposedMessage(
        subject=subject,
        text=render_template("case_manager.txt", context, options.templates_dir),
        html=render_template("case_manager.html", context, options.templates_dir),
        attachment_html=full["html"] if attach and full is not None else None,
    )


def compose_full_list(
    as_of: dt.date,
    lines: Sequence[SignalLine],
    options: MailOptions = DEFAULT_OPTIONS,
    *,
    upcoming: Sequence[UpcomingLine] = (),
    parts: Sequence[str] = ("text", "html", "fragment"),
    groups: Sequence[CaseGroup] | None = None,
) -> dict[str, str]:
    """The whole list: every case in the ranking (the first ``full_cases`` in full, the
    rest one line each) and every warning: ``{"text", "html", "fragment"}`` (the HTML as a
    page, and as a part of the weekly mail); only the ``parts`` asked for are rendered.
    ``groups``: ``group_cases(lines, as_of)`` when the caller has it already."""
    if groups is None:
        groups = group_cases(lines, as_of)
    room = 0 if options.detail == "minimal" else options.full_cases
    context: dict[str, Any] = {
        "as_of": format_date(as_of),
        "subject": f"Regiesignaal {format_date(as_of)}: de hele lijst",
        "ranking": RANKING_NL,
        "detail": options.detail,
        "cases_text": count_nl(len(groups), "zaak", "zaken"),
        "signals_text": count_nl(len(lines), "open signaal", "open signalen"),
        "full": [_case_view(g, as_of, n, "full") for n, g in enumerate(groups[:room], 1)],
        "compact": [
            _case_view(g, as_of, n, options.detail, in_full=False)
            for n, g in enumerate(groups[room:], room + 1)
        ],
        "soon": [
            _upcoming_view(u, as_of)
            for u in sorted(upcoming, key=lambda u: (u.due_on, u.case_ref, u.mail_title))
        ],
    }
    out: dict[str, str] = {}
    for part in parts:
        if part == "text":
            out[part] = render_template("case_manager_full.txt", context, options.templates_dir)
        else:
            page = {**context, "fragment": part == "fragment"}
            out[part] = render_template("case_manager_full.html", page, options.templates_dir)
    return out
