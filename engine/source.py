"""The source database: case plans and the staff directory, in tables.

The nightly run only reads it; we create it for the embedded default and for tests
(``fixtures.loader`` fills it from JSONL). It has its OWN MetaData, separate from the
signal store (``engine.store``), because in production it is someone else's database.

The tables are derived from the case-file contract (``engine.casefile.CASE_SPEC``) so
that the contract lives in one place:

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

Reading (``iter_case_batches``, ``get_case``) returns the in-memory shape of
``engine.casefile``: dates as ``datetime.date``, absent lists ``[]``, absent
sub-objects ``{}``, None scalars omitted. It uses Core selects and a precomputed
row-to-record mapping (``RecordShape``), not ORM objects, and holds one batch in memory
at a time. A value stored as NULL and an absent field read back the same: absent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.exc import StatementError
from sqlalchemy.types import TypeEngine

from engine.casefile import CASE_SPEC, STAFF_SPEC, Field, Group

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
    together so a row turns into a record with one dict comprehension per segment.
    """

    columns: tuple[str, ...]
    segments: tuple[Segment, ...]
    nested: tuple[str, ...]  # nested objects: always present in a record, maybe {}

    def to_record(self, row: Sequence[Any], offset: int = 0) -> dict[str, Any]:
        """The record for ``row[offset:offset + len(columns)]``, None values omitted."""
        if len(self.segments) == 1 and not self.nested:  # a flat record: the common case
            values = row[offset : offset + len(self.columns)]
            return {k: v for k, v in zip(self.columns, values, strict=True) if v is not None}
        record: dict[str, Any] = {}
        for seg in self.segments:
            values = row[offset + seg.start : offset + seg.end]
            part = {k: v for k, v in zip(seg.keys, values, strict=True) if v is not None}
            if seg.nested is None:
                record.update(part)
            else:
                record[seg.nested] = part
        return record

    def to_values(self, record: Mapping[str, Any]) -> list[Any]:
        """The column values for ``record``, in column order (None where absent)."""
        values: list[Any] = []
        for seg in self.segments:
            source = record if seg.nested is None else (record.get(seg.nested) or {})
            values.extend(source.get(k) for k in seg.keys)
        return values


def _flatten(
    specs: Sequence[Field | Group], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[Field, tuple[str, ...]]]:
    """Yield each scalar field with its key path, descending into nested objects."""
    for spec in specs:
        if isinstance(spec, Field):
            yield spec, (*prefix, spec.name)
        elif not spec.is_list:
            yield from _flatten(spec.fields, (*prefix, spec.name))


def _shape_and_columns(
    specs: Sequence[Field | Group], keys: Mapping[str, Column[Any]] | None = None
) -> tuple[RecordShape, list[Column[Any]]]:
    """The shape of a record and its columns; ``keys`` replaces columns by name."""
    keys = keys or {}
    names: list[str] = []
    columns: list[Column[Any]] = []
    segments: list[Segment] = []
    for spec, path in _flatten(specs):
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
    nested_names = tuple(g.name for g in specs if isinstance(g, Group) and not g.is_list)
    return RecordShape(tuple(names), tuple(segments), nested_names), columns


