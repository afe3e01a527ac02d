"""The CLI imports a command group only when it is used (issue 11: start-up of ``deliver``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from regiesignaal.jobs.cli import LazyGroup, main

HEAVY = (
    "regiesignaal.jobs.pipeline",
    "regiesignaal.engine.language.rulefile",
    "alembic",
    "regiesignaal.jobs.cli.lko",
    "durable",
)


def test_every_listed_command_resolves() -> None:
    ctx = click.Context(main)
    names = main.list_commands(ctx)
    assert {"deliver", "run", "signals", "fixtures", "nightly", "rules"} <= set(names)
    for name in names:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command), name
    rules = main.get_command(ctx, "rules")
    assert isinstance(rules, LazyGroup)
    assert isinstance(rules.get_command(ctx, "retire"), click.Command)
    assert main.get_command(ctx, "no-such-command") is None


def test_deliver_runs_without_the_rule_compiler_and_migrations(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REGIESIGNAAL_CONFIG": str(tmp_path / "none.toml"),
        "REGIESIGNAAL_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
        "REGIESIGNAAL_SMTP_HOST": "127.0.0.1",
        "REGIESIGNAAL_SMTP_TLS": "none",
    }
    (tmp_path / "none.toml").write_text("")
    cli = [sys.executable, "-m", "regiesignaal"]
    subprocess.run([*cli, "db", "upgrade"], env=env, capture_output=True, check=True)
    code = (
        "import sys\n"
        "from regiesignaal.jobs.cli import main\n"
        "try:\n"
        "    main(['deliver'])\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code)\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if any(k == m or k.startswith(m + '.') "
        "for k in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "Outbox:" in out  # the command really ran
    assert out.strip().splitlines()[-1] == "HEAVY:"


def test_a_lazy_name_that_is_not_a_command_is_refused() -> None:
    group = LazyGroup(lazy_subcommands={"x": "regiesignaal.jobs.cli.HEAVY_NOT_THERE"})
    try:
        group.get_command(click.Context(group), "x")
    except AttributeError:
        pass
    else:
        raise AssertionError("an unknown attribute must not pass silently")
    bad = LazyGroup(lazy_subcommands={"x": "regiesignaal.jobs.cli.common.console"})
    try:
        bad.get_command(click.Context(bad), "x")
    except TypeError:
        pass
    else:
        raise AssertionError("an object that is not a command must be refused")
