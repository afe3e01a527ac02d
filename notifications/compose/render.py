"""What every message kind's composition shares: the template environment and Dutch formats.

Templates live in ``notifications/compose/templates`` and are rendered in a Jinja2
``SandboxedEnvironment`` (templates cannot run code), with autoescaping for HTML and
``StrictUndefined`` (a typo in a template is an error, not an empty string).

Templates never see the model objects: each kind's module beside this one turns them into
small view dictionaries of ready-formatted strings (with the Dutch dates, counts and
severity names of this module), so a template can show only what is passed to it, and
nothing else from a case. ``MailOptions`` is the ``[mail]`` shape of a message.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined

from regiesignaal.notifications.compose.budget import (
    BudgetedSandbox,
    ProductSandbox,
    render_budgeted,
    render_unbudgeted,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"


SEVERITY_NL: dict[str, str] = {
    "low": "laag",
    "medium": "middel",
    "high": "hoog",
    "critical": "kritiek",
}


PERIOD_NL: dict[str, str] = {"daily": "dagoverzicht", "weekly": "weekoverzicht"}


_DATE_TEXT: dict[dt.date, str] = {}


def format_date(value: dt.date) -> str:
    """Dutch date format dd-mm-jjjj."""
    text = _DATE_TEXT.get(value)  # a night shows a few hundred dates, each many times
    if text is None:
        if len(_DATE_TEXT) > 10_000:
            _DATE_TEXT.clear()
        text = _DATE_TEXT[value] = value.strftime("%d-%m-%Y")
    return text


def count_nl(n: int, singular: str, plural: str) -> str:
    """``1 zaak``, ``2 zaken``, ``0 zaken``: a count with the Dutch singular or plural."""
    return f"{n} {singular if n == 1 else plural}"


def format_days(days: int) -> str:
    return count_nl(days, "dag", "dagen")


_STARTS_WITH_TEAM = re.compile(r"team(?![a-z])", re.IGNORECASE)


def team_label(team: str) -> str:
    """``team T-ZUID``; a team id that already says team (``team-001``) stays as it is."""
    return team if _STARTS_WITH_TEAM.match(team) else f"team {team}"


def format_ratio(value: float | None) -> str:
    """One decimal with a Dutch decimal comma; an en dash when there is no value."""
    if value is None:
        return "–"
    return f"{value:.1f}".replace(".", ",")


@dataclass(frozen=True)
class CaseLink:
    """The link to a case: ``template`` (``[mail] case_link_template``) with the reference
    URL-encoded in ``{case_ref}`` (``Z-7#intern`` -> ``Z-7%23intern``). Carries nothing but
    the template, so the worker processes that make the lines get only that (issue 19)."""

    template: str

    def __call__(self, case_ref: str) -> str:
        return self.template.format(case_ref=quote(case_ref, safe=""))


def safe_link(link: str) -> str | None:
    """Return the link when it is an absolute http(s) URL, else None (shown as plain text)."""
    try:
        parts = urlsplit(link.strip())
    except ValueError:
        return None
    if parts.scheme.lower() in {"http", "https"} and parts.netloc:
        return link.strip()
    return None


def autoescape(template_name: str | None) -> bool:
    return template_name is not None and template_name.endswith(".html")


TEMPLATE_NAMES = (
    "_macros.html",
    "case_manager.html",
    "case_manager.txt",
    "case_manager_full.html",
    "case_manager_full.txt",
    "team_digest.html",
    "team_digest.txt",
    "rule_report.html",
    "rule_report.txt",
    "rule_report_shadow.html",
    "rule_report_shadow.txt",
)
"""The templates an operator may override (same names in ``[mail] templates_dir``)."""


@lru_cache(maxsize=8)
def environment(override_dir: str | None = None) -> ProductSandbox | BudgetedSandbox:
    """The sandbox; templates in ``override_dir`` take precedence over the product's.

    Overrides run in the same ``SandboxedEnvironment`` with the same autoescaping and
    ``StrictUndefined``: an override can change the layout and the words, never reach
    anything beyond the view dictionaries this module passes. With an override directory
    every render has a budget of steps, time and output size
    (``notifications/compose/budget.py``); the product's own templates alone (no override
    directory) render in the same sandbox without it (issue 19).
    """
    loaders = [FileSystemLoader(TEMPLATE_DIR)]
    if override_dir:
        loaders.insert(0, FileSystemLoader(override_dir))
    sandbox = BudgetedSandbox if override_dir else ProductSandbox
    return sandbox(
        loader=ChoiceLoader(loaders),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_template(name: str, context: dict[str, Any], override_dir: Path | None = None) -> str:
    env = environment(str(override_dir) if override_dir else None)
    if isinstance(env, BudgetedSandbox):
        return render_budgeted(env.get_template(name), context)
    return render_unbudgeted(env.get_template(name), context)


DetailLevel = Literal["full", "minimal"]


@dataclass(frozen=True)
class MailOptions:
    """How much a message shows (``[mail]`` settings).

    ``detail``: ``full`` shows every signal of a case that is shown; ``minimal`` shows per
    case only the reference, the number of signals and the link. ``daily_items``: the
    cases under "Vandaag" in a case manager's daily mail (the protected tier comes on top)
    and the warnings under "Binnenkort". ``full_list``: how the whole list is reached:
    ``attachment`` (to every daily mail), ``weekly`` (in the mail of ``full_list_weekday``,
    ``date.weekday()``: 0 = Monday) or ``both``. ``full_cases``: cases in full in the whole
    list; the rest as one line each. ``staff_names``: the team lead's digest shows the
    display names of the team's case managers next to their staff ids.
    """

    detail: DetailLevel = "full"
    daily_items: int = 10
    full_list: str = "attachment"
    full_list_weekday: int = 0
    full_cases: int = 25
    staff_names: bool = True
    escalations_shown: int = 10
    """Escalations in full in a team digest; the rest as counts per signal, age, location."""
    compare_case_managers: bool = False
    """The team digest shows each case manager's figures (named comparison; opt-in)."""
    templates_dir: Path | None = None
    """Operator's template overrides (``[mail] templates_dir``); checked before a run
    queues mail (``check_template_overrides``)."""


DEFAULT_OPTIONS = MailOptions()
