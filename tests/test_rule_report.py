"""The rule report's table (issue 18), on SQLite and PostgreSQL: per rule over the last 8
weeks fired, new, how its signals ended, median working days to a resolution, share
escalated, share of open cases; a weekly trend; health flags with their thresholds."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from regiesignaal.engine.store.tables import runs, signals
from regiesignaal.notifications.compose.rule_report import (
    BLOCKS,
    RuleInfo,
    compose_rule_report,
    trend_view,
    write_rule_report_page,
)
from regiesignaal.notifications.rule_report import Thresholds, _median, rule_report

AS_OF = dt.date(2026, 11, 30)  # a Monday
RULES = {"A-1": RuleInfo("A-1", "Titel A", "R01"), "B-2": RuleInfo("B-2", "Titel B")}


def day(n: int | dt.date) -> dt.date:
    return n if isinstance(n, dt.date) else AS_OF - dt.timedelta(days=n)


def add(
    engine: sa.Engine,
    ref: str,
    opened: int | dt.date,
    closed: int | dt.date | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    **kw: object,
) -> None:
    """A signal of rule A-1 opened ``opened`` days before AS_OF (or on that date), closed
    ``closed`` days before AS_OF with ``outcome``."""
    closed_on = None if closed is None else day(closed)
    with engine.begin() as conn:
        conn.execute(
            signals.insert().values(
                case_ref=ref,
                rule_id=kw.get("rule_id", "A-1"),
                severity="high",
                regievoerder="rv-1",
                team="T1",
                opened_on=day(opened),
                # a closed signal was last seen the day before it closed
                last_seen_on=AS_OF if closed_on is None else closed_on - dt.timedelta(days=1),
                closed_on=closed_on,
                close_reason=None if closed is None else "resolved",
                escalated_on=day(opened) if kw.get("escalated") else None,
                baseline=bool(kw.get("baseline")),
                outcome=outcome,
                outcome_reason=reason,
            )
        )


def first_night(engine: sa.Engine, as_of: dt.date) -> None:
    with engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                as_of=as_of,
                trigger="manual",
                status="succeeded",
                started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
        )


def test_one_row_per_rule_over_the_last_8_weeks(store: sa.Engine, tmp_path: Path) -> None:
    add(store, "Z-1", opened=10)  # open, new
    # resolved by a change: 5 and 10 working days (7 and 14 calendar days)
    add(store, "Z-2", dt.date(2026, 11, 2), dt.date(2026, 11, 9), "resolved")
    add(store, "Z-3", dt.date(2026, 10, 12), dt.date(2026, 10, 26), "resolved", escalated=True)
    add(store, "Z-4", opened=200, baseline=True)  # open, "bestaand": fired, never new
    add(store, "Z-5", opened=300, closed=200, outcome="resolved")  # long before the window
    add(store, "Z-6", opened=20, closed=3, outcome="case_closed")
    add(store, "Z-7", opened=30, closed=5, outcome="explained", reason="niet_van_toepassing")
    add(store, "Z-8", opened=40, closed=6, outcome="explained", reason="elders_geregeld")
    add(store, "Z-9", opened=40, closed=7, outcome="explained", reason="niet_van_toepassing")
    add(store, "Z-10", opened=40, closed=7, outcome="covered")
    add(store, "Z-11", opened=40, closed=8, outcome="rule_changed")
    add(store, "Z-12", opened=100, closed=60, outcome="resolved")  # closed before the window
    with store.connect() as conn:
        report = rule_report(conn, AS_OF, RULES, open_cases=40)
    a, b = report.rules
    assert a.rule.rule_id == "A-1" and list(a.windows) == [56]
    w = a.window
    assert (w.fired, w.new) == (10, 9)
    assert (w.resolved_by_change, w.case_closed, w.covered, w.rule_changed) == (2, 1, 1, 1)
    assert w.explained_reasons == (("niet_van_toepassing", 2), ("elders_geregeld", 1))
    assert w.median_working_days == 7.5  # working days, not the 10.5 calendar days
    assert w.share_escalated == 0.1
    assert (a.open_now, a.share_open) == (2, 0.05)
    assert (b.window.fired, b.window.median_working_days, b.window.share_escalated) == (
        0,
        None,
        None,
    )
    mail = compose_rule_report(report, show_rule_ids=False)
    assert "A-1" not in mail.html and "A-1" not in mail.text  # mail: code and title only
    assert "R01 Titel A" in mail.text and "R01 Titel A" in mail.html
    assert "Per regel over de laatste 8 weken" in mail.text
    assert "weken: afgegaan" not in mail.text  # one window, not 4 and 13 weeks side by side
    # the plain-text table: the row's cells line up under the header
    lines = mail.text.splitlines()
    header = next(ln for ln in lines if ln.lstrip().startswith("afg") and "nieuw" in ln)
    row = lines[lines.index("R01 Titel A") + 1]
    assert row.split() == ["10", "9", "2", "3", "7,5", "10%", "5%"]
    for cell, col in zip(row.split(), header.split(), strict=True):
        assert row.index(cell) + len(cell) == header.index(col) + len(col), (cell, col)
    assert (
        "afgesloten: 2 door een wijziging in de zaak; met toelichting: niet van toepassing 2, "
        "elders geregeld 1; zaak gesloten 1; omvat door een andere regel 1; regel gewijzigd 1"
    ) in " ".join(mail.text.split())
    assert "<th" in mail.html and "mediaan" in mail.html.replace("&shy;", "")
    assert "<svg" not in mail.html  # mail clients: no images, no SVG
    page = write_rule_report_page(report, tmp_path / "rapport").read_text(encoding="utf-8")
    assert "A-1: R01 Titel A" in page and "<svg" in page


def test_the_trend_counts_open_signals_at_each_week_end(store: sa.Engine) -> None:
    add(store, "Y-1", opened=20)  # open at the last three week ends
    add(store, "Y-2", opened=30, closed=7, outcome="resolved")  # open at -28, -21, -14
    add(store, "Y-3", opened=3, closed=1, outcome="resolved")  # between two week ends
    with store.connect() as conn:
        report = rule_report(conn, AS_OF, RULES)
    a = report.rules[0]
    assert report.trend_ends[0] == day(84) and report.trend_ends[-1] == AS_OF
    assert a.trend == (0,) * 8 + (1, 1, 2, 1, 1)
    assert report.rules[1].trend == (0,) * 13
    view = trend_view(a.trend, report.trend_ends)
    assert view["blocks"] == BLOCKS[0] * 8 + BLOCKS[4] * 2 + BLOCKS[7] + BLOCKS[4] * 2
    assert [b["px"] for b in view["bars"]][-3:] == [24, 12, 12]
    text = compose_rule_report(report, show_rule_ids=False).text
    assert f"verloop: {view['blocks']}" in text


def test_a_young_store_says_since_when_and_draws_no_weeks_before_it(store: sa.Engine) -> None:
    first_night(store, day(21))
    add(store, "Y-1", opened=20)
    add(store, "Y-2", opened=21, closed=7, outcome="resolved")
    with store.connect() as conn:
        report = rule_report(conn, AS_OF, RULES)
    assert report.first_night == day(21)
    assert report.rules[0].trend == (None,) * 9 + (1, 2, 1, 1)
    mail = compose_rule_report(report, show_rule_ids=False)
    assert "sinds 09-11-2026" in mail.text and "sinds 09-11-2026" in mail.html
    assert "over de laatste 8 weken" not in mail.text.split("Kolommen")[0]
    assert trend_view(report.rules[0].trend, report.trend_ends)["weeks"] == 4


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
    assert "onderscheidt weinig" in " ".join(mail.text.split())
    assert "onderscheidt weinig" in mail.html


def test_outcome_flags_wait_for_enough_closed_signals(store: sa.Engine) -> None:
    """More than half explained "niet van toepassing" and hardly ever resolved by a change
    over the flag weeks, once at least ``flag_min_closed`` signals were judged; a closed
    case or a changed rule is not held against the rule."""
    for n in range(6):
        add(store, f"A{n}", 40, 2, "explained", "niet_van_toepassing")
    for n in range(4):
        add(store, f"C{n}", 40, 2, "covered")
    for n in range(9):
        add(store, f"B{n}", 40, 2, "explained", "niet_van_toepassing", rule_id="B-2")
    for n in range(5):
        add(store, f"D{n}", 40, 2, "case_closed", rule_id="B-2")
        add(store, f"E{n}", 40, 2, "rule_changed", rule_id="B-2")
    add(store, "F0", 200, 70, "explained", "niet_van_toepassing", rule_id="B-2")  # > 8 weeks
    with store.connect() as conn:
        report = rule_report(conn, AS_OF, RULES)
        lenient = rule_report(conn, AS_OF, RULES, thresholds=Thresholds(flag_min_closed=9))
        strict = rule_report(
            conn,
            AS_OF,
            RULES,
            thresholds=Thresholds(not_applicable_share=0.6, min_resolved_by_change=0.0),
        )
    a, b = report.rules
    assert len(a.flags) == 2
    assert "60% van de 10 afgesloten signalen van de laatste 8 weken" in a.flags[0]
    assert "niet van toepassing" in a.flags[0] and "overweeg" in a.flags[0]
    assert "slechts 0% van de 10 afgesloten signalen" in a.flags[1]
    assert b.flags == ()  # 9 judged: too few
    assert len(lenient.rules[1].flags) == 2
    assert strict.rules[0].flags == ()  # 60% is not more than 60%; 0% not below 0%
    assert "Instelbaar in [report]" in report.notes[0]
    mail = compose_rule_report(report, show_rule_ids=False)
    assert "Let op bij 1 regel." in mail.text
    assert mail.text.count("LET OP:") == 2 and mail.html.count("Let op:</strong>") == 2


def test_the_report_reads_the_store_in_one_pass(
    store: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One streamed query over the episodes (yield_per), one count of the open ones, one
    look-up of the first night: the number of statements does not grow with the rules."""
    for n in range(30):
        add(store, f"Z-{n}", opened=n + 1, rule_id="A-1" if n % 2 else "B-2")
    statements: list[str] = []
    sa.event.listen(store, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with store.connect() as conn:
        rule_report(conn, AS_OF, RULES)
    assert len([s for s in statements if "FROM signals" in s]) == 2
    assert len(statements) == 3


def test_median_from_counts() -> None:
    assert _median(Counter()) is None
    assert _median(Counter({3: 1})) == 3.0
    assert _median(Counter({1: 2, 5: 2})) == 3.0
    assert _median(Counter({1: 1, 2: 5, 9: 1})) == 2.0
