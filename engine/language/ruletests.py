"""Running the tests written in rule files (``tests:`` in a rule, or ``<name>.tests.yaml``).

Every test compiles only its own rule for the test's as-of date and evaluates the test's
case, with durable-rules (the product's evaluator) or the plain-Python evaluator. A rule that
is not active on the test's date (``enabled: false`` or outside ``effective``) never fires,
exactly as in the nightly run; so does a case whose status is not ``open``.

A failed test carries a Dutch explanation: each condition of the rule, whether it held, the
value the case had (dates shown as dates) and, for relative date tests, the dates they were
compared with. The command line (``regiesignaal rules test``) prints ``format_result`` per
test and ``format_summary`` at the end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regiesignaal.engine.language.compiled import CompiledRuleSet
from regiesignaal.engine.language.compiler import RuleSetError, compile_rules
from regiesignaal.engine.language.conditions import (
    And,
    Const,
    Leaf,
    Neg,
    Node,
    Or,
    Test,
    Trace,
    bind,
    evaluate,
    explain,
)
from regiesignaal.engine.language.dates import Duration, future_limit, past_threshold
from regiesignaal.engine.language.evaluator import Backend, Evaluator
from regiesignaal.engine.language.facts import build_fact
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import Rule, RuleDir, RuleTest

__all__ = [
    "TestResult",
    "explain_test",
    "format_result",
    "format_summary",
    "run_rule_tests",
]


@dataclass(frozen=True)
class TestResult:
    """The outcome of one rule test. ``expected``/``got``: True means "the rule fires"."""

    __test__ = False  # not a pytest test class

    rule_id: str
    name: str
    path: str
    line: int
    as_of: dt.date
    expected: bool
    got: bool
    passed: bool
    explanation: str = ""  # empty when passed; a Dutch trace when failed
    expected_severity: str | None = None  # set when the test names a severity
    got_severity: str | None = None


def _fires_nl(fires: bool) -> str:
    return "gaat af" if fires else "gaat niet af"


class _Runner:
    """Compiles each (rule, as-of date) once and keeps its evaluator for the whole run."""

    def __init__(self, ruledir: RuleDir, backend: Backend):
        self.ruledir = ruledir
        self.backend = backend
        self._cache: dict[tuple[str, dt.date], tuple[CompiledRuleSet, Evaluator]] = {}

    def compiled(self, rule: Rule, as_of: dt.date) -> tuple[CompiledRuleSet, Evaluator]:
        key = (rule.id, as_of)
        if key not in self._cache:
            compiled = compile_rules(self.ruledir, as_of, only={rule.id})
            self._cache[key] = (compiled, Evaluator(compiled, self.backend))
        return self._cache[key]

    def run(self, rule: Rule, test: RuleTest) -> TestResult:
        compiled, evaluator = self.compiled(rule, test.as_of)
        is_open = test.case.get("status", "open") == "open"
        levels = evaluator.fired_levels(build_fact(test.case, compiled)) if is_open else {}
        got = rule.id in levels
        got_severity = rule.severity_for(levels[rule.id]) if got else None
        passed = got == test.expect_fires
        if test.severity is not None:
            passed = passed and got_severity == test.severity
        explanation = ""
        if not passed:
            explanation = _explain(rule, test, compiled, got, self.backend)
            if got and test.severity is not None and got_severity != test.severity:
                explanation = (
                    f"verwacht ernst {test.severity}, kreeg {got_severity} "
                    f"(overdue: {'ja' if levels[rule.id] else 'nee'})\n" + explanation
                )
        return TestResult(
            rule_id=rule.id,
            name=test.name,
            path=test.path,
            line=test.line,
            as_of=test.as_of,
            expected=test.expect_fires,
            got=got,
            passed=passed,
            explanation=explanation,
            expected_severity=test.severity,
            got_severity=got_severity,
        )


def run_rule_tests(
    ruledir: RuleDir | str | Path,
    backend: Backend = "durable",
    only: Iterable[str] | None = None,
) -> list[TestResult]:
    """Run every test of every rule in ``ruledir`` (a loaded ``RuleDir`` or a directory).

    ``only`` limits the run to some rule ids. Results come in rule-id order, then in the
    order the tests are written. Raises ``RuleSetError`` (with every problem) when the rule
    directory does not check: tests of a broken rule set mean nothing.
    """
    rd = ruledir if isinstance(ruledir, RuleDir) else load_rule_dir(Path(ruledir))
    if not rd.ok:
        raise RuleSetError(rd.problems)
    # A rule switched off with `enabled: false` keeps its tests: they test its logic, so
    # they run as if it were on (effective dates still apply).
    rd = dataclasses.replace(
        rd, rules=[dataclasses.replace(r, enabled=True) if not r.enabled else r for r in rd.rules]
    )
    wanted = set(only) if only is not None else None
    runner = _Runner(rd, backend)
    results = []
    for rule in sorted(rd.rules, key=lambda r: r.id):
        if wanted is not None and rule.id not in wanted:
            continue
        for test in rule.tests:
            results.append(runner.run(rule, test))
    return results


def explain_test(ruledir: RuleDir, rule: Rule, test: RuleTest) -> str:
    """The Dutch trace of one test, whatever its outcome (for a verbose command line)."""
    compiled = compile_rules(ruledir, test.as_of, only={rule.id})
    fact = build_fact(test.case, compiled)
    got = (
        test.case.get("status", "open") == "open"
        and bool(compiled.rules)
        and evaluate(compiled.rules[0].bound, fact)
    )
    return _explain(rule, test, compiled, got, "python")


# ------------------------------------------------------------------ explanation


def _show(value: Any) -> str:
    if value is None:
        return "ontbreekt"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]" if value else "ontbreekt (leeg)"
    if isinstance(value, str) and not value:
        return '"" (leeg)'
    return str(value)


def _range(test: Test, as_of: dt.date) -> str:
    """For a relative date test: the dates it compares with on ``as_of``."""
    value = test.value
    if not isinstance(value, Duration):
        return ""
    past = past_threshold(as_of, value)
    if test.op == "older_than":
        return f"vóór {past.isoformat()}"
    if test.op == "newer_than":
        return f"op of na {past.isoformat()}"
    if test.op == "within_last":
        return f"van {past.isoformat()} t/m {as_of.isoformat()}"
    return f"van {as_of.isoformat()} t/m {future_limit(as_of, value).isoformat()}"


def _mark(result: bool) -> str:
    return "ja " if result else "nee"


_GROUP_LABEL = {"alle": "alle van:", "een van": "een van:", "niet": "niet:"}


def _literal(value: Any) -> str:
    """A value as it is written in a rule file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, str) and not value:
        return '""'
    return str(value)


