"""The one check for free text and ids that people type (issue 18): reasons, explanations,
staff, team and location ids. The command line (``jobs.cli.common.IdType``/``TextType``)
and the store APIs (silences, explanations, promotion notes) use the same rule, so that a
caller of the API cannot store what the command line refuses.

Refused: empty text, text over the maximum length, and any character that is not
printable (Python's ``str.isprintable``: control characters such as ESC and newlines,
invisible formatting such as U+200B and U+202E, line and paragraph separators). The
problem is a Dutch phrase that never repeats the text."""

from __future__ import annotations

TEXT_MAX = 500
"""Longest free text (a reason, an explanation) in characters, as stored."""

ID_MAX = 64
"""Longest id (staff member, team, location, rule, case reference)."""

HIDDEN = "bevat stuur- of onzichtbare tekens"


def text_problem(value: str, max_length: int = TEXT_MAX) -> str | None:
    """None when ``value`` is acceptable; else what is wrong (``is leeg``, ``is langer dan
    N tekens``, ``bevat stuur- of onzichtbare tekens``), to follow the option's name."""
    if not value.strip():
        return "is leeg"
    if len(value) > max_length:
        return f"is langer dan {max_length} tekens"
    if not value.isprintable():  # Cc, Cf (U+200B, U+202E), Zl, Zp, ... (not the space)
        return HIDDEN
    return None


def text_message(value: str, label: str, max_length: int = TEXT_MAX) -> str | None:
    """None when ``value`` is acceptable; else a Dutch sentence for an API caller's error:
    ``label`` (e.g. ``"De reden (--reason)"``), what is wrong and what to do."""
    problem = text_problem(value, max_length)
    if problem is None:
        return None
    if problem == HIDDEN:
        advice = "typ de tekst opnieuw, op één regel en zonder stuur- of opmaaktekens"
    elif problem == "is leeg":
        advice = "vul hem in"
    else:
        advice = "maak hem korter"
    return f"{label} {problem}; {advice}."
