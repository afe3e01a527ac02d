"""From a case plan to one flat fact: its own fields plus the derived fields, as of one date.

A fact carries only the fields the compiled rules read. Dates become day numbers
(``date.toordinal()``), nested fields are flattened (``person.amv`` -> ``person__amv``),
empty values are left out (that is what "missing" means), and list-valued derived fields are
left out when empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from regiesignaal.engine.language.casefile import RECORD_DATE, parse_reason
from regiesignaal.engine.language.compiled import CompiledDerived, CompiledRuleSet
from regiesignaal.engine.language.conditions import fact_key


def _plain_value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.toordinal()
    return value


# Dates that record something done (a check, a request, a reassessment). One that lies after
# the as-of date is not done yet and counts as missing, as records dated after the as-of date
# do in derived fields; planned dates (departure, term end, art. 64 end) are kept.
EVENT_DATES: frozenset[str] = frozenset(
    {
        "vertrekplan.updated_on",
        "vertrekplan.strategy_updated_on",
        "medical.signal_on",
        "medical.bma_requested_on",
        "medical.bma_advice_on",
        "medical.no_action_recorded_on",
        "medical.art64_reassessed_on",
        "booking.removability_checked_on",
        "booking.reception_checked_on",
    }
)
# The same for dates inside list records (beside the record's own date, RECORD_DATE).
RECORD_EVENT_DATES: dict[str, tuple[str, ...]] = {"departure_wishes": ("explored_on",)}


def _get(case: Mapping[str, Any], dotted: str, as_of: dt.date | None = None) -> Any:
    head, _, rest = dotted.partition(".")
    value = case.get(head)
    if rest:
        value = value.get(rest) if isinstance(value, Mapping) else None
    if as_of is not None and dotted in EVENT_DATES and isinstance(value, dt.date):
        return None if value > as_of else value
    return value


def flatten_record(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A list record in fact form, for ``where`` filters (``checked.medical`` -> key)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            out.update(flatten_record(value, f"{prefix}{key}__"))
        elif value is not None:
            out[prefix + key] = _plain_value(value)
    return out


def _records(
    case: Mapping[str, Any],
    group: str,
    spec: CompiledDerived,
    cache: dict[str, list[dict[str, Any]]],
    as_of: dt.date | None,
) -> list[dict[str, Any]]:
    flat = cache.get(group)
    if flat is None:
        records = case.get(group) or ()
        date_field = RECORD_DATE.get(group)
        if as_of is not None and date_field:
            records = [r for r in records if not (r.get(date_field) and r[date_field] > as_of)]
        later = RECORD_EVENT_DATES.get(group, ()) if as_of is not None else ()
        if later:
            records = [
                {k: v for k, v in r.items() if not (k in later and v and v > as_of)}
                for r in records
            ]
        flat = cache[group] = [flatten_record(r) for r in records]
    if spec.where is None:
        return flat
    return [r for r in flat if spec.where(r)]


def derive(
    case: Mapping[str, Any],
    spec: CompiledDerived,
    cache: dict[str, list[dict[str, Any]]] | None = None,
    as_of: dt.date | None = None,
) -> Any:
    """The value of one derived field for one case (None when there is none).

    With ``as_of``, records dated after it (``RECORD_DATE``) do not count: a planned
    interview is not an interview yet. ``cache`` keeps the flattened records of a case
    between its derived fields (for one as-of date).
    """
    cache = {} if cache is None else cache
    d = spec.field
    if d.kind == "days_between":
        raise ValueError("days_between is computed by build_fact (it reads other fields)")
    if d.kind in ("count", "exists"):
        group = d.sources[0][0]
        n = len(_records(case, group, spec, cache, as_of))
        return n if d.kind == "count" else n > 0
    values = []
    for group, name in d.sources:
        key = fact_key(name)
        for rec in _records(case, group, spec, cache, as_of):
            v = rec.get(key)
            if v is not None:
                values.append(v)
    if d.kind == "values":
        return sorted(set(values))
    if values:
        return max(values) if d.kind == "latest" else min(values)
    if d.otherwise:
        return _plain_value(_get(case, d.otherwise, as_of))
    return None


_SCALARS = (str, bool, int, float)
_COUNT, _LATEST, _EARLIEST, _VALUES = range(4)
_KINDS = {"count": _COUNT, "exists": _COUNT, "latest": _LATEST, "earliest": _EARLIEST}


def _heads(key: str) -> list[str]:
    """The flat-key prefixes a nested record value can come from (``a__b__c`` -> a, a__b)."""
    parts = key.split("__")
    return ["__".join(parts[:i]) for i in range(1, len(parts))]


class _GroupPlan:
    """What the derived fields read from one list group, precompiled for a rule set.

    ``needed`` holds the flat record keys any of its derived fields reads (in ``where`` or
    as the value); a record becomes one small dict of just those keys (dates as day
    numbers), the same values ``flatten_record`` gives for them, in one pass.
    """

    def __init__(
        self,
        group: str,
        as_of: dt.date,
        tasks: list[tuple[int, int, Callable[[Mapping[str, Any]], bool] | None, str]],
        needed: set[str],
    ):
        self.group = group
        self.as_of = as_of
        self.date_field = RECORD_DATE.get(group)
        self.later = frozenset(RECORD_EVENT_DATES.get(group, ()))
        self.tasks = tasks  # (slot, kind, where, value key or "")
        self.needed = frozenset(needed)
        self.heads = frozenset(h for k in needed for h in _heads(k))

    def _nested(self, value: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
        for k, v in value.items():
            fk = prefix + k
            if type(v) in _SCALARS:
                if fk in self.needed:
                    out[fk] = v
            elif isinstance(v, Mapping):
                if fk in self.heads:
                    self._nested(v, fk + "__", out)
            elif v is not None and fk in self.needed:
                out[fk] = _plain_value(v)

    def lean(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``flatten_record(record)`` restricted to ``needed`` (after the as-of rules)."""
        out: dict[str, Any] = {}
        needed, heads, later, as_of = self.needed, self.heads, self.later, self.as_of
        for k, v in record.items():
            if later and k in later and v and v > as_of:
                continue  # done after the as-of date: not done yet
            if v is None or not (k in needed or k in heads):
                continue
            t = type(v)
            if t is dt.date:
                if k in needed:
                    out[k] = v.toordinal()
            elif t in _SCALARS:
                if k in needed:
                    out[k] = v
            elif isinstance(v, Mapping):
                if k in heads:
                    self._nested(v, k + "__", out)
            elif k in needed:
                out[k] = _plain_value(v)
        return out

    def run(self, case: Mapping[str, Any], acc: list[Any]) -> None:
        """Add this group's records of ``case`` to the accumulators ``acc`` (by slot)."""
        records = case.get(self.group) or ()
        date_field, as_of, tasks = self.date_field, self.as_of, self.tasks
        lean = self.lean if (self.needed or self.heads) else None
        empty: dict[str, Any] = {}
        for r in records:
            if date_field:
                d = r.get(date_field)
                if d and d > as_of:
                    continue  # planned, not done yet
            f = lean(r) if lean is not None else empty
            for slot, kind, where, key in tasks:
                if where is not None and not where(f):
                    continue
                if kind == _COUNT:
                    acc[slot] += 1
                    continue
                v = f.get(key)
                if v is None:
                    continue
                if kind == _VALUES:
                    acc[slot].add(v)
                elif (cur := acc[slot]) is None or (cur < v if kind == _LATEST else v < cur):
                    acc[slot] = v


