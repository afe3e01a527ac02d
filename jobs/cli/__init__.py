"""The command line: ``regiesignaal <command>``, one module per command group.

``main`` is the top group; every command is imported only when it is used (``LazyGroup``,
so ``deliver`` starts without the rule compiler): ``run`` (run, deliver), ``rules`` (rules,
preview, explain), ``signals`` (signals, explanations,
silences), ``ops`` (runs, scheduler, nightly,
purge, intake, init, db, config, status, metrics), ``mail`` (mail, mailcatcher), ``lko`` and
``fixtures`` (fixtures, demo); ``common`` holds what they share, ``tables``, ``progress``
and ``logs`` how they print. Each command is a thin shell over a library function that
tests call directly. Messages for users are Dutch; exit codes are listed in ``docs/commands.md``.

May import: everything below it (``jobs``, ``notifications``, ``engine``, ``fixtures``).
Nothing imports the command line but the command line itself and ``python -m
regiesignaal``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from regiesignaal.jobs.cli import dutch
from regiesignaal.jobs.cli.common import LazyGroup as LazyGroup  # re-exported
from regiesignaal.jobs.cli.failure import SafeGroup
from regiesignaal.jobs.config import ConfigError, load_settings

dutch.install()  # click's usage errors and help in Dutch, before any command is built

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
    "intake": "ops.intake_group",
    "init": "ops.init_command",
    "db": "ops.db_group",
    "config": "ops.config_group",
    "status": "ops.status_command",
    "metrics": "ops.metrics_command",
    "mail": "mail.mail_group",
    "mailcatcher": "mail.mailcatcher_command",
    "lko": "lko.lko_group",
    "fixtures": "fixtures.fixtures_group",
    "demo": "fixtures.demo_command",
}
"""Every top-level command: name -> ``module.attribute`` under ``regiesignaal.jobs.cli``."""


@click.group(
    cls=SafeGroup,
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
    """The console entry point. ``main`` (a ``SafeGroup``) ends every failure in one Dutch
    line and an exit code (2 for usage and database trouble); see ``jobs/cli/failure.py``."""
    main()


if __name__ == "__main__":
    run_cli()
