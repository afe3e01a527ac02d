"""The benchmark's baselines must compute what the product computes, or its ratios lie.

``bench/benchmark.py`` compares ``preview`` of the three starter rules against hand-written
SQL and plain Python; here the three are run on generated data, on SQLite and PostgreSQL,
and must give exactly the same (case, rule) pairs.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.source.read import EXTRA_ALWAYS, iter_case_batches
from regiesignaal.fixtures.generator import generate

ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2026, 3, 2)


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "bench" / "benchmark.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("benchmark", module)
    spec.loader.exec_module(module)
    return module


def test_starter_rule_baselines_agree_with_the_rule_engine(tmp_path: Path, db_url: str) -> None:
    bench = _bench()
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(600, 7, AS_OF, cases, staff)
    engine = sa.create_engine(db_url)
    try:
        load_staff_file(engine, staff)
        load_cases(engine, cases)
        ruledir = load_rule_dir(bench.STARTER_RULES)
        assert not ruledir.problems
        assert sorted(r.id for r in ruledir.rules) == [
            "CONTACT-30D",
            "MED-CHECK",
            "WISH-UNEXPLORED",
        ]
        evaluator = Evaluator(compile_rules(ruledir, AS_OF), "durable")
        product = {
            (h.case_ref, h.rule_id)
            for batch in iter_case_batches(engine, 200)
            for h in evaluator.hits(batch)
        }
    finally:
        engine.dispose()
    sql_pairs, _ = bench.starter_sql(db_url, AS_OF)
    py_pairs, _ = bench.starter_python(db_url, AS_OF)
    # every starter rule fires on this data, so agreement is not agreement on nothing
    assert {rule for _, rule in product} == {"CONTACT-30D", "MED-CHECK", "WISH-UNEXPLORED"}
    assert sql_pairs == product
    assert py_pairs == product


def test_the_reader_baseline_selects_what_the_reader_reads(tmp_path: Path, db_url: str) -> None:
    """``plain_select_needed`` (the baseline of ``source_read``) reads the same tables and
    columns as the run's reader for the default pack: one row per open case and per list
    record read (plus the list records of closed cases, which the reader skips)."""
    bench = _bench()
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(300, 3, AS_OF, cases, staff)
    engine = sa.create_engine(db_url)
    try:
        load_cases(engine, cases)
        needs = bench.default_needs(AS_OF)
        read = [c for b in iter_case_batches(engine, 100, needs=needs) for c in b]
        closed = [c for b in iter_case_batches(engine, 100, "closed", needs=needs) for c in b]
    finally:
        engine.dispose()
    rows, _ = bench.plain_select_needed(db_url, needs)
    records = sum(len(c[g]) for c in read + closed for g in needs.groups())
    assert rows == len(read) + records
    fields = {n.partition(".")[0] for n in needs.case} | set(needs.groups())
    assert set(read[0]) <= fields | EXTRA_ALWAYS
    n, _ = bench.source_read(db_url, 100, needs)
    assert n == len(read)
