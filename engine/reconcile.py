"""The signal state machine: today's fired (case, rule) pairs against the signal store.

This module owns every transition of a signal episode and is the only writer of
``store.signal_events``. A row of ``store.signals`` is one *episode*: open while
``closed_on`` IS NULL. For the as-of date D:

- a fired key with an open episode stays open: ``last_seen_on`` = D, and its severity,
  regievoerder, team and explanation follow today's values (events ``severity_changed``,
  ``reassigned``, ``explained``, ``explanation_revoked``, ``explanation_expired``); an
  episode that was in a gap continues (event ``gap_ended``): same ``opened_on``, same
  escalation;
- a fired key without an open episode opens a new episode on D (event ``opened``, or
  ``reopened`` when the key had an earlier closed episode). On the first night of the
  product and of a newly introduced rule it is a *baseline* episode (``baseline`` true,
  ``counts.baseline``, not ``new``): its escalation clock (``clock_start``) starts a
  deterministic 0 .. ``baseline_spread_days - 1`` working days after D, by a hash of the
  key, so the findings that existed before do not all escalate on one day;
- an open episode whose key did not fire starts a *gap* (event ``gap_started``,
  ``gap_since`` = D, ``gap_reason``; ``last_seen_on`` stays) and stays open; it is closed
  on the first D with ``working_days_between(last_seen_on, D) > grace_days``, with
  ``close_reason`` ``case_closed`` (its case is no longer open), else ``rule_removed``
  (its rule is no longer active), else ``resolved`` (an event of that name; ``closed_on``
  = D). When it fires again before that, the gap ends (event ``gap_ended``).
  ``grace_days`` 0 closes at once;
- an open episode of a rule retired by an operator (``regiesignaal rules retire``) and not
  active closes at once with ``rule_retired``;
- an open episode whose rule has ``escalate_after`` gets ``escalated_on`` = clock start +
  escalate_after (:func:`engine.language.dates.shift`) once D reaches that date and it has no valid
  explanation (event ``escalated``); once set it stays for the episode.

Explanations come from the case file (``Fired.explained_until``) and from the command line
(``explanations`` table). An explanation's end date is kept after it passes
(``explained_until`` < D) and ``explanation_expired_on`` is set to it. A rule's
``max_explanation`` caps an explanation at D + cap from the day it is first applied; the
end date as given is kept in ``explained_given_until``. An explanation carries a reason code
(``explained_reason``); when first honoured the episode keeps a fingerprint of the rule's
inputs (``Fired.inputs`` -> ``explained_inputs``); on a later D with other inputs it lapses
(event ``explanation_lapsed``, ``explanation_lapsed_on`` = D) and that explanation (its
end date as given, ``explanation_lapsed_given``) is not honoured again in the episode.
Every close records the episode's outcome (:data:`OUTCOMES`, :func:`outcome_of`).

Reconcile only moves forward: it refuses a D earlier than a date already in the store.
Re-running the same D with the same inputs changes nothing and writes no event.

:func:`plan` is pure; :func:`apply` writes a plan with a bounded number of batched
statements inside the caller's transaction; :func:`reconcile` loads, plans and applies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from regiesignaal.engine.language.casefile import REASON_OTHER
from regiesignaal.engine.language.dates import (
    Duration,
    add_working_days,
    shift,
    working_days_between,
)
from regiesignaal.engine.language.evaluator import Upcoming
from regiesignaal.engine.store.episodes import (
    EVENT_COLUMNS,
    SIGNAL_COLUMNS,
    WARNING_COLUMNS,
    Key,
    KeyRange,
    OpenEpisode,
    OpenWarning,
    RuleMode,
    StoredExplanation,
    insert_rows,
    load_closed_keys,
    load_known_rules,
    load_open_episodes,
    load_open_warnings,
    load_rule_modes,
    load_stored_explanations,
    update_by_ids,
)
from regiesignaal.engine.store.silences import Silence, active_silences, end_lapsed, silencing
from regiesignaal.engine.store.tables import (
    known_rules,
    rule_events,
    signal_events,
    signals,
    warnings,
)

CLOSE_RESOLVED = "resolved"


CLOSE_CASE_CLOSED = "case_closed"


CLOSE_RULE_REMOVED = "rule_removed"


CLOSE_RULE_RETIRED = "rule_retired"


MODE_LIVE = "live"


MODE_SHADOW = "shadow"


MODE_CHANGED = "mode_changed"
"""The event of an open episode whose rule changed mode (``details``: from, to, and who and
why when ``regiesignaal rules promote`` recorded them)."""


SOURCE_CASE_FILE = "case_file"


SOURCE_COMMAND_LINE = "command_line"


# Event rows per executemany.
EVENT_CHUNK = 10_000


# Inserted or updated signal rows per executemany: the parameter dicts of one chunk are
# all that is held at once (issue 11: memory bounded by the chunk, not the signals).
INSERT_CHUNK = 10_000


class ReconcileError(Exception):
    """Reconcile refused to run; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Fired:
    """A (case, rule) the rules gave today, with the values the episode should carry.

    ``explained_until``: end date of the case file's explanation for this rule; one that
    lies before the as-of date counts as no explanation.
    """

    severity: str
    regievoerder: str | None
    team: str | None
    explained_until: dt.date | None = None
    explained_by: str | None = None
    began_on: dt.date | None = None  # when the gap began (the rule's ``since``), if known
    location: str | None = None  # the case's neutral location id
    inputs: str | None = None  # fingerprint of the rule's inputs (``Hit.inputs``)
    explained_reason: str | None = None  # reason code of the case file's explanation


@dataclass(frozen=True, slots=True)
class RuleInfo:
    severity: str
    escalate_after: Duration | None = None
    max_explanation: Duration | None = None
    covers: tuple[str, ...] = ()  # rules whose signal on the same case this one covers
    shadow: bool = False  # ``mode: shadow``: episodes kept with full history, never mailed


@dataclass(frozen=True, slots=True)
class Policy:
    """``grace_days``: working days a signal may be absent and still continue its episode;
    ``baseline_spread_days``: working days over which baseline escalation clocks start."""

    grace_days: int = 0
    baseline_spread_days: int = 10


