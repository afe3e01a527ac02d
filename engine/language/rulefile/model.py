"""What a checked rule folder is: rules, derived fields, priority factors, tests, problems.

Also the rule language's vocabulary that the parsers, the JSON Schemas (``engine.language.schema``)
and the documentation share: severities, file names, the documented size limits, the operators
per field type and the keys of each block.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regiesignaal.engine.language.catalogue import (
    Catalogue,
)
from regiesignaal.engine.language.conditions import All, Any_, Cond, Not
from regiesignaal.engine.language.dates import Duration
from regiesignaal.engine.language.mailtext import word_lists

SEVERITIES = ("low", "medium", "high", "critical")


DERIVED_FILE = "derived.yaml"


PRIORITY_FILE = "priority.yaml"


TESTS_SUFFIX = ".tests.yaml"


# Documented limits (README, "Regels schrijven"): beyond them a file is refused with a
# clear message before anything reaches the rule engine (which can hang or crash on them).
MAX_FILE_BYTES = 200_000
"""Largest rule, derived-field, priority or tests file."""


MAX_YAML_DEPTH = 40
"""Deepest nesting of YAML blocks and lists in a file."""


MAX_CONDITION_DEPTH = 10
"""Deepest nesting of all/any/not in one condition."""


MAX_ALTERNATIVES = 50
"""Most conditions in one all/any list (or one list of conditions)."""


MAX_VALUES = 200
"""Most values in one in/not_in list (640 made durable-rules hang)."""


RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")


DERIVED_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# Words that must never reach an email through a rule's mail_title, expected_action or
# mail_code: the product's list in engine/language/data/mail-forbidden.txt (see
# engine.language.mailtext).
MAIL_FORBIDDEN = word_lists().forbidden


MAIL_CODE = re.compile(r"^[A-Z][0-9]{1,4}$")


MAIL_TITLE_MAX = 60


LEAF_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "not_contains")


DATE_OPS = ("older_than", "newer_than", "within_last", "within_next")


ALL_OPS = (*LEAF_OPS, "missing", "present", *DATE_OPS, "if_missing")


OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "str": ("eq", "ne", "in", "not_in"),
    "enum": ("eq", "ne", "in", "not_in"),
    "bool": ("eq", "ne"),
    "int": ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"),
    "date": ("eq", "ne", "lt", "le", "gt", "ge", *DATE_OPS),
    "list": ("contains", "not_contains"),
}


LOGIC_KEYS = ("all", "any", "not")


RULE_KEYS = {
    "id": True,
    "title": True,
    "mail_title": True,
    "severity": True,
    "owner": True,
    "basis": False,
    "description": False,
    "enabled": False,
    "effective": False,
    "when": True,
    "unless": False,
    "expected_action": True,
    "mail_code": False,
    "escalate_after": False,
    "overdue": False,
    "max_explanation": False,
    "kind": False,
    "covers": False,
    "warn_before": False,
    "since": False,
    "challenge": False,
    "mode": False,
    "tests": False,
}


KINDS = ("actie", "vastlegging")
"""What a rule asks (issue 16): to do something (``actie``, the default) or to record
something (``vastlegging``). Per case, recording gaps collapse into one line in mail."""


MODES = ("live", "shadow")
"""How a rule runs (issue 18): ``live`` (the default) or ``shadow``: evaluated every night
with its full history, but in no mail, digest, escalation or agenda; the rule report shows
what it would have done until ``regiesignaal rules promote`` makes it live."""


SINCE_KEYS = {"field": True, "after": False, "label": False}


SINCE_LABEL_MAX = 40


CHALLENGE_MAX = 160


BASIS_MAX = 120
"""The longest ``basis`` (issue 18): a short reference, e.g. "R3 Inspectie JenV,
Verantwoord Vertrek (2022)", "Werkinstructie vertrekgesprekken" or "art. 64 Vw 2000",
not an argument; the description explains."""


WARN_BEFORE_MAX_DAYS = 31
"""The longest ``warn_before`` in calendar days (6 weeks of working days would be more):
warnings are worked out by evaluating the rule on every day up to it."""


TEST_KEYS = {"name": False, "as_of": True, "case": True, "expect": True, "severity": False}


OVERDUE_KEYS = {"when": True, "severity": True}


EXPECT_VALUES = ("fires", "does_not_fire")


DERIVED_KINDS = ("latest", "earliest", "count", "exists", "values", "days_between")


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.column}: {self.message}"
        return f"{text}\n    tip: {self.hint}" if self.hint else text


@dataclass(frozen=True)
class RuleTest:
    name: str
    as_of: dt.date
    case: dict[str, Any]  # parsed with engine.language.casefile.parse_case
    expect_fires: bool
    path: str
    line: int
    severity: str | None = None  # the severity the signal must have (overdue tests)


@dataclass(frozen=True)
class Overdue:
    """A rule's ``overdue:`` block: the deadline has passed without the required action.

    The rule then fires (also when ``when`` no longer holds) as long as ``unless`` does not
    hold, with ``severity`` (always higher than the rule's own) instead of the rule's.
    """

    when: Cond
    severity: str


@dataclass(frozen=True)
class Since:
    """``since:``: the date the gap a rule signals began, ``field`` (a case date or a
    latest/earliest derived date) plus ``after``; shown as "<label> <date>" and used for
    the signal's age in the ranking."""

    field: str
    after: Duration | None = None
    label: str = "sinds"


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    mail_title: str
    severity: str
    owner: str
    description: str
    enabled: bool
    effective_from: dt.date | None
    effective_until: dt.date | None
    when: Cond
    unless: Cond | None
    expected_action: str
    escalate_after: Duration | None
    path: str
    line: int
    tests: tuple[RuleTest, ...] = ()
    overdue: Overdue | None = None
    # the longest an explanation may keep a signal of this rule quiet (issue 6)
    max_explanation: Duration | None = None
    mail_code: str = ""
    """Neutral code shown in mail next to the title (``R07``); empty: the title alone."""
    kind: str = "actie"
    """``actie`` or ``vastlegging`` (see ``KINDS``)."""
    covers: tuple[str, ...] = ()
    """Rules whose signal on the same case is the same gap: while this rule fires (and is
    not explained) those signals are covered: kept with their history, not shown."""
    warn_before: Duration | None = None
    """Warn this long before the rule would fire if nothing changes ("Binnenkort")."""
    since: Since | None = None
    challenge: str = ""
    """The question this rule's signal puts to the chain meeting (LKO agenda); empty: the
    rule puts no case on the agenda (escalated signals still do)."""
    basis: str = ""
    """What the rule rests on (issue 18): a recommendation R1-R4 of the inspectorate's
    report, a work instruction or a legal article; shown in ``rules register``."""
    mode: str = "live"
    """``live`` or ``shadow`` (see ``MODES``)."""

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    def active_on(self, as_of: dt.date) -> bool:
        if not self.enabled:
            return False
        if self.effective_from and as_of < self.effective_from:
            return False
        return not (self.effective_until and as_of > self.effective_until)

    def condition(self) -> Cond:
        """``when`` (or ``overdue.when``) and not ``unless``: the whole condition of the rule."""
        when = self.when if self.overdue is None else Any_((self.when, self.overdue.when))
        if self.unless is None:
            return when
        return All((when, Not(self.unless)))

    def overdue_condition(self) -> Cond | None:
        """``overdue.when`` and not ``unless``: when the signal carries the raised severity."""
        if self.overdue is None:
            return None
        if self.unless is None:
            return self.overdue.when
        return All((self.overdue.when, Not(self.unless)))

    def severity_for(self, overdue: bool) -> str:
        """The severity of this rule's signal, raised when the deadline has passed."""
        return self.overdue.severity if overdue and self.overdue else self.severity


@dataclass(frozen=True)
class DerivedField:
    name: str
    kind: str  # latest | earliest | count | exists | values
    description: str
    # (list group, record field); field "" for count/exists. For days_between: ("", name) of
    # the two dates, each a case date field or a latest/earliest derived field
    sources: tuple[tuple[str, str], ...]
    where: Cond | None
    otherwise: str | None  # a case date field, for latest/earliest
    path: str
    line: int

    @property
    def type(self) -> str:
        return {
            "latest": "date",
            "earliest": "date",
            "count": "int",
            "exists": "bool",
            "days_between": "int",
        }.get(self.kind, "list")


@dataclass(frozen=True)
class PriorityFactor:
    """A case factor that raises the priority of every signal on a matching case."""

    name: str
    when: Cond
    add: int
    path: str
    line: int


@dataclass
class RuleDir:
    """Everything read from one rule directory."""

    root: Path
    rules: list[Rule] = field(default_factory=list)
    derived: list[DerivedField] = field(default_factory=list)
    factors: list[PriorityFactor] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    version: str = ""
    catalogue: Catalogue = field(default_factory=lambda: Catalogue({}))

    @property
    def ok(self) -> bool:
        return not self.problems
