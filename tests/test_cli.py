"""The policy owner's and operator's commands, through the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main

RULES = Path(__file__).resolve().parents[1] / "rules"
AS_OF = dt.date(2026, 3, 2)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source with synthetic cases and an empty store, configured by environment."""
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(300, 5, AS_OF, cases, staff)
    source = f"sqlite:///{tmp_path / 'src.sqlite'}"
    engine = sa.create_engine(source)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(RULES))
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules-copy"
    shutil.copytree(RULES, target)
    return target


def test_rules_check_passes_on_the_shipped_rules() -> None:
    result = cli("rules", "check", str(RULES))
    assert result.exit_code == 0
    assert "22 regels" in result.output


def test_rules_check_names_file_line_and_hint(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "contact-30d.yaml"
    path.write_text(path.read_text().replace("latest_contact_on:", "latest_contakt_on:"))
    result = CliRunner().invoke(main, ["rules", "check", str(rules)])
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "latest_contakt_on" in x)
    expected_line = 1 + path.read_text().splitlines().index(
        next(x for x in path.read_text().splitlines() if "latest_contakt_on" in x)
    )
    assert line.startswith(f"{path}:") and f":{expected_line}:3: onbekend veld" in line
    assert "bedoelde je 'latest_contact_on'?" in result.output


def test_rules_test_runs_every_test_and_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    ok = cli("rules", "test", str(RULES))
    assert ok.exit_code == 0
    assert "0 mislukt" in ok.output and "van 22 regels" in ok.output
    rules = copy_rules(tmp_path)
    path = rules / "med-check.yaml"
    text = path.read_text()
    path.write_text(text.replace("expect: does_not_fire", "expect: fires", 1))
    bad = CliRunner().invoke(main, ["rules", "test", str(rules), "--rule", "MED-CHECK"])
    assert bad.exit_code == 1
    assert "MED-CHECK" in bad.output and "1 mislukt" in bad.output
    assert "opened_on" in bad.output, "the failure shows the condition and the value seen"


def test_rules_fields_lists_case_and_derived_fields() -> None:
    result = cli("rules", "fields", str(RULES), "--format", "json")
    fields = {f["field"]: f for f in map(json.loads, result.output.splitlines())}
    assert fields["person.amv"]["type"] == "bool"
    assert fields["location_type"]["values"] == ["azc", "vbl", "gezinslocatie", "detentie", "geen"]
    assert fields["latest_contact_on"]["origin"] == "afgeleid"
    assert all(f["description"] for f in fields.values())


def test_explain_shows_each_condition_and_the_value_seen(env: Path) -> None:
    preview = cli("preview", "--as-of", str(AS_OF), "--format", "json")
    hit = next(
        h for h in map(json.loads, preview.output.splitlines()) if h["rule"] == "CONTACT-30D"
    )
    result = cli("explain", hit["case_ref"], "--as-of", str(AS_OF))
    assert result.exit_code == 0
    block = result.output.split("CONTACT-30D", 1)[1].split("\n\n", 1)[0]
    assert "GAAT AF" in block
    assert "latest_contact_on older_than 30d: waar" in block
    assert "gezien: '20" in block  # the date it saw, as a date
    assert result.output.count("gaat niet af") + result.output.count("GAAT AF") == 22


def test_explain_unknown_case_is_a_clear_error(env: Path) -> None:
    result = CliRunner().invoke(main, ["explain", "Z-999999"])
    assert result.exit_code == 1
    assert "niet gevonden" in result.output


def test_run_then_preview_diff_shows_what_a_changed_rule_set_would_do(env: Path) -> None:
    assert cli("db", "upgrade").exit_code == 0
    run = CliRunner().invoke(main, ["run", "--as-of", str(AS_OF), "--no-mail"])
    assert run.exit_code == 0, run.output
    assert "succeeded" in run.output
    rules = copy_rules(env)
    (rules / "wish-unexplored.yaml").unlink()
    path = rules / "contact-30d.yaml"
    path.write_text(path.read_text().replace("{older_than: 30d}", "{older_than: 20d}"))
    for p in rules.glob("*.tests.yaml"):
        p.unlink()
    # the copied rule still carries its own tests for 30 days; the diff ignores tests
    diff = cli(
        "preview", "--rules", str(rules), "--as-of", str(AS_OF), "--diff", "--format", "json"
    )
    lines = [json.loads(x) for x in diff.output.splitlines()]
    changes = [c for c in lines if "change" in c]
    overlap = [c for c in lines if "overlap" in c]
    assert [(o["overlap"], o["status"]) for o in overlap] == [("CONTACT-30D", "gewijzigd")]
    closes = {c["rule"] for c in changes if c["change"] == "close"}
    opens = {c["rule"] for c in changes if c["change"] == "open"}
    assert closes == {"WISH-UNEXPLORED"}
    assert opens == {"CONTACT-30D"}
    table = cli("preview", "--rules", str(rules), "--as-of", str(AS_OF), "--diff")
    assert "zou openen" in table.output and "WISH-UNEXPLORED" in table.output


def test_run_refuses_backwards_and_runs_lists_history(env: Path) -> None:
    cli("db", "upgrade")
    assert CliRunner().invoke(main, ["run", "--as-of", str(AS_OF), "--no-mail"]).exit_code == 0
    back = CliRunner().invoke(main, ["run", "--as-of", "2026-03-01", "--no-mail"])
    assert back.exit_code == 1
    assert "Run niet gestart" in back.output
    history = [json.loads(x) for x in cli("runs", "--format", "json").output.splitlines()]
    assert [r["status"] for r in history] == ["refused", "succeeded"]
    assert "2026-03-02" in history[0]["errors"][0], "the refusal says which date is newer"
    assert history[1]["counts"]["cases"] > 0 and history[1]["ruleset_version"]
    assert "refused" in cli("runs").output


