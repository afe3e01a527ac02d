"""Compiling a checked rule directory for one as-of date.

The result, a ``CompiledRuleSet``, holds per active rule its condition bound to the as-of
date (for the Python evaluator and explanations) and in negation normal form (for
durable-rules), and the list of fields the facts must carry. Facts stay lean: only the
fields some rule reads go into them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from regiesignaal.engine.language.compiled import (
    CompiledDerived,
    CompiledFactor,
    CompiledRule,
    CompiledRuleSet,
)
from regiesignaal.engine.language.conditions import (
    bind,
    compile_predicate,
    fact_key,
    fields_of,
    to_nnf,
)
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import DerivedField, RuleDir
from regiesignaal.engine.language.rulefile.rules import warn_days


class RuleSetError(Exception):
    """The rule set does not check; ``problems`` lists every problem."""

    def __init__(self, problems: list[Any]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} {'probleem' if len(problems) == 1 else 'problemen'} in de regels"
        )


MAX_ENGINE_RULES = 400
"""Most durable-rules rules in one rule set (the engine is reported to fail near 480)."""


def engine_limit_problems(ruledir: RuleDir, as_of: dt.date | None = None) -> list[Any]:
    """Problems of rules that check but that durable-rules itself refuses (too complex).

    Each rule is compiled on its own and handed to durable-rules; a refusal becomes a
    Problem at the rule's line with advice. Runs after the file checks.
    """
    from regiesignaal.engine.language.durable_backend import engine_problem, rule_patterns
    from regiesignaal.engine.language.rulefile.model import Problem

    day = as_of or dt.date.today()
    out = []
    nnfs = [(rule, to_nnf(bind(rule.condition(), day))) for rule in ruledir.rules]
    total = sum(len(rule_patterns(nnf)) for _, nnf in nnfs)
    if total > MAX_ENGINE_RULES:
        first = ruledir.rules[0]
        return [
            Problem(
                first.path,
                1,
                1,
                f"de regels samen worden {total} engine-regels (elk alternatief van een 'any' "
                f"bovenaan telt apart); hoogstens {MAX_ENGINE_RULES}",
                "gebruik 'in: [...]' in plaats van veel alternatieven, of schakel regels uit",
            )
        ]
    for rule, nnf in nnfs:
        error = engine_problem(nnf)
        late = rule.overdue_condition()
        if not error and late is not None:
            error = engine_problem(to_nnf(bind(late, day)))
        if error:
            out.append(
                Problem(
                    rule.path,
                    rule.line,
                    1,
                    f"regel {rule.id} is te ingewikkeld voor de rule engine ({error})",
                    "splits de regel in twee regels, of vat een deel samen in een afgeleid "
                    "veld (derived.yaml); 'any' bovenaan de regel kost het minst",
                )
            )
    return out


def check_rule_dir(root: Path) -> RuleDir:
    """Load a rule directory and, when its files check, ask durable-rules about its limits:
    every problem a run would meet before it sends anything."""
    ruledir = load_rule_dir(root)
    if ruledir.ok:
        ruledir.problems.extend(engine_limit_problems(ruledir))
    return ruledir


def _compile_derived(d: DerivedField, as_of: dt.date) -> CompiledDerived:
    if d.where is None:
        return CompiledDerived(d, None)
    where = bind(d.where, as_of)
    return CompiledDerived(d, compile_predicate(where), frozenset(fields_of(where)))


def compile_rules(
    ruledir: RuleDir, as_of: dt.date, only: set[str] | None = None, *, ahead: bool = True
) -> CompiledRuleSet:
    """Compile the rules active on ``as_of``; refuses a rule set with problems.

    With ``ahead`` (the default), the rules with ``warn_before`` are compiled for each of
    the next days up to the longest warning too (``CompiledRuleSet.ahead``)."""
    if not ruledir.ok:
        raise RuleSetError(ruledir.problems)
    derived_by_name = {d.name: d for d in ruledir.derived}
    compiled = []
    needed: set[str] = set()
    for rule in ruledir.rules:
        if only is not None and rule.id not in only:
            continue
        if not rule.active_on(as_of):
            continue
        bound = bind(rule.condition(), as_of)
        late = rule.overdue_condition()
        late_bound = bind(late, as_of) if late is not None else None
        compiled.append(
            CompiledRule(
                rule,
                bound,
                to_nnf(bound),
                compile_predicate(bound),
                to_nnf(late_bound) if late_bound is not None else None,
                compile_predicate(late_bound) if late_bound is not None else None,
                fact_key(rule.since.field) if rule.since is not None else None,
            )
        )
        needed |= fields_of(rule.condition())
        if rule.since is not None:
            needed.add(rule.since.field)
    factors = []
    for factor in ruledir.factors:
        factors.append(
            CompiledFactor(factor.name, factor.add, compile_predicate(bind(factor.when, as_of)))
        )
        needed |= fields_of(factor.when)
    for name in list(needed):  # days_between reads two dates, maybe derived ones
        d = derived_by_name.get(name)
        if d is not None and d.kind == "days_between":
            needed |= {ref for _, ref in d.sources if ref in derived_by_name}
    derived = tuple(
        _compile_derived(d, as_of) for name, d in sorted(derived_by_name.items()) if name in needed
    )
    case_fields = tuple(sorted(n for n in needed if n not in derived_by_name))
    days_ahead = max(
        (warn_days(c.rule.warn_before) for c in compiled if c.rule.warn_before is not None),
        default=0,
    )
    later: tuple[CompiledRuleSet, ...] = ()
    if ahead and days_ahead:
        warned = {c.rule.id for c in compiled if c.rule.warn_before is not None}
        later = tuple(
            compile_rules(ruledir, as_of + dt.timedelta(days=k), warned, ahead=False)
            for k in range(1, days_ahead + 2)  # the day after the last warned day too
        )
    return CompiledRuleSet(
        as_of, ruledir.version, tuple(compiled), case_fields, derived, tuple(factors), later
    )
