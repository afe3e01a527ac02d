"""Reading only what the rules need (engine.language.needs, engine.source with ``needs``) gives the
same cases (restricted), the same facts and the same hits as reading whole cases; the
choice-value check as one aggregate query per table counts what the Python walk over whole
cases counts. On SQLite and PostgreSQL, over generated cases."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.casefile import (
    CASE_SPEC,
    Field,
    Group,
    parse_case,
    unknown_choices,
)
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.facts import build_fact, explanation_rule_refs
from regiesignaal.engine.language.needs import SourceNeeds, make_needs, needs_of
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.read import (
    count_unknown_choices,
    fetch_case_range,
    iter_case_batches,
    read_case_range,
    read_plan,
)
from regiesignaal.engine.source.tables import (
    CHILD_TABLES,
    case_values,
    cases,
    child_values,
    create_source_schema,
)

ROOT = Path(__file__).resolve().parents[1]
RULEDIR = load_rule_dir(ROOT / "rules")
RULE_IDS = sorted(r.id for r in RULEDIR.rules)
AS_OF = dt.date(2026, 3, 2)

# --- generated cases, derived from the contract -----------------------------------------

_counter = itertools.count()
_DATES = st.one_of(
    st.dates(dt.date(2025, 9, 1), dt.date(2026, 4, 30)),  # around the as-of date: rules fire
    st.dates(dt.date(2000, 1, 1), dt.date(2040, 12, 31)),
).map(dt.date.isoformat)
_OUTSIDE = st.sampled_from(["", "Telefonisch", "sms", "nieuw-1"])  # not in any list


def _scalar(spec: Field, path: str) -> st.SearchStrategy[Any]:
    if spec.type == "date":
        return _DATES
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "int":
        return st.integers(0, 4) if spec.name == "household_minors" else st.integers(1950, 2025)
    if spec.type == "enum":
        if path == "status":
            return st.sampled_from(["open", "open", "open", "closed"])
        return st.one_of(st.sampled_from(spec.values), _OUTSIDE)
    if path == "explanations.rule":
        return st.sampled_from([*RULE_IDS, "GEEN-REGEL", "contact-30d"])
    if path in ("regievoerder", "team", "contacts.by", "explanations.by"):
        return st.sampled_from(["rv-1", "rv-2", "t-1"])
    return st.sampled_from(["", "nl", "ar", "tekst"])


def _object(specs: tuple[Field | Group, ...], prefix: str = "") -> st.SearchStrategy[Any]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for spec in specs:
        path = f"{prefix}{spec.name}"
        if isinstance(spec, Field):
            strat = _scalar(spec, path)
        elif spec.is_list:
            strat = st.lists(_object(spec.fields, f"{path}."), max_size=4)
        else:
            strat = _object(spec.fields, f"{path}.")
        (required if spec.required else optional)[spec.name] = strat
    return st.fixed_dictionaries(required, optional=optional)


raw_cases = st.tuples(_object(CASE_SPEC), st.none() | st.integers(0, 9)).map(
    lambda pair: {
        **pair[0],
        "case_ref": f"N-{next(_counter):07d}",
        **({"x_extra": pair[1]} if pair[1] is not None else {}),
    }
)


def _load(engine: sa.Engine, raws: list[dict[str, Any]]) -> None:
    """Replace the source's cases by ``raws`` (choice values outside their lists kept)."""
    parsed = [parse_case(raw, Counter()) for raw in raws]
    with engine.begin() as conn:
        for child in CHILD_TABLES:
            conn.execute(child.table.delete())
        conn.execute(cases.delete())
        if not parsed:
            return
        names = [c.name for c in cases.columns]
        conn.execute(
            cases.insert(), [dict(zip(names, case_values(c), strict=True)) for c in parsed]
        )
        for child in CHILD_TABLES:
            cols = [c.name for c in child.table.columns]
            rows = [
                dict(zip(cols, row, strict=True)) for c in parsed for row in child_values(child, c)
            ]
            if rows:
                conn.execute(child.table.insert(), rows)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    create_source_schema(eng)
    yield eng
    eng.dispose()


