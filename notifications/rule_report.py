"""The rule report for policy owners: one table row per rule (issue 18).

Per rule, over the window (the last :data:`WINDOW_DAYS` days up to and including the
as-of date; the report says "sinds <first night>" while the store holds less history):

- ``fired``: signal episodes that fired on at least one day of the window (last seen in
  it or later);
- ``new``: episodes opened in the window, except baseline episodes (findings that already
  existed on the first night of the product or of the rule: "bestaand", never new);
- how the episodes closed in the window ended (``engine.reconcile.OUTCOMES``): resolved by
  a change in the case, explained per reason code, case closed, rule changed, covered by
  another rule;
- ``median_working_days``: the median of the working days (the product's calendar,
  ``engine.language.dates``) from opened to closed of those resolved by a change;
- ``share_escalated``: of the fired episodes, the share that escalated;
- ``share_open``: the share of the run's open cases the rule's signal is open on;
- ``trend``: the rule's open signals at the end of each of the last :data:`TREND_WEEKS`
  weeks (the as-of date and every 7 days before it; weeks before the first night left out);
- ``flags``: health flags (:class:`Thresholds`, ``[report]``), each a Dutch sentence
  saying what to consider.

Everything comes from one pass over the episodes that could count (a server-side cursor,
``yield_per``); memory holds counts per rule, not rows.

Mailed weekly (on ``[mail] digest_weekday``) to staff with role ``beleid``, and written
after every run as ``regelrapport.html`` in ``[report] dir`` when that is set. The mail
names a rule by its ``mail_code`` and ``mail_title``; the page for the policy owners'
folder also shows the rule id.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import working_days_between
from regiesignaal.engine.store.tables import known_rules, rule_events, runs, signals
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

WINDOW_DAYS = 56
"""The table's window: the last 8 weeks."""
WINDOWS = (WINDOW_DAYS,)
"""The report's windows in days (one since issue 18; keys of ``RuleStats.windows``)."""
TREND_WEEKS = 13
"""Week ends in every rule's trend."""
JUDGED = ("resolved", "explained", "covered")
"""The outcomes the health flags judge a rule by: how its signals ended on the case. A
closed case or a changed rule says nothing about the rule's use."""
NOT_APPLICABLE = "niet_van_toepassing"


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


VOLUME_SHARE = 0.25
"""A rule whose signal is open on more than this share of the open cases is flagged: it no
longer singles anything out (``[report] volume_share``)."""


@dataclass(frozen=True)
class Thresholds:
    """When the report flags a rule (``[report]``; docs/mail.md, docs/configuration.md).

    ``volume_share``: open on more than this share of the open cases.
    ``not_applicable_share``: more than this share of its judged closed episodes (outcome
    resolved, explained or covered) over the last ``flag_weeks`` weeks ended explained
    "niet van toepassing". ``min_resolved_by_change``: fewer than this share of them was
    resolved by a change in the case. These two only once at least ``flag_min_closed``
    episodes were judged in those weeks, so a young rule is not flagged on two signals."""

    volume_share: float = VOLUME_SHARE
    not_applicable_share: float = 0.5
    min_resolved_by_change: float = 0.1
    flag_weeks: int = 8
    flag_min_closed: int = 10

    @classmethod
    def of(cls, settings: MailSettings) -> Thresholds:
        return cls(
            volume_share=settings.report_volume_share,
            not_applicable_share=settings.report_not_applicable_share,
            min_resolved_by_change=settings.report_min_resolved_by_change,
            flag_weeks=settings.report_flag_weeks,
            flag_min_closed=settings.report_flag_min_closed,
        )

    def note(self) -> str:
        """The thresholds in one Dutch sentence, for the foot of the report."""
        return (
            f"Een regel krijgt een 'let op' als zijn signaal open staat op meer dan "
            f"{round(100 * self.volume_share)}% van de open zaken, of (vanaf "
            f"{self.flag_min_closed} afgesloten "
            f"{'signaal' if self.flag_min_closed == 1 else 'signalen'} in de laatste "
            f"{self.flag_weeks} {'week' if self.flag_weeks == 1 else 'weken'}) meer dan "
            f"{round(100 * self.not_applicable_share)}% daarvan de "
            f"toelichting 'niet van toepassing' kreeg of minder dan "
            f"{round(100 * self.min_resolved_by_change)}% werd opgelost door een wijziging "
            "in de zaak. Instelbaar in [report]."
        )


def _above(share: float, limit: float) -> str:
    """``share`` as a percentage that reads as different from ``limit`` (25,3% beside
    25%, not 25% beside 25%)."""
    if round(100 * share) != round(100 * limit):
        return f"{round(100 * share)}%"
    return f"{100 * share:.1f}%".replace(".", ",")


