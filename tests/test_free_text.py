"""One check for typed text (issue 18, tester's item 2): the store APIs refuse what the
command line refuses (control characters, newlines, U+200B, U+202E), in Dutch, without
repeating the text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from regiesignaal.engine.language.freetext import text_problem
from regiesignaal.engine.store import history
from regiesignaal.engine.store.silences import SilenceError, add_silence, expire_silence
from regiesignaal.engine.store.tables import metadata

DAY = dt.date(2026, 3, 2)
RULE = "R-1"
HOSTILE = ["x\x1b[2J", "a\nb", "zero\u200bwidth", "\u202eabc", "a\x00b", "a\u2028b"]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sa.Connection]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.sqlite'}")
    metadata.create_all(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def test_the_shared_check() -> None:
    assert text_problem("storing in de bron") is None
    assert text_problem("  ") == "is leeg"
    assert text_problem("x" * 501) == "is langer dan 500 tekens"
    for value in HOSTILE:
        assert text_problem(value) == "bevat stuur- of onzichtbare tekens"


@pytest.mark.parametrize("value", HOSTILE)
def test_every_store_api_that_takes_text_refuses_hidden_characters(
    conn: sa.Connection, value: str
) -> None:
    sid = add_silence(conn, RULE, DAY, "bron hersteld", "tl-1", DAY, {RULE})
    eid = history.add_explanation(conn, "Z-1", RULE, DAY, "anders", "rv", DAY, {RULE}, text="t")
    calls: list[Callable[[], object]] = [
        lambda: add_silence(conn, RULE, DAY, value, "tl-1", DAY, {RULE}),
        lambda: add_silence(conn, RULE, DAY, "r", value, DAY, {RULE}),
        lambda: add_silence(conn, RULE, DAY, "r", "tl-1", DAY, {RULE}, team=value),
        lambda: add_silence(conn, RULE, DAY, "r", "tl-1", DAY, {RULE}, location=value),
        lambda: expire_silence(conn, sid, "tl-1", value, DAY),
        lambda: expire_silence(conn, sid, value, "r", DAY),
        lambda: history.add_explanation(
            conn, "Z-1", RULE, DAY, "anders", "rv", DAY, {RULE}, text=value
        ),
        lambda: history.add_explanation(
            conn, "Z-1", RULE, DAY, "elders_geregeld", value, DAY, {RULE}
        ),
        lambda: history.revoke_explanation(conn, eid, value),
        lambda: history.note_promotion(conn, RULE, "bo-1", value),
        lambda: history.note_promotion(conn, RULE, value, "proef geslaagd"),
    ]
    for call in calls:
        with pytest.raises((SilenceError, history.HistoryError)) as exc:
            call()
        assert "stuur- of onzichtbare tekens" in str(exc.value)
        assert value not in str(exc.value)
