"""durable-rules and the plain-Python evaluator must agree exactly on generated rules and facts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.compiler import compile_rules, engine_limit_problems
from regiesignaal.engine.language.conditions import All, Any_, Cond, Not, Test
from regiesignaal.engine.language.dates import Duration
from regiesignaal.engine.language.evaluator import EvaluationMismatch, Evaluator
from regiesignaal.engine.language.rulefile.model import Rule, RuleDir

AS_OF = dt.date(2026, 3, 2)
BASE = AS_OF.toordinal()

# field name -> (type, values)
FIELDS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "d1": ("date", ()),
    "d2": ("date", ()),
    "n": ("int", (-1, 0, 1, 2, 3, 10)),
    "flag": ("bool", (True, False)),
    "loc": ("enum", ("azc", "vbl", "detentie", "geen")),
    "tags": ("list", ("a", "b", "c")),
}

durations = st.builds(
    Duration, st.integers(min_value=0, max_value=40), st.sampled_from(["d", "w", "wd"])
)


@st.composite
def leaf_tests(draw: st.DrawFn) -> Test:
    name = draw(st.sampled_from(sorted(FIELDS)))
    kind, values = FIELDS[name]
    if_missing = draw(st.sampled_from([None, True, False]))
    presence = draw(st.sampled_from(["missing", "present", None, None, None]))
    if presence:
        return Test(name, presence, None, None, kind == "list")
    if kind == "list":
        op = draw(st.sampled_from(["contains", "not_contains"]))
        return Test(name, op, draw(st.sampled_from(values)), None, True)
    if kind == "date":
        op = draw(
            st.sampled_from(
                ["older_than", "newer_than", "within_last", "within_next", "eq", "lt", "ge"]
            )
        )
        if op in ("eq", "lt", "ge"):
            day = AS_OF + dt.timedelta(days=draw(st.integers(-60, 60)))
            return Test(name, op, day, if_missing)
        return Test(name, op, draw(durations), if_missing)
    ops = ["eq", "ne", "in", "not_in"]
    if kind == "int":
        ops += ["lt", "le", "gt", "ge"]
    op = draw(st.sampled_from(ops))
    if op in ("in", "not_in"):
        items = tuple(draw(st.lists(st.sampled_from(values), max_size=3, unique=True)))
        return Test(name, op, items, if_missing)
    return Test(name, op, draw(st.sampled_from(values)), if_missing)


conditions: st.SearchStrategy[Cond] = st.recursive(
    leaf_tests(),
    lambda inner: st.one_of(
        st.builds(lambda xs: All(tuple(xs)), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: Any_(tuple(xs)), st.lists(inner, min_size=1, max_size=3)),
        st.builds(Not, inner),
    ),
    max_leaves=6,
)


@st.composite
def facts(draw: st.DrawFn) -> dict[str, Any]:
    fact: dict[str, Any] = {"t": "case"}
    for name, (kind, values) in FIELDS.items():
        if draw(st.booleans()) and draw(st.booleans()):
            continue  # missing
        if kind == "date":
            fact[name] = BASE + draw(st.integers(-90, 90))
        elif kind == "list":
            tags = sorted(draw(st.sets(st.sampled_from(values), max_size=3)))
            if tags:
                fact[name] = tags
        else:
            fact[name] = draw(st.sampled_from(values))
    return fact


def make_rule(i: int, when: Cond, unless: Cond | None) -> Rule:
    return Rule(
        id=f"R-{i}",
        title="t",
        mail_title="t",
        severity="low",
        owner="o",
        description="",
        enabled=True,
        effective_from=None,
        effective_until=None,
        when=when,
        unless=unless,
        expected_action="a",
        escalate_after=None,
        path="gen",
        line=1,
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rules=st.lists(st.tuples(conditions, st.one_of(st.none(), conditions)), min_size=1, max_size=4),
    cases=st.lists(facts(), min_size=1, max_size=12),
)
def test_durable_agrees_with_python(
    rules: list[tuple[Cond, Cond | None]], cases: list[dict]
) -> None:
    ruledir = RuleDir(root=__import__("pathlib").Path("."), version="oracle")
    ruledir.rules = [make_rule(i, w, u) for i, (w, u) in enumerate(rules)]
    # rules durable-rules refuses as too complex are refused by `rules check`, not evaluated
    assume(not engine_limit_problems(ruledir, AS_OF))
    compiled = compile_rules(ruledir, AS_OF)
    durable = Evaluator(compiled, "durable", verify=False)  # compared here, not inside
    python = Evaluator(compiled, "python")
    for i, fact in enumerate(cases):
        fact = {**fact, "sid": f"c{i}"}
        assert durable.fired_for_fact(fact) == python.fired_for_fact(fact), fact


def test_a_rule_too_complex_for_durable_rules_is_a_check_problem() -> None:
    """Sixteen two-way alternatives under one 'all' exceed durable-rules' expression limit."""
    many = All(tuple(Any_((Test("n", "gt", i), Test("flag", "eq", True))) for i in range(16)))
    ruledir = RuleDir(root=__import__("pathlib").Path("."), version="oracle")
    ruledir.rules = [make_rule(0, many, None), make_rule(1, Test("n", "gt", 2), None)]
    [problem] = engine_limit_problems(ruledir, AS_OF)
    assert "R-0 is te ingewikkeld" in problem.message and "113" in problem.message
    assert "afgeleid veld" in problem.hint


