"""What a run reads from the source: the case fields and list records a compiled rule set needs.

The nightly run (and ``preview``) reads every open case, but a rule set reads only some of
its fields: the three starter rules need four list tables and a handful of date columns of
the eight tables the source has. ``needs_of`` works that out from a ``CompiledRuleSet``;
``engine.source`` then selects only those tables and columns (``read_case_range(...,
needs=...)``). Whatever is not needed is simply absent from the in-memory case; a list
group that is not needed is absent too (not ``[]``).

What a run needs, and why:

- the case fields the facts carry (``CompiledRuleSet.case_fields``: fields named by rule
  conditions, overdue conditions and priority factors);
- per derived field (``CompiledRuleSet.derived``): the record fields of its ``sources``,
  the record fields its ``where`` filter tests, its ``otherwise`` case field, and for
  ``days_between`` the case date fields it subtracts;
- per list group read: its record date (``RECORD_DATE``: records dated after the as-of
  date do not count) and its event dates (``RECORD_EVENT_DATES``);
- always: ``case_ref``, ``status`` (only open cases are evaluated), ``regievoerder`` and
  ``team`` (carried by each hit), and the explanations' ``rule``, ``until``, ``by`` and ``reason``
  (``engine.language.facts.explained_until`` / ``explained_by`` / ``explained_reason`` /
  ``explanation_rule_refs``).

Nothing after evaluation reads the case: reconcile and the mails work from the hits, the
case index (``engine.source.read.case_index``) and the signal store. The choice-value check is
one aggregate query per table (``engine.source.read.count_unknown_choices``), not a read of the
cases. Whoever shows a whole case (``explain``, the LKO agenda, rule tests) reads it whole
(``needs=None``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from regiesignaal.engine.language.casefile import LIST_GROUPS, RECORD_DATE
from regiesignaal.engine.language.compiled import CompiledRuleSet
from regiesignaal.engine.language.conditions import fields_of
from regiesignaal.engine.language.facts import RECORD_EVENT_DATES

ALWAYS_CASE_FIELDS: frozenset[str] = frozenset({"case_ref", "status", "regievoerder", "team"})
"""Case fields every run reads, whatever its rules."""

ALWAYS_LIST_FIELDS: dict[str, frozenset[str]] = {
    "explanations": frozenset({"rule", "until", "by", "reason"}),
}
"""Record fields of list groups every run reads, whatever its rules."""


@dataclass(frozen=True)
class SourceNeeds:
    """The part of a case a run reads; hashable, so a read plan can be cached per needs.

    ``case``: case fields by their dotted rule name (``opened_on``, ``person.amv``).
    ``lists``: per list group read, its record fields by dotted name (``on``,
    ``checked.medical``), as sorted (group, fields) pairs.
    """

    case: frozenset[str]
    lists: tuple[tuple[str, frozenset[str]], ...]

    def groups(self) -> tuple[str, ...]:
        """The list groups read, in contract order."""
        return tuple(group for group, _ in self.lists)

    def fields(self, group: str) -> frozenset[str]:
        """The record fields read of ``group`` (empty when the group is not read)."""
        for name, fields in self.lists:
            if name == group:
                return fields
        return frozenset()


def make_needs(case: Iterable[str], lists: dict[str, set[str]] | None = None) -> SourceNeeds:
    """Needs from case fields and list fields, plus what every run reads (``ALWAYS_*``)."""
    merged: dict[str, set[str]] = {g: set(f) for g, f in ALWAYS_LIST_FIELDS.items()}
    for group, fields in (lists or {}).items():
        if group not in LIST_GROUPS:
            raise ValueError(f"unknown list group: {group}")
        merged.setdefault(group, set()).update(fields)
    for group, fields in merged.items():
        if group in RECORD_DATE:
            fields.add(RECORD_DATE[group])
        fields.update(RECORD_EVENT_DATES.get(group, ()))
    return SourceNeeds(
        frozenset(case) | ALWAYS_CASE_FIELDS,
        tuple((g, frozenset(merged[g])) for g in LIST_GROUPS if g in merged),
    )


def needs_of(compiled: CompiledRuleSet) -> SourceNeeds:
    """The case fields and list records that evaluating ``compiled`` reads (see the module
    docstring). Evaluating a case read with these needs gives the same hits as evaluating
    the whole case."""
    case: set[str] = set(compiled.case_fields)
    lists: dict[str, set[str]] = {}
    derived = compiled.derived_names
    for spec in compiled.derived:
        d = spec.field
        if d.kind == "days_between":
            case.update(name for _, name in d.sources if name not in derived)
            continue
        filtered = fields_of(d.where) if d.where is not None else set()
        for group, name in d.sources:
            fields = lists.setdefault(group, set())
            if name:
                fields.add(name)
            fields.update(filtered)
        if d.otherwise:
            case.add(d.otherwise)
    return make_needs(case, lists)
