"""Reading the source for a run: case index, case_ref ranges, whole cases, staff, counts.

The nightly run only reads the source. Reading (``read_case_range``, ``iter_case_batches``,
``get_case``) returns the in-memory shape of ``engine.language.casefile``: dates as
``datetime.date``, absent lists ``[]``, absent sub-objects ``{}``, None scalars omitted. It
uses Core selects and a precomputed row-to-record mapping (``tables.RecordShape``), not ORM
objects, and holds one batch (or one case_ref range) in memory at a time; with a
``SourceNeeds`` it selects only the tables and columns a rule set reads. A value stored as
NULL and an absent field read back the same: absent.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    func,
    select,
)
from sqlalchemy import case as sql_case
from sqlalchemy.exc import StatementError
from sqlalchemy.sql import ColumnElement

from regiesignaal.engine.language.casefile import CASE_SPEC, Group
from regiesignaal.engine.language.needs import SourceNeeds
from regiesignaal.engine.source.tables import (
    CASE_SHAPE,
    CHILD_TABLES,
    STAFF_SHAPE,
    ChildTable,
    RecordShape,
    cases,
    scalar_fields,
    shape_and_columns,
    staff,
)


@dataclass(frozen=True)
class ChildRead:
    """How one child table is read: its columns, then ``case_ref`` last (``row[-1]``)."""

    group: str
    table: Table
    columns: tuple[ColumnElement[Any], ...]
    build: Callable[[Sequence[Any]], dict[str, Any]]


@dataclass(frozen=True)
class ReadPlan:
    """What to select and how rows become cases, for one ``SourceNeeds`` (or everything).

    ``case_ref`` is the first case column; ``extra`` (top-level fields beyond the
    contract) is the last: the full plan takes all of it, a pruned plan only the keys in
    ``EXTRA_ALWAYS`` (the neutral location id every signal carries).
    """

    case_columns: tuple[ColumnElement[Any], ...]
    build_case: Callable[[Sequence[Any]], dict[str, Any]]
    with_extra: bool
    children: tuple[ChildRead, ...]
    extra_keys: frozenset[str] | None = None  # None: every key of ``extra``


def _child_read(child: ChildTable, shape: RecordShape) -> ChildRead:
    t = child.table
    columns = (*(t.c[name] for name in shape.columns), t.c.case_ref)
    return ChildRead(child.group, t, columns, shape.builder())


EXTRA_ALWAYS: frozenset[str] = frozenset({"location"})
"""Top-level fields beyond the contract that every run reads: the case's neutral location
id (``loc-...``), which signals carry for the team digest and the LKO agenda."""


@functools.cache
def read_plan(needs: SourceNeeds | None = None) -> ReadPlan:
    """The plan for reading cases with ``needs`` (``engine.language.needs``); None: whole cases.

    Raises ValueError when ``needs`` names a field the contract does not have.
    """
    if needs is None:
        return ReadPlan(
            (*(cases.c[name] for name in CASE_SHAPE.columns), cases.c.extra),
            CASE_SHAPE.builder(),
            True,
            tuple(_child_read(child, child.shape) for child in CHILD_TABLES),
        )
    unknown = needs.case - {".".join(path) for _, path in scalar_fields(CASE_SPEC)}
    if unknown or "case_ref" not in needs.case:
        raise ValueError(f"needs without case_ref or outside the contract: {sorted(unknown)}")
    shape, _ = shape_and_columns(CASE_SPEC, keep=needs.case)
    children = []
    for child in CHILD_TABLES:
        if child.group not in needs.groups():
            continue
        fields = needs.fields(child.group)
        group = next(g for g in CASE_SPEC if isinstance(g, Group) and g.name == child.group)
        unknown = fields - {".".join(path) for _, path in scalar_fields(group.fields)}
        if unknown:
            raise ValueError(f"needs outside the contract in {child.group}: {sorted(unknown)}")
        sub, _ = shape_and_columns(group.fields, keep=fields)
        children.append(_child_read(child, sub))
    return ReadPlan(
        (*(cases.c[name] for name in shape.columns), cases.c.extra),
        shape.builder(),
        True,
        tuple(children),
        EXTRA_ALWAYS,
    )


def _cases_from_rows(plan: ReadPlan, rows: Iterable[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """The in-memory cases (lists still empty) of case rows, keyed by case_ref."""
    build = plan.build_case
    groups = tuple(child.group for child in plan.children)
    batch: dict[str, dict[str, Any]] = {}
    for row in rows:
        case = build(row)
        if plan.with_extra:
            extra = row[-1]
            if extra:
                keys = plan.extra_keys
                for key, value in extra.items():
                    if keys is None or key in keys:
                        case.setdefault(key, value)
        for group in groups:
            case[group] = []
        batch[row[0]] = case
    return batch


def _attach_children(
    conn: Connection, plan: ReadPlan, batch: dict[str, dict[str, Any]], first: str, last: str
) -> None:
    """Fill the list groups of the cases in ``batch`` (keyed by case_ref), whose refs lie
    within ``first <= case_ref <= last``: one range query per child table (on its primary
    key), rows of cases not in the batch (a closed case in the range) skipped."""
    for child in plan.children:
        t = child.table
        stmt = (
            select(*child.columns)
            .where(t.c.case_ref >= first, t.c.case_ref <= last)
            .order_by(t.c.case_ref, t.c.position)
        )
        lists = {ref: case[child.group] for ref, case in batch.items()}
        build = child.build
        for row in conn.execute(stmt).all():  # fetchall: one row at a time costs double
            items = lists.get(row[-1])
            if items is not None:
                items.append(build(row))


def iter_case_batches(
    engine: Engine,
    batch_size: int = 2000,
    status: str | None = "open",
    needs: SourceNeeds | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the cases with ``status`` (all cases when None) in batches, ordered by case_ref.

    Keyset pagination on case_ref; per batch one query per child table. Memory is
    bounded by ``batch_size``. The cases have the in-memory shape of engine.language.casefile,
    restricted to ``needs`` when given (``engine.language.needs``; None: whole cases).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    plan = read_plan(needs)
    base = select(*plan.case_columns).order_by(cases.c.case_ref).limit(batch_size)
    if status is not None:
        base = base.where(cases.c.status == status)
    last: str | None = None
    with engine.connect() as conn:
        while True:
            stmt = base if last is None else base.where(cases.c.case_ref > last)
            rows = conn.execute(stmt).all()
            if not rows:
                return
            batch = _cases_from_rows(plan, rows)
            _attach_children(conn, plan, batch, rows[0][0], rows[-1][0])
            last = rows[-1][0]
            yield list(batch.values())
            if len(rows) < batch_size:
                return


def get_case(engine: Engine, case_ref: str) -> dict[str, Any] | None:
    """One case by reference, whatever its status (for ``explain``); None if unknown."""
    found = fetch_case_range(engine, case_ref, case_ref, status=None)
    return found[0] if found else None


def case_status(engine: Engine, case_ref: str) -> str | None:
    """The status of one case (``open``, ``closed``), None when the source lacks it."""
    stmt = select(cases.c.status).where(cases.c.case_ref == case_ref)
    with engine.connect() as conn:
        found = conn.execute(stmt).first()
    return None if found is None else str(found[0] or "")


def staff_exists(engine: Engine, staff_id: str) -> bool:
    """Whether the staff directory holds this id."""
    stmt = select(staff.c.id).where(staff.c.id == staff_id)
    with engine.connect() as conn:
        return conn.execute(stmt).first() is not None


def location_exists(engine: Engine, location: str) -> bool:
    """Whether some case in the source (any status) carries this neutral location id."""
    stmt = select(cases.c.case_ref).where(cases.c.extra["location"].as_string() == location)
    with engine.connect() as conn:
        return conn.execute(stmt.limit(1)).first() is not None


def count_cases(engine: Engine, status: str | None = "open") -> int:
    """The number of cases with ``status`` (all cases when None)."""
    stmt = select(func.count()).select_from(cases)
    if status is not None:
        stmt = stmt.where(cases.c.status == status)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _choice_fields() -> list[tuple[Table, list[tuple[str, str, tuple[str, ...]]]]]:
    """Per table with choice columns: (column, field as reported, the listed values)."""
    out = []
    case_fields = [
        ("_".join(path), ".".join(path), spec.values)
        for spec, path in scalar_fields(CASE_SPEC)
        if spec.type == "enum"
    ]
    if case_fields:
        out.append((cases, case_fields))
    for child in CHILD_TABLES:
        group = next(g for g in CASE_SPEC if isinstance(g, Group) and g.name == child.group)
        fields = [
            ("_".join(path), f"{child.group}[].{'.'.join(path)}", spec.values)
            for spec, path in scalar_fields(group.fields)
            if spec.type == "enum"
        ]
        if fields:
            out.append((child.table, fields))
    return out


CHOICE_FIELDS = _choice_fields()


def count_unknown_choices(
    engine: Engine, status: str | None = "open", exclude: Collection[str] = ()
) -> Counter[str]:
    """Per choice field (``contacts[].channel``), the number of non-null values outside its
    list over the cases with ``status`` (all when None), leaving out the cases in
    ``exclude`` (case_refs): one aggregate query per table with choice columns (plus one
    per table and 500 excluded refs). Fields without such values are absent. Gives what
    ``engine.language.casefile.unknown_choices`` counts over the same cases read whole."""
    counts: Counter[str] = Counter()
    left_out = sorted(exclude)
    with engine.connect() as conn:
        for table, fields in CHOICE_FIELDS:
            counts.update(_count_choices(conn, table, fields, status, None))
            for i in range(0, len(left_out), 500):
                chunk = left_out[i : i + 500]
                counts.subtract(_count_choices(conn, table, fields, status, chunk))
    return +counts


def _count_choices(
    conn: Connection,
    table: Table,
    fields: list[tuple[str, str, tuple[str, ...]]],
    status: str | None,
    refs: list[str] | None,
) -> dict[str, int]:
    stmt = select(
        *(func.count(sql_case((table.c[col].not_in(values), 1))) for col, _, values in fields)
    )
    if table is cases:
        stmt = stmt.select_from(cases)
        if status is not None:
            stmt = stmt.where(cases.c.status == status)
    elif status is not None:
        stmt = stmt.where(
            table.c.case_ref.in_(select(cases.c.case_ref).where(cases.c.status == status))
        )
    else:
        stmt = stmt.select_from(table)
    if refs is not None:
        stmt = stmt.where(table.c.case_ref.in_(refs))
    row = conn.execute(stmt).one()
    return {name: int(n) for (_, name, _), n in zip(fields, row, strict=True) if n}


def load_staff(engine: Engine) -> dict[str, dict[str, Any]]:
    """The staff directory by id, each member in the shape of ``parse_staff`` (no None)."""
    stmt = select(*(staff.c[name] for name in STAFF_SHAPE.columns)).order_by(staff.c.id)
    with engine.connect() as conn:
        members = [STAFF_SHAPE.to_record(row) for row in conn.execute(stmt).all()]
    return {m["id"]: m for m in members}


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


INDEX_STREAM_ROWS = 10_000
"""Rows of the case index fetched at a time by :func:`iter_case_index`."""


def iter_case_index(engine: Engine, status: str | None = "open") -> Iterator[tuple[str, Any]]:
    """(case_ref, regievoerder) of every case with ``status``, ordered by case_ref, streamed.

    Like :func:`case_index` but never holds the whole index: rows come
    ``INDEX_STREAM_ROWS`` at a time (a server-side cursor on PostgreSQL), so the run's
    main process stays flat however many cases there are (issue 11: 1,000,000 cases).
    """
    stmt = select(cases.c.case_ref, cases.c.regievoerder).order_by(cases.c.case_ref)
    if status is not None:
        stmt = stmt.where(cases.c.status == status)
    with engine.connect() as conn:
        for row in conn.execute(stmt.execution_options(yield_per=INDEX_STREAM_ROWS)):
            yield row[0], row[1]


def fetch_case_range(
    engine: Engine,
    first: str,
    last: str,
    status: str | None = "open",
    needs: SourceNeeds | None = None,
) -> list[dict[str, Any]]:
    """The cases with ``first <= case_ref <= last`` (and ``status``), complete with lists;
    restricted to ``needs`` when given (``engine.language.needs``; None: whole cases)."""
    plan = read_plan(needs)
    stmt = (
        select(*plan.case_columns)
        .where(cases.c.case_ref >= first, cases.c.case_ref <= last)
        .order_by(cases.c.case_ref)
    )
    if status is not None:
        stmt = stmt.where(cases.c.status == status)
    with engine.connect() as conn:
        batch = _cases_from_rows(plan, conn.execute(stmt))
        if batch:
            _attach_children(conn, plan, batch, first, last)
    return list(batch.values())


@dataclass
class RangeRead:
    """The readable cases of a case_ref range, and the refs that could not be read."""

    cases: list[dict[str, Any]]
    unreadable: dict[str, str]  # case_ref -> what went wrong (no values, only the kind)


def read_case_range(
    engine: Engine,
    first: str,
    last: str,
    status: str | None = "open",
    needs: SourceNeeds | None = None,
) -> RangeRead:
    """Like ``fetch_case_range``, but one broken record (say, an impossible date) costs only
    its own case: the range is then read case by case and the broken ones are named.

    With ``needs`` only the columns it names are read, so a broken value in a column the
    rules do not read no longer makes its case unreadable."""
    try:
        return RangeRead(fetch_case_range(engine, first, last, status, needs), {})
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
            out.cases.extend(fetch_case_range(engine, ref, ref, status, needs))
        except (ValueError, TypeError, OverflowError, StatementError) as exc:
            cause = getattr(exc, "orig", None) or exc
            out.unreadable[ref] = type(cause).__name__
    return out
