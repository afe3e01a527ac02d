"""Issue 6: signal history that survives bad nights, with a complete audit trail.

Library-level tests on the real store (SQLite and PostgreSQL): reconcile is driven
directly with small synthetic facts, night by night.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from regiesignaal.engine.evaluate import unknown_explanation_rules
from regiesignaal.engine.language.dates import Duration, add_working_days, shift
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.reconcile import Fired, Policy, RuleInfo, plan, reconcile
from regiesignaal.engine.store import history, migrate
from regiesignaal.engine.store.tables import runs, signal_events, signals
from regiesignaal.jobs.demo.demo import run_demo
from regiesignaal.notifications.case_manager import case_manager_lines
from regiesignaal.notifications.shared import RuleMeta

MON = dt.date(2026, 3, 2)  # Monday
RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
GRACE = Policy(grace_days=2)


@pytest.fixture
def store(db_url: str) -> Iterator[sa.Engine]:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def night(
    engine: sa.Engine,
    day: dt.date,
    fired: Mapping[tuple[str, str], Fired],
    open_cases: set[str],
    rules: Mapping[str, RuleInfo],
    run_id: int,
    policy: Policy = GRACE,
    baseline: bool = False,
) -> dict[str, int]:
    problems: list[str] = []
    with engine.begin() as conn:
        counts = reconcile(
            conn,
            fired,
            open_cases,
            rules,
            day,
            run_id,
            policy=policy,
            baseline=baseline,
            ruleset_version="v1",
            problems=problems,
        )
    out = counts.as_dict()
    out["problems"] = len(problems)
    return out


def rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(signals).order_by(signals.c.id)))


def events(engine: sa.Engine, signal_id: int | None = None) -> list[Any]:
    query = sa.select(signal_events).order_by(signal_events.c.id)
    if signal_id is not None:
        query = query.where(signal_events.c.signal_id == signal_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def fire(
    *keys: tuple[str, str], rv: str = "rv-1", until: dt.date | None = None, severity: str = "high"
) -> dict[tuple[str, str], Fired]:
    return {k: Fired(severity, rv, "t-1", until) for k in keys}


KEY = ("Z-1", "VG-FIRST")
RULES = {"VG-FIRST": RuleInfo("high", Duration(2, "wd"))}


# ------------------------------------------------------------------ failure 1: glitches


def test_a_one_night_glitch_keeps_the_episode_and_its_escalation(store: sa.Engine) -> None:
    """Case missing one night, case closed one night, rule switched off one night, rule not
    firing one night: the episode continues with the same opened_on and escalation."""
    days = [add_working_days(MON, i) for i in range(12)]
    night(store, days[0], fire(KEY), {"Z-1"}, RULES, 1)
    night(store, days[2], fire(KEY), {"Z-1"}, RULES, 2)  # escalates (2wd)
    (first,) = rows(store)
    assert first.escalated_on == days[2]
    glitches: list[tuple[set[str], dict[str, RuleInfo], dict[Any, Fired]]] = [
        (set(), RULES, {}),  # case missing
        ({"Z-1"}, {}, {}),  # rule switched off
        ({"Z-1"}, RULES, {}),  # rule does not fire
    ]
    day_i = 3
    for run_id, (open_cases, rules, fired) in enumerate(glitches, start=3):
        counts = night(store, days[day_i], fired, open_cases, rules, run_id * 10)
        assert counts["in_gap"] == 1 and counts["gap_started"] == 1
        assert counts["resolved"] + counts["closed_case"] + counts["rule_removed"] == 0
        counts = night(store, days[day_i + 1], fire(KEY), {"Z-1"}, RULES, run_id * 10 + 1)
        assert counts["still_open"] == 1 and counts["new"] == 0
        day_i += 2
    (row,) = rows(store)
    assert (row.id, row.opened_on, row.escalated_on) == (first.id, days[0], days[2])
    assert row.closed_on is None and row.gap_since is None
    kinds = [e.kind for e in events(store, row.id)]
    assert kinds == ["opened", "escalated"] + ["gap_started", "gap_ended"] * 3
    reasons = [e.details["reason"] for e in events(store, row.id) if e.kind == "gap_started"]
    assert reasons == ["case_closed", "rule_removed", "resolved"]
    # the mail does not list a signal in a gap, and lists it again when it is back
    night(store, days[day_i], {}, {"Z-1"}, RULES, 90)
    with store.connect() as conn:
        meta = {"VG-FIRST": RuleMeta("Titel", "Doe iets", Duration(2, "wd"))}
        assert case_manager_lines(conn, days[day_i], meta, str, {}).lines == {}


def test_absent_longer_than_the_grace_closes_with_its_reason(store: sa.Engine) -> None:
    night(store, MON, fire(KEY, ("Z-2", "VG-FIRST")), {"Z-1", "Z-2"}, RULES, 1)
    tue, wed, thu = (add_working_days(MON, i) for i in (1, 2, 3))
    assert night(store, tue, {}, {"Z-2"}, RULES, 2)["in_gap"] == 2
    assert night(store, wed, {}, {"Z-2"}, RULES, 3)["in_gap"] == 2  # 2 working days: grace
    counts = night(store, thu, {}, {"Z-2"}, RULES, 4)
    assert (counts["closed_case"], counts["resolved"], counts["in_gap"]) == (1, 1, 0)
    by_case = {r.case_ref: r for r in rows(store)}
    assert by_case["Z-1"].close_reason == "case_closed" and by_case["Z-1"].closed_on == thu
    assert by_case["Z-1"].last_seen_on == MON  # the gap shows in the row and the events
    kinds = [e.kind for e in events(store, by_case["Z-1"].id)]
    assert kinds == ["opened", "gap_started", "case_closed"]
    # it comes back later: a new, reopened episode
    night(store, add_working_days(MON, 4), fire(KEY), {"Z-1"}, RULES, 5)
    assert [e.kind for e in events(store)][-1] == "reopened"


# ------------------------------------------------------------------ failure 3: expiry


def test_an_expired_explanation_keeps_its_end_date_and_marks_the_signal(
    store: sa.Engine,
) -> None:
    until = add_working_days(MON, 1)
    rules = {"VG-FIRST": RuleInfo("high", Duration(1, "wd"))}
    night(store, MON, fire(KEY, until=until), {"Z-1"}, rules, 1)
    night(store, until, fire(KEY, until=until), {"Z-1"}, rules, 2)
    (row,) = rows(store)
    assert row.explained_until == until and row.escalated_on is None
    after = add_working_days(MON, 2)
    counts = night(store, after, fire(KEY), {"Z-1"}, rules, 3)  # the case file drops it
    assert counts["explanation_expired"] == 1
    (row,) = rows(store)
    assert row.explained_until == until, "the end date is kept"
    assert row.explanation_expired_on == until
    assert row.escalated_on is not None  # overdue: escalates the day the explanation ends
    assert [e.kind for e in events(store)] == [
        "opened",
        "explained",
        "explanation_expired",
        "escalated",
    ]
    with store.connect() as conn:
        meta = {"VG-FIRST": RuleMeta("Titel", "Doe iets", Duration(1, "wd"))}
        (line,) = case_manager_lines(conn, after, meta, str, {}).lines["rv-1"]
    assert line.explanation_expired, "the list shows 'toelichting verlopen'"
    # replaying the night writes nothing
    assert night(store, after, fire(KEY), {"Z-1"}, rules, 4)["explanation_expired"] == 0
    assert len(events(store)) == 4


def test_max_explanation_caps_and_reports(store: sa.Engine) -> None:
    rules = {"VG-FIRST": RuleInfo("high", None, Duration(10, "d"))}
    long = MON + dt.timedelta(days=200)
    by_case_file = {KEY: Fired("high", "rv-1", "t-1", long, "rv-9")}
    counts = night(store, MON, by_case_file, {"Z-1"}, rules, 1)
    assert counts["problems"] == 1
    (row,) = rows(store)
    assert row.explained_until == MON + dt.timedelta(days=10)
    assert row.explained_given_until == long
    (ev,) = [e for e in events(store) if e.kind == "explained"]
    assert ev.details["capped_to"] == "10d" and ev.details["source"] == "case_file"
    assert ev.details["by"] == "rv-9"
    # the same explanation on later nights: no new event, and it expires at the cap
    night(store, MON + dt.timedelta(days=5), fire(KEY, until=long), {"Z-1"}, rules, 2)
    night(store, MON + dt.timedelta(days=11), fire(KEY, until=long), {"Z-1"}, rules, 3)
    kinds = [e.kind for e in events(store)]
    assert kinds == ["opened", "explained", "explanation_expired"]


# ------------------------------------------------------------------ failure 4: unknown rules


def test_explanations_for_unknown_rules_are_reported_with_the_nearest_rule() -> None:
    refs = [
        ("Z-1", 1, "vg-first"),
        ("Z-2", 1, "VG-FIRST "),
        ("Z-3", 2, "VG-FRIST"),
        ("Z-4", 1, "MED-CHECK"),  # exists but is switched off: not reported
    ]
    problems = unknown_explanation_rules(refs, {"VG-FIRST", "MED-CHECK", "CONTACT-30D"})
    assert len(problems) == 3
    for case_ref, problem in zip(["Z-1", "Z-2", "Z-3"], problems, strict=True):
        assert problem.startswith(f"zaak {case_ref}: toelichting")
        assert "'VG-FIRST'" in problem
        for bad in ("vg-first", "VG-FIRST ", "VG-FRIST"):
            assert f"'{bad}'" not in problem


# ------------------------------------------------------------------ failure 6: the trail


def test_every_transition_is_an_event_with_run_date_and_rule_version(store: sa.Engine) -> None:
    rules = {"VG-FIRST": RuleInfo("high", Duration(3, "wd"))}
    days = [add_working_days(MON, i) for i in range(6)]
    night(store, days[0], fire(KEY, severity="medium"), {"Z-1"}, rules, 1)
    night(store, days[1], fire(KEY, rv="rv-2"), {"Z-1"}, rules, 2)
    with store.begin() as conn:
        explanation_id = history.add_explanation(
            conn,
            "Z-1",
            "VG-FIRST",
            days[5],
            "wacht_op_ketenpartner",
            "rv-2",
            days[1],
            rules,
            text="wacht op documenten",
        )
    night(store, days[2], fire(KEY, rv="rv-2"), {"Z-1"}, rules, 3)
    with store.begin() as conn:
        history.revoke_explanation(conn, explanation_id, "tl-1")
    night(store, days[3], fire(KEY, rv="rv-2"), {"Z-1"}, rules, 4)
    evs = events(store)
    assert [(e.kind, e.run_id, e.as_of) for e in evs] == [
        ("opened", 1, days[0]),
        ("severity_changed", 2, days[1]),
        ("reassigned", 2, days[1]),
        ("explained", 3, days[2]),
        ("explanation_revoked", 4, days[3]),
        ("escalated", 4, days[3]),
    ]
    assert all(e.ruleset_version == "v1" and e.case_ref == "Z-1" for e in evs)
    assert evs[2].details == {"from": "rv-1", "to": "rv-2"}
    assert evs[3].details == {
        "until": days[5].isoformat(),
        "source": "command_line",
        "reason": "wacht_op_ketenpartner",
        "by": "rv-2",
        "explanation_id": explanation_id,
    }
    # nothing but ids, dates and reasons: no case contents, no explanation text
    assert "documenten" not in repr([e.details for e in evs])
    (h,) = history.signal_histories(store.connect(), "Z-1", days[3])
    assert [e["kind"] for e in h.events] == [e.kind for e in evs]


# ------------------------------------------------------------------ no flood (issue 7)


def test_first_night_is_a_baseline_spread_over_the_escalation_window() -> None:
    """No single day escalates more than 1.5 / baseline_spread_days of the first night's
    findings (the documented bound; a hash of the key spreads them)."""
    rules = {"VG-FIRST": RuleInfo("high", Duration(10, "wd"))}
    fired = fire(*[(f"Z-{i:05d}", "VG-FIRST") for i in range(3000)])
    policy = Policy(grace_days=2, baseline_spread_days=10)
    result = plan(
        [], set(), fired, {k[0] for k in fired}, rules, MON, known_rules=set(), policy=policy
    )
    assert result.counts.baseline == 3000 and result.counts.new == 0
    assert result.introduced_rules == ["VG-FIRST"]
    due = Counter(shift(n.clock_start or MON, Duration(10, "wd"), 1) for n in result.inserts)
    assert len(due) == 10
    assert max(due.values()) <= 1.5 * 3000 / 10
    assert all(n.baseline and n.escalated_on is None for n in result.inserts)


def test_a_new_rule_gets_a_baseline_night_and_old_rules_do_not(store: sa.Engine) -> None:
    rules = {"VG-FIRST": RuleInfo("high", Duration(3, "wd"))}
    counts = night(store, MON, fire(KEY), {"Z-1", "Z-2"}, rules, 1, baseline=True)
    assert (counts["baseline"], counts["new"]) == (1, 0)
    rules2 = rules | {"MED-CHECK": RuleInfo("low")}
    tue = add_working_days(MON, 1)
    fired = fire(KEY, ("Z-2", "VG-FIRST"), ("Z-1", "MED-CHECK"), ("Z-2", "MED-CHECK"))
    counts = night(store, tue, fired, {"Z-1", "Z-2"}, rules2, 2, baseline=True)
    assert (counts["baseline"], counts["new"]) == (2, 1)
    flags = {(r.case_ref, r.rule_id): r.baseline for r in rows(store)}
    assert flags == {
        ("Z-1", "VG-FIRST"): True,
        ("Z-2", "VG-FIRST"): False,
        ("Z-1", "MED-CHECK"): True,
        ("Z-2", "MED-CHECK"): True,
    }


# ------------------------------------------------------------------ retirement


def test_retired_rules_close_at_once_with_rule_retired(store: sa.Engine) -> None:
    night(store, MON, fire(KEY), {"Z-1"}, RULES, 1, baseline=True)
    with store.begin() as conn:
        with pytest.raises(history.HistoryError, match="staat nog aan"):
            history.retire_rules(conn, ["VG-FIRST"], "op-1", {"VG-FIRST"})
        with pytest.raises(history.HistoryError, match="onbekend"):
            history.retire_rules(conn, ["VG-FIRS"], "op-1", set())
        history.retire_rules(conn, ["VG-FIRST"], "op-1", set())
    counts = night(store, add_working_days(MON, 1), {}, {"Z-1"}, {}, 2, baseline=True)
    assert counts["rule_retired"] == 1 and counts["in_gap"] == 0
    (row,) = rows(store)
    assert row.close_reason == "rule_retired"
    assert [e.kind for e in events(store)] == ["opened", "rule_retired"]


# ------------------------------------------------------------------ rule files and demo


def test_max_explanation_in_a_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = rules / "vg-first.yaml"
    path.write_text(path.read_text() + "max_explanation: 90d\n")
    ruledir = load_rule_dir(rules)
    assert ruledir.ok, ruledir.problems
    (rule,) = [r for r in ruledir.rules if r.id == "VG-FIRST"]
    assert rule.max_explanation == Duration(90, "d")
    path.write_text(path.read_text().replace("max_explanation: 90d", "max_explanation: lang"))
    problems = [str(p) for p in load_rule_dir(rules).problems]
    assert len(problems) == 1 and "vg-first.yaml" in problems[0]


@pytest.mark.slow
def test_demo_nights_shows_every_kind_of_history(tmp_path: Path) -> None:
    summary = run_demo(tmp_path / "demo", cases=200, seed=5, nights=4)
    assert summary.status == "succeeded"
    assert summary.reconcile["baseline"] == 0, "only the first night is a baseline"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'demo' / 'store.sqlite'}")
    try:
        with engine.connect() as conn:
            kinds = set(conn.execute(sa.select(signal_events.c.kind).distinct()).scalars())
            nights = conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar()
    finally:
        engine.dispose()
    assert nights == 4
    assert {"opened", "explained", "gap_started", "resolved", "reassigned"} <= kinds


def test_migration_0003_knows_the_rules_of_existing_signals(db_url: str) -> None:
    """An existing store: rules that already have signals get no baseline night."""
    migrate.upgrade(db_url, "0002")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            for case_ref, opened in (("Z-1", MON), ("Z-2", MON - dt.timedelta(days=3))):
                conn.execute(
                    sa.text(
                        "INSERT INTO signals (case_ref, rule_id, severity, opened_on, "
                        "last_seen_on) VALUES (:c, 'VG-FIRST', 'high', :d, :d)"
                    ),
                    {"c": case_ref, "d": opened},
                )
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            known = conn.execute(sa.text("SELECT rule_id, introduced_on FROM known_rules")).all()
            baseline = conn.execute(sa.select(signals.c.baseline)).scalars().all()
        assert [(r, dt.date.fromisoformat(str(d))) for r, d in known] == [
            ("VG-FIRST", MON - dt.timedelta(days=3))
        ]
        assert baseline == [False, False]
        counts = night(
            engine,
            MON + dt.timedelta(days=1),
            fire(("Z-3", "VG-FIRST")),
            {"Z-3"},
            RULES,
            1,
            baseline=True,
        )
        assert (counts["new"], counts["baseline"]) == (1, 0)
    finally:
        engine.dispose()
