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
from regiesignaal.engine.store.silences import (
    Silence,
    active_silences,
    silenced_clause,
    silencing,
)
from regiesignaal.engine.store.tables import agenda_items, signals
from regiesignaal.notifications.compose.lko_agenda import (
    NEW_REASON,
    NEW_SINCE_LAST,
    NO_PROGRESS,
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


@dataclass(frozen=True)
class AgendaOptions:
    """``[lko]``: at most ``max_cases`` cases per meeting in full; a case on ``rao_after``
    earlier agendas in a row without progress is proposed for the regional meeting (RAO),
    at most ``rao_cases`` of them."""

    max_cases: int = 10
    rao_after: int = 2
    rao_cases: int = 5


@dataclass(frozen=True)
class AgendaHistory:
    """The earlier agendas of one meeting, newest first: (meeting date, per case the rule
    ids of its reasons)."""

    agendas: tuple[tuple[dt.date, dict[str, frozenset[str]]], ...] = ()


GENERIC_QUESTION = "Welke hulp van de ketenpartners is nodig om dit op te lossen?"


def _reason(
    rule: Any, began: dt.date | None, overdue: bool, escalated: bool, as_of: dt.date
) -> AgendaReason:
    """The reason a rule with a ``challenge`` puts a case on the agenda; its urgency: the
    severity first (30 points per step), then escalation (20), then the gap's age in weeks
    (at most 19)."""
    severity = rule.severity_for(overdue)
    when = ""
    weeks = 0
    if began is not None and began <= as_of:
        label = rule.since.label if rule.since is not None else "sinds"
        when = f" ({label} {format_date(began)})"
        weeks = (as_of - began).days // 7
    weight = 30 * SEVERITY_RANK.get(severity, 0) + (20 if escalated else 0) + min(19, weeks)
    return AgendaReason(f"{rule.mail_title}{when}", rule.challenge, weight, rule.id)


def _reason_ahead(rule: Any, due_on: dt.date) -> AgendaReason:
    """The reason a rule with a ``challenge`` and ``warn_before`` puts a case on the agenda
    before it fires: the meeting can still act in time. Its urgency is the severity the rule
    will have on the day after ``due_on`` (30 points per step)."""
    severity = rule.severity_for(rule.overdue is not None)
    return AgendaReason(
        f"{rule.mail_title} (uiterlijk {format_date(due_on)})",
        rule.challenge,
        30 * SEVERITY_RANK.get(severity, 0),
        rule.id,
    )


def _reason_for_escalations(
    escalated: Sequence[Escalated], titles: Mapping[str, str]
) -> AgendaReason:
    """One reason for the escalated signals of a case (the question once, not per signal);
    its urgency that of the most urgent: severity (30 a step), escalation (20), weeks open
    until it escalated (at most 19)."""

    def weight(e: Escalated) -> int:
        weeks = min(19, (e.escalated_on - e.opened_on).days // 7)
        return 30 * SEVERITY_RANK.get(e.severity, 0) + 20 + weeks

    ordered = sorted(escalated, key=lambda e: (-weight(e), e.rule_id))
    parts = [
        f"{titles.get(e.rule_id, 'Signaal')} (open sinds {format_date(e.opened_on)})"
        for e in ordered
    ]
    label = "Geëscaleerd signaal" if len(parts) == 1 else "Geëscaleerde signalen"
    return AgendaReason(
        f"{label}: {'; '.join(parts)}",
        GENERIC_QUESTION,
        weight(ordered[0]),
        ordered[0].rule_id,
        tuple(e.rule_id for e in ordered[1:]),
    )


def _follow(
    case_ref: str, rule_ids: frozenset[str], history: AgendaHistory | None
) -> tuple[str, int, dt.date | None]:
    """(mark, earlier agendas in a row with a reason in common, the first of them)."""
    if history is None or not history.agendas:
        return "", 0, None
    times, since = 0, None
    for day, cases in history.agendas:
        before = cases.get(case_ref)
        if before is None or not before & rule_ids:
            break
        times, since = times + 1, day
    latest = history.agendas[0][1].get(case_ref)
    if latest is None:
        return NEW_SINCE_LAST, 0, None
    if times:
        return NO_PROGRESS, times, since
    return NEW_REASON, 0, None


def build_agenda(
    cases: Iterable[Mapping[str, Any]],
    escalated: Iterable[Escalated],
    ruledir: RuleDir,
    as_of: dt.date,
    *,
    location: str | None = None,
    team: str | None = None,
    meeting_on: dt.date | None = None,
    history: AgendaHistory | None = None,
    options: AgendaOptions = AgendaOptions(),
    silences: Sequence[Silence] = (),
) -> Agenda:
    """The agenda of one location (or team) as of ``as_of``.

    A rule that one of ``silences`` silences for the case's team or location gives no
    reason (issue 18).

    A case asks for the meeting when a rule with a ``challenge`` fires on it (the reason
    names the rule's neutral title and since when, the question is the rule's challenge),
    will fire within its ``warn_before`` (the reason names the last day, "uiterlijk"),
    or when signals of it escalated (one reason for all of them). A rule that another
    reason on the case ``covers`` is not repeated. Cases rank by their most urgent reason
    (see ``_reason``; plus 5 per further signal behind the reasons), then by case reference.
    With ``history`` each case is marked against the meeting before, and cases discussed
    ``rao_after`` times in a row without progress are proposed for the RAO instead; at
    most ``max_cases`` cases in full, the rest counted.
    """
    if (location is None) == (team is None):
        raise ValueError("kies precies één van location en team")
    # a rule in shadow mode puts no case on the agenda (issue 18)
    agenda_rules = {r.id for r in ruledir.rules if r.challenge and not r.shadow}
    compiled = compile_rules(ruledir, as_of, only=agenda_rules, ahead=True)
    by_rule = {cr.rule.id: cr for cr in compiled.rules}
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
        fact = build_fact(case, compiled)
        fired = evaluator.fired_levels(fact)
        if silences:
            fired = {
                rid: level
                for rid, level in fired.items()
                if silencing(silences, rid, case.get("team"), location_of(case)) is None
            }
        escalated_ids = {e.rule_id for e in by_case.get(str(case["case_ref"]), [])}
        covered = {c for rid in fired for c in by_rule[rid].rule.covers if c != rid}
        reasons = [
            _reason(
                by_rule[rid].rule,
                compiled.began_on(by_rule[rid], fact),
                overdue,
                rid in escalated_ids,
                as_of,
            )
            for rid, overdue in sorted(fired.items())
            if rid not in covered  # the wider reason's discussion includes it, as in the mail
        ]
        said = set(fired)
        for up in evaluator.upcoming(case, fired):  # still in time: the meeting can act
            if silences and silencing(silences, up.rule_id, case.get("team"), location_of(case)):
                continue
            reasons.append(_reason_ahead(by_rule[up.rule_id].rule, up.due_on))
            said.add(up.rule_id)
        # those above already say it, more precisely
        unsaid = [e for e in by_case.get(str(case["case_ref"]), []) if e.rule_id not in said]
        if unsaid:
            reasons.append(_reason_for_escalations(unsaid, titles))
        if reasons:
            reasons.sort(key=lambda r: (-r.weight, r.rule_id))
            ref = str(case["case_ref"])
            ids = frozenset(rid for r in reasons for rid in r.rule_ids)
            mark, times, since = _follow(ref, ids, history)
            items.append(
                AgendaItem(
                    ref,
                    case.get("regievoerder"),
                    case.get("team"),
                    location_of(case),
                    tuple(reasons),
                    mark,
                    times,
                    since,
                )
            )
    items.sort(key=lambda i: (-i.score, i.case_ref))
    stuck = [i for i in items if i.times_without_progress >= options.rao_after]
    rao = sorted(stuck, key=lambda i: (-i.times_without_progress, -i.score, i.case_ref))
    rao = rao[: options.rao_cases]
    in_rao = {i.case_ref for i in rao}
    rest = [i for i in items if i.case_ref not in in_rao]
    shown = rest[: options.max_cases]
    scope = f"locatie {location}" if location is not None else f"team {team}"
    previous = history.agendas[0][0] if history is not None and history.agendas else None
    return Agenda(
        as_of,
        scope,
        meeting_on,
        tuple(shown),
        considered,
        tuple(rao),
        len(items) - len(shown) - len(rao),
        previous,
    )


def load_history(store: sa.Engine, meeting: str, before: dt.date) -> AgendaHistory:
    """The agendas of ``meeting`` (``Meeting.key``) for meetings before ``before``."""
    c = agenda_items.c
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(c.meeting_on, c.case_ref, c.reasons)
            .where(c.meeting == meeting, c.meeting_on < before)
            .order_by(c.meeting_on.desc())
        ).all()
    agendas: dict[dt.date, dict[str, frozenset[str]]] = {}
    for day, case_ref, reasons in rows:
        agendas.setdefault(day, {})[case_ref] = frozenset(reasons or ())
    return AgendaHistory(tuple(sorted(agendas.items(), key=lambda kv: kv[0], reverse=True)))


def record_agenda(conn: sa.Connection, meeting: str, meeting_on: dt.date, agenda: Agenda) -> int:
    """Keep which cases ``agenda`` held (in full and for the RAO), once per meeting date;
    returns the rows written (0 when this meeting's agenda was recorded already)."""
    c = agenda_items.c
    done = conn.execute(
        sa.select(sa.func.count()).where(c.meeting == meeting, c.meeting_on == meeting_on)
    ).scalar_one()
    if done:
        return 0
    rows = [
        {
            "meeting": meeting,
            "meeting_on": meeting_on,
            "case_ref": item.case_ref,
            "reasons": sorted({rid for r in item.reasons for rid in r.rule_ids}),
            "rank": rank,
            "created_at": dt.datetime.now(dt.UTC),
        }
        for rank, item in enumerate((*agenda.items, *agenda.rao), start=1)
    ]
    if rows:
        conn.execute(sa.insert(agenda_items), rows)
    return len(rows)


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
        signals.c.covered_by.is_(None),  # counted with the signal that covers it
        ~silenced_clause(signals, as_of),  # a silenced signal is on no agenda (issue 18)
        signals.c.shadow.is_(False),  # nor is one of a rule in shadow mode
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


AGENDA_KEYS = {"max_cases": (1, 50), "rao_after": (1, 20), "rao_cases": (0, 20)}
"""The ``[lko]`` settings of every agenda, with their bounds (see ``AgendaOptions``)."""


def _lko_section(config_path: Path) -> Any:
    """The ``[lko]`` table of the configuration file ({} when absent); LkoConfigError naming
    the file when it cannot be read."""
    try:
        data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise LkoConfigError(
            f"{config_path}: het configuratiebestand kan niet worden gelezen"
        ) from None
    return data.get("lko", {})


def load_agenda_options(config_path: Path | None) -> AgendaOptions:
    """``max_cases``, ``rao_after`` and ``rao_cases`` from ``[lko]`` (defaults without a
    file). Raises LkoConfigError naming the file and the key; bad values are not repeated."""
    if config_path is None:
        return AgendaOptions()
    source = str(config_path)
    section = _lko_section(config_path)
    values: dict[str, int] = {}
    for key, (low, high) in AGENDA_KEYS.items():
        if not isinstance(section, dict) or key not in section:
            continue
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise LkoConfigError(
                f"{source}: [lko] {key} moet een geheel getal van {low} tot en met {high} zijn"
            )
        values[key] = value
    return AgendaOptions(**values)


def load_meetings(config_path: Path | None) -> list[Meeting]:
    """The ``[[lko.meeting]]`` blocks of the configuration file (none without a file).

    Each block: ``location`` or ``team`` (one of them), ``weekday`` (maandag ... vrijdag,
    or English), ``recipients`` (a list of email addresses, may be empty). Raises
    LkoConfigError naming the file and the block; bad values are not repeated.
    """
    if config_path is None:
        return []
    source = str(config_path)
    section = _lko_section(config_path)
    if not isinstance(section, dict) or set(section) - {"meeting", *AGENDA_KEYS}:
        raise LkoConfigError(
            f"{source}: [lko] kent alleen {', '.join(AGENDA_KEYS)} en blokken [[lko.meeting]]"
        )
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
    *,
    store: sa.Engine | None = None,
    options: AgendaOptions = AgendaOptions(),
) -> list[tuple[Meeting, dt.date, Agenda, ComposedMessage]]:
    """For every meeting whose agenda is due on ``as_of``: its date, agenda and rendered
    agenda; with ``store`` each agenda is compared with the meeting's earlier ones."""
    out = []
    quiet: list[Silence] = []
    if store is not None:
        with store.connect() as conn:
            quiet = active_silences(conn, as_of)
    for m in meetings:
        if not m.recipients or not is_due(m, as_of):
            continue
        day = next_meeting(m, as_of)
        history = load_history(store, m.key, day) if store is not None else None
        agenda = build_agenda(
            cases,
            escalated,
            ruledir,
            as_of,
            location=m.location,
            team=m.team,
            meeting_on=day,
            history=history,
            options=options,
            silences=quiet,
        )
        out.append((m, day, agenda, render_agenda(agenda)))
    return out
