"""Parsing and type-checking one condition (``when``, ``unless``, ``where``, a factor's ``when``).

A condition is a closed set of operators over the fields of the catalogue: ``all``/``any``/
``not``, comparisons, membership, ``missing``/``present`` and dates relative to the as-of date.
Every operator is checked against the field's type; nothing in a condition can run code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regiesignaal.engine.language.casefile import to_date
from regiesignaal.engine.language.catalogue import (
    TYPE_NAMES_NL,
    FieldInfo,
    list_groups,
    suggest,
)
from regiesignaal.engine.language.conditions import All, Any_, Cond, Not, Pos, Test
from regiesignaal.engine.language.dates import parse_duration
from regiesignaal.engine.language.rulefile.common import Context, pos_of
from regiesignaal.engine.language.rulefile.model import (
    ALL_OPS,
    DATE_OPS,
    LOGIC_KEYS,
    MAX_ALTERNATIVES,
    MAX_CONDITION_DEPTH,
    MAX_VALUES,
    OPS_BY_TYPE,
    OVERDUE_KEYS,
    RULE_KEYS,
)


class ConditionParser:
    """Parses and type-checks one condition against a set of fields."""

    def __init__(
        self,
        fields: Mapping[str, FieldInfo],
        ctx: Context,
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
            items = [self.parse(item, pos_of(node, i)) for i, item in enumerate(node)]
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
                    pos_of(node, logic[0]),
                    f"'{logic[0]}' moet alleen staan in zijn blok",
                    "zet andere voorwaarden als regels in de lijst eronder",
                )
                return None
            key = logic[0]
            inner = node[key]
            ipos = pos_of(node, key)
            if key == "not":
                item = self.parse(inner, ipos)
                return Not(item, ipos) if item is not None else None
            if not isinstance(inner, list) or not inner:
                self.ctx.add(ipos, f"'{key}' verwacht een lijst van voorwaarden (regels met '-')")
                return None
            subs = [self.parse(item, pos_of(inner, i)) for i, item in enumerate(inner)]
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
        return tests[0] if len(tests) == 1 else All(tuple(tests), pos_of(node))

    def _field_test(self, node: Mapping[str, Any], name: str) -> list[Cond] | None:
        pos = pos_of(node, name)
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
        vpos = pos_of(node, name, value=True)
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
