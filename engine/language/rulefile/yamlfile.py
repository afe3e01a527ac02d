"""Reading one YAML file as plain data, refusing what a rule file never needs.

A file is refused, with its line and a Dutch hint, before it is parsed any further when it is
too large (checked on the open file before anything is read; a pipe or device is not read
at all), indents with tabs, nests too deeply, or holds tags (``!!python/...``) or anchors
and aliases (``&a``/``*a``, ``<<``, which make recursive or exponentially large documents
possible). Anchors, aliases, tags and depth are refused on the parser's event stream
(``_first_forbidden_event``), before anything composes or walks the document: a nine-line
"billion laughs" file is refused at once. Parser errors are translated into Dutch with
advice.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
    ScalarEvent,
)

from regiesignaal.engine.language.rulefile.model import MAX_FILE_BYTES, MAX_YAML_DEPTH, Problem

_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}"
    for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")
}


def _first_forbidden(node: Any, seen: set[int] | None = None) -> tuple[int, int, str] | None:
    """The position of the first explicit tag (``!!python/...``) or alias (``*name``).

    Aliases are refused too: they make recursive or exponentially large documents
    ("billion laughs") possible, and a rule file never needs them.
    """
    seen = set() if seen is None else seen
    if node is None:
        return None
    if id(node) in seen:
        return node.start_mark.line + 1, node.start_mark.column + 1, "alias"
    seen.add(id(node))
    if getattr(node, "anchor", None):
        return node.start_mark.line + 1, node.start_mark.column + 1, "alias"
    if str(node.tag) not in _PLAIN_TAGS:
        kind = "alias" if str(node.tag).endswith(":merge") else "tag"
        return node.start_mark.line + 1, node.start_mark.column + 1, kind
    children = node.value if isinstance(node.value, list) else []
    for child in children:
        for sub in child if isinstance(child, tuple) else (child,):
            found = _first_forbidden(sub, seen)
            if found:
                return found
    return None


def _first_forbidden_event(yaml: YAML, text: str) -> tuple[int, int, str] | None:
    """The first anchor, alias, merge key (``alias``), explicit non-plain tag (``tag``) or
    nesting deeper than ``MAX_YAML_DEPTH`` (``deep``), found on the parser's event stream:
    nothing is composed, so no alias is ever followed. (line, column, kind), 1-based."""
    depth = 0
    for event in yaml.parse(text):
        where = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, AliasEvent):
            return (*where, "alias")
        if isinstance(event, NodeEvent):
            if event.anchor:
                return (*where, "alias")
            tag = getattr(event, "tag", None)
            if tag is not None and str(tag) not in _PLAIN_TAGS:
                return (*where, "tag")
            if isinstance(event, ScalarEvent) and event.value == "<<" and not event.style:
                return (*where, "alias")
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return (*where, "deep")
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return None


def _read_limited(path: Path) -> str:
    """The file's text; raises ``_TooLarge`` before reading more than ``MAX_FILE_BYTES``,
    ``_NotRegular`` for a pipe, device or folder (never opened blocking)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegular
        if info.st_size > MAX_FILE_BYTES:
            raise _TooLarge(info.st_size)
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _TooLarge(len(data))
    return data.decode("utf-8")


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _NotRegular(Exception):
    pass


_DATE_LIKE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b")


def _bad_date_position(text: str) -> tuple[int, int]:
    """Where the first date-like value that is not a real date stands (1-based)."""
    for n, line in enumerate(text.splitlines(), start=1):
        for m in _DATE_LIKE.finditer(line.split("#", 1)[0]):
            try:
                dt.date.fromisoformat(m.group(0))
            except ValueError:
                return n, m.start() + 1
    return 1, 1


def _first_indent_tab(text: str) -> tuple[int, int] | None:
    """(line, column) of the first tab in the leading whitespace of a line, 1-based."""
    for n, line in enumerate(text.splitlines(), start=1):
        lead = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in lead:
            return n, lead.index("\t") + 1
    return None


_DUPLICATE_KEY = re.compile(r'found duplicate key "([^"]*)"')


def _yaml_problem_nl(problem: str) -> tuple[str, str]:
    """A YAML parser problem in Dutch, with a hint on what to do."""
    indent = "controleer inspringing: "
    if (m := _DUPLICATE_KEY.search(problem)) is not None:
        return (
            f"het veld '{m.group(1)}' staat twee keer in hetzelfde blok",
            "elk veld mag maar één keer voorkomen; haal er één weg",
        )
    if "\t" in problem or "'\\t'" in problem:
        return "een tab", "YAML accepteert alleen spaties: vervang de tab door spaties"
    if "expected <block end>" in problem:
        return (
            "deze regel springt anders in dan de regels van hetzelfde blok",
            indent + "zet regels van één blok precies onder elkaar (zelfde aantal spaties) en "
            "gebruik twee spaties per niveau",
        )
    if "mapping values are not allowed" in problem:
        return (
            "hier staat een ':' die YAML niet verwacht",
            indent + "staat deze regel te ver ingesprongen onder de regel erboven? Staat er "
            "een ':' in een tekst, zet de tekst dan tussen aanhalingstekens",
        )
    if "could not find expected ':'" in problem or "simple key" in problem:
        return (
            "een regel zonder 'naam: waarde'",
            indent + "elke regel van een blok is 'naam: waarde' (met een spatie na de ':')",
        )
    if "expected '-' indicator" in problem or "expected <block sequence" in problem:
        return (
            "een lijst waarvan niet elk item met '-' begint op dezelfde inspringing",
            indent + "zet elk '- ' van één lijst precies onder elkaar",
        )
    if "expected ',' or '}'" in problem or "expected ',' or ']'" in problem:
        return (
            "een '{...}' of '[...]' is niet goed afgesloten",
            "controleer haakjes en komma's, bijv. {older_than: 14d}",
        )
    return problem, "controleer inspringing, dubbele punten en haakjes"


