"""The rule report's figures, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from regiesignaal.engine.store.tables import metadata, signals
from regiesignaal.notifications.compose.rule_report import (
    RuleInfo,
    compose_rule_report,
    write_rule_report_page,
)
from regiesignaal.notifications.rule_report import rule_report

AS_OF = dt.date(2026, 11, 30)
RULES = {"A-1": RuleInfo("A-1", "Titel A", "R01"), "B-2": RuleInfo("B-2", "Titel B")}


@pytest.fixture
def store(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def add(engine: sa.Engine, ref: str, opened: int, closed: int | None = None, **kw: object) -> None:
    """A signal of rule A-1 opened ``opened`` days before AS_OF, closed ``closed`` days before."""
    with engine.begin() as conn:
        conn.execute(
            signals.insert().values(
                case_ref=ref,
                rule_id=kw.get("rule_id", "A-1"),
                severity="high",
                regievoerder="rv-1",
                team="T1",
                opened_on=AS_OF - dt.timedelta(days=opened),
                # a closed signal was last seen the day before it closed
                last_seen_on=AS_OF if closed is None else AS_OF - dt.timedelta(days=closed + 1),
                closed_on=None if closed is None else AS_OF - dt.timedelta(days=closed),
                close_reason=kw.get("reason", "resolved") if closed is not None else None,
                escalated_on=AS_OF if kw.get("escalated") else None,
                explained_until=AS_OF if kw.get("explained") else None,
                baseline=bool(kw.get("baseline")),
            )
        )


def test_figures_per_rule_over_4_and_13_weeks(store: sa.Engine, tmp_path: Path) -> None:
    add(store, "Z-1", opened=10)  # open, new in both windows
    add(store, "Z-2", opened=60, closed=5)  # resolved in both, 55 days
    add(store, "Z-3", opened=40, closed=35, escalated=True)  # resolved only in 13 weeks
    add(store, "Z-4", opened=200, explained=True)  # open, old
    add(store, "Z-5", opened=300, closed=200)  # outside both windows
    add(store, "Z-6", opened=20, closed=3, reason="case_closed")  # closed, not resolved
    with store.connect() as conn:
        report = rule_report(conn, AS_OF, RULES)
    a = report.rules[0]
    assert a.rule.rule_id == "A-1"
    four, thirteen = a.windows[28], a.windows[91]
    assert (four.fired, four.new, four.resolved) == (4, 2, 1)
    assert four.median_days_to_resolution == 55.0
    assert four.share_explained == 0.25 and four.share_escalated == 0.0
    assert (thirteen.fired, thirteen.new, thirteen.resolved) == (5, 4, 2)
    assert thirteen.median_days_to_resolution == 30.0
    assert thirteen.share_escalated == 0.2
    b = report.rules[1].windows[28]
    assert (b.fired, b.median_days_to_resolution, b.share_explained) == (0, None, None)
    mail = compose_rule_report(report, show_rule_ids=False)
    assert "A-1" not in mail.html and "A-1" not in mail.text
    assert "Titel A (R01)" in mail.text
    assert "4 weken: afgegaan 4, nieuw 2, opgelost 1, mediaan tot oplossing 55 dagen" in mail.text
    page = write_rule_report_page(report, tmp_path / "rapport")
    assert "A-1: Titel A (R01)" in page.read_text(encoding="utf-8")


def test_baseline_findings_are_fired_but_never_new(store: sa.Engine) -> None:
    """First-night findings ("bestaand") existed before the product: not new in the report,
    as nowhere else."""
    add(store, "Z-1", opened=3, baseline=True)
    add(store, "Z-2", opened=3)
    with store.connect() as conn:
        four = rule_report(conn, AS_OF, RULES).rules[0].windows[28]
    assert (four.fired, four.new) == (2, 1)


def test_a_rule_open_on_a_large_share_of_the_cases_is_flagged(store: sa.Engine) -> None:
    """Issue 16: a rule that fires on most cases singles nothing out; the report says so."""
    for n in range(3):
        add(store, f"Z-{n}", opened=10)  # A-1 open on 3 cases
    add(store, "Z-9", opened=10, rule_id="B-2")  # B-2 on 1
    with store.connect() as conn:
        report = rule_report(conn, AS_OF, RULES, open_cases=10, volume_share=0.25)
        at_limit = rule_report(conn, AS_OF, RULES, open_cases=12, volume_share=0.25)
    a, b = report.rules
    assert (a.open_now, a.share_open, b.share_open) == (3, 0.3, 0.1)
    assert a.flags and "30% van de open zaken (meer dan 25%)" in a.flags[0]
    assert b.flags == ()
    assert at_limit.rules[0].flags == ()  # exactly a quarter: not above the limit
    mail = compose_rule_report(report, show_rule_ids=False)
    assert "onderscheidt weinig" in mail.text and "onderscheidt weinig" in mail.html
