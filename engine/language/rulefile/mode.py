"""A rule's ``mode`` in its file (issue 18): ``regiesignaal rules promote`` makes a shadow
rule live by removing its ``mode: shadow`` line, leaving every other byte of the file
(comments, line endings, a BOM) and its permissions exactly as they were.

A rule file that is a link (symbolic, or a second hard link) is refused, never replaced:
the real file belongs to whatever put the link there (a git checkout, configuration
management), and replacing the link with a copy would leave the real file in shadow, so
that the next deployment quietly puts the rule back. The message names the real file."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

SHADOW_LINE = re.compile(r"""^mode:[ \t]*(["']?)shadow\1[ \t]*(#.*)?\r?\n?$""")
"""The top-level line that puts a rule in shadow mode (quoted or not, with a comment)."""

EXPECTED = (
    "'rules promote' kan het bestand alleen aanpassen als 'mode: shadow' aan het begin van "
    "een eigen regel staat (niet ingesprongen, eventueel met commentaar erachter), precies "
    "één keer. Verwijder anders de regel 'mode: shadow' zelf (of zet hem op 'mode: live') "
    "en controleer met 'regiesignaal rules check'."
)


class ModeEditError(Exception):
    """The file could not be edited; the message says why, in Dutch."""


def without_shadow_line(text: str) -> str:
    """``text`` without its one top-level ``mode: shadow`` line (live is the default).
    Raises ModeEditError when there is no such line, or more than one."""
    lines = text.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if SHADOW_LINE.match(line)]
    if not found:
        raise ModeEditError(f"Geen losse regel 'mode: shadow' gevonden. {EXPECTED}")
    if len(found) > 1:
        raise ModeEditError(f"De regel 'mode: shadow' staat er meer dan één keer. {EXPECTED}")
    del lines[found[0]]
    return "".join(lines)


def _check_not_linked(path: Path) -> os.stat_result:
    try:
        if path.is_symlink():
            raise ModeEditError(
                "Dit regelbestand is een koppeling (symlink) naar "
                f"{path.resolve()}; 'rules promote' past dat echte bestand niet aan. "
                "Verwijder daar (of in de bron ervan, zoals git of het configuratiebeheer) "
                "zelf de regel 'mode: shadow', anders zet de volgende uitrol de regel terug "
                "in schaduw."
            )
        info = path.stat()
    except OSError as exc:
        raise ModeEditError(f"Regelbestand niet te lezen ({type(exc).__name__}).") from exc
    if info.st_nlink > 1:
        raise ModeEditError(
            "Dit regelbestand is een harde koppeling: hetzelfde bestand staat ook onder een "
            "andere naam; 'rules promote' vervangt het daarom niet. Verwijder zelf de regel "
            "'mode: shadow' in het bestand."
        )
    return info


def make_live(path: Path) -> str:
    """Remove the ``mode: shadow`` line of the rule file at ``path``; returns the text as it
    was (to put back with :func:`write_text` when the folder no longer checks). Written to
    a temporary file beside it first and renamed, so the scheduler never reads half a file.
    Read and written as bytes decoded as UTF-8: no newline translation, a BOM stays."""
    _check_not_linked(path)
    try:
        before = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModeEditError(f"Regelbestand niet te lezen ({type(exc).__name__}).") from exc
    after = without_shadow_line(before)
    write_text(path, after)
    return before


def write_text(path: Path, text: str) -> None:
    """Replace the file at ``path`` with ``text`` (UTF-8, exactly as given: no newline
    translation), keeping its permission bits; never through a link."""
    info = _check_not_linked(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        tmp.write_bytes(text.encode("utf-8"))
        os.chmod(tmp, stat.S_IMODE(info.st_mode))
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ModeEditError(f"Regelbestand niet te schrijven ({type(exc).__name__}).") from exc
