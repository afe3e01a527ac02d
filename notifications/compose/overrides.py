"""Checking an operator's template overrides (``[mail] templates_dir``) before a run uses them.

Every override is compiled in the sandbox and rendered with sample messages of each kind;
any problem is reported as ``file:line: problem``, so a broken override refuses the run
before anything is queued.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from regiesignaal.notifications.compose.case_manager import compose_case_manager
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
    for render in (
        lambda: compose_case_manager(recipient, as_of, [sample], options),
        lambda: compose_team_digest(recipient, digest, options),
    ):
        try:
            render()
        except TemplateError as exc:
            frames = [
                f
                for f in traceback.extract_tb(exc.__traceback__)
                if f.filename and Path(f.filename).parent == directory
            ]
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(directory)
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
    return sorted(set(problems))