def volume_flag(share: float | None, limit: float) -> str:
    """The health flag for a rule firing on a large share of the open cases, or ""."""
    if share is None or share <= limit:
        return ""
    return (
        f"gaat af op {_above(share, limit)} van de open zaken (meer dan {round(100 * limit)}%): "
        "onderscheidt weinig; herzie de drempel of splits de regel"
    )


def outcome_flags(
    judged: int, not_applicable: int, by_change: int, limits: Thresholds
) -> list[str]:
    """The health flags on how a rule's signals ended over ``limits.flag_weeks`` weeks:
    ``judged`` closed episodes (outcome resolved, explained or covered), of which
    ``not_applicable`` explained "niet van toepassing" and ``by_change`` resolved by a
    change in the case. None below ``limits.flag_min_closed`` judged episodes."""
    if judged < limits.flag_min_closed:
        return []
    weeks = f"de {judged} afgesloten signalen van de laatste {limits.flag_weeks} weken"
    out = []
    na = not_applicable / judged
    if na > limits.not_applicable_share:
        limit = round(100 * limits.not_applicable_share)
        out.append(
            f"{_above(na, limits.not_applicable_share)} van {weeks} kreeg de toelichting "
            f"'niet van toepassing' (meer dan {limit}%): de regel raakt vaak zaken waar hij "
            "niet voor bedoeld is; overweeg een uitzondering in de voorwaarden"
        )
    changed = by_change / judged
    if changed < limits.min_resolved_by_change:
        limit = round(100 * limits.min_resolved_by_change)
        out.append(
            f"slechts {_above(changed, limits.min_resolved_by_change)} van {weeks} werd "
            f"opgelost door een wijziging in de zaak (minder dan {limit}%): het signaal leidt "
            "zelden tot actie; overweeg de verwachte actie te verduidelijken, de regel aan te "
            "scherpen of hem uit te zetten"
        )
    return out


def _median(counts: Counter[int]) -> float | None:
    """The median of the values counted in ``counts`` (value -> how often)."""
    total = sum(counts.values())
    if not total:
        return None
    ordered = sorted(counts.items())

    def nth(k: int) -> int:  # the k-th smallest value, 0-based
        for value, n in ordered:
            if k < n:
                return value
            k -= n
        raise IndexError(k)

    middle = total // 2
    if total % 2:
        return float(nth(middle))
    return (nth(middle - 1) + nth(middle)) / 2


def first_night(conn: sa.Connection) -> dt.date | None:
    """The as-of date of the store's first run that counted (None: none recorded)."""
    first: dt.date | None = conn.execute(
        sa.select(sa.func.min(runs.c.as_of)).where(runs.c.status.in_(("succeeded", "running")))
    ).scalar()
    return first


