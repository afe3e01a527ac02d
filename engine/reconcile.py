"""The reconcile stage: today's fired (case, rule) pairs against the signal store.

A row of ``store.signals`` is one *episode*: open while ``closed_on`` IS NULL. For the
as-of date D:

- a fired key with an open episode stays open: ``last_seen_on`` = D, and its severity,
  regievoerder, team and explained_until follow today's values;
- a fired key without an open episode opens a new episode on D; it is ``reopened`` when
  the key had an earlier (closed) episode;
- an open episode whose key did not fire is closed on D with ``close_reason``
  ``case_closed`` (its case is no longer open), else ``rule_removed`` (its rule is no
  longer active), else ``resolved``;
- an open episode whose rule has ``escalate_after`` gets ``escalated_on`` = opened_on +
  escalate_after (calendar days, weeks or working days, via :func:`engine.dates.shift`)
  once D reaches that date; once set it stays.

Reconcile only moves forward: it refuses a D earlier than a date already in the store.
Re-running the same D with the same inputs changes nothing. Note that the *counts* of a
re-run describe that run's changes (a re-run counts its signals as still open, not new);
stages that need "new today" read ``opened_on = D`` from the store.

:func:`plan` is pure; :func:`apply` writes a plan with a bounded number of batched
statements inside the caller's transaction; :func:`reconcile` loads, plans and applies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from engine.dates import Duration, shift
from engine.store import signals

Key = tuple[str, str]  # (case_ref, rule_id)

CLOSE_RESOLVED = "resolved"
CLOSE_CASE_CLOSED = "case_closed"
CLOSE_RULE_REMOVED = "rule_removed"

# Ids per "WHERE id IN (...)" statement: well below SQLite's and PostgreSQL's parameter limits.
ID_CHUNK = 5000


class ReconcileError(Exception):
    """Reconcile refused to run; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Fired:
    """A (case, rule) the rules gave today, with the values the episode should carry."""

    severity: str
    regievoerder: str | None
    team: str | None
    explained_until: dt.date | None = None


@dataclass(frozen=True, slots=True)
class RuleInfo:
    severity: str
    escalate_after: Duration | None = None


class OpenEpisode(NamedTuple):
    """An open signal episode as loaded from the store (a tuple: cheap to load by the 100,000)."""

    id: int
    case_ref: str
    rule_id: str
    severity: str
    regievoerder: str | None
    team: str | None
    opened_on: dt.date
    last_seen_on: dt.date
    escalated_on: dt.date | None
    explained_until: dt.date | None

    @property
    def key(self) -> Key:
        return (self.case_ref, self.rule_id)


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


@dataclass(frozen=True, slots=True)
class EpisodeUpdate:
    """New values for a still-open episode of which more than last_seen_on changes."""

    id: int
    severity: str
    regievoerder: str | None
    team: str | None
    escalated_on: dt.date | None
    explained_until: dt.date | None


@dataclass(frozen=True, slots=True)
class EpisodeClose:
    id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReconcileCounts:
    """What one reconcile run changed.

    ``new`` includes ``reopened``; ``resolved``, ``closed_case`` and ``rule_removed`` are
    the closes by reason; ``escalated_today`` counts episodes this run escalated (their
    ``escalated_on`` may lie before D when runs were skipped); ``explained`` counts fired
    keys with an explanation valid on D (``explained_until`` >= D).
    """

    new: int = 0
    reopened: int = 0
    still_open: int = 0
    resolved: int = 0
    closed_case: int = 0
    rule_removed: int = 0
    escalated_today: int = 0
    explained: int = 0

    @property
    def closed(self) -> int:
        return self.resolved + self.closed_case + self.rule_removed

    @property
    def open(self) -> int:
        return self.new + self.still_open

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

    @property
    def is_empty(self) -> bool:
        return not (self.inserts or self.touches or self.updates or self.closes)


# --------------------------------------------------------------------------- planning