def test_a_disagreement_stops_the_evaluation() -> None:
    """The product cross-checks every case; a durable-rules result that differs is an error."""
    ruledir = RuleDir(root=__import__("pathlib").Path("."), version="oracle")
    ruledir.rules = [make_rule(0, Test("n", "gt", 2), None)]
    compiled = compile_rules(ruledir, AS_OF)
    evaluator = Evaluator(compiled, "durable")
    assert evaluator.fired_for_fact({"t": "case", "sid": "ok", "n": 3}) == ["R-0"]
    evaluator._durable.fired = lambda fact: []  # a lost action, as seen from a racing thread
    with pytest.raises(EvaluationMismatch, match="case lost"):
        evaluator.fired_for_fact({"t": "case", "sid": "lost", "n": 3})


def test_oracle_sees_firing_and_not_firing() -> None:
    """Guard against a vacuous oracle: both outcomes occur on simple rules."""
    ruledir = RuleDir(root=__import__("pathlib").Path("."), version="oracle")
    ruledir.rules = [make_rule(0, Test("n", "gt", 2), None)]
    compiled = compile_rules(ruledir, AS_OF)
    durable = Evaluator(compiled, "durable")
    assert durable.fired_for_fact({"t": "case", "sid": "a", "n": 3}) == ["R-0"]
    assert durable.fired_for_fact({"t": "case", "sid": "b", "n": 2}) == []
    assert durable.fired_for_fact({"t": "case", "sid": "c"}) == []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rules=st.lists(st.tuples(conditions, st.one_of(st.none(), conditions)), min_size=1, max_size=4),
    cases=st.lists(facts(), min_size=1, max_size=8),
)
def test_direct_engine_calls_equal_the_durable_host(
    rules: list[tuple[Cond, Cond | None]], cases: list[dict]
) -> None:
    """DurableEvaluator drives the engine without the Host's per-action machinery; the rules
    that fire are the ones durable-rules' own Host.assert_fact reports through actions."""
    from regiesignaal.engine.language.durable_backend import (
        PRIME_RULE,
        DurableEvaluator,
        _get_host,
        ruleset_definition,
    )

    ruledir = RuleDir(root=__import__("pathlib").Path("."), version="oracle")
    ruledir.rules = [make_rule(i, w, u) for i, (w, u) in enumerate(rules)]
    assume(not engine_limit_problems(ruledir, AS_OF))
    compiled = compile_rules(ruledir, AS_OF)
    direct = DurableEvaluator(compiled)
    seen: list[str] = []
    definition = ruleset_definition(compiled, lambda rule_id: lambda c: seen.append(rule_id))
    assume(definition)
    definition[PRIME_RULE] = {"all": [{"m": {"t": "prime"}}], "run": lambda c: None}
    host = _get_host()
    name = f"{direct.name}_host"
    host.set_rulesets({name: definition})
    host.assert_fact(name, {"t": "prime", "sid": "p"})
    host.delete_state(name, "p")
    for i, fact in enumerate(cases):
        seen.clear()
        try:
            host.assert_fact(name, {**fact, "sid": f"h{i}"})
        except Exception as exc:
            assert type(exc).__name__ == "MessageNotHandledException"
        finally:
            host.delete_state(name, f"h{i}")
        assert direct.fired({**fact, "sid": f"c{i}"}) == sorted(set(seen)), fact
