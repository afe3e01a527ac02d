"""Reconcile's fast insert path (issue 11: rows straight to the driver, COPY on PostgreSQL)
stores byte for byte what the straightforward SQLAlchemy ``executemany`` stores: the same
episodes with the same ids, the same events with the same ids and details, over generated
nights with baseline, explanations, gaps, closed cases and reassignments; on real SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine import reconcile
from regiesignaal.engine.language.dates import Duration
from regiesignaal.engine.reconcile import Fired, Policy, RuleInfo
from regiesignaal.engine.store import episodes, migrate
from regiesignaal.engine.store.episodes import Key
from regiesignaal.engine.store.tables import known_rules, signal_events, signals

CASES = [f"Z-{i:03d}" for i in range(15)]
RULES = {
    "VG-FIRST": RuleInfo("high", Duration(3, "wd")),
    "MED-CHECK": RuleInfo("medium", None, Duration(5, "d")),
    "CONTACT-30D": RuleInfo("low", Duration(1, "w")),
    "ZZ-ÜNICODE": RuleInfo("critical"),
}
DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in (0, 1, 2, 7)]
NOW = dt.datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=dt.UTC)


def _night(rng: random.Random, day: dt.date) -> tuple[dict[Key, Fired], set[str]]:
    open_cases = {c for c in CASES if rng.random() < 0.85}
    fired: dict[Key, Fired] = {}
    for case in sorted(open_cases):
        for rule, info in RULES.items():
            if rng.random() < 0.5:
                until = (
                    day + dt.timedelta(days=rng.choice([-1, 2, 30]))
                    if rng.random() < 0.25
                    else None
                )
                fired[(case, rule)] = Fired(
                    rng.choice([info.severity, "high"]),
                    rng.choice(["rv-1", "rv-2", "rv-'ö", None]),
                    rng.choice(["T1", "T2", None]),
                    until,
                    rng.choice(["rv-1", None]) if until else None,
                )
    return fired, open_cases


def _raw(url: str) -> list[list[tuple[Any, ...]]]:
    """Every stored value as the database's own text (NULL stays None)."""
    engine = sa.create_engine(url)
    out = []
    with engine.connect() as conn:
        for table in (signals, signal_events, known_rules):
            cols = [sa.cast(c, sa.Text) for c in table.c]
            order = table.c.id if "id" in table.c else table.c.rule_id
            out.append([tuple(r) for r in conn.execute(sa.select(*cols).order_by(order))])
    engine.dispose()
    return out


def _fresh(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in (signal_events, signals, known_rules):
            conn.execute(sa.delete(table))
        if conn.dialect.name == "postgresql":  # ids from 1 again, as on SQLite
            conn.execute(sa.text("ALTER SEQUENCE signals_id_seq RESTART WITH 1"))
            conn.execute(sa.text("ALTER SEQUENCE signal_events_id_seq RESTART WITH 1"))
    engine.dispose()


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10_000), grace=st.sampled_from([0, 2]))
def test_fast_insert_stores_what_executemany_stores(
    db_url: str, seed: int, grace: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.upgrade(db_url)
    monkeypatch.setattr(reconcile, "_now", lambda: NOW)
    results = []
    for fast in (False, True):
        monkeypatch.setattr(episodes, "FAST_INSERT", fast)
        _fresh(db_url)
        rng = random.Random(seed)
        engine = sa.create_engine(db_url)
        for run_id, day in enumerate(DAYS, start=1):
            fired, open_cases = _night(rng, day)
            with engine.begin() as conn:
                reconcile.reconcile(
                    conn,
                    fired,
                    open_cases,
                    RULES,
                    day,
                    run_id,
                    policy=Policy(grace_days=grace, baseline_spread_days=3),
                    baseline=True,
                    ruleset_version="v1",
                )
        engine.dispose()
        results.append(_raw(db_url))
    slow, quick = results
    assert slow[0] and slow[1], "the scenario wrote episodes and events"
    kind_at = list(signal_events.c.keys()).index("kind")
    kinds = {r[kind_at] for r in slow[1]}
    assert {"opened", "explained"} <= kinds, kinds  # details with and without values
    assert quick == slow


def test_fast_insert_keeps_the_order_of_rows(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    rows = [(f"Z-{i:03d}", "R", "low", None, None, DAYS[0], DAYS[0], None, None, bool(i % 2),
             None, None, 7, None, False, None, None, None, None, None, None, None, None, None,
             None, None, None, None, None, None, False)
            for i in range(50, 0, -1)]  # fmt: skip
    with engine.begin() as conn:
        episodes.insert_rows(conn, signals, episodes.SIGNAL_COLUMNS, rows)
    with engine.connect() as conn:
        got = list(conn.execute(sa.select(signals.c.case_ref, signals.c.reopened).order_by("id")))
    engine.dispose()
    assert [r[0] for r in got] == [r[0] for r in rows]
    assert [r[1] for r in got] == [r[9] for r in rows]


def test_remembered_dates_and_times_store_what_executemany_stores(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path remembers each date's and time's converted value within one insert
    (issue 19); equal instants in other time zones stay apart, so every row stores what
    SQLAlchemy's own executemany stores."""
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    amsterdam = dt.timezone(dt.timedelta(hours=1))
    times = [NOW, NOW.astimezone(amsterdam), NOW, NOW.replace(tzinfo=None), None]
    days = [DAYS[0], DAYS[1], DAYS[0], DAYS[0], DAYS[1]]
    ev = signal_events.c
    stored = []
    for fast in (True, False):
        monkeypatch.setattr(episodes, "FAST_INSERT", fast)
        rows = [
            (None, None, f"Z-{i}", "R", "opened", day, 1, None, {"i": i}, when or NOW)
            for i, (day, when) in enumerate(zip(days * 3, times * 3, strict=True))
        ]
        with engine.begin() as conn:
            conn.execute(signal_events.delete())
            episodes.insert_rows(conn, signal_events, episodes.EVENT_COLUMNS, rows)
        with engine.connect() as conn:
            stored.append(
                list(
                    conn.execute(
                        sa.select(ev.case_ref, ev.as_of, ev.created_at, ev.details).order_by(ev.id)
                    )
                )
            )
    engine.dispose()
    assert stored[0] == stored[1]
    assert len(stored[0]) == 15
    if db_url.startswith("sqlite"):  # SQLite keeps each zone's wall time: they differ
        assert len({row[2] for row in stored[0]}) >= 2