class FactBuilder:
    """Builds facts for one compiled rule set; what to read is worked out once here.

    Per list group: the records dated after the as-of date are skipped once, each record
    is read once into a dict of only the keys some derived field reads, and all derived
    fields of the group are computed in that one pass. The result equals
    :func:`build_fact_reference`.
    """

    def __init__(self, compiled: CompiledRuleSet):
        self.compiled = compiled
        self.as_of = compiled.as_of
        # case fields by their head (``person.amv`` -> person): (head, [(key, rest, event)])
        by_head: dict[str, list[tuple[str, str, bool]]] = {}
        for name in compiled.case_fields:
            head, _, rest = name.partition(".")
            by_head.setdefault(head, []).append((fact_key(name), rest, name in EVENT_DATES))
        self.case_fields = list(by_head.items())
        self.specs: list[tuple[int, CompiledDerived]] = []  # (slot, spec), fact order
        # days_between: (name, start, end); each end (True, derived name) or (False, case
        # field, head, rest, event date)
        self.between: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]] = []
        tasks: dict[str, list[tuple[int, int, Any, str]]] = {}
        needed: dict[str, set[str]] = {}
        for spec in compiled.derived:
            d = spec.field
            if d.kind == "days_between":
                (_, start), (_, end) = d.sources
                self.between.append((d.name, self._end(start), self._end(end)))
                continue
            slot = len(self.specs)
            self.specs.append((slot, spec))
            kind = _KINDS.get(d.kind, _VALUES)
            for group, name in d.sources[:1] if kind == _COUNT else d.sources:
                key = "" if kind == _COUNT else fact_key(name)
                tasks.setdefault(group, []).append((slot, kind, spec.where, key))
                keys = needed.setdefault(group, set())
                keys |= spec.where_fields | ({key} if key else set())
        self.groups = [
            _GroupPlan(group, self.as_of, tasks[group], needed[group]) for group in tasks
        ]
        # the accumulator each derived field starts from: a count, a best date or a set
        self.initial: list[Any] = []
        for _, spec in self.specs:
            kind = _KINDS.get(spec.field.kind, _VALUES)
            self.initial.append(set() if kind == _VALUES else 0 if kind == _COUNT else None)

    def _end(self, name: str) -> tuple[Any, ...]:
        if name in self.compiled.derived_names:
            return (True, name)
        head, _, rest = name.partition(".")
        return (False, name, head, rest, name in EVENT_DATES)

    def _date(self, case: Mapping[str, Any], end: tuple[Any, ...]) -> Any:
        """A case field as ``_plain_value(_get(case, name, as_of))`` gives it."""
        _, _, head, rest, event = end
        value = case.get(head)
        if rest:
            if value is None or not (type(value) is dict or isinstance(value, Mapping)):
                return None
            value = value.get(rest)
        if isinstance(value, dt.date):
            return None if event and value > self.as_of else value.toordinal()
        return value

    def build(self, case: Mapping[str, Any]) -> dict[str, Any]:
        """The fact of ``case`` (see :func:`build_fact`)."""
        as_of = self.as_of
        fact: dict[str, Any] = {"t": "case", "sid": str(case["case_ref"])}
        value: Any
        for head, fields in self.case_fields:
            obj = case.get(head)
            for key, rest, event in fields:
                if rest:
                    if obj is None or not (type(obj) is dict or isinstance(obj, Mapping)):
                        continue
                    value = obj.get(rest)
                else:
                    value = obj
                if value is None:
                    continue
                if type(value) in _SCALARS:
                    fact[key] = value
                elif isinstance(value, dt.date):
                    if not (event and value > as_of):
                        fact[key] = value.toordinal()
                else:
                    fact[key] = value
        acc = [set() if type(a) is set else a for a in self.initial]
        for plan in self.groups:
            plan.run(case, acc)
        for slot, spec in self.specs:
            d = spec.field
            value = acc[slot]
            if d.kind == "exists":
                value = value > 0
            elif d.kind == "values":
                if not value:
                    continue
                value = sorted(value)
            elif value is None and d.kind != "count":
                if not d.otherwise:
                    continue
                value = _plain_value(_get(case, d.otherwise, as_of))
                if value is None:
                    continue
            fact[d.name] = value
        for name, start, end in self.between:  # after the latest/earliest fields they read
            a = fact.get(start[1]) if start[0] else self._date(case, start)
            if a is None:
                continue
            b = fact.get(end[1]) if end[0] else self._date(case, end)
            if b is not None:
                fact[name] = b - a
        return fact


