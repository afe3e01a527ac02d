"""The reconcile stage against a tiny reference model, on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import holidays
import pytest
import sqlalchemy as sa
from dateutil.easter import easter
from hypothesis import given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.dates import Duration
from regiesignaal.engine.reconcile import (
    Fired,
    ReconcileCounts,
    ReconcileError,
    RuleInfo,
    plan,
    reconcile,
)
from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.episodes import (
    Key,
    OpenEpisode,
    load_closed_keys,
    load_open_episodes,
)
from regiesignaal.engine.store.tables import metadata, signals

CASES = ["Z-001", "Z-002", "Z-003", "Z-004"]
RULES = ["VG-FIRST", "MED-CHECK", "CONTACT-30D"]
# The Algemene termijnenwet: the NL calendar without Good Friday, with 5 May in every year.
NL_HOLIDAYS = (
    set(holidays.country_holidays("NL", years=range(2024, 2030)))
    - {easter(y) - dt.timedelta(days=2) for y in range(2024, 2030)}
) | {dt.date(y, 5, 5) for y in range(2024, 2030)}
# ... and the days declared equal to public holidays
# (engine/language/data/gelijkgestelde-dagen.toml)
NL_HOLIDAYS |= {dt.date(2026, 1, 2), dt.date(2026, 5, 15)}


# --------------------------------------------------------------------------- reference model


def ref_due(opened_on: dt.date, duration: Duration) -> dt.date:
    """Escalation date, written independently of engine.language.dates."""
    if duration.unit == "d":
        return opened_on + dt.timedelta(days=duration.amount)
    if duration.unit == "w":
        return opened_on + dt.timedelta(weeks=duration.amount)
    day, counted = opened_on, 0
    while counted < duration.amount:
        day += dt.timedelta(days=1)
        if day.weekday() < 5 and day not in NL_HOLIDAYS:
            counted += 1
    return day


@dataclass
class Episode:
    case_ref: str
    rule_id: str
    severity: str
    regievoerder: str | None
    team: str | None
    opened_on: dt.date
    last_seen_on: dt.date
    closed_on: dt.date | None = None
    close_reason: str | None = None
    reopened: bool = False
    escalated_on: dt.date | None = None
    explained_until: dt.date | None = None
    opened_run_id: int | None = None
    closed_run_id: int | None = None
    given_until: dt.date | None = None  # the explanation's end date as given
    expired_on: dt.date | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.case_ref,
            self.rule_id,
            self.severity,
            self.regievoerder,
            self.team,
            self.opened_on,
            self.last_seen_on,
            self.closed_on,
            self.close_reason,
            self.reopened,
            self.escalated_on,
            self.explained_until,
            self.opened_run_id,
            self.closed_run_id,
        )


class Model:
    """The reconcile semantics, written as plainly as possible."""

    def __init__(self) -> None:
        self.episodes: list[Episode] = []

    def open_for(self, key: Key) -> Episode | None:
        found = [e for e in self.episodes if (e.case_ref, e.rule_id) == key and not e.closed_on]
        assert len(found) <= 1
        return found[0] if found else None

    def step(
        self,
        fired: Mapping[Key, Fired],
        open_cases: set[str],
        rules: Mapping[str, RuleInfo],
        day: dt.date,
        run_id: int,
    ) -> ReconcileCounts:
        counts = Counter[str]()
        open_before = {(e.case_ref, e.rule_id): e for e in self.episodes if e.closed_on is None}
        for key, f in fired.items():
            counts["explained"] += f.explained_until is not None and f.explained_until >= day
            episode = open_before.get(key)
            if episode is None:
                reopened = any((e.case_ref, e.rule_id) == key for e in self.episodes)
                episode = Episode(*key, f.severity, f.regievoerder, f.team, day, day)
                episode.reopened, episode.opened_run_id = reopened, run_id
                self.episodes.append(episode)
                counts["new"] += 1
                counts["reopened"] += reopened
            else:
                counts["still_open"] += 1
            episode.last_seen_on = day
            episode.severity, episode.regievoerder, episode.team = (
                f.severity,
                f.regievoerder,
                f.team,
            )
            # an explanation that has run out keeps its end date; one withdrawn before its
            # end is gone; a different end date is a new explanation
            given = f.explained_until if f.explained_until and f.explained_until >= day else None
            if given is not None:
                if given != episode.given_until or episode.explained_until is None:
                    episode.explained_until = episode.given_until = given
            elif episode.explained_until is not None and episode.explained_until >= day:
                episode.explained_until = episode.given_until = None
            if given is not None and episode.explained_until == given:
                episode.expired_on = None  # a new explanation
            if (
                episode.explained_until is not None
                and episode.explained_until < day
                and episode.expired_on is None
            ):
                episode.expired_on = episode.explained_until
                counts["explanation_expired"] += 1
            rule = rules.get(key[1])
            explained_now = episode.explained_until is not None and episode.explained_until >= day
            if (
                episode.escalated_on is None
                and rule
                and rule.escalate_after is not None
                and not explained_now  # an explained signal does not escalate
            ):
                due = ref_due(episode.opened_on, rule.escalate_after)
                if day >= due:
                    episode.escalated_on = due
                    counts["escalated_today"] += 1
        for key, episode in open_before.items():
            if key in fired:
                continue
            if key[0] not in open_cases:
                reason, counter = "case_closed", "closed_case"
            elif key[1] not in rules:
                reason, counter = "rule_removed", "rule_removed"
            else:
                reason, counter = "resolved", "resolved"
            episode.closed_on, episode.close_reason, episode.closed_run_id = day, reason, run_id
            counts[counter] += 1
        return ReconcileCounts(**counts)


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Day:
    gap: int  # days after the previous step (0 = the same as-of date again)
    fired: dict[Key, Fired]
    open_cases: frozenset[str]
    active_rules: frozenset[str]


def snapshot(conn: sa.Connection) -> Counter[tuple[Any, ...]]:
    c = signals.c
    rows = conn.execute(
        sa.select(
            c.case_ref,
            c.rule_id,
            c.severity,
            c.regievoerder,
            c.team,
            c.opened_on,
            c.last_seen_on,
            c.closed_on,
            c.close_reason,
            c.reopened,
            c.escalated_on,
            c.explained_until,
            c.opened_run_id,
            c.closed_run_id,
        )
    ).all()
    return Counter(tuple(r) for r in rows)


def check_invariants(conn: sa.Connection) -> None:
    rows = conn.execute(sa.select(signals).order_by(signals.c.id)).mappings().all()
    by_key: dict[Key, list[sa.RowMapping]] = {}
    for row in rows:
        by_key.setdefault((row["case_ref"], row["rule_id"]), []).append(row)
    for episodes in by_key.values():
        # at most one open episode per key, and it is the latest one
        assert [e["closed_on"] is None for e in episodes].count(True) <= 1
        assert all(e["closed_on"] is not None for e in episodes[:-1])
        # episodes never overlap: each ends on or before the next one starts
        for earlier, later in itertools.pairwise(episodes):
            assert earlier["closed_on"] <= later["opened_on"]
        for i, e in enumerate(episodes):
            assert e["reopened"] == (i > 0)
            assert e["opened_on"] <= e["last_seen_on"]
            if e["closed_on"] is not None:
                assert e["last_seen_on"] <= e["closed_on"]
                assert e["close_reason"] in {"resolved", "case_closed", "rule_removed"}
            if e["escalated_on"] is not None:
                assert e["escalated_on"] >= e["opened_on"]


def run_days(
    engine: sa.Engine,
    start: dt.date,
    days: list[Day],
    escalations: Mapping[str, Duration | None],
) -> None:
    """Apply ``days`` to the store and to the model; compare after every step."""
    model = Model()
    day = start
    for run_id, step in enumerate(days, start=1):
        day += dt.timedelta(days=step.gap)
        rules = {r: RuleInfo("high", escalations[r]) for r in step.active_rules}
        open_cases = set(step.open_cases)
        with engine.begin() as conn:
            open_before = {e.key for e in load_open_episodes(conn)}
            closed_before = load_closed_keys(conn)
            counts = reconcile(conn, step.fired, open_cases, rules, day, run_id)
        expected = model.step(step.fired, open_cases, rules, day, run_id)
        assert counts == expected

        fired = set(step.fired)
        assert counts.new == len(fired - open_before)
        assert counts.reopened == len((fired - open_before) & closed_before)
        assert counts.still_open == len(fired & open_before)
        assert counts.closed == len(open_before - fired)
        assert counts.resolved == len(
            {k for k in open_before - fired if k[0] in open_cases and k[1] in rules}
        )

        with engine.connect() as conn:
            after = snapshot(conn)
            check_invariants(conn)
            open_now = {e.key for e in load_open_episodes(conn)}
        assert after == Counter(e.row() for e in model.episodes)
        assert open_now == fired

        # idempotence: the same day with the same inputs plans nothing and changes nothing
        with engine.begin() as conn:
            again = plan(
                load_open_episodes(conn),
                load_closed_keys(conn),
                step.fired,
                open_cases,
                rules,
                day,
            )
            assert again.is_empty
            assert again.counts == ReconcileCounts(
                still_open=len(fired), explained=expected.explained
            )
            reconcile(conn, step.fired, open_cases, rules, day, run_id + 1000)
            assert snapshot(conn) == after


# --------------------------------------------------------------------------- strategies

_durations = st.sampled_from(
    [
        None,
        Duration(0, "d"),
        Duration(2, "d"),
        Duration(1, "w"),
        Duration(3, "wd"),
        Duration(8, "wd"),
    ]
)


@st.composite
def _fired(draw: st.DrawFn) -> Fired:
    explained = draw(st.one_of(st.none(), st.integers(-3, 10)))
    return Fired(
        severity=draw(st.sampled_from(["low", "high"])),
        regievoerder=draw(st.sampled_from(["rv-1", "rv-2", None])),
        team=draw(st.sampled_from(["t-1", "t-2"])),
        explained_until=None
        if explained is None
        else dt.date(2026, 4, 20) + dt.timedelta(days=explained),
    )


_keys = st.tuples(st.sampled_from(CASES), st.sampled_from(RULES))
_days = st.builds(
    Day,
    gap=st.sampled_from([0, 1, 1, 1, 2, 3, 7]),
    fired=st.dictionaries(_keys, _fired(), max_size=len(CASES) * len(RULES)),
    open_cases=st.frozensets(st.sampled_from(CASES)).map(lambda s: s | {"Z-001"}),
    active_rules=st.frozensets(st.sampled_from(RULES)).map(lambda s: s | {"VG-FIRST"}),
)


@settings(max_examples=150, deadline=None)
@given(
    start=st.dates(dt.date(2025, 12, 15), dt.date(2026, 12, 20)),
    days=st.lists(_days, min_size=1, max_size=12),
    escalations=st.fixed_dictionaries({r: _durations for r in RULES}),
)
def test_reconcile_matches_reference_model(
    start: dt.date, days: list[Day], escalations: dict[str, Duration | None]
) -> None:
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    try:
        run_days(engine, start, days, escalations)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- examples


def _engine_with_store(url: str) -> sa.Engine:
    migrate.upgrade(url)
    return sa.create_engine(url)


def _fire(*keys: Key, explained_until: dt.date | None = None) -> dict[Key, Fired]:
    return {k: Fired("high", "rv-1", "t-1", explained_until) for k in keys}


def test_an_explained_signal_does_not_escalate_until_the_explanation_ends(
    sqlite_url: str,
) -> None:
    opened = dt.date(2026, 3, 2)
    rules = {"MED-CHECK": RuleInfo("high", Duration(5, "d"))}
    key = ("Z-001", "MED-CHECK")
    engine = _engine_with_store(sqlite_url)
    try:

        def escalated_on(day: dt.date, until: dt.date | None) -> dt.date | None:
            with engine.begin() as conn:
                reconcile(conn, _fire(key, explained_until=until), {"Z-001"}, rules, day, 1)
                return conn.execute(sa.select(signals.c.escalated_on)).scalar_one()

        until = dt.date(2026, 3, 20)
        assert escalated_on(opened, until) is None
        assert escalated_on(dt.date(2026, 3, 10), until) is None  # overdue, but explained
        assert escalated_on(dt.date(2026, 3, 20), until) is None  # the last explained day
        # the explanation has run out: the signal is overdue since 7 March
        assert escalated_on(dt.date(2026, 3, 21), None) == dt.date(2026, 3, 7)
    finally:
        engine.dispose()


def test_escalation_counts_working_days_and_stays(sqlite_url: str) -> None:
    # Friday 24 April 2026; Monday 27 April is King's Day: 3wd lands on Thursday 30 April
    opened = dt.date(2026, 4, 24)
    rules = {"MED-CHECK": RuleInfo("high", Duration(3, "wd"))}
    key = ("Z-001", "MED-CHECK")
    engine = _engine_with_store(sqlite_url)
    try:

        def escalated_on(day: dt.date) -> tuple[dt.date | None, int]:
            with engine.begin() as conn:
                counts = reconcile(conn, _fire(key), {"Z-001"}, rules, day, 1)
                value = conn.execute(sa.select(signals.c.escalated_on)).scalar_one()
            return value, counts.escalated_today

        assert escalated_on(opened) == (None, 0)
        assert escalated_on(dt.date(2026, 4, 29)) == (None, 0)
        # skipped runs: the date is the due date, not the day the run noticed it
        assert escalated_on(dt.date(2026, 5, 4)) == (dt.date(2026, 4, 30), 1)
        assert escalated_on(dt.date(2026, 5, 5)) == (dt.date(2026, 4, 30), 0)
    finally:
        engine.dispose()


def test_close_reasons_take_case_first() -> None:
    d = dt.date(2026, 3, 2)
    open_eps = [
        _open(1, "Z-001", "VG-FIRST", d),  # case closed and rule removed -> case_closed
        _open(2, "Z-002", "OLD-RULE", d),  # rule removed
        _open(3, "Z-002", "VG-FIRST", d),  # resolved
        _open(4, "Z-003", "VG-FIRST", d),  # still open, nothing else changes
        _open(5, "Z-003", "MED-CHECK", d),  # still open, now explained
    ]
    as_of = d + dt.timedelta(days=1)
    fired = _fire(("Z-003", "VG-FIRST")) | _fire(
        ("Z-004", "VG-FIRST"), ("Z-003", "MED-CHECK"), explained_until=as_of
    )
    result = plan(
        open_eps,
        {("Z-004", "VG-FIRST")},
        fired,
        {"Z-002", "Z-003", "Z-004"},
        {"VG-FIRST": RuleInfo("low"), "MED-CHECK": RuleInfo("high")},
        as_of,
    )
    assert [(c.id, c.reason) for c in result.closes] == [
        (1, "case_closed"),
        (2, "rule_removed"),
        (3, "resolved"),
    ]
    assert result.touches == [4]
    assert [(u.id, u.explained_until) for u in result.updates] == [(5, as_of)]
    assert [(n.case_ref, n.reopened) for n in result.inserts] == [("Z-004", True)]
    assert result.counts == ReconcileCounts(
        new=1, reopened=1, still_open=2, resolved=1, closed_case=1, rule_removed=1, explained=2
    )
    # plan is pure: the same inputs give the same plan
    assert result == plan(
        open_eps,
        {("Z-004", "VG-FIRST")},
        fired,
        {"Z-002", "Z-003", "Z-004"},
        {"VG-FIRST": RuleInfo("low"), "MED-CHECK": RuleInfo("high")},
        as_of,
    )


def _open(id_: int, case_ref: str, rule_id: str, day: dt.date) -> OpenEpisode:
    return OpenEpisode(id_, case_ref, rule_id, "high", "rv-1", "t-1", day, day, None, None)


def test_refuses_to_go_backwards(sqlite_url: str) -> None:
    engine = _engine_with_store(sqlite_url)
    key = ("Z-001", "VG-FIRST")
    rules = {"VG-FIRST": RuleInfo("high")}
    try:
        with engine.begin() as conn:
            reconcile(conn, _fire(key), {"Z-001"}, rules, dt.date(2026, 3, 2), 1)
        with engine.begin() as conn:  # closes the episode on 3 March
            reconcile(conn, {}, {"Z-001"}, rules, dt.date(2026, 3, 3), 2)
        with pytest.raises(ReconcileError, match="2026-03-03") as info, engine.begin() as conn:
            reconcile(conn, _fire(key), {"Z-001"}, rules, dt.date(2026, 3, 2), 3)
        assert "alleen vooruit" in str(info.value)
        with engine.connect() as conn:
            assert len(snapshot(conn)) == 1  # nothing changed
    finally:
        engine.dispose()


def test_plan_refuses_open_episode_seen_after_as_of() -> None:
    d = dt.date(2026, 3, 2)
    with pytest.raises(ReconcileError, match="alleen vooruit"):
        plan([_open(1, "Z-001", "VG-FIRST", d)], set(), {}, set(), {}, d - dt.timedelta(days=1))


def test_statements_are_batched(sqlite_url: str) -> None:
    """12,000 signals reconcile in a few dozen statements, not one per signal."""
    engine = _engine_with_store(sqlite_url)
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count(*args: Any) -> None:
        statements.append(args[2])

    cases = [f"Z-{i:05d}" for i in range(4000)]
    rules = {r: RuleInfo("high", Duration(1, "d")) for r in RULES}
    everything = _fire(*[(c, r) for c in cases for r in RULES])
    fewer = dict(list(everything.items())[:9000])
    d = dt.date(2026, 3, 2)
    try:
        for offset, fired in enumerate([everything, everything, fewer, everything, everything]):
            statements.clear()
            with engine.begin() as conn:
                counts = reconcile(conn, fired, set(cases), rules, d + dt.timedelta(offset), 1)
            assert len(statements) <= 40, (offset, counts)
        assert counts.still_open == 12_000
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.select(sa.func.count()).where(signals.c.last_seen_on == d + dt.timedelta(4))
                ).scalar()
                == 12_000
            )
            assert (
                conn.execute(
                    sa.select(sa.func.count()).where(signals.c.close_reason == "resolved")
                ).scalar()
                == 3000
            )
    finally:
        engine.dispose()


def _scenario(seed: int, n_cases: int, n_days: int) -> tuple[list[Day], dict[str, Duration | None]]:
    rnd = random.Random(seed)
    cases = [f"Z-{i:04d}" for i in range(n_cases)]
    rules = ["VG-FIRST", "MED-CHECK", "CONTACT-30D", "LKO-CHALLENGE"]
    days = []
    for _ in range(n_days):
        active = frozenset(r for r in rules if rnd.random() < 0.9) | {"VG-FIRST"}
        open_cases = frozenset(c for c in cases if rnd.random() < 0.95)
        fired = {
            (c, r): Fired(
                rnd.choice(["low", "high"]),
                rnd.choice(["rv-1", "rv-2"]),
                "t-1",
                dt.date(2026, 4, 28) if rnd.random() < 0.1 else None,
            )
            for c in open_cases
            for r in active
            if rnd.random() < 0.5
        }
        days.append(Day(rnd.choice([0, 1, 1, 3]), fired, open_cases, active))
    escalations = {
        "VG-FIRST": Duration(5, "wd"),
        "MED-CHECK": Duration(1, "w"),
        "CONTACT-30D": Duration(3, "d"),
        "LKO-CHALLENGE": None,
    }
    return days, escalations


def test_reconcile_on_both_databases(db_url: str) -> None:
    """A seeded multi-day scenario on the migrated store (SQLite and PostgreSQL)."""
    days, escalations = _scenario(seed=20260302, n_cases=150, n_days=8)
    engine = _engine_with_store(db_url)
    try:
        run_days(engine, dt.date(2026, 4, 20), days, escalations)
        with engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(signals)).scalar()
            reasons = set(conn.execute(sa.select(signals.c.close_reason).distinct()).scalars())
            escalated = conn.execute(
                sa.select(sa.func.count()).where(signals.c.escalated_on.is_not(None))
            ).scalar()
        # the scenario really exercises every path
        assert total and total > 300
        assert {"resolved", "case_closed", "rule_removed"} <= reasons
        assert escalated
    finally:
        engine.dispose()
