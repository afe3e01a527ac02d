"""The LKO agenda as a message: its model (agenda, items, reasons) and rendering.

``notifications.lko_agenda`` decides which cases a meeting discusses and why; this module
holds what an agenda shows and renders it with the ``lko_agenda`` templates (no overrides:
the agenda's wording is checked as a whole by ``agenda_problems``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from regiesignaal.notifications.compose.render import TEMPLATE_DIR, count_nl, format_date
from regiesignaal.notifications.delivery.message import ComposedMessage


@dataclass(frozen=True)
class AgendaReason:
    """Why a case is on the agenda, and what the meeting is asked (``rule_id``: the rule
    behind it, kept to follow the case across meetings; never shown)."""

    text: str
    question: str
    weight: int
    rule_id: str = ""
    more_rule_ids: tuple[str, ...] = ()  # a reason that names several signals: the others

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return (self.rule_id, *self.more_rule_ids)


NEW_SINCE_LAST = "nieuw sinds de vorige bespreking"
NO_PROGRESS = "eerder besproken, geen voortgang"
NEW_REASON = "eerder besproken, nu om een andere reden"


@dataclass(frozen=True)
class AgendaItem:
    case_ref: str
    regievoerder: str | None
    team: str | None
    location: str
    reasons: tuple[AgendaReason, ...]
    mark: str = ""  # one of the marks above; empty for a meeting without history
    times_without_progress: int = 0  # earlier agendas in a row with the same reasons
    since: dt.date | None = None  # first of those agendas

    @property
    def score(self) -> int:
        """The highest weight, plus a little for every further signal behind the reasons."""
        weights = sorted((r.weight for r in self.reasons), reverse=True)
        signals = sum(len(r.rule_ids) for r in self.reasons)
        return weights[0] + 5 * (signals - 1) if weights else 0


@dataclass(frozen=True)
class Agenda:
    """A meeting's agenda: at most ``max_cases`` items in full, the cases proposed for the
    regional meeting (RAO) in a short list, the other cases asking for the meeting counted
    (``not_shown``)."""

    as_of: dt.date
    scope: str  # "locatie azc-T01" or "team T01"
    meeting_on: dt.date | None
    items: tuple[AgendaItem, ...]
    cases_considered: int
    rao: tuple[AgendaItem, ...] = ()
    not_shown: int = 0
    previous_on: dt.date | None = None  # the meeting before, when one is on record


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=lambda name: name is not None and name.endswith(".html"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _context(agenda: Agenda) -> dict[str, Any]:
    asking = len(agenda.items) + len(agenda.rao) + agenda.not_shown
    return {
        "scope": agenda.scope,
        "as_of": format_date(agenda.as_of),
        "meeting_on": format_date(agenda.meeting_on) if agenda.meeting_on else None,
        "considered": agenda.cases_considered,
        "asking": asking,
        # "1 van de 3 open zaken vraagt", "5 van de 40 open zaken vragen"
        "considered_text": count_nl(agenda.cases_considered, "open zaak", "open zaken"),
        "asking_verb": "vraagt" if asking == 1 else "vragen",
        "shown_text": (
            "hieronder alle"
            if len(agenda.items) == asking
            else f"hieronder de {len(agenda.items)} meest urgente"
        ),
        "not_shown_text": count_nl(agenda.not_shown, "andere zaak vraagt", "andere zaken vragen"),
        "previous_on": format_date(agenda.previous_on) if agenda.previous_on else "",
        "items": [
            {
                "rank": n,
                "case_ref": item.case_ref,
                "regievoerder": item.regievoerder or "onbekend",
                "mark": item.mark,
                "reasons": [{"text": r.text, "question": r.question} for r in item.reasons],
            }
            for n, item in enumerate(agenda.items, start=1)
        ],
        "rao": [
            {
                "case_ref": item.case_ref,
                "regievoerder": item.regievoerder or "onbekend",
                "times": item.times_without_progress,
                "since": format_date(item.since) if item.since else "",
                "reason": item.reasons[0].text if item.reasons else "",
            }
            for item in agenda.rao
        ],
        "not_shown": agenda.not_shown,
    }


def agenda_subject(agenda: Agenda) -> str:
    when = format_date(agenda.meeting_on) if agenda.meeting_on else format_date(agenda.as_of)
    n = count_nl(len(agenda.items), "zaak", "zaken")
    return f"Regiesignaal: agenda ketenoverleg {agenda.scope}, {when} ({n})"


def render_agenda(agenda: Agenda) -> ComposedMessage:
    """The agenda as a message: subject, plain text and HTML (no names, neutral wording)."""
    context = _context(agenda)
    env = _environment()
    return ComposedMessage(
        subject=agenda_subject(agenda),
        text=env.get_template("lko_agenda.txt").render(context),
        html=env.get_template("lko_agenda.html").render(context),
    )
