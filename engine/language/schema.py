"""JSON Schemas (draft 2020-12) for rule files and ``derived.yaml``, generated, never hand-written.

Editors (VS Code with the Red Hat YAML extension, JetBrains, ...) use them to complete and
check rule files while they are typed. They are built from the same tables the loader in
``engine.language.rulefile`` checks against (the field catalogue, the operators per type, the rule
keys, severities, duration syntax), so they cannot drift: ``tests/test_schema.py`` compares
the committed files in ``schema/`` with a fresh build.

The schemas follow the loader closely but are a help for editors, not the judge:
``regiesignaal rules check`` is. Known differences: the schema cannot see that an id matches
the file name, duplicate ids or keys, or YAML tags; it flags unknown fields in a test's case
(the loader passes them through, but rules cannot read them, so they are almost always
typos). The keywords used are those editors support well (also in draft 7): ``$ref`` to
``$defs``, ``anyOf``/``oneOf``/``allOf``, ``if``/``then``/``else``, ``enum``, ``pattern``.

Regenerate after adding a derived field: ``regiesignaal rules schema`` (``--check`` only
compares and exits 1 when the committed files are out of date).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from regiesignaal.engine.language.casefile import CASE_SPEC, Field, Group
from regiesignaal.engine.language.catalogue import (
    TYPE_NAMES_NL,
    FieldInfo,
    case_fields,
    list_groups,
    record_fields,
)
from regiesignaal.engine.language.dates import _DURATION
from regiesignaal.engine.language.packaged import PACKAGED_RULES_DIR, PACKAGED_SCHEMA_DIR
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import (
    BASIS_MAX,
    CHALLENGE_MAX,
    DATE_OPS,
    DERIVED_KINDS,
    DERIVED_NAME,
    EXPECT_VALUES,
    KINDS,
    LOGIC_KEYS,
    MAIL_CODE,
    MODES,
    OPS_BY_TYPE,
    RULE_ID,
    RULE_KEYS,
    SEVERITIES,
    SINCE_LABEL_MAX,
    TEST_KEYS,
)

Schema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_RULES = PACKAGED_RULES_DIR
SCHEMA_DIR = PACKAGED_SCHEMA_DIR
RULE_SCHEMA_FILE = "rule.schema.json"
DERIVED_SCHEMA_FILE = "derived.schema.json"

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
NONBLANK = r"\S"

OP_DESCRIPTIONS = {
    "eq": "gelijk aan",
    "ne": "ongelijk aan (een ontbrekend veld: onwaar, tenzij if_missing: true)",
    "lt": "kleiner dan / eerder dan",
    "le": "kleiner dan of gelijk aan / op of vóór",
    "gt": "groter dan / later dan",
    "ge": "groter dan of gelijk aan / op of na",
    "in": "een van deze waarden",
    "not_in": "geen van deze waarden (een ontbrekend veld: onwaar, tenzij if_missing: true)",
    "contains": "de lijst bevat deze waarde",
    "not_contains": "de lijst bevat deze waarde niet (ook waar bij een lege lijst)",
    "older_than": "meer dan deze duur vóór de peildatum, bijv. 14d, 12w, 10wd",
    "newer_than": "niet meer dan deze duur vóór de peildatum (ook elke datum in de toekomst)",
    "within_last": "in de laatste periode: van peildatum min de duur tot en met de peildatum",
    "within_next": "in de komende periode: van de peildatum tot en met peildatum plus de duur",
    "missing": "true: het veld ontbreekt; false: het veld is ingevuld",
    "present": "true: het veld is ingevuld; false: het veld ontbreekt",
    "if_missing": "uitkomst van de vergelijking als het veld ontbreekt (standaard false)",
}

RULE_KEY_DESCRIPTIONS = {
    "id": "Unieke code van de regel in hoofdletters, cijfers en streepjes, bijv. MED-CHECK. "
    "De bestandsnaam is de id in kleine letters: med-check.yaml.",
    "title": "Titel van de regel voor regievoerders en teamleiders.",
    "mail_title": "Neutrale titel die in e-mail mag staan: geen namen, nummers of "
    "medische details.",
    "mail_code": "Neutrale code die in e-mail naast de titel staat, bijv. R07 (een "
    "hoofdletter en 1 tot 4 cijfers); weglaten: alleen de titel. Nooit de id van de regel.",
    "severity": "Ernst: low, medium, high of critical.",
    "owner": "Wie de regel beheert, bijv. team-kwaliteit.",
    "basis": "Waar de regel op berust, kort (één regel, hooguit 120 tekens): een aanbeveling "
    "R1-R4 van het Inspectierapport Verantwoord Vertrek, een werkinstructie of een wetsartikel, "
    "bijv. 'R3 Inspectie JenV, Verantwoord Vertrek (2022)' of 'art. 64 Vw 2000'. Staat in het "
    "register ('regiesignaal rules register').",
    "description": "Uitleg: wat de regel signaleert en waarom (bevinding of aanbeveling).",
    "enabled": "false zet de regel uit (hij gaat dan nooit af). Standaard true.",
    "effective": "Periode waarin de regel geldt: {from: JJJJ-MM-DD, until: JJJJ-MM-DD}.",
    "when": "De voorwaarden waaronder de regel afgaat.",
    "unless": "Uitzonderingen: gaat een van deze voorwaarden op, dan gaat de regel niet af.",
    "expected_action": "Wat de regievoerder moet doen; staat in de e-mail.",
    "escalate_after": "Hoe lang een signaal open mag staan voor het escaleert, bijv. 10wd "
    "(werkdagen), 14d (dagen) of 2w (weken).",
    "overdue": "Termijn verstreken: {when: <voorwaarde>, severity: <hogere ernst>}. Geldt "
    "'when' van dit blok (en niet 'unless'), dan blijft het signaal open met de hogere ernst.",
    "max_explanation": "Hoe lang een toelichting een signaal van deze regel hooguit stil "
    "houdt, bijv. 90d; een langere toelichting wordt ingekort en gemeld.",
    "kind": "Wat de regel vraagt: actie (iets doen, standaard) of vastlegging (iets "
    "vastleggen). Per zaak staan vastleggingen samen op één regel in de e-mail.",
    "covers": "Regels die hetzelfde gat op dezelfde zaak signaleren: zolang deze regel afgaat "
    "(zonder toelichting), staan hun signalen niet apart in de e-mail, bijv. [MED-CHECK].",
    "warn_before": "Waarschuw zo lang voordat de regel zou afgaan als er niets verandert, "
    "bijv. 5wd; de zaak staat dan onder 'Binnenkort' met de uiterste datum.",
    "since": "De datum waarop het gat begon: een datumveld, of {field: ..., after: 30d, "
    "label: ...}; de e-mail toont '<label> <datum>' en de ouderdom telt vanaf die datum.",
    "challenge": "De vraag die dit signaal aan het lokaal ketenoverleg stelt (tegenspraak); "
    "zet de zaak op de agenda. Neutraal, zoals mail_title.",
    "mode": "Hoe de regel draait: live (standaard: gemaild) of shadow (proefdraaien: elke "
    "nacht geëvalueerd en in het regelrapport geteld, nergens gemaild). 'regiesignaal rules "
    "promote ID' maakt hem live.",
    "tests": "Testgevallen: een zaak, een peildatum en of de regel dan afgaat.",
}


# ------------------------------------------------------------------ pieces


def _text(description: str) -> Schema:
    return {"type": "string", "pattern": NONBLANK, "description": description}


def _date(description: str = "Datum JJJJ-MM-DD") -> Schema:
    return {"type": "string", "pattern": DATE_PATTERN, "format": "date", "description": description}


def _duration() -> Schema:
    return {
        "type": "string",
        "pattern": _DURATION.pattern,
        "description": "Duur: een getal met d (dagen), w (weken) of wd (werkdagen: maandag "
        "tot en met vrijdag zonder Nederlandse feestdagen), bijv. 14d, 12w, 10wd.",
    }


def _literal(info: FieldInfo) -> Schema:
    """A single value of a field's type, as it is written in a rule."""
    if info.type == "enum":
        return {"enum": list(info.values)}
    if info.type == "date":
        return _date()
    return {"type": {"str": "string", "bool": "boolean", "int": "integer"}[info.type]}


