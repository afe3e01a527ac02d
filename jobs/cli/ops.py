"""Operator commands: ``runs`` (list, show, abort), ``scheduler``, ``nightly``, ``purge``,
``intake manifest``, ``init``, ``db upgrade`` and ``config show``. Thin shells over
engine.store.lock, jobs.ops.scheduler, jobs.ops.nightly, jobs.ops.retention, jobs.ops.intake
and jobs.ops.site.

Exit codes (also in the README): 0 done; 1 refused or not found; 2 configuration or
database error; 3 mail not (yet) delivered; 4 another run holds the run lock.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from regiesignaal.engine.store.db import engine_options, sqlite_file
from regiesignaal.jobs.cli.common import ROW_ID, NumberType, console, err, parse_date, settings_of
from regiesignaal.jobs.cli.tables import cli_table, print_table
from regiesignaal.jobs.config import Settings, describe


def _settings(ctx: click.Context) -> Settings:
    return settings_of(ctx)


class NoStore(Exception):
    """The configured store does not exist yet (a SQLite file that is missing)."""


def existing_store(url: str) -> sa.Engine:
    """An engine for a store that must exist already: never creates a SQLite file."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise NoStore(
            f"er is nog geen store op {path}: er is nog geen run geweest met deze "
            "instellingen, of u bedoelt een andere store_url (zie 'regiesignaal config show'; "
            "na 'make demo': export REGIESIGNAAL_CONFIG=var/demo/regiesignaal.toml)"
        )
    return sa.create_engine(url, **engine_options(url))


def _store_or_exit(settings: Settings) -> sa.Engine:
    try:
        return existing_store(settings.store_url)
    except NoStore as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)


# ------------------------------------------------------------------ runs


@click.group("runs", invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, type=NumberType(1, 1_000_000))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def runs_group(ctx: click.Context, limit: int, fmt: str) -> None:
    """De geschiedenis van runs: status, aantallen, duur, fouten ('runs show ID' voor één)."""
    if ctx.invoked_subcommand is not None:
        return
    from regiesignaal.engine.store.tables import runs as runs_table

    store = _store_or_exit(_settings(ctx))
    try:
        with store.connect() as conn:
            rows = conn.execute(
                sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
            ).all()
    finally:
        store.dispose()
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(dict(r._mapping), default=str, ensure_ascii=False))
        return
    table = cli_table(
        "id", "peildatum", "status", "zaken", "nieuw", "opgelost", "verstuurd",
        "duur", "fouten", "notities", title="Runs",
    )  # fmt: skip
    from regiesignaal.jobs.ops.nightly import errors_and_notes

    for r in rows:
        counts = r.counts or {}
        rec = counts.get("reconcile") or {}
        delivery = counts.get("delivery") or {}
        total = sum((r.durations or {}).values())
        errors, notes = errors_and_notes(r.status, r.errors)
        table.add_row(
            str(r.id),
            str(r.as_of),
            r.status,
            str(counts.get("cases", "")),
            str(rec.get("new", "")),
            str(rec.get("resolved", "")),
            str(delivery.get("sent", "")),
            f"{total:.0f}s",
            str(len(errors)),
            str(len(notes)),
        )
    print_table(console, table)


def run_details(store: sa.Engine, run_id: int) -> dict[str, Any] | None:
    """One run as a dict for ``runs show``: the row plus its total duration (seconds)."""
    from regiesignaal.engine.store.tables import runs as runs_table

    with store.connect() as conn:
        row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).first()
    if row is None:
        return None
    record = dict(row._mapping)
    start, end = record["started_at"], record["finished_at"]
    record["duration_seconds"] = (end - start).total_seconds() if start and end else None
    return record


