"""The JSON Schemas in schema/: generated from the engine's tables, matching the loader."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from regiesignaal.engine.language.catalogue import FieldInfo
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import DATE_OPS, DERIVED_FILE, OPS_BY_TYPE
from regiesignaal.engine.language.schema import (
    DERIVED_SCHEMA_FILE,
    RULE_SCHEMA_FILE,
    build_derived_schema,
    build_rule_schema,
    main,
    render,
    stale_schemas,
)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
SCHEMAS = ROOT / "schema"


def plain(value: Any) -> Any:
    """YAML data as JSON data: what an editor validates (dates are text there)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def load_yaml(text: str) -> Any:
    return plain(YAML(typ="safe").load(text))


@pytest.fixture(scope="module")
def rule_validator() -> Draft202012Validator:
    schema = json.loads((SCHEMAS / RULE_SCHEMA_FILE).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def derived_validator() -> Draft202012Validator:
    schema = json.loads((SCHEMAS / DERIVED_SCHEMA_FILE).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def errors(validator: Draft202012Validator, data: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:160]}"
        for e in validator.iter_errors(data)
    ]


# ---------------------------------------------------------------- committed = generated


def test_committed_rule_schema_is_the_generated_one() -> None:
    committed = (SCHEMAS / RULE_SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == render(build_rule_schema(RULES)), "voer 'regiesignaal rules schema' uit"


def test_committed_derived_schema_is_the_generated_one() -> None:
    committed = (SCHEMAS / DERIVED_SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == render(build_derived_schema()), "voer 'regiesignaal rules schema' uit"


def test_check_mode_reports_a_stale_schema(tmp_path: Path) -> None:
    out = tmp_path / "schema"
    assert main(["--out", str(out), "--rules", str(RULES)]) == 0
    assert stale_schemas(out, RULES) == []
    assert main(["--check", "--out", str(out), "--rules", str(RULES)]) == 0
    # a new derived field makes the rule schema stale: it must know the new condition key
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    with (rules / DERIVED_FILE).open("a", encoding="utf-8") as f:
        f.write("\nnew_field_count:\n  description: Nieuw\n  count: contacts\n")
    assert stale_schemas(out, rules) == [out / RULE_SCHEMA_FILE]
    assert main(["--check", "--out", str(out), "--rules", str(rules)]) == 1
    fresh = build_rule_schema(rules)
    assert "new_field_count" in fresh["$defs"]["condition_map"]["properties"]


def test_schemas_are_valid_draft_2020_12() -> None:
    for name in (RULE_SCHEMA_FILE, DERIVED_SCHEMA_FILE):
        schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_condition_keys_are_the_catalogue() -> None:
    rd = load_rule_dir(RULES)
    props = build_rule_schema(RULES)["$defs"]["condition_map"]["properties"]
    assert set(props) == set(rd.catalogue.fields) | {"all", "any", "not"}
    assert "vertrekgesprek_count" in props and "person.amv" in props
    where = build_derived_schema()["$defs"]["where_interviews_map"]["properties"]
    assert {"kind", "checked.medical", "on"} <= set(where)


# ---------------------------------------------------------------- shipped files validate


def test_every_shipped_rule_validates(rule_validator: Draft202012Validator) -> None:
    rd = load_rule_dir(RULES)
    assert len(rd.rules) >= 20
    for rule in rd.rules:
        data = load_yaml(Path(rule.path).read_text(encoding="utf-8"))
        assert errors(rule_validator, data) == [], rule.path
    for tests_file in RULES.rglob("*.tests.yaml"):
        data = load_yaml(tests_file.read_text(encoding="utf-8"))
        assert errors(rule_validator, data) == [], tests_file


def test_shipped_derived_file_validates(derived_validator: Draft202012Validator) -> None:
    data = load_yaml((RULES / DERIVED_FILE).read_text(encoding="utf-8"))
    assert errors(derived_validator, data) == []


def test_a_tests_file_validates(rule_validator: Draft202012Validator) -> None:
    data = load_yaml(
        "rule: VG-FIRST\n"
        "tests:\n"
        "  - name: x\n"
        "    as_of: 2026-03-16\n"
        "    case:\n"
        "      opened_on: 2026-03-01\n"
        "      interviews: [{on: 2026-03-02, kind: intake, checked: {medical: true}}]\n"
        "    expect: fires\n"
    )
    assert errors(rule_validator, data) == []
    data["tests"][0]["expect"] = "gaat_af"
    assert errors(rule_validator, data)


# ---------------------------------------------------------------- broken files do not

VALID_RULE = """\
id: X-1
title: T
mail_title: M
severity: low
owner: team-kwaliteit
when:
  all:
    - opened_on: {older_than: 14d}
    - location_type: [vbl, detentie]
    - medical_check_count: 0
unless:
  - person.amv: true
expected_action: Doe iets.
escalate_after: 10wd
tests:
  - as_of: 2026-03-02
    case: {opened_on: 2026-01-01, person: {amv: false}}
    expect: fires
"""

BROKEN_RULES = {
    "unknown field": ("- location_type: [vbl, detentie]", "- locaton_type: [vbl, detentie]"),
    "unknown enum value": ("[vbl, detentie]", "[vbl, detenie]"),
    "bad duration unit": ("older_than: 14d", "older_than: 14x"),
    "bad escalate_after": ("escalate_after: 10wd", "escalate_after: tien"),
    "unknown operator": ("older_than: 14d", "olderthan: 14d"),
    "operator of another type": ("older_than: 14d", "gt: 3"),
    "wrong value type": ("person.amv: true", "person.amv: ja"),
    "if_missing on a count": (
        "medical_check_count: 0",
        "medical_check_count: {eq: 0, if_missing: true}",
    ),
    "missing on a count": ("medical_check_count: 0", "medical_check_count: missing"),
    "only if_missing": ("person.amv: true", "person.amv: {if_missing: true}"),
    "logic key not alone": ("  all:\n", "  status: open\n  all:\n"),
    "empty all": (
        "  all:\n    - opened_on: {older_than: 14d}\n    - location_type: [vbl, detentie]\n"
        "    - medical_check_count: 0\n",
        "  all: []\n",
    ),
    "missing required key": ("mail_title: M\n", ""),
    "unknown rule key": ("expected_action:", "expected_actoin:"),
    "unknown severity": ("severity: low", "severity: hoog"),
    "bad id": ("id: X-1", "id: x-1"),
    "list field used directly": ("- medical_check_count: 0", "- interviews: {present: true}"),
    "typo in a test case": ("person: {amv: false}", "persoon: {amv: false}"),
    "bad expect": ("expect: fires", "expect: gaat_af"),
    "bad test date": ("as_of: 2026-03-02", "as_of: 2 maart"),
}


def test_the_valid_rule_is_valid(rule_validator: Draft202012Validator, tmp_path: Path) -> None:
    assert errors(rule_validator, load_yaml(VALID_RULE)) == []
    shutil.copy(RULES / DERIVED_FILE, tmp_path / DERIVED_FILE)
    (tmp_path / "x-1.yaml").write_text(VALID_RULE, encoding="utf-8")
    rd = load_rule_dir(tmp_path)
    assert rd.problems == []


@pytest.mark.parametrize("case", sorted(BROKEN_RULES))
def test_a_broken_rule_does_not_validate(
    rule_validator: Draft202012Validator, tmp_path: Path, case: str
) -> None:
    old, new = BROKEN_RULES[case]
    assert old in VALID_RULE
    text = VALID_RULE.replace(old, new, 1)
    assert errors(rule_validator, load_yaml(text)), case
    # the loader refuses it as well (except for the unknown test-case field, which the loader
    # passes through and the schema flags as a likely typo)
    if case != "typo in a test case":
        shutil.copy(RULES / DERIVED_FILE, tmp_path / DERIVED_FILE)
        (tmp_path / "x-1.yaml").write_text(text, encoding="utf-8")
        assert load_rule_dir(tmp_path).problems, case


VALID_DERIVED = """\
last_vbl_on:
  description: Laatste VBL-maatregel
  latest: measures.from
  where:
    kind: vbl
  otherwise: opened_on
"""

BROKEN_DERIVED = {
    "unknown list": ("latest: measures.from", "latest: measure.from"),
    "field of the wrong type": ("latest: measures.from", "latest: measures.kind"),
    "filter field of another list": ("kind: vbl", "decision: vbl"),
    "filter value not in the enum": ("kind: vbl", "kind: vlb"),
    "two kinds": ("latest: measures.from", "latest: measures.from\n  count: measures"),
    "no kind": ("  latest: measures.from\n", ""),
    "otherwise with count": ("latest: measures.from", "count: measures"),
    "otherwise not a date field": ("otherwise: opened_on", "otherwise: team"),
    "name taken by a case field": ("last_vbl_on:", "opened_on:"),
    "bad name": ("last_vbl_on:", "Last-VBL:"),
    "no description": ("  description: Laatste VBL-maatregel\n", ""),
}


def test_the_valid_derived_file_is_valid(derived_validator: Draft202012Validator) -> None:
    assert errors(derived_validator, load_yaml(VALID_DERIVED)) == []


@pytest.mark.parametrize("case", sorted(BROKEN_DERIVED))
def test_a_broken_derived_file_does_not_validate(
    derived_validator: Draft202012Validator, tmp_path: Path, case: str
) -> None:
    old, new = BROKEN_DERIVED[case]
    assert old in VALID_DERIVED
    text = VALID_DERIVED.replace(old, new, 1)
    assert errors(derived_validator, load_yaml(text)), case
    (tmp_path / DERIVED_FILE).write_text(text, encoding="utf-8")
    assert load_rule_dir(tmp_path).problems, case


# ---------------------------------------------------------------- schema and loader agree

_CATALOGUE = load_rule_dir(RULES).catalogue.fields
_DURATIONS = st.builds(
    lambda n, u: f"{n}{u}", st.integers(0, 400), st.sampled_from(["d", "w", "wd"])
)
_DATES = st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31))
_TEXT = st.text("abcxyz-_ ", min_size=1, max_size=8).filter(
    lambda s: s.strip() not in ("missing", "present")
)