def _test_text(test: Test) -> str:
    if test.op in ("missing", "present"):
        return f"{test.field}: {test.op}"
    text = f"{test.field}: {{{test.op}: {_literal(test.value)}"
    if test.if_missing is not None:
        text += f", if_missing: {_literal(test.if_missing)}"
    return text + "}"


def _flatten(node: Node, trace: Trace) -> tuple[Node, Trace]:
    """Skip groups of one item: they add a line without adding meaning."""
    while (
        isinstance(node, And | Or)
        and not isinstance(node.source, Test)
        and len(node.items) == 1
        and len(trace.children) == 1
    ):
        node, trace = node.items[0], trace.children[0]
    return node, trace


def _leaf_line(node: Node, trace: Trace, as_of: dt.date) -> str:
    source = node.source if isinstance(node, Leaf | And) else None
    if not isinstance(source, Test):
        return f"{_mark(trace.result)}  {trace.text}"
    details = []
    span = _range(source, as_of)
    if span:
        details.append(f"datum {span}")
    details.append(f"gezien: {_show(trace.seen)}")
    if trace.seen is None and source.is_list:
        details.append("een lege lijst")
    elif trace.seen is None and source.op not in ("missing", "present"):
        details.append(
            "een ontbrekend veld telt als waar (if_missing: true)"
            if trace.result
            else "een ontbrekend veld telt als onwaar"
        )
    return f"{_mark(trace.result)}  {_test_text(source)}  ({'; '.join(details)})"


def _is_test(node: Node) -> bool:
    return isinstance(node, Leaf | Const) or (
        isinstance(node, And) and isinstance(node.source, Test)
    )


def _render(node: Node, trace: Trace, as_of: dt.date, depth: int, out: list[str]) -> None:
    """Walk the bound tree and its trace together (``explain`` mirrors the tree's shape)."""
    node, trace = _flatten(node, trace)
    pad = "  " * depth
    if _is_test(node):
        out.append(pad + _leaf_line(node, trace, as_of))
        return
    out.append(f"{pad}{_mark(trace.result)}  {_GROUP_LABEL.get(trace.text, trace.text)}")
    _render_children(node, trace, as_of, depth + 1, out)