@runs_group.command("show")
@click.argument("run_id", type=ROW_ID)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def runs_show(ctx: click.Context, run_id: int, fmt: str) -> None:
    """Alles over één run: peildatum, aanleiding, host, begin, eind, status, duur per stap,
    aantallen, versie van de regels en problemen."""
    store = _store_or_exit(_settings(ctx))
    try:
        record = run_details(store, run_id)
    finally:
        store.dispose()
    if record is None:
        err.print(f"Run {run_id} bestaat niet (zie 'regiesignaal runs').", markup=False)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(record, default=str, ensure_ascii=False))
        return
    total = record["duration_seconds"]

    def when(value: Any) -> str:
        if value is None:
            return "-"
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return f"{utc:%Y-%m-%d %H:%M:%S} UTC"

    lines = [
        ("run", str(record["id"])),
        ("peildatum", str(record["as_of"])),
        ("aanleiding", record["trigger"]),
        ("status", record["status"]),
        ("host", f"{record['host'] or '?'} (pid {record['pid'] or '?'})"),
        ("begin", when(record["started_at"])),
        ("eind", when(record["finished_at"])),
        ("laatste teken van leven", when(record.get("heartbeat_at"))),
        ("duur", f"{total:.1f} s" if total is not None else "-"),
        ("regels (versie)", record["ruleset_version"] or "-"),
    ]
    for key, value in lines:
        console.print(f"{key + ':':<25} {value}", markup=False)
    durations = record["durations"] or {}
    if durations:
        console.print("duur per stap:", markup=False)
        for stage, seconds in durations.items():
            console.print(f"  {stage:<23} {float(seconds):.1f} s", markup=False)
    counts = record["counts"] or {}
    if counts:
        console.print("aantallen:", markup=False)
        for key, value in counts.items():
            shown = (
                ", ".join(f"{k} {v}" for k, v in value.items())
                if isinstance(value, dict)
                else str(value)
            )
            console.print(f"  {key:<23} {shown or '-'}", markup=False)
    problems = record["errors"] or []
    console.print(f"problemen: {len(problems)}", markup=False)
    for problem in problems:
        console.print(f"  - {problem}", markup=False)


@runs_group.command("abort")
@click.argument("run_id", type=ROW_ID)
@click.option("--force", is_flag=True, help="Ook als de run nog lijkt te leven.")
@click.pass_context
def runs_abort(ctx: click.Context, run_id: int, force: bool) -> None:
    """Markeer een vastgelopen run als afgebroken (daarna kan de datum opnieuw draaien)."""
    from regiesignaal.engine.store.lock import AbortRefused, abort_run

    store = _store_or_exit(_settings(ctx))
    try:
        abort_run(store, run_id, force=force)
    except AbortRefused as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)
    finally:
        store.dispose()
    console.print(
        f"Run {run_id} is als afgebroken gemarkeerd. Draai de peildatum opnieuw met "
        "'regiesignaal run --as-of ...': er gaat niets dubbel."
    )


# ------------------------------------------------------------------ scheduler / nightly


def _config_path(ctx: click.Context) -> str | None:
    settings = _settings(ctx)
    return str(settings.config_path) if settings.config_path else None


@click.command("scheduler")
@click.option("--show", is_flag=True, help="Toon alleen de volgende vijf runtijden en stop.")
@click.pass_context
def scheduler_command(ctx: click.Context, show: bool) -> None:
    """Blijf draaien en start elke geplande nacht de run ([scheduler], [run] schedule).

    Stoppen: SIGTERM of Ctrl-C (een lopende run wordt als afgebroken vastgelegd).
    """
    import datetime as dt

    from regiesignaal.jobs.ops.scheduler import fire_times, serve

    settings = _settings(ctx)
    if show:
        for when in fire_times(settings, dt.datetime.now(settings.tz), 5):
            console.print(when.isoformat(), markup=False)
        return
    sys.exit(serve(settings, _config_path(ctx)))


@click.command("nightly")
@click.option(
    "--as-of", "as_of", callback=parse_date, help="Peildatum JJJJ-MM-DD (standaard: vandaag)."
)
@click.option(
    "--trigger", default="manual", hidden=True, type=click.Choice(["manual", "scheduler"])
)
@click.pass_context
def nightly_command(ctx: click.Context, as_of: dt.date | None, trigger: str) -> None:
    """Eén nacht zoals de scheduler hem draait: levering ophalen, run, versturen,
    opruimen, meldingen aan de beheerder."""
    import signal

    from regiesignaal.jobs.ops.nightly import install_signal_handlers, nightly

    settings = _settings(ctx)
    day = as_of
    install_signal_handlers()
    result = nightly(settings, trigger=trigger, as_of=day)

    def done(signum: int, frame: object) -> None:  # the night is recorded: end with its code
        sys.exit(result.exit_code)

    signal.signal(signal.SIGTERM, done)  # a stop while reporting: no traceback
    signal.signal(signal.SIGINT, done)
    label = f"run {result.run_id}" if result.run_id is not None else "geen run"
    console.print(f"Nacht: {result.status} ({label}).", markup=False)
    for message in result.messages[:20]:
        err.print(f"let op: {message}", markup=False)
    sys.exit(result.exit_code)


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Alleen tellen, niets verwijderen.")
@click.pass_context
def purge_command(ctx: click.Context, dry_run: bool) -> None:
    """Ruim op volgens [retention]: oude berichtteksten, signalen van lang gesloten zaken,
    oude leveringen uit de dropmap."""
    from regiesignaal.jobs.ops.retention import purge

    settings = _settings(ctx)
    store = _store_or_exit(settings)
    try:
        report = purge(settings, store, dry_run=dry_run)
    finally:
        store.dispose()
    verb = "Zou opruimen" if dry_run else "Opgeruimd"
    console.print(
        f"{verb}: {report.message_bodies} berichtteksten (ouder dan "
        f"{settings.retention_body_days} dagen), {report.signals} signalen en "
        f"{report.signal_events} signaalgebeurtenissen en {report.explanations} "
        "toelichtingen via de opdrachtregel (zaak langer dan "
        f"{settings.retention_signal_days} dagen gesloten), {report.exports} leveringen "
        f"(ouder dan {settings.retention_export_days} dagen).",
        markup=False,
    )


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def init_command(directory: Path) -> None:
    """Maak een sitemap: configuratie met uitleg, bewerkbare kopie van de regels en een
    systemd-unit voor de scheduler."""
    from regiesignaal.jobs.ops.site import SiteRefused, create_site

    try:
        written = create_site(directory)
    except SiteRefused as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)
    for path in written:
        console.print(f"  {path}", markup=False)
    config = written[0]
    console.print(
        "Klaar. Vul de configuratie in, zet het SMTP-wachtwoord in regiesignaal.env en "
        f"controleer met:\n  regiesignaal --config {config} config show\n"
        f"  regiesignaal --config {config} rules check\n"
        f"  regiesignaal --config {config} db upgrade",
        markup=False,
    )


