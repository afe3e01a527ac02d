"""Reasons and re-arming (issue 18, item 4): an explanation carries a reason from a fixed
list, and lapses when a fact the rule reads changes; the signal then comes back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from regiesignaal.engine.language.casefile import EXPLANATION_REASONS, parse_reason
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.store import history
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main
from regiesignaal.notifications.case_manager import case_manager_lines
from regiesignaal.notifications.compose.case_manager import _line_view
from regiesignaal.notifications.compose.model import SignalLine
from regiesignaal.notifications.shared import RuleMeta

RULES = Path(__file__).resolve().parents[1] / "rules"
NIGHTS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4), dt.date(2026, 3, 5)]
RULE = "CONTACT-30D"


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_reasons_parse_as_code_code_and_text_or_other() -> None:
    assert parse_reason("niet_van_toepassing") == ("niet_van_toepassing", "")
    assert parse_reason("Wacht_op_ketenpartner: IND beslist") == (
        "wacht_op_ketenpartner",
        "IND beslist",
    )
    assert parse_reason("wacht op documenten") == ("anders", "wacht op documenten")
    assert parse_reason("Dossier: volgt") == ("anders", "Dossier: volgt")
    assert set(EXPLANATION_REASONS) == {
        "niet_van_toepassing", "elders_geregeld", "wacht_op_ketenpartner",
        "vastlegging_volgt", "werkt_niet_mee", "anders",
    }  # fmt: skip


@given(st.sampled_from(sorted(EXPLANATION_REASONS)), st.text(max_size=30))
def test_a_stored_reason_reads_back_as_its_code(code: str, text: str) -> None:
    stored = f"{code}: {text.strip()}" if text.strip() else code
    assert parse_reason(stored)[0] == code


def test_the_command_line_takes_only_listed_reasons(tmp_path: Path) -> None:
    store = sa.create_engine(f"sqlite:///{tmp_path / 's.sqlite'}")
    from regiesignaal.engine.store.tables import metadata

    metadata.create_all(store)
    day = NIGHTS[0]
    with store.begin() as conn:
        with pytest.raises(history.HistoryError) as bad:
            history.add_explanation(conn, "Z-1", RULE, day, "geheim-xyz", "rv", day, {RULE})
        assert "geheim-xyz" not in str(bad.value), "the bad value is not repeated"
        assert "niet_van_toepassing" in str(bad.value)
        with pytest.raises(history.HistoryError, match="--text"):
            history.add_explanation(conn, "Z-1", RULE, day, "anders", "rv", day, {RULE})
        i = history.add_explanation(
            conn, "Z-1", RULE, day, "anders", "rv", day, {RULE}, text="zie dossier"
        )
        assert history.list_explanations(conn)[0]["reason"] == "anders: zie dossier" and i == 1
    store.dispose()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(150, 3, NIGHTS[0], cases, staff)
    source = f"sqlite:///{tmp_path / 'src.sqlite'}"
    engine = sa.create_engine(source)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    for name, value in {
        "REGIESIGNAAL_SOURCE_URL": source,
        "REGIESIGNAAL_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
        "REGIESIGNAAL_RULES_DIR": str(RULES),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cli("db", "upgrade")
    return {"cases": cases, "source": source, "store": f"sqlite:///{tmp_path / 'store.sqlite'}"}


def _cases(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _reload(env: dict[str, Any], cases: list[dict[str, Any]]) -> None:
    env["cases"].write_text("".join(json.dumps(c) + "\n" for c in cases))
    engine = sa.create_engine(env["source"])
    load_cases(engine, env["cases"], replace=True)
    engine.dispose()


def _signal(env: dict[str, Any], case_ref: str) -> Any:
    from regiesignaal.engine.store.tables import signals

    c = signals.c
    engine = sa.create_engine(env["store"])
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(signals).where(
                c.case_ref == case_ref, c.rule_id == RULE, c.closed_on.is_(None)
            )
        ).one()
    engine.dispose()
    return row


def _kinds(env: dict[str, Any], case_ref: str) -> list[tuple[str, str, dict[str, Any]]]:
    engine = sa.create_engine(env["store"])
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT kind, as_of, details FROM signal_events WHERE case_ref = :c AND "
                "rule_id = :r ORDER BY id"
            ),
            {"c": case_ref, "r": RULE},
        ).all()
    engine.dispose()
    return [(k, str(a), json.loads(d) if isinstance(d, str) else (d or {})) for k, a, d in rows]


def _counts(env: dict[str, Any]) -> dict[str, int]:
    engine = sa.create_engine(env["store"])
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT counts FROM runs ORDER BY id DESC LIMIT 1")).scalar_one()
    engine.dispose()
    counts = json.loads(raw) if isinstance(raw, str) else raw
    return dict(counts["reconcile"])


def _line(env: dict[str, Any], manager: str, case_ref: str, day: dt.date) -> SignalLine:
    ruledir = load_rule_dir(RULES)
    rules = {r.id: RuleMeta.of(r) for r in ruledir.rules}
    engine = sa.create_engine(env["store"])
    with engine.connect() as conn:
        found = case_manager_lines(conn, day, rules, lambda ref: ref, {})
    engine.dispose()
    return next(ln for ln in found.lines[manager] if (ln.case_ref, ln.rule_id) == (case_ref, RULE))


def test_an_explanation_lapses_when_the_facts_change_and_the_signal_returns(
    env: dict[str, Any],
) -> None:
    day1, day2, day3, day4 = NIGHTS
    cases = _cases(env["cases"])
    hits = cli("preview", "--as-of", str(day1), "--format", "json").output.splitlines()
    firing = {h["case_ref"]: h for h in map(json.loads, hits) if h["rule"] == RULE}
    by_ref = {c["case_ref"]: c for c in cases}
    # one case explained on the command line, one in the case file
    cmd_ref, file_ref = sorted(r for r in firing if not by_ref[r].get("explanations"))[:2]
    by_ref[file_ref]["explanations"] = [
        {"rule": RULE, "reason": "werkt_niet_mee", "until": "2026-04-30", "by": "rv-x"}
    ]
    _reload(env, cases)
    cli(
        "explanations", "add", cmd_ref, RULE, "--until", "2026-04-30",
        "--reason", "wacht_op_ketenpartner", "--text", "IND beslist",
        "--by", str(firing[cmd_ref]["regievoerder"]), "--as-of", str(day1),
    )  # fmt: skip

    cli("run", "--as-of", str(day1), "--no-mail")
    first = _signal(env, cmd_ref)
    assert first.explained_until == dt.date(2026, 4, 30) and first.explained_inputs
    explained = [k for k in _kinds(env, cmd_ref) if k[0] == "explained"]
    assert explained[0][2]["reason"] == "wacht_op_ketenpartner"
    assert "IND beslist" not in json.dumps(_kinds(env, cmd_ref)), "free text stays out of events"
    file_explained = [k for k in _kinds(env, file_ref) if k[0] == "explained"]
    assert file_explained[0][2]["reason"] == "werkt_niet_mee"

    cli("run", "--as-of", str(day2), "--no-mail")  # nothing changed in the case
    assert _signal(env, cmd_ref).explained_inputs == first.explained_inputs
    assert "explanation_lapsed" not in [k[0] for k in _kinds(env, cmd_ref)]

    # a contact 31 days before night 3: the rule still fires, but on other facts
    for ref in (cmd_ref, file_ref):
        case = by_ref[ref]
        case.setdefault("contacts", []).append(
            {"on": (day3 - dt.timedelta(days=31)).isoformat(), "channel": "telefonisch"}
        )
    _reload(env, cases)
    cli("run", "--as-of", str(day3), "--no-mail")
    assert _counts(env)["explanation_lapsed"] == 2
    for ref in (cmd_ref, file_ref):
        lapsed = _signal(env, ref)
        assert lapsed.explained_until is None and lapsed.explanation_lapsed_on == day3
        assert lapsed.explanation_lapsed_given == dt.date(2026, 4, 30)
        assert [k[0] for k in _kinds(env, ref)][-1] == "explanation_lapsed"
    shown = cli("signals", "show", cmd_ref).output
    assert "toelichting vervallen: gegevens gewijzigd" in shown
    manager = str(firing[cmd_ref]["regievoerder"])
    line = _line(env, manager, cmd_ref, day3)
    assert line.explanation_lapsed and line.reopened and line.is_new, "it comes back, re-opened"
    marks = _line_view(line, day3)["marks"]
    assert "toelichting vervallen: gegevens gewijzigd" in marks and "opnieuw open" in marks

    cli("run", "--as-of", str(day4), "--no-mail")  # the same explanation is not honoured again
    assert _signal(env, cmd_ref).explained_until is None
    assert _counts(env)["explanation_lapsed"] == 0
    second = cli(
        "explanations", "add", cmd_ref, RULE, "--until", "2026-05-15", "--reason",
        "elders_geregeld", "--by", manager, "--as-of", str(day4),
    )  # fmt: skip
    assert "Let op: toelichting 1 (tot en met 2026-04-30)" in second.output, "named, not replaced"
    day5 = dt.date(2026, 3, 6)
    cli("run", "--as-of", str(day5), "--no-mail")
    again = _signal(env, cmd_ref)
    assert again.explained_until == dt.date(2026, 5, 15) and again.explained_inputs


def test_both_evaluators_give_the_same_fingerprints_that_ignore_the_date(tmp_path: Path) -> None:
    cases_path, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(80, 4, NIGHTS[0], cases_path, staff)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'src.sqlite'}")
    load_staff_file(engine, staff)
    load_cases(engine, cases_path)
    from regiesignaal.engine.source.read import iter_case_index, read_case_range

    refs = [r for r, _ in iter_case_index(engine, status="open")]
    cases = read_case_range(engine, refs[0], refs[-1]).cases
    engine.dispose()
    ruledir = load_rule_dir(RULES)
    compiled = compile_rules(ruledir, NIGHTS[0])
    durable = {
        (h.case_ref, h.rule_id): h.inputs for h in Evaluator(compiled, "durable").hits(cases)
    }
    python = {(h.case_ref, h.rule_id): h.inputs for h in Evaluator(compiled, "python").hits(cases)}
    assert durable == python and all(durable.values())
    # a day later on the same data: the same fingerprint for every rule whose inputs hold no
    # record dated on that day
    later = compile_rules(ruledir, NIGHTS[1])
    next_day = {(h.case_ref, h.rule_id): h.inputs for h in Evaluator(later, "python").hits(cases)}
    same = [k for k in durable if k in next_day and durable[k] == next_day[k]]
    assert len(same) >= 0.9 * len([k for k in durable if k in next_day])


@pytest.mark.parametrize("legacy", [False, True])
def test_the_state_machine_lapses_once_and_honours_a_new_explanation(
    db_url: str, legacy: bool
) -> None:
    """reconcile on a real store (SQLite and PostgreSQL): honoured with a fingerprint, kept
    while the inputs hold, lapsed when they change, not honoured again, a new one is. An
    explanation honoured before fingerprints were kept (``legacy``) adopts today's."""
    from regiesignaal.engine.reconcile import Fired, RuleInfo, reconcile
    from regiesignaal.engine.store import migrate
    from regiesignaal.engine.store.tables import signal_events, signals

    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    rules = {"R": RuleInfo("low")}
    key = ("Z-1", "R")
    days = [dt.date(2026, 3, d) for d in (2, 3, 4, 5, 6, 9)]

    def night(i: int, inputs: str) -> None:
        with engine.begin() as conn:
            reconcile(conn, {key: Fired("low", "rv", "t", inputs=inputs)}, {"Z-1"}, rules,
                      days[i], i + 1)  # fmt: skip

    def row() -> Any:
        with engine.connect() as conn:
            return conn.execute(sa.select(signals).where(signals.c.closed_on.is_(None))).one()

    try:
        night(0, "a")
        with engine.begin() as conn:
            history.add_explanation(
                conn, *key, dt.date(2026, 3, 31), "vastlegging_volgt", "rv", days[0], rules
            )
        night(1, "a")
        assert row().explained_inputs == "a"
        if legacy:
            with engine.begin() as conn:
                conn.execute(sa.update(signals).values(explained_inputs=None))
            night(2, "b")  # adopts today's inputs, no lapse
            assert row().explained_inputs == "b" and row().explained_until is not None
            night(3, "c")
        else:
            night(2, "a")
            night(3, "b")
        lapsed = row()
        assert lapsed.explained_until is None and lapsed.explanation_lapsed_on == days[3]
        night(4, "b")  # the same explanation: not honoured again
        assert row().explained_until is None
        with engine.begin() as conn:
            history.add_explanation(
                conn, *key, dt.date(2026, 4, 15), "elders_geregeld", "rv", days[4], rules
            )
        night(5, "b")
        assert row().explained_until == dt.date(2026, 4, 15) and row().explained_inputs == "b"
        with engine.connect() as conn:
            kinds = [k for (k,) in conn.execute(sa.select(signal_events.c.kind))]
        assert kinds == ["opened", "explained", "explanation_lapsed", "explained"]
    finally:
        engine.dispose()


