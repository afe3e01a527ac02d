"""The rule language's ``overdue`` block: a passed deadline keeps the signal open and raises it.

Checked on both evaluators, in the rule-file checker, and through a whole run into the store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from regiesignaal.engine.language.casefile import parse_case
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Backend, Evaluator
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.store.tables import signals, warnings
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.pipeline import RunOptions, run, upgrade_store

RULES = Path(__file__).resolve().parent.parent / "rules"

RULE = """id: LATE-01
title: Termijn
mail_title: Termijn loopt af
severity: medium
owner: team-kwaliteit
when:
  departure_term_ends_on: {within_next: 7d}
OVERDUE
unless:
  - latest_lko_on: {within_last: 28d}
expected_action: Doe iets.
"""


def _dir(tmp_path: Path, overdue: str) -> Path:
    (tmp_path / "late-01.yaml").write_text(RULE.replace("OVERDUE", overdue), encoding="utf-8")
    (tmp_path / "derived.yaml").write_text(
        "latest_lko_on:\n  description: laatste LKO\n  latest: lko.on\n", encoding="utf-8"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "overdue:\n  when: {departure_term_ends_on: {older_than: 0d}}\n  severity: medium",
            "moet hoger zijn dan die van de regel (medium)",
        ),
        (
            "overdue:\n  when: {departure_term_ends_on: {older_than: 0d}}\n  severity: urgent",
            "onbekende ernst in 'overdue'",
        ),
        ("overdue: critical", "'overdue' verwacht een blok met 'when' en 'severity'"),
        ("overdue:\n  severity: high", "verplicht veld 'when' ontbreekt in 'overdue'"),
        (
            "overdue:\n  when: {departure_term_end: {older_than: 0d}}\n  severity: high",
            "onbekend veld 'departure_term_end'",
        ),
    ],
)
def test_a_wrong_overdue_block_is_named(tmp_path: Path, block: str, message: str) -> None:
    rd = load_rule_dir(_dir(tmp_path, block))
    assert any(message in p.message for p in rd.problems), [str(p) for p in rd.problems]
    assert all(p.path.endswith("late-01.yaml") and p.line > 1 for p in rd.problems)
    assert "urgent" not in " ".join(p.message for p in rd.problems)  # no bad value repeated


@pytest.mark.parametrize("backend", ["durable", "python"])
def test_hits_carry_the_raised_severity(tmp_path: Path, backend: Backend) -> None:
    block = "overdue:\n  when: {departure_term_ends_on: {older_than: 0d}}\n  severity: critical"
    rd = load_rule_dir(_dir(tmp_path, block))
    assert rd.ok, rd.problems
    as_of = dt.date(2026, 3, 2)
    base = {"status": "open", "opened_on": "2026-01-01", "team": "T1"}
    raw = {
        "C-1": {"departure_term_ends_on": "2026-03-05"},  # ends soon: medium
        "C-2": {"departure_term_ends_on": "2026-03-01"},  # passed: critical
        "C-3": {"departure_term_ends_on": "2026-03-01", "lko": [{"on": "2026-02-20"}]},
        "C-4": {"departure_term_ends_on": "2026-04-01"},  # far away: nothing
    }
    cases = [parse_case({"case_ref": ref, **base, **extra}) for ref, extra in raw.items()]
    hits = Evaluator(compile_rules(rd, as_of), backend).hits(cases)
    got = {(h.case_ref, h.severity, h.overdue) for h in hits}
    assert got == {("C-1", "medium", False), ("C-2", "critical", True)}


def test_the_shipped_pack_raises_passed_deadlines_on_both_evaluators() -> None:
    rd = load_rule_dir(RULES)
    as_of = dt.date(2026, 3, 2)
    case = parse_case(
        {
            "case_ref": "C-9",
            "status": "open",
            "opened_on": "2025-06-01",
            "departure_term_ends_on": "2026-02-20",
            "medical": {"art64_until": "2026-02-15"},
            "location_type": "vbl",
            "measures": [{"kind": "vbl", "from": "2025-11-20"}],
        }
    )
    for backend in ("durable", "python"):
        hits = Evaluator(compile_rules(rd, as_of), backend).hits([case])  # type: ignore[arg-type]
        levels = {h.rule_id: h.severity for h in hits if h.overdue}
        assert levels == {"TERM-ENDING": "critical", "ART64-END": "critical", "VBL-10W": "critical"}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_passed_deadline_keeps_the_episode_open_and_raises_it(
    tmp_path: Path, db_url: str
) -> None:
    """Before the deadline a warning; the day after it critical, later medium: one episode."""
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    staff = _jsonl(
        tmp_path / "staff.jsonl",
        [
            {"id": "rv1", "name": "R V", "email": "rv1@dtv.example", "role": "regievoerder",
             "team": "T1"},
            {"id": "tl1", "name": "T L", "email": "tl1@dtv.example", "role": "teamleider",
             "team": "T1"},
        ],
    )  # fmt: skip
    case = {
        "case_ref": "Z-000001",
        "status": "open",
        "opened_on": "2026-02-20",
        "regievoerder": "rv1",
        "team": "T1",
        "location_type": "azc",
        "departure_term_ends_on": "2026-03-05",
        "vertrekplan": {"strategy": "iom", "documents_status": "aanwezig", "support": "iom"},
    }
    cases = _jsonl(tmp_path / "cases.jsonl", [case])
    engine = sa.create_engine(source_url)
    try:
        assert load_staff_file(engine, staff).rejected == 0
        assert load_cases(engine, cases).rejected == 0
    finally:
        engine.dispose()
    settings = dataclasses.replace(
        load_settings(env={}), source_url=source_url, store_url=db_url, rules_dir=RULES, workers=1
    )
    upgrade_store(settings)

    def term_rows() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        store = sa.create_engine(db_url)
        try:
            with store.connect() as conn:
                episodes = conn.execute(
                    sa.select(signals.c.id, signals.c.severity, signals.c.closed_on).where(
                        signals.c.rule_id == "TERM-ENDING"
                    )
                ).all()
                warned = conn.execute(
                    sa.select(
                        warnings.c.due_on, warnings.c.closed_on, warnings.c.close_reason
                    ).where(warnings.c.rule_id == "TERM-ENDING")
                ).all()
        finally:
            store.dispose()
        return [tuple(r) for r in episodes], [tuple(r) for r in warned]

    run(settings, RunOptions(dt.date(2026, 3, 2), deliver=False, force=True))
    # before the end: a warning with the last day, no signal yet
    assert term_rows() == ([], [(dt.date(2026, 3, 5), None, None)])
    run(settings, RunOptions(dt.date(2026, 3, 6), deliver=False, force=True))
    (episode,), warned = term_rows()
    assert episode[1:] == ("critical", None)  # the day after the end: critical at once
    assert warned == [(dt.date(2026, 3, 5), dt.date(2026, 3, 6), "fired")]
    run(settings, RunOptions(dt.date(2026, 3, 20), deliver=False, force=True))
    (later,), _ = term_rows()
    assert later == (episode[0], "medium", None)  # the same episode, still open, lowered


def test_explain_names_the_raised_severity() -> None:
    from regiesignaal.engine.language.evaluator import explain_case

    case = parse_case(
        {
            "case_ref": "C-1",
            "status": "open",
            "opened_on": "2025-06-01",
            "departure_term_ends_on": "2026-02-20",
        }
    )
    _, results = explain_case(load_rule_dir(RULES), case, dt.date(2026, 3, 2))
    term = next(r for r in results if r.rule_id == "TERM-ENDING")
    assert (term.fires, term.overdue, term.severity) == (True, True, "critical")
    vbl = next(r for r in results if r.rule_id == "VBL-10W")
    assert (vbl.fires, vbl.overdue, vbl.severity) == (False, False, "high")
