"""Parsing ``priority.yaml``: the case factors that raise the priority of every signal of a case."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap

from regiesignaal.engine.language.catalogue import (
    Catalogue,
)
from regiesignaal.engine.language.rulefile.common import Context, check_keys, pos_of
from regiesignaal.engine.language.rulefile.condition_parser import ConditionParser
from regiesignaal.engine.language.rulefile.model import PriorityFactor, Problem


def parse_priority(
    node: Any, rel: str, catalogue: Catalogue, problems: list[Problem]
) -> list[PriorityFactor]:
    ctx = Context(rel, problems)
    if node is None:
        return []
    if not isinstance(node, CommentedMap) or not check_keys(
        node, {"factors": True}, ctx, "priority.yaml"
    ):
        return []
    items = node["factors"]
    if not isinstance(items, list):
        ctx.add(pos_of(node, "factors"), "'factors' verwacht een lijst")
        return []
    out = []
    parser = ConditionParser(catalogue.fields, ctx, "een prioriteitsfactor")
    for i, item in enumerate(items):
        ipos = pos_of(items, i)
        if not isinstance(item, CommentedMap):
            ctx.add(ipos, "een factor is een blok met name, when en add")
            continue
        if not check_keys(item, {"name": True, "when": True, "add": True}, ctx, "een factor"):
            continue
        add = item["add"]
        if not isinstance(add, int) or isinstance(add, bool) or not 0 <= add <= 100:
            ctx.add(pos_of(item, "add", value=True), "'add' moet een getal van 0 tot 100 zijn")
            continue
        when = parser.parse(item["when"], pos_of(item, "when"))
        if when is not None:
            out.append(PriorityFactor(str(item["name"]), when, add, rel, ipos.line))
    return out
