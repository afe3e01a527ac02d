"""The command line: `regiesignaal <command>`. Messages for users are Dutch."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

from engine.casefile import shown_key
from jobs.config import ConfigError, Settings, describe, load_settings
from jobs.tables import cli_table, print_table

if TYPE_CHECKING:
    from engine.rulefile import RuleDir

console = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is geen datum; gebruik JJJJ-MM-DD") from None


as_of_option = click.option(
    "--as-of",
    "as_of",
    callback=_parse_date,
    help="Peildatum JJJJ-MM-DD (standaard: vandaag in Europe/Amsterdam).",
)


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except ConfigError as exc:
            err.print(str(exc), style="red", markup=False)
            sys.exit(2)
    settings: Settings = obj["settings"]
    return settings


def _today(settings: Settings) -> dt.date:
    """Today in the configured time zone (default Europe/Amsterdam)."""
    return dt.datetime.now(settings.tz).date()


def _rules(settings: Settings, rules_dir: Path | None) -> RuleDir:
    from engine.rulefile import load_rule_dir

    root = rules_dir or settings.rules_dir
    if not Path(root).is_dir():  # never an empty answer for a folder that is not there
        err.print(
            f"De map met regels {root} bestaat niet. Geef de map op (argument, [rules] dir "
            "of REGIESIGNAAL_RULES_DIR; zonder die twee: het meegeleverde regelpakket).",
            style="red",
            markup=False,
        )
        sys.exit(1)
    return load_rule_dir(root)


def _checked_rules(settings: Settings, rules_dir: Path | None) -> RuleDir:
    """The rule directory, fully checked (files and engine limits); exit 1 on problems."""
    from engine.compiler import check_rule_dir

    ruledir = check_rule_dir(rules_dir or settings.rules_dir)
    _fail_on_problems(ruledir)
    return ruledir


def _fail_on_problems(ruledir: RuleDir) -> None:
    if ruledir.problems:
        for p in ruledir.problems:
            click.echo(str(p), err=True)  # unwrapped: editors jump to path:line:column
        err.print(
            f"[red]{len(ruledir.problems)} probleem/problemen in {escape(str(ruledir.root))}; "
            "herstel ze en probeer opnieuw.[/red]",
            markup=True,
        )
        sys.exit(1)


class LazyGroup(click.Group):
    """A command group whose subcommands are imported when used, not at start-up.

    ``lazy_subcommands`` maps a command name to ``"module.attribute"`` (a click command or
    group). ``regiesignaal deliver`` then does not import the rule compiler, alembic or the
    LKO agenda (some 0.4 s a start); ``--help`` still lists every command. The pattern is
    click's own ("Lazily Loading Subcommands" in its documentation).
    """

    def __init__(
        self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_subcommands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.rpartition(".")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "fixtures": "jobs.cli_fixtures.fixtures_group",
        "mail": "jobs.cli_mail.mail_group",
        "lko": "jobs.cli_lko.lko_group",
        "signals": "jobs.cli_signals.signals_group",
        "explanations": "jobs.cli_signals.explanations_group",
        "runs": "jobs.cli_ops.runs_group",
        "scheduler": "jobs.cli_ops.scheduler_command",
        "nightly": "jobs.cli_ops.nightly_command",
        "purge": "jobs.cli_ops.purge_command",
        "init": "jobs.cli_ops.init_command",
    },
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML-configuratiebestand (standaard: $REGIESIGNAAL_CONFIG of ./regiesignaal.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Meer logregels (alleen ids en aantallen).")
@click.pass_context
def main(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """regiesignaal: kwaliteitssignalen op vertrekplannen van DT&V."""
    from jobs.logs import setup_logging

    try:
        log_format = load_settings(config).log_format
    except ConfigError:
        log_format = "plain"  # the command itself reports the configuration problem
    scheduler = ctx.invoked_subcommand in ("scheduler", "nightly")  # services log INFO
    setup_logging(logging.INFO if verbose or scheduler else logging.WARNING, log_format)
    ctx.ensure_object(dict)["config"] = config


# ------------------------------------------------------------------ run


@main.command()
@as_of_option
@click.option(
    "--no-mail",
    is_flag=True,
    help="Berichten wel klaarzetten in de outbox, niet versturen (dat doet 'deliver' of de "
    "volgende run; een nieuwere run vervangt ze).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Ook draaien als de bron geen of veel minder open zaken heeft dan de vorige run, "
    "of als de peildatum meer dan een dag vooruit ligt.",
)
@click.option(
    "--trigger", default="manual", hidden=True, type=click.Choice(["manual", "scheduler", "demo"])
)
@click.pass_context
def run(
    ctx: click.Context, as_of: dt.date | None, no_mail: bool, force: bool, trigger: str
) -> None:
    """Voer de hele nachtelijke run één keer uit."""
    from jobs.pipeline import RunOptions, RunRefused
    from jobs.pipeline import run as run_pipeline

    settings = _settings(ctx)
    day = as_of or _today(settings)
    from jobs.nightly import Terminated, stop_cleanly
    from jobs.progress import busy

    try:
        with stop_cleanly(settings), busy(f"Run peildatum {day}", err):
            options = RunOptions(day, trigger, deliver=not no_mail, force=force)
            summary = run_pipeline(settings, options)
    except Terminated as exc:
        err.print(f"Run gestopt ({exc}); vastgelegd als afgebroken.", markup=False)
        sys.exit(1)
    except RunRefused as exc:
        err.print(f"Run niet gestart: {exc}", style="red", markup=False)
        for line in exc.details:
            click.echo(line, err=True)
        sys.exit(_refused_exit_code(exc))
    print_summary(summary)
    from jobs.mail_status import EXIT_MAIL_WAITING, mail_needs_look

    if mail_needs_look(summary.delivery, summary.problems):
        sys.exit(EXIT_MAIL_WAITING)


def _refused_exit_code(exc: Exception) -> int:
    """1 for a refused run, 4 when another run holds the lock (jobs/lock.py)."""
    from jobs.lock import EXIT_LOCKED
    from jobs.pipeline import RunLocked

    return EXIT_LOCKED if isinstance(exc, RunLocked) else 1


def print_summary(summary: Any) -> None:
    console.print(
        f"Run {summary.run_id} peildatum {summary.as_of}: [bold]{escape(summary.status)}[/bold] "
        f"(regels {escape(str(summary.ruleset_version))})",
        markup=True,
    )
    console.print(f"Open zaken gelezen: {summary.cases}")
    table = cli_table("regel", "signalen", title="Signalen per regel")
    for rule_id, n in summary.signals_per_rule.items():
        table.add_row(rule_id, str(n))
    print_table(console, table)
    r = summary.reconcile
    console.print(
        f"Nieuw: {r.get('new', 0)} (heropend {r.get('reopened', 0)}), "
        f"bestaand (eerste nacht): {r.get('baseline', 0)}, "
        f"nog open: {r.get('still_open', 0)}, tijdelijk afwezig: {r.get('in_gap', 0)}, "
        f"geëscaleerd: {r.get('escalated_today', 0)}, "
        f"met toelichting: {r.get('explained', 0)}, "
        f"toelichting verlopen: {r.get('explanation_expired', 0)}"
    )
    console.print(
        f"Gesloten: opgelost {r.get('resolved', 0)}, zaak gesloten {r.get('closed_case', 0)}, "
        f"regel uit {r.get('rule_removed', 0)}, regel ingetrokken {r.get('rule_retired', 0)}"
    )
    m = summary.messages_enqueued
    console.print(
        f"Berichten klaargezet: {m.get('regievoerder', 0)} regievoerder, "
        f"{m.get('teamleider', 0)} teamleider"
    )
    if summary.delivery is not None:
        console.print(summary.delivery.line(), markup=False)
    for problem in summary.problems[:20]:
        err.print(f"let op: {problem}", style="yellow", markup=False)
    if len(summary.problems) > 20:
        err.print(f"... en {len(summary.problems) - 20} meer (zie 'regiesignaal runs')")


# ------------------------------------------------------------------ preview / explain


@main.command()
@as_of_option
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--diff", is_flag=True, help="Vergelijk met de signalen die nu open staan.")
@click.pass_context
def preview(
    ctx: click.Context, as_of: dt.date | None, rules_dir: Path | None, fmt: str, diff: bool
) -> None:
    """Toon de signalen die de regels geven, zonder iets op te slaan of te versturen."""
    from jobs.pipeline import RunRefused, open_signal_keys
    from jobs.pipeline import preview as run_preview

    settings = _settings(ctx)
    ruledir = _checked_rules(settings, rules_dir)
    day = as_of or _today(settings)
    try:
        compiled, extracted = run_preview(settings, ruledir, day)
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
        now_open = open_signal_keys(settings)
        would = {(h.case_ref, h.rule_id) for h in hits}
        opened = would - now_open
        closed = now_open - would
        rules = sorted({r for _, r in opened | closed | would})
        from engine.overlap import changed_rules, overlaps

        changed = changed_rules(ruledir, _rules(settings, None)) if rules_dir else {}
        found = overlaps(hits, changed)
        if fmt == "json":
            for case_ref, rule_id in sorted(opened):
                click.echo(json.dumps({"change": "open", "case_ref": case_ref, "rule": rule_id}))
            for case_ref, rule_id in sorted(closed):
                click.echo(json.dumps({"change": "close", "case_ref": case_ref, "rule": rule_id}))
            for o in found:
                also = dict(o.also)
                click.echo(json.dumps({"overlap": o.rule_id, "status": o.status, "cases": o.cases,
                                       "alone": o.alone, "also": also}))  # fmt: skip
            return
        table = cli_table(
            "regel",
            "nu open",
            "zou openen",
            "zou sluiten",
            "daarna open",
            title=f"Effect van {ruledir.root} per {day} ({n_cases} open zaken)",
        )
        now_by = Counter(r for _, r in now_open)
        open_by = Counter(r for _, r in opened)
        close_by = Counter(r for _, r in closed)
        after_by = Counter(r for _, r in would)
        for r in rules:
            table.add_row(r, str(now_by[r]), f"+{open_by[r]}", f"-{close_by[r]}", str(after_by[r]))
        print_table(console, table)
        console.print(f"Totaal: +{len(opened)} openen, -{len(closed)} sluiten.")
        if found:
            console.print(f"Overlap van nieuwe en gewijzigde regels (t.o.v. {settings.rules_dir}):")
            for line in (ln for o in found for ln in o.lines()):
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


@main.command()
@click.argument("case_ref")
@as_of_option
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path, file_okay=False))
@click.pass_context
def explain(
    ctx: click.Context, case_ref: str, as_of: dt.date | None, rules_dir: Path | None
) -> None:
    """Per regel: gaat hij af voor deze zaak, met elke voorwaarde en de gevonden waarde."""
    import sqlalchemy as sa

    from engine.conditions import Trace
    from engine.evaluate import explain_case
    from engine.source import get_case
    from jobs.pipeline import RunRefused, source_engine

    settings = _settings(ctx)
    ruledir = _checked_rules(settings, rules_dir)
    day = as_of or _today(settings)
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


# ------------------------------------------------------------------ rules


@main.group(cls=LazyGroup, lazy_subcommands={"retire": "jobs.cli_signals.rules_retire"})
def rules() -> None:
    """Regels controleren, testen en bekijken."""


@rules.command("check")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.pass_context
def rules_check(ctx: click.Context, rules_dir: Path | None) -> None:
    """Controleer elk regelbestand; problemen als pad:regel:kolom met een tip."""
    ruledir = _checked_rules(_settings(ctx), rules_dir)
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


@rules.command("test")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--backend", type=click.Choice(["durable", "python"]), default="durable")
@click.option("--rule", "only", multiple=True, help="Alleen deze regel(s) testen.")
@click.option("-v", "--verbose", is_flag=True, help="Toon ook de geslaagde tests.")
@click.pass_context
def rules_test(
    ctx: click.Context, rules_dir: Path | None, backend: str, only: tuple[str, ...], verbose: bool
) -> None:
    """Voer de tests in de regelbestanden uit (gaat af / gaat niet af)."""
    from engine.ruletests import format_result, format_summary, run_rule_tests

    ruledir = _checked_rules(_settings(ctx), rules_dir)
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


@rules.command("schema")
@click.option("--check", is_flag=True, help="Alleen controleren of schema/ actueel is.")
def rules_schema(check: bool) -> None:
    """Schrijf de JSON Schema's voor editors opnieuw (schema/*.schema.json)."""
    from engine.schema import main as schema_main

    sys.exit(schema_main(["--check"] if check else []))


