"""Parsing one rule file (``<name>.yaml``): keys, texts, dates, condition, ``overdue``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from regiesignaal.engine.language.casefile import to_date
from regiesignaal.engine.language.catalogue import (
    Catalogue,
    suggest,
)
from regiesignaal.engine.language.conditions import All, Any_, Pos
from regiesignaal.engine.language.dates import Duration, parse_duration
from regiesignaal.engine.language.mailtext import possible_names, sensitive_words, word_lists
from regiesignaal.engine.language.rulefile.common import Context, check_keys, pos_of, text_value
from regiesignaal.engine.language.rulefile.condition_parser import ConditionParser
from regiesignaal.engine.language.rulefile.model import (
    BASIS_MAX,
    CHALLENGE_MAX,
    KINDS,
    MAIL_CODE,
    MAIL_TITLE_MAX,
    MODES,
    OVERDUE_KEYS,
    RULE_ID,
    RULE_KEYS,
    SEVERITIES,
    SINCE_KEYS,
    SINCE_LABEL_MAX,
    WARN_BEFORE_MAX_DAYS,
    Overdue,
    Problem,
    Rule,
    RuleTest,
    Since,
)
from regiesignaal.engine.language.rulefile.testcases import parse_tests


def parse_rule(
    node: Any,
    rel: str,
    stem: str,
    catalogue: Catalogue,
    problems: list[Problem],
    rules_dir: Path | None = None,
) -> Rule | None:
    """One rule from its YAML node; problems are appended, None when it is unusable.

    ``rules_dir`` extends the mail word lists with the folder's own files (see
    ``engine.language.mailtext``).
    """
    ctx = Context(rel, problems)
    before = len(problems)
    if not isinstance(node, CommentedMap):
        ctx.add(Pos(1, 1), "een regelbestand is een blok met velden (id, title, when, ...)")
        return None
    check_keys(node, RULE_KEYS, ctx, "de regel")
    rule_id = node.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        ctx.add(
            pos_of(node, "id", value=True) if "id" in node else Pos(1, 1),
            f"ongeldig id {rule_id!r}",
            "hoofdletters, cijfers en streepjes, bijv. MED-CHECK",
        )
        rule_id = None
    elif rule_id.lower() != stem.lower():
        ctx.add(
            pos_of(node, "id", value=True),
            f"id '{rule_id}' past niet bij de bestandsnaam '{stem}.yaml'",
            f"noem het bestand {rule_id.lower()}.yaml",
        )
    severity = node.get("severity")
    if "severity" in node and severity not in SEVERITIES:
        ctx.add(
            pos_of(node, "severity", value=True),
            f"onbekende ernst {severity!r}",
            suggest(str(severity), SEVERITIES) or f"kies uit {', '.join(SEVERITIES)}",
        )
    enabled = node.get("enabled", True)
    if not isinstance(enabled, bool):
        ctx.add(pos_of(node, "enabled", value=True), "'enabled' moet true of false zijn")
    eff_from = eff_until = None
    eff = node.get("effective")
    if eff is not None:
        if not isinstance(eff, CommentedMap):
            ctx.add(pos_of(node, "effective", value=True), "verwacht {from: JJJJ-MM-DD}")
        else:
            check_keys(eff, {"from": False, "until": False}, ctx, "'effective'")
            for key in ("from", "until"):
                if key in eff and eff[key] is not None and to_date(eff[key]) is None:
                    ctx.add(pos_of(eff, key, value=True), f"'{key}' moet een datum zijn")
            eff_from = to_date(eff.get("from"))
            eff_until = to_date(eff.get("until"))
            if eff_from and eff_until and eff_until < eff_from:
                ctx.add(pos_of(eff), "'until' ligt voor 'from'")
    escalate = None
    if node.get("escalate_after") is not None:
        try:
            escalate = parse_duration(node["escalate_after"])
        except ValueError as exc:
            ctx.add(pos_of(node, "escalate_after", value=True), str(exc))
    max_explanation = None
    if node.get("max_explanation") is not None:
        try:
            max_explanation = parse_duration(node["max_explanation"])
        except ValueError as exc:
            ctx.add(pos_of(node, "max_explanation", value=True), str(exc))
    cparser = ConditionParser(catalogue.fields, ctx, "de regel", catalogue.broken)
    when = cparser.parse(node["when"], pos_of(node, "when")) if "when" in node else None
    unless = None
    if node.get("unless") is not None:
        unless_node = node["unless"]
        unless = cparser.parse(unless_node, pos_of(node, "unless"))
        if isinstance(unless_node, list) and isinstance(unless, All):
            # a list under 'unless' means: any of these makes the rule not apply
            unless = Any_(unless.items, unless.pos)
    overdue = None
    if "overdue" in node:
        overdue = parse_overdue(node, severity, cparser, ctx)
    texts = {
        k: text_value(node, k, ctx) for k in ("title", "mail_title", "owner", "expected_action")
    }
    mail_code = ""
    if node.get("mail_code") is not None:
        raw_code = node["mail_code"]
        if not isinstance(raw_code, str) or not MAIL_CODE.match(raw_code):
            ctx.add(
                pos_of(node, "mail_code", value=True),
                "'mail_code' is een neutrale code: een hoofdletter en 1 tot 4 cijfers",
                "bijvoorbeeld R07; laat het veld weg voor alleen de titel",
            )
        else:
            mail_code = raw_code
    texts["mail_code"] = mail_code
    kind = node.get("kind", KINDS[0])
    if kind not in KINDS:
        ctx.add(
            pos_of(node, "kind", value=True),
            "'kind' zegt wat de regel vraagt: actie (iets doen) of vastlegging (iets vastleggen)",
            suggest(str(kind), KINDS) or f"kies uit {', '.join(KINDS)}",
        )
    mode = node.get("mode", MODES[0])
    if mode not in MODES:
        ctx.add(
            pos_of(node, "mode", value=True),
            "'mode' zegt hoe de regel draait: live (gemaild, de standaard) of shadow "
            "(proefdraaien: geteld in het regelrapport, nergens gemaild)",
            suggest(str(mode), MODES) or f"kies uit {', '.join(MODES)}",
        )
    covers = parse_covers(node, rule_id, ctx)
    warn_before = parse_warn_before(node, ctx)
    since = parse_since(node, catalogue, ctx)
    texts["challenge"] = text_value(node, "challenge", ctx) if "challenge" in node else ""
    if len(texts["challenge"]) > CHALLENGE_MAX:
        ctx.add(
            pos_of(node, "challenge", value=True),
            f"'challenge' is {len(texts['challenge'])} tekens; hooguit {CHALLENGE_MAX}",
            "stel één korte vraag aan het overleg",
        )
    texts["basis"] = parse_basis(node, ctx)
    mail_texts = [(key, key, texts[key]) for key in ("mail_title", "expected_action", "mail_code")]
    mail_texts.append(("challenge", "challenge", texts["challenge"]))
    if since is not None and isinstance(node.get("since"), CommentedMap):
        mail_texts.append(("since", "since.label", since.label))
    lists = word_lists(rules_dir)
    for at, key, value in mail_texts:
        found = sensitive_words(value, lists.forbidden)
        if found:
            ctx.add(
                pos_of(node, at, value=True),
                f"'{key}' staat in e-mail en mag '{found[0]}' niet bevatten "
                "(ook niet als deel van een woord)",
                "schrijf neutraal: geen namen, nummers, medische details of gevoelige "
                "omstandigheden (zie de gids, hoofdstuk 13)",
            )
        names = possible_names(value, lists.allowed_capitalised)
        if names:
            ctx.add(
                pos_of(node, at, value=True),
                f"'{key}' staat in e-mail; een woord met een hoofdletter midden in een zin "
                f"kan een naam zijn ({len(names)} keer)",
                "schrijf het woord met een kleine letter, of zet het in mail-words.txt in de "
                "regelmap als het geen naam is (zie de gids, hoofdstuk 13)",
            )
    if len(texts["mail_title"]) > MAIL_TITLE_MAX:
        ctx.add(
            pos_of(node, "mail_title", value=True),
            f"'mail_title' is {len(texts['mail_title'])} tekens; hooguit {MAIL_TITLE_MAX}",
            "maak de titel korter",
        )
    description = text_value(node, "description", ctx) if "description" in node else ""
    tests: tuple[RuleTest, ...] = ()
    if "tests" in node:
        tests = parse_tests(node["tests"], pos_of(node, "tests"), ctx, rule_id or stem)
    if len(problems) > before or rule_id is None or when is None:
        return None
    return Rule(
        id=rule_id,
        title=texts["title"],
        mail_title=texts["mail_title"],
        severity=str(severity),
        owner=texts["owner"],
        description=description,
        enabled=bool(enabled),
        effective_from=eff_from,
        effective_until=eff_until,
        when=when,
        unless=unless,
        expected_action=texts["expected_action"],
        escalate_after=escalate,
        path=rel,
        line=pos_of(node).line,
        tests=tests,
        overdue=overdue,
        max_explanation=max_explanation,
        mail_code=mail_code,
        kind=str(kind),
        covers=covers,
        warn_before=warn_before,
        since=since,
        challenge=texts["challenge"],
        basis=texts["basis"],
        mode=str(mode),
    )


def parse_basis(node: CommentedMap, ctx: Context) -> str:
    """``basis:``: one short line naming what the rule rests on (issue 18)."""
    if "basis" not in node:
        return ""
    value = text_value(node, "basis", ctx)
    at = pos_of(node, "basis", value=True)
    if "\n" in value.strip():
        ctx.add(
            at,
            "'basis' is één regel: een aanbeveling (R1-R4), een werkinstructie of een wetsartikel",
            "zet de uitleg in 'description' en houd 'basis' kort, bijv. basis: art. 64 Vw 2000",
        )
    elif len(value.strip()) > BASIS_MAX:
        ctx.add(
            at,
            f"'basis' is {len(value.strip())} tekens; hooguit {BASIS_MAX}",
            "noem alleen de bron (bijv. R3 Inspectie JenV, Verantwoord Vertrek); de uitleg "
            "hoort in 'description'",
        )
    return value.strip()


def parse_covers(node: CommentedMap, rule_id: str | None, ctx: Context) -> tuple[str, ...]:
    """``covers: [ID, ...]``: the ids are checked against the folder by ``folder``."""
    if node.get("covers") is None:
        return ()
    raw = node["covers"]
    at = pos_of(node, "covers", value=True)
    if not isinstance(raw, list) or not raw:
        ctx.add(at, "'covers' verwacht een lijst van regel-id's", "bijv. covers: [MED-CHECK]")
        return ()
    out: list[str] = []
    for i, item in enumerate(raw):
        ipos = pos_of(raw, i)
        if not isinstance(item, str) or not RULE_ID.match(item):
            ctx.add(ipos, "'covers' bevat iets dat geen regel-id is", "bijv. MED-CHECK")
        elif item == rule_id:
            ctx.add(ipos, "een regel kan zichzelf niet omvatten", "haal het eigen id weg")
        elif item in out:
            ctx.add(ipos, f"'{item}' staat twee keer in 'covers'", "noem elke regel één keer")
        else:
            out.append(item)
    return tuple(out)


def warn_days(duration: Duration) -> int:
    """The most calendar days ``duration`` can span (working days: with weekends and a
    few holidays in between)."""
    if duration.unit == "d":
        return duration.amount
    if duration.unit == "w":
        return 7 * duration.amount
    return -(-duration.amount * 7 // 5) + 3


def parse_warn_before(node: CommentedMap, ctx: Context) -> Duration | None:
    if node.get("warn_before") is None:
        return None
    at = pos_of(node, "warn_before", value=True)
    try:
        duration = parse_duration(node["warn_before"])
    except ValueError as exc:
        ctx.add(at, str(exc))
        return None
    if duration.amount < 1 or warn_days(duration) > WARN_BEFORE_MAX_DAYS:
        ctx.add(
            at,
            f"'warn_before' is 1 dag tot ongeveer {WARN_BEFORE_MAX_DAYS} dagen",
            "bijv. warn_before: 5wd (een week van tevoren)",
        )
        return None
    return duration


def parse_since(node: CommentedMap, catalogue: Catalogue, ctx: Context) -> Since | None:
    """``since: FIELD`` or ``since: {field: FIELD, after: DURATION, label: TEXT}``."""
    if node.get("since") is None:
        return None
    raw = node["since"]
    at = pos_of(node, "since", value=True)
    after: Duration | None = None
    label = "sinds"
    if isinstance(raw, CommentedMap):
        if not check_keys(raw, SINCE_KEYS, ctx, "'since'"):
            return None
        name = raw["field"]
        at = pos_of(raw, "field", value=True)
        if raw.get("after") is not None:
            try:
                after = parse_duration(raw["after"])
            except ValueError as exc:
                ctx.add(pos_of(raw, "after", value=True), str(exc))
                return None
        if "label" in raw:
            label = text_value(raw, "label", ctx, "sinds")
            if len(label) > SINCE_LABEL_MAX:
                ctx.add(
                    pos_of(raw, "label", value=True),
                    f"'label' is {len(label)} tekens; hooguit {SINCE_LABEL_MAX}",
                    "bijv. label: termijn verstreken op",
                )
                return None
    else:
        name = raw
    info = catalogue.fields.get(str(name)) if isinstance(name, str) else None
    if info is None or info.type != "date":
        hint = suggest(str(name), [n for n, f in catalogue.fields.items() if f.type == "date"])
        ctx.add(
            at,
            "'since' noemt een datumveld van de zaak of een afgeleide datum (latest/earliest)",
            hint or "bijv. since: opened_on, of since: {field: latest_contact_on, after: 30d}",
        )
        return None
    return Since(str(name), after, label.strip())


def parse_overdue(
    node: CommentedMap, severity: Any, cparser: ConditionParser, ctx: Context
) -> Overdue | None:
    """The ``overdue:`` block of a rule: ``{when: <condition>, severity: <higher>}``."""
    block = node["overdue"]
    bpos = pos_of(node, "overdue")
    if not isinstance(block, CommentedMap):
        ctx.add(
            bpos,
            "'overdue' verwacht een blok met 'when' en 'severity'",
            "bijv. overdue: {when: {departure_term_ends_on: {older_than: 0d}}, severity: critical}",
        )
        return None
    if not check_keys(block, OVERDUE_KEYS, ctx, "'overdue'"):
        return None
    raised = block["severity"]
    spos = pos_of(block, "severity", value=True)
    if raised not in SEVERITIES:
        ctx.add(
            spos,
            "onbekende ernst in 'overdue'",
            suggest(str(raised), SEVERITIES) or f"kies uit {', '.join(SEVERITIES)}",
        )
        return None
    if severity in SEVERITIES and SEVERITIES.index(raised) <= SEVERITIES.index(severity):
        ctx.add(
            spos,
            f"de ernst bij 'overdue' ({raised}) moet hoger zijn dan die van de regel ({severity})",
            "een verstreken termijn is urgenter dan een naderende; kies een hogere ernst",
        )
        return None
    when = cparser.parse(block["when"], pos_of(block, "when"))
    if when is None:
        return None
    return Overdue(when, str(raised))
