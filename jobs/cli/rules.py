"""``regiesignaal rules ...``, ``preview`` and ``explain``: the policy owner's commands.

Thin shells over the rule language (``engine.language``: checking, tests, schemas, the
field catalogue), ``jobs.preview`` and ``engine.language.evaluator.explain_case``;
``rules retire`` over ``engine.store.history``.

Exit codes: 0 done (``rules check``: every file checks; ``rules test``: every test passes);
1 problems found, or a case or folder not found; 2 configuration error; 3 ``rules register``
wrote the entry but fields are still to fill by the organisation.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from regiesignaal.engine.language.casefile import shown_key
from regiesignaal.jobs.cli.common import (
    CONTACT,
    ID,
    REASON,
    URL,
    LazyGroup,
    as_of_option,
    checked_rules,
    console,
    err,
    rules_of,
    settings_of,
    today_of,
)
from regiesignaal.jobs.cli.tables import cli_table, print_table

"""A register detail (contact, website, DPIA, IAMA): one line of text."""


@click.command("preview")
@as_of_option
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--diff",
    is_flag=True,
    help="Vergelijk met de huidige regels: dezelfde zaken, dezelfde peildatum "
    "(standaard die van de laatste run).",
)
@click.pass_context
def preview_command(
    ctx: click.Context, as_of: dt.date | None, rules_dir: Path | None, fmt: str, diff: bool
) -> None:
    """Toon de signalen die de regels geven, zonder iets op te slaan of te versturen."""
    from regiesignaal.jobs.pipeline import RunRefused
    from regiesignaal.jobs.preview import diff as preview_diff
    from regiesignaal.jobs.preview import last_run, last_run_rules
    from regiesignaal.jobs.preview import preview as run_preview

    settings = settings_of(ctx)
    ruledir = checked_rules(settings, rules_dir)
    last = last_run(settings) if diff else None
    day = as_of or (last.as_of if last is not None else today_of(settings))
    with tempfile.TemporaryDirectory(prefix="regiesignaal-vorige-regels-") as kept:
        current = None
        against = str(settings.rules_dir)
        if diff and rules_dir:
            current = rules_of(settings, None)
        elif diff:
            if last is not None and last.ruleset_version not in (None, ruledir.version):
                current = last_run_rules(settings, str(last.ruleset_version), Path(kept))
            if current is None:
                _nothing_to_compare(settings.rules_dir, last, ruledir.version, fmt)
                return
            against = f"de regels van de laatste run (versie {last and last.ruleset_version})"
            click.echo(
                f"let op: de regels in {settings.rules_dir} zijn gewijzigd sinds de laatste run "
                f"(versie {last and last.ruleset_version}, nu {ruledir.version}); vergeleken "
                "worden de regels van die run (uit de opslag) met de map zoals hij nu is.",
                err=fmt == "json",
            )
        try:
            compiled, extracted = run_preview(settings, ruledir, day)
            if diff:
                change = preview_diff(settings, ruledir, extracted, current, day)
        except RunRefused as exc:
            err.print(str(exc), style="red", markup=False)
            sys.exit(1)
    hits, n_cases = extracted.hits, extracted.open_count
    for case_ref, kind in sorted(extracted.unreadable.items()):
        click.echo(
            f"let op: zaak {shown_key(case_ref)} is onleesbaar in de bron ({kind}); overgeslagen",
            err=True,
        )
    severity = {cr.rule.id: cr.rule.severity for cr in compiled.rules}
    if diff:
        if fmt == "json":
            for case_ref, rule_id in sorted(change.opened):
                team = change.after[(case_ref, rule_id)]
                click.echo(json.dumps({"change": "open", "case_ref": case_ref, "rule": rule_id,
                                       "team": team}))  # fmt: skip
            shadowed = change.to_shadow
            for case_ref, rule_id in sorted(change.closed):
                team = change.before[(case_ref, rule_id)]
                kind = "shadow" if (case_ref, rule_id) in shadowed else "close"
                click.echo(json.dumps({"change": kind, "case_ref": case_ref, "rule": rule_id,
                                       "team": team}))  # fmt: skip
            for o in change.overlaps:
                also = dict(o.also)
                click.echo(json.dumps({"overlap": o.rule_id, "status": o.status, "cases": o.cases,
                                       "alone": o.alone, "also": also}))  # fmt: skip
            return
        table = cli_table(
            "regel",
            "nu",
            "zou openen",
            "zou sluiten",
            "daarna",
            title=f"Effect van {ruledir.root} t.o.v. {against} per {day} ({n_cases} open zaken)",
        )
        for r, now_n, open_n, close_n, after_n in change.per_rule():
            table.add_row(r, str(now_n), f"+{open_n}", f"-{close_n}", str(after_n))
        print_table(console, table)
        shadowed = change.to_shadow
        closing = len(change.closed) - len(shadowed)
        total = f"Totaal: +{len(change.opened)} openen, -{closing} sluiten."
        if shadowed:
            total += f" Niet meer gemaild: {len(shadowed)} (blijven open in schaduw)."
        console.print(total)
        changes = change.changes()
        if changes:
            console.print("Per gewijzigde regel:")
            for line in (ln for c in changes for ln in c.lines()):
                console.print(line, markup=False)
        return
    if fmt == "json":
        for h in sorted(hits, key=lambda h: (h.case_ref, h.rule_id)):
            click.echo(
                json.dumps(
                    {
                        "case_ref": h.case_ref,
                        "rule": h.rule_id,
                        "severity": severity[h.rule_id],
                        "regievoerder": h.regievoerder,
                        "team": h.team,
                        "explained_until": h.explained_until.isoformat()
                        if h.explained_until
                        else None,
                    }
                )
            )
        return
    per_rule = Counter(h.rule_id for h in hits)
    table = cli_table("regel", "ernst", "signalen", "% zaken", title=f"Voorbeeld per {day}")
    for cr in compiled.rules:
        n = per_rule[cr.rule.id]
        pct = f"{100 * n / n_cases:.1f}" if n_cases else "-"
        table.add_row(cr.rule.id, cr.rule.severity, str(n), pct)
    print_table(console, table)
    console.print(f"{len(hits)} signalen op {n_cases} open zaken.")


@click.command("explain")
@click.argument("case_ref", type=ID)
@as_of_option
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path, file_okay=False))
@click.pass_context
def explain_command(
    ctx: click.Context, case_ref: str, as_of: dt.date | None, rules_dir: Path | None
) -> None:
    """Per regel: gaat hij af voor deze zaak, met elke voorwaarde en de gevonden waarde."""
    import sqlalchemy as sa

    from regiesignaal.engine.language.conditions import Trace
    from regiesignaal.engine.language.evaluator import explain_case
    from regiesignaal.engine.source.read import get_case
    from regiesignaal.jobs.pipeline import RunRefused, source_engine

    settings = settings_of(ctx)
    ruledir = checked_rules(settings, rules_dir)
    day = as_of or today_of(settings)
    try:
        source = source_engine(settings.source_url)
    except RunRefused as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)
    try:
        case = get_case(source, case_ref)
    except (ValueError, TypeError, OverflowError, sa.exc.StatementError) as exc:
        cause = getattr(exc, "orig", None) or exc
        err.print(
            f"Zaak {shown_key(case_ref)} heeft onleesbare gegevens in de brondatabase "
            f"({type(cause).__name__}); de nachtelijke run slaat haar over. Herstel de zaak in "
            "de bron.",
            style="red",
        )
        sys.exit(1)
    finally:
        source.dispose()
    if case is None:
        err.print(f"Zaak {case_ref} niet gevonden in de brondatabase.", style="red", markup=False)
        sys.exit(1)
    if case.get("status") != "open":
        console.print(
            f"[yellow]Zaak {escape(case_ref)} is gesloten: de nachtelijke run slaat haar over.[/]",
            markup=True,
        )
    _, results = explain_case(ruledir, case, day)

    def show(trace: Trace, indent: int) -> None:
        mark = "[green]waar[/green]" if trace.result else "[red]onwaar[/red]"
        seen = "" if trace.seen is None and trace.children else f"  (gezien: {trace.seen!r})"
        console.print(f"{'  ' * indent}- {escape(trace.text)}: {mark}{escape(seen)}", markup=True)
        for child in trace.children:
            show(child, indent + 1)

    console.print(f"Zaak {case_ref} per {day}:", markup=False)
    for r in results:
        verdict = "[bold red]GAAT AF[/]" if r.fires else "[green]gaat niet af[/]"
        extra = f" (toelichting geldig t/m {r.explained_until})" if r.explained_until else ""
        extra += f" (termijn verstreken: ernst {r.severity})" if r.fires and r.overdue else ""
        console.print(
            f"\n[bold]{escape(r.rule_id)}[/] {escape(r.title)}: {verdict}{extra}", markup=True
        )
        show(r.trace, 1)


@click.group(
    "rules",
    cls=LazyGroup,
    lazy_subcommands={
        "retire": "regiesignaal.jobs.cli.signals.rules_retire",
        "promote": "regiesignaal.jobs.cli.signals.rules_promote",
    },
)
def rules_group() -> None:
    """Regels controleren, testen en bekijken."""


@rules_group.command("check")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.pass_context
def rules_check(ctx: click.Context, rules_dir: Path | None) -> None:
    """Controleer elk regelbestand; problemen als pad:regel:kolom met een tip."""
    ruledir = checked_rules(settings_of(ctx), rules_dir)
    if not ruledir.rules:
        err.print(
            f"[red]{escape(str(ruledir.root))} bevat geen regels; een run met deze map wordt "
            "geweigerd. Controleer de map (REGIESIGNAAL_RULES_DIR of \\[rules] dir).[/red]",
            markup=True,
        )
        sys.exit(1)
    console.print(
        f"[green]In orde:[/green] {len(ruledir.rules)} regels, {len(ruledir.derived)} afgeleide "
        f"velden, {len(ruledir.factors)} prioriteitsfactoren (versie {escape(ruledir.version)}).",
        markup=True,
    )
    shadow = [r.id for r in ruledir.rules if r.shadow]
    if shadow:
        console.print(
            f"In schaduw (mode: shadow; nergens gemaild): {escape(', '.join(shadow))}. "
            "Live zetten: regiesignaal rules promote ID --by ... --reason ...",
            markup=True,
        )


@rules_group.command("list")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def rules_list(ctx: click.Context, rules_dir: Path | None, fmt: str) -> None:
    """Elke regel met ernst, modus (live of shadow), eigenaar en titel."""
    ruledir = checked_rules(settings_of(ctx), rules_dir)
    if fmt == "json":
        for r in ruledir.rules:
            click.echo(
                json.dumps(
                    {"id": r.id, "severity": r.severity, "mode": r.mode, "enabled": r.enabled,
                     "owner": r.owner, "title": r.title},
                    ensure_ascii=False,
                )
            )  # fmt: skip
        return
    table = cli_table(
        "id", "ernst", "modus", "eigenaar", "titel", title=f"Regels ({len(ruledir.rules)})"
    )
    for r in ruledir.rules:
        mode = r.mode if r.enabled else f"{r.mode} (uit)"
        table.add_row(r.id, r.severity, mode, r.owner, r.title)
    print_table(console, table)


@rules_group.command("test")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--backend", type=click.Choice(["durable", "python"]), default="durable")
@click.option("--rule", "only", multiple=True, type=ID, help="Alleen deze regel(s) testen.")
@click.option("-v", "--verbose", is_flag=True, help="Toon ook de geslaagde tests.")
@click.pass_context
def rules_test(
    ctx: click.Context, rules_dir: Path | None, backend: str, only: tuple[str, ...], verbose: bool
) -> None:
    """Voer de tests in de regelbestanden uit (gaat af / gaat niet af)."""
    from regiesignaal.engine.language.ruletests import format_result, format_summary, run_rule_tests

    ruledir = checked_rules(settings_of(ctx), rules_dir)
    results = run_rule_tests(
        ruledir,
        backend=backend,  # type: ignore[arg-type]
        only=set(only) or None,
    )
    for r in results:
        if not r.passed:
            click.echo(format_result(r), err=True)
        elif verbose:
            click.echo(format_result(r))
    click.echo(format_summary(results))
    untested = sorted(r.id for r in ruledir.rules if not r.tests and (not only or r.id in only))
    if untested:
        click.echo(f"regels zonder tests: {', '.join(untested)}", err=True)
    if any(not r.passed for r in results) or not results:
        sys.exit(1)


@rules_group.command("schema")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--check", is_flag=True, help="Alleen controleren of de schema's actueel zijn.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Map voor de schema's (standaard: schema/ naast de regelmap, waar de $schema-regel "
    "bovenin elk regelbestand naar wijst).",
)
@click.pass_context
def rules_schema(ctx: click.Context, rules_dir: Path | None, check: bool, out: Path | None) -> None:
    """Schrijf de JSON Schema's voor editors (schema/*.schema.json naast de regelmap)."""
    from regiesignaal.engine.language.packaged import inside_installed_product, schema_dir_for
    from regiesignaal.engine.language.schema import stale_schemas, write_schemas

    ruledir = rules_of(settings_of(ctx), rules_dir)
    target = out or schema_dir_for(ruledir.root)
    stale = stale_schemas(target, ruledir.root)
    if check:
        for path in stale:
            click.echo(f"{path}: verouderd; voer 'regiesignaal rules schema' uit", err=True)
        if not stale:
            console.print(f"De schema's in {target} zijn actueel.", markup=False)
        sys.exit(1 if stale else 0)
    if stale and inside_installed_product(target):
        err.print(
            f"{target} hoort bij de installatie en wordt niet beschreven. Maak een eigen "
            "regelmap met schema's ('regiesignaal init MAP') of geef --out MAP.",
            style="red",
            markup=False,
        )
        sys.exit(1)
    for path in write_schemas(target, ruledir.root):
        console.print(f"{path} bijgewerkt", markup=False)
    if not stale:
        console.print(f"De schema's in {target} zijn actueel.", markup=False)


