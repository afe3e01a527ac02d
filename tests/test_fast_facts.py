"""The fast evaluation path gives exactly what the straightforward one gives.

``build_fact`` (a fact builder compiled once per rule set: one pass per list group, only the
keys the rules read) must equal ``build_fact_reference`` (every record flattened, one
derived field at a time), and the hits of ``Evaluator.hits`` must equal those computed from
the reference facts, under both evaluators, on generated cases for the default rule pack and
for generated derived fields and rules.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.casefile import CASE_SPEC, Field, Group
from regiesignaal.engine.language.catalogue import case_fields, record_fields
from regiesignaal.engine.language.compiled import OVERDUE_MARK, CompiledRuleSet
from regiesignaal.engine.language.compiler import (
    _compile_derived,
    compile_rules,
    engine_limit_problems,
)
from regiesignaal.engine.language.conditions import All, Any_, Cond, Not, Test
from regiesignaal.engine.language.dates import Duration
from regiesignaal.engine.language.evaluator import Backend, Evaluator
from regiesignaal.engine.language.facts import build_fact, build_fact_reference
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import DerivedField, Rule, RuleDir

AS_OF = dt.date(2026, 3, 2)
ROOT = Path(__file__).resolve().parent.parent
PACK = load_rule_dir(ROOT / "rules")
assert PACK.ok, PACK.problems

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------- generated cases

days = st.integers(-120, 60).map(lambda n: AS_OF + dt.timedelta(days=n))
extra_values = st.one_of(
    st.none(), st.integers(-3, 3), st.text("ab_", max_size=3), days, st.booleans()
)


def scalar(spec: Field) -> st.SearchStrategy[Any]:
    if spec.type == "date":
        return days
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "int":
        return st.integers(-2, 5)
    if spec.type == "enum":
        return st.sampled_from([*spec.values, "onbekende-waarde"])
    return st.sampled_from(["", "nl", "ar", "so", "x"])


@st.composite
def record(draw: st.DrawFn, specs: tuple[Field | Group, ...], depth: int = 0) -> dict[str, Any]:
    """One object of the case file: fields present, missing or None; sometimes extra keys,
    among them nested objects (extra fields pass the contract) and keys holding ``__``."""
    out: dict[str, Any] = {}
    for spec in specs:
        choice = draw(st.integers(0, 5))
        if choice == 0:
            continue  # missing
        if choice == 1:
            out[spec.name] = None
            continue
        if isinstance(spec, Field):
            out[spec.name] = draw(scalar(spec))
        elif spec.is_list:
            out[spec.name] = draw(st.lists(record(spec.fields, depth + 1), max_size=4))
        else:
            out[spec.name] = draw(record(spec.fields, depth + 1))
    if depth and draw(st.integers(0, 4)) == 0:
        out[draw(st.sampled_from(["extra", "checked__medical", "x__y"]))] = draw(extra_values)
    if depth and draw(st.integers(0, 6)) == 0:
        out["nested_extra"] = {"on": draw(days), "deeper": {"kind": "vertrekgesprek"}}
    return out


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    case = draw(record(CASE_SPEC))
    case["case_ref"] = "Z-" + str(draw(st.integers(1, 10**6)))
    case["status"] = "open"
    case["opened_on"] = draw(days)
    return case


# ---------------------------------------------------------------- generated derived fields

LISTS = [g.name for g in CASE_SPEC if isinstance(g, Group) and g.is_list]
CASE_DATES = sorted(n for n, f in case_fields().items() if f.type == "date")


@st.composite
def where_tests(draw: st.DrawFn, group: str) -> Cond:
    fields = record_fields(group)
    name = draw(st.sampled_from(sorted(fields)))
    info = fields[name]
    if draw(st.integers(0, 4)) == 0:
        return Test(name, draw(st.sampled_from(["missing", "present"])))
    if_missing = draw(st.sampled_from([None, True, False]))
    if info.type == "date":
        op = draw(st.sampled_from(["older_than", "newer_than", "within_last", "lt", "ge"]))
        if op in ("lt", "ge"):
            return Test(name, op, draw(days), if_missing)
        return Test(name, op, Duration(draw(st.integers(0, 40)), "d"), if_missing)
    if info.type == "enum":
        values = tuple(draw(st.lists(st.sampled_from(info.values), max_size=3, unique=True)))
        return Test(name, draw(st.sampled_from(["in", "not_in"])), values, if_missing)
    if info.type == "bool":
        return Test(name, draw(st.sampled_from(["eq", "ne"])), draw(st.booleans()), if_missing)
    return Test(name, draw(st.sampled_from(["eq", "ne"])), draw(st.sampled_from(["", "nl"])))


@st.composite
def wheres(draw: st.DrawFn, group: str) -> Cond | None:
    tests = draw(st.lists(where_tests(group), max_size=3))
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0] if draw(st.booleans()) else Not(tests[0])
    both = tuple(tests)
    return All(both) if draw(st.booleans()) else Any_(both)


@st.composite
def derived_fields(draw: st.DrawFn) -> list[DerivedField]:
    out: list[DerivedField] = []
    dates: list[str] = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["latest", "earliest", "count", "exists", "values"]))
        groups = draw(st.lists(st.sampled_from(LISTS), min_size=1, max_size=2, unique=True))
        where = draw(wheres(groups[0]))
        sources: tuple[tuple[str, str], ...]
        if kind in ("count", "exists"):
            sources = ((groups[0], ""),)
        elif kind == "values":
            fields = record_fields(groups[0])
            names = sorted(n for n, f in fields.items() if f.type in ("enum", "str"))
            assume(names)
            sources = ((groups[0], draw(st.sampled_from(names))),)
        else:
            # latest/earliest over date fields of one or two lists (the where of the first)
            srcs = []
            for g in groups:
                names = sorted(n for n, f in record_fields(g).items() if f.type == "date")
                srcs.append((g, draw(st.sampled_from(names))))
            sources = tuple(srcs)
            if len(groups) > 1:
                where = None  # a where reads the fields of every source list
        otherwise = (
            draw(st.sampled_from([None, *CASE_DATES])) if kind in ("latest", "earliest") else None
        )
        name = f"d{i}_{kind}"
        if kind in ("latest", "earliest"):
            dates.append(name)
        out.append(DerivedField(name, kind, "", sources, where, otherwise, "gen", 1))
    for j in range(draw(st.integers(0, 3))):
        ends = [draw(st.sampled_from([*dates, *CASE_DATES])) for _ in range(2)]
        out.append(
            DerivedField(
                f"b{j}", "days_between", "", (("", ends[0]), ("", ends[1])), None, None, "gen", 1
            )
        )
    return out


def everything(derived: list[DerivedField], as_of: dt.date = AS_OF) -> CompiledRuleSet:
    """A rule set whose facts carry every case field and every derived field."""
    return CompiledRuleSet(
        as_of,
        "gen",
        (),
        tuple(sorted(case_fields())),
        tuple(_compile_derived(d, as_of) for d in sorted(derived, key=lambda d: d.name)),
    )


# ---------------------------------------------------------------- facts


@SETTINGS
@given(case=cases(), shift=st.integers(-40, 40))
def test_fact_builder_equals_the_reference_on_the_default_pack(case: dict, shift: int) -> None:
    compiled = everything(PACK.derived, AS_OF + dt.timedelta(days=shift))
    assert build_fact(case, compiled) == build_fact_reference(case, compiled)


@SETTINGS
@given(case=cases(), derived=derived_fields())
def test_fact_builder_equals_the_reference_on_generated_derived_fields(
    case: dict, derived: list[DerivedField]
) -> None:
    compiled = everything(derived)
    assert build_fact(case, compiled) == build_fact_reference(case, compiled)


def test_the_generators_reach_what_the_fast_path_skips() -> None:
    """Guard against a vacuous property: the as-of rules and nested records matter here."""
    compiled = everything(PACK.derived)
    case = {
        "case_ref": "Z-1",
        "status": "open",
        "opened_on": AS_OF - dt.timedelta(days=100),
        "interviews": [
            {"on": AS_OF + dt.timedelta(days=3), "kind": "vertrekgesprek"},  # planned
            {
                "on": AS_OF - dt.timedelta(days=3),
                "kind": "vertrekgesprek",
                "checked": {"medical": True, "hardship": True, "trafficking": False},
            },
        ],
        "departure_wishes": [
            {"recorded_on": AS_OF - dt.timedelta(days=40), "explored_on": AS_OF + dt.timedelta(1)}
        ],
    }
    fact = build_fact(case, compiled)
    assert fact == build_fact_reference(case, compiled)
    assert fact["vertrekgesprek_count"] == 1
    assert fact["untested_vertrekgesprek_count"] == 1  # trafficking not tested
    assert fact["unexplored_wish_count"] == 1  # explored after the as-of date: not yet
    assert fact["latest_contact_on"] == (AS_OF - dt.timedelta(days=3)).toordinal()


# ---------------------------------------------------------------- hits


def reference_hits(compiled: CompiledRuleSet, case: dict) -> list[tuple[str, bool, int]]:
    """(rule, overdue, bonus) per hit, from the reference fact and the plain predicates."""
    fact = build_fact_reference(case, compiled)
    out = []
    for cr in compiled.rules:
        if cr.predicate(fact):
            late = cr.overdue_predicate is not None and cr.overdue_predicate(fact)
            out.append((cr.rule.id, late, compiled.case_bonus(fact)))
    return sorted(out)


def hits_of(evaluator: Evaluator, cases: list[dict]) -> dict[str, list[tuple[str, bool, int]]]:
    out: dict[str, list[tuple[str, bool, int]]] = {c["case_ref"]: [] for c in cases}
    for h in evaluator.hits(cases):
        out[h.case_ref].append((h.rule_id, h.overdue, h.bonus))
    return {k: sorted(v) for k, v in out.items()}


def unique(cases: list[dict]) -> list[dict]:
    return list({c["case_ref"]: c for c in cases}.values())


PACK_COMPILED = compile_rules(PACK, AS_OF)
PACK_EVALUATORS = {b: Evaluator(PACK_COMPILED, b) for b in ("durable", "python")}


@SETTINGS
@given(cases=st.lists(cases(), min_size=1, max_size=6))
def test_hits_equal_the_reference_on_the_default_pack(cases: list[dict]) -> None:
    cases = unique(cases)
    expected = {c["case_ref"]: reference_hits(PACK_COMPILED, c) for c in cases}
    for evaluator in PACK_EVALUATORS.values():
        assert hits_of(evaluator, cases) == expected


@st.composite
def rule_tests(draw: st.DrawFn, derived: list[DerivedField]) -> Cond:
    d = draw(st.sampled_from(derived))
    if d.type == "date":
        op = draw(st.sampled_from(["older_than", "newer_than"]))
        return Test(d.name, op, Duration(draw(st.integers(0, 60)), "d"), draw(st.booleans()))
    if d.type == "int":
        return Test(
            d.name, draw(st.sampled_from(["eq", "gt", "lt", "ne"])), draw(st.integers(-5, 3))
        )
    if d.type == "bool":
        return Test(d.name, "eq", draw(st.booleans()))
    op = draw(st.sampled_from(["contains", "not_contains"]))
    return Test(
        d.name, op, draw(st.sampled_from(["vertrekgesprek", "gedwongen", "nl", "x"])), None, True
    )


def conditions(derived: list[DerivedField]) -> st.SearchStrategy[Cond]:
    """Conditions of up to four tests over ``derived``, nested in all/any/not."""
    return st.recursive(
        rule_tests(derived),
        lambda inner: st.one_of(
            st.builds(lambda xs: All(tuple(xs)), st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: Any_(tuple(xs)), st.lists(inner, min_size=1, max_size=3)),
            st.builds(Not, inner),
        ),
        max_leaves=4,
    )


def make_rule(i: int, when: Cond, late: Cond | None) -> Rule:
    from regiesignaal.engine.language.rulefile.model import Overdue

    return Rule(
        id=f"G-{i}", title="t", mail_title="t", severity="low", owner="o", description="",
        enabled=True, effective_from=None, effective_until=None, when=when, unless=None,
        expected_action="a", escalate_after=None, path="gen", line=1,
        overdue=Overdue(late, "high") if late is not None else None,
    )  # fmt: skip


@SETTINGS
@given(data=st.data(), derived=derived_fields(), cases=st.lists(cases(), min_size=1, max_size=5))
def test_hits_equal_the_reference_on_generated_rules(
    data: st.DataObject, derived: list[DerivedField], cases: list[dict]
) -> None:
    conds = conditions(derived)
    specs = data.draw(
        st.lists(st.tuples(conds, st.one_of(st.none(), conds)), min_size=1, max_size=3)
    )
    ruledir = RuleDir(root=Path("."), version="gen", derived=derived)
    ruledir.rules = [make_rule(i, w, late) for i, (w, late) in enumerate(specs)]
    assume(not engine_limit_problems(ruledir, AS_OF))
    compiled = compile_rules(ruledir, AS_OF)
    cases = unique(cases)
    expected = {c["case_ref"]: reference_hits(compiled, c) for c in cases}
    backends: tuple[Backend, ...] = ("durable", "python")
    for backend in backends:
        assert hits_of(Evaluator(compiled, backend), cases) == expected
    assert OVERDUE_MARK  # the overdue flag is compared through Hit.overdue above


# ---------------------------------------------------------------- warnings (days ahead)


def upcoming_every_day_built(evaluator: Evaluator, case: dict) -> list[tuple[str, dt.date]]:
    """The warnings of ``case`` with the fact of every day ahead built on its own (the
    definition the shared facts of ``AheadFacts`` must agree with)."""
    plain = Evaluator(evaluator.compiled, "python")
    plain._ahead = None  # no sharing between days
    fired = evaluator.fired(case)
    return [(u.rule_id, u.due_on) for u in plain.upcoming(case, fired)]


def near(value: Any, as_of: dt.date) -> Any:
    """``value`` with every date moved into the days around ``as_of`` (-8 to +16), where
    the days ahead of a warning differ."""
    if isinstance(value, dt.date):
        return as_of + dt.timedelta(days=(value - as_of).days % 25 - 8)
    if isinstance(value, dict):
        return {k: near(v, as_of) for k, v in value.items()}
    if isinstance(value, list):
        return [near(v, as_of) for v in value]
    return value


@SETTINGS
@given(case=cases(), shift=st.integers(-30, 30), squeeze=st.booleans())
def test_warnings_with_shared_facts_equal_every_day_built(
    case: dict, shift: int, squeeze: bool
) -> None:
    as_of = AS_OF + dt.timedelta(days=shift)
    if squeeze:
        case = near(case, as_of)
    compiled = compile_rules(PACK, as_of)
    evaluator = Evaluator(compiled, "python")
    assert evaluator._ahead is not None  # the default pack shares facts between days
    fired = evaluator.fired(case)
    got = [(u.rule_id, u.due_on) for u in evaluator.upcoming(case, fired)]
    assert got == upcoming_every_day_built(evaluator, case)


def test_shared_facts_follow_a_measure_ending_within_the_days_ahead() -> None:
    """vbl_since reads measures still running on the day (``until`` newer than 0 days): a
    measure ending within the days ahead changes the fact, so that case builds every day."""
    evaluator = Evaluator(compile_rules(PACK, AS_OF), "python")
    ahead = evaluator._ahead
    assert ahead is not None
    assert any(group == "measures" and key == "until" for group, key, *_ in ahead.dated)
    case = {
        "case_ref": "Z-1",
        "status": "open",
        "opened_on": AS_OF - dt.timedelta(days=200),
        "measures": [{"kind": "vbl", "from": AS_OF - dt.timedelta(days=80), "until": None}],
    }
    assert ahead.changes(case) == []
    case["measures"][0]["until"] = AS_OF + dt.timedelta(days=3)
    assert ahead.changes(case) is None
    case["measures"][0]["until"] = AS_OF + dt.timedelta(days=300)
    case["measures"].append({"kind": "vbl", "from": AS_OF + dt.timedelta(days=4)})
    assert ahead.changes(case) == [AS_OF + dt.timedelta(days=4)]


def test_warnings_with_shared_facts_equal_every_day_built_on_generated_cases(
    tmp_path: Path,
) -> None:
    """Realistic cases (the fixtures generator), on several as-of dates, and the same cases
    with their dates moved around the as-of date: the same warnings as building every day;
    some cases share their facts, some cannot."""
    import json

    from regiesignaal.engine.language.casefile import parse_case
    from regiesignaal.fixtures.generator import generate

    generate(300, 5, AS_OF, tmp_path / "cases.jsonl", tmp_path / "staff.jsonl")
    raws = [json.loads(x) for x in (tmp_path / "cases.jsonl").open(encoding="utf-8")]
    generated = [parse_case(r) for r in raws if r.get("status", "open") == "open"]
    warned = shared = unshared = 0
    for shift in (-20, 0, 9):
        as_of = AS_OF + dt.timedelta(days=shift)
        evaluator = Evaluator(compile_rules(PACK, as_of), "python")
        assert evaluator._ahead is not None
        for case in [*generated, *(near(c, as_of) for c in generated[:100])]:
            fired = evaluator.fired(case)
            got = [(u.rule_id, u.due_on) for u in evaluator.upcoming(case, fired)]
            assert got == upcoming_every_day_built(evaluator, case)
            warned += bool(got)
            changes = evaluator._ahead.changes(case)
            shared += changes is not None and bool(changes)
            unshared += changes is None
    assert warned > 50 and shared > 10 and unshared > 10


def test_warnings_skipping_unmoved_days_equal_every_day_built(tmp_path: Path) -> None:
    """A rule is not evaluated again on a day ahead when the fact is the day before's and
    no threshold that moved lies at its field's value (``moved_thresholds``): generated
    cases with their dates spread over the thresholds of the pack (80 days back to 19
    ahead), so values land on the moved constants too, give the warnings of building and
    evaluating every day."""
    import json

    from regiesignaal.engine.language.casefile import parse_case
    from regiesignaal.fixtures.generator import generate

    def spread(value: Any, as_of: dt.date) -> Any:
        if isinstance(value, dt.date):
            return as_of + dt.timedelta(days=(value - as_of).days % 100 - 80)
        if isinstance(value, dict):
            return {k: spread(v, as_of) for k, v in value.items()}
        if isinstance(value, list):
            return [spread(v, as_of) for v in value]
        return value

    generate(300, 5, AS_OF, tmp_path / "cases.jsonl", tmp_path / "staff.jsonl")
    raws = [json.loads(x) for x in (tmp_path / "cases.jsonl").open(encoding="utf-8")]
    generated = [parse_case(r) for r in raws if r.get("status", "open") == "open"]
    warned = 0
    for shift in (-20, 0, 4, 9):
        as_of = AS_OF + dt.timedelta(days=shift)
        evaluator = Evaluator(compile_rules(PACK, as_of), "python")
        assert any(m for day in evaluator._moved for m in day.values())  # thresholds move
        for case in [*generated, *(spread(c, as_of) for c in generated)]:
            fired = evaluator.fired(case)
            got = [(u.rule_id, u.due_on) for u in evaluator.upcoming(case, fired)]
            assert got == upcoming_every_day_built(evaluator, case)
            warned += bool(got)
    assert warned > 100


def test_todays_fact_serves_the_days_ahead_only_when_a_filter_cannot_tell_them_apart() -> None:
    """The days ahead before the first change date take today's fact (``AheadFacts.today``):
    a measure ending today still counts today (``until`` newer than 0 days) but no longer
    tomorrow, so such a case builds every day, and VBL-10W warns of it exactly when
    building every day does."""
    evaluator = Evaluator(compile_rules(PACK, AS_OF), "python")
    ahead = evaluator._ahead
    assert ahead is not None and ahead.today
    seen = set()
    for ends in range(-2, 4):
        for began in range(66, 72):
            case = {
                "case_ref": "Z-1",
                "status": "open",
                "opened_on": AS_OF - dt.timedelta(days=200),
                "location_type": "vbl",
                "measures": [
                    {
                        "kind": "vbl",
                        "from": AS_OF - dt.timedelta(days=began),
                        "until": AS_OF + dt.timedelta(days=ends),
                    }
                ],
            }
            if ends == 0:
                assert ahead.changes(case) is None
            fired = evaluator.fired(case)
            got = [(u.rule_id, u.due_on) for u in evaluator.upcoming(case, fired)]
            assert got == upcoming_every_day_built(evaluator, case)
            seen.add(any(rule == "VBL-10W" for rule, _ in got))
    assert seen == {True, False}


@SETTINGS
@given(
    data=st.data(),
    derived=st.one_of(derived_fields(), st.just(list(PACK.derived))),
    case=cases(),
    shift=st.integers(-30, 30),
    squeeze=st.booleans(),
)
def test_warnings_equal_every_day_built_on_generated_rules(
    data: st.DataObject, derived: list[DerivedField], case: dict, shift: int, squeeze: bool
) -> None:
    """Generated rules with ``warn_before`` (any condition over generated or the pack's
    derived fields, with thresholds that move and records that change the facts within
    the days ahead): the warnings of the shared facts and skipped days equal building and
    evaluating every day."""
    import dataclasses

    conds = conditions(derived)
    warns = st.sampled_from([Duration(3, "wd"), Duration(5, "wd"), Duration(4, "d")])
    specs = data.draw(st.lists(st.tuples(conds, warns), min_size=1, max_size=3))
    ruledir = RuleDir(root=Path("."), version="gen", derived=derived)
    ruledir.rules = [
        dataclasses.replace(make_rule(i, w, None), warn_before=warn)
        for i, (w, warn) in enumerate(specs)
    ]
    as_of = AS_OF + dt.timedelta(days=shift)
    assume(not engine_limit_problems(ruledir, as_of))
    evaluator = Evaluator(compile_rules(ruledir, as_of), "python")
    if squeeze:
        case = near(case, as_of)
    fired = evaluator.fired(case)
    got = [(u.rule_id, u.due_on) for u in evaluator.upcoming(case, fired)]
    assert got == upcoming_every_day_built(evaluator, case)


def test_a_record_dated_within_the_days_ahead_still_warns() -> None:
    """A planned interview counts from its date on: a rule that fires on it warns of that
    day, though the first day ahead's fact (no interview yet) has no moving threshold to
    watch (the change date keeps every day built after it)."""
    import dataclasses

    ruledir = RuleDir(root=Path("."), version="gen", derived=list(PACK.derived))
    when = Test("vertrekgesprek_count", "gt", 0)
    ruledir.rules = [dataclasses.replace(make_rule(0, when, None), warn_before=Duration(5, "wd"))]
    evaluator = Evaluator(compile_rules(ruledir, AS_OF), "python")
    assert evaluator._ahead is not None
    for days in range(1, 9):
        case = {
            "case_ref": "Z-1",
            "status": "open",
            "opened_on": AS_OF - dt.timedelta(days=100),
            "interviews": [{"on": AS_OF + dt.timedelta(days=days), "kind": "vertrekgesprek"}],
        }
        got = [(u.rule_id, u.due_on) for u in evaluator.upcoming(case, [])]
        assert got == upcoming_every_day_built(evaluator, case)
        assert got == [("G-0", AS_OF + dt.timedelta(days=days - 1))]
