"""The command line: ``regiesignaal <command>``, one module per command group.

``main`` is the top group; every command is imported only when it is used (``LazyGroup``,
so ``deliver`` starts without the rule compiler): ``run`` (run, deliver), ``rules`` (rules,
preview, explain), ``signals`` (signals, explanations, silences), ``ops`` (runs, scheduler, nightly,
purge, init, db, config), ``mail`` (mail, mailcatcher), ``lko`` and ``fixtures`` (fixtures,
demo); ``common`` holds what they share, ``tables``, ``progress`` and ``logs`` how they
print. Each command is a thin shell over a library function that tests call directly.
Messages for users are Dutch; exit codes are listed in ``docs/commands.md``.

May import: everything below it (``jobs``, ``notifications``, ``engine``, ``fixtures``).
Nothing imports the command line but the command line itself and ``python -m
regiesignaal``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from regiesignaal.jobs.cli.common import LazyGroup
from regiesignaal.jobs.config import ConfigError, load_settings

_CLI = "regiesignaal.jobs.cli."
COMMANDS = {
    "run": "run.run_command",
    "deliver": "run.deliver_command",
    "preview": "rules.preview_command",
    "explain": "rules.explain_command",
    "rules": "rules.rules_group",
    "signals": "signals.signals_group",
    "explanations": "signals.explanations_group",
    "silences": "signals.silences_group",
    "runs": "ops.runs_group",
    "scheduler": "ops.scheduler_command",
    "nightly": "ops.nightly_command",
    "purge": "ops.purge_command",
    "init": "ops.init_command",
    "db": "ops.db_group",
    "config": "ops.config_group",
    "mail": "mail.mail_group",
    "mailcatcher": "mail.mailcatcher_command",
    "lko": "lko.lko_group",
    "fixtures": "fixtures.fixtures_group",
    "demo": "fixtures.demo_command",
}
"""Every top-level command: name -> ``module.attribute`` under ``regiesignaal.jobs.cli``."""


@click.group(
    cls=LazyGroup,
    lazy_subcommands={name: _CLI + target for name, target in COMMANDS.items()},
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
    from regiesignaal.jobs.cli.logs import setup_logging

    try:
        log_format = load_settings(config).log_format
    except ConfigError:
        log_format = "plain"  # the command itself reports the configuration problem
    scheduler = ctx.invoked_subcommand in ("scheduler", "nightly")  # services log INFO
    setup_logging(logging.INFO if verbose or scheduler else logging.WARNING, log_format)
    ctx.ensure_object(dict)["config"] = config


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
