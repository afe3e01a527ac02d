"""The rule set as an entry for the Dutch government's algorithm register (issue 18).

``regiesignaal rules register`` writes it as JSON and Markdown. The fields follow the
register's metadata standard (algoritmes.overheid.nl): the algorithm (``name``,
``organization``, ``description_short``, ``type``, ``category``, ``status``), its use
(``goal``, ``impact``, ``proportionality``, ``decision_making_process``,
``documentation``), the law (``competent_authority``, ``lawful_basis``, ``policy_basis``, ``iama``,
``iama_description``, ``dpia``, ``dpia_description``, ``objection_procedure``), its
application (``description``, ``source_data``, ``methods_and_models``), oversight
(``monitoring``, ``human_intervention``, ``risks``, ``performance_standard``) and metadata
(``contact_email``, ``lang``, ``revision_date``), plus ``rules``: per rule what it checks,
on which data, its basis, its owner and its mode.

``lawful_basis`` (the register's "Wettelijke basis") holds legal articles only: the
organisation's own statement (``--legal-basis``) and every part of a rule's ``basis`` (parts
are separated by ``;``) that ``is_legal_article`` recognises. A recommendation of the
inspectorate or a work instruction is not a legal basis: those parts go to ``policy_basis``
("Beleidskader"), a field of this product's own beside the standard's. Both are
de-duplicated. ``documentation`` holds the URLs given (``--documentation-url``), never a
path in the repository. A field the organisation still has to fill holds ``TO_FILL``;
``to_fill`` names them.

Everything comes from the rule files and the organisation's details given on the command
line; nothing from the source or the store, so the entry holds no personal data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regiesignaal.engine.language.conditions import fields_of
from regiesignaal.engine.language.rulefile.model import Rule, RuleDir

TO_FILL = "in te vullen door de organisatie"
"""The value of a reference the product cannot know (the DPIA's and IAMA's)."""

NO_BASIS = "geen grondslag vastgelegd in het regelbestand"

SHADOW_NL = "in schaduw: draait mee zonder gevolgen voor zaken"
LIVE_NL = "in gebruik"

LAWS = (
    r"Vw\.? 2000|Vb\.? 2000|VV 2000|Vreemdelingenwet(?: 2000)?|Vreemdelingenbesluit(?: 2000)?"
    r"|U?AVG|WOR|Awb|Wpg|Wjsg|Wet [A-Za-z]|[A-Za-z]+(?:wet|richtlijn|verordening|besluit)\b"
    r"|\d{2,4}/\d+/E[GU]\b|\(E[GU]\) \d{2,4}/\d+"
)
LEGAL_ARTICLE = re.compile(
    rf"\b(?:art\.|artikel|artt?\.)\s*\d+[a-z]?\b.*?(?:{LAWS})", re.IGNORECASE | re.DOTALL
)
"""The heuristic for a legal article: ``art.``/``artikel`` with a number, followed (in the
same ``;``-part) by a law: an abbreviation (Vw 2000, Vb 2000, AVG, UAVG, WOR, Awb, Wpg,
Wjsg), a name ending in -wet, -richtlijn, -verordening or -besluit, "Wet ...", or an EU
reference (2008/115/EG). Anything else (R1-R4, a work instruction) is policy."""

SEVERITY_NL = {"low": "laag", "medium": "middel", "high": "hoog", "critical": "kritiek"}

UNIT_NL = {"d": "dagen", "w": "weken", "wd": "werkdagen"}

REGISTER_FIELDS = (
    "name",
    "organization",
    "department",
    "description_short",
    "type",
    "category",
    "website",
    "status",
    "goal",
    "impact",
    "proportionality",
    "decision_making_process",
    "documentation",
    "competent_authority",
    "lawful_basis",
    "policy_basis",
    "iama",
    "iama_description",
    "dpia",
    "dpia_description",
    "objection_procedure",
    "description",
    "source_data",
    "methods_and_models",
    "monitoring",
    "human_intervention",
    "risks",
    "performance_standard",
    "contact_email",
    "lang",
    "revision_date",
    "ruleset_version",
    "rules",
)
"""Every top-level field of the JSON entry, in the order it is written."""

RULE_FIELDS = (
    "id",
    "title",
    "checks",
    "data",
    "basis",
    "owner",
    "severity",
    "escalate_after",
    "effective_from",
    "effective_until",
    "enabled",
    "mode",
)

LABELS_NL = {
    "name": "Naam",
    "organization": "Organisatie",
    "department": "Afdeling",
    "description_short": "Korte beschrijving",
    "type": "Type algoritme",
    "category": "Thema",
    "website": "Website",
    "status": "Status",
    "goal": "Doel en impact",
    "impact": "Impact",
    "proportionality": "Afwegingen",
    "decision_making_process": "Besluitvorming",
    "documentation": "Documentatie",
    "competent_authority": "Verantwoordelijke",
    "lawful_basis": "Wettelijke basis",
    "policy_basis": "Beleidskader",
    "iama": "IAMA",
    "iama_description": "Toelichting IAMA",
    "dpia": "DPIA",
    "dpia_description": "Toelichting DPIA",
    "objection_procedure": "Bezwaarprocedure",
    "description": "Werking",
    "source_data": "Gegevens",
    "methods_and_models": "Technische werking",
    "monitoring": "Monitoring",
    "human_intervention": "Menselijke tussenkomst",
    "risks": "Risicobeheer",
    "performance_standard": "Prestatienorm",
    "contact_email": "Contactgegevens",
    "lang": "Taal",
    "revision_date": "Datum laatste wijziging",
    "ruleset_version": "Versie van de regelset",
}
"""The Markdown's labels: the register website's, for the JSON keys of its standard."""


@dataclass(frozen=True)
class RegisterDetails:
    """What the organisation adds to the entry; the defaults say what is still to fill."""

    organization: str = "Dienst Terugkeer en Vertrek (DT&V)"
    department: str = "Ministerie van Justitie en Veiligheid"
    contact_email: str = TO_FILL
    website: str = TO_FILL
    dpia: str = TO_FILL
    iama: str = TO_FILL
    status: str = "in_gebruik"
    legal_basis: str = ""
    """The organisation's own statement of the legal basis (``--legal-basis``)."""
    documentation: tuple[str, ...] = ()
    """URLs of the public documentation (``--documentation-url``)."""


