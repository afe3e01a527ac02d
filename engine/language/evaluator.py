"""Evaluating cases: facts in, (case, rule) hits out, with durable-rules or plain Python.

durable-rules is the product's evaluator; the plain-Python evaluator runs the same compiled
conditions and serves as the oracle in tests, for ``explain`` and for rule-file tests.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from regiesignaal.engine.language.casefile import RECORD_DATE, shown_key
from regiesignaal.engine.language.compiled import OVERDUE_MARK, CompiledRuleSet
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.conditions import (
    And,
    Leaf,
    Neg,
    Node,
    Or,
    Trace,
    bind,
    explain,
    fields_of,
)
from regiesignaal.engine.language.dates import shift
from regiesignaal.engine.language.facts import (
    EVENT_DATES,
    RECORD_EVENT_DATES,
    build_fact,
    explained_by,
    explained_reason,
    explained_until,
)
from regiesignaal.engine.language.rulefile.model import RuleDir

Backend = Literal["durable", "python"]


@dataclass(frozen=True)
class Hit:
    case_ref: str
    rule_id: str
    regievoerder: str | None
    team: str | None
    explained_until: dt.date | None
    bonus: int = 0  # priority bonus from the case factors (rules/priority.yaml)
    severity: str = ""  # the rule's severity, or its overdue severity when the deadline passed
    overdue: bool = False
    explained_by: str | None = None  # staff id of the explanation in force (issue 6)
    began_on: dt.date | None = None  # when the gap began (the rule's ``since``), if known
    location: str | None = None  # the case's neutral location id (``location``), if any
    # a fingerprint of the fact values the rule reads (issue 18): an explanation lapses when
    # it differs from the one kept when the explanation was first honoured
    inputs: str | None = None
    explained_reason: str | None = None  # reason code of the explanation in force


@dataclass(frozen=True)
class Upcoming:
    """A rule with ``warn_before`` that does not fire on the case today but will, if nothing
    changes, on ``due_on`` + 1 day: ``due_on`` is the last day to act ("uiterlijk")."""

    case_ref: str
    rule_id: str
    regievoerder: str | None
    team: str | None
    due_on: dt.date


def location_id(case: Mapping[str, Any]) -> str | None:
    """The case's neutral location id (top-level ``location``), or None."""
    value = case.get("location")
    return value.strip()[:64] if isinstance(value, str) and value.strip() else None


ENGINE_SKIP = "de regelengine kon de zaak niet beoordelen"
"""How ``Evaluator.hits`` names a case it skipped (followed by the error's type)."""


def inputs_fingerprint(fact: Mapping[str, Any], reads: Iterable[str]) -> str:
    """A short hash of the values ``fact`` has for the fields in ``reads`` (the fields a rule
    reads): the same case data give the same fingerprint on every night, whatever the
    as-of date, as long as the rule's inputs do not change."""
    values = [[name, fact.get(name)] for name in reads]
    text = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Unshared(Exception):
    """The days ahead cannot share facts (see :class:`AheadFacts`)."""


def _dated_leaves(
    nodes: list[Node], out: list[tuple[str, str, int, int]], groups: list[str]
) -> None:
    """Walk the same where-filter bound for each day ahead in parallel; add (group, record
    key, lowest, highest constant) for each comparison whose constant moves with the day."""
    first = nodes[0]
    if any(type(n) is not type(first) for n in nodes):
        raise _Unshared
    if isinstance(first, Leaf):
        raw = [n.value for n in nodes]  # type: ignore[union-attr]
        if all(v == raw[0] for v in raw):
            return
        if first.op not in ("lt", "le", "gt", "ge") or "__" in first.field:
            raise _Unshared
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            raise _Unshared
        values: list[int] = raw
        out.extend((g, first.field, min(values), max(values)) for g in groups)
    elif isinstance(first, And | Or):
        if len({len(n.items) for n in nodes}) != 1:  # type: ignore[union-attr]
            raise _Unshared
        for i in range(len(first.items)):
            _dated_leaves([n.items[i] for n in nodes], out, groups)  # type: ignore[union-attr]
    elif isinstance(first, Neg):
        _dated_leaves([n.item for n in nodes], out, groups)  # type: ignore[union-attr]