def plan(
    open_episodes: Iterable[OpenEpisode],
    closed_keys: Collection[Key],
    fired: Mapping[Key, Fired],
    open_case_refs: Collection[str],
    active_rules: Mapping[str, RuleInfo],
    as_of: dt.date,
    untouched_case_refs: Collection[str] = (),
) -> ReconcilePlan:
    """Decide every change for ``as_of``; pure (no I/O), deterministic order.

    Open episodes of ``untouched_case_refs`` (cases that could not be read today) stay
    exactly as they are: not closed, not touched.
    """
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

    # Escalation due dates, memoised per (rule, opened_on): working days are costly.
    escalate_after = {
        rule_id: info.escalate_after
        for rule_id, info in active_rules.items()
        if info.escalate_after is not None
    }
    due_cache: dict[tuple[str, dt.date], dt.date] = {}

    def escalation(rule_id: str, opened_on: dt.date, explained: bool) -> dt.date | None:
        """``escalated_on`` for an episode not yet escalated, given today's as-of date.

        A signal with a valid explanation does not escalate: the case manager has said why
        the rule does not apply. When the explanation ends, the rule's limit counts again
        from the episode's start, so an overdue signal escalates on that day.
        """
        duration = escalate_after.get(rule_id)
        if duration is None or explained:
            return None
        due = due_cache.get((rule_id, opened_on))
        if due is None:
            due = due_cache[(rule_id, opened_on)] = shift(opened_on, duration, 1)
        return due if as_of >= due else None

    inserts: list[NewEpisode] = []
    touches: list[int] = []
    updates: list[EpisodeUpdate] = []
    closes: list[EpisodeClose] = []
    new = reopened = still_open = escalated = explained = 0
    by_reason = {CLOSE_RESOLVED: 0, CLOSE_CASE_CLOSED: 0, CLOSE_RULE_REMOVED: 0}

    for key, today in fired.items():
        is_explained = today.explained_until is not None and today.explained_until >= as_of
        explained += is_explained
        episode = by_key.get(key)
        if episode is None:
            was_closed = key in closed_keys
            escalated_on = escalation(key[1], as_of, is_explained)
            inserts.append(
                NewEpisode(
                    case_ref=key[0],
                    rule_id=key[1],
                    severity=today.severity,
                    regievoerder=today.regievoerder,
                    team=today.team,
                    reopened=was_closed,
                    escalated_on=escalated_on,
                    explained_until=today.explained_until,
                )
            )
            new += 1
            reopened += was_closed
            escalated += escalated_on is not None
            continue

        still_open += 1
        escalated_on = episode.escalated_on
        if escalated_on is None:
            escalated_on = escalation(key[1], episode.opened_on, is_explained)
            escalated += escalated_on is not None
        if (
            today.severity != episode.severity
            or today.regievoerder != episode.regievoerder
            or today.team != episode.team
            or today.explained_until != episode.explained_until
            or escalated_on != episode.escalated_on
        ):
            updates.append(
                EpisodeUpdate(
                    id=episode.id,
                    severity=today.severity,
                    regievoerder=today.regievoerder,
                    team=today.team,
                    escalated_on=escalated_on,
                    explained_until=today.explained_until,
                )
            )
        elif episode.last_seen_on != as_of:
            touches.append(episode.id)

    untouched = set(untouched_case_refs)
    for key in sorted(by_key.keys() - fired.keys()):
        case_ref, rule_id = key
        if case_ref in untouched:
            continue  # unreadable today: keep the episode as it was
        if case_ref not in open_case_refs:
            reason = CLOSE_CASE_CLOSED
        elif rule_id not in active_rules:
            reason = CLOSE_RULE_REMOVED
        else:
            reason = CLOSE_RESOLVED
        closes.append(EpisodeClose(by_key[key].id, reason))
        by_reason[reason] += 1

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
        escalated_today=escalated,
        explained=explained,
    )
    return ReconcilePlan(as_of, inserts, touches, updates, closes, counts)


def _backwards_message(latest: dt.date, as_of: dt.date) -> str:
    return (
        f"De signaalopslag bevat al signalen van {latest.isoformat()}, later dan peildatum "
        f"{as_of.isoformat()}. Reconcile gaat alleen vooruit in de tijd: kies een peildatum "
        f"op of na {latest.isoformat()}."
    )


# --------------------------------------------------------------------------- store I/O