def _too_deep(node: Any) -> tuple[int, int] | None:
    """The position of the first YAML node nested deeper than ``MAX_YAML_DEPTH``."""
    stack = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if item is None:
            continue
        if depth > MAX_YAML_DEPTH:
            return item.start_mark.line + 1, item.start_mark.column + 1
        children = item.value if isinstance(item.value, list) else []
        for child in children:
            for sub in child if isinstance(child, tuple) else (child,):
                stack.append((sub, depth + 1))
    return None


def _flow_depth(text: str) -> int:
    """The deepest nesting of YAML flow brackets (``[``, ``{``) outside quotes and comments:
    a cheap check before parsing, which is slow (and recursive) on very deep input."""
    depth = deepest = 0
    quote = ""
    comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            if ch == quote or ch == "\n":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            comment = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


_FORBIDDEN = {
    "tag": (
        "YAML-tags (!!...) zijn niet toegestaan",
        "haal de tag weg: een regelbestand bevat alleen gewone waarden",
    ),
    "alias": (
        "YAML-ankers en -verwijzingen (&naam, *naam, <<) zijn niet toegestaan",
        "schrijf de waarde gewoon uit",
    ),
}


def read_yaml(path: Path, rel: str, problems: list[Problem]) -> Any:
    yaml = YAML(typ="rt")
    try:
        text = _read_limited(path)
    except _TooLarge as exc:
        problems.append(
            Problem(
                rel,
                1,
                1,
                f"het bestand is te groot ({exc.size} bytes, hoogstens {MAX_FILE_BYTES})",
                "splits het in meer bestanden",
            )
        )
        return None
    except _NotRegular:
        problems.append(
            Problem(rel, 1, 1, "geen gewoon bestand (een map, pijp of apparaat)", "verwijder het")
        )
        return None
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(
                rel,
                1,
                1,
                f"kan het bestand niet lezen: geen UTF-8 (byte {exc.start + 1})",
                "sla het bestand op als UTF-8",
            )
        )
        return None
    except OSError as exc:
        problems.append(Problem(rel, 1, 1, f"kan het bestand niet lezen: {exc.strerror}"))
        return None
    tab = _first_indent_tab(text)
    if tab is not None:
        problems.append(
            Problem(
                rel,
                tab[0],
                tab[1],
                "ongeldige YAML: een tab in de inspringing",
                "YAML accepteert alleen spaties: vervang de tab door spaties (twee per niveau); "
                "zet in je editor 'tabs als spaties' aan",
            )
        )
        return None
    too_deep = Problem(
        rel,
        1,
        1,
        f"te diep genest (meer dan {MAX_YAML_DEPTH} niveaus)",
        "een regel heeft hooguit enkele niveaus all/any/not; vereenvoudig het bestand",
    )
    if _flow_depth(text) > MAX_YAML_DEPTH:
        problems.append(too_deep)
        return None
    try:
        forbidden_event = _first_forbidden_event(yaml, text)
        if forbidden_event is not None:
            line, col, kind = forbidden_event
            if kind == "deep":
                problems.append(Problem(rel, line, col, too_deep.message, too_deep.hint))
            else:
                problems.append(Problem(rel, line, col, *_FORBIDDEN[kind]))
            return None
        try:
            composed = yaml.compose(text)
        except RecursionError:
            problems.append(too_deep)
            return None
        if composed is None:
            problems.append(
                Problem(rel, 1, 1, "het bestand is leeg", "vul het bestand of verwijder het")
            )
            return None
        deep_at = _too_deep(composed)
        if deep_at is not None:
            problems.append(Problem(rel, *deep_at, too_deep.message, too_deep.hint))
            return None
        forbidden = _first_forbidden(composed)
        if forbidden is not None:
            line, col, kind = forbidden
            problems.append(Problem(rel, line, col, *_FORBIDDEN[kind]))
            return None
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        col = mark.column + 1 if mark else 1
        problem = (exc.problem or str(exc)).split("\n")[0]
        message, hint = _yaml_problem_nl(problem)
        problems.append(Problem(rel, line, col, f"ongeldige YAML: {message}", hint))
        return None
    except YAMLError as exc:  # e.g. a control character (ReaderError)
        problems.append(
            Problem(
                rel,
                1,
                1,
                f"ongeldige YAML ({type(exc).__name__})",
                "het bestand bevat tekens die in YAML niet mogen (stuurtekens); sla het op "
                "als gewone UTF-8-tekst",
            )
        )
        return None
    except RecursionError:
        problems.append(too_deep)
        return None
    except ValueError as exc:  # e.g. an impossible date such as 2026-02-30
        line, col = _bad_date_position(text)
        problems.append(
            Problem(
                rel,
                line,
                col,
                f"ongeldige waarde: {exc}",
                "controleer de datums: bestaat die dag (JJJJ-MM-DD)?",
            )
        )
        return None