def _moved_leaves(a: Node, b: Node, out: list[tuple[str, int, int]]) -> None:
    """Walk a rule's condition bound for two consecutive days in parallel; add (fact key,
    lowest, highest constant) for each integer comparison whose constant differs. Raises
    ``_Unshared`` when the two differ in any other way."""
    if type(a) is not type(b):
        raise _Unshared
    if isinstance(a, Leaf):
        assert isinstance(b, Leaf)
        if a.field != b.field or a.op != b.op or a.missing_result != b.missing_result:
            raise _Unshared
        if a.value == b.value and type(a.value) is type(b.value):
            return
        if a.op not in ("lt", "le", "gt", "ge", "eq", "ne"):
            raise _Unshared
        if type(a.value) is not int or type(b.value) is not int:
            raise _Unshared
        out.append((a.field, min(a.value, b.value), max(a.value, b.value)))
    elif isinstance(a, And | Or):
        assert isinstance(b, And | Or)
        if len(a.items) != len(b.items):
            raise _Unshared
        for x, y in zip(a.items, b.items, strict=True):
            _moved_leaves(x, y, out)
    elif isinstance(a, Neg):
        assert isinstance(b, Neg)
        _moved_leaves(a.item, b.item, out)
    elif a != b:
        raise _Unshared


def _may_cross(fact: Mapping[str, Any], thresholds: Iterable[tuple[str, int, int]]) -> bool:
    """Whether a value of ``fact`` lies within one of the ``thresholds`` (fact key, lowest,
    highest constant), or is not a day number, so that a comparison could change its truth
    as the threshold moves; False when every such field is missing or outside."""
    for key, lo, hi in thresholds:
        v = fact.get(key)
        if v is not None and (type(v) is not int or lo <= v <= hi):
            return True
    return False


def moved_thresholds(
    ahead: tuple[CompiledRuleSet, ...],
) -> list[dict[str, tuple[tuple[str, int, int], ...] | None]]:
    """Per day ahead after the first (index 0 is as_of + 2) and per warned rule: the
    comparisons whose date threshold moved since the day before, as (fact key, lowest,
    highest constant); None when the rule's condition changed in another way (or the rule
    was not active the day before). On the same fact, a rule can only change its truth
    from one day to the next when a moved comparison's field lies between its constants."""
    out: list[dict[str, tuple[tuple[str, int, int], ...] | None]] = []
    for prev, cur in itertools.pairwise(ahead):
        before = {cr.rule.id: cr.bound for cr in prev.rules}
        day: dict[str, tuple[tuple[str, int, int], ...] | None] = {}
        for cr in cur.rules:
            old = before.get(cr.rule.id)
            moved: list[tuple[str, int, int]] = []
            try:
                if old is None:
                    raise _Unshared
                _moved_leaves(old, cr.bound, moved)
            except _Unshared:
                day[cr.rule.id] = None
                continue
            day[cr.rule.id] = tuple(moved)
        out.append(day)
    return out