def test_the_length_limit_holds_for_what_is_stored_and_a_second_one_is_named(
    tmp_path: Path,
) -> None:
    """Tester's item 4: ``anders: `` plus 500 characters was stored as 508; now what is
    stored is at most 500. A second explanation for the same case and rule is added (the
    run uses the one that lasts longest) and the one already in force is named."""
    from regiesignaal.engine.language.freetext import TEXT_MAX
    from regiesignaal.engine.store.tables import metadata

    store = sa.create_engine(f"sqlite:///{tmp_path / 's.sqlite'}")
    metadata.create_all(store)
    day = NIGHTS[0]
    with store.begin() as conn:
        with pytest.raises(history.HistoryError, match="hooguit 492 tekens"):
            history.add_explanation(
                conn, "Z-1", RULE, day, "anders", "rv", day, {RULE}, text="x" * 500
            )
        first = history.add_explanation(
            conn, "Z-1", RULE, day, "anders", "rv", day, {RULE}, text="x" * 492
        )
        assert len(history.list_explanations(conn)[0]["reason"]) == TEXT_MAX
        assert history.explanations_in_force(conn, "Z-1", RULE, day) == [(first, day)]
        assert history.explanations_in_force(conn, "Z-2", RULE, day) == []
        assert history.explanations_in_force(conn, "Z-1", RULE, day + dt.timedelta(days=1)) == []
    store.dispose()
