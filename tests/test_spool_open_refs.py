"""The run never holds every open case (issue 11, 1,000,000 cases): the case index is
streamed into case_ref ranges, each range's open refs go to the spool, and reconcile asks
for them range by range."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from regiesignaal.engine.evaluate import evaluate_source
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Hit, Upcoming
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.source.read import case_index
from regiesignaal.engine.spool import CaseBonus, HitSpool
from regiesignaal.fixtures.generator import generate
from regiesignaal.notifications.case_manager import bonuses_of

ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("source")
    cases, staff = folder / "cases.jsonl", folder / "staff.jsonl"
    generate(90, 3, AS_OF, cases, staff)
    engine = sa.create_engine(f"sqlite:///{folder / 'source.sqlite'}")
    assert load_staff_file(engine, staff).rejected == 0
    assert load_cases(engine, cases).rejected == 0
    yield engine
    engine.dispose()


@pytest.mark.parametrize("batch_size", [1, 7, 85, 1000])
def test_ranges_and_open_refs_follow_the_case_index(source: sa.Engine, batch_size: int) -> None:
    compiled = compile_rules(load_rule_dir(ROOT / "rules"), AS_OF)
    opened: list[tuple[str | None, list[str]]] = []
    hit_ranges: list[str | None] = []

    def hits(up_to: str | None, found: list[Hit], soon: list[Upcoming], unreadable: Any) -> None:
        hit_ranges.append(up_to)
        above = opened[len(hit_ranges) - 1][1]
        assert all(h.case_ref in above for h in found)  # a range's hits are its own cases
        assert all(u.case_ref in above for u in soon)

    extracted = evaluate_source(
        source, compiled, batch_size, None, hits, lambda up, refs: opened.append((up, refs))
    )
    index = case_index(source, status="open")
    assert [ref for _, refs in opened for ref in refs] == [ref for ref, _, _ in index]
    assert all(0 < len(refs) <= batch_size for _, refs in opened)
    assert [up for up, _ in opened] == [refs[-1] for _, refs in opened[:-1]] + [None]
    assert hit_ranges == [up for up, _ in opened]
    assert extracted.open_count == len(index)
    assert extracted.open_per_manager == Counter(rv for _, rv, _ in index if rv)


def test_the_spool_gives_each_range_its_open_refs_in_order() -> None:
    spool = HitSpool({})
    try:
        spool.add_open_refs("Z-2", ["Z-1", "Z-2"])
        spool.add_open_refs(None, ["Z-3"])
        spool.add("Z-2", [])
        spool.add(None, [])
        spool.seal()
        got = [(bounds, spool.open_refs(bounds)) for bounds, *_ in spool.following(set())]
        assert got == [((None, "Z-2"), {"Z-1", "Z-2"}), (("Z-2", None), {"Z-3"})]
    finally:
        spool.close()


def test_the_spool_refuses_a_range_it_did_not_record() -> None:
    spool = HitSpool({})
    try:
        spool.add_open_refs("Z-2", ["Z-1", "Z-2"])
        spool.add_open_refs(None, ["Z-3"])
        with pytest.raises(ValueError):
            spool.open_refs(("Z-2", None))  # the second range first
        empty = HitSpool({})
        assert empty.open_refs((None, None)) == set()  # no open case at all
        with pytest.raises(ValueError):
            empty.open_refs((None, "Z-1"))
        empty.close()
    finally:
        spool.close()


def _hit(case_ref: str) -> Hit:
    return Hit(case_ref, "CONTACT-30D", "rv-001", "T-1", None)


def test_a_reader_behind_gets_each_range_as_it_lands_and_the_last_only_once_sealed() -> None:
    """Issue 19: reconcile reads the spool from a thread of its own while evaluation still
    adds ranges; each range reaches it whole and in order, with its unreadable cases, and
    the last waits for ``seal`` (the run may still decide not to go on)."""
    import queue
    import threading

    spool = HitSpool({"CONTACT-30D": "medium"})
    got: queue.Queue[Any] = queue.Queue()
    untouched: set[str] = set()

    def read() -> None:
        for bounds, fired, _ in spool.following(untouched):
            got.put((bounds, sorted(k[0] for k in fired), set(untouched)))
        got.put("end")

    try:
        reader = threading.Thread(target=read)
        reader.start()
        spool.add("Z-2", [_hit("Z-1")], [], ["Z-2"])
        assert got.get(timeout=5) == ((None, "Z-2"), ["Z-1"], {"Z-2"})
        spool.add(None, [_hit("Z-3"), _hit("Z-4")], [], [])
        with pytest.raises(queue.Empty):  # the last range waits for seal
            got.get(timeout=0.3)
        spool.seal()
        assert got.get(timeout=5) == (("Z-2", None), ["Z-3", "Z-4"], {"Z-2"})
        assert got.get(timeout=5) == "end"
        reader.join(5)
        # a second reader, afterwards, reads the same ranges back whole
        again = [(b, sorted(k[0] for k in fired)) for b, fired, _ in spool.following(set())]
        assert again == [((None, "Z-2"), ["Z-1"]), (("Z-2", None), ["Z-3", "Z-4"])]
    finally:
        spool.close()


def test_an_aborted_spool_stops_its_reader_and_a_sealed_empty_one_gives_one_range() -> None:
    import threading

    from regiesignaal.engine.spool import SpoolAborted

    spool = HitSpool({})
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in spool.following(set()):
                pass
        except SpoolAborted as exc:
            errors.append(exc)

    try:
        reader = threading.Thread(target=read)
        reader.start()
        spool.add("Z-2", [], [])
        spool.abort()
        reader.join(5)
        assert not reader.is_alive() and len(errors) == 1
    finally:
        spool.close()
    empty = HitSpool({})
    try:
        empty.seal()
        assert [b for b, *_ in empty.following(set())] == [(None, None)]
    finally:
        empty.close()
    cut_short = HitSpool({})  # sealed, but its last range never came: an error, not a hang
    try:
        cut_short.add("Z-2", [], [])
        cut_short.seal()
        with pytest.raises(ValueError):
            list(cut_short.following(set()))
    finally:
        cut_short.close()


# --- the night's bonuses in a file (issue 19: 40 MB of case_refs at a million cases) -----

REF = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(st.tuples(REF, st.integers(-(2**31), 2**31 - 1)), max_size=40)),
    asked=st.lists(REF, max_size=1200),
)
def test_case_bonus_reads_back_what_a_dict_would_hold(
    batches: list[list[tuple[str, int]]], asked: list[str]
) -> None:
    """``CaseBonus`` answers as the dict it replaces: the last bonus recorded per case_ref,
    nothing for a case_ref without one, however many are asked at once (more than one
    query's worth included) and whatever characters a case_ref holds."""
    expected: dict[str, int] = {}
    bonus = CaseBonus()
    try:
        for batch in batches:
            bonus.add(batch)
            expected.update(batch)
        wanted = asked + list(expected)[:5]
        assert bonus.many(wanted) == {r: expected[r] for r in wanted if r in expected}
        assert bonuses_of(bonus, wanted) == bonuses_of(expected, wanted)
        assert dict(bonus) == expected and len(bonus) == len(expected)
        for ref in asked:
            assert bonus.get(ref) == expected.get(ref)
    finally:
        bonus.close()


def test_the_spool_keeps_each_case_s_bonus_and_no_other() -> None:
    """Hits with a bonus record it per case; hits without one record nothing."""
    spool = HitSpool({"R1": "low", "R2": "low"})
    try:
        spool.add(
            "ZK-5",
            [
                Hit("ZK-1", "R1", "rv-1", "t", None, bonus=30),
                Hit("ZK-1", "R2", "rv-1", "t", None, bonus=30),
                Hit("ZK-2", "R1", "rv-1", "t", None),
                Hit("ZK-3", "R1", None, None, None, bonus=-5),
            ],
        )
        spool.add(None, [Hit("ZK-7", "R1", "rv-2", "t", None, bonus=2)])
        assert dict(spool.bonus) == {"ZK-1": 30, "ZK-3": -5, "ZK-7": 2}
    finally:
        spool.close()
    with pytest.raises(sqlite3.ProgrammingError):  # closed with the spool: its file is gone
        len(spool.bonus)
