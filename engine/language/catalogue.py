"""The field catalogue: every field a rule may name, with its type and Dutch description.

Case fields come from the case-file contract (``engine.language.casefile``): top-level
scalars and the scalars of the sub-objects, named with a dot (``person.amv``,
``booking.departure_on``). The
lists (``interviews``, ``contacts``, ...) are reached through derived fields, declared in
``rules/derived.yaml``. Records of a list have a catalogue of their own, used in a derived
field's ``where`` filter (``kind``, ``checked.medical``, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from regiesignaal.engine.language.casefile import CASE_SPEC, Field, Group

FieldType = Literal["str", "bool", "int", "date", "enum", "list"]

TYPE_NAMES_NL: dict[str, str] = {
    "str": "tekst",
    "bool": "ja/nee",
    "int": "getal",
    "date": "datum",
    "enum": "keuzelijst",
    "list": "lijst van teksten",
}


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: FieldType
    description: str
    values: tuple[str, ...] = ()
    origin: str = "zaak"  # zaak | afgeleid
    never_missing: bool = False  # counts and exists are always present


def _flatten(specs: Iterable[Field | Group], prefix: str) -> Iterable[FieldInfo]:
    for spec in specs:
        if isinstance(spec, Field):
            yield FieldInfo(prefix + spec.name, spec.type, spec.description, spec.values)
        elif not spec.is_list:
            yield from _flatten(spec.fields, f"{prefix}{spec.name}.")


def case_fields() -> dict[str, FieldInfo]:
    """The scalar case fields a rule may test directly."""
    return {f.name: f for f in _flatten(CASE_SPEC, "")}


def list_groups() -> dict[str, Group]:
    return {g.name: g for g in CASE_SPEC if isinstance(g, Group) and g.is_list}


def record_fields(group: str) -> dict[str, FieldInfo]:
    """The fields of one record in a list group (for ``where`` filters)."""
    return {f.name: f for f in _flatten(list_groups()[group].fields, "")}


def record_catalogue() -> list[tuple[str, FieldInfo]]:
    """(list, field) for every field of every list record: what a ``where`` filter in
    derived.yaml can test (``interviews``: ``kind``, ``checked.medical``, ...)."""
    return [(group, info) for group in list_groups() for info in record_fields(group).values()]


def suggest(name: str, known: Iterable[str]) -> str:
    """A Dutch hint naming the nearest known name, or empty."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"bedoelde je '{close[0]}'?" if close else ""


class Catalogue:
    """Case fields plus derived fields: what rule conditions are checked against."""

    def __init__(self, fields: Mapping[str, FieldInfo], broken: Iterable[str] = ()):
        self.fields = dict(fields)
        self.broken = frozenset(broken)  # derived fields declared with problems

    def get(self, name: str) -> FieldInfo | None:
        return self.fields.get(name)

    def suggest(self, name: str) -> str:
        return suggest(name, self.fields)

    def __iter__(self) -> Iterator[FieldInfo]:
        return iter(sorted(self.fields.values(), key=lambda f: (f.origin != "zaak", f.name)))