def rule_report(
    conn: sa.Connection,
    as_of: dt.date,
    rules: Mapping[str, RuleInfo],
    open_cases: int | None = None,
    volume_share: float = VOLUME_SHARE,
    *,
    thresholds: Thresholds | None = None,
) -> RuleReport:
    """The figures of every rule in ``rules`` as of ``as_of`` (see the module docstring);
    with ``open_cases`` (the run's open cases) also the share of them each rule's signal
    is open on. ``thresholds`` (default: the defaults with ``volume_share``) set the flags."""
    limits = thresholds or Thresholds(volume_share=volume_share)
    c = signals.c
    start = as_of - dt.timedelta(days=WINDOW_DAYS - 1)
    flag_start = as_of - dt.timedelta(days=7 * limits.flag_weeks - 1)
    ends = tuple(as_of - dt.timedelta(days=7 * k) for k in range(TREND_WEEKS - 1, -1, -1))
    first = min(start, flag_start, ends[0])
    night_one = first_night(conn)
    # one pass over the rows, counting per rule: memory holds counts, not rows (issue 11)
    fired: Counter[str] = Counter()
    new: Counter[str] = Counter()
    escalated: Counter[str] = Counter()
    outcomes: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    spans: dict[str, Counter[int]] = {}  # working days to resolution -> episodes
    judged: Counter[str] = Counter()
    not_applicable: Counter[str] = Counter()
    judged_by_change: Counter[str] = Counter()
    # open at each week end, as a difference array: +1 at the first end an episode is open
    # at, -1 after its last (an episode is open at d when opened_on <= d < closed_on)
    steps: dict[str, list[int]] = {}
    result = conn.execute(
        sa.select(
            c.rule_id,
            c.opened_on,
            c.last_seen_on,
            c.closed_on,
            c.escalated_on,
            c.baseline,
            c.outcome,
            c.outcome_reason,
        )
        .where(
            c.rule_id.in_(sorted(rules)),
            c.opened_on <= as_of,
            sa.or_(c.closed_on.is_(None), c.closed_on >= first),
            c.shadow.is_(False),  # what a rule did while in shadow: shadow_report
        )
        # a server-side cursor on PostgreSQL: the driver would otherwise fetch every row
        .execution_options(yield_per=5000)
    )
    for rid, opened_on, last_seen_on, closed_on, escalated_on, baseline, outcome, reason in result:
        if closed_on is not None and closed_on > as_of:
            closed_on = None  # closed after the report's date: open on it
        if last_seen_on >= start:
            fired[rid] += 1
            if opened_on >= start and not baseline:
                new[rid] += 1
            if escalated_on is not None and escalated_on <= as_of:
                escalated[rid] += 1
        # the trend: week ends k with opened_on <= ends[k] < closed_on
        lo = max(0, -((ends[0] - opened_on).days // 7))  # ceil((opened_on - ends[0]) / 7)
        hi = TREND_WEEKS
        if closed_on is not None:
            hi = min(hi, -((ends[0] - closed_on).days // 7))  # the first end >= closed_on
        if lo < hi:
            row = steps.setdefault(rid, [0] * (TREND_WEEKS + 1))
            row[lo] += 1
            row[hi] -= 1
        if closed_on is None or outcome is None:
            continue
        if closed_on >= start:
            outcomes.setdefault(rid, Counter())[outcome] += 1
            if outcome == "explained":
                reasons.setdefault(rid, Counter())[reason or "anders"] += 1
            elif outcome == "resolved":
                spans.setdefault(rid, Counter())[working_days_between(opened_on, closed_on)] += 1
        if closed_on >= flag_start and outcome in JUDGED:
            judged[rid] += 1
            if outcome == "resolved":
                judged_by_change[rid] += 1
            elif outcome == "explained" and reason == NOT_APPLICABLE:
                not_applicable[rid] += 1
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
        ended = outcomes.get(rid, Counter())
        window = WindowStats(
            fired=fired[rid],
            new=new[rid],
            share_escalated=_share(escalated[rid], fired[rid]),
            resolved_by_change=ended["resolved"],
            explained_reasons=tuple(
                sorted(reasons.get(rid, Counter()).items(), key=lambda kv: (-kv[1], kv[0]))
            ),
            case_closed=ended["case_closed"],
            rule_changed=ended["rule_changed"],
            covered=ended["covered"],
            median_working_days=_median(spans.get(rid, Counter())),
        )
        share = _share(open_now.get(rid, 0), open_cases) if open_cases is not None else None
        flags = [volume_flag(share, limits.volume_share)]
        flags += outcome_flags(judged[rid], not_applicable[rid], judged_by_change[rid], limits)
        running, trend = 0, []
        for k, end in enumerate(ends):
            running += steps.get(rid, [0] * (TREND_WEEKS + 1))[k]
            trend.append(None if night_one is not None and end < night_one else running)
        out.append(
            RuleStats(
                rules[rid],
                {WINDOW_DAYS: window},
                open_now.get(rid, 0),
                share,
                tuple(f for f in flags if f),
                tuple(trend),
            )
        )
    return RuleReport(
        as_of,
        out,
        window_days=WINDOW_DAYS,
        first_night=night_one,
        trend_ends=ends,
        notes=(limits.note(),),
    )


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
    # in shadow since its first night, or since it was last put back in shadow
    since = dict(
        conn.execute(
            sa.select(known_rules.c.rule_id, known_rules.c.introduced_on).where(
                known_rules.c.rule_id.in_(ids)
            )
        ).all()
    )
    for rid, day in conn.execute(
        sa.select(rule_events.c.rule_id, sa.func.max(rule_events.c.as_of))
        .where(rule_events.c.rule_id.in_(ids), rule_events.c.to_mode == "shadow")
        .group_by(rule_events.c.rule_id)
    ):
        since[rid] = day
    out = []
    for rid in sorted(ids, key=lambda r: (shadow_rules[r].mail_code or "~", r)):
        out.append(
            ShadowStats(
                rule=shadow_rules[rid],
                since=since.get(rid),
                open_now=len(open_cases[rid]),
                # only what it did in shadow: not while it was live before being put back
                new_in_window=sum(
                    n
                    for day, n in opened[rid].items()
                    if since.get(rid) is None or day >= since[rid]
                ),
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
    report = rule_report(conn, as_of, info, open_cases, thresholds=Thresholds.of(settings))
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
