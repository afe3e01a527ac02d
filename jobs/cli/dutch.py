"""Click's own words in Dutch: usage errors, help headings and footers (issue 17).

Click marks its messages for ``gettext`` (``from gettext import gettext as _`` in each of
its modules). ``install`` replaces those module-level functions with a look-up in the
table below, so ``regiesignaal --help`` says "Gebruik:" and a usage error says "Fout: ...".
The Dutch messages never repeat the value that was given (it may be a case's data typed
in the wrong place): ``{value!r} is not a valid integer`` becomes "is geen geheel getal".
A message missing from the table stays English (a newer click version).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

NL: dict[str, str] = {
    "Usage:": "Gebruik:",
    "Options": "Opties",
    "Commands": "Opdrachten",
    "Positional arguments": "Argumenten",
    "Show this message and exit.": "Toon deze hulp en stop.",
    "Show the version and exit.": "Toon de versie en stop.",
    "Aborted!": "Afgebroken.",
    "Error: {message}": "Fout: {message}",
    "Try '{command} {option}' for help.": "Zie '{command} {option}' voor hulp.",
    "Missing command.": "Geef een opdracht.",
    "Invalid value: {message}": "Ongeldige waarde: {message}",
    "Invalid value for {param_hint}: {message}": "Ongeldige waarde voor {param_hint}: {message}",
    "Missing argument": "Ontbrekend argument",
    "Missing option": "Ontbrekende optie",
    "Missing parameter": "Ontbrekende parameter",
    "Missing {param_type}": "Ontbrekend: {param_type}",
    "Missing parameter: {param_name}": "Ontbrekende parameter: {param_name}",
    "No such option {name!r}.": "Onbekende optie {name!r}.",
    "No such command {name!r}.": "Onbekende opdracht {name!r}.",
    "unknown error": "onbekende fout",
    "Could not open file {filename!r}: {message}": "Kan bestand {filename!r} niet openen: "
    "{message}",
    "Choose from:\n\t{choices}": "Kies uit:\n\t{choices}",
    "{value!r} is not a valid {number_type}.": "is geen geldig {number_type}.",
    "integer": "geheel getal",
    "float": "getal",
    "{value} is not in the range {range}.": "ligt niet in het bereik {range}.",
    "{value!r} is not a valid UUID.": "is geen geldige UUID.",
    "file": "bestand",
    "directory": "map",
    "path": "pad",
    "{name} {filename!r} does not exist.": "{name} {filename!r} bestaat niet.",
    "{name} {filename!r} is a file.": "{name} {filename!r} is een bestand.",
    "{name} {filename!r} is a directory.": "{name} {filename!r} is een map.",
    "{name} {filename!r} is not readable.": "{name} {filename!r} is niet leesbaar.",
    "{name} {filename!r} is not writable.": "{name} {filename!r} is niet schrijfbaar.",
    "{name} {filename!r} is not executable.": "{name} {filename!r} is niet uitvoerbaar.",
    "Invalid start character for option ({option})": "Ongeldig begin van een optie",
    "Argument {name!r} takes {nargs} values.": "Argument {name!r} vraagt {nargs} waarden.",
    "Option {name!r} does not take a value.": "Optie {name!r} neemt geen waarde.",
    "env var: {var}": "omgevingsvariabele: {var}",
    "default: {default}": "standaard: {default}",
    "(dynamic)": "(wisselend)",
    "required": "verplicht",
    "deprecated": "verouderd",
    "Do you want to continue?": "Wilt u doorgaan?",
    "Error: invalid input": "Fout: ongeldige invoer",
}
"""English message id (as click writes it) -> Dutch."""

NL_PLURAL: dict[str, tuple[str, str]] = {
    "Got unexpected extra argument ({args})": (
        "Onverwacht extra argument",
        "Onverwachte extra argumenten",
    ),
    "Did you mean {possibility}?": (
        "Bedoelde u {possibility}?",
        "(Bedoelde u een van: {possibilities}?)",
    ),
    "Option {name!r} requires an argument.": (
        "Optie {name!r} vraagt een waarde.",
        "Optie {name!r} vraagt {nargs} waarden.",
    ),
    "{value!r} is not {choice}.": ("is niet {choice}.", "is niet een van {choices}."),
    "{value!r} does not match the format {format}.": (
        "past niet bij de vorm {format}.",
        "past niet bij de vormen {formats}.",
    ),
    "Takes {nargs} values but 1 was given.": (
        "Vraagt {nargs} waarden, er is er 1 gegeven.",
        "Vraagt {nargs} waarden, er zijn er {len} gegeven.",
    ),
    "{len_type} values are required, but {len_value} was given.": (
        "{len_type} waarden nodig, {len_value} gegeven.",
        "{len_type} waarden nodig, {len_value} gegeven.",
    ),
}

_MODULES = (
    "core",
    "exceptions",
    "decorators",
    "formatting",
    "types",
    "parser",
    "termui",
    "utils",
    "shell_completion",
)


def gettext(message: str) -> str:
    return NL.get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    found = NL_PLURAL.get(singular)
    if found is None:
        return singular if n == 1 else plural
    return found[0] if n == 1 else found[1]


def install() -> None:
    """Make click speak Dutch (idempotent)."""
    for name in _MODULES:
        try:
            module = importlib.import_module(f"click.{name}")
        except ImportError:  # pragma: no cover - a click without that module
            continue
        patches: dict[str, Callable[..., str]] = {"_": gettext, "ngettext": ngettext}
        for attribute, function in patches.items():
            if hasattr(module, attribute):
                setattr(module, attribute, function)