@dataclass(frozen=True, slots=True)
class NewEpisode:
    case_ref: str
    rule_id: str
    severity: str
    regievoerder: str | None
    team: str | None
    reopened: bool
    escalated_on: dt.date | None
    explained_until: dt.date | None
    baseline: bool = False
    clock_start: dt.date | None = None
    explained_since: dt.date | None = None
    explained_given_until: dt.date | None = None
    covered_by: str | None = None
    began_on: dt.date | None = None
    location: str | None = None
    explained_inputs: str | None = None
    explained_reason: str | None = None
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class EpisodeUpdate:
    """New values for a still-open episode of which more than last_seen_on changes.

    ``seen``: the key fired today (``last_seen_on`` becomes D); False for a gap start.
    """

    id: int
    severity: str
    regievoerder: str | None
    team: str | None
    escalated_on: dt.date | None
    explained_until: dt.date | None
    gap_since: dt.date | None = None
    gap_reason: str | None = None
    explained_since: dt.date | None = None
    explained_given_until: dt.date | None = None
    explanation_expired_on: dt.date | None = None
    seen: bool = True
    covered_by: str | None = None
    began_on: dt.date | None = None
    location: str | None = None
    explained_inputs: str | None = None
    explanation_lapsed_on: dt.date | None = None
    explanation_lapsed_given: dt.date | None = None
    explained_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EpisodeClose:
    id: int
    reason: str
    outcome: str | None = None  # see OUTCOMES
    outcome_reason: str | None = None  # the explanation's reason code (outcome explained)


OUTCOMES = ("resolved", "explained", "case_closed", "rule_changed", "covered")
"""How a closed episode ended (issue 18): resolved by a change in the case; explained (the
explanation in force when it stopped firing, with its reason); the case closed; its rule
changed, removed or retired; covered by another rule's signal on the same case."""


def outcome_of(reason: str, episode: OpenEpisode) -> tuple[str, str | None]:
    """The outcome of an episode closed with ``reason`` (a close reason)."""
    if reason == CLOSE_CASE_CLOSED:
        return "case_closed", None
    if reason in (CLOSE_RULE_REMOVED, CLOSE_RULE_RETIRED):
        return "rule_changed", None
    until = episode.explained_until
    if until is not None and until >= episode.last_seen_on:
        return "explained", episode.explained_reason or REASON_OTHER
    if episode.covered_by is not None:
        return "covered", None
    return "resolved", None


@dataclass(frozen=True, slots=True)
class Event:
    """One transition. ``signal_id`` None: the episode is inserted by the same plan. A
    warning's event has ``warning`` set and names it by ``warning_id`` (None: inserted by
    the same plan)."""

    signal_id: int | None
    case_ref: str
    rule_id: str
    kind: str
    details: dict[str, Any] | None = None
    warning: bool = False
    warning_id: int | None = None


WARNING_EVENTS = ("warned", "warning_moved", "warning_ended")
"""The events of a warning: opened (with its date), its date moved, ended (with why)."""


@dataclass(frozen=True, slots=True)
class ReconcileCounts:
    """What one reconcile run changed.

    ``new`` includes ``reopened`` and excludes ``baseline`` (first-night findings);
    ``resolved``, ``closed_case``, ``rule_removed`` and ``rule_retired`` are the closes by
    reason; ``in_gap`` counts open episodes absent today but inside the grace period
    (``gap_started`` of them started today); ``escalated_today`` counts episodes this run
    escalated (their ``escalated_on`` may lie before D when runs were skipped);
    ``explained`` counts fired keys with an explanation valid on D;
    ``explanation_expired`` explanations that ran out this run; ``explanation_lapsed``
    explanations that lapsed this run because the facts the rule reads changed.
    """

    new: int = 0
    reopened: int = 0
    still_open: int = 0
    resolved: int = 0
    closed_case: int = 0
    rule_removed: int = 0
    escalated_today: int = 0
    explained: int = 0
    baseline: int = 0
    in_gap: int = 0
    gap_started: int = 0
    rule_retired: int = 0
    explanation_expired: int = 0
    explanation_lapsed: int = 0  # explanations that lapsed this run: the rule's inputs changed
    covered: int = 0  # fired keys covered today by another rule's signal on the same case
    warned: int = 0  # warnings opened today
    warnings_open: int = 0  # warnings open after today

    @property
    def closed(self) -> int:
        return self.resolved + self.closed_case + self.rule_removed + self.rule_retired

    @property
    def open(self) -> int:
        return self.new + self.baseline + self.still_open + self.in_gap

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ReconcilePlan:
    """All changes for one as-of date. ``touches``: ids whose only change is last_seen_on."""

    as_of: dt.date
    inserts: list[NewEpisode] = field(default_factory=list)
    touches: list[int] = field(default_factory=list)
    updates: list[EpisodeUpdate] = field(default_factory=list)
    closes: list[EpisodeClose] = field(default_factory=list)
    counts: ReconcileCounts = field(default_factory=ReconcileCounts)
    events: list[Event] = field(default_factory=list)
    introduced_rules: list[str] = field(default_factory=list)  # first seen today
    problems: list[str] = field(default_factory=list)
    warnings: WarningPlan | None = None  # None: warnings were not evaluated
    modes: dict[str, str] = field(default_factory=dict)  # mode of each introduced rule

    @property
    def is_empty(self) -> bool:
        return not (
            self.inserts
            or self.touches
            or self.updates
            or self.closes
            or self.events
            or self.introduced_rules
            or (self.warnings is not None and not self.warnings.is_empty)
        )