def _field_label(info: FieldInfo) -> str:
    kind = TYPE_NAMES_NL[info.type]
    if info.values:
        kind += ": " + ", ".join(info.values)
    origin = ", afgeleid veld" if info.origin == "afgeleid" else ""
    return f"{info.description} ({kind}{origin})"


def _op_schema(info: FieldInfo, op: str) -> Schema:
    if op in DATE_OPS:
        schema = _duration()
    elif op in ("in", "not_in"):
        schema = {"type": "array", "minItems": 1, "items": _literal(info)}
    elif op in ("contains", "not_contains"):
        schema = {"type": "string"}
    else:
        schema = _literal(info)
    return {**schema, "description": OP_DESCRIPTIONS[op]}


def field_test_schema(info: FieldInfo) -> Schema:
    """What may follow ``field:`` in a condition, for one field of the catalogue."""
    ops = OPS_BY_TYPE[info.type]
    props: Schema = {op: _op_schema(info, op) for op in ops}
    forms: list[Schema] = []
    if not info.never_missing:
        for op in ("missing", "present"):
            props[op] = {"type": "boolean", "description": OP_DESCRIPTIONS[op]}
        if info.type != "list":
            props["if_missing"] = {"type": "boolean", "description": OP_DESCRIPTIONS["if_missing"]}
        forms.append(
            {
                "enum": ["missing", "present"],
                "description": "missing: het veld ontbreekt; present: het veld is ingevuld",
            }
        )
    if "eq" in ops:
        forms.append({**_literal(info), "description": "kort voor {eq: waarde}"})
    if "in" in ops:
        forms.append(
            {
                "type": "array",
                "minItems": 1,
                "items": _literal(info),
                "description": "kort voor {in: [...]}",
            }
        )
    real_ops = [op for op in props if op != "if_missing"]
    forms.append(
        {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
            "anyOf": [{"required": [op]} for op in real_ops],
        }
    )
    return {"description": _field_label(info), "anyOf": forms}


