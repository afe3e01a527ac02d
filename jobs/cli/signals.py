"""Command line for the signal history: ``signals list|show``, ``explanations
add|list|revoke``, ``silences add|list|expire`` and ``rules retire``. Thin shells over
:mod:`engine.store.history` and :mod:`engine.store.silences`.

Exit codes: 0 done, 1 refused (unknown id, bad input, nothing found), 2 configuration or
store problem (missing store, old schema).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape

from regiesignaal.engine.language.casefile import EXPLANATION_REASONS
from regiesignaal.engine.store import history
from regiesignaal.jobs.cli.common import (
    ID,
    REASON,
    ROW_ID,
    NumberType,
    check_date,
    settings_of,
)
from regiesignaal.jobs.cli.tables import cli_table, print_table
from regiesignaal.jobs.config import Settings

console = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

STATE_NL = {
    "open": "open",
    "escalated": "geëscaleerd",
    "explained": "toegelicht",
    "closed": "gesloten",
}
EVENT_NL = {
    "opened": "geopend",
    "reopened": "heropend",
    "escalated": "geëscaleerd",
    "explained": "toegelicht",
    "explanation_expired": "toelichting verlopen",
    "explanation_revoked": "toelichting ingetrokken",
    "explanation_lapsed": "toelichting vervallen: gegevens gewijzigd",
    "reassigned": "andere regievoerder",
    "severity_changed": "ernst gewijzigd",
    "gap_started": "tijdelijk afwezig",
    "gap_ended": "weer aanwezig (zelfde episode)",
    "resolved": "gesloten: opgelost",
    "case_closed": "gesloten: zaak gesloten",
    "rule_removed": "gesloten: regel staat uit",
    "rule_retired": "gesloten: regel ingetrokken",
    "mode_changed": "regel van modus gewisseld",
    "covered": "omvat door een ander signaal",
    "uncovered": "niet meer omvat",
}
MODE_NL = {"shadow": "in schaduw", "live": "live"}
REASON_NL = {
    "resolved": "regel gaat niet meer af",
    "case_closed": "zaak gesloten of ontbreekt",
    "rule_removed": "regel staat uit",
}
SOURCE_NL = {"case_file": "zaakdossier", "command_line": "opdrachtregel"}


def _settings(ctx: click.Context) -> Settings:
    return settings_of(ctx)


@contextmanager
def _store(ctx: click.Context, write: bool = False) -> Iterator[sa.Connection]:
    settings = _settings(ctx)
    try:
        engine = history.open_store(settings.store_url)
    except history.HistoryError as exc:
        err.print(_sentence(str(exc)), style="red", markup=False)
        sys.exit(2)
    try:
        with engine.begin() if write else engine.connect() as conn:
            yield conn
    except history.HistoryError as exc:
        err.print(_sentence(str(exc)), style="red", markup=False)
        sys.exit(1)
    finally:
        engine.dispose()


def _today(ctx: click.Context) -> dt.date:
    return dt.datetime.now(_settings(ctx).tz).date()


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    return check_date(value)


def _sentence(message: str) -> str:
    """A store's message as a sentence of the command line: capital first, full stop."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "?", "!")) else message + "."


def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str, ensure_ascii=False)


# ------------------------------------------------------------------ signals

signals_group = click.Group("signals", help="Signalen en hun geschiedenis bekijken (alleen lezen).")