def is_legal_article(text: str) -> bool:
    """True when ``text`` (one ``;``-part of a ``basis``) cites a legal article (see
    ``LEGAL_ARTICLE``)."""
    return LEGAL_ARTICLE.search(text) is not None


def split_basis(rules: list[Rule]) -> tuple[list[str], list[str]]:
    """(legal articles, policy) over the ``basis`` of ``rules``, each in first-seen order
    of the sorted rules and de-duplicated."""
    legal: list[str] = []
    policy: list[str] = []
    for rule in sorted(rules, key=lambda r: r.id):
        for part in (rule.basis or "").split(";"):
            text = " ".join(part.split())
            target = legal if is_legal_article(text) else policy
            if text and text not in target:
                target.append(text)
    return legal, policy


def to_fill(entry: dict[str, Any]) -> list[str]:
    """The top-level fields the organisation still has to fill, in register order."""
    return [k for k in REGISTER_FIELDS if isinstance(entry.get(k), str) and TO_FILL in entry[k]]


def _duration(value: Any) -> str:
    if value is None:
        return ""
    return f"{value.amount} {UNIT_NL.get(str(value.unit), str(value.unit))}"


def rule_data(rule: Rule, ruledir: RuleDir) -> list[dict[str, str]]:
    """The fields a rule reads, each with its description from the catalogue."""
    names = set(fields_of(rule.condition()))
    if rule.since is not None:
        names.add(rule.since.field)
    out = []
    for name in sorted(names):
        info = ruledir.catalogue.get(name)
        origin = info.origin if info else "zaak"
        out.append(
            {
                "field": name,
                "description": info.description if info else "",
                "origin": "afgeleid" if origin == "afgeleid" else "zaak",
            }
        )
    return out