def test_run_refuses_an_unmigrated_store(env: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--as-of", str(AS_OF), "--no-mail"])
    assert result.exit_code == 1
    assert "regiesignaal db upgrade" in result.output


def test_config_show_masks_the_smtp_password(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGIESIGNAAL_SMTP_PASSWORD", "geheim-wachtwoord")
    result = cli("config", "show")
    assert result.exit_code == 0
    assert "geheim-wachtwoord" not in result.output
    assert "(gezet)" in result.output


def test_checker_refuses_count_over_two_lists_and_does_not_cascade(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    (rules / "derived.yaml").write_text(
        (rules / "derived.yaml").read_text()
        + "\ntwo_lists_count:\n  description: x\n  count: [contacts, interviews]\n"
    )
    path = rules / "med-check.yaml"
    path.write_text(path.read_text().replace("severity: high", "severity: hoog"))
    (rules / "med-check.tests.yaml").write_text(
        "rule: MED-CHECK\ntests:\n  - as_of: 2026-03-16\n    case: {opened_on: 2026-03-01}\n"
        "    expect: fires\n"
    )
    problems = [str(p) for p in load_rule_dir(rules).problems]
    assert any("'count' werkt op precies één lijst" in p for p in problems)
    assert any("onbekende ernst 'hoog'" in p for p in problems)
    assert not any("med-check.tests.yaml" in p for p in problems), problems


def test_deliver_sends_what_an_smtp_outage_left_untried(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from regiesignaal.notifications.delivery.mailserver import MailCatcher

    cli("db", "upgrade")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_TLS", "none")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_PORT", "9")  # nothing listens: SMTP is down
    down = CliRunner().invoke(main, ["run", "--as-of", str(AS_OF)])
    assert down.exit_code == 3, down.output
    assert "niet geprobeerd" in down.output
    with MailCatcher(env / "mail") as catcher:
        monkeypatch.setenv("REGIESIGNAAL_SMTP_PORT", str(catcher.port))
        # never offered to the server during the outage: no attempt, no backoff, due now
        sent = CliRunner().invoke(main, ["deliver"])
        assert sent.exit_code == 0, sent.output
        assert catcher.messages > 0 and f"Verstuurd: {catcher.messages}," in sent.output
        again = CliRunner().invoke(main, ["deliver", "--now"])
        assert again.exit_code == 0 and "Verstuurd: 0," in again.output


def test_a_switched_off_rule_keeps_passing_its_tests(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "med-check.yaml"
    path.write_text(path.read_text().replace("severity: high", "severity: high\nenabled: false"))
    result = CliRunner().invoke(main, ["rules", "test", str(rules), "--rule", "MED-CHECK"])
    assert result.exit_code == 0, result.output
    assert "0 mislukt" in result.output


def test_rules_fields_lists_the_fields_of_list_records() -> None:
    table = cli("rules", "fields", str(RULES))
    assert table.exit_code == 0
    assert "Velden van lijstrecords" in table.output and "checked.medical" in table.output
    lines = [json.loads(x) for x in cli("rules", "fields", "--format", "json").output.splitlines()]
    records = {(x["list"], x["field"]) for x in lines if x["origin"] == "record"}
    assert {("interviews", "kind"), ("lko", "decision"), ("measures", "until")} <= records


def _break_one_case(source_url: str) -> str:
    """Write an impossible date into one open case, straight into the source database."""
    engine = sa.create_engine(source_url)
    with engine.begin() as conn:
        ref = conn.execute(
            sa.text("SELECT case_ref FROM cases WHERE status = 'open' ORDER BY case_ref LIMIT 1")
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE cases SET opened_on = '2026-02-31' WHERE case_ref = :r"), {"r": ref}
        )
    engine.dispose()
    return str(ref)


def test_one_unreadable_case_is_named_not_a_traceback_in_explain_and_lko(env: Path) -> None:
    ref = _break_one_case(f"sqlite:///{env / 'src.sqlite'}")
    explained = CliRunner().invoke(main, ["explain", ref, "--as-of", str(AS_OF)])
    assert explained.exit_code == 1
    assert f"Zaak {ref} heeft onleesbare gegevens" in explained.output
    assert "2026-02-31" not in explained.output, "the bad value is never repeated"
    agenda = CliRunner().invoke(
        main, ["lko", "agenda", "--team", "team-001", "--as-of", str(AS_OF)]
    )
    assert agenda.exit_code == 0, agenda.output
    assert f"zaak {ref} heeft onleesbare gegevens" in agenda.output
    assert "2026-02-31" not in agenda.output


def test_square_brackets_in_output_are_text_not_markup(env: Path) -> None:
    """Rich would swallow '[...]' as a style tag: a rule's list must show, and a case value
    can never restyle or hide what an operator sees."""
    preview = cli("preview", "--as-of", str(AS_OF), "--format", "json")
    ref = json.loads(preview.output.splitlines()[0])["case_ref"]
    result = cli("explain", ref, "--as-of", str(AS_OF))
    assert "location_type in [vbl, gezinslocatie]" in result.output
    empty = CliRunner().invoke(main, ["rules", "check", str(env)])
    assert empty.exit_code == 1
    assert "[rules] dir" in empty.output
