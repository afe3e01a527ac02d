"""The source's tables, derived from the case-file contract, and the rows to write into them.

It has its OWN MetaData, separate from the signal store (``engine.store.tables``), because
in production the source is someone else's database. The tables are derived from the
case-file contract (``engine.language.casefile.CASE_SPEC``) so that the contract lives in one
place:

- ``cases``: one row per case. The scalar fields of a case, plus the fields of the
  sub-objects flattened into ``<group>_<field>`` columns (``person_minor``,
  ``vertrekplan_strategy``, ``medical_signal_on``, ``booking_departure_on``). Fields a
  case carries beyond the contract (allowed at the top level) are kept as JSON in
  ``extra``; fields beyond the contract inside sub-objects or list items are not stored.
- one child table per list group (``interviews``, ``contacts``, ``medical_checks``,
  ``departure_wishes``, ``measures``, ``lko``, ``explanations``), primary key
  ``(case_ref, position)``: the key doubles as the index on ``case_ref`` and keeps the
  list order. Nested objects inside list items are flattened the same way
  (``interviews.checked_medical``).
- ``staff``: the staff directory.

``case_values``, ``child_values`` and ``staff_values`` turn a parsed case or staff record
into rows (``engine.source.load``); ``RecordShape`` maps rows back (``engine.source.read``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from regiesignaal.engine.language.casefile import CASE_SPEC, STAFF_SPEC, Field, Group

metadata = MetaData()


#: Maximum length of the keys case_ref and staff id, as in the signal store.
ID_LENGTH = 64


EMAIL_LENGTH = 320


def _column_type(spec: Field) -> TypeEngine[Any]:
    if spec.type == "date":
        return Date()
    if spec.type == "bool":
        return Boolean()
    if spec.type == "int":
        return Integer()
    if spec.type == "enum":
        # room for values the source system adds later (they load, see parse_case)
        return String(max(ID_LENGTH, *(len(v) for v in spec.values)))
    return Text()


@dataclass(frozen=True)
class Segment:
    """A run of adjacent columns that fill one dict: the record itself or a sub-object."""

    nested: str | None  # None: keys at the top level of the record; else the sub-object
    keys: tuple[str, ...]
    start: int  # position of the first column within the shape's columns
    end: int


@dataclass(frozen=True)
class RecordShape:
    """How a record (a case, a list item, a staff member) maps onto flat columns.

    Columns are named ``<field>`` or ``<object>_<field>`` for fields of nested objects
    (``person_minor``, ``checked_medical``); ``segments`` keeps adjacent columns
    together (one segment per dict to fill: the record itself or one nested object).
    """

    columns: tuple[str, ...]
    segments: tuple[Segment, ...]
    nested: tuple[str, ...]  # nested objects: always present in a record, maybe {}

    def to_record(self, row: Sequence[Any], offset: int = 0) -> dict[str, Any]:
        """The record for ``row[offset:offset + len(columns)]``, None values omitted."""
        return self.builder(offset)(row)

    def builder(self, offset: int = 0) -> Callable[[Sequence[Any]], dict[str, Any]]:
        """A function from a row to its record (as ``to_record``), made once per offset."""
        return _builder(self, offset)

    def to_values(self, record: Mapping[str, Any]) -> list[Any]:
        """The column values for ``record``, in column order (None where absent)."""
        values: list[Any] = []
        for seg in self.segments:
            source = record if seg.nested is None else (record.get(seg.nested) or {})
            values.extend(source.get(k) for k in seg.keys)
        return values


@functools.cache
def _builder(shape: RecordShape, offset: int) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Generated code for ``RecordShape.to_record``: one ``if`` per column, no loop, no
    intermediate dict (three times faster than a dict comprehension per segment; the
    reader turns some 20 rows per case into records). Only names from the contract
    (``CASE_SPEC``) go into the code, as literals; no value from a database does."""
    lines = ["def build(row):", "    record = {}"]
    for seg in shape.segments:
        target = "record"
        if seg.nested is not None:
            target = "part"
            lines.append("    part = {}")
        for i, key in enumerate(seg.keys):
            lines.append(f"    value = row[{offset + seg.start + i}]")
            lines.append(f"    if value is not None: {target}[{key!r}] = value")
        if seg.nested is not None:
            lines.append(f"    record[{seg.nested!r}] = part")
    for name in shape.nested:  # a nested object without columns read: still {}
        if name not in {seg.nested for seg in shape.segments}:
            lines.append(f"    record[{name!r}] = {{}}")
    lines.append("    return record")
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)  # only contract names, see the docstring
    return cast(Callable[[Sequence[Any]], dict[str, Any]], namespace["build"])


