"""`preview --diff` shows for a new or changed rule which existing rules flag its cases."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from regiesignaal.engine.language.evaluator import Hit
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.overlap import changed_rules, overlaps
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.pipeline import upgrade_store

RULES = Path(__file__).resolve().parent.parent / "rules"
AS_OF = dt.date(2026, 3, 2)

DUPLICATE = """id: CONTACT-DUP
title: Dubbel
mail_title: Dubbele regel
severity: low
owner: team-kwaliteit
when:
  latest_contact_on: {older_than: 45d}
unless:
  - location_type: [vbl, gezinslocatie, detentie]
expected_action: Neem contact op.
"""


def _candidate(tmp_path: Path) -> Path:
    cand = tmp_path / "candidate"
    shutil.copytree(RULES, cand)
    (cand / "contact-dup.yaml").write_text(DUPLICATE, encoding="utf-8")
    text = (cand / "vg-min3.yaml").read_text(encoding="utf-8")
    (cand / "vg-min3.yaml").write_text(text.replace("{older_than: 12w}", "{older_than: 10w}"))
    return cand


def test_new_and_changed_rules_are_found(tmp_path: Path) -> None:
    cand = load_rule_dir(_candidate(tmp_path))
    assert cand.ok, cand.problems
    assert changed_rules(cand, load_rule_dir(RULES)) == {
        "CONTACT-DUP": "nieuw",
        "VG-MIN3": "gewijzigd",
    }
    assert changed_rules(load_rule_dir(RULES), load_rule_dir(RULES)) == {}


def test_overlap_counts_cases_per_other_rule() -> None:
    def hit(case: str, rule: str) -> Hit:
        return Hit(case, rule, None, None, None)

    hits = [hit("A", "NEW"), hit("A", "OLD"), hit("B", "NEW"), hit("B", "OLD"), hit("B", "X")]
    hits += [hit("C", "OLD")]
    (o,) = overlaps(hits, {"NEW": "nieuw"})
    assert (o.cases, o.alone, o.also) == (2, 0, (("OLD", 2), ("X", 1)))
    assert "  ook door OLD: 2 zaken (100%)" in o.lines()
    assert any("is dit hetzelfde gat?" in line for line in o.lines())
    (lonely,) = overlaps([hit("D", "NEW")], {"NEW": "nieuw"})
    assert lonely.lines() == ["NEW (nieuw): 1 zaak; 1 zaak daarvan signaleert geen andere regel."]


@pytest.mark.slow
def test_preview_diff_shows_the_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(400, 9, AS_OF, cases, staff)
    engine = sa.create_engine(source_url)
    try:
        load_staff_file(engine, staff)
        load_cases(engine, cases)
    finally:
        engine.dispose()
    env = {
        "REGIESIGNAAL_SOURCE_URL": source_url,
        "REGIESIGNAAL_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
        "REGIESIGNAAL_RULES_DIR": str(RULES),
    }
    upgrade_store(load_settings(env=env))
    monkeypatch.chdir(tmp_path)
    args = ["preview", "--diff", "--rules", str(_candidate(tmp_path)), "--as-of", "2026-03-02"]
    out = CliRunner().invoke(main, args, env=env)
    assert out.exit_code == 0, out.output
    assert "Per gewijzigde regel:" in out.output
    assert "CONTACT-DUP (nieuw):" in out.output
    assert "ook door CONTACT-30D:" in out.output and "(100%)" in out.output
    assert "VG-MIN3 (gewijzigd):" in out.output
    as_json = CliRunner().invoke(main, [*args, "--format", "json"], env=env)
    assert '"overlap": "CONTACT-DUP"' in as_json.output
