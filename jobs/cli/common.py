"""What every command module shares: the consoles, settings, dates, rule folders, lazy groups.

Messages for users are Dutch. A command that cannot go on prints why and what to do and
exits with the documented code (``docs/commands.md``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

from regiesignaal.engine.language.freetext import ID_MAX, TEXT_MAX, text_problem
from regiesignaal.jobs.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from regiesignaal.engine.language.rulefile.model import RuleDir

console = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)


def check_date(value: str) -> dt.date:
    """A date JJJJ-MM-DD between 1900 and 2999; ``click.BadParameter`` (never repeating the
    value) otherwise."""
    try:
        day = dt.date.fromisoformat(value) if len(value) <= 10 else None
    except ValueError:
        day = None
    if day is None:
        raise click.BadParameter("is geen datum; gebruik JJJJ-MM-DD")
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise click.BadParameter(f"ligt niet tussen {EARLIEST_DATE} en {LATEST_DATE}")
    return day


def parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    return check_date(value)


class IdType(click.ParamType):
    """An id (case reference, rule, staff member, team, location): 1 to ``max_length``
    printable characters, no control or invisible formatting characters. Messages never
    repeat the value."""

    name = "id"

    def __init__(self, max_length: int = ID_MAX) -> None:
        self.max_length = max_length

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        problem = text_problem(text, self.max_length)
        if problem is not None:
            self.fail(problem, param, ctx)
        return text


class TextType(IdType):
    """Free text (a reason): at most ``max_length`` characters, no control characters
    (the engine's rule, :func:`engine.language.freetext.text_problem`)."""

    name = "tekst"

    def __init__(self, max_length: int = TEXT_MAX) -> None:
        super().__init__(max_length)


class NumberType(click.ParamType):
    """A whole number in [minimum, maximum], with a Dutch message that never repeats the
    value (click's own says ``'x' is not a valid integer``)."""

    name = "getal"

    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if len(text) > 25 or not text.lstrip("+-").isdigit():
                self.fail("is geen geheel getal", param, ctx)
            number = int(text)
        if not self.minimum <= number <= self.maximum:
            self.fail(f"moet tussen {self.minimum} en {self.maximum} liggen", param, ctx)
        return number


class UrlType(TextType):
    """A web address: ``https://`` or ``http://`` with a host, at most ``max_length``
    characters, no spaces, control, invisible or bidi characters (``javascript:``,
    ``file:`` and the like are refused). Messages never repeat the value."""

    name = "url"

    def __init__(self, max_length: int = 500) -> None:
        super().__init__(max_length)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from urllib.parse import urlsplit

        text = super().convert(value, param, ctx).strip()
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if parts is None or parts.scheme.lower() not in ("https", "http") or not parts.hostname:
            self.fail("is geen webadres; gebruik https://... (of http://...)", param, ctx)
        if any(c.isspace() for c in text):
            self.fail("bevat een spatie; een webadres heeft er geen", param, ctx)
        return text


class ContactType(TextType):
    """A contact: one e-mail address (checked by ``engine.language.addresses``) or a web
    address (``UrlType``). Messages never repeat the value."""

    name = "contact"

    def __init__(self) -> None:
        super().__init__(500)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from regiesignaal.engine.language.addresses import AddressError, check_address

        text = super().convert(value, param, ctx).strip()
        if "://" in text:
            return URL.convert(text, param, ctx)
        try:
            return check_address(text)
        except AddressError as exc:
            self.fail(f"is geen e-mailadres of webadres ({exc})", param, ctx)


ROW_ID = NumberType(1, 2**63 - 1)
"""A row id in the store (runs, signals, explanations)."""
ID = IdType()
REASON = TextType()
URL = UrlType()
CONTACT = ContactType()


as_of_option = click.option(
    "--as-of",
    "as_of",
    callback=parse_date,
    help="Peildatum JJJJ-MM-DD (standaard: vandaag in Europe/Amsterdam).",
)


def settings_of(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except ConfigError as exc:
            err.print(str(exc), style="red", markup=False)
            sys.exit(2)
    settings: Settings = obj["settings"]
    return settings


def today_of(settings: Settings) -> dt.date:
    """Today in the configured time zone (default Europe/Amsterdam)."""
    return dt.datetime.now(settings.tz).date()


def rules_of(settings: Settings, rules_dir: Path | None) -> RuleDir:
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir

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


def checked_rules(settings: Settings, rules_dir: Path | None) -> RuleDir:
    """The rule directory, fully checked (files and engine limits); exit 1 on problems."""
    from regiesignaal.engine.language.compiler import check_rule_dir

    ruledir = check_rule_dir(rules_dir or settings.rules_dir)
    fail_on_problems(ruledir)
    return ruledir


def fail_on_problems(ruledir: RuleDir) -> None:
    if ruledir.problems:
        for p in ruledir.problems:
            click.echo(str(p), err=True)  # unwrapped: editors jump to path:line:column
        err.print(
            f"[red]{len(ruledir.problems)} "
            f"{'probleem' if len(ruledir.problems) == 1 else 'problemen'} in "
            f"{escape(str(ruledir.root))}; "
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
