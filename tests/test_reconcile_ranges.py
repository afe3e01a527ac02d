"""Reconcile one case_ref range at a time (issue 11, bounded memory) writes exactly what
one reconcile over everything writes: the same episodes with the same ids, the same
events, the same counts, over several nights with baseline, grace, explanations and
closed cases; on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.dates import Duration
from regiesignaal.engine.language.evaluator import Upcoming
from regiesignaal.engine.reconcile import Fired, Policy, RuleInfo, reconcile, reconcile_in_ranges
from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.episodes import Key, KeyRange
from regiesignaal.engine.store.tables import signal_events, signals

CASES = [f"Z-{i:03d}" for i in range(12)]
RULES = {
    "VG-FIRST": RuleInfo("hoog", Duration(3, "wd")),
    "MED-CHECK": RuleInfo("middel", None, Duration(5, "d")),
    "CONTACT-30D": RuleInfo("laag", Duration(1, "w")),
}
DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(4)]


def _night(rng: random.Random, day: dt.date) -> tuple[dict[Key, Fired], set[str]]:
    open_cases = {c for c in CASES if rng.random() < 0.85}
    fired: dict[Key, Fired] = {}
    for case in sorted(open_cases):
        for rule, info in RULES.items():
            if rng.random() < 0.5:
                until = (
                    day + dt.timedelta(days=rng.choice([-1, 2, 30])) if rng.random() < 0.2 else None
                )
                fired[(case, rule)] = Fired(
                    rng.choice([info.severity, "hoog"]),
                    rng.choice(["rv-1", "rv-2", None]),
                    rng.choice(["T1", "T2"]),
                    until,
                    "rv-1" if until else None,
                )
    return fired, open_cases


def _ranges(fired: dict[Key, Fired], cuts: list[str]) -> list[tuple[KeyRange, dict[Key, Fired]]]:
    bounds: list[str | None] = [None, *sorted(set(cuts)), None]
    out = []
    for above, up_to in itertools.pairwise(bounds):
        part = {
            k: v
            for k, v in fired.items()
            if (above is None or k[0] > above) and (up_to is None or k[0] <= up_to)
        }
        out.append(((above, up_to), part))
    return out


def _state(url: str) -> tuple[list[Any], list[Any]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(signals).order_by(signals.c.id)))
        rank = {r.id: i for i, r in enumerate(rows)}  # ids as ranks: sequences differ
        eps = [(rank[r.id], *r[1:]) for r in rows]
        ev = signal_events.c
        events = sorted(
            (rank.get(r[0]), *(str(x) for x in r[1:]))
            for r in conn.execute(
                sa.select(ev.signal_id, ev.case_ref, ev.rule_id, ev.kind, ev.as_of, ev.details)
            )
        )
    engine.dispose()
    return eps, events


def _fresh(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.delete(signal_events))
        conn.execute(sa.delete(signals))
        conn.execute(sa.text("DELETE FROM known_rules"))
    engine.dispose()


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.sampled_from([*CASES, "Z-0055", "A", "ZZ"]), max_size=4),
    grace=st.sampled_from([0, 2]),
)
def test_ranges_write_what_one_reconcile_writes(
    db_url: str, seed: int, cuts: list[str], grace: int
) -> None:
    migrate.upgrade(db_url)
    results = []
    for mode in ("one", "ranges", "ranges, open refs per range"):
        _fresh(db_url)
        rng = random.Random(seed)
        engine = sa.create_engine(db_url)
        counts = []
        for run_id, day in enumerate(DAYS, start=1):
            fired, open_cases = _night(rng, day)
            kwargs: dict[str, Any] = {
                "policy": Policy(grace_days=grace, baseline_spread_days=3),
                "baseline": True,
                "untouched_case_refs": {"Z-003"} if day == DAYS[2] else set(),
            }
            with engine.begin() as conn:
                if mode == "ranges":
                    got = reconcile_in_ranges(
                        conn, _ranges(fired, cuts), open_cases, RULES, day, run_id, **kwargs
                    )
                elif mode == "ranges, open refs per range":
                    chunks = _ranges(fired, cuts)
                    asked: list[Any] = []

                    def open_refs(bounds: Any, cases: set[str] = open_cases) -> set[str]:
                        asked.append(bounds)  # noqa: B023 - used within this iteration
                        above, up_to = bounds
                        return {
                            c
                            for c in cases
                            if (above is None or c > above) and (up_to is None or c <= up_to)
                        }

                    got = reconcile_in_ranges(conn, chunks, open_refs, RULES, day, run_id, **kwargs)
                    assert asked == [bounds for bounds, _ in chunks]  # once per range, in order
                else:
                    got = reconcile(conn, fired, open_cases, RULES, day, run_id, **kwargs)
            counts.append(got)
        engine.dispose()
        results.append((counts, _state(db_url)))
    for other in results[1:]:
        assert results[0][0] == other[0]
        assert results[0][1][0] == other[1][0]  # the same episodes, ids included
        assert results[0][1][1] == other[1][1]  # the same events
    assert results[0][1][0], "the scenario opened episodes"


def test_ranges_must_cover_every_case_ref(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    with pytest.raises(ValueError), engine.begin() as conn:
        reconcile_in_ranges(conn, [((None, "Z-005"), {})], set(), RULES, DAYS[0], 1)
    with pytest.raises(ValueError), engine.begin() as conn:
        reconcile_in_ranges(
            conn, [((None, "Z-005"), {}), (("Z-006", None), {})], set(), RULES, DAYS[0], 1
        )
    engine.dispose()


GROWING = ("signals", "signal_events", "warnings", "signal_explanations")
"""Tables that grow with every night's history (silences are made by people, a handful):
a statement of one range that reads all of one of them makes a night cost more with
every range and every night before it."""


def test_no_statement_of_a_range_reads_a_whole_history_table(tmp_path: Any) -> None:
    """Issue 19 at a million cases: each range's UPDATE that gives the new events their
    warning id scanned every event ever written (500 ranges x millions of events). Every
    statement reconcile runs, with its own parameters, is asked for SQLite's query plan;
    none may SCAN a table that grows with the nights (an index SEARCH is fine)."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _seen(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if not statement.lstrip().upper().startswith(("PRAGMA", "EXPLAIN")):
            statements.append((statement, params[0] if many and params else params))

    rng = random.Random(7)
    for run_id, day in enumerate(DAYS, start=1):
        fired, open_cases = _night(rng, day)
        chunks = []
        for bounds, part in _ranges(fired, ["Z-003", "Z-007"]):
            soon = {
                (case, rule): Upcoming(case, rule, "rv-1", "T1", day + dt.timedelta(days=3))
                for case in open_cases
                if (bounds[0] is None or case > bounds[0])
                and (bounds[1] is None or case <= bounds[1])
                for rule in RULES
                if (case, rule) not in part and rng.random() < 0.3
            }
            chunks.append((bounds, part, soon))
        with engine.begin() as conn:
            reconcile_in_ranges(
                conn, chunks, open_cases, RULES, day, run_id, policy=Policy(grace_days=1)
            )
    sa.event.remove(engine, "before_cursor_execute", _seen)
    # once a night, before the first range, not per range: the newest date stored (the
    # night may not go back in time) and the mode of a retired rule back in the folder
    once = ("SELECT max(signals.last_seen_on)", "SELECT DISTINCT signals.rule_id")
    statements = [(s, p) for s, p in statements if not s.lstrip().startswith(once)]
    assert any("warning_id" in s for s, _ in statements), "the scenario wrote warnings"
    scans = set()
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for statement, params in statements:
            for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", params or ()):
                detail = row[-1]
                for table in GROWING:
                    if detail.startswith(f"SCAN {table}") and (
                        detail == f"SCAN {table}" or detail.startswith(f"SCAN {table} ")
                    ):
                        scans.add((detail, " ".join(statement.split())[:100]))
    engine.dispose()
    assert not scans, sorted(scans)
