"""The golden run: two nights on a fixed seed give the same store rows and the same mail
bytes as the files in ``tests/golden/``.

It guards moves and refactorings that must not change behaviour (issue 15: the
restructuring; issue 19: speed work). A change that is *meant* to change what is stored
or mailed rewrites the files on purpose::

    REGIESIGNAAL_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py

and the diff of ``tests/golden/`` is then part of the review.

What is compared: every row of every store table (ids included) except the columns that
hold wall-clock time or the host (``DateTime`` columns, ``durations``, ``host``, ``pid``)
or the text of the rule files kept with a rule set (``files``: its ``version`` is their hash),
and every message the loopback SMTP server received, byte for byte except its ``Date``
header and the MIME boundary (both chosen at sending time).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from regiesignaal.engine.store.tables import metadata
from regiesignaal.jobs.demo.mailrun import multi_night_run

GOLDEN = Path(__file__).parent / "golden"
NIGHTS = (dt.date(2026, 11, 9), dt.date(2026, 11, 10))  # a Monday (weekly digests) and Tuesday
VOLATILE = {"durations", "host", "pid", "files"}  # rule_sets.files: its version hashes it
UPDATE = os.environ.get("REGIESIGNAAL_UPDATE_GOLDEN") == "1"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def store_rows(store_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every store table, ordered by primary key, without wall-clock columns."""
    engine = sa.create_engine(store_url)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        with engine.connect() as conn:
            for table in sorted(metadata.sorted_tables, key=lambda t: t.name):
                kept = [
                    c
                    for c in table.columns
                    if not isinstance(c.type, sa.DateTime) and c.name not in VOLATILE
                ]
                if not kept:  # every column volatile (scheduler_heartbeat): how many rows
                    n = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    out[table.name] = [{} for _ in range(n)]
                    continue
                order = list(table.primary_key.columns) or kept
                rows = conn.execute(sa.select(*kept).order_by(*order)).mappings()
                out[table.name] = [{k: _plain(v) for k, v in row.items()} for row in rows]
    finally:
        engine.dispose()
    return out


_BOUNDARY = re.compile(rb'boundary="([^"]+)"')


def normalised_mail(raw: bytes) -> bytes:
    """The message with its ``Date`` header and MIME boundary replaced by fixed text."""
    for boundary in set(_BOUNDARY.findall(raw)):
        raw = raw.replace(boundary, b"BOUNDARY")
    return re.sub(rb"(?m)^Date: .*\r?$", b"Date: (sent)", raw)


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("golden")
    multi_night_run(directory, NIGHTS, cases=400, seed=11)
    return directory


def _compare_text(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with REGIESIGNAAL_UPDATE_GOLDEN=1 once"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from the golden file"


def test_store_rows_equal_the_golden_run(golden_run: Path) -> None:
    rows = store_rows(f"sqlite:///{golden_run / 'store.sqlite'}")
    assert rows["signals"] and rows["signal_events"] and rows["outbox"]
    for table, table_rows in rows.items():
        text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in table_rows)
        _compare_text(f"store/{table}.jsonl", text)


def test_mail_bytes_equal_the_golden_run(golden_run: Path) -> None:
    received = sorted((golden_run / "mail").glob("*.eml"))
    assert len(received) >= 12  # case managers, team leads and policy owners, two nights
    names = [p.name for p in received]
    _compare_text("mail/INDEX", "".join(n + "\n" for n in names))
    if UPDATE:
        for stale in (GOLDEN / "mail").glob("*.eml"):
            stale.unlink()
    for path in received:
        actual = normalised_mail(path.read_bytes())
        target = GOLDEN / "mail" / path.name
        if UPDATE:
            target.write_bytes(actual)
        assert actual == target.read_bytes(), f"mail {path.name} differs from the golden file"
