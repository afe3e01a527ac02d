"""``regiesignaal mail ...``: look at mail without sending it.

Exit codes of ``mail preview``: 0 written; 1 refused (unknown staff member, a role without
mail, broken rules or templates, a missing source); 2 configuration error.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from regiesignaal.jobs.cli.common import (
    ID,
    IdType,
    NumberType,
    check_date,
    console,
    settings_of,
    today_of,
)

mail_group = click.Group("mail", help="Berichten bekijken zonder ze te versturen.")


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    return check_date(value)


@mail_group.command("preview")
@click.option(
    "--recipient", "staff_id", required=True, type=ID, help="Medewerker-id van de ontvanger."
)
@click.option("--as-of", "as_of", callback=_date, help="Peildatum JJJJ-MM-DD (standaard vandaag).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Map waarin .html, .txt en .eml komen.",
)
@click.pass_context
def mail_preview(ctx: click.Context, staff_id: str, as_of: dt.date | None, out_dir: Path) -> None:
    """Schrijf wat een medewerker zou krijgen (.html, .txt, .eml); verstuurt niets en
    wijzigt de opslag niet."""
    from regiesignaal.jobs.mail_preview import compose_preview, write_preview
    from regiesignaal.jobs.pipeline import RunRefused
    from regiesignaal.notifications.night import template_problems

    settings = settings_of(ctx)
    day = as_of or today_of(settings)
    broken = template_problems(settings)
    if broken:
        click.echo(
            f"De sjablonen in {settings.mail_templates_dir} bevatten fouten; herstel ze of haal "
            "[mail] templates_dir weg:",
            err=True,
        )
        for line in broken:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
    try:
        result = compose_preview(settings, staff_id, day)
    except RunRefused as exc:
        click.echo(str(exc), err=True)
        for detail in exc.details[:50]:
            click.echo(f"  {detail}", err=True)
        sys.exit(1)
    for path in write_preview(result, out_dir, settings.smtp.sender):
        click.echo(str(path))


@click.command("mailcatcher")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("var/mail"))
@click.option("--host", default="127.0.0.1", show_default=True, type=IdType(255))
@click.option("--port", default=1025, show_default=True, type=NumberType(1, 65535))
def mailcatcher_command(directory: Path, host: str, port: int) -> None:
    """Een lokale SMTP-server die elk bericht als .eml-bestand bewaart (voor tests en demo)."""
    from regiesignaal.notifications.delivery.mailserver import serve

    directory.mkdir(parents=True, exist_ok=True)
    console.print(f"Luistert op {host}:{port}, bewaart in {directory}; stop met Ctrl-C.")
    n = serve(directory, host, port)
    console.print(f"{n} berichten ontvangen.")
