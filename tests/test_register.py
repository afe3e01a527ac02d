"""Issue 18, transparency: every rule names its basis; ``rules register`` writes the rule
set as an entry for the government's algorithm register, with no personal data."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from regiesignaal.engine.language.register import (
    LABELS_NL,
    REGISTER_FIELDS,
    RULE_FIELDS,
    SHADOW_NL,
    TO_FILL,
    is_legal_article,
)
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main

RULES = Path(__file__).resolve().parents[1] / "rules"
HEADER = "title: T\nmail_title: M\nseverity: low\nowner: team-kwaliteit\n"


def one_rule(tmp_path: Path, basis_line: str) -> list[str]:
    folder = tmp_path / "r"
    folder.mkdir(exist_ok=True)
    (folder / "x-1.yaml").write_text(
        f"id: X-1\n{HEADER}{basis_line}when:\n  opened_on: {{older_than: 14d}}\n"
        "expected_action: Doe iets.\n",
        encoding="utf-8",
    )
    return [f"{p.line}:{p.message}" for p in load_rule_dir(folder).problems]


def test_every_shipped_rule_names_its_basis() -> None:
    ruledir = load_rule_dir(RULES)
    assert not ruledir.problems
    assert ruledir.rules
    for rule in ruledir.rules:
        assert rule.basis, f"{rule.id} has no basis"
        assert re.search(r"\bR[1-4]\b|art\. \d+|[Ww]erkinstructie", rule.basis), rule.id


def test_basis_is_one_short_line(tmp_path: Path) -> None:
    assert one_rule(tmp_path, "basis: art. 64 Vw 2000\n") == []
    assert one_rule(tmp_path, "") == [], "basis is optional in the language"
    too_long = one_rule(tmp_path, f"basis: {'R3 ' * 50}\n")
    assert too_long and "hooguit 120" in too_long[0] and too_long[0].startswith("6:")
    two_lines = one_rule(tmp_path, 'basis: "R3\\nen nog iets"\n')
    assert two_lines and "één regel" in two_lines[0]
    empty = one_rule(tmp_path, 'basis: " "\n')
    assert empty and "leeg" in empty[0]
    not_text = one_rule(tmp_path, "basis: [R1, R2]\n")
    assert not_text and "tekst" in not_text[0]


def test_the_schema_knows_basis() -> None:
    schema = json.loads((RULES.parent / "schema" / "rule.schema.json").read_text())
    found: list[dict[str, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("basis"), dict) and "maxLength" in node["basis"]:
                found.append(node["basis"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert found and found[0]["maxLength"] == 120
    assert "rules register" in str(found[0]["description"])


@pytest.fixture
def register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(rules))
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            *("rules", "register", "--out", str(out), "--as-of", "2026-03-02"),
            *("--contact", "algoritmes@dtv.example", "--dpia", "DPIA-2026-01"),
            *("--iama", "IAMA-2026-02", "--website", "https://dtv.example/regiesignaal"),
            *("--documentation-url", "https://dtv.example/regiesignaal/regels"),
            *("--documentation-url", "https://dtv.example/regiesignaal/privacy"),
            *("--legal-basis", "art. 4 Wet op de DT&V (voorbeeld)"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Nog in te vullen" not in result.output
    assert "zonder 'basis'" not in result.output
    return out, rules


def test_the_json_entry_has_every_register_field_and_every_rule_with_its_basis(
    register: tuple[Path, Path],
) -> None:
    out, rules = register
    entry = json.loads((out / "algoritmeregister.json").read_text(encoding="utf-8"))
    assert tuple(entry) == REGISTER_FIELDS
    for key in REGISTER_FIELDS:
        assert entry[key] not in ("", [], None), key
    assert entry["contact_email"] == "algoritmes@dtv.example"
    assert entry["dpia"] == "DPIA-2026-01"
    assert entry["iama"] == "IAMA-2026-02"
    assert entry["revision_date"] == "2026-03-02"
    assert entry["documentation"] == (
        "https://dtv.example/regiesignaal/regels, https://dtv.example/regiesignaal/privacy"
    )
    assert TO_FILL not in json.dumps(entry)
    ruledir = load_rule_dir(rules)
    assert entry["ruleset_version"] == ruledir.version
    by_id = {r["id"]: r for r in entry["rules"]}
    assert set(by_id) == {r.id for r in ruledir.rules}
    for rule in ruledir.rules:
        item = by_id[rule.id]
        assert tuple(item) == RULE_FIELDS
        assert item["basis"] == rule.basis and item["owner"] == rule.owner
        assert item["checks"] and item["data"], rule.id
        assert all(d["field"] in ruledir.catalogue.fields for d in item["data"])
    assert any(d["field"] == "medical_check_count" for d in by_id["MED-CHECK"]["data"])
    markdown = (out / "algoritmeregister.md").read_text(encoding="utf-8")
    for rule in ruledir.rules:
        assert f"### {rule.id}: {rule.title}" in markdown
        assert f"**Grondslag**: {rule.basis}" in markdown
    for key in REGISTER_FIELDS[:-1]:
        assert f"| {LABELS_NL[key]} |" in markdown
    assert "| lawful_basis |" not in markdown and "| Wettelijke basis |" in markdown


def test_the_entry_holds_no_personal_data(register: tuple[Path, Path], tmp_path: Path) -> None:
    """Built from the rule files only: no staff name, e-mail or id, no case reference."""
    out, _ = register
    cases, staff = tmp_path / "c.jsonl", tmp_path / "s.jsonl"
    generate(60, 3, dt.date(2026, 3, 2), cases, staff)
    text = "\n".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    for line in staff.read_text(encoding="utf-8").splitlines():
        member = json.loads(line)
        for key in ("name", "email", "id"):
            assert str(member[key]) not in text, key
    for line in cases.read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["case_ref"] not in text
    assert not re.search(r"\bV-?\d{7,}", text), "no V-number"


def test_register_without_basis_warns_and_unwritable_out_is_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "x-1.yaml").write_text(
        f"id: X-1\n{HEADER}when:\n  opened_on: {{older_than: 14d}}\nexpected_action: Doe.\n",
        encoding="utf-8",
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ok = CliRunner().invoke(main, ["rules", "register", str(folder), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 3 and "1 regel(s) zonder 'basis': X-1" in ok.output
    entry = json.loads((tmp_path / "o" / "algoritmeregister.json").read_text())
    assert entry["rules"][0]["basis"].startswith("geen grondslag")
    bad = CliRunner().invoke(main, ["rules", "register", str(folder), "--out", str(blocker / "o")])
    assert bad.exit_code == 2 and "--out" in bad.output


def test_the_legal_basis_holds_legal_articles_only_and_policy_goes_apart(
    register: tuple[Path, Path],
) -> None:
    """Found by a tester: lawful_basis was the union of every rule's basis, inspectorate
    recommendations (R1-R4) mixed with legal articles. A recommendation is no legal basis."""
    out, _ = register
    entry = json.loads((out / "algoritmeregister.json").read_text(encoding="utf-8"))
    legal = entry["lawful_basis"].split("; ")
    assert legal[0] == "art. 4 Wet op de DT&V (voorbeeld)", "the organisation's statement first"
    assert "art. 64 Vw 2000" in legal and "art. 56 Vw 2000" in legal
    assert any("Terugkeerrichtlijn" in part for part in legal)
    assert not any(re.search(r"\bR[1-4]\b|Inspectie", part) for part in legal), legal
    assert len(legal) == len(set(legal)), "de-duplicated"
    policy = entry["policy_basis"].split("; ")
    assert "R1 (Inspectie JenV, Verantwoord Vertrek, 2022)" in policy
    assert "R1 en R3 (Inspectie JenV, Verantwoord Vertrek, 2022)" in policy
    assert not any("art." in part for part in policy) and len(policy) == len(set(policy))


@pytest.mark.parametrize(
    ("text", "legal"),
    [
        ("art. 64 Vw 2000", True),
        ("artikel 35 AVG", True),
        ("art. 27 lid 1 sub l WOR", True),
        ("art. 10 lid 2 Terugkeerrichtlijn 2008/115/EG", True),
        ("Artikel 4:8 Awb", True),
        ("R1 (Inspectie JenV, Verantwoord Vertrek, 2022)", False),
        ("Werkinstructie vertrekgesprekken 2024, art. 3", False),
        ("art. 3", False),
    ],
)
def test_the_legal_article_heuristic(text: str, legal: bool) -> None:
    assert is_legal_article(text) is legal


def test_open_fields_are_named_and_exit_3_and_no_repository_paths(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "x-1.yaml").write_text(
        f"id: X-1\n{HEADER}basis: R2 (Inspectie JenV)\nwhen:\n  opened_on: {{older_than: 14d}}\n"
        "expected_action: Doe.\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["rules", "register", str(folder), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 3, result.output
    assert (tmp_path / "o" / "algoritmeregister.json").exists(), "written all the same"
    said = result.output.split("Nog in te vullen", 1)[1]
    for label, option in [
        ("Wettelijke basis", "--legal-basis"),
        ("Documentatie", "--documentation-url"),
        ("Contactgegevens", "--contact"),
        ("Website", "--website"),
        ("DPIA", "--dpia"),
        ("IAMA", "--iama"),
    ]:
        assert label in said and option in said, label
    entry = json.loads((tmp_path / "o" / "algoritmeregister.json").read_text())
    assert entry["documentation"] == TO_FILL and "docs/" not in json.dumps(entry)
    assert entry["lawful_basis"] == TO_FILL, "a recommendation is no legal basis"
    assert entry["policy_basis"] == "R2 (Inspectie JenV)"


def test_a_rule_in_shadow_is_marked(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    for rid, extra in (("X-1", ""), ("X-2", "mode: shadow\n")):
        (folder / f"{rid.lower()}.yaml").write_text(
            f"id: {rid}\n{HEADER}{extra}basis: art. 64 Vw 2000\n"
            "when:\n  opened_on: {older_than: 14d}\nexpected_action: Doe.\n",
            encoding="utf-8",
        )
    CliRunner().invoke(main, ["rules", "register", str(folder), "--out", str(tmp_path / "o")])
    entry = json.loads((tmp_path / "o" / "algoritmeregister.json").read_text())
    modes = {r["id"]: r["mode"] for r in entry["rules"]}
    assert modes == {"X-1": "in gebruik", "X-2": SHADOW_NL}
    markdown = (tmp_path / "o" / "algoritmeregister.md").read_text()
    x1, x2 = markdown.split("### X-2")
    assert SHADOW_NL in x2 and SHADOW_NL not in x1


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--website", "javascript:alert(1)"),
        ("--website", "file:///etc/passwd"),
        ("--website", "https://dtv.example/\x1b[31m"),
        ("--website", "https://dtv.example/a b"),
        ("--documentation-url", "ftp://dtv.example/docs"),
        ("--contact", "algoritmes@dtv.example\x1b[2J"),
        ("--contact", "Naam <algoritmes@dtv.example>"),
        ("--contact", "javascript:alert(1)//@x"),
        ("--contact", "geen adres"),
        ("--dpia", "DPIA\x1b[31m-1"),
        ("--iama", "IAMA \u202e1-AMAI"),
        ("--legal-basis", "art. 4\u200b Wet"),
    ],
)
def test_hostile_register_options_are_refused(tmp_path: Path, option: str, value: str) -> None:
    """Found by a tester: --website "javascript:alert(1)" was accepted and an ESC in
    --contact ended up in the published JSON."""
    out = tmp_path / "o"
    result = CliRunner().invoke(
        main, ["rules", "register", str(RULES), "--out", str(out), option, value]
    )
    assert result.exit_code == 2, result.output
    assert value not in result.output and option in result.output
    assert not out.exists(), "nothing written"
