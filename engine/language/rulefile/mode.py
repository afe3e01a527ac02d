"""A rule's ``mode`` in its file (issue 18): ``regiesignaal rules promote`` makes a shadow
rule live by removing its ``mode: shadow`` line, leaving every other line (comments
included) exactly as it was."""

from __future__ import annotations

import re
from pathlib import Path

SHADOW_LINE = re.compile(r"""^mode:[ \t]*(["']?)shadow\1[ \t]*(#.*)?\r?\n?$""")
"""The top-level line that puts a rule in shadow mode (quoted or not, with a comment)."""


class ModeEditError(Exception):
    """The file could not be edited; the message says why, in Dutch."""


def without_shadow_line(text: str) -> str:
    """``text`` without its one top-level ``mode: shadow`` line (live is the default).
    Raises ModeEditError when there is no such line, or more than one."""
    lines = text.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if SHADOW_LINE.match(line)]
    if len(found) != 1:
        raise ModeEditError(
            "het regelbestand heeft geen losse regel 'mode: shadow' bovenaan het blok; "
            "verwijder 'mode' zelf of zet hem op live"
        )
    del lines[found[0]]
    return "".join(lines)


def make_live(path: Path) -> str:
    """Remove the ``mode: shadow`` line of the rule file at ``path``; returns the text as it
    was (to put back when the folder no longer checks). Written to a temporary file beside
    it first and renamed, so the scheduler never reads half a file."""
    try:
        before = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModeEditError(f"regelbestand niet te lezen ({type(exc).__name__})") from exc
    after = without_shadow_line(before)
    write_text(path, after)
    return before


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ModeEditError(f"regelbestand niet te schrijven ({type(exc).__name__})") from exc
