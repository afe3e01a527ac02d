"""The condition tree of the rule language, bound to an as-of date, and its plain-Python evaluator.

Three shapes of a condition:

1. ``Cond`` (parsed): ``All``/``Any``/``Not``/``Test`` as written in a rule file; date tests
   are still relative (``older_than: 14d``).
2. bound: the same tree with every relative date turned into a fixed threshold for one as-of
   date (``bind``); ``evaluate`` and ``explain`` work on it, with ``Not`` as plain negation.
3. negation normal form (``to_nnf``): only ``And``/``Or`` over ``Leaf`` nodes whose negation has
   been pushed down; this is what the durable-rules compiler emits.

Missing data (documented in the README): a test on a missing field is false, unless the test
says ``if_missing: true``; ``missing`` is true exactly when the field is absent; list fields are
never missing (absent = empty list): ``contains`` is false and ``not_contains`` true on them.
``not`` negates the whole result, so ``not: {x: {gt: 3}}`` is true when ``x`` is missing.

Values in facts: dates are day numbers (``date.toordinal()``), so every date test is an integer
comparison; booleans, integers and strings as they are; list fields as lists of strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from regiesignaal.engine.language.dates import Duration, future_limit, past_threshold

LeafOp = Literal[
    "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "not_contains", "missing",
    "present",
]  # fmt: skip
RelOp = Literal["older_than", "newer_than", "within_last", "within_next"]

COMPLEMENT: dict[str, str] = {
    "eq": "ne",
    "ne": "eq",
    "lt": "ge",
    "ge": "lt",
    "le": "gt",
    "gt": "le",
    "in": "not_in",
    "not_in": "in",
    "contains": "not_contains",
    "not_contains": "contains",
    "missing": "present",
    "present": "missing",
}


@dataclass(frozen=True)
class Pos:
    """Where a condition stands in its file (1-based line and column)."""

    line: int = 0
    column: int = 0


# ---------------------------------------------------------------- parsed tree


@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest test class

    field: str
    op: str  # a LeafOp or a RelOp
    value: Any = None  # literal, tuple of literals, or Duration for RelOps
    if_missing: bool | None = None
    is_list: bool = False  # the field is a list field (fixes the missing behaviour)
    pos: Pos = Pos()


@dataclass(frozen=True)
class All:
    items: tuple[Cond, ...]
    pos: Pos = Pos()


@dataclass(frozen=True)
class Any_:
    items: tuple[Cond, ...]
    pos: Pos = Pos()


@dataclass(frozen=True)
class Not:
    item: Cond
    pos: Pos = Pos()


Cond = Union[Test, All, Any_, Not]  # noqa: UP007 (recursive alias)


# ---------------------------------------------------------------- bound tree


@dataclass(frozen=True)
class Leaf:
    """One comparison on one fact field, with its value when the field is missing."""

    field: str
    op: str  # LeafOp
    value: Any
    missing_result: bool
    source: Test | None = None  # the test it came from, for explanations

    def negate(self) -> Leaf:
        return Leaf(
            self.field, COMPLEMENT[self.op], self.value, not self.missing_result, self.source
        )


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    source: Cond | None = None


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]
    source: Cond | None = None


@dataclass(frozen=True)
class Neg:
    item: Node
    source: Cond | None = None


@dataclass(frozen=True)
class Const:
    value: bool


Node = Union[Leaf, And, Or, Neg, Const]  # noqa: UP007

TRUE = Const(True)
FALSE = Const(False)


def fact_key(field_name: str) -> str:
    """The key of a rule field in a flat fact (``person.amv`` -> ``person__amv``)."""
    return field_name.replace(".", "__")


def _leaf(test: Test, op: str, value: Any) -> Leaf:
    if op == "missing":
        mr = True
    elif op == "present":
        mr = False
    elif test.is_list:
        mr = op == "not_contains"
    else:
        mr = bool(test.if_missing)
    return Leaf(fact_key(test.field), op, value, mr, test)


def _bind_test(test: Test, as_of: dt.date) -> Node:
    op, value = test.op, test.value
    if isinstance(value, dt.date):
        value = value.toordinal()
    elif isinstance(value, tuple):
        value = tuple(v.toordinal() if isinstance(v, dt.date) else v for v in value)
    if op in ("older_than", "newer_than", "within_last", "within_next"):
        assert isinstance(value, Duration)
        past = past_threshold(as_of, value).toordinal()
        future = future_limit(as_of, value).toordinal()
        today = as_of.toordinal()
        older = _leaf(test, "lt", past)  # "more than N before as-of"
        if op == "older_than":
            return older
        if op == "newer_than":
            return _leaf(test, "ge", past)
        if op == "within_last":
            return And((_leaf(test, "ge", past), _leaf(test, "le", today)), test)
        return And((_leaf(test, "ge", today), _leaf(test, "le", future)), test)
    if op in ("in", "not_in") and not value:
        # in [] is never true; not_in [] is true for any present value
        return _leaf(test, "present", None) if op == "not_in" else FALSE
    return _leaf(test, op, value)


def bind(cond: Cond, as_of: dt.date) -> Node:
    """Fix every relative date in ``cond`` for ``as_of``; the structure is kept."""
    if isinstance(cond, Test):
        return _bind_test(cond, as_of)
    if isinstance(cond, All):
        return And(tuple(bind(c, as_of) for c in cond.items), cond)
    if isinstance(cond, Any_):
        return Or(tuple(bind(c, as_of) for c in cond.items), cond)
    return Neg(bind(cond.item, as_of), cond)


def to_nnf(node: Node, negate: bool = False) -> Node:
    """Negation normal form with constants folded away."""
    if isinstance(node, Const):
        return Const(node.value != negate)
    if isinstance(node, Leaf):
        return node.negate() if negate else node
    if isinstance(node, Neg):
        return to_nnf(node.item, not negate)
    children = [to_nnf(c, negate) for c in node.items]
    conj = isinstance(node, And) != negate
    absorbing, neutral = (False, True) if conj else (True, False)
    kept: list[Node] = []
    same = And if conj else Or
    for c in children:
        if isinstance(c, Const):
            if c.value == absorbing:
                return Const(absorbing)
            continue
        # (a and b) and c == a and b and c: flatter for durable-rules; duplicates dropped
        for item in c.items if isinstance(c, same) else (c,):
            if item not in kept:
                kept.append(item)
    if not kept:
        return Const(neutral)
    if len(kept) == 1:
        return kept[0]
    return And(tuple(kept)) if conj else Or(tuple(kept))


# ---------------------------------------------------------------- evaluation


def leaf_holds(leaf: Leaf, fact: Mapping[str, Any]) -> bool:
    value = fact.get(leaf.field)
    op = leaf.op
    if op == "missing":
        return value is None or value == []
    if op == "present":
        return not (value is None or value == [])
    if op in ("contains", "not_contains"):
        present = value is not None and leaf.value in value
        return present if op == "contains" else not present
    if value is None:
        return leaf.missing_result
    target = leaf.value
    if op == "eq":
        return bool(value == target)
    if op == "ne":
        return bool(value != target)
    if op == "lt":
        return bool(value < target)
    if op == "le":
        return bool(value <= target)
    if op == "gt":
        return bool(value > target)
    if op == "ge":
        return bool(value >= target)
    if op == "in":
        return value in target
    if op == "not_in":
        return value not in target
    raise ValueError(f"unknown operator {op}")


def evaluate(node: Node, fact: Mapping[str, Any]) -> bool:
    """The plain-Python evaluator: the oracle for the durable-rules results."""
    if isinstance(node, Leaf):
        return leaf_holds(node, fact)
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Neg):
        return not evaluate(node.item, fact)
    if isinstance(node, And):
        return all(evaluate(c, fact) for c in node.items)
    return any(evaluate(c, fact) for c in node.items)


def _leaf_predicate(leaf: Leaf) -> Callable[[Mapping[str, Any]], bool]:
    """A closure for one leaf, specialised for the common operators (same as leaf_holds)."""
    key, target, mr, op = leaf.field, leaf.value, leaf.missing_result, leaf.op
    if op == "eq":
        return lambda f: mr if (v := f.get(key)) is None else v == target
    if op == "lt":
        return lambda f: mr if (v := f.get(key)) is None else v < target
    if op == "ge":
        return lambda f: mr if (v := f.get(key)) is None else v >= target
    if op == "gt":
        return lambda f: mr if (v := f.get(key)) is None else v > target
    if op == "le":
        return lambda f: mr if (v := f.get(key)) is None else v <= target
    if op == "ne":
        return lambda f: mr if (v := f.get(key)) is None else v != target
    if op == "in":
        return lambda f: mr if (v := f.get(key)) is None else v in target
    if op == "not_in":
        return lambda f: mr if (v := f.get(key)) is None else v not in target
    if op == "missing":
        return lambda f: (v := f.get(key)) is None or v == []
    if op == "present":
        return lambda f: not ((v := f.get(key)) is None or v == [])
    return lambda fact: leaf_holds(leaf, fact)


def compile_predicate(node: Node) -> Callable[[Mapping[str, Any]], bool]:
    """A closure evaluating ``node`` (faster than walking the tree for every record)."""
    if isinstance(node, Const):
        v = node.value
        return lambda fact: v
    if isinstance(node, Leaf):
        return _leaf_predicate(node)
    if isinstance(node, Neg):
        inner = compile_predicate(node.item)
        return lambda fact: not inner(fact)
    parts = [compile_predicate(c) for c in node.items]
    if not parts:
        empty = isinstance(node, And)  # all([]) / any([])
        return lambda fact: empty
    # a chain of two-part closures: cheaper than all()/any() over a generator
    combined = parts[-1]
    for p in reversed(parts[:-1]):
        combined = _both(p, combined) if isinstance(node, And) else _either(p, combined)
    return combined


def _both(
    a: Callable[[Mapping[str, Any]], bool], b: Callable[[Mapping[str, Any]], bool]
) -> Callable[[Mapping[str, Any]], bool]:
    return lambda fact: a(fact) and b(fact)


def _either(
    a: Callable[[Mapping[str, Any]], bool], b: Callable[[Mapping[str, Any]], bool]
) -> Callable[[Mapping[str, Any]], bool]:
    return lambda fact: a(fact) or b(fact)


# ---------------------------------------------------------------- explanation


@dataclass
class Trace:
    """One line of an explanation: a condition, whether it held, and the value seen."""

    depth: int
    text: str
    result: bool
    seen: Any = None
    children: list[Trace] = field(default_factory=list)


def describe_test(test: Test) -> str:
    value = test.value
    if isinstance(value, tuple):
        shown = "[" + ", ".join(str(v) for v in value) + "]"
    elif value is None:
        shown = ""
    else:
        shown = str(value)
    text = f"{test.field} {test.op} {shown}".rstrip()
    if test.if_missing:
        text += " (if_missing: true)"
    return text


def explain(node: Node, fact: Mapping[str, Any], depth: int = 0) -> Trace:
    """Evaluate ``node`` (a bound tree) and keep every step with the values it saw."""
    if isinstance(node, Const):
        return Trace(depth, "altijd" if node.value else "nooit", node.value)
    if isinstance(node, Leaf):
        src = node.source
        text = describe_test(src) if src else f"{node.field} {node.op} {node.value}"
        return Trace(depth, text, leaf_holds(node, fact), display_value(fact.get(node.field)))
    if isinstance(node, Neg):
        inner = explain(node.item, fact, depth + 1)
        return Trace(depth, "niet", not inner.result, children=[inner])
    if isinstance(node, And) and isinstance(node.source, Test):
        # a relative date test bound to a range: show it as the one test it was
        parts = [explain(c, fact, depth + 1) for c in node.items]
        seen = display_value(fact.get(fact_key(node.source.field)))
        return Trace(depth, describe_test(node.source), all(p.result for p in parts), seen)
    kids = [explain(c, fact, depth + 1) for c in node.items]
    if isinstance(node, And):
        return Trace(depth, "alle", all(k.result for k in kids), children=kids)
    return Trace(depth, "een van", any(k.result for k in kids), children=kids)


def display_value(value: Any) -> Any:
    """Show day numbers as dates for people (values > 700000 are day numbers in facts)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 700_000:
        return dt.date.fromordinal(value).isoformat()
    return value


def fields_of(node: Node | Cond) -> set[str]:
    """The fact keys a bound node reads, or the rule fields a parsed condition names."""
    if isinstance(node, Leaf):
        return {node.field}
    if isinstance(node, Test):
        return {node.field}
    if isinstance(node, Const):
        return set()
    if isinstance(node, (Neg, Not)):
        return fields_of(node.item)
    out: set[str] = set()
    items: Sequence[Any] = node.items
    for c in items:
        out |= fields_of(c)
    return out
