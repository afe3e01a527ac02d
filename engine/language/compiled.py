"""A rule set compiled for one as-of date: what the fact builder and both evaluators read.

Per active rule its condition bound to the as-of date (``bound``, for the Python evaluator
and explanations) and in negation normal form (``nnf``, for durable-rules), with compiled
predicates; the derived fields and case fields the facts carry (only those some rule reads);
the priority factors. Made by ``engine.language.compiler.compile_rules``; types only here, so
the modules that read a compiled rule set never import the compiler.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from regiesignaal.engine.language.conditions import Node
from regiesignaal.engine.language.dates import shift
from regiesignaal.engine.language.rulefile.model import DerivedField, Rule

OVERDUE_MARK = "#overdue"
"""Appended to a rule id by both evaluators when the rule's overdue condition holds too."""


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    bound: Node  # structure as written, relative dates fixed
    nnf: Node  # negation pushed to the leaves, constants folded
    predicate: Callable[[Mapping[str, Any]], bool]
    # the rule's overdue condition (``overdue.when`` and not ``unless``), when it has one
    overdue_nnf: Node | None = None
    overdue_predicate: Callable[[Mapping[str, Any]], bool] | None = None
    # the fact key of ``since.field`` (a day number in the fact), when the rule has one
    since_key: str | None = None


@dataclass(frozen=True)
class CompiledDerived:
    field: DerivedField
    where: Callable[[Mapping[str, Any]], bool] | None
    where_fields: frozenset[str] = frozenset()  # the flat record keys ``where`` reads


@dataclass(frozen=True)
class CompiledFactor:
    name: str
    add: int
    predicate: Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class CompiledRuleSet:
    as_of: dt.date
    version: str
    rules: tuple[CompiledRule, ...]
    case_fields: tuple[str, ...]  # dotted case fields the facts carry
    derived: tuple[CompiledDerived, ...]  # derived fields the facts carry
    factors: tuple[CompiledFactor, ...] = ()
    # the rules with ``warn_before`` compiled for each of the next days (as_of + 1,
    # as_of + 2, ...), only as far as the longest warning reaches: what would fire then
    ahead: tuple[CompiledRuleSet, ...] = ()
    # what later steps work out once per rule set (``engine.language.facts`` keeps its
    # fact builder here); not part of the rule set's value
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def derived_names(self) -> frozenset[str]:
        return frozenset(d.field.name for d in self.derived)

    def case_bonus(self, fact: Mapping[str, Any]) -> int:
        """The priority bonus of a case: the sum of the factors that hold for it."""
        return sum(f.add for f in self.factors if f.predicate(fact))

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.rule.id for r in self.rules)

    def began_on(self, rule: CompiledRule, fact: Mapping[str, Any]) -> dt.date | None:
        """The date the gap of ``rule`` began on this case (its ``since``), or None."""
        since = rule.rule.since
        if since is None or rule.since_key is None:
            return None
        day = fact.get(rule.since_key)
        if not isinstance(day, int):
            return None
        begin = dt.date.fromordinal(day)
        return shift(begin, since.after, 1) if since.after is not None else begin

    def by_id(self, rule_id: str) -> CompiledRule:
        for r in self.rules:
            if r.rule.id == rule_id:
                return r
        raise KeyError(rule_id)
