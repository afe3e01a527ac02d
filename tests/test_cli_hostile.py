"""No traceback on any input (issue 17, items 14 and 16): every command, fed hostile values one
parameter at a time, ends in Dutch with a documented exit code, never repeating the value;
click's own usage errors and help are Dutch; ``REGIESIGNAAL_TRACEBACK=1`` shows the
traceback for developers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.store import migrate
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main

RULES = Path(__file__).resolve().parents[1] / "rules"
AS_OF = dt.date(2026, 3, 2)

HIDDEN = ["a\x00b", "a\nb", "\u202eZ-1", "x\x1b[31m", "x\x1b[2Jy", "zero\u200bwidth", "a\u2028b"]
"""Control and invisible characters: refused by every parameter that takes text."""
IDS = ["", " ", "x" * 10_000, *HIDDEN]
INTS = ["-5", "9" * 25, "abc", "", "1e9", "0x10", "²"]
DATES = ["2026-13-45", "0001-01-01", "9999-12-31", "x" * 10_000, "", "2026-02-30", "²"]
PATHS = ["", "x" * 5000, "/proc/version/x", "a\x00b"]
CHOICES = ["xx", ""]
ENGLISH = ("Error:", "Usage:", "Try '", "is not a valid", "Traceback", "Missing", "Invalid")

# A valid value for every required parameter (by name), so that the hostile one is reached.
BASE = {
    "case_ref": "Z-1",
    "rule": "MED-CHECK",
    "until": "2026-12-31",
    "reason": "reden",
    "by": "rv-1",
    "explanation_id": "1",
    "n_cases": "3",
    "seed": "1",
    "staff_id": "rv-1",
    "rule_ids": "X-1",
    "run_id": "1",
    "ref": "Z-1",
}
SKIP = {("scheduler",), ("mailcatcher",), ("demo",)}  # long-running: tested apart below


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(20, 5, AS_OF, cases, staff)
    source = f"sqlite:///{tmp_path / 'src.sqlite'}"
    engine = sa.create_engine(source)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    migrate.upgrade(store)
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", store)
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(RULES))
    monkeypatch.setenv("REGIESIGNAAL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_PORT", "1")
    monkeypatch.setenv("REGIESIGNAAL_SMTP_TLS", "none")
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.delenv("REGIESIGNAAL_TRACEBACK", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _commands() -> list[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(main)
    found: list[tuple[tuple[str, ...], click.Command]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            if path:
                found.append((path, command))
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, (*path, name))
        else:
            found.append((path, command))

    walk(main, ())
    return found


def _hostile(param: click.Parameter) -> list[str]:
    if isinstance(param.type, click.Choice):
        return CHOICES
    if param.name in ("as_of", "until"):
        return DATES
    if isinstance(param.type, click.Path):
        return PATHS
    if param.type.name in ("getal", "integer", "integer range"):
        return INTS
    return IDS


def _args(param: click.Parameter, value: str) -> list[str]:
    if isinstance(param, click.Argument):
        return [value]
    assert isinstance(param, click.Option)
    return [param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0], value]


def _check(result: Result, value: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2, 3, 4), result.output
    for word in ENGLISH:
        assert word not in result.output, result.output
    if len(value) > 4 and result.exit_code and value not in PATHS:  # paths may be named
        assert value not in result.output, "the bad value is not repeated"
    if value in HIDDEN:
        assert result.exit_code in (1, 2), "control and invisible characters are refused"


def test_every_command_is_walked() -> None:
    names = {" ".join(path) for path, _ in _commands()}
    assert {"runs show", "signals show", "demo", "intake manifest", "explanations add"} <= names


def test_no_parameter_takes_unchecked_text() -> None:
    """Every parameter that takes text has a checked type (IdType/TextType, a choice, a
    path, a number) or a callback that checks it (dates, URLs): no bare click string."""
    bare = [
        f"{' '.join(path)} {param.name}"
        for path, command in _commands()
        for param in command.params
        if isinstance(param.type, click.types.StringParamType) and param.callback is None
    ]
    assert bare == []


@pytest.mark.parametrize(
    ("path", "command"), _commands(), ids=[" ".join(p) for p, _ in _commands()]
)
def test_hostile_values_in_every_parameter_end_in_dutch(
    site: Path, path: tuple[str, ...], command: click.Command
) -> None:
    if path in SKIP:
        pytest.skip("long-running; see the tests below")
    params = [p for p in command.params if not getattr(p, "is_flag", False) and p.expose_value]
    runner = CliRunner()
    for param in params:
        if isinstance(param, click.Option) and param.hidden:
            continue
        for value in _hostile(param):
            args: list[str] = [*path]
            for other in params:
                if other is param:
                    args += _args(param, value)
                elif other.required and other.name in BASE:
                    args += _args(other, BASE[str(other.name)])
                elif other.required:
                    args += _args(other, str(site / f"base-{other.name}"))
            _check(runner.invoke(main, args), value)


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--cases", "-5"],
        ["demo", "--cases", "9" * 25],
        ["demo", "--seed", "-1"],
        ["demo", "--nights", "0"],
        ["demo", "--dir", "/proc/version/x", "--cases", "5"],
        ["mailcatcher", "--port", "70000"],
        ["mailcatcher", "--port", "x"],
        ["mailcatcher", "--host", "a\nb"],
        ["runs", "--limit", "-1"],
        ["runs", "show", "99999999999999999999999"],
        ["runs", "abort", "9223372036854775808"],
        ["signals", "show", "99999999999999999999999"],
        ["signals", "show", "123456789012345678"],
        ["rules", "schema", "--out", "/proc/version/x"],
        ["mail", "preview", "--recipient", "rv-1", "--out", "/proc/version/x"],
        ["fixtures", "generate", "--cases", "2", "--seed", "1", "--out", "/proc/version/x"],
        ["nosuchcommand"],
        ["runs", "--nosuchoption"],
        ["runs", "show"],
    ],
)
def test_known_tracebacks_are_gone(site: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    _check(result, "9" * 25)
    assert result.exit_code in (1, 2)
    last = result.output.strip().splitlines()[-1]
    assert (last and not last.isascii()) or " " in last


def test_usage_errors_and_help_are_dutch(site: Path) -> None:
    runner = CliRunner()
    usage = runner.invoke(main, ["runs", "show", "abc"])
    assert usage.exit_code == 2
    assert "Fout: Ongeldige waarde voor 'RUN_ID': is geen geheel getal" in usage.output
    assert "Gebruik: " in usage.output and "Zie 'main runs show --help' voor hulp." in usage.output
    unknown = runner.invoke(main, ["runz"])
    assert unknown.exit_code == 2 and "Onbekende opdracht" in unknown.output
    option = runner.invoke(main, ["runs", "--limt", "3"])
    assert (
        option.exit_code == 2 and "Onbekende optie '--limt'. Bedoelde u '--limit'?" in option.output
    )
    helped = runner.invoke(main, ["--help"])
    assert "Opties:" in helped.output and "Opdrachten:" in helped.output
    assert "Toon deze hulp en stop." in helped.output
    missing = runner.invoke(main, ["explanations", "add"])
    assert missing.exit_code == 2 and "Ontbrekend argument 'CASE_REF'" in missing.output


def _config(site: Path, text: str) -> Path:
    path = site / "hostile.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "gist"),
    [
        ('[database]\nstore_url = "mysql://u@h/db"\n', "alleen SQLite en PostgreSQL"),
        ("[run]\nx = " + "[" * 5000 + "]" * 5000 + "\n", "te diep genest"),
    ],
)
def test_a_hostile_configuration_is_refused_in_dutch(site: Path, text: str, gist: str) -> None:
    result = CliRunner().invoke(main, ["--config", str(_config(site, text)), "runs"])
    _check(result, "mysql://u@h/db")
    assert result.exit_code == 2 and gist in result.output


def test_an_unsupported_url_on_the_command_line_is_database_trouble(site: Path) -> None:
    result = CliRunner().invoke(
        main, ["fixtures", "load", str(site / "cases.jsonl"), "--source-url", "mysql://u@h/db"]
    )
    _check(result, "mysql://u@h/db")
    assert result.exit_code == 2 and "database-URL wordt niet ondersteund" in result.output


def test_the_traceback_is_there_for_developers(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["rules", "schema", "--out", "/proc/version/x"]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 1 and "Fout bij een bestand of map" in plain.output
    assert "Traceback" not in plain.output and plain.output.count("\n") == 1, "one line"
    monkeypatch.setenv("REGIESIGNAAL_TRACEBACK", "1")
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, OSError)
