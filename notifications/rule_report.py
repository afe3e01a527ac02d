"""The rule report for policy owners: per rule, how it behaves over the last 4 and 13 weeks.

Per rule and window (the 28 or 91 days up to and including the as-of date):

- ``fired``: signal episodes that fired on at least one day of the window (last seen in
  it or later);
- ``new``: episodes opened in the window, except baseline episodes (findings that already
  existed on the first night of the product or of the rule: "bestaand", never new);
- ``resolved``: episodes closed as resolved in the window;
- ``median_days_to_resolution``: median of (closed_on - opened_on) in days over those
  resolved episodes (None without any);
- ``share_explained``: of the fired episodes, the share with an explanation recorded
  (the store keeps an episode's latest explanation end date);
- ``share_escalated``: of the fired episodes, the share that escalated;
- ``resolved_by_change``: episodes closed in the window with outcome ``resolved`` (the
  case changed; ``engine.reconcile.OUTCOMES``), and ``explained_reasons``: those that
  ended explained, per reason code (issue 18).

Mailed weekly (on ``[mail] digest_weekday``) to staff with role ``beleid``, and written
after every run as ``regelrapport.html`` in ``[report] dir`` when that is set. The mail
names a rule by its ``mail_code`` and ``mail_title``; the page for the policy owners'
folder also shows the rule id.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.store.tables import signals
from regiesignaal.notifications.compose.rule_report import (
    RuleInfo,
    RuleReport,
    RuleStats,
    WindowStats,
    compose_rule_report,
    write_rule_report_page,
)
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.settings import MailSettings

WINDOWS = (28, 91)
"""The report's windows in days: the last 4 and the last 13 weeks."""


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


VOLUME_SHARE = 0.25
"""A rule whose signal is open on more than this share of the open cases is flagged: it no
longer singles anything out (``[report] volume_share``)."""


def volume_flag(share: float | None, limit: float) -> str:
    """The health flag for a rule firing on a large share of the open cases, or ""."""
    if share is None or share <= limit:
        return ""
    return (
        f"gaat af op {round(100 * share)}% van de open zaken (meer dan {round(100 * limit)}%): "
        "onderscheidt weinig; herzie de drempel of splits de regel"
    )


def rule_report(
    conn: sa.Connection,
    as_of: dt.date,
    rules: Mapping[str, RuleInfo],
    open_cases: int | None = None,
    volume_share: float = VOLUME_SHARE,
) -> RuleReport:
    """The figures of every rule in ``rules`` as of ``as_of`` (see the module docstring);
    with ``open_cases`` (the run's open cases) also the share of them each rule's signal
    is open on, flagged above ``volume_share``."""
    c = signals.c
    first = as_of - dt.timedelta(days=max(WINDOWS) - 1)
    starts = {days: as_of - dt.timedelta(days=days - 1) for days in WINDOWS}
    # one pass over the rows, counting per (rule, window): memory holds counts and the
    # resolution times, not the rows (issue 11)
    fired: dict[tuple[str, int], int] = {}
    new: dict[tuple[str, int], int] = {}
    explained: dict[tuple[str, int], int] = {}
    escalated: dict[tuple[str, int], int] = {}
    durations: dict[tuple[str, int], list[int]] = {}
    by_change: dict[tuple[str, int], int] = {}
    reasons: dict[tuple[str, int], Counter[str]] = {}
    result = conn.execute(
        sa.select(
            c.rule_id,
            c.opened_on,
            c.last_seen_on,
            c.closed_on,
            c.close_reason,
            c.escalated_on,
            c.explained_until,
            c.baseline,
            c.outcome,
            c.outcome_reason,
        )
        .where(
            c.rule_id.in_(sorted(rules)),
            c.opened_on <= as_of,
            c.last_seen_on >= first,
        )
        # a server-side cursor on PostgreSQL: the driver would otherwise fetch every row
        .execution_options(yield_per=5000)
    )
    for r in result:
        for days, start in starts.items():
            if r.last_seen_on < start:
                continue  # did not fire in this window
            key = (r.rule_id, days)
            fired[key] = fired.get(key, 0) + 1
            if r.opened_on >= start and not r.baseline:
                new[key] = new.get(key, 0) + 1
            if r.explained_until is not None:
                explained[key] = explained.get(key, 0) + 1
            if r.escalated_on is not None:
                escalated[key] = escalated.get(key, 0) + 1
            if r.closed_on is not None and r.closed_on <= as_of and r.close_reason == "resolved":
                durations.setdefault(key, []).append((r.closed_on - r.opened_on).days)
            if r.closed_on is not None and start <= r.closed_on <= as_of:
                if r.outcome == "resolved":
                    by_change[key] = by_change.get(key, 0) + 1
                elif r.outcome == "explained":
                    reasons.setdefault(key, Counter())[r.outcome_reason or "anders"] += 1
    open_now = {
        rid: n
        for rid, n in conn.execute(
            sa.select(c.rule_id, sa.func.count())
            .where(c.closed_on.is_(None), c.rule_id.in_(sorted(rules)))
            .group_by(c.rule_id)
        )
    }
    out = []
    for rid in sorted(rules, key=lambda r: (rules[r].mail_code or "~", r)):
        windows = {}
        for days in WINDOWS:
            key = (rid, days)
            n = fired.get(key, 0)
            spans = durations.get(key, [])
            windows[days] = WindowStats(
                fired=n,
                new=new.get(key, 0),
                resolved=len(spans),
                median_days_to_resolution=float(statistics.median(spans)) if spans else None,
                share_explained=_share(explained.get(key, 0), n),
                share_escalated=_share(escalated.get(key, 0), n),
                resolved_by_change=by_change.get(key, 0),
                explained_reasons=tuple(
                    sorted(reasons.get(key, Counter()).items(), key=lambda kv: (-kv[1], kv[0]))
                ),
            )
        share = _share(open_now.get(rid, 0), open_cases) if open_cases is not None else None
        flag = volume_flag(share, volume_share)
        out.append(
            RuleStats(rules[rid], windows, open_now.get(rid, 0), share, (flag,) if flag else ())
        )
    return RuleReport(as_of, out)


def queue_rule_report(
    settings: MailSettings,
    conn: sa.Connection,
    as_of: dt.date,
    rules_by_id: Mapping[str, Any],
    staff: Mapping[str, Mapping[str, Any]],
    queue: Callable[[str, str, str, ComposedMessage], None],
    queued: set[tuple[str, str]],
    email_of: Callable[[str], str | None],
    open_cases: int | None = None,
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
    report = rule_report(conn, as_of, info, open_cases, settings.report_volume_share)
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