@dataclass(frozen=True)
class WarningPlan:
    """The changes to the warnings of one as-of date: new ones, ones still open (their
    date or case manager possibly changed), ones that ended (with why) and their events."""

    inserts: list[tuple[Key, Upcoming]] = field(default_factory=list)
    touches: list[int] = field(default_factory=list)
    moves: list[tuple[int, Upcoming]] = field(default_factory=list)
    closes: list[tuple[int, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    still_open: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.inserts or self.touches or self.moves or self.closes or self.events)


WARNING_FIRED = "fired"
WARNING_CLEARED = "cleared"


def plan_warnings(
    open_warnings: Iterable[OpenWarning],
    upcoming: Mapping[Key, Upcoming],
    fired_keys: Container[Key],
    open_case_refs: Container[str],
    active_rules: Container[str],
    as_of: dt.date,
    untouched_case_refs: Collection[str] = (),
) -> WarningPlan:
    """Decide the warnings of ``as_of``; pure. A warning opens when a rule will fire if
    nothing changes (event ``warned``, with the last day to act), follows a changed date
    (``warning_moved``) or case manager, and ends (``warning_ended``) when the rule fires
    (``fired``), would no longer fire within its warning time (``cleared``: done, or the
    date moved away), the case closed or the rule went. A case that could not be read
    today keeps its warnings as they are."""
    out = WarningPlan()
    untouched = set(untouched_case_refs)
    by_key = {(w.case_ref, w.rule_id): w for w in open_warnings}
    for key in sorted(upcoming):
        soon = upcoming[key]
        open_warning = by_key.get(key)
        if open_warning is None:
            out.inserts.append((key, soon))
            out.events.append(
                Event(None, *key, "warned", {"due": soon.due_on.isoformat()}, warning=True)
            )
            continue
        if soon.due_on != open_warning.due_on:
            out.events.append(
                Event(
                    None,
                    *key,
                    "warning_moved",
                    {"from": open_warning.due_on.isoformat(), "to": soon.due_on.isoformat()},
                    warning=True,
                    warning_id=open_warning.id,
                )
            )
        if (soon.due_on, soon.regievoerder, soon.team) != (
            open_warning.due_on,
            open_warning.regievoerder,
            open_warning.team,
        ):
            out.moves.append((open_warning.id, soon))
        elif open_warning.last_seen_on != as_of:
            out.touches.append(open_warning.id)
    for key in sorted(by_key.keys() - upcoming.keys()):
        if key[0] in untouched:
            continue
        if key in fired_keys:
            reason = WARNING_FIRED
        elif key[0] not in open_case_refs:
            reason = CLOSE_CASE_CLOSED
        elif key[1] not in active_rules:
            reason = CLOSE_RULE_REMOVED
        else:
            reason = WARNING_CLEARED
        w = by_key[key]
        out.closes.append((w.id, reason))
        out.events.append(
            Event(
                None,
                *key,
                "warning_ended",
                {"reason": reason, "due": w.due_on.isoformat()},
                warning=True,
                warning_id=w.id,
            )
        )
    return dataclasses.replace(out, still_open=len(by_key) - len(out.closes) + len(out.inserts))


def apply_warnings(conn: Connection, plan: WarningPlan, as_of: dt.date, run_id: int | None) -> None:
    """Write the warning rows of ``plan`` (their events are written with the signals')."""
    if plan.closes:
        for reason in sorted({r for _, r in plan.closes}):
            ids = [i for i, r in plan.closes if r == reason]
            for start in range(0, len(ids), INSERT_CHUNK):
                conn.execute(
                    sa.update(warnings)
                    .where(warnings.c.id.in_(ids[start : start + INSERT_CHUNK]))
                    .values(closed_on=as_of, close_reason=reason, closed_run_id=run_id)
                )
    if plan.touches:
        for start in range(0, len(plan.touches), INSERT_CHUNK):
            conn.execute(
                sa.update(warnings)
                .where(warnings.c.id.in_(plan.touches[start : start + INSERT_CHUNK]))
                .values(last_seen_on=as_of)
            )
    if plan.moves:
        stmt = (
            sa.update(warnings)
            .where(warnings.c.id == sa.bindparam("b_id"))
            .values(
                due_on=sa.bindparam("b_due"),
                regievoerder=sa.bindparam("b_rv"),
                team=sa.bindparam("b_team"),
                last_seen_on=as_of,
            )
        )
        conn.execute(
            stmt,
            [
                {"b_id": i, "b_due": u.due_on, "b_rv": u.regievoerder, "b_team": u.team}
                for i, u in plan.moves
            ],
        )
    if plan.inserts:
        insert_rows(
            conn,
            warnings,
            WARNING_COLUMNS,
            [
                (*key, u.regievoerder, u.team, u.due_on, as_of, as_of, None, None, run_id, None)
                for key, u in plan.inserts
            ],
        )


def baseline_offset(key: Key, spread_days: int) -> int:
    """Working days (0 .. spread_days - 1) a baseline episode's escalation clock is moved:
    a stable hash of the key, so the same findings always get the same spread."""
    if spread_days <= 1:
        return 0
    digest = hashlib.blake2b(f"{key[0]}\x00{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % spread_days


def covered_keys(
    fired: Mapping[Key, Any],
    explained: Mapping[Key, bool],
    active_rules: Mapping[str, RuleInfo],
) -> dict[Key, str]:
    """Which fired keys are covered today, and by which rule: a signal is covered when
    another rule that lists it in ``covers`` fires on the same case and is not explained
    today (an explained signal covers nothing: the case manager said it does not apply).
    The covering rule with the smallest id is named; chains (A covers B covers C) cover
    C by B, and B by A."""
    covering = {
        rid: set(info.covers)
        for rid, info in active_rules.items()
        if info.covers and not info.shadow  # a shadow rule hides nothing that is live
    }
    if not covering:
        return {}
    live: dict[str, list[str]] = {}
    for (case_ref, rule_id), is_explained in explained.items():
        if rule_id in covering and not is_explained:
            live.setdefault(case_ref, []).append(rule_id)
    out: dict[Key, str] = {}
    for case_ref, rule_id in fired:
        by = [r for r in live.get(case_ref, ()) if r != rule_id and rule_id in covering[r]]
        if by:
            out[(case_ref, rule_id)] = min(by)
    return out


@dataclass(slots=True)
class _Explanation:
    until: dt.date | None
    given: dt.date | None
    since: dt.date | None
    expired_on: dt.date | None
    inputs: str | None = None  # fingerprint of the rule's inputs when first honoured
    lapsed_on: dt.date | None = None  # an explanation lapsed on a change of the inputs
    lapsed_given: dt.date | None = None  # ... and the end date (as given) of that one
    reason: str | None = None  # the reason code of the explanation in force

    @classmethod
    def of(cls, episode: OpenEpisode) -> _Explanation:
        """The explanation state an open episode carries from the store."""
        return cls(
            episode.explained_until,
            episode.explained_given_until,
            episode.explained_since,
            episode.explanation_expired_on,
            episode.explained_inputs,
            episode.explanation_lapsed_on,
            episode.explanation_lapsed_given,
            episode.explained_reason,
        )


def plan(
    open_episodes: Iterable[OpenEpisode],
    closed_keys: Collection[Key],
    fired: Mapping[Key, Fired],
    open_case_refs: Container[str],
    active_rules: Mapping[str, RuleInfo],
    as_of: dt.date,
    untouched_case_refs: Collection[str] = (),
    *,
    explanations: Mapping[Key, StoredExplanation] | None = None,
    retired_rules: Collection[str] = (),
    known_rules: Collection[str] | None = None,
    policy: Policy = Policy(),
    silences: Collection[Silence] = (),
    promoted_rules: Collection[str] = (),
) -> ReconcilePlan:
    """Decide every change for ``as_of``; pure (no I/O), deterministic order.

    Open episodes of ``untouched_case_refs`` (cases that could not be read today) stay
    exactly as they are: not closed, not touched. ``known_rules`` None: no baseline
    (every new episode is new); else rules not in it are introduced today and their new
    episodes are baseline. ``retired_rules`` that are not active close their episodes.
    ``promoted_rules`` went from shadow to live tonight: their new episodes are baseline
    too, like those of a rule introduced tonight (issue 18).
    """
    stored = explanations or {}
    by_key: dict[Key, OpenEpisode] = {}
    for loaded in open_episodes:
        key = (loaded.case_ref, loaded.rule_id)
        if key in by_key:
            raise ReconcileError(
                f"De signaalopslag heeft twee open episodes voor zaak {loaded.case_ref}, "
                f"regel {loaded.rule_id} (ids {by_key[key].id} en {loaded.id}); "
                "dat mag niet. Controleer of de migraties zijn uitgevoerd."
            )
        if loaded.last_seen_on > as_of or loaded.opened_on > as_of:
            raise ReconcileError(
                _backwards_message(max(loaded.last_seen_on, loaded.opened_on), as_of)
            )
        by_key[key] = loaded

    introduced: list[str] = []
    if known_rules is not None:
        known = set(known_rules)
        introduced = sorted(r for r in active_rules if r not in known)
    baseline_rules = set(introduced) | set(promoted_rules)
    shadow_rules = {rid for rid, info in active_rules.items() if info.shadow}

    # Escalation due dates, memoised per (rule, clock start): working days are costly.
    due_cache: dict[tuple[str, dt.date], dt.date | None] = {}

    def due_date(rule_id: str, clock: dt.date) -> dt.date | None:
        if (rule_id, clock) not in due_cache:
            info = active_rules.get(rule_id)
            duration = info.escalate_after if info is not None else None
            due_cache[(rule_id, clock)] = None if duration is None else shift(clock, duration, 1)
        return due_cache[(rule_id, clock)]

    events: list[Event] = []
    problems: list[str] = []
    expired_count = lapsed_count = 0

    def explain(
        sid: int | None, key: Key, today: Fired, prev: _Explanation, events: list[Event]
    ) -> tuple[_Explanation, bool]:
        """Today's explanation state of an episode; its events go to ``events``;
        (state, valid today)."""
        nonlocal expired_count, lapsed_count
        case_file = today.explained_until
        if case_file is not None and case_file < as_of:
            case_file = None
        command_line = stored.get(key)
        given, source, by, ref = case_file, SOURCE_CASE_FILE, today.explained_by, None
        reason = today.explained_reason
        if (
            command_line is not None
            and command_line.until >= as_of
            and (given is None or command_line.until >= given)
        ):
            given, source = command_line.until, SOURCE_COMMAND_LINE
            by, ref, reason = command_line.created_by, command_line.id, command_line.reason
        if given is not None and given == prev.lapsed_given:
            given = None  # lapsed when the facts changed: not honoured again in this episode
        state = dataclasses.replace(prev)
        if given is not None:
            if (
                given == prev.given
                and prev.until is not None
                and prev.until >= as_of
                and today.inputs is not None
                and prev.inputs != today.inputs
            ):
                if prev.inputs is None:  # honoured before fingerprints were kept: keep today's
                    state.inputs = today.inputs
                else:  # a fact the rule reads changed: the explanation lapses, the signal returns
                    events.append(
                        Event(
                            sid,
                            *key,
                            "explanation_lapsed",
                            {"until": prev.until.isoformat(), "why": "gegevens gewijzigd"},
                        )
                    )
                    lapsed_count += 1
                    state = _Explanation(
                        None, None, None, prev.expired_on, None, as_of, given, None
                    )
                    return state, False
            if given != prev.given or prev.until is None:
                until = given
                details: dict[str, Any] = {"until": until.isoformat(), "source": source}
                if reason:
                    details["reason"] = reason
                if by:
                    details["by"] = by
                if ref is not None:
                    details["explanation_id"] = ref
                info = active_rules.get(key[1])
                if info is not None and info.max_explanation is not None:
                    limit = shift(as_of, info.max_explanation, 1)
                    if until > limit:
                        until = limit
                        details["until"] = until.isoformat()
                        details["given_until"] = given.isoformat()
                        details["capped_to"] = str(info.max_explanation)
                        problems.append(
                            f"zaak {key[0]}: de toelichting bij regel {key[1]} is langer dan "
                            f"de regel toestaat (hooguit {info.max_explanation}); ingekort "
                            f"tot {until.isoformat()}"
                        )
                events.append(Event(sid, *key, "explained", details))
                state = _Explanation(
                    until,
                    given,
                    as_of,
                    None,
                    today.inputs,
                    prev.lapsed_on,
                    prev.lapsed_given,
                    reason or REASON_OTHER,
                )
        elif prev.until is not None and prev.until >= as_of:
            events.append(
                Event(sid, *key, "explanation_revoked", {"until": prev.until.isoformat()})
            )
            state = _Explanation(
                None, None, None, prev.expired_on, None, prev.lapsed_on, prev.lapsed_given, None
            )
        if state.until is not None and state.until < as_of and state.expired_on is None:
            events.append(
                Event(sid, *key, "explanation_expired", {"until": state.until.isoformat()})
            )
            state.expired_on = state.until
            expired_count += 1
        return state, state.until is not None and state.until >= as_of

    inserts: list[NewEpisode] = []
    touches: list[int] = []
    updates: list[EpisodeUpdate] = []
    closes: list[EpisodeClose] = []
    new = reopened = still_open = escalated = explained = baseline = 0
    in_gap = gap_started = 0
    by_reason = dict.fromkeys(
        (CLOSE_RESOLVED, CLOSE_CASE_CLOSED, CLOSE_RULE_REMOVED, CLOSE_RULE_RETIRED), 0
    )

    # Explanations first: whether a signal is explained today decides whether it covers
    # others on its case. Their events are written below, in each episode's order.
    explained_now: dict[Key, tuple[_Explanation, bool, list[Event]]] = {}
    for key, today in fired.items():
        episode = by_key.get(key)
        own: list[Event] = []
        if episode is None:
            prev_state = _Explanation(None, None, None, None)
        else:
            prev_state = _Explanation.of(episode)
        state_now, valid = explain(
            None if episode is None else episode.id, key, today, prev_state, own
        )
        explained_now[key] = (state_now, valid, own)
    # an explained or silenced signal covers nothing: the narrower ones stay visible
    coverage = covered_keys(
        fired,
        {
            k: v[1]
            or (
                bool(silences)
                and silencing(silences, k[1], fired[k].team, fired[k].location) is not None
            )
            for k, v in explained_now.items()
        },
        active_rules,
    )
    covered = 0

    clock_cache: dict[int, dt.date] = {}
    for key, today in fired.items():
        episode = by_key.get(key)
        covered_by = coverage.get(key)
        covered += covered_by is not None
        state, is_explained, explanation_events = explained_now[key]
        if episode is None:
            is_baseline = key[1] in baseline_rules
            clock = as_of
            if is_baseline:
                offset = baseline_offset(key, policy.baseline_spread_days)
                if offset not in clock_cache:
                    clock_cache[offset] = add_working_days(as_of, offset)
                clock = clock_cache[offset]
            was_closed = key in closed_keys
            events.append(
                Event(
                    None,
                    *key,
                    "reopened" if was_closed else "opened",
                    {"baseline": True, "clock_start": clock.isoformat()} if is_baseline else None,
                )
            )
            events.extend(explanation_events)
            if covered_by is not None:
                events.append(Event(None, *key, "covered", {"by": covered_by}))
            explained += is_explained
            quiet = silencing(silences, key[1], today.team, today.location) is not None
            due = None if is_explained or covered_by or quiet else due_date(key[1], clock)
            escalated_on = due if due is not None and as_of >= due else None
            if escalated_on is not None:
                events.append(Event(None, *key, "escalated", {"due": escalated_on.isoformat()}))
            inserts.append(
                NewEpisode(
                    case_ref=key[0],
                    rule_id=key[1],
                    severity=today.severity,
                    regievoerder=today.regievoerder,
                    team=today.team,
                    reopened=was_closed,
                    escalated_on=escalated_on,
                    explained_until=state.until,
                    baseline=is_baseline,
                    clock_start=clock if clock != as_of else None,
                    explained_since=state.since,
                    explained_given_until=state.given,
                    covered_by=covered_by,
                    began_on=today.began_on,
                    location=today.location,
                    explained_inputs=state.inputs,
                    explained_reason=state.reason,
                    shadow=key[1] in shadow_rules,
                )
            )
            if is_baseline:
                baseline += 1
            else:
                new += 1
                reopened += was_closed
            escalated += escalated_on is not None
            continue

        still_open += 1
        sid = episode.id
        changed = False
        if episode.gap_since is not None:
            events.append(
                Event(
                    sid,
                    *key,
                    "gap_ended",
                    {"gap_since": episode.gap_since.isoformat(), "reason": episode.gap_reason},
                )
            )
            changed = True
        if today.severity != episode.severity:
            events.append(
                Event(
                    sid, *key, "severity_changed", {"from": episode.severity, "to": today.severity}
                )
            )
            changed = True
        if today.regievoerder != episode.regievoerder or today.team != episode.team:
            details = {"from": episode.regievoerder, "to": today.regievoerder}
            if today.team != episode.team:
                details |= {"team_from": episode.team, "team_to": today.team}
            events.append(Event(sid, *key, "reassigned", details))
            changed = True
        prev = _Explanation.of(episode)
        events.extend(explanation_events)
        explained += is_explained
        changed = changed or state != prev
        if covered_by != episode.covered_by:
            if covered_by is not None:
                events.append(Event(sid, *key, "covered", {"by": covered_by}))
            else:
                events.append(Event(sid, *key, "uncovered", {"by": episode.covered_by}))
            changed = True
        changed = changed or (today.began_on, today.location) != (
            episode.began_on,
            episode.location,
        )
        escalated_on = episode.escalated_on
        if (
            escalated_on is None
            and not is_explained
            and covered_by is None
            and silencing(silences, key[1], today.team, today.location) is None
        ):
            due = due_date(key[1], episode.clock_start or episode.opened_on)
            if due is not None and as_of >= due:
                escalated_on = due
                escalated += 1
                events.append(Event(sid, *key, "escalated", {"due": due.isoformat()}))
                changed = True
        if changed:
            updates.append(
                EpisodeUpdate(
                    id=sid,
                    severity=today.severity,
                    regievoerder=today.regievoerder,
                    team=today.team,
                    escalated_on=escalated_on,
                    explained_until=state.until,
                    explained_since=state.since,
                    explained_given_until=state.given,
                    explanation_expired_on=state.expired_on,
                    covered_by=covered_by,
                    began_on=today.began_on,
                    location=today.location,
                    explained_inputs=state.inputs,
                    explanation_lapsed_on=state.lapsed_on,
                    explanation_lapsed_given=state.lapsed_given,
                    explained_reason=state.reason,
                )
            )
        elif episode.last_seen_on != as_of:
            touches.append(sid)

    untouched = set(untouched_case_refs)
    retired = set(retired_rules)
    for key in sorted(by_key.keys() - fired.keys()):
        case_ref, rule_id = key
        episode = by_key[key]
        if case_ref in untouched:
            continue  # unreadable today: keep the episode as it was
        if rule_id in retired and rule_id not in active_rules:
            reason = CLOSE_RULE_RETIRED
        elif case_ref not in open_case_refs:
            reason = CLOSE_CASE_CLOSED
        elif rule_id not in active_rules:
            reason = CLOSE_RULE_REMOVED
        else:
            reason = CLOSE_RESOLVED
        absent = working_days_between(episode.last_seen_on, as_of)
        if reason == CLOSE_RULE_RETIRED or policy.grace_days == 0 or absent > policy.grace_days:
            closes.append(EpisodeClose(episode.id, reason, *outcome_of(reason, episode)))
            details = {"last_seen_on": episode.last_seen_on.isoformat()}
            if episode.gap_since is not None:
                details["gap_since"] = episode.gap_since.isoformat()
            events.append(Event(episode.id, *key, reason, details))
            by_reason[reason] += 1
            continue
        in_gap += 1
        if episode.gap_since is None:
            gap_started += 1
            events.append(Event(episode.id, *key, "gap_started", {"reason": reason}))
            updates.append(
                EpisodeUpdate(
                    id=episode.id,
                    severity=episode.severity,
                    regievoerder=episode.regievoerder,
                    team=episode.team,
                    escalated_on=episode.escalated_on,
                    explained_until=episode.explained_until,
                    gap_since=as_of,
                    gap_reason=reason,
                    explained_since=episode.explained_since,
                    explained_given_until=episode.explained_given_until,
                    explanation_expired_on=episode.explanation_expired_on,
                    seen=False,
                    covered_by=episode.covered_by,
                    began_on=episode.began_on,
                    location=episode.location,
                )
            )

    inserts.sort(key=lambda n: (n.case_ref, n.rule_id))  # deterministic ids
    touches.sort()
    updates.sort(key=lambda u: u.id)

    counts = ReconcileCounts(
        new=new,
        reopened=reopened,
        still_open=still_open,
        resolved=by_reason[CLOSE_RESOLVED],
        closed_case=by_reason[CLOSE_CASE_CLOSED],
        rule_removed=by_reason[CLOSE_RULE_REMOVED],
        rule_retired=by_reason[CLOSE_RULE_RETIRED],
        escalated_today=escalated,
        explained=explained,
        baseline=baseline,
        in_gap=in_gap,
        gap_started=gap_started,
        explanation_expired=expired_count,
        explanation_lapsed=lapsed_count,
        covered=covered,
    )
    return ReconcilePlan(
        as_of,
        inserts,
        touches,
        updates,
        closes,
        counts,
        events,
        introduced,
        problems,
        modes={rid: MODE_SHADOW if rid in shadow_rules else MODE_LIVE for rid in introduced},
    )


def _backwards_message(latest: dt.date, as_of: dt.date) -> str:
    return (
        f"De signaalopslag bevat al signalen van {latest.isoformat()}, later dan peildatum "
        f"{as_of.isoformat()}. Reconcile gaat alleen vooruit in de tijd: kies een peildatum "
        f"op of na {latest.isoformat()}."
    )


def _now() -> dt.datetime:
    """The time an event is recorded (``created_at``), in UTC."""
    return dt.datetime.now(dt.UTC)


def _open_row_id(table: sa.Table) -> Any:
    """The id of the one open row (episode or warning) of an event's case and rule, as a
    scalar subquery for an UPDATE of ``signal_events``."""
    row, ev = table.alias("open_row"), signal_events
    return (
        sa.select(row.c.id)
        .where(
            row.c.case_ref == ev.c.case_ref,
            row.c.rule_id == ev.c.rule_id,
            row.c.closed_on.is_(None),
        )
        .scalar_subquery()
    )


def apply(
    conn: Connection, plan: ReconcilePlan, run_id: int | None, ruleset_version: str | None = None
) -> None:
    """Write ``plan`` in the caller's transaction, in batched statements (no commit)."""
    as_of = plan.as_of

    by_reason: dict[tuple[str, str, str], list[int]] = {}
    for close in plan.closes:
        group = (close.reason, close.outcome or "", close.outcome_reason or "")
        by_reason.setdefault(group, []).append(close.id)
    for (reason, outcome, outcome_reason), ids in sorted(by_reason.items()):
        values = {"closed_on": as_of, "close_reason": reason, "closed_run_id": run_id}
        values |= {"outcome": outcome or None, "outcome_reason": outcome_reason or None}
        update_by_ids(conn, ids, values, only_open=True)

    update_by_ids(conn, plan.touches, {"last_seen_on": as_of})

    seen = [u for u in plan.updates if u.seen]
    if seen:
        columns = (
            "severity",
            "regievoerder",
            "team",
            "escalated_on",
            "explained_until",
            "gap_since",
            "gap_reason",
            "explained_since",
            "explained_given_until",
            "explanation_expired_on",
            "covered_by",
            "began_on",
            "location",
            "explained_inputs",
            "explanation_lapsed_on",
            "explanation_lapsed_given",
            "explained_reason",
        )
        new_values: dict[str, Any] = {c: sa.bindparam(f"b_{c}") for c in columns}
        stmt = (
            sa.update(signals)
            .where(signals.c.id == sa.bindparam("b_id"))
            .values(last_seen_on=as_of, **new_values)
        )
        for start in range(0, len(seen), INSERT_CHUNK):
            conn.execute(
                stmt,
                [
                    {"b_id": u.id, **{f"b_{c}": getattr(u, c) for c in columns}}
                    for u in seen[start : start + INSERT_CHUNK]
                ],
            )
    # a gap start leaves last_seen_on on the last day the key fired
    gaps = [u for u in plan.updates if not u.seen]
    if gaps:
        stmt = (
            sa.update(signals)
            .where(signals.c.id == sa.bindparam("b_id"))
            .values(gap_since=sa.bindparam("b_gap_since"), gap_reason=sa.bindparam("b_reason"))
        )
        conn.execute(
            stmt,
            [{"b_id": u.id, "b_gap_since": u.gap_since, "b_reason": u.gap_reason} for u in gaps],
        )

    for start in range(0, len(plan.inserts), INSERT_CHUNK):
        insert_rows(
            conn,
            signals,
            SIGNAL_COLUMNS,
            [
                (
                    n.case_ref,
                    n.rule_id,
                    n.severity,
                    n.regievoerder,
                    n.team,
                    as_of,
                    as_of,
                    None,
                    None,
                    n.reopened,
                    n.escalated_on,
                    n.explained_until,
                    run_id,
                    None,
                    n.baseline,
                    n.clock_start,
                    None,
                    None,
                    n.explained_since,
                    n.explained_given_until,
                    None,
                    n.covered_by,
                    n.began_on,
                    n.location,
                    n.explained_inputs,
                    None,
                    None,
                    n.explained_reason,
                    None,
                    None,
                    n.shadow,
                )
                for n in plan.inserts[start : start + INSERT_CHUNK]
            ],
        )

    if plan.warnings is not None:
        apply_warnings(conn, plan.warnings, as_of, run_id)
    all_events = plan.events + (plan.warnings.events if plan.warnings is not None else [])
    now = _now()
    ev = signal_events
    # the events written below get ids above every id there is now (a sequence or SQLite's
    # rowid only grows), so the two UPDATEs that give them their episode's or warning's id
    # search the primary key from here instead of every event of every night before
    newest = 0
    if all_events:
        newest = conn.execute(sa.select(sa.func.max(ev.c.id))).scalar() or 0
    for start in range(0, len(all_events), EVENT_CHUNK):
        insert_rows(
            conn,
            signal_events,
            EVENT_COLUMNS,
            [
                (
                    e.signal_id,
                    e.warning_id,
                    e.case_ref,
                    e.rule_id,
                    e.kind,
                    as_of,
                    run_id,
                    ruleset_version,
                    e.details,
                    now,
                )
                for e in all_events[start : start + EVENT_CHUNK]
            ],
        )
    if plan.events and plan.inserts:
        # events of episodes inserted above get their id from the one open episode per key
        conn.execute(
            sa.update(ev)
            .where(
                ev.c.id > newest,
                ev.c.signal_id.is_(None),
                ev.c.warning_id.is_(None),
                ev.c.kind.not_in(WARNING_EVENTS),
            )
            .values(signal_id=_open_row_id(signals))
        )
    if plan.warnings is not None and plan.warnings.inserts:
        conn.execute(
            sa.update(ev)
            .where(ev.c.id > newest, ev.c.warning_id.is_(None), ev.c.kind == "warned")
            .values(warning_id=_open_row_id(warnings))
        )

    if plan.introduced_rules:
        conn.execute(sa.delete(known_rules).where(known_rules.c.rule_id.in_(plan.introduced_rules)))
        conn.execute(
            sa.insert(known_rules),
            [
                {
                    "rule_id": rule_id,
                    "introduced_on": as_of,
                    "introduced_run_id": run_id,
                    "retired_at": None,
                    "retired_by": None,
                    "mode": plan.modes.get(rule_id, MODE_LIVE),
                }
                for rule_id in plan.introduced_rules
            ],
        )


def change_mode(
    conn: Connection,
    rule_id: str,
    to_mode: str,
    as_of: dt.date,
    run_id: int | None = None,
    ruleset_version: str | None = None,
    *,
    by: str | None = None,
    reason: str | None = None,
    spread_days: int = Policy().baseline_spread_days,
) -> int:
    """Move a known rule to ``to_mode`` (``live`` | ``shadow``) in the store, in the
    caller's transaction; returns the number of open episodes that changed.

    Called by :func:`reconcile_in_ranges` when a rule's mode in the rule set differs from
    the store's (``rules promote`` edits the file and leaves ``by`` and ``reason`` for it).
    Shadow to live: every open episode of the rule stops being shadow and becomes a
    *baseline* episode ("bestaand", never new), and its escalation clock starts again on
    ``as_of`` spread as a newly introduced rule's (``escalated_on`` as kept in shadow is
    cleared, named in the event as ``escalation_reset``: nobody was told of the signal).
    Live to shadow: the open episodes keep their history and are no longer shown. Each
    changed episode gets an event ``mode_changed``; the rule gets one row in
    ``rule_events`` with who and why when known (``by`` None: the file was edited by hand).
    """
    c = signals.c
    to_shadow = to_mode == MODE_SHADOW
    from_mode = MODE_LIVE if to_shadow else MODE_SHADOW
    rows = conn.execute(
        sa.select(c.id, c.case_ref, c.escalated_on)
        .where(c.rule_id == rule_id, c.closed_on.is_(None), c.shadow.is_(not to_shadow))
        .order_by(c.id)
    ).all()
    events: list[tuple[Any, ...]] = []
    now = _now()
    base: dict[str, Any] = {"from": from_mode, "to": to_mode}
    if by:
        base["by"] = by
    if to_shadow:
        update_by_ids(conn, [r.id for r in rows], {"shadow": True}, only_open=True)
        events = [
            (r.id, None, r.case_ref, rule_id, MODE_CHANGED, as_of, run_id, ruleset_version,
             base, now)
            for r in rows
        ]  # fmt: skip
    else:
        clocks: dict[int, dt.date] = {}
        params = []
        for r in rows:
            offset = baseline_offset((r.case_ref, rule_id), spread_days)
            if offset not in clocks:
                clocks[offset] = add_working_days(as_of, offset)
            params.append({"b_id": r.id, "b_clock": clocks[offset]})
            details = base | {"baseline": True, "clock_start": clocks[offset].isoformat()}
            if r.escalated_on is not None:  # escalated in shadow: nobody was told
                details["escalation_reset"] = r.escalated_on.isoformat()
            events.append(
                (r.id, None, r.case_ref, rule_id, MODE_CHANGED, as_of, run_id, ruleset_version,
                 details, now)
            )  # fmt: skip
        stmt = (
            sa.update(signals)
            .where(signals.c.id == sa.bindparam("b_id"))
            .values(
                shadow=False, baseline=True, escalated_on=None, clock_start=sa.bindparam("b_clock")
            )
        )
        for start in range(0, len(params), INSERT_CHUNK):
            conn.execute(stmt, params[start : start + INSERT_CHUNK])
    for start in range(0, len(events), EVENT_CHUNK):
        insert_rows(conn, signal_events, EVENT_COLUMNS, events[start : start + EVENT_CHUNK])
    conn.execute(
        known_rules.update()
        .where(known_rules.c.rule_id == rule_id)
        .values(mode=to_mode, mode_by=None, mode_reason=None)
    )
    conn.execute(
        rule_events.insert().values(
            rule_id=rule_id,
            kind=MODE_CHANGED,
            from_mode=from_mode,
            to_mode=to_mode,
            as_of=as_of,
            by=by,
            reason=reason,
            open_signals=len(rows),
            run_id=run_id,
            created_at=now,
        )
    )
    return len(rows)


def clear_mode_note(conn: Connection, rule_id: str) -> None:
    """Drop the note ``rules promote`` left for ``rule_id`` (its mode did not change)."""
    conn.execute(
        known_rules.update()
        .where(known_rules.c.rule_id == rule_id)
        .values(mode_by=None, mode_reason=None)
    )


def check_forward(conn: Connection, as_of: dt.date) -> None:
    """Raise ReconcileError when the store already holds a date after ``as_of``."""
    latest_seen, latest_closed, latest_opened = conn.execute(
        sa.select(
            sa.func.max(signals.c.last_seen_on),
            sa.func.max(signals.c.closed_on),
            sa.func.max(signals.c.opened_on),
        )
    ).one()
    dates = [d for d in (latest_seen, latest_closed, latest_opened) if d is not None]
    if dates and max(dates) > as_of:
        raise ReconcileError(_backwards_message(max(dates), as_of))


def reconcile(
    conn: Connection,
    fired: Mapping[Key, Fired],
    open_case_refs: Collection[str],
    active_rules: Mapping[str, RuleInfo],
    as_of: dt.date,
    run_id: int | None,
    untouched_case_refs: Collection[str] = (),
    *,
    policy: Policy = Policy(),
    baseline: bool = False,
    ruleset_version: str | None = None,
    problems: list[str] | None = None,
) -> ReconcileCounts:
    """Load the store's state, plan and apply, in the caller's transaction: one
    :func:`reconcile_in_ranges` over a single unbounded range.

    ``baseline``: treat findings of rules the store has not seen before (all rules on the
    first night) as a baseline. ``problems`` receives messages for the run summary.
    """
    return reconcile_in_ranges(
        conn,
        [((None, None), fired)],
        open_case_refs,
        active_rules,
        as_of,
        run_id,
        untouched_case_refs,
        policy=policy,
        baseline=baseline,
        ruleset_version=ruleset_version,
        problems=problems,
    )


def _add_counts(a: ReconcileCounts, b: ReconcileCounts) -> ReconcileCounts:
    return ReconcileCounts(
        **{f.name: getattr(a, f.name) + getattr(b, f.name) for f in dataclasses.fields(a)}
    )


RangeChunk = (
    tuple[KeyRange, Mapping[Key, Fired]]
    | tuple[KeyRange, Mapping[Key, Fired], Mapping[Key, Upcoming] | None]
)
"""A case_ref range with its fired keys, and optionally its warnings (None or left out:
warnings were not evaluated, the stored ones stay as they are)."""


def reconcile_in_ranges(
    conn: Connection,
    chunks: Iterable[RangeChunk],
    open_case_refs: Container[str] | Callable[[KeyRange], Container[str]],
    active_rules: Mapping[str, RuleInfo],
    as_of: dt.date,
    run_id: int | None,
    untouched_case_refs: Collection[str] = (),
    *,
    policy: Policy = Policy(),
    baseline: bool = False,
    ruleset_version: str | None = None,
    problems: list[str] | None = None,
) -> ReconcileCounts:
    """:func:`reconcile` one case_ref range at a time, in the caller's transaction.

    ``chunks`` gives, in ascending order, ranges ``(above, up_to)`` that together cover
    every case_ref (the first ``above`` and the last ``up_to`` None) with the fired keys
    of that range. Every (case, rule) key belongs to exactly one range and the plan of a
    key reads only that key's rows, so the result is that of one :func:`reconcile` over
    everything, while memory holds one range's episodes, fired keys and plan at a time.
    ``open_case_refs`` is either every open case_ref, or a function called once per range
    (in order) that gives the open case_refs of that range (the run's spool), so that no
    set of every open case is held either.
    Rules introduced today are decided once, before the first range.
    """
    check_forward(conn, as_of)
    known, retired = load_known_rules(conn)
    end_lapsed(conn, as_of, run_id)  # silences past their end date (issue 18)
    # a rule whose mode changed since the last run (file edited, or ``rules promote``
    # not yet applied to the store): its open episodes follow before anything is planned
    stored_modes = load_rule_modes(conn)
    unknown = sorted(active_rules.keys() - stored_modes.keys())
    if unknown:  # a retired rule back in the folder: its open episodes tell its mode
        c = signals.c
        for rid, flag in conn.execute(
            sa.select(c.rule_id, c.shadow)
            .where(c.rule_id.in_(unknown), c.closed_on.is_(None))
            .distinct()
        ):
            stored_modes[rid] = RuleMode(MODE_SHADOW if flag else MODE_LIVE)
    promoted: set[str] = set()  # live from tonight: tonight's findings are all bestaand
    for rid in sorted(active_rules.keys() & stored_modes.keys()):
        wanted = MODE_SHADOW if active_rules[rid].shadow else MODE_LIVE
        stored = stored_modes[rid]
        # a promotion's note is for the promotion it was left for, used once: a demotion
        # (always a hand edit) is nobody's, and a promotion undone before its night
        # leaves the note to no later change
        note = wanted == MODE_LIVE
        if stored.mode != wanted:
            change_mode(
                conn,
                rid,
                wanted,
                as_of,
                run_id,
                ruleset_version,
                by=stored.by if note else None,
                reason=stored.reason if note else None,
                spread_days=policy.baseline_spread_days,
            )
            if wanted == MODE_LIVE:
                promoted.add(rid)
        elif stored.by is not None or stored.reason is not None:
            clear_mode_note(conn, rid)
    live_rules = {rid for rid, info in active_rules.items() if not info.shadow}
    silenced = active_silences(conn, as_of)
    total = ReconcileCounts()
    first = True
    covered_to: str | None = None
    for chunk in chunks:
        bounds, fired = chunk[0], chunk[1]
        upcoming = chunk[2] if len(chunk) > 2 else None
        if bounds[0] != covered_to:
            raise ValueError("reconcile_in_ranges: the ranges must follow each other")
        open_refs = open_case_refs(bounds) if callable(open_case_refs) else open_case_refs
        chunk_plan = plan(
            load_open_episodes(conn, bounds),
            load_closed_keys(conn, bounds),
            fired,
            open_refs,
            active_rules,
            as_of,
            untouched_case_refs,
            explanations=load_stored_explanations(conn, as_of, bounds),
            retired_rules=retired,
            known_rules=known if baseline else None,
            policy=policy,
            silences=silenced,
            promoted_rules=promoted,
        )
        if upcoming is not None:
            warned = plan_warnings(
                load_open_warnings(conn, bounds),
                # a shadow rule warns nobody: its warnings are not kept
                {k: v for k, v in upcoming.items() if k[1] in live_rules},
                fired,
                open_refs,
                live_rules,
                as_of,
                untouched_case_refs,
            )
            chunk_plan = dataclasses.replace(
                chunk_plan,
                warnings=warned,
                counts=dataclasses.replace(
                    chunk_plan.counts,
                    warned=len(warned.inserts),
                    warnings_open=warned.still_open,
                ),
            )
        if not first:  # known_rules rows are written once, with the first range
            chunk_plan = dataclasses.replace(chunk_plan, introduced_rules=[])
        apply(conn, chunk_plan, run_id, ruleset_version)
        if problems is not None:
            problems.extend(chunk_plan.problems)
        total = _add_counts(total, chunk_plan.counts)
        first = False
        covered_to = bounds[1]
        if covered_to is None:
            break
    if covered_to is not None or first:
        raise ValueError("reconcile_in_ranges: the last range must be unbounded above")
    return total