@signals_group.command("list")
@click.option(
    "--regievoerder", type=ID, help="Alleen signalen van deze regievoerder (medewerker-id)."
)
@click.option("--team", type=ID, help="Alleen signalen van dit team.")
@click.option("--rule", type=ID, help="Alleen signalen van deze regel.")
@click.option("--state", type=click.Choice(history.STATES), help="Alleen deze status.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--limit", type=NumberType(1, 1_000_000), default=None, help="Hooguit zoveel signalen."
)
@click.pass_context
def signals_list(
    ctx: click.Context,
    regievoerder: str | None,
    team: str | None,
    rule: str | None,
    state: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Open signalen (of met --state closed: gesloten), gefilterd."""
    with _store(ctx) as conn:
        rows = history.list_signals(
            conn,
            history.reference_date(conn, _today(ctx)),
            regievoerder=regievoerder,
            team=team,
            rule=rule,
            state=state,
            limit=limit,
        )
    if fmt == "json":
        for record in rows:
            click.echo(_json(record))
        return
    table = cli_table(
        "id",
        "zaak",
        "regel",
        "status",
        "ernst",
        "regievoerder",
        "open sinds",
        "bijzonder",
        title=f"Signalen ({len(rows)})",
    )
    for r in rows:
        marks = []
        if r["baseline"]:
            marks.append("bestaand")
        if r["reopened"]:
            marks.append("heropend")
        if r["gap_since"]:
            marks.append(f"afwezig sinds {r['gap_since']}")
        if r["explanation_expired_on"]:
            marks.append("toelichting verlopen")
        if r["closed_on"]:
            marks.append(f"gesloten {r['closed_on']} ({r['close_reason']})")
        table.add_row(
            str(r["id"]),
            r["case_ref"],
            r["rule_id"],
            STATE_NL[r["state"]],
            r["severity"],
            r["regievoerder"] or "-",
            str(r["opened_on"]),
            ", ".join(marks),
        )
    print_table(console, table)


def describe_event(event: dict[str, Any]) -> str:
    """One event as a Dutch phrase (ids, dates and reasons only)."""
    d = event.get("details") or {}
    text = EVENT_NL.get(event["kind"], event["kind"])
    extra: list[str] = []
    kind = event["kind"]
    if kind in ("opened", "reopened") and d.get("baseline"):
        extra.append(f"bestaand bij invoering, escalatieklok vanaf {d.get('clock_start')}")
    elif kind == "escalated":
        extra.append(f"termijn verstreken op {d.get('due')}")
    elif kind == "explained":
        extra.append(f"tot en met {d.get('until')}")
        extra.append(f"via {SOURCE_NL.get(d.get('source', ''), d.get('source'))}")
        if d.get("reason"):
            extra.append(f"reden: {EXPLANATION_REASONS.get(d['reason'], d['reason'])}")
        if d.get("by"):
            extra.append(f"door {d['by']}")
        if d.get("capped_to"):
            extra.append(f"ingekort tot hooguit {d['capped_to']}")
    elif kind in ("explanation_expired", "explanation_revoked", "explanation_lapsed"):
        extra.append(f"einddatum {d.get('until')}")
    elif kind == "reassigned":
        extra.append(f"van {d.get('from') or '-'} naar {d.get('to') or '-'}")
        if "team_to" in d:
            extra.append(f"team {d.get('team_from') or '-'} -> {d.get('team_to') or '-'}")
    elif kind == "severity_changed":
        extra.append(f"van {d.get('from')} naar {d.get('to')}")
    elif kind == "gap_started":
        extra.append(REASON_NL.get(d.get("reason", ""), str(d.get("reason"))))
    elif kind == "gap_ended":
        extra.append(f"afwezig sinds {d.get('gap_since')}")
    elif kind == "mode_changed":
        to = d.get("to")
        extra.append(
            f"{MODE_NL.get(str(d.get('from')), '-')} -> {MODE_NL.get(str(to), '-')}"
            + (": niet meer gemaild" if to == "shadow" else ": vanaf nu gemaild, als bestaand")
        )
        extra.append(f"door {d['by']}" if d.get("by") else "regelbestand aangepast")
        if d.get("clock_start"):
            extra.append(f"escalatieklok vanaf {d['clock_start']}")
        if d.get("escalation_reset"):
            extra.append(f"escalatie in schaduw ({d['escalation_reset']}) vervalt")
    elif kind in ("resolved", "case_closed", "rule_removed", "rule_retired"):
        extra.append(f"laatst gezien {d.get('last_seen_on')}")
    return f"{text} ({'; '.join(extra)})" if extra else text


@signals_group.command("show")
@click.argument("ref", type=ID)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def signals_show(ctx: click.Context, ref: str, fmt: str) -> None:
    """Eén signaal (id) of alle signalen van een zaak, met de volledige geschiedenis."""
    with _store(ctx) as conn:
        found = history.signal_histories(conn, ref, history.reference_date(conn, _today(ctx)))
    if not found:
        err.print(
            "Geen signaal met dit id en geen zaak met signalen; zie 'regiesignaal signals list'.",
            style="red",
            markup=False,
        )
        sys.exit(1)
    if fmt == "json":
        for h in found:
            click.echo(_json({**h.signal, "events": h.events}))
        return
    for h in found:
        s = h.signal
        console.print(
            f"[bold]Signaal {s['id']}[/bold]  zaak {escape(str(s['case_ref']))}  regel "
            f"{escape(str(s['rule_id']))}  ernst {s['severity']}  status: {STATE_NL[s['state']]}"
            + ("  [dim](regel in schaduw: niet gemaild)[/dim]" if s.get("shadow") else ""),
            markup=True,
        )
        line = (
            f"  regievoerder {s['regievoerder'] or '-'} (team {s['team'] or '-'}), "
            f"open sinds {s['opened_on']}, laatst gezien {s['last_seen_on']}"
        )
        if s["closed_on"]:
            line += f", gesloten {s['closed_on']} ({s['close_reason']})"
        console.print(line, markup=False)
        for ev in h.events:
            console.print(
                f"  {ev['as_of']}  {escape(describe_event(ev))}  "
                f"[dim](run {ev['run_id'] or '-'}, regels {ev['ruleset_version'] or '-'})[/dim]",
                markup=True,
            )
        console.print()


# ------------------------------------------------------------------ explanations

explanations_group = click.Group(
    "explanations", help="Toelichtingen vanaf de opdrachtregel toevoegen, bekijken, intrekken."
)


@explanations_group.command("add")
@click.argument("case_ref", type=ID)
@click.argument("rule", type=ID)
@click.option("--until", "until", required=True, callback=_date, help="Geldig tot en met.")
@click.option(
    "--reason",
    required=True,
    type=REASON,
    help="Waarom de regel niet van toepassing is: niet_van_toepassing, elders_geregeld, "
    "wacht_op_ketenpartner, vastlegging_volgt, werkt_niet_mee of anders.",
)
@click.option(
    "--text", "text", default=None, type=REASON, help="Toelichting in eigen woorden (bij anders)."
)
@click.option("--by", "by", required=True, type=ID, help="Uw medewerker-id.")
@click.option(
    "--as-of", "as_of", callback=_date, help="Vanaf deze datum (standaard vandaag); JJJJ-MM-DD."
)
@click.pass_context
def explanations_add(
    ctx: click.Context,
    case_ref: str,
    rule: str,
    until: dt.date,
    reason: str,
    text: str | None,
    by: str,
    as_of: dt.date | None,
) -> None:
    """Voeg een toelichting toe; de volgende run past hem toe."""
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir

    settings = _settings(ctx)
    rule_ids = {r.id for r in load_rule_dir(settings.rules_dir).rules}
    source = _source_check(settings, case_ref.strip(), by.strip())
    today = as_of or _today(ctx)
    with _store(ctx, write=True) as conn:
        earlier = history.explanations_in_force(conn, case_ref, rule, today)
        new_id = history.add_explanation(
            conn,
            case_ref,
            rule,
            until,
            reason,
            by,
            today,
            rule_ids,
            text=text or "",
            source=source,
        )
    console.print(f"Toelichting {new_id} vastgelegd; de volgende run past hem toe.")
    for other, other_until in earlier:
        err.print(
            f"Let op: toelichting {other} (tot en met {other_until.isoformat()}) voor deze "
            "zaak en regel is niet ingetrokken; van beide telt die het langst geldt. "
            f"Vervangt de nieuwe haar, trek haar dan in met 'regiesignaal explanations "
            f"revoke {other} --by ...'.",
            style="yellow",
            markup=False,
        )


def _source_check(settings: Settings, case_ref: str, by: str) -> history.SourceCheck:
    """Read the case's status and the staff id from the source; exit 2 when it is unusable."""
    from regiesignaal.engine.source.read import case_status, staff_exists
    from regiesignaal.jobs.pipeline import RunRefused, source_engine

    try:
        source = source_engine(settings.source_url)
    except RunRefused as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(2)
    try:
        return history.SourceCheck(case_status(source, case_ref), staff_exists(source, by))
    except sa.exc.SQLAlchemyError as exc:
        err.print(
            f"De brondatabase is niet te lezen ({type(exc).__name__}); controleer source_url "
            "en of de bron geladen is ('regiesignaal fixtures load' of de intake).",
            style="red",
            markup=False,
        )
        sys.exit(2)
    finally:
        source.dispose()


@explanations_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Ook ingetrokken toelichtingen.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def explanations_list(ctx: click.Context, include_revoked: bool, fmt: str) -> None:
    """Toelichtingen die vanaf de opdrachtregel zijn toegevoegd."""
    with _store(ctx) as conn:
        rows = history.list_explanations(conn, include_revoked)
    if fmt == "json":
        for r in rows:
            click.echo(_json(r))
        return
    table = cli_table(
        "id", "zaak", "regel", "tot en met", "door", "op", "ingetrokken", "reden",
        wrap=("ingetrokken", "reden"),
    )  # fmt: skip
    for r in rows:
        revoked = f"{r['revoked_at']:%Y-%m-%d} door {r['revoked_by']}" if r["revoked_at"] else ""
        table.add_row(
            str(r["id"]),
            r["case_ref"],
            r["rule_id"],
            str(r["until"]),
            r["created_by"],
            f"{r['created_at']:%Y-%m-%d %H:%M}",
            revoked,
            r["reason"],
        )
    print_table(console, table)


@explanations_group.command("revoke")
@click.argument("explanation_id", type=ROW_ID)
@click.option("--by", "by", required=True, type=ID, help="Uw medewerker-id.")
@click.pass_context
def explanations_revoke(ctx: click.Context, explanation_id: int, by: str) -> None:
    """Trek een toelichting in; de volgende run legt dat vast bij het signaal."""
    with _store(ctx, write=True) as conn:
        history.revoke_explanation(conn, explanation_id, by)
    console.print(f"Toelichting {explanation_id} ingetrokken.")


# ------------------------------------------------------------------ silences

silences_group = click.Group(
    "silences",
    help="Een regel een tijd stilzetten voor een team, een locatie of de hele dienst.",
)


def _staff_check(
    settings: Settings, by: str, team: str | None, location: str | None = None
) -> None:
    """Exit 1 when ``--by`` (or ``--team``) is not in the staff directory, or ``--location``
    is no case's location in the source; 2 when the source cannot be read. Never repeats
    the value typed."""
    from regiesignaal.engine.source.read import load_staff, location_exists
    from regiesignaal.jobs.pipeline import RunRefused, source_engine

    try:
        source = source_engine(settings.source_url)
    except RunRefused as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(2)
    try:
        staff = load_staff(source)
        known_location = location is None or location_exists(source, location.strip())
    except sa.exc.SQLAlchemyError as exc:
        err.print(
            f"De brondatabase is niet te lezen ({type(exc).__name__}); controleer source_url.",
            style="red",
            markup=False,
        )
        sys.exit(2)
    finally:
        source.dispose()
    if by.strip() not in staff:
        err.print(
            "Het medewerker-id bij --by staat niet in het personeelsbestand; geef uw eigen "
            "medewerker-id op zoals het in het personeelsbestand staat.",
            style="red",
            markup=False,
        )
        sys.exit(1)
    if team is not None and team.strip() not in {s.get("team") for s in staff.values()}:
        err.print(
            "Het team bij --team staat niet in het personeelsbestand; gebruik het team-id "
            "zoals in het teamoverzicht (of laat --team weg voor de hele dienst).",
            style="red",
            markup=False,
        )
        sys.exit(1)
    if not known_location:
        err.print(
            "De locatie bij --location komt bij geen enkele zaak in de bron voor; gebruik "
            "het locatie-id zoals in het teamoverzicht (of laat --location weg voor de hele "
            "dienst).",
            style="red",
            markup=False,
        )
        sys.exit(1)


@silences_group.command("add")
@click.option("--rule", "rule", required=True, type=ID, help="De id van de regel.")
@click.option("--team", type=ID, help="Alleen voor dit team (team-id).")
@click.option("--location", type=ID, help="Alleen voor deze locatie (locatie-id).")
@click.option("--until", "until", required=True, callback=_date, help="Tot en met; JJJJ-MM-DD.")
@click.option(
    "--reason", required=True, type=REASON, help="Waarom (bijv. storing in het bronsysteem)."
)
@click.option("--by", "by", required=True, type=ID, help="Uw medewerker-id.")
@click.option(
    "--as-of", "as_of", callback=_date, help="Vanaf deze datum (standaard vandaag); JJJJ-MM-DD."
)
@click.pass_context
def silences_add(
    ctx: click.Context,
    rule: str,
    team: str | None,
    location: str | None,
    until: dt.date,
    reason: str,
    by: str,
    as_of: dt.date | None,
) -> None:
    """Zet een regel stil: de signalen blijven bestaan maar gaan niet in de e-mail en
    escaleren niet; het teamoverzicht telt ze. Eindigt vanzelf na --until."""
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir
    from regiesignaal.engine.store.silences import (
        SILENCE_MAX_DAYS,
        SilenceError,
        add_silence,
        overlapping,
        silence_end,
    )

    settings = _settings(ctx)
    if team is not None and location is not None:
        err.print("Kies --team of --location, niet beide.", style="red", markup=False)
        sys.exit(1)
    rule_ids = {r.id for r in load_rule_dir(settings.rules_dir).rules}
    _staff_check(settings, by, team, location)
    start = as_of or _today(ctx)
    scope_team = team.strip() if team else None
    scope_location = location.strip() if location else None
    with _store(ctx, write=True) as conn:
        try:
            earlier = overlapping(
                conn, rule, scope_team, scope_location, start, silence_end(start, until)
            )
            new_id = add_silence(
                conn, rule, until, reason, by, start, rule_ids, team=team, location=location
            )
        except SilenceError as exc:
            err.print(_sentence(str(exc)), style="red", markup=False)
            sys.exit(1)
    end = silence_end(start, until)
    scope = "het team" if team else "de locatie" if location else "de hele dienst"
    console.print(
        f"Stilte {new_id} vastgelegd voor {scope} tot en met {end.isoformat()}; "
        "de volgende run past haar toe."
    )
    if end < until:
        err.print(
            f"Let op: een stilte duurt hooguit 1 jaar ({SILENCE_MAX_DAYS} dagen); de "
            f"einddatum is ingekort tot {end.isoformat()}. Verleng haar later met een nieuwe "
            "stilte, of zet de regel uit of in schaduw in zijn bestand.",
            style="yellow",
            markup=False,
        )
    for other in earlier:
        err.print(
            f"Let op: stilte {other} zet deze regel voor dezelfde groep (of de hele dienst) "
            "al (deels) stil in deze periode. Vervangt de nieuwe haar, beëindig haar dan met "
            f"'regiesignaal silences expire {other} --by ...'.",
            style="yellow",
            markup=False,
        )


@silences_group.command("list")
@click.option("--all", "include_ended", is_flag=True, help="Ook beëindigde en verlopen stiltes.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def silences_list(ctx: click.Context, include_ended: bool, fmt: str) -> None:
    """De stiltes die gelden of gepland zijn (met --all ook beëindigde), met hun geschiedenis."""
    from regiesignaal.engine.store.silences import list_silences

    with _store(ctx) as conn:
        rows = list_silences(conn, _today(ctx), include_ended)
    if fmt == "json":
        for r in rows:
            click.echo(_json(r))
        return
    table = cli_table(
        "id", "regel", "team", "locatie", "van", "tot en met", "status", "door", "reden",
        "geschiedenis", wrap=("reden", "geschiedenis"),
    )  # fmt: skip
    for r in rows:
        story = "; ".join(
            f"{SILENCE_EVENT_NL.get(e['kind'], e['kind'])} {e['as_of']} door {e['by']}"
            for e in r["events"]
        )
        table.add_row(
            str(r["id"]),
            r["rule_id"],
            r["team"] or "",
            r["location"] or "",
            str(r["starts_on"]),
            str(r["until"]),
            r["state"],
            r["created_by"],
            _short(r["reason"]),
            story,
        )
    print_table(console, table)


TABLE_REASON_MAX = 60
"""Characters of a reason the table shows; ``--format json`` gives it in full."""


def _short(text: str, limit: int = TABLE_REASON_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


SILENCE_EVENT_NL = {"added": "toegevoegd", "expired": "beëindigd", "ended": "verlopen"}


@silences_group.command("expire")
@click.argument("silence_id", type=ROW_ID)
@click.option("--by", "by", required=True, type=ID, help="Uw medewerker-id.")
@click.option(
    "--reason", default="handmatig beëindigd", show_default=True, type=REASON, help="Waarom."
)
@click.option("--as-of", "as_of", callback=_date, help="Vanaf deze datum (standaard vandaag).")
@click.pass_context
def silences_expire(
    ctx: click.Context, silence_id: int, by: str, reason: str, as_of: dt.date | None
) -> None:
    """Beëindig een stilte: vanaf vandaag gaan haar signalen weer mee in de e-mail."""
    from regiesignaal.engine.store.silences import SilenceError, expire_silence

    _staff_check(_settings(ctx), by, None)
    with _store(ctx, write=True) as conn:
        try:
            expire_silence(conn, silence_id, by, reason, as_of or _today(ctx))
        except SilenceError as exc:
            err.print(_sentence(str(exc)), style="red", markup=False)
            sys.exit(1)
    console.print(f"Stilte {silence_id} beëindigd.")


# ------------------------------------------------------------------ rules retire


@click.command("retire")
@click.argument("rule_ids", nargs=-1, required=True, type=ID)
@click.option(
    "--by", "by", default="operator", type=ID, show_default=True, help="Uw medewerker-id."
)
@click.pass_context
def rules_retire(ctx: click.Context, rule_ids: tuple[str, ...], by: str) -> None:
    """Trek regels bewust in: de volgende run sluit hun signalen (reden rule_retired)."""
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir

    settings = _settings(ctx)
    ruledir = load_rule_dir(settings.rules_dir)
    today = _today(ctx)
    active = {r.id for r in ruledir.rules if r.active_on(today)}
    with _store(ctx, write=True) as conn:
        done = history.retire_rules(conn, rule_ids, by, active)
    console.print(
        f"Ingetrokken: {', '.join(done)}. De volgende run sluit hun open signalen "
        "(reden rule_retired)."
    )


@click.command("promote")
@click.argument("rule_id", type=ID)
@click.option("--by", "by", required=True, type=ID, help="Uw medewerker-id.")
@click.option("--reason", required=True, type=REASON, help="Waarom de regel nu live gaat.")
@click.pass_context
def rules_promote(ctx: click.Context, rule_id: str, by: str, reason: str) -> None:
    """Maak een regel in schaduw (mode: shadow) live: de regel 'mode: shadow' gaat uit het
    bestand, en zijn open signalen tellen als bestaand (nooit als nieuw)."""
    from regiesignaal.engine.language.catalogue import suggest
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir
    from regiesignaal.engine.language.rulefile.mode import ModeEditError, make_live, write_text

    settings = _settings(ctx)
    ruledir = load_rule_dir(settings.rules_dir)
    if not ruledir.ok:
        err.print(
            "De regelmap heeft problemen; los die eerst op ('regiesignaal rules check').",
            style="red",
            markup=False,
        )
        sys.exit(1)
    rule = next((r for r in ruledir.rules if r.id == rule_id.strip()), None)
    if rule is None:
        hint = suggest(rule_id.strip().upper(), [r.id for r in ruledir.rules])
        err.print(
            "Die regel staat niet in de regelmap." + (f" {hint}" if hint else ""),
            style="red",
            markup=False,
        )
        sys.exit(1)
    if not rule.shadow:
        err.print(f"Regel {rule.id} draait al live.", style="red", markup=False)
        sys.exit(1)
    _staff_check(settings, by, None)
    path = Path(rule.path)
    try:
        before = make_live(path)
    except ModeEditError as exc:
        err.print(f"{rule.path}: {exc}", style="red", markup=False)
        sys.exit(1)
    after = next((r for r in load_rule_dir(settings.rules_dir).rules if r.id == rule.id), None)
    if after is None or after.shadow:
        try:
            write_text(path, before)
        except ModeEditError as exc:
            err.print(
                f"{rule.path}: {exc} Zet de vorige versie zelf terug.", style="red", markup=False
            )
            sys.exit(1)
        err.print(
            f"{rule.path}: na de wijziging klopt de regel niet meer; het bestand is "
            "teruggezet. Verwijder 'mode: shadow' zelf en controleer met 'rules check'.",
            style="red",
            markup=False,
        )
        sys.exit(1)
    with _store(ctx, write=True) as conn:
        noted = history.note_promotion(conn, rule.id, by.strip(), reason.strip())
    first = "" if noted else " Hij heeft nog geen nacht in schaduw gedraaid."
    console.print(
        f"Regel {rule.id} is live gezet in {rule.path}.{first} De volgende run mailt zijn "
        "signalen; wat hij dan vindt telt als bestaand (niet als nieuw) en de "
        "escalatietermijn begint die nacht."
    )
