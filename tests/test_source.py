"""The source database: schema derived from the contract, and reading cases back in the
in-memory shape of engine.language.casefile, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.casefile import CASE_SPEC, Field, Group, parse_case
from regiesignaal.engine.source.read import count_cases, get_case, iter_case_batches, load_staff
from regiesignaal.engine.source.tables import (
    CHILD_TABLES,
    case_values,
    cases,
    child_values,
    create_source_schema,
    staff,
    staff_values,
)

# --- a hypothesis strategy for raw cases, derived from the contract -----------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


def _scalar(spec: Field) -> st.SearchStrategy[Any]:
    if spec.type == "date":
        return st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31)).map(dt.date.isoformat)
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if spec.type == "enum":
        return st.sampled_from(spec.values)
    return _TEXT


def _object(specs: tuple[Field | Group, ...]) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for spec in specs:
        if isinstance(spec, Field):
            strat = _scalar(spec)
        elif spec.is_list:
            strat = st.lists(_object(spec.fields), max_size=3)
        else:
            strat = _object(spec.fields)
        (required if spec.required else optional)[spec.name] = strat
    return st.fixed_dictionaries(required, optional=optional)


_counter = itertools.count()
raw_cases = _object(CASE_SPEC).map(lambda c: {**c, "case_ref": f"H-{next(_counter):07d}"})


def _insert(engine: sa.Engine, raw_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert raw cases through the portable Core path; return them parsed."""
    parsed = [parse_case(raw) for raw in raw_list]
    if not parsed:
        return parsed
    with engine.begin() as conn:
        names = [c.name for c in cases.columns]
        conn.execute(
            cases.insert(), [dict(zip(names, case_values(c), strict=True)) for c in parsed]
        )
        for child in CHILD_TABLES:
            cols = [c.name for c in child.table.columns]
            rows = [
                dict(zip(cols, row, strict=True)) for c in parsed for row in child_values(child, c)
            ]
            if rows:
                conn.execute(child.table.insert(), rows)
    return parsed


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    create_source_schema(eng)
    yield eng
    eng.dispose()


# --- schema -------------------------------------------------------------------------


def test_schema_is_derived_from_the_contract_and_idempotent(engine: sa.Engine) -> None:
    create_source_schema(engine)  # second time: no error, no change
    insp = sa.inspect(engine)
    tables = set(insp.get_table_names())
    expected_children = {
        "interviews",
        "contacts",
        "medical_checks",
        "departure_wishes",
        "measures",
        "lko",
        "explanations",
    }
    assert tables == {"cases", "staff", *expected_children}
    case_cols = {c["name"] for c in insp.get_columns("cases")}
    for col in (
        "case_ref",
        "opened_on",
        "person_minor",
        "person_amv",
        "vertrekplan_strategy",
        "medical_signal_on",
        "medical_art64_until",
        "booking_departure_on",
        "booking_reception_checked_on",
    ):
        assert col in case_cols
    iv_cols = {c["name"] for c in insp.get_columns("interviews")}
    assert {"checked_medical", "checked_hardship", "checked_trafficking", "on"} <= iv_cols
    for child in expected_children:
        # the primary key (case_ref, position) is the index that serves case_ref IN (...)
        pk = insp.get_pk_constraint(child)["constrained_columns"]
        assert pk == ["case_ref", "position"]
    assert insp.get_pk_constraint("staff")["constrained_columns"] == ["id"]
    assert any(ix["column_names"] == ["status", "case_ref"] for ix in insp.get_indexes("cases"))


def test_source_metadata_is_separate_from_the_store() -> None:
    from regiesignaal.engine.store import tables as store

    assert cases.metadata is not store.metadata
    assert "cases" not in store.metadata.tables


# --- reading ------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=raw_cases)
def test_any_valid_case_reads_back_as_parse_case_gives_it(
    engine: sa.Engine, raw: dict[str, Any]
) -> None:
    (expected,) = _insert(engine, [raw])
    got = get_case(engine, raw["case_ref"])
    assert got == expected


