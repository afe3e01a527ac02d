"""From a case plan to one flat fact: its own fields plus the derived fields, as of one date.

A fact carries only the fields the compiled rules read. Dates become day numbers
(``date.toordinal()``), nested fields are flattened (``person.amv`` -> ``person__amv``),
empty values are left out (that is what "missing" means), and list-valued derived fields are
left out when empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from engine.casefile import RECORD_DATE
from engine.compiler import CompiledDerived, CompiledRuleSet
from engine.conditions import fact_key


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


def build_fact(case: Mapping[str, Any], compiled: CompiledRuleSet) -> dict[str, Any]:
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


def explanation_rule_refs(case: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(position from 1, rule id as written) of each explanation in a case."""
    return [
        (i, str(e.get("rule")))
        for i, e in enumerate(case.get("explanations") or [], start=1)
        if isinstance(e, Mapping) and e.get("rule") is not None
    ]
