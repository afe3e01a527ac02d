"""Outcomes (issue 18, item 3): every closed episode records how it ended, and the rule
report counts per rule the episodes resolved by a change and those explained, per reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.reconcile import OUTCOMES, Fired, Policy, RuleInfo, reconcile
from regiesignaal.engine.store import history, migrate
from regiesignaal.engine.store.tables import signals
from regiesignaal.notifications.compose.rule_report import RuleInfo as ReportRule
from regiesignaal.notifications.compose.rule_report import compose_rule_report
from regiesignaal.notifications.rule_report import rule_report

DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)]
RULES = {
    "A": RuleInfo("low"),
    "B": RuleInfo("low"),
    "WIDE": RuleInfo("high", covers=("NARROW",)),
    "NARROW": RuleInfo("low"),
}


def test_every_closed_episode_gets_one_outcome_and_the_report_counts_them(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)

    def night(i: int, fired: dict[tuple[str, str], Fired], cases: set[str], rules: Any) -> None:
        with engine.begin() as conn:
            reconcile(conn, fired, cases, rules, DAYS[i], i + 1, policy=Policy(grace_days=0))

    f = Fired("low", "rv-1", "t-1")
    explained_in_file = Fired("low", "rv-1", "t-1", dt.date(2026, 3, 31), "rv-1",
                              explained_reason="werkt_niet_mee")  # fmt: skip
    first = {
        ("Z-1", "A"): f,  # resolved by a change
        ("Z-2", "A"): f,  # explained on the command line, then stops firing
        ("Z-3", "A"): explained_in_file,  # explained in the case file, then stops firing
        ("Z-4", "A"): f,  # its case closes
        ("Z-5", "B"): f,  # its rule is removed
        ("Z-6", "WIDE"): f,
        ("Z-6", "NARROW"): f,  # covered by WIDE, then stops firing
        ("Z-7", "A"): f,  # still open
    }
    cases = {f"Z-{i}" for i in range(1, 8)}
    try:
        night(0, first, cases, RULES)
        with engine.begin() as conn:
            history.add_explanation(
                conn, "Z-2", "A", dt.date(2026, 3, 31), "elders_geregeld", "rv-1", DAYS[0], RULES
            )
        second = dict(first)
        second[("Z-2", "A")] = f
        night(1, second, cases, RULES)
        third = {("Z-6", "WIDE"): f, ("Z-7", "A"): f}
        night(2, third, cases - {"Z-4"}, {r: i for r, i in RULES.items() if r != "B"})
        with engine.connect() as conn:
            rows = {
                (r.case_ref, r.rule_id): (r.outcome, r.outcome_reason, r.close_reason)
                for r in conn.execute(sa.select(signals))
            }
            report = rule_report(
                conn, DAYS[2], {r: ReportRule(r, f"titel {r}", "") for r in ("A", "NARROW")}
            )
    finally:
        engine.dispose()
    assert rows == {
        ("Z-1", "A"): ("resolved", None, "resolved"),
        ("Z-2", "A"): ("explained", "elders_geregeld", "resolved"),
        ("Z-3", "A"): ("explained", "werkt_niet_mee", "resolved"),
        ("Z-4", "A"): ("case_closed", None, "case_closed"),
        ("Z-5", "B"): ("rule_changed", None, "rule_removed"),
        ("Z-6", "WIDE"): (None, None, None),
        ("Z-6", "NARROW"): ("covered", None, "resolved"),
        ("Z-7", "A"): (None, None, None),
    }
    assert {o for o, _, _ in rows.values() if o} == set(OUTCOMES)

    a = next(s for s in report.rules if s.rule.rule_id == "A").window
    assert a.resolved_by_change == 1
    assert a.explained_reasons == (("elders_geregeld", 1), ("werkt_niet_mee", 1))
    assert (a.case_closed, a.rule_changed, a.covered) == (1, 0, 0)
    narrow = next(s for s in report.rules if s.rule.rule_id == "NARROW").window
    assert narrow.resolved_by_change == 0 and narrow.explained_reasons == ()
    assert narrow.covered == 1
    text = " ".join(compose_rule_report(report, show_rule_ids=False).text.split())
    assert (
        "afgesloten: 1 door een wijziging in de zaak; met toelichting: elders geregeld 1, "
        "vreemdeling werkt niet mee 1; zaak gesloten 1"
    ) in text
    html = compose_rule_report(report, show_rule_ids=True).html
    assert "met toelichting: elders geregeld 1" in html
