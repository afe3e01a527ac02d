"""Overlap of a new or changed rule with the rules already there (``preview --diff``).

A policy owner who adds or changes a rule sees, before it ships, how many of the cases it
would flag are already flagged by which other rules: a rule whose cases are all flagged by
one other rule duplicates it ("one gap, one signal").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from regiesignaal.engine.language.evaluator import Hit
from regiesignaal.engine.language.rulefile.model import Rule, RuleDir

_POS = re.compile(r"pos=Pos\(line=\d+, column=\d+\)")


def rule_signature(rule: Rule) -> str:
    """What decides when a rule fires and how loud, without file positions or texts."""
    parts = (
        rule.condition(),
        rule.overdue_condition(),
        rule.overdue.severity if rule.overdue else None,
        rule.severity,
        rule.enabled,
        rule.effective_from,
        rule.effective_until,
    )
    return _POS.sub("", repr(parts))


def changed_rules(candidate: RuleDir, current: RuleDir) -> dict[str, str]:
    """Rule id -> "nieuw" or "gewijzigd" for the candidate's rules that differ from current.

    A changed derived field changes every rule that reads it: those count as changed too.
    """
    now = {r.id: rule_signature(r) for r in current.rules}
    derived_now = {
        d.name: _POS.sub("", repr(d.__dict__ | {"path": "", "line": 0})) for d in current.derived
    }
    changed_derived = {
        d.name
        for d in candidate.derived
        if derived_now.get(d.name) != _POS.sub("", repr(d.__dict__ | {"path": "", "line": 0}))
    }
    out = {}
    for rule in candidate.rules:
        if rule.id not in now:
            out[rule.id] = "nieuw"
        elif now[rule.id] != rule_signature(rule) or _reads(rule) & changed_derived:
            out[rule.id] = "gewijzigd"
    return out


def _reads(rule: Rule) -> set[str]:
    from regiesignaal.engine.language.conditions import fields_of

    return fields_of(rule.condition())


@dataclass(frozen=True)
class Overlap:
    rule_id: str
    status: str  # nieuw | gewijzigd
    cases: int  # cases the rule flags
    also: tuple[tuple[str, int], ...]  # (other rule, cases flagged by both), most first
    alone: int  # cases no other rule flags

    def lines(self) -> list[str]:
        """Dutch report lines."""
        head = f"{self.rule_id} ({self.status}): {_cases(self.cases)}"
        if not self.cases:
            return [head + "."]
        out = [
            head + f"; {_cases(self.alone)} daarvan "
            f"{'signaleert' if self.alone == 1 else 'signaleren'} geen andere regel."
        ]
        for other, n in self.also:
            share = 100 * n / self.cases
            out.append(f"  ook door {other}: {_cases(n)} ({share:.0f}%)")
        if self.also and self.also[0][1] == self.cases:
            out.append(
                f"  let op: elke zaak van {self.rule_id} heeft al {self.also[0][0]}; "
                "is dit hetzelfde gat? (één gat, één signaal)"
            )
        return out


def overlaps(hits: Iterable[Hit], rules: Mapping[str, str]) -> list[Overlap]:
    """For each rule in ``rules`` (id -> status): its cases and which other rules flag them."""
    by_case: dict[str, set[str]] = {}
    for h in hits:
        by_case.setdefault(h.case_ref, set()).add(h.rule_id)
    out = []
    for rule_id, status in sorted(rules.items()):
        mine = [fired for fired in by_case.values() if rule_id in fired]
        others: Counter[str] = Counter()
        alone = 0
        for fired in mine:
            rest = fired - {rule_id}
            others.update(rest)
            alone += not rest
        also = tuple(sorted(others.items(), key=lambda kv: (-kv[1], kv[0])))
        out.append(Overlap(rule_id, status, len(mine), also, alone))
    return out


def _cases(n: int) -> str:
    return f"{n} zaak" if n == 1 else f"{n} zaken"