def rule_entry(rule: Rule, ruledir: RuleDir) -> dict[str, Any]:
    checks = " ".join(rule.description.split()) or rule.title
    return {
        "id": rule.id,
        "title": rule.title,
        "checks": checks,
        "data": rule_data(rule, ruledir),
        "basis": rule.basis or NO_BASIS,
        "owner": rule.owner,
        "severity": SEVERITY_NL.get(rule.severity, rule.severity),
        "escalate_after": _duration(rule.escalate_after),
        "effective_from": rule.effective_from.isoformat() if rule.effective_from else "",
        "effective_until": rule.effective_until.isoformat() if rule.effective_until else "",
        "enabled": rule.enabled,
        "mode": SHADOW_NL if rule.shadow else LIVE_NL,
    }


def build_register(
    ruledir: RuleDir, revision_date: dt.date, details: RegisterDetails | None = None
) -> dict[str, Any]:
    """The register entry for ``ruledir`` as a JSON-ready dict with every field of
    ``REGISTER_FIELDS``."""
    d = details or RegisterDetails()
    rules = [rule_entry(r, ruledir) for r in sorted(ruledir.rules, key=lambda r: r.id)]
    legal, policy = split_basis(list(ruledir.rules))
    statement = " ".join(d.legal_basis.split())
    if statement and statement not in legal:
        legal.insert(0, statement)
    entry: dict[str, Any] = {
        "name": "regiesignaal: kwaliteitssignalen bij vertrekplannen",
        "organization": d.organization,
        "department": d.department,
        "description_short": (
            "Een regelgebaseerd systeem dat elke nacht de open vertrekzaken toetst aan "
            "vastgestelde werkafspraken en regievoerders en teamleiders per e-mail wijst op "
            "ontbrekende of verouderde vastleggingen en acties."
        ),
        "type": "Rekenregels (regelgebaseerd, geen zelflerend model)",
        "category": ["Migratie en integratie"],
        "website": d.website,
        "status": d.status,
        "goal": (
            "De aanbevelingen van de Inspectie Justitie en Veiligheid (Verantwoord Vertrek, "
            "2022) in de dagelijkse praktijk brengen: een uniforme werkwijze (R1), een actieve "
            "houding (R2), een eenduidig en volledig vertrekplan (R3) en georganiseerde "
            "tegenspraak in het lokaal ketenoverleg (R4). Het systeem signaleert; het "
            "beslist niets over een vreemdeling."
        ),
        "impact": (
            "Een regievoerder krijgt een lijst met signalen over de eigen zaken (een "
            "pseudonieme zaakreferentie, een neutrale titel en de verwachte actie); een "
            "teamleider krijgt een overzicht van het team. Er volgt geen besluit, sanctie of "
            "beoordeling van een persoon uit een signaal."
        ),
        "proportionality": (
            "Alleen de velden die een regel leest worden gelezen; e-mail bevat geen namen, "
            "V-nummers, nationaliteit, geboortedatum, medische details of iets dat de "
            "categorie van een zaak verraadt. Standaard worden medewerkers niet onderling "
            "vergeleken."
        ),
        "decision_making_process": (
            "Een signaal is een werkaantekening voor de regievoerder. Die handelt in het "
            "zaaksysteem of legt met een reden vast waarom de regel niet van toepassing is; "
            "elk besluit in een zaak blijft een menselijk besluit."
        ),
        "documentation": ", ".join(d.documentation) if d.documentation else TO_FILL,
        "competent_authority": "Staatssecretaris van Justitie en Veiligheid",
        "lawful_basis": "; ".join(legal) if legal else TO_FILL,
        "policy_basis": "; ".join(policy) if policy else NO_BASIS,
        "iama": d.iama,
        "iama_description": (
            "Impact Assessment Mensenrechten en Algoritmes: kenmerk en datum invullen in 'iama'."
        ),
        "dpia": d.dpia,
        "dpia_description": (
            "Gegevensbeschermingseffectbeoordeling (art. 35 AVG): kenmerk en datum invullen "
            "in 'dpia'. Een vergelijking van individuele regievoerders is een "
            "personeelsvolgsysteem (WOR art. 27 lid 1 sub l) en hoort in de DPIA."
        ),
        "objection_procedure": (
            "Een signaal is geen besluit in de zin van de Awb. Een regievoerder kan elk "
            "signaal met een reden toelichten; vragen over het systeem gaan naar het "
            "contactadres."
        ),
        "description": (
            "Elke regel is een klein YAML-bestand dat beleidseigenaren beheren, met een "
            "voorwaarde, een verwachte actie, een termijn en tests. Per regel staat hieronder "
            "wat hij toetst, op welke gegevens, waarop hij berust en wie hem beheert."
        ),
        "source_data": (
            "Vertrekplannen uit het zaaksysteem (pseudonieme zaakreferentie, data van "
            "gesprekken, contacten, checks en besluiten) en de personeelslijst (medewerker-id, "
            "team, e-mailadres) voor de bezorging."
        ),
        "methods_and_models": (
            "Vaste, openbare regels (vergelijkingen van data en waarden), elke nacht op alle "
            f"open zaken geëvalueerd; versie van de regelset {ruledir.version}."
        ),
        "monitoring": (
            "Elke run wordt vastgelegd met aantallen en de versie van de regelset; per regel "
            "een rapport van hoe vaak hij afgaat en hoe signalen eindigen."
        ),
        "human_intervention": (
            "Elk signaal gaat naar een mens. De regievoerder beoordeelt het en kan het met een "
            "reden toelichten; teamleiders bespreken escalaties; beleidseigenaren wijzigen of "
            "trekken regels in en kunnen een regel tijdelijk stilzetten."
        ),
        "risks": (
            "Te veel of onterechte signalen (aandacht raakt op), verouderde gegevens in het "
            "zaaksysteem, en gebruik van cijfers om medewerkers te beoordelen; "
            "maatregelen: prioriteren, toelichten met reden, standaard geen vergelijking van "
            "personen."
        ),
        "performance_standard": (
            "Elke regel heeft tests in zijn bestand; twee onafhankelijke evaluatoren moeten "
            "het op elke zaak eens zijn, anders stopt de run."
        ),
        "contact_email": d.contact_email,
        "lang": "nld",
        "revision_date": revision_date.isoformat(),
        "ruleset_version": ruledir.version,
        "rules": rules,
    }
    assert tuple(entry) == REGISTER_FIELDS
    return entry