def build_fact(case: Mapping[str, Any], compiled: CompiledRuleSet) -> dict[str, Any]:
    """The flat fact of ``case`` for ``compiled``: ``{"t": "case", "sid": case_ref, ...}``
    with the case fields and derived fields the rules read (dates as day numbers, missing
    values left out). Equal to :func:`build_fact_reference`; computed by the
    :class:`FactBuilder` compiled once per rule set."""
    builder = compiled.memo.get("fact_builder")
    if builder is None:
        builder = compiled.memo["fact_builder"] = FactBuilder(compiled)
    return builder.build(case)


def build_fact_reference(case: Mapping[str, Any], compiled: CompiledRuleSet) -> dict[str, Any]:
    """The fact of ``case``, computed the straightforward way (one derived field at a time,
    every record flattened): the definition :func:`build_fact` must agree with exactly
    (property-tested in ``tests/test_fast_facts.py``)."""
    fact: dict[str, Any] = {"t": "case", "sid": str(case["case_ref"])}
    as_of = compiled.as_of
    for name in compiled.case_fields:
        value = _get(case, name, as_of)
        if value is not None:
            fact[fact_key(name)] = _plain_value(value)
    cache: dict[str, list[dict[str, Any]]] = {}
    later = []
    for spec in compiled.derived:
        if spec.field.kind == "days_between":
            later.append(spec)
            continue
        value = derive(case, spec, cache, as_of)
        if value is None or value == []:
            continue
        fact[spec.field.name] = value
    for spec in later:  # after the latest/earliest fields they may read
        ends = []
        for _, name in spec.field.sources:
            if name in compiled.derived_names:
                ends.append(fact.get(name))
            else:
                ends.append(_plain_value(_get(case, name, as_of)))
        if ends[0] is not None and ends[1] is not None:
            fact[spec.field.name] = ends[1] - ends[0]
    return fact