def _values(info: FieldInfo) -> st.SearchStrategy[Any]:
    if info.type == "enum":
        return st.sampled_from(info.values)
    if info.type == "bool":
        return st.booleans()
    if info.type == "int":
        return st.integers(-5, 500)
    if info.type == "date":
        return _DATES
    return _TEXT


@st.composite
def field_tests(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(_CATALOGUE)))
    info = _CATALOGUE[name]
    value = _values(info)
    forms = ["op"]
    if info.type != "list":
        forms += ["literal", "list"] if info.type not in ("bool", "date") else ["literal"]
    if not info.never_missing:
        forms.append("presence")
    form = draw(st.sampled_from(forms))
    if form == "literal":
        return {name: draw(value)}
    if form == "list":
        return {name: draw(st.lists(value, min_size=1, max_size=3))}
    if form == "presence":
        return {name: draw(st.sampled_from(["missing", "present"]))}
    op = draw(st.sampled_from(OPS_BY_TYPE[info.type]))
    if op in DATE_OPS:
        arg: Any = draw(_DURATIONS)
    elif op in ("in", "not_in"):
        arg = draw(st.lists(value, min_size=1, max_size=3))
    elif op in ("contains", "not_contains"):
        arg = draw(_TEXT)
    else:
        arg = draw(value)
    spec: dict[str, Any] = {op: arg}
    if not info.never_missing and info.type != "list" and draw(st.booleans()):
        spec["if_missing"] = draw(st.booleans())
    return {name: spec}