@rules_group.command("fields")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def rules_fields(ctx: click.Context, rules_dir: Path | None, fmt: str) -> None:
    """De veldencatalogus: elk veld dat een regel kan gebruiken, met type en uitleg."""
    from regiesignaal.engine.language.catalogue import TYPE_NAMES_NL, record_catalogue

    ruledir = rules_of(settings_of(ctx), rules_dir)
    fields = list(ruledir.catalogue)
    records = record_catalogue()  # the fields of list records, for 'where' filters
    if fmt == "json":
        rows = [(f, f.origin, None) for f in fields] + [(f, "record", g) for g, f in records]
        for f, origin, group in rows:
            item = {
                "field": f.name,
                "type": f.type,
                "values": list(f.values),
                "origin": origin,
                "description": f.description,
            }
            if group:
                item["list"] = group
            click.echo(json.dumps(item, ensure_ascii=False))
        return
    table = cli_table(
        "veld", "type", "herkomst", "omschrijving", title="Veldencatalogus",
        wrap=("type", "omschrijving"),
    )  # fmt: skip
    for f in fields:
        kind = TYPE_NAMES_NL[f.type] + (f": {', '.join(f.values)}" if f.values else "")
        table.add_row(f.name, kind, f.origin, f.description)
    print_table(console, table)
    table = cli_table(
        "lijst", "veld", "type", "omschrijving", wrap=("type", "omschrijving"),
        title="Velden van lijstrecords (voor 'where' in een afgeleid veld in derived.yaml)",
    )  # fmt: skip
    for group, f in records:
        kind = TYPE_NAMES_NL[f.type] + (f": {', '.join(f.values)}" if f.values else "")
        table.add_row(group, f.name, kind, f.description)
    print_table(console, table)


