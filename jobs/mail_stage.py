"""Mail pieces of the run that do not belong to one message kind: the ``[mail]`` shape,
the check of template overrides and the rule report (page and weekly mail)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from jobs.config import Settings
from notifications.compose import MailOptions, check_template_overrides
from notifications.model import ComposedMessage
from notifications.rule_report import (
    RuleInfo,
    compose_rule_report,
    rule_report,
    write_rule_report_page,
)


def mail_options(settings: Settings) -> MailOptions:
    """The ``[mail]`` settings that shape a message."""
    return MailOptions(
        detail="minimal" if settings.mail_detail == "minimal" else "full",
        first_cases=settings.mail_first_cases,
        full_cases=settings.mail_full_cases,
        staff_names=settings.mail_staff_names,
        templates_dir=settings.mail_templates_dir,
    )


def template_problems(settings: Settings) -> list[str]:
    """``file:line: problem`` for every broken template override; [] without overrides."""
    if settings.mail_templates_dir is None:
        return []
    return check_template_overrides(settings.mail_templates_dir)


def queue_rule_report(
    settings: Settings,
    conn: sa.Connection,
    as_of: dt.date,
    rules_by_id: Mapping[str, Any],
    staff: Mapping[str, Mapping[str, Any]],
    queue: Callable[[str, str, str, ComposedMessage], None],
    queued: set[tuple[str, str]],
    email_of: Callable[[str], str | None],
) -> list[str]:
    """The rule report: ``regelrapport.html`` in ``[report] dir`` after every run, and a
    mail to every staff member with role ``beleid`` on ``[mail] digest_weekday``.
    ``email_of`` gives a staff member's address (None: reported by the caller). Returns
    problems (a page that could not be written)."""
    problems: list[str] = []
    weekly = as_of.weekday() == settings.digest_weekday
    policy = sorted(sid for sid, m in staff.items() if m.get("role") == "beleid")
    if settings.rule_report_dir is None and not (weekly and policy):
        return problems
    info = {rid: RuleInfo(rid, r.mail_title, r.mail_code) for rid, r in rules_by_id.items()}
    report = rule_report(conn, as_of, info)
    if settings.rule_report_dir is not None:
        try:
            write_rule_report_page(report, settings.rule_report_dir)
        except OSError as exc:
            problems.append(
                f"regelrapport niet geschreven in {settings.rule_report_dir} "
                f"({type(exc).__name__}); controleer [report] dir"
            )
    if weekly and policy:
        message = compose_rule_report(
            report, show_rule_ids=False, templates_dir=settings.mail_templates_dir
        )
        for sid in policy:
            if ("beleid", sid) in queued:
                continue
            email = email_of(sid)
            if email is not None:
                queue("beleid", sid, email, message)
    return problems