def explained_until(case: Mapping[str, Any], rule_id: str, as_of: dt.date) -> dt.date | None:
    """The latest end date of a case's explanations for ``rule_id`` still valid on as_of."""
    ends = [
        e["until"]
        for e in case.get("explanations") or []
        if e.get("rule") == rule_id and e.get("until") and e["until"] >= as_of
    ]
    return max(ends) if ends else None


def explained_by(case: Mapping[str, Any], rule_id: str, as_of: dt.date) -> str | None:
    """The staff id (``by``) of the explanation :func:`explained_until` gives, if any."""
    valid = [
        e
        for e in case.get("explanations") or []
        if e.get("rule") == rule_id and e.get("until") and e["until"] >= as_of
    ]
    if not valid:
        return None
    by = max(valid, key=lambda e: e["until"]).get("by")
    return str(by) if by else None


def explained_reason(case: Mapping[str, Any], rule_id: str, as_of: dt.date) -> str | None:
    """The reason code (``casefile.EXPLANATION_REASONS``) of the explanation
    :func:`explained_until` gives, if any."""
    valid = [
        e
        for e in case.get("explanations") or []
        if e.get("rule") == rule_id and e.get("until") and e["until"] >= as_of
    ]
    if not valid:
        return None
    return parse_reason(str(max(valid, key=lambda e: e["until"]).get("reason") or ""))[0]


def explanation_rule_refs(case: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(position from 1, rule id as written) of each explanation in a case."""
    return [
        (i, str(e.get("rule")))
        for i, e in enumerate(case.get("explanations") or [], start=1)
        if isinstance(e, Mapping) and e.get("rule") is not None
    ]