def _nothing_to_compare(folder: Path, last: Any, version: str, fmt: str) -> None:
    """``preview --diff`` without ``--rules`` and no earlier rule set to compare with: say
    so, and how to compare (never "+0 / -0" as if a change did nothing)."""
    if last is None or last.ruleset_version is None:
        why = "er is nog geen geslaagde run om mee te vergelijken"
    elif last.ruleset_version == version:
        why = f"de regels in {folder} zijn dezelfde als die van de laatste run"
    else:
        why = (
            f"de regels in {folder} zijn gewijzigd sinds de laatste run (versie "
            f"{last.ruleset_version}, nu {version}), maar de opslag bewaart de regels van "
            "die run niet meer"
        )
    click.echo(
        f"Zonder --rules wordt niets vergeleken: {why}. Om een wijziging te zien: kopieer de "
        "map, wijzig de kopie en vergelijk met 'regiesignaal preview --diff --rules KOPIE'.",
        err=fmt == "json",
    )


@rules_group.command("register")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var/register"),
    show_default=True,
    help="Map voor algoritmeregister.json en algoritmeregister.md.",
)
@click.option(
    "--contact",
    type=CONTACT,
    help="Contactadres: een functionele mailbox (geen persoon) of een webadres (https://...).",
)
@click.option("--website", type=URL, help="Webpagina over het systeem (https://...).")
@click.option(
    "--documentation-url",
    "documentation_urls",
    type=URL,
    multiple=True,
    help="Webadres van openbare documentatie (https://...); mag vaker.",
)
@click.option(
    "--legal-basis",
    type=REASON,
    help="De wettelijke basis zoals de organisatie die vaststelt (bijv. 'art. 4 Wet ...').",
)
@click.option("--dpia", type=REASON, help="Kenmerk en datum van de DPIA.")
@click.option("--iama", type=REASON, help="Kenmerk en datum van het IAMA.")
@as_of_option
@click.pass_context
def rules_register(
    ctx: click.Context,
    rules_dir: Path | None,
    out: Path,
    contact: str | None,
    website: str | None,
    documentation_urls: tuple[str, ...],
    legal_basis: str | None,
    dpia: str | None,
    iama: str | None,
    as_of: dt.date | None,
) -> None:
    """Schrijf de regelset als beschrijving voor het Algoritmeregister (JSON en Markdown).

    Exit 3 als er nog velden door de organisatie in te vullen zijn (de bestanden worden wel
    geschreven)."""
    from regiesignaal.engine.language.register import (
        LABELS_NL,
        RegisterDetails,
        build_register,
        to_fill,
        write_entry,
    )

    settings = settings_of(ctx)
    ruledir = checked_rules(settings, rules_dir)
    if not ruledir.rules:
        err.print("De regelmap bevat geen regels; er is niets te beschrijven.", style="red")
        sys.exit(1)
    given = {
        "contact_email": contact,
        "website": website,
        "dpia": dpia,
        "iama": iama,
        "legal_basis": legal_basis,
    }
    details = RegisterDetails(
        **{k: v.strip() for k, v in given.items() if v and v.strip()},
        documentation=tuple(dict.fromkeys(documentation_urls)),
    )
    entry = build_register(ruledir, as_of or today_of(settings), details)
    try:
        paths = write_entry(entry, out)
    except OSError as exc:
        err.print(
            f"Kan niet schrijven in de map bij --out ({type(exc).__name__}); kies een map "
            "waarin u mag schrijven.",
            style="red",
        )
        sys.exit(2)
    missing = [r.id for r in ruledir.rules if not r.basis]
    for path in paths:
        console.print(f"Geschreven: {escape(str(path))}", markup=True)
    if missing:
        console.print(
            f"[yellow]{len(missing)} regel(s) zonder 'basis': {escape(', '.join(missing))}; "
            "vul de grondslag aan voordat u publiceert.[/]",
            markup=True,
        )
    open_fields = to_fill(entry)
    if open_fields:
        options = {
            "contact_email": "--contact",
            "website": "--website",
            "documentation": "--documentation-url",
            "lawful_basis": "--legal-basis",
            "dpia": "--dpia",
            "iama": "--iama",
        }
        console.print(
            "Nog in te vullen voordat u publiceert: "
            + ", ".join(
                f"{LABELS_NL[k]} ({k}" + (f", optie {options[k]})" if k in options else ")")
                for k in open_fields
            )
            + ". Geef ze mee en schrijf opnieuw.",
            markup=False,
        )
        sys.exit(3)
