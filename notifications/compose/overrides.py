"""Checking an operator's template overrides (``[mail] templates_dir``) before a run uses them.

Every override is compiled in the sandbox and rendered with sample messages of each kind;
any problem (any exception: a template error, a Python error, the render budget of
``budget.py``, deep recursion) is reported as ``file:line: problem``, so a broken override
refuses the run, with its run row, before anything is queued.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from regiesignaal.notifications.compose.case_manager import (
    Figures,
    OwnFigures,
    compose_case_manager,
)
from regiesignaal.notifications.compose.model import (
    EscalationLine,
    ManagerSummary,
    Recipient,
    SignalLine,
    TeamDigest,
)
from regiesignaal.notifications.compose.render import TEMPLATE_NAMES, MailOptions, environment
from regiesignaal.notifications.compose.team_digest import compose_team_digest


def check_template_overrides(directory: Path) -> list[str]:
    """Problems of the override templates in ``directory`` as ``file:line: message``
    (Dutch); [] when all are usable. Each override must carry a known template name,
    parse, and render a sample list and digest in the sandbox."""
    import traceback

    from jinja2 import TemplateError, TemplateSyntaxError

    problems: list[str] = []
    if not directory.is_dir():
        return [f"{directory}: de map met sjablonen bestaat niet; controleer [mail] templates_dir"]
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.name not in TEMPLATE_NAMES:
            problems.append(f"{path}:1: onbekend sjabloon; kies uit {', '.join(TEMPLATE_NAMES)}")
    env = environment(str(directory))
    for name in TEMPLATE_NAMES:
        if not (directory / name).is_file():
            continue
        try:
            env.get_template(name)
        except TemplateSyntaxError as exc:
            problems.append(f"{directory / name}:{exc.lineno}: {exc.message}")
        except Exception as exc:  # not UTF-8, unreadable, too deep to compile
            problems.append(f"{directory / name}:1: niet te lezen ({type(exc).__name__})")
    if problems:
        return problems
    options = MailOptions(templates_dir=directory)
    as_of = dt.date(2026, 1, 5)
    sample = SignalLine(
        "Z-000001", "VOORBEELD", "Voorbeeldtitel", "high", as_of, 3, True, False, True,
        None, "Voorbeeldactie.", "https://zaaksysteem.example/zaken/Z-000001", 1.0,
    )  # fmt: skip
    digest = TeamDigest(
        "T-VOORBEELD", as_of, "daily",
        [ManagerSummary("rv-1", 10, {"high": 1}, 1, 0, 1, 0, "Voorbeeld")],
        escalations=[EscalationLine("Z-000001", "VOORBEELD", "Voorbeeldtitel", 3, "rv-1")],
    )  # fmt: skip
    recipient = Recipient("rv-1", "rv-1@voorbeeld.invalid")
    own = OwnFigures(Figures(3.0, 0.1, 5.0), Figures(2.5, None, 6.0), 4, 5, 8)
    for render in (
        lambda: compose_case_manager(recipient, as_of, [sample], options),
        lambda: compose_case_manager(recipient, as_of, [sample], options, own=own),
        lambda: compose_team_digest(recipient, digest, options),
    ):
        try:
            render()
        except Exception as exc:  # any exception of an override refuses the run, named
            frames = [
                f
                for f in traceback.extract_tb(exc.__traceback__)
                if f.filename and Path(f.filename).parent == directory
            ]
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(directory)
            named = getattr(exc, "filename", None)
            if not frames and isinstance(named, str):
                where = f"{named}:1"
            message = str(exc) if isinstance(exc, TemplateError) else "fout in het sjabloon"
            if isinstance(exc, RecursionError):
                message = "te diepe herhaling (een macro die zichzelf blijft aanroepen?)"
            problems.append(f"{where}: {type(exc).__name__}: {message[:300]}")
    return sorted(set(problems))