@rules.command("fields")
@click.argument("rules_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def rules_fields(ctx: click.Context, rules_dir: Path | None, fmt: str) -> None:
    """De veldencatalogus: elk veld dat een regel kan gebruiken, met type en uitleg."""
    from engine.catalogue import TYPE_NAMES_NL, record_catalogue

    ruledir = _rules(_settings(ctx), rules_dir)
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


# ------------------------------------------------------------------ operations


@main.group()
def db() -> None:
    """De opslag (store) van signalen, runs en outbox."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Breng het schema van de store naar de nieuwste versie (Alembic)."""
    from jobs.pipeline import upgrade_store

    settings = _settings(ctx)
    upgrade_store(settings)
    console.print("Store is bijgewerkt.")


@main.command()
@click.option("--now", "now_", is_flag=True, help="Wacht niet op de herhaaltijd: probeer alles nu.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Zet mislukte berichten terug in de wachtrij (tenzij er al een nieuwer bericht is).",
)
@click.option(
    "--retry-uncertain",
    is_flag=True,
    help="Zet berichten met onbekende uitkomst ('mogelijk aangekomen') terug in de wachtrij; "
    "alleen na controle in het logboek van de mailserver (anders kan het dubbel aankomen).",
)
@click.pass_context
def deliver(ctx: click.Context, now_: bool, retry_failed: bool, retry_uncertain: bool) -> None:
    """Verstuur berichten die nog in de outbox staan (bijv. na een SMTP-storing)."""

    from engine.db import store_engine
    from notifications import outbox
    from notifications.delivery import deliver_pending

    settings = _settings(ctx)
    store = store_engine(settings.store_url)
    try:
        with store.begin() as conn:
            if retry_failed:
                console.print(f"Terug in de wachtrij: {outbox.requeue_failed(conn)}")
            if retry_uncertain:
                n = outbox.requeue_uncertain(conn)
                console.print(f"Onbekende uitkomst terug in de wachtrij: {n}")
            if now_:
                console.print(f"Nu te proberen: {outbox.release_due(conn, outbox.utcnow())}")
        report = None
        if settings.mail_enabled:
            report = deliver_pending(store, settings.smtp)
        else:
            err.print("Versturen staat uit ([mail] enabled = false).", markup=False)
        with store.connect() as conn:
            counts = outbox.counts(conn)
    finally:
        store.dispose()
    if report is not None:
        console.print(report.line(), markup=False)
        for e in report.errors[:20]:
            click.echo(e, err=True)
    console.print(
        "Outbox: " + ", ".join(f"{status} {n}" for status, n in counts.items()), markup=False
    )
    from jobs.mail_status import EXIT_MAIL_WAITING, mail_needs_look

    if mail_needs_look(report, (), counts):
        sys.exit(EXIT_MAIL_WAITING)


@main.group("config")
def config_group() -> None:
    """De configuratie."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Toon de instellingen (wachtwoorden gemaskeerd)."""
    table = cli_table("instelling", "waarde", wrap=("waarde",))
    for key, value in describe(_settings(ctx)):
        table.add_row(key, value)
    print_table(console, table)


@main.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("var/mail"))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=1025, show_default=True)
def mailcatcher(directory: Path, host: str, port: int) -> None:
    """Een lokale SMTP-server die elk bericht als .eml-bestand bewaart (voor tests en demo)."""
    from notifications.mailserver import serve

    directory.mkdir(parents=True, exist_ok=True)
    console.print(f"Luistert op {host}:{port}, bewaart in {directory}; stop met Ctrl-C.")
    n = serve(directory, host, port)
    console.print(f"{n} berichten ontvangen.")


