"""Issue 6 through the real CLI: rule-set guards, retirement, look-up and explanations."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main

RULES = Path(__file__).resolve().parents[1] / "rules"
AS_OF = dt.date(2026, 3, 2)  # Monday
SECRET_REASON = "Geheimereden-xq"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source with 150 synthetic cases (one with misspelled explanation rule ids), a
    copy of the rule pack and a store path, configured by environment."""
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(80, 11, AS_OF, cases, staff)
    lines = cases.read_text().splitlines()
    first = json.loads(lines[0])
    first["explanations"] = [
        {"rule": "vg-first", "reason": SECRET_REASON, "until": "2026-06-01"},
        {"rule": "VG-FIRST ", "reason": SECRET_REASON, "until": "2026-06-01"},
    ]
    lines[0] = json.dumps(first)
    cases.write_text("\n".join(lines) + "\n")
    source = f"sqlite:///{tmp_path / 'src.sqlite'}"
    engine = sa.create_engine(source)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(rules))
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(day: dt.date) -> Result:
    return CliRunner().invoke(main, ["run", "--as-of", str(day), "--no-mail", "--force"])


def open_signals(*args: str) -> list[dict[str, Any]]:
    result = cli("signals", "list", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_look_up_never_creates_the_store(env: Path) -> None:
    for args in (["signals", "list"], ["signals", "show", "Z-000001"], ["explanations", "list"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, args
        assert "bestaat niet" in result.output
    assert not (env / "store.sqlite").exists()


def test_empty_rules_folder_is_an_error_and_a_refused_run(env: Path) -> None:
    empty = env / "empty"
    empty.mkdir()
    check = CliRunner().invoke(main, ["rules", "check", str(empty)])
    assert check.exit_code == 1
    assert "geen regels" in check.output and "In orde" not in check.output

    cli("db", "upgrade")
    assert run(AS_OF).exit_code == 0
    before = open_signals()
    assert before
    refused = CliRunner().invoke(
        main,
        ["run", "--as-of", "2026-03-03", "--no-mail"],
        env={"REGIESIGNAAL_RULES_DIR": str(empty)},
    )
    assert refused.exit_code == 1
    assert "geen regels" in refused.output
    runs = [json.loads(x) for x in cli("runs", "--format", "json").output.splitlines()]
    assert runs[0]["status"] == "refused"
    assert open_signals() == before, "nothing closed"


def test_missing_rule_refused_until_retired_then_closed_as_rule_retired(env: Path) -> None:
    cli("db", "upgrade")
    first = run(AS_OF)
    assert first.exit_code == 0, first.output
    assert "Gesloten: opgelost 0" in first.output
    held = [s for s in open_signals() if s["rule_id"] == "CONTACT-30D"]
    assert held
    (env / "rules" / "contact-30d.yaml").unlink()
    for p in (env / "rules").glob("contact-30d.tests.yaml"):
        p.unlink()
    # a rule that covers it must let go as well (the checker names it otherwise)
    vg_first = env / "rules" / "vg-first.yaml"
    text = vg_first.read_text(encoding="utf-8")
    assert "covers: [CONTACT-14D, CONTACT-30D]" in text
    vg_first.write_text(text.replace(", CONTACT-30D]", "]"), encoding="utf-8")
    refused = run(dt.date(2026, 3, 3))
    assert refused.exit_code == 1
    assert "CONTACT-30D" in refused.output and "rules retire CONTACT-30D" in refused.output
    runs = [json.loads(x) for x in cli("runs", "--format", "json").output.splitlines()]
    assert runs[0]["status"] == "refused"
    assert "ontbrekende regel: CONTACT-30D" in runs[0]["errors"]

    unknown = CliRunner().invoke(main, ["rules", "retire", "CONTACT-3D"])
    assert unknown.exit_code == 1 and "CONTACT-30D" in unknown.output
    active = CliRunner().invoke(main, ["rules", "retire", "VG-FIRST"])
    assert active.exit_code == 1 and "staat nog aan" in active.output
    assert cli("rules", "retire", "CONTACT-30D", "--by", "op-1").exit_code == 0
    second = run(dt.date(2026, 3, 3))
    assert second.exit_code == 0, second.output
    assert f"regel ingetrokken {len(held)}" in second.output
    closed = open_signals("--rule", "CONTACT-30D", "--state", "closed")
    assert {s["close_reason"] for s in closed} == {"rule_retired"}
    assert len(closed) == len(held)
    show = cli("signals", "show", str(closed[0]["id"]))
    assert "gesloten: regel ingetrokken" in show.output


def test_signals_list_filters_and_show_prints_the_history(env: Path) -> None:
    cli("db", "upgrade")
    result = run(AS_OF)
    # explanations for a misspelled rule id are reported per case, with the nearest id
    assert result.output.count("zaak Z-000001: toelichting") == 2
    assert "bedoelde je 'VG-FIRST'?" in result.output
    assert SECRET_REASON not in result.output and "vg-first" not in result.output
    everything = open_signals()
    assert all(s["baseline"] for s in everything), "the first night is a baseline"
    rv = everything[0]["regievoerder"]
    mine = open_signals("--regievoerder", rv)
    assert mine and {s["regievoerder"] for s in mine} == {rv}
    assert open_signals("--regievoerder", "rv-none") == []
    rule = everything[0]["rule_id"]
    of_rule = open_signals("--rule", rule)
    assert {s["rule_id"] for s in of_rule} == {rule} and len(of_rule) < len(everything)
    assert open_signals("--state", "closed") == []
    table = cli("signals", "list", "--team", everything[0]["team"])
    team_count = len(open_signals("--team", everything[0]["team"]))
    assert f"Signalen ({team_count})" in table.output and "bestaa" in table.output

    case = everything[0]["case_ref"]
    show = cli("signals", "show", case)
    assert show.exit_code == 0
    assert f"zaak {case}" in show.output
    assert "geopend (bestaand bij invoering" in show.output
    missing = CliRunner().invoke(main, ["signals", "show", "Z-999999"])
    assert missing.exit_code == 1


def test_explanations_add_list_revoke_reach_the_signal_history(env: Path) -> None:
    cli("db", "upgrade")
    assert run(AS_OF).exit_code == 0
    signal = open_signals()[0]
    case, rule = signal["case_ref"], signal["rule_id"]
    bad = CliRunner().invoke(
        main,
        [
            "explanations",
            "add",
            case,
            rule.lower(),
            "--until",
            "2026-04-01",
            "--reason",
            "x",
            "--by",
            "rv-1",
        ],
    )
    assert bad.exit_code == 1 and f"'{rule}'" in bad.output
    added = cli(
        "explanations",
        "add",
        case,
        rule,
        "--until",
        "2026-04-01",
        "--reason",
        "wacht_op_ketenpartner",
        "--text",
        "wacht op reisdocument",
        "--by",
        "rv-0001",
        "--as-of",
        "2026-03-02",
    )
    assert added.exit_code == 0, added.output
    listed = [
        json.loads(x) for x in cli("explanations", "list", "--format", "json").output.splitlines()
    ]
    assert [(e["case_ref"], e["rule_id"], e["created_by"]) for e in listed] == [
        (case, rule, "rv-0001")
    ]
    assert run(dt.date(2026, 3, 3)).exit_code == 0
    (now,) = [s for s in open_signals("--state", "explained") if s["id"] == signal["id"]]
    assert now["explained_until"] == "2026-04-01"
    assert cli("explanations", "revoke", str(listed[0]["id"]), "--by", "tl-001").exit_code == 0
    again = CliRunner().invoke(main, ["explanations", "revoke", str(listed[0]["id"]), "--by", "x"])
    assert again.exit_code == 1
    assert cli("explanations", "list", "--format", "json").output == ""
    assert run(dt.date(2026, 3, 4)).exit_code == 0
    show = cli("signals", "show", str(signal["id"]))
    assert (
        "toegelicht (tot en met 2026-04-01; via opdrachtregel; reden: wacht op ketenpartner; "
        "door rv-0001)"
    ) in show.output
    assert "toelichting ingetrokken" in show.output
    assert "reisdocument" not in show.output  # the reason stays in the explanations table


def test_a_case_delivered_closed_for_one_night_keeps_its_signals(env: Path) -> None:
    """Failure 1 through whole runs: the same episodes, same opened_on, gap in the history."""
    cli("db", "upgrade")
    assert run(AS_OF).exit_code == 0
    case = open_signals()[0]["case_ref"]
    before = {s["id"]: s for s in open_signals() if s["case_ref"] == case}
    lines = (env / "cases.jsonl").read_text().splitlines()
    (line,) = [x for x in lines if json.loads(x)["case_ref"] == case]
    source = sa.create_engine(f"sqlite:///{env / 'src.sqlite'}")
    try:
        for status, day in (("closed", dt.date(2026, 3, 3)), ("open", dt.date(2026, 3, 4))):
            record = json.loads(line) | {"status": status}
            (env / "one.jsonl").write_text(json.dumps(record) + "\n")
            load_cases(source, env / "one.jsonl")
            result = run(day)
            assert result.exit_code == 0, result.output
            if status == "closed":
                assert "zaak gesloten 0" in result.output
                gaps = {s["id"]: s["gap_since"] for s in open_signals() if s["case_ref"] == case}
                assert gaps == dict.fromkeys(before, "2026-03-03")
    finally:
        source.dispose()
    after = {s["id"]: s for s in open_signals() if s["case_ref"] == case}
    assert set(after) == set(before)
    assert all(after[i]["opened_on"] == before[i]["opened_on"] for i in before)
    show = cli("signals", "show", case).output
    assert show.count("tijdelijk afwezig (zaak gesloten of ontbreekt)") == len(before)
    assert show.count("weer aanwezig (zelfde episode") == len(before)


def _add(case: str, rule: str, by: str, **env: str) -> Result:
    return CliRunner().invoke(
        main,
        [
            *(
                "explanations",
                "add",
                case,
                rule,
                "--until",
                "2026-04-01",
                "--reason",
                "elders_geregeld",
            ),
            *("--by", by, "--as-of", "2026-03-02"),
        ],
        env=env or None,
    )


def test_explanations_add_refuses_an_unknown_case_or_staff_id_without_repeating_it(
    env: Path,
) -> None:
    """Issue 18 item 8: the case must be open in the source, ``--by`` in the staff file."""
    cli("db", "upgrade")
    assert run(AS_OF).exit_code == 0
    signal = open_signals()[0]
    case, rule = signal["case_ref"], signal["rule_id"]
    typed_case = "Jansen-1990-V1234567"  # a name and V-number typed where a case_ref belongs
    unknown_case = _add(typed_case, rule, "rv-0001")
    assert unknown_case.exit_code == 1
    assert "zaak staat niet in de brondatabase" in unknown_case.output
    assert typed_case not in unknown_case.output and "Jansen" not in unknown_case.output

    typed_staff = "p.de.vries"
    unknown_staff = _add(case, rule, typed_staff)
    assert unknown_staff.exit_code == 1
    assert "staat niet in het personeelsbestand" in unknown_staff.output
    assert typed_staff not in unknown_staff.output

    source = sa.create_engine(f"sqlite:///{env / 'src.sqlite'}")
    with source.begin() as conn:
        closed = conn.execute(
            sa.text("SELECT case_ref FROM cases WHERE status = 'closed' LIMIT 1")
        ).scalar_one()
    source.dispose()
    closed_case = _add(closed, rule, "rv-0001")
    assert closed_case.exit_code == 1 and "is gesloten" in closed_case.output

    no_source = _add(case, rule, "rv-0001", REGIESIGNAAL_SOURCE_URL="sqlite:///missing.sqlite")
    assert no_source.exit_code == 2 and "bestaat niet" in no_source.output

    assert cli("explanations", "list", "--format", "json").output == "", "nothing recorded"
    accepted = _add(case, rule, "rv-0001")
    assert accepted.exit_code == 0, accepted.output
    assert len(cli("explanations", "list", "--format", "json").output.splitlines()) == 1
