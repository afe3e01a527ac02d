"""Derived fields and flat facts, through a real rule directory and both evaluators."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from regiesignaal.engine.language.casefile import parse_case
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.facts import build_fact
from regiesignaal.engine.language.rulefile.folder import load_rule_dir

AS_OF = dt.date(2026, 3, 2)

DERIVED = """
last_touch_on:
  description: laatste contact of gesprek, anders de overdracht
  latest: [contacts.on, interviews.on]
  otherwise: opened_on
first_interview_on:
  description: eerste gesprek
  earliest: interviews.on
vg_count:
  description: vertrekgesprekken
  count: interviews
  where: {kind: vertrekgesprek}
has_unchallenged:
  description: gedwongen besluit zonder tegenspraak
  exists: lko
  where:
    all:
      - decision: [gedwongen, bewaring]
      - challenge_recorded: {ne: true, if_missing: true}
decisions:
  description: besluiten in het ketenoverleg
  values: lko.decision
recent_contacts:
  description: contacten in de laatste 14 dagen
  count: contacts
  where: {on: {within_last: 14d}}
"""

RULE = """id: {id}
title: t
mail_title: m
severity: low
owner: o
expected_action: a
when:
{when}
"""


@pytest.fixture
def ruledir(tmp_path: Path) -> Path:
    (tmp_path / "derived.yaml").write_text(DERIVED)
    rules = {
        "HAS-FORCED": "  decisions: {contains: gedwongen}",
        "NO-FORCED": "  decisions: {not_contains: gedwongen}",
        "QUIET": "  recent_contacts: 0",
        "UNCHALLENGED": "  has_unchallenged: true",
    }
    for rid, when in rules.items():
        (tmp_path / f"{rid.lower()}.yaml").write_text(RULE.format(id=rid, when=when))
    return tmp_path


def case(**extra: Any) -> dict[str, Any]:
    return parse_case({"case_ref": "Z-1", "status": "open", "opened_on": "2026-01-05", **extra})


def fact_of(ruledir: Path, c: dict[str, Any]) -> dict[str, Any]:
    rd = load_rule_dir(ruledir)
    assert rd.ok, rd.problems
    # facts carry only what rules read: ask for every derived field through a rule each
    compiled = compile_rules(rd, AS_OF)
    return build_fact(c, compiled)


def fired(ruledir: Path, c: dict[str, Any]) -> dict[str, list[str]]:
    compiled = compile_rules(load_rule_dir(ruledir), AS_OF)
    return {b: Evaluator(compiled, b).fired(c) for b in ("durable", "python")}  # type: ignore[arg-type]


def test_derived_values_on_a_full_case(ruledir: Path) -> None:
    from regiesignaal.engine.language.compiled import CompiledDerived
    from regiesignaal.engine.language.conditions import bind, compile_predicate
    from regiesignaal.engine.language.facts import derive

    rd = load_rule_dir(ruledir)
    c = case(
        contacts=[{"on": "2026-02-01"}, {"on": "2026-02-20"}],
        interviews=[
            {"on": "2026-01-10", "kind": "intake"},
            {"on": "2026-02-25", "kind": "vertrekgesprek"},
            {"on": "2026-01-20", "kind": "vertrekgesprek"},
        ],
        lko=[
            {"on": "2026-02-01", "decision": "gedwongen", "challenge_recorded": True},
            {"on": "2026-02-10", "decision": "bewaring"},
            {"on": "2026-02-11", "decision": "aanhouden"},
        ],
    )
    values = {}
    for d in rd.derived:
        where = compile_predicate(bind(d.where, AS_OF)) if d.where else None
        values[d.name] = derive(c, CompiledDerived(d, where))
    assert values == {
        "last_touch_on": dt.date(2026, 2, 25).toordinal(),
        "first_interview_on": dt.date(2026, 1, 10).toordinal(),
        "vg_count": 2,
        "has_unchallenged": True,  # the bewaring decision has no challenge recorded
        "decisions": ["aanhouden", "bewaring", "gedwongen"],
        "recent_contacts": 1,  # 2026-02-20 is 10 days before the as-of date; 02-01 is 29
    }


def test_otherwise_and_missing_values_without_records(ruledir: Path) -> None:
    from regiesignaal.engine.language.compiled import CompiledDerived
    from regiesignaal.engine.language.facts import derive

    rd = load_rule_dir(ruledir)
    by_name = {d.name: d for d in rd.derived}
    c = case()
    assert (
        derive(c, CompiledDerived(by_name["last_touch_on"], None))
        == dt.date(2026, 1, 5).toordinal()
    )
    assert derive(c, CompiledDerived(by_name["first_interview_on"], None)) is None
    assert derive(c, CompiledDerived(by_name["decisions"], None)) == []


def test_contains_and_not_contains_on_values_both_evaluators(ruledir: Path) -> None:
    forced = case(lko=[{"on": "2026-02-01", "decision": "gedwongen", "challenge_recorded": True}])
    other = case(lko=[{"on": "2026-02-01", "decision": "zelfstandig"}])
    none = case()
    for c, expect in (
        (forced, ["HAS-FORCED", "QUIET"]),
        (other, ["NO-FORCED", "QUIET"]),
        (none, ["NO-FORCED", "QUIET"]),  # no meetings: the list is empty, not missing
    ):
        got = fired(ruledir, c)
        assert got["durable"] == got["python"] == expect, (c["lko"], got)


def test_where_relative_to_the_as_of_date(ruledir: Path) -> None:
    recent = case(contacts=[{"on": (AS_OF - dt.timedelta(days=14)).isoformat()}])
    old = case(contacts=[{"on": (AS_OF - dt.timedelta(days=15)).isoformat()}])
    assert "QUIET" not in fired(ruledir, recent)["durable"]
    assert "QUIET" in fired(ruledir, old)["durable"]


def test_facts_carry_only_what_the_rules_read(ruledir: Path) -> None:
    fact = fact_of(ruledir, case(person={"birth_year": 1990, "language": "ar"}))
    assert set(fact) == {"t", "sid", "recent_contacts", "has_unchallenged"}, fact


def test_records_dated_after_the_as_of_date_do_not_count(ruledir: Path) -> None:
    from regiesignaal.engine.language.compiled import CompiledDerived
    from regiesignaal.engine.language.facts import derive

    rd = load_rule_dir(ruledir)
    by_name = {d.name: d for d in rd.derived}
    c = case(
        contacts=[{"on": "2026-01-01"}, {"on": "2026-03-09"}],  # the second one is planned
        interviews=[{"on": "2026-04-20", "kind": "vertrekgesprek"}],
    )
    last = derive(c, CompiledDerived(by_name["last_touch_on"], None), as_of=AS_OF)
    assert last == dt.date(2026, 1, 1).toordinal()  # the real contact, not the planned one
    assert derive(c, CompiledDerived(by_name["vg_count"], None), as_of=AS_OF) == 0
    # on the day itself a record counts
    assert derive(c, CompiledDerived(by_name["vg_count"], None), as_of=dt.date(2026, 4, 20)) == 1