def scalar_fields(
    specs: Sequence[Field | Group], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[Field, tuple[str, ...]]]:
    """Yield each scalar field with its key path, descending into nested objects."""
    for spec in specs:
        if isinstance(spec, Field):
            yield spec, (*prefix, spec.name)
        elif not spec.is_list:
            yield from scalar_fields(spec.fields, (*prefix, spec.name))


def shape_and_columns(
    specs: Sequence[Field | Group],
    keys: Mapping[str, Column[Any]] | None = None,
    keep: Collection[str] | None = None,
) -> tuple[RecordShape, list[Column[Any]]]:
    """The shape of a record and its columns; ``keys`` replaces columns by name; with
    ``keep`` (dotted field names, ``person.amv``) only those fields are in the shape."""
    keys = keys or {}
    names: list[str] = []
    columns: list[Column[Any]] = []
    segments: list[Segment] = []
    for spec, path in scalar_fields(specs):
        if keep is not None and ".".join(path) not in keep:
            continue
        name = "_".join(path)
        nested = path[0] if len(path) > 1 else None
        index = len(names)
        names.append(name)
        if name in keys:
            columns.append(keys[name])
        else:
            columns.append(Column(name, _column_type(spec), nullable=not spec.required))
        last = segments[-1] if segments else None
        if last is not None and last.nested == nested:
            segments[-1] = Segment(nested, (*last.keys, path[-1]), last.start, index + 1)
        else:
            segments.append(Segment(nested, (path[-1],), index, index + 1))
    nested_names = tuple(
        g.name
        for g in specs
        if isinstance(g, Group)
        and not g.is_list
        and (keep is None or any(seg.nested == g.name for seg in segments))
    )
    return RecordShape(tuple(names), tuple(segments), nested_names), columns


CASE_SHAPE, _case_columns = shape_and_columns(
    CASE_SPEC, {"case_ref": Column("case_ref", String(ID_LENGTH), primary_key=True)}
)


_CONTRACT_KEYS = frozenset(spec.name for spec in CASE_SPEC)


cases = Table(
    "cases",
    metadata,
    *_case_columns,
    Column("extra", JSON(none_as_null=True)),  # top-level fields beyond the contract
    Index("ix_cases_status_ref", "status", "case_ref"),
    Index("ix_cases_regievoerder", "regievoerder"),
)


@dataclass(frozen=True)
class ChildTable:
    """The table of one list group; columns: case_ref, position, then the item's shape."""

    group: str
    table: Table
    shape: RecordShape


def _child_table(group: Group) -> ChildTable:
    shape, columns = shape_and_columns(group.fields)
    table = Table(
        group.name,
        metadata,
        Column(
            "case_ref",
            String(ID_LENGTH),
            ForeignKey("cases.case_ref", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("position", Integer, primary_key=True, autoincrement=False),
        *columns,
    )
    return ChildTable(group.name, table, shape)


#: One child table per list group of the contract, in contract order.
CHILD_TABLES: tuple[ChildTable, ...] = tuple(
    _child_table(g) for g in CASE_SPEC if isinstance(g, Group) and g.is_list
)


STAFF_SHAPE, _staff_columns = shape_and_columns(
    STAFF_SPEC,
    {
        "id": Column("id", String(ID_LENGTH), primary_key=True),
        "email": Column("email", String(EMAIL_LENGTH)),
    },
)


staff = Table("staff", metadata, *_staff_columns)


def create_source_schema(engine: Engine) -> None:
    """Create the source tables if they do not exist yet (idempotent)."""
    metadata.create_all(engine)


def case_values(case: Mapping[str, Any]) -> list[Any]:
    """The ``cases`` column values for an in-memory case, in table column order."""
    values = CASE_SHAPE.to_values(case)
    extra = {k: v for k, v in case.items() if k not in _CONTRACT_KEYS}
    values.append(extra or None)
    return values


def child_values(child: ChildTable, case: Mapping[str, Any]) -> list[list[Any]]:
    """The rows of one child table for an in-memory case, in table column order."""
    ref = case["case_ref"]
    to_values = child.shape.to_values
    return [
        [ref, position, *to_values(item)]
        for position, item in enumerate(case.get(child.group) or [])
    ]


def staff_values(member: Mapping[str, Any]) -> list[Any]:
    """The ``staff`` column values for a parsed staff member, in table column order."""
    return STAFF_SHAPE.to_values(member)
