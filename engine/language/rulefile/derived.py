"""Parsing ``derived.yaml``: the derived fields rules read (latest, earliest, count, exists,
values over a case's lists, with an optional filter; days between two dates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap

from regiesignaal.engine.language.catalogue import (
    TYPE_NAMES_NL,
    FieldInfo,
    case_fields,
    list_groups,
    record_fields,
    suggest,
)
from regiesignaal.engine.language.conditions import Pos
from regiesignaal.engine.language.rulefile.common import Context, check_keys, pos_of, text_value
from regiesignaal.engine.language.rulefile.condition_parser import ConditionParser
from regiesignaal.engine.language.rulefile.model import (
    DERIVED_KINDS,
    DERIVED_NAME,
    DerivedField,
    Problem,
)


def _source_ref(
    text: Any, pos: Pos, ctx: Context, need_field: bool, types: tuple[str, ...]
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
    ctx = Context(rel, problems)
    if node is None:
        return []
    if not isinstance(node, CommentedMap):
        ctx.add(Pos(1, 1), "derived.yaml is een blok van 'naam: definitie'")
        return []
    known_case = case_fields()
    out: list[DerivedField] = []
    for name, spec in node.items():
        pos = pos_of(node, name)
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
        check_keys(spec, allowed, ctx, f"afgeleid veld '{name}'")
        kinds = [k for k in DERIVED_KINDS if k in spec]
        if len(kinds) != 1:
            ctx.add(
                pos_of(spec),
                f"'{name}' moet precies één van {', '.join(DERIVED_KINDS)} hebben",
            )
            continue
        kind = kinds[0]
        kpos = pos_of(spec, kind, value=True)
        if kind == "days_between":
            pair = _days_between(spec, kpos, known_case, out, ctx)
            if pair is None:
                continue
            out.append(
                DerivedField(
                    str(name),
                    kind,
                    text_value(spec, "description", ctx),
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
            ctx.add(pos_of(spec, "where"), "'where' kan alleen bij één lijst")
            continue
        where = None
        if "where" in spec:
            group = sources[0][0]
            parser = ConditionParser(
                record_fields(group), ctx, f"het filter van '{name}' (velden van {group})"
            )
            where = parser.parse(spec["where"], pos_of(spec, "where"))
            if where is None:
                continue
        otherwise = spec.get("otherwise")
        if otherwise is not None:
            info = known_case.get(str(otherwise))
            if kind not in ("latest", "earliest"):
                ctx.add(pos_of(spec, "otherwise"), "'otherwise' hoort alleen bij latest/earliest")
                continue
            if info is None or info.type != "date":
                ctx.add(
                    pos_of(spec, "otherwise", value=True),
                    f"'otherwise' moet een datumveld van de zaak zijn, niet {otherwise!r}",
                    suggest(str(otherwise), known_case),
                )
                continue
        description = text_value(spec, "description", ctx)
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
    ctx: Context,
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
            ctx.add(pos_of(spec, extra), f"'{extra}' past niet bij days_between")
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