def condition_defs(name: str, fields: Mapping[str, FieldInfo]) -> Schema:
    """``$defs`` for a condition over ``fields``: ``<name>`` and ``<name>_map``."""
    ref = {"$ref": f"#/$defs/{name}"}
    cond_list = {"type": "array", "minItems": 1, "items": ref}
    props: Schema = {
        "all": {**cond_list, "description": "alle voorwaarden in de lijst gelden"},
        "any": {**cond_list, "description": "minstens één voorwaarde in de lijst geldt"},
        "not": {**ref, "description": "de voorwaarde geldt niet"},
    }
    assert set(props) == set(LOGIC_KEYS), "a logic key of the rule language has no schema"
    for fname in sorted(fields):
        props[fname] = field_test_schema(fields[fname])
    return {
        name: {
            "description": "Een voorwaarde, of een lijst van voorwaarden die alle gelden.",
            "anyOf": [cond_list, {"$ref": f"#/$defs/{name}_map"}],
        },
        f"{name}_map": {
            "type": "object",
            "minProperties": 1,
            "properties": props,
            "additionalProperties": False,
            "allOf": [
                {
                    "if": {"anyOf": [{"required": [k]} for k in LOGIC_KEYS]},
                    "then": {"maxProperties": 1},
                }
            ],
        },
    }


def _spec_value(spec: Field) -> Schema:
    if spec.type == "enum":
        base: Schema = {"enum": list(spec.values)}
    elif spec.type == "date":
        base = _date()
    else:
        base = {"type": {"str": "string", "bool": "boolean", "int": "integer"}[spec.type]}
    base["description"] = spec.description
    if not spec.required:
        base = {"description": spec.description, "anyOf": [base, {"type": "null"}]}
    return base


