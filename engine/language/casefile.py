"""The case-file contract (DESIGN section 7): field names, types and Dutch descriptions.

One declarative spec serves three purposes:
- parsing and validating a case plan (JSONL import, rule-file tests) with `parse_case`;
- the field catalogue that rule files are type-checked against (see `engine.language.catalogue`);
- the staff directory contract (`parse_staff`).

The in-memory shape of a case is the JSON shape, with dates as `datetime.date`.
Absent optional scalars are omitted or None; absent lists are empty lists; absent
sub-objects (person, vertrekplan, medical, booking) are empty dicts.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ScalarType = Literal["str", "bool", "int", "date", "enum"]


@dataclass(frozen=True)
class Field:
    name: str
    type: ScalarType
    description: str
    values: tuple[str, ...] = ()  # for enums
    required: bool = False


@dataclass(frozen=True)
class Group:
    """A nested object (``person``) or a list of records (``interviews[]``)."""

    name: str
    description: str
    fields: tuple[Field | Group, ...]
    is_list: bool = False
    required: bool = False


def _f(name: str, type_: ScalarType, desc: str, *values: str, required: bool = False) -> Field:
    return Field(name, type_, desc, tuple(values), required)


CASE_SPEC: tuple[Field | Group, ...] = (
    _f("case_ref", "str", "pseudoniem zaakkenmerk (nooit het V-nummer)", required=True),
    _f("status", "enum", "status van het vertrekplan", "open", "closed", required=True),
    _f("opened_on", "date", "datum van overdracht aan DT&V", required=True),
    _f("source", "enum", "aanleverende partij", "IND", "politie", "KMar", "overig"),
    _f("regievoerder", "str", "medewerker-id van de regievoerder"),
    _f("specialist", "bool", "regievoerder bijzonder vertrek toegewezen"),
    _f("team", "str", "team-id"),
    _f(
        "location_type",
        "enum",
        "soort verblijfslocatie",
        "azc",
        "vbl",
        "gezinslocatie",
        "detentie",
        "geen",
    ),
    Group(
        "person",
        "gegevens over de vreemdeling (geen naam of geboortedatum)",
        (
            _f("birth_year", "int", "geboortejaar"),
            _f("minor", "bool", "minderjarig"),
            _f("amv", "bool", "alleenstaande minderjarige vreemdeling"),
            _f("household_minors", "int", "aantal minderjarigen in het huishouden"),
            _f("language", "str", "voorkeurstaal"),
            _f("interpreter_needed", "bool", "tolk nodig"),
            _f("gemachtigde", "bool", "heeft een gemachtigde (advocaat)"),
        ),
    ),
    _f("departure_term_ends_on", "date", "einde van de vertrektermijn"),
    Group(
        "vertrekplan",
        "het vertrekplan",
        (
            _f("updated_on", "date", "laatst bijgewerkt"),
            _f(
                "strategy",
                "enum",
                "vertrekstrategie",
                "zelfstandig",
                "iom",
                "gedwongen",
                "onbekend",
            ),
            _f("strategy_updated_on", "date", "strategie laatst bijgewerkt"),
            _f(
                "documents_status",
                "enum",
                "stand van de reisdocumenten",
                "aanwezig",
                "aangevraagd",
                "ontbreekt",
                "onbekend",
            ),
            _f("support", "enum", "vertrekondersteuning", "geen", "iom", "reintegratie"),
        ),
    ),
    Group(
        "interviews",
        "gesprekken",
        (
            _f("on", "date", "datum van het gesprek", required=True),
            _f("kind", "enum", "soort gesprek", "vertrekgesprek", "intake", "overig"),
            _f("language", "str", "gesprekstaal"),
            _f("interpreter", "bool", "tolk aanwezig"),
            Group(
                "checked",
                "getoetste bijzondere omstandigheden",
                (
                    _f("medical", "bool", "medische omstandigheden getoetst"),
                    _f("hardship", "bool", "schrijnende omstandigheden getoetst"),
                    _f("trafficking", "bool", "signalen mensenhandel getoetst"),
                ),
            ),
        ),
        is_list=True,
    ),
    Group(
        "contacts",
        "contactmomenten",
        (
            _f("on", "date", "datum van het contact", required=True),
            _f(
                "channel",
                "enum",
                "kanaal",
                "persoonlijk",
                "telefonisch",
                "schriftelijk",
                "video",
            ),
            _f("by", "str", "medewerker-id"),
        ),
        is_list=True,
    ),
    Group(
        "medical_checks",
        "medische checks",
        (
            _f("on", "date", "datum van de medische check", required=True),
            _f(
                "outcome",
                "enum",
                "uitkomst",
                "geen_bijzonderheden",
                "aandachtspunt",
                "bma_nodig",
            ),
        ),
        is_list=True,
    ),
    Group(
        "medical",
        "medische stand van zaken (alleen data en vlaggen, geen medische details)",
        (
            _f("signal_on", "date", "datum van het medisch signaal"),
            _f("bma_requested_on", "date", "BMA-advies aangevraagd op"),
            _f("bma_advice_on", "date", "BMA-advies ontvangen op"),
            _f("no_action_recorded_on", "date", "gemotiveerd besluit geen actie vastgelegd op"),
            _f("travel_conditions", "bool", "BMA heeft reisvoorwaarden gesteld"),
            _f("conditions_in_plan", "bool", "reisvoorwaarden opgenomen in het vertrekplan"),
            _f("art64_until", "date", "uitstel van vertrek (art. 64 Vw) tot"),
            _f("art64_reassessed_on", "date", "herbeoordeling art. 64 uitgevoerd op"),
        ),
    ),
    Group(
        "departure_wishes",
        "vertrekwensen",
        (
            _f("recorded_on", "date", "vastgelegd op", required=True),
            _f("destination", "str", "gewenste bestemming (landcode)"),
            _f("explored_on", "date", "onderzocht op"),
            _f(
                "outcome",
                "enum",
                "uitkomst",
                "haalbaar",
                "niet_haalbaar",
                "in_onderzoek",
            ),
        ),
        is_list=True,
    ),
    Group(
        "measures",
        "maatregelen",
        (
            _f("kind", "enum", "soort maatregel", "vbl", "detentie", "meldplicht", required=True),
            _f("from", "date", "ingangsdatum", required=True),
            _f("until", "date", "einddatum"),
        ),
        is_list=True,
    ),
    Group(
        "lko",
        "besprekingen in het lokaal ketenoverleg",
        (
            _f("on", "date", "datum van het overleg", required=True),
            _f(
                "decision",
                "enum",
                "besluit",
                "zelfstandig",
                "gedwongen",
                "vbl",
                "bewaring",
                "aanhouden",
            ),
            _f("challenge_recorded", "bool", "tegenspraak vastgelegd"),
        ),
        is_list=True,
    ),
    Group(
        "booking",
        "geboekt vertrek",
        (
            _f("departure_on", "date", "vertrekdatum"),
            _f("removability_checked_on", "date", "verwijderbaarheidscheck uitgevoerd op"),
            _f("reception_checked_on", "date", "adequate opvang (AMV) gecontroleerd op"),
        ),
    ),
    Group(
        "explanations",
        "toelichtingen: waarom een regel niet van toepassing is",
        (
            _f("rule", "str", "id van de regel", required=True),
            _f("reason", "str", "reden", required=True),
            _f("until", "date", "geldig tot en met", required=True),
            _f("by", "str", "medewerker-id"),
        ),
        is_list=True,
    ),
)

# The reasons an explanation may give (issue 18), code -> Dutch label. In the case file and
# on the command line an explanation's ``reason`` is a code, optionally followed by a colon
# and free text ("wacht_op_ketenpartner: IND beslist eind maart"); ``anders`` needs the text.
# Older free text that starts with no code counts as ``anders`` with that text.
EXPLANATION_REASONS: dict[str, str] = {
    "niet_van_toepassing": "niet van toepassing",
    "elders_geregeld": "elders geregeld",
    "wacht_op_ketenpartner": "wacht op ketenpartner",
    "vastlegging_volgt": "vastlegging volgt",
    "werkt_niet_mee": "vreemdeling werkt niet mee",
    "anders": "anders",
}
REASON_OTHER = "anders"


def parse_reason(text: str) -> tuple[str, str]:
    """(reason code, free text) of an explanation's ``reason``: ``code`` or ``code: text``;
    anything else is ``anders`` with the whole text."""
    head, sep, rest = text.partition(":")
    code = head.strip().lower()
    if code in EXPLANATION_REASONS and (sep or not rest):
        return code, rest.strip()
    return REASON_OTHER, text.strip()


def format_reason(code: str, text: str = "") -> str:
    """The stored form of a reason: ``code`` or ``code: text``."""
    return f"{code}: {text.strip()}" if text.strip() else code


STAFF_SPEC: tuple[Field, ...] = (
    _f("id", "str", "medewerker-id", required=True),
    _f("name", "str", "naam", required=True),
    _f("email", "str", "e-mailadres"),
    _f("role", "enum", "rol", "regievoerder", "teamleider", "beleid", required=True),
    _f("team", "str", "team-id"),
)

# The date that places a record in time. Records dated after the as-of date (planned
# interviews, future measures) do not count in derived fields: everything is evaluated
# as it stood on the as-of date.
RECORD_DATE: dict[str, str] = {
    "interviews": "on",
    "contacts": "on",
    "medical_checks": "on",
    "departure_wishes": "recorded_on",
    "measures": "from",
    "lko": "on",
}

OBJECT_GROUPS = tuple(g.name for g in CASE_SPEC if isinstance(g, Group) and not g.is_list)
LIST_GROUPS = tuple(g.name for g in CASE_SPEC if isinstance(g, Group) and g.is_list)


@dataclass
class CaseFileError(ValueError):
    """A problem in one case record; ``path`` names the field (``interviews[2].on``)."""

    path: str
    message: str
    hint: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"


def _kind(value: Any) -> str:
    """What a wrong value is, without showing it: messages and logs never echo case data."""
    if isinstance(value, bool):
        return "ja/nee-waarde"
    if isinstance(value, int | float):
        return "getal"
    if isinstance(value, str):
        return f"tekst van {len(value)} tekens"
    if isinstance(value, list):
        return "lijst"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def shown_key(value: str) -> str:
    """A key (case_ref, staff id) safe to put in a message or log line: control
    characters, quotes and backslashes escaped (``\\n``), so no line can be forged."""
    if re.search(r'[\x00-\x1f\x7f-\x9f"\\]', value) or any(
        unicodedata.category(ch) in ("Cf", "Zl", "Zp") for ch in value
    ):
        return value.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return value


def to_date(value: Any) -> dt.date | None:
    """A date from a date, a datetime or an ISO string (``2026-03-01``); None otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_date(value: Any, path: str) -> dt.date:
    day = to_date(value)
    if day is not None:
        return day
    raise CaseFileError(
        path, f"geen datum ({_kind(value)})", "gebruik JJJJ-MM-DD, bijv. 2026-03-01"
    )