conditions = st.recursive(
    field_tests(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


def _dump(data: Any) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    return out.getvalue()


@given(when=conditions, unless=st.one_of(st.none(), conditions))
@settings(max_examples=150, deadline=None)
def test_every_condition_the_loader_accepts_the_schema_accepts(
    rule_validator: Draft202012Validator, when: Any, unless: Any
) -> None:
    rule: dict[str, Any] = {
        "id": "GEN-1",
        "title": "T",
        "mail_title": "M",
        "severity": "low",
        "owner": "o",
        "when": when,
        "expected_action": "A",
    }
    if unless is not None:
        rule["unless"] = unless
    text = _dump(rule)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(RULES / DERIVED_FILE, root / DERIVED_FILE)
        (root / "gen-1.yaml").write_text(text, encoding="utf-8")
        rd = load_rule_dir(root)
    assert rd.problems == [], "\n".join(str(p) for p in rd.problems) + "\n" + text
    assert errors(rule_validator, load_yaml(text)) == [], text


@given(
    name=st.sampled_from(sorted(_CATALOGUE)),
    op=st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
)
@settings(max_examples=100, deadline=None)
def test_unknown_operators_are_refused_by_both(
    rule_validator: Draft202012Validator, name: str, op: str
) -> None:
    info = _CATALOGUE[name]
    allowed = set(OPS_BY_TYPE[info.type])
    if not info.never_missing:
        allowed |= {"missing", "present", "if_missing"}
    if op in allowed:
        return
    text = VALID_RULE.replace("- opened_on: {older_than: 14d}", f"- {name}: {{{op}: 1}}")
    assert errors(rule_validator, load_yaml(text)), text