def _case_object(specs: tuple[Field | Group, ...], description: str) -> Schema:
    props: Schema = {}
    required = []
    for spec in specs:
        if isinstance(spec, Field):
            props[spec.name] = _spec_value(spec)
            if spec.required:
                required.append(spec.name)
        elif spec.is_list:
            props[spec.name] = {
                "description": spec.description,
                "anyOf": [
                    {"type": "array", "items": _case_object(spec.fields, spec.description)},
                    {"type": "null"},
                ],
            }
        else:
            props[spec.name] = {
                "description": spec.description,
                "anyOf": [_case_object(spec.fields, spec.description), {"type": "null"}],
            }
    out: Schema = {
        "type": "object",
        "description": description,
        "properties": props,
        "additionalProperties": False,
    }
    if required:
        out["required"] = required
    return out


def case_schema() -> Schema:
    """A test case: the case-file contract; case_ref, status and opened_on have defaults."""
    schema = _case_object(
        CASE_SPEC,
        "De testzaak: velden van het zaakbestand. case_ref, status en opened_on mogen "
        "ontbreken (standaard: TEST-1, open en de peildatum).",
    )
    schema.pop("required", None)
    return schema


def _test_schema() -> Schema:
    props: Schema = {
        "name": {"type": "string", "description": "Naam van het testgeval"},
        "as_of": _date("De peildatum van de test (JJJJ-MM-DD)"),
        "case": {"$ref": "#/$defs/case"},
        "expect": {
            "enum": list(EXPECT_VALUES),
            "description": "fires: de regel gaat af; does_not_fire: de regel gaat niet af",
        },
        "severity": {
            "enum": list(SEVERITIES),
            "description": "Alleen bij expect: fires: de ernst die het signaal moet hebben "
            "(hoger als de termijn verstreken is, zie 'overdue')",
        },
    }
    _same_keys(props, TEST_KEYS, "test")
    return {
        "type": "object",
        "properties": props,
        "required": [k for k, req in TEST_KEYS.items() if req],
        "additionalProperties": False,
    }


def _same_keys(props: Mapping[str, Any], keys: Mapping[str, bool], what: str) -> None:
    if set(props) != set(keys):
        raise RuntimeError(
            f"schema for {what} out of step with engine.language.rulefile: {set(keys)}"
        )


# ------------------------------------------------------------------ rule schema