def test_reading_gives_the_in_memory_shape(engine: sa.Engine) -> None:
    _insert(
        engine,
        [
            {
                "case_ref": "Z-1",
                "status": "open",
                "opened_on": "2026-01-05",
                "person": {"minor": False, "birth_year": 1990},
                "interviews": [
                    {"on": "2026-01-10", "kind": "vertrekgesprek"},
                    {"on": "2026-01-20", "checked": {"medical": True, "hardship": False}},
                ],
                "booking": {},
            }
        ],
    )
    case = get_case(engine, "Z-1")
    assert case is not None
    assert case["opened_on"] == dt.date(2026, 1, 5)
    assert case["person"] == {"minor": False, "birth_year": 1990}  # False kept, None omitted
    assert case["vertrekplan"] == {} and case["medical"] == {} and case["booking"] == {}
    assert case["contacts"] == [] and case["explanations"] == []
    assert case["interviews"] == [
        {"on": dt.date(2026, 1, 10), "kind": "vertrekgesprek", "checked": {}},
        {"on": dt.date(2026, 1, 20), "checked": {"medical": True, "hardship": False}},
    ]
    assert "source" not in case and "regievoerder" not in case
    assert get_case(engine, "Z-404") is None


def test_extra_top_level_fields_survive(engine: sa.Engine) -> None:
    raw = {
        "case_ref": "Z-2",
        "status": "open",
        "opened_on": "2026-01-05",
        "priority_note": {"level": 2, "tags": ["a", "b"]},
    }
    _insert(engine, [raw])
    case = get_case(engine, "Z-2")
    assert case is not None
    assert case["priority_note"] == {"level": 2, "tags": ["a", "b"]}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    statuses=st.lists(st.sampled_from(["open", "closed"]), min_size=0, max_size=40),
    batch_size=st.integers(min_value=1, max_value=15),
)
def test_batches_give_every_case_with_the_status_once_in_order(
    engine: sa.Engine, statuses: list[str], batch_size: int
) -> None:
    with engine.begin() as conn:
        for child in CHILD_TABLES:
            conn.execute(child.table.delete())
        conn.execute(cases.delete())
    raws: list[dict[str, Any]] = [
        {
            "case_ref": f"B-{i:03d}",
            "status": status,
            "opened_on": "2026-02-01",
            "contacts": [{"on": "2026-02-0" + str(1 + j)} for j in range(i % 3)],
        }
        for i, status in enumerate(statuses)
    ]
    # insert in a scrambled order: reading must still be ordered by case_ref
    _insert(engine, raws[1::2] + raws[::2])
    for status in ("open", "closed", None):
        batches = list(iter_case_batches(engine, batch_size=batch_size, status=status))
        refs = [c["case_ref"] for batch in batches for c in batch]
        expected = [r["case_ref"] for r in raws if status is None or r["status"] == status]
        assert refs == sorted(expected)
        assert all(0 < len(b) <= batch_size for b in batches)
        assert count_cases(engine, status=status) == len(expected)
        for batch in batches:
            for case in batch:
                i = int(case["case_ref"][2:])
                assert len(case["contacts"]) == i % 3
                assert [x["on"].day for x in case["contacts"]] == list(range(1, 1 + i % 3))


def test_batch_size_must_be_positive(engine: sa.Engine) -> None:
    with pytest.raises(ValueError):
        next(iter_case_batches(engine, batch_size=0))


def test_empty_database_gives_no_batches(engine: sa.Engine) -> None:
    assert list(iter_case_batches(engine)) == []
    assert count_cases(engine) == 0
    assert load_staff(engine) == {}


def test_load_staff_by_id_without_none(engine: sa.Engine) -> None:
    members = [
        {"id": "rv-0001", "name": "A B", "email": "rv-0001@x", "role": "regievoerder", "team": "t"},
        {"id": "bl-001", "name": "C D", "role": "beleid"},
    ]
    names = [c.name for c in staff.columns]
    with engine.begin() as conn:
        conn.execute(
            staff.insert(), [dict(zip(names, staff_values(m), strict=True)) for m in members]
        )
    assert load_staff(engine) == {"rv-0001": members[0], "bl-001": members[1]}
