"""Review fixes: init, demo and table output of the command line."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from regiesignaal.jobs.cli import main
from regiesignaal.jobs.ops.site import SiteRefused, create_site


def test_init_where_the_folder_cannot_be_made_is_a_dutch_message(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["init", str(blocker / "site")])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "sitemap" in result.output and str(blocker / "site") in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_init_without_permission_is_a_dutch_message(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(SiteRefused, match="schrijfrechten"):
            create_site(parent / "site")
    finally:
        parent.chmod(0o700)


def test_init_leaves_operators_unset_and_config_show_says_alerts_are_logged(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    create_site(site)
    config = tomllib.loads((site / "regiesignaal.toml").read_text())
    assert "operators" not in config["alerts"], "no placeholder address gets alerts"
    assert "# operators = [" in (site / "regiesignaal.toml").read_text()
    assert (site / "regiesignaal-scheduler.service").read_text().endswith("\n")
    shown = CliRunner().invoke(
        main, ["--config", str(site / "regiesignaal.toml"), "config", "show"]
    )
    assert shown.exit_code == 0, shown.output
    assert "alleen gelogd" in shown.output


def test_demo_with_no_cases_is_a_dutch_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--cases", "0", "--dir", str(tmp_path / "d")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "geen open zaken" in result.output and "--cases 1" in result.output


def test_demo_hints_fit_any_installation(tmp_path: Path) -> None:
    import sys

    result = CliRunner().invoke(
        main, ["demo", "--cases", "60", "--nights", "2", "--dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 0, result.output
    assert "met .venv/bin/ ervoor" not in result.output and "STORE_URL" not in result.output
    assert f"regiesignaal staat in {Path(sys.executable).parent}" in result.output
    assert "    regiesignaal signals list\n" in result.output
    assert "op elke dag" in result.output and "alleen op werkdagen" in result.output


def test_retire_names_every_unknown_rule(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from regiesignaal.engine.store import history, migrate
    from regiesignaal.engine.store.tables import known_rules

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(known_rules.insert().values(rule_id="CONTACT-30D"))
        with engine.begin() as conn, pytest.raises(history.HistoryError) as caught:
            history.retire_rules(conn, ["NOPE-1", "CONTACT-30D", "NOPE-2"], "op-1", set())
    finally:
        engine.dispose()
    message = str(caught.value)
    assert "NOPE-1" in message and "NOPE-2" in message
    assert "CONTACT-30D onbekend" not in message


def test_tables_in_a_pipe_keep_every_key_value_whole(tmp_path: Path) -> None:
    import datetime as dt
    import json

    import sqlalchemy as sa

    from regiesignaal.engine.store import migrate
    from regiesignaal.engine.store.tables import runs

    fields = CliRunner().invoke(main, ["rules", "fields"])
    assert fields.exit_code == 0, fields.output
    assert "…" not in fields.output
    catalogue = CliRunner().invoke(main, ["rules", "fields", "--format", "json"]).output
    names = [json.loads(line)["field"] for line in catalogue.splitlines() if line.strip()]
    assert len(names) > 20
    lines = fields.output.splitlines()
    for name in names:
        assert any(f" {name} " in line for line in lines), name

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    now = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                as_of=dt.date(2026, 11, 30), trigger="scheduler", status="succeeded",
                started_at=now, finished_at=now, counts={"cases": 1900}, errors=[],
            )
        )  # fmt: skip
    engine.dispose()
    listed = CliRunner().invoke(main, ["runs"], env={"REGIESIGNAAL_STORE_URL": url})
    assert listed.exit_code == 0, listed.output
    assert "2026-11-30" in listed.output and "succeeded" in listed.output
    assert "…" not in listed.output


def test_a_narrow_terminal_folds_but_never_cuts_off() -> None:
    import io

    from hypothesis import given, settings
    from hypothesis import strategies as st
    from rich.console import Console

    from regiesignaal.jobs.cli.tables import cli_table, print_table

    cell = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30)

    @settings(max_examples=60, deadline=None)
    @given(
        rows=st.lists(st.tuples(cell, cell, cell), min_size=1, max_size=5),
        extra=st.integers(min_value=0, max_value=60),
    )
    def check(rows: list[tuple[str, str, str]], extra: int) -> None:
        # any terminal that fits the key columns whole: there they never fold or cut off
        keys = [
            max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(("sleutel", "status"))
        ]
        width = sum(k + 3 for k in keys) + 1 + 4 + extra
        out = io.StringIO()
        console = Console(file=out, width=width, force_terminal=True, color_system=None)
        table = cli_table("sleutel", "status", "tekst", wrap=("tekst",))
        for row in rows:
            table.add_row(*row)
        print_table(console, table)
        text = out.getvalue()
        assert "…" not in text
        for row in rows:
            assert row[0] in text and row[1] in text, "key values stay whole on one line"
        flat = "".join(ch for ch in text if ch not in " │┃┏┓┗┛━┡┩└┘─┬┴┼┳┻╇\n")
        for row in rows:
            for value in row:
                assert all(ch in flat for ch in value)

    check()
