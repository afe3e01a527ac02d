"""The contract between the pipeline and the notification composer.

These dataclasses hold everything an email may show, and nothing else: a message is
rendered from these fields only, so no other part of a case can ever reach an email.
Cases appear by their pseudonymous case reference only; rules by their neutral
``mail_code`` and checked ``mail_title`` (never by rule id). The only names that may
appear are the display names of a team's own case managers in their team lead's digest
(``[mail] staff_names``); names of foreign nationals are never part of the model.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["low", "medium", "high", "critical"]


Period = Literal["daily", "weekly"]


SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
"""All severities, lowest first."""


SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
"""Severity to rank: low=0 ... critical=3."""


def per_10_cases(signals: int, cases: int) -> float | None:
    """Signals per 10 open cases, the comparison figure between case managers."""
    return signals * 10 / cases if cases > 0 else None


@dataclass(frozen=True)
class SignalLine:
    """One open signal on one case, as shown to the case manager."""

    case_ref: str
    rule_id: str
    mail_title: str
    severity: Severity
    opened_on: dt.date
    days_open: int
    is_new: bool
    reopened: bool
    escalated: bool
    escalates_on: dt.date | None
    expected_action: str
    link: str
    score: float
    explanation_expired: bool = False
    """The case manager's explanation for this signal ran out before the as-of date."""
    explanation_lapsed: bool = False
    """The explanation lapsed because a fact the rule reads changed (issue 18)."""
    mail_code: str = ""
    """The rule's neutral code for mail (e.g. ``R07``); empty: only the title is shown."""
    baseline: bool = False
    """Found on the product's (or the rule's) first night: shown as existing
    ("bestaand"), never counted as new."""
    kind: str = "actie"
    """What the rule asks: ``actie`` (do something) or ``vastlegging`` (record something)."""
    began_on: dt.date | None = None
    """The date the gap began (the rule's ``since``); None: the signal's ``opened_on``."""
    since_label: str = "sinds"
    """How the gap's date reads ("sinds", "termijn verstreken op")."""
    newly_escalated: bool = False
    """Escalated since the reader's last list."""
    covers: tuple[tuple[str, str], ...] = ()
    """(mail title, mail code) of the signals this one covers on the case: one gap, one item."""

    @property
    def protected(self) -> bool:
        """Critical and new or escalated since the reader's last list: never cut from the
        daily list."""
        return self.severity == "critical" and (
            (self.is_new and not self.baseline) or self.newly_escalated
        )


@dataclass(frozen=True)
class UpcomingLine:
    """A warning shown under "Binnenkort": the rule will fire on the case after ``due_on``
    if nothing is done."""

    case_ref: str
    mail_title: str
    mail_code: str
    due_on: dt.date
    link: str


@dataclass(frozen=True)
class Recipient:
    """Who receives a message. Deliberately no name: emails carry no names at all."""

    staff_id: str
    email: str


@dataclass(frozen=True)
class ManagerSummary:
    """One case manager's figures in a team digest, by staff id.

    ``open_by_severity`` and ``escalated`` count the open signals without a valid
    explanation (``escalated``: all those escalated now, not only today); ``explained``
    counts the open signals with an explanation valid on the as-of date, which the
    case manager does not see in their own list.
    """

    staff_id: str
    open_cases: int
    open_by_severity: dict[str, int]
    new: int
    resolved: int
    escalated: int
    explained: int = 0
    name: str | None = None
    """Display name of the case manager (staff ``name``), when names are shown."""
    median_age_days: float | None = None
    """Median number of days the open (unexplained) signals have been open."""
    trend: tuple[int, ...] = ()
    """Open signals at the end of each of the last periods, oldest first."""

    @property
    def open_signals(self) -> int:
        return sum(self.open_by_severity.values())

    @property
    def signals_per_10_cases(self) -> float | None:
        """Open signals per 10 open cases, or None without open cases."""
        return per_10_cases(self.open_signals, self.open_cases)


@dataclass(frozen=True)
class RuleCount:
    """Per rule: how many signals are open in the team and how many are new."""

    rule_id: str
    mail_title: str
    open: int
    new: int
    mail_code: str = ""