def _project(record: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """What a read restricted to ``fields`` (dotted) gives of a whole ``record``: the
    fields present, and a nested object ({} maybe) when any of its fields is read."""
    out: dict[str, Any] = {}
    for name in fields:
        head, _, rest = name.partition(".")
        if rest:
            part = out.setdefault(head, {})
            value = (record.get(head) or {}).get(rest)
            if value is not None:
                part[rest] = value
        elif record.get(name) is not None:
            out[name] = record[name]
    return out


def _restrict(case: dict[str, Any], needs: SourceNeeds) -> dict[str, Any]:
    out = _project(case, needs.case)
    for group in needs.groups():
        out[group] = [_project(r, needs.fields(group)) for r in case[group]]
    return out


def _read_all(engine: sa.Engine, needs: SourceNeeds | None) -> list[dict[str, Any]]:
    read = read_case_range(engine, "", "\uffff", needs=needs)
    assert read.unreadable == {}
    return read.cases


_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- the tests ----------------------------------------------------------------------------


@_SETTINGS
@given(raws=st.lists(raw_cases, max_size=12), rules=st.sets(st.sampled_from(RULE_IDS)))
def test_a_restricted_read_is_the_whole_read_restricted(
    engine: sa.Engine, raws: list[dict[str, Any]], rules: set[str]
) -> None:
    needs = needs_of(compile_rules(RULEDIR, AS_OF, only=rules or None))
    _load(engine, raws)
    whole = _read_all(engine, None)
    pruned = _read_all(engine, needs)
    assert [c["case_ref"] for c in pruned] == [c["case_ref"] for c in whole]
    assert pruned == [_restrict(c, needs) for c in whole]
    batches = [c for b in iter_case_batches(engine, 3, status=None, needs=needs) for c in b]
    assert batches == [_restrict(c, needs) for c in _read_all_status(engine, None)]


def _read_all_status(engine: sa.Engine, needs: SourceNeeds | None) -> list[dict[str, Any]]:
    return fetch_case_range(engine, "", "\uffff", status=None, needs=needs)


@_SETTINGS
@given(
    raws=st.lists(raw_cases, min_size=1, max_size=12),
    rules=st.sets(st.sampled_from(RULE_IDS)),
    days=st.integers(-40, 40),
)
def test_hits_with_a_restricted_read_equal_hits_with_the_whole_read(
    engine: sa.Engine, raws: list[dict[str, Any]], rules: set[str], days: int
) -> None:
    """The default pack, or a random subset of its rules, at an as-of date near the data."""
    compiled = compile_rules(RULEDIR, AS_OF + dt.timedelta(days=days), only=rules or None)
    needs = needs_of(compiled)
    _load(engine, raws)
    whole = _read_all(engine, None)
    pruned = _read_all(engine, needs)
    evaluator = Evaluator(compiled, "python")
    assert evaluator.hits(pruned) == evaluator.hits(whole)
    assert [build_fact(c, compiled) for c in pruned] == [build_fact(c, compiled) for c in whole]
    assert [explanation_rule_refs(c) for c in pruned] == [explanation_rule_refs(c) for c in whole]


@_SETTINGS
@given(raws=st.lists(raw_cases, max_size=12), data=st.data())
def test_unknown_choices_in_sql_count_what_the_python_walk_counts(
    engine: sa.Engine, raws: list[dict[str, Any]], data: st.DataObject
) -> None:
    _load(engine, raws)
    whole = _read_all(engine, None)  # the open cases, whole
    expected: Counter[str] = Counter()
    for case in whole:
        unknown_choices(case, expected)
    assert count_unknown_choices(engine, "open") == expected
    refs = [c["case_ref"] for c in whole]
    left_out = data.draw(st.sets(st.sampled_from(refs)) if refs else st.just(set()))
    expected = Counter()
    for case in whole:
        if case["case_ref"] not in left_out:
            unknown_choices(case, expected)
    assert count_unknown_choices(engine, "open", exclude=left_out) == expected


def test_unknown_choices_are_counted_per_field_over_open_cases_only(engine: sa.Engine) -> None:
    base = {"opened_on": "2026-01-01"}
    _load(
        engine,
        [
            {**base, "case_ref": "A", "status": "open", "source": "fax",
             "contacts": [{"on": "2026-01-02", "channel": "sms"},
                          {"on": "2026-01-03", "channel": "sms"},
                          {"on": "2026-01-04", "channel": "video"}],
             "vertrekplan": {"strategy": "x"}},
            {**base, "case_ref": "B", "status": "closed", "source": "fax",
             "contacts": [{"on": "2026-01-02", "channel": "sms"}]},
        ],
    )  # fmt: skip
    assert count_unknown_choices(engine, "open") == {
        "source": 1,
        "contacts[].channel": 2,
        "vertrekplan.strategy": 1,
    }
    assert count_unknown_choices(engine, None)["contacts[].channel"] == 3
    assert count_unknown_choices(engine, "open", exclude={"A"}) == {}


def test_the_starter_rules_need_four_lists_and_a_few_date_columns() -> None:
    starter = load_rule_dir(ROOT / "bench" / "starter-rules")
    needs = needs_of(compile_rules(starter, AS_OF))
    assert needs.case == {"case_ref", "status", "regievoerder", "team", "opened_on"}
    assert dict(needs.lists) == {
        "interviews": {"on"},
        "contacts": {"on"},
        "medical_checks": {"on"},
        "departure_wishes": {"recorded_on", "explored_on"},
        "explanations": {"rule", "until", "by", "reason"},  # every run: explained signals
    }
    plan = read_plan(needs)
    assert [c.group for c in plan.children] == [g for g, _ in needs.lists]
    assert plan.with_extra and plan.extra_keys == {"location"}  # only the location id of extra


def test_needs_follow_days_between_otherwise_and_where() -> None:
    """The default pack: a days_between reads a case date, a where filter reads
    record fields the rule never names, the record date is always read."""
    needs = needs_of(compile_rules(RULEDIR, AS_OF))
    assert "opened_on" in needs.case  # latest_contact_on's otherwise
    assert {"kind", "checked.medical", "checked.hardship", "checked.trafficking"} <= (
        needs.fields("interviews")
    )
    assert "outcome" in needs.fields("medical_checks")
    assert "reason" in needs.fields("explanations")  # its code goes to the history (issue 18)
    assert needs.fields("nothing") == frozenset()


def test_needs_outside_the_contract_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown list group"):
        make_needs({"opened_on"}, {"letters": {"on"}})
    with pytest.raises(ValueError, match="outside the contract"):
        read_plan(make_needs({"opened_op"}))
    with pytest.raises(ValueError, match="outside the contract in contacts"):
        read_plan(make_needs(set(), {"contacts": {"channel", "kanaal"}}))
