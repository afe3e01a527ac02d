"""Evaluating cases: facts in, (case, rule) hits out, with durable-rules or plain Python.

durable-rules is the product's evaluator; the plain-Python evaluator runs the same compiled
conditions and serves as the oracle in tests, for ``explain`` and for rule-file tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from engine.casefile import shown_key
from engine.compiler import CompiledRuleSet, compile_rules
from engine.conditions import Trace, explain
from engine.facts import build_fact, explained_until
from engine.rulefile import RuleDir

Backend = Literal["durable", "python"]


@dataclass(frozen=True)
class Hit:
    case_ref: str
    rule_id: str
    regievoerder: str | None
    team: str | None
    explained_until: dt.date | None
    bonus: int = 0  # priority bonus from the case factors (rules/priority.yaml)


ENGINE_SKIP = "de regelengine kon de zaak niet beoordelen"
"""How ``Evaluator.hits`` names a case it skipped (followed by the error's type)."""


class EvaluationMismatch(RuntimeError):
    """durable-rules and the Python evaluator disagree on a case: a bug, never ignored."""


class Evaluator:
    """Evaluate cases against one compiled rule set.

    With ``verify`` (the default for durable-rules) every case is also evaluated by the
    plain-Python evaluator and a disagreement raises ``EvaluationMismatch``: durable-rules
    swallows errors inside actions, so a lost signal must not pass silently. It costs
    about a tenth of the durable-rules time.
    """

    def __init__(
        self, compiled: CompiledRuleSet, backend: Backend = "durable", verify: bool = True
    ):
        self.compiled = compiled
        self.backend = backend
        self.verify = verify and backend == "durable"
        self._durable: Any = None
        if backend == "durable":
            from engine.durable_backend import DurableEvaluator

            self._durable = DurableEvaluator(compiled)

    def fired_for_fact(self, fact: Mapping[str, Any]) -> list[str]:
        if self._durable is None:
            return self._python(fact)
        durable = list(self._durable.fired(fact))
        if self.verify and durable != (python := self._python(fact)):
            raise EvaluationMismatch(
                f"case {shown_key(str(fact.get('sid')))}: durable-rules gave {durable}, the "
                "Python evaluator "
                f"gave {python}; the run stops rather than lose or invent a signal"
            )
        return durable

    def _python(self, fact: Mapping[str, Any]) -> list[str]:
        return sorted(cr.rule.id for cr in self.compiled.rules if cr.predicate(fact))

    def fired(self, case: Mapping[str, Any]) -> list[str]:
        return self.fired_for_fact(build_fact(case, self.compiled))

    def hits(
        self, cases: Iterable[Mapping[str, Any]], skipped: dict[str, str] | None = None
    ) -> list[Hit]:
        """The hits of the open ``cases``. With ``skipped``, a case the engine cannot
        evaluate is recorded there (case_ref -> kind of problem, no values) and the rest
        goes on; without it the error is raised. A disagreement between the evaluators
        (``EvaluationMismatch``) is a bug and is always raised."""
        out = []
        as_of = self.compiled.as_of
        for case in cases:
            if case.get("status", "open") != "open":
                continue
            try:
                fact = build_fact(case, self.compiled)
                fired = self.fired_for_fact(fact)
                bonus = self.compiled.case_bonus(fact) if fired else 0
            except EvaluationMismatch:
                raise
            except Exception as exc:
                if skipped is None:
                    raise
                skipped[str(case["case_ref"])] = f"{ENGINE_SKIP} ({type(exc).__name__})"
                continue
            for rule_id in fired:
                out.append(
                    Hit(
                        case["case_ref"],
                        rule_id,
                        case.get("regievoerder"),
                        case.get("team"),
                        explained_until(case, rule_id, as_of),
                        bonus,
                    )
                )
        return out


@dataclass(frozen=True)
class RuleExplanation:
    rule_id: str
    title: str
    fires: bool
    trace: Trace
    explained_until: dt.date | None


def explain_case(
    ruledir: RuleDir, case: Mapping[str, Any], as_of: dt.date
) -> tuple[dict[str, Any], list[RuleExplanation]]:
    """For every active rule: does it fire on ``case``, with each condition and its values."""
    compiled = compile_rules(ruledir, as_of)
    fact = build_fact(case, compiled)
    out = []
    for cr in compiled.rules:
        trace = explain(cr.bound, fact)
        out.append(
            RuleExplanation(
                cr.rule.id,
                cr.rule.title,
                trace.result,
                trace,
                explained_until(case, cr.rule.id, as_of),
            )
        )
    return fact, out
