"""Helpers every rule-file parser shares: problems with a position, key checks, plain values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from regiesignaal.engine.language.catalogue import (
    suggest,
)
from regiesignaal.engine.language.conditions import Pos
from regiesignaal.engine.language.rulefile.model import Problem


class Context:
    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = problems

    def add(self, pos: Pos, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, pos.line, pos.column, message, hint))


def pos_of(node: Any, key: Any = None, value: bool = False) -> Pos:
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


def check_keys(node: CommentedMap, allowed: Mapping[str, bool], ctx: Context, what: str) -> bool:
    ok = True
    for key in node:
        if key not in allowed:
            ok = False
            ctx.add(
                pos_of(node, key),
                f"onbekend veld '{key}' in {what}",
                suggest(str(key), allowed) or f"toegestaan: {', '.join(allowed)}",
            )
    for key, required in allowed.items():
        if required and key not in node:
            ok = False
            ctx.add(pos_of(node), f"verplicht veld '{key}' ontbreekt in {what}")
    return ok


def text_value(node: CommentedMap, key: str, ctx: Context, default: str = "") -> str:
    value = node.get(key, default)
    if value is None or (key in node and not isinstance(value, str)):
        ctx.add(pos_of(node, key, value=True), f"'{key}' moet tekst zijn")
        return default
    if key in node and not value.strip():
        ctx.add(pos_of(node, key, value=True), f"'{key}' is leeg")
    return str(value)


def plain(value: Any) -> Any:
    """ruamel containers to plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