def register_markdown(entry: dict[str, Any]) -> str:
    """The entry as Markdown: the fields as a table, then one section per rule."""

    def cell(value: Any) -> str:
        text = ", ".join(value) if isinstance(value, list) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# {entry['name']}", "", "| Veld | Waarde |", "|---|---|"]
    for key in REGISTER_FIELDS:
        if key != "rules":
            lines.append(f"| {LABELS_NL[key]} | {cell(entry[key])} |")
    lines += ["", "## Regels", ""]
    for rule in entry["rules"]:
        lines += [
            f"### {rule['id']}: {rule['title']}",
            "",
            f"- **Toetst**: {rule['checks']}",
            f"- **Grondslag**: {rule['basis']}",
            f"- **Eigenaar**: {rule['owner']}",
            f"- **Ernst**: {rule['severity']}"
            + (f"; escaleert na {rule['escalate_after']}" if rule["escalate_after"] else ""),
            "- **Gegevens**: "
            + "; ".join(
                f"`{d['field']}` ({d['description']})" if d["description"] else f"`{d['field']}`"
                for d in rule["data"]
            ),
        ]
        if rule["mode"] != LIVE_NL:
            lines.append(f"- **Werking**: {rule['mode']}")
        if not rule["enabled"]:
            lines.append("- **Staat uit**")
        lines.append("")
    return "\n".join(lines)


def write_register(
    ruledir: RuleDir, out: Path, revision_date: dt.date, details: RegisterDetails | None = None
) -> list[Path]:
    """Write ``algoritmeregister.json`` and ``algoritmeregister.md`` into ``out``."""
    entry = build_register(ruledir, revision_date, details)
    return write_entry(entry, out)


def write_entry(entry: dict[str, Any], out: Path) -> list[Path]:
    """Write a built entry as ``algoritmeregister.json`` and ``.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "algoritmeregister.json", out / "algoritmeregister.md"
    json_path.write_text(json.dumps(entry, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(register_markdown(entry), encoding="utf-8")
    return [json_path, md_path]