STRICT_CHOICES = frozenset({"status", "role"})
"""Choice fields whose unknown value is always refused: the case's status (an unknown one
would make the run treat an open case as gone) and a staff member's role (who gets mail)."""


def _parse_scalar(spec: Field, value: Any, path: str, unknown: Counter[str] | None) -> Any:
    if value is None:
        if spec.required:
            raise CaseFileError(path, "verplicht veld is leeg")
        return None
    if spec.type == "date":
        return parse_date(value, path)
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
        raise CaseFileError(path, f"geen true/false ({_kind(value)})")
    if spec.type == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise CaseFileError(path, f"geen geheel getal ({_kind(value)})")
    if not isinstance(value, str):
        raise CaseFileError(path, f"geen tekst ({_kind(value)})")
    if spec.type == "enum" and value not in spec.values:
        if unknown is not None and path not in STRICT_CHOICES:
            unknown[re.sub(r"\[\d+\]", "[]", path)] += 1
            return value
        raise CaseFileError(
            path, f"onbekende waarde ({_kind(value)})", f"kies uit {', '.join(spec.values)}"
        )
    return value


def _parse_object(
    specs: tuple[Field | Group, ...],
    raw: Mapping[str, Any],
    prefix: str,
    unknown: Counter[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    known = {s.name for s in specs}
    for key, value in raw.items():
        if key not in known:
            out[key] = value  # extra fields are allowed by the contract and passed through
    for spec in specs:
        path = f"{prefix}{spec.name}"
        value = raw.get(spec.name)
        if isinstance(spec, Field):
            if value is None and spec.required:
                raise CaseFileError(path, "verplicht veld ontbreekt")
            parsed = _parse_scalar(spec, value, path, unknown)
            if parsed is not None:
                out[spec.name] = parsed
        elif spec.is_list:
            if value is None:
                out[spec.name] = []
                continue
            if not isinstance(value, list):
                raise CaseFileError(path, "verwacht een lijst")
            items = []
            for i, item in enumerate(value):
                if not isinstance(item, Mapping):
                    raise CaseFileError(f"{path}[{i}]", "verwacht een object")
                items.append(_parse_object(spec.fields, item, f"{path}[{i}].", unknown))
            out[spec.name] = items
        else:
            if value is None:
                out[spec.name] = {}
                continue
            if not isinstance(value, Mapping):
                raise CaseFileError(path, "verwacht een object")
            out[spec.name] = _parse_object(spec.fields, value, f"{path}.", unknown)
    return out


def _unknown(
    specs: tuple[Field | Group, ...], raw: Mapping[str, Any], prefix: str
) -> list[tuple[str, list[str]]]:
    names = [s.name for s in specs]
    out: list[tuple[str, list[str]]] = []
    for key, value in raw.items():
        spec = next((s for s in specs if s.name == key), None)
        if spec is None:
            out.append((f"{prefix}{key}", names))
        elif isinstance(spec, Group) and spec.is_list and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out.extend(_unknown(spec.fields, item, f"{prefix}{key}[{i}]."))
        elif isinstance(spec, Group) and isinstance(value, Mapping):
            out.extend(_unknown(spec.fields, value, f"{prefix}{key}."))
    return out


def unknown_fields(raw: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """Fields outside the contract, with the names known at that place.

    The import keeps extra fields (the contract allows additions); a rule-file test case
    must not have them, because no rule can read them and a typo would pass unnoticed.
    """
    return _unknown(CASE_SPEC, raw, "")


def parse_case(raw: Any, unknown: Counter[str] | None = None) -> dict[str, Any]:
    """Validate one raw case (parsed JSON/YAML) into the in-memory shape.

    Raises CaseFileError naming the field path on the first problem. With ``unknown``
    (the import from the source system), a value outside a choice list is kept as it is
    and counted there per field (``contacts[].channel``), except for ``STRICT_CHOICES``;
    without it (rule-file tests) such a value is refused. A kept unknown value is a value
    unequal to every listed one: ``==``/``in`` against it are false, ``!=``/``not in``
    true, ``missing`` false; only rules that compare that field can be affected.
    """
    if not isinstance(raw, Mapping):
        raise CaseFileError("", "een zaak moet een JSON-object zijn")
    return _parse_object(CASE_SPEC, raw, "", unknown)


def unknown_choices(case: Mapping[str, Any], counts: Counter[str]) -> None:
    """Count the choice values of an in-memory ``case`` outside their lists, per field
    (``contacts[].channel``), into ``counts``: for cases read from the source database,
    which did not pass through ``parse_case``."""
    _count_unknown(CASE_SPEC, case, "", counts)


def _count_unknown(
    specs: tuple[Field | Group, ...], record: Mapping[str, Any], prefix: str, counts: Counter[str]
) -> None:
    for spec in specs:
        value = record.get(spec.name)
        if value is None:
            continue
        if isinstance(spec, Field):
            if spec.type == "enum" and value not in spec.values:
                counts[f"{prefix}{spec.name}"] += 1
        elif spec.is_list:
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        _count_unknown(spec.fields, item, f"{prefix}{spec.name}[].", counts)
        elif isinstance(value, Mapping):
            _count_unknown(spec.fields, value, f"{prefix}{spec.name}.", counts)


def parse_staff(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise CaseFileError("", "een medewerker moet een JSON-object zijn")
    return _parse_object(STAFF_SPEC, raw, "")


def to_json(value: Any) -> Any:
    """Turn an in-memory case (dates as date objects) back into JSON-ready data."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value
