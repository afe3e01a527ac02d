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

from regiesignaal.notifications.compose.render import TEMPLATE_DIR, format_date
from regiesignaal.notifications.delivery.message import ComposedMessage


@dataclass(frozen=True)
class AgendaReason:
    """Why a case is on the agenda, and what the meeting is asked."""

    text: str
    question: str
    weight: int


@dataclass(frozen=True)
class AgendaItem:
    case_ref: str
    regievoerder: str | None
    team: str | None
    location: str
    reasons: tuple[AgendaReason, ...]

    @property
    def score(self) -> int:
        """The highest weight, plus a little for every further reason."""
        weights = sorted((r.weight for r in self.reasons), reverse=True)
        return weights[0] + 5 * (len(weights) - 1) if weights else 0


@dataclass(frozen=True)
class Agenda:
    as_of: dt.date
    scope: str  # "locatie azc-T01" or "team T01"
    meeting_on: dt.date | None
    items: tuple[AgendaItem, ...]
    cases_considered: int


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
    return {
        "scope": agenda.scope,
        "as_of": format_date(agenda.as_of),
        "meeting_on": format_date(agenda.meeting_on) if agenda.meeting_on else None,
        "considered": agenda.cases_considered,
        "items": [
            {
                "rank": n,
                "case_ref": item.case_ref,
                "regievoerder": item.regievoerder or "onbekend",
                "reasons": [{"text": r.text, "question": r.question} for r in item.reasons],
            }
            for n, item in enumerate(agenda.items, start=1)
        ],
    }


def agenda_subject(agenda: Agenda) -> str:
    when = format_date(agenda.meeting_on) if agenda.meeting_on else format_date(agenda.as_of)
    n = len(agenda.items)
    return f"Regiesignaal: agenda ketenoverleg {agenda.scope}, {when} ({n} zaken)"


def render_agenda(agenda: Agenda) -> ComposedMessage:
    """The agenda as a message: subject, plain text and HTML (no names, neutral wording)."""
    context = _context(agenda)
    env = _environment()
    return ComposedMessage(
        subject=agenda_subject(agenda),
        text=env.get_template("lko_agenda.txt").render(context),
        html=env.get_template("lko_agenda.html").render(context),
    )