@click.group("db")
def db_group() -> None:
    """De opslag (store) van signalen, runs en outbox."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Breng het schema van de store naar de nieuwste versie (Alembic)."""
    from regiesignaal.jobs.pipeline import upgrade_store

    settings = settings_of(ctx)
    upgrade_store(settings)
    console.print("Store is bijgewerkt.")


@click.group("config")
def config_group() -> None:
    """De configuratie."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Toon de instellingen (wachtwoorden gemaskeerd)."""
    table = cli_table("instelling", "waarde", wrap=("waarde",))
    for key, value in describe(settings_of(ctx)):
        table.add_row(key, value)
    print_table(console, table)


# ------------------------------------------------------------------ status / metrics


@click.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def status_command(ctx: click.Context, fmt: str) -> None:
    """Eén regel voor monitoring: de laatste geslaagde nacht tegen de nacht die gepland
    was, onverstuurde mail en de hartslag van de scheduler. Exitcode 0 OK, 1 WARNING,
    2 CRITICAL, 3 UNKNOWN (de conventie van monitoring-plugins)."""
    from regiesignaal.jobs.config import ConfigError, load_settings
    from regiesignaal.jobs.ops.health import UNKNOWN, Health, status

    try:
        settings = load_settings(ctx.ensure_object(dict).get("config"))
    except ConfigError as exc:
        health = Health(UNKNOWN, problem=f"configuratie niet te lezen: {exc}")
    else:
        health = status(settings)
    if fmt == "json":
        click.echo(json.dumps(health.as_json(), ensure_ascii=False))
    else:
        click.echo(health.line())
    sys.exit(health.code)


@click.command("metrics")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Map voor regiesignaal.prom (standaard: [metrics] textfile_dir).",
)
@click.pass_context
def metrics_command(ctx: click.Context, out: Path | None) -> None:
    """Schrijf het metrics-bestand (Prometheus-tekstformaat, voor de textfile collector van
    node_exporter) met laatste geslaagde run, duur per stap, open signalen, outbox en
    gemiste nachten."""
    from regiesignaal.jobs.ops.health import MetricsRefused, write_metrics

    settings = _settings(ctx)
    directory = out or settings.metrics_dir
    if directory is None:
        err.print(
            "Geen map voor het metrics-bestand: geef --out DIR of zet [metrics] textfile_dir.",
            style="red",
            markup=False,
        )
        sys.exit(1)
    store = _store_or_exit(settings)
    try:
        written = write_metrics(settings, store, directory)
    except MetricsRefused as exc:
        err.print(f"Metrics niet geschreven: {exc}.", style="red", markup=False)
        sys.exit(1)
    finally:
        store.dispose()
    console.print(f"Metrics geschreven: {written}", markup=False)


@click.group("intake")
def intake_group() -> None:
    """De dropmap: leveringen uit het zaaksysteem."""


@intake_group.command("manifest")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def intake_manifest(directory: Path) -> None:
    """Schrijf MANIFEST.json (controlegetal en aantal regels van cases.jsonl en staff.jsonl)
    in de leveringsmap DIRECTORY; doe dit als laatste, nadat beide bestanden er staan."""
    from regiesignaal.jobs.ops.dropfolder import DropFolderError
    from regiesignaal.jobs.ops.intake import write_manifest

    try:
        path = write_manifest(directory)
    except DropFolderError as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)
    console.print(f"Geschreven: {path}", markup=False)