@dataclass(frozen=True)
class EscalationLine:
    """A signal open longer than its rule allows."""

    case_ref: str
    rule_id: str
    mail_title: str
    days_open: int
    regievoerder: str  # staff id
    link: str = ""
    severity: Severity = "high"
    mail_code: str = ""
    escalated_on: dt.date | None = None
    location: str | None = None  # the case's neutral location id


@dataclass
class EscalationCounts:
    """Escalations counted rather than listed: how many per rule id, per number of days
    open and per location id (None: no location). A digest lists only the most urgent
    escalations; the rest are counts (issue 19: at a million cases one line per
    escalation would be hundreds of megabytes)."""

    by_rule: Counter[str] = field(default_factory=Counter)
    by_days: Counter[int] = field(default_factory=Counter)
    by_location: Counter[str | None] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_rule.values())

    def update(self, other: EscalationCounts) -> EscalationCounts:
        """Count ``other``'s escalations in too; returns self."""
        self.by_rule.update(other.by_rule)
        self.by_days.update(other.by_days)
        self.by_location.update(other.by_location)
        return self

    def add(self, lines: Iterable[EscalationLine]) -> EscalationCounts:
        """Count ``lines`` in; returns self."""
        for e in lines:
            self.by_rule[e.rule_id] += 1
            self.by_days[e.days_open] += 1
            self.by_location[e.location] += 1
        return self


@dataclass(frozen=True)
class TeamTotals:
    """Team totals, summed over the case managers of a digest."""

    open_cases: int
    open_signals: int
    open_by_severity: dict[str, int]
    new: int
    resolved: int
    escalated: int
    explained: int = 0

    @property
    def signals_per_10_cases(self) -> float | None:
        return per_10_cases(self.open_signals, self.open_cases)


@dataclass(frozen=True)
class TrendPoint:
    """Open signals (without a valid explanation) at the end of ``day``."""

    day: dt.date
    open_signals: int


@dataclass(frozen=True)
class TeamDigest:
    """What a team lead gets: per case manager figures, team totals, rules, escalations.

    ``new`` and ``resolved`` count the digest's period (a week, or for a daily digest
    the days since the previous working day). ``previous_open_signals`` is the team's
    open signal count at the end of the day before the period, counted like the open
    figures, for the trend; None when unknown (the first run). ``escalations`` may be
    capped (the most urgent first, see ``team_digest.escalation_key``);
    ``escalations_total`` is the number before the cap (None: not capped) and
    ``escalations_rest`` counts the ones left out (None: none left out).
    """

    team: str
    as_of: dt.date
    period: Period
    managers: list[ManagerSummary]
    rules: list[RuleCount] = field(default_factory=list)
    escalations: list[EscalationLine] = field(default_factory=list)
    previous_open_signals: int | None = None
    escalations_total: int | None = None
    period_start: dt.date | None = None
    """First day of the period; None: the as-of date alone (daily) or seven days (weekly)."""
    trend: tuple[TrendPoint, ...] = ()
    """The team's open signals at the end of each of the last periods, oldest first."""
    missed_since: dt.date | None = None
    """Set when an earlier digest was not sent (failed or missing run): this digest
    covers the whole period since the last digest that was sent, starting on this day."""
    silenced: int = 0
    """Open signals of the team that a silence (``regiesignaal silences``) keeps out of
    the case managers' mail; counted here, not in the other figures (issue 18)."""
    escalations_rest: EscalationCounts | None = None

    @property
    def escalations_not_listed(self) -> int:
        """Escalations left out of ``escalations`` by the cap."""
        if self.escalations_total is None:
            return 0
        return max(0, self.escalations_total - len(self.escalations))

    @property
    def totals(self) -> TeamTotals:
        by_severity: dict[str, int] = {name: 0 for name in SEVERITIES}
        for m in self.managers:
            for name, count in m.open_by_severity.items():
                by_severity[name] = by_severity.get(name, 0) + count
        return TeamTotals(
            open_cases=sum(m.open_cases for m in self.managers),
            open_signals=sum(by_severity.values()),
            open_by_severity=by_severity,
            new=sum(m.new for m in self.managers),
            resolved=sum(m.resolved for m in self.managers),
            escalated=sum(m.escalated for m in self.managers),
            explained=sum(m.explained for m in self.managers),
        )