CASE_SHAPE, _case_columns = _shape_and_columns(
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
    shape, columns = _shape_and_columns(group.fields)
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

STAFF_SHAPE, _staff_columns = _shape_and_columns(
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


# --- reading ------------------------------------------------------------------------


def _case_select() -> Any:
    return select(*(cases.c[name] for name in CASE_SHAPE.columns), cases.c.extra)


def _case_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """The in-memory case (lists still missing) from a row of ``_case_select``."""
    case = CASE_SHAPE.to_record(row)
    extra = row[-1]
    if extra:
        for key, value in extra.items():
            case.setdefault(key, value)
    return case


def _attach_children(conn: Connection, batch: dict[str, dict[str, Any]]) -> None:
    """Fill the list groups of the cases in ``batch`` (keyed by case_ref)."""
    refs = list(batch)
    for case in batch.values():
        for child in CHILD_TABLES:
            case[child.group] = []
    for child in CHILD_TABLES:
        t = child.table
        stmt = (
            select(t.c.case_ref, *(t.c[name] for name in child.shape.columns))
            .where(t.c.case_ref.in_(refs))
            .order_by(t.c.case_ref, t.c.position)
        )
        group, to_record = child.group, child.shape.to_record
        for row in conn.execute(stmt).all():
            batch[row[0]][group].append(to_record(row, 1))


def iter_case_batches(
    engine: Engine, batch_size: int = 2000, status: str | None = "open"
) -> Iterator[list[dict[str, Any]]]:
    """Yield the cases with ``status`` (all cases when None) in batches, ordered by case_ref.

    Keyset pagination on case_ref; per batch one query per child table. Memory is
    bounded by ``batch_size``. The cases have the in-memory shape of engine.casefile.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    base = _case_select().order_by(cases.c.case_ref).limit(batch_size)
    if status is not None:
        base = base.where(cases.c.status == status)
    last: str | None = None
    with engine.connect() as conn:
        while True:
            stmt = base if last is None else base.where(cases.c.case_ref > last)
            rows = conn.execute(stmt).all()
            if not rows:
                return
            batch = {row[0]: _case_from_row(row) for row in rows}
            _attach_children(conn, batch)
            last = rows[-1][0]
            yield list(batch.values())
            if len(rows) < batch_size:
                return


def get_case(engine: Engine, case_ref: str) -> dict[str, Any] | None:
    """One case by reference, whatever its status (for ``explain``); None if unknown."""
    with engine.connect() as conn:
        row = conn.execute(_case_select().where(cases.c.case_ref == case_ref)).first()
        if row is None:
            return None
        batch = {row[0]: _case_from_row(row)}
        _attach_children(conn, batch)
        return batch[case_ref]


def count_cases(engine: Engine, status: str | None = "open") -> int:
    """The number of cases with ``status`` (all cases when None)."""
    stmt = select(func.count()).select_from(cases)
    if status is not None:
        stmt = stmt.where(cases.c.status == status)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def load_staff(engine: Engine) -> dict[str, dict[str, Any]]:
    """The staff directory by id, each member in the shape of ``parse_staff`` (no None)."""
    stmt = select(*(staff.c[name] for name in STAFF_SHAPE.columns)).order_by(staff.c.id)
    with engine.connect() as conn:
        members = [STAFF_SHAPE.to_record(row) for row in conn.execute(stmt).all()]
    return {m["id"]: m for m in members}


# --- writing (used by fixtures.loader) -------------------------------------------------


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


def case_index(engine: Engine, status: str | None = "open") -> list[tuple[str, Any, Any]]:
    """(case_ref, regievoerder, team) of every case with ``status``, ordered by case_ref.

    Small rows only: the pipeline uses it to split the work into case_ref ranges that
    worker processes read themselves, and to know which cases are open.
    """
    stmt = select(cases.c.case_ref, cases.c.regievoerder, cases.c.team).order_by(cases.c.case_ref)
    if status is not None:
        stmt = stmt.where(cases.c.status == status)
    with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(stmt)]


def fetch_case_range(
    engine: Engine, first: str, last: str, status: str | None = "open"
) -> list[dict[str, Any]]:
    """The cases with ``first <= case_ref <= last`` (and ``status``), complete with lists."""
    stmt = (
        _case_select()
        .where(cases.c.case_ref >= first, cases.c.case_ref <= last)
        .order_by(cases.c.case_ref)
    )
    if status is not None:
        stmt = stmt.where(cases.c.status == status)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        batch = {row[0]: _case_from_row(row) for row in rows}
        if batch:
            _attach_children(conn, batch)
    return list(batch.values())


@dataclass
class RangeRead:
    """The readable cases of a case_ref range, and the refs that could not be read."""

    cases: list[dict[str, Any]]
    unreadable: dict[str, str]  # case_ref -> what went wrong (no values, only the kind)


def read_case_range(
    engine: Engine, first: str, last: str, status: str | None = "open"
) -> RangeRead:
    """Like ``fetch_case_range``, but one broken record (say, an impossible date) costs only
    its own case: the range is then read case by case and the broken ones are named."""
    try:
        return RangeRead(fetch_case_range(engine, first, last, status), {})
    except (ValueError, TypeError, OverflowError, StatementError):
        pass
    stmt = select(cases.c.case_ref).where(cases.c.case_ref >= first, cases.c.case_ref <= last)
    if status is not None:
        stmt = stmt.where(cases.c.status == status)
    with engine.connect() as conn:
        refs = [r[0] for r in conn.execute(stmt.order_by(cases.c.case_ref))]
    out = RangeRead([], {})
    for ref in refs:
        try:
            out.cases.extend(fetch_case_range(engine, ref, ref, status))
        except (ValueError, TypeError, OverflowError, StatementError) as exc:
            cause = getattr(exc, "orig", None) or exc
            out.unreadable[ref] = type(cause).__name__
    return out