def _by_ids(
    conn: Connection, ids: Sequence[int], values: dict[str, Any], only_open: bool = False
) -> None:
    """``UPDATE signals SET values WHERE id IN ids`` in as few statements as possible.

    PostgreSQL gets one statement with an array parameter (``id = ANY(:ids)``); other
    databases get ``id IN (...)`` in chunks of :data:`ID_CHUNK` ids.
    """
    if not ids:
        return
    condition: sa.ColumnElement[bool]
    if conn.dialect.name == "postgresql":
        param = sa.bindparam("ids", type_=postgresql.ARRAY(sa.Integer))
        condition, size = signals.c.id == sa.any_(param), len(ids)
    else:
        condition, size = signals.c.id.in_(sa.bindparam("ids", expanding=True)), ID_CHUNK
    stmt = sa.update(signals).where(condition).values(**values)
    if only_open:
        stmt = stmt.where(signals.c.closed_on.is_(None))
    for start in range(0, len(ids), size):
        conn.execute(stmt, {"ids": list(ids[start : start + size])})


def apply(conn: Connection, plan: ReconcilePlan, run_id: int | None) -> None:
    """Write ``plan`` in the caller's transaction, in batched statements (no commit)."""
    as_of = plan.as_of

    by_reason: dict[str, list[int]] = {}
    for close in plan.closes:
        by_reason.setdefault(close.reason, []).append(close.id)
    for reason, ids in sorted(by_reason.items()):
        values = {"closed_on": as_of, "close_reason": reason, "closed_run_id": run_id}
        _by_ids(conn, ids, values, only_open=True)

    _by_ids(conn, plan.touches, {"last_seen_on": as_of})

    if plan.updates:
        stmt = (
            sa.update(signals)
            .where(signals.c.id == sa.bindparam("b_id"))
            .values(
                last_seen_on=as_of,
                severity=sa.bindparam("b_severity"),
                regievoerder=sa.bindparam("b_regievoerder"),
                team=sa.bindparam("b_team"),
                escalated_on=sa.bindparam("b_escalated_on"),
                explained_until=sa.bindparam("b_explained_until"),
            )
        )
        conn.execute(
            stmt,
            [
                {
                    "b_id": u.id,
                    "b_severity": u.severity,
                    "b_regievoerder": u.regievoerder,
                    "b_team": u.team,
                    "b_escalated_on": u.escalated_on,
                    "b_explained_until": u.explained_until,
                }
                for u in plan.updates
            ],
        )

    if plan.inserts:
        rows: list[dict[str, Any]] = [
            {
                "case_ref": n.case_ref,
                "rule_id": n.rule_id,
                "severity": n.severity,
                "regievoerder": n.regievoerder,
                "team": n.team,
                "opened_on": as_of,
                "last_seen_on": as_of,
                "closed_on": None,
                "close_reason": None,
                "reopened": n.reopened,
                "escalated_on": n.escalated_on,
                "explained_until": n.explained_until,
                "opened_run_id": run_id,
                "closed_run_id": None,
            }
            for n in plan.inserts
        ]
        conn.execute(sa.insert(signals), rows)


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


def load_open_episodes(conn: Connection) -> list[OpenEpisode]:
    c = signals.c
    result = conn.execute(
        sa.select(
            c.id,
            c.case_ref,
            c.rule_id,
            c.severity,
            c.regievoerder,
            c.team,
            c.opened_on,
            c.last_seen_on,
            c.escalated_on,
            c.explained_until,
        ).where(c.closed_on.is_(None))
    )
    return list(map(OpenEpisode._make, result.all()))


def load_closed_keys(conn: Connection) -> set[Key]:
    c = signals.c
    result = conn.execute(
        sa.select(c.case_ref, c.rule_id).where(c.closed_on.is_not(None)).distinct()
    )
    return {(case_ref, rule_id) for case_ref, rule_id in result.all()}


def reconcile(
    conn: Connection,
    fired: Mapping[Key, Fired],
    open_case_refs: Collection[str],
    active_rules: Mapping[str, RuleInfo],
    as_of: dt.date,
    run_id: int | None,
    untouched_case_refs: Collection[str] = (),
) -> ReconcileCounts:
    """Load the store's state, plan and apply, in the caller's transaction."""
    check_forward(conn, as_of)
    reconcile_plan = plan(
        load_open_episodes(conn),
        load_closed_keys(conn),
        fired,
        open_case_refs,
        active_rules,
        as_of,
        untouched_case_refs,
    )
    apply(conn, reconcile_plan, run_id)
    return reconcile_plan.counts