@main.command()
@click.option("--cases", default=2000, show_default=True, help="Aantal synthetische zaken.")
@click.option("--seed", default=42, show_default=True)
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("var/demo"))
@click.option(
    "--nights",
    default=1,
    show_default=True,
    type=click.IntRange(1, 60),
    help="Aantal werkdagen na elkaar (tot en met vandaag) met veranderende zaken.",
)
@click.pass_context
def demo(ctx: click.Context, cases: int, seed: int, directory: Path, nights: int) -> None:
    """Alles in één: synthetische data, lokale mailserver, één run per vandaag."""
    from jobs.demo import DemoRefused, run_demo

    rules_dir = _settings(ctx).rules_dir  # --config / environment / packaged default
    try:
        run_demo(
            directory,
            cases=cases,
            seed=seed,
            console=console,
            nights=nights,
            rules_dir=rules_dir,
        )
    except DemoRefused as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)


def run_cli() -> None:
    """The console entry point: database trouble becomes a clear message, not a traceback."""
    import sqlalchemy as sa

    try:
        main()
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        click.echo(f"Databasefout ({type(cause).__name__}): {first}", err=True)
        hint = "controleer de database-URL in de configuratie (regiesignaal config show)"
        if "database is locked" in first:
            hint = (
                "de database is bezet: een andere run of bezorging schrijft er nu in (bijv. "
                "een run die berichten klaarzet); wacht tot die klaar is en probeer opnieuw"
            )
        elif "no such table" in first or "does not exist" in first:
            hint = (
                "de tabellen ontbreken: voer 'regiesignaal db upgrade' uit voor de store, of "
                "laad de brondata ('regiesignaal fixtures load') voor de bron"
            )
        click.echo(f"tip: {hint}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    run_cli()