class AheadFacts:
    """The facts of one case for the days ahead (``warn_before``), built once and shared
    between days when they cannot differ (issue 19: eleven facts per case were most of
    evaluating).

    A fact depends on its date only through the dates compared with it: case dates that
    record something done (``EVENT_DATES``), the dates of list records (``RECORD_DATE``,
    ``RECORD_EVENT_DATES``) and the relative dates in the ``where`` filters of derived
    fields. The fact of one day serves the next when the days read the same fields, no
    such case or record date lies after the first day up to the next, and no record value
    a date-dependent filter compares lies between the filter's constants of the days ahead;
    otherwise (or when the filters are not plain comparisons) each day is built on its own,
    as before. ``tests/test_fast_facts.py`` checks the warnings against building every day.
    """

    def __init__(self, compiled: CompiledRuleSet):
        ahead = compiled.ahead
        self.as_of = compiled.as_of
        self.groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (group, date keys)
        self.events = tuple(name.partition(".")[::2] for name in sorted(EVENT_DATES))
        self.dated: list[tuple[str, str, int, int]] = []
        self.today = False  # today's fact serves the days ahead before any change date
        self.shared = bool(ahead)
        if not self.shared:
            return
        first = ahead[0]
        shape = (first.case_fields, [d.field for d in first.derived])
        if any((later.case_fields, [d.field for d in later.derived]) != shape for later in ahead):
            self.shared = False
            return
        # today's fact serves the days ahead before the first change date too, when it
        # carries every field of theirs, derived the same way (the filters' constants of
        # today count among the days' below)
        derived_today = {d.field.name: d.field for d in compiled.derived}
        self.today = set(first.case_fields) <= set(compiled.case_fields) and all(
            derived_today.get(d.field.name) == d.field for d in first.derived
        )
        try:
            for d in first.derived:
                where = d.field.where
                if where is not None:
                    groups = sorted({g for g, _ in d.field.sources})
                    bound = [bind(where, later.as_of) for later in (compiled, *ahead)]
                    _dated_leaves(bound, self.dated, groups)
        except _Unshared:
            self.shared = False
            return
        groups = sorted(
            {g for d in first.derived for g, _ in d.field.sources if d.field.kind != "days_between"}
        )
        self.groups = tuple(
            (g, tuple(k for k in (RECORD_DATE.get(g), *RECORD_EVENT_DATES.get(g, ())) if k))
            for g in groups
        )

    def changes(self, case: Mapping[str, Any]) -> list[dt.date] | None:
        """The dates after the as-of date on which the case's facts may change (sorted),
        or None when every day must be built on its own."""
        as_of = self.as_of
        out: set[dt.date] = set()
        for head, rest in self.events:
            obj = case.get(head)
            value = obj.get(rest) if isinstance(obj, Mapping) else None
            if isinstance(value, dt.date) and value > as_of:
                out.add(value)
        for group, keys in self.groups:
            if not keys:
                continue
            for record in case.get(group) or ():
                if not isinstance(record, Mapping):
                    return None
                for key in keys:
                    value = record.get(key)
                    if value is None:
                        continue
                    if not isinstance(value, dt.date):
                        return None
                    if value > as_of:
                        out.add(value)
        for group, key, lo, hi in self.dated:
            for record in case.get(group) or ():
                value = record.get(key)
                if value is None:
                    continue
                if not isinstance(value, dt.date) or lo <= value.toordinal() <= hi:
                    return None
        return sorted(out)


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
        self.rules = {cr.rule.id: cr.rule for cr in compiled.rules}
        self._compiled_by_id = {cr.rule.id: cr for cr in compiled.rules}
        self._reads = {cr.rule.id: tuple(sorted(fields_of(cr.bound))) for cr in compiled.rules}
        # per warned rule: its horizon in days (the last "uiterlijk" day it warns of: a rule
        # that fires on as-of + horizon + 1 is warned of today)
        self._warned = {
            cr.rule.id: (shift(compiled.as_of, cr.rule.warn_before, 1) - compiled.as_of).days
            for cr in compiled.rules
            if cr.rule.warn_before is not None and compiled.ahead
        }
        self._ahead: AheadFacts | None = AheadFacts(compiled) if compiled.ahead else None
        if self._ahead is not None and not self._ahead.shared:
            self._ahead = None
        self._moved = moved_thresholds(compiled.ahead) if self._ahead is not None else []
        # per warned rule present on every day ahead: (fact key, lowest, highest) of the
        # thresholds that move anywhere after the first day ahead, merged per key; a fact
        # with no value in them, the same every day ahead, gives the first day's result on
        # all of them
        self._span: dict[str, tuple[tuple[str, int, int], ...]] = {}
        for rule_id in (cr.rule.id for cr in compiled.ahead[0].rules) if self._moved else ():
            merged: dict[str, tuple[int, int]] = {}
            for day in self._moved:
                moved = day.get(rule_id)
                if moved is None:
                    break
                for key, lo, hi in moved:
                    a, b = merged.get(key, (lo, hi))
                    merged[key] = (min(a, lo), max(b, hi))
            else:
                self._span[rule_id] = tuple((k, a, b) for k, (a, b) in sorted(merged.items()))
        self._durable: Any = None
        if backend == "durable":
            from regiesignaal.engine.language.durable_backend import DurableEvaluator

            self._durable = DurableEvaluator(compiled)

    def fired_levels(self, fact: Mapping[str, Any]) -> dict[str, bool]:
        """The rules that fire on ``fact``, each with True when it is overdue.

        Both evaluators report the overdue condition too (``<id>#overdue``), so the raised
        severity is cross-checked like the firing itself.
        """
        if self._durable is None:
            raw = self._python(fact)
        else:
            raw = list(self._durable.fired(fact))
            if self.verify and raw != (python := self._python(fact)):
                raise EvaluationMismatch(
                    f"case {shown_key(str(fact.get('sid')))}: durable-rules gave {raw}, the "
                    f"Python evaluator gave {python}; the run stops rather than lose or invent "
                    "a signal"
                )
        late = {r[: -len(OVERDUE_MARK)] for r in raw if r.endswith(OVERDUE_MARK)}
        return {r: r in late for r in raw if not r.endswith(OVERDUE_MARK)}

    def fired_for_fact(self, fact: Mapping[str, Any]) -> list[str]:
        return list(self.fired_levels(fact))

    def _python(self, fact: Mapping[str, Any]) -> list[str]:
        out = []
        for cr in self.compiled.rules:
            if cr.predicate(fact):
                out.append(cr.rule.id)
                if cr.overdue_predicate is not None and cr.overdue_predicate(fact):
                    out.append(cr.rule.id + OVERDUE_MARK)
        return sorted(out)

    def fired(self, case: Mapping[str, Any]) -> list[str]:
        return self.fired_for_fact(build_fact(case, self.compiled))

    def upcoming(
        self,
        case: Mapping[str, Any],
        fired_today: Iterable[str],
        today: Mapping[str, Any] | None = None,
    ) -> list[Upcoming]:
        """The warned rules that do not fire on ``case`` today but will within their
        ``warn_before`` if nothing changes: each rule is evaluated (plain Python, the same
        compiled conditions) on the case as it stands, with the facts and thresholds of
        every next day in turn; the first day it fires gives its deadline (the day before).
        ``today`` is the case's fact of the as-of date when the caller has it (built here
        otherwise, when the days ahead can use it)."""
        if not self._warned:
            return []
        as_of = self.compiled.as_of
        waiting = {r: h for r, h in self._warned.items() if r not in set(fired_today)}
        out: list[Upcoming] = []
        # the fact of an earlier day ahead, and how many change dates it had behind it
        changes: list[dt.date] | None = None
        kept: tuple[int, Mapping[str, Any]] | None = None
        if self._ahead is not None and waiting:
            changes = self._ahead.changes(case)
        passed_before = -1  # the change dates behind the day before (changes known)
        for k, later in enumerate(self.compiled.ahead, start=1):
            if not waiting:
                break
            fact: Mapping[str, Any] | None = None
            passed = -1
            if changes is not None:
                passed = bisect.bisect_right(changes, later.as_of)
            if (
                k == 2
                and self._span
                and kept is not None
                and kept[0] == passed_before
                and changes is not None
                and bisect.bisect_right(changes, self.compiled.ahead[-1].as_of) == passed_before
            ):
                # the fact of the first day ahead serves every day: a rule that did not
                # fire then and has no value among its moving thresholds never fires
                for rule_id in [r for r in waiting if r in self._span]:
                    if not _may_cross(kept[1], self._span[rule_id]):
                        del waiting[rule_id]
                if not waiting:
                    break
            # the same fact as the day before: a rule that did not fire then can only fire
            # today when a moved threshold passes the value of its field (``_moved``)
            moved_today = (
                self._moved[k - 2]
                if k >= 2
                and passed == passed_before >= 0
                and kept is not None
                and kept[0] == passed
                else None
            )
            passed_before = passed
            for cr in later.rules:
                rule_id = cr.rule.id
                horizon = waiting.get(rule_id)
                if horizon is None:
                    continue
                if k - 1 > horizon:
                    del waiting[rule_id]
                    continue
                if moved_today is not None and kept is not None:
                    moved = moved_today.get(rule_id)
                    if moved is not None and not _may_cross(kept[1], moved):
                        continue  # cannot have changed: still does not fire
                if fact is None:
                    if changes is None:
                        fact = build_fact(case, later)
                    else:
                        if kept is None or kept[0] != passed:
                            if passed == 0 and self._ahead is not None and self._ahead.today:
                                if today is None:
                                    today = build_fact(case, self.compiled)
                                kept = (passed, today)
                            else:
                                kept = (passed, build_fact(case, later))
                        fact = kept[1]
                if cr.predicate(fact):
                    del waiting[rule_id]
                    out.append(
                        Upcoming(
                            str(case["case_ref"]),
                            rule_id,
                            case.get("regievoerder"),
                            case.get("team"),
                            as_of + dt.timedelta(days=k - 1),
                        )
                    )
        return sorted(out, key=lambda u: u.rule_id)

    def hits(
        self,
        cases: Iterable[Mapping[str, Any]],
        skipped: dict[str, str] | None = None,
        upcoming: list[Upcoming] | None = None,
    ) -> list[Hit]:
        """The hits of the open ``cases``. With ``skipped``, a case the engine cannot
        evaluate is recorded there (case_ref -> kind of problem, no values) and the rest
        goes on; without it the error is raised. A disagreement between the evaluators
        (``EvaluationMismatch``) is a bug and is always raised. With ``upcoming``, the
        warnings of each case (see :meth:`upcoming`) are appended to it."""
        out = []
        as_of = self.compiled.as_of
        for case in cases:
            if case.get("status", "open") != "open":
                continue
            try:
                fact = build_fact(case, self.compiled)
                fired = self.fired_levels(fact)
                bonus = self.compiled.case_bonus(fact) if fired else 0
                soon = self.upcoming(case, fired, fact) if upcoming is not None else []
            except EvaluationMismatch:
                raise
            except Exception as exc:
                if skipped is None:
                    raise
                skipped[str(case["case_ref"])] = f"{ENGINE_SKIP} ({type(exc).__name__})"
                continue
            for rule_id, overdue in fired.items():
                rule = self.rules[rule_id]
                out.append(
                    Hit(
                        case["case_ref"],
                        rule_id,
                        case.get("regievoerder"),
                        case.get("team"),
                        explained_until(case, rule_id, as_of),
                        bonus,
                        rule.severity_for(overdue),
                        overdue,
                        explained_by(case, rule_id, as_of),
                        self.compiled.began_on(self._compiled_by_id[rule_id], fact),
                        location_id(case),
                        inputs_fingerprint(fact, self._reads[rule_id]),
                        explained_reason(case, rule_id, as_of),
                    )
                )
            if upcoming is not None:
                upcoming.extend(soon)
        return out


@dataclass(frozen=True)
class RuleExplanation:
    rule_id: str
    title: str
    fires: bool
    trace: Trace
    explained_until: dt.date | None
    overdue: bool = False  # the rule's overdue condition holds too (deadline passed)
    severity: str = ""  # the signal's severity: the rule's, or raised when overdue


def explain_case(
    ruledir: RuleDir, case: Mapping[str, Any], as_of: dt.date
) -> tuple[dict[str, Any], list[RuleExplanation]]:
    """For every active rule: does it fire on ``case``, with each condition and its values."""
    compiled = compile_rules(ruledir, as_of)
    fact = build_fact(case, compiled)
    out = []
    for cr in compiled.rules:
        trace = explain(cr.bound, fact)
        late = trace.result and cr.overdue_predicate is not None and cr.overdue_predicate(fact)
        out.append(
            RuleExplanation(
                cr.rule.id,
                cr.rule.title,
                trace.result,
                trace,
                explained_until(case, cr.rule.id, as_of),
                late,
                cr.rule.severity_for(late),
            )
        )
    return fact, out