def build_rule_schema(ruledir: Path | str = DEFAULT_RULES) -> Schema:
    """The schema for rule files (and ``<name>.tests.yaml``), with the derived fields of
    ``ruledir/derived.yaml`` as condition keys beside the case fields."""
    catalogue = load_rule_dir(Path(ruledir)).catalogue
    tests = {"type": "array", "items": {"$ref": "#/$defs/test"}}
    props: Schema = {
        "id": {"type": "string", "pattern": RULE_ID.pattern},
        "title": _text(""),
        "mail_title": _text(""),
        "mail_code": {"type": "string", "pattern": MAIL_CODE.pattern},
        "severity": {"enum": list(SEVERITIES)},
        "owner": _text(""),
        "basis": {"type": "string", "pattern": r"^[^\n]*\S[^\n]*\n?$", "maxLength": BASIS_MAX},
        "description": _text(""),
        "enabled": {"type": "boolean"},
        "effective": {
            "type": "object",
            "properties": {
                "from": {"anyOf": [_date("Eerste dag waarop de regel geldt"), {"type": "null"}]},
                "until": {"anyOf": [_date("Laatste dag waarop de regel geldt"), {"type": "null"}]},
            },
            "additionalProperties": False,
        },
        "when": {"$ref": "#/$defs/condition"},
        "unless": {"anyOf": [{"$ref": "#/$defs/condition"}, {"type": "null"}]},
        "expected_action": _text(""),
        "escalate_after": {"anyOf": [_duration(), {"type": "null"}]},
        "overdue": {
            "type": "object",
            "properties": {
                "when": {"$ref": "#/$defs/condition"},
                "severity": {"enum": list(SEVERITIES)},
            },
            "required": ["when", "severity"],
            "additionalProperties": False,
        },
        "max_explanation": {"anyOf": [_duration(), {"type": "null"}]},
        "kind": {"enum": list(KINDS)},
        "mode": {"enum": list(MODES)},
        "covers": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": RULE_ID.pattern},
        },
        "warn_before": _duration(),
        "since": {
            "anyOf": [
                {"enum": sorted(n for n, f in catalogue.fields.items() if f.type == "date")},
                {
                    "type": "object",
                    "properties": {
                        "field": {
                            "enum": sorted(
                                n for n, f in catalogue.fields.items() if f.type == "date"
                            )
                        },
                        "after": _duration(),
                        "label": {**_text(""), "maxLength": SINCE_LABEL_MAX},
                    },
                    "required": ["field"],
                    "additionalProperties": False,
                },
            ]
        },
        "challenge": {**_text(""), "maxLength": CHALLENGE_MAX},
        "tests": tests,
    }
    _same_keys(props, RULE_KEYS, "rule")
    for key, text in RULE_KEY_DESCRIPTIONS.items():
        props[key] = {**props[key], "description": text}
    defs: Schema = {
        "rule": {
            "type": "object",
            "description": "Een regel: één bestand per regel.",
            "properties": props,
            "required": [k for k, req in RULE_KEYS.items() if req],
            "additionalProperties": False,
        },
        "tests_file": {
            "type": "object",
            "description": "Tests naast een regel (<naam>.tests.yaml).",
            "properties": {
                "rule": {
                    "type": "string",
                    "pattern": RULE_ID.pattern,
                    "description": "De id van de regel die getest wordt",
                },
                "tests": {**tests, "description": RULE_KEY_DESCRIPTIONS["tests"]},
            },
            "required": ["rule", "tests"],
            "additionalProperties": False,
        },
        "test": _test_schema(),
        "case": case_schema(),
        **condition_defs("condition", catalogue.fields),
    }
    return {
        "$schema": DRAFT,
        "title": "regiesignaal: regelbestand",
        "description": "Een regel van regiesignaal, of tests naast een regel (met 'rule:'). "
        "Gegenereerd door engine/language/schema.py; niet met de hand aanpassen.",
        "if": {"type": "object", "required": ["rule"]},
        "then": {"$ref": "#/$defs/tests_file"},
        "else": {"$ref": "#/$defs/rule"},
        "$defs": defs,
    }


# ------------------------------------------------------------------ derived schema


def _refs(types: tuple[str, ...]) -> list[str]:
    out = []
    for group in list_groups():
        for name, info in record_fields(group).items():
            if info.type in types:
                out.append(f"{group}.{name}")
    return out