def _render_children(node: Node, trace: Trace, as_of: dt.date, depth: int, out: list[str]) -> None:
    children: tuple[Node, ...] = ()
    if isinstance(node, Neg):
        children = (node.item,)
    elif isinstance(node, And | Or):
        children = node.items
    for child, sub in zip(children, trace.children, strict=True):
        _render(child, sub, as_of, depth, out)


def _block(label: str, cond: Any, fact: Mapping[str, Any], as_of: dt.date, out: list[str]) -> bool:
    bound = bind(cond, as_of)
    node, trace = _flatten(bound, explain(bound, fact))
    verdict = "waar" if trace.result else "onwaar"
    if _is_test(node):
        out.append(f"{label}: {verdict}")
        out.append("  " + _leaf_line(node, trace, as_of))
    else:
        group = _GROUP_LABEL.get(trace.text, trace.text).rstrip(":")
        out.append(f"{label}, {group}: {verdict}")
        _render_children(node, trace, as_of, 1, out)
    return trace.result


def _explain(
    rule: Rule, test: RuleTest, compiled: CompiledRuleSet, got: bool, backend: Backend
) -> str:
    as_of = test.as_of
    out = [
        f"peildatum {as_of.isoformat()}: verwacht '{_fires_nl(test.expect_fires)}', "
        f"uitkomst '{_fires_nl(got)}'",
    ]
    if not rule.active_on(as_of):
        if not rule.enabled:
            why = "de regel staat uit (enabled: false)"
        else:
            start = rule.effective_from.isoformat() if rule.effective_from else "altijd"
            end = rule.effective_until.isoformat() if rule.effective_until else "geen einde"
            why = f"de regel geldt van {start} tot en met {end}"
        out.append(f"de regel is niet actief op {as_of.isoformat()}: {why}; hij gaat dan nooit af")
        return "\n".join(out)
    status = test.case.get("status", "open")
    if status != "open":
        out.append(f"de zaak heeft status '{status}': alleen open zaken worden beoordeeld")
        return "\n".join(out)
    fact = build_fact(test.case, compiled)
    when_ok = _block("wanneer (when)", rule.when, fact, as_of, out)
    if rule.overdue is not None:
        late_ok = _block("termijn verstreken (overdue.when)", rule.overdue.when, fact, as_of, out)
        when_ok = when_ok or late_ok
    unless_ok = False
    if rule.unless is not None:
        unless_ok = _block("tenzij (unless)", rule.unless, fact, as_of, out)
    python_fires = when_ok and not unless_ok
    if rule.unless is not None:
        first = "'wanneer' of 'overdue.when'" if rule.overdue is not None else "'wanneer'"
        out.append(
            f"de regel gaat af als {first} waar is en 'tenzij' onwaar: "
            f"hier {_fires_nl(python_fires)}"
        )
    if python_fires != got:
        out.append(
            f"let op: de evaluatie met {backend} geeft '{_fires_nl(got)}', de uitleg "
            f"'{_fires_nl(python_fires)}'; meld dit aan de ontwikkelaars"
        )
    return "\n".join(out)


# ------------------------------------------------------------------ formatting


def format_result(result: TestResult) -> str:
    """One line per test; a failed test followed by its explanation, indented."""
    status = "OK  " if result.passed else "FOUT"
    line = f"{status} {result.rule_id}: {result.name} ({result.path}:{result.line})"
    if result.passed:
        return line
    explanation = result.explanation or (
        f"verwacht '{_fires_nl(result.expected)}', uitkomst '{_fires_nl(result.got)}'"
    )
    return "\n".join([line, *("     " + text for text in explanation.splitlines())])


def format_summary(results: Iterable[TestResult]) -> str:
    """``"57 tests van 20 regels: 56 geslaagd, 1 mislukt"``."""
    items = list(results)
    failed = sum(1 for r in items if not r.passed)
    rules = len({r.rule_id for r in items})
    tests_word = "test" if len(items) == 1 else "tests"
    rules_word = "regel" if rules == 1 else "regels"
    return (
        f"{len(items)} {tests_word} van {rules} {rules_word}: "
        f"{len(items) - failed} geslaagd, {failed} mislukt"
    )
