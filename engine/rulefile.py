"""Reading rule files: YAML with line numbers, validated against the field catalogue.

A rule directory holds one rule per ``*.yaml`` file, the derived fields in ``derived.yaml``,
and optionally tests beside a rule in ``<name>.tests.yaml``. Nothing in a file can run code:
the YAML is read as plain data (no tags), and conditions are a closed set of operators.

Every problem is reported as ``path:line:column: message`` with a hint on what to do; the
loader goes on through the whole directory so one check shows every problem at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from engine.casefile import CaseFileError, parse_case, to_date, unknown_fields
from engine.catalogue import (
    TYPE_NAMES_NL,
    Catalogue,
    FieldInfo,
    case_fields,
    list_groups,
    record_fields,
    suggest,
)
from engine.conditions import All, Any_, Cond, Not, Pos, Test
from engine.dates import Duration, parse_duration
from engine.mailtext import possible_names, sensitive_words, word_lists

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
# mail_code: the product's list in engine/data/mail-forbidden.txt (see engine.mailtext).
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
    "tests": False,
}
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
    case: dict[str, Any]  # parsed with engine.casefile.parse_case
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


# ------------------------------------------------------------------ helpers


class _Ctx:
    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = problems

    def add(self, pos: Pos, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, pos.line, pos.column, message, hint))


def _pos_of(node: Any, key: Any = None, value: bool = False) -> Pos:
    """The 1-based position of a mapping key (or its value) or of a sequence item."""
    try:
        if key is None:
            return Pos(node.lc.line + 1, node.lc.col + 1)
        if isinstance(node, CommentedSeq):
            line, col = node.lc.item(key)
        elif value:
            line, col = node.lc.value(key)
        else:
            line, col = node.lc.key(key)
        return Pos(line + 1, col + 1)
    except (AttributeError, KeyError, TypeError, IndexError):
        return Pos(1, 1)


def _check_keys(node: CommentedMap, allowed: Mapping[str, bool], ctx: _Ctx, what: str) -> bool:
    ok = True
    for key in node:
        if key not in allowed:
            ok = False
            ctx.add(
                _pos_of(node, key),
                f"onbekend veld '{key}' in {what}",
                suggest(str(key), allowed) or f"toegestaan: {', '.join(allowed)}",
            )
    for key, required in allowed.items():
        if required and key not in node:
            ok = False
            ctx.add(_pos_of(node), f"verplicht veld '{key}' ontbreekt in {what}")
    return ok


def _text(node: CommentedMap, key: str, ctx: _Ctx, default: str = "") -> str:
    value = node.get(key, default)
    if value is None or (key in node and not isinstance(value, str)):
        ctx.add(_pos_of(node, key, value=True), f"'{key}' moet tekst zijn")
        return default
    if key in node and not value.strip():
        ctx.add(_pos_of(node, key, value=True), f"'{key}' is leeg")
    return str(value)


# ------------------------------------------------------------------ conditions


class ConditionParser:
    """Parses and type-checks one condition against a set of fields."""

    def __init__(
        self,
        fields: Mapping[str, FieldInfo],
        ctx: _Ctx,
        where: str,
        broken: frozenset[str] = frozenset(),
    ):
        self.fields = fields
        self.broken = broken  # derived fields declared with problems
        self.ctx = ctx
        self.where = where  # for messages: "regel", "filter van afgeleid veld x"
        self.depth = 0  # all/any/not nesting while parsing

    def parse(self, node: Any, pos: Pos) -> Cond | None:
        self.depth += 1
        try:
            if self.depth > MAX_CONDITION_DEPTH:
                self.ctx.add(
                    pos,
                    f"voorwaarde te diep genest (meer dan {MAX_CONDITION_DEPTH} niveaus "
                    "all/any/not)",
                    "vereenvoudig de regel of vat een deel samen in een afgeleid veld",
                )
                return None
            too_many = isinstance(node, list) and len(node) > MAX_ALTERNATIVES
            if isinstance(node, Mapping) and len(node) == 1:
                inner = next(iter(node.values()))
                too_many = isinstance(inner, list) and len(inner) > MAX_ALTERNATIVES
            if too_many:
                self.ctx.add(
                    pos,
                    f"meer dan {MAX_ALTERNATIVES} voorwaarden in één lijst",
                    "splits de regel in meer regels, of gebruik 'in: [...]' voor een "
                    "keuze uit waarden",
                )
                return None
            return self._parse(node, pos)
        finally:
            self.depth -= 1

    def _parse(self, node: Any, pos: Pos) -> Cond | None:
        if isinstance(node, list):
            if not node:
                self.ctx.add(pos, "lege lijst van voorwaarden", "laat het blok weg of vul het")
                return None
            items = [self.parse(item, _pos_of(node, i)) for i, item in enumerate(node)]
            if any(p is None for p in items):
                return None
            return All(tuple(p for p in items if p is not None), pos)
        if not isinstance(node, Mapping) or not node:
            self.ctx.add(
                pos,
                "hier hoort een voorwaarde: 'veld: waarde', 'all:', 'any:' of 'not:'",
                "bijv. '- location_type: vbl' of 'opened_on: {older_than: 14d}'",
            )
            return None
        logic = [k for k in node if k in LOGIC_KEYS]
        if logic:
            if len(node) != 1:
                self.ctx.add(
                    _pos_of(node, logic[0]),
                    f"'{logic[0]}' moet alleen staan in zijn blok",
                    "zet andere voorwaarden als regels in de lijst eronder",
                )
                return None
            key = logic[0]
            inner = node[key]
            ipos = _pos_of(node, key)
            if key == "not":
                item = self.parse(inner, ipos)
                return Not(item, ipos) if item is not None else None
            if not isinstance(inner, list) or not inner:
                self.ctx.add(ipos, f"'{key}' verwacht een lijst van voorwaarden (regels met '-')")
                return None
            subs = [self.parse(item, _pos_of(inner, i)) for i, item in enumerate(inner)]
            if any(i is None for i in subs):
                return None
            conds = tuple(i for i in subs if i is not None)
            return All(conds, ipos) if key == "all" else Any_(conds, ipos)
        tests: list[Cond] = []
        failed = False
        for key in node:
            got = self._field_test(node, str(key))
            if got is None:
                failed = True
            else:
                tests.extend(got)
        if failed:
            return None
        return tests[0] if len(tests) == 1 else All(tuple(tests), _pos_of(node))

    def _field_test(self, node: Mapping[str, Any], name: str) -> list[Cond] | None:
        pos = _pos_of(node, name)
        info = self.fields.get(name)
        if info is None and name in self.broken:
            self.ctx.add(
                pos,
                f"afgeleid veld '{name}' heeft zelf een fout in derived.yaml",
                "herstel eerst derived.yaml; deze regel volgt vanzelf",
            )
            return None
        if info is None:
            hint = suggest(name, self.fields)
            if name in RULE_KEYS or name in OVERDUE_KEYS:
                block = "when" if self.where == "de regel" else "het blok erboven"
                hint = (
                    f"'{name}' staat ingesprongen onder '{block}': zet '{name}:' aan het begin "
                    "van de regel, zonder spaties ervoor (op gelijke hoogte met 'when:')"
                )
            elif name in list_groups():
                hint = (
                    f"'{name}' is een lijst; gebruik een afgeleid veld "
                    "(zie derived.yaml en 'regiesignaal rules fields')"
                )
            self.ctx.add(pos, f"onbekend veld '{name}' in {self.where}", hint)
            return None
        spec = node[name]
        vpos = _pos_of(node, name, value=True)
        if isinstance(spec, str) and spec in ("missing", "present"):
            return self._presence(info, spec, pos)
        if isinstance(spec, list):
            return self._ops(info, {"in": spec}, pos, vpos)
        if isinstance(spec, Mapping):
            if not spec:
                self.ctx.add(vpos, f"geen operator bij '{name}'", "bijv. {gt: 3}")
                return None
            return self._ops(info, spec, pos, vpos)
        return self._ops(info, {"eq": spec}, pos, vpos)

    def _presence(self, info: FieldInfo, op: str, pos: Pos) -> list[Cond] | None:
        if info.never_missing:
            self.ctx.add(
                pos,
                f"'{info.name}' ontbreekt nooit (een telling of ja/nee over een lijst)",
                "gebruik bijv. {eq: 0} of {eq: false}",
            )
            return None
        return [Test(info.name, op, None, None, info.type == "list", pos)]

    def _ops(
        self, info: FieldInfo, spec: Mapping[str, Any], pos: Pos, vpos: Pos
    ) -> list[Cond] | None:
        if_missing = spec.get("if_missing")
        if "if_missing" in spec:
            if not isinstance(if_missing, bool):
                self.ctx.add(vpos, "'if_missing' moet true of false zijn")
                return None
            if info.type == "list" or info.never_missing:
                self.ctx.add(vpos, f"'if_missing' past niet bij '{info.name}': dat ontbreekt nooit")
                return None
        out: list[Cond] = []
        ok = True
        for op, value in spec.items():
            if op == "if_missing":
                continue
            if op in ("missing", "present"):
                if not isinstance(value, bool):
                    self.ctx.add(vpos, f"'{op}' verwacht true of false")
                    ok = False
                    continue
                real = op if value else ("present" if op == "missing" else "missing")
                got = self._presence(info, real, pos)
                if got is None:
                    ok = False
                else:
                    out.extend(got)
                continue
            test = self._op(info, str(op), value, pos, vpos, if_missing)
            if test is None:
                ok = False
            else:
                out.append(test)
        if ok and not out:
            self.ctx.add(vpos, f"geen operator bij '{info.name}'", "bijv. {gt: 3}")
            return None
        return out if ok else None

    def _op(
        self, info: FieldInfo, op: str, value: Any, pos: Pos, vpos: Pos, if_missing: Any
    ) -> Test | None:
        allowed = OPS_BY_TYPE[info.type]
        if op not in ALL_OPS:
            self.ctx.add(
                vpos, f"onbekende operator '{op}'", suggest(op, ALL_OPS) or ", ".join(ALL_OPS)
            )
            return None
        if op not in allowed:
            possible = allowed
            if info.type != "list" and not info.never_missing:
                possible = (*allowed, "missing", "present")
            self.ctx.add(
                vpos,
                f"operator '{op}' past niet bij '{info.name}' ({TYPE_NAMES_NL[info.type]})",
                f"mogelijk: {', '.join(possible)}",
            )
            return None
        is_list = info.type == "list"
        if op in DATE_OPS:
            try:
                duration = parse_duration(value)
            except ValueError as exc:
                self.ctx.add(vpos, str(exc))
                return None
            return Test(info.name, op, duration, if_missing, False, pos)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.ctx.add(vpos, f"'{op}' verwacht een lijst met waarden, bijv. [vbl, detentie]")
                return None
            if len(value) > MAX_VALUES:
                self.ctx.add(
                    vpos,
                    f"meer dan {MAX_VALUES} waarden in één '{op}'-lijst",
                    "vat de waarden samen in een afgeleid veld of splits de regel",
                )
                return None
            items = [self._literal(info, v, vpos) for v in value]
            if any(i is None for i in items):
                return None
            return Test(info.name, op, tuple(items), if_missing, is_list, pos)
        if is_list:
            if not isinstance(value, str):
                self.ctx.add(vpos, f"'{op}' verwacht een tekst")
                return None
            if info.values and value not in info.values:
                self.ctx.add(
                    vpos,
                    f"'{value}' komt nooit voor in '{info.name}'",
                    suggest(value, info.values) or f"kies uit: {', '.join(info.values)}",
                )
                return None
            return Test(info.name, op, value, None, True, pos)
        literal = self._literal(info, value, vpos)
        if literal is None:
            return None
        return Test(info.name, op, literal, if_missing, False, pos)

    def _literal(self, info: FieldInfo, value: Any, vpos: Pos) -> Any:
        kind = info.type
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "date":
            d = to_date(value)
            if d is not None:
                return d
            self.ctx.add(
                vpos,
                f"{value!r} is geen datum voor '{info.name}'",
                "schrijf JJJJ-MM-DD, of vergelijk relatief met older_than/within_last/...",
            )
            return None
        if kind in ("str", "enum") and isinstance(value, str):
            if kind == "enum" and value not in info.values:
                self.ctx.add(
                    vpos,
                    f"'{value}' is geen waarde van '{info.name}'",
                    suggest(value, info.values) or f"kies uit: {', '.join(info.values)}",
                )
                return None
            return value
        self.ctx.add(
            vpos,
            f"{value!r} past niet bij '{info.name}' ({TYPE_NAMES_NL[kind]})",
            "schrijf true of false"
            if kind == "bool"
            else f"'{info.name}' is {TYPE_NAMES_NL[kind]}"
            + (f": {', '.join(info.values)}" if info.values else ""),
        )
        return None


# ------------------------------------------------------------------ files


_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}"
    for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")
}


def _first_forbidden(node: Any, seen: set[int] | None = None) -> tuple[int, int, str] | None:
    """The position of the first explicit tag (``!!python/...``) or alias (``*name``).

    Aliases are refused too: they make recursive or exponentially large documents
    ("billion laughs") possible, and a rule file never needs them.
    """
    seen = set() if seen is None else seen
    if node is None:
        return None
    if id(node) in seen:
        return node.start_mark.line + 1, node.start_mark.column + 1, "alias"
    seen.add(id(node))
    if getattr(node, "anchor", None):
        return node.start_mark.line + 1, node.start_mark.column + 1, "alias"
    if str(node.tag) not in _PLAIN_TAGS:
        kind = "alias" if str(node.tag).endswith(":merge") else "tag"
        return node.start_mark.line + 1, node.start_mark.column + 1, kind
    children = node.value if isinstance(node.value, list) else []
    for child in children:
        for sub in child if isinstance(child, tuple) else (child,):
            found = _first_forbidden(sub, seen)
            if found:
                return found
    return None


_DATE_LIKE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b")


def _bad_date_position(text: str) -> tuple[int, int]:
    """Where the first date-like value that is not a real date stands (1-based)."""
    for n, line in enumerate(text.splitlines(), start=1):
        for m in _DATE_LIKE.finditer(line.split("#", 1)[0]):
            try:
                dt.date.fromisoformat(m.group(0))
            except ValueError:
                return n, m.start() + 1
    return 1, 1


def _first_indent_tab(text: str) -> tuple[int, int] | None:
    """(line, column) of the first tab in the leading whitespace of a line, 1-based."""
    for n, line in enumerate(text.splitlines(), start=1):
        lead = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in lead:
            return n, lead.index("\t") + 1
    return None


_DUPLICATE_KEY = re.compile(r'found duplicate key "([^"]*)"')


def _yaml_problem_nl(problem: str) -> tuple[str, str]:
    """A YAML parser problem in Dutch, with a hint on what to do."""
    indent = "controleer inspringing: "
    if (m := _DUPLICATE_KEY.search(problem)) is not None:
        return (
            f"het veld '{m.group(1)}' staat twee keer in hetzelfde blok",
            "elk veld mag maar één keer voorkomen; haal er één weg",
        )
    if "\t" in problem or "'\\t'" in problem:
        return "een tab", "YAML accepteert alleen spaties: vervang de tab door spaties"
    if "expected <block end>" in problem:
        return (
            "deze regel springt anders in dan de regels van hetzelfde blok",
            indent + "zet regels van één blok precies onder elkaar (zelfde aantal spaties) en "
            "gebruik twee spaties per niveau",
        )
    if "mapping values are not allowed" in problem:
        return (
            "hier staat een ':' die YAML niet verwacht",
            indent + "staat deze regel te ver ingesprongen onder de regel erboven? Staat er "
            "een ':' in een tekst, zet de tekst dan tussen aanhalingstekens",
        )
    if "could not find expected ':'" in problem or "simple key" in problem:
        return (
            "een regel zonder 'naam: waarde'",
            indent + "elke regel van een blok is 'naam: waarde' (met een spatie na de ':')",
        )
    if "expected '-' indicator" in problem or "expected <block sequence" in problem:
        return (
            "een lijst waarvan niet elk item met '-' begint op dezelfde inspringing",
            indent + "zet elk '- ' van één lijst precies onder elkaar",
        )
    if "expected ',' or '}'" in problem or "expected ',' or ']'" in problem:
        return (
            "een '{...}' of '[...]' is niet goed afgesloten",
            "controleer haakjes en komma's, bijv. {older_than: 14d}",
        )
    return problem, "controleer inspringing, dubbele punten en haakjes"


def _too_deep(node: Any) -> tuple[int, int] | None:
    """The position of the first YAML node nested deeper than ``MAX_YAML_DEPTH``."""
    stack = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if item is None:
            continue
        if depth > MAX_YAML_DEPTH:
            return item.start_mark.line + 1, item.start_mark.column + 1
        children = item.value if isinstance(item.value, list) else []
        for child in children:
            for sub in child if isinstance(child, tuple) else (child,):
                stack.append((sub, depth + 1))
    return None


def _flow_depth(text: str) -> int:
    """The deepest nesting of YAML flow brackets (``[``, ``{``) outside quotes and comments:
    a cheap check before parsing, which is slow (and recursive) on very deep input."""
    depth = deepest = 0
    quote = ""
    comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            if ch == quote or ch == "\n":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            comment = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _read_yaml(path: Path, rel: str, problems: list[Problem]) -> Any:
    yaml = YAML(typ="rt")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(
                Problem(
                    rel,
                    1,
                    1,
                    f"het bestand is te groot ({size} bytes, hoogstens {MAX_FILE_BYTES})",
                    "splits het in meer bestanden",
                )
            )
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(rel, 1, 1, f"kan het bestand niet lezen: {exc}"))
        return None
    tab = _first_indent_tab(text)
    if tab is not None:
        problems.append(
            Problem(
                rel,
                tab[0],
                tab[1],
                "ongeldige YAML: een tab in de inspringing",
                "YAML accepteert alleen spaties: vervang de tab door spaties (twee per niveau); "
                "zet in je editor 'tabs als spaties' aan",
            )
        )
        return None
    too_deep = Problem(
        rel,
        1,
        1,
        f"te diep genest (meer dan {MAX_YAML_DEPTH} niveaus)",
        "een regel heeft hooguit enkele niveaus all/any/not; vereenvoudig het bestand",
    )
    if _flow_depth(text) > MAX_YAML_DEPTH:
        problems.append(too_deep)
        return None
    try:
        try:
            composed = yaml.compose(text)
        except RecursionError:
            problems.append(too_deep)
            return None
        if composed is None:
            problems.append(
                Problem(rel, 1, 1, "het bestand is leeg", "vul het bestand of verwijder het")
            )
            return None
        deep_at = _too_deep(composed)
        if deep_at is not None:
            problems.append(Problem(rel, *deep_at, too_deep.message, too_deep.hint))
            return None
        forbidden = _first_forbidden(composed)
        if forbidden is not None:
            line, col, kind = forbidden
            if kind == "tag":
                message = "YAML-tags (!!...) zijn niet toegestaan"
                hint = "haal de tag weg: een regelbestand bevat alleen gewone waarden"
            else:
                message = "YAML-ankers en -verwijzingen (&naam, *naam, <<) zijn niet toegestaan"
                hint = "schrijf de waarde gewoon uit"
            problems.append(Problem(rel, line, col, message, hint))
            return None
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        col = mark.column + 1 if mark else 1
        problem = (exc.problem or str(exc)).split("\n")[0]
        message, hint = _yaml_problem_nl(problem)
        problems.append(Problem(rel, line, col, f"ongeldige YAML: {message}", hint))
        return None
    except YAMLError as exc:  # e.g. a control character (ReaderError)
        problems.append(
            Problem(
                rel,
                1,
                1,
                f"ongeldige YAML ({type(exc).__name__})",
                "het bestand bevat tekens die in YAML niet mogen (stuurtekens); sla het op "
                "als gewone UTF-8-tekst",
            )
        )
        return None
    except RecursionError:
        problems.append(too_deep)
        return None
    except ValueError as exc:  # e.g. an impossible date such as 2026-02-30
        line, col = _bad_date_position(text)
        problems.append(
            Problem(
                rel,
                line,
                col,
                f"ongeldige waarde: {exc}",
                "controleer de datums: bestaat die dag (JJJJ-MM-DD)?",
            )
        )
        return None


def _parse_tests(node: Any, pos: Pos, ctx: _Ctx, rule_name: str) -> tuple[RuleTest, ...]:
    if not isinstance(node, list):
        ctx.add(pos, "'tests' verwacht een lijst van testgevallen")
        return ()
    out = []
    for i, item in enumerate(node):
        ipos = _pos_of(node, i)
        if not isinstance(item, CommentedMap):
            ctx.add(ipos, "een testgeval is een blok met as_of, case en expect")
            continue
        if not _check_keys(item, TEST_KEYS, ctx, "een testgeval"):
            continue
        as_of = to_date(item["as_of"])
        if as_of is None:
            ctx.add(_pos_of(item, "as_of", value=True), "'as_of' moet een datum zijn (JJJJ-MM-DD)")
            continue
        expect = item["expect"]
        if expect not in EXPECT_VALUES:
            ctx.add(
                _pos_of(item, "expect", value=True),
                f"'expect' moet {' of '.join(EXPECT_VALUES)} zijn",
                suggest(str(expect), EXPECT_VALUES),
            )
            continue
        want_severity = item.get("severity")
        if want_severity is not None and (want_severity not in SEVERITIES or expect != "fires"):
            ctx.add(
                _pos_of(item, "severity", value=True),
                f"'severity' in een test hoort bij 'expect: fires' en is {' / '.join(SEVERITIES)}",
                "laat 'severity' weg of zet expect op fires",
            )
            continue
        raw_case = item["case"]
        if not isinstance(raw_case, Mapping):
            ctx.add(_pos_of(item, "case", value=True), "'case' moet een blok met zaakvelden zijn")
            continue
        merged: dict[str, Any] = {"case_ref": "TEST-1", "status": "open", "opened_on": as_of}
        merged.update(_plain(raw_case))
        unknown = unknown_fields(merged)
        if unknown:
            path, known = unknown[0]
            ctx.add(
                _pos_of(item, "case", value=True),
                f"onbekend veld '{path}' in de testzaak: geen regel kan het lezen",
                suggest(path.rsplit(".", 1)[-1], known) or "zie 'regiesignaal rules fields'",
            )
            continue
        try:
            case = parse_case(merged)
        except CaseFileError as exc:
            ctx.add(_pos_of(item, "case", value=True), f"ongeldige testzaak: {exc}")
            continue
        name = str(item.get("name") or f"{rule_name} test {i + 1}")
        out.append(
            RuleTest(
                name,
                as_of,
                case,
                expect == "fires",
                ctx.path,
                ipos.line,
                str(want_severity) if want_severity is not None else None,
            )
        )
    return tuple(out)


def _plain(value: Any) -> Any:
    """ruamel containers to plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_rule(
    node: Any,
    rel: str,
    stem: str,
    catalogue: Catalogue,
    problems: list[Problem],
    rules_dir: Path | None = None,
) -> Rule | None:
    """One rule from its YAML node; problems are appended, None when it is unusable.

    ``rules_dir`` extends the mail word lists with the folder's own files (see
    ``engine.mailtext``).
    """
    ctx = _Ctx(rel, problems)
    before = len(problems)
    if not isinstance(node, CommentedMap):
        ctx.add(Pos(1, 1), "een regelbestand is een blok met velden (id, title, when, ...)")
        return None
    _check_keys(node, RULE_KEYS, ctx, "de regel")
    rule_id = node.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        ctx.add(
            _pos_of(node, "id", value=True) if "id" in node else Pos(1, 1),
            f"ongeldig id {rule_id!r}",
            "hoofdletters, cijfers en streepjes, bijv. MED-CHECK",
        )
        rule_id = None
    elif rule_id.lower() != stem.lower():
        ctx.add(
            _pos_of(node, "id", value=True),
            f"id '{rule_id}' past niet bij de bestandsnaam '{stem}.yaml'",
            f"noem het bestand {rule_id.lower()}.yaml",
        )
    severity = node.get("severity")
    if "severity" in node and severity not in SEVERITIES:
        ctx.add(
            _pos_of(node, "severity", value=True),
            f"onbekende ernst {severity!r}",
            suggest(str(severity), SEVERITIES) or f"kies uit {', '.join(SEVERITIES)}",
        )
    enabled = node.get("enabled", True)
    if not isinstance(enabled, bool):
        ctx.add(_pos_of(node, "enabled", value=True), "'enabled' moet true of false zijn")
    eff_from = eff_until = None
    eff = node.get("effective")
    if eff is not None:
        if not isinstance(eff, CommentedMap):
            ctx.add(_pos_of(node, "effective", value=True), "verwacht {from: JJJJ-MM-DD}")
        else:
            _check_keys(eff, {"from": False, "until": False}, ctx, "'effective'")
            for key in ("from", "until"):
                if key in eff and eff[key] is not None and to_date(eff[key]) is None:
                    ctx.add(_pos_of(eff, key, value=True), f"'{key}' moet een datum zijn")
            eff_from = to_date(eff.get("from"))
            eff_until = to_date(eff.get("until"))
            if eff_from and eff_until and eff_until < eff_from:
                ctx.add(_pos_of(eff), "'until' ligt voor 'from'")
    escalate = None
    if node.get("escalate_after") is not None:
        try:
            escalate = parse_duration(node["escalate_after"])
        except ValueError as exc:
            ctx.add(_pos_of(node, "escalate_after", value=True), str(exc))
    max_explanation = None
    if node.get("max_explanation") is not None:
        try:
            max_explanation = parse_duration(node["max_explanation"])
        except ValueError as exc:
            ctx.add(_pos_of(node, "max_explanation", value=True), str(exc))
    cparser = ConditionParser(catalogue.fields, ctx, "de regel", catalogue.broken)
    when = cparser.parse(node["when"], _pos_of(node, "when")) if "when" in node else None
    unless = None
    if node.get("unless") is not None:
        unless_node = node["unless"]
        unless = cparser.parse(unless_node, _pos_of(node, "unless"))
        if isinstance(unless_node, list) and isinstance(unless, All):
            # a list under 'unless' means: any of these makes the rule not apply
            unless = Any_(unless.items, unless.pos)
    overdue = None
    if "overdue" in node:
        overdue = _parse_overdue(node, severity, cparser, ctx)
    texts = {k: _text(node, k, ctx) for k in ("title", "mail_title", "owner", "expected_action")}
    mail_code = ""
    if node.get("mail_code") is not None:
        raw_code = node["mail_code"]
        if not isinstance(raw_code, str) or not MAIL_CODE.match(raw_code):
            ctx.add(
                _pos_of(node, "mail_code", value=True),
                "'mail_code' is een neutrale code: een hoofdletter en 1 tot 4 cijfers",
                "bijvoorbeeld R07; laat het veld weg voor alleen de titel",
            )
        else:
            mail_code = raw_code
    texts["mail_code"] = mail_code
    lists = word_lists(rules_dir)
    for key in ("mail_title", "expected_action", "mail_code"):
        found = sensitive_words(texts[key], lists.forbidden)
        if found:
            ctx.add(
                _pos_of(node, key, value=True),
                f"'{key}' staat in e-mail en mag '{found[0]}' niet bevatten "
                "(ook niet als deel van een woord)",
                "schrijf neutraal: geen namen, nummers, medische details of gevoelige "
                "omstandigheden (zie de gids, hoofdstuk 13)",
            )
        names = possible_names(texts[key], lists.allowed_capitalised)
        if names:
            ctx.add(
                _pos_of(node, key, value=True),
                f"'{key}' staat in e-mail; een woord met een hoofdletter midden in een zin "
                f"kan een naam zijn ({len(names)} keer)",
                "schrijf het woord met een kleine letter, of zet het in mail-words.txt in de "
                "regelmap als het geen naam is (zie de gids, hoofdstuk 13)",
            )
    if len(texts["mail_title"]) > MAIL_TITLE_MAX:
        ctx.add(
            _pos_of(node, "mail_title", value=True),
            f"'mail_title' is {len(texts['mail_title'])} tekens; hooguit {MAIL_TITLE_MAX}",
            "maak de titel korter",
        )
    description = _text(node, "description", ctx) if "description" in node else ""
    tests: tuple[RuleTest, ...] = ()
    if "tests" in node:
        tests = _parse_tests(node["tests"], _pos_of(node, "tests"), ctx, rule_id or stem)
    if len(problems) > before or rule_id is None or when is None:
        return None
    return Rule(
        id=rule_id,
        title=texts["title"],
        mail_title=texts["mail_title"],
        severity=str(severity),
        owner=texts["owner"],
        description=description,
        enabled=bool(enabled),
        effective_from=eff_from,
        effective_until=eff_until,
        when=when,
        unless=unless,
        expected_action=texts["expected_action"],
        escalate_after=escalate,
        path=rel,
        line=_pos_of(node).line,
        tests=tests,
        overdue=overdue,
        max_explanation=max_explanation,
        mail_code=mail_code,
    )


def _parse_overdue(
    node: CommentedMap, severity: Any, cparser: ConditionParser, ctx: _Ctx
) -> Overdue | None:
    """The ``overdue:`` block of a rule: ``{when: <condition>, severity: <higher>}``."""
    block = node["overdue"]
    bpos = _pos_of(node, "overdue")
    if not isinstance(block, CommentedMap):
        ctx.add(
            bpos,
            "'overdue' verwacht een blok met 'when' en 'severity'",
            "bijv. overdue: {when: {departure_term_ends_on: {older_than: 0d}}, severity: critical}",
        )
        return None
    if not _check_keys(block, OVERDUE_KEYS, ctx, "'overdue'"):
        return None
    raised = block["severity"]
    spos = _pos_of(block, "severity", value=True)
    if raised not in SEVERITIES:
        ctx.add(
            spos,
            "onbekende ernst in 'overdue'",
            suggest(str(raised), SEVERITIES) or f"kies uit {', '.join(SEVERITIES)}",
        )
        return None
    if severity in SEVERITIES and SEVERITIES.index(raised) <= SEVERITIES.index(severity):
        ctx.add(
            spos,
            f"de ernst bij 'overdue' ({raised}) moet hoger zijn dan die van de regel ({severity})",
            "een verstreken termijn is urgenter dan een naderende; kies een hogere ernst",
        )
        return None
    when = cparser.parse(block["when"], _pos_of(block, "when"))
    if when is None:
        return None
    return Overdue(when, str(raised))


def _source_ref(
    text: Any, pos: Pos, ctx: _Ctx, need_field: bool, types: tuple[str, ...]
) -> tuple[str, str] | None:
    groups = list_groups()
    if not isinstance(text, str):
        ctx.add(pos, "verwacht 'lijst.veld', bijv. contacts.on")
        return None
    group, _, fname = text.partition(".")
    if group not in groups:
        ctx.add(pos, f"onbekende lijst '{group}'", suggest(group, groups) or ", ".join(groups))
        return None
    if not need_field:
        if fname:
            ctx.add(pos, f"hier alleen de lijst, zonder veld: '{group}'")
            return None
        return group, ""
    fields = record_fields(group)
    info = fields.get(fname)
    if info is None:
        ctx.add(
            pos,
            f"onbekend veld '{fname}' in '{group}'",
            suggest(fname, fields) or ", ".join(fields),
        )
        return None
    if info.type not in types:
        ctx.add(pos, f"'{text}' is {TYPE_NAMES_NL[info.type]}; hier hoort een {types[0]}")
        return None
    return group, fname


def parse_derived(node: Any, rel: str, problems: list[Problem]) -> list[DerivedField]:
    ctx = _Ctx(rel, problems)
    if node is None:
        return []
    if not isinstance(node, CommentedMap):
        ctx.add(Pos(1, 1), "derived.yaml is een blok van 'naam: definitie'")
        return []
    known_case = case_fields()
    out: list[DerivedField] = []
    for name, spec in node.items():
        pos = _pos_of(node, name)
        before = len(problems)
        if not DERIVED_NAME.match(str(name)) or "__" in str(name) or name in ("t", "sid"):
            ctx.add(
                pos,
                f"ongeldige naam '{name}'",
                "kleine letters, cijfers en enkele _ (geen __), niet 't' of 'sid'",
            )
            continue
        if name in known_case:
            ctx.add(pos, f"'{name}' bestaat al als zaakveld", "kies een andere naam")
            continue
        if not isinstance(spec, CommentedMap):
            ctx.add(pos, f"'{name}' verwacht een blok met description en bijv. latest:")
            continue
        allowed = {"description": True, "where": False, "otherwise": False}
        allowed.update({k: False for k in DERIVED_KINDS})
        _check_keys(spec, allowed, ctx, f"afgeleid veld '{name}'")
        kinds = [k for k in DERIVED_KINDS if k in spec]
        if len(kinds) != 1:
            ctx.add(
                _pos_of(spec),
                f"'{name}' moet precies één van {', '.join(DERIVED_KINDS)} hebben",
            )
            continue
        kind = kinds[0]
        kpos = _pos_of(spec, kind, value=True)
        if kind == "days_between":
            pair = _days_between(spec, kpos, known_case, out, ctx)
            if pair is None:
                continue
            out.append(
                DerivedField(
                    str(name),
                    kind,
                    _text(spec, "description", ctx),
                    pair,
                    None,
                    None,
                    rel,
                    pos.line,
                )
            )
            continue
        refs = spec[kind] if isinstance(spec[kind], list) else [spec[kind]]
        if not refs:
            ctx.add(kpos, f"'{kind}' verwacht een lijst.veld, bijv. contacts.on")
            continue
        if kind in ("count", "exists", "values") and len(refs) != 1:
            ctx.add(kpos, f"'{kind}' werkt op precies één lijst", "maak per lijst een eigen veld")
            continue
        sources: list[tuple[str, str]] = []
        for ref in refs:
            if kind in ("latest", "earliest"):
                got = _source_ref(ref, kpos, ctx, True, ("date",))
            elif kind == "values":
                got = _source_ref(ref, kpos, ctx, True, ("str", "enum"))
            else:
                got = _source_ref(ref, kpos, ctx, False, ())
            if got:
                sources.append(got)
        if len(problems) > before:
            continue
        if len({g for g, _ in sources}) > 1 and "where" in spec:
            ctx.add(_pos_of(spec, "where"), "'where' kan alleen bij één lijst")
            continue
        where = None
        if "where" in spec:
            group = sources[0][0]
            parser = ConditionParser(
                record_fields(group), ctx, f"het filter van '{name}' (velden van {group})"
            )
            where = parser.parse(spec["where"], _pos_of(spec, "where"))
            if where is None:
                continue
        otherwise = spec.get("otherwise")
        if otherwise is not None:
            info = known_case.get(str(otherwise))
            if kind not in ("latest", "earliest"):
                ctx.add(_pos_of(spec, "otherwise"), "'otherwise' hoort alleen bij latest/earliest")
                continue
            if info is None or info.type != "date":
                ctx.add(
                    _pos_of(spec, "otherwise", value=True),
                    f"'otherwise' moet een datumveld van de zaak zijn, niet {otherwise!r}",
                    suggest(str(otherwise), known_case),
                )
                continue
        description = _text(spec, "description", ctx)
        out.append(
            DerivedField(
                str(name),
                kind,
                description,
                tuple(sources),
                where,
                otherwise,
                rel,
                pos.line,
            )
        )
    return out


def _days_between(
    spec: CommentedMap,
    kpos: Pos,
    known_case: Mapping[str, FieldInfo],
    earlier: list[DerivedField],
    ctx: _Ctx,
) -> tuple[tuple[str, str], ...] | None:
    """``days_between: [from, to]``: two dates, each a case date field or a latest/earliest
    derived field declared above; the value is ``to - from`` in calendar days."""
    refs = spec["days_between"]
    usable = {d.name for d in earlier if d.kind in ("latest", "earliest")}
    usable |= {n for n, f in known_case.items() if f.type == "date"}
    if not isinstance(refs, list) or len(refs) != 2:
        ctx.add(
            kpos,
            "'days_between' verwacht precies twee datums: [van, tot]",
            "bijv. days_between: [booking.departure_on, medical.art64_until]",
        )
        return None
    for extra in ("where", "otherwise"):
        if extra in spec:
            ctx.add(_pos_of(spec, extra), f"'{extra}' past niet bij days_between")
            return None
    for ref in refs:
        if not isinstance(ref, str) or ref not in usable:
            ctx.add(
                kpos,
                "'days_between' noemt een onbekende datum",
                (suggest(str(ref), usable) if isinstance(ref, str) else "")
                or "gebruik een datumveld van de zaak of een eerder gedeclareerd "
                "latest/earliest-veld",
            )
            return None
    return (("", str(refs[0])), ("", str(refs[1])))


def parse_priority(
    node: Any, rel: str, catalogue: Catalogue, problems: list[Problem]
) -> list[PriorityFactor]:
    ctx = _Ctx(rel, problems)
    if node is None:
        return []
    if not isinstance(node, CommentedMap) or not _check_keys(
        node, {"factors": True}, ctx, "priority.yaml"
    ):
        return []
    items = node["factors"]
    if not isinstance(items, list):
        ctx.add(_pos_of(node, "factors"), "'factors' verwacht een lijst")
        return []
    out = []
    parser = ConditionParser(catalogue.fields, ctx, "een prioriteitsfactor")
    for i, item in enumerate(items):
        ipos = _pos_of(items, i)
        if not isinstance(item, CommentedMap):
            ctx.add(ipos, "een factor is een blok met name, when en add")
            continue
        if not _check_keys(item, {"name": True, "when": True, "add": True}, ctx, "een factor"):
            continue
        add = item["add"]
        if not isinstance(add, int) or isinstance(add, bool) or not 0 <= add <= 100:
            ctx.add(_pos_of(item, "add", value=True), "'add' moet een getal van 0 tot 100 zijn")
            continue
        when = parser.parse(item["when"], _pos_of(item, "when"))
        if when is not None:
            out.append(PriorityFactor(str(item["name"]), when, add, rel, ipos.line))
    return out


def build_catalogue(derived: Iterable[DerivedField], broken: Iterable[str] = ()) -> Catalogue:
    fields: dict[str, FieldInfo] = dict(case_fields())
    for d in derived:
        values: tuple[str, ...] = ()
        if d.kind == "values":  # the choices of the source field, for `contains`
            group, name = d.sources[0]
            values = record_fields(group)[name].values
        fields[d.name] = FieldInfo(
            d.name,
            d.type,  # type: ignore[arg-type]
            d.description,
            values,
            "afgeleid",
            never_missing=d.kind in ("count", "exists", "values"),
        )
    return Catalogue(fields, broken)


def load_rule_dir(root: Path) -> RuleDir:
    """Read and check a whole rule directory. Never raises for bad content."""
    root = Path(root)
    result = RuleDir(root)
    if not root.is_dir():
        result.problems.append(
            Problem(str(root), 0, 0, "map met regels niet gevonden", "geef de juiste map op")
        )
        return result
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    for p in files:
        digest.update(p.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(p.read_bytes())
        digest.update(b"\0")
    result.version = digest.hexdigest()[:12]

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)

    derived_path = root / DERIVED_FILE
    broken: set[str] = set()
    if derived_path.exists():
        node = _read_yaml(derived_path, rel(derived_path), result.problems)
        result.derived = parse_derived(node, rel(derived_path), result.problems)
        if isinstance(node, Mapping):
            broken = {str(k) for k in node} - {d.name for d in result.derived}
    result.catalogue = build_catalogue(result.derived, broken)
    priority_path = root / PRIORITY_FILE
    if priority_path.exists():
        node = _read_yaml(priority_path, rel(priority_path), result.problems)
        result.factors = parse_priority(node, rel(priority_path), result.catalogue, result.problems)
    seen: dict[str, str] = {}
    declared: set[str] = set()  # ids named in rule files, also those with problems
    beside: list[tuple[Path, Any]] = []
    for p in files:
        if p in (derived_path, priority_path):
            continue
        if p.name.endswith(TESTS_SUFFIX):
            beside.append((p, _read_yaml(p, rel(p), result.problems)))
            continue
        node = _read_yaml(p, rel(p), result.problems)
        if node is None:
            declared.add(p.stem.upper())
            continue
        if isinstance(node, Mapping) and isinstance(node.get("id"), str):
            declared.add(node["id"])
        rule = parse_rule(node, rel(p), p.stem, result.catalogue, result.problems, root)
        if rule is None:
            continue
        if rule.id in seen:
            result.problems.append(
                Problem(
                    rule.path,
                    rule.line,
                    1,
                    f"id '{rule.id}' staat ook in {seen[rule.id]}",
                    "elke regel heeft een eigen id",
                )
            )
            continue
        seen[rule.id] = rule.path
        result.rules.append(rule)
    by_id = {r.id: i for i, r in enumerate(result.rules)}
    for p, node in beside:
        ctx = _Ctx(rel(p), result.problems)
        if node is None:
            continue
        if not isinstance(node, CommentedMap) or not _check_keys(
            node, {"rule": True, "tests": True}, ctx, "een testbestand"
        ):
            continue
        rid = node["rule"]
        if not isinstance(rid, str):
            ctx.add(_pos_of(node, "rule", value=True), "'rule' moet het id van één regel zijn")
            continue
        if rid not in by_id:
            if rid in declared:
                continue  # the rule itself has problems, reported in its own file
            ctx.add(
                _pos_of(node, "rule", value=True),
                f"onbekende regel {rid!r}",
                suggest(str(rid), by_id),
            )
            continue
        extra = _parse_tests(node["tests"], _pos_of(node, "tests"), ctx, str(rid))
        i = by_id[rid]
        old = result.rules[i]
        result.rules[i] = Rule(**{**old.__dict__, "tests": old.tests + extra})
    result.rules.sort(key=lambda r: r.id)
    return result