def build_derived_schema() -> Schema:
    """The schema for ``derived.yaml``: a block of ``name: definition``."""
    groups = list(list_groups())
    known_case = case_fields()

    def source(types: tuple[str, ...], text: str) -> Schema:
        one = {"enum": _refs(types)}
        return {
            "description": text,
            "anyOf": [one, {"type": "array", "minItems": 1, "items": one}],
        }

    kinds: Schema = {
        "latest": source(("date",), "De laatste datum uit een of meer lijsten, bijv. contacts.on"),
        "earliest": source(("date",), "De eerste datum uit een of meer lijsten"),
        "count": {"enum": groups, "description": "Het aantal records in de lijst"},
        "exists": {"enum": groups, "description": "true als de lijst minstens één record heeft"},
        "values": source(("str", "enum"), "De verschillende waarden van een tekstveld"),
        "days_between": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "string"},
            "description": "Aantal dagen van de eerste tot de tweede datum (negatief als de "
            "tweede eerder ligt): datumvelden van de zaak of eerder gedeclareerde "
            "latest/earliest-velden, bijv. [booking.departure_on, medical.art64_until]",
        },
    }
    if set(kinds) != set(DERIVED_KINDS):
        raise RuntimeError("schema for derived.yaml out of step with engine.language.rulefile")
    props: Schema = {
        "description": _text("Wat het veld betekent (verschijnt in 'regiesignaal rules fields')"),
        **kinds,
        "where": {
            "description": "Filter: alleen records die aan deze voorwaarde voldoen tellen mee. "
            "De velden zijn die van de records van de lijst."
        },
        "otherwise": {
            "enum": sorted(n for n, f in known_case.items() if f.type == "date"),
            "description": "Bij latest/earliest: dit datumveld van de zaak als de lijst leeg is",
        },
    }

    def refers_to(group: str) -> Schema:
        prefix = {"type": "string", "pattern": f"^{group}\\."}
        by_ref = {"anyOf": [prefix, {"type": "array", "items": prefix}]}
        options: list[Schema] = [
            {"required": [k], "properties": {k: {"const": group}}} for k in ("count", "exists")
        ]
        options += [
            {"required": [k], "properties": {k: by_ref}} for k in ("latest", "earliest", "values")
        ]
        return {"anyOf": options}

    rules: list[Schema] = [
        {
            "if": {"required": ["otherwise"]},
            "then": {"anyOf": [{"required": ["latest"]}, {"required": ["earliest"]}]},
        },
        {
            "if": {"required": ["where"]},
            "then": {"anyOf": [refers_to(g) for g in groups]},
        },
    ]
    rules += [
        {"if": refers_to(g), "then": {"properties": {"where": {"$ref": f"#/$defs/where_{g}"}}}}
        for g in groups
    ]
    defs: Schema = {
        "derived_field": {
            "type": "object",
            "properties": props,
            "required": ["description"],
            "additionalProperties": False,
            "oneOf": [{"required": [k]} for k in DERIVED_KINDS],
            "allOf": rules,
        }
    }
    for g in groups:
        defs.update(condition_defs(f"where_{g}", record_fields(g)))
    return {
        "$schema": DRAFT,
        "title": "regiesignaal: afgeleide velden (derived.yaml)",
        "description": "Afgeleide velden: waarden berekend uit de lijsten van een zaak. "
        "Gegenereerd door engine/language/schema.py; niet met de hand aanpassen.",
        "type": ["object", "null"],
        "propertyNames": {
            "pattern": DERIVED_NAME.pattern,
            "not": {"enum": sorted(known_case)},
        },
        "additionalProperties": {"$ref": "#/$defs/derived_field"},
        "$defs": defs,
    }


# ------------------------------------------------------------------ files


def render(schema: Schema) -> str:
    """The committed form: stable key order as built, two-space indent, final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def expected_files(ruledir: Path | str = DEFAULT_RULES) -> dict[str, str]:
    return {
        RULE_SCHEMA_FILE: render(build_rule_schema(ruledir)),
        DERIVED_SCHEMA_FILE: render(build_derived_schema()),
    }


def write_schemas(
    outdir: Path | str = SCHEMA_DIR, ruledir: Path | str = DEFAULT_RULES
) -> list[Path]:
    """Write both schema files; returns the files that changed."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in expected_files(ruledir).items():
        path = out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale_schemas(
    outdir: Path | str = SCHEMA_DIR, ruledir: Path | str = DEFAULT_RULES
) -> list[Path]:
    """The schema files that differ from a fresh build (or are missing)."""
    out = Path(outdir)
    return [
        out / name
        for name, text in expected_files(ruledir).items()
        if not (out / name).exists() or (out / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Genereer de JSON Schemas voor regelbestanden.")
    parser.add_argument("--rules", default=str(DEFAULT_RULES), help="map met regels")
    parser.add_argument("--out", default=str(SCHEMA_DIR), help="map voor de schema's")
    parser.add_argument("--check", action="store_true", help="alleen controleren, niet schrijven")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_schemas(args.out, args.rules)
        for path in stale:
            print(f"{path}: verouderd; voer 'regiesignaal rules schema' uit")
        return 1 if stale else 0
    for path in write_schemas(args.out, args.rules):
        print(f"{path} bijgewerkt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
