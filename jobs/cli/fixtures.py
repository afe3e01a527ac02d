"""Command line for synthetic data: ``fixtures generate`` and ``fixtures load``.

``demo`` too: the whole product on synthetic data in one command. Messages are Dutch.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click
import sqlalchemy as sa

from regiesignaal.engine.language.dates import today_amsterdam
from regiesignaal.engine.source.load import LoadReport, load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli.common import NumberType, check_date, console, err, settings_of
from regiesignaal.jobs.cli.run import print_summary

MAX_PROBLEMS_SHOWN = 50

fixtures_group = click.Group("fixtures", help="Synthetische testgegevens maken en laden.")


def default_source_url() -> str:
    """The configured source URL: --config / $REGIESIGNAAL_CONFIG / ./regiesignaal.toml and
    the environment, as for every other command."""
    from regiesignaal.jobs.config import ConfigError, load_settings

    ctx = click.get_current_context(silent=True)
    path = None
    while ctx is not None:
        if isinstance(ctx.obj, dict) and ctx.obj.get("config"):
            path = ctx.obj["config"]
        ctx = ctx.parent
    try:
        return load_settings(path).source_url
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def source_engine(url: str) -> sa.Engine:
    """An engine for the source database; for a SQLite file its folder is created."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise click.ClickException(
            f"ongeldige database-URL: {exc} (bijv. sqlite:///var/source.sqlite of "
            "postgresql+psycopg://gebruiker@host/database)"
        ) from exc
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed)


def _parse_as_of(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date:
    if value is None:
        return today_amsterdam()
    return check_date(value)


@fixtures_group.command("generate")
@click.option(
    "--cases", "n_cases", type=NumberType(0, 10_000_000), required=True, help="aantal zaken"
)
@click.option(
    "--seed",
    type=NumberType(0, 2**32 - 1),
    required=True,
    help="startwaarde: zelfde seed, zelfde data",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL-bestand voor de zaken",
)
@click.option(
    "--staff-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSONL-bestand voor de medewerkers (standaard: naast --out, eindigend op .staff.jsonl)",
)
@click.option(
    "--as-of",
    callback=_parse_as_of,
    default=None,
    metavar="JJJJ-MM-DD",
    help="peildatum waartegen de data realistisch is (standaard: vandaag)",
)
def generate_command(
    n_cases: int, seed: int, out: Path, staff_out: Path | None, as_of: dt.date
) -> None:
    """Schrijf synthetische vertrekplannen en een medewerkerslijst als JSONL."""
    staff_path = staff_out or out.with_suffix(".staff.jsonl")
    if staff_path == out:
        raise click.BadParameter(
            "mag niet hetzelfde bestand zijn als --out", param_hint="--staff-out"
        )
    from regiesignaal.jobs.cli.progress import busy

    with busy(f"{n_cases} zaken genereren"):
        report = generate(n_cases, seed=seed, as_of=as_of, out=out, staff_out=staff_path)
    click.echo(f"{report.summary()} (peildatum {as_of.isoformat()}, seed {seed})")


def _show(title: str, report: LoadReport) -> None:
    click.echo(f"{title}: {report.summary()}")
    for line in report.problems[:MAX_PROBLEMS_SHOWN]:
        click.echo(f"  {line}", err=True)
    hidden = len(report.problems) - MAX_PROBLEMS_SHOWN
    if hidden > 0:
        click.echo(f"  ... en {hidden} meer", err=True)


def _checked_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Only SQLite and PostgreSQL URLs (the value is never repeated: it may hold a password)."""
    if value is None:
        return None
    try:
        backend = sa.make_url(value).get_backend_name()
    except (sa.exc.ArgumentError, ValueError):
        backend = ""
    if backend not in ("sqlite", "postgresql"):
        raise click.BadParameter(
            "de database-URL wordt niet ondersteund; gebruik sqlite:///PAD of "
            "postgresql+psycopg://gebruiker@host/database"
        )
    return value


@fixtures_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--staff",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSONL-bestand met de medewerkerslijst",
)
@click.option(
    "--source-url",
    default=default_source_url,
    callback=_checked_url,
    show_default="source_url uit de configuratie",
    help="database-URL van de brondatabase",
)
@click.option(
    "--replace/--no-replace",
    default=True,
    help="een zaak die al in de database staat vervangen (standaard) of overslaan",
)
def load_command(file: Path, staff: Path | None, source_url: str, replace: bool) -> None:
    """Laad vertrekplannen (en eventueel medewerkers) uit JSONL in de brondatabase."""
    for path in (file, staff):
        if path is not None and not path.is_file():
            raise click.ClickException(f"bestand {path} bestaat niet")
    engine = source_engine(source_url)
    rejected = 0
    try:
        if staff is not None:
            staff_report = load_staff_file(engine, staff)
            _show(f"medewerkers uit {staff}", staff_report)
            rejected += staff_report.rejected
        from regiesignaal.jobs.cli.progress import busy

        with busy(f"zaken laden uit {file}"):
            case_report = load_cases(engine, file, replace=replace)
        _show(f"zaken uit {file}", case_report)
        rejected += case_report.rejected
    except sa.exc.OperationalError as exc:
        where = sa.make_url(source_url).render_as_string(hide_password=True)
        first = str(exc.orig).splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise click.ClickException(f"kan de brondatabase {where} niet gebruiken: {first}") from exc
    finally:
        engine.dispose()
    if rejected:
        click.get_current_context().exit(1)


@click.command("demo")
@click.option(
    "--cases",
    default=2000,
    show_default=True,
    type=NumberType(0, 1_000_000),
    help="Aantal synthetische zaken.",
)
@click.option("--seed", default=42, show_default=True, type=NumberType(0, 2**32 - 1))
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("var/demo"))
@click.option(
    "--nights",
    default=1,
    show_default=True,
    type=click.IntRange(1, 60),
    help="Aantal werkdagen na elkaar (tot en met vandaag) met veranderende zaken.",
)
@click.pass_context
def demo_command(ctx: click.Context, cases: int, seed: int, directory: Path, nights: int) -> None:
    """Alles in één: synthetische data, lokale mailserver, één run per vandaag."""
    from regiesignaal.jobs.demo.demo import DemoRefused, run_demo

    rules_dir = settings_of(ctx).rules_dir  # --config / environment / packaged default
    try:
        run_demo(
            directory,
            cases=cases,
            seed=seed,
            console=console,
            nights=nights,
            rules_dir=rules_dir,
            show_summary=print_summary,
        )
    except DemoRefused as exc:
        err.print(str(exc), style="red", markup=False)
        sys.exit(1)
