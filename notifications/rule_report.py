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

from regiesignaal.engine.store.tables import known_rules, signals
from regiesignaal.notifications.compose.rule_report import (
    RuleInfo,
    RuleReport,
    RuleStats,
    ShadowDay,
    ShadowReport,
    ShadowStats,
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
            c.shadow.is_(False),  # what a rule did while in shadow: shadow_report
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
            .where(c.closed_on.is_(None), c.rule_id.in_(sorted(rules)), c.shadow.is_(False))
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


SHADOW_DAYS = 7
"""The days the shadow section shows one by one (and counts new signals over)."""


def shadow_report(
    conn: sa.Connection,
    as_of: dt.date,
    shadow_rules: Mapping[str, RuleInfo],
    live_rules: Mapping[str, RuleInfo],
    days: int = SHADOW_DAYS,
) -> ShadowReport:
    """What each rule in ``shadow_rules`` would have done as of ``as_of`` (issue 18): the
    cases it fires on now, per team; per day of the last ``days`` the cases it fired on and
    how many of them were new; how many would have been new and how many escalated; and on
    how many of its cases a signal of a rule of ``live_rules`` is open too, per rule. Only
    its shadow episodes count (not what it did while live)."""
    c = signals.c
    first = as_of - dt.timedelta(days=days - 1)
    window = [first + dt.timedelta(days=n) for n in range(days)]
    ids = sorted(shadow_rules)
    open_cases: dict[str, set[str]] = {rid: set() for rid in ids}
    teams: dict[str, Counter[str]] = {rid: Counter() for rid in ids}
    fired: dict[str, Counter[dt.date]] = {rid: Counter() for rid in ids}
    opened: dict[str, Counter[dt.date]] = {rid: Counter() for rid in ids}
    escalated: Counter[str] = Counter()
    rows = conn.execute(
        sa.select(
            c.rule_id,
            c.case_ref,
            c.team,
            c.opened_on,
            c.last_seen_on,
            c.closed_on,
            c.gap_since,
            c.escalated_on,
            c.baseline,
        ).where(
            c.rule_id.in_(ids),
            c.shadow.is_(True),
            c.opened_on <= as_of,
            c.last_seen_on >= first,
        )
    )
    for r in rows:
        for day in window:
            if r.opened_on <= day <= r.last_seen_on:
                fired[r.rule_id][day] += 1
                if r.opened_on == day and not r.baseline:
                    opened[r.rule_id][day] += 1
        if r.closed_on is None and r.gap_since is None and r.last_seen_on == as_of:
            open_cases[r.rule_id].add(r.case_ref)
            teams[r.rule_id][r.team or "zonder team"] += 1
            escalated[r.rule_id] += r.escalated_on is not None
    # the live signals open on the same cases: one read of the open live episodes per rule
    overlap: dict[str, Counter[str]] = {rid: Counter() for rid in ids}
    overlap_cases: dict[str, set[str]] = {rid: set() for rid in ids}
    if live_rules and any(open_cases.values()):
        live = sa.select(c.case_ref, c.rule_id).where(
            c.closed_on.is_(None),
            c.gap_since.is_(None),
            c.shadow.is_(False),
            c.rule_id.in_(sorted(live_rules)),
        )
        for case_ref, other in conn.execute(live):
            for rid in ids:
                if case_ref in open_cases[rid]:
                    overlap[rid][other] += 1
                    overlap_cases[rid].add(case_ref)
    since = dict(
        conn.execute(
            sa.select(known_rules.c.rule_id, known_rules.c.introduced_on).where(
                known_rules.c.rule_id.in_(ids)
            )
        ).all()
    )
    out = []
    for rid in sorted(ids, key=lambda r: (shadow_rules[r].mail_code or "~", r)):
        out.append(
            ShadowStats(
                rule=shadow_rules[rid],
                since=since.get(rid),
                open_now=len(open_cases[rid]),
                new_in_window=sum(opened[rid].values()),
                escalated_now=escalated[rid],
                per_team=tuple(sorted(teams[rid].items(), key=lambda kv: (-kv[1], kv[0]))),
                per_day=tuple(ShadowDay(day, fired[rid][day], opened[rid][day]) for day in window),
                overlap_cases=len(overlap_cases[rid]),
                overlap=tuple(
                    (live_rules[other], n)
                    for other, n in sorted(overlap[rid].items(), key=lambda kv: (-kv[1], kv[0]))
                ),
            )
        )
    return ShadowReport(as_of, days, out)


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
    info = {
        rid: RuleInfo(rid, r.mail_title, r.mail_code)
        for rid, r in rules_by_id.items()
        if not getattr(r, "shadow", False)
    }
    in_shadow = {
        rid: RuleInfo(rid, r.mail_title, r.mail_code)
        for rid, r in rules_by_id.items()
        if getattr(r, "shadow", False)
    }
    report = rule_report(conn, as_of, info, open_cases, settings.report_volume_share)
    shadow = shadow_report(conn, as_of, in_shadow, info) if in_shadow else None
    if settings.rule_report_dir is not None:
        try:
            write_rule_report_page(report, settings.rule_report_dir, shadow)
        except OSError as exc:
            problems.append(
                f"regelrapport niet geschreven in {settings.rule_report_dir} "
                f"({type(exc).__name__}); controleer [report] dir"
            )
    if weekly and policy:
        message = compose_rule_report(
            report, show_rule_ids=False, templates_dir=settings.mail_templates_dir, shadow=shadow
        )
        for sid in policy:
            if ("beleid", sid) in queued:
                continue
            email = email_of(sid)
            if email is not None:
                queue("beleid", sid, email, message)
    return problems
