"""The agenda of the local chain meeting (LKO, inspectorate recommendation R4).

Per location (or per team): the open cases the meeting should discuss, why, and the
question each case puts to the meeting, ranked by urgency. Built from the same rule pack
as the nightly run and from the open episodes in the signal store:

- a departure term that ends soon or has passed without an LKO decision (TERM-ENDING);
- a stay at a restricted-freedom location that needs its review (VBL-10W; the agenda
  says "periodieke bespreking", never the kind of location or its maximum stay);
- an LKO decision without recorded challenge (LKO-CHALLENGE);
- a case in detention without departure activity (DETENTION-PACE);
- any escalated signal in the store (shown by its neutral mail title).

"Location" is the optional top-level case field ``location`` (a location id such as
``azc-T01``; the contract allows additions and the source keeps it). A case without it
belongs to no location; ``--team`` selects by team instead.

Privacy: the agenda is mail. It carries case references, staff ids, dates and neutral
wording only: no names, no medical detail and no rule ids or words that reveal a case's
category (``agenda_problems`` checks the rendered text, as the tests do for all mail).
Meetings with their weekday and recipients are configured in ``[[lko.meeting]]`` blocks of
regiesignaal.toml (``load_meetings``); ``send_due`` queues each agenda in the outbox the
working day before its meeting, once per meeting date.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.facts import build_fact
from regiesignaal.engine.language.mailtext import sensitive_words
from regiesignaal.engine.language.rulefile.model import MAIL_FORBIDDEN, RuleDir
from regiesignaal.engine.store.tables import signals
from regiesignaal.notifications.compose.lko_agenda import (
    Agenda,
    AgendaItem,
    AgendaReason,
    render_agenda,
)
from regiesignaal.notifications.compose.model import SEVERITY_RANK
from regiesignaal.notifications.compose.render import format_date
from regiesignaal.notifications.delivery.message import ComposedMessage

WEEKDAYS_NL = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")


WEEKDAYS_EN = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


NO_LOCATION = "(geen locatie)"


# Rules whose signal puts a case on the agenda, with the reason's weight (higher = earlier).
AGENDA_RULES = ("TERM-ENDING", "VBL-10W", "LKO-CHALLENGE", "DETENTION-PACE")


@dataclass(frozen=True)
class Escalated:
    """An open, escalated episode in the store."""

    case_ref: str
    rule_id: str
    severity: str
    opened_on: dt.date
    escalated_on: dt.date


@dataclass(frozen=True)
class Meeting:
    """A configured chain meeting: where, on which weekday, who gets the agenda."""

    location: str | None
    team: str | None
    weekday: int  # date.weekday(): 0 = Monday
    recipients: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return f"locatie:{self.location}" if self.location else f"team:{self.team}"

    @property
    def scope(self) -> str:
        return f"locatie {self.location}" if self.location else f"team {self.team}"


class LkoConfigError(ValueError):
    """A problem in the ``[[lko.meeting]]`` configuration; a complete Dutch message."""


def location_of(case: Mapping[str, Any]) -> str:
    value = case.get("location")
    return str(value) if isinstance(value, str) and value.strip() else NO_LOCATION


def _stay_days(case: Mapping[str, Any], as_of: dt.date) -> int | None:
    """Days since the running restricted-freedom measure began."""
    starts = [
        m["from"]
        for m in case.get("measures") or []
        if m.get("kind") == "vbl"
        and m.get("from") is not None
        and m["from"] <= as_of
        and (m.get("until") is None or m["until"] >= as_of)
    ]
    return (as_of - max(starts)).days if starts else None


def _last_activity(case: Mapping[str, Any], as_of: dt.date) -> dt.date | None:
    days = [
        r["on"]
        for group in ("contacts", "interviews")
        for r in case.get(group) or []
        if r.get("on") is not None and r["on"] <= as_of
    ]
    return max(days) if days else None


def _unchallenged_on(case: Mapping[str, Any], as_of: dt.date) -> dt.date | None:
    days = [
        r["on"]
        for r in case.get("lko") or []
        if r.get("decision") in ("gedwongen", "bewaring")
        and r.get("challenge_recorded") is not True
        and r.get("on") is not None
        and r["on"] <= as_of
    ]
    return max(days) if days else None


def _reasons_from_rules(
    case: Mapping[str, Any], fired: Mapping[str, bool], as_of: dt.date
) -> list[AgendaReason]:
    out = []
    if "TERM-ENDING" in fired:
        end = case.get("departure_term_ends_on")
        shown = format_date(end) if isinstance(end, dt.date) else "onbekend"
        if fired["TERM-ENDING"]:
            out.append(
                AgendaReason(
                    f"Vertrektermijn verstreken op {shown}, zonder besluit van het overleg",
                    "Welk vervolg besluit het overleg, en wie voert het uit?",
                    100,
                )
            )
        else:
            left = (end - as_of).days if isinstance(end, dt.date) else 7
            out.append(
                AgendaReason(
                    f"Vertrektermijn eindigt op {shown}",
                    "Welk besluit neemt het overleg vóór het einde van de termijn?",
                    80 + max(0, 7 - left),  # the sooner, the higher
                )
            )
    if "VBL-10W" in fired:
        days = _stay_days(case, as_of)
        stay = f"{days} dagen" if days is not None else "lang"
        # neutral: no maximum stay or location kind (that would reveal the category)
        if fired["VBL-10W"]:
            text = f"Periodieke bespreking verstreken: verblijf duurt {stay}, niet besproken"
            weight = 100
        else:
            text = f"Periodieke bespreking nodig: verblijf duurt {stay}, nog niet besproken"
            weight = 70 + min(14, max(0, (days or 70) - 70))  # the longer, the higher
        out.append(
            AgendaReason(text, "Welk vervolg besluit het overleg, en wie regelt het?", weight)
        )
    if "DETENTION-PACE" in fired:
        last = _last_activity(case, as_of)
        since = f"sinds {format_date(last)}" if last else "nog nooit"
        out.append(
            AgendaReason(
                f"Geen vertrekactiviteit vastgelegd ({since})",
                "Welke vertrekstap volgt deze week, en wie zet die?",
                60,
            )
        )
    if "LKO-CHALLENGE" in fired:
        on = _unchallenged_on(case, as_of)
        when = f" van {format_date(on)}" if on else ""
        out.append(
            AgendaReason(
                f"Besluit van het overleg{when} zonder vastgelegde tegenspraak",
                "Wie organiseert de tegenspraak, of wordt het besluit heroverwogen?",
                50,
            )
        )
    return out


def _reason_for_escalation(e: Escalated, titles: Mapping[str, str]) -> AgendaReason:
    title = titles.get(e.rule_id, "Signaal")
    return AgendaReason(
        f"Geëscaleerd signaal: {title} (open sinds {format_date(e.opened_on)})",
        "Welke hulp van de ketenpartners is nodig om dit op te lossen?",
        40 + 10 * SEVERITY_RANK.get(e.severity, 0),
    )


def build_agenda(
    cases: Iterable[Mapping[str, Any]],
    escalated: Iterable[Escalated],
    ruledir: RuleDir,
    as_of: dt.date,
    *,
    location: str | None = None,
    team: str | None = None,
    meeting_on: dt.date | None = None,
) -> Agenda:
    """The ranked agenda of the open cases of one location (or team) as of ``as_of``.

    Exactly one of ``location``/``team``. Cases on the agenda come first by score (highest
    reason weight, plus 5 per further reason), then by case reference.
    """
    if (location is None) == (team is None):
        raise ValueError("kies precies één van location en team")
    compiled = compile_rules(ruledir, as_of, only=set(AGENDA_RULES))
    evaluator = Evaluator(compiled, "python")
    titles = {r.id: r.mail_title for r in ruledir.rules}
    by_case: dict[str, list[Escalated]] = {}
    for e in escalated:
        by_case.setdefault(e.case_ref, []).append(e)
    items = []
    considered = 0
    for case in cases:
        if case.get("status", "open") != "open":
            continue
        if location is not None and location_of(case) != location:
            continue
        if team is not None and case.get("team") != team:
            continue
        considered += 1
        fired = evaluator.fired_levels(build_fact(case, compiled))
        reasons = _reasons_from_rules(case, fired, as_of)
        for e in sorted(by_case.get(str(case["case_ref"]), []), key=lambda e: e.rule_id):
            if e.rule_id not in fired:  # those above already say it, more precisely
                reasons.append(_reason_for_escalation(e, titles))
        if reasons:
            reasons.sort(key=lambda r: -r.weight)
            items.append(
                AgendaItem(
                    str(case["case_ref"]),
                    case.get("regievoerder"),
                    case.get("team"),
                    location_of(case),
                    tuple(reasons),
                )
            )
    items.sort(key=lambda i: (-i.score, i.case_ref))
    scope = f"locatie {location}" if location is not None else f"team {team}"
    return Agenda(as_of, scope, meeting_on, tuple(items), considered)


def load_escalated(store: sa.Engine, as_of: dt.date) -> list[Escalated]:
    """The open episodes in the store that had escalated on or before ``as_of``."""
    query = sa.select(
        signals.c.case_ref,
        signals.c.rule_id,
        signals.c.severity,
        signals.c.opened_on,
        signals.c.escalated_on,
    ).where(
        signals.c.closed_on.is_(None),
        signals.c.escalated_on.is_not(None),
        signals.c.escalated_on <= as_of,
    )
    with store.connect() as conn:
        return [Escalated(*row) for row in conn.execute(query)]


_RULE_ID = re.compile(r"\b[A-Z][A-Z0-9]+(?:-[A-Z0-9]+)+\b")


def agenda_problems(message: ComposedMessage, rule_ids: Iterable[str]) -> list[str]:
    """Words in a rendered agenda that must not be in mail (empty when clean): the listed
    sensitive words and phrases (``engine.language.mailtext.sensitive_words``, the check every rule
    text gets) and rule ids, as sorted strings."""
    found = []
    for part in (message.subject, message.text, message.html):
        found += sensitive_words(part, MAIL_FORBIDDEN)
        for rid in rule_ids:
            if re.search(rf"\b{re.escape(rid)}\b", part):
                found.append(rid)
    return sorted(set(found))


def _weekday(value: Any, where: str) -> int:
    text = str(value).strip().lower() if isinstance(value, str) else ""
    for names in (WEEKDAYS_NL, WEEKDAYS_EN):
        if text in names:
            return names.index(text)
    raise LkoConfigError(f"{where}: 'weekday' moet een dag zijn, bijv. \"dinsdag\"")


def load_meetings(config_path: Path | None) -> list[Meeting]:
    """The ``[[lko.meeting]]`` blocks of the configuration file (none without a file).

    Each block: ``location`` or ``team`` (one of them), ``weekday`` (maandag ... vrijdag,
    or English), ``recipients`` (a list of email addresses, may be empty). Raises
    LkoConfigError naming the file and the block; bad values are not repeated.
    """
    if config_path is None:
        return []
    source = str(config_path)
    try:
        data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise LkoConfigError(f"{source}: het configuratiebestand kan niet worden gelezen") from None
    section = data.get("lko", {})
    if not isinstance(section, dict) or set(section) - {"meeting"}:
        raise LkoConfigError(f"{source}: [lko] kent alleen blokken [[lko.meeting]]")
    blocks = section.get("meeting", [])
    if not isinstance(blocks, list):
        raise LkoConfigError(f"{source}: schrijf elk overleg als een blok [[lko.meeting]]")
    out = []
    seen: set[str] = set()
    for n, block in enumerate(blocks, start=1):
        where = f"{source}, [[lko.meeting]] nummer {n}"
        if not isinstance(block, dict):
            raise LkoConfigError(f"{where}: verwacht location of team, weekday en recipients")
        unknown = sorted(set(block) - {"location", "team", "weekday", "recipients"})
        if unknown:
            raise LkoConfigError(
                f"{where}: onbekende sleutel '{unknown[0]}'; "
                "toegestaan: location, team, weekday, recipients"
            )
        location, team = block.get("location"), block.get("team")
        if (location is None) == (team is None) or not isinstance(location or team, str):
            raise LkoConfigError(f"{where}: geef precies één van 'location' of 'team' (tekst)")
        recipients = block.get("recipients", [])
        if not isinstance(recipients, list) or not all(
            isinstance(r, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", r) for r in recipients
        ):
            raise LkoConfigError(
                f"{where}: 'recipients' moet een lijst van e-mailadressen zijn, "
                'bijv. ["lko-noord@dtv.example"]'
            )
        meeting = Meeting(location, team, _weekday(block.get("weekday"), where), tuple(recipients))
        if meeting.key in seen:
            raise LkoConfigError(f"{where}: dit overleg ({meeting.scope}) staat er twee keer in")
        seen.add(meeting.key)
        out.append(meeting)
    return out


def next_meeting(meeting: Meeting, as_of: dt.date) -> dt.date:
    """The first meeting day after ``as_of``."""
    ahead = (meeting.weekday - as_of.weekday() - 1) % 7 + 1
    return as_of + dt.timedelta(days=ahead)


def is_due(meeting: Meeting, as_of: dt.date) -> bool:
    """The agenda goes out on the last working day before the meeting (or earlier if that
    day is not a working day): the next meeting falls on or before the next working day."""
    from regiesignaal.engine.language.dates import add_working_days

    return next_meeting(meeting, as_of) <= add_working_days(as_of, 1)


def recipient_key(meeting: Meeting, index: int) -> str:
    """The outbox recipient id of one recipient of one meeting (no address in it)."""
    return f"lko:{meeting.key}:{index}"[:64]


def due_messages(
    meetings: Sequence[Meeting],
    cases: Sequence[Mapping[str, Any]],
    escalated: Sequence[Escalated],
    ruledir: RuleDir,
    as_of: dt.date,
) -> list[tuple[Meeting, dt.date, ComposedMessage]]:
    """For every meeting whose agenda is due on ``as_of``: its date and rendered agenda."""
    out = []
    for m in meetings:
        if not m.recipients or not is_due(m, as_of):
            continue
        day = next_meeting(m, as_of)
        agenda = build_agenda(
            cases, escalated, ruledir, as_of, location=m.location, team=m.team, meeting_on=day
        )
        out.append((m, day, render_agenda(agenda)))
    return out
